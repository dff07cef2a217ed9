-- moonstep.autograd.rules_elementwise — gradient rules of the elementwise ops (see
-- autograd/tape.lua for the rule protocol). n.args are the op's arguments as called;
-- a gradient of the broadcast output shape is summed back by tp:acc.
--
-- PyTorch's conventions (derivatives.yaml) where a choice exists: abs and relu have
-- gradient 0 at 0, leaky_relu the slope; clamp passes the gradient where
-- min <= x <= max (inclusive); maximum/minimum split it half and half at ties; sqrt at 0
-- is inf; pow(x, 0) has gradient 0 everywhere; the exponent's gradient is 0 where the
-- base is 0 and the exponent >= 0. One difference: where a NaN meets a number,
-- maximum/minimum give each side half the gradient (torch: each side all of it).
--
-- Speed: each rule issues few passes over memory. The fused kernels the layers use
-- (MS_RELU_BACKWARD, MS_TANH_BACKWARD, ...) are called directly (ms_binary into a fresh
-- tensor), and s * x * y, s * x / y are one ms_ternary pass with a 0-d zero as the
-- addend (smul, sdiv below). Gradients of untracked arguments are not computed.
local A = require 'moonstep.autograd.tape'
local core = require 'moonstep.core'
local B = require 'moonstep.tensor_base'
local C = core.C
local rule = A.rule
local empty_like, fail, device_id = B.empty_like, B.fail, B.device_id
local type, log = type, math.log

---------------------------------------------------------------------------------------
-- helpers: one C pass each, into a fresh tensor of `like`'s shape (the broadcast shape
-- of the operands: the gradient g of the op's output)
---------------------------------------------------------------------------------------
-- The name node n's errors carry: its op's, as 'mul (ms.autograd backward)'.
local fnames = {}
local function fname(n)
  local s = fnames[n.name]
  if s == nil then
    s = n.name .. ' (ms.autograd backward)'
    fnames[n.name] = s
  end
  return s
end

-- op(a, b; alpha) with a binary op id (the activation gradients: a = x or y, b = g).
local function bin(n, like, a, b, op, alpha)
  local fn = fname(n)
  local out = empty_like(fn, like)
  if C.ms_binary(out, a, b, op, alpha or 0) ~= 0 then fail(fn) end
  return out
end

-- op(a, b, c; s) with a ternary op id.
local function tern(n, like, a, b, c, op, s)
  local fn = fname(n)
  local out = empty_like(fn, like)
  if C.ms_ternary(out, a, b, c, op, s) ~= 0 then fail(fn) end
  return out
end

-- A 0-d zero per (dtype, device), never written: the addend of smul/sdiv.
local zeros = {}
local function zero(n, t)
  local dev = device_id(t, fname(n))
  local k = t.dtype_id * 256 + dev
  local z = zeros[k]
  if z == nil then
    z = B.empty(fname(n), {}, t.dtype_id, dev)
    if C.ms_fill(z, 0) ~= 0 then fail(fname(n)) end
    zeros[k] = z
  end
  return z
end

-- u + s * x * y (u nil: 0) and s * x / y in one pass.
local function smul(n, like, s, x, y, u) return tern(n, like, u or zero(n, like), x, y, C.MS_ADDCMUL, s) end
local function sdiv(n, like, s, x, y) return tern(n, like, zero(n, like), x, y, C.MS_ADDCDIV, s) end

