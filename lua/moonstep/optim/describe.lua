-- optim.describe — tostring(opt) for every optimizer, and tostring(optim.X) for a class
-- (installed into Optimizer by optim/Optimizer.lua, as workspace.lua is):
--
--   > opt = ms.optim.SAM(model, {base = ms.optim.SGD{lr = 0.1, momentum = 0.9}, rho = 0.1})
--   > opt
--   optim.SAM  step 0, 0 passes, bound to 79510 parameters (float32, cpu)
--     rho = 0.1
--     at defaults: adaptive = false, bn = "first", ...
--     base: optim.SGD  step 0, bound to 79510 parameters (float32, cpu)
--       lr = 0.1, momentum = 0.9
--       at defaults: dampening = 0, ...
--
-- The first line: the class, the step count (opt.t, with skipped steps), the closure
-- passes, what it is bound to (or "unbound"). Then the hyper-parameters in force: lr and
-- those set away from their defaults, then the rest; a schedule shows its value at the
-- current step; then the common options that are on (clipping, skip_nonfinite), the
-- groups, a chain's transforms, SPSA's gains, and the base of a wrapper, nested.
-- Never raises and runs no user code (a hyper-parameter that is a plain function shows as
-- such; a schedule object is evaluated: schedules are plain formulas).
local check = require 'moonstep.check'
local Schedule = require 'moonstep.schedule.base'

local WIDTH = 96

-- moonstep's package directory: a schedule whose formula (_at) lives elsewhere is user code.
local PKG = debug.getinfo(1, 'S').source:match('^(@.*[/\\])optim[/\\][^/\\]*$')

