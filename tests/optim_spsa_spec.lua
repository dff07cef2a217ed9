-- optim.SPSA: the estimator's test vectors (spsa.md §6.5), the memory modes (same
-- numbers, exact restore), the gains and presets, the extras (blocking, trust region,
-- calibration, averaging), resume and misuse. Trajectories against independent numpy
-- re-implementations: optim_spsa_fixtures_spec.lua.
local ms = require 'moonstep'
local nn = ms.nn
local optim = ms.optim
local H = require 'helper'
local zo = require 'moonstep.optim.zo_ops'

local same_bits = H.same_bits

local function values(t)
  local out, c = {}, t:to('float64', 'cpu'):contiguous():flatten()
  for i = 1, c:numel() do out[i] = c:get(i) end
  return out
end

-- direction i (0-based) of step k of an optimizer, as a float64 list
local function direction(opt, k, i, dist, d)
  local u = ms.empty(d, { dtype = 'float64' })
  zo.fill('test', u, { seed = opt.seed, step = k, index = i, dist = dist or opt._zo.dist, scale = 1 }, 0)
  return values(u)
end

local function mlp(dtype, seed)
  ms.manual_seed(seed or 1)
  local m = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
  if dtype == 'float64' then m:double() end
  return m
end

local function data(dtype)
  ms.manual_seed(7)
  local x = ms.randn({ 8, 6 }, { dtype = dtype or 'float32' })
  local y = ms.tensor({ 1, 2, 3, 1, 2, 3, 1, 2 }, { dtype = 'int64' })
  return x, y
end

local function closure_for(m, x, y)
  local crit = nn.CrossEntropyLoss()
  return function() return crit:forward(m:forward(x), y) end
end

describe('SPSA estimator (spsa.md 6.5)', function()
  it('is exact on a linear loss per direction: central +-1 gives (g.u) u', function()
    local g = { 0.5, -1.25, 2.0, 0.75 }
    local w = ms.tensor({ 0.1, 0.2, -0.3, 0.4 }, { dtype = 'float64' })
    local w0 = values(w)
    local opt = optim.SPSA({ w }, { a = 1, c = 0.01, seed = 11 })
    local f = function() local s = 0; for i = 1, 4 do s = s + g[i] * w:get(i) end; return s end
    opt:step(f)
    local u = direction(opt, 0, 0, 'rademacher', 4)
    local gu = 0
    for i = 1, 4 do gu = gu + g[i] * u[i] end
    for i = 1, 4 do assert.near(w0[i] - gu * u[i], w:get(i), 1e-13) end
  end)

  it("passes Zeroth-Learn's gradient check: forward, h = 1e-6, T = 2000 gives |g - ghat|inf <= 0.06", function()
    local g = { 1.5, -2.0, 0.5 }
    local w = ms.tensor({ 0.2, -0.1, 0.3 }, { dtype = 'float64' })
    local set = ms.params { w }
    local opt = optim.SPSA(set, { diff = 'forward', n = 2000, c = 1e-6, a = 0, seed = 42 })
    opt:step(function() local s = 0; for i = 1, 3 do s = s + g[i] * w:get(i) end; return s end)
    local ghat = values(set:flat_gradients())
    for i = 1, 3 do assert.is_true(math.abs(ghat[i] - g[i]) <= 0.06, ('component %d: %g'):format(i, ghat[i])) end
    assert.same({ 0.2, -0.1, 0.3 }, values(w))   -- a = 0: not moved
  end)

  it('has O(h) error per direction with forward differences and O(h^2) with central ones', function()
    -- f(w) = sum_j w_j^3 / 3 + w_1 w_2: per fixed u the exact directional term is (grad.u) u
    local function f(w) return (w[1] ^ 3 + w[2] ^ 3 + w[3] ^ 3) / 3 + w[1] * w[2] end
    local w0 = { 0.3, -0.2, 0.5 }
    local grad = { w0[1] ^ 2 + w0[2], w0[2] ^ 2 + w0[1], w0[3] ^ 2 }
    local function err(diff, h)
      local w = ms.tensor(w0, { dtype = 'float64' })
      local set = ms.params { w }
      local opt = optim.SPSA(set, { diff = diff, c = h, a = 0, seed = 5 })
      opt:step(function() return f(values(w)) end)
      local u = direction(opt, 0, 0, 'rademacher', 3)
      local gu = 0
      for i = 1, 3 do gu = gu + grad[i] * u[i] end
      local ghat, e = values(set:flat_gradients()), 0
      for i = 1, 3 do e = math.max(e, math.abs(ghat[i] - gu * u[i])) end
      return e
    end
    local rf = err('forward', 1e-2) / err('forward', 1e-3)
    local rc = err('central', 1e-2) / err('central', 1e-3)
    assert.is_true(rf > 7 and rf < 13, 'forward error ratio ' .. rf)
    assert.is_true(rc > 70 and rc < 130, 'central error ratio ' .. rc)
  end)

  it('regenerates the same directions for the same (seed, step, index), whatever the tensor layout', function()
    local m1 = mlp('float32')
    local opt = optim.SPSA(m1, { seed = 3 })
    local d = m1:flat_parameters():numel()
    local a = direction(opt, 4, 2, 'gaussian', d)
    local b = direction(opt, 4, 2, 'gaussian', d)
    assert.same(a, b)
    -- a slice at an offset is the same elements
    local part = ms.empty(10, { dtype = 'float64' })
    zo.fill('test', part, { seed = 3, step = 4, index = 2, dist = 'gaussian', scale = 1 }, 20)
    for i = 1, 10 do assert.equal(a[20 + i], part:get(i)) end
  end)
end)

