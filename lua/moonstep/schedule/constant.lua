-- schedule.constant — the same value at every step.
--
--   s = schedule.constant(0.1)             or schedule.constant{value = 0.1}
--   s(t) = value                           (value: a finite number)
local check = require 'moonstep.check'
local Schedule = require 'moonstep.schedule.base'

local Constant = Schedule.class('constant')
local FIELDS = { 'value' }

function Constant:_at() return self.value end

return function(opts)
  local fn = 'schedule.constant'
  if type(opts) == 'number' then opts = { value = opts } end
  opts = check.options(fn, opts, FIELDS)
  return Schedule.new(Constant, FIELDS, { value = check.number(fn, 'value', opts.value) })
end
