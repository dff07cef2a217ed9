-- moonstep.autograd.rules_shape — gradient rules of views, copies, conversions,
-- indexing (index_select, gather, cat) and matrix products (see autograd/tape.lua for
-- the rule protocol). A view's gradient is the gradient of the base in the view's
-- layout, made with out-of-place ops (or written into a fresh zero tensor). Slicing
-- t[{...}] of a tracked tensor goes through select/narrow (autograd/install.lua).
local A = require 'moonstep.autograd.tape'
require 'moonstep.autograd.rules_reduce'      -- A.pos_dim, A.index_add, A.scatter_add
local T = require 'moonstep.tensor'
local rule, pos_dim = A.rule, A.pos_dim
local type, is_tensor = type, T.is_tensor

---------------------------------------------------------------------------------------
-- views
---------------------------------------------------------------------------------------
-- view(...) / reshape(...) / flatten(): the gradient reshaped back.
local function reshape_back(n, g, tp)
  local x = n.args[1]
  tp:acc(x, g:reshape(x:shape()))
end
rule('view', reshape_back)
rule('reshape', reshape_back)
rule('flatten', reshape_back)

-- narrow(dim, start, length) / select(dim, index): g written into that part of zeros.
rule('narrow', function(n, g, tp)
  local x, dim, start, len = n.args[1], n.args[2], n.args[3], n.args[4]
  if not tp:need(x) then return end
  if len == x:size(pos_dim(dim, x:dim())) then tp:acc(x, g); return end
  local gx = T.zeros_like(x)
  gx:narrow(dim, start, len):copy_(g)
  tp:acc(x, gx)
end)
rule('select', function(n, g, tp)
  local x = n.args[1]
  if not tp:need(x) then return end
  local gx = T.zeros_like(x)
  gx:select(n.args[2], n.args[3]):copy_(g)
  tp:acc(x, gx)
end)

rule('transpose', function(n, g, tp)
  local d1, d2 = n.args[2], n.args[3]
  if d1 == nil and d2 == nil then tp:acc(n.args[1], g:transpose()) return end
  tp:acc(n.args[1], g:transpose(d1, d2))
end)
rule('t', function(n, g, tp) tp:acc(n.args[1], g:t()) end)

-- permute(dims...) (numbers or one table): g permuted by the inverse order.
rule('permute', function(n, g, tp)
  local x = n.args[1]
  local order = type(n.args[2]) == 'table' and n.args[2] or { unpack(n.args, 2, n.nargs) }
  local nd, inv = x:dim(), {}
  for i = 1, nd do inv[pos_dim(order[i], nd)] = i end
  tp:acc(x, g:permute(inv))
end)

-- unsqueeze(dim): the inserted dim (1 .. dim() + 1 of the input; negative from the end
-- of the output) squeezed away.
rule('unsqueeze', function(n, g, tp)
  local x = n.args[1]
  tp:acc(x, g:squeeze(pos_dim(n.args[2], x:dim() + 1)))
end)

-- squeeze([dim]): the removed size-1 dims put back (views, in increasing order).
rule('squeeze', function(n, g, tp)
  local x, dim = n.args[1], n.args[2]
  local d0 = dim ~= nil and pos_dim(dim, x:dim()) or nil
  for d = 1, x:dim() do
    if x:size(d) == 1 and (d0 == nil or d0 == d) then g = g:unsqueeze(d) end
  end
  tp:acc(x, g)
end)

-- expand / expand_as: tp:acc sums the broadcast gradient back to the input's shape.
local function pass(n, g, tp) tp:acc(n.args[1], g) end
rule('expand', pass)
rule('expand_as', pass)

---------------------------------------------------------------------------------------
-- copies and conversions (tp:acc converts the gradient back to the input's dtype and
-- device; long/byte give integer results, which the tape does not record)
---------------------------------------------------------------------------------------
for _, name in ipairs { 'clone', 'contiguous', 'to', 'cpu', 'cuda', 'float', 'double' } do
  rule(name, pass)
end

---------------------------------------------------------------------------------------
-- indexing
---------------------------------------------------------------------------------------
-- An index argument (an int64 tensor or a table of integers) as a tensor on `device`.
local function index_tensor(idx, device)
  if not is_tensor(idx) then idx = T.tensor(idx, { dtype = 'int64' }) end
  if idx.device ~= device then idx = idx:to(device) end
  return idx
end

