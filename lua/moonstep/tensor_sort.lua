-- moonstep.tensor_sort — sort, topk and cumsum along one dim (runtime/sort.c).
--
-- PyTorch's semantics with 1-based dims and indices: NaN is greater than every number,
-- equal values keep their input order (every sort is stable), indices are int64. CPU only
-- for now: a CUDA tensor is an error that says so.
local core = require 'moonstep.core'
local B = require 'moonstep.tensor_base'
local C = core.C
local check = B.check
local type = type

local Tensor, live, fail = B.Tensor, B.live, B.fail
local INT64 = B.DTYPES.int64

local function cpu_only(fn, t)
  if B.device_id(t, fn) ~= 0 then
    check.fail("%s: not available on CUDA tensors yet (move to the CPU with :to('cpu'))", fn)
  end
end

-- A 0-d tensor works as one element of 1 dim (dim 1 or -1); results are 0-d again.
local function as_lines(fn, t, dim)
  local scalar = t.ndim == 0
  local x = scalar and t:reshape({ 1 }) or t
  return x, B.norm_dim(x, fn, dim == nil and -1 or dim), scalar
end

-- values and indices of x's shape with dim d's size k, from ms_sort / ms_topk.
local function sorted_pair(fn, x, d, k, flag, scalar)
  local shape = x:shape()
  shape[d] = k
  local values = B.empty(fn, shape, x.dtype_id, 0)
  local indices = B.empty(fn, shape, INT64, 0)
  local rc
  if fn == 'sort' then rc = C.ms_sort(values, indices, x, d - 1, flag, 1)
  else rc = C.ms_topk(values, indices, x, d - 1, k, flag, 1) end
  if rc ~= 0 then fail(fn) end
  -- (a 0-d input's topk(0) stays [0]: there is no empty 0-d tensor)
  if scalar and k == 1 then return values:reshape({}), indices:reshape({}) end
  return values, indices
end

local SORT_OPTS = { 'descending', 'stable' }

-- sort([dim = -1] [, opts]) / sort(dim, descending) (Torch7's form):
-- opts.descending (default false), opts.stable (accepted; every sort here is stable).
function Tensor.sort(t, dim, opts)
  live('sort', t)
  if type(dim) == 'table' and opts == nil then dim, opts = nil, dim end
  if type(opts) == 'boolean' then opts = { descending = opts } end
  opts = check.options('sort', opts, SORT_OPTS)
  local desc = opts.descending
  if desc ~= nil then check.boolean('sort', 'descending', desc) end
  if opts.stable ~= nil then check.boolean('sort', 'stable', opts.stable) end
  cpu_only('sort', t)
  local x, d, scalar = as_lines('sort', t, dim)
  return sorted_pair('sort', x, d, x:size(d), desc and 1 or 0, scalar)
end

local TOPK_OPTS = { 'largest', 'sorted' }

-- topk(k [, dim = -1] [, opts]): opts.largest (default true: the k largest, NaN first),
-- opts.sorted (default true; the result is always in sorted order).
function Tensor.topk(t, k, dim, opts)
  live('topk', t)
  if type(dim) == 'table' and opts == nil then dim, opts = nil, dim end
  opts = check.options('topk', opts, TOPK_OPTS)
  local largest = opts.largest
  if largest ~= nil then check.boolean('topk', 'largest', largest) end
  if opts.sorted ~= nil then check.boolean('topk', 'sorted', opts.sorted) end
  check.integer('topk', 'k', k, 0)
  cpu_only('topk', t)
  local x, d, scalar = as_lines('topk', t, dim)
  local size = x:size(d)
  if k > size then
    check.fail('topk: k is %s, expected 0..%d (the size of dim %s)', check.describe(k), size,
               check.describe(dim == nil and -1 or dim))
  end
  return sorted_pair('topk', x, d, k, largest == false and 0 or 1, scalar)
end

local CUMSUM_OPTS = { 'dtype' }

-- cumsum(dim [, opts]): prefix sums along dim; opts.dtype converts the input first
-- (default: the input's dtype; uint8 gives int64, as PyTorch).
function Tensor.cumsum(t, dim, opts)
  live('cumsum', t)
  if type(dim) == 'table' and not B.is_tensor(dim) and opts == nil then
    check.fail('cumsum: dim is %s, expected an integer dim (cumsum needs one)', check.describe(dim))
  end
  opts = check.options('cumsum', opts, CUMSUM_OPTS)
  local dt = t.dtype_id
  if opts.dtype ~= nil then dt = B.dtype_id('cumsum', opts.dtype)
  elseif dt == B.DTYPES.uint8 then dt = INT64 end
  if dt == B.DTYPES.uint8 then
    check.fail("cumsum: dtype is 'uint8', expected 'float32', 'float64' or 'int64'")
  end
  cpu_only('cumsum', t)
  local x, d, scalar = as_lines('cumsum', t, dim)
  if dim == nil then B.norm_dim(x, 'cumsum', dim) end
  if x.dtype_id ~= dt then x = x:to(B.DTYPE_NAMES[dt]) end
  local out = B.empty_like('cumsum', x)
  if C.ms_cumsum(out, x, d - 1) ~= 0 then fail('cumsum') end
  if scalar then return out:reshape({}) end
  return out
end

local M = {}
function M.export(T)
  for _, name in ipairs { 'sort', 'topk', 'cumsum' } do
    local method = Tensor[name]
    T[name] = function(t, ...) return method(live(name, t), ...) end
  end
end
return M
