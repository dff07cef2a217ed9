-- moonstep.checkpoint — ms.save(path, value) and ms.load(path [, {device =}]).
--
-- A value is nil, a boolean, a number, a string, a tensor (any dtype, any device) or a
-- plain table of those (no metatable; keys numbers, strings or booleans; no cycles;
-- nested at most MS_CKPT_MAX_DEPTH = 64 tables deep, the limit ms.load enforces too).
-- Modules, optimizers and other objects are refused: save model:state_dict() and
-- opt:state(). The file format is in runtime/include/moonstep.h.
--
-- Saving is atomic and safe with concurrent savers: runtime/checkpoint.c writes a unique
-- temporary file "<path>.tmp-XXXXXX" next to path, fsyncs it, renames it over path and
-- fsyncs the directory; on any error the temporary is removed and path is untouched.
-- (A process killed mid-save can leave its temporary behind, never a broken path.)
-- Loading reads the whole file (regular files only), validates it in C before building
-- anything, then decodes it value by value; tensors come back on opts.device (cpu).
local ffi = require 'ffi'
local ms = require 'moonstep'
local core = require 'moonstep.core'
local check = require 'moonstep.check'
local T = require 'moonstep.tensor'
local C = core.C

local M = {}
M.MAX_DEPTH = C.MS_CKPT_MAX_DEPTH

local TAG = { ['nil'] = 0, ['false'] = 1, ['true'] = 2, number = 3, string = 4, table = 5, tensor = 6 }
local DTYPE_ID = { float32 = 0, float64 = 1, int64 = 2, uint8 = 3 }
local DTYPE_NAME = { [0] = 'float32', 'float64', 'int64', 'uint8' }
local ESIZE = { [0] = 4, 8, 8, 1 }

local function c_error() return ffi.string(C.ms_last_error()) end

-- 'root', 'root.model', 'root.layers[2]', 'root["a b"]': where a value sits.
local function key_path(path, k)
  if type(k) == 'string' and k:match('^[%a_][%w_]*$') then return path .. '.' .. k end
  if type(k) == 'string' then return ('%s[%q]'):format(path, k) end
  return ('%s[%s]'):format(path, check.describe(k))
end

-- Why a table with a metatable is refused, and what to save instead.
local function object_error(v, path)
  local f = check.field                 -- no __index runs: v may be the strict ms table
  local name = type(f(v, '__name')) == 'string' and f(v, '__name') or nil
  if type(f(v, 'state_dict')) == 'function' then
    return ('ms.save: the value at %s is a %s module, which ms.save does not store; save ' ..
            'model:state_dict() instead (restore with model:load_state_dict(ms.load(path)))'):format(
            path, name or 'nn')
  elseif type(f(v, 'state')) == 'function' and type(f(v, 'load_state')) == 'function' then
    return ('ms.save: the value at %s is a %s optimizer, which ms.save does not store; save ' ..
            'opt:state() instead (restore with opt:load_state(...))'):format(path, name or '')
  end
  return ('ms.save: the value at %s is %s with a metatable (an object, not plain data); ' ..
          'ms.save stores nil, booleans, numbers, strings, tensors and plain tables: save ' ..
          'its data instead'):format(path, name and ('a ' .. name) or 'a table')
end

