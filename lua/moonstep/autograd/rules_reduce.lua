-- moonstep.autograd.rules_reduce — gradient rules of the reductions (sum, mean, max,
-- min, norm, var, std, dot, cumsum, sort, topk; see autograd/tape.lua for the rule
-- protocol). On the tape a reduction over all elements returns a 0-d tensor (its
-- forward), never a Lua number: the number would leave the tape. Ties and special
-- points follow PyTorch's derivatives.yaml (checked in tests/autograd_reduce_spec.lua):
-- max()/min() over all elements share the gradient evenly among the tied elements,
-- max(dim)/min(dim)/sort/topk send it to the returned index, norm's gradient is 0 where
-- the norm is 0, std's where the std is 0.
local A = require 'moonstep.autograd.tape'
local T = require 'moonstep.tensor'
local C = require('moonstep.core').C
local B = require 'moonstep.tensor_base'
local rule = A.rule
local type, huge = type, math.huge

-- dim (1-based, negative from the end) as a positive dim of an nd-dim tensor.
local function pos_dim(dim, nd) return dim < 0 and nd + 1 + dim or dim end
A.pos_dim = pos_dim

-- g (a reduction's result or its gradient) with the reduced dim put back as size 1
-- (g:unsqueeze unless keepdim); over all elements g is 0-d and broadcasts as it is.
local function unsqueeze_reduced(g, x, dim, keepdim)
  if dim == nil or keepdim then return g end
  return g:unsqueeze(pos_dim(dim, x:dim()))
end

-- A reduction's gradient g back to the input's shape.
local function expand_back(g, x, dim, keepdim)
  return unsqueeze_reduced(g, x, dim, keepdim):expand(x:shape())
end

-- The recording forward of a reduction whose dim is its argument `dim_at` after the
-- tensor (norm(p, dim, keepdim): 2; sum, mean, max, min, var, std: 1) and keepdim the
-- last of nargs. Over all elements (dim nil) raw runs over the flattened tensor's one
-- dim and gives a 0-d tensor, never a Lua number: the arguments before keepdim kept
-- (norm's p, var's unbiased), keepdim dropped (there is no dim to keep), one result
-- (max/min over a dim also give indices).
local function reduction_forward(dim_at, nargs)
  return function(raw, t, a1, a2, a3)
    if dim_at == 1 then
      if a1 ~= nil then return raw(t, a1, a2, a3) end
      a1 = 1
    else
      if a2 ~= nil then return raw(t, a1, a2, a3) end
      a2 = 1
    end
    if nargs == 2 then return (raw(t:reshape(-1), a1)) end
    return (raw(t:reshape(-1), a1, a2))
  end
end
local by_dim = reduction_forward(1, 2)        -- sum, mean, max, min (dim, keepdim)

-- The number of elements a reduction over dim (nil: all) combines.
local function count(x, dim)
  if dim == nil then return x:numel() end
  return x:size(pos_dim(dim, x:dim()))
end

---------------------------------------------------------------------------------------
-- sum, mean
---------------------------------------------------------------------------------------
rule('sum', function(n, g, tp)
  local x = n.args[1]
  tp:acc(x, expand_back(g, x, n.args[2], n.args[3]))
end, { forward = by_dim })

rule('mean', function(n, g, tp)
  local x, dim = n.args[1], n.args[2]
  tp:acc(x, expand_back(g:div(count(x, dim)), x, dim, n.args[3]))
end, { forward = by_dim })

---------------------------------------------------------------------------------------
-- max, min
---------------------------------------------------------------------------------------
-- A mask (x's dtype) of the positions `idx` (1-based int64, size 1 along d) picks along
-- dim d of x: arange(1..size) == idx, broadcast (exact in float32 below 2^24 elements).
local function index_mask(x, d, idx)
  local size, shape = x:size(d), {}
  for k = 1, x:dim() do shape[k] = k == d and size or 1 end
  local pos = T.arange(1, size + 1, { dtype = x.dtype, device = x.device }):view(shape)
  return pos:eq(idx:to(x.dtype))
end

local function extreme_backward(n, g, tp)
  local x, dim, keepdim = n.args[1], n.args[2], n.args[3]
  if not tp:need(x) then return end
  if dim == nil then
    -- evenly among the elements equal to the result (NaN: among the NaNs), as torch's
    -- evenly_distribute_backward
    local mask = x:eq(n.out)
    local c = mask:sum()
    if c == 0 then mask = x:ne(x); c = mask:sum() end
    tp:acc(x, mask:mul(g):div(c))
    return
  end
  if x:dim() == 0 then tp:acc(x, g); return end
  local d = pos_dim(dim, x:dim())
  local idx = keepdim and n.out2 or n.out2:unsqueeze(d)
  tp:acc(x, index_mask(x, d, idx):mul(unsqueeze_reduced(g, x, dim, keepdim)))
end
rule('max', extreme_backward, { forward = by_dim })   -- over all elements: the value only
rule('min', extreme_backward, { forward = by_dim })

---------------------------------------------------------------------------------------
-- norm, var, std
---------------------------------------------------------------------------------------
-- torch's norm_backward, case by case (the gradient is 0 where the norm is 0).
rule('norm', function(n, g, tp)
  local x, p, dim, keepdim = n.args[1], n.args[2], n.args[3], n.args[4]
  if not tp:need(x) then return end
  p = p == nil and 2 or p
  if p == 0 then return end                                -- piecewise constant
  local nrm
  g, nrm = unsqueeze_reduced(g, x, dim, keepdim), unsqueeze_reduced(n.out, x, dim, keepdim)
  local nz = nrm:ne(0)                                     -- 1 where the norm is not 0
  local dx
  if p == 1 then
    dx = x:sign():mul(g)
  elseif p == 2 then
    -- x * g / norm, 0 where norm == 0 (norm + (norm == 0) avoids 0/0)
    dx = x:mul(g:mul(nz):div(nrm:add(nrm:eq(0))))
  elseif p == huge then
    -- sign(x) g / (#ties) at the elements whose |x| is the norm (or NaN)
    local ax = x:abs()
    local mask = ax:eq(nrm)
    mask = mask:add(ax:ne(ax)):clamp(0, 1)
    local ties = dim == nil and mask:sum() or mask:sum(pos_dim(dim, x:dim()), true)
    dx = x:sign():mul(mask):mul(g:div(ties))
  elseif p < 1 then
    -- sign(x) |x|^(p-1) (0 at x == 0) g norm^(1-p)
    local ax = x:abs()
    local xnz = ax:ne(0)
    local s = x:sign():mul(ax:add(ax:eq(0)):pow(p - 1)):mul(xnz)
    dx = s:mul(g:mul(nrm:pow(1 - p)))
  else
    -- x |x|^(p-2) g / norm^(p-1), 0 where norm == 0
    local s = p < 2 and x:sign():mul(x:abs():pow(p - 1)) or x:mul(x:abs():pow(p - 2))
    dx = s:mul(g:mul(nz):div(nrm:add(nrm:eq(0)):pow(p - 1)))
  end
  tp:acc(x, dx)
end, { forward = reduction_forward(2, 3) })      -- norm(p, dim, keepdim)

local var_forward = reduction_forward(1, 3)       -- var / std(dim, unbiased, keepdim)

-- d var = 2 g (x - mean) / (N - correction)
local function var_grad(x, g, dim, unbiased)
  local mean = dim == nil and x:mean() or x:mean(dim, true)
  local N = count(x, dim) - (unbiased == false and 0 or 1)
  return x:sub(mean):mul(g):mul(2 / N)
end

rule('var', function(n, g, tp)
  local x, dim, unbiased, keepdim = n.args[1], n.args[2], n.args[3], n.args[4]
  if not tp:need(x) then return end
  tp:acc(x, var_grad(x, unsqueeze_reduced(g, x, dim, keepdim), dim, unbiased))
end, { forward = var_forward })

-- d std = d var / (2 std), 0 where std == 0 (as torch's std_backward)
rule('std', function(n, g, tp)
  local x, dim, unbiased, keepdim = n.args[1], n.args[2], n.args[3], n.args[4]
  if not tp:need(x) then return end
  local s = unsqueeze_reduced(n.out, x, dim, keepdim)
  local gv = unsqueeze_reduced(g, x, dim, keepdim):mul(s:ne(0)):div(s:add(s:eq(0)):mul(2))
  tp:acc(x, var_grad(x, gv, dim, unbiased))
end, { forward = var_forward })

---------------------------------------------------------------------------------------
-- dot, cumsum
---------------------------------------------------------------------------------------
-- dot(a, b): on the tape a 0-d tensor of a's dtype and device (the float64-accumulated
-- value, rounded once).
rule('dot', function(n, g, tp)
  local a, b = n.args[1], n.args[2]
  if tp:need(a) then tp:acc(a, b:reshape(a:shape()):mul(g)) end
  if tp:need(b) then tp:acc(b, a:reshape(b:shape()):mul(g)) end
end, { forward = function(raw, a, b)
  return T.full({}, raw(a, b), { dtype = a.dtype, device = a.device })
end })

-- g flipped along dim d (index_select of size..1).
local function flip(g, d)
  local size = g:size(d)
  if size <= 1 then return g end
  return g:index_select(d, T.arange(size, 0, -1, { dtype = 'int64', device = g.device }))
end

-- cumsum(dim, opts): the gradient is the reversed cumulative sum of g.
rule('cumsum', function(n, g, tp)
  local x, dim = n.args[1], n.args[2]
  if not tp:need(x) then return end
  if x:dim() == 0 then tp:acc(x, g); return end
  local d = pos_dim(dim, x:dim())
  tp:acc(x, flip(flip(g, d):cumsum(d), d))
end)

---------------------------------------------------------------------------------------
-- sort, topk: the values' gradient scattered back through the indices
---------------------------------------------------------------------------------------
-- out += src at index along 0-based dim d0, repeats summed (ms_index_add: out, index
-- and src contiguous, src of out's shape with d0 of index's length; index - base the
-- 0-based positions); name: the op, for errors. Nothing to add when src is empty.
local function index_add(out, d0, index, src, base, name)
  if src:numel() > 0 and C.ms_index_add(out, d0, index, src, base) ~= 0 then
    B.fail(name .. ' (ms.autograd backward)')
  end
  return out
end
A.index_add = index_add

-- zeros of x's shape with src added at idx along d (idx 1-based int64, src of idx's
-- shape; repeated indices sum; name: the op, for errors): index_add over the flattened
-- tensor with each element's linear offset (computed in float: exact below 2^53
-- elements in float64, 2^24 in float32; larger CUDA tensors compute it on the CPU).
local function scatter_add(x, d, idx, src, name)
  local shape, nd = x:shape(), x:dim()
  local strides, s = {}, 1
  for k = nd, 1, -1 do strides[k] = s; s = s * shape[k] end
  local dev, ft = x.device, 'float64'
  if dev ~= 'cpu' and x:numel() <= 2 ^ 24 then ft = 'float32' end
  local on = ft == 'float64' and 'cpu' or dev
  local lin = idx:to(on):to(ft):mul(strides[d])
  for k = 1, nd do
    local len = idx:size(k)
    if k ~= d and len > 1 then
      local vs = {}
      for j = 1, nd do vs[j] = j == k and len or 1 end
      lin = lin:add(T.arange(0, len, { dtype = ft, device = on }):mul(strides[k]):view(vs))
    end
  end
  -- 1-based positions along d: base strides[d] makes (idx - 1) * stride + rest 0-based
  lin = lin:to('int64'):reshape(-1):contiguous()
  if lin.device ~= dev then lin = lin:to(dev) end
  local out = T.zeros({ x:numel() }, { dtype = src.dtype, device = dev })
  index_add(out, 0, lin, src:contiguous():reshape(-1), strides[d], name)
  return out:view(shape)
end
A.scatter_add = scatter_add

local function sorted_backward(n, g, tp, dim)
  local x = n.args[1]
  if not tp:need(x) then return end
  if x:dim() == 0 then tp:acc(x, g:reshape({})); return end
  tp:acc(x, scatter_add(x, pos_dim(type(dim) == 'number' and dim or -1, x:dim()), n.out2, g, n.name))
end
-- sort([dim] [, opts]), topk(k [, dim] [, opts])
rule('sort', function(n, g, tp) sorted_backward(n, g, tp, n.args[2]) end)
rule('topk', function(n, g, tp) sorted_backward(n, g, tp, n.args[3]) end)

return A
