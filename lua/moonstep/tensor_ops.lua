-- moonstep.tensor_ops — elementwise math (unary, binary with broadcasting, fused
-- ternary forms, where), softmax and reductions. Each method checks its arguments
-- first and names itself; the runtime's messages are re-prefixed with that name.
local core = require 'moonstep.core'
local B = require 'moonstep.tensor_base'
local C = core.C
local check = B.check
local type, huge, pairs = type, math.huge, pairs

local Tensor, live, is_tensor = B.Tensor, B.live, B.is_tensor
local fail, shape_str, value_buf = B.fail, B.shape_str, B.value_buf
local M = {}

-- An optional scalar argument: nil gives the default; NaN is refused.
local function opt_number(fn, name, v, default)
  if v == nil then return default end
  if type(v) ~= 'number' or v ~= v then
    check.fail('%s: %s is %s, expected a number', fn, name, check.describe(v))
  end
  return v
end

local function opt_boolean(fn, name, v)
  if v == nil then return false end
  return check.boolean(fn, name, v)
end

---------------------------------------------------------------------------------------
-- unary
---------------------------------------------------------------------------------------
-- The plain unary methods t:name() and t:name_(): the METHOD entries of the op list
-- (runtime/include/moonstep_elementwise.h, read by core.lua), name -> op id.
local U = {}
for _, op in ipairs(core.elementwise.unary) do
  if op.method then U[op.name] = op.value end
end
M.unary_methods = U

-- out <- op(t; a, b); out == nil allocates.
local function unary(fn, t, op, a, b, out)
  out = out or B.empty_like(fn, t)
  if C.ms_unary(out, t, op, a or 0, b or 0) ~= 0 then fail(fn) end
  return out
end

for name, op in pairs(U) do
  Tensor[name] = function(t)
    live(name, t)
    return unary(name, t, op)
  end
  Tensor[name .. '_'] = function(t)
    live(name .. '_', t)
    return unary(name .. '_', t, op, 0, 0, t)
  end
end

-- gelu([approximate = 'none' | 'tanh']): PyTorch's F.gelu.
function Tensor.gelu(t, approximate)
  live('gelu', t)
  if approximate ~= nil then check.oneof('gelu', 'approximate', approximate, { 'none', 'tanh' }) end
  return unary('gelu', t, approximate == 'tanh' and C.MS_GELU_TANH or C.MS_GELU)
end

function Tensor.leaky_relu(t, slope)
  live('leaky_relu', t)
  return unary('leaky_relu', t, C.MS_LEAKY_RELU, opt_number('leaky_relu', 'negative_slope', slope, 0.01))
end

local function clamp_args(fn, lo, hi)
  lo = opt_number(fn, 'min', lo, -huge)
  hi = opt_number(fn, 'max', hi, huge)
  if lo > hi then
    check.fail('%s: min %s is greater than max %s, expected min <= max', fn, check.describe(lo),
               check.describe(hi))
  end
  return lo, hi
end
function Tensor.clamp(t, lo, hi)
  live('clamp', t)
  lo, hi = clamp_args('clamp', lo, hi)
  return unary('clamp', t, C.MS_CLAMP, lo, hi)
end
function Tensor.clamp_(t, lo, hi)
  live('clamp_', t)
  lo, hi = clamp_args('clamp_', lo, hi)
  return unary('clamp_', t, C.MS_CLAMP, lo, hi, t)
end

-- softmax / log_softmax over dim (default: the last one).
local function softmax(fn, t, dim, log_)
  live(fn, t)
  if t.ndim == 0 then check.fail('%s: tensor is 0-d, expected at least one dimension', fn) end
  local d = dim == nil and t.ndim or B.norm_dim(t, fn, dim)
  local x = d == t.ndim and t:contiguous() or t:transpose(d, t.ndim):contiguous()
  local out = B.empty_like(fn, x)
  if C.ms_softmax(out, x, log_) ~= 0 then fail(fn) end
  if d ~= t.ndim then out = out:transpose(d, t.ndim):contiguous() end
  return out
