-- optim.BSAM(model_or_params, {num_data = N, lr = 0.5, betas = {0.9, 0.999},
--                              weight_decay = 1e-4, rho = 0.05, damping = 0.1, s0 = 1,
--                              seed =, noise =, bn = 'first', replay_rng = true})
-- Bayesian SAM (Möllenhoff & Khan, ICLR 2023), the algorithm of the authors' code
-- (team-approx-bayes/bayesian-sam, build_bsam_optimizer) with one sub-batch (M = 1). A
-- self-contained Adam-like optimizer (no base optimizer) that learns a Gaussian posterior
-- N(w, 1 / (num_data s)) over the weights: w is the mean (the model's weights), s a
-- per-weight precision.
--
--   loss, info = opt:step(function(pass) ... return loss end)
-- TWO closure calls per step, on the same mini-batch (the closure runs forward and
-- backward and returns the loss; the optimizer zeroes the gradients before each call):
--   z ~ N(0, I)                                   Philox, or the noise option
--   theta = w + z sqrt(1 / (num_data s))          pass 1 at theta gives g (noisy)
--   w_adv = w + rho g / s                         from the MEAN w; pass 2 gives g_eps
--   g_m = b1 g_m + (1 - b1) (g_eps + delta w)     delta = weight_decay
--   w = w - lr g_m / s                            s before its update
--   s = b2 s + (1 - b2) (sqrt(s) |g| + damping + delta)
-- No bias correction. After a step the weights hold the new mean (never a noisy or
-- perturbed point). info = {loss = pass 1's loss (at theta), loss2 = pass 2's (at w_adv),
-- passes = closure calls this step, skipped = boolean}.
--
-- Options (hyper-parameters: numbers, or callables of the 1-based step; per group):
--   num_data       required: N_d, the number of training examples (times the data
--                  augmentation factor, as the authors' dafactor); the posterior variance
--                  is 1 / (num_data s)
--   lr             0.5 (the official CLI default is 1; the README's CIFAR runs use 0.5)
--   betas          {0.9, 0.999}: momentum and precision averaging
--   weight_decay   1e-4: delta, the prior precision divided by num_data (the official
--                  --priorprec P gives weight_decay = P / num_data); it enters the
--                  momentum as delta w and the precision as + delta
--   rho            0.05: the SAM radius (in the precision's metric: rho g / s, no norm)
--   damping        0.1: gamma, added to the precision's target
--   s0             1: the initial precision (read while no step has been taken)
--   bn             'first' (the default of every moonstep multi-pass optimizer: BatchNorm
--                  running statistics move in pass 1 only); the official code updates
--                  them in both passes: bn = 'both' reproduces it; 'none' freezes them
--   replay_rng     true: pass 2 replays pass 1's global generator state (same dropout)
-- Plain options (not per group, not schedules):
--   seed           the Philox seed of the noise (default: the global generator's seed when
--                  the optimizer is built, so ms.manual_seed makes runs reproducible). The
--                  draw of step attempt a (a = opt.t + opt.skipped) is the explicit
--                  generator {seed = seed, stream = 2^52 + a}: the global generator (which
--                  dropout draws from) is never consumed, and a resumed run draws the same
--   noise          nil (Philox as above), or a function(z, step) that fills z, a flat tensor
--                  of the arena's size, dtype and device, with this step's standard-normal
--                  draw in arena order: another noise source (antithetic, quasi-random,
--                  fixed noise for tests). It must fill every element.
-- And the engine's: groups (all the hyper-parameters above per group, lr_scale),
-- clip_norm / clip_tensor_norm / clip_value (applied to g_eps, the gradient the momentum
-- takes), skip_nonfinite (default true here: a non-finite loss or gradient in either
-- pass skips the step, counted in opt.skipped), check_finite.
--
-- Monte-Carlo prediction (the authors' test.py averages predictions over samples):
--   local restore = opt:sample()          -- weights := theta ~ N(w, 1 / (num_data s))
--   local probs = model:forward(x)        -- ... predict with the sampled weights
--   restore()                             -- or opt:restore_mean(): the mean, bit-exact
-- sample([gen]): gen nil (the optimizer's seed, stream 2^52 + 2^51 + the sample count,
-- which state() keeps), {seed =, stream =} (an explicit Philox draw), or a function(z)
-- filling z. A second sample() before restoring is an error, and so is step().
--
-- Memory: state buffers precision (s) and momentum (g_m), two arena copies (state()
-- saves them); scratch: the saved mean and gs = sqrt(s) |g| from pass 1 (two arena
-- copies, not saved). The noise is drawn into the gradient arena, which pass 1 then
-- overwrites. Two scratch copies, not one: after pass 2 the update needs w, s, g_m and gs,
-- while the weights hold w_adv and the gradients g_eps, and a skipped step must leave s
-- and g_m untouched (so neither can be pre-updated to make room).
-- Weights are restored from the saved mean (a copy, never an inverse) on a skip or when a
-- pass raises; then the error is re-raised.
-- Differences from the popular PyTorch port (kozistr BSAM), none reproduced: there the
-- noise std has no square root, noise and perturbation are left in the weights, the
-- momentum takes delta g, s is updated squared and before the weight step, and the
-- gradients of its closure calls accumulate.
local ms = require 'moonstep'
local Optimizer = require 'moonstep.optim.Optimizer'
local passes = require 'moonstep.optim.passes'
local reduce = require 'moonstep.optim.reduce'
local check = require 'moonstep.check'
local fail = require('moonstep.core').fail
local C = ms.C

local huge = math.huge
local STEP_STREAM = 2 ^ 52            -- + the step attempt
local SAMPLE_STREAM = 2 ^ 52 + 2 ^ 51 -- + the sample count

local function num_data_rule(who, name, v)
  if v == false or v == nil then
    check.fail('%s: %s is missing: BSAM needs the number of training examples N_d (the posterior variance is 1 / (num_data s)), e.g. optim.BSAM(model, {num_data = 50000})',
               who, name)
  end
  if type(v) ~= 'number' or not (v > 0 and v < huge) then
    check.fail('%s: %s is %s, expected the number of training examples (a finite number > 0)', who, name,
               check.describe(v))
  end
end

local DEFAULTS, RULES = passes.merge(
  { num_data = false, lr = 0.5, betas = { 0.9, 0.999 }, weight_decay = 1e-4, rho = 0.05, damping = 0.1,
    s0 = 1 },
  { num_data = num_data_rule, lr = 'nonnegative', betas = 'betas', weight_decay = 'nonnegative',
    rho = 'nonnegative', damping = 'nonnegative', s0 = 'positive' })
local BSAM = Optimizer.define('BSAM', DEFAULTS, RULES, { options = { 'seed', 'noise' } })
BSAM.hyper_ctype = 'ms_bsam_hyper'
BSAM.skip_default, BSAM.multipass = true, true

local function check_seed(who, name, v) return check.integer(who, name, v, 0, 2 ^ 53 - 1) end

local function check_noise(who, v)
  if v ~= nil and not check.is_callable(v) then
    check.fail('%s: noise is %s, expected nil (Philox normal draws) or a function(z, step) that fills z',
               who, check.describe(v))
  end
  return v
end

-- The plain options seed and noise (not hyper-parameters), and the sample count.
function BSAM:_configure(who, config)
  self.noise = check_noise(who, config.noise)
  self.seed = config.seed == nil and ms.rng_state().seed or check_seed(who, 'seed', config.seed)
  self.samples = 0
end

function BSAM._fill(h, v)
  h.lr, h.beta1, h.beta2, h.weight_decay = v.lr, v.betas[1], v.betas[2], v.weight_decay
  h.rho, h.damping, h.num_data = v.rho, v.damping, v.num_data
  h.phase = 0
end

function BSAM:_init()
  local flat = self.arena.flat
  self.buffers = { precision = ms.empty_like(flat), momentum = ms.zeros_like(flat) }
  self:_reset_precision('BSAM', 1)
end

-- s = s0 of each parameter's group (before the first step: s0 may have changed).
function BSAM:_reset_precision(who, t)
  local s = self.buffers.precision
  s:fill_(1)
  local per, s0 = {}, {}
  for g = 1, self.ngroups do s0[g] = self:_hyper(who, 's0', t, g) end
  for i = 1, self.table.nslices do per[i] = s0[self.table.slices[i - 1].group + 1] end
  reduce.scale(who, s, self.table, per)
end

-- Every group's hyper-parameters at step t into self.hs.
function BSAM:_prepare(who, t)
  self:_check_count(who)
  self:_check_live(who)
  self._taking = t
  for g = 1, self.ngroups do self._fill(self.hs[g - 1], self:_values(who, t, g), self, g, t) end
  self._taking = nil
  self:_check_live(who)                 -- hyper-parameter functions are user code
  -- the two scratch copies (made again if the model moved); the step reads them as
  -- self._scratches.mean / .gs from here on (a move during a pass: the pass refuses them)
  self:_scratch('mean')
  self:_scratch('gs')
  if self.t == 0 then self:_reset_precision(who, t) end
end

-- One fused pass (phase 0 noise, 1 ascent, 2 update); z: phase 0's noise (default: the
-- gradient arena). Returns the runtime's status.
function BSAM:_pass(phase, t, z)
  local hs = self.hs
  for g = 0, self.ngroups - 1 do hs[g].phase = phase end
  local a, b = self.args[0], self.buffers
  a.param, a.grad = self.arena.flat, z or self.arena.gflat
  local sc = self._scratches
  a.state[0], a.state[1], a.state[2], a.state[3] = b.precision, b.momentum, sc.mean, sc.gs
  a.state[4], a.state[5] = nil, nil
  a.table, a.step = self.table.ct, t
  local rc = C.ms_bsam_step(self.args, hs)
  a.param, a.grad = nil, nil
  for i = 0, 5 do a.state[i] = nil end
  return rc
end

function BSAM:_seed(who)
  return check_seed(who, 'opt.seed', rawget(self, 'seed'))
end

-- This step's noise into the gradient arena (before pass 1, which zeroes it).
function BSAM:_draw(who, t)
  local z = self.arena.gflat
  local noise = check_noise(who, rawget(self, 'noise'))
  if noise then
    noise(z, t)
    check.tensor(who, 'the noise tensor z (the gradient arena)', z)
  else
    z:normal_(0, 1, { seed = self:_seed(who), stream = STEP_STREAM + self.t + self.skipped })
  end
end

-- The weights back to the saved mean (bit-exact).
function BSAM:_restore()
  local flat = self.arena.flat
  if not check.is_freed(flat) then flat:copy_(self._scratches.mean) end   -- (freed by the closure: its error says so)
end

-- Pass k under the protocol; on a raise the weights are restored first.
function BSAM:_run_pass(who, closure, k)
  local ok, loss = pcall(passes.run, self, who, closure, k)
  if not ok then
    self:_restore()
    error(loss, 0)
  end
  return loss
end

function BSAM:_skip(l1, l2, k)
  self:_restore()
  self._dirty = nil
  self.skipped = self.skipped + 1
  self._bad, self._checked, self._gnorm_sq = nil, nil, nil
  return l1, { loss = l1, loss2 = l2, passes = k, skipped = true }
end

BSAM.passes_doc = 'twice a step, at a noisy and at a perturbed point'

function BSAM:step(closure)
  return passes.step(self, 'BSAM.step', closure, BSAM._step_body, BSAM._undo)
end

-- On any error during a step (the closure's, Ctrl-C): the mean back, if it had moved.
function BSAM:_undo()
  if rawget(self, '_dirty') then self:_restore() end
end

function BSAM:_step_body(who, closure)
  if rawget(self, '_sampled') then
    check.fail('%s: the weights hold a sample from opt:sample(); call opt:restore_mean() (or the function sample returned) first', who)
  end
  local t = self.t + 1
  self._dirty = nil
  self:_prepare(who, t)
  self:_draw(who, t)
  -- the mean saved before the flag that says the weights may have left it (an interrupt
  -- between any two statements from here on finds a copy to restore)
  self._scratches.mean:copy_(self.arena.flat)
  self._dirty = true
  if self:_pass(0, t) ~= 0 then fail(who) end           -- nothing written when it fails
  local l1 = self:_run_pass(who, closure, 1)
  if self._bad then return self:_skip(l1, nil, 1) end
  if self:_pass(1, t) ~= 0 then self:_restore(); fail(who) end
  local l2 = self:_run_pass(who, closure, 2)
  if self._bad then return self:_skip(l1, l2, 2) end
  self._bad, self._checked = nil, nil
  local ok, err = pcall(self._clip, self, who)          -- on g_eps
  if not ok then self:_restore(); error(err, 0) end
  if self:_pass(2, t) ~= 0 then self:_restore(); fail(who) end
  self._dirty = nil
  self._gnorm_sq = nil
  self.t = t
  return l1, { loss = l1, loss2 = l2, passes = 2, skipped = false }
end

function BSAM:apply()
  check.fail('BSAM.apply: BSAM evaluates the gradient twice per step (at a noisy and at a perturbed point); use opt:step(closure)')
end

-- Monte-Carlo prediction: weights := theta ~ N(w, 1 / (num_data s)); returns the function
-- that puts the mean back (as opt:restore_mean()).
function BSAM:sample(gen)
  local who = 'BSAM.sample'
  self:_bound(who)
  -- under the step guard: from a closure, sample() would overwrite the step's saved mean
  return passes.guard(self, who, BSAM._sample_body, nil, self, who, gen)
end

function BSAM:_sample_body(who, gen)
  if rawget(self, '_sampled') then
    check.fail('%s: the weights already hold a sample; call opt:restore_mean() (or the function sample returned) before drawing another', who)
  end
  self:_prepare(who, math.max(self.t, 1))
  local z = self._scratches.gs
  if gen == nil then
    z:normal_(0, 1, { seed = self:_seed(who), stream = SAMPLE_STREAM + self.samples })
    self.samples = self.samples + 1
  elseif check.is_callable(gen) then
    gen(z)
    check.tensor(who, 'the noise tensor z', z)
  elseif type(gen) == 'table' and not check.is_tensor(gen) then
    check.options(who .. ': generator', gen, { 'seed', 'stream' })
    z:normal_(0, 1, { seed = check_seed(who, 'generator.seed', gen.seed),
                      stream = gen.stream == nil and 0 or check_seed(who, 'generator.stream', gen.stream) })
  else
    check.fail('%s: generator is %s, expected nil, a table {seed=, stream=} or a function(z) that fills z',
               who, check.describe(gen))
  end
  if self:_pass(0, math.max(self.t, 1), z) ~= 0 then fail(who) end
  self._sampled = true
  return function() return self:restore_mean() end
end

-- The mean back into the weights after sample() (bit-exact); nothing to do otherwise.
function BSAM:restore_mean()
  if rawget(self, '_sampled') then
    self:_restore()
    self._sampled = nil
  end
  return self
end

function BSAM:_save_extra() return { seed = self.seed, samples = self.samples } end

function BSAM:_load_extra(who, extra, s)
  -- the precision divides everything: a state whose s is not positive everywhere is refused
  local prec = s and type(s.buffers) == 'table' and s.buffers.precision
  if ms.is_tensor(prec) and not check.is_freed(prec) and prec:numel() > 0 then
    local lo = prec:min()
    if not (lo > 0 and lo < math.huge) or prec:max() == math.huge then
      check.fail('%s: state.buffers.precision holds %s, expected finite values > 0', who, check.describe(lo))
    end
  end
  if extra == nil then return end
  if type(extra) ~= 'table' then
    check.fail('%s: state.extra is %s, expected {seed =, samples =}', who, check.describe(extra))
  end
  local seed = check_seed(who, 'state.extra.seed', extra.seed)
  local samples = check_seed(who, 'state.extra.samples', extra.samples)
  self.seed, self.samples = seed, samples
end

return BSAM
