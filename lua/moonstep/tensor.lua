-- moonstep.tensor — the Tensor type: an ffi.metatype over the C `ms_tensor` struct.
--
-- A Tensor is a `ms_tensor` struct allocated by LuaJIT (a struct, not a pointer:
-- pointer cdata would turn `t + 1` into pointer arithmetic). The runtime fills it and
-- the metatype's __gc releases its storage reference; views share refcounted storage,
-- so a view keeps its storage alive after the tensor it came from is collected. Indices
-- and dims are 1-based in Lua and converted at the C boundary. Shapes are plain Lua
-- tables ({2, 3}).
--
-- Fields read like Lua fields: t.dtype ('float32'|'float64'|'int64'|'uint8'),
-- t.device ('cpu'|'cuda'; an error on a freed tensor). Everything else is a method.
--
-- The type is spread over files by concept; this one is the entry point:
--   tensor_base    the ctype, argument parsing, allocation, the storage accessor
--   tensor.lua     constructors, inspection, element access (this file)
--   tensor_views   views (view, narrow, expand, ...), copies, conversions, devices
--   tensor_ops     elementwise math, reductions, where
--   tensor_index   matmul, dot, index_select, gather, cat
--   tensor_print   tostring(t)
local core = require 'moonstep.core'
local B = require 'moonstep.tensor_base'
local C = core.C
local check = B.check
local floor, huge, type, select, tostring = math.floor, math.huge, type, select, tostring
local ceil, max = math.ceil, math.max

local Tensor = B.Tensor
local M = { Tensor = Tensor, is_tensor = B.is_tensor, DTYPES = B.DTYPES,
            DTYPE_NAMES = B.DTYPE_NAMES }
local is_tensor, live = B.is_tensor, B.live
local index_buf, value_buf = B.index_buf, B.value_buf

-- Storage accessors for other moonstep files (see tensor_base: no other file touches
-- the storage field): device id, typed CPU data pointer, identity key, byte count,
-- freed test, rebind (t views what v viewed; v gives its reference up).
M.device_id, M.data, M.storage_key, M.storage_nbytes = B.device_id, B.data, B.storage_key, B.storage_nbytes
M.is_freed, M.rebind = B.freed, B.rebind
M.storage_id = B.storage_id
M.live = B.live
M.shape_of = B.shape_of
M.address = B.address

---------------------------------------------------------------------------------------
-- constructors
---------------------------------------------------------------------------------------
function M.empty(...)
  local shape, dt, dev = B.parse_sizes('empty', ...)
  return B.empty('empty', shape, dt, dev)
end

-- A fresh tensor of sizes (...) filled with value, named fn in errors.
local function filled(fn, value, ...)
  local shape, dt, dev = B.parse_sizes(fn, ...)
  local t = B.empty(fn, shape, dt, dev)
  if C.ms_fill(t, value) ~= 0 then B.fail(fn) end
  return t
end
M.filled = filled  -- for random.lua and friends: sized constructors with their own name
function M.zeros(...) return filled('zeros', 0, ...) end
function M.ones(...) return filled('ones', 1, ...) end

-- full({sizes}, value [, opts])
function M.full(shape, value, opts)
  if type(shape) ~= 'table' or is_tensor(shape) then
    check.fail('full: shape is %s, expected a table of sizes, as full({2, 3}, 7)', check.describe(shape))
  end
  local s, dt, dev = B.parse_sizes('full', shape, opts)
  B.value('full', 'value', value, dt)
  local t = B.empty('full', s, dt, dev)
  if C.ms_fill(t, value) ~= 0 then B.fail('full') end
  return t
end

-- empty_like(t [, dtype]) / zeros_like / ones_like: t's shape and device.
function M.empty_like(t, dtype)
  live('empty_like', t)
  return B.empty_like('empty_like', t, dtype ~= nil and B.dtype_id('empty_like', dtype) or nil)
