-- nn.BatchNorm1d(C, {eps=1e-5, momentum=0.1, affine=true}) for [N, C] or [N, C, L];
-- nn.BatchNorm2d(C, ...) for [N, C, H, W].
--   training:  y = (x - mean_B) / sqrt(var_B + eps) * weight + bias, statistics per
--              channel over every other dim (biased variance), and, when update_stats
--              is true, running_mean/var <- (1 - momentum) * running + momentum * batch
--              (unbiased variance), as PyTorch does. Two-pass optimizers set
--              update_stats = false for their extra passes.
--   evaluate:  the running statistics.
--   backward (training): gx = w / sigma * (g - mean(g) - xhat * mean(g * xhat))
local ms = require 'moonstep'
local Module = require 'moonstep.nn.Module'

local function make(name, dims)
  local BN = Module:extend(name)

  function BN:__init(channels, opts)
    Module.init(self)
    opts = opts or {}
    if type(channels) ~= 'number' or channels < 1 then
      error(name .. ': expected the number of channels', 3)
    end
    self.channels, self.eps, self.momentum = channels, opts.eps or 1e-5, opts.momentum or 0.1
    self.update_stats = true
    if opts.affine ~= false then
      self:register_parameter('weight', ms.ones(channels), 'norm')
      self:register_parameter('bias', ms.zeros(channels), 'norm')
    end
    self:register_buffer('running_mean', ms.zeros(channels))
    self:register_buffer('running_var', ms.ones(channels))
  end

  function BN:extra_repr() return tostring(self.channels) end

  -- The broadcast shape of a per-channel vector against input x: [1, C, 1, ...].
  local function chan_shape(x)
    local s = { 1, x:size(2) }
    for _ = 3, x:dim() do s[#s + 1] = 1 end
    return s
  end

  -- Per-channel sum over every dim but 2, as a [C] tensor.
  local function chan_sum(t)
    for d = t:dim(), 3, -1 do t = t:sum(d) end
    return t:sum(1)
  end

  function BN:forward(x)
    local ok = false
    for _, d in ipairs(dims) do ok = ok or x:dim() == d end
    if not ok or x:size(2) ~= self.channels then
      error(('%s.forward: input has shape [%s], expected %d dims with %d channels in dim 2'):format(
        name, table.concat(x:shape(), ','), dims[#dims], self.channels), 2)
    end
    local cs = chan_shape(x)
    local mean, var
    if self.training then
      local m = x:numel() / self.channels
      mean = chan_sum(x):div_(m)
      local centered = x - mean:view(cs)
      var = chan_sum(centered:square()):div_(m)
      if self.update_stats then
        local mo = self.momentum
        self.running_mean:mul_(1 - mo):add_(mean, mo)
        self.running_var:mul_(1 - mo):add_(var, mo * m / math.max(m - 1, 1))
      end
      self.inv_std = var:add(self.eps):rsqrt()
      self.xhat = centered:mul_(self.inv_std:view(cs))
    else
      self.inv_std = self.running_var:add(self.eps):rsqrt()
      self.xhat = (x - self.running_mean:view(cs)):mul_(self.inv_std:view(cs))
    end
    local y = self.xhat
    if self.weight then y = y * self.weight:view(cs) + self.bias:view(cs) end
    self.batch_stats = self.training
    self.output = y
    return y
  end

  function BN:backward(x, g)
    if not self.xhat then self:forward(x) end
    local cs = chan_shape(x)
    if self.weight then
      self:ensure_arena()
      self.grad_weight:add_(chan_sum(g * self.xhat))
      self.grad_bias:add_(chan_sum(g))
    end
    local scale = self.weight and self.inv_std * self.weight or self.inv_std
    if self.batch_stats then
      local m = x:numel() / self.channels
      local gmean = chan_sum(g):div_(m):view(cs)
      local gxmean = chan_sum(g * self.xhat):div_(m):view(cs)
      self.gradInput = (g - gmean - self.xhat * gxmean):mul_(scale:view(cs))
    else
      self.gradInput = g * scale:view(cs)
    end
    return self.gradInput
  end

  return BN
end

return { BatchNorm1d = make('BatchNorm1d', { 2, 3 }), BatchNorm2d = make('BatchNorm2d', { 4 }) }