-- g where mask > 0, else 0 (mask holds 1 or 0: a comparison's result).
local function masked(n, g, mask) return bin(n, g, mask, g, C.MS_RELU_BACKWARD) end

---------------------------------------------------------------------------------------
-- binary arithmetic (b a tensor or a number)
---------------------------------------------------------------------------------------
-- a + alpha * b, a - alpha * b
rule('add', function(n, g, tp)
  local a, b, alpha = n.args[1], n.args[2], n.args[3] or 1
  tp:acc(a, g)
  if tp:need(b) then tp:acc(b, alpha == 1 and g or g:mul(alpha)) end
end)
rule('sub', function(n, g, tp)
  local a, b, alpha = n.args[1], n.args[2], n.args[3] or 1
  tp:acc(a, g)
  if tp:need(b) then tp:acc(b, alpha == 1 and g:neg() or g:mul(-alpha)) end
end)
rule('mul', function(n, g, tp)
  local a, b = n.args[1], n.args[2]
  if tp:need(a) then tp:acc(a, g:mul(b)) end
  if tp:need(b) then tp:acc(b, g:mul(a)) end
end)
-- y = a / b: da = g / b, db = -g a / b^2 = -(g / b) y
rule('div', function(n, g, tp)
  local a, b = n.args[1], n.args[2]
  if type(b) == 'number' then tp:acc(a, g:div(b)); return end
  local ga = g:div(b)
  tp:acc(a, ga)
  if tp:need(b) then tp:acc(b, smul(n, g, -1, ga, n.out)) end
end)

-- y = a ^ b. da = g b a^(b-1), 0 where b == 0 (torch: pow_backward_self); db = g y log(a),
-- 0 where a == 0 and b >= 0 (torch: pow_backward_exponent).
rule('pow', function(n, g, tp)
  local a, b, y = n.args[1], n.args[2], n.out
  if type(b) == 'number' then
    if b == 0 then return end                       -- a zero gradient
    if b == 1 then tp:acc(a, g)
    elseif b == 2 then tp:acc(a, smul(n, g, 2, g, a))
    else tp:acc(a, smul(n, g, b, g, a:pow(b - 1))) end
    return
  end
  if tp:need(a) then
    local d = g:mul(b):mul_(a:pow(b:sub(1)))
    tp:acc(a, masked(n, d, b:ne(0)))
  end
  if tp:need(b) then
    local d = g:mul(y):mul_(a:log())
    tp:acc(b, masked(n, d, a:ne(0):add(b:lt(0))))
  end
end)

-- The metamethods' scalar-left forms: args (name, number c, tensor b).
rule('radd', function(n, g, tp) tp:acc(n.args[3], g) end)
rule('rsub', function(n, g, tp) tp:acc(n.args[3], g:neg()) end)
rule('rmul', function(n, g, tp) tp:acc(n.args[3], g:mul(n.args[2])) end)
-- y = c / b: db = -(g / b) y
rule('rdiv', function(n, g, tp)
  local b = n.args[3]
  tp:acc(b, smul(n, g, -1, g:div(b), n.out))
end)
-- y = c ^ b: db = g y log(c); c == 0: 0 where b >= 0 (y * log(0) = -inf where b < 0)
rule('rpow', function(n, g, tp)
  local c, b = n.args[2], n.args[3]
  if c ~= 0 then tp:acc(b, smul(n, g, log(c), g, n.out)); return end
  tp:acc(b, masked(n, smul(n, g, -math.huge, g, n.out), b:lt(0)))
end)

-- maximum/minimum (b a tensor or a number): with d = sign(a - b), a's share of g is
-- (1 + d) / 2 for maximum (1, half at ties, 0), (1 - d) / 2 for minimum; b's the rest.
local function extremum(sa)
  return function(n, g, tp)
    local a, b = n.args[1], n.args[2]
    local na, nb = tp:need(a), tp:need(b)
    local d = a:sub(b):sign_()
    local h = g:mul(0.5)
    if na then tp:acc(a, smul(n, g, sa * 0.5, g, d, h)) end
    if nb then tp:acc(b, smul(n, g, -sa * 0.5, g, d, h)) end
  end
end
rule('maximum', extremum(1))
rule('minimum', extremum(-1))

---------------------------------------------------------------------------------------
-- unary
---------------------------------------------------------------------------------------
rule('neg', function(n, g, tp) tp:acc(n.args[1], g:neg()) end)
rule('abs', function(n, g, tp)                      -- g sign(x): 0 at 0
  local x = n.args[1]
  tp:acc(x, g:mul(x:sign()))
end)
rule('exp', function(n, g, tp) tp:acc(n.args[1], g:mul(n.out)) end)
rule('log', function(n, g, tp) tp:acc(n.args[1], g:div(n.args[1])) end)
rule('sqrt', function(n, g, tp) tp:acc(n.args[1], sdiv(n, g, 0.5, g, n.out)) end)   -- g / (2 y)
rule('rsqrt', function(n, g, tp)                    -- -g y^3 / 2 = -g y / (2 x)
  local x = n.args[1]
  tp:acc(x, sdiv(n, g, -0.5, g:mul(n.out), x))
end)
rule('tanh', function(n, g, tp) tp:acc(n.args[1], bin(n, g, n.out, g, C.MS_TANH_BACKWARD)) end)
rule('sigmoid', function(n, g, tp) tp:acc(n.args[1], bin(n, g, n.out, g, C.MS_SIGMOID_BACKWARD)) end)
rule('relu', function(n, g, tp) tp:acc(n.args[1], bin(n, g, n.out, g, C.MS_RELU_BACKWARD)) end)
rule('square', function(n, g, tp) tp:acc(n.args[1], smul(n, g, 2, g, n.args[1])) end)
rule('reciprocal', function(n, g, tp)               -- -g y^2
  local y = n.out
  tp:acc(n.args[1], smul(n, g, -1, g:mul(y), y))
end)
rule('erf', function(n, g, tp)                      -- g 2/sqrt(pi) exp(-x^2)
  local x = n.args[1]
  tp:acc(x, smul(n, g, 2 / math.sqrt(math.pi), g, smul(n, g, -1, x, x):exp_()))
end)
rule('gelu', function(n, g, tp)
  local op = n.args[2] == 'tanh' and C.MS_GELU_TANH_BACKWARD or C.MS_GELU_BACKWARD
  tp:acc(n.args[1], bin(n, g, n.args[1], g, op))
end)
rule('leaky_relu', function(n, g, tp)               -- x > 0 ? g : slope g (the slope at 0)
  local slope = n.args[2]
  if slope == nil then slope = 0.01 end
  tp:acc(n.args[1], bin(n, g, n.args[1], g, C.MS_LEAKY_RELU_BACKWARD, slope))
end)
-- g where min <= x <= max: exactly where clamp(x) == x (NaN: 0, as torch)
rule('clamp', function(n, g, tp)
  local x = n.args[1]
  tp:acc(x, masked(n, g, bin(n, g, n.out, x, C.MS_EQ)))
end)

-- softmax: y (g - sum(g y)); log_softmax: g - exp(y) sum(g); sums over dim (default last)
rule('softmax', function(n, g, tp)
  local y, dim = n.out, n.args[2] or n.out:dim()
  local gy = g:mul(y)
  tp:acc(n.args[1], tern(n, g, gy, y, gy:sum(dim, true), C.MS_ADDCMUL, -1))
end)
rule('log_softmax', function(n, g, tp)
  local y, dim = n.out, n.args[2] or n.out:dim()
  tp:acc(n.args[1], tern(n, g, g, y:exp(), g:sum(dim, true), C.MS_ADDCMUL, -1))
end)

---------------------------------------------------------------------------------------
-- ternary
---------------------------------------------------------------------------------------
-- t:addcmul([value,] t1, t2) = t + value t1 t2; addcdiv: t + value t1 / t2
local function fused_args(args)
  if type(args[2]) == 'number' then return args[2], args[3], args[4] end
  return 1, args[2], args[3]
end
rule('addcmul', function(n, g, tp)
  local value, t1, t2 = fused_args(n.args)
  tp:acc(n.args[1], g)
  if tp:need(t1) then tp:acc(t1, smul(n, g, value, g, t2)) end
  if tp:need(t2) then tp:acc(t2, smul(n, g, value, g, t1)) end
end)
rule('addcdiv', function(n, g, tp)                  -- d/dt2 = -value g t1 / t2^2
  local value, t1, t2 = fused_args(n.args)
  tp:acc(n.args[1], g)
  local n1, n2 = tp:need(t1), tp:need(t2)
  if not (n1 or n2) then return end
  local d1 = sdiv(n, g, value, g, t2)
  if n1 then tp:acc(t1, d1) end
  if n2 then tp:acc(t2, smul(n, g, -1, d1, t1:div(t2))) end
end)
-- t:lerp(e, w) = t + w (e - t): dt = g (1 - w), de = g w, dw = g (e - t)
rule('lerp', function(n, g, tp)
  local t, e, w = n.args[1], n.args[2], n.args[3]
  if type(w) == 'number' then
    if tp:need(t) then tp:acc(t, g:mul(1 - w)) end
    if tp:need(e) then tp:acc(e, g:mul(w)) end
    return
  end
  local nt, ne = tp:need(t), tp:need(e)
  if nt or ne then
    local gw = g:mul(w)
    if ne then tp:acc(e, gw) end
    if nt then tp:acc(t, g:sub(gw)) end
  end
  if tp:need(w) then tp:acc(w, g:mul(e:sub(t))) end
end)
-- where(cond, x, y): x and y tensors or numbers; cond carries no gradient
rule('where', function(n, g, tp)
  local cond, x, y = n.args[1], n.args[2], n.args[3]
  if tp:need(x) then tp:acc(x, tern(n, g, cond, g, zero(n, g), C.MS_WHERE, 1)) end
  if tp:need(y) then tp:acc(y, tern(n, g, cond, zero(n, g), g, C.MS_WHERE, 1)) end
end)

A.mark_nondiff('eq', 'ne', 'lt', 'le', 'gt', 'ge', 'sign')
