-- moonstep.checkpoint — ms.save(path, value) and ms.load(path [, {device =}]).
--
-- A value is nil, a boolean, a number, a string, a tensor (any dtype, any device) or a
-- table of those (nested; keys numbers, strings or booleans; no cycles). The file
-- format is in runtime/include/moonstep.h: a header with magic, version, payload
-- length and CRC-32, then the value. Writing goes to `path.tmp`, is flushed to disk
-- (fsync) and renamed over `path`, so a crash mid-write leaves the previous
-- checkpoint intact. Loading validates the whole file in C (runtime/checkpoint.c)
-- before building anything; tensors come back on opts.device (default: cpu).
local ffi = require 'ffi'
local ms = require 'moonstep'
local core = require 'moonstep.core'
local C = core.C

ffi.cdef [[
typedef struct FILE FILE;
FILE *fopen(const char *path, const char *mode);
size_t fwrite(const void *p, size_t size, size_t n, FILE *f);
size_t fread(void *p, size_t size, size_t n, FILE *f);
int fseek(FILE *f, long off, int whence);
long ftell(FILE *f);
int fflush(FILE *f);
int fclose(FILE *f);
int fileno(FILE *f);
int fsync(int fd);
int rename(const char *from, const char *to);
int unlink(const char *path);
char *strerror(int errnum);
]]

local M = {}

local TAG = { ['nil'] = 0, ['false'] = 1, ['true'] = 2, number = 3, string = 4, table = 5, tensor = 6 }
local DTYPE_ID = { float32 = 0, float64 = 1, int64 = 2, uint8 = 3 }
local ESIZE = { [0] = 4, 8, 8, 1 }

-- A writer that streams bytes to a FILE* and keeps a running CRC-32 and length.
local function writer(f)
  local w = { crc = 0, len = 0 }
  local u8, u64, f64 = ffi.new('uint8_t[1]'), ffi.new('uint64_t[1]'), ffi.new('double[1]')
  function w.bytes(p, n)
    if n > 0 then
      if ffi.C.fwrite(p, 1, n, f) ~= n then error('save: write failed (disk full?)', 0) end
      w.crc = C.ms_crc32(w.crc, p, n)
      w.len = w.len + n
    end
  end
  function w.u8(v) u8[0] = v; w.bytes(u8, 1) end
  function w.u64(v) u64[0] = v; w.bytes(u64, 8) end   -- little-endian host (x86-64, arm64)
  function w.f64(v) f64[0] = v; w.bytes(f64, 8) end
  return w
end

