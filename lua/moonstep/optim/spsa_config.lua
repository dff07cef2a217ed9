-- optim.spsa_config — SPSA's options, gain sequences and presets (optim/SPSA.lua's data).
--
-- Hyper-parameters (numbers, or callables of the 1-based step, as every optimizer's):
--   a = 1e-3, A = 0, alpha = 0     a_k = a / (A + k + 1)^alpha      (the step size; lr = a)
--   c = 1e-3, gamma = 0            h_k = c / (k + 1)^gamma          (the perturbation half-width)
--   weight_decay = 0, beta = 0.9 (spsa_gc), betas = {0.9, 0.99}, eps = 1e-8 (adam)
--   blocking = false, allowed_increase = false (false: 2 std of 25 evaluations at the first
--   iterate, Qiskit's), trust_region = false, regularization = 0.01, hessian_delay = 0
--   bn = 'first', replay_rng = true (the closure protocol, optim/passes.lua)
-- k is 0-based: the number of updates taken (gain_unit = 'step'), or of whole epochs
-- (gain_unit = 'epoch': k = floor(t / steps_per_epoch)), so c / k^gamma is never
-- evaluated at k = 0 (the seed's division by zero at epoch 0).
--
-- Options (fixed when the optimizer is built):
--   dist = 'rademacher' | 'gaussian' | 'segmented_uniform'   diff = 'central' | 'forward'
--   n = 1 directions per step; divide (default: true for segmented_uniform) Spall's form
--   update = 'sgd' | 'spsa_gc' | 'adam' | 'sign' | 'mezo', or base = an engine optimizer
--   memory = 'seeded' | 'materialized' | 'virtual'; restore = 'exact' | 'subtract' (seeded)
--   seed, directions, gain_unit, steps_per_epoch, gc_reset, calibrate, average_from,
--   second_order, criterion, batched, per_example, lr (= a)
--   dist_split = 'directions' (default) | 'batch': how several ranks share a step (spsa_dist.lua;
--   the common option distributed = false turns the exchange off)
-- Presets: M.preset(name [, overrides]) -> a config table (M.PRESETS says what each is).
local check = require 'moonstep.check'
local passes = require 'moonstep.optim.passes'

local M = {}

local function flag(who, name, v) check.boolean(who, name, v) end
local function int0(who, name, v) check.integer(who, name, v, 0) end
local function allowed(who, name, v)
  if v ~= false then check.number(who, name, v, 0) end
end

M.DEFAULTS, M.RULES = passes.merge({
  a = 1e-3, A = 0, alpha = 0, c = 1e-3, gamma = 0,
  weight_decay = 0, beta = 0.9, betas = { 0.9, 0.99 }, eps = 1e-8,
  blocking = false, allowed_increase = false, trust_region = false,
  regularization = 0.01, hessian_delay = 0,
}, {
  a = 'nonnegative', A = 'nonnegative', alpha = 'nonnegative', c = 'positive',
  gamma = 'nonnegative', weight_decay = 'nonnegative',
  beta = function(who, name, v) check.number(who, name, v, 0, 1) end,
  betas = 'betas', eps = 'nonnegative',
  blocking = flag, allowed_increase = allowed, trust_region = flag,
  regularization = 'nonnegative', hessian_delay = int0,
})

M.OPTIONS = { 'dist', 'diff', 'n', 'divide', 'update', 'base', 'memory', 'restore', 'seed',
              'directions', 'gain_unit', 'steps_per_epoch', 'gc_reset', 'calibrate',
              'average_from', 'second_order', 'criterion', 'batched', 'per_example', 'lr',
              'dist_split' }

M.DISTS = { 'rademacher', 'gaussian', 'segmented_uniform' }
M.UPDATES = { 'sgd', 'spsa_gc', 'adam', 'sign', 'mezo' }
M.MEMORY = { 'seeded', 'materialized', 'virtual' }

-- Qiskit's calibration (qiskit_algorithms SPSA.calibrate): 25 random directions at the
-- first iterate, a = target / mean |(y+ - y-) / (2 c)|.
M.CALIBRATION = { target = 2 * math.pi / 10, steps = 25, c = 0.2, alpha = 0.602, gamma = 0.101, A = 0 }

-- The options (not hyper-parameters): checked, stored on the optimizer.
function M.configure(self, who, config)
  local o = {}
  o.dist = check.oneof(who, 'dist', config.dist or 'rademacher', M.DISTS)
  o.diff = check.oneof(who, 'diff', config.diff or 'central', { 'central', 'forward' })
  o.n = check.integer(who, 'n', config.n == nil and 1 or config.n, 1, 2 ^ 31 - 1)
  if config.divide == nil then o.divide = o.dist == 'segmented_uniform'
  else o.divide = check.boolean(who, 'divide', config.divide) end
  if o.divide and o.dist == 'gaussian' then
    check.fail("%s: divide = true with dist = 'gaussian': Spall's divide form needs |u| bounded away from 0 (rademacher or segmented_uniform)", who)
  end
  if config.lr ~= nil then
    if config.a ~= nil then check.fail('%s: both a and lr are given; they are the same option (the step size)', who) end
    self.a = config.lr
  end
  if config.base ~= nil then
    if config.update ~= nil then check.fail('%s: both update and base are given; give one (base replaces the update rule)', who) end
    for _, k in ipairs { 'a', 'lr', 'A', 'alpha', 'beta', 'betas', 'eps', 'weight_decay' } do
      if config[k] ~= nil then
        check.fail('%s: %s is given with base; the base optimizer has its own step size and options (set them on it)', who, k)
      end
    end
    o.update = 'base'
  else
    o.update = check.oneof(who, 'update', config.update or 'sgd', M.UPDATES)
  end
  -- an option the configuration would not use is refused, never ignored
  local function unused(k, why)
    if config[k] == nil then return end
    local rule = self.rules[k]
    if rule and not check.is_callable(config[k]) then rule(who, k, config[k]) end   -- a bad value first
    check.fail('%s: %s is given but %s', who, k, why)
  end
  if o.update ~= 'spsa_gc' then unused('beta', ("it is spsa_gc's momentum (update is '%s')"):format(o.update)) end
  if o.update ~= 'adam' then
    unused('betas', ("they are adam's (update is '%s')"):format(o.update))
    unused('eps', ("it is adam's (update is '%s')"):format(o.update))
  end
  if o.update == 'sign' then
    for _, k in ipairs { 'clip_norm', 'clip_value', 'clip_tensor_norm', 'trust_region' } do
      unused(k, "update = 'sign' keeps only the signs of the estimate (scaling it changes nothing)")
    end
  end
  if o.update == 'base' and config.groups ~= nil then
    check.fail('%s: groups is given with base; the base optimizer applies the update (give it the groups)', who)
  end
  if config.second_order ~= true then
    unused('regularization', 'it is for second_order = true (2-SPSA)')
    unused('hessian_delay', 'it is for second_order = true (2-SPSA)')
  end
  if config.blocking ~= true then unused('allowed_increase', 'it is for blocking = true') end
  unused('check_finite', 'SPSA reads no gradient: every loss it evaluates is checked')
  o.memory = check.oneof(who, 'memory', config.memory or 'seeded', M.MEMORY)
  o.restore = check.oneof(who, 'restore', config.restore or 'exact', { 'exact', 'subtract' })
  if config.restore ~= nil and o.memory ~= 'seeded' then
    check.fail("%s: restore = '%s' is for memory = 'seeded' (memory = '%s' never writes the perturbation into the weights)", who, o.restore, o.memory)
  end
  if config.seed ~= nil then o.seed = check.integer(who, 'seed', config.seed, 0, 2 ^ 53 - 1) end
  if config.directions ~= nil then
    if not check.is_callable(config.directions) then
      check.fail('%s: directions is %s, expected a function(k, i, u) that fills u', who, check.describe(config.directions))
    end
    if o.memory ~= 'materialized' then
      check.fail("%s: directions (your own) needs memory = 'materialized' (seeded and virtual regenerate moonstep's directions)", who)
    end
    o.directions = config.directions
  end
  o.gain_unit = check.oneof(who, 'gain_unit', config.gain_unit or 'step', { 'step', 'epoch' })
  o.gc_reset = check.oneof(who, 'gc_reset', config.gc_reset or 'first_step', { 'first_step', 'first_epoch' })
  if config.gc_reset ~= nil and o.update ~= 'spsa_gc' then
    check.fail("%s: gc_reset is for update = 'spsa_gc' (update is '%s')", who, o.update)
  end
  if config.steps_per_epoch ~= nil then
    o.steps_per_epoch = check.integer(who, 'steps_per_epoch', config.steps_per_epoch, 1)
    if o.gain_unit ~= 'epoch' and o.gc_reset ~= 'first_epoch' then
      check.fail("%s: steps_per_epoch is given but nothing uses it (it is for gain_unit = 'epoch' or gc_reset = 'first_epoch')", who)
    end
  elseif o.gain_unit == 'epoch' or o.gc_reset == 'first_epoch' then
    check.fail("%s: %s needs steps_per_epoch (the number of steps in an epoch)", who,
               o.gain_unit == 'epoch' and "gain_unit = 'epoch'" or "gc_reset = 'first_epoch'")
  end
  local cal = config.calibrate
  if cal ~= nil and cal ~= false then
    local c = {}
    for k, v in pairs(M.CALIBRATION) do c[k] = v end
    if cal ~= true then
      cal = check.options(who .. ' (calibrate)', cal, { 'target', 'steps', 'c', 'alpha', 'gamma', 'A' })
      for k, v in pairs(cal) do c[k] = v end
    end
    check.number(who, 'calibrate.target', c.target, 0)
    check.integer(who, 'calibrate.steps', c.steps, 1)
    require('moonstep.optim.config').rules.positive(who, 'calibrate.c', c.c)
    for _, k in ipairs { 'alpha', 'gamma', 'A' } do check.number(who, 'calibrate.' .. k, c[k], 0) end
    if config.a ~= nil or config.lr ~= nil or o.update == 'base' then
      check.fail('%s: calibrate sets a (the step size) from the loss; do not give a or lr (or a base) with it', who)
    end
    o.calibrate = c
  end
  if config.average_from ~= nil then o.average_from = check.integer(who, 'average_from', config.average_from, 1) end
  o.second_order = config.second_order ~= nil and check.boolean(who, 'second_order', config.second_order) or false
  if o.second_order and o.memory ~= 'materialized' then
    check.fail("%s: second_order = true (2-SPSA) keeps a d x d Hessian and perturbs along two directions at once; it needs memory = 'materialized'", who)
  end
  if o.second_order and o.diff ~= 'central' then
    check.fail("%s: second_order = true (2-SPSA) uses the central evaluations y(w +- h u) in its Hessian sample; it needs diff = 'central'", who)
  end
  if o.second_order and o.update == 'mezo' then
    check.fail("%s: second_order = true preconditions the gradient estimate; update = 'mezo' never forms it (use 'sgd')", who)
  end
  if config.criterion ~= nil then
    local cr = config.criterion
    if type(cr) ~= 'table' or type(cr.forward) ~= 'function' or rawget(cr, 'reduction') == nil then
      check.fail('%s: criterion is %s, expected a loss module such as nn.CrossEntropyLoss()', who, check.describe(cr))
    end
    if cr.reduction == 'none' then
      check.fail("%s: criterion has reduction = 'none'; SPSA needs one loss per evaluation ('mean' or 'sum'; per_example = true reports the per-example losses)", who)
    end
    o.criterion = cr
  end
  o.batched = config.batched
  if o.batched ~= nil then check.boolean(who, 'batched', o.batched) end
  if o.batched and not o.criterion then
    check.fail('%s: batched = true needs a criterion (the optimizer runs the model itself: opt:step(input, target))', who)
  end
  if o.batched and o.second_order then
    check.fail('%s: second_order = true evaluates its two extra points through the closure; it cannot be batched (batched = false)', who)
  end
  if o.batched and o.memory ~= 'materialized' then
    check.fail("%s: batched = true evaluates all perturbed models at once from stored directions; it needs memory = 'materialized'", who)
  end
  o.per_example = config.per_example ~= nil and check.boolean(who, 'per_example', config.per_example) or false
  if o.per_example and not o.batched then
    check.fail('%s: per_example = true reports the per-example losses of the batched pass; it needs batched = true', who)
  end
  if o.update == 'mezo' and o.memory ~= 'seeded' and o.directions then
    check.fail("%s: update = 'mezo' regenerates moonstep's directions; it cannot use directions of your own (use update = 'sgd')", who)
  end
  o.dist_split = check.oneof(who, 'dist_split', config.dist_split or 'directions', { 'directions', 'batch' })
  if config.dist_split ~= nil and config.distributed == false then
    check.fail('%s: dist_split is %s but distributed = false (this optimizer exchanges nothing); drop one of them',
               who, check.describe(config.dist_split))
  end
  self._zo = o
  return o
end

-- a_k and h_k at the 0-based gain index k (values v of the step's hyper-parameters).
function M.gains(v, k)
  return v.a / (v.A + k + 1) ^ v.alpha, v.c / (k + 1) ^ v.gamma
end

-- The gain index of the 1-based step t.
function M.index(o, t)
  if o.gain_unit == 'epoch' then return math.floor((t - 1) / o.steps_per_epoch) end
  return t - 1
end

M.PRESETS = {
  -- Mikael17125/Gradient-Estimation (spsa.md §1): per-epoch gains, segmented-uniform
  -- directions divided by, 5 central estimates averaged, the un-normalised momentum; the
  -- epoch-0 division by zero and the first-epoch momentum resets are not reproduced
  -- (gc_reset = 'first_epoch' brings the latter back). Needs steps_per_epoch.
  seed = { dist = 'segmented_uniform', diff = 'central', n = 5, a = 0.01, A = 1, alpha = 0.4,
           c = 0.005, gamma = 0.2, update = 'spsa_gc', beta = 0.9, gain_unit = 'epoch' },
  -- BlackVIP upstream: the same per iteration
  blackvip = { dist = 'segmented_uniform', diff = 'central', n = 5, a = 0.01, A = 1, alpha = 0.4,
               c = 0.005, gamma = 0.2, update = 'spsa_gc', beta = 0.9 },
  -- nicolasmalet/Zeroth-Learn (§2): T = 50 forward differences, ZO-Adam with beta2 0.99;
  -- h = delta / sqrt(T) raised from 1.4e-9 (float64 only) to 1e-3 so float32 sees it
  zeroth_learn = { dist = 'rademacher', diff = 'forward', n = 50, c = 1e-3, update = 'adam',
                   a = 1e-3, betas = { 0.9, 0.99 }, eps = 1e-8, memory = 'materialized' },
  -- princeton-nlp/MeZO (§3): one Gaussian direction, central, eps 1e-3, constant lr,
  -- in place from the seed (exact restore)
  mezo = { dist = 'gaussian', diff = 'central', n = 1, c = 1e-3, a = 1e-6, update = 'mezo',
           memory = 'seeded' },
  -- Spall's canonical SPSA with PennyLane's defaults (§4): A = 10% of maxiter, a such that
  -- the first step is 0.05, c = 0.2
  spall = function(o)
    local maxiter = o.maxiter or 200
    local A, alpha = 0.1 * maxiter, 0.602
    return { dist = 'rademacher', diff = 'central', n = 1, a = 0.05 * (A + 1) ^ alpha, A = A,
             alpha = alpha, c = 0.2, gamma = 0.101, update = 'sgd' }
  end,
  -- Qiskit's SPSA: gains calibrated at the first iterate (target 2 pi / 10)
  qiskit = { dist = 'rademacher', diff = 'central', n = 1, update = 'sgd', calibrate = true },
}

function M.preset(name, overrides)
  local who = 'SPSA.preset'
  local names = {}
  for k in pairs(M.PRESETS) do names[#names + 1] = k end
  table.sort(names)
  check.oneof(who, 'name', name, names)
  if overrides ~= nil and (type(overrides) ~= 'table' or check.is_tensor(overrides)) then
    check.fail('%s: overrides is %s, expected a table of options', who, check.describe(overrides))
  end
  overrides = overrides or {}
  local p = M.PRESETS[name]
  local extra = {}
  if type(p) == 'function' then
    if overrides.maxiter ~= nil then check.integer(who, 'overrides.maxiter', overrides.maxiter, 1) end
    p = p(overrides)
    extra.maxiter = true
  end
  local out = {}
  for k, v in pairs(p) do out[k] = type(v) == 'table' and { unpack(v) } or v end
  -- another update rule (or a base) replaces the preset's, with the options of its rule
  if overrides.update ~= nil or overrides.base ~= nil then
    local drop = { 'beta', 'betas', 'eps', 'update' }
    if overrides.base ~= nil then drop = { 'beta', 'betas', 'eps', 'update', 'a', 'A', 'alpha', 'weight_decay' } end
    for _, k in ipairs(drop) do out[k] = nil end
  end
  for k, v in pairs(overrides) do
    if not extra[k] then
      if k == 'lr' and out.a ~= nil then out.a = nil end
      out[k] = v
    end
  end
  return out
end

return M
