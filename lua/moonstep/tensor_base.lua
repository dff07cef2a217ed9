-- moonstep.tensor_base — what the tensor files share: the Tensor ctype (an ffi.metatype
-- over the C `ms_tensor` struct), dtype/device names, argument parsing (sizes, dims,
-- values, options) and allocation.
--
-- THE STORAGE RULE. This is the only Lua file that reads a tensor's `storage` field
-- (tests/tensor_storage_rule_spec.lua enforces it). A released tensor (t:free()) keeps
-- its header but its storage pointer is NULL, and LuaJIT does not check NULL before a
-- field read: `t.storage.device` on a freed tensor kills the process. Everything else
-- goes through B.device_id(t, fn), B.data(t, fn), B.storage_key(t) or t.device, each
-- of which raises "<fn>: tensor was freed ..." at the user's line. C entry points check
-- the same through ms_check_tensor.
local core = require 'moonstep.core'
local check = require 'moonstep.check'
local ffi, C = core.ffi, core.C
local ffi_new = ffi.new
local floor, huge, type, tostring, select = math.floor, math.huge, type, tostring, select
local fmt, concat = string.format, table.concat

local B = { check = check }
local Tensor = {}        -- the methods, filled by the tensor_* files
B.Tensor = Tensor

B.MAX_DIMS = 8
B.DTYPES = { float32 = 0, float64 = 1, int64 = 2, uint8 = 3 }
B.DTYPE_NAMES = { [0] = 'float32', 'float64', 'int64', 'uint8' }
B.PTR_TYPES = { [0] = ffi.typeof('float*'), ffi.typeof('double*'),
                ffi.typeof('int64_t*'), ffi.typeof('uint8_t*') }
B.DEVICES = { cpu = 0, cuda = 1, ['cuda:0'] = 1 }
B.DEVICE_NAMES = { [0] = 'cpu', 'cuda' }
local DTYPES, DTYPE_NAMES, DEVICES, DEVICE_NAMES = B.DTYPES, B.DTYPE_NAMES, B.DEVICES, B.DEVICE_NAMES

-- Scratch buffers reused by every call (the Lua side is single-threaded); nothing
-- writes more than MAX_DIMS entries (B.check_rank runs first).
local shape_buf = ffi_new('int64_t[8]')
local stride_buf = ffi_new('int64_t[8]')
B.index_buf = ffi_new('int64_t[8]')
B.value_buf = ffi_new('double[1]')

local TensorCT  -- set by ffi.metatype below
local function is_tensor(x) return type(x) == 'cdata' and ffi.istype(TensorCT, x) end
B.is_tensor = is_tensor

---------------------------------------------------------------------------------------
-- storage access: the one place (see the header)
---------------------------------------------------------------------------------------
local function freed(t) return t.storage == nil end
B.freed = freed

-- Raise unless v is a live tensor. name: how the message calls it ('tensor' for self).
function B.live(fn, v, name)
  if not is_tensor(v) then
    check.fail('%s: %s is %s, expected a tensor', fn, name or 'tensor', check.describe(v))
  end
  if v.storage == nil then
    check.fail('%s: %s was freed (used after :free()), expected a live tensor', fn,
               name or 'tensor')
  end
  return v
end
local live = B.live

-- The device id (0 cpu, 1 cuda) of a live tensor.
function B.device_id(t, fn)
  local s = t.storage
  if s == nil then live(fn, t) end
  return s.device
end

-- A typed pointer to element 0 of a live CPU tensor's storage (add t.offset).
function B.data(t, fn)
  local s = t.storage
  if s == nil then live(fn, t) end
  if s.device ~= 0 then
    check.fail('%s: tensor is on %s, expected a cpu tensor', fn, DEVICE_NAMES[s.device])
  end
  if C.ms_tensor_check(t) ~= 0 then B.fail(fn) end   -- a header a script overwrote
  return ffi.cast(B.PTR_TYPES[t.dtype_id], s.data)
end

