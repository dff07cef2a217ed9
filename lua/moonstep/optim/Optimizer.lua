-- optim.Optimizer — what every optimizer shares.
--
--   opt = optim.X(model_or_params, config)   a Module, an ms.params set, or a list of tensors
--   loss = opt:step(closure)                 zeroes the gradients, calls closure() (forward +
--                                            backward, returns the loss), updates in one
--                                            fused pass over the arena
--   opt.lr = 0.01                            hyper-parameters are plain fields; any may be a
--   opt.lr = function(step) ... end          function of the step (1-based) instead
--   s = opt:state(); opt:load_state(s)       a plain table (numbers and tensors)
--
-- Every hyper-parameter has a rule (its range); a value is checked when the optimizer
-- is built and again each time a step reads it, so a function of the step is checked
-- at the step it returns a bad value. Unknown options are errors (check.options).
--
-- A non-finite loss, or a finite loss with non-finite gradients, raises an error naming
-- it and leaves the parameters untouched; config.on_nonfinite = 'skip' skips the step
-- instead (opt.skipped counts them).
local ms = require 'moonstep'
local params = require 'moonstep.params'
local check = require 'moonstep.check'
local fail = require('moonstep.core').fail

local Optimizer = {}
Optimizer.__index = Optimizer
Optimizer.__name, Optimizer.__var = 'Optimizer', 'opt'

local huge = math.huge

-- Rules: rule(who, name, v) raises unless v is acceptable for a hyper-parameter.
Optimizer.rules = {}
function Optimizer.rules.nonnegative(who, name, v) check.number(who, name, v, 0) end
function Optimizer.rules.unit(who, name, v) check.number(who, name, v, 0, 1) end
function Optimizer.rules.boolean(who, name, v) check.boolean(who, name, v) end
function Optimizer.rules.positive(who, name, v)
  if type(v) ~= 'number' or not (v > 0 and v < huge) then
    check.fail('%s: %s is %s, expected a finite number > 0', who, name, check.describe(v))
  end
end
-- A pair {beta1, beta2}, each in [0, 1).
function Optimizer.rules.betas(who, name, v)
  if type(v) ~= 'table' or check.is_tensor(v) or #v ~= 2 then
    check.fail('%s: %s is %s, expected a table {beta1, beta2}', who, name, check.describe(v))
  end
  for i = 1, 2 do
    local b = v[i]
    if type(b) ~= 'number' or not (b >= 0 and b < 1) then
      check.fail('%s: %s[%d] is %s, expected a number in [0, 1)', who, name, i, check.describe(b))
    end
  end
end

-- The parameter arena behind whatever the caller passed. Fields are probed with
-- check.field: a value such as the `ms` table itself (whose __index is strict) must not
-- raise that table's error instead of ours.
local field = check.field

function Optimizer.arena_of(target, who)
  if type(target) == 'table' and not check.is_tensor(target) then
    if field(target, 'arena') and field(target, 'forward') and type(rawget(target, '_params')) == 'table' then
      -- a Module (not its class); moonstep's modules name the optimizer in an error
      if field(target, '_get_arena') then return target:_get_arena(who) end
      return target:arena()
    end
    if field(target, 'flat_parameters') and rawget(target, 'gflat') then return target end   -- a ParamSet
    if ms.is_tensor(rawget(target, 1)) then return params.params(target) end    -- a list of tensors
  end
  check.fail('%s: the first argument is %s, expected a model, an ms.params set or a list of tensors',
             who, check.describe(target))
end

-- Private helpers (local functions, not methods: a user cannot reach them as opt:x()).
-- An optimizer class provides cls:_update(h, t), the fused step, and may provide
-- cls:_init() (buffers) and cls:_check_values(who, values) (rules that tie several
-- hyper-parameters together).

-- Check every hyper-parameter that is a value (functions are checked when read), then
-- the rules that tie several together (cls:_check_values, given the values).
local function check_config(self, who)
  local values = {}
  for k in pairs(self.defaults) do
    local v = self[k]
    if type(v) ~= 'function' then self.rules[k](who, k, v) end
    values[k] = v
  end
  if self._check_values then self:_check_values(who, values) end
end

