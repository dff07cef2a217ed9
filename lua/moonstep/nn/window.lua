-- moonstep.nn.window — what Conv2d, the pooling layers and their functional forms
-- (nn/forms.lua) share (private to them): the argument parsing of their constructors
-- (sizes as a number or {h, w}, positional arguments and/or a trailing options table,
-- the pooling window, a convolution's padding) and the wrappers of the C window kernels
-- (runtime/conv.c, runtime/pool.c), whose messages are re-issued under the public name
-- of the layer method ('im2col: ...' -> 'Conv2d.forward: ...').
--
-- A window is a Lua table {kh, kw, sh, sw, dh, dw, pt, pb, pl, pr, ceil} (kernel,
-- stride, dilation, padding top/bottom/left/right, ceil_mode), validated when the layer
-- is built and again by the runtime against each input (overflow-checked).
local core = require 'moonstep.core'
local T = require 'moonstep.tensor'
local check = require 'moonstep.check'
local F = require 'moonstep.nn.functional'
local C, ffi = core.C, core.ffi

local W = {}

W.MAX = 2 ^ 31 - 1   -- bound of every kernel size, stride, dilation and padding

-- A size given as a number or {h, w}: integers in [lo, W.MAX].
function W.pair(fn, name, v, lo)
  if type(v) == 'table' and getmetatable(v) == nil then
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    if n ~= 2 or v[1] == nil or v[2] == nil then
      check.fail('%s: %s is a table of %d entries, expected a number or {h, w}', fn, name, n)
    end
    return check.integer(fn, name .. '[1]', v[1], lo, W.MAX), check.integer(fn, name .. '[2]', v[2], lo, W.MAX)
  end
  if type(v) ~= 'number' then
    check.fail('%s: %s is %s, expected an integer or {h, w}', fn, name, check.describe(v))
  end
  local n = check.integer(fn, name, v, lo, W.MAX)
  return n, n
end

-- A size pair for messages and reprs: '3' when both are 3, '3x5' otherwise.
function W.hw(a, b) return a == b and tostring(a) or (a .. 'x' .. b) end
local hw = W.hw

-- The window of nn.MaxPool2d / nn.AvgPool2d / their functional forms from the kernel
-- size and the parsed arguments a (stride = kernel_size, padding 0, dilation 1 unless
-- given; ceil_mode): PyTorch's rule padding <= kernel_size / 2 (rounded down).
function W.pool_geom(fn, kernel, a)
  if kernel == nil then check.fail('%s: kernel_size is missing', fn) end
  local g = {}
  g.kh, g.kw = W.pair(fn, 'kernel_size', kernel, 1)
  if a.stride == nil then g.sh, g.sw = g.kh, g.kw else g.sh, g.sw = W.pair(fn, 'stride', a.stride, 1) end
  g.dh, g.dw = W.pair(fn, 'dilation', a.dilation == nil and 1 or a.dilation, 1)
  g.pt, g.pl = W.pair(fn, 'padding', a.padding == nil and 0 or a.padding, 0)
  g.pb, g.pr = g.pt, g.pl
  if g.pt > math.floor(g.kh / 2) or g.pl > math.floor(g.kw / 2) then
    check.fail('%s: padding %s is more than half the kernel size %s, expected padding <= ' ..
               'kernel_size / 2 (as PyTorch)', fn, hw(g.pt, g.pl), hw(g.kh, g.kw))
  end
  local ceil = a.ceil_mode
  if ceil == nil then ceil = false end
  g.ceil = check.boolean(fn, 'ceil_mode', ceil)
  return g
end

-- A convolution's padding (an integer, {h, w}, 'valid' or 'same') into window g, whose
-- kernel, stride and dilation are set. 'same' (stride 1 only, as PyTorch): the total
-- d*(k-1), the top/left half rounded down, the rest on the bottom/right.
function W.conv_padding(fn, g, padding)
  if padding == 'same' then
    if g.sh ~= 1 or g.sw ~= 1 then
      check.fail("%s: padding='same' is not supported for strided convolutions (stride %dx%d), " ..
                 'expected stride 1 as in PyTorch', fn, g.sh, g.sw)
    end
    local th, tw = g.dh * (g.kh - 1), g.dw * (g.kw - 1)
    g.pt, g.pl = math.floor(th / 2), math.floor(tw / 2)
    g.pb, g.pr = th - g.pt, tw - g.pl
  elseif padding == 'valid' then
    g.pt, g.pb, g.pl, g.pr = 0, 0, 0, 0
  elseif type(padding) == 'string' then
    check.fail("%s: padding is %s, expected an integer, {h, w}, 'same' or 'valid'", fn, check.describe(padding))
  else
    g.pt, g.pl = W.pair(fn, 'padding', padding, 0)
    g.pb, g.pr = g.pt, g.pl
  end
  return g
end

-- The arguments after the required ones, positional (in the order of `names`) and/or
-- in a trailing options table, merged into one table by name. A trailing plain table
-- without an array part is the options table ({h, w} is a size); a name given both
-- ways, or too many positional arguments, is an error.
function W.gather_args(fn, names, usage, ...)
  local args, n = { ... }, select('#', ...)
  local opts = {}
  local last = args[n]
  if n > 0 and type(last) == 'table' and getmetatable(last) == nil and last[1] == nil then
    opts = check.options(fn, last, names)
    n = n - 1
  end
  if n > #names then
    check.fail('%s: %d arguments after the required ones, expected at most %d: %s', fn, n, #names, usage)
  end
  local out = {}
  for k, v in pairs(opts) do out[k] = v end
  for i = 1, n do
    if args[i] ~= nil then
      if opts[names[i]] ~= nil then
        check.fail('%s: %s is given both as an argument and in the options table', fn, names[i])
      end
      out[names[i]] = args[i]
    end
  end
  return out
end

-- x as [N, C, H, W] contiguous (a [C, H, W] input is a batch of one); channels: the
-- expected C, or nil for any.
function W.as_batch(fn, x, channels)
  local d = x:dim()
  if (d ~= 4 and d ~= 3) or (channels and x:size(d - 2) ~= channels) then
    local c = channels and tostring(channels) or 'C'
    check.fail('%s: input has shape [%s], expected [N, %s, H, W] or [%s, H, W]', fn,
               table.concat(x:shape(), ','), c, c)
  end
  x = x:contiguous()
  if d == 3 then x = x:view(1, x:size(1), x:size(2), x:size(3)) end
  return x
end

-- Raise the runtime's last error as fn's.
local cfail = core.fail

-- The C struct of window g for an h x w input, and the output size OH, OW.
function W.window(fn, g, h, w)
  local win = ffi.new('ms_window2d')
  win.kh, win.kw, win.sh, win.sw, win.dh, win.dw = g.kh, g.kw, g.sh, g.sw, g.dh, g.dw
  win.pt, win.pb, win.pl, win.pr = g.pt, g.pb, g.pl, g.pr
  win.ceil_mode = g.ceil and 1 or 0
  if C.ms_window2d_out(win, h, w) ~= 0 then cfail(fn) end
  return win, tonumber(win.oh), tonumber(win.ow)
end

-- A fresh tensor of `shape` like t (dtype, device); errors name fn.
-- Helpers the layers share. They take the public function's name as an argument, so
-- they live here, in a module moonstep does not export (a user could not call them and
-- be named rightly).

-- f(...) with any error re-issued under fn's name (check.protect).
W.protect = check.protect

-- A fresh tensor for fn: an allocation failure (a huge geometry) names fn.
function W.new_tensor(fn, shape, dtype, device)
  return check.protect(fn, T.empty, shape, { dtype = dtype, device = device })
end

-- A buffer owned by module m under key, with the given shape, dtype and device as t:
-- reused while they stay the same (outputs and gradInputs are overwritten by the next
-- forward/backward, as in Torch7), reallocated otherwise (also when the old one was
-- freed). Reuse matters: a fresh large block is a fresh mmap, and its page faults cost
-- as much as the op. fn names the public function (the layer's forward or backward).
function W.buffer(m, key, shape, like, fn)
  local b = rawget(m, key)
  if b ~= nil and check.is_tensor(b) and not check.is_freed(b) and b.dtype == like.dtype and
     b.device == like.device and b:dim() == #shape then
    local same = true
    for d = 1, #shape do same = same and b:size(d) == shape[d] end
    if same then return b end
  end
  b = W.new_tensor(fn, shape, like.dtype, like.device)
  m[key] = b
  return b
end

function W.alloc(fn, shape, t) return W.new_tensor(fn, shape, t.dtype, t.device) end

-- x [N, C, H, W] contiguous -> cols [C*kh*kw, N*OH*OW] (the batch in the columns, so
-- that a convolution is one GEMM); outside the image reads 0.
function W.im2col(fn, x, win, cols)
  if C.ms_im2col(cols, x, win, 0) ~= 0 then cfail(fn) end
  return cols
end

-- The adjoint of im2col: cols summed back into x [N, C, H, W] (overwritten).
function W.col2im(fn, cols, x, win)
  if C.ms_col2im(x, cols, win) ~= 0 then cfail(fn) end
  return x
end

-- The convolution GEMM's output Y [O, N*L] -> y [N, O, L] (+ bias [O], or nil), and
-- its gradient g [N, O, L] -> G [O, N*L] (gbias [O] += the sums, or nil): one pass each
-- on the CPU (runtime/conv.c); elsewhere, or with a bias of another layout, copy_ and
-- sum as tensor ops. Overwrites y (G).
local function plain(t, like)
  return t == nil or (t.dtype == like.dtype and t.device == like.device and t:is_contiguous())
end

function W.conv_output(fn, y, Y, bias)
  if y.device == 'cpu' and plain(bias, y) then
    if C.ms_conv2d_output(y, Y, bias) ~= 0 then cfail(fn) end
    return y
  end
  local O = y:size(2)
  y:copy_(Y:view(O, y:size(1), y:size(3)):transpose(1, 2))      -- [O, N, L] -> [N, O, L]
  if bias then y:add_(bias:reshape(1, O, 1)) end
  return y
end

function W.conv_grad_output(fn, G, gbias, g)
  if g.device == 'cpu' and plain(gbias, g) then
    if C.ms_conv2d_grad_output(G, gbias, g) ~= 0 then cfail(fn) end
    return G
  end
  local n, O, L = g:size(1), g:size(2), g:size(3)
  G:view(O, n, L):copy_(g:transpose(1, 2))                       -- [N, O, L] -> [O, N, L]
  if gbias then gbias:add_(G:sum(2)) end
  return G
end

-- A pooling gradient g ([C, OH, OW] or [N, C, OH, OW]) as the contiguous batch
-- [N, C, OH, OW] of the input batch shape s ([N, C, H, W]).
function W.pool_grad(g, s)
  local gc = g:contiguous()
  return gc:view(s[1], s[2], gc:size(gc:dim() - 1), gc:size(gc:dim()))
end

-- Max pooling: x -> out, argmax [N, C, OH, OW] (argmax: 0-based plane positions).
function W.maxpool2d(fn, x, win, out, argmax)
  if C.ms_maxpool2d(out, argmax, x, win) ~= 0 then cfail(fn) end
  return out, argmax
end

function W.maxpool2d_backward(fn, gout, argmax, gin)
  if C.ms_maxpool2d_backward(gin, gout, argmax) ~= 0 then cfail(fn) end
  return gin
end

-- Average pooling (divisor 0: none) and its adjoint.
function W.avgpool2d(fn, x, win, count_include_pad, divisor, out)
  if C.ms_avgpool2d(out, x, win, count_include_pad and 1 or 0, divisor or 0) ~= 0 then cfail(fn) end
  return out
end

function W.avgpool2d_backward(fn, gout, win, count_include_pad, divisor, gin)
  if C.ms_avgpool2d_backward(gin, gout, win, count_include_pad and 1 or 0, divisor or 0) ~= 0 then
    cfail(fn)
  end
  return gin
end

-- Non-zero padding modes as PyTorch's F.pad: padded position p (0-based, -before to
-- size + after - 1) reads input position src(p). 'reflect' needs pad < size,
-- 'circular' pad <= size, 'replicate' size >= 1 (the caller checks). Built with tensor
-- ops (never a Lua table as long as the padded size), as a 1-based int64 index.
function W.pad_index(fn, mode, size, before, after, device)
  return W.protect(fn, function()
    local p = T.arange(-before, size + after, { dtype = 'float64' })
    if mode == 'replicate' then
      p = p:clamp(0, size - 1)
    elseif mode == 'reflect' then                      -- (n-1) - | |p| - (n-1) |
      p = p:abs():add(-(size - 1)):abs():mul(-1):add(size - 1)
    else                                               -- circular: p mod n
      p = p:add(p:lt(0):mul(size)):add(p:ge(size):mul(-size))
    end
    return p:add(1):to('int64'):to(device)
  end)
end

return W
