-- moonstep.nn.batched_loss — the criterion half of moonstep.nn.batched (private to it):
-- the losses of m models whose outputs are stacked as [m, B, ...], per example and per
-- model, with the targets shared by all m.
--   kind(crit)  -> 'class' | 'elem', or nil and the reason the criterion is not supported
--   losses(ws, crit, kind, out, shape, y, m) -> sums [m], per-example [m, B], divisor,
--       elements per example, sign (see below); errors name batched.evaluate
-- Class losses (CrossEntropyLoss, NLLLoss) in the plain case (no weight, no label
-- smoothing, an ignore_index that is no class) are a log_softmax and a gather into reused
-- buffers; otherwise, and for elementwise losses (MSELoss, BCEWithLogitsLoss), a private
-- reduction-'none' copy of the criterion runs over the whole stack.
local core = require 'moonstep.core'
local check = require 'moonstep.check'
local W = require 'moonstep.nn.window'
local losses = require 'moonstep.nn.losses'
local C = core.C
local describe, fail = check.describe, check.fail

local M = {}
local FN = 'batched.evaluate'

local function cfail() core.fail(FN) end
local function copy(dst, src) if C.ms_copy(dst, src) ~= 0 then cfail() end end
local function shape_text(shape) return '[' .. table.concat(shape, ',') .. ']' end
local function type_text(t) return ('%s on %s'):format(t.dtype, t.device) end

-- Criterion classes: 'class' (log-probabilities per class, int64 targets) or 'elem'.
local CRITERIA = {
  [losses.CrossEntropyLoss] = 'class', [losses.NLLLoss] = 'class',
  [losses.MSELoss] = 'elem', [losses.BCEWithLogitsLoss] = 'elem',
}
local CRIT_NAMES = 'CrossEntropyLoss, NLLLoss, MSELoss, BCEWithLogitsLoss'

function M.kind(crit)
  local kind = type(crit) == 'table' and CRITERIA[getmetatable(crit)]
  if not kind then
    return nil, ('criterion is %s, expected one of %s'):format(describe(crit), CRIT_NAMES)
  end
  if crit.reduction ~= 'mean' and crit.reduction ~= 'sum' then
    return nil, ("criterion %s has reduction %s, expected 'mean' or 'sum' (per-example losses " ..
                 "come with opts.per_example)"):format(crit.__name, describe(crit.reduction))
  end
  return kind
end

-- A private reduction-'none' copy of crit (the user's keeps its own state), rebuilt when
-- its options change.
local private = setmetatable({}, { __mode = 'k' })
local function none_criterion(crit)
  local c = private[crit]
  if c and c.weight == crit.weight and c.pos_weight == crit.pos_weight and
     c.ignore_index == crit.ignore_index and c.label_smoothing == crit.label_smoothing then
    return c
  end
  local cls = getmetatable(crit)
  local opts = { reduction = 'none', weight = crit.weight }
  if cls == losses.BCEWithLogitsLoss then opts.pos_weight = crit.pos_weight end
  if CRITERIA[cls] == 'class' then opts.ignore_index = crit.ignore_index end
  if cls == losses.CrossEntropyLoss then opts.label_smoothing = crit.label_smoothing end
  c = check.protect(FN, cls.new, opts)
  private[crit] = c
  return c
end

-- Per-model sums [m], the examples' losses [m, B], the mean's divisor, the number of
-- elements of an example (elementwise losses) and the sign of the sums and losses (-1:
-- they are log-probabilities).
function M.losses(ws, crit, kind, out, shape, y, m)
  local Bn = shape[1]
  if kind == 'class' then
    if #shape ~= 2 then
      fail('%s: the model\'s output is %s per model, expected [B, C] scores for %s', FN,
           shape_text(shape), crit.__name)
    end
    if y.dtype ~= 'int64' or y:dim() ~= 1 or y:size(1) ~= Bn then
      fail('%s: y is %s, expected int64 class indices [%d] (1-based) for the output [%d,%d]', FN,
           describe(y), Bn, Bn, shape[2])
    end
    if y.device ~= out.device then fail('%s: y is on %s, expected %s (the model\'s)', FN, y.device, out.device) end
    local c = shape[2]
    local rep = W.buffer(ws, 'targets', { m, Bn }, y, FN)
    copy(rep, y:unsqueeze(1))
    local ig = crit.ignore_index
    if not crit.weight and (crit.label_smoothing or 0) == 0 and (ig < 1 or ig > c) then
      -- the plain case: loss_i = -logp[i, t_i] (log_softmax and a gather into buffers)
      local yf = y:to(y.device == 'cpu' and 'float64' or 'float32')
      if Bn > 0 and (yf:min() < 1 or yf:max() > c) then
        local v = y:to('cpu'):totable()
        for i = 1, Bn do
          if v[i] < 1 or v[i] > c then
            fail('%s: target %s at position %d is not a class: expected 1..%d (1-based)', FN, describe(v[i]), i, c)
          end
        end
      end
      local o2, logp = out:view(m * Bn, c), out:view(m * Bn, c)
      if getmetatable(crit) == losses.CrossEntropyLoss then
        logp = W.buffer(ws, 'logp', { m * Bn, c }, out, FN)
        if C.ms_softmax(logp, o2, 1) ~= 0 then cfail() end
      end
      local picked = W.buffer(ws, 'picked', { m * Bn, 1 }, out, FN)
      if C.ms_gather(picked, logp, 1, rep:view(m * Bn, 1), 1) ~= 0 then cfail() end
      return picked:view(m, Bn):sum(2), picked:view(m, Bn), Bn, nil, -1
    end
    local none = none_criterion(crit)
    local l = check.protect(FN, none.forward, none, out:view(m * Bn, c), rep:view(m * Bn))
    local den = none.cache.den / m            -- the same targets in every model
    return l:view(m, Bn):sum(2), l:view(m, Bn), den
  end
  check.tensor(FN, 'y', y)
  if y.dtype ~= out.dtype or y.device ~= out.device then
    fail('%s: y is %s on %s, expected %s (the model\'s)', FN, describe(y), y.device, type_text(out))
  end
  local ys = y:shape()
  if shape_text(ys) ~= shape_text(shape) then
    fail('%s: y has shape %s, expected %s (the model\'s output for x)', FN, shape_text(ys), shape_text(shape))
  end
  local none = none_criterion(crit)
  local stack = { m }
  for d = 1, #shape do stack[d + 1] = shape[d] end
  local l = check.protect(FN, none.forward, none, out:view(stack), y:unsqueeze(1):expand(stack))
  local K = 1
  for d = 2, #shape do K = K * shape[d] end
  local pe = l:view(m, Bn, K):sum(3)
  return pe:sum(2), pe, Bn * K, K
end

return M
