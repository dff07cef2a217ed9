-- adam_drift.lua — how far float32 Adam drifts from a float64 reference.
--
--   bin/moonstep scripts/adam_drift.lua [steps [n [lr]]]     (defaults 1000 1000 0.01)
--   /usr/bin/python3 scripts/adam_drift_torch.py [steps [n [lr]]]   the same for PyTorch
--
-- A deterministic problem, identical in both scripts: n parameters w (start 0),
-- gradient g_i = a_i (w_i - c_i) + s_i(t) with a_i = 1 + (i mod 7) / 3, c_i = sin(i),
-- s_i(t) = 0.1 sin(0.37 i + 0.11 t) (1-based i and step t), computed in the run's dtype.
-- The same Adam run in float32 and in float64; prints the largest |w32 - w64| over all
-- parameters at the end (also relative to max |w64|) and over the whole run, for Adam and
-- AdamW (weight_decay 0.01).
--
-- Measured with the defaults (final max|w32 - w64|):      Adam       AdamW
--   moonstep before issue 6 (1 - beta etc. in float32)  6.000e-06  6.050e-06
--   moonstep now (constants in double, torch's rounding) 7.501e-07  8.217e-07
--   PyTorch 1.13 float32                                 7.501e-07  8.217e-07
local ms = require 'moonstep'

local steps = tonumber(arg and arg[1]) or 1000
local n = tonumber(arg and arg[2]) or 1000
local lr = tonumber(arg and arg[3]) or 0.01

-- The problem's constants in Lua doubles, then rounded to the run's dtype.
local function column(dtype, f)
  local v = {}
  for i = 1, n do v[i] = f(i) end
  return ms.tensor(v, dtype)
end

local function run(dtype, make)
  local a = column(dtype, function(i) return 1 + (i % 7) / 3 end)
  local c = column(dtype, function(i) return math.sin(i) end)
  local w = ms.zeros(n, { dtype = dtype })
  local set = ms.params { w }
  local opt = make(set)
  local traj = {}
  for t = 1, steps do
    local s = column(dtype, function(i) return 0.1 * math.sin(0.37 * i + 0.11 * t) end)
    opt:step(function()
      set.grads[1]:copy_((w - c) * a + s)
      return 0
    end)
    traj[t] = w:to('float64'):clone()
  end
  return traj
end

for _, case in ipairs {
  { 'Adam', function(s) return ms.optim.Adam(s, { lr = lr }) end },
  { 'AdamW', function(s) return ms.optim.AdamW(s, { lr = lr, weight_decay = 0.01 }) end },
} do
  local t32, t64 = run('float32', case[2]), run('float64', case[2])
  local worst = 0
  for t = 1, steps do worst = math.max(worst, (t32[t] - t64[t]):abs():max()) end
  local final = (t32[steps] - t64[steps]):abs():max()
  local scale = t64[steps]:abs():max()
  print(('moonstep %-5s float32 vs float64, %d steps, n %d, lr %g: final max|dw| %.3e (relative %.3e), worst over the run %.3e'):format(
    case[1], steps, n, lr, final, final / scale, worst))
end