end
function Tensor.softmax(t, dim) return softmax('softmax', t, dim, 0) end
function Tensor.log_softmax(t, dim) return softmax('log_softmax', t, dim, 1) end

---------------------------------------------------------------------------------------
-- binary, with broadcasting
---------------------------------------------------------------------------------------
local BIN = {   -- name -> { tensor-tensor op, tensor-scalar op }
  add = { C.MS_ADD, C.MS_ADD_SCALAR }, sub = { C.MS_SUB, C.MS_ADD_SCALAR },
  mul = { C.MS_MUL, C.MS_MUL_SCALAR }, div = { C.MS_DIV, C.MS_MUL_SCALAR },
  pow = { C.MS_POW, C.MS_POW_SCALAR }, maximum = { C.MS_MAX, C.MS_MAX_SCALAR },
  minimum = { C.MS_MIN, C.MS_MIN_SCALAR },
  eq = { C.MS_EQ, C.MS_EQ_SCALAR }, ne = { C.MS_NE, C.MS_NE_SCALAR },
  lt = { C.MS_LT, C.MS_LT_SCALAR }, le = { C.MS_LE, C.MS_LE_SCALAR },
  gt = { C.MS_GT, C.MS_GT_SCALAR }, ge = { C.MS_GE, C.MS_GE_SCALAR },
}
local SCALAR_LEFT = { add = C.MS_ADD_SCALAR, mul = C.MS_MUL_SCALAR, sub = C.MS_RSUB_SCALAR,
                      div = C.MS_RDIV_SCALAR, pow = C.MS_RPOW_SCALAR }

local function same_shape(a, b)
  if a.ndim ~= b.ndim then return false end
  for d = 0, a.ndim - 1 do
    if a.sizes[d] ~= b.sizes[d] then return false end
  end
  return true
end

-- The broadcast shape of tensors (NumPy rules), or an error naming the shapes.
local function broadcast_shape(fn, ...)
  local list, n = { ... }, 0
  for _, t in ipairs(list) do if t.ndim > n then n = t.ndim end end
  local shape = {}
  for d = 1, n do
    local s = 1
    for _, t in ipairs(list) do
      local td = d - (n - t.ndim)
      local st = td >= 1 and tonumber(t.sizes[td - 1]) or 1
      if st ~= 1 then
        if s ~= 1 and s ~= st then
          local shapes = {}
          for i, u in ipairs(list) do shapes[i] = shape_str(u:shape()) end
          check.fail('%s: shapes %s cannot be broadcast (dimension %d: %d vs %d)', fn,
                     table.concat(shapes, ' and '), d, s, st)
        end
        s = st
      end
    end
    shape[d] = s
  end
  return shape
end
M.broadcast_shape = broadcast_shape

-- out <- a (op) b, b a tensor or a number; alpha scales b for add/sub (axpy).
local function binary_into(fn, name, out, a, b, alpha)
  local ops = BIN[name]
  alpha = opt_number(fn, 'alpha', alpha, 1)
  if type(b) == 'number' then
    local s = b
    if name == 'sub' then s = -b * alpha elseif name == 'add' then s = b * alpha
    elseif name == 'div' then s = 1 / b end
    if C.ms_unary(out, a, ops[2], s, 0) ~= 0 then fail(fn) end
  else
    if C.ms_binary(out, a, b, ops[1], alpha) ~= 0 then fail(fn) end
  end
  return out
end

local function other_arg(fn, b)
  if type(b) == 'number' then return b end
  if not is_tensor(b) then
    check.fail('%s: other is %s, expected a tensor or a number', fn, check.describe(b))
  end
  return live(fn, b, 'other')
end

