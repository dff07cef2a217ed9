-- Losses: forward(output, target) returns a Lua number (reduction 'mean' or 'sum') or
-- a tensor of per-element losses ('none'); backward(output, target [, gradOutput])
-- returns the gradient with respect to output. backward must follow forward with the
-- same two tensors (an error otherwise). gradOutput: a number for 'mean'/'sum'
-- (default 1), a tensor of the losses' shape for 'none' (default ones).
-- Options: a table (unknown keys are errors) or the reduction as a string.
--
--   MSELoss{reduction}                 (x - y)^2
--   CrossEntropyLoss{reduction, weight, ignore_index, label_smoothing}
--       logits [N, C], [N, C, d1, ...] or [C]; int64 class targets [N], [N, d1, ...] or
--       [] (0-d), 1-based. As PyTorch (1.13 and later):
--         loss_i = -(1 - e) w[t_i] logp[i, t_i] - e/C sum_j w[j] logp[i, j]
--       0 for targets equal to ignore_index; 'mean' divides the sum by the summed
--       w[t_i] of the targets not ignored (by their count without weight).
--       weight: a float tensor [C] of class weights. ignore_index: a target value in the
--       targets' own 1-based terms (ignore_index = 1 ignores class 1); the default -100
--       is never a class. Class-probability (float) targets are not supported.
--   NLLLoss{reduction, weight, ignore_index}: the same over log-probabilities, e = 0.
--   BCEWithLogitsLoss{reduction, weight, pos_weight}
--       l = w * ((1 - y) x + L softplus(-x)), L = 1 + (pos_weight - 1) y; weight and
--       pos_weight broadcast to x (pos_weight along the last dims: [C] for [N, C]).
local ms = require 'moonstep'
local core = require 'moonstep.core'
local Module = require 'moonstep.nn.Module'
local F = require 'moonstep.nn.functional'
local W = require 'moonstep.nn.window'
local check = require 'moonstep.check'
local A = require 'moonstep.autograd.tape'
local Rows = require 'moonstep.nn.class_rows'
local C = core.C

local M = {}

local T = require 'moonstep.tensor'
local shape_of, same_shape = T.shape_of, T.same_shape

-- t converted to x's dtype and device when they differ (weights against the input).
local function like(t, x)
  if t.dtype ~= x.dtype or t.device ~= x.device then return t:to(x.device, x.dtype) end
  return t
end

-- A float tensor option, given at construction.
local function tensor_option(name, key, v)
  Module._check_float(name, key, v)
  return v
end

-- v must broadcast to x's shape (NumPy rules, result = x's shape).
local function check_broadcast(fn, key, v, x)
  local nv, nx = v:dim(), x:dim()
  local ok = nv <= nx
  for d = 1, nv do
    local sv, sx = v:size(d), ok and x:size(nx - nv + d)
    ok = ok and (sv == sx or sv == 1)
  end
  if not ok then
    check.fail('%s: %s has shape %s, expected a shape that broadcasts to the input\'s %s', fn, key,
               shape_of(v), shape_of(x))
  end
end