-- index_select(dim, index): g added back at the indices (repeats summed).
rule('index_select', function(n, g, tp)
  local x, dim = n.args[1], n.args[2]
  if not tp:need(x) then return end
  local idx = index_tensor(n.args[3], x.device):contiguous()
  tp:acc(x, A.index_add(T.zeros_like(x), pos_dim(dim, x:dim()) - 1, idx, g:contiguous(), 1, 'index_select'))
end)

-- gather(dim, index): g scatter-added back at the indices (repeats summed).
rule('gather', function(n, g, tp)
  local x, dim = n.args[1], n.args[2]
  if not tp:need(x) then return end
  local idx = index_tensor(n.args[3], x.device)
  tp:acc(x, A.scatter_add(x, pos_dim(dim, x:dim()), idx, g, 'gather'))
end)

-- cat(list, dim = 1): each input's part of g.
rule('cat', function(n, g, tp)
  local list = n.args[1]
  local d = pos_dim(n.args[2] or 1, list[1]:dim())
  local at = 1
  for _, t in ipairs(list) do
    local len = t:size(d)
    if tp:need(t) then tp:acc(t, g:narrow(d, at, len)) end
    at = at + len
  end
end)

---------------------------------------------------------------------------------------
-- matrix products
---------------------------------------------------------------------------------------
-- C = alpha op(a) op(b) (op: the transpose options); with G = dC:
--   d op(a) = alpha G op(b)^T,  d op(b) = alpha op(a)^T G,
-- each one GEMM with the transposes passed as options (nothing transposed in memory).
-- 1-D operands are the forward's row (a) and column (b) vectors; an operand broadcast
-- over a batch gets the batch's gradients summed: b (2-D or 1-D against a 3-D a) by one
-- GEMM over a's flattened batch rows when a is contiguous and not transposed, otherwise
-- the batched products are summed by tp:acc.
local matmul = T.matmul
local function mm(a, b, ta, tb, alpha)
  return matmul(a, b, { transpose_a = ta, transpose_b = tb, alpha = alpha })
end

local function matmul_backward(n, g, tp)
  local a, b, opts = n.args[1], n.args[2], n.args[3] or {}
  local need_a, need_b = tp:need(a), tp:need(b)
  if not (need_a or need_b) then return end
  local ta, tb, alpha = opts.transpose_a == true, opts.transpose_b == true, opts.alpha or 1
  local a2 = a:dim() == 1 and a:unsqueeze(1) or a
  local b2 = b:dim() == 1 and b:unsqueeze(2) or b
  if a2:dim() == 3 and b2:dim() == 2 then b2 = b2:unsqueeze(1) end
  if a2:dim() == 2 and b2:dim() == 3 then a2 = a2:unsqueeze(1) end
  local nd = a2:dim()
  -- g in the unsqueezed product's shape [batch,] m, n
  local m = ta and a2:size(nd) or a2:size(nd - 1)
  local ncols = tb and b2:size(nd - 1) or b2:size(nd)
  if g:dim() ~= nd then
    local shape = nd == 3 and { math.max(a2:size(1), b2:size(1)), m, ncols } or { m, ncols }
    g = g:reshape(shape)
  end
  if need_a then
    local ga
    if ta then ga = mm(b2, g, tb, true, alpha)             -- (alpha op(b) G^T)
    else ga = mm(g, b2, false, not tb, alpha) end          -- alpha G op(b)^T
    if ga:numel() == a:numel() then ga = ga:reshape(a:shape()) end
    tp:acc(a, ga)
  end
  if need_b then
    local gb
    if nd == 3 and b:dim() <= 2 and not ta and a2:size(1) == g:size(1) and a2:is_contiguous() then
      -- b broadcast over a's batch: one GEMM over the flattened batch rows
      local k = a2:size(3)
      local a_rows, g_rows = a2:reshape(-1, k), g:reshape(-1, ncols)
      if tb then gb = mm(g_rows, a_rows, true, false, alpha)
      else gb = mm(a_rows, g_rows, true, false, alpha) end
    elseif tb then gb = mm(g, a2, true, ta, alpha)          -- (alpha G^T op(a))
    else gb = mm(a2, g, not ta, false, alpha) end          -- alpha op(a)^T G
    if gb:numel() == b:numel() then gb = gb:reshape(b:shape()) end
    tp:acc(b, gb)
  end
end
-- (beta scales opts.out, which the tape refuses; matmul refuses a beta without out.)
rule('matmul', matmul_backward)
rule('bmm', matmul_backward)

A.mark_nondiff('zeros_like', 'ones_like', 'empty_like', 'argmax', 'argmin')

return A
