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

-- (type(v) ~= 'nil', not v ~= nil: a NULL pointer cdata compares equal to nil.)
local function opt_tensor(fn, name, v)
  if type(v) ~= 'nil' then check.tensor(fn, name, v) end
  return v
end

-- gradInput of an activation from its input x (or output y) and gradOutput g.
local function grad_op(name, op)
  return function(xy, g, alpha, out)
    check.tensor(name, 'input', xy)
    check.tensor(name, 'gradOutput', g)
    if type(alpha) ~= 'nil' then check.number(name, 'alpha', alpha) end
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

-- out <- unary op of x (a C op id), into a buffer.
function F.unary_into(out, x, op, a)
  check.tensor('unary_into', 'out', out)
  check.tensor('unary_into', 'input', x)
  check.integer('unary_into', 'op', op, 0, 2 ^ 31 - 1)
  if type(a) ~= 'nil' then check.number('unary_into', 'a', a) end
  if C.ms_unary(out, x, op, a or 0, 0) ~= 0 then fail('unary_into') end
  return out
end

-- out <- binary op of (a, b).
function F.binary_into(out, a, b, op, alpha)
  check.tensor('binary_into', 'out', out)
  check.tensor('binary_into', 'a', a)
  check.tensor('binary_into', 'b', b)
  check.integer('binary_into', 'op', op, 0, 2 ^ 31 - 1)
  if type(alpha) ~= 'nil' then check.number('binary_into', 'alpha', alpha) end
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
  return check.protect('one_hot', function()
    local ids = T.arange(1, classes + 1, { dtype = like.dtype, device = like.device }):view(1, classes)
    return target:to(like.dtype):view(-1, 1):eq(ids)
  end)
end

return F
