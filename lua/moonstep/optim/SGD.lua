-- optim.SGD(params, {lr = 0.01, momentum = 0, dampening = 0, weight_decay = 0,
--                    nesterov = false}) — torch.optim.SGD, one fused pass per step.
-- State: buffers.momentum (flat, like the arena), allocated when momentum ~= 0.
local ms = require 'moonstep'
local Optimizer = require 'moonstep.optim.Optimizer'
local C, fail = ms.C, require('moonstep.core').fail

local SGD = Optimizer.define('SGD', { lr = 0.01, momentum = 0, dampening = 0, weight_decay = 0,
                                      nesterov = false })

function SGD:init()
  self.buffers = {}
end

function SGD:update()
  local p, g = self.arena.flat, self.arena.gflat
  local mu = self:hyper('momentum')
  local first = false
  if mu ~= 0 and not self.buffers.momentum then
    self.buffers.momentum = ms.zeros_like(p)
    first = true
  end
  if self.nesterov and (mu <= 0 or self:hyper('dampening') ~= 0) then
    error('SGD: nesterov needs momentum > 0 and dampening = 0 (as torch.optim.SGD)', 3)
  end
  if C.ms_sgd_step(p, g, self.buffers.momentum, self:hyper('lr'), mu, self:hyper('dampening'),
                   self:hyper('weight_decay'), self.nesterov and 1 or 0, first and 1 or 0) ~= 0 then
    fail(3)
  end
end

-- Before the first momentum step there is no buffer; a restored state brings one.
function SGD:load_state(s)
  if s.buffers and s.buffers.momentum and not self.buffers.momentum then
    self.buffers.momentum = ms.zeros_like(self.arena.flat)
  end
  return Optimizer.load_state(self, s)
end

return SGD