describe('SPSA memory modes', function()
  for _, dtype in ipairs { 'float32', 'float64' } do
    for _, diff in ipairs { 'central', 'forward' } do
      it(('compute the same trajectory bit for bit (%s, %s, adam)'):format(dtype, diff), function()
        local x, y = data(dtype)
        local runs = {}
        for _, memory in ipairs { 'seeded', 'materialized', 'virtual' } do
          local m = mlp(dtype)
          local opt = optim.SPSA(m, { memory = memory, diff = diff, n = 3, update = 'adam', a = 1e-2, seed = 9 })
          local losses = {}
          for s = 1, 4 do losses[s] = opt:step(closure_for(m, x, y)) end
          runs[memory] = { w = m:flat_parameters():clone(), losses = losses }
        end
        same_bits(runs.seeded.w, runs.materialized.w, 'seeded vs materialized')
        same_bits(runs.seeded.w, runs.virtual.w, 'seeded vs virtual')
        assert.same(runs.seeded.losses, runs.materialized.losses)
        assert.same(runs.seeded.losses, runs.virtual.losses)
      end)
    end
  end

  for _, memory in ipairs { 'seeded', 'materialized', 'virtual' } do
    for _, dtype in ipairs { 'float32', 'float64' } do
      it(('restores the weights bit for bit with lr = 0 (%s, %s, hostile values)'):format(memory, dtype), function()
        local m = mlp(dtype)
        local w = m:flat_parameters()
        -- zeros, tiny, subnormal-ish, binade boundaries, large
        local hostile = { 0, 1e-30, -1e-30, 2 ^ -10, -(2 ^ -10), 0.5, 1 - 2 ^ -24, 1e-3, -1e-3, 3e4, -7.25, 1e-7 }
        for i, v in ipairs(hostile) do w:set(i, v) end
        local before = w:clone()
        local x, y = data(dtype)
        for _, dist in ipairs { 'rademacher', 'gaussian', 'segmented_uniform' } do
          for _, h in ipairs { 1e-4, 1e-3, 0.1, 10 } do
            local opt = optim.SPSA(m, { memory = memory, dist = dist, c = h, a = 0, n = 2, seed = 17 })
            for _ = 1, 2 do opt:step(closure_for(m, x, y)) end
            same_bits(before, w, ('%s %s h = %g'):format(memory, dist, h))
          end
        end
      end)
    end
  end

  it("drifts with restore = 'subtract' (MeZO's in-place subtraction) where 'exact' does not", function()
    local m = mlp('float32')
    local w = m:flat_parameters()
    local before = w:clone()
    local x, y = data()
    local opt = optim.SPSA(m, { restore = 'subtract', c = 1e-2, a = 0, seed = 2, dist = 'gaussian' })
    for _ = 1, 3 do opt:step(closure_for(m, x, y)) end
    assert.are_not.same(values(before), values(w))
    local exact = optim.SPSA(m, { c = 1e-2, a = 0, seed = 2, dist = 'gaussian' })
    local now = w:clone()
    for _ = 1, 3 do exact:step(closure_for(m, x, y)) end
    same_bits(now, w, 'exact restore')
    assert.is_true(exact.zo_log_entries > 0)
  end)

  it('puts the weights back and unpatches the layers when the closure raises', function()
    for _, memory in ipairs { 'seeded', 'materialized', 'virtual' } do
      local m = mlp('float32')
      local w = m:flat_parameters()
      local before = w:clone()
      local x, y = data()
      local f = closure_for(m, x, y)
      local opt = optim.SPSA(m, { memory = memory, seed = 4, n = 2 })
      local calls = 0
      local ok, err = pcall(opt.step, opt, function() calls = calls + 1; if calls == 3 then error('boom') end; return f() end)
      assert.is_false(ok)
      assert.matches('boom', tostring(err))
      same_bits(before, w, memory)
      for _, layer in ipairs(m.modules) do assert.is_nil(rawget(layer, 'forward')) end
      assert.equal(0, opt.t)
    end
  end)

  it('skips a step with a non-finite loss and leaves the weights as they were', function()
    local m = mlp('float32')
    local w = m:flat_parameters()
    local before = w:clone()
    local x, y = data()
    local f = closure_for(m, x, y)
    local opt = optim.SPSA(m, { seed = 4, n = 2 })
    local calls = 0
    local loss, info = opt:step(function() calls = calls + 1; if calls == 2 then return 0 / 0 end; return f() end)
    assert.is_true(info.skipped)
    assert.equal(1, opt.skipped)
    assert.equal(0, opt.t)
    same_bits(before, w, 'after a skipped step')
    local strict = optim.SPSA(m, { seed = 4, skip_nonfinite = false })
    H.assert_error(function() strict:step(function() return 0 / 0 end) end, 'SPSA.step')
    same_bits(before, w, 'after a refused step')
  end)
end)

