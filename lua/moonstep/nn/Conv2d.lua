-- nn.Conv2d(in_channels, out_channels, kernel_size, stride = 1, padding = 0, dilation = 1,
--           groups = 1, bias = true, padding_mode = 'zeros') — PyTorch's signature,
--   positionally (nn.Conv2d(1, 8, 3, 1, 1)) and/or with a trailing options table
--   {stride=, padding=, dilation=, groups=, bias=, padding_mode=}. Sizes are a number or
--   {h, w}; padding also 'valid' (0) or 'same' (stride 1 only: total d*(k-1), the odd
--   extra on the bottom/right, as PyTorch); padding_mode 'zeros', 'reflect',
--   'replicate' or 'circular' (the input padded as F.pad does, then a 'valid' conv).
--   x [N, C, H, W] (or [C, H, W]) -> y [N, O, OH, OW],
--   OH = floor((H + pt + pb - dh*(kh-1) - 1) / sh) + 1
--   weight [O, C/groups, kh, kw]; init as PyTorch: W, b ~ U(-1/sqrt(fan_in), ...),
--   fan_in = C/groups*kh*kw
--   lowering: cols = im2col(x) [K, N*L] (K = C*kh*kw, L = OH*OW; the rows of a group
--             are contiguous); Y = W [O, K] @ cols [O, N*L], one GEMM for the whole batch
--             (one batched GEMM over groups), then y = Y as [N, O, L] (+ b), one pass
--   1x1, stride 1, no padding, one group (CPU): y[n] = W x[n] + b as one batched GEMM
--             into y, gx[n] = W^T g[n]; the cols for gW made in the backward
--   backward: G = g as [O, N*L] and gb += sum g, one pass; gW += G cols^T;
--             gx = col2im(W^T G); every buffer is the module's, reused while the
--             shapes stay (no allocation per step; gradInput is overwritten by the next
--             backward, as output by the next forward)
--   m.input_grad = false skips gx
local ms = require 'moonstep'
local Module = require 'moonstep.nn.Module'
local F = require 'moonstep.nn.functional'
local W = require 'moonstep.nn.window'
local check = require 'moonstep.check'

local Conv2d = Module:extend('Conv2d')

local USAGE = 'Conv2d(in_channels, out_channels, kernel_size [, stride, padding, dilation, ' ..
              'groups, bias, padding_mode] [, {options}])'
local NAMES = { 'stride', 'padding', 'dilation', 'groups', 'bias', 'padding_mode' }
local MODES = { 'zeros', 'reflect', 'replicate', 'circular' }
local pair = W.pair

function Conv2d:__init(cin, cout, kernel, ...)
  Module.init(self)
  local fn = 'Conv2d'
  if kernel == nil then check.fail('%s: kernel_size is missing, expected %s', fn, USAGE) end
  check.integer(fn, 'in_channels', cin, 1)
  check.integer(fn, 'out_channels', cout, 1)
  local a = W.gather_args(fn, NAMES, USAGE, ...)
  local g = {}
  g.kh, g.kw = pair(fn, 'kernel_size', kernel, 1)
  g.sh, g.sw = pair(fn, 'stride', a.stride == nil and 1 or a.stride, 1)
  g.dh, g.dw = pair(fn, 'dilation', a.dilation == nil and 1 or a.dilation, 1)
  local groups = check.integer(fn, 'groups', a.groups == nil and 1 or a.groups, 1)
  if cin % groups ~= 0 then
    check.fail('%s: in_channels %d is not divisible by groups %d', fn, cin, groups)
  end
  if cout % groups ~= 0 then
    check.fail('%s: out_channels %d is not divisible by groups %d', fn, cout, groups)
  end
  local bias = a.bias
  if bias == nil then bias = true end
  check.boolean(fn, 'bias', bias)
  self.padding_mode = check.oneof(fn, 'padding_mode', a.padding_mode == nil and 'zeros' or a.padding_mode, MODES)
  local padding = a.padding == nil and 0 or a.padding
  W.conv_padding(fn, g, padding)
  self.padding = padding
  self.in_channels, self.out_channels, self.groups = cin, cout, groups
  self._geom = g
  local fan_in = cin / groups * g.kh * g.kw
  local numel = cout * fan_in
  if numel > 2 ^ 53 then
    check.fail('%s: weight [%d, %d, %d, %d] has %s elements, too many', fn, cout, cin / groups,
               g.kh, g.kw, check.describe(numel))
  end
  local bound = 1 / math.sqrt(fan_in)
  local w = W.new_tensor(fn, { cout, cin / groups, g.kh, g.kw }, 'float32', 'cpu')
  self:register_parameter('weight', w:uniform_(-bound, bound), 'weight')
  if bias then
    self:register_parameter('bias', ms.empty(cout):uniform_(-bound, bound), 'bias')
  end
