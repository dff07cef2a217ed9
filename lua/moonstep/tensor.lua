-- moonstep.tensor — the Tensor type: an ffi.metatype over the C `ms_tensor`.
--
-- A Tensor is a `ms_tensor` struct allocated by LuaJIT (a struct, not a pointer:
-- pointer cdata would turn `t + 1` into pointer arithmetic). The runtime fills it and
-- the metatype's __gc releases its storage reference; views share refcounted storage,
-- so a view keeps its storage alive after the tensor it came from is collected. Indices and dims are 1-based in Lua and
-- converted at the C boundary. Shapes are plain Lua tables ({2, 3}).
--
-- Fields read like Lua fields: t.dtype ('float32'|'float64'|'int64'|'uint8'),
-- t.device ('cpu'|'cuda'). Everything else is a method (t:size(1), t:add(u), ...).
local core = require 'moonstep.core'
local ffi, C, fail = core.ffi, core.C, core.fail
local ffi_new, ffi_cast = ffi.new, ffi.cast
local floor, huge, type, select, error, tostring = math.floor, math.huge, type, select, error, tostring
local fmt, concat = string.format, table.concat

local Tensor = {}        -- methods
local M = { Tensor = Tensor }

local DTYPES = { float32 = 0, float64 = 1, int64 = 2, uint8 = 3 }
local DTYPE_NAMES = { [0] = 'float32', 'float64', 'int64', 'uint8' }
local PTR_TYPES = { [0] = ffi.typeof('float*'), ffi.typeof('double*'),
                    ffi.typeof('int64_t*'), ffi.typeof('uint8_t*') }
local DEVICES = { cpu = 0, cuda = 1, ['cuda:0'] = 1 }
local DEVICE_NAMES = { [0] = 'cpu', 'cuda' }
M.DTYPES, M.DTYPE_NAMES = DTYPES, DTYPE_NAMES

-- Scratch buffers reused by every call (the Lua side is single-threaded).
local shape_buf = ffi_new('int64_t[8]')
local stride_buf = ffi_new('int64_t[8]')
local index_buf = ffi_new('int64_t[8]')
local value_buf = ffi_new('double[1]')

local TensorCT  -- the ctype, set by ffi.metatype at the end of this file
local function is_tensor(x) return type(x) == 'cdata' and ffi.istype(TensorCT, x) end
M.is_tensor = is_tensor
require('moonstep.check').is_tensor = is_tensor

local function shape_str(shape)
  return '[' .. concat(shape, ',') .. ']'
end

local function check_dtype(fn, dtype)
  local id = DTYPES[dtype or 'float32']
  if not id then
    error(fmt("%s: dtype '%s' is unknown, expected float32, float64, int64 or uint8",
              fn, tostring(dtype)), 4)
  end
  return id
end

local function check_device(fn, device)
  local id = DEVICES[device or 'cpu']
  if not id then
    error(fmt("%s: device '%s' is unknown, expected 'cpu' or 'cuda'", fn, tostring(device)), 4)
  end
  return id
end

-- The GC sees only the small tensor headers, not the storage behind them, so dead
-- temporaries would pile up for many steps (a training loop then allocates fresh,
-- page-faulting memory all the time). Count the bytes allocated since the last
-- collection and collect once they pass a threshold, as Torch7's heap tracking did.
local GC_THRESHOLD = 256 * 2 ^ 20
local allocated = 0
local collectgarbage = collectgarbage
local function account(t)
  local st = t.storage
  if st ~= nil then
    allocated = allocated + tonumber(st.nbytes)
    if allocated > GC_THRESHOLD then
      allocated = 0
      collectgarbage()
    end
  end
end

-- A fresh tensor of the given shape table; dtype/device are ids; fn names the
-- user-facing function in errors (default 'empty').
local function empty(shape, dtype_id, device_id, fn)
  local n = #shape
  if n > 8 then error(fmt('%s: %d dimensions given, expected at most 8', fn or 'empty', n), 3) end
  for d = 1, n do shape_buf[d - 1] = shape[d] end
  local t = TensorCT()
  if C.ms_tensor_empty(t, n, shape_buf, dtype_id, device_id) ~= 0 then
    local msg = ffi.string(C.ms_last_error())
    error(fn and (msg:gsub('^empty:', fn .. ':')) or msg, 3)
  end
  account(t)
  return t
end

-- A fresh tensor with t's shape (no Lua shape table: the hot path of every op).
local function empty_like(t, dtype_id)
  local out = TensorCT()
  if C.ms_tensor_empty(out, t.ndim, t.sizes, dtype_id or t.dtype_id, t.storage.device) ~= 0 then
    fail(3)
  end
  account(out)
  return out
end

-- empty_like(t [, dtype]): uninitialised, t's shape and device.
function M.empty_like(t, dtype)
  if not is_tensor(t) then error('empty_like: expected a tensor', 2) end
  return empty_like(t, dtype and check_dtype('empty_like', dtype))
end
function M.zeros_like(t, dtype) return M.empty_like(t, dtype):zero_() end

-- A view of t with new shape/strides (tables) and element offset.
local function view_of(t, shape, stride, offset)
  local n = #shape
  for d = 1, n do shape_buf[d - 1] = shape[d]; stride_buf[d - 1] = stride[d] end
  local v = TensorCT()
  if C.ms_tensor_view(v, t, n, shape_buf, stride_buf, offset) ~= 0 then fail(3) end
  return v
end

local function alive(t, fn)
  if t.storage == nil then
    error(fn .. ": tensor was freed (used after :free()), expected a live tensor", 3)
  end
end

