-- optim.acme_step — one ACME step (optim/ACME.lua holds the class, its options and its
-- fused passes): pass 1, the optional ASAM pass, the M-update and the trial move, the trial
-- pass, the line model and the final move, each a named stage sharing one `step` table;
-- the non-finite handling and the skip. Installed on the class by ACME.lua.
local ms = require 'moonstep'
local passes = require 'moonstep.optim.passes'
local scalars = require 'moonstep.optim.acme_scalars'
local check = require 'moonstep.check'
local fail = require('moonstep.core').fail
local C = ms.C

local huge, sqrt = math.huge, math.sqrt
local line_model, limiter, schedule = scalars.line_model, scalars.limiter, scalars.schedule
local function finite(x) return x == x and x ~= huge and x ~= -huge end
local FRESH_GROUP = { step = 1 }   -- (what _hyper_for reads of a group state not made yet)

local Step = {}

-- ACME scans its gradients itself: every pass's gradient is read right after the pass by a
-- fused pass whose float64 sums are non-finite whenever a gradient element is (nan, or inf
-- times anything: (g g)/D is inf or nan), so passes.run is told to skip the engine's scan
-- (OWN_SCAN) and sums(out) decides. Non-finite sums with finite gradients (non-finite state:
-- the guard's case; a float64 sum overflowing) are told apart by the engine's scan, run
-- then only: the outcome, messages included, is the engine's own.
local OWN_SCAN = true
local function sums_finite(out, n)
  for j = 0, n - 1 do if not finite(out[j]) then return false end end
  return true
end

-- nil when pass k's gradients (the sums out of the pass that read them) are finite, else
-- the reason (Optimizer:_check_grads's, as the engine gives it; check_finite = false: nil).
function Step:_grads_bad(who, loss, out)
  if sums_finite(out, 4 * self.ngroups) then return nil end
  return self:_check_grads(who, loss)
end

-- A skipped step: counted, t not advanced; info from extra.
function Step:_skip(L0, n0, extra)
  self.skipped = self.skipped + 1
  self._bad, self._checked = nil, nil
  local info = extra or {}
  info.loss, info.passes, info.skipped, info.guards = L0, self.passes - n0, true, info.guards or 0
  return L0, info
end

Step.passes_doc = '1 to 3 times a step, as acme and asam require'

function Step:step(closure)
  return passes.step(self, 'ACME.step', closure, Step._step_body)
end

function Step:_step_body(who, closure)
  self:_check_count(who)
  self:_check_live(who)
  local t, ng = self.t + 1, self.ngroups
  self._taking = t
  local vals = {}
  for g = 1, ng do vals[g] = self:_values(who, t, g) end
  self._taking = nil
  for g = 2, ng do
    for _, k in ipairs { 'acme', 'asam' } do
      if vals[g][k] ~= vals[1][k] then
        check.fail('%s: groups[%d].%s is %s but the default group has %s; %s must be the same in every group (it decides the closure calls)',
                   who, g - 1, k, tostring(vals[g][k]), tostring(vals[1][k]), k)
      end
    end
  end
  local n0 = self.passes
  local L0 = passes.run(self, who, closure, 1, OWN_SCAN)
  if self._bad then return self:_skip(L0, n0) end
  local fresh = self.buffers.m == nil
  local ok, r1, r2 = pcall(self._core, self, who, closure, vals, L0, n0, t, fresh)
  if not ok then
    -- the saved weights as they are (self:_scratch would remake them if the model moved)
    if rawget(self, '_moved') then self.arena.flat:copy_(self._scratches.w0) end
    self._moved = nil
    if fresh then self.buffers.m, self.buffers.v, self.gs = nil, nil, nil end
    error(r1, 0)
  end
  return r1, r2
end

-- Everything after pass 1 (any error: step() restores the weights and re-raises), in
-- stages that share `step`, the step in progress: who, closure, vals (each group's
-- values), L0, n0 (opt.passes before it), t, fresh (the state is made this step), acme,
-- asam, k (closure calls so far), guard[g] (group g under the guard), and from the stages
-- gs (group states), w0 and g0 (scratch copies), info.
function Step:_core(who, closure, vals, L0, n0, t, fresh)
  local step = { who = who, closure = closure, vals = vals, L0 = L0, n0 = n0, t = t, fresh = fresh,
                 acme = vals[1].acme, asam = vals[1].asam, k = 1, guard = {} }
  local out = self:_read_first(step)
  if not out then return self:_skip(L0, n0) end
  self:_start_groups(step)
  step.info = { loss = L0, skipped = false, guards = 0 }
  if step.asam then
    out = self:_asam_pass(step, out)
    if not out then return self:_skip(L0, n0, { loss_asam = step.info.loss_asam }) end
  end
  local a0 = self:_m_update(step, out)
  if not step.acme then return self:_finish_plain(step) end
  local L1, dots = self:_trial_pass(step)
  if not dots then return self:_skip(L0, n0, { loss2 = L1, guards = self.ngroups }) end
  self:_line_step(step, L1, a0, dots, L1 < L0 and self:_limiter_dots(step, dots) or nil)
  return self:_finish(L0, step.info, n0, t)
end

-- The step's next closure call, then the limiter's inner products of its gradient (D as
-- dconst: 1 or 'bc1'). Returns the loss and the pass's sums; when either is not finite,
-- self._bad says why (skip mode; else this raises and step() restores).
function Step:_next_pass(step, dconst)
  local who = step.who
  step.k = step.k + 1
  local loss = passes.run(self, who, step.closure, step.k, OWN_SCAN)
  if self._bad then return loss, nil end
  for g = 1, self.ngroups do self:_hyper_for(g, step.vals[g], step.gs[g], dconst) end
  local out = self:_pass(who, C.MS_ACME_DOTS, 0)
  local bad = self:_grads_bad(who, loss, out)
  if bad then self._bad = self:_nonfinite(who, bad) end
  return loss, out
end

-- The per-group inner products {pg or a1, pp, gg} out of a pass's sums.
local function dots_of(out, ng)
  local dots = {}
  for g = 1, ng do local o = 4 * (g - 1); dots[g] = { out[o], out[o + 1], out[o + 2] } end
  return dots
end

-- The state made from pass 1's gradient when there is none (the lazy init), then that
-- gradient's first read by a fused pass (ASAM's norm, else the limiter's inner products)
-- with D of the current v. Returns the pass's sums; nil when the gradient is not finite
-- (the state as it was; the group states change only once it is finite).
function Step:_read_first(step)
  local who, vals, b = step.who, step.vals, self.buffers
  local any_adam = false
  for g = 1, self.ngroups do any_adam = any_adam or vals[g].adam end
  if step.fresh then   -- the state is made from this gradient: the engine's scan first (once)
    local bad = self:_check_grads(who, step.L0)
    if bad then
      self._bad = self:_nonfinite(who, bad)   -- (raises with skip_nonfinite = false)
      return nil
    end
    self:_init_state(who, vals, any_adam)
  end
  local made_v = any_adam and not b.v
  if made_v then b.v = ms.ones_like(self.arena.flat) end
  local gs = (not step.fresh and rawget(self, 'gs')) or {}   -- (fresh state: fresh group states)
  step.gs = gs
  for g = 1, self.ngroups do self:_hyper_for(g, vals[g], gs[g] or FRESH_GROUP, 1) end
  local first = self:_pass(who, step.asam and C.MS_ACME_ASAM_NORM or C.MS_ACME_DOTS, 0)
  local bad = self:_grads_bad(who, step.L0, first)
  if bad then
    if step.fresh then b.m, b.v = nil, nil elseif made_v then b.v = nil end
    self._bad = self:_nonfinite(who, bad)   -- (raises with skip_nonfinite = false)
    return nil
  end
  return first
end

-- The group states (the adapted lr, restarted when the lr hyper-parameter changes; the
-- step), and the scratch copies: w0 (acme or asam), g0 (acme with asam or nesterov).
function Step:_start_groups(step)
  local vals, gs, any_nest = step.vals, step.gs, false
  self.gs = gs
  for g = 1, self.ngroups do
    local s, lr = gs[g], vals[g].lr
    if not s then s = { step = 1, codes = {} }; gs[g] = s end
    if s.seen ~= lr then s.lr, s.seen = lr, lr end
    any_nest = any_nest or vals[g].nesterov
  end
  step.w0 = (step.acme or step.asam) and self:_scratch('w0') or nil
  step.g0 = (step.acme and (step.asam or any_nest)) and self:_scratch('g0') or nil
end

-- ASAM: w = w0 + e (from first, pass 1's sums: the global norm), pass 2 there, and the
-- limiter's inner products of its gradient (D of the current v), which the M-update then
-- uses: returned. nil when pass 2 is not finite: the weights back at w0, a fresh state
-- dropped.
function Step:_asam_pass(step, first)
  local who, vals, ng = step.who, step.vals, self.ngroups
  local sq = 0
  for g = 1, ng do sq = sq + first[4 * (g - 1)] end
  local norm = sqrt(sq)
  for g = 1, ng do
    local c = vals[g].rho / (norm + vals[g].asam_norm_eps)
    self._h[g - 1].asam_scale = finite(c) and c or 0   -- (a zero gradient with asam_norm_eps = 0: no perturbation)
  end
  self:_pass(who, C.MS_ACME_ASAM_PERTURB, step.g0 and C.MS_ACME_SAVE_G0 or 0, step.w0, step.g0)
  self._moved = true   -- (after the pass: a refused pass writes nothing, w0 included)
  local out
  step.info.loss_asam, out = self:_next_pass(step, 1)
  if self._bad then
    self.arena.flat:copy_(step.w0)
    self._moved = nil
    if step.fresh then self.buffers.m, self.buffers.v, self.gs = nil, nil, nil end
    return nil
  end
  return out
end

-- The M-update (each group's limiter from the inner products in out; non-finite ones put
-- the group under the guard) and the move: to the trial point (acme), else the step
-- itself. Returns the move's sums a0, one per group.
function Step:_m_update(step, out)
  local vals, gs, acme, asam = step.vals, step.gs, step.acme, step.asam
  for g = 1, self.ngroups do
    local v, h, o = vals[g], self:_hyper_for(g, vals[g], gs[g], 'bc1'), 4 * (g - 1)
    local pg, pp, gg = out[o], out[o + 1], out[o + 2]
    local b1, lr = v.betas[1], gs[g].lr
    h.from_saved = asam and 1 or 0
    if not (finite(pg) and finite(pp) and finite(gg)) then
      step.guard[g] = true
      h.guard = 1
    else
      h.update, h.kappa = 1, limiter(pg, pp, gg, b1, v.limit_factor)
      if acme then
        h.step_m = -lr
      else
        h.step_m = -lr * (v.nesterov and b1 or 1)
        h.nesterov, h.step_g = v.nesterov and 1 or 0, -lr * (1 - b1)
        h.decay = 1 - lr * v.weight_decay
      end
    end
  end
  local flags = (acme and not asam) and C.MS_ACME_SAVE_W0 or 0
  if step.g0 and not asam then flags = flags + C.MS_ACME_SAVE_G0 end
  if acme then flags = flags + C.MS_ACME_SUM end
  out = self:_pass(step.who, C.MS_ACME_MOVE, flags, step.w0, step.g0)
  if acme then self._moved = true end
  local a0 = {}
  for g = 1, self.ngroups do a0[g] = out[4 * (g - 1)] end
  return a0
end

-- Without acme the move was the step: each group's step advances, or the guard.
function Step:_finish_plain(step)
  local info = step.info
  self._moved = nil
  info.lrs, info.alphas, info.codes = {}, {}, {}
  for g = 1, self.ngroups do
    local s, guarded = step.gs[g], step.guard[g]
    if guarded then self:_guard(s, step.vals[g], info) else s.step = s.step + 1 end
    info.lrs[g], info.alphas[g] = s.lr, not guarded and s.lr or 0
  end
  return self:_finish(step.L0, info, step.n0, step.t)
end

-- The trial pass at the moved weights and its gradient's inner products (D of the moved
-- v). Returns L1 and the products per group (dots_of); L1 and nil when it is not finite:
-- then the reference's guard for every group (weights back at w0), counted as skipped.
function Step:_trial_pass(step)
  local who, vals, gs, ng = step.who, step.vals, step.gs, self.ngroups
  local L1, out = self:_next_pass(step, 'bc1')
  step.info.loss2 = L1
  if not self._bad then return L1, dots_of(out, ng) end
  for g = 1, ng do
    local h = self:_hyper_for(g, vals[g], gs[g], 'bc1')
    h.from_saved, h.guard = 1, step.guard[g] and 2 or 1
  end
  self:_pass(who, C.MS_ACME_MOVE, 0, step.w0, step.g0)
  self._moved = nil
  for g = 1, ng do self:_guard(gs[g], vals[g], nil) end
  return L1, nil
end

-- The second M-update's limiter (the trial improved): its inner products are the trial's
-- (dots) unless a group's D_a differs from the trial pass's D (without adam it is 1, not
-- bc1): then a DOTS pass with D = 1 gives them.
function Step:_limiter_dots(step, dots)
  local ng, other = self.ngroups, false
  for g = 1, ng do other = other or (not step.vals[g].adam and self._h[g - 1].bc1 ~= 1) end
  if not other then return dots end
  for g = 1, ng do self:_hyper_for(g, step.vals[g], step.gs[g], 1) end
  return dots_of(self:_pass(step.who, C.MS_ACME_DOTS, 0), ng)
end

-- The line model per group (L0, L1, the slopes a0 and dots' a1): the step alpha, the next
-- adapted lr, the branch code; the second M-update where the trial improved (lim: its
-- inner products, nil otherwise); then the final move from w0.
function Step:_line_step(step, L1, a0, dots, lim)
  local info, L0 = step.info, step.L0
  local periodic = rawget(self, 'compat').periodic_schedule
  info.codes, info.lrs, info.alphas = {}, {}, {}
  for g = 1, self.ngroups do
    local v, s = step.vals[g], step.gs[g]
    local h = self:_hyper_for(g, v, s, 'bc1')
    local b1, lr = v.betas[1], s.lr
    h.from_saved = 1
    local a1, pp, gg = dots[g][1], dots[g][2], dots[g][3]
    if step.guard[g] then
      h.guard = 2
    else
      local target, lr_opt, code = line_model(L0, L1, a0[g], a1, lr, b1, v.signif_rel, v.grow_cap,
                                              v.shrink_floor, v.flat_grow)
      if not (finite(L0) and finite(L1) and finite(a0[g]) and finite(a1) and finite(lr) and finite(pp) and finite(gg)) then
        step.guard[g], h.guard = true, 1
      else
        local gamma = 2 * (1 - b1) / (1 + b1) * (1 + 2 * b1) / (2 - b1) * schedule(v, s.step, periodic)
        local alpha = (L1 > L0 and lr_opt or lr) * gamma
        h.step_m = -alpha * (v.nesterov and b1 or 1)
        h.nesterov, h.step_g, h.gsel_g0 = v.nesterov and 1 or 0, -alpha * (1 - b1), L1 > L0 and 1 or 0
        h.decay = 1 - alpha * v.weight_decay
        local l = lim and lim[g]
        if l and finite(l[1]) and finite(l[2]) and finite(l[3]) then
          h.update, h.kappa = 2, limiter(l[1], l[2], l[3], b1, v.limit_factor)
        end
        s.lr = b1 * lr + (1 - b1) * target
        s.step = s.step + 1
        s.codes[code] = (s.codes[code] or 0) + 1
        info.codes[g], info.alphas[g] = code, alpha
      end
    end
    if step.guard[g] then
      self:_guard(s, v, info)
      info.codes[g], info.alphas[g] = -1, 0
    end
    info.lrs[g] = s.lr
  end
  self:_pass(step.who, C.MS_ACME_MOVE, 0, step.w0, step.g0)
  self._moved = nil
end

-- The reference's non-finite guard on group state s (the pass did the weights and m).
function Step:_guard(s, v, info)
  s.lr = v.betas[1] * s.lr
  s.step = 1
  s.codes[-1] = (s.codes[-1] or 0) + 1
  if info then info.guards = info.guards + 1 end
end

function Step:_finish(L0, info, n0, t)
  self.t = t
  self._bad, self._checked = nil, nil
  info.passes = self.passes - n0
  info.code, info.lr, info.alpha = info.codes[1], info.lrs[1], info.alphas[1]
  return L0, info
end

local M = {}
-- Puts step and its stages on the class.
function M.install(cls)
  for k, f in pairs(Step) do cls[k] = f end
end
return M
