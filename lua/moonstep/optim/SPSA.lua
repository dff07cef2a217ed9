-- optim.SPSA(model_or_params, config) — zeroth-order optimization by simultaneous
-- perturbation: the gradient estimated from loss values alone (Spall's SPSA, the seed's
-- SPSA-GC, Zeroth-Learn's batched forward differences, MeZO), one class, every source a
-- preset (../shared/reference/spsa.md §6).
--
--   local opt = optim.SPSA(model, optim.SPSA.preset('mezo', {lr = 1e-5}))
--   local loss, info = opt:step(function(pass) return crit:forward(model:forward(x), y) end)
--   -- or, with config.criterion: opt:step(x, y) (batched = true: all models in one pass)
--
-- The closure only evaluates the loss at the current parameters (no backward; the
-- gradients are neither zeroed nor read); a plain Lua function of the tensors works.
-- Per step, with k the gain index (spsa_config.lua), u_i = direction i of this step:
--   central  s_i = (L(w + h_k u_i) - L(w - h_k u_i)) / (2 h_k)            2n evaluations
--   forward  s_i = (L(w + h_k u_i) - L(w)) / h_k   (L(w) shared)          n + 1 evaluations
--   g = (1/n) sum_i s_i W(u_i)      W(u) = u, or 1/u (divide, Spall's form)
-- then the update: sgd / sign (SGD on sign(g)) / spsa_gc (SGD nesterov, dampening 0,
-- momentum beta: m = beta m + g, step g + beta m, the seed's look-ahead) / adam (Adam with
-- betas, eps), each at lr a_k with weight_decay and the groups' weight_decay / lr_scale;
-- or mezo: w -= a_k (g + weight_decay w) fused with the regeneration of u (no buffer);
-- or base = any first-order engine optimizer. The estimate is written into the gradient
-- arena (flat_gradients()) for those rules.
-- Options in spsa_config.lua; the memory modes in spsa_points.lua. Directions: u_i of step
-- k depends only on (seed, k, i, element index): the same in every mode, on CPU and GPU,
-- for any thread count (runtime/optim/zo.h).
-- Extras: trust_region (g scaled to norm 1 when larger, before a_k, Qiskit's), blocking
-- (a step whose loss exceeds the last accepted one by more than allowed_increase is undone:
-- one more evaluation per step and a copy of the weights), calibrate (Qiskit's gains from
-- 25 directions at the first step; opt.gains), average_from (Polyak average of the
-- iterates from that step: opt:averaged()), second_order (2-SPSA, spsa_hessian.lua: two
-- more evaluations per step, a d x d Hessian).
-- opt.gains = {a, A, alpha, c, gamma}: the gain constants of the last step (after
-- calibration, the calibrated ones).
-- info: loss (L(w) when evaluated, else the mean of the perturbed losses), losses, a, c,
-- s (the projected gradients s_i), ghat_norm (when g is formed), passes, skipped,
-- updated, blocked, log_entries (seeded exact restore).
-- State: the base's, the average, and extra {seed, calibrated, fx, allowed, blocked,
-- averaged, hessian = {count, mean}}; the directions need nothing more (regenerated from
-- the seed).
-- Several ranks (ms.dist; dist_split = 'directions' | 'batch', distributed = false): spsa_dist.lua;
-- opt.dist_bytes: the bytes this rank sent in the last step's exchange (0 on one rank).
local ffi = require 'ffi'
local ms = require 'moonstep'
local Optimizer = require 'moonstep.optim.Optimizer'
local passes = require 'moonstep.optim.passes'
local reduce = require 'moonstep.optim.reduce'
local cfg = require 'moonstep.optim.spsa_config'
local points = require 'moonstep.optim.spsa_points'
local S = require 'moonstep.optim.spsa_sample'
local SD = require 'moonstep.optim.spsa_dist'
local zo = require 'moonstep.optim.zo_ops'
local check = require 'moonstep.check'

local SPSA = Optimizer.define('SPSA', cfg.DEFAULTS, cfg.RULES, { options = cfg.OPTIONS })
SPSA.skip_default, SPSA.multipass = true, true
SPSA.loss_only = true                 -- the closure evaluates the loss only (no gradient read)
SPSA.step_size = 'a'                  -- groups' lr_scale scales a (lr is its alias)
SPSA.passes_doc = 'once per loss evaluation (2n times a step, central; n + 1, forward)'
SPSA.preset = cfg.preset
SPSA.PRESETS = cfg.PRESETS

local GROUP_KEYS = { match = true, weight_decay = true, lr_scale = true }

-- distributed = 'directions' | 'batch' is SPSA's shorthand for dist_split (the common
-- option distributed is otherwise true | false, optim/config.lua): taken off the config
-- before the engine checks it.
local engine_new = SPSA.new
function SPSA.new(target, config)
  local c = config
  if c == nil and type(target) == 'table' and getmetatable(target) == nil and target[1] == nil then c = target end
  -- (raw reads: config may be anything, the strict ms table included; the engine checks it)
  if type(c) ~= 'table' or getmetatable(c) ~= nil or type(rawget(c, 'distributed')) ~= 'string' then
    return engine_new(target, config)
  end
  local split = c.distributed
  if split ~= 'directions' and split ~= 'batch' then
    check.fail('SPSA: distributed is %s, expected true, false, "directions" or "batch"', check.describe(split))
  end
  if c.dist_split ~= nil and c.dist_split ~= split then
    check.fail('SPSA: distributed = %q and dist_split = %s disagree (give one)', split, check.describe(c.dist_split))
  end
  local copy = {}
  for k, v in pairs(c) do copy[k] = v end
  copy.distributed, copy.dist_split = nil, split
  if c == config then return engine_new(target, copy) end
  return engine_new(copy)
end

local function build_base(self, who, o, config)
  if o.update == 'base' then
    self.base = Optimizer._as_base(who, config.base)
    self.base._wrapped = true
    return
  end
  if o.update == 'mezo' then return end
  local groups = {}
  for i, g in ipairs(config.groups or {}) do
    groups[i] = { match = g.match, weight_decay = g.weight_decay, lr_scale = g.lr_scale }
  end
  local optim = require 'moonstep.optim'
  if o.update == 'adam' then
    self.base = optim.Adam { groups = groups, check_finite = false }
  elseif o.update == 'spsa_gc' then
    self.base = optim.SGD { groups = groups, momentum = 0.9, nesterov = true, check_finite = false }
  else
    self.base = optim.SGD { groups = groups, check_finite = false }
  end
  self.base._wrapped = true
end

function SPSA:_configure(who, config)
  local o = cfg.configure(self, who, config)
  for i, g in ipairs(config.groups or {}) do
    for k in pairs(g) do
      if not GROUP_KEYS[k] then
        check.fail('%s: groups[%d].%s: SPSA groups set weight_decay and lr_scale (the perturbation and gains are global)', who, i, tostring(k))
      end
    end
  end
  if o.update == 'mezo' or o.update == 'base' then
    for _, k in ipairs { 'clip_norm', 'clip_tensor_norm', 'clip_value' } do
      if config[k] ~= nil then
        check.fail("%s: %s clips the formed estimate; update = '%s' %s", who, k, o.update,
                   o.update == 'mezo' and 'never forms it (use update = \'sgd\')' or 'takes it from the base (set it there)')
      end
    end
  end
  build_base(self, who, o, config)
  self.gains = { a = self.a, A = self.A, alpha = self.alpha, c = self.c, gamma = self.gamma }
  self.seed = o.seed or math.floor(ms.empty(1, { dtype = 'float64' }):uniform_(0, 2 ^ 31):get(1))
  self.blocked = 0
end

function SPSA:_check_values(who, v)
  local o = self._zo
  if v.blocking == true and (o.update == 'adam' or o.update == 'spsa_gc' or o.update == 'base') then
    check.fail("%s: blocking undoes rejected steps; update = '%s' keeps state that the rejected step would have moved (use 'sgd', 'sign' or 'mezo')", who, o.update)
  end
  if v.trust_region == true and o.update == 'mezo' then
    check.fail("%s: trust_region rescales the formed estimate; update = 'mezo' never forms it (use update = 'sgd')", who)
  end
end

function SPSA:_init()
  self.buffers = {}
  local d = self.arena.flat:numel()
  local o = self._zo
  local supports = require('moonstep.nn.batched').supports
  if o.batched == nil then   -- batched when it can be
    o.batched = (o.criterion and o.memory == 'materialized' and self.model
                 and supports(self.model, o.criterion)) and true or false
  elseif o.batched then
    local ok, why = false, 'the optimizer was built from a list of tensors, not a model'
    if self.model then ok, why = supports(self.model, o.criterion) end
    if not ok then check.fail('SPSA: batched = true, but %s (batched = false evaluates through the closure)', why) end
  end
  if (o.batched or o.directions) and o.n * d > 2 ^ 31 then
    check.fail('SPSA: memory = materialized stores n x d = %d x %d directions, too many (use memory = \'seeded\')', o.n, d)
  end
  if o.second_order and d * d > 2 ^ 28 then
    check.fail('SPSA: second_order = true keeps a %d x %d Hessian; too large (2-SPSA is for small d)', d, d)
  end
end

function SPSA:_new_buffer(k)
  local flat = self.arena.flat
  if k == 'average' then return ms.zeros_like(flat) end
end

function SPSA:_save_extra()
  local st = rawget(self, '_hstate')
  return { seed = self.seed, calibrated = self.calibrated or false, fx = self._fx,
           allowed = self._allowed, blocked = self.blocked, averaged = self._avg_count,
           hessian = st and require('moonstep.optim.spsa_hessian').save(st, 'SPSA.state') }
end

function SPSA:_load_extra(who, e, s)
  if type(e) ~= 'table' then check.fail('%s: state.extra is %s, expected a table', who, check.describe(e)) end
  check.integer(who, 'state.extra.seed', e.seed, 0, 2 ^ 53 - 1)
  check.boolean(who, 'state.extra.calibrated', e.calibrated)
  if e.fx ~= nil then check.number(who, 'state.extra.fx', e.fx) end
  if e.allowed ~= nil then check.number(who, 'state.extra.allowed', e.allowed, 0) end
  check.integer(who, 'state.extra.blocked', e.blocked, 0)
  if e.averaged ~= nil then check.integer(who, 'state.extra.averaged', e.averaged, 0) end
  if (e.averaged or 0) > 0 and not (type(s) == 'table' and type(s.buffers) == 'table' and s.buffers.average) then
    check.fail('%s: state.extra.averaged is %d but the state holds no average buffer (buffers.average)', who, e.averaged)
  end
  local st
  if e.hessian ~= nil then
    if not self._zo.second_order then check.fail('%s: the state holds a 2-SPSA Hessian; this optimizer has second_order = false', who) end
    st = require('moonstep.optim.spsa_hessian').load(who, e.hessian, self.arena.flat:numel(), self.arena.flat)
  end
  self.seed, self.calibrated, self._fx, self._allowed = e.seed, e.calibrated or nil, e.fx, e.allowed
  self.blocked, self._avg_count, self._hstate = e.blocked, e.averaged, st
end

local function update(self, who, t, v, a_k, dirs, coefs, info)
  local o = self._zo
  if o.update == 'mezo' then
    local ng = #self.groups + 1
    local lr, wd = self._lr or ffi.new('double[?]', ng), self._wd or ffi.new('double[?]', ng)
    self._lr, self._wd = lr, wd
    for g = 1, ng do
      local grp = self.groups[g - 1]
      lr[g - 1] = a_k * (grp and grp.lr_scale or 1)
      wd[g - 1] = self:_hyper(who, 'weight_decay', t, g)
    end
    -- seeded: the last perturbation comes off in the update's own pass (exactly, with its
    -- log), one pass over the weights instead of two
    local from, log = points.current(self)
    zo.mezo_update(who, self.arena.flat, from, from and log, dirs, coefs, self.table.ct, lr, wd)
    points.forget(self)
    return true
  end
  S.estimate(self, who, dirs, coefs)
  local g = self.arena.gflat
  local sq = reduce.sumsq(who, g)
  info.ghat_norm = math.sqrt(sq)
  if sq ~= sq or sq == math.huge then   -- (your directions: a zero with divide = true)
    if not reduce.finite(who, g) then
      self:_nonfinite(who, 'the gradient estimate holds non-finite values (a direction of yours with a zero, divide = true?)')
      return false
    end
  end
  if v.trust_region and info.ghat_norm > 1 then g:mul_(1 / info.ghat_norm) end
  if o.second_order then
    local H = require 'moonstep.optim.spsa_hessian'
    local flat = self.arena.flat
    local st = rawget(self, '_hstate')
    if not st then st = H.new(flat:numel(), flat, nil, who); self._hstate = st end
    if st.mean.dtype ~= flat.dtype or st.mean.device ~= flat.device then   -- the model moved
      st.mean = st.mean:to(flat.dtype, flat.device)
    end
    local rows = S.direction_rows(self, who, dirs)
    H.update(st, info.hessian_coefs, rows[1], rows[2], who)
    if H.active(st, v.hessian_delay, who) then H.precondition(st, g, v.regularization, g, who) end
  end
  self:_clip(who)
  if o.update == 'sign' then g:sign_() end
  local base = self.base
  if o.update ~= 'base' then
    base.lr = a_k
    base.weight_decay = v.weight_decay
    if o.update == 'adam' then base.betas, base.eps = { v.betas[1], v.betas[2] }, v.eps end
    if o.update == 'spsa_gc' then
      base.momentum, base.nesterov = v.beta, v.beta > 0   -- beta = 0: plain SGD (m = g, step g)
      if o.gc_reset == 'first_epoch' and t <= o.steps_per_epoch then base.started = {} end
    end
    for i, grp in ipairs(self.groups) do
      base.groups[i].weight_decay, base.groups[i].lr_scale = grp.weight_decay, grp.lr_scale
    end
  end
  base._checked = true
  return base:_apply(self._base_who, true)