end
function M.zeros_like(t, dtype)
  live('zeros_like', t)
  local out = B.empty_like('zeros_like', t, dtype ~= nil and B.dtype_id('zeros_like', dtype) or nil)
  if C.ms_fill(out, 0) ~= 0 then B.fail('zeros_like') end
  return out
end
function M.ones_like(t, dtype)
  live('ones_like', t)
  local out = B.empty_like('ones_like', t, dtype ~= nil and B.dtype_id('ones_like', dtype) or nil)
  if C.ms_fill(out, 1) ~= 0 then B.fail('ones_like') end
  return out
end

local function finite(fn, name, v)
  if type(v) ~= 'number' or v ~= v or v == huge or v == -huge then
    check.fail('%s: %s is %s, expected a finite number', fn, name, check.describe(v))
  end
  return v
end

-- A 1-D tensor of n values start + i * step; integer dtypes need integral values.
local function affine(fn, n, start, step, opts, last)
  local _, dt, dev = B.parse_sizes(fn, { n }, opts)
  if dt >= 2 then
    B.value(fn, 'start', start, dt)
    B.value(fn, 'step', step, dt)
    if n > 0 then B.value(fn, 'the last value', last, dt) end
  end
  local t = B.empty(fn, { n }, dt, dev)
  if C.ms_arange(t, start, step) ~= 0 then B.fail(fn) end
  return t
end

