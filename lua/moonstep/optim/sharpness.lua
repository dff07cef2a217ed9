-- optim.sharpness — what every SAM-family wrapper shares (SAM/ASAM, GSAM, WSAM, LookSAM,
-- FriendlySAM; ../shared/reference/sam_family.md). A variant supplies the ascent (where
-- pass 2 evaluates) and the descent direction; this file runs the closure protocol
-- (optim/passes.lua) around them and the options every member takes:
--
--   loss, info = opt:step(closure)      closure(pass) runs forward + backward on the same
--     mini-batch and returns the loss. Per call: pass 1 at w; the variant's ascent writes
--     w + e into a scratch copy in one fused pass, and the scratch trades its memory with
--     the parameter arena (O(1)); pass 2 at w + e (BatchNorm statistics frozen, RNG
--     replayed: bn, replay_rng); trading back restores w bit-exactly (it was never
--     written); the variant forms the direction d in the gradient arena; the base optimizer
--     applies it (its own lr, momentum, weight decay, clipping) at w. Any error or
--     interrupt during the step trades back first (passes.guard).
--     info = {loss = L1, loss2 = L2, sharpness = L2 - L1, passes = closure calls,
--             skipped = bool, updated = bool (false while accumulating)}
--   opt:finalize()                      with use_ema: the weights become the averages
--
-- Options (besides the variant's; semantics of the spec's §9):
--   rho = 0.05              perturbation radius, per parameter group; the norm is global
--   adaptive = false        true: ASAM as davda54/kozistr (e = rho w^2 g / ||w g||);
--                           'asam': the official ASAM (t = |w| + eta for tensors whose name
--                           contains "weight", t = 1 for the others; e = rho t^2 g / ||t g||);
--                           'abs': big_vision's GSAM (e = rho |w| g / ||g||)
--   eta = 0                 the official ASAM's offset
--   perturb_eps = 1e-12     added to the norm (not its square)
--   loss_scale_factor = 1   the closure back-propagates S * loss (mixed precision); each
--                           pass's gradients are unscaled before any norm (S a power of 2
--                           makes it exact)
--   gradient_accumulation_steps = 1   A > 1: each step(closure) is one micro-batch: both
--                           passes, its own perturbation (m-sharpness), its direction added
--                           to an accumulator; every A-th call the base applies the mean. A
--                           non-finite micro-batch is left out (and counted in opt.skipped)
--   clipnorm, clipvalue, global_clipnorm = false   Keras semantics, on the final direction:
--                           per tensor d c / max(||d_i||, c); elementwise; d c min(1/||d||, 1/c).
--                           At most one of them. The engine's clip_norm, clip_tensor_norm and
--                           clip_value (PyTorch semantics) act on the final direction too
--   use_ema = false, ema_momentum = 0.99, ema_overwrite_frequency = false   an average of the
--                           weights after each update (never of perturbed weights; the first
--                           update starts it at w); every F updates the weights become it
--   bn = 'first', replay_rng = true, skip_nonfinite = true: optim/passes.lua
--   sync = 'final'          data parallelism (ms.dist, optim/dist_sync.lua; spec §2.6):
--                           'final' (m-sharpness): each rank perturbs with its local
--                           gradient, neither pass is synced, the final direction (after
--                           accumulation, before clipping) is all-reduced (mean) once; the
--                           losses returned are this rank's. 'both': every pass's gradient
--                           and loss are all-reduced (the perturbation is global: two ranks
--                           with half the batch each step as one process with all of it).
--                           Refused with distributed = false (nothing is synced). A variant
--                           whose _own_sync says so averages its passes itself with
--                           'final' (WSAM with max_norm: the official order, spec §5)
-- Extra memory: one scratch copy of the parameters (w + e), plus the accumulator (A > 1),
-- the average (use_ema) and the variant's own (listed in its header).
--
-- A variant (SAM.lua is the short example); vs[g] holds group g's values at step t:
--   local X = sharpness.define('X', defaults, rules)
--   function X:_ascent(who, t, info, vs)   after pass 1 (unscaled g in the gradient arena):
--                                      perturb (sharpness.perturb) and return true; false
--                                      for no second pass (LookSAM's reuse); nil when the
--                                      norm is not finite (nothing moved: the step skips)
--   function X:_descent(who, t, info, second, vs)  after pass 2 and the restore: the
--                                      direction into the gradient arena (default: g2)
--   function X:_apply_direction(who, t, vs)  default: the base applies the gradient arena
--   X.state_buffers = {'m'}             the variant's lazily made state buffers
--   X:_own_sync(v)                      optional: true when, with sync = 'final' on several
--                                      ranks, the variant averages its passes itself. The
--                                      ranks then agree (one 1-element all-reduce) right
--                                      after the passes of every (micro-)batch, before
--                                      _descent, which all-reduces what it needs
--                                      (dist_sync.mean; sharpness.own_sync(self, v) says
--                                      whether this step does); the driver's average of
--                                      the final direction is left out
--   X:_variant_check(who, v), X:_variant_save(), X:_variant_load(who, x)   optional
local ms = require 'moonstep'
local check = require 'moonstep.check'
local Optimizer = require 'moonstep.optim.Optimizer'
local passes = require 'moonstep.optim.passes'
local reduce = require 'moonstep.optim.reduce'
local dist_sync = require 'moonstep.optim.dist_sync'

local M = {}
local huge = math.huge

local function off_or_positive(who, name, v)
  if v ~= false and (type(v) ~= 'number' or not (v > 0 and v < huge)) then
    check.fail('%s: %s is %s, expected false (off) or a finite number > 0', who, name, check.describe(v))
  end
end

M.DEFAULTS = {
  rho = 0.05, adaptive = false, eta = 0, perturb_eps = 1e-12,
  loss_scale_factor = 1, gradient_accumulation_steps = 1,
  clipnorm = false, clipvalue = false, global_clipnorm = false,
  use_ema = false, ema_momentum = 0.99, ema_overwrite_frequency = false,
}
M.RULES = {
  rho = 'nonnegative', eta = 'nonnegative', perturb_eps = 'nonnegative',
  adaptive = function(who, name, v)
    if v ~= false and v ~= true and v ~= 'asam' and v ~= 'abs' then
      check.fail("%s: %s is %s, expected false, true, 'asam' or 'abs'", who, name, check.describe(v))
    end
  end,
  loss_scale_factor = 'positive',
  gradient_accumulation_steps = function(who, name, v) check.integer(who, name, v, 1) end,
  clipnorm = off_or_positive, clipvalue = off_or_positive, global_clipnorm = off_or_positive,
  use_ema = 'boolean', ema_momentum = 'unit',
  ema_overwrite_frequency = function(who, name, v)
    if v ~= false then check.integer(who, name, v, 1) end
  end,
}

-- What may vary by parameter group: the perturbation's radius and form. The rest is one
-- value for the whole step.
M.PER_GROUP = { rho = true, adaptive = true, eta = true, perturb_eps = true }

local function check_values(self, who, v)
  for i, g in ipairs(rawget(self, 'groups') or {}) do
    for k in pairs(g) do
      if self.defaults[k] ~= nil and not M.PER_GROUP[k] then
        check.fail('%s: groups[%d].%s: %s is one value for the whole model (a group may set rho, adaptive, eta and perturb_eps)',
                   who, i, k, k)
      end
    end
  end
  if v.eta ~= 0 and type(v.eta) == 'number' and v.adaptive ~= 'asam' and not Optimizer.callable(v.adaptive) then
    check.fail("%s: eta = %s acts only with adaptive = 'asam' (adaptive is %s)", who, check.describe(v.eta), check.describe(v.adaptive))
  end
  if v.use_ema == false and ((type(v.ema_momentum) == 'number' and v.ema_momentum ~= 0.99) or v.ema_overwrite_frequency) then
    check.fail('%s: ema_momentum and ema_overwrite_frequency act only with use_ema = true', who)
  end
  local n = 0
  for _, k in ipairs { 'clipnorm', 'clipvalue', 'global_clipnorm' } do
    if v[k] and v[k] ~= false then n = n + 1 end
  end
  if n > 1 then
    check.fail('%s: clipnorm, clipvalue and global_clipnorm are exclusive (Keras semantics), expected at most one', who)
  end
  if self._variant_check then self:_variant_check(who, v) end
end

-- Define a variant: its defaults and rules over the shared ones.
function M.define(name, defaults, rules)
  local d, r = {}, {}
  for k, v in pairs(M.DEFAULTS) do d[k] = v end
  for k, v in pairs(M.RULES) do r[k] = v end
  for k, v in pairs(defaults) do d[k] = v end
  for k, v in pairs(rules) do r[k] = v end
  passes.merge(d, r)
  local cls = Optimizer.define(name, d, r, { wraps = true, options = { 'sync' } })
  cls._configure = M.configure
  cls._sync_passes = M.sync_passes
  cls.skip_default, cls.multipass = true, true
  cls._check_values = check_values
  cls.step = M.step
  cls.apply = M.apply
  cls.finalize = M.finalize
  cls._new_buffer = M.new_buffer
  cls._save_extra = M.save_extra
  cls._load_extra = M.load_extra
  cls._apply_direction = M.apply_direction
  cls._descent = function() end
  cls.state_buffers = {}
  cls.passes_doc = 'twice a step'
  return cls
end

-- The sync option: stored only when given (the default, 'final', leaves no field).
function M.configure(self, who, config)
  local sync = config.sync == nil and 'final' or check.oneof(who, 'sync', config.sync, { 'final', 'both' })
  if config.bucket_mb ~= nil and sync ~= 'both' then   -- (only 'both' all-reduces a pass's gradients)
    check.fail("%s: bucket_mb is %s but sync is %s: only sync = 'both' all-reduces the passes' gradients " ..
               "(sync = 'final' averages the final direction once, after the passes); drop bucket_mb or set sync = 'both'",
               who, check.describe(config.bucket_mb), check.describe(sync))
  end
  if config.sync == nil then return end
  self.sync = sync
  if config.distributed == false then
    check.fail('%s: sync = %s but distributed = false (nothing is synchronised); drop one of them',
               who, check.describe(config.sync))
  end
end

-- Are the passes synced (sync = 'both')? (dist_sync asks before it all-reduces a pass.)
function M.sync_passes(self) return rawget(self, 'sync') == 'both' end

-- Does the variant average its own passes this step (sync = 'final', synchronisation on,
-- and the class's _own_sync(v) says so)? The same answer on every rank.
function M.own_sync(self, v)
  local f = self._own_sync
  return f ~= nil and not M.sync_passes(self) and dist_sync.on(self) and f(self, v) and true or false
end

-- A lazily made state buffer (saved with the state): the accumulator, the average and
-- the variant's own.
function M.new_buffer(self, k)
  local ok = k == 'acc' or k == 'ema'
  for _, n in ipairs(self.state_buffers) do ok = ok or n == k end
  if not ok then return nil end
  return ms.zeros_like(self.arena.flat)
end

function M.save_extra(self)
  return { micro = self.micro or 0, accumulated = self.accumulated or 0,
           variant = self._variant_save and self:_variant_save() or nil }
end

function M.load_extra(self, who, extra, s)
  extra = extra or {}
  if type(extra) ~= 'table' then check.fail('%s: state.extra is %s, expected a table', who, check.describe(extra)) end
  local micro = check.integer(who, 'state.extra.micro', extra.micro or 0, 0)
  local accumulated = check.integer(who, 'state.extra.accumulated', extra.accumulated or 0, 0, micro)
  if accumulated > 0 and not (s and type(s.buffers) == 'table' and s.buffers.acc) then
    check.fail('%s: the state has %d accumulated micro-batches but no accumulator buffer (acc)', who, accumulated)
  end
  if self._variant_load then self:_variant_load(who, extra.variant) end
  self.micro, self.accumulated = micro, accumulated
end

-- Gradient centralization (use_gc; spec §2.3): each gradient tensor of rank > 1 minus
-- its mean over every dim but the first (the output channel), in place.
function M.centralize(self, g)
  for _, e in ipairs(self.arena.entries or {}) do
    if e.shape and #e.shape > 1 and e.numel > 0 then
      local rows = e.shape[1]
      local x = g:narrow(1, e.offset + 1, e.numel):view(rows, e.numel / rows)
      x:sub_(x:mean(2, true))
    end
  end
end

-- The per-slice perturbation of the variant's group values: the norm of a (.) dir over
-- the whole arena (global), then w + rho_g t^p dir / (norm + eps) in one pass, made the
-- model's weights (M.restore puts w back). vs: the values of every group (vs[g]); gc:
-- centralize dir after the norm (the norm is the raw gradient's, as kozistr). Returns the
-- norm (non-finite: nothing moved).
function M.perturb(self, who, dir, vs, gc)
  local st, w = self.table, self.arena.flat
  local per, need = {}, {}
  for i = 1, st.nslices do
    local v = vs[st.slices[i - 1].group + 1]
    local form, power, eta = v.adaptive, 0, 0
    if form == true then
      power = 2
    elseif form == 'abs' then
      power = 1
    elseif form == 'asam' and st.entries[i].name:find('weight', 1, true) then
      power, eta = 2, v.eta
    end
    per[i] = { power = power, eta = eta }
    -- the squared norm's terms: ||g||^2 (power 0 or 1), ||w g||^2, and with eta the cross terms
    if power == 2 then need.sq = true; if eta > 0 then need.abs, need.sum = true, true end
    else need.sum = true end
  end
  local sums, sq, ab = nil, nil, nil
  if need.sum then
    -- the raw gradient's squares came with pass 1's non-finite scan (Optimizer:_check_grads)
    local cached = dir == self.arena.gflat and rawget(self, '_sq_per')
    sums = cached or select(2, reduce.sumsq(who, dir, st))
  end
  self._sq_per = nil
  if need.sq then sq = select(2, reduce.sqprod(who, dir, w, st)) end
  if need.abs then ab = select(2, reduce.absprod(who, dir, w, st)) end
  local total = 0
  for i = 1, st.nslices do
    local p = per[i]
    if p.power == 2 then
      total = total + sq[i] + (p.eta > 0 and (2 * p.eta * ab[i] + p.eta * p.eta * sums[i]) or 0)
    else
      total = total + sums[i]
    end
  end
  local norm = math.sqrt(total)
  for i = 1, st.nslices do
    local v = vs[st.slices[i - 1].group + 1]
    local d = norm + v.perturb_eps
    per[i].scale = d > 0 and v.rho / d or 0   -- g = 0 with eps = 0: e = 0 (spec 2.1)
  end
  if norm ~= norm or norm == huge then return norm end   -- the caller skips
  if gc then M.centralize(self, dir) end
  -- w + e is written into the scratch copy, which then trades its memory with the
  -- arena's: the model sees w + e, and w itself is never written
  local pert = self:_scratch('w')
  reduce.perturb(who, w, dir, pert, st, per)
  self:_trade(who, pert)
  return norm
end

-- The weights back (Optimizer:_trade_back): bit-exactly what they were.
function M.restore(self) self:_trade_back(self.__name .. '.step', 'w') end

-- The values of every group at step t.
function M.values(self, who, t)
  local vs = {}
  for g = 1, #self.groups + 1 do vs[g] = self:_values(who, t, g) end
  return vs
end

-- The base applies the direction. The passes' gradients were scanned (check_finite), and
-- the direction is made of them: the base does not scan it again.
function M.apply_direction(self, who)
  local base = self.base
  if self.check_finite then base._checked = true end
  return base:_apply(self._base_who, self.check_finite)
end

-- Keras-style clipping of the final direction.
local function clip(self, who, v)
  local g = self.arena.gflat
  if v.clipvalue then g:clamp_(-v.clipvalue, v.clipvalue) end
  if v.clipnorm then
    local c = v.clipnorm
    reduce.scale_by_norm(who, g, self.table, function(norm) return c / math.max(norm, c) end)
  end
  if v.global_clipnorm then
    local n = math.sqrt(reduce.sumsq(who, g))
    local c = v.global_clipnorm * math.min(1 / n, 1 / v.global_clipnorm)
    if c ~= 1 then g:mul_(c) end
  end
end

-- One pass k, its gradients unscaled. Returns the loss and whether it was finite.
local function pass(self, who, closure, k, v, info)
  -- pass 1's scan also keeps the gradient's squared norms per slice for the ascent (not
  -- when the gradient is unscaled after: its squares would change)
  self._sq_per = nil
  self._want_sq = k == 1 and v.loss_scale_factor == 1 and self.check_finite or nil
  local loss = passes.run(self, who, closure, k)
  self._want_sq = nil
  info.passes = k
  local bad = self._bad
  self._bad, self._checked = nil, nil
  if bad then return loss, false end
  if v.loss_scale_factor ~= 1 then self.arena.gflat:mul_(1 / v.loss_scale_factor) end
  return loss, true
end

-- Both passes of one (micro-)batch. Returns whether both were finite (false: w is as
-- before) and the ascent's answer (second: was there a second pass).
local function both_passes(self, who, closure, t, vs, info)
  local v = vs[1]
  local loss, ok = pass(self, who, closure, 1, v, info)
  info.loss = loss
  if not ok then return false end
  local second = self:_ascent(who, t, info, vs)
  if second == nil then   -- a non-finite norm (gradients not scanned, or overflowing): nothing moved
    self:_nonfinite(who, 'the gradients of pass 1 have a non-finite norm')
    return false
  end
  if second then
    local loss2, ok2 = pass(self, who, closure, 2, v, info)   -- (an error: step's undo restores)
    M.restore(self)
    info.loss2, info.sharpness = loss2, loss2 - loss
    if not ok2 then return false end
  end
  return true, second
end

-- Both passes and the variant's direction in the gradient arena. Returns whether there is
-- a direction. own: the variant averages its passes (M.own_sync): every rank, whatever its
-- passes gave, agrees here, and all skip together unless each has finite passes.
local function direction(self, who, closure, t, vs, info, own)
  local ok, second = both_passes(self, who, closure, t, vs, info)
  if own then ok = dist_sync.agree(self, ok) end
  if not ok then return false end
  self:_descent(who, t, info, second, vs)
  return true
end

function M.step(self, closure)
  return passes.step(self, self.__name .. '.step', closure, M.step_body, M.restore)
end

function M.step_body(self, who, closure)
  self:_check_count(who)
  self:_check_live(who)   -- (opt.base among what it checks)
  self._base_who = self._base_who or ('%s (its base, optim.%s)'):format(who, self.base.__name)
  local t = self.t + 1
  local vs = M.values(self, who, t)
  local v = vs[1]
  local info = { passes = 0, skipped = false, updated = false }
  local own = M.own_sync(self, v)
  local ok = direction(self, who, closure, t, vs, info, own)
  if not ok then
    self.skipped = self.skipped + 1
    info.skipped = true
  end
  local g = self.arena.gflat
  local A = v.gradient_accumulation_steps
  if A > 1 then   -- this call is one micro-batch
    local micro, n = (self.micro or 0) + 1, self.accumulated or 0
    if ok then
      local acc = self:_buffer('acc')
      if n == 0 then acc:copy_(g) else acc:add_(g) end
      n = n + 1
    end
    if micro < A then
      self.micro, self.accumulated = micro, n
      return info.loss, info
    end
    self.micro, self.accumulated = 0, 0
    ok = n > 0
    if ok then reduce.axpby(who, g, 0, self.buffers.acc, 1 / n) end
  end
  if not own and not M.sync_passes(self) and dist_sync.on(self) then
    -- sync = 'final': the ranks agree that each has a direction, then average it (a
    -- variant with its own sync agreed and averaged already: the direction is the same
    -- on every rank)
    local all = dist_sync.agree(self, ok)
    if ok and not all then
      self.skipped = self.skipped + 1
      info.skipped = true
    end
    ok = all
    if ok then
      dist_sync.mean(g)
      if self._sync_direction then self:_sync_direction(who, v) end
    end
  end
  if not ok then return info.loss, info end
  clip(self, who, v)
  self._gnorm_sq = nil
  self:_clip(who)          -- the engine's clip_norm / clip_tensor_norm / clip_value, on d too
  if self:_apply_direction(who, t, vs) == false then   -- the base skipped it
    self.skipped = self.skipped + 1
    info.skipped = true
    return info.loss, info
  end
  self.t = t
  info.updated = true
  if v.use_ema then
    local started = self.buffers and self.buffers.ema
    local ema, w = self:_buffer('ema'), self.arena.flat
    if not started then ema:copy_(w)
    else reduce.axpby(who, ema, v.ema_momentum, w, 1 - v.ema_momentum) end
    if v.ema_overwrite_frequency and t % v.ema_overwrite_frequency == 0 then w:copy_(ema) end
  end
  return info.loss, info
end

function M.apply(self)
  check.fail('%s.apply: %s evaluates the closure at two points (w and w + e); use loss, info = opt:step(closure)',
             self.__name, self.__name)
end

function M.finalize(self)
  local who = self.__name .. '.finalize'
  self:_bound(who)
  local ema = self.buffers and self.buffers.ema
  if not ema then
    check.fail('%s: no average of the weights was kept (build the optimizer with use_ema = true and take a step)', who)
  end
  self.arena.flat:copy_(ema)
  return self
end

return M
