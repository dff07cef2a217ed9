-- moonstep.json — JSON through Debian's dkjson (lua-dkjson), canonical on output.
--
--   local json = require 'moonstep.json'
--   s = json.encode(v [, {indent = true}])   object keys sorted at every level, numbers
--       written in the shortest form that reads back to the same double (dkjson's own
--       tostring keeps 14 digits); nan and +-inf become null. The same value always gives
--       the same string (what experiment ids hash).
--   v = json.decode(s [, source])            a plain Lua value (JSON null -> nil); a
--       malformed text is an error naming source (a file name) and the position
--   v = json.read(path)                      decode the file at path
--   json.write(path, v [, {indent = true}])  encode into path atomically (a temporary
--       file beside it renamed over it: a reader sees the old or the new file, never a
--       half-written one, also after kill -9)
-- Errors name the public function: 'json.encode', 'json.decode', 'json.read', 'json.write'.
local check = require 'moonstep.check'

local M = {}

local dk
local function dkjson(who)
  if not dk then
    local ok, mod = pcall(require, 'dkjson')
    if not ok then
      check.fail('%s: the JSON library dkjson is not installed (Debian package lua-dkjson; scripts/install-deps.sh installs it)', who)
    end
    dk = mod
  end
  return dk
end

local fmt, floor, huge = string.format, math.floor, math.huge

-- The shortest decimal that reads back as exactly v.
local function number_text(v)
  if v ~= v or v == huge or v == -huge then return 'null' end
  if v == floor(v) and v > -1e15 and v < 1e15 then return fmt('%d', v) end
  for digits = 15, 16 do
    local s = fmt('%.' .. digits .. 'g', v)
    if tonumber(s) == v then return s end
  end
  return fmt('%.17g', v)
end
M._number_text = number_text   -- (for experiment/record.lua and summary.lua)

local NUM = { __tojson = function(box) return box[1] end }

-- A copy of v where numbers are boxed (written by number_text) and keys collected;
-- path names the place of an unsupported value in errors.
local function prepare(who, v, keys, path, seen, depth)
  local tv = type(v)
  if tv == 'number' then return setmetatable({ number_text(v) }, NUM) end
  if tv == 'string' or tv == 'boolean' then return v end
  if tv ~= 'table' or check.is_tensor(v) or getmetatable(v) ~= nil then
    check.fail('%s: %s is %s, expected a JSON value (a number, string, boolean or plain table)',
               who, path, check.describe(v))
  end
  if seen[v] then check.fail('%s: %s is a table that contains itself', who, path) end
  if depth > 64 then check.fail('%s: %s is nested more than 64 levels deep', who, path) end
  seen[v] = true
  local n, count = #v, 0
  for _ in pairs(v) do count = count + 1 end
  local out = {}
  if count == n and n > 0 then            -- a list
    for i = 1, n do out[i] = prepare(who, v[i], keys, ('%s[%d]'):format(path, i), seen, depth + 1) end
  else                                    -- an object: string keys only
    for k, x in pairs(v) do
      if type(k) ~= 'string' then
        check.fail('%s: %s has the key %s, expected string keys (or a list 1..n)', who, path, check.describe(k))
      end
      keys[k] = true
      out[k] = prepare(who, x, keys, path .. '.' .. k, seen, depth + 1)
    end
    if n == 0 then setmetatable(out, { __jsontype = 'object' }) end
  end
  seen[v] = nil
  return out
end

local function encode(who, v, opts)
  opts = check.options(who, opts, { 'indent' })
  local keys = {}
  local boxed = prepare(who, v, keys, 'the value', {}, 0)
  local order = {}
  for k in pairs(keys) do order[#order + 1] = k end
  table.sort(order)
  local ok, s = pcall(dkjson(who).encode, boxed, { indent = opts.indent and true or nil, keyorder = order })
  if not ok then check.fail('%s: %s', who, check.reason(s)) end
  return s
end

function M.encode(v, opts) return encode('json.encode', v, opts) end

local function decode(who, s, source)
  if type(s) ~= 'string' then check.fail('%s: text is %s, expected a string', who, check.describe(s)) end
  source = source or 'the text'
  local ok, v, pos, err = pcall(dkjson(who).decode, s, 1, nil, nil, nil)
  if not ok then
    err = check.reason(v)
    v = nil
    if err:find('stack overflow', 1, true) then err = 'arrays or objects nested too deeply for the parser' end
  end
  if err or (v == nil and not s:match('^%s*null%s*$')) then
    check.fail('%s: %s is not valid JSON: %s', who, source, tostring(err or 'no value'))
  end
  -- anything but white space after the value is an error too
  if pos and s:find('%S', pos) then
    check.fail('%s: %s is not valid JSON: unexpected text after the value at byte %d', who, source, s:find('%S', pos))
  end
  return v
end

function M.decode(s, source) return decode('json.decode', s, source) end

function M.read(path)
  check.path('json.read', path)
  local f, err = io.open(path, 'rb')
  if not f then check.fail('json.read: cannot open %s: %s', path, tostring(err)) end
  local s = f:read('*a')
  f:close()
  if type(s) ~= 'string' then check.fail('json.read: cannot read %s (a directory?)', path) end
  return decode('json.read', s, path)
end

local ffi = require 'ffi'
pcall(ffi.cdef, 'int getpid(void);')
local serial = 0

-- Write text into path atomically: a temporary beside it (named after this process and
-- a counter: concurrent writers never share one), then rename (one directory).
function M._write_text(who, path, text)
  serial = serial + 1
  local tmp = ('%s.tmp-%d-%d'):format(path, ffi.C.getpid(), serial)
  local f, err = io.open(tmp, 'wb')
  if not f then
    err = tostring(err)
    if err:sub(1, #tmp + 2) == tmp .. ': ' then err = err:sub(#tmp + 3) end    -- the message repeats the path
    check.fail('%s: cannot write %s: %s', who, path, err)
  end
  local ok, werr = f:write(text)
  local cok = f:close()
  if not ok or not cok then
    os.remove(tmp)
    check.fail('%s: cannot write %s: %s', who, path, tostring(werr or 'close failed'))
  end
  local rok, rerr = os.rename(tmp, path)
  if not rok then
    os.remove(tmp)
    if tostring(rerr):find('Is a directory', 1, true) then
      check.fail('%s: %s is a directory, expected a file path', who, path)
    end
    check.fail('%s: cannot rename the temporary file over %s: %s', who, path, tostring(rerr))
  end
end

function M.write(path, v, opts)
  check.path('json.write', path)
  M._write_text('json.write', path, encode('json.write', v, opts) .. '\n')
end

return check.strict(M, 'moonstep.json')