end

local hw = W.hw

function Conv2d:extra_repr()
  local g = self._geom
  local pad = type(self.padding) == 'string' and self.padding or hw(g.pt, g.pl)
  local s = ('%d -> %d, %dx%d, stride %s, padding %s'):format(self.in_channels, self.out_channels, g.kh, g.kw,
                                                               hw(g.sh, g.sw), pad)
  if g.dh ~= 1 or g.dw ~= 1 then s = s .. ', dilation ' .. hw(g.dh, g.dw) end
  if self.groups ~= 1 then s = s .. ', groups ' .. self.groups end
  if self.padding_mode ~= 'zeros' then s = s .. ', padding_mode ' .. self.padding_mode end
  if not self.bias then s = s .. ', no bias' end
  return s
end

-- Non-zero padding modes: x padded as PyTorch's F.pad (index tensors cached per size).
local function pad_input(self, fn, x)
  local g, mode = self._geom, self.padding_mode
  local h, w = x:size(3), x:size(4)
  if mode == 'reflect' and (g.pt >= h or g.pb >= h or g.pl >= w or g.pr >= w) then
    check.fail("%s: padding_mode 'reflect' needs padding < the input size, got padding %d/%d x %d/%d " ..
               'for an input of %dx%d', fn, g.pt, g.pb, g.pl, g.pr, h, w)
  elseif mode == 'circular' and (g.pt > h or g.pb > h or g.pl > w or g.pr > w) then
    check.fail("%s: padding_mode 'circular' needs padding <= the input size, got padding %d/%d x %d/%d " ..
               'for an input of %dx%d', fn, g.pt, g.pb, g.pl, g.pr, h, w)
  elseif h == 0 or w == 0 then
    check.fail("%s: padding_mode '%s' needs a non-empty input, got %dx%d", fn, mode, h, w)
  end
  local c = self._pad_idx
  if not c or c.h ~= h or c.w ~= w or c.device ~= x.device then
    c = { h = h, w = w, device = x.device,
          ih = W.pad_index(fn, mode, h, g.pt, g.pb, x.device),
          iw = W.pad_index(fn, mode, w, g.pl, g.pr, x.device) }
    self._pad_idx = c
  end
  return W.protect(fn, function() return x:index_select(3, c.ih):index_select(4, c.iw) end)
end

-- A 1x1 convolution with stride 1, no padding and one group reads image n as its cols
-- [C, L]: y[n] = W x[n] straight into the output (one batched GEMM), and gx[n] = W^T g[n]
-- (no im2col in the forward, no col2im). On the CPU (the GPU keeps the lowering).
local function is_direct(self, g, x4)
  return g.kh == 1 and g.kw == 1 and g.sh == 1 and g.sw == 1 and g.pt == 0 and g.pb == 0 and
         g.pl == 0 and g.pr == 0 and self.groups == 1 and self.padding_mode == 'zeros' and
         x4.device == 'cpu'
end

