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

-- A value as it would be written in Lua.
local function value_text(v, t)
  if Schedule.is(v) then
    local s = tostring(v)
    local ok, x = pcall(v, math.max(t or 1, 1))
    if ok and type(x) == 'number' then s = ('%s (%s at step %d)'):format(s, check.describe(x), math.max(t or 1, 1)) end
    return s
  end
  if type(v) == 'function' then return 'a function of the step' end
  if type(v) == 'table' and not check.is_tensor(v) and getmetatable(v) == nil then
    local items = {}
    for i, x in ipairs(v) do items[i] = value_text(x, t) end
    return '{' .. table.concat(items, ', ') .. '}'
  end
  return check.describe(v)
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
  for k in pairs(t) do if type(k) == 'string' then keys[#keys + 1] = k end end
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
      (type(ngroups) == 'number' and ngroups > 1) and (', %d groups'):format(ngroups) or '')
  elseif arena then
    parts[#parts + 1] = 'bound (its parameter arena is not usable: freed or replaced)'
  else
    parts[#parts + 1] = 'unbound'
  end
  return 'optim.' .. tostring(check.field(opt, '__name')) .. '  ' .. table.concat(parts, ', ')
end

local describe

local function body(opt, lines, indent, depth)
  local cls = getmetatable(opt)
  local defaults = type(cls) == 'table' and check.field(cls, 'defaults') or {}
  local t = rawget(opt, 't')
  local set, rest = {}, {}
  local keys = sorted_keys(defaults)
  for i, k in ipairs(keys) do if k == 'lr' then table.remove(keys, i); table.insert(keys, 1, k) break end end
  for _, k in ipairs(keys) do
    local v = rawget(opt, k)
    local item = k .. ' = ' .. value_text(v, t)
    if k == 'lr' or not same(v, defaults[k]) then set[#set + 1] = item else rest[#rest + 1] = item end
  end
  wrap(lines, indent, '', set)
  wrap(lines, indent, 'at defaults: ', rest)
  local common = {}
  for _, k in ipairs { 'clip_norm', 'clip_tensor_norm', 'clip_value' } do
    if rawget(opt, k) ~= nil then common[#common + 1] = k .. ' = ' .. value_text(rawget(opt, k)) end
  end
  if rawget(opt, 'skip_nonfinite') == true then common[#common + 1] = 'skip_nonfinite = true' end
  if rawget(opt, 'check_finite') == false then common[#common + 1] = 'check_finite = false' end
  wrap(lines, indent, '', common)
  -- the class's own options (not hyper-parameters: SPSA's dist/n/update, BSAM's seed),
  -- stored on the optimizer or in SPSA's option table
  local accepted = type(cls) == 'table' and check.field(cls, 'accepted') or {}
  local skip = { base = true, groups = true, on_nonfinite = true, clip_norm = true, clip_tensor_norm = true,
                 clip_value = true, skip_nonfinite = true, check_finite = true }
  local zo = rawget(opt, '_zo')
  local options = {}
  for _, k in ipairs(accepted) do
    if type(k) == 'string' and defaults[k] == nil and not skip[k] then
      local v = rawget(opt, k)
      if v == nil and type(zo) == 'table' then v = rawget(zo, k) end
      if v ~= nil then options[#options + 1] = k .. ' = ' .. value_text(v, t) end
    end
  end
  table.sort(options)
  wrap(lines, indent, 'options: ', options)
  local groups = rawget(opt, 'groups')
  if type(groups) == 'table' then
    for i, g in ipairs(groups) do
      local items = {}
      if type(g) == 'table' then
        if g.match ~= nil then items[1] = 'match = ' .. value_text(g.match) end
        for _, k in ipairs(sorted_keys(g)) do
          if k ~= 'match' then items[#items + 1] = k .. ' = ' .. value_text(g[k], t) end
        end
      else
        items[1] = check.describe(g)
      end
      wrap(lines, indent, ('group %d: '):format(i + 1), items)
    end
  end
  local transforms = rawget(opt, 'transforms')
  if type(transforms) == 'table' then
    local items = {}
    for i, tr in ipairs(transforms) do
      local hyper = type(tr) == 'table' and rawget(tr, 'hyper')
      local inner = {}
      for _, k in ipairs(type(hyper) == 'table' and hyper or {}) do
        inner[#inner + 1] = k .. ' = ' .. value_text(rawget(tr, k), t)
      end
      local name = type(tr) == 'table' and rawget(tr, 'name') or check.describe(tr)
      items[i] = tostring(name) .. (#inner > 0 and ('{' .. table.concat(inner, ', ') .. '}') or '')
    end
    wrap(lines, indent, 'transforms: ', items)
  end
  local gains = rawget(opt, 'gains')
  if type(gains) == 'table' then
    local items = {}
    for _, k in ipairs(sorted_keys(gains)) do items[#items + 1] = k .. ' = ' .. value_text(gains[k]) end
    wrap(lines, indent, 'gains: ', items)
  end
  local base = rawget(opt, 'base')
  if type(base) == 'table' and depth < 4 then
    describe(base, lines, indent, depth + 1, 'base: ')
  end
end

describe = function(opt, lines, indent, depth, label)
  lines[#lines + 1] = indent .. (label or '') .. headline(opt)
  body(opt, lines, indent .. '  ', depth)
end

local function tostring_opt(opt)
  local lines = {}
  local ok, err = pcall(describe, opt, lines, '', 0)
  if not ok then lines[#lines + 1] = '(could not describe it: ' .. check.reason(err) .. ')' end
  return table.concat(lines, '\n')
end

-- optim.Adam as a value: the class and its defaults.
local function tostring_class(cls)
  local defaults = rawget(cls, 'defaults') or {}
  local items = {}
  local keys = sorted_keys(defaults)
  for i, k in ipairs(keys) do if k == 'lr' then table.remove(keys, i); table.insert(keys, 1, k) break end end
  for _, k in ipairs(keys) do items[#items + 1] = k .. ' = ' .. value_text(defaults[k]) end
  local name = tostring(rawget(cls, '__name'))
  local lines = { ('optim.%s (an optimizer class: optim.%s(model, {options}) builds one)'):format(name, name) }
  wrap(lines, '  ', 'defaults: ', items)
  if rawget(cls, 'wraps') then lines[#lines + 1] = '  wraps a base optimizer (option base)' end
  return table.concat(lines, '\n')
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
end
