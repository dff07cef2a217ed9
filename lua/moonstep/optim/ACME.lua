-- optim.ACME(model_or_params, config) — ACME, "Automatic Adaptation of the Step Size in
-- Gradient Descent Training" (ICASSP 2025; the authors' code github.com/ignasi00/acme,
-- acme/acme.py at b0796c8; spec: ../shared/reference/acme_autosgm.md section 1). Self-
-- contained: an Adam or SGD-momentum update whose step size, a scalar per parameter group,
-- is adapted every step from a line model of the loss fitted to a trial point.
--
--   loss, info = opt:step(function(pass) ... return loss end)
-- The closure runs forward and backward on the SAME mini-batch and returns the loss.
-- Closure calls per step: 1 (acme = false), 2 (acme, or asam alone), 3 (acme and asam):
-- pass 1 at w0, then w0 + e (ASAM's perturbation), then the trial point w1 = w0 - lr m/D.
-- Gradients are zeroed before every call; later passes freeze BatchNorm's running
-- statistics (bn = 'first', default; 'both', 'none') and replay the generator (replay_rng).
-- info = { loss = L0, loss2 = L1 (trial), loss_asam, code (group 1's line-model branch:
--   0..7 as spec section 1.6, -1 the non-finite guard), codes (per group), lr (group 1's
--   adapted step size after the step), lrs, alpha (the step applied), alphas, guards (groups
--   under the guard), passes, skipped }. opt:step_size(g), opt:code_counts(g).
--
-- Options, defaults = the reference CODE's (its README says acme, adam, bias_correction
-- false): lr = 1e-3 (the first trial step; assigning opt.lr or a group's lr restarts that
-- group's adaptation from the new value), betas = {0.9, 0.999}, epsilon = 1e-8,
-- weight_decay = 0 (decoupled: w *= 1 - alpha wd after the step), acme = true, adam = true,
-- asam = false, rho = 1, eta = 0 (ASAM: T = |w| + eta on tensors whose name contains
-- "weight", else 1), nesterov = false, bias_correction = true; the reference's constants:
-- limit_factor = 2 (momentum-norm growth limiter; math.huge: off), signif_rel = 1e-4,
-- grow_cap = 2, shrink_floor = 0.5, flat_grow = 2 (code 0's target), schedule_total =
-- 50000, schedule_min = 0.01 (internal cosine; schedule_total = math.huge: off),
-- asam_norm_eps = 1e-16; compat = {periodic_schedule = false} (true: the reference's
-- cosine rises again past schedule_total; false holds schedule_min). Common: groups (every
-- value per group; acme and asam must agree, they decide the passes), skip_nonfinite
-- (default true), check_finite, bn, replay_rng. Clipping options are refused.
--
-- Differences from the reference (spec section 1.9): each group has its own adapted lr,
-- step, cosine, inner products and line model (the reference uses the last group's); the
-- cubic's minimiser is the stable g0 / (B + sqrt(B^2 - 3AC)) (no division by zero on an
-- exact quadratic); a degenerate model (rounding) takes code 7's values; pp = 0 leaves the
-- gradient unscaled; non-finite inner products apply the reference's guard (w = w0,
-- m *= 1 - beta1, lr *= beta1, group step 1; info.guards) where it exits the process;
-- ASAM's norm is global, each group's rho scales its elements. A non-finite pass 1 or
-- ASAM pass skips the step (weights as before; opt.skipped); a non-finite trial pass is
-- the guard for every group, counted as skipped (the moments keep pass 1's M-update); a
-- closure that raises in a later pass gets the weights back, but m and v also keep that
-- first M-update (undoing it would take two more copies of the parameters).
-- Each pass's gradient is checked for nan/inf by the fused pass that reads it next (its
-- sums), the engine's scan run only to confirm non-finite sums (see OWN_SCAN below).
-- Without adam the reference divides by bc1 in torch's default dtype; here in the arena's.
--
-- State: buffers.m, buffers.v (v when a group uses adam), made from the first gradient
-- as the reference's lazy init (m = (1 - beta1) g0, or g0 without bias correction;
-- v = mean(g0^2) per tensor, 1 without adam); extra: per group the adapted lr, step and
-- code counts. Scratch (not saved): w0 (acme or asam), g0 (acme with asam or nesterov).
--
-- Data parallelism (ms.dist, optim/dist_sync.lua): every pass's gradient arena and loss are
-- all-reduced (mean) right after the closure, so L0, L1, the inner products, the line model
-- and the moments are the same on every rank (two ranks with half the batch each step as
-- one process with all of it); the inner products need no reduction of their own.
-- Files: this one (the class, its options, its fused passes), optim/acme_step.lua (one
-- step and its stages), optim/acme_scalars.lua (the line model, limiter, cosine),
-- optim/acme_state.lua (compat, the saved group states, step_size, code_counts).
local ffi = require 'ffi'
local ms = require 'moonstep'
local Optimizer = require 'moonstep.optim.Optimizer'
local passes = require 'moonstep.optim.passes'
local reduce = require 'moonstep.optim.reduce'
local check = require 'moonstep.check'
local fail = require('moonstep.core').fail
local C = ms.C

