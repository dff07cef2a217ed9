-- optim.SGD(params, {lr = 0.01, momentum = 0, dampening = 0, weight_decay = 0,
--                    nesterov = false}) — torch.optim.SGD, one fused pass per step.
-- lr, momentum, weight_decay >= 0; dampening in [0, 1]; nesterov needs momentum > 0 and
-- dampening = 0 (as torch.optim.SGD).
-- State: buffers.momentum (flat, like the arena), allocated at the first step with
-- momentum ~= 0 (it starts as that step's gradient).
local ms = require 'moonstep'
local Optimizer = require 'moonstep.optim.Optimizer'
local check = require 'moonstep.check'
local C = ms.C

local SGD = Optimizer.define('SGD',
  { lr = 0.01, momentum = 0, dampening = 0, weight_decay = 0, nesterov = false },
  { lr = 'nonnegative', momentum = 'nonnegative', dampening = 'unit',
    weight_decay = 'nonnegative', nesterov = 'boolean' })

function SGD:_init()
  self.buffers = {}
end

-- v: the hyper-parameters' values (those that are functions: nil at construction).
function SGD:_check_values(who, v)
  if v.nesterov == true and type(v.momentum) == 'number' and type(v.dampening) == 'number'
     and (v.momentum <= 0 or v.dampening ~= 0) then
    check.fail('%s: nesterov = true needs momentum > 0 and dampening = 0 (as torch.optim.SGD), got momentum %s and dampening %s',
               who, check.describe(v.momentum), check.describe(v.dampening))
  end
end

function SGD:_update(h)
  local p = self.arena.flat
  local buf, first = self.buffers.momentum, false
  if h.momentum ~= 0 and not buf then buf, first = ms.zeros_like(p), true end
  local rc = C.ms_sgd_step(p, self.arena.gflat, buf, h.lr, h.momentum, h.dampening,
                           h.weight_decay, h.nesterov and 1 or 0, first and 1 or 0)
  if rc == 0 then self.buffers.momentum = buf end
  return rc
end

-- Before the first momentum step there is no buffer; a restored state brings one
-- (Optimizer.load_state keeps it only when the whole state is valid).
function SGD:_new_buffer(k)
  if k == 'momentum' then return ms.zeros_like(self.arena.flat) end
end

return SGD
