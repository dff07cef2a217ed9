-- nn.Conv2d(in_channels, out_channels, kernel, {stride=1, padding=0, bias=true})
--   x [N, C, H, W] -> y [N, O, OH, OW], OH = (H + 2 pad - k) / stride + 1
--   lowering: cols = im2col(x) [K, N*L] (K = C*kh*kw, L = OH*OW); Y = W [O, K] @ cols
--             [O, N*L], one GEMM for the whole batch, then y = Y as [N, O, L] (+ b)
--   backward: G = g as [O, N*L]; gW += G cols^T; gb += sum g; gx = col2im(W^T G)
--   init as PyTorch: W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C*kh*kw
--   m.input_grad = false skips gx
local ms = require 'moonstep'
local Module = require 'moonstep.nn.Module'
local F = require 'moonstep.nn.functional'

local Conv2d = Module:extend('Conv2d')

local function pair(v, what)
  if type(v) == 'number' then return v, v end
  if type(v) == 'table' and #v == 2 then return v[1], v[2] end
  error(('Conv2d: %s must be a number or {h, w}'):format(what), 4)
end

function Conv2d:__init(cin, cout, kernel, opts)
  Module.init(self)
  opts = opts or {}
  if type(cin) ~= 'number' or type(cout) ~= 'number' or kernel == nil then
    error('Conv2d: expected (in_channels, out_channels, kernel [, {stride=, padding=, bias=}])', 3)
  end
  self.cin, self.cout = cin, cout
  self.kh, self.kw = pair(kernel, 'kernel')
  self.sh, self.sw = pair(opts.stride or 1, 'stride')
  self.ph, self.pw = pair(opts.padding or 0, 'padding')
  local k = cin * self.kh * self.kw
  local bound = 1 / math.sqrt(k)
  self:register_parameter('weight', ms.empty(cout, cin, self.kh, self.kw):uniform_(-bound, bound), 'weight')
  if opts.bias ~= false then
    self:register_parameter('bias', ms.empty(cout):uniform_(-bound, bound), 'bias')
  end
end

function Conv2d:extra_repr()
  return ('%d -> %d, %dx%d, stride %d, padding %d'):format(self.cin, self.cout, self.kh, self.kw, self.sh, self.ph)
end

function Conv2d:forward(x)
  if x:dim() ~= 4 or x:size(2) ~= self.cin then
    error(('Conv2d.forward: input has shape [%s], expected [N, %d, H, W]'):format(
      table.concat(x:shape(), ','), self.cin), 2)
  end
  local n = x:size(1)
  local oh = F.conv_out(x:size(3), self.kh, self.sh, self.ph)
  local ow = F.conv_out(x:size(4), self.kw, self.sw, self.pw)
  local K = self.cin * self.kh * self.kw
  local cols = F.buffer(self, '_cols', { K, n * oh * ow }, x)
  F.im2col(x:contiguous(), self.kh, self.kw, self.sh, self.sw, self.ph, self.pw, 0, cols)
  local Y = F.buffer(self, '_Y', { self.cout, n * oh * ow }, x)
  ms.matmul(self.weight:view(self.cout, K), cols, { out = Y })
  local y = F.buffer(self, '_out', { n, self.cout, oh * ow }, x)
  y:copy_(Y:view(self.cout, n, oh * ow):transpose(1, 2))          -- [O, N, L] -> [N, O, L]
  if self.bias then y:add_(self.bias:view(1, self.cout, 1)) end
  self.output = y:view(n, self.cout, oh, ow)
  return self.output
end

function Conv2d:backward(x, g)
  self:ensure_arena()
  if not self._cols then self:forward(x) end
  local n, K = x:size(1), self.cin * self.kh * self.kw
  local L = g:size(3) * g:size(4)
  local g3 = g:view(n, self.cout, L)
  local G = F.buffer(self, '_G', { self.cout, n * L }, g)
  G:view(self.cout, n, L):copy_(g3:transpose(1, 2))               -- [N, O, L] -> [O, N, L]
  ms.matmul(G, self._cols, { transpose_b = true, out = self.grad_weight:view(self.cout, K), beta = 1 })
  if self.bias then self.grad_bias:add_(G:sum(2)) end
  if self.input_grad == false then
    self.gradInput = nil
    return nil
  end
  local gcols = ms.matmul(self.weight:view(self.cout, K), G, { transpose_a = true })  -- [K, N*L]
  self.gradInput = F.col2im(gcols, x:shape(), self.kh, self.kw, self.sh, self.sw, self.ph, self.pw)
  return self.gradInput
end

return Conv2d