-- Streams the encoding of v into the writer w (see the format in moonstep.h).
local function encoder(w)
  local u8, u64, f64 = ffi.new('uint8_t[1]'), ffi.new('uint64_t[1]'), ffi.new('double[1]')
  local function bytes(p, n)
    if C.ms_ckpt_write(w, p, n) ~= 0 then error('ms.save: ' .. c_error(), 0) end
  end
  local function put8(v) u8[0] = v; bytes(u8, 1) end
  local function put64(v) u64[0] = v; bytes(u64, 8) end   -- little-endian host (x86-64, arm64)
  local function key_order(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    if ta == 'boolean' then return (not a) and b end
    return a < b
  end

  local function encode(v, path, depth, seen)
    if depth > M.MAX_DEPTH then
      error(('ms.save: the value at %s is nested %d tables deep, more than the %d that ' ..
             'ms.load accepts'):format(path:sub(1, 200), depth, M.MAX_DEPTH), 0)
    end
    local t = type(v)
    if v == nil then put8(TAG['nil'])
    elseif t == 'boolean' then put8(v and TAG['true'] or TAG['false'])
    elseif t == 'number' then put8(TAG.number); f64[0] = v; bytes(f64, 8)
    elseif t == 'string' then put8(TAG.string); put64(#v); bytes(v, #v)
    elseif ms.is_tensor(v) then
      if T.is_freed(v) then error(('ms.save: the tensor at %s was freed'):format(path), 0) end
      local c = v:to('cpu'):contiguous()
      put8(TAG.tensor); put8(DTYPE_ID[c.dtype]); put8(c:dim())
      for d = 1, c:dim() do put64(c:size(d)) end
      local es = ESIZE[c.dtype_id]
      bytes(ffi.cast('uint8_t*', T.data(c, 'ms.save')) + c.offset * es, c:numel() * es)
    elseif t == 'table' then
      if getmetatable(v) ~= nil then error(object_error(v, path), 0) end
      if seen[v] then
        error(('ms.save: the table at %s is the table at %s again (a cycle)'):format(path, seen[v]), 0)
      end
      seen[v] = path
      local keys = {}
      for k in pairs(v) do
        local kt = type(k)
        if kt ~= 'number' and kt ~= 'string' and kt ~= 'boolean' then
          error(('ms.save: a key of the table at %s is %s; keys must be numbers, strings or booleans'):format(
            path, check.describe(k)), 0)
        end
        keys[#keys + 1] = k
      end
      table.sort(keys, key_order)
      put8(TAG.table); put64(#keys)
      for _, k in ipairs(keys) do
        encode(k, path, depth + 1, seen)
        encode(v[k], key_path(path, k), depth + 1, seen)
      end
      seen[v] = nil
    else
      error(('ms.save: the value at %s is %s, which cannot be saved (nil, booleans, numbers, ' ..
             'strings, tensors and plain tables can)'):format(path, check.describe(v)), 0)
    end
  end
  return encode
end

function M.save(path, value)
  check.path('ms.save', path)
  local w = C.ms_ckpt_begin(path)
  if w == nil then check.fail('ms.save: cannot save to %s: %s', path, c_error()) end
  w = ffi.gc(w, C.ms_ckpt_abort)   -- removes the temporary if anything below escapes
  local ok, err = pcall(encoder(w), value, 'root', 0, {})
  ffi.gc(w, nil)
  if not ok then
    C.ms_ckpt_abort(w)
    err = tostring(err)
    err = 'ms.save: ' .. path .. ': ' .. (err:find('^ms%.save: ') and err:sub(10) or err)
    check.raise(err)
  end
  if C.ms_ckpt_commit(w) ~= 0 then check.fail('ms.save: cannot save to %s: %s', path, c_error()) end
end

-- Builds the value from a validated payload, one node at a time.
local function build(buf, len, device, path)
  local node = ffi.new('ms_ckpt_node')
  local pos = ffi.new('int64_t[1]', 32)
  local function corrupt(msg) error(('ms.load: %s: corrupt checkpoint: %s'):format(path, msg), 0) end
  local function next_value()
    if C.ms_ckpt_next(buf, len, pos, node) ~= 0 then error(('ms.load: %s: %s'):format(path, c_error()), 0) end
    local tag = node.tag
    if tag == 0 then return nil
    elseif tag == 1 then return false
    elseif tag == 2 then return true
    elseif tag == 3 then return node.number
    elseif tag == 4 then return ffi.string(buf + node.offset, node.length)
    elseif tag == 5 then
      local t = {}
      for _ = 1, tonumber(node.length) do
        local k = next_value()
        local v = next_value()
        if k == nil or k ~= k then corrupt('a table key is nil or NaN') end
        if type(k) == 'table' or ms.is_tensor(k) then corrupt('a table key is a table or tensor') end
        if rawget(t, k) ~= nil then corrupt(('the key %s appears twice'):format(check.describe(k))) end
        t[k] = v
      end
      return t
    else
      local shape = {}
      for d = 1, node.ndim do shape[d] = tonumber(node.sizes[d - 1]) end
      local offset, length = node.offset, node.length
      local t = ms.empty(shape, DTYPE_NAME[node.dtype])
      if length > 0 then ffi.copy(T.data(t, 'ms.load'), buf + offset, length) end
      return device ~= 'cpu' and t:to(device) or t
    end
  end
  local v = next_value()
  if pos[0] ~= len then corrupt('bytes after the value') end
  return v
end

function M.load(path, opts)
  check.path('ms.load', path)
  opts = check.options('ms.load', opts, { 'device' })
  local device = opts.device == nil and 'cpu' or check.oneof('ms.load', 'device', opts.device, { 'cpu', 'cuda' })
  if device == 'cuda' and not ms.cuda.is_available() then
    check.fail("ms.load: device 'cuda' was asked for, but CUDA is not available on this machine")
  end
  local bufp, lenp = ffi.new('uint8_t*[1]'), ffi.new('int64_t[1]')
  if C.ms_read_file(path, -1, bufp, lenp) ~= 0 then check.fail('ms.load: %s', c_error()) end
  local buf, len = ffi.gc(bufp[0], C.ms_free_file), lenp[0]
  local count = ffi.new('int64_t[1]')
  if C.ms_ckpt_parse(buf, len, nil, 0, count) ~= 0 then
    check.fail('ms.load: %s: %s', path, c_error())
  end
  local ok, v = pcall(build, buf, len, device, path)
  ffi.gc(buf, nil)
  C.ms_free_file(buf)
  if not ok then
    v = tostring(v)
    if not v:find('^ms%.load: ') then v = ('ms.load: %s: %s'):format(path, v) end
    check.raise(v)
  end
  return v
end

return M