local function key_order(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta < tb end
  if ta == 'boolean' then return (not a) and b end
  return a < b
end

local function encode(w, v, path, seen)
  local t = type(v)
  if v == nil then w.u8(TAG['nil'])
  elseif t == 'boolean' then w.u8(v and TAG['true'] or TAG['false'])
  elseif t == 'number' then w.u8(TAG.number); w.f64(v)
  elseif t == 'string' then w.u8(TAG.string); w.u64(#v); w.bytes(v, #v)
  elseif ms.is_tensor(v) then
    if v.storage == nil then error(('save: the tensor at %s was freed'):format(path), 0) end
    local c = v:to('cpu'):contiguous()
    w.u8(TAG.tensor); w.u8(DTYPE_ID[c.dtype]); w.u8(c:dim())
    for d = 1, c:dim() do w.u64(c:size(d)) end
    w.bytes(ffi.cast('uint8_t*', c.storage.data) + c.offset * ESIZE[c.dtype_id], c:numel() * ESIZE[c.dtype_id])
  elseif t == 'table' then
    if seen[v] then error(('save: the table at %s contains itself (a cycle)'):format(path), 0) end
    seen[v] = true
    local keys = {}
    for k in pairs(v) do
      local kt = type(k)
      if kt ~= 'number' and kt ~= 'string' and kt ~= 'boolean' then
        error(('save: a key of the table at %s is a %s; keys must be numbers, strings or booleans'):format(path, kt), 0)
      end
      keys[#keys + 1] = k
    end
    table.sort(keys, key_order)
    w.u8(TAG.table); w.u64(#keys)
    for _, k in ipairs(keys) do
      encode(w, k, path, seen)
      encode(w, v[k], path .. '.' .. tostring(k), seen)
    end
    seen[v] = nil
  else
    error(('save: the value at %s is a %s, which cannot be saved (nil, booleans, numbers, strings, tensors, tables)'):format(path, t), 0)
  end
end

local function errno_msg() return ffi.string(ffi.C.strerror(ffi.errno())) end

function M.save(path, value)
  if type(path) ~= 'string' then error('save: expected a file path', 2) end
  local tmp = path .. '.tmp'
  local f = ffi.C.fopen(tmp, 'wb')
  if f == nil then error(('save: cannot write %s: %s'):format(tmp, errno_msg()), 2) end
  local ok, err = pcall(function()
    ffi.C.fwrite(('\0'):rep(32), 1, 32, f)        -- header placeholder
    local w = writer(f)
    encode(w, value, 'root', {})
    local header = ffi.new('uint8_t[32]')
    ffi.copy(header, 'MSCKPT\r\n', 8)
    ffi.cast('uint32_t*', header + 8)[0] = C.MS_CKPT_VERSION
    ffi.cast('uint64_t*', header + 16)[0] = w.len
    ffi.cast('uint32_t*', header + 24)[0] = w.crc
    if ffi.C.fseek(f, 0, 0) ~= 0 or ffi.C.fwrite(header, 1, 32, f) ~= 32 then
      error('save: cannot write the header: ' .. errno_msg(), 0)
    end
    if ffi.C.fflush(f) ~= 0 or ffi.C.fsync(ffi.C.fileno(f)) ~= 0 then
      error('save: cannot flush to disk: ' .. errno_msg(), 0)
    end
  end)
  ffi.C.fclose(f)
  if not ok then
    ffi.C.unlink(tmp)
    error(err, 2)
  end
  if ffi.C.rename(tmp, path) ~= 0 then
    local msg = errno_msg()
    ffi.C.unlink(tmp)
    error(('save: cannot rename %s to %s: %s'):format(tmp, path, msg), 2)
  end
end

-- Build the value from the validated node list, pre-order.
local function build(nodes, count, buf, device)
  local i = -1
  local function next_value()
    i = i + 1
    local n = nodes[i]
    local tag = n.tag
    if tag == 0 then return nil
    elseif tag == 1 then return false
    elseif tag == 2 then return true
    elseif tag == 3 then return n.number
    elseif tag == 4 then return ffi.string(buf + n.offset, n.length)
    elseif tag == 5 then
      local t = {}
      for _ = 1, tonumber(n.length) do
        local k = next_value()
        local v = next_value()
        if k == nil or k ~= k then error('load: corrupt checkpoint: a table key is nil or NaN', 0) end
        t[k] = v
      end
      return t
    else
      local shape = {}
      for d = 1, n.ndim do shape[d] = tonumber(n.sizes[d - 1]) end
      local dtype = ({ [0] = 'float32', 'float64', 'int64', 'uint8' })[n.dtype]
      local t = ms.empty(shape, dtype)
      if n.length > 0 then ffi.copy(t.storage.data, buf + n.offset, n.length) end
      return device ~= 'cpu' and t:to(device) or t
    end
  end
  local v = next_value()
  assert(i + 1 == count)
  return v
end

function M.load(path, opts)
  if type(path) ~= 'string' then error('load: expected a file path', 2) end
  local device = (opts and opts.device) or 'cpu'
  local f = ffi.C.fopen(path, 'rb')
  if f == nil then error(('load: cannot open %s: %s'):format(path, errno_msg()), 2) end
  ffi.C.fseek(f, 0, 2)
  local len = tonumber(ffi.C.ftell(f))
  ffi.C.fseek(f, 0, 0)
  local buf = ffi.new('uint8_t[?]', math.max(len, 1))
  local got = tonumber(ffi.C.fread(buf, 1, len, f))
  ffi.C.fclose(f)
  if got ~= len then error(('load: %s: read %d of %d bytes'):format(path, got, len), 2) end
  local count = ffi.new('int64_t[1]')
  if C.ms_ckpt_parse(buf, len, nil, 0, count) ~= 0 then
    error(path .. ': ' .. ffi.string(C.ms_last_error()), 2)
  end
  local nodes = ffi.new('ms_ckpt_node[?]', count[0])
  if C.ms_ckpt_parse(buf, len, nodes, count[0], count) ~= 0 then
    error(path .. ': ' .. ffi.string(C.ms_last_error()), 2)
  end
  local ok, v = pcall(build, nodes, tonumber(count[0]), buf, device)
  if not ok then error(path .. ': ' .. tostring(v), 2) end
  return v
end

return M
