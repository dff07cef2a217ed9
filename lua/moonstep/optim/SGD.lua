-- optim.SGD(params, {lr = 0.01, momentum = 0, dampening = 0, weight_decay = 0,
--                    nesterov = false, maximize = false}) — torch.optim.SGD, one fused pass
-- per step (runtime/optim/sgd.h).
-- lr, momentum, weight_decay >= 0; dampening in [0, 1]; nesterov needs momentum > 0 and
-- dampening = 0 (as torch.optim.SGD).
-- State: buffers.momentum (flat, like the arena), allocated at the first step with
-- momentum ~= 0; in each group it starts as that group's gradient at its first step
-- with momentum (extra.started records which groups have begun).
local ms = require 'moonstep'
local Optimizer = require 'moonstep.optim.Optimizer'
local check = require 'moonstep.check'
local C = ms.C

local SGD = Optimizer.define('SGD',
  { lr = 0.01, momentum = 0, dampening = 0, weight_decay = 0, nesterov = false, maximize = false },
  { lr = 'nonnegative', momentum = 'nonnegative', dampening = 'unit',
    weight_decay = 'nonnegative', nesterov = 'boolean', maximize = 'boolean' })
SGD.hyper_ctype = 'ms_sgd_hyper'

function SGD:_init()
  self.buffers, self.started = {}, {}
end

-- v: the hyper-parameters' values (those that are callables: nil at construction).
function SGD:_check_values(who, v)
  if v.nesterov == true and type(v.momentum) == 'number' and type(v.dampening) == 'number'
     and (v.momentum <= 0 or v.dampening ~= 0) then
    check.fail('%s: nesterov = true needs momentum > 0 and dampening = 0 (as torch.optim.SGD), got momentum %s and dampening %s',
               who, check.describe(v.momentum), check.describe(v.dampening))
  end
end

function SGD._fill(h, v, self, g)
  h.lr, h.momentum, h.dampening, h.weight_decay = v.lr, v.momentum, v.dampening, v.weight_decay
  h.nesterov, h.maximize = v.nesterov and 1 or 0, v.maximize and 1 or 0
  h.first = (v.momentum ~= 0 and not self.started[g]) and 1 or 0
end

function SGD:_update(hs, t)
  local need = false
  for g = 0, #self.groups do need = need or hs[g].momentum ~= 0 end
  local buf = self.buffers.momentum
  if need and not buf then buf = ms.zeros_like(self.arena.flat) end
  local rc = self:_run(C.ms_sgd_step, hs, t, { buf })
  if rc == 0 then
    self.buffers.momentum = buf
    for g = 0, #self.groups do
      if hs[g].momentum ~= 0 then self.started[g + 1] = true end
    end
  end
  return rc
end

-- Before the first momentum step there is no buffer; a restored state brings one.
function SGD:_new_buffer(k)
  if k == 'momentum' then return ms.zeros_like(self.arena.flat) end
end

function SGD:_save_extra()
  local started = {}
  for g = 1, #self.groups + 1 do started[g] = self.started[g] == true end
  return { started = started }
end

function SGD:_load_extra(who, extra, s)
  if extra == nil then   -- an older state: a momentum buffer in it means every group began
    local began = s.buffers ~= nil and s.buffers.momentum ~= nil
    self.started = {}
    for g = 1, #self.groups + 1 do self.started[g] = began or nil end
    return
  end
  if type(extra) ~= 'table' or type(extra.started) ~= 'table' or #extra.started ~= #self.groups + 1 then
    check.fail('%s: state.extra is %s, expected {started = {one boolean per group}}', who, check.describe(extra))
  end
  self.started = {}
  for g, v in ipairs(extra.started) do
    self.started[g] = check.boolean(who, ('state.extra.started[%d]'):format(g), v) or nil
  end
end

return SGD
