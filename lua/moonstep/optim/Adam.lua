-- optim.Adam(params, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0})
-- optim.AdamW(params, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0.01})
-- torch.optim.Adam (L2 weight decay added to the gradient) and AdamW (decoupled decay
-- p *= 1 - lr wd), one fused pass per step; bias corrections computed on the host.
-- State: buffers.exp_avg, buffers.exp_avg_sq (flat, like the arena).
local ms = require 'moonstep'
local Optimizer = require 'moonstep.optim.Optimizer'
local C, fail = ms.C, require('moonstep.core').fail

local function make(name, wd_default, decoupled)
  local cls = Optimizer.define(name, { lr = 1e-3, betas = { 0.9, 0.999 }, eps = 1e-8,
                                       weight_decay = wd_default })
  function cls:init()
    self.buffers = { exp_avg = ms.zeros_like(self.arena.flat), exp_avg_sq = ms.zeros_like(self.arena.flat) }
  end
  function cls:update()
    local b = self.betas
    if type(b) == 'function' then b = b(self.t) end
    if type(b) ~= 'table' or type(b[1]) ~= 'number' or type(b[2]) ~= 'number' then
      error(name .. ': betas must be a table {beta1, beta2}', 3)
    end
    if C.ms_adam_step(self.arena.flat, self.arena.gflat, self.buffers.exp_avg, self.buffers.exp_avg_sq,
                      self:hyper('lr'), b[1], b[2], self:hyper('eps'), self:hyper('weight_decay'),
                      decoupled and 1 or 0, self.t) ~= 0 then
      fail(3)
    end
  end
  return cls
end

return { Adam = make('Adam', 0, false), AdamW = make('AdamW', 0.01, true) }
