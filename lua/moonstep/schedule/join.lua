-- schedule.join (also schedule.sequential) — optax's join_schedules: one schedule after
-- another, each later one seeing the step counted from its boundary.
--
--   schedule.join{schedules = {s1, s2, s3}, boundaries = {b1, b2}}
--       s(t) = s1(t)                for t <= b1
--            = s2(t - b1)           for b1 < t <= b2
--            = s3(t - b2)           for t > b2
-- A boundary b is a count of steps: the next schedule takes over after b steps, and its
-- own step 1 is step b + 1 overall (optax: at count c >= b, schedule(c - b)).
-- schedules: schedule objects, functions of the step, or numbers (constants);
-- boundaries: #schedules - 1 non-decreasing integers >= 0.
local check = require 'moonstep.check'
local Schedule = require 'moonstep.schedule.base'

local Join = Schedule.class('join')
local FIELDS = { 'schedules', 'boundaries' }

function Join:_at(t)
  local b, i = self.boundaries, 1
  while i <= #b and t > b[i] do i = i + 1 end
  local off = i > 1 and b[i - 1] or 0
  return Schedule.eval(self.schedules[i], t - off)
end

function Join:_children() return self.schedules end

function Join:_span()
  local b = self.boundaries
  local last = self.schedules[#self.schedules]
  local tail = Schedule.is(last) and last:_span() or nil
  return (b[#b] or 0) + (tail or math.max(1, math.floor((b[#b] or 100) / 2)))
end

local function make(fn)
  return function(opts)
    opts = check.options(fn, opts, FIELDS)
    local ss, bs = opts.schedules, opts.boundaries or {}
    if type(ss) ~= 'table' or Schedule.is(ss) or check.is_tensor(ss) or #ss == 0 then
      check.fail('%s: schedules is %s, expected a non-empty list of schedules', fn, check.describe(ss))
    end
    if type(bs) ~= 'table' or Schedule.is(bs) or check.is_tensor(bs) then
      check.fail('%s: boundaries is %s, expected a list of step counts', fn, check.describe(bs))
    end
    if #bs ~= #ss - 1 then
      check.fail('%s: %d schedules need %d boundaries, got %d', fn, #ss, #ss - 1, #bs)
    end
    local s2, b2 = {}, {}
    for i = 1, #ss do
      local s = ss[i]
      s2[i] = type(s) == 'number' and check.number(fn, ('schedules[%d]'):format(i), s)
              or Schedule.callable(fn, ('schedules[%d]'):format(i), s)
    end
    for i = 1, #bs do
      b2[i] = check.integer(fn, ('boundaries[%d]'):format(i), bs[i], i > 1 and b2[i - 1] or 0)
    end
    return Schedule.new(Join, FIELDS, { schedules = s2, boundaries = b2 })
  end
end

return { join = make('schedule.join'), sequential = make('schedule.sequential') }
