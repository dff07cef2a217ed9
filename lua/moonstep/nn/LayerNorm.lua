-- nn.LayerNorm(normalized_shape [, eps = 1e-5, elementwise_affine = true, bias = true]),
-- or LayerNorm(shape, { eps =, elementwise_affine =, bias = }) — normalises over the last
-- #normalized_shape dims of x: y = (x - mean) / sqrt(var + eps) * weight + bias, weight
-- and bias of shape normalized_shape (biased variance, as PyTorch). bias = false keeps
-- the weight only (PyTorch >= 2.1).
--   backward: gx = (1/sigma) (gxh - mean(gxh) - xhat * mean(gxh * xhat)), gxh = g * w
local ms = require 'moonstep'
local Module = require 'moonstep.nn.Module'
local check = require 'moonstep.check'

local LayerNorm = Module:extend('LayerNorm')

local USAGE = 'LayerNorm(normalized_shape [, eps, elementwise_affine, bias]) or LayerNorm(shape, {options})'

function LayerNorm:__init(shape, eps, affine, bias, ...)
  Module.init(self)
  Module._check_arity('LayerNorm', 4 + select('#', ...), 4, USAGE)
  if type(shape) == 'number' then shape = { shape } end
  if type(shape) ~= 'table' or ms.is_tensor(shape) or #shape == 0 or #shape > 8 then
    check.fail('LayerNorm: normalized_shape is %s, expected a size or a table of 1 to 8 sizes',
               check.describe(shape))
  end
  local copy = {}
  for i, s in ipairs(shape) do copy[i] = check.integer('LayerNorm', 'normalized_shape[' .. i .. ']', s, 1) end
  for k in pairs(shape) do
    if type(k) ~= 'number' or not copy[k] then
      check.fail('LayerNorm: normalized_shape has key %s, expected a list of sizes', check.describe(k))
    end
  end
  if type(eps) == 'table' then
    if affine ~= nil or bias ~= nil then check.fail('LayerNorm: an options table must be the last argument') end
    local o = check.options('LayerNorm', eps, { 'eps', 'elementwise_affine', 'bias' })
    eps, affine, bias = o.eps, o.elementwise_affine, o.bias
  end
  if eps == nil then eps = 1e-5 end
  check.number('LayerNorm', 'eps', eps, 0)
  if eps <= 0 then check.fail('LayerNorm: eps is %s, expected a finite number > 0', check.describe(eps)) end
  if affine == nil then affine = true end
  check.boolean('LayerNorm', 'elementwise_affine', affine)
  if bias == nil then bias = true end
  check.boolean('LayerNorm', 'bias', bias)
  self.normalized_shape, self.eps = copy, eps
  self.d = 1
  for _, s in ipairs(copy) do self.d = self.d * s end
  if affine then
    self:register_parameter('weight', Module._alloc('LayerNorm', ms.ones, copy), 'norm')
    if bias then self:register_parameter('bias', Module._alloc('LayerNorm', ms.zeros, copy), 'norm') end
  end
end

function LayerNorm:extra_repr()
  local s = table.concat(self.normalized_shape, 'x')
  if self.eps ~= 1e-5 then s = s .. (', eps=%g'):format(self.eps) end
  if not self.weight then s = s .. ', elementwise_affine=false'
  elseif not self.bias then s = s .. ', bias=false' end
  return s
end

-- x as [M, D] (D = the normalised elements), checking the trailing shape.
local function rows(self, x)
  local n, k = x:dim(), #self.normalized_shape
  local ok = n >= k
  for i = 1, k do ok = ok and x:size(n - k + i) == self.normalized_shape[i] end
  if not ok then
    check.fail('LayerNorm.forward: input has shape [%s], expected [..., %s]',
               table.concat(x:shape(), ','), table.concat(self.normalized_shape, ','))
  end
  return x:reshape(x:numel() / self.d, self.d)
end

function LayerNorm:forward(x)
  self:_begin_forward(x)
  Module._check_float('LayerNorm.forward', 'input', x, self.weight)
  local x2 = rows(self, x)
  if x2:size(1) == 0 then                                      -- no rows: an empty output
    self.output = x:clone()
    self:record_input(x)
    return self.output
  end
  local mean = x2:mean(2, true)
  local centered = x2 - mean
  self.inv_std = centered:square():mean(2, true):add_(self.eps):rsqrt_()
  self.xhat = centered:mul_(self.inv_std)                      -- [M, D]
  local y = self.xhat
  if self.weight then
    y = y * self.weight:view(1, self.d)
    if self.bias then y:add_(self.bias:view(1, self.d)) end
  end
  self.output = y:view(x:shape())
  self:record_input(x)
  return self.output
end

function LayerNorm:backward(x, g)
  self:_begin_backward(x, g)
  if x:numel() == 0 then
    self.gradInput = g:clone()
    return self.gradInput
  end
  local g2 = g:reshape(x:numel() / self.d, self.d)
  local gxh = g2
  if self.weight then
    self:_ensure_arena(self.__name .. '.backward')
    self.grad_weight:add_((g2 * self.xhat):sum(1):view(self.normalized_shape))
    if self.bias then self.grad_bias:add_(g2:sum(1):view(self.normalized_shape)) end
    gxh = g2 * self.weight:view(1, self.d)
  end
  local gx = gxh - gxh:mean(2, true) - self.xhat * (gxh * self.xhat):mean(2, true)
  self.gradInput = gx:mul_(self.inv_std):view(x:shape())
  return self.gradInput
end

return LayerNorm