local huge = math.huge
local scalars = require 'moonstep.optim.acme_scalars'
local line_model = scalars.line_model

local DEFAULTS = {
  lr = 1e-3, betas = { 0.9, 0.999 }, epsilon = 1e-8, weight_decay = 0,
  acme = true, adam = true, asam = false, rho = 1.0, eta = 0, nesterov = false, bias_correction = true,
  limit_factor = 2, signif_rel = 1e-4, grow_cap = 2, shrink_floor = 0.5, flat_grow = 2,
  schedule_total = 50000, schedule_min = 0.01, asam_norm_eps = 1e-16,
}
local function ranged(lo, hi, inf_ok)
  return function(who, name, v)
    if type(v) ~= 'number' or v ~= v or v < lo or (hi and v > hi) or (v == huge and not inf_ok) then
      check.fail('%s: %s is %s, expected a %snumber >= %g%s', who, name, check.describe(v),
                 inf_ok and '' or 'finite ', lo, hi and (' and <= %g'):format(hi) or '')
    end
  end
end
local function positive_or_inf(who, name, v)
  if type(v) ~= 'number' or not (v > 0) then
    check.fail('%s: %s is %s, expected a number > 0 (math.huge: no schedule)', who, name, check.describe(v))
  end
end
local RULES = {
  lr = 'nonnegative', betas = 'betas', epsilon = 'nonnegative', weight_decay = 'nonnegative',
  acme = 'boolean', adam = 'boolean', asam = 'boolean', nesterov = 'boolean', bias_correction = 'boolean',
  rho = 'nonnegative', eta = 'nonnegative', limit_factor = ranged(1, nil, true), signif_rel = 'nonnegative',
  grow_cap = ranged(1), shrink_floor = 'unit', flat_grow = 'nonnegative', schedule_total = positive_or_inf,
  schedule_min = 'unit', asam_norm_eps = 'nonnegative',
}
passes.merge(DEFAULTS, RULES)

local NO_CLIP = 'the line model needs the true gradients and losses'
local ACME = Optimizer.define('ACME', DEFAULTS, RULES, {
  options = { 'compat' },
  refuse = { clip_norm = NO_CLIP, clip_tensor_norm = NO_CLIP, clip_value = NO_CLIP },
})
ACME.skip_default, ACME.multipass = true, true


require('moonstep.optim.acme_state').install(ACME)   -- compat, state, step_size, code_counts

---------------------------------------------------------------------------------------
-- the scalars (float64, in Lua)
---------------------------------------------------------------------------------------

