-- moonstep.nn.forms_loss — the functional forms of the losses (part of
-- moonstep.nn.forms, which loads this file): cross_entropy, nll_loss, mse_loss and
-- binary_cross_entropy_with_logits, the semantics of nn.CrossEntropyLoss, NLLLoss,
-- MSELoss and BCEWithLogitsLoss (losses.lua), returning a 0-d tensor for reduction
-- 'mean' / 'sum' (the loss a function ms.autograd differentiates returns) and the
-- per-element tensor for 'none'. Targets carry no gradient, except the float target of
-- mse_loss and of binary_cross_entropy_with_logits (as PyTorch).
--
-- cross_entropy's plain case (no weight, an ignore_index that is no class, every
-- target a class) is the Module's one C pass (ms_cross_entropy; its backward
-- ms_cross_entropy_backward from the kept softmax); the other cases, and nll_loss and
-- the BCE, run a fresh loss Module (its general path, exactly its numbers), kept for the
-- backward.
local core = require 'moonstep.core'
local T = require 'moonstep.tensor'
local check = require 'moonstep.check'
local F = require 'moonstep.nn.functional'
local W = require 'moonstep.nn.window'
local Rows = require 'moonstep.nn.class_rows'
local C, ffi = core.C, core.ffi
local type = type

local P = F._tape
local shape_of, same_shape = T.shape_of, T.same_shape

local float_arg = check.float_tensor

local function scalar(v, like) return T.full({}, v, { dtype = like.dtype, device = like.device }) end

-- opts: a table (unknown keys refused) or the reduction as a string; the reduction.
local function loss_opts(fn, opts, accepted)
  if type(opts) == 'string' then opts = { reduction = opts } end
  opts = check.options(fn, opts, accepted)
  return opts, check.oneof(fn, 'reduction', opts.reduction or 'mean', { 'mean', 'sum', 'none' })
end

-- A loss Module's result (a Lua number for mean / sum) as a tensor like x.
local function as_tensor(r, x)
  if type(r) == 'number' then return scalar(r, x) end
  return r
end

-- A fresh loss Module of class `cls` (from losses.lua) run on (x, t): (result, state).
local function by_module(fn, cls, x, t, opts)
  local m = check.protect(fn, require('moonstep.nn.losses')[cls], opts)
  local r = check.protect(fn, m.forward, m, x, t)
  return as_tensor(r, x), { mod = m }
end

-- The backward of a module-made loss: gradOutput a number (mean, sum) or g itself.
function P.module_backward(fn, st, g, x, t)
  local m = st.mod
  local go = m.reduction == 'none' and g or g:item()
  return check.protect(fn, m.backward, m, x, t, go)
end

