-- moonstep.repl_show — how the REPL prints a value (no evaluation here):
--   show(v) -> text     tensors in full at the top level and as one-line summaries inside
--                       tables; objects through their own __tostring (datasets, optimizers,
--                       schedules, models; one line inside a table); tables to depth 3, at
--                       most MAX_KEYS fields each, cycles marked; strings inside tables cut.
-- Never raises for a failing __tostring (of a table, userdata or cdata): it says so.
local T = require 'moonstep.tensor'

local M = {}

local function summary(t)
  if T.is_freed(t) then return 'ms.Tensor (freed)' end
  local dims = table.concat(t:shape(), 'x')
  return ('ms.Tensor %s %s %s'):format(t.dtype, dims == '' and 'scalar' or dims, t.device)
end

-- tostring through the value's own __tostring (datasets, optimizers, schedules, models),
-- or nil when it has none; an __tostring that fails is reported, not raised.
-- (a userdata or cdata with a failing __tostring, too: tostring itself is protected)
local function reported(v, s)
  local why = type(s) == 'string' and s or ('it returned ' .. type(s))
  return ('<%s: tostring failed: %s>'):format(type(v), why)
end
local function own_tostring(v)
  local mt = debug.getmetatable(v)
  if type(mt) ~= 'table' or rawget(mt, '__tostring') == nil then return nil end
  local ok, s = pcall(tostring, v)
  if ok and type(s) == 'string' then return s end
  return reported(v, s)
end
local function safe_tostring(v)
  local ok, s = pcall(tostring, v)
  if ok and type(s) == 'string' then return s end
  return reported(v, s)
end

local MAX_KEYS = 50          -- fields shown per table
local MAX_SORT = 10000       -- beyond this many keys, the first ones found are shown unsorted
local MAX_STRING = 200       -- a string inside a table is cut after this many bytes

local function show(v, depth, seen)
  depth, seen = depth or 0, seen or {}
  if T.is_tensor(v) then return depth == 0 and safe_tostring(v) or summary(v) end
  if type(v) == 'string' then
    if depth == 0 then return v end
    if #v > MAX_STRING then return ('%q'):format(v:sub(1, MAX_STRING)) .. ('... (%d bytes)'):format(#v) end
    return ('%q'):format(v)
  end
  if type(v) ~= 'table' then return safe_tostring(v) end
  local own = own_tostring(v)
  if own then return depth == 0 and own or (own:match('^[^\n]*')) end
  if seen[v] then return '<cycle>' end
  if depth >= 3 then return safe_tostring(v) end
  seen[v] = true
  local keys, count = {}, 0
  for k in next, v do
    count = count + 1
    if count <= MAX_SORT then keys[#keys + 1] = k end
  end
  if count <= MAX_SORT then
    table.sort(keys, function(a, b)
      if type(a) == type(b) and (type(a) == 'number' or type(a) == 'string') then return a < b end
      return type(a) < type(b)
    end)
  end
  local parts, pad = {}, ('  '):rep(depth + 1)
  for n, k in ipairs(keys) do
    if n > MAX_KEYS then parts[#parts + 1] = pad .. ('... (%d entries)'):format(count); break end
    local key = type(k) == 'string' and k:match('^[%a_][%w_]*$') and k or ('[' .. show(k, depth + 1, seen) .. ']')
    parts[#parts + 1] = pad .. key .. ' = ' .. show(rawget(v, k), depth + 1, seen)
  end
  seen[v] = nil
  if #parts == 0 then return '{}' end
  return '{\n' .. table.concat(parts, ',\n') .. '\n' .. ('  '):rep(depth) .. '}'
end
M.show = show

return M