-- Whether schedule v can be evaluated without running user code: moonstep's own formula,
-- and nothing but data and moonstep schedules in its fields (a join or warmup may hold a
-- plain function: that would run the user's code, perhaps with side effects).
local function pure(v, seen)
  local tv = type(v)
  if tv == 'function' or tv == 'userdata' or tv == 'thread' then return false end
  if tv ~= 'table' then return true end
  if seen[v] then return true end
  seen.n = (seen.n or 0) + 1
  if seen.n > 200 then return false end
  seen[v] = true
  if Schedule.is(v) then
    local at = check.field(v, '_at')
    local info = type(at) == 'function' and debug.getinfo(at, 'S')
    if not (info and PKG and info.source:sub(1, #PKG) == PKG) then return false end
  elseif debug.getmetatable(v) ~= nil then
    return false
  end
  for k, x in next, v do
    if not pure(k, seen) or not pure(x, seen) then return false end
  end
  return true
end

local MAX_ITEMS = 8             -- items of a list shown

local MAX_TEXT = 160             -- one value's text is cut after this many bytes

-- A value as it would be written in Lua.
local value_text
local function value_text_long(v, t, depth)
  depth = depth or 0
  if Schedule.is(v) then
    local ok, s = pcall(tostring, v)
    s = ok and type(s) == 'string' and s or 'a schedule'
    if #s > MAX_TEXT - 40 then s = s:sub(1, MAX_TEXT - 43) .. '...' end   -- (room for its value)
    local at = math.max(type(t) == 'number' and t == t and t < 2 ^ 53 and math.floor(t) or 1, 1)
    if pure(v, {}) then
      local okx, x = pcall(v, at)
      if okx and type(x) == 'number' then s = ('%s (%s at step %d)'):format(s, check.describe(x), at) end
    end
    return s
  end
  if type(v) == 'function' then return 'a function of the step' end
  if type(v) == 'table' and not check.is_tensor(v) and debug.getmetatable(v) == nil then
    if depth >= 2 then return '{...}' end
    local items = {}
    for i, x in ipairs(v) do
      if i > MAX_ITEMS then items[#items + 1] = ('... (%d items)'):format(#v); break end
      items[i] = value_text(x, t, depth + 1)
    end
    return '{' .. table.concat(items, ', ') .. '}'
  end
  return check.describe(v)
end
value_text = function(v, t, depth)
  local s = value_text_long(v, t, depth)
  if #s > MAX_TEXT then s = s:sub(1, MAX_TEXT - 3) .. '...' end
  return s
end

local function same(a, b)
  if type(a) == 'table' and type(b) == 'table' and getmetatable(a) == nil and getmetatable(b) == nil then
    if #a ~= #b then return false end
    for i = 1, #a do if a[i] ~= b[i] then return false end end
    return true
  end
  return a == b
end

-- 'k = v' items wrapped into lines of at most WIDTH columns after indent.
local function wrap(lines, indent, head, items)
  if #items == 0 then return end
  local line = indent .. head
  local first = true
  for _, item in ipairs(items) do
    local piece = (first and '' or ', ') .. item
    if not first and #line + #piece > WIDTH then
      lines[#lines + 1] = line .. ','
      line = indent .. '    ' .. item
    else
      line = line .. piece
    end
    first = false
  end
  lines[#lines + 1] = line
end

local function sorted_keys(t)
  local keys = {}
  for k in next, t do if type(k) == 'string' then keys[#keys + 1] = k end end
  table.sort(keys)
  return keys
end

-- The first line: class, counts, binding.
local function headline(opt)
  local parts = {}
  local t, skipped, passes = rawget(opt, 't'), rawget(opt, 'skipped'), rawget(opt, 'passes')
  if t ~= nil then
    parts[#parts + 1] = ('step %s'):format(check.describe(t)) ..
                        ((type(skipped) == 'number' and skipped > 0) and (' (%s skipped)'):format(check.describe(skipped)) or '')
  end
  if type(passes) == 'number' and passes > 0 then parts[#parts + 1] = ('%s pass%s'):format(check.describe(passes), passes == 1 and '' or 'es') end
  local arena = rawget(opt, 'arena')
  local flat = type(arena) == 'table' and rawget(arena, 'flat')
  if check.is_tensor(flat) and not check.is_freed(flat) then
    local ngroups = rawget(opt, 'ngroups')
    parts[#parts + 1] = ('bound to %d parameters (%s, %s)%s'):format(flat:numel(), flat.dtype, flat.device,
      (type(ngroups) == 'number' and ngroups > 1) and (', %s groups'):format(check.describe(ngroups)) or '')
  elseif arena then
    parts[#parts + 1] = 'bound (its parameter arena is not usable: freed or replaced)'
  else
    parts[#parts + 1] = 'unbound'
  end
  local name = check.field(opt, '__name')
  return 'optim.' .. (type(name) == 'string' and name or '?') .. '  ' .. table.concat(parts, ', ')
end

-- An optimizer class's instance (a base worth describing), not any table.
local function is_optimizer(v)
  return type(v) == 'table' and type(check.field(v, '__name')) == 'string'
         and type(check.field(v, 'defaults')) == 'table' and type(check.field(v, 'step')) == 'function'
end

local describe

-- The sections after the first line; each one that fails says so and the rest go on.
local SECTIONS = {}

SECTIONS[1] = function(opt, lines, indent)      -- hyper-parameters: set, then at defaults
  local cls = getmetatable(opt)
  local defaults = type(cls) == 'table' and check.field(cls, 'defaults') or {}
  local t = rawget(opt, 't')
  local set, rest = {}, {}
  local keys = sorted_keys(defaults)
  for i, k in ipairs(keys) do if k == 'lr' then table.remove(keys, i); table.insert(keys, 1, k) break end end
  for _, k in ipairs(keys) do
    local v = rawget(opt, k)
    local item = k .. ' = ' .. value_text(v, t)
    if k == 'lr' or not same(v, rawget(defaults, k)) then set[#set + 1] = item else rest[#rest + 1] = item end
  end
  wrap(lines, indent, '', set)
  wrap(lines, indent, 'at defaults: ', rest)
end

SECTIONS[2] = function(opt, lines, indent)      -- the common options that are on
  local common = {}
  for _, k in ipairs { 'clip_norm', 'clip_tensor_norm', 'clip_value' } do
    if rawget(opt, k) ~= nil then common[#common + 1] = k .. ' = ' .. value_text(rawget(opt, k)) end
  end
  if rawget(opt, 'skip_nonfinite') == true then common[#common + 1] = 'skip_nonfinite = true' end
  if rawget(opt, 'check_finite') == false then common[#common + 1] = 'check_finite = false' end
  wrap(lines, indent, '', common)
end

-- the class's own options (not hyper-parameters: SPSA's dist/n/update, BSAM's seed),
-- stored on the optimizer or in SPSA's option table
SECTIONS[3] = function(opt, lines, indent)
  local cls = getmetatable(opt)
  local defaults = type(cls) == 'table' and check.field(cls, 'defaults') or {}
  local accepted = type(cls) == 'table' and check.field(cls, 'accepted') or {}
  local skip = { base = true, groups = true, on_nonfinite = true, clip_norm = true, clip_tensor_norm = true,
                 clip_value = true, skip_nonfinite = true, check_finite = true }
  local zo, t = rawget(opt, '_zo'), rawget(opt, 't')
  local options = {}
  for _, k in ipairs(type(accepted) == 'table' and accepted or {}) do
    if type(k) == 'string' and rawget(defaults, k) == nil and not skip[k] then
      local v = rawget(opt, k)
      if v == nil and type(zo) == 'table' then v = rawget(zo, k) end
      if v ~= nil then options[#options + 1] = k .. ' = ' .. value_text(v, t) end
    end
  end
  table.sort(options)
  wrap(lines, indent, 'options: ', options)
end

SECTIONS[4] = function(opt, lines, indent)      -- parameter groups
  local groups, t = rawget(opt, 'groups'), rawget(opt, 't')
  if type(groups) ~= 'table' then return end
  for i, g in ipairs(groups) do
    if i > MAX_ITEMS then lines[#lines + 1] = indent .. ('... (%d groups)'):format(#groups + 1); break end
    local items = {}
    if type(g) == 'table' then
      if rawget(g, 'match') ~= nil then items[1] = 'match = ' .. value_text(rawget(g, 'match')) end
      for _, k in ipairs(sorted_keys(g)) do
        if k ~= 'match' then items[#items + 1] = k .. ' = ' .. value_text(rawget(g, k), t) end
      end
    else
      items[1] = check.describe(g)
    end
    wrap(lines, indent, ('group %d: '):format(i + 1), items)
  end
end

SECTIONS[5] = function(opt, lines, indent)      -- a chain's transforms
  local transforms, t = rawget(opt, 'transforms'), rawget(opt, 't')
  if type(transforms) ~= 'table' then return end
  local items = {}
  for i, tr in ipairs(transforms) do
    local hyper = type(tr) == 'table' and rawget(tr, 'hyper')
    local inner = {}
    for _, k in ipairs(type(hyper) == 'table' and hyper or {}) do
      inner[#inner + 1] = tostring(k) .. ' = ' .. value_text(rawget(tr, k), t)
    end
    local name = type(tr) == 'table' and rawget(tr, 'name')
    items[i] = (type(name) == 'string' and name or check.describe(tr)) ..
               (#inner > 0 and ('{' .. table.concat(inner, ', ') .. '}') or '')
  end
  wrap(lines, indent, 'transforms: ', items)
end

SECTIONS[6] = function(opt, lines, indent)      -- SPSA's gains
  local gains = rawget(opt, 'gains')
  if type(gains) ~= 'table' then return end
  local items = {}
  for _, k in ipairs(sorted_keys(gains)) do items[#items + 1] = k .. ' = ' .. value_text(rawget(gains, k)) end
  wrap(lines, indent, 'gains: ', items)
end

local function body(opt, lines, indent, seen)
  for _, section in ipairs(SECTIONS) do
    local ok, err = pcall(section, opt, lines, indent)
    if not ok then lines[#lines + 1] = indent .. '(a part could not be described: ' .. check.reason(err) .. ')' end
  end
  local base = rawget(opt, 'base')
  if base == nil then return end
  if seen[base] then
    lines[#lines + 1] = indent .. 'base: (the optimizer itself or one above it: a cycle)'
  elseif not is_optimizer(base) or #seen >= 6 then
    lines[#lines + 1] = indent .. 'base: ' .. check.describe(base) ..
                        (is_optimizer(base) and ' (nested too deep to show)' or ' (not an optimizer)')
  else
    describe(base, lines, indent, seen, 'base: ')
  end
end

describe = function(opt, lines, indent, seen, label)
  seen[opt] = true
  seen[#seen + 1] = opt
  local ok, head = pcall(headline, opt)
  lines[#lines + 1] = indent .. (label or '') .. (ok and head or ('optim.?  (' .. check.reason(head) .. ')'))
  body(opt, lines, indent .. '  ', seen)
end

local function tostring_opt(opt)
  local lines = {}
  local ok, err = pcall(describe, opt, lines, '', {})
  if not ok then lines[#lines + 1] = '(could not describe it: ' .. check.reason(err) .. ')' end
  return table.concat(lines, '\n')
end

-- optim.Adam as a value: the class and its defaults.
local function class_text(cls)
  local defaults = rawget(cls, 'defaults')
  if type(defaults) ~= 'table' then defaults = {} end
  local items = {}
  local keys = sorted_keys(defaults)
  for i, k in ipairs(keys) do if k == 'lr' then table.remove(keys, i); table.insert(keys, 1, k) break end end
  for _, k in ipairs(keys) do items[#items + 1] = k .. ' = ' .. value_text(rawget(defaults, k)) end
  local name = tostring(rawget(cls, '__name'))
  local lines = { ('optim.%s (an optimizer class: optim.%s(model, {options}) builds one)'):format(name, name) }
  wrap(lines, '  ', 'defaults: ', items)
  if rawget(cls, 'wraps') then lines[#lines + 1] = '  wraps a base optimizer (option base)' end
  return table.concat(lines, '\n')
end
local function tostring_class(cls)
  local ok, s = pcall(class_text, cls)
  return ok and s or ('optim class (could not describe it: ' .. check.reason(s) .. ')')
end

return function(Optimizer)
  local define = Optimizer.define
  -- every class define() makes gets the two __tostring metamethods
  function Optimizer.define(...)
    local cls = define(...)
    rawset(cls, '__tostring', tostring_opt)
    local mt = getmetatable(cls)
    if type(mt) == 'table' then rawset(mt, '__tostring', tostring_class) end
    return cls
  end
  Optimizer.__tostring = tostring_opt
  Optimizer._describe = tostring_opt
  -- the base class itself (check.methods keeps a metatable already there)
  local mt = getmetatable(Optimizer)
  if mt == nil then mt = {}; setmetatable(Optimizer, mt) end
  if type(mt) == 'table' then
    rawset(mt, '__tostring', function()
      return 'optim.Optimizer (the base class of every optimizer: optim.Optimizer.define makes a new one)'
    end)
  end
end
