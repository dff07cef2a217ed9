-- moonstep.check — the argument checks every public Lua function shares.
--
--   local check = require 'moonstep.check'
--   opts = check.options('Conv2d', opts, { 'stride', 'padding', 'bias' })
--   n = check.integer('Linear', 'in_features', n, 1)        -- integral, finite, >= 1
--   x = check.number('clamp', 'min', x)                      -- any finite number
--   s = check.oneof('GELU', 'approximate', s, { 'none', 'tanh' })
--   check.fail('%s: ...', ...)                               -- raise at the user's line
--
-- Every message names the public function, the argument, what was given (check.describe)
-- and what was expected. Errors are raised at the first stack frame outside the
-- moonstep package, so the position is the user's line however deep the check sits.
local type, tostring, error, pairs, ipairs = type, tostring, error, pairs, ipairs
local fmt, floor, huge = string.format, math.floor, math.huge

local M = {}

-- '@/path/to/lua/moonstep/' : every file of the package has a source under it.
local pkg = debug.getinfo(1, 'S').source:match('^(@.*[/\\])[^/\\]*$') or '@moonstep/'
local pkg_len = #pkg

-- Stack level, seen from the caller of user_level, of the first frame that is not
-- moonstep's own Lua code (C frames such as pcall count as the user's).
function M.user_level()
  local level = 3                       -- 1 = user_level, 2 = its caller
  while true do
    local info = debug.getinfo(level, 'S')
    if not info then return 1 end
    if info.source:sub(1, pkg_len) ~= pkg then return level - 1 end
    level = level + 1
  end
end

-- error(msg) at the user's line.
function M.raise(msg)
  error(msg, M.user_level())
end

-- check.fail(format, ...) = check.raise(format:format(...)).
function M.fail(f, ...)
  error(fmt(f, ...), M.user_level())
end

-- A short, safe description of any value for an error message.
M.is_tensor = function() return false end   -- set by moonstep.tensor_base
M.is_freed = function() return false end    -- likewise (the storage rule lives there)
function M.describe(v)
  local tv = type(v)
  if tv == 'number' then
    if v ~= v then return 'nan' end
    if v == huge then return 'inf' end
    if v == -huge then return '-inf' end
    if v == floor(v) and v > -1e21 and v < 1e21 then return fmt('%.0f', v) end
    return fmt('%.17g', v)
  elseif tv == 'string' then
    if #v > 40 then v = v:sub(1, 37) .. '...' end
    return fmt('%q', v)
  elseif M.is_tensor(v) then
    local dims = {}
    for d = 0, v.ndim - 1 do dims[#dims + 1] = tostring(tonumber(v.sizes[d])) end
    local dtype = ({ [0] = 'float32', 'float64', 'int64', 'uint8' })[v.dtype_id] or '?'
    local what = M.is_freed(v) and 'a freed ' or 'a '
    return what .. dtype .. ' tensor [' .. table.concat(dims, ',') .. ']'
  elseif tv == 'nil' then
    return 'nil'
  elseif tv == 'boolean' then
    return tostring(v)
  elseif tv == 'table' then
    local ok, name = pcall(function() return v.__name end)  -- a strict __index may raise
    if ok and type(name) == 'string' then return 'a ' .. name end
  end
  return 'a ' .. tv
end

-- opts must be nil or a table whose keys are all in `accepted` (a list of names).
-- Returns opts, or an empty table for nil.
function M.options(fn, opts, accepted)
  if opts == nil then return {} end
  if type(opts) ~= 'table' or M.is_tensor(opts) then
    M.fail('%s: options is %s, expected a table', fn, M.describe(opts))
  end
  for k in pairs(opts) do
    local known = false
    for _, a in ipairs(accepted) do if a == k then known = true; break end end
    if not known then
      local names = {}
      for i, a in ipairs(accepted) do names[i] = a end
      table.sort(names)
      M.fail('%s: unknown option %s, expected one of: %s', fn, M.describe(k),
             #names > 0 and table.concat(names, ', ') or '(none)')
    end
  end
  return opts
end

local function range_text(lo, hi)
  if lo and hi then return fmt(' in [%s, %s]', M.describe(lo), M.describe(hi)) end
  if lo then return ' >= ' .. M.describe(lo) end
  if hi then return ' <= ' .. M.describe(hi) end
  return ''
end

-- A finite number in [lo, hi] (either bound may be nil).
function M.number(fn, name, v, lo, hi)
  if type(v) ~= 'number' or v ~= v or v == huge or v == -huge
     or (lo and v < lo) or (hi and v > hi) then
    M.fail('%s: %s is %s, expected a finite number%s', fn, name, M.describe(v), range_text(lo, hi))
  end
  return v
end

-- An integral number in [lo, hi]; bounds default to what an int64 and a double share.
function M.integer(fn, name, v, lo, hi)
  if type(v) ~= 'number' or v ~= floor(v) or v == huge or v == -huge
     or v < (lo or -2 ^ 53) or v > (hi or 2 ^ 53) then
    M.fail('%s: %s is %s, expected an integer%s', fn, name, M.describe(v), range_text(lo, hi))
  end
  return v
end

function M.boolean(fn, name, v)
  if type(v) ~= 'boolean' then
    M.fail('%s: %s is %s, expected true or false', fn, name, M.describe(v))
  end
  return v
end

-- One of a list of strings.
function M.oneof(fn, name, v, choices)
  for _, c in ipairs(choices) do if v == c then return v end end
  local quoted = {}
  for i, c in ipairs(choices) do quoted[i] = fmt('%q', c) end
  M.fail('%s: %s is %s, expected %s', fn, name, M.describe(v), table.concat(quoted, ' or '))
end

-- A live tensor (not freed).
function M.tensor(fn, name, v)
  if not M.is_tensor(v) then
    M.fail('%s: %s is %s, expected a tensor', fn, name, M.describe(v))
  end
  if M.is_freed(v) then
    M.fail('%s: %s was freed (used after :free()), expected a live tensor', fn, name)
  end
  return v
end

return M
