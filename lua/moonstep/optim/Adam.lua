-- optim.Adam(params, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0})
-- optim.AdamW(params, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0.01})
-- torch.optim.Adam (L2 weight decay added to the gradient) and AdamW (decoupled decay
-- p *= 1 - lr wd), one fused pass per step; the runtime computes the bias corrections
-- and every other derived constant in double (float32 stays faithful to PyTorch's).
-- lr, weight_decay >= 0; betas each in [0, 1); eps > 0.
-- State: buffers.exp_avg, buffers.exp_avg_sq (flat, like the arena).
local ms = require 'moonstep'
local Optimizer = require 'moonstep.optim.Optimizer'
local C = ms.C

local function make(name, wd_default, decoupled)
  local cls = Optimizer.define(name,
    { lr = 1e-3, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = wd_default },
    { lr = 'nonnegative', betas = 'betas', eps = 'positive', weight_decay = 'nonnegative' })
  function cls:_init()
    self.buffers = { exp_avg = ms.zeros_like(self.arena.flat), exp_avg_sq = ms.zeros_like(self.arena.flat) }
  end
  function cls:_update(h, t)
    return C.ms_adam_step(self.arena.flat, self.arena.gflat, self.buffers.exp_avg,
                          self.buffers.exp_avg_sq, h.lr, h.betas[1], h.betas[2], h.eps,
                          h.weight_decay, decoupled and 1 or 0, t)
  end
  return cls
end

return { Adam = make('Adam', 0, false), AdamW = make('AdamW', 0.01, true) }
