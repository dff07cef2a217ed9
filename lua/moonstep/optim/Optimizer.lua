-- optim.Optimizer — the driver every optimizer shares; a rule class supplies the update.
--
--   opt = optim.X{config}                    unbound: a configuration a wrapper binds later
--   opt = optim.X(model_or_params, config)   bound to a Module (kept: pass policies need it),
--                                            an ms.params set or a list of tensors
--   opt:bind(model_or_params)                binds an unbound optimizer (returns it)
--   loss = opt:evaluate(closure [, pass])    zeroes the gradients, runs closure(pass.pass)
--                                            under the pass policy (optim/policy.lua: BatchNorm
--                                            statistics updated or frozen, RNG recorded or
--                                            replayed), checks the loss and the gradients
--   opt:apply()                              one update from the current gradients
--                                            (clipping first); false when it was skipped
--   loss = opt:step(closure)                 evaluate + apply; opt:step() applies gradients
--                                            the caller computed (the PyTorch habit)
--   opt:get('lr' [, group])                  the value in force: during a step, that step's;
--                                            after it, the last step's; before any, step 1's
--   s = opt:state(); opt:load_state(s)       plain tables of numbers and tensors
--   opt.t, opt.skipped, opt.passes           updates taken, updates skipped, closure calls
--
-- Hyper-parameters are plain fields (opt.lr = 0.01), or anything callable with the
-- 1-based step count (a function, an ms.schedule). Each has a rule (its range): checked
-- at construction and each time a step reads it. Unknown options are errors.
--
-- Options every optimizer takes besides its hyper-parameters:
--   groups = { {match = 'bias|norm', weight_decay = 0}, {match = '^1%.', lr_scale = 0.1} }
--     parameter groups (optim/slices.lua): each its own hyper-parameters (those it does not
--     set follow the optimizer's fields) and lr_scale; one fused pass over the arena still
--   clip_norm = c           gradients scaled so that their global L2 norm is at most c
--   clip_tensor_norm = c    each parameter tensor's gradient norm capped at c
--   clip_value = c          each gradient element clamped to [-c, c]
--   skip_nonfinite = true   a non-finite loss or gradient skips the step (opt.skipped
--                           counts them) instead of raising; on_nonfinite = 'skip' | 'error'
--                           is the same option under its older name
--   check_finite = false    no scan of the gradients for nan/inf (one read-only pass over
--                           the gradient arena per step, 11-23% of an Adam step on this
--                           machine); the loss is still checked
--   distributed = false     under mpirun (ms.dist), exchange nothing: by default the
--                           parameters are broadcast from rank 0 at bind and each closure's
--                           gradient arena and loss are all-reduced (mean) before the
--                           update (optim/dist_sync.lua); opt:no_sync(fn) runs fn unsynced
--   bucket_mb = 1           megabytes per bucket of that all-reduce, started as a Sequential
--                           model's backward finishes them (optim/dist_buckets.lua); false:
--                           one all-reduce of the whole arena after the closure
-- Clipping rewrites the gradient arena in place (as torch.nn.utils.clip_grad_norm_).
--
-- A rule class (SGD.lua is the short example; the C side is runtime/optim/sgd.h):
--   local X = Optimizer.define('X', defaults, rules [, {wraps = true}])
--   X.hyper_ctype = 'ms_x_hyper'              the ABI struct of one group's values
--   function X._fill(h, v, opt, g, t)         h: that struct for group g (1 = the default
--                                             group), v: its checked values at step t
--   function X:_init()                        after bind: self.buffers = {...}
--   function X:_update(hs, t)                 the fused step, returns the runtime's status:
--     return self:_run(C.ms_x_step, hs, t, { buffer1, buffer2, ... })
--   optional: X:_check_values(who, v) (rules tying values together), X:_new_buffer(k)
--   (buffers made lazily), X:_save_extra() / X:_load_extra(who, extra, s) (more state).
-- A wrapper ({wraps = true}) gets self.base and overrides step with self:_evaluate(who,
-- closure, pass) and self.base:_apply(who) (tests/optim_engine_spec.lua has one).
local ffi = require 'ffi'
local ms = require 'moonstep'
local params = require 'moonstep.params'
local check = require 'moonstep.check'
local slices = require 'moonstep.optim.slices'
local reduce = require 'moonstep.optim.reduce'
local policy = require 'moonstep.optim.policy'
local state_io = require 'moonstep.optim.state'
local common = require 'moonstep.optim.config'
local dist_sync = require 'moonstep.optim.dist_sync'
local fail = require('moonstep.core').fail

local Optimizer = {}
Optimizer.__index = Optimizer
Optimizer.__name, Optimizer.__var = 'Optimizer', 'opt'

local huge = math.huge
local field = check.field

-- Rules, schedules (callables) and the common options: optim/config.lua.
Optimizer.rules = common.rules
Optimizer.callable = common.callable
local callable = common.callable
local COMMON = common.COMMON

-- Is target something an optimizer binds to (rather than a configuration table)?
local function bindable(target)
  if type(target) ~= 'table' or check.is_tensor(target) then return false end
  if getmetatable(target) ~= nil then return true end   -- a module, a ParamSet...
  return rawget(target, 1) ~= nil                        -- a list of tensors
end

-- The parameter arena (and the model, when given one) behind what the caller passed.
function Optimizer.arena_of(target, who)
  if type(target) == 'table' and not check.is_tensor(target) then
    if field(target, 'arena') and field(target, 'forward') and type(rawget(target, '_params')) == 'table' then
      if field(target, '_get_arena') then return target:_get_arena(who), target end
      return target:arena(), target
    end
    if field(target, 'flat_parameters') and rawget(target, 'gflat') then return target end   -- a ParamSet
    if ms.is_tensor(rawget(target, 1)) then return params.params(target) end    -- a list of tensors
  end
  check.fail('%s: the first argument is %s, expected a model, an ms.params set or a list of tensors',
             who, check.describe(target))
end

-- An optimizer a wrapper is given as its base: an instance (bound or unbound) or a
-- class (optim.Adam: its defaults, unbound).
-- A base applies a direction it is given: a first-order optimizer, not a multi-pass one
-- (it needs its own closure) nor a wrapper; and one wrapper's (they would share its state).
local function as_base(who, v)
  local mt = type(v) == 'table' and getmetatable(v)
  local cls = mt and rawget(v, 'defaults') and rawget(v, 'new') and v or (mt and rawget(mt, 'defaults') and mt)
  if cls and (rawget(cls, 'multipass') or rawget(cls, 'wraps')) then
    check.fail('%s: base is optim.%s, which runs its own closure passes; expected a first-order optimizer such as optim.SGD or optim.Adam',
               who, cls.__name)
  end
  if mt and rawget(v, 'defaults') and rawget(v, 'new') then return v.new(nil, {}) end   -- a class
  if mt and rawget(mt, 'defaults') and rawget(v, 't') ~= nil then                    -- an instance
    if rawget(v, '_wrapped') then
      check.fail('%s: base is an optim.%s that another wrapper already uses (they would share its state); give each wrapper its own',
                 who, mt.__name)
    end
    -- what is exchanged between ranks is the wrapper's to decide (optim/dist_sync.lua)
    for _, k in ipairs { 'distributed', 'bucket_mb' } do
      if rawget(v, k) ~= nil then
        check.fail('%s: base optim.%s has %s = %s; give it to %s itself (the wrapper decides what the ranks exchange)',
                   who, mt.__name, k, check.describe(rawget(v, k)), who)
      end
    end
    return v
  end
  check.fail('%s: base is %s, expected an optimizer such as optim.Adam{lr = 1e-3}', who, check.describe(v))
end

Optimizer._as_base = as_base   -- (SPSA takes a base without being a wrapper class)

-- cls: the optimizer class. defaults: its hyper-parameters with default values;
-- rules: for each of them, a rule (a function or the name of one of Optimizer.rules).
-- opts.wraps: the class wraps a base optimizer (option `base`, bound with it to the
-- same parameters; its state nests in the wrapper's).
-- opts.options: more option names (not hyper-parameters: ACME's compat, BSAM's seed...),
-- handed with the whole configuration to cls._configure(self, who, config) after the
-- common options; opts.refuse = {option = 'why'}: common options the class cannot honour.
function Optimizer.define(name, defaults, rules, opts)
  opts = opts or {}
  local cls = { __name = name, defaults = defaults, rules = {}, wraps = opts.wraps or nil }
  local accepted = { unpack(COMMON) }
  if opts.wraps then accepted[#accepted + 1] = 'base' end
  for _, k in ipairs(opts.options or {}) do accepted[#accepted + 1] = k end
  for k in pairs(defaults) do
    local rule = rules[k]
    cls.rules[k] = type(rule) == 'string' and Optimizer.rules[rule] or rule
    assert(type(cls.rules[k]) == 'function', name .. ': no rule for hyper-parameter ' .. k)
    accepted[#accepted + 1] = k
  end
  cls.accepted = accepted
  cls.__index = cls
  cls.__call = function()               -- opt(closure): a mistake for opt:step(closure)
    check.fail('%s: an optimizer is not callable; use opt:step(closure)', name)
  end
  setmetatable(cls, { __index = Optimizer, __call = function(c, target, config) return c.new(target, config) end })
  check.methods(cls)                    -- methods it defines are guarded and named
  -- optim.X(target, config) binds; optim.X{config} (or optim.X()) is unbound.
  function cls.new(target, config)
    if config == nil and target ~= nil and not bindable(target) then
      if type(target) ~= 'table' or check.is_tensor(target) then Optimizer.arena_of(target, name) end
      target, config = nil, target
    end
    config = check.options(name, config, accepted)
    for k, why in pairs(opts.refuse or {}) do
      if config[k] ~= nil then check.fail('%s: %s is not supported (%s)', name, k, why) end
    end
    local self = setmetatable({}, cls)
    for k, v in pairs(defaults) do   -- a copy of table defaults (betas): never shared
      self[k] = type(v) == 'table' and { unpack(v) } or v
    end
    for k, v in pairs(config) do
      if defaults[k] ~= nil then self[k] = type(v) == 'table' and not callable(v) and { unpack(v) } or v end
    end
    common.common_options(self, name, config)
    if cls._configure then cls._configure(self, name, config) end
    common.check_config(self, name)
    if opts.wraps then
      if config.base == nil then check.fail('%s: base is missing, expected an optimizer such as optim.Adam{lr = 1e-3}', name) end
      self.base = as_base(name, config.base)
      self.base._wrapped = true
    end
    self.t, self.skipped, self.passes = 0, 0, 0
    if target ~= nil then self:_bind(target, name) end
    return self
  end
  return cls
end

-- Private helpers of the driver are methods with a leading underscore (check.methods
-- leaves them unguarded; the fuzzer skips them).

function Optimizer:_bind(target, who)
  if self.arena then
    check.fail('%s: the optimizer is already bound (to %d parameters); build a new one to bind another model',
               who, self.arena.flat:numel())
  end
  local arena, model = Optimizer.arena_of(target, who)
  local entries = arena.entries or {}
  local group_of = slices.assign(who, entries, self.groups, self.defaults)
  local base = rawget(self, 'base')
  if base and base.arena and base.arena ~= arena then
    check.fail('%s: the base optimizer is bound to other parameters (%d), expected the same as the wrapper',
               who, base.arena.flat:numel())
  end
  -- the base first: if it refuses (its groups...), the wrapper stays unbound
  if base and not base.arena then base:_bind(model or arena, ('%s (its base, optim.%s)'):format(who, base.__name)) end
  self.arena, self.model = arena, model
  -- (weakly: Module:add refuses a model whose parameters a live optimizer holds)
  rawset(arena, '_bound_by', setmetatable({ self }, { __mode = 'v' }))
  self._base_bound = base ~= nil or nil
  self.table = slices.table(arena, group_of, #self.groups + 1)
  self.ngroups = #self.groups + 1
  self.hs = self.hyper_ctype and ffi.new(self.hyper_ctype .. '[?]', self.ngroups)
  self.args = ffi.new('ms_optim_args[1]')
  dist_sync.bind(self)                  -- every rank starts from rank 0's parameters
  if self._init then self:_init() end
  self._required = {}                   -- the buffers _init made: a state must bring them
  for k in pairs(rawget(self, 'buffers') or {}) do self._required[k] = true end
  return self
end

function Optimizer:bind(target) return self:_bind(target, self.__name .. '.bind') end

function Optimizer:_bound(who)
  if not self.arena then
    check.fail('%s: the optimizer is not bound to parameters: build it as %s(model_or_params, config) or call opt:bind(model_or_params)',
               who, self.__name)
  end
end

-- Every tensor a step touches must be live, and on the arena's device and dtype (the
-- model may have moved: state buffers and the device slice table follow it).
function Optimizer:_check_live(who)
  local groups = rawget(self, 'groups')
  if type(groups) ~= 'table' or #groups + 1 ~= self.ngroups then
    check.fail('%s: opt.groups is %s but the optimizer was bound with %d groups; groups are fixed when it is bound (change their values, or build a new optimizer)',
               who, type(groups) == 'table' and ('a list of ' .. #groups) or check.describe(groups), self.ngroups - 1)
  end
  local base = rawget(self, 'base')
  if rawget(self, '_base_bound') and not (type(base) == 'table' and rawget(base, 'arena') == self.arena) then
    check.fail('%s: opt.base is %s, expected the base optimizer it was built with (bound to the same parameters)',
               who, check.describe(base))
  end
  local buffers = rawget(self, 'buffers')
  if buffers ~= nil and type(buffers) ~= 'table' or (buffers == nil and next(self._required)) then
    check.fail('%s: opt.buffers is %s, expected the table of state buffers (restore them with load_state)',
               who, check.describe(buffers))
  end
  for k in pairs(self._required) do
    if not ms.is_tensor(buffers[k]) then
      check.fail('%s: state buffer %s is %s, expected a tensor (restore it with load_state)', who, k,
                 check.describe(buffers[k]))
    end
  end
  check.tensor(who, 'the parameter arena (flat_parameters())', self.arena.flat)
  check.tensor(who, 'the gradient arena (flat_gradients())', self.arena.gflat)
  local entries = rawget(self.arena, 'entries') or {}
  for i, p in ipairs(rawget(self.arena, 'params') or {}) do
    if check.is_freed(p) then
      check.tensor(who, 'parameter ' .. tostring(entries[i] and entries[i].name or i), p)
    end
  end
  local flat = self.arena.flat
  for k, b in pairs(self.buffers or {}) do
    check.tensor(who, 'state buffer ' .. k, b)
    if b.device ~= flat.device or b.dtype ~= flat.dtype then self.buffers[k] = b:to(flat.dtype, flat.device) end
  end
  self.table:to_device(flat.device)
end

-- Scratch copies, lazily made state buffers and the memory trade of the multi-pass
-- optimizers: optim/workspace.lua (self:_scratch(k), self:_buffer(k), self:_trade(who, s),
-- self:_trade_back(who, k)).
require('moonstep.optim.workspace')(Optimizer)
require('moonstep.optim.describe')(Optimizer)   -- tostring(opt), tostring(optim.X)
dist_sync.install(Optimizer)                    -- opt:no_sync(fn)

-- The step counts are plain fields a user may overwrite: integers a double and an int64
-- share (the runtime takes the step as int64).
function Optimizer:_check_count(who)
  check.integer(who, 'the step count (opt.t)', rawget(self, 't'), 0, 2 ^ 53 - 1)
  check.integer(who, 'the skipped-step count (opt.skipped)', rawget(self, 'skipped'), 0, 2 ^ 53 - 1)
end

-- The value of hyper-parameter k for group g (1 = default) at step t, checked.
function Optimizer:_hyper(who, k, t, g)
  local grp = g and g > 1 and self.groups[g - 1]
  local v, name = self[k], k
  if grp and grp[k] ~= nil then v, name = grp[k], ('groups[%d].%s'):format(g - 1, k) end
  if callable(v) then
    v = v(t)
    name = ('%s (its value at step %s)'):format(name, check.describe(t))
  end
  self.rules[k](who, name, v)
  if k == 'lr' and grp and grp.lr_scale then
    v = v * check.number(who, ('groups[%d].lr_scale'):format(g - 1), grp.lr_scale, 0)
  end
  return v
end

-- Every hyper-parameter of group g at step t (a table k -> value), each checked.
function Optimizer:_values(who, t, g)
  local h = {}
  for k in pairs(self.defaults) do h[k] = self:_hyper(who, k, t, g) end
  if self._check_values then self:_check_values(who, h) end
  return h
end

-- The step being taken (during a step) or the last one taken.
function Optimizer:get(k, group)
  local who = self.__name .. '.get'
  if type(k) ~= 'string' or self.defaults[k] == nil then
    local names = {}
    for n in pairs(self.defaults) do names[#names + 1] = n end
    table.sort(names)
    check.fail('%s: %s is not a hyper-parameter of %s (it has %s)', who, check.describe(k),
               self.__name, table.concat(names, ', '))
  end
  local g = 1
  if group ~= nil then g = check.integer(who, 'group', group, 1, #self.groups + 1) end
  self:_check_count(who)
  local t = self._taking or math.max(self.t, 1)
  return self:_hyper(who, k, t, g)
end

-- The rule's fused step: fills the args struct and calls f(args, hs); returns its rc.
function Optimizer:_run(f, hs, t, states)
  local a = self.args[0]
  a.param, a.grad = self.arena.flat, self.arena.gflat
  for i = 0, 5 do a.state[i] = states[i + 1] end
  a.table, a.step = self.table.ct, t
  local rc = f(self.args, hs)
  a.param, a.grad = nil, nil
  for i = 0, 5 do a.state[i] = nil end
  return rc
end

local function finite(x) return x == x and x ~= huge and x ~= -huge end

-- Non-finite gradients, in one read-only pass: the sum of g * 0 (0 or nan), or with
-- clip_norm the sum of squares that clipping needs anyway. nil when fine, else the reason.
function Optimizer:_check_grads(who, loss)
  if not self.check_finite then return nil end
  local ok
  if self.clip_norm then
    self._gnorm_sq = reduce.sumsq(who, self.arena.gflat)
    -- an overflowing sum of squares (float64 gradients near 1e200) is not a non-finite one
    ok = finite(self._gnorm_sq) or reduce.finite(who, self.arena.gflat)
  elseif self._want_sq then
    -- a caller that needs the squared norms of this gradient (the SAM family's ascent)
    -- gets them from the same read: self._sq_per, one per slice
    local total, per = reduce.sumsq(who, self.arena.gflat, self.table)
    self._sq_per = per
    ok = finite(total) or reduce.finite(who, self.arena.gflat)
  else
    ok = reduce.finite(who, self.arena.gflat)
  end
  if ok then return nil end
  if loss == nil then return 'the gradients hold non-finite values (nan or inf)' end
  return ('the loss is %s but the gradients hold non-finite values (nan or inf)'):format(check.describe(loss))
end

function Optimizer:_nonfinite(who, bad)
  if self.skip_nonfinite then return bad end
  check.fail('%s: %s; parameters left unchanged (set skip_nonfinite = true to skip such steps)', who, bad)
end

function Optimizer:evaluate(closure, pass) return self:_evaluate(self.__name .. '.evaluate', closure, pass) end

function Optimizer:_evaluate(who, closure, pass, own_scan)
  self:_bound(who)
  if type(closure) ~= 'function' then
    check.fail('%s: closure is %s, expected a function that runs forward and backward and returns the loss',
               who, check.describe(closure))
  end
  local p = policy.check(who, pass)
  self:_check_count(who)
  self:_check_live(who)
  if p.zero_grad then self.arena:zero_grad() end
  policy.prepare(self, who, p)
  local loss = policy.run(self, closure, p)
  self.passes = self.passes + 1
  if type(loss) ~= 'number' then
    check.fail('%s: the closure returned %s, expected the loss as a number', who, check.describe(loss))
  end
  self:_check_live(who)                 -- the closure is user code
  self:_check_count(who)
  loss = dist_sync.evaluated(self, loss)   -- gradients and loss averaged over the ranks
  local bad
  if not finite(loss) then
    bad = ('the loss is %s'):format(check.describe(loss))
  elseif not own_scan then
    bad = self:_check_grads(who, loss)
  end
  self._bad = bad and self:_nonfinite(who, bad) or nil
  self._checked = true
  return loss
end

-- Clipping, in place on the gradient arena.
function Optimizer:_clip(who)
  local g = self.arena.gflat
  if self.clip_value then g:clamp_(-self.clip_value, self.clip_value) end
  if self.clip_tensor_norm then
    local c = self.clip_tensor_norm
    reduce.scale_by_norm(who, g, self.table, function(norm) return norm > c and c / (norm + 1e-6) or 1 end)
    self._gnorm_sq = nil
  end
  if self.clip_norm then
    local sq = (not self.clip_value and self._gnorm_sq) or reduce.sumsq(who, g)
    local norm = math.sqrt(sq)
    -- torch.nn.utils.clip_grad_norm_: g *= max_norm / (norm + 1e-6) when that is < 1
    local coef = self.clip_norm / (norm + 1e-6)
    if coef < 1 then g:mul_(coef) end
  end
end

-- One update from the current gradients; returns true, or false when skipped.
function Optimizer:apply() return self:_apply(self.__name .. '.apply') end

-- fresh: evaluate ran just before, with no user code in between (step(closure)): its
-- gradient check (and the norm clipping needs) still holds. Otherwise the gradients are
-- checked again, as they are now. A non-finite loss found by evaluate (skip mode) skips
-- this update either way.
function Optimizer:_apply(who, fresh)
  self._taking = nil
  self:_bound(who)
  self:_check_count(who)
  self:_check_live(who)
  dist_sync.before_apply(self)          -- gradients no evaluate synced (the caller's backward)
  local bad = self._bad
  if not (fresh and self._checked) then
    self._gnorm_sq = nil
    local g = self:_check_grads(who, nil)
    if g and not bad then bad = self:_nonfinite(who, g) end
  end
  self._bad, self._checked = nil, nil
  if bad then
    self.skipped = self.skipped + 1
    return false
  end
  self:_clip(who)
  local t = self.t + 1
  self._taking = t                      -- (reset by the next evaluate/apply if this raises)
  for g = 1, #self.groups + 1 do
    local v = self:_values(who, t, g)
    if self.hs then self._fill(self.hs[g - 1], v, self, g, t) end
  end
  self._taking = nil
  self:_check_live(who)                 -- hyper-parameter functions are user code too
  -- cls:_update(hs, t) runs the fused step and returns the runtime's status; on failure
  -- (Ctrl-C included) nothing was updated.
  if self:_update(self.hs, t) ~= 0 then fail(who) end
  self.t = t
  self._gnorm_sq = nil
  return true
end

function Optimizer:step(closure)
  local who = self.__name .. '.step'
  self:_bound(who)
  if closure == nil then
    self:_apply(who, false)
    return nil
  end
  if type(closure) ~= 'function' then
    check.fail('%s: closure is %s, expected a function that runs forward and backward and returns the loss (or no argument, to apply the gradients already computed)',
               who, check.describe(closure))
  end
  local loss = self:_evaluate(who, closure)
  self:_apply(who, true)
  return loss
end

-- state() / load_state(s): optim/state.lua (nested for wrappers, checked on load).
function Optimizer:state() return state_io.save(self, self.__name .. '.state') end
function Optimizer:load_state(s) return state_io.load(self, self.__name .. '.load_state', s) end

-- Errors raised below a public method are named after it (check.methods).
check.methods(Optimizer)

return Optimizer
