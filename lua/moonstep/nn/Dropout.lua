-- nn.Dropout(p = 0.5) — in training, zeroes each element with probability p and
-- scales the rest by 1/(1-p); in evaluation, the identity.
-- The mask is a Philox Bernoulli fill drawn from the global generator (one stream
-- per forward). m.replay = true makes the next forwards reuse the last mask's
-- (seed, stream), so a two-pass optimizer sees the same mask on both passes.
local ms = require 'moonstep'
local Module = require 'moonstep.nn.Module'

local Dropout = Module:extend('Dropout')

function Dropout:__init(p)
  Module.init(self)
  p = p or 0.5
  if type(p) ~= 'number' or p < 0 or p >= 1 then
    error(('Dropout: p is %s, expected 0 <= p < 1'):format(tostring(p)), 3)
  end
  self.p = p
  self.replay = false
end

function Dropout:extra_repr() return ('p=%g'):format(self.p) end

function Dropout:forward(x)
  if not self.training or self.p == 0 then
    self.mask = nil
    self.output = x
    return x
  end
  if not (self.replay and self.gen) then
    local s = ms.rng_state()
    self.gen = { seed = s.seed, stream = s.stream }
    ms.set_rng_state { seed = s.seed, stream = s.stream + 1 }
  end
  self.mask = ms.empty_like(x):bernoulli_(1 - self.p, self.gen):mul_(1 / (1 - self.p))
  self.output = x * self.mask
  return self.output
end

function Dropout:backward(x, g)
  self.gradInput = self.mask and g * self.mask or g
  return self.gradInput
end

return Dropout
