-- moonstep.tensor_index — linear algebra (dot, matmul, bmm) and indexing
-- (index_select, gather, cat).
local core = require 'moonstep.core'
local B = require 'moonstep.tensor_base'
local C = core.C
local check = B.check
local type, floor = type, math.floor

local Tensor, live, is_tensor = B.Tensor, B.live, B.is_tensor
local fail, shape_str, value_buf = B.fail, B.shape_str, B.value_buf
local M = {}

---------------------------------------------------------------------------------------
-- linear algebra
---------------------------------------------------------------------------------------
-- dot(a, b): a Lua number (float64 accumulation).
function M.dot(a, b)
  live('dot', a, 'argument 1'); live('dot', b, 'argument 2')
  if C.ms_dot(a, b, value_buf) ~= 0 then fail('dot') end
  return value_buf[0]
end

local MATMUL_OPTS = { 'transpose_a', 'transpose_b', 'out', 'alpha', 'beta' }

-- matmul(a, b [, opts]): opts.transpose_a / transpose_b (booleans), opts.out (a
-- contiguous tensor of the result's shape, not sharing memory with a or b: the
-- runtime then computes into a temporary), opts.alpha / beta (out = alpha a b + beta out).
-- 1-D operands are treated as a row (a) or column (b) vector and squeezed back; a
-- 3-D operand batches, and a 2-D partner is broadcast over the batch.
local function matmul(fn, a, b, opts)
  live(fn, a, 'argument 1'); live(fn, b, 'argument 2')
  opts = check.options(fn, opts, MATMUL_OPTS)
  local ta, tb = opts.transpose_a, opts.transpose_b
  if ta ~= nil then check.boolean(fn, 'transpose_a', ta) end
  if tb ~= nil then check.boolean(fn, 'transpose_b', tb) end
  ta, tb = ta and 1 or 0, tb and 1 or 0
  local alpha = opts.alpha == nil and 1 or check.number(fn, 'alpha', opts.alpha)
  local beta = opts.beta == nil and 0 or check.number(fn, 'beta', opts.beta)
  if opts.out ~= nil then live(fn, opts.out, 'out')
  elseif beta ~= 0 then   -- beta scales what out held: a fresh output holds nothing yet
    check.fail('%s: beta is %s without out, expected beta = 0 or an out tensor to accumulate into',
               fn, check.describe(beta))
  end
  local squeeze_a, squeeze_b = a.ndim == 1, b.ndim == 1
  if squeeze_a then a = a:unsqueeze(1) end
  if squeeze_b then b = b:unsqueeze(2) end
  if a.ndim == 3 and b.ndim == 2 then b = b:unsqueeze(1) end
  if a.ndim == 2 and b.ndim == 3 then a = a:unsqueeze(1) end
  if (a.ndim ~= 2 and a.ndim ~= 3) or a.ndim ~= b.ndim then
    check.fail('%s: shapes %s and %s are not matrices or batches of matrices (1-3 dims)', fn,
               shape_str(a:shape()), shape_str(b:shape()))
  end
  local nd = a.ndim
  local m = tonumber(ta == 1 and a.sizes[nd - 1] or a.sizes[nd - 2])
  local n = tonumber(tb == 1 and b.sizes[nd - 2] or b.sizes[nd - 1])
  local shape = { m, n }
  if nd == 3 then
    table.insert(shape, 1, math.max(tonumber(a.sizes[0]), tonumber(b.sizes[0])))
  end
  local out = opts.out or B.empty(fn, shape, a.dtype_id, B.device_id(a, fn))
  if C.ms_matmul(out, a, b, ta, tb, alpha, beta) ~= 0 then fail(fn) end
  if opts.out then return out end
  if squeeze_a and squeeze_b then return out:reshape({}) end
  if squeeze_a then return out:squeeze(nd - 1) end
  if squeeze_b then return out:squeeze(nd) end
  return out
end
function M.matmul(a, b, opts) return matmul('matmul', a, b, opts) end

function M.bmm(a, b, opts)
  live('bmm', a, 'argument 1'); live('bmm', b, 'argument 2')
  if a.ndim ~= 3 or b.ndim ~= 3 then
    check.fail('bmm: shapes %s and %s, expected two 3-D tensors [batch, m, k] and [batch, k, n]',
               shape_str(a:shape()), shape_str(b:shape()))
  end
  return matmul('bmm', a, b, opts)
end

