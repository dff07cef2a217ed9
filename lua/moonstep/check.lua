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
    if info.source:sub(1, pkg_len) ~= pkg then
      -- a C function that moonstep itself called (the pcall of an optimizer's step) is
      -- not the user's frame
      local caller = info.what == 'C' and debug.getinfo(level + 1, 'S')
      if not (caller and caller.source:sub(1, pkg_len) == pkg) then return level - 1 end
    end
    level = level + 1
  end
end

-- Public methods of moonstep's classes (function -> method name), registered with
-- check.methods(cls). When an error is raised below one of them, the user called that
-- method: a message that does not already start with its name gets it in front
-- ("sub_: ..." from Dataset.normalize reads "Dataset.normalize: sub_: ..."), so a
-- method added later is named in its errors without a per-call rename.
-- The registry is shared by every copy of this module a process loads (a test runner
-- that reloads packages gets a second copy, while the Tensor metatype keeps the first).
local registry = debug.getregistry()
local methods = registry['moonstep.check.methods'] or setmetatable({}, { __mode = 'k' })
registry['moonstep.check.methods'] = methods

-- Whether v is an instance of class cls or of a subclass (classes chain by the
-- __index of their metatables; a class itself is not an instance).
local function is_instance(v, cls)
  if type(v) ~= 'table' then return false end
  local c = getmetatable(v)
  for _ = 1, 16 do
    if rawequal(c, cls) then return true end
    if type(c) ~= 'table' then return false end
    local mt = getmetatable(c)
    c = type(mt) == 'table' and rawget(mt, '__index') or nil
  end
  return false
end

-- Called on the class, not on an instance (Module:extend('Linear')).
local STATIC = { extend = true, new = true, define = true }

-- A public method f (a function whose first parameter is `self`, not '_'-prefixed)
-- wrapped so that a call without its object (obj.step(f) for obj:step(f)) is an error
-- naming it, and registered for naming the errors raised below it.
local function guard(cls, k, f)
  if type(k) ~= 'string' or k:match('^_') or STATIC[k] or type(f) ~= 'function'
     or methods[f] == false or debug.getlocal(f, 1) ~= 'self' then
    return f
  end
  methods[f] = k
  local wrapped = function(self, ...)
    if not is_instance(self, cls) then
      local cname = tostring(rawget(cls, '__name') or 'object')
      local var = M.field(cls, '__var') or 'obj'   -- how the docs name an instance: m, opt, ds
      M.fail('%s.%s: called on %s, expected an instance of %s (use %s:%s(...) with a colon)',
             cname, k, M.describe(self), cname, var, k)
    end
    return f(self, ...)                 -- a tail call: f's frame is the one below the user's
  end
  methods[wrapped] = false              -- already guarded
  return wrapped
end

-- Make class table cls's public methods (those present and those assigned later)
-- guarded and named: errors raised below them are named <self.__name>.<method>.
function M.methods(cls)
  local names = {}
  for k in pairs(cls) do names[#names + 1] = k end
  for _, k in ipairs(names) do rawset(cls, k, guard(cls, k, rawget(cls, k))) end
  local mt = getmetatable(cls)
  if mt == nil then mt = {}; setmetatable(cls, mt) end
  mt.__newindex = function(c, k, v) rawset(c, k, guard(c, k, v)) end
  return cls
end

-- The name of the public method the user called, from the frame at `level` (seen from
-- the caller of this function), or nil.
local function method_name(level)
  local info = debug.getinfo(level + 1, 'f')
  local k = info and methods[info.func]
  if type(k) ~= 'string' then return nil end
  local pname, self = debug.getlocal(level + 1, 1)
  if pname ~= 'self' then return nil end
  local cname = M.field(self, '__name')
  if type(cname) ~= 'string' then return nil end
  return cname .. '.' .. k
end

-- error(msg) at the user's line, named after the public method the user called (if
-- it is a registered one and the message does not start with its name).
function M.raise(msg)
  local level = M.user_level()          -- as error() counts: 1 = raise, 2 = its caller
  if type(msg) == 'string' and level > 2 then
    local name = method_name(level - 1)
    if name and msg:sub(1, #name + 1) ~= name .. ':' then msg = name .. ': ' .. msg end
  end
  error(msg, level)
end

-- check.fail(format, ...) = check.raise(format:format(...)).
function M.fail(f, ...)
  M.raise(fmt(f, ...))
end

-- f(...) with any error re-issued under fn's name, at the user's line: the one place
-- that renames what a public function's internal calls raise ("index_select: ..." ->
-- "Conv2d.forward: ..."; a raw message gets "fn: " in front).
function M.protect(fn, f, ...)
  local res = { pcall(f, ...) }
  if not res[1] then
    M.raise(M.rename(fn, (tostring(res[2]):gsub('^[^:\n]*:%d+: ', ''))))
  end
  return unpack(res, 2, table.maxn(res))
end

-- msg under the public name fn: its leading "name: " replaced, or fn put in front.
function M.rename(fn, msg)
  local head = msg:match('^([%w_%.]+): ')
  return head and fn .. msg:sub(#head + 1) or fn .. ': ' .. msg
end

-- What went wrong in err: without its "file:line: " position and leading "name: ".
function M.reason(err)
  return (tostring(err):gsub('^[^:\n]*:%d+: ', ''):gsub('^[%w_.:]+: ', ''))
end

-- A short, safe description of any value for an error message.
-- A callable: a function, or a table whose metatable has __call (a schedule object).
-- Hyper-parameters, schedules and transforms accept any of them as a function of the step.
function M.is_callable(v)
  if type(v) == 'function' then return true end
  local mt = type(v) == 'table' and getmetatable(v)
  return type(mt) == 'table' and type(rawget(mt, '__call')) == 'function'
end

M.is_tensor = function() return false end   -- set by moonstep.tensor_base
M.is_freed = function() return false end    -- likewise (the storage rule lives there)
function M.describe(v)
  local tv = type(v)
  if tv == 'number' then
    if v ~= v then return 'nan' end
    if v == huge then return 'inf' end
    if v == -huge then return '-inf' end
    if v == floor(v) and v > -1e21 and v < 1e21 then return fmt('%.0f', v) end
    for digits = 15, 16 do                 -- the shortest form that reads back exactly
      local s = fmt('%.' .. digits .. 'g', v)
      if tonumber(s) == v then return s end
    end
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

-- v[k] without running any __index function: a probe such as "is this a module?" on
-- an arbitrary value (the `ms` table, whose __index is strict, a tensor, a string)
-- must neither raise that value's own error nor run user code. Follows chains of
-- __index tables (classes); nil for anything else.
function M.field(v, k)
  if type(v) ~= 'table' then return nil end
  for _ = 1, 16 do                      -- class chains are short; a cycle must not hang
    local r = rawget(v, k)
    if r ~= nil then return r end
    local mt = getmetatable(v)
    v = type(mt) == 'table' and rawget(mt, '__index')
    if type(v) ~= 'table' then return nil end
  end
end

-- Edit distance of two short strings, capped (for "did you mean").
local function distance(a, b)
  if math.abs(#a - #b) > 2 or #a > 40 or #b > 40 then return 3 end
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

-- Make package table t strict: reading a missing name (ms.nn.Linaer) is an error naming
-- the package and the nearest names, not a nil that fails later as "attempt to call".
-- Generic probes (non-string keys, '__' names) still read nil; rawget never raises.
function M.strict(t, pkgname)
  local mt = getmetatable(t) or {}
  mt.__index = function(_, k)
    if type(k) ~= 'string' or k:sub(1, 2) == '__' then return nil end
    local near = {}
    for name in pairs(t) do
      if type(name) == 'string' and not name:match('^_') and
         (name:lower() == k:lower() or distance(name:lower(), k:lower()) <= 2) then
        near[#near + 1] = name
      end
    end
    table.sort(near)
    M.fail('%s: no function or class %s%s', pkgname, M.describe(k),
           #near > 0 and (' (did you mean ' .. table.concat(near, ' or ') .. '?)') or '')
  end
  return setmetatable(t, mt)
end

-- opts must be nil or a table whose keys are all in `accepted` (a list of names).
-- Returns opts, or an empty table for nil.
-- A file path: a non-empty string.
function M.path(fn, v)
  if type(v) ~= 'string' or v == '' then
    M.fail('%s: path is %s, expected a file path (a non-empty string)', fn, M.describe(v))
  end
  return v
end

-- accepted list -> set of its names (lists are usually module constants)
local accepted_sets = setmetatable({}, { __mode = 'k' })

function M.options(fn, opts, accepted)
  if type(opts) == 'nil' then return {} end
  if type(opts) ~= 'table' or M.is_tensor(opts) then
    M.fail('%s: options is %s, expected a table', fn, M.describe(opts))
  end
  for k, v in pairs(opts) do
    -- A NULL pointer compares equal to nil, so `opts.k ~= nil` tests would pass it on.
    if type(v) == 'cdata' and v == nil then
      M.fail('%s: option %s is a NULL pointer, expected a value or no entry', fn, M.describe(k))
    end
    local set = accepted_sets[accepted]
    if not set then
      set = {}
      for _, a in ipairs(accepted) do set[a] = true end
      accepted_sets[accepted] = set
    end
    if not set[k] then
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

-- A live float32 or float64 tensor. With `like` (a live tensor), of like's dtype and
-- device too; `whose` ends that message, saying what like is (default
-- '(as the input)'; a layer: "(the layer's); convert with :to()").
function M.float_tensor(fn, name, v, like, whose)
  M.tensor(fn, name, v)
  if v.dtype_id >= 2 then
    M.fail('%s: %s is %s, expected a float32 or float64 tensor', fn, name, M.describe(v))
  end
  if M.is_tensor(like) and not M.is_freed(like) and (v.dtype_id ~= like.dtype_id or v.device ~= like.device) then
    M.fail('%s: %s is %s on %s, expected %s on %s %s', fn, name, M.describe(v), v.device, like.dtype,
           like.device, whose or '(as the input)')
  end
  return v
end

-- The keys of table v in a fixed order: numbers, then strings, each sorted (other kinds
-- after, by type name).
local function key_order(a, b)
  if type(a) == type(b) and (type(a) == 'number' or type(a) == 'string') then return a < b end
  return type(a) < type(b)
end
function M.sorted_keys(v)
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, key_order)
  return keys
end

-- Whether an optional argument is given: anything but nil. A NULL pointer counts as
-- given (its own check then refuses it), where `v ~= nil` would drop it silently (a NULL
-- cdata compares equal to nil).
function M.given(v) return type(v) ~= 'nil' end

return M