-- A loss class with the accepted option names; setup(self, opts) reads the others.
local function criterion(name, accepted, setup)
  local cls = Module:extend(name)
  function cls:__init(opts, ...)
    Module.init(self)
    Module._check_arity(name, 1 + select('#', ...), 1, name .. '({options}) or ' .. name .. "('mean'|'sum'|'none')")
    if type(opts) == 'string' then opts = { reduction = opts } end
    opts = check.options(name, opts, accepted)
    self.reduction = check.oneof(name, 'reduction', opts.reduction or 'mean', { 'mean', 'sum', 'none' })
    if setup then setup(self, opts) end
  end
  function cls:extra_repr() return self.reduction end

  -- forward's first steps: both arguments checked, the last pair forgotten.
  function cls:_begin_loss(x, t)
    self._input, self._target = nil, nil
    self:_check_alive(name .. '.forward')
    if A.current ~= nil then self:_refuse_tape(name .. '.forward', x, t) end
    Module._check_float(name .. '.forward', 'input', x)
    check.tensor(name .. '.forward', 'target', t)
    if t.device ~= x.device then
      check.fail('%s.forward: target is on %s but input on %s, expected one device', name, t.device, x.device)
    end
  end
  function cls:_end_loss(x, t) self._input, self._target = x, t end

  -- backward's first step: (x, t) must be the pair of the last forward; returns the
  -- gradOutput as a number (mean, sum) or a tensor shaped like the losses (none).
  function cls:_begin_backward_loss(x, t, go, loss_like)
    local fn = name .. '.backward'
    if self._input == nil then
      check.fail('%s: no forward pass to differentiate; call forward(input, target) first', fn)
    end
    if not rawequal(self._input, x) or not rawequal(self._target, t) then
      check.fail('%s: (input, target) is not the pair of the last forward(input, target), ' ..
                 'expected backward with those same tensors', fn)
    end
    check.tensor(fn, 'input', x)
    check.tensor(fn, 'target', t)
    self:_check_alive(fn)
    if self.reduction == 'none' then
      if go == nil then return nil end
      Module._check_float(fn, 'gradOutput', go, x)
      if not same_shape(go, loss_like) then
        check.fail("%s: gradOutput has shape %s, expected %s (the shape of the losses of reduction 'none')",
                   fn, shape_of(go), shape_of(loss_like))
      end
      return go
    end
    if go == nil then return 1 end
    return check.number(fn, 'gradOutput', go)
  end

  -- Reduce per-element losses to the result of forward ('mean': divided by den).
  function cls:_reduce(losses, den)
    if self.reduction == 'none' then return losses end
    local s = losses:sum()
    if self.reduction == 'sum' then return s end
    return s / (den or losses:numel())
  end

  M[name] = cls
  return cls
end

-- Elementwise losses: MSE, BCE ---------------------------------------------------------
local function check_same(name, x, y)
  if not same_shape(x, y) then
    check.fail('%s.forward: input has shape %s but target %s, expected the same shape', name,
               shape_of(x), shape_of(y))
  end
  Module._check_float(name .. '.forward', 'target', y, x)
end

