-- moonstep.nn.functional — the kernels layers call that are not plain tensor methods:
-- activation gradients, layer buffers, op ids into outputs, index_add and one-hot.
-- Shapes in each header. Every function checks its arguments and names itself in
-- errors (they are reachable as ms.nn.functional.*). Convolution and pooling kernels
-- are in moonstep.nn.window (private to the layers).
local core = require 'moonstep.core'
local T = require 'moonstep.tensor'
local check = require 'moonstep.check'
local C, fail = core.C, core.fail

local F = {}

local function opt_tensor(fn, name, v)
  if v ~= nil then check.tensor(fn, name, v) end
  return v
end

-- gradInput of an activation from its input x (or output y) and gradOutput g.
local function grad_op(name, op)
  return function(xy, g, alpha, out)
    check.tensor(name, 'input', xy)
    check.tensor(name, 'gradOutput', g)
    if alpha ~= nil then check.number(name, 'alpha', alpha) end
    out = opt_tensor(name, 'out', out) or T.empty_like(xy)
    if C.ms_binary(out, xy, g, op, alpha or 0) ~= 0 then fail(name) end
    return out
  end
end
F.relu_backward = grad_op('relu_backward', C.MS_RELU_BACKWARD)                    -- (x, g)
F.leaky_relu_backward = grad_op('leaky_relu_backward', C.MS_LEAKY_RELU_BACKWARD)  -- (x, g, slope)
F.tanh_backward = grad_op('tanh_backward', C.MS_TANH_BACKWARD)                    -- (y, g)
F.sigmoid_backward = grad_op('sigmoid_backward', C.MS_SIGMOID_BACKWARD)           -- (y, g)
F.gelu_backward = grad_op('gelu_backward', C.MS_GELU_BACKWARD)                    -- (x, g)

-- f(...) with any error re-issued under fn's name, at the user's line (a layer's
-- internal tensor calls: "index_select: ..." -> "Conv2d.forward: ...").
function F.protect(fn, f, ...)
  if type(fn) ~= 'string' then check.fail('protect: fn is %s, expected a string', check.describe(fn)) end
  if type(f) ~= 'function' then check.fail('protect: f is %s, expected a function', check.describe(f)) end
  local res = { pcall(f, ...) }
  if not res[1] then
    local msg = tostring(res[2]):gsub('^[^:\n]*:%d+: ', '')
    local head = msg:match('^([%w_%.]+): ')
    check.raise(head and fn .. msg:sub(#head + 1) or fn .. ': ' .. msg)
  end
  return unpack(res, 2, table.maxn(res))
end

-- A fresh tensor for fn: an allocation failure (a huge geometry) names fn.
function F.alloc(fn, shape, dtype, device)
  if type(fn) ~= 'string' then check.fail('alloc: fn is %s, expected a string', check.describe(fn)) end
  return F.protect(fn, T.empty, shape, { dtype = dtype, device = device })
end

-- A buffer owned by module m under key, with the given shape, dtype and device as t:
-- reused while they stay the same (outputs and gradInputs are overwritten by the next
-- forward/backward, as in Torch7), reallocated otherwise (also when the old one was
-- freed). Reuse matters: a fresh large block is a fresh mmap, and its page faults cost
-- as much as the op. fn (optional) names the public function in an allocation error.
function F.buffer(m, key, shape, like, fn)
  if type(m) ~= 'table' then check.fail('buffer: module is %s, expected a module', check.describe(m)) end
  if type(key) ~= 'string' then check.fail('buffer: key is %s, expected a string', check.describe(key)) end
  if type(shape) ~= 'table' or check.is_tensor(shape) then
    check.fail('buffer: shape is %s, expected a table of sizes', check.describe(shape))
  end
  check.tensor('buffer', 'like', like)
  local b = rawget(m, key)
  if b ~= nil and check.is_tensor(b) and not check.is_freed(b) and b.dtype == like.dtype and
     b.device == like.device and b:dim() == #shape then
    local same = true
    for d = 1, #shape do same = same and b:size(d) == shape[d] end
    if same then return b end
  end
  b = F.alloc(fn or 'buffer', shape, like.dtype, like.device)
  m[key] = b
  return b
end

-- out <- unary op of x (a C op id), into a buffer.
function F.unary_into(out, x, op, a)
  check.tensor('unary_into', 'out', out)
  check.tensor('unary_into', 'input', x)
  check.integer('unary_into', 'op', op, 0, 2 ^ 31 - 1)
  if a ~= nil then check.number('unary_into', 'a', a) end
  if C.ms_unary(out, x, op, a or 0, 0) ~= 0 then fail('unary_into') end
  return out
end

-- out <- binary op of (a, b).
function F.binary_into(out, a, b, op, alpha)
  check.tensor('binary_into', 'out', out)
  check.tensor('binary_into', 'a', a)
  check.tensor('binary_into', 'b', b)
  check.integer('binary_into', 'op', op, 0, 2 ^ 31 - 1)
  if alpha ~= nil then check.number('binary_into', 'alpha', alpha) end
  if C.ms_binary(out, a, b, op, alpha or 1) ~= 0 then fail('binary_into') end
  return out
end

-- out:index_select(dim, index) += src, repeats summed (1-based index, in place).
function F.index_add_(out, dim, index, src)
  check.tensor('index_add_', 'out', out)
  check.integer('index_add_', 'dim', dim, 1, 8)
  check.tensor('index_add_', 'index', index)
  check.tensor('index_add_', 'src', src)
  if C.ms_index_add(out, dim - 1, index, src, 1) ~= 0 then fail('index_add_') end
  return out
end

-- A [N, C] float one-hot of 1-based int64 targets [N], via a broadcast comparison.
function F.one_hot(target, classes, like)
  check.tensor('one_hot', 'target', target)
  check.integer('one_hot', 'classes', classes, 1)
  check.tensor('one_hot', 'like', like)
  local ids = T.arange(1, classes + 1, { dtype = like.dtype, device = like.device }):view(1, classes)
  return F.protect('one_hot', function() return target:to(like.dtype):view(-1, 1):eq(ids) end)
end

return F