for name in pairs(BIN) do
  Tensor[name] = function(a, b, alpha)
    live(name, a); other_arg(name, b)
    local out
    if not is_tensor(b) or same_shape(a, b) then out = B.empty_like(name, a)
    else out = B.empty(name, broadcast_shape(name, a, b), a.dtype_id, B.device_id(a, name)) end
    return binary_into(name, name, out, a, b, alpha)
  end
  Tensor[name .. '_'] = function(a, b, alpha)
    live(name .. '_', a); other_arg(name .. '_', b)
    return binary_into(name .. '_', name, a, a, b, alpha)
  end
end

-- The arithmetic metamethods: t + x, x + t (x a number), ...
B.binop = function(name, a, b)
  if is_tensor(a) then return Tensor[name](a, b) end
  if type(a) ~= 'number' then
    check.fail('%s: argument 1 is %s, expected a tensor or a number', name, check.describe(a))
  end
  live(name, b, 'argument 2')
  return unary(name, b, SCALAR_LEFT[name], a)
end

-- y:axpy_(alpha, x): y <- y + alpha * x (the fused form optimizers use).
function Tensor.axpy_(y, alpha, x)
  live('axpy_', y)
  check.number('axpy_', 'alpha', alpha)
  live('axpy_', x, 'x')
  if C.ms_binary(y, y, x, C.MS_ADD, alpha) ~= 0 then fail('axpy_') end
  return y
end

---------------------------------------------------------------------------------------
-- ternary: t + value * t1 * t2, t + value * t1 / t2, lerp, where
---------------------------------------------------------------------------------------
local function fused(name, op, inplace)
  return function(t, a, b, c)
    live(name, t)
    local value, t1, t2 = 1, a, b
    if type(a) == 'number' then value, t1, t2 = a, b, c
    elseif c ~= nil then
      check.fail('%s: argument 3 is %s, expected ([value,] tensor1, tensor2)', name, check.describe(c))
    end
    if value ~= value then check.fail('%s: value is nan, expected a number', name) end
    live(name, t1, 'tensor1'); live(name, t2, 'tensor2')
    local out = inplace and t or B.empty(name, broadcast_shape(name, t, t1, t2), t.dtype_id,
                                         B.device_id(t, name))
    if C.ms_ternary(out, t, t1, t2, op, value) ~= 0 then fail(name) end
    return out
  end
end
Tensor.addcmul, Tensor.addcmul_ = fused('addcmul', C.MS_ADDCMUL), fused('addcmul_', C.MS_ADDCMUL, true)
Tensor.addcdiv, Tensor.addcdiv_ = fused('addcdiv', C.MS_ADDCDIV), fused('addcdiv_', C.MS_ADDCDIV, true)

-- t:lerp(end, weight) = t + weight * (end - t); weight a number or a tensor.
local function lerp(name, inplace)
  return function(t, e, w)
    live(name, t); live(name, e, 'end')
    if type(w) ~= 'number' then live(name, w, 'weight')
    elseif w ~= w then check.fail('%s: weight is nan, expected a number or a tensor', name) end
    local out = t
    if not inplace then
      local shape = is_tensor(w) and broadcast_shape(name, t, e, w) or broadcast_shape(name, t, e)
      out = B.empty(name, shape, t.dtype_id, B.device_id(t, name))
    end
    local rc
    if is_tensor(w) then rc = C.ms_ternary(out, t, e, w, C.MS_LERP_WEIGHT, 1)
    else rc = C.ms_ternary(out, t, e, e, C.MS_LERP, w) end
    if rc ~= 0 then fail(name) end
    return out
  end
end
Tensor.lerp, Tensor.lerp_ = lerp('lerp'), lerp('lerp_', true)

-- where(cond, x, y): x where cond ~= 0 else y; x and y tensors or numbers.
function M.where(cond, x, y)
  live('where', cond, 'condition')
  local ref = is_tensor(x) and x or is_tensor(y) and y or cond
  local function as_tensor(v, name)
    if type(v) == 'number' then
      local t = B.empty('where', {}, ref.dtype_id, B.device_id(ref, 'where'))
      if C.ms_fill(t, v) ~= 0 then fail('where') end
      return t
    end
    return live('where', v, name)
  end
  x, y = as_tensor(x, 'x'), as_tensor(y, 'y')
  local out = B.empty('where', broadcast_shape('where', cond, x, y), x.dtype_id, B.device_id(x, 'where'))
  if C.ms_ternary(out, cond, x, y, C.MS_WHERE, 1) ~= 0 then fail('where') end
  return out
