-- optim.Adam(params, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0,
--                     amsgrad = false, maximize = false})
-- optim.AdamW(params, {... weight_decay = 0.01 ...})
-- torch.optim.Adam (L2 weight decay added to the gradient) and AdamW (decoupled decay
-- p *= 1 - lr wd), one fused pass per step (runtime/optim/adam.h); bias corrections and
-- every other derived constant in double, so float32 stays faithful to PyTorch's.
-- lr, weight_decay >= 0; betas each in [0, 1); eps > 0.
-- State: buffers.exp_avg, buffers.exp_avg_sq, and buffers.max_exp_avg_sq with amsgrad
-- (flat, like the arena).
local ms = require 'moonstep'
local Optimizer = require 'moonstep.optim.Optimizer'
local C = ms.C

local function make(name, wd_default, decoupled)
  local cls = Optimizer.define(name,
    { lr = 1e-3, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = wd_default, amsgrad = false,
      maximize = false },
    { lr = 'nonnegative', betas = 'betas', eps = 'positive', weight_decay = 'nonnegative',
      amsgrad = 'boolean', maximize = 'boolean' })
  cls.hyper_ctype = 'ms_adam_hyper'
  function cls._fill(h, v)
    h.lr, h.beta1, h.beta2, h.eps, h.weight_decay = v.lr, v.betas[1], v.betas[2], v.eps, v.weight_decay
    h.decoupled, h.amsgrad, h.maximize = decoupled and 1 or 0, v.amsgrad and 1 or 0, v.maximize and 1 or 0
  end
  function cls:_init()
    self.buffers = { exp_avg = ms.zeros_like(self.arena.flat), exp_avg_sq = ms.zeros_like(self.arena.flat) }
  end
  function cls:_update(hs, t)
    local b = self.buffers
    local ams = false
    for g = 0, #self.groups do ams = ams or hs[g].amsgrad ~= 0 end
    if ams and not b.max_exp_avg_sq then b.max_exp_avg_sq = ms.zeros_like(self.arena.flat) end
    return self:_run(C.ms_adam_step, hs, t, { b.exp_avg, b.exp_avg_sq, ams and b.max_exp_avg_sq or nil })
  end
  function cls:_new_buffer(k)
    if k == 'max_exp_avg_sq' then return ms.zeros_like(self.arena.flat) end
  end
  return cls
end

return { Adam = make('Adam', 0, false), AdamW = make('AdamW', 0.01, true) }