-- Parse constructor arguments: sizes as numbers or one table, then an optional
-- options table {dtype=, device=} or a dtype string.
local function parse_sizes(fn, ...)
  local nargs = select('#', ...)
  local first = ...
  local shape, opts = {}, nil
  if type(first) == 'table' and first.dtype == nil and first.device == nil then
    for i, v in ipairs(first) do shape[i] = v end
    opts = select(2, ...)
  else
    local i = 1
    while i <= nargs do
      local v = select(i, ...)
      if type(v) ~= 'number' then break end
      shape[#shape + 1] = v
      i = i + 1
    end
    if i <= nargs then opts = select(i, ...) end
  end
  for d, v in ipairs(shape) do
    if type(v) ~= 'number' or v ~= floor(v) or v < 0 then
      error(fmt('%s: size %s of dimension %d is not a non-negative integer', fn, tostring(v), d), 3)
    end
  end
  if type(opts) == 'string' then opts = { dtype = opts } end
  opts = opts or {}
  if type(opts) ~= 'table' then
    error(fmt('%s: options must be a table {dtype=, device=} or a dtype string, got %s', fn,
              type(opts)), 3)
  end
  return shape, check_dtype(fn, opts.dtype), check_device(fn, opts.device)
end

---------------------------------------------------------------------------------------
-- constructors
---------------------------------------------------------------------------------------
function M.empty(...)
  local shape, dt, dev = parse_sizes('empty', ...)
  return empty(shape, dt, dev)
end

function M.zeros(...)
  local shape, dt, dev = parse_sizes('zeros', ...)
  local t = empty(shape, dt, dev, 'zeros')
  if C.ms_fill(t, 0) ~= 0 then fail() end
  return t
end

function M.ones(...)
  local shape, dt, dev = parse_sizes('ones', ...)
  local t = empty(shape, dt, dev, 'ones')
  if C.ms_fill(t, 1) ~= 0 then fail() end
  return t
end

-- full(sizes..., value [, opts]) or full({sizes}, value [, opts])
function M.full(shape, value, opts)
  if type(shape) ~= 'table' then
    error('full: expected a shape table then a value, as full({2, 3}, 7)', 2)
  end
  if type(value) ~= 'number' then
    error(fmt('full: value is a %s, expected a number', type(value)), 2)
  end
  local s, dt, dev = parse_sizes('full', shape, opts)
  local t = empty(s, dt, dev, 'full')
  if C.ms_fill(t, value) ~= 0 then fail() end
  return t
end

-- arange(stop) | arange(start, stop [, step]) with an optional trailing options table.
function M.arange(a, b, c, opts)
  if type(b) == 'table' or type(b) == 'string' then a, b, c, opts = 0, a, 1, b
  elseif type(c) == 'table' or type(c) == 'string' then c, opts = 1, c end
  local start, stop, step = b == nil and 0 or a, b == nil and a or b, c or 1
  for _, v in ipairs { start, stop, step } do
    if type(v) ~= 'number' then error('arange: expected numbers (start, stop, step)', 2) end
  end
  if step == 0 then error('arange: step is 0, expected a non-zero step', 2) end
  local n = math.max(0, math.ceil((stop - start) / step))
  local _, dt, dev = parse_sizes('arange', { n }, opts)
  local t = empty({ n }, dt, dev)
  if C.ms_arange(t, start, step) ~= 0 then fail() end
  return t
end

function M.linspace(start, stop, n, opts)
  if type(start) ~= 'number' or type(stop) ~= 'number' or type(n) ~= 'number' or n < 0 or n ~= floor(n) then
    error('linspace: expected (start, stop, count) with a non-negative integer count', 2)
  end
  local _, dt, dev = parse_sizes('linspace', { n }, opts)
  local t = empty({ n }, dt, dev)
  if n == 0 then return t end
  local step = n > 1 and (stop - start) / (n - 1) or 0
  if C.ms_arange(t, start, step) ~= 0 then fail() end
  if n > 1 then t:set(n, stop) end
  return t
end

-- tensor(value [, opts]): a number gives a 0-d tensor; nested tables give n-d.
function M.tensor(data, opts)
  local shape, flat = {}, {}
  if type(data) == 'number' then
    flat[1] = data
  elseif type(data) == 'table' then
    local node = data
    while type(node) == 'table' do
      shape[#shape + 1] = #node
      node = node[1]
    end
    local function walk(x, d)
      if d > #shape then
        if type(x) ~= 'number' and type(x) ~= 'boolean' then
          error(fmt('tensor: element %d is a %s, expected a number', #flat + 1, type(x)), 4)
        end
        flat[#flat + 1] = x == true and 1 or x == false and 0 or x
        return
      end
      if type(x) ~= 'table' or #x ~= shape[d] then
        error(fmt('tensor: ragged nesting at depth %d: expected a table of %d entries, got %s',
                  d, shape[d], type(x) == 'table' and (#x .. ' entries') or type(x)), 4)
      end
      for i = 1, shape[d] do walk(x[i], d + 1) end
    end
    walk(data, 1)
  else
    error(fmt('tensor: expected a number or a (nested) table of numbers, got %s', type(data)), 2)
  end
  local _, dt, dev = parse_sizes('tensor', shape, opts)
  local t = empty(shape, dt, 0)
  local p = ffi_cast(PTR_TYPES[dt], t.storage.data)
  for i = 1, #flat do p[i - 1] = flat[i] end
  if dev ~= 0 then return t:to('cuda') end
  return t
end

---------------------------------------------------------------------------------------
-- inspection
---------------------------------------------------------------------------------------
function Tensor.dim(t) return t.ndim end
function Tensor.numel(t) return tonumber(t.count) end
Tensor.nelement = Tensor.count

function Tensor.shape(t)
  local s = {}
  for d = 1, t.ndim do s[d] = tonumber(t.sizes[d - 1]) end
  return s
end


-- 1-based dim, negative counts from the end; errors name the function.
local function norm_dim(t, fn, dim, extra)
  local n = t.ndim + (extra or 0)
  if type(dim) ~= 'number' or dim ~= floor(dim) then
    error(fmt('%s: dim is %s, expected an integer in 1..%d', fn, tostring(dim), n), 3)
  end
  if dim < 0 then dim = n + dim + 1 end
  if dim < 1 or dim > n then
    error(fmt('%s: dim %d out of range for a tensor of %d dims (expected 1..%d or -%d..-1)',
              fn, dim, t.ndim, n, n), 3)
  end
  return dim
end

-- stride(): all strides (in elements) as a table; stride(d): one of them.
function Tensor.stride(t, dim)
  if dim ~= nil then return tonumber(t.strides[norm_dim(t, 'stride', dim) - 1]) end
  local s = {}
  for d = 1, t.ndim do s[d] = tonumber(t.strides[d - 1]) end
  return s
end

function Tensor.size(t, dim)
  if dim == nil then return t:shape() end
  dim = norm_dim(t, 'size', dim)
  return tonumber(t.sizes[dim - 1])
end

function Tensor.is_contiguous(t) return C.ms_tensor_is_contiguous(t) == 1 end

-- Offset of the element at 1-based indices (...), with range checks.
local function elem_offset(t, fn, ...)
  local n = select('#', ...)
  if n ~= t.ndim then
    error(fmt('%s: %d indices given for a tensor of %d dims, expected %d', fn, n, t.ndim, t.ndim), 3)
  end
  local off = t.offset
  for d = 1, n do
    local i = select(d, ...)
    local size = t.sizes[d - 1]
    if type(i) ~= 'number' or i ~= floor(i) or i < 1 or i > size then
      error(fmt('%s: index %s out of range for dimension %d of size %d (expected 1..%d)',
                fn, tostring(i), d, tonumber(size), tonumber(size)), 3)
    end
    off = off + (i - 1) * t.strides[d - 1]
  end
  return off
end

function Tensor.get(t, ...)
  alive(t, 'get')
  local off = elem_offset(t, 'get', ...)
  if t.storage.device == 0 then
    return tonumber(ffi_cast(PTR_TYPES[t.dtype_id], t.storage.data)[off])
  end
  for d = 1, t.ndim do index_buf[d - 1] = select(d, ...) - 1 end
  if C.ms_get(t, index_buf, value_buf) ~= 0 then fail() end
  return value_buf[0]
end

-- set(i, j, ..., value)
do
  local function set_impl(t, n, ...)
    local v = select(n, ...)
    if type(v) ~= 'number' then
      error(fmt('set: value is a %s, expected a number (call as t:set(i, j, ..., value))', type(v)), 3)
    end
    if n - 1 ~= t.ndim then
      error(fmt('set: %d indices given for a tensor of %d dims, expected %d', n - 1, t.ndim, t.ndim), 3)
    end
    local off = t.offset
    for d = 1, n - 1 do
      local i = select(d, ...)
      local size = t.sizes[d - 1]
      if type(i) ~= 'number' or i ~= floor(i) or i < 1 or i > size then
        error(fmt('set: index %s out of range for dimension %d of size %d (expected 1..%d)',
                  tostring(i), d, tonumber(size), tonumber(size)), 3)
      end
      off = off + (i - 1) * t.strides[d - 1]
      index_buf[d - 1] = i - 1
    end
    if t.storage.device == 0 then
      ffi_cast(PTR_TYPES[t.dtype_id], t.storage.data)[off] = v
    elseif C.ms_set(t, index_buf, v) ~= 0 then
      fail(3)
    end
    return t
  end
  function Tensor.set(t, ...)
    alive(t, 'set')
    return set_impl(t, select('#', ...), ...)
  end
end

function Tensor.item(t)
  alive(t, 'item')
  if t.count ~= 1 then
    error(fmt('item: tensor has %d elements, expected exactly 1', tonumber(t.count)), 2)
  end
  for d = 1, t.ndim do index_buf[d - 1] = 0 end
  if C.ms_get(t, index_buf, value_buf) ~= 0 then fail(2) end
  return value_buf[0]
end

function Tensor.totable(t)
  alive(t, 'totable')
  local src = t.storage.device == 0 and t or t:to('cpu')
  local p = ffi_cast(PTR_TYPES[src.dtype_id], src.storage.data)
  if src.ndim == 0 then return tonumber(p[src.offset]) end
  local function build(d, off)
    local out, size, stride = {}, tonumber(src.sizes[d - 1]), src.strides[d - 1]
    for i = 1, size do
      local o = off + (i - 1) * stride
      out[i] = d == src.ndim and tonumber(p[o]) or build(d + 1, o)
    end
    return out
  end
  return build(1, src.offset)
end

---------------------------------------------------------------------------------------
-- views (no copies)
---------------------------------------------------------------------------------------
local function contiguous_strides(shape)
  local stride, s = {}, 1
  for d = #shape, 1, -1 do stride[d] = s; s = s * shape[d] end
  return stride
end

-- Resolve a target shape with at most one -1 against numel.
local function infer_shape(fn, t, ...)
  local shape = type(...) == 'table' and { unpack((...)) } or { ... }
  local known, hole = 1, nil
  for d, v in ipairs(shape) do
    if v == -1 and not hole then hole = d
    elseif type(v) ~= 'number' or v < 0 or v ~= floor(v) then
      error(fmt('%s: size %s of dimension %d is invalid, expected a non-negative integer or one -1',
                fn, tostring(v), d), 3)
    else known = known * v end
  end
  local numel = tonumber(t.count)
  if hole then
    if known == 0 or numel % known ~= 0 then
      error(fmt('%s: cannot infer the -1 in %s for %d elements', fn, shape_str(shape), numel), 3)
    end
    shape[hole] = numel / known
    known = numel
  end
  if known ~= numel then
    error(fmt('%s: shape %s has %d elements, expected %d (the tensor is %s)', fn,
              shape_str(shape), known, numel, shape_str(t:shape())), 3)
  end
  return shape
end

-- view: a new shape over the same memory; needs a contiguous tensor.
function Tensor.view(t, ...)
  alive(t, 'view')
  local shape = infer_shape('view', t, ...)
  if not t:is_contiguous() then
    error('view: tensor is not contiguous (strides ' .. shape_str(t:stride()) ..
          '), expected a contiguous one; use reshape() or contiguous() first', 2)
  end
  return view_of(t, shape, contiguous_strides(shape), t.offset)
end

-- reshape: a view when possible, else a contiguous copy.
function Tensor.reshape(t, ...)
  alive(t, 'reshape')
  local shape = infer_shape('reshape', t, ...)
  local src = t:is_contiguous() and t or t:clone()
  return view_of(src, shape, contiguous_strides(shape), src.offset)
end

function Tensor.flatten(t) return t:reshape(tonumber(t.count)) end

-- narrow(dim, start, length): elements start..start+length-1 of dim.
function Tensor.narrow(t, dim, start, len)
  alive(t, 'narrow')
  dim = norm_dim(t, 'narrow', dim)
  local size = tonumber(t.sizes[dim - 1])
  if type(start) ~= 'number' or start ~= floor(start) or start < 1 or start > size + 1 then
    error(fmt('narrow: start %s out of range for dimension %d of size %d (expected 1..%d)',
              tostring(start), dim, size, size), 2)
  end
  if type(len) ~= 'number' or len ~= floor(len) or len < 0 or start + len - 1 > size then
    error(fmt('narrow: length %s from start %d overruns dimension %d of size %d (expected 0..%d)',
              tostring(len), start, dim, size, size - start + 1), 2)
  end
  local shape, stride = t:shape(), t:stride()
  shape[dim] = len
  return view_of(t, shape, stride, t.offset + (start - 1) * stride[dim])
end

-- select(dim, index): the slice at index, with dim removed.
function Tensor.select(t, dim, index)
  alive(t, 'select')
  dim = norm_dim(t, 'select', dim)
  local size = tonumber(t.sizes[dim - 1])
  if type(index) ~= 'number' or index ~= floor(index) then
    error(fmt('select: index %s is not an integer (expected 1..%d)', tostring(index), size), 2)
  end
  if index < 0 then index = size + index + 1 end
  if index < 1 or index > size then
    error(fmt('select: index %d out of range for dimension %d of size %d (expected 1..%d)',
              index, dim, size, size), 2)
  end
  local shape, stride = t:shape(), t:stride()
  local offset = t.offset + (index - 1) * stride[dim]
  table.remove(shape, dim); table.remove(stride, dim)
  return view_of(t, shape, stride, offset)
end

function Tensor.transpose(t, d1, d2)
  alive(t, 'transpose')
  if d1 == nil and d2 == nil then
    if t.ndim ~= 2 then
      error(fmt('transpose: no dims given for a tensor of %d dims, expected a 2-D tensor or two dims', t.ndim), 2)
    end
    d1, d2 = 1, 2
  end
  d1, d2 = norm_dim(t, 'transpose', d1), norm_dim(t, 'transpose', d2)
  local shape, stride = t:shape(), t:stride()
  shape[d1], shape[d2] = shape[d2], shape[d1]
  stride[d1], stride[d2] = stride[d2], stride[d1]
  return view_of(t, shape, stride, t.offset)
end
function Tensor.t(t) return t:transpose() end

function Tensor.permute(t, ...)
  alive(t, 'permute')
  local order = type(...) == 'table' and (...) or { ... }
  if #order ~= t.ndim then
    error(fmt('permute: %d dims given for a tensor of %d dims, expected a permutation of 1..%d',
              #order, t.ndim, t.ndim), 2)
  end
  local seen, shape, stride, s0, st0 = {}, {}, {}, t:shape(), t:stride()
  for i, d in ipairs(order) do
    d = norm_dim(t, 'permute', d)
    if seen[d] then error(fmt('permute: dim %d repeated, expected a permutation', d), 2) end
    seen[d] = true
    shape[i], stride[i] = s0[d], st0[d]
  end
  return view_of(t, shape, stride, t.offset)
end

function Tensor.unsqueeze(t, dim)
  alive(t, 'unsqueeze')
  dim = norm_dim(t, 'unsqueeze', dim, 1)
  local shape, stride = t:shape(), t:stride()
  local s = dim <= t.ndim and stride[dim] * shape[dim] or 1
  table.insert(shape, dim, 1); table.insert(stride, dim, s)
  return view_of(t, shape, stride, t.offset)
end

function Tensor.squeeze(t, dim)
  alive(t, 'squeeze')
  local shape, stride, s0, st0 = {}, {}, t:shape(), t:stride()
  if dim then dim = norm_dim(t, 'squeeze', dim) end
  for d = 1, t.ndim do
    if not (s0[d] == 1 and (dim == nil or dim == d)) then
      shape[#shape + 1], stride[#stride + 1] = s0[d], st0[d]
    end
  end
  return view_of(t, shape, stride, t.offset)
end

-- expand(sizes): a broadcast view; size-1 dims get stride 0, -1 keeps a size.
function Tensor.expand(t, ...)
  alive(t, 'expand')
  local shape = type(...) == 'table' and { unpack((...)) } or { ... }
  local n, nd = #shape, t.ndim
  if n < nd then
    error(fmt('expand: %d sizes given for a tensor of %d dims, expected at least %d', n, nd, nd), 2)
  end
  local stride, s0, st0 = {}, t:shape(), t:stride()
  for d = 1, n do
    local td = d - (n - nd)
    if td < 1 then
      stride[d] = 0
    elseif shape[d] == -1 or shape[d] == s0[td] then
      shape[d], stride[d] = s0[td], st0[td]
    elseif s0[td] == 1 then
      stride[d] = 0
    else
      error(fmt('expand: size %d of dimension %d cannot expand to %s (only size-1 dims expand)',
                s0[td], td, tostring(shape[d])), 2)
    end
  end
  return view_of(t, shape, stride, t.offset)
end
function Tensor.expand_as(t, other) return t:expand(other:shape()) end

---------------------------------------------------------------------------------------
-- copies, fills, conversions, devices
---------------------------------------------------------------------------------------
function Tensor.clone(t)
  alive(t, 'clone')
  local out = empty(t:shape(), t.dtype_id, t.storage.device)
  if C.ms_copy(out, t) ~= 0 then fail() end
  return out
end

function Tensor.contiguous(t)
  alive(t, 'contiguous')
  if t:is_contiguous() then return t end
  return t:clone()
end

function Tensor.copy_(t, src)
  if not is_tensor(src) then
    error(fmt('copy_: src is a %s, expected a tensor', type(src)), 2)
  end
  if C.ms_copy(t, src) ~= 0 then fail() end
  return t
end

function Tensor.fill_(t, v)
  if type(v) ~= 'number' then error(fmt('fill_: value is a %s, expected a number', type(v)), 2) end
  if C.ms_fill(t, v) ~= 0 then fail() end
  return t
end
function Tensor.zero_(t) return t:fill_(0) end

-- to(device) / to(dtype) / to(device, dtype): a converted copy, or t itself when
-- nothing changes.
function Tensor.to(t, a, b)
  alive(t, 'to')
  local dev, dt = t.storage.device, t.dtype_id
  for _, x in ipairs { a, b } do
    if DEVICES[x] then dev = DEVICES[x]
    elseif DTYPES[x] then dt = DTYPES[x]
    elseif x ~= nil then
      error(fmt("to: '%s' is neither a device ('cpu', 'cuda') nor a dtype (float32, float64, int64, uint8)",
                tostring(x)), 2)
    end
  end
  if dev == t.storage.device and dt == t.dtype_id then return t end
  local out = empty(t:shape(), dt, dev, 'to')
  if C.ms_copy(out, t) ~= 0 then fail() end
  return out
end
function Tensor.cuda(t) return t:to('cuda') end
function Tensor.cpu(t) return t:to('cpu') end
function Tensor.float(t) return t:to('float32') end
function Tensor.double(t) return t:to('float64') end
function Tensor.long(t) return t:to('int64') end
function Tensor.byte(t) return t:to('uint8') end

-- Release the storage now instead of at garbage collection; later use is an error.
function Tensor.free(t)
  C.ms_tensor_release(t)
end

---------------------------------------------------------------------------------------
-- elementwise math
---------------------------------------------------------------------------------------
local U = {
  neg = C.MS_NEG, abs = C.MS_ABS, exp = C.MS_EXP, log = C.MS_LOG, sqrt = C.MS_SQRT,
  rsqrt = C.MS_RSQRT, tanh = C.MS_TANH, sigmoid = C.MS_SIGMOID, relu = C.MS_RELU,
  sign = C.MS_SIGN, square = C.MS_SQUARE, reciprocal = C.MS_RECIP, erf = C.MS_ERF,
  gelu = C.MS_GELU,
}
local B = {   -- binary op -> { tensor-tensor op, tensor-scalar op, scalar-on-left op }
  add = { C.MS_ADD, C.MS_ADD_SCALAR }, sub = { C.MS_SUB, C.MS_ADD_SCALAR },
  mul = { C.MS_MUL, C.MS_MUL_SCALAR }, div = { C.MS_DIV, C.MS_MUL_SCALAR },
  pow = { C.MS_POW, C.MS_POW_SCALAR }, maximum = { C.MS_MAX, C.MS_MAX_SCALAR },
  minimum = { C.MS_MIN, C.MS_MIN_SCALAR },
  eq = { C.MS_EQ, C.MS_EQ_SCALAR }, ne = { C.MS_NE, C.MS_NE_SCALAR },
  lt = { C.MS_LT, C.MS_LT_SCALAR }, le = { C.MS_LE, C.MS_LE_SCALAR },
  gt = { C.MS_GT, C.MS_GT_SCALAR }, ge = { C.MS_GE, C.MS_GE_SCALAR },
}

-- The broadcast shape of two tensors (NumPy rules), or an error naming both; nil
-- when the shapes are equal (the caller then allocates like a).
local function same_shape(a, b)
  if a.ndim ~= b.ndim then return false end
  for d = 0, a.ndim - 1 do
    if a.sizes[d] ~= b.sizes[d] then return false end
  end
  return true
end

local function broadcast_shape(fn, a, b)
  local na, nb = a.ndim, b.ndim
  local n = na > nb and na or nb
  local shape = {}
  for d = 1, n do
    local da, db = d - (n - na), d - (n - nb)
    local sa = da >= 1 and tonumber(a.sizes[da - 1]) or 1
    local sb = db >= 1 and tonumber(b.sizes[db - 1]) or 1
    if sa ~= sb and sa ~= 1 and sb ~= 1 then
      error(fmt('%s: shapes %s and %s cannot be broadcast (dimension %d: %d vs %d)', fn,
                shape_str(a:shape()), shape_str(b:shape()), d, sa, sb), 3)
    end
    shape[d] = sa == 1 and sb or sa
  end
  return shape
end

for name, op in pairs(U) do
  Tensor[name] = function(t)
    alive(t, name)
    local out = empty_like(t)
    if C.ms_unary(out, t, op, 0, 0) ~= 0 then fail() end
    return out
  end
  Tensor[name .. '_'] = function(t)
    if C.ms_unary(t, t, op, 0, 0) ~= 0 then fail() end
    return t
  end
end

function Tensor.leaky_relu(t, slope)
  alive(t, 'leaky_relu')
  local out = empty_like(t)
  if C.ms_unary(out, t, C.MS_LEAKY_RELU, slope or 0.01, 0) ~= 0 then fail() end
  return out
end

-- softmax / log_softmax over the last dim (a contiguous copy is made when needed).
local function softmax(t, log_)
  alive(t, log_ == 1 and 'log_softmax' or 'softmax')
  local x = t:contiguous()
  local out = empty_like(x)
  if C.ms_softmax(out, x, log_) ~= 0 then fail(3) end
  return out
end
function Tensor.softmax(t) return softmax(t, 0) end
function Tensor.log_softmax(t) return softmax(t, 1) end

function Tensor.clamp(t, lo, hi)
  alive(t, 'clamp')
  local out = empty(t:shape(), t.dtype_id, t.storage.device)
  if C.ms_unary(out, t, C.MS_CLAMP, lo or -huge, hi or huge) ~= 0 then fail() end
  return out
end
function Tensor.clamp_(t, lo, hi)
  if C.ms_unary(t, t, C.MS_CLAMP, lo or -huge, hi or huge) ~= 0 then fail() end
  return t
end

-- out <- a (op) b, with b a tensor or a number; alpha scales b for add/sub (axpy).
local function binary_into(name, out, a, b, alpha)
  local ops = B[name]
  if type(b) == 'number' then
    local op, s = ops[2], b
    if name == 'sub' then s = -b * (alpha or 1) elseif name == 'add' then s = b * (alpha or 1)
    elseif name == 'div' then s = 1 / b end
    if C.ms_unary(out, a, op, s, 0) ~= 0 then fail(4) end
  elseif is_tensor(b) then
    if C.ms_binary(out, a, b, ops[1], alpha or 1) ~= 0 then fail(4) end
  else
    error(fmt('%s: other is a %s, expected a tensor or a number', name, type(b)), 4)
  end
  return out
end

for name in pairs(B) do
  Tensor[name] = function(a, b, alpha)
    alive(a, name)
    local out
    if not is_tensor(b) or same_shape(a, b) then out = empty_like(a)
    else out = empty(broadcast_shape(name, a, b), a.dtype_id, a.storage.device) end
    return binary_into(name, out, a, b, alpha)
  end
  Tensor[name .. '_'] = function(a, b, alpha)
    alive(a, name .. '_')
    return binary_into(name, a, a, b, alpha)
  end
end

-- y:axpy_(alpha, x): y <- y + alpha * x (the fused form optimizers use).
function Tensor.axpy_(y, alpha, x)
  if type(alpha) ~= 'number' then error('axpy_: alpha must be a number: y:axpy_(alpha, x)', 2) end
  if C.ms_binary(y, y, x, C.MS_ADD, alpha) ~= 0 then fail() end
  return y
end

-- Ternary fused forms: t + value * t1 * t2, t + value * t1 / t2, lerp.
local function ternary(name, op, inplace)
  return function(t, a, b, c)
    alive(t, name)
    local value, t1, t2 = 1, a, b
    if type(a) == 'number' then value, t1, t2 = a, b, c end
    if not is_tensor(t1) or (op ~= C.MS_LERP and not is_tensor(t2)) then
      error(name .. ': expected ([value,] tensor1, tensor2)', 2)
    end
    local out = t
    if not inplace then
      local shape = broadcast_shape(name, t, t1)
      if op ~= C.MS_LERP then
        local sh = empty(shape, t.dtype_id, t.storage.device)
        shape = broadcast_shape(name, sh, t2)
      end
      out = empty(shape, t.dtype_id, t.storage.device)
    end
    if C.ms_ternary(out, t, t1, t2 or t1, op, value) ~= 0 then fail() end
    return out
  end
end
Tensor.addcmul, Tensor.addcmul_ = ternary('addcmul', C.MS_ADDCMUL), ternary('addcmul_', C.MS_ADDCMUL, true)
Tensor.addcdiv, Tensor.addcdiv_ = ternary('addcdiv', C.MS_ADDCDIV), ternary('addcdiv_', C.MS_ADDCDIV, true)
-- t:lerp(end, weight) = t + weight * (end - t)
local lerp, lerp_ = ternary('lerp', C.MS_LERP), ternary('lerp_', C.MS_LERP, true)
function Tensor.lerp(t, e, w) return lerp(t, w, e) end
function Tensor.lerp_(t, e, w) return lerp_(t, w, e) end

-- where(cond, x, y): x where cond ~= 0 else y; x and y tensors or numbers.
function M.where(cond, x, y)
  if not is_tensor(cond) then error('where: condition must be a tensor', 2) end
  local ref = is_tensor(x) and x or is_tensor(y) and y or cond
  local function as_tensor(v)
    if is_tensor(v) then return v end
    if type(v) ~= 'number' then error(fmt('where: expected a tensor or a number, got %s', type(v)), 3) end
    return M.full({}, v, { dtype = DTYPE_NAMES[ref.dtype_id], device = DEVICE_NAMES[ref.storage.device] })
  end
  x, y = as_tensor(x), as_tensor(y)
  local shape = broadcast_shape('where', cond, x)
  shape = broadcast_shape('where', empty(shape, 0, 0), y)
  local out = empty(shape, x.dtype_id, x.storage.device)
  if C.ms_ternary(out, cond, x, y, C.MS_WHERE, 1) ~= 0 then fail(2) end
  return out
end

---------------------------------------------------------------------------------------
-- reductions
---------------------------------------------------------------------------------------
local R = { sum = C.MS_SUM, mean = C.MS_MEAN, max = C.MS_RMAX, min = C.MS_RMIN,
            argmax = C.MS_ARGMAX, argmin = C.MS_ARGMIN, norm = C.MS_NORM, var = C.MS_VAR }

-- Reduce over all elements (dim == nil: a Lua number) or along dim (a tensor without
-- that dim, or with size 1 there when keepdim).
local function reduce(t, fn, op, param, dim, keepdim)
  alive(t, fn)
  if dim == nil then
    if C.ms_reduce_all(t, op, param, value_buf) ~= 0 then fail(4) end
    local v = value_buf[0]
    if op == C.MS_ARGMAX or op == C.MS_ARGMIN then return v + 1 end
    return v
  end
  dim = norm_dim(t, fn, dim)
  local shape = t:shape()
  if keepdim then shape[dim] = 1 else table.remove(shape, dim) end
  local arg = op == C.MS_ARGMAX or op == C.MS_ARGMIN
  local out = empty(shape, arg and DTYPES.int64 or t.dtype_id, t.storage.device)
  if C.ms_reduce_dim(out, t, dim - 1, op, param, 1) ~= 0 then fail(4) end
  return out
end

function Tensor.sum(t, dim, keepdim) return reduce(t, 'sum', R.sum, 0, dim, keepdim) end
function Tensor.mean(t, dim, keepdim) return reduce(t, 'mean', R.mean, 0, dim, keepdim) end
function Tensor.argmax(t, dim, keepdim) return reduce(t, 'argmax', R.argmax, 0, dim, keepdim) end
function Tensor.argmin(t, dim, keepdim) return reduce(t, 'argmin', R.argmin, 0, dim, keepdim) end
-- max()/min(): a number; max(dim): values and 1-based indices, as torch.max(x, dim).
function Tensor.max(t, dim, keepdim)
  local v = reduce(t, 'max', R.max, 0, dim, keepdim)
  if dim == nil then return v end
  return v, reduce(t, 'argmax', R.argmax, 0, dim, keepdim)
end
function Tensor.min(t, dim, keepdim)
  local v = reduce(t, 'min', R.min, 0, dim, keepdim)
  if dim == nil then return v end
  return v, reduce(t, 'argmin', R.argmin, 0, dim, keepdim)
end
-- norm(p = 2 [, dim [, keepdim]]); p may be math.huge.
function Tensor.norm(t, p, dim, keepdim)
  p = p or 2
  if type(p) ~= 'number' or p < 0 then
    error(fmt('norm: p is %s, expected a number >= 0 (or math.huge)', tostring(p)), 2)
  end
  return reduce(t, 'norm', R.norm, p, dim, keepdim)
end
-- var([dim [, unbiased = true [, keepdim]]])
function Tensor.var(t, dim, unbiased, keepdim)
  return reduce(t, 'var', R.var, unbiased == false and 0 or 1, dim, keepdim)
end
function Tensor.std(t, dim, unbiased, keepdim)
  local v = t:var(dim, unbiased, keepdim)
  if type(v) == 'number' then return math.sqrt(v) end
  return v:sqrt_()
end

---------------------------------------------------------------------------------------
-- linear algebra
---------------------------------------------------------------------------------------
-- dot(a, b): a Lua number (float64 accumulation).
function M.dot(a, b)
  if not is_tensor(a) or not is_tensor(b) then error('dot: expected two tensors', 2) end
  if C.ms_dot(a, b, value_buf) ~= 0 then fail(2) end
  return value_buf[0]
end
Tensor.dot = M.dot

-- matmul(a, b [, opts]): opts.transpose_a / transpose_b, opts.out, opts.alpha/beta.
-- 1-D operands are treated as a row (a) or column (b) vector and squeezed back; a
-- 3-D operand batches, and a 2-D partner is broadcast over the batch.
function M.matmul(a, b, opts)
  if not is_tensor(a) or not is_tensor(b) then
    error(fmt('matmul: expected two tensors, got %s and %s', type(a), type(b)), 2)
  end
  alive(a, 'matmul'); alive(b, 'matmul')
  opts = opts or {}
  local ta, tb = opts.transpose_a and 1 or 0, opts.transpose_b and 1 or 0
  local squeeze_a, squeeze_b = a.ndim == 1, b.ndim == 1
  if squeeze_a then a = a:unsqueeze(1) end
  if squeeze_b then b = b:unsqueeze(2) end
  if a.ndim == 3 and b.ndim == 2 then b = b:unsqueeze(1) end
  if a.ndim == 2 and b.ndim == 3 then a = a:unsqueeze(1) end
  if (a.ndim ~= 2 and a.ndim ~= 3) or a.ndim ~= b.ndim then
    error(fmt('matmul: shapes %s and %s are not matrices or batches of matrices (1-3 dims)',
              shape_str(a:shape()), shape_str(b:shape())), 2)
  end
  local nd = a.ndim
  local m = tonumber(ta == 1 and a.sizes[nd - 1] or a.sizes[nd - 2])
  local n = tonumber(tb == 1 and b.sizes[nd - 2] or b.sizes[nd - 1])
  local shape = { m, n }
  if nd == 3 then
    table.insert(shape, 1, math.max(tonumber(a.sizes[0]), tonumber(b.sizes[0])))
  end
  local out = opts.out or empty(shape, a.dtype_id, a.storage.device)
  if C.ms_matmul(out, a, b, ta, tb, opts.alpha or 1, opts.beta or 0) ~= 0 then fail(2) end
  if squeeze_a and squeeze_b and not opts.out then return out:reshape({}) end
  if squeeze_a and not opts.out then return out:squeeze(nd - 1) end
  if squeeze_b and not opts.out then return out:squeeze(nd) end
  return out
end
Tensor.matmul = M.matmul
function M.bmm(a, b, opts)
  if not is_tensor(a) or not is_tensor(b) or a.ndim ~= 3 or b.ndim ~= 3 then
    error('bmm: expected two 3-D tensors [batch, m, k] and [batch, k, n]', 2)
  end
  return M.matmul(a, b, opts)
end

---------------------------------------------------------------------------------------
-- indexing
---------------------------------------------------------------------------------------
local function as_index(fn, idx, device)
  if is_tensor(idx) then return idx end
  if type(idx) == 'table' then
    return M.tensor(idx, { dtype = 'int64', device = DEVICE_NAMES[device] })
  end
  error(fmt('%s: index is a %s, expected an int64 tensor or a table of integers', fn, type(idx)), 3)
end

function Tensor.index_select(t, dim, index)
  alive(t, 'index_select')
  dim = norm_dim(t, 'index_select', dim)
  index = as_index('index_select', index, t.storage.device)
  local shape = t:shape()
  shape[dim] = tonumber(index.count)
  if index.ndim ~= 1 then
    error(fmt('index_select: index has %d dims, expected a 1-D tensor', index.ndim), 2)
  end
  local out = empty(shape, t.dtype_id, t.storage.device)
  if C.ms_index_select(out, t, dim - 1, index, 1) ~= 0 then fail() end
  return out
end
function M.index_select(t, dim, index) return t:index_select(dim, index) end

function Tensor.gather(t, dim, index)
  alive(t, 'gather')
  dim = norm_dim(t, 'gather', dim)
  index = as_index('gather', index, t.storage.device)
  local out = empty(index:shape(), t.dtype_id, t.storage.device)
  if C.ms_gather(out, t, dim - 1, index, 1) ~= 0 then fail() end
  return out
end
function M.gather(t, dim, index) return t:gather(dim, index) end

-- cat({t1, t2, ...}, dim = 1): concatenation along an existing dim.
function M.cat(list, dim)
  if type(list) ~= 'table' or #list == 0 then
    error('cat: expected a non-empty table of tensors', 2)
  end
  local first = list[1]
  if not is_tensor(first) then error('cat: element 1 is not a tensor', 2) end
  dim = norm_dim(first, 'cat', dim or 1)
  local shape, total = first:shape(), 0
  for i, t in ipairs(list) do
    if not is_tensor(t) then error(fmt('cat: element %d is a %s, expected a tensor', i, type(t)), 2) end
    if t.ndim ~= first.ndim then
      error(fmt('cat: tensor %d has %d dims, tensor 1 has %d, expected equal', i, t.ndim, first.ndim), 2)
    end
    for d = 1, t.ndim do
      if d ~= dim and tonumber(t.sizes[d - 1]) ~= shape[d] then
        error(fmt('cat: tensor %d has shape %s, tensor 1 has %s; they differ in dim %d (not the cat dim %d)',
                  i, shape_str(t:shape()), shape_str(shape), d, dim), 2)
      end
    end
    total = total + tonumber(t.sizes[dim - 1])
  end
  shape[dim] = total
  local out = empty(shape, first.dtype_id, first.storage.device)
  local at = 1
  for _, t in ipairs(list) do
    local len = tonumber(t.sizes[dim - 1])
    if len > 0 then
      if C.ms_copy(out:narrow(dim, at, len), t) ~= 0 then fail(2) end
    end
    at = at + len
  end
  return out
end

---------------------------------------------------------------------------------------
-- the metatype
---------------------------------------------------------------------------------------
local function arith(name, scalar_left)
  return function(a, b)
    if is_tensor(a) then return Tensor[name](a, b) end
    -- number on the left: 2 - t, 2 / t, 2 ^ t
    alive(b, name)
    local out = empty_like(b)
    if C.ms_unary(out, b, scalar_left, a, 0) ~= 0 then fail(2) end
    return out
  end
end

local mt = {
  __index = function(t, k)
    local m = Tensor[k]
    if m ~= nil then return m end
    if k == 'dtype' then return DTYPE_NAMES[t.dtype_id] end
    if k == 'device' then
      if t.storage == nil then return 'freed' end
      return DEVICE_NAMES[t.storage.device]
    end
    return nil
  end,
  __tostring = function(t) return require('moonstep.tensor_print')(t) end,
  __add = arith('add', C.MS_ADD_SCALAR),
  __sub = arith('sub', C.MS_RSUB_SCALAR),
  __mul = arith('mul', C.MS_MUL_SCALAR),
  __div = arith('div', C.MS_RDIV_SCALAR),
  __pow = arith('pow', C.MS_RPOW_SCALAR),
  __unm = function(t) return t:neg() end,
  __len = function(t) return t.ndim > 0 and tonumber(t.sizes[0]) or 0 end,
  __gc = C.ms_tensor_release,
}
TensorCT = ffi.metatype('ms_tensor', mt)

return M