end

---------------------------------------------------------------------------------------
-- reductions
---------------------------------------------------------------------------------------
local R = { sum = C.MS_SUM, mean = C.MS_MEAN, max = C.MS_RMAX, min = C.MS_RMIN,
            argmax = C.MS_ARGMAX, argmin = C.MS_ARGMIN, norm = C.MS_NORM, var = C.MS_VAR }

-- Over all elements (dim == nil: a Lua number) or along dim (a tensor without that
-- dim, or with size 1 there when keepdim).
local function reduce(t, fn, op, param, dim, keepdim)
  live(fn, t)
  keepdim = opt_boolean(fn, 'keepdim', keepdim)
  if dim == nil then
    if C.ms_reduce_all(t, op, param, value_buf) ~= 0 then fail(fn) end
    local v = value_buf[0]
    if op == C.MS_ARGMAX or op == C.MS_ARGMIN then return v + 1 end
    return v
  end
  local d = B.norm_dim(t, fn, dim)
  local shape = t:shape()
  if keepdim then shape[d] = 1 else table.remove(shape, d) end
  local arg = op == C.MS_ARGMAX or op == C.MS_ARGMIN
  local out = B.empty(fn, shape, arg and B.DTYPES.int64 or t.dtype_id, B.device_id(t, fn))
  if C.ms_reduce_dim(out, t, d - 1, op, param, 1) ~= 0 then fail(fn) end
  return out
end

function Tensor.sum(t, dim, keepdim) return reduce(t, 'sum', R.sum, 0, dim, keepdim) end
function Tensor.mean(t, dim, keepdim) return reduce(t, 'mean', R.mean, 0, dim, keepdim) end
function Tensor.argmax(t, dim, keepdim) return reduce(t, 'argmax', R.argmax, 0, dim, keepdim) end
function Tensor.argmin(t, dim, keepdim) return reduce(t, 'argmin', R.argmin, 0, dim, keepdim) end
-- max()/min(): a number; max(dim): values and 1-based indices, as torch.max(x, dim).
function Tensor.max(t, dim, keepdim)
  local v = reduce(t, 'max', R.max, 0, dim, keepdim)
  if dim == nil then return v end
  return v, reduce(t, 'max', R.argmax, 0, dim, keepdim)
end
function Tensor.min(t, dim, keepdim)
  local v = reduce(t, 'min', R.min, 0, dim, keepdim)
  if dim == nil then return v end
  return v, reduce(t, 'min', R.argmin, 0, dim, keepdim)
end
-- norm(p = 2 [, dim [, keepdim]]); p may be math.huge.
function Tensor.norm(t, p, dim, keepdim)
  p = p == nil and 2 or p
  if type(p) ~= 'number' or not (p >= 0) then
    check.fail('norm: p is %s, expected a number >= 0 (or math.huge)', check.describe(p))
  end
  return reduce(t, 'norm', R.norm, p, dim, keepdim)
end
-- var([dim [, unbiased = true [, keepdim]]])
local function var(fn, t, dim, unbiased, keepdim)
  if unbiased ~= nil then check.boolean(fn, 'unbiased', unbiased) end
  return reduce(t, fn, R.var, unbiased == false and 0 or 1, dim, keepdim)
end
function Tensor.var(t, dim, unbiased, keepdim) return var('var', t, dim, unbiased, keepdim) end
function Tensor.std(t, dim, unbiased, keepdim)
  local v = var('std', t, dim, unbiased, keepdim)
  if type(v) == 'number' then return math.sqrt(v) end
  return v:sqrt_()
end

function M.export(T)
  T.where = M.where
  T.broadcast_shape = broadcast_shape
  T.same_shape = same_shape
end

return M
