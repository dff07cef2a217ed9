-- schedule.base — what every schedule object shares.
--
--   local Schedule = require 'moonstep.schedule.base'
--   local Cosine = Schedule.class('cosine')        -- errors and describe() say 'schedule.cosine'
--   function Cosine:_at(t) ... end                  -- the value at step t (t checked already)
--   function Cosine:_span() return self.T_max end   -- optional: the natural length for plot()
--
-- The step convention (the whole package): t is the 1-based count of optimizer steps,
-- step 1 = the first update, so s(1) is the initial value. A PyTorch scheduler's value
-- after k calls of scheduler.step() is s(k + 1); an optax schedule's value at count c
-- is s(c + 1).
--
-- A schedule is plain data: its parameters are fields (s.gamma, s.T_max), read by the
-- formula at every call. It is callable, s(t), and s:value(t) is the same. Methods:
--   s:plot(path [, {steps =, title =}])    gnuplot, PNG or SVG by extension (plot.lua)
--   s:state() / s:load_state(st)           a plain table; only reduce_on_plateau has
--                                          state of its own, composites nest their parts'
local check = require 'moonstep.check'

local type, floor, huge = type, math.floor, math.huge

local Schedule = {}
Schedule.__index = Schedule
Schedule.__name = 'schedule'
Schedule.__var = 's'

-- Is v one of our schedule objects (not a plain function)?
function Schedule.is(v)
  if type(v) ~= 'table' then return false end
  local mt = getmetatable(v)
  return type(mt) == 'table' and rawget(mt, '_is_schedule') == true
end

-- t checked: an integer >= 1 (fname names the call in the error).
local function check_t(fname, t)
  if type(t) ~= 'number' or t ~= floor(t) or t < 1 or t == huge then
    check.fail('%s: t is %s, expected a step number (an integer >= 1; step 1 is the first update)',
               fname, check.describe(t))
  end
  return t
end
Schedule.check_t = check_t

-- A new schedule class named 'schedule.<name>'.
function Schedule.class(name)
  local cls = setmetatable({}, { __index = Schedule })
  cls.__index = cls
  cls.__name = 'schedule.' .. name
  cls._is_schedule = true
  cls.__call = function(self, t) return self:_at(check_t(self.__name, t)) end
  cls.__tostring = function(self) return self:_describe() end
  return check.methods(cls)   -- s.plot(x) without the colon is an error naming it
end

-- The value at step t (same as s(t)).
function Schedule:value(t)
  return self:_at(check_t(self.__name .. '.value', t))
end

-- The parts of a composite (join, warmup): a list of schedules or functions, or nil.
function Schedule:_children() return nil end

-- A natural number of steps to plot (nil: plot() asks for steps).
function Schedule:_span() return nil end

-- 'schedule.cosine{T_max = 100, eta_min = 0, init = 0.1}' from the declared fields.
function Schedule:_describe()
  local parts = {}
  for _, k in ipairs(self._fields or {}) do
    local v = rawget(self, k)
    if v ~= nil then
      local s
      if type(v) == 'table' and not Schedule.is(v) then
        local items = {}
        for i, x in ipairs(v) do items[i] = Schedule.is(x) and tostring(x) or check.describe(x) end
        s = '{' .. table.concat(items, ', ') .. '}'
      elseif Schedule.is(v) then
        s = tostring(v)
      else
        s = check.describe(v)
      end
      parts[#parts + 1] = k .. ' = ' .. s
    end
  end
  -- a schedule with a state of its own (reduce_on_plateau) shows it too: its value now
  local state = {}
  if self._save then
    local st = {}
    if pcall(self._save, self, st) then
      for k, v in pairs(st) do
        if type(k) == 'string' and k ~= 'kind' then
          state[#state + 1] = k .. ' = ' .. (type(v) == 'number' and ('%.6g'):format(v) or check.describe(v))
        end
      end
      table.sort(state)
    end
  end
  local text = self.__name .. '{' .. table.concat(parts, ', ')
  if #state > 0 then text = text .. '; state: ' .. table.concat(state, ', ') end
  text = text .. '}'
  return text
end

-- state(): {kind = 'schedule.x', children = {...}} plus what _save adds (plateau).
function Schedule:state()
  local st = { kind = self.__name }
  local kids = self:_children()
  if kids then
    st.children = {}
    for i, c in ipairs(kids) do st.children[i] = Schedule.is(c) and c:state() or false end
  end
  if self._save then self:_save(st) end
  return st
end

function Schedule:load_state(st)
  local fname = self.__name .. '.load_state'
  if type(st) ~= 'table' then
    check.fail('%s: state is %s, expected a table from state()', fname, check.describe(st))
  end
  if st.kind ~= self.__name then
    check.fail('%s: the state is of %s, expected one of %s', fname, check.describe(st.kind), self.__name)
  end
  local kids = self:_children()
  if kids then
    if type(st.children) ~= 'table' or #st.children ~= #kids then
      check.fail('%s: the state has %s parts, expected %d', fname,
                 type(st.children) == 'table' and tostring(#st.children) or 'no', #kids)
    end
    for i, c in ipairs(kids) do
      if Schedule.is(c) then c:load_state(st.children[i]) end
    end
  end
  if self._load then self:_load(st, fname) end
  return self
end

-- s:plot(path [, opts]): see plot.lua.
function Schedule:plot(path, opts)
  return require('moonstep.schedule.plot').plot(self, path, opts, self.__name .. '.plot')
end

-- Fill obj's fields from checked values and make it an instance of cls.
function Schedule.new(cls, fields, values)
  rawset(cls, '_fields', fields)         -- the parameter names, for tostring
  local obj = {}
  for _, k in ipairs(fields) do obj[k] = values[k] end
  return setmetatable(obj, cls)
end

-- Shared argument checks for constructors.

-- A schedule argument: a schedule object, a function, or a callable table.
function Schedule.callable(fn, name, v)
  if check.is_callable(v) then return v end   -- schedule objects have __call
  check.fail('%s: %s is %s, expected a schedule (a schedule object or a function of the step)',
             fn, name, check.describe(v))
end

-- The value of any schedule-like v at step t: a number, a function, a schedule.
function Schedule.eval(v, t)
  if type(v) == 'number' then return v end
  return v(t)
end

-- A number > 0 (finite).
function Schedule.positive(fn, name, v)
  if type(v) ~= 'number' or not (v > 0 and v < huge) then
    check.fail('%s: %s is %s, expected a finite number > 0', fn, name, check.describe(v))
  end
  return v
end

return check.methods(Schedule)
