-- moonstep.nn.batched — the losses of a model and of many perturbed copies of it on one
-- mini-batch, in one batched pass (Zeroth-Learn's batched perturbations, done with the
-- runtime's GEMMs): no Lua loop over the models.
--
--   ok, why = batched.supports(model [, criterion])
--   losses [, per_example] = batched.evaluate(model, criterion, x, y, U, scales [, opts])
--   batched.release(model)          drops the buffers kept for model
--
-- U [n, d]: directions in ARENA order (row i = u_i over the model's flat parameters);
-- scales: a Lua array of m entries {row = i, scale = s}: model t has the parameters
-- w + s * U[i] (row = 0: the nominal model w). Returns a Lua array of the m losses
-- (numbers, as criterion:forward(model:forward(x), y) at each model's parameters) and,
-- with opts.per_example, an [m, B] tensor of the losses of each example (reduction
-- 'none'; MSELoss/BCEWithLogitsLoss: averaged over the example's elements for 'mean',
-- summed for 'sum').
--
-- How (shapes per model: x [B, ..., in] as R rows):
--   layer 1 (its input X [R, in] is shared by every model):
--     C0 = X W^T + b                           one GEMM, shared
--     P_j = X U1_j^T + ub_j                    one batched GEMM over the k distinct rows of
--                                              U in use (+h and -h share their product)
--     Y_t = C0 + s_t P_j(t)                    one fused addcmul over [m, R, out]
--   later Linear layers: W_t = W + s_t U_t, b_t = b + s_t ub_t (fused addcmul into a
--     reused workspace), Y_t = H_t W_t^T + b_t as one 3-D matmul (cuBLAS strided-batched
--     on the GPU); activations (in place), Flatten, Softmax over the [m, R, h] stack;
--   the criterion: per-example losses over the [m*B, C] stack (the targets repeated),
--     then the sum or mean of each model.
-- When the models come in a regular order — nominal entries first, then distinct rows
-- lo, lo+1, ... either each repeated g times in a row (+h u1, -h u1, +h u2, ...) or the
-- whole list repeated g times (+h u1, +h u2, ..., -h u1, -h u2, ...) — U and P are read
-- through strided views; any other order gathers the rows it needs (index_select).
-- Buffers are kept per model (a weak table) and reused while the shapes stay the same.
-- The scales list and its layout: nn/batched_scales.lua; the criterion: nn/batched_loss.lua.
local core = require 'moonstep.core'
local B = require 'moonstep.tensor_base'
local T = require 'moonstep.tensor'
local check = require 'moonstep.check'
local W = require 'moonstep.nn.window'
local Module = require 'moonstep.nn.Module'
local Sequential = require 'moonstep.nn.Sequential'
local Linear = require 'moonstep.nn.Linear'
local Flatten = require 'moonstep.nn.Flatten'
local Dropout = require 'moonstep.nn.Dropout'
local acts = require 'moonstep.nn.activations'
local softmax = require 'moonstep.nn.Softmax'
local bl = require 'moonstep.nn.batched_loss'
local scales_of = require 'moonstep.nn.batched_scales'
local C = core.C
local floor, describe, fail = math.floor, check.describe, check.fail
local view_of = B.view_of

local M = {}
local FN = 'batched.evaluate'

---------------------------------------------------------------------------------------
-- the plan: the model as a list of ops
---------------------------------------------------------------------------------------
-- Elementwise activations: class -> function(module) returning the runtime op and its a.
local UNARY = {
  [acts.ReLU] = function() return C.MS_RELU, 0 end,
  [acts.Tanh] = function() return C.MS_TANH, 0 end,
  [acts.Sigmoid] = function() return C.MS_SIGMOID, 0 end,
  [acts.LeakyReLU] = function(m) return C.MS_LEAKY_RELU, m.slope end,
  [acts.GELU] = function(m) return m.approximate == 'tanh' and C.MS_GELU_TANH or C.MS_GELU, 0 end,
}
local SUPPORTED = 'Linear, ReLU, Tanh, Sigmoid, LeakyReLU, GELU, Flatten, Dropout (evaluation ' ..
                  'mode or p = 0), Softmax, LogSoftmax and nested Sequential'

-- The ops of model, or nil and the reason it is not supported.
local function compile(model)
  if not Module.is_module(model) or getmetatable(model) ~= Sequential then
    return nil, ('model is %s, expected an nn.Sequential'):format(describe(model))
  end
  if rawget(model, '_in_arena') and not rawget(model, '_arena') then
    return nil, 'model is part of a larger model, expected the root (the model that owns the arena)'
  end
  local ops = {}
  local function walk(seq, prefix)
    for i, m in ipairs(seq.modules) do
      local name, cls = prefix .. i, getmetatable(m)
      if cls == Sequential then
        local ok, why = walk(m, name .. '.')
        if not ok then return nil, why end
      elseif cls == Linear then
        ops[#ops + 1] = { kind = 'linear', mod = m, name = name }
      elseif UNARY[cls] then
        local op, a = UNARY[cls](m)
        ops[#ops + 1] = { kind = 'unary', op = op, a = a }
      elseif cls == Flatten then
        ops[#ops + 1] = { kind = 'flatten', start_dim = m.start_dim, end_dim = m.end_dim, name = name }
      elseif cls == Dropout then
        if m.training and m.p > 0 then
          return nil, ('module %s (Dropout, p = %s) is in training mode, expected evaluation mode ' ..
                       '(model:evaluate()) or p = 0: each perturbed model would draw its own mask'):format(
                       name, describe(m.p))
        end
      elseif cls == softmax.Softmax or cls == softmax.LogSoftmax then
        ops[#ops + 1] = { kind = 'softmax', log = cls == softmax.LogSoftmax and 1 or 0, dim = m.dim,
                          name = name .. ' (' .. m.__name .. ')' }
      else
        return nil, ('module %s (%s) is not supported; batched evaluation takes %s'):format(
                    name, tostring(m.__name), SUPPORTED)
      end
    end
    return true
  end
  local ok, why = walk(model, '')
  if not ok then return nil, why end
  local first
  for i, op in ipairs(ops) do
    if op.kind == 'linear' then first = first or i end
  end
  if not first then return nil, 'model has no Linear layer (nothing to perturb)' end
  -- each Linear's weight and bias: their offsets in the arena (in the arena's order)
  local ok2, slices = pcall(model.slices, model)
  if not ok2 then return nil, check.reason(slices) end
  local by_name = {}
  for _, sl in ipairs(slices) do by_name[sl.name] = sl end
  for _, op in ipairs(ops) do
    if op.kind == 'linear' then
      for _, p in ipairs { 'weight', 'bias' } do
        local t, sl = op.mod[p], by_name[op.name .. '.' .. p]
        if t ~= nil and not (sl and sl.numel == t:numel()) then
          return nil, ('parameter %s.%s is not in the model\'s arena, expected the arena built ' ..
                       'for the model as it is now (model:build_arena())'):format(op.name, p)
        end
        op[p == 'weight' and 'woff' or 'boff'] = t ~= nil and sl.offset or nil
      end
    end
  end
  return { ops = ops, first = first }
end

function M.supports(model, criterion)
  local plan, why = compile(model)
  if not plan then return false, why end
  if criterion ~= nil then
    local kind, cwhy = bl.kind(criterion)
    if not kind then return false, cwhy end
  end
  return true
end

-- Which path a scales list takes (for the specs): 'nominal', 'grouped', 'tiled', 'gather'.
function M._path(scales)
  local rows, _, m = scales_of.parse(scales)
  local L = scales_of.layout(rows, m)
  if L.k == 0 then return 'nominal' end
  if not L.fast then return 'gather' end
  return L.grouped and 'grouped' or 'tiled'
end

---------------------------------------------------------------------------------------
-- the ops
---------------------------------------------------------------------------------------
local function cfail() core.fail(FN) end
local function gemm(out, a, b, beta)
  if C.ms_matmul(out, a, b, 0, 1, 1, beta) ~= 0 then cfail() end
end
local function addcmul(out, a, b, c)
  if C.ms_ternary(out, a, b, c, C.MS_ADDCMUL, 1) ~= 0 then cfail() end
end
local function copy(dst, src) if C.ms_copy(dst, src) ~= 0 then cfail() end end
local function select_rows(out, x, index) if C.ms_index_select(out, x, 0, index, 1) ~= 0 then cfail() end end

-- Flatten's rule on a shape (Lua table), as Flatten.forward.
local function flatten_shape(shape, s0, e0, name)
  local n = #shape
  local s = s0 < 0 and n + s0 + 1 or s0
  local e = e0 < 0 and n + e0 + 1 or e0
  if s < 1 or s > n or e < 1 or e > n or s > e then
    fail('%s: module %s (Flatten): dims %d..%d do not fit the input of shape %s (%d dims)', FN, name, s0, e0,
         scales_of.shape_text(shape), n)
  end
  local out, p = {}, 1
  for d = 1, s - 1 do out[#out + 1] = shape[d] end
  for d = s, e do p = p * shape[d] end
  out[#out + 1] = p
  for d = e + 1, n do out[#out + 1] = shape[d] end
  return out
end

local function numel_of(shape, from)
  local n = 1
  for d = from or 1, #shape do n = n * shape[d] end
  return n
end

local function softmax_dim(op, shape)
  local n = #shape
  local d = op.dim < 0 and n + op.dim + 1 or op.dim
  if d < 1 or d > n then
    fail('%s: module %s: dim %d is out of range for the input of shape %s (%d dims)', FN, op.name, op.dim,
         scales_of.shape_text(shape), n)
  end
  return d
end

-- Before the first Linear: the ops on the shared input (fresh tensors, x untouched).
local function shared_op(op, h)
  if op.kind == 'flatten' then
    return h:reshape(flatten_shape(h:shape(), op.start_dim, op.end_dim, op.name))
  elseif op.kind == 'unary' then
    local out = T.empty_like(h)
    if C.ms_unary(out, h, op.op, op.a, 0) ~= 0 then cfail() end
    return out
  else
    local d = softmax_dim(op, h:shape())
    return op.log == 1 and h:log_softmax(d) or h:softmax(d)
  end
end

-- Layer 1: Y [m, R, out] from the shared X [R, in].
local function first_linear(ws, ctx, op, X, key)
  local mod = op.mod
  local L, U, S = ctx.L, ctx.U, ctx.S
  local R, nin, nout = X:size(1), mod.in_features, mod.out_features
  local c0 = W.buffer(ws, key .. 'c0', { R, nout }, X, FN)
  if mod.bias then copy(c0, mod.bias) end
  if C.ms_matmul(c0, X, mod.weight, 0, 1, 1, mod.bias and 1 or 0) ~= 0 then cfail() end
  local m, p, k = L.m, L.p, L.k
  local Y = W.buffer(ws, key .. 'y', { m, R, nout }, X, FN)
  local c0b = c0:view(1, R, nout)
  if k == 0 then copy(Y, c0b); return Y end
  local woff, boff = op.woff, op.boff
  -- the k products P_j = X U1_j^T + ub_j
  local P = W.buffer(ws, key .. 'p', { k, R, nout }, X, FN)
  local u1, ub
  if L.fast then
    local base, rs = tonumber(U.offset) + (L.lo - 1) * U:stride(1), U:stride(1)
    u1 = view_of(FN, U, { k, nout, nin }, { rs, nin, 1 }, base + woff)
    ub = boff and view_of(FN, U, { k, 1, nout }, { rs, 0, 1 }, base + boff)
  else
    local g = W.buffer(ws, key .. 'u1', { k, nout * nin }, X, FN)
    select_rows(g, U:narrow(2, woff + 1, nout * nin), ctx.order_idx)
    u1 = g:view(k, nout, nin)
    if boff then
      local gb = W.buffer(ws, key .. 'ub', { k, nout }, X, FN)
      select_rows(gb, U:narrow(2, boff + 1, nout), ctx.order_idx)
      ub = gb:view(k, 1, nout)
    end
  end
  if ub then copy(P, ub) end
  gemm(P, X:unsqueeze(1), u1, ub and 1 or 0)
  -- Y_t = C0 + s_t P_j(t)
  if L.fast then
    if p > 0 then copy(Y:narrow(1, 1, p), c0b) end
    local rest = Y:narrow(1, p + 1, m - p):view(L.A, L.Bb, R * nout)
    local pv = scales_of.grid_view(L, P, R * nout, tonumber(P.offset), R * nout)
    addcmul(rest, c0:view(1, 1, R * nout), pv, S.grid)
  else
    local sel = W.buffer(ws, key .. 'sel', { m, R, nout }, X, FN)
    select_rows(sel, P, ctx.j_idx)
    addcmul(Y, c0b, sel, S.all:view(m, 1, 1))
  end
  return Y
end

-- The perturbed copies [m, len] of the parameter block at offset off (values v [len]).
local function perturbed(ws, ctx, v, off, len, key)
  local L, U, S = ctx.L, ctx.U, ctx.S
  local m, p = L.m, L.p
  local out = W.buffer(ws, key, { m, len }, v, FN)
  local vb = v:view(1, len)
  if L.k == 0 then copy(out, vb); return out end
  if L.fast then
    if p > 0 then copy(out:narrow(1, 1, p), vb) end
    local base = tonumber(U.offset) + (L.lo - 1) * U:stride(1) + off
    addcmul(out:narrow(1, p + 1, m - p):view(L.A, L.Bb, len), v:view(1, 1, len),
            scales_of.grid_view(L, U, U:stride(1), base, len), S.grid)
  else
    local sel = W.buffer(ws, key .. 'sel', { m, len }, v, FN)
    select_rows(sel, U:narrow(2, off + 1, len), ctx.row_idx)
    addcmul(out, vb, sel, S.all:view(m, 1))
  end
  return out
end

-- A later Linear: H [m, R, in] -> Y [m, R, out] with each model's W_t, b_t.
local function later_linear(ws, ctx, op, H, key)
  local mod = op.mod
  local m, R = ctx.L.m, H:size(2)
  local nin, nout = mod.in_features, mod.out_features
  local Wt = perturbed(ws, ctx, mod.weight:view(nout * nin), op.woff, nout * nin, key .. 'w')
  local Y = W.buffer(ws, key .. 'y', { m, R, nout }, H, FN)
  if mod.bias then
    local bt = perturbed(ws, ctx, mod.bias, op.boff, nout, key .. 'b')
    copy(Y, bt:view(m, 1, nout))
  end
  gemm(Y, H, Wt:view(m, nout, nin), mod.bias and 1 or 0)
  return Y
end

---------------------------------------------------------------------------------------
-- evaluate
---------------------------------------------------------------------------------------
local workspaces = setmetatable({}, { __mode = 'k' })
local OPTS = { 'per_example' }

function M.evaluate(model, criterion, x, y, U, scales, opts)
  opts = check.options(FN, opts, OPTS)
  local per_example = opts.per_example
  if per_example ~= nil then check.boolean(FN, 'per_example', per_example) end
  local plan, why = compile(model)
  if not plan then fail('%s: %s', FN, why) end
  local kind, cwhy = bl.kind(criterion)
  if not kind then fail('%s: %s', FN, cwhy) end
  local flat = model:flat_parameters()
  check.tensor(FN, 'x', x)
  if x.dtype ~= flat.dtype or x.device ~= flat.device then
    fail('%s: x is %s on %s, expected %s (the model\'s parameters)', FN, describe(x), x.device, scales_of.type_text(flat))
  end
  if x:dim() < 2 or x:numel() == 0 then
    fail('%s: x is %s, expected a non-empty batch [B, ...] (at least 2 dims)', FN, describe(x))
  end
  check.tensor(FN, 'y', y)
  local rows, vals, m_all = scales_of.parse(scales)
  U = scales_of.check_U(U, flat, rows)

  local L = scales_of.layout(rows, m_all)
  if L.k == 0 then L = scales_of.layout({ 0 }, 1) end         -- nominal only: one model, copied
  local m = L.m
  local ws = workspaces[model]
  if not ws then ws = {}; workspaces[model] = ws end
  local ctx = { L = L, U = U, S = {} }
  if L.k > 0 then
    local dev, dt = flat.device, flat.dtype
    ctx.S.all = T.tensor(vals, { dtype = dt }):to(dev)
    if L.fast then
      ctx.S.grid = ctx.S.all:narrow(1, L.p + 1, m - L.p):view(L.A, L.Bb, 1)
    else
      local j, r = {}, {}
      for t = 1, m do
        j[t] = rows[t] > 0 and L.index[rows[t]] or 1
        r[t] = rows[t] > 0 and rows[t] or 1
      end
      ctx.order_idx = T.tensor(L.order, { dtype = 'int64' }):to(dev)
      ctx.j_idx = T.tensor(j, { dtype = 'int64' }):to(dev)
      ctx.row_idx = T.tensor(r, { dtype = 'int64' }):to(dev)
    end
  end

  -- the shared input up to the first Linear
  local h = x
  for i = 1, plan.first - 1 do h = shared_op(plan.ops[i], h) end
  local first = plan.ops[plan.first].mod
  local xs = h:shape()
  if xs[#xs] ~= first.in_features then
    fail('%s: the input of module %s (Linear) has shape %s, expected [..., %d]', FN,
         plan.ops[plan.first].name, scales_of.shape_text(xs), first.in_features)
  end
  local X = h:dim() == 2 and h or h:reshape(-1, first.in_features)
  local H = first_linear(ws, ctx, plan.ops[plan.first], X, plan.first)
  local shape = xs
  shape[#shape] = first.out_features                -- per-model shape; H is [m, numel(shape)]
  for i = plan.first + 1, #plan.ops do
    local op = plan.ops[i]
    if op.kind == 'linear' then
      local mod = op.mod
      if shape[#shape] ~= mod.in_features then
        fail('%s: the input of module %s (Linear) has shape %s per model, expected [..., %d]', FN,
             op.name, scales_of.shape_text(shape), mod.in_features)
      end
      H = later_linear(ws, ctx, op, H:view(m, numel_of(shape) / mod.in_features, mod.in_features), i)
      shape[#shape] = mod.out_features
    elseif op.kind == 'unary' then
      if C.ms_unary(H, H, op.op, op.a, 0) ~= 0 then cfail() end
    elseif op.kind == 'flatten' then
      shape = flatten_shape(shape, op.start_dim, op.end_dim, op.name)
    else
      local d = softmax_dim(op, shape)
      local stack = { m }
      for e = 1, #shape do stack[e + 1] = shape[e] end
      H = H:view(stack)
      if d == #shape then                           -- the kernel's own layout, into a buffer
        local out = W.buffer(ws, i .. 'sm', stack, H, FN)
        if C.ms_softmax(out, H, op.log) ~= 0 then cfail() end
        H = out
      else
        H = check.protect(FN, op.log == 1 and H.log_softmax or H.softmax, H, d + 1)
      end
    end
  end

  local sums, pe, den, K, sign = bl.losses(ws, criterion, kind, H, shape, y, m)
  local mean = criterion.reduction == 'mean'
  local vals_out = sums:to('cpu', 'float64'):totable()
  sign = sign or 1
  local result = {}
  for t = 1, m_all do
    local v = sign * vals_out[m == m_all and t or 1]
    result[t] = mean and v / den or v
  end
  if not per_example then return result end
  local pex = pe:clone()
  if sign ~= 1 then pex:mul_(sign) end
  if K and mean and K ~= 1 then pex:mul_(1 / K) end
  if m ~= m_all then pex = pex:expand(m_all, pex:size(2)):clone() end
  return result, pex
end

-- Drops the buffers kept for model (they are reused from call to call while the shapes
-- stay the same; about (m + k) * B * h values per Linear layer, and m copies of each later
-- layer's weights).
function M.release(model)
  if type(model) ~= 'table' then
    check.fail('batched.release: model is %s, expected the model given to batched.evaluate', check.describe(model))
  end
  workspaces[model] = nil
end

return M