-- ACME.line_model(l0, l1, a0, a1, h, beta [, opts]) -> lr_target, lr_opt, code; opts:
-- signif_rel, grow_cap, shrink_floor, flat_grow (defaults: the reference's).
function ACME.line_model(l0, l1, g0, g1, h, beta, opts)
  local who = 'ACME.line_model'
  local args = { l0, l1, g0, g1, h, beta }
  for i = 1, 6 do   -- (not ipairs: it stops at the first nil)
    if type(args[i]) ~= 'number' then check.fail('%s: argument %d is %s, expected a number', who, i, check.describe(args[i])) end
  end
  if not (h >= 0 and h < huge) then check.fail('%s: h (argument 5) is %s, expected a finite number >= 0', who, check.describe(h)) end
  if not (beta >= 0 and beta < 1) then check.fail('%s: beta (argument 6) is %s, expected a number in [0, 1)', who, check.describe(beta)) end
  local o = check.options(who, opts or {}, { 'signif_rel', 'grow_cap', 'shrink_floor', 'flat_grow' })
  for k, v in pairs(o) do ACME.rules[k](who, 'opts.' .. k, v) end
  local d = DEFAULTS
  return line_model(l0, l1, g0, g1, h, beta, o.signif_rel or d.signif_rel, o.grow_cap or d.grow_cap,
                    o.shrink_floor or d.shrink_floor, o.flat_grow or d.flat_grow)
end

---------------------------------------------------------------------------------------
-- binding, buffers, the fused passes
---------------------------------------------------------------------------------------

function ACME:_init()
  self.buffers = {}
  local ng, st = self.ngroups, self.table
  self._h = ffi.new('ms_acme_hyper[?]', ng)
  self._out = ffi.new('double[?]', 4 * ng)
  self._args = ffi.new('ms_acme_args[1]')
  -- ASAM's rule: T = |w| + eta on the tensors whose name contains "weight"
  self._wrule = ffi.new('int32_t[?]', st.nslices)
  for i = 1, st.nslices do
    local e = st.entries[i]
    self._wrule[i - 1] = (e and type(e.name) == 'string' and e.name:find('weight', 1, true)) and 1 or 0
  end
end

function ACME:_new_buffer(k)
  if k == 'm' or k == 'v' then return ms.zeros_like(self.arena.flat) end
end

-- Group g's hyper struct for a pass, reset to "no-op" values (D as the group's).
function ACME:_hyper_for(g, v, gs, dconst)
  local h = self._h[g - 1]
  local b1, b2 = v.betas[1], v.betas[2]
  local t = gs.step
  h.beta1, h.beta2, h.eps = b1, b2, v.epsilon
  h.bc1 = v.bias_correction and 1 - b1 ^ t or 1
  h.bc2 = v.bias_correction and 1 - b2 ^ t or 1
  h.dconst = dconst == 'bc1' and h.bc1 or 1
  h.kappa, h.step_m, h.step_g, h.decay, h.asam_scale, h.eta = 1, 0, 0, 1, 0, v.eta
  h.adam, h.update, h.nesterov, h.gsel_g0, h.guard, h.from_saved = v.adam and 1 or 0, 0, 0, 0, 0, 0
  return h
end

-- One fused pass (runtime/optim_acme.c): the per-group sums it returns (out[4 (g-1) + j]).
function ACME:_pass(who, op, flags, w0, g0)
  local a, b = self._args[0], self.buffers
  a.param, a.grad, a.m, a.v, a.w0, a.g0 = self.arena.flat, self.arena.gflat, b.m, b.v, w0, g0
  a.table, a.weight_rule, a.flags = self.table.ct, self._wrule, flags
  local rc = C.ms_acme_pass(op, self._args, self._h, self._out)
  a.param, a.grad, a.m, a.v, a.w0, a.g0 = nil, nil, nil, nil, nil, nil
  if rc ~= 0 then fail(who) end
  return self._out
end

-- The lazy init from the first gradient (spec section 1.3), per slice.
function ACME:_init_state(who, vals, any_adam)
  local st, gf = self.table, self.arena.gflat
  local b = self.buffers
  b.m = gf:clone()
  local fm, fv = {}, {}
  local sq = any_adam and select(2, reduce.sumsq(who, gf, st))
  for i = 1, st.nslices do
    local v = vals[st.slices[i - 1].group + 1]
    fm[i] = v.bias_correction and 1 - v.betas[1] or 1
    local n = tonumber(st.slices[i - 1].count)
    fv[i] = (v.adam and n > 0) and sq[i] / n or 1
  end
  reduce.scale(who, b.m, st, fm)
  if any_adam then b.v = ms.ones_like(gf); reduce.scale(who, b.v, st, fv) end
end

require('moonstep.optim.acme_step').install(ACME)   -- step(closure) and its stages

-- ACME has no update from gradients alone: apply() is refused by name (and the engine
-- refuses a multi-pass optimizer as a wrapper's base).
function ACME:apply()
  check.fail('ACME.apply: ACME needs the closure (it evaluates the loss again at a trial point): use opt:step(closure)')
end

return ACME