-- The value of hyper-parameter k at step t, checked (who: the public method).
local function hyper(self, who, k, t)
  local v, name = self[k], k
  if type(v) == 'function' then
    v = v(t)
    name = ('%s (the value of its function at step %s)'):format(k, check.describe(t))
  end
  self.rules[k](who, name, v)
  return v
end

-- Every hyper-parameter at step t: a table k -> value, each checked.
-- Also returns whether any was a function (user code, which may free tensors).
local function hypers(self, who, t)
  local h, called = {}, false
  for k in pairs(self.defaults) do
    called = called or type(self[k]) == 'function'
    h[k] = hyper(self, who, k, t)
  end
  if self._check_values then self:_check_values(who, h) end
  return h, called
end

-- cls: the optimizer class. defaults: its hyper-parameters with default values;
-- rules: for each of them, a rule (a function or the name of one of Optimizer.rules).
function Optimizer.define(name, defaults, rules)
  local cls = { __name = name, defaults = defaults, rules = {} }
  local accepted = { 'on_nonfinite' }
  for k in pairs(defaults) do
    local rule = rules[k]
    cls.rules[k] = type(rule) == 'string' and Optimizer.rules[rule] or rule
    assert(type(cls.rules[k]) == 'function', name .. ': no rule for hyper-parameter ' .. k)
    accepted[#accepted + 1] = k
  end
  cls.__index = cls
  cls.__call = function()               -- opt(closure): a mistake for opt:step(closure)
    check.fail('%s: an optimizer is not callable; use opt:step(closure)', name)
  end
  setmetatable(cls, { __index = Optimizer, __call = function(c, target, config) return c.new(target, config) end })
  check.methods(cls)                    -- methods it defines are guarded and named
  function cls.new(target, config)
    config = check.options(name, config, accepted)
    local self = setmetatable({}, cls)
    for k, v in pairs(defaults) do   -- a copy of table defaults (betas): never shared
      self[k] = type(v) == 'table' and { unpack(v) } or v
    end
    for k, v in pairs(config) do self[k] = v end
    self.on_nonfinite = check.oneof(name, 'on_nonfinite', config.on_nonfinite or 'error',
                                    { 'error', 'skip' })
    check_config(self, name)
    self.arena = Optimizer.arena_of(target, name)
    self.t, self.skipped = 0, 0
    if self._init then self:_init() end
    return self
  end
  return cls
end

local function finite(x) return x == x and x ~= huge and x ~= -huge end

-- Every tensor a step touches must be live: the parameter and gradient arenas and the
-- state buffers (a closure, a hyper-parameter function or the user may have freed one).
local function check_live(self, who)
  check.tensor(who, 'the parameter arena (flat_parameters())', self.arena.flat)
  check.tensor(who, 'the gradient arena (flat_gradients())', self.arena.gflat)
  local entries = rawget(self.arena, 'entries') or {}
  for i, p in ipairs(rawget(self.arena, 'params') or {}) do
    if check.is_freed(p) then
      check.tensor(who, 'parameter ' .. tostring(entries[i] and entries[i].name or i), p)
    end
  end
  for k, b in pairs(self.buffers or {}) do check.tensor(who, 'state buffer ' .. k, b) end
end

-- The step count is a plain field a user may overwrite: an integer a double and an
-- int64 share (the runtime takes it as int64).
local function check_count(self, who)
  check.integer(who, 'the step count (opt.t)', rawget(self, 't'), 0, 2 ^ 53 - 1)
  check.integer(who, 'the skipped-step count (opt.skipped)', rawget(self, 'skipped'), 0, 2 ^ 53 - 1)
end

function Optimizer:step(closure)
  local who = self.__name .. '.step'
  if type(closure) ~= 'function' then
    check.fail('%s: closure is %s, expected a function that runs forward and backward and returns the loss',
               who, check.describe(closure))
  end
  check_count(self, who)
  check_live(self, who)
  self.arena:zero_grad()
  local loss = closure()
  if type(loss) ~= 'number' then
    check.fail('%s: the closure returned %s, expected the loss as a number', who, check.describe(loss))
  end
  check_live(self, who)                 -- the closure is user code
  check_count(self, who)
  local bad
  if not finite(loss) then
    bad = ('the loss is %s'):format(check.describe(loss))
  elseif not finite(self.arena.gflat:sum()) then
    -- One fused reduction over the whole gradient arena, accumulated in double: finite
    -- float gradients cannot overflow it, so a non-finite sum means a nan or an inf.
    bad = ('the loss is %s but the gradients hold non-finite values (nan or inf)'):format(
      check.describe(loss))
  end
  if bad then
    if self.on_nonfinite == 'skip' then
      self.skipped = self.skipped + 1
      return loss
    end
    check.fail("%s: %s; parameters left unchanged (set on_nonfinite = 'skip' to skip such steps)",
               who, bad)
  end
  -- cls:_update(h, t) runs the fused step with the checked hyper-parameters h of step t
  -- and returns the runtime's status; on failure (Ctrl-C included) nothing was updated.
  local t = self.t + 1
  local h, called = hypers(self, who, t)
  if called then check_live(self, who) end   -- hyper-parameter functions are user code too
  if self:_update(h, t) ~= 0 then fail(who) end
  self.t = t
  return loss
end

-- Plain-table state: step count, hyper-parameters that are numbers, buffers (clones).
function Optimizer:state()
  local who = self.__name .. '.state'
  check_count(self, who)
  local s = { t = self.t, skipped = self.skipped, hyper = {}, buffers = {} }
  for k in pairs(self.defaults) do
    if type(self[k]) ~= 'function' then s.hyper[k] = self[k] end
  end
  for k, b in pairs(self.buffers or {}) do
    s.buffers[k] = check.tensor(who, 'state buffer ' .. k, b):clone()
  end
  return s
end

-- A plain table's field, or nil for anything else (a tensor, the ms table...).
local function plain(v)
  if type(v) == 'table' and getmetatable(v) == nil then return v end
end

function Optimizer:load_state(s)
  local who = self.__name .. '.load_state'
  if not plain(s) or type(rawget(s, 't')) ~= 'number' then
    check.fail('%s: state is %s, expected a table from state()', who, check.describe(s))
  end
  check.integer(who, 'state.t', s.t, 0, 2 ^ 53 - 1)
  if s.skipped ~= nil then check.integer(who, 'state.skipped', s.skipped, 0, 2 ^ 53 - 1) end
  for _, f in ipairs { 'hyper', 'buffers' } do
    if s[f] ~= nil and not plain(s[f]) then
      check.fail('%s: state.%s is %s, expected a table', who, f, check.describe(s[f]))
    end
  end
  for k, v in pairs(s.hyper or {}) do
    if type(k) ~= 'string' or self.defaults[k] == nil then
      check.fail('%s: the state holds hyper-parameter %s, which %s does not have (a state from another optimizer?)',
                 who, check.describe(k), self.__name)
    end
    self.rules[k](who, 'state.hyper.' .. k, v)
  end
  if self._check_values then
    local values = {}
    for k in pairs(self.defaults) do values[k] = self[k] end
    for k, v in pairs(s.hyper or {}) do values[k] = v end
    self:_check_values(who, values)
  end
  -- Buffers: each must match one of ours (created here when the optimizer makes it
  -- lazily, cls:_new_buffer(k), but kept only once the whole state is valid).
  local targets = {}
  for k, b in pairs(s.buffers or {}) do
    local mine = self.buffers and self.buffers[k]
    if mine == nil and type(k) == 'string' and self._new_buffer then mine = self:_new_buffer(k) end
    if mine ~= nil then check.tensor(who, 'state buffer ' .. tostring(k) .. ' of the optimizer', mine) end
    if not mine or not ms.is_tensor(b) or check.is_freed(b) or b:numel() ~= mine:numel() then
      check.fail('%s: buffer %s is %s, expected a live tensor of %s elements', who, check.describe(k),
                 check.describe(b), mine and check.describe(mine:numel()) or 'no')
    end
    targets[k] = mine
  end
  self.t, self.skipped = s.t, s.skipped or 0
  for k, v in pairs(s.hyper or {}) do self[k] = v end
  self.buffers = self.buffers or {}
  for k, b in pairs(s.buffers or {}) do
    targets[k]:copy_(b)
    self.buffers[k] = targets[k]
  end
  return self
end

-- Errors raised below a public method are named after it (check.methods).
check.methods(Optimizer)

return Optimizer
