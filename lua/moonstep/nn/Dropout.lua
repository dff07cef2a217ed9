-- nn.Dropout(p = 0.5) — in training, zeroes each element with probability p and
-- scales the rest by 1/(1-p) (p = 1 zeroes everything, as PyTorch); in evaluation,
-- the identity. PyTorch's inplace = true is refused.
-- The mask is a Philox Bernoulli fill drawn from the global generator (one stream
-- per forward). m.replay = true makes the next forwards reuse the last mask's
-- (seed, stream), so a two-pass optimizer sees the same mask on both passes.
local ms = require 'moonstep'
local Module = require 'moonstep.nn.Module'
local check = require 'moonstep.check'
local random = require 'moonstep.random'

local Dropout = Module:extend('Dropout')

function Dropout:__init(p, inplace, ...)
  Module.init(self)
  Module._check_arity('Dropout', 2 + select('#', ...), 2, 'Dropout([p = 0.5])')
  if type(p) == 'table' then
    local o = check.options('Dropout', p, { 'p', 'inplace' })
    p, inplace = o.p, o.inplace
  end
  if p == nil then p = 0.5 end
  self.p = check.number('Dropout', 'p', p, 0, 1)
  if inplace ~= nil and inplace ~= false then
    check.fail('Dropout: inplace is %s, expected false (in-place dropout is not supported)',
               check.describe(inplace))
  end
  self.replay = false
end

function Dropout:extra_repr() return ('p=%g'):format(self.p) end

function Dropout:forward(x)
  self:_begin_forward(x)
  if not self.training or self.p == 0 then
    self.mask = nil
    self.output = x
  elseif self.p == 1 then
    self.mask = ms.zeros_like(x)
    self.output = ms.zeros_like(x)
  else
    if not (self.replay and self.gen) then self.gen = random.take_stream() end
    self.mask = ms.empty_like(x):bernoulli_(1 - self.p, self.gen):mul_(1 / (1 - self.p))
    self.output = x * self.mask
  end
  self:record_input(x)
  return self.output
end

function Dropout:backward(x, g)
  self:_begin_backward(x, g)
  self.gradInput = self.mask and g * self.mask or g
  return self.gradInput
end

return Dropout
