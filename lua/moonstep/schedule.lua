-- moonstep.schedule (ms.schedule) — learning-rate (and any hyper-parameter) schedules.
--
--   local schedule = ms.schedule
--   local s = schedule.warmup{steps = 500, schedule = schedule.cosine{init = 3e-4, T_max = 10000}}
--   s(1), s(500), s:value(t)              the value at the 1-based step t
--   opt.lr = s                            an optimizer reads opt.lr at each step t
--   s:plot('lr.png', {steps = 11000})     gnuplot, PNG or SVG by the extension
--
-- THE STEP CONVENTION: t counts optimizer steps from 1; step 1 is the first update, so
-- s(1) is the initial value. PyTorch's value after k scheduler.step() calls is s(k + 1),
-- optax's value at count c is s(c + 1). Boundaries, milestones and step sizes are counts
-- of steps done: multistep{milestones = {30}} changes from step 31 on, as PyTorch's does
-- after 30 scheduler steps.
--
-- A schedule is plain data (its parameters are fields: s.T_max, s.gamma) and callable;
-- any plain Lua function of t is accepted wherever a schedule is (join, warmup, plot, an
-- optimizer's hyper-parameter). Constructors take one options table; unknown options are
-- errors. `init` (default 1) is the value at step 1 where a schedule has one, so without
-- it a schedule is a factor.
--
--   constant(v)                     v
--   step{init, step_size, gamma}    PyTorch StepLR         multistep{init, milestones, gamma}
--   exponential{init, gamma}        ExponentialLR          cosine{init, T_max | T_0, T_mult, eta_min}
--   linear{init, final, steps}      LinearLR               polynomial{init, final, steps, power}
--   warmup{schedule, steps, init}   linear warm-up into a schedule
--   one_cycle{max_lr, total_steps, pct_start, anneal_strategy, div_factor, final_div_factor, three_phase}
--   one_cycle_momentum{total_steps, pct_start, anneal_strategy, three_phase, base_momentum, max_momentum}
--                                   PyTorch OneCycleLR (its lr, and its cycled momentum / beta1)
--   join{schedules, boundaries}     optax join_schedules (also `sequential`)
--   reduce_on_plateau{init, mode, factor, patience, threshold, threshold_mode, cooldown, min_lr, eps}
--                                   fed: s:observe(metric) after each epoch; s(t) = current value
--   window{rcm, inseq, x, n, m, tau, spe, cfact, e, compat}   AutoSGM's F_t (window.lua)
--   lambda(f)                       a function of t as a schedule object (for :plot, tostring)
--   plot(s, path, opts)             as s:plot, for any schedule or function
--   is_schedule(v), value(s, t)     v a schedule object?; s(t) for a number, function or schedule
-- Every schedule has s:state() / s:load_state(st) (plain tables; reduce_on_plateau has a
-- state of its own, join and warmup nest their parts').
local check = require 'moonstep.check'
local Schedule = require 'moonstep.schedule.base'
local decay = require 'moonstep.schedule.decay'
local poly = require 'moonstep.schedule.polynomial'
local join = require 'moonstep.schedule.join'
local one_cycle = require 'moonstep.schedule.one_cycle'
local plot = require 'moonstep.schedule.plot'

local Lambda = Schedule.class('lambda')
local LAMBDA = { 'fn' }
function Lambda:_at(t) return self.fn(t) end

local M = {
  Schedule = Schedule,
  constant = require 'moonstep.schedule.constant',
  step = decay.step,
  multistep = decay.multistep,
  exponential = decay.exponential,
  cosine = require 'moonstep.schedule.cosine',
  linear = poly.linear,
  polynomial = poly.polynomial,
  warmup = require 'moonstep.schedule.warmup',
  one_cycle = one_cycle.one_cycle,
  one_cycle_momentum = one_cycle.one_cycle_momentum,
  join = join.join,
  sequential = join.sequential,
  reduce_on_plateau = require 'moonstep.schedule.plateau',
  window = require 'moonstep.schedule.window',
  is_schedule = Schedule.is,
}

function M.lambda(f)
  if type(f) ~= 'function' then
    check.fail('schedule.lambda: f is %s, expected a function of the step t', check.describe(f))
  end
  return Schedule.new(Lambda, LAMBDA, { fn = f })
end

function M.plot(s, path, opts) return plot.plot(s, path, opts, 'schedule.plot') end

function M.value(s, t)
  if type(s) == 'number' then return s end
  Schedule.callable('schedule.value', 's', s)
  return s(Schedule.check_t('schedule.value', t))
end

return check.strict(M, 'ms.schedule')
