-- nn.BatchNorm1d(C [, eps = 1e-5, momentum = 0.1, affine = true, track_running_stats = true])
-- for [N, C] or [N, C, L]; nn.BatchNorm2d(C, ...) for [N, C, H, W]. The options may also
-- come as a table: BatchNorm2d(C, { eps =, momentum =, affine =, track_running_stats = }).
--   training:  y = (x - mean_B) / sqrt(var_B + eps) * weight + bias, statistics per
--              channel over every other dim (biased variance), and, when update_stats
--              is true, running_mean/var <- (1 - momentum) * running + momentum * batch
--              (unbiased variance), as PyTorch does. Two-pass optimizers set
--              update_stats = false for their extra passes.
--   evaluate:  the running statistics; with track_running_stats = false there are none
--              (no buffers) and the batch statistics are used in evaluation too.
--   A batch with one value per channel (or none) has no variance: refused whenever batch
--   statistics are used, as PyTorch refuses it, and the running statistics stay untouched.
--   PyTorch's momentum = None (a cumulative average) is not supported.
--   backward (batch statistics): gx = w / sigma * (g - mean(g) - xhat * mean(g * xhat))
local ms = require 'moonstep'
local Module = require 'moonstep.nn.Module'
local check = require 'moonstep.check'

local OPTIONS = { 'eps', 'momentum', 'affine', 'track_running_stats' }

local function make(name, dims, expect)
  local BN = Module:extend(name)

  function BN:__init(channels, eps, momentum, affine, track, ...)
    Module.init(self)
    Module._check_arity(name, 5 + select('#', ...), 5,
      name .. '(num_features [, eps, momentum, affine, track_running_stats]) or ' .. name .. '(num_features, {options})')
    check.integer(name, 'num_features', channels, 1)
    if type(eps) == 'table' then
      if momentum ~= nil then check.fail('%s: an options table must be the last argument', name) end
      local o = check.options(name, eps, OPTIONS)
      eps, momentum, affine, track = o.eps, o.momentum, o.affine, o.track_running_stats
    end
    if eps == nil then eps = 1e-5 end
    check.number(name, 'eps', eps, 0)
    if eps <= 0 then check.fail('%s: eps is %s, expected a finite number > 0', name, check.describe(eps)) end
    if momentum == nil then momentum = 0.1 end
    check.number(name, 'momentum', momentum, 0, 1)
    if affine == nil then affine = true end
    check.boolean(name, 'affine', affine)
    if track == nil then track = true end
    check.boolean(name, 'track_running_stats', track)
    self.channels, self.eps, self.momentum = channels, eps, momentum
    self.affine, self.track_running_stats = affine, track
    self.update_stats = true
    if affine then
      self:register_parameter('weight', Module._alloc(name, ms.ones, channels), 'norm')
      self:register_parameter('bias', Module._alloc(name, ms.zeros, channels), 'norm')
    end
    if track then
      self:register_buffer('running_mean', Module._alloc(name, ms.zeros, channels))
      self:register_buffer('running_var', Module._alloc(name, ms.ones, channels))
    end
  end

  function BN:extra_repr()
    local s = tostring(self.channels)
    if self.eps ~= 1e-5 then s = s .. (', eps=%g'):format(self.eps) end
    if self.momentum ~= 0.1 then s = s .. (', momentum=%g'):format(self.momentum) end
    if not self.affine then s = s .. ', affine=false' end
    if not self.track_running_stats then s = s .. ', track_running_stats=false' end
    return s
  end

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
    self:_begin_forward(x)
    local fn = name .. '.forward'
    Module._check_float(fn, 'input', x, self.weight or self.running_mean)
    local ok = false
    for _, d in ipairs(dims) do ok = ok or x:dim() == d end
    if not ok or x:size(2) ~= self.channels then
      check.fail('%s: input has shape [%s], expected %s with %d channels in dim 2', fn,
                 table.concat(x:shape(), ','), expect, self.channels)
    end
    local cs = chan_shape(x)
    local batch_stats = self.training or not self.track_running_stats
    local mean, var
    if batch_stats then
      local m = x:numel() / self.channels
      if m <= 1 then
        check.fail('%s: input has shape [%s]: %d value%s per channel, expected more than 1 to ' ..
                   'compute batch statistics (%s)', fn,
                   table.concat(x:shape(), ','), m, m == 1 and '' or 's',
                   self.track_running_stats and 'training mode; use evaluate() for single examples'
                   or 'track_running_stats = false: batch statistics in every mode')
      end
      mean = chan_sum(x):div_(m)
      local centered = x - mean:view(cs)
      var = chan_sum(centered:square()):div_(m)
      if self.training and self.track_running_stats and self.update_stats then
        local mo = self.momentum
        self.running_mean:mul_(1 - mo):add_(mean, mo)
        self.running_var:mul_(1 - mo):add_(var, mo * m / (m - 1))
      end
      self.inv_std = var:add(self.eps):rsqrt()
      self.xhat = centered:mul_(self.inv_std:view(cs))
    else
      self.inv_std = self.running_var:add(self.eps):rsqrt()
      self.xhat = (x - self.running_mean:view(cs)):mul_(self.inv_std:view(cs))
    end
    local y = self.xhat
    if self.weight then y = y * self.weight:view(cs) + self.bias:view(cs) end
    self.batch_stats = batch_stats
    self.output = y
    self:record_input(x)
    return y
  end

  function BN:backward(x, g)
    self:_begin_backward(x, g)
    local cs = chan_shape(x)
    if self.weight then
      self:_ensure_arena(self.__name .. '.backward')
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

return {
  BatchNorm1d = make('BatchNorm1d', { 2, 3 }, '2 or 3 dims ([N, C] or [N, C, L])'),
  BatchNorm2d = make('BatchNorm2d', { 4 }, '4 dims ([N, C, H, W])'),
}