describe('SPSA on the GPU', function()
  it('draws the same directions and takes the same steps as the CPU (every mode, float32)', function()
    if not (ms.cuda and ms.cuda.is_available()) then
      pending('no usable GPU')
      return
    end
    local d = 1000
    for _, dist in ipairs { 'rademacher', 'gaussian', 'segmented_uniform' } do
      local u = {}
      for _, device in ipairs { 'cpu', 'cuda' } do
        local t = ms.empty(d, { device = device })
        zo.fill('test', t, { seed = 77, step = 3, index = 1, dist = dist, scale = 1 }, 12345)
        u[device] = t:to('cpu')
      end
      same_bits(u.cpu, u.cuda, 'directions ' .. dist .. ' GPU vs CPU')
    end
    for _, memory in ipairs { 'seeded', 'materialized', 'virtual' } do
      local out = {}
      for _, device in ipairs { 'cpu', 'cuda' } do
        local m = mlp('float32'):to(device)
        local x, y = data()
        x, y = x:to(device), y:to(device)
        local opt = optim.SPSA(m, { memory = memory, n = 2, update = 'mezo', a = 1e-2, seed = 5, dist = 'gaussian' })
        for _ = 1, 3 do opt:step(closure_for(m, x, y)) end
        out[device] = m:flat_parameters():to('cpu')
      end
      H.assert_close(out.cuda, out.cpu, 1e-5, memory .. ': GPU vs CPU')
    end
  end)
end)

