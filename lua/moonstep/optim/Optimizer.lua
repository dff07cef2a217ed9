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
-- A non-finite loss raises an error naming it and leaves the parameters untouched;
-- config.on_nonfinite = 'skip' skips the step instead (opt.skipped counts them).
local ms = require 'moonstep'
local params = require 'moonstep.params'

local Optimizer = {}
Optimizer.__index = Optimizer

-- The parameter arena behind whatever the caller passed.
function Optimizer.arena_of(target, who)
  if type(target) == 'table' then
    if target.arena and target.forward then return target:arena() end   -- a Module
    if target.flat_parameters and target.gflat then return target end   -- a ParamSet
    if ms.is_tensor(target[1]) then return params.params(target) end    -- a list of tensors
  end
  error(who .. ': expected a model, an ms.params set or a list of tensors as the first argument', 4)
end

-- cls: the optimizer class; defaults: its hyper-parameters with default values.
function Optimizer.define(name, defaults)
  local cls = { __name = name, defaults = defaults }
  cls.__index = cls
  setmetatable(cls, { __index = Optimizer, __call = function(c, target, config) return c.new(target, config) end })
  function cls.new(target, config)
    local self = setmetatable({}, cls)
    config = config or {}
    for k, v in pairs(defaults) do self[k] = v end
    for k, v in pairs(config) do
      if defaults[k] == nil and k ~= 'on_nonfinite' then
        error(('%s: unknown option %q'):format(name, tostring(k)), 3)
      end
      self[k] = v
    end
    self.arena = Optimizer.arena_of(target, name)
    self.t, self.skipped = 0, 0
    if self.init then self:init() end
    return self
  end
  return cls
end

-- The value of hyper-parameter k at the current step.
function Optimizer:hyper(k)
  local v = self[k]
  if type(v) == 'function' then v = v(self.t) end
  if type(v) ~= 'number' then
    error(('%s: hyper-parameter %s is %s, expected a number or a function of the step'):format(
      self.__name, k, tostring(v)), 3)
  end
  return v
end

function Optimizer:step(closure)
  if type(closure) ~= 'function' then
    error(self.__name .. '.step: expected a closure that runs forward and backward and returns the loss', 2)
  end
  self.arena:zero_grad()
  local loss = closure()
  if type(loss) ~= 'number' then
    error(('%s.step: the closure returned %s, expected the loss as a number'):format(self.__name, type(loss)), 2)
  end
  if loss ~= loss or loss == math.huge or loss == -math.huge then
    if self.on_nonfinite == 'skip' then
      self.skipped = self.skipped + 1
      return loss
    end
    error(('%s.step: the loss is %s; parameters left unchanged (set on_nonfinite = \'skip\' to skip such steps)'):format(
      self.__name, tostring(loss)), 2)
  end
  self.t = self.t + 1
  self:update()
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
  if type(s) ~= 'table' or type(s.t) ~= 'number' then
    error(self.__name .. '.load_state: expected a table from state()', 2)
  end
  self.t, self.skipped = s.t, s.skipped or 0
  for k, v in pairs(s.hyper or {}) do self[k] = v end
  for k, b in pairs(s.buffers or {}) do
    local mine = self.buffers and self.buffers[k]
    if not mine or mine:numel() ~= b:numel() then
      error(('%s.load_state: buffer %q has %d elements, expected %d'):format(self.__name, k,
        b:numel(), mine and mine:numel() or 0), 2)
    end
    mine:copy_(b)
  end
  return self
end

return Optimizer
