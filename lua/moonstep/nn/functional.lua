-- moonstep.nn.functional — the kernels layers call that are not plain tensor methods:
-- activation gradients, convolution lowering and index_add. Shapes in each header.
local core = require 'moonstep.core'
local T = require 'moonstep.tensor'
local C, fail = core.C, core.fail

local F = {}

-- gradInput of an activation from its input x (or output y) and gradOutput g.
local function grad_op(op)
  return function(xy, g, alpha, out)
    out = out or T.empty_like(xy)
    if C.ms_binary(out, xy, g, op, alpha or 0) ~= 0 then fail(2) end
    return out
  end
end
F.relu_backward = grad_op(C.MS_RELU_BACKWARD)            -- (x, g)
F.leaky_relu_backward = grad_op(C.MS_LEAKY_RELU_BACKWARD) -- (x, g, slope)
F.tanh_backward = grad_op(C.MS_TANH_BACKWARD)            -- (y, g)
F.sigmoid_backward = grad_op(C.MS_SIGMOID_BACKWARD)      -- (y, g)
F.gelu_backward = grad_op(C.MS_GELU_BACKWARD)            -- (x, g)

-- A buffer owned by module m under key, with the given shape, dtype and device as t:
-- reused while they stay the same (outputs and gradInputs are overwritten by the next
-- forward/backward, as in Torch7), reallocated otherwise. Reuse matters: a fresh
-- large block is a fresh mmap, and its page faults cost as much as the op.
function F.buffer(m, key, shape, like)
  local b = m[key]
  if b ~= nil and b.storage ~= nil and b.dtype_id == like.dtype_id and
     b.storage.device == like.storage.device and b:dim() == #shape then
    local same = true
    for d = 1, #shape do same = same and b.sizes[d - 1] == shape[d] end
    if same then return b end
  end
  b = T.empty(shape, { dtype = like.dtype, device = like.device })
  m[key] = b
  return b
end

-- out <- unary op of x (a C op id), into a buffer.
function F.unary_into(out, x, op, a)
  if C.ms_unary(out, x, op, a or 0, 0) ~= 0 then fail(2) end
  return out
end

-- out <- binary op of (a, b).
function F.binary_into(out, a, b, op, alpha)
  if C.ms_binary(out, a, b, op, alpha or 1) ~= 0 then fail(2) end
  return out
end

-- Output spatial size of a convolution or pooling window.
function F.conv_out(size, k, stride, pad) return math.floor((size + 2 * pad - k) / stride) + 1 end

-- x [N, C, H, W] -> cols [C*kh*kw, N*OH*OW] (the batch in the columns, so that a
-- convolution is one GEMM); pad_value fills outside the image. Returns cols, OH, OW.
function F.im2col(x, kh, kw, sh, sw, ph, pw, pad_value, out)
  local n, c, h, w = x:size(1), x:size(2), x:size(3), x:size(4)
  local oh, ow = F.conv_out(h, kh, sh, ph), F.conv_out(w, kw, sw, pw)
  local cols = out or T.empty({ c * kh * kw, n * oh * ow }, { dtype = x.dtype, device = x.device })
  if C.ms_im2col(cols, x, kh, kw, sh, sw, ph, pw, pad_value or 0) ~= 0 then fail(2) end
  return cols, oh, ow
end

-- The adjoint of im2col: cols [C*kh*kw, N*OH*OW] summed back into a fresh [N, C, H, W].
function F.col2im(cols, shape, kh, kw, sh, sw, ph, pw)
  local x = T.empty(shape, { dtype = cols.dtype, device = cols.device })
  if C.ms_col2im(x, cols, kh, kw, sh, sw, ph, pw) ~= 0 then fail(2) end
  return x
end

-- Max pooling: x [N, C, H, W] -> out, argmax [N, C, OH, OW] (argmax: plane positions).
function F.maxpool2d(x, k, stride, pad)
  local n, c = x:size(1), x:size(2)
  local oh, ow = F.conv_out(x:size(3), k, stride, pad), F.conv_out(x:size(4), k, stride, pad)
  local out = T.empty({ n, c, oh, ow }, { dtype = x.dtype, device = x.device })
  local argmax = T.empty({ n, c, oh, ow }, { dtype = 'int64', device = x.device })
  if C.ms_maxpool2d(out, argmax, x, k, stride, pad) ~= 0 then fail(2) end
  return out, argmax
end

function F.maxpool2d_backward(gout, argmax, in_shape)
  local gin = T.empty(in_shape, { dtype = gout.dtype, device = gout.device })
  if C.ms_maxpool2d_backward(gin, gout, argmax) ~= 0 then fail(2) end
  return gin
end

-- out:index_select(dim, index) += src, repeats summed (1-based index, in place).
function F.index_add_(out, dim, index, src)
  if C.ms_index_add(out, dim - 1, index, src, 1) ~= 0 then fail(2) end
  return out
end

-- A [N, C] float one-hot of 1-based int64 targets [N], via a broadcast comparison.
function F.one_hot(target, classes, like)
  local ids = T.arange(1, classes + 1, { dtype = like.dtype, device = like.device }):view(1, classes)
  return target:to(like.dtype):view(-1, 1):eq(ids)
end

return F
