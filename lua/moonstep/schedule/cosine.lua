-- schedule.cosine — cosine annealing (PyTorch CosineAnnealingLR), optionally with warm
-- restarts (PyTorch CosineAnnealingWarmRestarts). k = t - 1 is the count of steps done.
--
--   schedule.cosine{init = 1, T_max = N, eta_min = 0}
--       s(t) = eta_min + (init - eta_min) (1 + cos(pi k / T_max)) / 2   for k <= T_max,
--       then eta_min (held: PyTorch's CosineAnnealingLR would climb back up after T_max;
--       use T_0 for a periodic schedule)
--   schedule.cosine{init = 1, T_0 = N, T_mult = 1, eta_min = 0}
--       warm restarts: cycles of T_0, T_0 T_mult, T_0 T_mult^2, ... steps; within a cycle
--       of length T_i, after T_cur of its steps: eta_min + (init - eta_min)(1 + cos(pi T_cur / T_i)) / 2
-- T_max, T_0: integers >= 1; T_mult: an integer >= 1; exactly one of T_max and T_0.
local check = require 'moonstep.check'
local Schedule = require 'moonstep.schedule.base'
local cos, pi = math.cos, math.pi

local Cosine = Schedule.class('cosine')
local FIELDS = { 'init', 'T_max', 'T_0', 'T_mult', 'eta_min' }

-- (T_cur, T_i) after k steps of warm restarts, by integer arithmetic (PyTorch's
-- float log for T_mult > 1 can land on the wrong side of a restart).
local function restart_position(k, T_0, T_mult)
  if T_mult == 1 then return k % T_0, T_0 end
  local Ti = T_0
  while k >= Ti do k = k - Ti; Ti = Ti * T_mult end
  return k, Ti
end
Cosine.restart_position = restart_position

function Cosine:_at(t)
  local k, T
  if self.T_0 then
    k, T = restart_position(t - 1, self.T_0, self.T_mult)
  else
    k, T = t - 1, self.T_max
    if k >= T then return self.eta_min end
  end
  return self.eta_min + (self.init - self.eta_min) * (1 + cos(pi * k / T)) / 2
end

function Cosine:_span()
  if self.T_max then return self.T_max + 1 end
  return self.T_0 * (1 + self.T_mult + self.T_mult ^ 2)
end

return function(opts)
  local fn = 'schedule.cosine'
  opts = check.options(fn, opts, FIELDS)
  local v = {
    init = check.number(fn, 'init', opts.init == nil and 1 or opts.init),
    eta_min = check.number(fn, 'eta_min', opts.eta_min or 0),
  }
  if (opts.T_max == nil) == (opts.T_0 == nil) then
    check.fail('%s: give exactly one of T_max (one annealing over T_max steps) and T_0 '
               .. '(warm restarts every T_0 steps)', fn)
  end
  if opts.T_max ~= nil then
    if opts.T_mult ~= nil then check.fail('%s: T_mult goes with T_0 (warm restarts), not T_max', fn) end
    v.T_max = check.integer(fn, 'T_max', opts.T_max, 1)
  else
    v.T_0 = check.integer(fn, 'T_0', opts.T_0, 1)
    v.T_mult = check.integer(fn, 'T_mult', opts.T_mult or 1, 1)
  end
  return Schedule.new(Cosine, FIELDS, v)
end
