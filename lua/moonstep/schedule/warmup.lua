-- schedule.warmup — a linear warm-up over `steps` steps into any schedule.
--
--   schedule.warmup{schedule = s, steps = N, init = 0}
--       s_w(t) = init + (s(1) - init) (t - 1) / N     for t <= N   (rising from init)
--              = s(t - N)                               for t > N    (s starts at its step 1)
-- This is schedule.join{schedules = {linear{init = init, final = s(1), steps = N}, s},
-- boundaries = {N}} (optax's warmup_*_schedule shape): the wrapped schedule is delayed by
-- N steps, so a cosine over T_max steps still anneals over T_max steps after warm-up.
-- With init = 0 the first step has value 0; give init > 0 to make it count.
-- schedule: a schedule object, a function of the step or a number; steps: an integer
-- >= 1; init: a finite number.
local check = require 'moonstep.check'
local Schedule = require 'moonstep.schedule.base'

local Warmup = Schedule.class('warmup')
local FIELDS = { 'schedule', 'steps', 'init' }

function Warmup:_at(t)
  local N = self.steps
  if t > N then return Schedule.eval(self.schedule, t - N) end
  local peak = Schedule.eval(self.schedule, 1)
  return self.init + (peak - self.init) * (t - 1) / N
end

function Warmup:_children() return { self.schedule } end

function Warmup:_span()
  local inner = Schedule.is(self.schedule) and self.schedule:_span() or nil
  return self.steps + (inner or 2 * self.steps)
end

return function(opts)
  local fn = 'schedule.warmup'
  opts = check.options(fn, opts, FIELDS)
  local s = opts.schedule
  if s == nil then check.fail('%s: schedule is required (what the warm-up leads into)', fn) end
  if opts.steps == nil then check.fail('%s: steps is required (the warm-up length)', fn) end
  return Schedule.new(Warmup, FIELDS, {
    schedule = type(s) == 'number' and check.number(fn, 'schedule', s) or Schedule.callable(fn, 'schedule', s),
    steps = check.integer(fn, 'steps', opts.steps, 1),
    init = check.number(fn, 'init', opts.init or 0),
  })
end