function Conv2d:forward(x)
  local fn = 'Conv2d.forward'
  self:_begin_forward(x)
  check.tensor(fn, 'weight', self.weight)
  Module._check_float(fn, 'input', x, self.weight)
  local x4 = W.as_batch(fn, x, self.in_channels)
  local g = self._geom
  local conv_g = g
  if self.padding_mode ~= 'zeros' then
    x4 = pad_input(self, fn, x4)
    conv_g = { kh = g.kh, kw = g.kw, sh = g.sh, sw = g.sw, dh = g.dh, dw = g.dw,
               pt = 0, pb = 0, pl = 0, pr = 0 }
  end
  local n, O, G = x4:size(1), self.out_channels, self.groups
  local win, oh, ow = W.window(fn, conv_g, x4:size(3), x4:size(4))
  local K, L = self.in_channels * g.kh * g.kw, oh * ow
  if K * n * L > 2 ^ 53 or O * n * L > 2 ^ 53 then
    check.fail('%s: input [%s] gives an output of %dx%d: too many elements', fn,
               table.concat(x:shape(), ','), oh, ow)
  end
  if n == 0 then                                   -- an empty batch: an empty output
    self.output = W.new_tensor(fn, x:dim() == 3 and { O, oh, ow } or { 0, O, oh, ow }, x4.dtype, x4.device)
    self._fwd = { empty = true }
    self:record_input(x)
    return self.output
  end
  local Wt = self.weight
  local direct = is_direct(self, conv_g, x4)
  if direct then                                    -- 1x1: each image is its own cols
    local y = W.buffer(self, '_out', { n, O, L }, x4, fn)
    ms.matmul(Wt:view(1, O, K), x4:view(n, K, L), { out = y })
    if self.bias then y:add_(self.bias:reshape(1, O, 1)) end
    self.output = x:dim() == 3 and y:view(O, oh, ow) or y:view(n, O, oh, ow)
    self._fwd = { win = win, padded = x4:shape(), n = n, L = L, direct = true }
    self:record_input(x)
    return self.output
  end
  local cols = W.buffer(self, '_cols', { K, n * L }, x4, fn)
  W.im2col(fn, x4, win, cols)
  local Y = W.buffer(self, '_Y', { O, n * L }, x4, fn)
  if G == 1 then
    ms.matmul(Wt:view(O, K), cols, { out = Y })
  else
    ms.matmul(Wt:view(G, O / G, K / G), cols:view(G, K / G, n * L), { out = Y:view(G, O / G, n * L) })
  end
  local y = W.conv_output(fn, W.buffer(self, '_out', { n, O, L }, x4, fn), Y, self.bias)
  self.output = x:dim() == 3 and y:view(O, oh, ow) or y:view(n, O, oh, ow)
  self._fwd = { win = win, padded = x4:shape(), n = n, L = L }
  self:record_input(x)
  return self.output
end

function Conv2d:backward(x, g)
  local fn = 'Conv2d.backward'
  check.tensor(fn, 'weight', self.weight)
  self:_begin_backward(x, g)
  self:_ensure_arena(self.__name .. '.backward')
  local st = self._fwd
  if st.empty then                                  -- nothing to add to the gradients
    self.gradInput = self.input_grad ~= false and ms.zeros(x:shape(), { dtype = x.dtype, device = x.device }) or nil
    return self.gradInput
  end
  local O, G, n, L = self.out_channels, self.groups, st.n, st.L
  local K = self.in_channels * self._geom.kh * self._geom.kw
  local gc = g:contiguous()
  local Gm = W.buffer(self, '_G', { O, n * L }, gc, fn)
  W.conv_grad_output(fn, Gm, self.bias and self.grad_bias or nil, gc:view(n, O, L))
  local Wt, cols = self.weight, self._cols
  if st.direct then                                 -- the forward made no cols: make them now
    cols = W.im2col(fn, W.as_batch(fn, x, self.in_channels), st.win, W.buffer(self, '_cols', { K, n * L }, gc, fn))
  end
  if G == 1 then
    ms.matmul(Gm, cols, { transpose_b = true, out = self.grad_weight:view(O, K), beta = 1 })
  else
    ms.matmul(Gm:view(G, O / G, n * L), cols:view(G, K / G, n * L),
              { transpose_b = true, out = self.grad_weight:view(G, O / G, K / G), beta = 1 })
  end
  if self.input_grad == false then
    self.gradInput = nil
    return nil
  end
  if st.direct then                                 -- gx[n] = W^T g[n], no col2im
    local gx = W.buffer(self, '_gx', st.padded, gc, fn)
    ms.matmul(Wt:view(1, O, K), gc:view(n, O, L), { transpose_a = true, out = gx:view(n, K, L) })
    self.gradInput = gx:view(x:shape())
    return self.gradInput
  end
  local gcols = W.buffer(self, '_gcols', { K, n * L }, gc, fn)                      -- [K, N*L]
  if G == 1 then
    ms.matmul(Wt:view(O, K), Gm, { transpose_a = true, out = gcols })
  else
    ms.matmul(Wt:view(G, O / G, K / G), Gm:view(G, O / G, n * L),
              { transpose_a = true, out = gcols:view(G, K / G, n * L) })
  end
  local gx = W.col2im(fn, gcols, W.buffer(self, '_gx', st.padded, gc, fn), st.win)
  if self.padding_mode ~= 'zeros' then            -- the adjoint of the padding: sum back
    local c, s = self._pad_idx, st.padded
    local part = ms.zeros({ s[1], s[2], s[3], c.w }, { dtype = gc.dtype, device = gc.device })
    F.index_add_(part, 4, c.iw, gx)
    gx = ms.zeros({ s[1], s[2], c.h, c.w }, { dtype = gc.dtype, device = gc.device })
    F.index_add_(gx, 3, c.ih, part)
  end
  self.gradInput = gx:view(x:shape())
  return self.gradInput
end

return Conv2d
