-- optim.RMSprop(params, {lr = 1e-2, alpha = 0.99, eps = 1e-8, weight_decay = 0, momentum = 0,
--                        centered = false, maximize = false})
-- torch.optim.RMSprop, one fused pass per step (runtime/optim/rmsprop.h):
--   g = (maximize ? -g : g) + weight_decay p
--   v = alpha v + (1 - alpha) g^2
--   avg = sqrt(v) + eps; centered: a = alpha a + (1 - alpha) g, avg = sqrt(v - a^2) + eps
--   momentum > 0: buf = momentum buf + g / avg, p -= lr buf;  else p -= lr g / avg
-- lr, eps, weight_decay, momentum >= 0; alpha in [0, 1].
-- State: buffers.square_avg; buffers.momentum_buffer once a group has momentum > 0;
-- buffers.grad_avg once a group is centered (flat, like the arena, starting at zero).
local ms = require 'moonstep'
local Optimizer = require 'moonstep.optim.Optimizer'
local C = ms.C

local RMSprop = Optimizer.define('RMSprop',
  { lr = 1e-2, alpha = 0.99, eps = 1e-8, weight_decay = 0, momentum = 0, centered = false,
    maximize = false },
  { lr = 'nonnegative', alpha = 'unit', eps = 'nonnegative', weight_decay = 'nonnegative',
    momentum = 'nonnegative', centered = 'boolean', maximize = 'boolean' })
RMSprop.hyper_ctype = 'ms_rmsprop_hyper'

function RMSprop:_init()
  self.buffers = { square_avg = ms.zeros_like(self.arena.flat) }
end

function RMSprop._fill(h, v)
  h.lr, h.alpha, h.eps, h.weight_decay, h.momentum = v.lr, v.alpha, v.eps, v.weight_decay, v.momentum
  h.centered, h.maximize = v.centered and 1 or 0, v.maximize and 1 or 0
end

function RMSprop:_update(hs, t)
  local b = self.buffers
  local mom, cen = false, false
  for g = 0, #self.groups do
    mom = mom or hs[g].momentum > 0
    cen = cen or hs[g].centered ~= 0
  end
  if mom and not b.momentum_buffer then b.momentum_buffer = ms.zeros_like(self.arena.flat) end
  if cen and not b.grad_avg then b.grad_avg = ms.zeros_like(self.arena.flat) end
  return self:_run(C.ms_rmsprop_step, hs, t,
                   { b.square_avg, mom and b.momentum_buffer or nil, cen and b.grad_avg or nil })
end

function RMSprop:_new_buffer(k)
  if k == 'momentum_buffer' or k == 'grad_avg' then return ms.zeros_like(self.arena.flat) end
end

return RMSprop
