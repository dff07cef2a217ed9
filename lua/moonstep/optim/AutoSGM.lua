-- optim.AutoSGM(params, config) — AutoSGM v2 (somefunAgba/autosgm, commit 07b5e79; the
-- exact spec: ../shared/reference/acme_autosgm.md section 2). One fused pass per step
-- (runtime/optim/autosgm.h, driver runtime/optim_autosgm.c); a per-layer numerator
-- (num_lrc 2-4, per_layer = true) adds a deterministic per-tensor mean and a second pass.
--
-- Named fields (defaults = the seed's; every one a hyper-parameter: a value, a function
-- of the step or a schedule, per group if wanted):
--   aoptlr = true, lr_init = 1e-3, num_lrc = 0                      (lr_cfg)
--   beta_n = 0.9999, beta_a = 0.999, beta_i = 0.9, gamma_i = 0,
--   eta_i = 0, debias = true                                        (beta_cfg)
--   rcm = 0, inseq = 0, x = 0, n = 2, m = 1, tau = 1000, spe = 1,
--   cfact = 1, e = 0                                                (rc_cfg: the lr window)
--   wd = 0, wd_lvl = 0                                              (wd_cfg)
--   eps = 1e-10, repeat_eps = true                                  (eps_cfg)
--   per_layer = true (miscs), cf = 4, maximize = false
-- or the seed's tuples, in the seed's order: lr_cfg = {true, 1e-3, 0}, beta_cfg = {...},
-- rc_cfg = {...}, wd_cfg = {0, 0}, eps_cfg = {1e-10, true}, miscs = {1} (a tuple and one of
-- its named fields together is an error).
--
-- compat = {...}: the reference's quirks, each a flag (defaults: section 2.13's parity
-- choices where the spec makes one, else the documented/PyTorch behaviour):
--   window = true          the reference's window state machine (schedule.window's compat):
--                          its epoch counter steps every TAU iterations (spe was meant), and
--                          its frame bookkeeping past an epoch-unit frame (cfact 0) and
--                          through the flat top; false: k = ceil(t / spe), plain periodic frames
--   scaled_w = true        num_lrc 3 uses the stored beta_n-scaled E[w^2] (false: the EMA)
--   lrc1_is_const = true   num_lrc 1 is a = lr_init as 0 (the reference's dead branch); the
--                          intended estimator is not implemented, false is refused
--   lrc2_elementwise_unclipped = false   num_lrc 2 with per_layer false: P unclipped
--                          (the reference) instead of min(P, lr_init) (its docstring)
--   maximize_flips_decay = false   maximize negates the whole update, decay included (the
--                          reference) instead of the gradient (torch.optim's maximize)
--   nudge_zeros = false    step 1: entries with |p| < eps become p + eps (the reference's
--                          master copy; needed for bit parity when parameters hold zeros)
-- The rcm 6 window is the reference's (not normalized: F(1) = 1.058 at n = 4) always.
--
-- The reference keeps per-tensor step counters; here every tensor steps together (t = the
-- optimizer's step), as the reference's do when every parameter has a gradient.
-- opt:window(t [, group]) is F_t, the window's value at step t.
-- State: buffers.smooth, buffers.moment (aoptlr), buffers.est1..est4 (the estimator's:
-- num_lrc 2: P; 3: W, M, A; 4: W, mean, variance, A), buffers.q (per_layer false), and
-- extra.q_slice (per_layer true: one numerator per parameter tensor).
local ffi = require 'ffi'
local ms = require 'moonstep'
local Optimizer = require 'moonstep.optim.Optimizer'
local check = require 'moonstep.check'
local window = require 'moonstep.schedule.window'
local C = ms.C

local huge, floor, fmt = math.huge, math.floor, string.format

local DEFAULTS = {
  aoptlr = true, lr_init = 1e-3, num_lrc = 0,
  beta_n = 0.9999, beta_a = 0.999, beta_i = 0.9, gamma_i = 0, eta_i = 0, debias = true,
  rcm = 0, inseq = 0, x = 0, n = 2, m = 1, tau = 1000, spe = 1, cfact = 1, e = 0,
  wd = 0, wd_lvl = 0, eps = 1e-10, repeat_eps = true, per_layer = true, cf = 4, maximize = false,
}

local function int(lo, hi)
  return function(who, name, v) check.integer(who, name, v, lo, hi) end
end
local function pole(who, name, v)
  if type(v) ~= 'number' or not (v >= 0 and v < 1) then
    check.fail('%s: %s is %s, expected a number in [0, 1)', who, name, check.describe(v))
  end
end
local function below_one(who, name, v)
  if type(v) ~= 'number' or not (v > -huge and v < 1) then
    check.fail('%s: %s is %s, expected a finite number < 1', who, name, check.describe(v))
  end
end
local function finite_positive(who, name, v)
  if type(v) ~= 'number' or not (v > 0 and v < huge) then
    check.fail('%s: %s is %s, expected a finite number > 0', who, name, check.describe(v))
  end
end

local RULES = {
  aoptlr = 'boolean', lr_init = 'nonnegative', num_lrc = int(0, 4),
  beta_n = pole, beta_a = pole, beta_i = pole, gamma_i = below_one, eta_i = 'unit',
  debias = 'boolean',
  rcm = int(0, 6), inseq = int(0, 1), x = 'unit', n = finite_positive, m = int(0, 1),
  tau = int(1), spe = int(1), cfact = int(0), e = 'unit',
  wd = 'nonnegative', wd_lvl = int(0, 1), eps = finite_positive, repeat_eps = 'boolean',
  per_layer = 'boolean', cf = finite_positive, maximize = 'boolean',
}

local AutoSGM = Optimizer.define('AutoSGM', DEFAULTS, RULES)
AutoSGM.hyper_ctype = 'ms_autosgm_hyper'

-- The seed's tuples: field names in order (miscs' per_layer is 1/0 there).
local TUPLES = {
  lr_cfg = { 'aoptlr', 'lr_init', 'num_lrc' },
  beta_cfg = { 'beta_n', 'beta_a', 'beta_i', 'gamma_i', 'eta_i', 'debias' },
  rc_cfg = { 'rcm', 'inseq', 'x', 'n', 'm', 'tau', 'spe', 'cfact', 'e' },
  wd_cfg = { 'wd', 'wd_lvl' },
  eps_cfg = { 'eps', 'repeat_eps' },
  miscs = { 'per_layer' },
}
local TUPLE_ORDER = { 'lr_cfg', 'beta_cfg', 'rc_cfg', 'wd_cfg', 'eps_cfg', 'miscs' }
AutoSGM.TUPLES = TUPLES   -- (read by the spec, which builds both forms of a config)

local COMPAT = { window = true, scaled_w = true, lrc1_is_const = true,
                 lrc2_elementwise_unclipped = false, maximize_flips_decay = false,
                 nudge_zeros = false }
local COMPAT_KEYS = {}
for k in pairs(COMPAT) do COMPAT_KEYS[#COMPAT_KEYS + 1] = k end
table.sort(COMPAT_KEYS)

for _, k in ipairs(TUPLE_ORDER) do AutoSGM.accepted[#AutoSGM.accepted + 1] = k end
AutoSGM.accepted[#AutoSGM.accepted + 1] = 'compat'

local function compat_of(who, c)
  local out = {}
  for k, v in pairs(COMPAT) do out[k] = v end
  if c == nil then return out end
  c = check.options(who .. ' compat', c, COMPAT_KEYS)
  for k, v in pairs(c) do out[k] = check.boolean(who, 'compat.' .. k, v) end
  if not out.lrc1_is_const then
    check.fail('%s: compat.lrc1_is_const = false asks for the intended num_lrc 1 estimator, which is not implemented (the reference never runs it)', who)
  end
  return out
end

-- The configuration with the tuples spread into named fields and compat taken out.
local function translate(who, config)
  local out, compat = {}, nil
  for k, v in pairs(config) do
    if k == 'compat' then compat = v
    elseif not TUPLES[k] then out[k] = v end
  end
  for _, name in ipairs(TUPLE_ORDER) do
    local tuple, fields = config[name], TUPLES[name]
    if tuple ~= nil then
      if type(tuple) ~= 'table' or getmetatable(tuple) ~= nil or #tuple ~= #fields then
        check.fail('%s: %s is %s, expected a table of %d values {%s}', who, name, check.describe(tuple),
                   #fields, table.concat(fields, ', '))
      end
      for i, f in ipairs(fields) do
        if config[f] ~= nil then
          check.fail('%s: %s and %s are both given (%s is %s[%d])', who, name, f, f, name, i)
        end
        local v = tuple[i]
        if f == 'per_layer' and (v == 0 or v == 1) then v = v == 1 end
        out[f] = v
      end
    end
  end
  return out, compat_of(who, compat)
end

local base_new = AutoSGM.new
function AutoSGM.new(target, config)
  local who = 'AutoSGM'
  -- as Optimizer.define's new: a lone plain table without [1] is a configuration
  if config == nil and type(target) == 'table' and getmetatable(target) == nil
     and not check.is_tensor(target) and rawget(target, 1) == nil then
    target, config = nil, target
  end
  local compat
  if type(config) == 'table' and getmetatable(config) == nil then config, compat = translate(who, config)
  else compat = compat_of(who, nil) end
  local self = base_new(target, config)
  rawset(self, 'compat', compat)
  return self
end

-- Rules tying fields together (v: values; callables are checked when read).
function AutoSGM:_check_values(who, v)
  local nums = true
  for _, k in ipairs { 'rcm', 'n', 'tau', 'spe', 'cfact' } do nums = nums and type(v[k]) == 'number' end
  if not nums or v.rcm == 0 then return end
  if v.rcm == 3 and not (v.n > 0 and v.n < 1) then
    check.fail('%s: n is %s, expected the base of the rcm 3 (beta-exponential) window in (0, 1)', who,
               check.describe(v.n))
  end
  local N = v.cfact == 2 and v.spe or v.cfact == 0 and v.tau or v.tau * v.spe
  if N < 2 then
    check.fail('%s: the window (rcm %d) is %d %s long (tau = %d, spe = %d, cfact = %d), expected >= 2', who,
               v.rcm, N, v.cfact == 0 and 'epochs' or 'iterations', v.tau, v.spe, v.cfact)
  end
end

-- The window schedule of a group's values (cached per configuration).
function AutoSGM:_window_of(v)
  local compat = rawget(self, 'compat') or COMPAT
  local key = fmt('%d|%d|%.17g|%.17g|%d|%d|%d|%d|%.17g|%s', v.rcm, v.inseq, v.x, v.n, v.m, v.tau, v.spe,
                  v.cfact, v.e, tostring(compat.window))
  local cache = rawget(self, '_windows')
  if not cache then cache = {}; rawset(self, '_windows', cache) end
  local w = cache[key]
  if not w then
    w = window { rcm = v.rcm, inseq = v.inseq, x = v.x, n = v.n, m = v.m, tau = v.tau, spe = v.spe,
                 cfact = v.cfact, e = v.e, compat = compat.window }
    cache[key] = w
  end
  return w
end

-- F_t of group g (1 = the default group) with the hyper-parameters in force at step t.
function AutoSGM:window(t, group)
  local who = 'AutoSGM.window'
  check.integer(who, 't', t, 1, 2 ^ 53 - 1)
  local g = 1
  if group ~= nil then g = check.integer(who, 'group', group, 1, #self.groups + 1) end
  local v = self:_values(who, t, g)
  if v.rcm == 0 then return 1 end
  return self:_window_of(v)(t)
end

local function compat_bits(c)
  local bits = 0
  if c.scaled_w then bits = bits + C.MS_AUTOSGM_SCALED_W end
  if c.lrc2_elementwise_unclipped then bits = bits + C.MS_AUTOSGM_LRC2_UNCLIPPED end
  if c.maximize_flips_decay then bits = bits + C.MS_AUTOSGM_MAXIMIZE_FLIPS_DECAY end
  if c.nudge_zeros then bits = bits + C.MS_AUTOSGM_NUDGE_ZEROS end
  return bits
end

function AutoSGM._fill(h, v, self, _, t)
  h.lr_init, h.beta_n, h.beta_a, h.beta_i = v.lr_init, v.beta_n, v.beta_a, v.beta_i
  h.gamma_i, h.eta_i, h.weight_decay, h.eps, h.cf = v.gamma_i, v.eta_i, v.wd, v.eps, v.cf
  h.window = v.rcm == 0 and 1 or self:_window_of(v)(t)
  h.aoptlr, h.num_lrc, h.debias = v.aoptlr and 1 or 0, v.num_lrc, v.debias and 1 or 0
  h.repeat_eps, h.wd_level = v.repeat_eps and 1 or 0, v.wd_lvl
  h.per_layer, h.maximize = v.per_layer and 1 or 0, v.maximize and 1 or 0
  h.compat = compat_bits(rawget(self, 'compat') or COMPAT)
end

function AutoSGM:_init()
  self.buffers = {}
  self.aux = ffi.new('ms_autosgm_aux[1]')
end

local NEST = { [2] = 1, [3] = 3, [4] = 4 }   -- estimator state buffers per num_lrc
local BUFFERS = { 'smooth', 'moment', 'est1', 'est2', 'est3', 'est4' }

function AutoSGM:_new_buffer(k)
  if k == 'q' then return ms.zeros_like(self.arena.flat) end
  for _, name in ipairs(BUFFERS) do
    if k == name then return ms.zeros_like(self.arena.flat) end
  end
end

-- One numerator per slice (per_layer), zeros until the first step.
function AutoSGM:_q_slice()
  local qs = rawget(self, 'q_slice')
  if not qs then
    qs = ffi.new('double[?]', self.table.nslices)
    rawset(self, 'q_slice', qs)
  end
  return qs
end

function AutoSGM:_update(hs, t)
  local b, flat = self.buffers, self.arena.flat
  local nbuf, elem_q, perl = 1, false, false
  for g = 0, #self.groups do
    local h = hs[g]
    local lrc = (h.aoptlr ~= 0 and h.num_lrc >= 2) and h.num_lrc or 0
    if h.aoptlr ~= 0 then nbuf = math.max(nbuf, 2 + (NEST[lrc] or 0)) end
    if lrc >= 2 then
      if h.per_layer ~= 0 then perl = true else elem_q = true end
    end
  end
  for i = 1, nbuf do
    if not b[BUFFERS[i]] then b[BUFFERS[i]] = ms.zeros_like(flat) end
  end
  if elem_q and not b.q then b.q = ms.zeros_like(flat) end
  local aux = self.aux[0]
  aux.q = elem_q and b.q or nil
  if perl then
    -- scratch: every element written by pass 1 before it is read
    aux.scratch, aux.q_slice = self:_scratch('work'), self:_q_slice()
  else
    aux.scratch, aux.q_slice = nil, nil
  end
  local states = {}
  for i = 1, 6 do states[i] = b[BUFFERS[i]] end
  local x = self.aux
  local rc = self:_run(function(args, h) return C.ms_autosgm_step(args, h, x) end, hs, t, states)
  aux.q, aux.scratch, aux.q_slice = nil, nil, nil
  return rc
end

-- extra: the compat flags (restored with the state, as the hyper-parameters are) and the
-- per-slice numerators.
function AutoSGM:_save_extra()
  local extra = { compat = {} }
  for k, v in pairs(rawget(self, 'compat') or COMPAT) do extra.compat[k] = v end
  local qs = rawget(self, 'q_slice')
  if qs then
    extra.q_slice = {}
    for s = 0, self.table.nslices - 1 do extra.q_slice[s + 1] = qs[s] end
  end
  return extra
end

function AutoSGM:_load_extra(who, extra)
  if extra ~= nil and (type(extra) ~= 'table' or getmetatable(extra) ~= nil) then
    check.fail('%s: state.extra is %s, expected a table {compat = ..., q_slice = ...}', who, check.describe(extra))
  end
  extra = extra or {}
  local compat = extra.compat ~= nil and compat_of(who .. ' (state.extra)', extra.compat) or nil
  local qs, list, n = nil, extra.q_slice, self.table.nslices
  if list ~= nil then
    if type(list) ~= 'table' or #list ~= n then
      check.fail('%s: state.extra.q_slice is %s, expected %d numbers (one per parameter tensor)', who,
                 check.describe(list), n)
    end
    for i = 1, n do check.number(who, ('state.extra.q_slice[%d]'):format(i), list[i]) end
    qs = ffi.new('double[?]', n)
    for i = 1, n do qs[i - 1] = list[i] end
  end
  if compat then rawset(self, 'compat', compat) end
  rawset(self, 'q_slice', qs)
end

return AutoSGM
