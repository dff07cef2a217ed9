-- schedule.linear, schedule.polynomial — from init to final over `steps` steps, then
-- final. k = t - 1 is the count of steps done, r = min(k, steps) / steps.
--
--   schedule.linear{init = 1, final = 0, steps = N}
--       s(t) = init + (final - init) r
--       (PyTorch LinearLR(start_factor a, end_factor b, total_iters N) on a base lr L is
--       init = a L, final = b L)
--   schedule.polynomial{init = 1, final = 0, steps = N, power = 1}
--       s(t) = final + (init - final) (1 - r) ^ power
--       (PyTorch PolynomialLR(total_iters N, power p) on L is init = L, final = 0;
--       optax polynomial_schedule likewise)
-- init, final: finite numbers; steps: an integer >= 1; power: a finite number > 0.
local check = require 'moonstep.check'
local Schedule = require 'moonstep.schedule.base'
local min = math.min

local M = {}

local Linear = Schedule.class('linear')
local LIN = { 'init', 'final', 'steps' }
function Linear:_at(t)
  local r = min(t - 1, self.steps) / self.steps
  return self.init + (self.final - self.init) * r
end
function Linear:_span() return self.steps + 1 end

local Poly = Schedule.class('polynomial')
local POLY = { 'init', 'final', 'steps', 'power' }
function Poly:_at(t)
  local r = min(t - 1, self.steps) / self.steps
  return self.final + (self.init - self.final) * (1 - r) ^ self.power
end
Poly._span = Linear._span

local function common(fn, opts)
  if opts.steps == nil then check.fail('%s: steps is required (the length of the decay)', fn) end
  return {
    init = check.number(fn, 'init', opts.init == nil and 1 or opts.init),
    final = check.number(fn, 'final', opts.final or 0),
    steps = check.integer(fn, 'steps', opts.steps, 1),
  }
end

function M.linear(opts)
  local fn = 'schedule.linear'
  opts = check.options(fn, opts, LIN)
  return Schedule.new(Linear, LIN, common(fn, opts))
end

function M.polynomial(opts)
  local fn = 'schedule.polynomial'
  opts = check.options(fn, opts, POLY)
  local v = common(fn, opts)
  v.power = Schedule.positive(fn, 'power', opts.power == nil and 1 or opts.power)
  return Schedule.new(Poly, POLY, v)
end

return M