---------------------------------------------------------------------------------------
-- indexing
---------------------------------------------------------------------------------------
-- An int64 index tensor from a tensor or a (nested) table of integers.
local function as_index(fn, idx, device)
  if is_tensor(idx) then return live(fn, idx, 'index') end
  if type(idx) ~= 'table' then
    check.fail('%s: index is %s, expected an int64 tensor or a table of integers', fn, check.describe(idx))
  end
  local function scan(x, where, depth)
    if depth > B.MAX_DIMS then check.fail('%s: index table nested too deep (or cyclic)', fn) end
    for i = 1, #x do
      local v = x[i]
      if type(v) == 'table' and not is_tensor(v) then scan(v, where .. i .. ',', depth + 1)
      elseif type(v) ~= 'number' or v ~= floor(v) or v < -2 ^ 53 or v > 2 ^ 53 then
        check.fail('%s: index %s is %s, expected an integer', fn, where .. i, check.describe(v))
      end
    end
  end
  scan(idx, '', 1)
  local ok, t = pcall(require('moonstep.tensor').tensor, idx, { dtype = 'int64' })
  if not ok then check.raise((tostring(t):gsub('^.-tensor: ', fn .. ': index: '))) end
  if device == 0 then return t end
  local g = B.empty(fn, t:shape(), t.dtype_id, device)
  if C.ms_copy(g, t) ~= 0 then fail(fn) end
  return g
end

function Tensor.index_select(t, dim, index)
  live('index_select', t)
  local d = B.norm_dim(t, 'index_select', dim)
  index = as_index('index_select', index, B.device_id(t, 'index_select'))
  if index.ndim ~= 1 then
    check.fail('index_select: index has %d dims, expected a 1-D tensor', index.ndim)
  end
  local shape = t:shape()
  shape[d] = tonumber(index.count)
  local out = B.empty('index_select', shape, t.dtype_id, B.device_id(t, 'index_select'))
  if C.ms_index_select(out, t, d - 1, index, 1) ~= 0 then fail('index_select') end
  return out
end

function Tensor.gather(t, dim, index)
  live('gather', t)
  local d = B.norm_dim(t, 'gather', dim)
  index = as_index('gather', index, B.device_id(t, 'gather'))
  local out = B.empty('gather', index:shape(), t.dtype_id, B.device_id(t, 'gather'))
  if C.ms_gather(out, t, d - 1, index, 1) ~= 0 then fail('gather') end
  return out
end

-- cat({t1, t2, ...}, dim = 1): concatenation along an existing dim; one dtype, one device.
function M.cat(list, dim)
  if type(list) ~= 'table' or is_tensor(list) or #list == 0 then
    check.fail('cat: tensors is %s, expected a non-empty table of tensors', check.describe(list))
  end
  for i = 1, #list do live('cat', list[i], 'tensor ' .. i) end
  local first = list[1]
  local d = B.norm_dim(first, 'cat', dim == nil and 1 or dim)
  local shape, total = first:shape(), 0
  local dev = B.device_id(first, 'cat')
  for i, t in ipairs(list) do
    if t.ndim ~= first.ndim then
      check.fail('cat: tensor %d has %d dims, tensor 1 has %d, expected equal', i, t.ndim, first.ndim)
    end
    if t.dtype_id ~= first.dtype_id or B.device_id(t, 'cat') ~= dev then
      check.fail('cat: tensor %d is %s on %s, tensor 1 is %s on %s, expected one dtype and device',
                 i, t.dtype, t.device, first.dtype, first.device)
    end
    for k = 1, t.ndim do
      if k ~= d and tonumber(t.sizes[k - 1]) ~= shape[k] then
        check.fail('cat: tensor %d has shape %s, tensor 1 has %s; they differ in dim %d (not the cat dim %d)',
                   i, shape_str(t:shape()), shape_str(shape), k, d)
      end
    end
    total = total + tonumber(t.sizes[d - 1])
  end
  shape[d] = total
  local out = B.empty('cat', shape, first.dtype_id, dev)
  local at = 1
  for _, t in ipairs(list) do
    local len = tonumber(t.sizes[d - 1])
    if len > 0 and out:numel() > 0 and C.ms_copy(out:narrow(d, at, len), t) ~= 0 then fail('cat') end
    at = at + len
  end
  return out
end

function M.export(T)
  T.dot, T.matmul, T.bmm, T.cat = M.dot, M.matmul, M.bmm, M.cat
  Tensor.dot, Tensor.matmul, Tensor.bmm = M.dot, M.matmul, M.bmm
  T.index_select = function(t, dim, index) return live('index_select', t):index_select(dim, index) end
  T.gather = function(t, dim, index) return live('gather', t):gather(dim, index) end
end

return M
