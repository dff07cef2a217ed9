-- nn.LayerNorm(normalized_shape, {eps=1e-5, affine=true}) — normalises over the last
-- #normalized_shape dims of x: y = (x - mean) / sqrt(var + eps) * weight + bias,
-- weight and bias of shape normalized_shape (biased variance, as PyTorch).
--   backward: gx = (1/sigma) (gxh - mean(gxh) - xhat * mean(gxh * xhat)), gxh = g * w
local ms = require 'moonstep'
local Module = require 'moonstep.nn.Module'

local LayerNorm = Module:extend('LayerNorm')

function LayerNorm:__init(shape, opts)
  Module.init(self)
  opts = opts or {}
  if type(shape) == 'number' then shape = { shape } end
  if type(shape) ~= 'table' or #shape == 0 then
    error('LayerNorm: expected the normalized shape (a number or a table of sizes)', 3)
  end
  self.normalized_shape, self.eps = shape, opts.eps or 1e-5
  self.d = 1
  for _, s in ipairs(shape) do self.d = self.d * s end
  if opts.affine ~= false then
    self:register_parameter('weight', ms.ones(shape), 'norm')
    self:register_parameter('bias', ms.zeros(shape), 'norm')
  end
end

function LayerNorm:extra_repr() return table.concat(self.normalized_shape, 'x') end

-- x as [M, D] (D = the normalised elements), checking the trailing shape.
local function rows(self, x)
  local n, k = x:dim(), #self.normalized_shape
  local ok = n >= k
  for i = 1, k do ok = ok and x:size(n - k + i) == self.normalized_shape[i] end
  if not ok then
    error(('LayerNorm: input has shape [%s], expected [..., %s]'):format(
      table.concat(x:shape(), ','), table.concat(self.normalized_shape, ',')), 3)
  end
  return x:reshape(-1, self.d)
end

function LayerNorm:forward(x)
  local x2 = rows(self, x)
  local mean = x2:mean(2, true)
  local centered = x2 - mean
  self.inv_std = centered:square():mean(2, true):add_(self.eps):rsqrt_()
  self.xhat = centered:mul_(self.inv_std)                      -- [M, D]
  local y = self.xhat
  if self.weight then
    y = y * self.weight:view(1, self.d) + self.bias:view(1, self.d)
  end
  self.output = y:view(x:shape())
  return self.output
end

function LayerNorm:backward(x, g)
  if not self.xhat then self:forward(x) end
  local g2 = g:reshape(-1, self.d)
  local gxh = g2
  if self.weight then
    self:ensure_arena()
    self.grad_weight:add_((g2 * self.xhat):sum(1):view(self.normalized_shape))
    self.grad_bias:add_(g2:sum(1):view(self.normalized_shape))
    gxh = g2 * self.weight:view(1, self.d)
  end
  local gx = gxh - gxh:mean(2, true) - self.xhat * (gxh * self.xhat):mean(2, true)
  self.gradInput = gx:mul_(self.inv_std):view(x:shape())
  return self.gradInput
end

return LayerNorm