end

-- lr is the alias of a: opt:get('lr'), and opt.lr = x (taken as a at the next step)
local engine_get = Optimizer.get
function SPSA:get(k, group)
  return engine_get(self, k == 'lr' and 'a' or k, group)
end

local function take_lr(self)
  local lr = rawget(self, 'lr')
  if lr ~= nil then self.a, self.lr = lr, nil end
end


-- A skipped step: counted; returns the loss that made it skip (the last one evaluated)
-- and info with skipped = true.
local function skip(self, info, loss)
  self.skipped = self.skipped + 1
  info.skipped = true
  if loss == nil then loss = info.losses[#info.losses] end
  info.loss = loss
  return loss, info
end

local function body(self, who, closure)
  self:_check_count(who)
  self:_check_live(who)        -- (calibration, first, reads the parameters too)
  local o = self._zo
  self._base_who = self._base_who or (self.base and ('%s (its update, optim.%s)'):format(who, self.base.__name))
  local info = { passes = 0, skipped = false, updated = false, blocked = false, losses = {} }
  take_lr(self)
  check.integer(who, 'opt.seed', rawget(self, 'seed'), 0, 2 ^ 53 - 1)
  local mode = SD.mode(self)   -- several ranks: spsa_dist.lua (nil: one process)
  if mode then SD.setup(self, who); SD.begin(self, info, mode) else self.dist_bytes = 0 end
  local t = self.t + 1
  if o.calibrate and not self.calibrated then
    local ok
    if mode then ok = SD.calibrate(self, who, closure, info, mode) else ok = S.calibrate(self, who, closure, info) end
    if not ok then return skip(self, info) end
  end
  local v = self:_values(who, t, 1)
  self.gains = { a = v.a, A = v.A, alpha = v.alpha, c = v.c, gamma = v.gamma }
  local k = cfg.index(o, t)
  local a_k, h = cfg.gains(v, k)
  info.a, info.c = a_k, h
  local step = self.t + self.skipped          -- the direction key: one per attempt
  if step >= 2 ^ 32 - 1 then check.fail('%s: %d steps taken; the direction key allows 2^32 - 1', who, step) end
  local dirs = { step = step, at = {} }
  for i = 1, o.n do
    dirs[i] = S.dir(self, step, i - 1, 1)
    dirs.at[i] = { [1] = S.dir(self, step, i - 1, h), [-1] = S.dir(self, step, i - 1, -h) }
  end
  S.fill_directions(self, who, dirs, step)
  if v.blocking and self._fx == nil then
    if mode then
      local ys = SD.at_w(self, who, closure, info, 1, mode)
      if not ys then return skip(self, info) end
      self._fx = ys[1]
    else
      self._fx = S.eval(self, who, closure, nil, info)
      if self._bad then
        local bad = self._fx
        self._fx = nil
        return skip(self, info, bad)
      end
    end
    if v.allowed_increase == false and self._allowed == nil then
      local ys, sum = {}, 0
      if mode then
        ys = SD.at_w(self, who, closure, info, 25, mode)
        if not ys then self._fx = nil; return skip(self, info) end
        for j = 1, 25 do sum = sum + ys[j] end
      else
        for j = 1, 25 do
          ys[j] = S.eval(self, who, closure, nil, info)
          if self._bad then self._fx = nil; return skip(self, info, ys[j]) end
          sum = sum + ys[j]
        end
      end
      local mean, var = sum / 25, 0
      for j = 1, 25 do var = var + (ys[j] - mean) ^ 2 end
      self._allowed = 2 * math.sqrt(var / 25)
    end
  end
  local s, L0
  if mode then s, L0 = SD.sample(self, who, closure, info, h, dirs, mode)
  else s, L0 = S.sample(self, who, closure, info, h, dirs) end
  -- (seeded MeZO takes the last perturbation off inside its update's pass)
  if not (s and o.update == 'mezo' and o.memory == 'seeded' and not v.blocking) then points.home(self, who) end
  info.s = s
  if not s then return skip(self, info) end
  local coefs = {}
  for i = 1, o.n do coefs[i] = s[i] / o.n end
  if L0 then info.loss = L0
  else   -- the mean of the step's 2n central evaluations
    local sum, ls = 0, info.losses
    for j = #ls - 2 * o.n + 1 - (o.second_order and 2 * o.n or 0), #ls - (o.second_order and 2 * o.n or 0) do sum = sum + ls[j] end
    info.loss = sum / (2 * o.n)
  end
  local w = self.arena.flat
  if v.blocking then self:_scratch('block'):copy_(w) end
  if update(self, who, t, v, a_k, dirs, coefs, info) == false then return skip(self, info, info.loss) end
  self.t = t
  info.updated = true
  if v.blocking then
    local allowed = v.allowed_increase == false and self._allowed or v.allowed_increase
    local y, bad
    if mode then
      local ys = SD.at_w(self, who, closure, info, 1, mode)
      y, bad = ys and ys[1], not ys
    else
      y = S.eval(self, who, closure, nil, info)
      bad = self._bad
    end
    if bad or y >= self._fx + allowed then
      w:copy_(self:_scratch('block'))
      self.blocked = self.blocked + 1
      info.blocked = true
    else
      self._fx = y
    end
    info.fx = self._fx
  end
  if o.average_from and t >= o.average_from then
    local avg = self:_buffer('average')
    local count = (self._avg_count or 0) + 1
    self._avg_count = count
    reduce.axpby(who, avg, 1 - 1 / count, w, 1 / count)
  end
  info.log_entries = self.zo_log_entries
  return info.loss, info
end

local function undo(self) points.undo(self) end

function SPSA:step(input, target, ...)
  local who = 'SPSA.step'
  local closure = input
  self._data = nil
  if check.is_tensor(input) then
    local o = self._zo
    if not o or not o.criterion then
      check.fail('%s: input is a tensor; step(input, target) needs a criterion in the config (criterion = nn.CrossEntropyLoss()), else pass a closure', who)
    end
    self:_bound(who)
    local model = self.model
    if not model then check.fail('%s: step(input, target) runs the model; the optimizer was built from a list of tensors (pass a closure)', who) end
    if target == nil then check.fail('%s: target is missing, expected the targets of input', who) end
    if select('#', ...) > 0 then
      check.fail('%s: expected step(input, target), got a third argument (%s)', who, check.describe((...)))
    end
    self._data = { input, target }
    local crit = o.criterion
    closure = function() return crit:forward(model:forward(input), target) end
  elseif target ~= nil or select('#', ...) > 0 then
    check.fail('%s: expected step(closure) or step(input, target), got %s and %s', who, check.describe(input), check.describe(target))
  elseif type(closure) ~= 'function' then
    self:_bound(who)
    check.fail('%s: closure is %s, expected a function(pass) that evaluates the loss at the current parameters and returns it (no backward needed), or step(input, target) with a criterion in the config',
               who, check.describe(closure))
  end
  return passes.step(self, who, closure, body, undo)
end

function SPSA:apply()
  check.fail('SPSA.apply: SPSA forms its estimate from loss evaluations; use loss, info = opt:step(closure)')
end

-- The Polyak average of the iterates since average_from (a copy of the flat arena).
function SPSA:averaged()
  local who = 'SPSA.averaged'
  self:_bound(who)
  local avg = self.buffers and self.buffers.average
  if not avg then
    check.fail('%s: no average was kept (build the optimizer with average_from = s and take steps past s)', who)
  end
  return avg:clone()
end

return SPSA
