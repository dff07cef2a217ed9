-- moonstep.tensor_views — views without copies (view, reshape, narrow, select,
-- transpose, permute, unsqueeze, squeeze, expand), then copies, fills, dtype/device
-- conversions and explicit release. Every view goes through B.view_of, which checks
-- the rank before touching a fixed buffer; the runtime then checks that the view lies
-- inside the storage (with overflow-checked arithmetic).
local core = require 'moonstep.core'
local B = require 'moonstep.tensor_base'
local C = core.C
local check = B.check
local floor, type, select = math.floor, type, select

local Tensor, live, is_tensor = B.Tensor, B.live, B.is_tensor
local view_of, norm_dim, shape_str = B.view_of, B.norm_dim, B.shape_str

local function contiguous_strides(shape)
  local stride, s = {}, 1
  for d = #shape, 1, -1 do stride[d] = s; s = s * shape[d] end
  return stride
end

-- Sizes given as numbers or one table (view(2, 3) or view({2, 3})), copied.
local function size_args(fn, ...)
  local n, first = select('#', ...), ...
  local shape
  if type(first) == 'table' and not is_tensor(first) then
    if n > 1 then
      check.fail('%s: argument 2 is %s, expected sizes as numbers or one table', fn,
                 check.describe((select(2, ...))))
    end
    shape = {}
    for i = 1, #first do shape[i] = first[i] end
  else
    shape = { ... }
    n = select('#', ...)
    for i = 1, n do
      if type(shape[i]) ~= 'number' then
        check.fail('%s: size %d is %s, expected a number', fn, i, check.describe(shape[i]))
      end
    end
  end
  B.check_rank(fn, #shape)
  return shape
end

-- Resolve a target shape with at most one -1 against numel.
local function infer_shape(fn, t, ...)
  local shape = size_args(fn, ...)
  if #shape == 0 and select('#', ...) == 0 and t.count ~= 1 then
    check.fail('%s: no sizes given, expected the new shape (sizes or one table)', fn)
  end
  local known, hole = 1, nil
  for d, v in ipairs(shape) do
    if v == -1 and not hole then hole = d
    else
      if type(v) ~= 'number' or v < 0 or v ~= floor(v) or v > 2 ^ 53 then
        check.fail('%s: size %s of dimension %d is invalid, expected a non-negative integer or one -1',
                   fn, check.describe(v), d)
      end
      known = known * v
    end
  end
  local numel = tonumber(t.count)
  if hole then
    if known == 0 or numel % known ~= 0 then
      check.fail('%s: cannot infer the -1 in %s for %d elements', fn, shape_str(shape), numel)
    end
    shape[hole] = numel / known
    known = numel
  end
  if known ~= numel then
    check.fail('%s: shape %s has %s elements, expected %d (the tensor is %s)', fn,
               shape_str(shape), check.describe(known), numel, shape_str(t:shape()))
  end
  return shape
end

-- view: a new shape over the same memory; needs a contiguous tensor.
function Tensor.view(t, ...)
  live('view', t)
  local shape = infer_shape('view', t, ...)
  if not t:is_contiguous() then
    check.fail('view: tensor is not contiguous (strides %s), expected a contiguous one; ' ..
               'use reshape() or contiguous() first', shape_str(t:stride()))
  end
  return view_of('view', t, shape, contiguous_strides(shape), tonumber(t.offset))
end

-- reshape: a view when possible, else a contiguous copy.
function Tensor.reshape(t, ...)
  live('reshape', t)
  local shape = infer_shape('reshape', t, ...)
  local src = t:is_contiguous() and t or t:clone()
  return view_of('reshape', src, shape, contiguous_strides(shape), tonumber(src.offset))
end

function Tensor.flatten(t) return live('flatten', t):reshape(tonumber(t.count)) end

-- narrow(dim, start, length): elements start..start+length-1 of dim.
function Tensor.narrow(t, dim, start, len)
  live('narrow', t)
  local d = norm_dim(t, 'narrow', dim)
  local size = tonumber(t.sizes[d - 1])
  if type(start) ~= 'number' then check.integer('narrow', 'start', start) end
  if type(len) ~= 'number' then check.integer('narrow', 'length', len) end
  if start ~= floor(start) or start < 1 or start > size + 1 then
    check.fail('narrow: start %s out of range for dimension %d of size %d (expected 1..%d)',
               check.describe(start), d, size, size)
  end
  if type(len) ~= 'number' or len ~= floor(len) or len < 0 or start + len - 1 > size then
    check.fail('narrow: length %s from start %d overruns dimension %d of size %d (expected 0..%d)',
               check.describe(len), start, d, size, size - start + 1)
  end
  local shape, stride = t:shape(), t:stride()
  shape[d] = len
  return view_of('narrow', t, shape, stride, tonumber(t.offset) + (start - 1) * stride[d])
end

-- select(dim, index): the slice at index (negative counts from the end), dim removed.
function Tensor.select(t, dim, index)
  live('select', t)
  local d = norm_dim(t, 'select', dim)
  local size = tonumber(t.sizes[d - 1])
  if type(index) ~= 'number' or index ~= floor(index) or index < -size or index > size or index == 0 then
    check.fail('select: index %s out of range for dimension %d of size %d (expected 1..%d or -%d..-1)',
               check.describe(index), d, size, size, size)
  end
  if index < 0 then index = size + index + 1 end
  local shape, stride = t:shape(), t:stride()
  local offset = tonumber(t.offset) + (index - 1) * stride[d]
  table.remove(shape, d); table.remove(stride, d)
  return view_of('select', t, shape, stride, offset)
end

function Tensor.transpose(t, d1, d2)
  live('transpose', t)
  if d1 == nil and d2 == nil then
    if t.ndim ~= 2 then
      check.fail('transpose: no dims given for a tensor of %d dims, expected a 2-D tensor or two dims', t.ndim)
    end
    d1, d2 = 1, 2
  end
  d1, d2 = norm_dim(t, 'transpose', d1, 0, 'dim1'), norm_dim(t, 'transpose', d2, 0, 'dim2')
  local shape, stride = t:shape(), t:stride()
  shape[d1], shape[d2] = shape[d2], shape[d1]
  stride[d1], stride[d2] = stride[d2], stride[d1]
  return view_of('transpose', t, shape, stride, tonumber(t.offset))
end
function Tensor.t(t)
  live('t', t)
  if t.ndim ~= 2 then check.fail('t: tensor has %d dims, expected 2 (use transpose(d1, d2))', t.ndim) end
  return t:transpose()
end

function Tensor.permute(t, ...)
  live('permute', t)
  local order = size_args('permute', ...)
  if #order ~= t.ndim then
    check.fail('permute: %d dims given for a tensor of %d dims, expected a permutation of 1..%d',
               #order, t.ndim, t.ndim)
  end
  local seen, shape, stride, s0, st0 = {}, {}, {}, t:shape(), t:stride()
  for i, dim in ipairs(order) do
    local d = norm_dim(t, 'permute', dim)
    if seen[d] then check.fail('permute: dim %s repeated, expected a permutation', check.describe(dim)) end
    seen[d] = true
    shape[i], stride[i] = s0[d], st0[d]
  end
  return view_of('permute', t, shape, stride, tonumber(t.offset))
end

function Tensor.unsqueeze(t, dim)
  live('unsqueeze', t)
  B.check_rank('unsqueeze', t.ndim + 1, 'dims (after unsqueeze)')
  local d = norm_dim(t, 'unsqueeze', dim, 1)
  local shape, stride = t:shape(), t:stride()
  local s = d <= t.ndim and stride[d] * shape[d] or 1
  table.insert(shape, d, 1); table.insert(stride, d, s)
  return view_of('unsqueeze', t, shape, stride, tonumber(t.offset))
end

function Tensor.squeeze(t, dim)
  live('squeeze', t)
  local shape, stride, s0, st0 = {}, {}, t:shape(), t:stride()
  local d0 = dim ~= nil and norm_dim(t, 'squeeze', dim) or nil
  for d = 1, t.ndim do
    if not (s0[d] == 1 and (d0 == nil or d0 == d)) then
      shape[#shape + 1], stride[#stride + 1] = s0[d], st0[d]
    end
  end
  return view_of('squeeze', t, shape, stride, tonumber(t.offset))
end

-- expand(sizes): a broadcast view; size-1 dims get stride 0, -1 keeps a size.
local function expand(fn, t, ...)
  live(fn, t)
  local shape = size_args(fn, ...)
  local n, nd = #shape, t.ndim
  if n < nd then
    check.fail('%s: %d sizes given for a tensor of %d dims, expected at least %d', fn, n, nd, nd)
  end
  local stride, s0, st0 = {}, t:shape(), t:stride()
  for d = 1, n do
    local v, td = shape[d], d - (n - nd)
    if v ~= -1 or td < 1 then B.size(fn, v, d) end
    if td < 1 then
      stride[d] = 0
    elseif v == -1 or v == s0[td] then
      shape[d], stride[d] = s0[td], st0[td]
    elseif s0[td] == 1 then
      stride[d] = 0
    else
      check.fail('%s: size %d of dimension %d cannot expand to %s (only size-1 dims expand)',
                 fn, s0[td], td, check.describe(v))
    end
  end
  return view_of(fn, t, shape, stride, tonumber(t.offset))
end
function Tensor.expand(t, ...) return expand('expand', t, ...) end
function Tensor.expand_as(t, other)
  live('expand_as', other, 'other')
  return expand('expand_as', t, other:shape())
end

---------------------------------------------------------------------------------------
-- copies, fills, conversions, devices
---------------------------------------------------------------------------------------
function Tensor.clone(t)
  live('clone', t)
  local out = B.empty_like('clone', t)
  if C.ms_copy(out, t) ~= 0 then B.fail('clone') end
  return out
end

function Tensor.contiguous(t)
  live('contiguous', t)
  if t:is_contiguous() then return t end
  return t:clone()
end

function Tensor.copy_(t, src)
  live('copy_', t); live('copy_', src, 'src')
  if C.ms_copy(t, src) ~= 0 then B.fail('copy_') end
  return t
end

function Tensor.fill_(t, v)
  live('fill_', t)
  B.value('fill_', 'value', v, t.dtype_id)
  if C.ms_fill(t, v) ~= 0 then B.fail('fill_') end
  return t
end
function Tensor.zero_(t)
  live('zero_', t)
  if C.ms_fill(t, 0) ~= 0 then B.fail('zero_') end
  return t
end

-- to(device) / to(dtype) / to(device, dtype): a converted copy, or t itself when
-- nothing changes. Converting to an integer dtype truncates toward zero; values
-- outside the target's range are an error.
local function to(fn, t, a, b)
  live(fn, t)
  local dev, dt = B.device_id(t, fn), t.dtype_id
  local dev0 = dev
  for i, x in ipairs { a, b } do
    if B.DEVICES[x] then dev = B.DEVICES[x]
    elseif B.DTYPES[x] then dt = B.DTYPES[x]
    elseif x ~= nil or (i == 1 and b ~= nil) then
      check.fail("%s: argument %d is %s, neither a device ('cpu', 'cuda') nor a dtype " ..
                 "(float32, float64, int64, uint8)", fn, i, check.describe(x))
    end
  end
  if dev == dev0 and dt == t.dtype_id then return t end
  local out = B.empty(fn, t:shape(), dt, dev)
  if C.ms_copy(out, t) ~= 0 then B.fail(fn) end
  return out
end
function Tensor.to(t, a, b) return to('to', t, a, b) end
function Tensor.cuda(t) return to('cuda', t, 'cuda') end
function Tensor.cpu(t) return to('cpu', t, 'cpu') end
function Tensor.float(t) return to('float', t, 'float32') end
function Tensor.double(t) return to('double', t, 'float64') end
function Tensor.long(t) return to('long', t, 'int64') end
function Tensor.byte(t) return to('byte', t, 'uint8') end

-- Release the storage now instead of at garbage collection; later use is an error.
-- Freeing twice is harmless.
function Tensor.free(t)
  if not is_tensor(t) then check.fail('free: tensor is %s, expected a tensor', check.describe(t)) end
  C.ms_tensor_release(t)
end
