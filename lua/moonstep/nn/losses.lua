-- Losses: forward(output, target) returns a Lua number (reduction 'mean' or 'sum') or
-- a tensor of per-example losses ('none'); backward(output, target [, gradOutput])
-- returns the gradient with respect to output (for 'none', gradOutput weights each
-- example and defaults to ones).
--
--   MSELoss                      mean((x - y)^2)
--   CrossEntropyLoss{label_smoothing = e}   fused log-softmax + NLL over [N, C] logits
--       and 1-based int64 targets [N]: loss_i = -(1-e) logp[i, t_i] - e/C sum_j logp[i, j]
--       gradient (softmax(x) - q) with q = (1-e) onehot(t) + e/C
--   NLLLoss                      loss_i = -x[i, t_i] over log-probabilities x [N, C]
--   BCEWithLogitsLoss            max(x, 0) - x y + log(1 + exp(-|x|)); gradient sigmoid(x) - y
local ms = require 'moonstep'
local Module = require 'moonstep.nn.Module'
local F = require 'moonstep.nn.functional'

local M = {}

local function criterion(name)
  local cls = Module:extend(name)
  function cls:__init(opts)
    Module.init(self)
    opts = opts or {}
    if type(opts) == 'string' then opts = { reduction = opts } end
    self.reduction = opts.reduction or 'mean'
    if self.reduction ~= 'mean' and self.reduction ~= 'sum' and self.reduction ~= 'none' then
      error(('%s: reduction %q is unknown, expected mean, sum or none'):format(name, tostring(self.reduction)), 3)
    end
    if cls.setup then cls.setup(self, opts) end
  end
  function cls:extra_repr() return self.reduction end
  -- Reduce per-example losses [N] to the result of forward.
  function cls:reduce(losses)
    if self.reduction == 'none' then return losses end
    if self.reduction == 'sum' then return losses:sum() end
    return losses:mean()
  end
  -- The weight of each example's loss in the gradient: [N, 1]-broadcastable.
  function cls:example_scale(n, go, like)
    if self.reduction == 'none' then
      if go then return go:reshape(-1, 1) end
      return 1
    end
    if go ~= nil and type(go) ~= 'number' then error(name .. '.backward: gradOutput must be a number for mean/sum', 3) end
    return (go or 1) * (self.reduction == 'mean' and 1 / n or 1)
  end
  M[name] = cls
  return cls
end

local function check_pair(name, x, t, same_shape)
  if not ms.is_tensor(x) then error(name .. ': output must be a tensor', 3) end
  if not ms.is_tensor(t) then error(name .. ': target must be a tensor', 3) end
  if same_shape and table.concat(x:shape(), ',') ~= table.concat(t:shape(), ',') then
    error(('%s: output has shape [%s] but target [%s], expected the same shape'):format(
      name, table.concat(x:shape(), ','), table.concat(t:shape(), ',')), 3)
  end
end

local function check_classes(name, x, t)
  check_pair(name, x, t)
  if x:dim() ~= 2 then
    error(('%s: output has shape [%s], expected [N, C] scores'):format(name, table.concat(x:shape(), ',')), 3)
  end
  if t.dtype ~= 'int64' or t:dim() ~= 1 or t:size(1) ~= x:size(1) then
    error(('%s: target is %s of shape [%s], expected int64 class indices of shape [%d] (1-based)'):format(
      name, t.dtype, table.concat(t:shape(), ','), x:size(1)), 3)
  end
end

-- x[i, t_i] as [N]; gather rejects a class outside 1..C with a message naming it.
local function pick(name, x, t)
  local ok, v = pcall(x.gather, x, 2, t:view(-1, 1))
  if not ok then
    error(('%s: %s (targets are 1-based class indices)'):format(name, tostring(v):gsub('^.-gather: ', '')), 3)
  end
  return v:view(-1)
end

-- MSE -----------------------------------------------------------------------------------
local MSE = criterion('MSELoss')
function MSE:forward(x, y)
  check_pair('MSELoss', x, y, true)
  local sq = (x - y):square_()
  if self.reduction == 'none' then return sq end
  return self.reduction == 'sum' and sq:sum() or sq:mean()
end
function MSE:backward(x, y, go)
  local d = (x - y):mul_(2)
  if self.reduction == 'none' then return go and d:mul_(go) or d end
  return d:mul_((go or 1) * (self.reduction == 'mean' and 1 / x:numel() or 1))
end

-- Cross-entropy -------------------------------------------------------------------------
local CE = criterion('CrossEntropyLoss')
function CE.setup(self, opts)
  self.label_smoothing = opts.label_smoothing or 0
  if self.label_smoothing < 0 or self.label_smoothing > 1 then
    error('CrossEntropyLoss: label_smoothing must be in [0, 1]', 4)
  end
end
function CE:forward(x, t)
  check_classes('CrossEntropyLoss', x, t)
  local logp = x:log_softmax()
  local e, c = self.label_smoothing, x:size(2)
  local losses = pick('CrossEntropyLoss', logp, t):mul_(-(1 - e))
  if e > 0 then losses:axpy_(-e / c, logp:sum(2)) end
  self.logp = logp
  return self:reduce(losses)
end
function CE:backward(x, t, go)
  check_classes('CrossEntropyLoss', x, t)
  local e, c = self.label_smoothing, x:size(2)
  local logp = (self.logp and self.logp:size(1) == x:size(1)) and self.logp or x:log_softmax()
  pick('CrossEntropyLoss', logp, t)
  local q = F.one_hot(t, c, x):mul_(1 - e):add_(e / c)
  return logp:exp():sub_(q):mul_(self:example_scale(x:size(1), go, x))
end

-- NLL ------------------------------------------------------------------------------------
local NLL = criterion('NLLLoss')
function NLL:forward(x, t)
  check_classes('NLLLoss', x, t)
  return self:reduce(pick('NLLLoss', x, t):neg_())
end
function NLL:backward(x, t, go)
  check_classes('NLLLoss', x, t)
  pick('NLLLoss', x, t)
  return F.one_hot(t, x:size(2), x):mul_(-1):mul_(self:example_scale(x:size(1), go, x))
end

-- BCE with logits ------------------------------------------------------------------------
local BCE = criterion('BCEWithLogitsLoss')
function BCE:forward(x, y)
  check_pair('BCEWithLogitsLoss', x, y, true)
  -- stable: max(x, 0) - x y + log(1 + exp(-|x|))
  local l = x:relu():sub_(x * y):add_(x:abs():neg_():exp_():add_(1):log_())
  if self.reduction == 'none' then return l end
  return self.reduction == 'sum' and l:sum() or l:mean()
end
function BCE:backward(x, y, go)
  local g = x:sigmoid():sub_(y)
  if self.reduction == 'none' then return go and g:mul_(go) or g end
  return g:mul_((go or 1) * (self.reduction == 'mean' and 1 / x:numel() or 1))
end

return M
