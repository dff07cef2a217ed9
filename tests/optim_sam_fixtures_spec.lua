-- The SAM family against the reference implementations, step by step:
-- tests/fixtures/sam_family.lua (scripts/fixtures/sam_family.py) holds, for every case, the
-- pass-1 loss of each of 20 steps and the flat parameters after each step, from PyTorch
-- running davda54/sam (SAM, ASAM w^2), kozistr's pytorch_optimizer (SAM use_gc, WSAM
-- decoupled / coupled / max_norm, LookSAM per tensor with and without use_gc), the
-- author's GSAM (constant rho, adaptive, rho proportional to a linear lr decay), the
-- official FriendlySAM (nblt/F-SAM), and what the spec describes without a runnable
-- reference here (the official ASAM form, LookSAM with global norms, the official WSAM's
-- clipping of g1): each case's `ref` says which. Each reference is driven as the paper's
-- algorithm (gradients zeroed before every pass; the generator's docstring says how).
-- Problem: Linear(6, 5) -> Tanh -> Linear(5, 3), MSE on a fixed batch of 8, float64 and
-- float32, the same initial parameters. The replay builds that model in moonstep, copies
-- the initial parameters into its arena and steps the optimizer with closure(pass); it
-- checks the parameters and the returned loss after every step, the closure calls of
-- every step (2; LookSAM 2 on steps 1, 1 + k, ... and 1 otherwise), the pass numbers the
-- closure receives and the info table (loss, passes, skipped).
--
-- Tolerances:
--   float64  every parameter within REL64 = 1e-9 relative (|x - y| / max(|y|, 1e-3); the
--            parameters are 0.01 .. 1, the floor keeps an element crossing zero from
--            counting as a large relative error); every pass-1 loss within 1e-9 relative.
--   float32  every parameter within TOL32_FACTOR = 10 times the case's f32_gap, the largest
--            difference between PyTorch's own float32 and float64 trajectories of that case
--            (1e-7 .. 1e-6: float32 rounding of the forward/backward and the norms, grown by
--            20 steps). moonstep rounds differently (its own GEMM order, float64
--            reductions), so its float32 trajectory carries noise of the same size, not the
--            same bits; 10x the reference's own float32 noise still separates the cases
--            (rho 0.1% off moves the trajectories by 5e-5, another option by 1e-2 and more).
--            Losses within 1e-5 relative (a float32 loss: 24 squares rounded to 24 bits).
-- SAM_FX_REPORT=1 prints the measured agreement of every case on stderr.
local ms = require 'moonstep'
local nn = ms.nn
local optim = ms.optim
local fx = require 'fixtures.sam_family'

local REL64, FLOOR64, LOSS64 = 1e-9, 1e-3, 1e-9
local TOL32_FACTOR, LOSS32 = 10, 1e-5
local REPORT = os.getenv('SAM_FX_REPORT')

---------------------------------------------------------------------------------------
-- the fixture's arrays: base64 of little-endian IEEE values
---------------------------------------------------------------------------------------
local decode = require 'fixture_decode'

---------------------------------------------------------------------------------------
-- the problem
---------------------------------------------------------------------------------------
local N, STEPS = fx.n, fx.steps
local NB, NIN, NOUT = fx.batch[1], fx.batch[2], fx.batch[3]

-- The MLP with the fixture's initial parameters, its batch and closure(pass), on `device`
-- (nil: the CPU).
local function problem(dtype, device)
  local pr = fx.problem[dtype]
  local model = nn.Sequential(nn.Linear(NIN, 5), nn.Tanh(), nn.Linear(5, NOUT)):to(dtype)
  local flat = model:flat_parameters()
  assert(flat:numel() == N, 'the model has ' .. flat:numel() .. ' parameters, the fixture ' .. N)
  flat:copy_(ms.tensor(decode(pr.p0, dtype), { dtype = dtype }))
  if device then model:to(device) end
  local x = ms.tensor(decode(pr.x, dtype), { dtype = dtype, device = device }):view { NB, NIN }
  local y = ms.tensor(decode(pr.y, dtype), { dtype = dtype, device = device }):view { NB, NOUT }
  local crit = nn.MSELoss()
  local calls = {}
  local function closure(pass)
    calls[#calls + 1] = pass or 0
    local out = model:forward(x)
    local loss = crit:forward(out, y)
    model:backward(x, crit:backward(out, y))
    return loss
  end
  return model, closure, calls
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = type(v) == 'table' and copy(v) or v end
  return c
end

-- The optimizer of case c over model (base unbound, as a user writes it).
local function make(c, model)
  local bcfg = copy(c.base.config)
  if c.lrs then   -- GSAM with a schedule: the base's lr at step t is the reference's
    local lrs = c.lrs
    bcfg.lr = function(t) return lrs[t] end
  end
  if not c.optim then return optim[c.base.optim](model, bcfg) end
  local cfg = copy(c.config)
  cfg.base = optim[c.base.optim](bcfg)
  return optim[c.optim](model, cfg)
end

-- Replays case `name` in `dtype` on `device` (nil: the CPU). Returns the worst parameter
-- error (relative for float64, absolute for float32), where, the worst loss error
-- (relative), where, and the number of closure calls of each step.
local function replay(name, dtype, device)
  local c = fx.cases[name]
  local run = c[dtype]
  local want, wloss = decode(run.after, dtype), decode(run.loss, dtype)
  local model, closure, calls = problem(dtype, device)
  local opt = make(c, model)
  local flat = model:flat_parameters()
  local worst, at, lworst, lat, per_step = 0, 'nowhere', 0, 'nowhere', {}
  for t = 1, STEPS do
    local before = #calls
    local loss, info = opt:step(closure)
    per_step[t] = #calls - before
    for k = 1, per_step[t] do   -- the closure is told which pass it runs
      assert(calls[before + k] == k,
             ('%s step %d: call %d got pass %s'):format(name, t, k, tostring(calls[before + k])))
    end
    if c.optim then   -- the protocol's info table: the first-pass loss, the closure calls
      assert(type(info) == 'table', name .. ': step returned no info table')
      assert(info.loss == loss, ('%s step %d: info.loss %s, returned loss %s'):format(name, t, info.loss, loss))
      assert(info.passes == per_step[t], ('%s step %d: info.passes %s, closure calls %d'):format(
        name, t, info.passes, per_step[t]))
      assert(info.skipped == false, ('%s step %d: info.skipped is %s'):format(name, t, tostring(info.skipped)))
    end
    local lerr = math.abs(loss - wloss[t]) / math.max(math.abs(wloss[t]), 1e-300)
    if not (lerr <= lworst) then
      lworst, lat = lerr, ('step %d: %.17g, reference %.17g'):format(t, loss, wloss[t])
    end
    local got = (device and flat:to('cpu') or flat):totable()
    for i = 1, N do
      local x, y = got[i], want[(t - 1) * N + i]
      local err = math.abs(x - y)
      if dtype == 'float64' then err = err / math.max(math.abs(y), FLOOR64) end
      if not (err <= worst) then   -- NaN counts as worst
        worst, at = err, ('step %d element %d: %.17g, reference %.17g'):format(t, i, x, y)
        if err ~= err then return math.huge, at, lworst, lat, per_step end
      end
    end
  end
  return worst, at, lworst, lat, per_step
end

local names = {}
for name in pairs(fx.cases) do names[#names + 1] = name end
table.sort(names)

-- Closure calls the algorithm makes at step t (1-based).
local function expected_calls(c, t)
  if not c.optim then return 1 end
  if c.optim == 'LookSAM' then return (t - 1) % c.config.k == 0 and 2 or 1 end
  return 2
end

describe('SAM family against the reference implementations (20 steps, MLP)', function()
  it('the fixture covers every member and both dtypes', function()
    local seen = {}
    for _, name in ipairs(names) do
      local c = fx.cases[name]
      seen[c.optim or 'base'] = true
      for _, dtype in ipairs { 'float64', 'float32' } do
        assert(#decode(c[dtype].after, dtype) == STEPS * N, name)
        assert(#decode(c[dtype].loss, dtype) == STEPS, name)
      end
      assert(c.f32_gap > 0 and c.f32_gap < 1e-5, name)
    end
    for _, o in ipairs { 'base', 'SAM', 'GSAM', 'WSAM', 'LookSAM', 'FriendlySAM' } do
      assert(seen[o], o .. ' has no fixture case')
    end
    assert(STEPS >= 15)
  end)

  -- The CUDA kernels run the same rules: float32 on the GPU within the CPU's tolerance.
  it('every float32 case on the GPU', function()
    if not (ms.cuda and ms.cuda.is_available()) then
      pending('no usable GPU')
      return
    end
    local bad = {}
    for _, name in ipairs(names) do
      local c = fx.cases[name]
      local ok, err, at = pcall(replay, name, 'float32', 'cuda')
      if not ok then
        bad[#bad + 1] = ('%s: %s'):format(name, tostring(err))
      elseif err > TOL32_FACTOR * c.f32_gap then
        bad[#bad + 1] = ('%s: parameters off by %.3g at %s'):format(name, err, at)
      end
      if REPORT and ok then io.stderr:write(('%-30s cuda float32 params %.3g\n'):format(name, err)) end
    end
    assert(#bad == 0, table.concat(bad, '\n'))
  end)

  for _, name in ipairs(names) do
    local c = fx.cases[name]
    for _, dtype in ipairs { 'float64', 'float32' } do
      local tol = dtype == 'float64' and REL64 or TOL32_FACTOR * c.f32_gap
      local ltol = dtype == 'float64' and LOSS64 or LOSS32
      it(('%s, %s: %s, within %.3g %s'):format(name, dtype, c.ref, tol,
                                               dtype == 'float64' and 'relative' or 'absolute'), function()
        local err, at, lerr, lat, per_step = replay(name, dtype)
        if REPORT then   -- SAM_FX_REPORT=1: the measured agreement of every case
          io.stderr:write(('%-30s %s params %.3g (tol %.3g) loss %.3g at %s\n'):format(name, dtype, err, tol, lerr, at))
        end
        assert(err <= tol, ('%s %s: parameters off by %.3g at %s'):format(name, dtype, err, at))
        assert(lerr <= ltol, ('%s %s: pass-1 loss off by %.3g relative at %s'):format(name, dtype, lerr, lat))
        for t = 1, STEPS do
          assert(per_step[t] == expected_calls(c, t),
                 ('%s: step %d made %d closure calls, expected %d'):format(name, t, per_step[t], expected_calls(c, t)))
        end
      end)
    end
  end
end)