-- The address of element 0 of a live tensor on any device (a device pointer for GPU
-- tensors: only for handing to the runtime, never to dereference in Lua).
function B.address(t, fn)
  local s = t.storage
  if s == nil then live(fn, t) end
  if C.ms_tensor_check(t) ~= 0 then B.fail(fn) end
  return ffi.cast('char *', s.data) + tonumber(t.offset) * C.ms_dtype_size(t.dtype_id)
end

-- An identity for the storage (tensors that share memory give the same key), nil when freed.
function B.storage_key(t)
  local s = t.storage
  if s == nil then return nil end
  return tostring(ffi.cast('void *', s))
end

-- The same identity as a number (cheaper: no string; the tape keys saved storages by it).
function B.storage_id(t)
  local s = t.storage
  if s == nil then return nil end
  return tonumber(ffi.cast('uintptr_t', s))
end

-- Bytes of storage (0 when freed).
function B.storage_nbytes(t)
  local s = t.storage
  return s == nil and 0 or tonumber(s.nbytes)
end

-- Make tensor t view what v views: t keeps its identity (and Lua references to it),
-- its old storage reference is dropped, and v gives up its reference (v reads as freed).
function B.rebind(t, v)
  C.ms_tensor_release(t)
  ffi.copy(t, v, ffi.sizeof('ms_tensor'))
  v.storage = nil
end

check.is_tensor = is_tensor
check.is_freed = function(v) return is_tensor(v) and v.storage == nil end

---------------------------------------------------------------------------------------
-- errors from C
---------------------------------------------------------------------------------------
-- Raise the runtime's last message at the user's line; the message's leading function
-- name is replaced by fn (the public function the user called) when given.
B.fail = core.fail

---------------------------------------------------------------------------------------
-- argument parsing
---------------------------------------------------------------------------------------
-- "[2,3]": the shape of tensor t (B.shape_str takes a shape table).
function B.shape_of(t)
  local parts = {}
  for d = 0, t.ndim - 1 do parts[d + 1] = tostring(tonumber(t.sizes[d])) end
  return '[' .. concat(parts, ',') .. ']'
end

function B.shape_str(shape)
  local parts = {}
  for i, v in ipairs(shape) do parts[i] = check.describe(v) end
  return '[' .. concat(parts, ',') .. ']'
end

function B.dtype_id(fn, dtype)
  if dtype == nil then return 0 end
  local id = DTYPES[dtype]
  if not id then
    check.fail('%s: dtype %s is unknown, expected float32, float64, int64 or uint8', fn,
               check.describe(dtype))
  end
  return id
end

function B.device_id_of(fn, device)
  if device == nil then return 0 end
  local id = DEVICES[device]
  if not id then
    check.fail("%s: device %s is unknown, expected 'cpu' or 'cuda'", fn, check.describe(device))
  end
  return id
end

-- Options of a constructor: nil, a dtype or device string, or {dtype=, device=}.
function B.dtype_device(fn, opts)
  if type(opts) == 'string' then
    if DEVICES[opts] then return 0, DEVICES[opts] end
    return B.dtype_id(fn, opts), 0
  end
  opts = check.options(fn, opts, { 'dtype', 'device' })
  return B.dtype_id(fn, opts.dtype), B.device_id_of(fn, opts.device)
end

function B.check_rank(fn, n, what)
  if n > B.MAX_DIMS then
    check.fail('%s: %d %s given, expected at most %d dimensions', fn, n, what or 'sizes',
               B.MAX_DIMS)
  end
end

-- One size: an integer in [0, 2^53] (larger products are refused by the runtime).
function B.size(fn, v, d)
  if type(v) ~= 'number' or v ~= floor(v) or v < 0 or v > 2 ^ 53 then
    check.fail('%s: size %s of dimension %d is invalid, expected a non-negative integer', fn,
               check.describe(v), d)
  end
  return v
end

