-- schedule.step, schedule.multistep, schedule.exponential — PyTorch's StepLR,
-- MultiStepLR and ExponentialLR as functions of the 1-based step t (k = t - 1 steps
-- done, PyTorch's last_epoch).
--
--   schedule.step{init = 1, step_size = N, gamma = 0.1}
--       s(t) = init * gamma ^ floor((t - 1) / step_size)      (changes after every N steps)
--   schedule.multistep{init = 1, milestones = {30, 80}, gamma = 0.1}
--       s(t) = init * gamma ^ #{m in milestones : m <= t - 1}  (a milestone m: the value
--       changes after m steps, from step m + 1 on; a repeated milestone counts twice,
--       as in PyTorch)
--   schedule.exponential{init = 1, gamma}
--       s(t) = init * gamma ^ (t - 1)
-- init: any finite number (the value at step 1); gamma: a finite number >= 0.
local check = require 'moonstep.check'
local Schedule = require 'moonstep.schedule.base'
local floor = math.floor

local M = {}

local Step = Schedule.class('step')
local STEP = { 'init', 'step_size', 'gamma' }
function Step:_at(t) return self.init * self.gamma ^ floor((t - 1) / self.step_size) end
function Step:_span() return 3 * self.step_size end

function M.step(opts)
  local fn = 'schedule.step'
  opts = check.options(fn, opts, STEP)
  if opts.step_size == nil then check.fail('%s: step_size is required (steps between decays)', fn) end
  return Schedule.new(Step, STEP, {
    init = check.number(fn, 'init', opts.init == nil and 1 or opts.init),
    step_size = check.integer(fn, 'step_size', opts.step_size, 1),
    gamma = check.number(fn, 'gamma', opts.gamma == nil and 0.1 or opts.gamma, 0),
  })
end

local MultiStep = Schedule.class('multistep')
local MULTI = { 'init', 'milestones', 'gamma' }
function MultiStep:_at(t)
  local done, n = t - 1, 0
  for _, m in ipairs(self.milestones) do if m <= done then n = n + 1 end end
  return self.init * self.gamma ^ n
end
function MultiStep:_span()
  local last = 0
  for _, m in ipairs(self.milestones) do if m > last then last = m end end
  return floor(last * 1.25) + 1
end

function M.multistep(opts)
  local fn = 'schedule.multistep'
  opts = check.options(fn, opts, MULTI)
  local ms = opts.milestones
  if type(ms) ~= 'table' or check.is_tensor(ms) or #ms == 0 then
    check.fail('%s: milestones is %s, expected a non-empty list of step counts', fn, check.describe(ms))
  end
  local sorted = {}
  for i = 1, #ms do sorted[i] = check.integer(fn, ('milestones[%d]'):format(i), ms[i], 1) end
  table.sort(sorted)
  return Schedule.new(MultiStep, MULTI, {
    init = check.number(fn, 'init', opts.init == nil and 1 or opts.init),
    milestones = sorted,
    gamma = check.number(fn, 'gamma', opts.gamma == nil and 0.1 or opts.gamma, 0),
  })
end

local Exponential = Schedule.class('exponential')
local EXP = { 'init', 'gamma' }
function Exponential:_at(t) return self.init * self.gamma ^ (t - 1) end

function M.exponential(opts)
  local fn = 'schedule.exponential'
  opts = check.options(fn, opts, EXP)
  if opts.gamma == nil then check.fail('%s: gamma is required (the factor per step)', fn) end
  return Schedule.new(Exponential, EXP, {
    init = check.number(fn, 'init', opts.init == nil and 1 or opts.init),
    gamma = check.number(fn, 'gamma', opts.gamma, 0),
  })
end

return M