-- arange(stop) | arange(start, stop [, step]), then an optional options argument.
function M.arange(...)
  local nums, nargs = {}, select('#', ...)
  while #nums < nargs and #nums < 3 and type((select(#nums + 1, ...))) == 'number' do
    nums[#nums + 1] = (select(#nums + 1, ...))
  end
  if #nums == 0 then
    check.fail('arange: argument 1 is %s, expected a number (arange(stop) or arange(start, stop [, step]))',
               check.describe((...)))
  end
  if nargs > #nums + 1 then
    check.fail('arange: argument %d is %s, expected nothing after the options', #nums + 2,
               check.describe((select(#nums + 2, ...))))
  end
  local opts = select(#nums + 1, ...)
  local start, stop, step = 0, nums[1], 1
  if #nums >= 2 then start, stop, step = nums[1], nums[2], nums[3] or 1 end
  finite('arange', 'start', start); finite('arange', 'stop', stop); finite('arange', 'step', step)
  if step == 0 then check.fail('arange: step is 0, expected a non-zero step') end
  local n = max(0, ceil((stop - start) / step))
  if n > 2 ^ 53 then check.fail('arange: %s elements, too many', check.describe(n)) end
  return affine('arange', n, start, step, opts, start + (n - 1) * step)
end

-- range(start, stop [, step] [, opts]): Torch7's torch.range, stop included when reached:
-- floor((stop - start) / step) + 1 values (the formula torch.range uses).
function M.range(...)
  local nums, nargs = {}, select('#', ...)
  while #nums < nargs and #nums < 3 and type((select(#nums + 1, ...))) == 'number' do
    nums[#nums + 1] = (select(#nums + 1, ...))
  end
  if #nums < 2 then
    check.fail('range: argument %d is %s, expected a number (range(start, stop [, step] [, opts]))',
               #nums + 1, check.describe((select(#nums + 1, ...))))
  end
  if nargs > #nums + 1 then
    check.fail('range: argument %d is %s, expected nothing after the options', #nums + 2,
               check.describe((select(#nums + 2, ...))))
  end
  local start, stop, step = nums[1], nums[2], nums[3] or 1
  finite('range', 'start', start); finite('range', 'stop', stop); finite('range', 'step', step)
  if step == 0 then check.fail('range: step is 0, expected a non-zero step') end
  if (stop - start) / step < 0 then
    check.fail('range: start %s, stop %s and step %s go the wrong way, expected stop %s start for a %s step',
               check.describe(start), check.describe(stop), check.describe(step),
               step > 0 and '>=' or '<=', step > 0 and 'positive' or 'negative')
  end
  local n = floor((stop - start) / step) + 1
  if n > 2 ^ 53 then check.fail('range: %s elements, too many', check.describe(n)) end
  return affine('range', n, start, step, select(#nums + 1, ...), start + (n - 1) * step)
end

-- eye(n [, m] [, opts]): an n x m matrix (m defaults to n) with ones on the diagonal.
function M.eye(n, m, opts)
  check.integer('eye', 'n', n, 0, 2 ^ 31 - 1)
  if m == nil then
    m = n
  elseif type(m) ~= 'number' then  -- eye(n, opts)
    if opts ~= nil then check.fail('eye: m is %s, expected an integer >= 0', check.describe(m)) end
    m, opts = n, m
  end
  check.integer('eye', 'm', m, 0, 2 ^ 31 - 1)
  if opts ~= nil and type(opts) ~= 'table' and type(opts) ~= 'string' then
    check.fail('eye: options are %s, expected a dtype string or a table {dtype=, device=}', check.describe(opts))
  end
  local t = filled('eye', 0, { n, m }, opts)
  local k = n < m and n or m
  if k > 0 and C.ms_fill(B.view_of('eye', t, { k }, { m + 1 }, 0), 1) ~= 0 then B.fail('eye') end
  return t
end

-- linspace(start, stop, count [, opts])
function M.linspace(start, stop, n, opts)
  finite('linspace', 'start', start); finite('linspace', 'stop', stop)
  check.integer('linspace', 'count', n, 0)
  local step = n > 1 and (stop - start) / (n - 1) or 0
  local t = affine('linspace', n, start, step, opts, stop)
  if n > 1 then t:set(n, stop) end
  return t
end

-- tensor(value [, opts]): a number gives a 0-d tensor; nested tables give n-d.
-- Tables must be rectangular, at most 8 deep and acyclic.
function M.tensor(data, opts)
  local dt, dev = B.dtype_device('tensor', opts)
  local shape, flat = {}, {}
  if type(data) == 'number' or type(data) == 'boolean' then
    flat[1] = B.value('tensor', 'the value', data, dt)
  elseif type(data) == 'table' and not is_tensor(data) then
    local node, seen = data, {}
    while type(node) == 'table' and not is_tensor(node) do
      if seen[node] then check.fail('tensor: the table contains itself (a cycle), expected nested lists of numbers') end
      seen[node] = true
      if #shape == B.MAX_DIMS then
        check.fail('tensor: tables nested more than %d deep, expected at most %d dimensions',
                   B.MAX_DIMS, B.MAX_DIMS)
      end
      shape[#shape + 1] = #node
      node = node[1]
    end
    local nd = #shape
    local function walk(x, d, where)
      if d > nd then
        flat[#flat + 1] = B.value('tensor', 'element ' .. where, x, dt)
        return
      end
      if type(x) ~= 'table' or is_tensor(x) or #x ~= shape[d] then
        check.fail('tensor: ragged nesting: element %s is %s, expected a table of %d entries',
                   where, type(x) == 'table' and ('a table of ' .. #x .. ' entries') or check.describe(x),
                   shape[d])
      end
      local keys = 0
      for _ in pairs(x) do keys = keys + 1 end
      if keys ~= #x then
        check.fail('tensor: the table at %s has %d keys but length %d, expected a list without holes',
                   where == '' and 'the top' or 'element ' .. where, keys, #x)
      end
      for i = 1, shape[d] do walk(x[i], d + 1, where == '' and tostring(i) or where .. ',' .. i) end
    end
    walk(data, 1, '')
  else
    check.fail('tensor: data is %s, expected a number or a (nested) table of numbers', check.describe(data))
  end
  local t = B.empty('tensor', shape, dt, 0)
  local p = B.data(t, 'tensor')
  for i = 1, #flat do p[i - 1] = flat[i] end
  if dev == 0 then return t end
  local g = B.empty('tensor', shape, dt, dev)
  if C.ms_copy(g, t) ~= 0 then B.fail('tensor') end
  return g
end

---------------------------------------------------------------------------------------
-- inspection
---------------------------------------------------------------------------------------
-- Aliases are functions of their own so that errors name what the user called.
function Tensor.dim(t) return live('dim', t).ndim end
function Tensor.ndimension(t) return live('ndimension', t).ndim end
function Tensor.numel(t) return tonumber(live('numel', t).count) end
function Tensor.nelement(t) return tonumber(live('nelement', t).count) end

function Tensor.shape(t)
  live('shape', t)
  local s = {}
  for d = 1, t.ndim do s[d] = tonumber(t.sizes[d - 1]) end
  return s
end

-- stride(): all strides (in elements) as a table; stride(d): one of them.
function Tensor.stride(t, dim)
  live('stride', t)
  if dim ~= nil then return tonumber(t.strides[B.norm_dim(t, 'stride', dim) - 1]) end
  local s = {}
  for d = 1, t.ndim do s[d] = tonumber(t.strides[d - 1]) end
  return s
end

function Tensor.size(t, dim)
  live('size', t)
  if dim == nil then return t:shape() end
  return tonumber(t.sizes[B.norm_dim(t, 'size', dim) - 1])
end

function Tensor.is_contiguous(t) return C.ms_tensor_is_contiguous(live('is_contiguous', t)) == 1 end

-- Element offset of the 1-based indices (...) (checked), and the 0-based ones in index_buf.
local function elem_offset(t, fn, n, ...)
  if n ~= t.ndim then
    check.fail('%s: %d indices given for a tensor of %d dims, expected %d', fn, n, t.ndim, t.ndim)
  end
  local off = t.offset
  for d = 1, n do
    local i = select(d, ...)
    local size = tonumber(t.sizes[d - 1])
    if type(i) ~= 'number' or i ~= floor(i) or i < 1 or i > size then
      check.fail('%s: index %s out of range for dimension %d of size %d (expected 1..%d)',
                 fn, check.describe(i), d, size, size)
    end
    off = off + (i - 1) * t.strides[d - 1]
    index_buf[d - 1] = i - 1
  end
  return off
end

function Tensor.get(t, ...)
  live('get', t)
  local off = elem_offset(t, 'get', select('#', ...), ...)
  if B.device_id(t, 'get') == 0 then return tonumber(B.data(t, 'get')[off]) end
  if C.ms_get(t, index_buf, value_buf) ~= 0 then B.fail('get') end
  return value_buf[0]
end

-- set(i, j, ..., value)
function Tensor.set(t, ...)
  live('set', t)
  local n = select('#', ...)
  if n == 0 then check.fail('set: no value given, expected t:set(i, j, ..., value)') end
  local v = B.value('set', 'value', (select(n, ...)), t.dtype_id)
  local off = elem_offset(t, 'set', n - 1, ...)
  if B.device_id(t, 'set') == 0 then
    B.data(t, 'set')[off] = v
  elseif C.ms_set(t, index_buf, v) ~= 0 then
    B.fail('set')
  end
  return t
end

function Tensor.item(t)
  live('item', t)
  if t.count ~= 1 then
    check.fail('item: tensor has %d elements, expected exactly 1', tonumber(t.count))
  end
  for d = 1, t.ndim do index_buf[d - 1] = 0 end
  if C.ms_get(t, index_buf, value_buf) ~= 0 then B.fail('item') end
  return value_buf[0]
end

function Tensor.totable(t)
  live('totable', t)
  local src = B.device_id(t, 'totable') == 0 and t or t:to('cpu')
  local p = B.data(src, 'totable')
  if src.ndim == 0 then return tonumber(p[src.offset]) end
  local nd = src.ndim
  local function build(d, off)
    local out, size, stride = {}, tonumber(src.sizes[d - 1]), src.strides[d - 1]
    for i = 1, size do
      local o = off + (i - 1) * stride
      out[i] = d == nd and tonumber(p[o]) or build(d + 1, o)
    end
    return out
  end
  return build(1, src.offset)
end

-- The rest of the type, by concept.
require 'moonstep.tensor_views'
require('moonstep.tensor_ops').export(M)
require('moonstep.tensor_index').export(M)
require('moonstep.tensor_sort').export(M)

return M
