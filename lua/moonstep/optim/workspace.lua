-- optim.workspace — what the multi-pass optimizers keep besides their state, as methods of
-- every optimizer (installed into Optimizer by optim/Optimizer.lua):
--   self:_scratch(k)               a scratch copy of the arena (never saved)
--   self:_trade(who, scratch), self:_trade_back(who, k)   evaluations at perturbed weights
--                                  that never write the weights (the memory trade)
--   self:_buffer(k)                a state buffer made on first use (saved with the state)
local ms = require 'moonstep'
local check = require 'moonstep.check'
local reduce = require 'moonstep.optim.reduce'

return function(Optimizer)

-- A scratch tensor shaped like the arena, kept between steps (not state: never saved);
-- made again when the model moved to another device or dtype, or it was freed.
function Optimizer:_scratch(k)
  local flat = self.arena.flat
  local all = rawget(self, '_scratches')
  if not all then all = {}; self._scratches = all end
  local s = all[k]
  if not s or check.is_freed(s) or s.device ~= flat.device or s.dtype ~= flat.dtype or s:numel() ~= flat:numel() then
    s = ms.empty_like(flat)
    all[k] = s
  end
  return s
end

-- Evaluations at perturbed weights that never write the weights (the SAM family, SPSA's
-- materialized mode): the caller writes w + e into a scratch copy (self:_scratch(key)),
-- self:_trade(who, scratch) trades its memory with the arena (reduce.swap: O(1), the model
-- sees w + e), self:_trade_back(who, key) gives it back: w bit for bit as it was. Safe
-- whatever happened (nothing traded: nothing to do); a model moved or freed meanwhile gets w
-- back into its new arena where possible, and the step fails.
function Optimizer:_trade(who, scratch)
  local w = self.arena.flat
  self._traded = w
  reduce.swap(who, w, scratch)
end

function Optimizer:_trade_back(who, key)
  local all = rawget(self, '_scratches')
  local scratch, traded = all and all[key], rawget(self, '_traded')
  self._traded = nil
  if scratch then reduce.untrade(who, scratch) end
  local flat = self.arena.flat
  if traded and flat ~= traded then
    if not check.is_freed(traded) and not check.is_freed(flat) then flat:copy_(traded) end
    check.fail('%s: the model\'s parameters were moved or freed during an evaluation at perturbed weights; the weights before the step are back where possible', who)
  end
end

-- A state buffer made on first use (saved with the state): self.buffers[k], else the
-- class's self:_new_buffer(k), kept.
function Optimizer:_buffer(k)
  self.buffers = self.buffers or {}
  local b = self.buffers[k]
  if not b then
    b = self:_new_buffer(k)
    self.buffers[k] = b
  end
  return b
end

end