describe('SPSA gains and presets', function()
  it("reproduces the seed's gain table per epoch (a = 0.01/(e+1)^0.4, c = 0.005/e^0.2)", function()
    local w = ms.tensor({ 0.1, 0.2 }, { dtype = 'float64' })
    local opt = optim.SPSA({ w }, optim.SPSA.preset('seed', { steps_per_epoch = 1, a = 0 }))
    local want = { [1] = { 7.5786e-3, 5.0e-3 }, [2] = { 6.4439e-3, 4.3528e-3 }, [10] = { 3.8322e-3, 3.1548e-3 }, [100] = { 1.5786e-3, 1.9905e-3 } }
    -- (a = 0 would zero a_k: compute from the preset's a instead)
    local v = { a = 0.01, A = 1, alpha = 0.4, c = 0.005, gamma = 0.2 }
    local cfg = require 'moonstep.optim.spsa_config'
    for e, ac in pairs(want) do
      local a, c = cfg.gains(v, cfg.index(opt._zo, e))
      assert.near(ac[1], a, 5e-8)
      assert.near(ac[2], c, 5e-8)
    end
    -- and the step reports them: epoch 1 of 2 steps each
    local o2 = optim.SPSA({ w }, optim.SPSA.preset('seed', { steps_per_epoch = 2 }))
    local f = function() return w:get(1) ^ 2 + w:get(2) ^ 2 end
    local _, i1 = o2:step(f)
    local _, i2 = o2:step(f)
    local _, i3 = o2:step(f)
    assert.near(7.5786e-3, i1.a, 5e-8)
    assert.equal(i1.a, i2.a)
    assert.near(6.4439e-3, i3.a, 5e-8)
    assert.near(4.3528e-3, i3.c, 5e-8)
  end)

  it("reproduces PennyLane's defaults through the spall preset (first step 0.05, c 0.2)", function()
    local w = ms.tensor({ 0.1, 0.2 }, { dtype = 'float64' })
    local opt = optim.SPSA({ w }, optim.SPSA.preset('spall', { maxiter = 200 }))
    local cfg = require 'moonstep.optim.spsa_config'
    local v = { a = opt.a, A = opt.A, alpha = opt.alpha, c = opt.c, gamma = opt.gamma }
    local a1, c1 = cfg.gains(v, 0)
    assert.near(0.05, a1, 1e-12)
    assert.near(0.2, c1, 1e-12)
    local a100, c100 = cfg.gains(v, 99)
    assert.near(0.01751, a100, 5e-6)
    assert.near(0.12561, c100, 5e-6)
  end)

  it('builds every preset', function()
    for name in pairs(optim.SPSA.PRESETS) do
      local w = ms.tensor({ 0.1, 0.2 })
      local extra = name == 'seed' and { steps_per_epoch = 10 } or nil
      local opt = optim.SPSA({ w }, optim.SPSA.preset(name, extra))
      assert.equal(0, opt.t)
    end
    local z = optim.SPSA.preset('zeroth_learn')
    assert.equal(50, z.n)
    assert.equal('forward', z.diff)
    assert.same({ 0.9, 0.99 }, z.betas)
    local mz = optim.SPSA.preset('mezo', { lr = 1e-5 })
    assert.equal(1e-5, mz.lr)
    assert.is_nil(mz.a)
    H.assert_error(function() optim.SPSA.preset('nope') end, 'SPSA.preset')
  end)

  it("resets the spsa_gc momentum for the whole first epoch only with gc_reset = 'first_epoch'", function()
    local function run(reset)
      local w = ms.tensor({ 0.3, -0.2, 0.1 }, { dtype = 'float64' })
      local opt = optim.SPSA({ w }, { update = 'spsa_gc', a = 0.1, gc_reset = reset, gain_unit = 'epoch', steps_per_epoch = 3, seed = 8 })
      for _ = 1, 3 do opt:step(function() return w:get(1) ^ 2 + 2 * w:get(2) ^ 2 + 3 * w:get(3) ^ 2 end) end
      return values(w)
    end
    assert.are_not.same(run('first_step'), run('first_epoch'))
  end)
end)

describe('SPSA extras', function()
  local function quad(w) return function() local s = 0; for i = 1, w:numel() do s = s + i * w:get(i) ^ 2 end; return s end end

  it('blocking undoes a step that raises the loss', function()
    local w = ms.tensor({ 0.3, -0.2, 0.1 }, { dtype = 'float64' })
    local opt = optim.SPSA({ w }, { a = 100, c = 1e-3, blocking = true, allowed_increase = 0, seed = 1 })
    local before = w:clone()
    local _, info = opt:step(quad(w))
    assert.is_true(info.blocked)
    assert.equal(1, opt.blocked)
    same_bits(before, w, 'blocked step')
    local gentle = optim.SPSA({ w }, { a = 1e-3, c = 1e-3, blocking = true, seed = 1 })
    local _, i2 = gentle:step(quad(w))
    assert.is_false(i2.blocked)
  end)

  it('trust_region caps the pre-lr update at norm 1', function()
    local w = ms.tensor({ 0.3, -0.2, 0.1 }, { dtype = 'float64' })
    local w0 = values(w)
    local opt = optim.SPSA({ w }, { a = 0.5, trust_region = true, seed = 1 })
    local _, info = opt:step(function() return 1e6 * (w:get(1) + w:get(2) + w:get(3)) end)
    assert.is_true(info.ghat_norm > 1)
    local moved = 0
    for i = 1, 3 do moved = moved + (w:get(i) - w0[i]) ^ 2 end
    assert.near(0.5, math.sqrt(moved), 1e-12)
  end)

  it("calibrates a as Qiskit does and logs the gains", function()
    local w = ms.tensor({ 0.3, -0.2, 0.1, 0.4 }, { dtype = 'float64' })
    local f = quad(w)
    local w0 = values(w)
    local opt = optim.SPSA({ w }, optim.SPSA.preset('qiskit', { seed = 21 }))
    local _, info = opt:step(f)
    -- independently: 25 Rademacher directions of the calibration key, c = 0.2
    local total = 0
    for s = 0, 24 do
      local u = direction(opt, 2 ^ 32 - 1, s, 'rademacher', 4)
      local yp, ym = 0, 0
      for i = 1, 4 do yp = yp + i * (w0[i] + 0.2 * u[i]) ^ 2; ym = ym + i * (w0[i] - 0.2 * u[i]) ^ 2 end
      total = total + math.abs((yp - ym) / 0.4)
    end
    local a = (2 * math.pi / 10) / (total / 25)
    assert.near(a, opt.a, 1e-12 * a)
    assert.same({ a = opt.a, A = 0, alpha = 0.602, c = 0.2, gamma = 0.101, mean_magnitude = info.calibration.mean_magnitude }, info.calibration)
    assert.equal(0.2, opt.c)
    local _, i2 = opt:step(f)   -- calibrated once
    assert.is_nil(i2.calibration)
    assert.is_true(opt:state().extra.calibrated)
  end)

  it('averages the iterates from average_from on', function()
    local w = ms.tensor({ 0.3, -0.2, 0.1 }, { dtype = 'float64' })
    local opt = optim.SPSA({ w }, { a = 0.05, average_from = 3, seed = 6 })
    local seen = {}
    for s = 1, 5 do opt:step(quad(w)); if s >= 3 then seen[#seen + 1] = values(w) end end
    local avg = values(opt:averaged())
    for i = 1, 3 do assert.near((seen[1][i] + seen[2][i] + seen[3][i]) / 3, avg[i], 1e-15) end
  end)

  it('resumes bit for bit from state() (adam, spsa_gc, mezo, seeded and materialized)', function()
    for _, c in ipairs { { update = 'adam' }, { update = 'spsa_gc' }, { update = 'mezo', weight_decay = 0.1 },
                         { update = 'sgd', memory = 'materialized', average_from = 2 } } do
      local x, y = data()
      local function make(m)
        local conf = { seed = 13, a = 1e-2, n = 2 }
        for k, v in pairs(c) do conf[k] = v end
        return optim.SPSA(m, conf)
      end
      local m1 = mlp('float32')
      local o1 = make(m1)
      for _ = 1, 5 do o1:step(closure_for(m1, x, y)) end
      local m2 = mlp('float32')
      local o2 = make(m2)
      for _ = 1, 3 do o2:step(closure_for(m2, x, y)) end
      local s = o2:state()
      local m3 = mlp('float32')
      m3:flat_parameters():copy_(m2:flat_parameters())
      local o3 = optim.SPSA(m3, { seed = 99, a = 1e-2, n = 2, update = c.update, weight_decay = c.weight_decay, memory = c.memory, average_from = c.average_from })
      o3:load_state(s)
      for _ = 1, 2 do o3:step(closure_for(m3, x, y)) end
      same_bits(m1:flat_parameters(), m3:flat_parameters(), c.update)
    end
  end)
end)

describe('SPSA misuse', function()
  local w = ms.tensor({ 0.1, 0.2 })
  local cases = {
    { { bogus = 1 }, 'bogus' },
    { { dist = 'gaussian', divide = true }, 'divide' },
    { { memory = 'seeded', directions = function() end }, 'directions' },
    { { batched = true }, 'criterion' },
    { { a = 1, lr = 1 }, 'lr' },
    { { base = optim.Adam { lr = 1e-3 }, a = 1 }, 'base' },
    { { groups = { { match = '1', c = 1 } } }, 'groups' },
    { { update = 'mezo', clip_norm = 1 }, 'clip_norm' },
    { { update = 'adam', blocking = true }, 'blocking' },
    { { gain_unit = 'epoch' }, 'steps_per_epoch' },
    { { restore = 'exact', memory = 'virtual' }, 'restore' },
    { { second_order = true }, 'materialized' },
    { { n = 0 }, 'n' },
    { { c = 0 }, 'c' },
    { { dist = 'uniform' }, 'dist' },
  }
  for _, case in ipairs(cases) do
    it('refuses ' .. case[2], function()
      H.assert_error(function() optim.SPSA({ w }, case[1]) end, 'SPSA')
      local ok, err = pcall(optim.SPSA, { w }, case[1])
      assert.is_false(ok)
      assert.matches(case[2], tostring(err), 1, true)
    end)
  end

  it('refuses virtual memory without a model, step(input, target) without a criterion, and apply()', function()
    local opt = optim.SPSA({ w }, { memory = 'virtual' })
    H.assert_error(function() opt:step(function() return 1 end) end, 'model')
    local m = mlp('float32')
    local o2 = optim.SPSA(m, {})
    local x, y = data()
    H.assert_error(function() o2:step(x, y) end, 'criterion')
    H.assert_error(function() o2:apply() end, 'SPSA.apply')
    H.assert_error(function() o2:step(function() return 'x' end) end, 'loss')
  end)
end)