---------------------------------------------------------------------------------------
-- cross_entropy(input, target [, opts]) / nll_loss
---------------------------------------------------------------------------------------
-- x against the int64 targets t (nn.CrossEntropyLoss's shapes) as rows x2 [M, C], t1
-- [M], C; a [M, C] gradient back to x's layout (nn/class_rows.lua, shared with losses.lua).
local class_rows, rows_back = Rows.rows, Rows.back

local CE_OPTS = { 'reduction', 'weight', 'ignore_index', 'label_smoothing' }
local ce_out = ffi.new('double[1]')
local ce_bad = ffi.new('int64_t[1]')

function P.cross_entropy(x, t, opts)
  local fn = 'nn.functional.cross_entropy'
  local o, reduction = loss_opts(fn, opts, CE_OPTS)
  float_arg(fn, 'input', x)
  local x2, t1, c = class_rows(fn, x, t)
  local ig = o.ignore_index == nil and -100 or check.integer(fn, 'ignore_index', o.ignore_index)
  local e = check.number(fn, 'label_smoothing', o.label_smoothing or 0, 0, 1)
  local m = t1:numel()
  if o.weight == nil and (ig < 1 or ig > c) and m > 0 then   -- the one-pass kernel
    x2, t1 = x2:contiguous(), t1:contiguous()
    local prob = W.alloc(fn, { m, c }, x2)
    local losses = W.alloc(fn, { m }, x2)
    if C.ms_cross_entropy(prob, losses, x2, t1, 1, e, ce_out, ce_bad) ~= 0 then core.fail(fn) end
    if ce_bad[0] < 0 then
      local st = { prob = prob, target = t1, m = m, e = e, reduction = reduction }
      if reduction == 'none' then return losses:view(t:shape()), st end
      losses:free()
      local total = ce_out[0]
      return scalar(reduction == 'sum' and total or total / m, x), st
    end                                     -- a target that is no class: the Module names it
  end
  return by_module(fn, 'CrossEntropyLoss', x, t, o)
end
F.cross_entropy = P.untaped(P.cross_entropy, 'prob')   -- only the recorded form keeps the softmax

-- The plain case's gradient: into the kept softmax, which nothing else reads, unless the
-- node may run again (fresh: nn.Function's repeatable backward).
function P.cross_entropy_backward(fn, st, g, x, fresh)
  local scale, rows = 1, nil
  if st.reduction == 'none' then
    rows = g:reshape(st.m):contiguous()
  else
    scale = g:item()
    if st.reduction == 'mean' then scale = scale / st.m end
  end
  local out = fresh and T.empty_like(st.prob) or st.prob
  if C.ms_cross_entropy_backward(out, st.prob, st.target, 1, st.e, scale, rows) ~= 0 then core.fail(fn) end
  return rows_back(out, x)
end

local NLL_OPTS = { 'reduction', 'weight', 'ignore_index' }
function P.nll_loss(x, t, opts)
  local fn = 'nn.functional.nll_loss'
  local o = loss_opts(fn, opts, NLL_OPTS)
  float_arg(fn, 'input', x)
  class_rows(fn, x, t)
  return by_module(fn, 'NLLLoss', x, t, o)
end
function F.nll_loss(...) return (P.nll_loss(...)) end

---------------------------------------------------------------------------------------
-- mse_loss(input, target [, opts]) / binary_cross_entropy_with_logits
---------------------------------------------------------------------------------------
local function check_pair(fn, x, y)
  float_arg(fn, 'input', x)
  float_arg(fn, 'target', y, x)
  if not same_shape(x, y) then
    check.fail('%s: input has shape %s but target %s, expected the same shape', fn, shape_of(x), shape_of(y))
  end
end

-- As nn.MSELoss: (x - y)^2, summed in float64 (mean: divided by the count).
function P.mse_loss(x, y, opts)
  local fn = 'nn.functional.mse_loss'
  local _, reduction = loss_opts(fn, opts, { 'reduction' })
  check_pair(fn, x, y)
  local l = x:sub(y):square_()
  if reduction == 'none' then return l, { reduction = reduction } end
  local s = l:numel() > 0 and l:sum() or 0
  if reduction == 'mean' then s = s / l:numel() end
  return scalar(s, x), { reduction = reduction }
end
function F.mse_loss(...) return (P.mse_loss(...)) end

-- d loss / dx (the gradient of the target is its negative), as MSELoss's backward.
function P.mse_loss_backward(st, g, x, y)
  local d = x:sub(y):mul_(2)
  if st.reduction == 'none' then return d:mul_(g) end
  return d:mul_(g:item() * (st.reduction == 'mean' and 1 / x:numel() or 1))
end

local BCE_OPTS = { 'reduction', 'weight', 'pos_weight' }
function P.binary_cross_entropy_with_logits(x, y, opts)
  local fn = 'nn.functional.binary_cross_entropy_with_logits'
  local o = loss_opts(fn, opts, BCE_OPTS)
  check_pair(fn, x, y)
  return by_module(fn, 'BCEWithLogitsLoss', x, y, o)
end
function F.binary_cross_entropy_with_logits(...) return (P.binary_cross_entropy_with_logits(...)) end

-- d loss / dy = w (-x + (pos_weight - 1) softplus(-x)), scaled for the reduction.
function P.bce_target_grad(st, g, x)
  local m = st.mod
  local gy = x:neg()
  if m.pos_weight then
    local sp = x:abs():neg():exp():add(1):log():add(x:neg():relu())      -- softplus(-x)
    gy = gy:add(sp:mul(m.pos_weight:to(x.device, x.dtype):sub(1)))
  end
  if m.weight then gy = gy:mul(m.weight:to(x.device, x.dtype)) end
  if m.reduction == 'none' then return gy:mul(g) end
  return gy:mul(g:item() * (m.reduction == 'mean' and 1 / x:numel() or 1))
end

return F
