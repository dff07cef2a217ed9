-- optim.Adagrad(params, {lr = 1e-2, lr_decay = 0, weight_decay = 0,
--                        initial_accumulator_value = 0, eps = 1e-10, maximize = false})
-- torch.optim.Adagrad (dense gradients), one fused pass per step (runtime/optim/adagrad.h):
--   g = (maximize ? -g : g) + weight_decay p
--   sum = sum + g^2   (sum starts at initial_accumulator_value)
--   p -= lr / (1 + (t - 1) lr_decay) g / (sqrt(sum) + eps)
-- Every value >= 0.
-- State: buffers.sum (flat, like the arena). PyTorch fills it with
-- initial_accumulator_value when it builds the state; here the first step (t = 1) reads
-- each group's initial_accumulator_value in place of the buffer (zero until then).
local ms = require 'moonstep'
local Optimizer = require 'moonstep.optim.Optimizer'
local C = ms.C

local Adagrad = Optimizer.define('Adagrad',
  { lr = 1e-2, lr_decay = 0, weight_decay = 0, initial_accumulator_value = 0, eps = 1e-10,
    maximize = false },
  { lr = 'nonnegative', lr_decay = 'nonnegative', weight_decay = 'nonnegative',
    initial_accumulator_value = 'nonnegative', eps = 'nonnegative', maximize = 'boolean' })
Adagrad.hyper_ctype = 'ms_adagrad_hyper'

function Adagrad:_init()
  self.buffers = { sum = ms.zeros_like(self.arena.flat) }
end

function Adagrad._fill(h, v)
  h.lr, h.lr_decay, h.weight_decay = v.lr, v.lr_decay, v.weight_decay
  h.initial_accumulator_value, h.eps = v.initial_accumulator_value, v.eps
  h.maximize = v.maximize and 1 or 0
end

function Adagrad:_update(hs, t)
  return self:_run(C.ms_adagrad_step, hs, t, { self.buffers.sum })
end

return Adagrad
