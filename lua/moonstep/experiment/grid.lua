-- experiment.grid — the product of experiment fields.
--
--   list = grid(axes [, base])
--     axes: field -> a list of values (an axis) or a single value (a table with named
--     fields, a string, a number: set in every experiment). Dotted keys reach into
--     tables: ['optimizer.rho'] = {0.02, 0.05}, ['model.sizes'] = {{784, 64, 10}, {784, 256, 10}}
--     (a list of lists: a list value itself must be wrapped, or go into base).
--     base: an experiment table every grid point starts from (deep-copied).
--   An axis that is an empty table is an error (the product would be empty), and so is a
--   product of more than 100000 experiments. Errors name 'experiment.grid'.
--   The order is deterministic: axes sorted by name, except `seed`, which varies fastest;
--   the last axis in that order varies fastest. Each experiment is a fresh plain table.
--   A dotted key through a string (optimizer = 'Adam', then 'optimizer.lr') turns the
--   string into its table ({'Adam', lr = ...}).
local check = require 'moonstep.check'

local M = {}

local function plain(v) return type(v) == 'table' and not check.is_tensor(v) and getmetatable(v) == nil end

local function copy(v, depth)
  if type(v) ~= 'table' then return v end
  if depth > 32 then check.fail('experiment.grid: a value is nested more than 32 levels deep (a cycle?)') end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x, depth + 1) end
  return out
end

-- A list 1..n (n >= 1) with nothing else: an axis.
local function is_list(v)
  if not plain(v) then return false end
  local n = #v
  if n == 0 then return false end
  local count = 0
  for _ in pairs(v) do count = count + 1 end
  return count == n
end

-- t[path] = v, creating tables on the way (a string on the way becomes {string}).
local function set(t, key, v)
  local parts = {}
  for part in key:gmatch('[^.]+') do parts[#parts + 1] = part end
  if #parts == 0 or key:sub(1, 1) == '.' or key:sub(-1) == '.' or key:find('..', 1, true) then
    check.fail('experiment.grid: axis name %s is not a field path such as \'lr\' or \'optimizer.rho\'', check.describe(key))
  end
  for i = 1, #parts - 1 do
    local k = parts[i]
    local cur = t[k]
    if cur == nil then cur = {} elseif type(cur) == 'string' then cur = { cur }
    elseif not plain(cur) then
      check.fail('experiment.grid: axis %s goes through %s, which is %s, expected a table', key,
                 table.concat(parts, '.', 1, i), check.describe(cur))
    end
    t[k] = cur
    t = cur
  end
  t[parts[#parts]] = copy(v, 0)
end

function M.grid(axes, base)
  if not plain(axes) then
    check.fail('experiment.grid: axes is %s, expected a table of field -> list of values', check.describe(axes))
  end
  if type(base) ~= 'nil' and not plain(base) then   -- (a NULL cdata == nil)
    check.fail('experiment.grid: base is %s, expected an experiment table', check.describe(base))
  end
  local names, fixed = {}, {}
  for k, v in pairs(axes) do
    if type(k) ~= 'string' then
      check.fail('experiment.grid: axes has the key %s, expected field names', check.describe(k))
    end
    if type(v) == 'table' and not plain(v) then
      check.fail('experiment.grid: axis %s is %s, expected a list of values', k, check.describe(v))
    end
    if plain(v) and next(v) == nil then
      check.fail('experiment.grid: axis %s is an empty list, expected at least one value (the product would be empty)', k)
    end
    if is_list(v) then names[#names + 1] = k else fixed[#fixed + 1] = k end
  end
  table.sort(names, function(a, b)
    if (a == 'seed') ~= (b == 'seed') then return b == 'seed' end
    return a < b
  end)
  table.sort(fixed)
  local total = 1
  for _, k in ipairs(names) do total = total * #axes[k] end
  if total > 100000 then
    check.fail('experiment.grid: the product has %.0f experiments, expected at most 100000', total)
  end
  local out = {}
  local idx = {}
  for i = 1, #names do idx[i] = 1 end
  while true do
    local e = copy(base or {}, 0)
    for _, k in ipairs(fixed) do set(e, k, axes[k]) end
    for i, k in ipairs(names) do set(e, k, axes[k][idx[i]]) end
    out[#out + 1] = e
    -- the odometer: the last axis turns fastest
    local i = #names
    while i >= 1 do
      idx[i] = idx[i] + 1
      if idx[i] <= #axes[names[i]] then break end
      idx[i] = 1
      i = i - 1
    end
    if i < 1 then break end
  end
  return out
end

return M