-- The gradient d (of each element's loss) scaled for the reduction.
local function scale_elementwise(self, d, go, n)
  if self.reduction == 'none' then return go and d:mul_(go) or d end
  return d:mul_(go * (self.reduction == 'mean' and 1 / n or 1))
end

local MSE = criterion('MSELoss', { 'reduction' })
function MSE:forward(x, y)
  self:_begin_loss(x, y)
  check_same('MSELoss', x, y)
  local l = self:_reduce((x - y):square_())
  self:_end_loss(x, y)
  return l
end
function MSE:backward(x, y, go)
  go = self:_begin_backward_loss(x, y, go, x)
  return scale_elementwise(self, (x - y):mul_(2), go, x:numel())
end

local BCE = criterion('BCEWithLogitsLoss', { 'reduction', 'weight', 'pos_weight' }, function(self, o)
  if o.weight ~= nil then self:register_buffer('weight', tensor_option('BCEWithLogitsLoss', 'weight', o.weight)) end
  if o.pos_weight ~= nil then
    self:register_buffer('pos_weight', tensor_option('BCEWithLogitsLoss', 'pos_weight', o.pos_weight))
  end
end)
function BCE:forward(x, y)
  self:_begin_loss(x, y)
  check_same('BCEWithLogitsLoss', x, y)
  for _, k in ipairs { 'weight', 'pos_weight' } do
    if self[k] then check_broadcast('BCEWithLogitsLoss.forward', k, self[k], x) end
  end
  -- softplus(-x) = log(1 + exp(-|x|)) + max(-x, 0), stable for any x
  local sp = x:abs():neg_():exp_():add_(1):log_():add_(x:neg():relu_())
  local l
  if self.pos_weight then
    local lw = (like(self.pos_weight, x) - 1) * y + 1                    -- L = 1 + (pw - 1) y
    l = (1 - y):mul_(x):add_(sp:mul_(lw))
  else
    l = (1 - y):mul_(x):add_(sp)
  end
  if self.weight then l:mul_(like(self.weight, x)) end
  local r = self:_reduce(l)
  self:_end_loss(x, y)
  return r
end
function BCE:backward(x, y, go)
  go = self:_begin_backward_loss(x, y, go, x)
  local s = x:sigmoid()
  local g
  if self.pos_weight then
    local pwy = like(self.pos_weight, x) * y
    g = (pwy - y):add_(1):mul_(s):sub_(pwy)                               -- L sigmoid(x) - pw y
  else
    g = s:sub_(y)
  end
  if self.weight then g:mul_(like(self.weight, x)) end
  return scale_elementwise(self, g, go, x:numel())
end

-- Class losses: CrossEntropy, NLL ------------------------------------------------------
-- x against the int64 targets t as rows x2 [M, C], t1 [M], and a [M, C] gradient back
-- to x's layout (nn/class_rows.lua, shared with the functional forms).
local class_rows, rows_back = Rows.rows, Rows.back

-- The targets of the rows, checked: mask [M] (1 where not ignored), safe int64 targets
-- [M] (ignored ones replaced by 1) and the per-row weights w[t_i] * mask.
local function class_targets(self, name, t1, c, x2)
  local ft = x2.device == 'cpu' and 'float64' or 'float32'
  local tf = t1:to(ft)
  -- The common case, settled by two reductions: no weight, an ignore_index that is not a
  -- class, every target a class (so none is ignored).
  local ig = self.ignore_index
  if not self.weight and (ig < 1 or ig > c) and t1:numel() > 0 and tf:min() >= 1 and tf:max() <= c then
    -- all-ones mask and row weights, kept from call to call (nothing writes them)
    local ones = self._ones
    if not (ones and not check.is_freed(ones) and ones:numel() == t1:numel()
            and ones.dtype == x2.dtype and ones.device == x2.device) then
      ones = ms.ones(t1:numel(), { dtype = x2.dtype, device = x2.device })
      self._ones = ones
    end
    return ones, t1:contiguous(), nil, ones, true
  end
  local mask = tf:ne(self.ignore_index)
  local bad = (tf:lt(1) + tf:gt(c)):mul_(mask)
  if t1:numel() > 0 and bad:max() > 0 then
    local i = bad:argmax()                               -- 1-based
    local v = t1:view(-1):get(i)
    check.fail('%s.forward: target %s at position %d is not a class: expected 1..%d (1-based)%s', name,
               check.describe(v), i, c, self.ignore_index ~= -100 and
               (' or ignore_index %s'):format(check.describe(self.ignore_index)) or '')
  end
  local safe = (tf - 1):mul_(mask):add_(1):to('int64')
  mask = like(mask, x2)
  local w = self.weight and like(self.weight, x2)
  if w and w:numel() ~= c then
    check.fail('%s.forward: weight has %d elements but the input %d classes, expected one weight per class',
               name, w:numel(), c)
  end
  local wt = w and w:index_select(1, safe):mul_(mask) or mask
  return mask, safe, w, wt
end

local function class_setup(name, smoothing)
  return function(self, o)
    if o.weight ~= nil then
      local w = tensor_option(name, 'weight', o.weight)
      if w:dim() ~= 1 then check.fail('%s: weight is %s, expected a 1-D tensor [C] of class weights', name, check.describe(w)) end
      self:register_buffer('weight', w)
    end
    self.ignore_index = o.ignore_index == nil and -100 or check.integer(name, 'ignore_index', o.ignore_index)
    if smoothing then
      self.label_smoothing = check.number(name, 'label_smoothing', o.label_smoothing or 0, 0, 1)
    end
  end
end

-- The gradient scale of each row: go / den for mean, go for sum, go [M, 1] for none.
local function row_scale(self, go, den, m)
  if self.reduction == 'none' then return go and go:reshape(m, 1) end
  return go * (self.reduction == 'mean' and 1 / den or 1)
end

-- CrossEntropyLoss's plain case (no weight, an ignore_index that is no class) in one C
-- pass (runtime/nn.c ms_cross_entropy): the softmax into a reused buffer (for backward),
-- the per-row losses and their sum. Returns nil (nothing cached) when a target is not a
-- class: the general path then handles ignore_index or names the target.
local ce_out = core.ffi.new('double[1]')
local ce_bad = core.ffi.new('int64_t[1]')
local function ce_plain_forward(self, x, t, x2, t1, c)
  local fn = 'CrossEntropyLoss.forward'
  local m = t1:numel()
  x2, t1 = x2:contiguous(), t1:contiguous()
  local prob = W.buffer(self, '_prob', { m, c }, x2, fn)
  local none = self.reduction == 'none'
  local losses = none and W.alloc(fn, { m }, x2) or W.buffer(self, '_losses', { m }, x2, fn)
  if C.ms_cross_entropy(prob, losses, x2, t1, 1, self.label_smoothing, ce_out, ce_bad) ~= 0 then
    core.fail(fn)
  end
  if ce_bad[0] >= 0 then return nil end
  local k = self._plain_cache or {}
  self._plain_cache = k
  k.fast, k.prob, k.safe, k.c, k.den = true, prob, t1, c, m
  self.cache = k
  if none then return losses:view(t:shape()) end
  local total = ce_out[0]
  return self.reduction == 'sum' and total or total / m
end

local function class_forward(self, name, x, t, log_probs)
  self:_begin_loss(x, t)
  local x2, t1, c = class_rows(name .. '.forward', x, t)
  local ig = self.ignore_index
  if not log_probs and not self.weight and (ig < 1 or ig > c) and t1:numel() > 0 then
    local r = ce_plain_forward(self, x, t, x2, t1, c)
    if r ~= nil then
      self:_end_loss(x, t)
      return r
    end
  end
  local mask, safe, w, wt, plain = class_targets(self, name, t1, c, x2)
  local logp = log_probs and x2 or x2:log_softmax()
  local picked = logp:gather(2, safe:view(-1, 1)):view(-1)      -- logp[i, t_i]
  local e = self.label_smoothing or 0
  local losses = picked:mul_(wt):mul_(-(1 - e))
  if e > 0 then
    local sm = w and (logp * w:view(1, c)):sum(2) or logp:sum(2)
    losses:add_(sm:mul_(mask), -e / c)
  end
  self.cache = { logp = logp, mask = mask, safe = safe, w = w, wt = wt, c = c, plain = plain,
                 den = plain and t1:numel() or wt:sum() }
  local r = self:_reduce(losses, self.cache.den)
  if self.reduction == 'none' then r = r:view(t:shape()) end
  self:_end_loss(x, t)
  return r
end

local CE = criterion('CrossEntropyLoss', { 'reduction', 'weight', 'ignore_index', 'label_smoothing' },
                     class_setup('CrossEntropyLoss', true))
function CE:forward(x, t) return class_forward(self, 'CrossEntropyLoss', x, t, false) end
function CE:backward(x, t, go)
  go = self:_begin_backward_loss(x, t, go, self._target)
  local k = self.cache
  local e, c = self.label_smoothing, k.c
  if k.fast then                        -- the forward's C pass: its gradient, one C pass
    local fn = 'CrossEntropyLoss.backward'
    local m = k.den
    local g = W.buffer(self, '_gin', { m, c }, k.prob, fn)
    local scale, rows = 1, nil
    if self.reduction == 'none' then
      rows = go and go:reshape(m):contiguous()
    else
      scale = self.reduction == 'mean' and go / m or go
    end
    if C.ms_cross_entropy_backward(g, k.prob, k.safe, 1, e, scale, rows) ~= 0 then core.fail(fn) end
    return rows_back(g, x)
  end
  -- d loss_i / dx_ij = p_ij s_i - q_ij,  q_ij = (1-e) w[t_i] [j = t_i] + e/C w_j (rows not ignored),
  -- s_i = sum_j q_ij
  if k.plain then                       -- no weight, nothing ignored: g = p - q, s_i = 1
    local g = k.logp:exp():sub_(F.one_hot(k.safe, c, k.logp), 1 - e)
    if e > 0 then g:add_(-e / c) end
    local scale = row_scale(self, go, k.den, g:size(1))
    if scale then g:mul_(scale) end
    return rows_back(g, x)
  end
  local q = F.one_hot(k.safe, c, k.logp):mul_(k.wt:view(-1, 1)):mul_(1 - e)
  local wsum = c
  if e > 0 then
    local wrow = k.w and k.w:view(1, c) or 1
    q:add_(k.mask:view(-1, 1) * wrow * (e / c))
    wsum = k.w and k.w:sum() or c
  end
  local s = k.wt * (1 - e) + k.mask * (e / c * wsum)
  local g = k.logp:exp():mul_(s:view(-1, 1)):sub_(q)
  local scale = row_scale(self, go, k.den, g:size(1))
  if scale then g:mul_(scale) end
  return rows_back(g, x)
end

local NLL = criterion('NLLLoss', { 'reduction', 'weight', 'ignore_index' }, class_setup('NLLLoss', false))
function NLL:forward(x, t) return class_forward(self, 'NLLLoss', x, t, true) end
function NLL:backward(x, t, go)
  go = self:_begin_backward_loss(x, t, go, self._target)
  local k = self.cache
  local g = F.one_hot(k.safe, k.c, k.logp):mul_(k.wt:view(-1, 1)):neg_()
  local scale = row_scale(self, go, k.den, g:size(1))
  if scale then g:mul_(scale) end
  return rows_back(g, x)
end

return M