-- Sizes as numbers or one table, then an optional options argument (a table or a
-- dtype string) and nothing else. Returns shape, dtype id, device id.
function B.parse_sizes(fn, ...)
  local nargs, first = select('#', ...), ...
  local shape, opts, rest = {}, nil, 0
  if type(first) == 'table' and not is_tensor(first) and (first[1] ~= nil or next(first) == nil) then
    local n = 0
    for k in pairs(first) do
      if type(k) ~= 'number' then
        check.fail('%s: sizes table has the key %s, expected a list of sizes', fn, check.describe(k))
      end
      n = n + 1
    end
    if n ~= #first then check.fail('%s: sizes table has holes, expected a list of sizes', fn) end
    for i = 1, #first do shape[i] = first[i] end
    opts, rest = select(2, ...), 2
  else
    local i = 1
    while i <= nargs and type((select(i, ...))) == 'number' do
      shape[i] = (select(i, ...)); i = i + 1
    end
    opts, rest = select(i, ...), i
  end
  if nargs > rest then
    check.fail('%s: argument %d is %s, expected nothing after the options', fn, rest + 1,
               check.describe((select(rest + 1, ...))))
  end
  if opts ~= nil and type(opts) ~= 'table' and type(opts) ~= 'string' then
    check.fail('%s: argument %d is %s, expected a size, a dtype string or an options table ' ..
               '{dtype=, device=}', fn, rest, check.describe(opts))
  end
  B.check_rank(fn, #shape)
  for d = 1, #shape do B.size(fn, shape[d], d) end
  local dt, dev = B.dtype_device(fn, opts)
  return shape, dt, dev
end

-- A 1-based dim (negative counts from the end) of a tensor of n + (extra or 0) dims;
-- messages show the dim as the user gave it.
function B.norm_dim(t, fn, dim, extra, name)
  local n = t.ndim + (extra or 0)
  name = name or 'dim'
  if type(dim) ~= 'number' or dim ~= floor(dim) then
    check.fail('%s: %s is %s, expected an integer dim (1..%d or -%d..-1)', fn, name,
               check.describe(dim), n, n)
  end
  if dim < -n or dim > n or dim == 0 then
    if n == 0 then
      check.fail('%s: %s %s out of range: the tensor has no dimensions', fn, name, check.describe(dim))
    end
    check.fail('%s: %s %s out of range for a tensor of %d dims (expected 1..%d or -%d..-1)',
               fn, name, check.describe(dim), t.ndim, n, n)
  end
  if dim < 0 then dim = n + dim + 1 end
  return dim
end

-- A value stored into a tensor of dtype id dt: integral and in range for integer dtypes.
local INT_RANGE = { [2] = { -2 ^ 63, 2 ^ 63, '-2^63..2^63-1' }, [3] = { 0, 256, '0..255' } }
function B.value(fn, name, v, dt)
  if type(v) ~= 'number' then
    if type(v) == 'boolean' then return v and 1 or 0 end
    check.fail('%s: %s is %s, expected a number', fn, name, check.describe(v))
  end
  local r = INT_RANGE[dt]
  if r and (v ~= floor(v) or v < r[1] or v >= r[2]) then
    check.fail('%s: %s is %s, expected an integer in %s for the %s tensor', fn, name,
               check.describe(v), r[3], DTYPE_NAMES[dt])
  end
  return v
end

---------------------------------------------------------------------------------------
-- allocation
---------------------------------------------------------------------------------------
-- The GC sees only the small tensor headers, not the storage behind them, so dead
-- temporaries would pile up for many steps. Count the bytes allocated since the last
-- collection and collect once they pass a threshold, as Torch7's heap tracking did.
-- 64 MB (was 256): code that allocates per step (ms.autograd's fresh outputs) gets its
-- blocks back into the runtime's cache sooner — a fresh block costs page faults (MLP
-- 784-256-10 under ms.autograd: 1.12x -> 1.08x the Module step) — while a full
-- collection of a small Lua heap costs ~0.1 ms.
local GC_THRESHOLD = 64 * 2 ^ 20
local allocated = 0
local collectgarbage = collectgarbage
local function account(t)
  allocated = allocated + B.storage_nbytes(t)
  if allocated > GC_THRESHOLD then
    allocated = 0
    collectgarbage()
  end
end

-- A fresh tensor of the given (validated) shape table; dtype/device are ids.
function B.empty(fn, shape, dtype_id, device_id)
  local n = #shape
  B.check_rank(fn, n)
  for d = 1, n do shape_buf[d - 1] = B.size(fn, shape[d], d) end
  local t = TensorCT()
  if C.ms_tensor_empty(t, n, shape_buf, dtype_id, device_id) ~= 0 then B.fail(fn) end
  account(t)
  return t
end

-- A fresh tensor with t's shape and device (the hot path of every op).
function B.empty_like(fn, t, dtype_id)
  local out = TensorCT()
  if C.ms_tensor_empty(out, t.ndim, t.sizes, dtype_id or t.dtype_id, B.device_id(t, fn)) ~= 0 then
    B.fail(fn)
  end
  account(out)
  return out
end

-- A view of t with new shape/strides (tables) and element offset; the runtime checks
-- that every element it can address lies inside t's storage.
function B.view_of(fn, t, shape, stride, offset)
  local n = #shape
  B.check_rank(fn, n)
  for d = 1, n do
    shape_buf[d - 1] = B.size(fn, shape[d], d)
    local s = stride[d]
    if s ~= floor(s) or s > 2 ^ 53 or s < -2 ^ 53 then
      check.fail('%s: stride %s of dimension %d is out of range', fn, check.describe(s), d)
    end
    stride_buf[d - 1] = s
  end
  if offset ~= floor(offset) or offset < 0 or offset > 2 ^ 53 then
    check.fail('%s: offset %s is out of range', fn, check.describe(offset))
  end
  local v = TensorCT()
  if C.ms_tensor_view(v, t, n, shape_buf, stride_buf, offset) ~= 0 then B.fail(fn) end
  return v
end

---------------------------------------------------------------------------------------
-- the metatype
---------------------------------------------------------------------------------------
B.binop = nil   -- set by tensor_ops: binop(name, a, b) for the arithmetic metamethods

local function arith(name)
  return function(a, b) return B.binop(name, a, b) end
end

local function no_compare()
  check.fail('Tensor: tensors cannot be compared with < or <=, use t:lt(x), t:le(x) ' ..
             '(elementwise) or compare numbers from t:item()')
end

local mt = {
  __index = function(t, k)
    local m = Tensor[k]
    if m ~= nil then return m end
    if k == 'dtype' then return DTYPE_NAMES[t.dtype_id] end
    if k == 'device' then return DEVICE_NAMES[B.device_id(t, 't.device')] end
    if type(k) == 'table' then return require('moonstep.tensor_slice').get(t, k) end
    if type(k) == 'number' then
      check.fail('Tensor: t[%s] is not supported, use t:get(i, ...), t:select(1, i), ' ..
                 't[{ i }] or t:narrow(1, i, n)', check.describe(k))
    end
    check.fail('Tensor: no method or field %s', check.describe(k))
  end,
  __newindex = function(t, k, v)
    if type(k) == 'table' then return require('moonstep.tensor_slice').set(t, k, v) end
    check.fail('Tensor: cannot set field %s (tensors have no user fields; use t:set(...), ' ..
               't[{ ... }] = v or t:copy_(src) to change values)', check.describe(k))
  end,
  __tostring = function(t) return require('moonstep.tensor_print')(t) end,
  __add = arith('add'), __sub = arith('sub'), __mul = arith('mul'), __div = arith('div'),
  __pow = arith('pow'),
  __unm = function(t) return t:neg() end,
  __len = function(t) return t.ndim > 0 and tonumber(t.sizes[0]) or 0 end,
  __lt = no_compare, __le = no_compare,
  __concat = function(a, b)
    return (is_tensor(a) and tostring(a) or a) .. (is_tensor(b) and tostring(b) or b)
  end,
  -- t(...) is a mistake (t[i] or t:get(i) meant?): say so instead of a raw FFI message
  __call = function()
    check.fail('Tensor.__call: a tensor is not callable; use t:get(i, ...) for an element, ' ..
               't:select(1, i) or t:narrow(1, i, n) for a part')
  end,
  __gc = C.ms_tensor_release,
}
TensorCT = ffi.metatype('ms_tensor', mt)
B.TensorCT = TensorCT

return B
