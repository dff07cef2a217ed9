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

-- The parameter arena behind whatever the caller passed.
function Optimizer.arena_of(target, who)
  if type(target) == 'table' and not check.is_tensor(target) then
    if target.arena and target.forward then return target:arena() end   -- a Module
    if target.flat_parameters and target.gflat then return target end   -- a ParamSet
    if ms.is_tensor(target[1]) then return params.params(target) end    -- a list of tensors
  end
  check.fail('%s: the first argument is %s, expected a model, an ms.params set or a list of tensors',
             who, check.describe(target))
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
  setmetatable(cls, { __index = Optimizer, __call = function(c, target, config) return c.new(target, config) end })
  function cls.new(target, config)
    config = check.options(name, config, accepted)
    local self = setmetatable({}, cls)
    for k, v in pairs(defaults) do   -- a copy of table defaults (betas): never shared
      self[k] = type(v) == 'table' and { unpack(v) } or v
    end
    for k, v in pairs(config) do self[k] = v end
    self.on_nonfinite = check.oneof(name, 'on_nonfinite', config.on_nonfinite or 'error',
                                    { 'error', 'skip' })
    self:check_config(name)
    self.arena = Optimizer.arena_of(target, name)
    self.t, self.skipped = 0, 0
    if self.init then self:init() end
    return self
  end
  return cls
end

-- Check every hyper-parameter that is a value (functions are checked when read), then
-- the rules that tie several together (cls:check_values, given the values).
function Optimizer:check_config(who)
  local values = {}
  for k in pairs(self.defaults) do
    local v = self[k]
    if type(v) ~= 'function' then self.rules[k](who, k, v) end
    values[k] = v
  end
  if self.check_values then self:check_values(who, values) end
end

-- The value of hyper-parameter k at step t (default: the current step), checked.
function Optimizer:hyper(k, t)
  t = t or self.t
  local v, name = self[k], k
  if type(v) == 'function' then
    v = v(t)
    name = ('%s (the value of its function at step %d)'):format(k, t)
  end
  self.rules[k](self.__name .. '.step', name, v)
  return v
end

-- Every hyper-parameter at step t: a table k -> value, each checked.
function Optimizer:hypers(t)
  local h = {}
  for k in pairs(self.defaults) do h[k] = self:hyper(k, t) end
  if self.check_values then self:check_values(self.__name .. '.step', h) end
  return h
end

local function finite(x) return x == x and x ~= huge and x ~= -huge end

function Optimizer:step(closure)
  local who = self.__name .. '.step'
  if type(closure) ~= 'function' then
    check.fail('%s: closure is %s, expected a function that runs forward and backward and returns the loss',
               who, check.describe(closure))
  end
  self.arena:zero_grad()
  local loss = closure()
  if type(loss) ~= 'number' then
    check.fail('%s: the closure returned %s, expected the loss as a number', who, check.describe(loss))
  end
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
  -- cls:update(h, t) runs the fused step with the checked hyper-parameters h of step t
  -- and returns the runtime's status; on failure (Ctrl-C included) nothing was updated.
  local t = self.t + 1
  if self:update(self:hypers(t), t) ~= 0 then fail(who) end
  self.t = t
  return loss
end

-- Plain-table state: step count, hyper-parameters that are numbers, buffers (clones).
function Optimizer:state()
  local s = { t = self.t, skipped = self.skipped, hyper = {}, buffers = {} }
  for k in pairs(self.defaults) do
    if type(self[k]) ~= 'function' then s.hyper[k] = self[k] end
  end
  for k, b in pairs(self.buffers or {}) do s.buffers[k] = b:clone() end
  return s
end

function Optimizer:load_state(s)
  local who = self.__name .. '.load_state'
  if type(s) ~= 'table' or type(s.t) ~= 'number' then
    check.fail('%s: state is %s, expected a table from state()', who, check.describe(s))
  end
  check.integer(who, 'state.t', s.t, 0)
  for k, v in pairs(s.hyper or {}) do
    if self.defaults[k] == nil then
      check.fail('%s: the state holds hyper-parameter %s, which %s does not have (a state from another optimizer?)',
                 who, check.describe(k), self.__name)
    end
    self.rules[k](who, k, v)
  end
  for k, b in pairs(s.buffers or {}) do
    local mine = self.buffers and self.buffers[k]
    if not mine or not ms.is_tensor(b) or b:numel() ~= mine:numel() then
      check.fail('%s: buffer %s is %s, expected %d elements', who, check.describe(k),
                 check.describe(b), mine and mine:numel() or 0)
    end
  end
  self.t, self.skipped = s.t, s.skipped or 0
  for k, v in pairs(s.hyper or {}) do self[k] = v end
  for k, b in pairs(s.buffers or {}) do self.buffers[k]:copy_(b) end
  return self
end

return Optimizer
