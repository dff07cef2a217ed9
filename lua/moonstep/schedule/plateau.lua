-- schedule.reduce_on_plateau — PyTorch ReduceLROnPlateau: a value cut by `factor` when a
-- metric stops improving. It is fed, not a function of t:
--
--   local s = schedule.reduce_on_plateau{init = 0.1, mode = 'min', factor = 0.1,
--       patience = 10, threshold = 1e-4, threshold_mode = 'rel', cooldown = 0,
--       min_lr = 0, eps = 1e-8}
--   ... each epoch: s:observe(val_loss)   -> the value in force after this observation
--   s(t) / s:value(t) / s:get()            the current value (t is ignored)
--   s:state() / s:load_state(st)           value, best, bad-epoch and cooldown counters
--
-- observe(metric), exactly as PyTorch's step(metrics):
--   better: mode 'min', 'rel': metric < best (1 - threshold);  'abs': metric < best - threshold
--           mode 'max', 'rel': metric > best (1 + threshold);  'abs': metric > best + threshold
--   (best starts at +inf for 'min', -inf for 'max'; a nan metric is never better)
--   better -> best = metric, bad = 0; else bad = bad + 1
--   in cooldown (counter > 0) -> counter - 1, bad = 0
--   bad > patience -> value = max(value factor, min_lr) if that lowers it by more than
--                     eps; counter = cooldown; bad = 0
-- factor in [0, 1); patience, cooldown: integers >= 0; threshold, min_lr, eps >= 0.
local check = require 'moonstep.check'
local Schedule = require 'moonstep.schedule.base'
local huge, max = math.huge, math.max

local Plateau = Schedule.class('reduce_on_plateau')
local FIELDS = { 'init', 'mode', 'factor', 'patience', 'threshold', 'threshold_mode', 'cooldown',
                 'min_lr', 'eps' }
-- The mutable part (state()).
local STATE = { 'current', 'best', 'num_bad_epochs', 'cooldown_counter', 'epochs' }

function Plateau:_at() return self.current end

-- The value in force now.
function Plateau:get() return self.current end

function Plateau:_better(a)
  local best, th = self.best, self.threshold
  if self.mode == 'min' then
    if self.threshold_mode == 'rel' then return a < best * (1 - th) end
    return a < best - th
  end
  if self.threshold_mode == 'rel' then return a > best * (th + 1) end
  return a > best + th
end

function Plateau:observe(metric)
  if type(metric) ~= 'number' then
    check.fail('schedule.reduce_on_plateau.observe: metric is %s, expected a number',
               check.describe(metric))
  end
  self.epochs = self.epochs + 1
  if self:_better(metric) then
    self.best = metric
    self.num_bad_epochs = 0
  else
    self.num_bad_epochs = self.num_bad_epochs + 1
  end
  if self.cooldown_counter > 0 then
    self.cooldown_counter = self.cooldown_counter - 1
    self.num_bad_epochs = 0
  end
  if self.num_bad_epochs > self.patience then
    local old = self.current
    local new = max(old * self.factor, self.min_lr)
    if old - new > self.eps then self.current = new end
    self.cooldown_counter = self.cooldown
    self.num_bad_epochs = 0
  end
  return self.current
end

function Plateau:_save(st)
  for _, k in ipairs(STATE) do st[k] = self[k] end
end

function Plateau:_load(st, fname)
  for _, k in ipairs(STATE) do
    if type(st[k]) ~= 'number' then
      check.fail('%s: the state\'s %s is %s, expected a number', fname, k, check.describe(st[k]))
    end
  end
  for _, k in ipairs(STATE) do self[k] = st[k] end
end

function Plateau:_span() return 100 end

return function(opts)
  local fn = 'schedule.reduce_on_plateau'
  opts = check.options(fn, opts, FIELDS)
  local mode = check.oneof(fn, 'mode', opts.mode or 'min', { 'min', 'max' })
  local factor = opts.factor == nil and 0.1 or opts.factor
  if type(factor) ~= 'number' or not (factor >= 0 and factor < 1) then
    check.fail('%s: factor is %s, expected a number in [0, 1)', fn, check.describe(factor))
  end
  local s = Schedule.new(Plateau, FIELDS, {
    init = check.number(fn, 'init', opts.init == nil and 1 or opts.init),
    mode = mode,
    factor = factor,
    patience = check.integer(fn, 'patience', opts.patience == nil and 10 or opts.patience, 0),
    threshold = check.number(fn, 'threshold', opts.threshold == nil and 1e-4 or opts.threshold, 0),
    threshold_mode = check.oneof(fn, 'threshold_mode', opts.threshold_mode or 'rel', { 'rel', 'abs' }),
    cooldown = check.integer(fn, 'cooldown', opts.cooldown or 0, 0),
    min_lr = check.number(fn, 'min_lr', opts.min_lr or 0, 0),
    eps = check.number(fn, 'eps', opts.eps == nil and 1e-8 or opts.eps, 0),
  })
  s.current, s.best = s.init, mode == 'min' and huge or -huge
  s.num_bad_epochs, s.cooldown_counter, s.epochs = 0, 0, 0
  return s
end
