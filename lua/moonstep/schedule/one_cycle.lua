-- schedule.one_cycle — PyTorch OneCycleLR (the learning-rate part), k = t - 1 steps done.
--
--   schedule.one_cycle{max_lr = 0.1, total_steps = N, pct_start = 0.3,
--                      anneal_strategy = 'cos', div_factor = 25, final_div_factor = 1e4,
--                      three_phase = false}
-- initial = max_lr / div_factor, min = initial / final_div_factor. Phases (end steps as
-- PyTorch computes them, in float):
--   two phases:   [0, pct N - 1]: initial -> max_lr;  [pct N - 1, N - 1]: max_lr -> min
--   three_phase:  [0, pct N - 1]: initial -> max_lr;  [pct N - 1, 2 pct N - 2]: max_lr ->
--                 initial;  [2 pct N - 2, N - 1]: initial -> min
-- Within a phase from a to b at fraction p = (k - start) / (end - start):
--   'cos':    b + (a - b) (1 + cos(pi p)) / 2;   'linear': a + (b - a) p.
-- s(1) = initial, s(N) = min. Beyond step N (PyTorch raises) the value stays min.
-- A phase of zero length (pct N - 1 = 0, where PyTorch divides by zero) gives its end value.
--
--   schedule.one_cycle_momentum{total_steps = N, pct_start = 0.3, anneal_strategy = 'cos',
--                               three_phase = false, base_momentum = 0.85, max_momentum = 0.95}
-- PyTorch's cycle_momentum as its own schedule (for SGD's momentum, or Adam's beta1), over the
-- same phases: max -> base -> max (three_phase: max -> base -> max, then held at max).
local check = require 'moonstep.check'
local Schedule = require 'moonstep.schedule.base'
local cos, pi, min = math.cos, math.pi, math.min

local OneCycle = Schedule.class('one_cycle')
local FIELDS = { 'max_lr', 'total_steps', 'pct_start', 'anneal_strategy', 'div_factor',
                 'final_div_factor', 'three_phase' }

local function anneal(strategy, a, b, p)
  if strategy == 'cos' then return b + (a - b) / 2 * (cos(pi * p) + 1) end
  return (b - a) * p + a
end

-- The phases' end steps (PyTorch's floats) and which of lo/hi each goes from and to.
local function phase_value(self, k, points)
  local N, pct = self.total_steps, self.pct_start
  local ends = self.three_phase and { pct * N - 1, 2 * pct * N - 2, N - 1 } or { pct * N - 1, N - 1 }
  local start = 0
  for i, stop in ipairs(ends) do
    if k <= stop or i == #ends then
      local a, b = points[i], points[i + 1]
      if stop == start then return b end
      return anneal(self.anneal_strategy, a, b, (k - start) / (stop - start))
    end
    start = stop
  end
end

function OneCycle:_at(t)
  local initial = self.max_lr / self.div_factor
  local lo = initial / self.final_div_factor
  local points = self.three_phase and { initial, self.max_lr, initial, lo } or { initial, self.max_lr, lo }
  return phase_value(self, min(t - 1, self.total_steps - 1), points)
end

function OneCycle:_span() return self.total_steps end

local Momentum = Schedule.class('one_cycle_momentum')
local MFIELDS = { 'total_steps', 'pct_start', 'anneal_strategy', 'three_phase', 'base_momentum',
                  'max_momentum' }
function Momentum:_at(t)
  local hi, lo = self.max_momentum, self.base_momentum
  local points = self.three_phase and { hi, lo, hi, hi } or { hi, lo, hi }
  return phase_value(self, math.min(t - 1, self.total_steps - 1), points)
end
Momentum._span = OneCycle._span

-- The options both share.
local function common(fn, opts)
  if opts.total_steps == nil then check.fail('%s: total_steps is required', fn) end
  local three = opts.three_phase
  if three == nil then three = false end
  return {
    total_steps = check.integer(fn, 'total_steps', opts.total_steps, 1),
    pct_start = check.number(fn, 'pct_start', opts.pct_start or 0.3, 0, 1),
    anneal_strategy = check.oneof(fn, 'anneal_strategy', opts.anneal_strategy or 'cos', { 'cos', 'linear' }),
    three_phase = check.boolean(fn, 'three_phase', three),
  }
end

local M = {}

function M.one_cycle(opts)
  local fn = 'schedule.one_cycle'
  opts = check.options(fn, opts, FIELDS)
  if opts.max_lr == nil then check.fail('%s: max_lr is required (the peak value)', fn) end
  local v = common(fn, opts)
  v.max_lr = check.number(fn, 'max_lr', opts.max_lr)
  v.div_factor = Schedule.positive(fn, 'div_factor', opts.div_factor or 25)
  v.final_div_factor = Schedule.positive(fn, 'final_div_factor', opts.final_div_factor or 1e4)
  return Schedule.new(OneCycle, FIELDS, v)
end

function M.one_cycle_momentum(opts)
  local fn = 'schedule.one_cycle_momentum'
  opts = check.options(fn, opts, MFIELDS)
  local v = common(fn, opts)
  v.base_momentum = check.number(fn, 'base_momentum', opts.base_momentum or 0.85)
  v.max_momentum = check.number(fn, 'max_momentum', opts.max_momentum or 0.95)
  return Schedule.new(Momentum, MFIELDS, v)
end

return M
