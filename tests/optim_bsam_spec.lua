-- optim.BSAM (lua/moonstep/optim/BSAM.lua, runtime/optim/bsam.h): the official Bayesian
-- SAM. The spec's test vector (../shared/reference/sam_family.md 11.1, fixed noise), 12-step
-- trajectories on a 6-5-3 tanh MLP against an independent torch re-implementation
-- (tests/fixtures/bsam.lua from scripts/fixtures/bsam.py, noise fed through the noise
-- option), and the closure protocol: two closure calls per step, the weights left at the
-- mean (exactly restored on a skip or an error), lr = 0 moves nothing, Philox noise that
-- leaves the global generator alone, resume, sample()/restore_mean(), misuse.
local ms = require 'moonstep'
local nn = ms.nn
local H = require 'helper'
local BSAM = require 'moonstep.optim.BSAM'
local fx = require 'fixtures.bsam'

local same = H.same_bits

local function list(t) return H.flatten(t:to('float64', 'cpu'):totable()) end

---------------------------------------------------------------------------------------
-- the quadratic of the spec: L(w) = 1/2 (w - c)^T H (w - c), two tensors T1 = w[0:2], T2 = w[2]
---------------------------------------------------------------------------------------
local HM = { { 2, 0.5, 0 }, { 0.5, 1, 0 }, { 0, 0, 3 } }
local CV = { 0.5, -0.5, 1 }

-- A ParamSet of two float64 tensors at w0, and a closure writing H (w - c) into the
-- gradient arena; seen[k] records the points and gradients of each call.
local function quadratic(w0, dtype)
  local t1 = ms.tensor({ w0[1], w0[2] }, { dtype = dtype or 'float64' })
  local t2 = ms.tensor({ w0[3] }, { dtype = dtype or 'float64' })
  local set = ms.params { t1, t2 }
  local seen = {}
  local function closure(pass)
    local w = list(set:flat_parameters())
    local g, loss = {}, 0
    for i = 1, 3 do
      g[i] = 0
      for j = 1, 3 do g[i] = g[i] + HM[i][j] * (w[j] - CV[j]) end
      loss = loss + 0.5 * (w[i] - CV[i]) * g[i]
    end
    set:flat_gradients():copy_(ms.tensor(g, { dtype = dtype or 'float64' }))
    seen[#seen + 1] = { pass = pass, w = w, g = g }
    return loss
  end
  return set, closure, seen
end

local function close(got, want, tol, what)
  assert.equal(#want, #got, what)
  for i = 1, #want do
    if not (math.abs(got[i] - want[i]) <= tol * math.max(1, math.abs(want[i]))) then
      error(('%s: element %d is %.17g, expected %.17g (tol %g)'):format(what, i, got[i], want[i], tol), 2)
    end
  end
end

describe('BSAM: the spec test vector (fixed noise z = (0.3, -0.1, 0.2))', function()
  it('reproduces theta, g_noisy, g_eps, g_m, w1 and s1 to 1e-9 in float64', function()
    local set, closure, seen = quadratic { 1, -2, 0.5 }
    local opt = BSAM(set, { num_data = 100, lr = 0.5, betas = { 0.9, 0.999 }, weight_decay = 0.01,
                            rho = 0.01, damping = 0.1, s0 = 1,
                            noise = function(z) z:copy_(ms.tensor({ 0.3, -0.1, 0.2 }, 'float64')) end })
    local loss, info = opt:step(closure)
    assert.equal(2, #seen)
    assert.same({ 1, 2 }, { seen[1].pass, seen[2].pass })
    close(seen[1].w, { 1.03, -2.01, 0.52 }, 1e-9, 'theta')
    close(seen[1].g, { 0.305, -1.245, -1.44 }, 1e-9, 'g_noisy')
    close(seen[2].g, { 0.249875, -1.260925, -1.5432 }, 1e-9, 'g_eps')
    close(list(opt.buffers.momentum), { 0.0259875, -0.1280925, -0.15382 }, 1e-9, 'g_m')
    close(list(set:flat_parameters()), { 0.98700625, -1.93595375, 0.57691 }, 1e-9, 'w1')
    close(list(opt.buffers.precision), { 0.999415, 1.000355, 1.00055 }, 1e-9, 's1')
    -- w_adv = w0 + rho g / s (from the mean, not from theta)
    close(seen[2].w, { 1 + 0.01 * 0.305, -2 - 0.01 * 1.245, 0.5 - 0.01 * 1.44 }, 1e-12, 'w_adv')
    assert.equal(loss, info.loss)
    assert.near(0.5 * (0.53 * 0.305 - 1.51 * -1.245 - 0.48 * -1.44), loss, 1e-12)
    assert.same({ passes = 2, skipped = false }, { passes = info.passes, skipped = info.skipped })
    assert.is_number(info.loss2)
    assert.equal(1, opt.t)
    assert.equal(2, opt.passes)
  end)

  it('float32: the same vector to float32 tolerance', function()
    local set, closure, seen = quadratic({ 1, -2, 0.5 }, 'float32')
    local opt = BSAM(set, { num_data = 100, lr = 0.5, weight_decay = 0.01, rho = 0.01,
                            noise = function(z) z:copy_(ms.tensor({ 0.3, -0.1, 0.2 }, 'float32')) end })
    opt:step(closure)
    close(seen[1].w, { 1.03, -2.01, 0.52 }, 1e-6, 'theta')
    close(list(set:flat_parameters()), { 0.98700625, -1.93595375, 0.57691 }, 1e-6, 'w1')
    close(list(opt.buffers.precision), { 0.999415, 1.000355, 1.00055 }, 1e-6, 's1')
  end)
end)

---------------------------------------------------------------------------------------
-- the MLP trajectories of the fixture
---------------------------------------------------------------------------------------
local function mlp(dtype, device, init)
  local model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
  model:to(dtype)
  if device then model:to(device) end
  local flat = model:flat_parameters()
  flat:copy_(ms.tensor(init or fx.cases.custom.float64.init, { dtype = dtype }):to(flat.device))
  local x = ms.tensor(fx.x, { dtype = dtype })
  local y = ms.tensor(fx.y, { dtype = dtype })
  if device then x, y = x:to(device), y:to(device) end
  local crit = nn.MSELoss()
  local calls = 0
  local function closure()
    calls = calls + 1
    local out = model:forward(x)
    local loss = crit:forward(out, y)
    model:backward(x, crit:backward(out, y))
    return loss
  end
  return model, closure, function() return calls end
end

-- The fixture's noise of step t, as a noise option.
local function fixture_noise(z, t)
  z:copy_(ms.tensor(fx.noise[t], { dtype = z.dtype }):to(z.device))
end

local function config_of(name, extra)
  local c = {}
  for k, v in pairs(fx.cases[name].config) do c[k] = type(v) == 'table' and { unpack(v) } or v end
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

describe('BSAM: 12 steps on an MLP against the torch reference', function()
  for _, name in ipairs { 'custom', 'defaults', 'precision' } do
    for _, dtype in ipairs { 'float64', 'float32' } do
      it(name .. ' in ' .. dtype, function()
        local ref = fx.cases[name][dtype]
        local tol = dtype == 'float64' and 1e-9 or 5e-5
        local model, closure = mlp(dtype, nil, ref.init)
        local opt = BSAM(model, config_of(name, { noise = fixture_noise }))
        for t = 1, fx.steps do
          local l1, info = opt:step(closure)
          local at = ('%s %s step %d'):format(name, dtype, t)
          close({ l1, info.loss2 }, { ref.l1[t], ref.l2[t] }, tol, at .. ' losses')
          close(list(model:flat_parameters()), ref.params[t], tol, at .. ' parameters')
          close(list(opt.buffers.precision), ref.s[t], tol, at .. ' s')
          close(list(opt.buffers.momentum), ref.gm[t], tol, at .. ' g_m')
        end
      end)
    end
  end
end)

---------------------------------------------------------------------------------------
-- the protocol
---------------------------------------------------------------------------------------
describe('BSAM: the closure protocol', function()
  it('two closure calls per step, the pass number given, opt.passes counts them', function()
    local model, closure, calls = mlp('float64')
    local opt = BSAM(model, { num_data = 100 })
    local passes = {}
    for _ = 1, 3 do
      local _, info = opt:step(function(pass) passes[#passes + 1] = pass; return closure() end)
      assert.equal(2, info.passes)
    end
    assert.equal(6, calls())
    assert.same({ 1, 2, 1, 2, 1, 2 }, passes)
    assert.equal(6, opt.passes)
    assert.equal(3, opt.t)
  end)

  it('lr = 0 leaves the weights bit-identical (noise and perturbation never stay in)', function()
    local model, closure = mlp('float64')
    local before = model:flat_parameters():clone()
    local opt = BSAM(model, { num_data = 10, lr = 0, rho = 0.5 })
    for _ = 1, 4 do opt:step(closure) end
    same(model:flat_parameters(), before, 'weights after 4 steps with lr = 0')
    -- the state still moved: the precision is no longer s0
    assert.is_true(math.abs(opt.buffers.precision:get(1) - 1) > 1e-6)
  end)

  it('clip_norm clips g_eps (the gradient the momentum takes), as clip_grad_norm_', function()
    local z = function(zz) zz:copy_(ms.tensor({ 0.3, -0.1, 0.2 }, 'float64')) end
    local s1, c1 = quadratic { 1, -2, 0.5 }
    local a = BSAM(s1, { num_data = 100, rho = 0.01, noise = z, clip_norm = 0.5 })
    local s2, c2 = quadratic { 1, -2, 0.5 }
    local b = BSAM(s2, { num_data = 100, rho = 0.01, noise = z })
    for _ = 1, 2 do
      a:step(c1)
      b:step(function(pass)   -- the same clipping by hand on pass 2's gradient
        local l = c2(pass)
        if pass == 2 then
          local g = s2:flat_gradients()
          local norm = math.sqrt((g * g):sum())
          if 0.5 / (norm + 1e-6) < 1 then g:mul_(0.5 / (norm + 1e-6)) end
        end
        return l
      end)
    end
    close(list(s1:flat_parameters()), list(s2:flat_parameters()), 1e-15, 'clipped')
    close(list(a.buffers.precision), list(b.buffers.precision), 1e-15, 'precision (from the unclipped g)')
  end)

  it('a group with lr_scale = 0 keeps its tensors bit-identical, the others move', function()
    local model, closure = mlp('float32')
    local p = model:parameters()
    local bias1, w1 = p[2]:clone(), p[1]:clone()
    local opt = BSAM(model, { num_data = 100, groups = { { match = 'bias', lr_scale = 0, rho = 0.2 } } })
    for _ = 1, 3 do opt:step(closure) end
    same(p[2], bias1, 'frozen bias')
    assert.is_true((p[1] - w1):abs():max() > 0)
  end)

  it('default noise is Philox {seed = opt.seed, stream = 2^52 + attempt}; the global generator is not consumed', function()
    ms.manual_seed(77)
    local m1, c1 = mlp('float64')
    local a = BSAM(m1, { num_data = 100 })
    assert.equal(77, a.seed)
    local m2, c2 = mlp('float64')
    local b
    b = BSAM(m2, { num_data = 100, noise = function(z)
      z:normal_(0, 1, { seed = 77, stream = 2 ^ 52 + b.t + b.skipped })
    end })
    local rng = ms.rng_state()
    for _ = 1, 3 do a:step(c1); b:step(c2) end
    -- a skipped attempt: the next one draws from the next stream (attempt = t + skipped)
    a:step(function() c1(); return 0 / 0 end)
    b:step(function() c2(); return 0 / 0 end)
    assert.same({ 1, 1 }, { a.skipped, b.skipped })
    for _ = 1, 2 do a:step(c1); b:step(c2) end
    same(m1:flat_parameters(), m2:flat_parameters(), 'Philox noise')
    assert.same(rng, ms.rng_state())   -- the closures draw nothing: the state is untouched
    -- another seed, other noise
    local m3, c3 = mlp('float64')
    local c = BSAM(m3, { num_data = 100, seed = 78 })
    for _ = 1, 3 do c:step(c3) end
    assert.is_true((m3:flat_parameters() - m1:flat_parameters()):abs():max() > 1e-6)
  end)

  it('dropout draws the same mask in both passes (replay_rng)', function()
    ms.manual_seed(3)
    local model = nn.Sequential(nn.Linear(6, 6), nn.Dropout(0.5))
    model:double()
    local x = ms.tensor(fx.x, 'float64')
    local zeros = {}
    local opt = BSAM(model, { num_data = 100 })
    opt:step(function(pass)
      local out = model:forward(x)
      local z = {}
      for i, v in ipairs(list(out)) do z[i] = v == 0 end
      zeros[pass] = z
      model:backward(x, ms.ones_like(out))
      return out:sum()
    end)
    assert.same(zeros[1], zeros[2])
  end)

  it("BatchNorm statistics: bn = 'first' moves them once per step, 'both' (the official code) twice", function()
    local function run(bn)
      ms.manual_seed(4)
      local model = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4))
      model:double()
      local x = ms.tensor(fx.x, 'float64')
      local opt = BSAM(model, { num_data = 100, bn = bn })
      local bnm = model.modules and model.modules[2] or model[2]
      local seen = {}
      opt:step(function()
        local out = model:forward(x)
        model:backward(x, ms.ones_like(out))
        seen[#seen + 1] = bnm.running_mean:clone()
        return 0
      end)
      return bnm.running_mean, seen
    end
    local first, s1 = run('first')
    same(first, s1[1], "bn = 'first': pass 2 leaves the statistics")
    local both, s2 = run('both')
    assert.is_true((s2[2] - s2[1]):abs():max() > 0, "bn = 'both': pass 2 moves them")
    same(both, s2[2], "bn = 'both'")
  end)

  describe('a non-finite pass skips the step, the weights restored bit-exactly', function()
    for _, bad_pass in ipairs { 1, 2 } do
      it('in pass ' .. bad_pass, function()
        local model, closure = mlp('float64')
        local opt = BSAM(model, { num_data = 100 })
        opt:step(closure)
        local w, s, m = model:flat_parameters():clone(), opt.buffers.precision:clone(), opt.buffers.momentum:clone()
        local loss, info = opt:step(function(pass)
          local l = closure()
          if pass == bad_pass then return 0 / 0 end
          return l
        end)
        same(model:flat_parameters(), w, 'weights')
        same(opt.buffers.precision, s, 'precision')
        same(opt.buffers.momentum, m, 'momentum')
        assert.equal(1, opt.t)
        assert.equal(1, opt.skipped)
        assert.is_true(info.skipped)
        assert.equal(bad_pass, info.passes)
        if bad_pass == 1 then assert.is_true(loss ~= loss) else assert.is_true(info.loss2 ~= info.loss2) end
        -- the next step runs, with a fresh draw
        opt:step(closure)
        assert.equal(2, opt.t)
      end)
    end

    it('skip_nonfinite = false raises naming BSAM.step, after restoring the weights', function()
      local model, closure = mlp('float64')
      local opt = BSAM(model, { num_data = 100, skip_nonfinite = false })
      local w = model:flat_parameters():clone()
      H.assert_error(function()
        opt:step(function(pass) closure(); return pass == 2 and math.huge or 1 end)
      end, 'BSAM.step', 'the loss is inf')
      same(model:flat_parameters(), w, 'weights after the raise')
      assert.equal(0, opt.t)
    end)

    it('an error in the closure propagates after the weights are restored', function()
      local model, closure = mlp('float64')
      local opt = BSAM(model, { num_data = 100 })
      local w = model:flat_parameters():clone()
      for _, bad in ipairs { 1, 2 } do
        local ok, err = pcall(opt.step, opt, function(pass)
          closure()
          if pass == bad then error('user failure in pass ' .. pass) end
          return 1
        end)
        assert.is_false(ok)
        assert.truthy(tostring(err):find('user failure in pass ' .. bad, 1, true))
        same(model:flat_parameters(), w, 'weights after an error in pass ' .. bad)
      end
      assert.equal(0, opt.t)
    end)
  end)

  it('resumes bit-exactly (state: t, precision, momentum, seed, sample count)', function()
    ms.manual_seed(11)
    local m1, c1 = mlp('float64')
    local a = BSAM(m1, { num_data = 200, weight_decay = 0.01 })
    for _ = 1, 3 do a:step(c1) end
    a:sample()(); a:sample()()
    local saved, params = a:state(), m1:flat_parameters():clone()
    for _ = 1, 3 do a:step(c1) end
    local r1 = a:sample()
    local sample1 = m1:flat_parameters():clone()
    r1()
    ms.manual_seed(999)                       -- another global seed: the state brings opt.seed
    local m2, c2 = mlp('float64')
    m2:flat_parameters():copy_(params)
    local b = BSAM(m2, { num_data = 200, weight_decay = 0.01 })
    b:load_state(saved)
    assert.equal(3, b.t)
    assert.equal(11, b.seed)
    for _ = 1, 3 do b:step(c2) end
    same(m2:flat_parameters(), m1:flat_parameters(), 'resumed trajectory')
    same(b.buffers.precision, a.buffers.precision, 'resumed precision')
    b:sample()
    same(m2:flat_parameters(), sample1, 'resumed sample stream')
    b:restore_mean()
  end)
end)

describe('BSAM: sample() for Monte-Carlo prediction', function()
  it('draws theta = w + z sqrt(1 / (num_data s)) and restores the mean bit-exactly', function()
    local set, closure = quadratic { 1, -2, 0.5 }
    local opt = BSAM(set, { num_data = 100, noise = function(z) z:copy_(ms.tensor({ 0.3, -0.1, 0.2 }, 'float64')) end })
    opt:step(closure)
    local mean = set:flat_parameters():clone()
    local s = list(opt.buffers.precision)
    local restore = opt:sample(function(z) z:fill_(1) end)
    local got, w = list(set:flat_parameters()), list(mean)
    for i = 1, 3 do assert.near(w[i] + math.sqrt(1 / (100 * s[i])), got[i], 1e-15) end
    restore()
    same(set:flat_parameters(), mean, 'mean after restore')
    -- Philox samples: different each call, mean restored each time, gradients untouched
    set:flat_gradients():fill_(5)
    local a = list(set:flat_parameters())
    opt:sample(); local x1 = list(set:flat_parameters()); opt:restore_mean()
    opt:sample(); local x2 = list(set:flat_parameters()); opt:restore_mean()
    assert.are_not.same(x1, x2)
    assert.are_not.same(a, x1)
    same(set:flat_parameters(), mean, 'mean after two samples')
    same(set:flat_gradients(), ms.tensor({ 5, 5, 5 }, 'float64'), 'gradients')
    -- an explicit generator gives the same draw twice
    opt:sample({ seed = 5, stream = 9 }); local y1 = list(set:flat_parameters()); opt:restore_mean()
    opt:sample({ seed = 5, stream = 9 }); local y2 = list(set:flat_parameters()); opt:restore_mean()
    assert.same(y1, y2)
    opt:restore_mean()   -- nothing to restore: a no-op
    same(set:flat_parameters(), mean, 'mean')
  end)

  it('the sample spread is 1 / (num_data s) (moments over 4000 elements)', function()
    local w = ms.zeros(4000, { dtype = 'float64' })
    local set = ms.params { w }
    local opt = BSAM(set, { num_data = 25, s0 = 4 })   -- std 0.1
    opt:sample()
    local x = set:flat_parameters()
    local mean = x:sum() / 4000
    local var = (x * x):sum() / 4000 - mean * mean
    opt:restore_mean()
    assert.is_true(math.abs(mean) < 0.01, 'mean ' .. mean)
    assert.is_true(math.abs(var / 0.01 - 1) < 0.1, 'variance ' .. var)
  end)
end)

describe('BSAM: misuse', function()
  it('errors name BSAM / BSAM.step / BSAM.sample', function()
    local set, closure = quadratic { 1, -2, 0.5 }
    H.assert_error(function() BSAM(set, {}) end, 'BSAM: num_data is missing', 'num_data = 50000')
    H.assert_error(function() BSAM(set) end, 'BSAM: num_data is missing')
    H.assert_error(function() BSAM(set, { num_data = 0 }) end, 'BSAM: num_data is 0', '> 0')
    H.assert_error(function() BSAM(set, { num_data = 10, lr = -1 }) end, 'BSAM: lr is -1')
    H.assert_error(function() BSAM(set, { num_data = 10, betas = { 0.9, 1 } }) end, 'BSAM: betas[2] is 1')
    H.assert_error(function() BSAM(set, { num_data = 10, rho = -0.1 }) end, 'BSAM: rho is -0.1')
    H.assert_error(function() BSAM(set, { num_data = 10, s0 = 0 }) end, 'BSAM: s0 is 0')
    H.assert_error(function() BSAM(set, { num_data = 10, damping = 0 / 0 }) end, 'BSAM: damping is nan')
    H.assert_error(function() BSAM(set, { num_data = 10, seed = -1 }) end, 'BSAM: seed is -1')
    H.assert_error(function() BSAM(set, { num_data = 10, noise = 5 }) end, 'BSAM: noise is 5', 'function(z, step)')
    H.assert_error(function() BSAM(set, { num_data = 10, bn = 'twice' }) end, 'BSAM: bn')
    H.assert_error(function() BSAM(set, { num_data = 10, prior = 1 }) end, 'BSAM: unknown option "prior"')
    local opt = BSAM(set, { num_data = 10 })
    H.assert_error(function() opt:step() end, 'BSAM.step: closure is nil', 'a closure is required', 'noisy')
    H.assert_error(function() opt:step(5) end, 'BSAM.step: closure is 5')
    H.assert_error(function() opt:apply() end, 'BSAM.apply', 'use opt:step(closure)')
    H.assert_error(function() opt:step(function() return 'x' end) end, 'BSAM.step', 'expected the loss as a number')
    local w = set:flat_parameters():clone()
    same(set:flat_parameters(), w, 'weights after the bad closure')
    opt.lr = -2
    H.assert_error(function() opt:step(closure) end, 'BSAM.step: lr is -2')
    opt.lr = 0.1
    opt:sample()
    H.assert_error(function() opt:sample() end, 'BSAM.sample', 'already hold a sample')
    H.assert_error(function() opt:step(closure) end, 'BSAM.step', 'hold a sample')
    opt:restore_mean()
    same(set:flat_parameters(), w, 'weights after sample and restore')
    H.assert_error(function() opt:sample(7) end, 'BSAM.sample: generator is 7')
    H.assert_error(function() opt:sample({ seed = -3 }) end, 'BSAM.sample', 'generator.seed is -3')
    H.assert_error(function() BSAM { num_data = 1 }:step(closure) end, 'BSAM.step', 'not bound')
    local u = BSAM { num_data = 100, seed = 12, rho = 0.01 }   -- unbound, bound later
    assert.equal(12, u.seed)
    local s2, c2 = quadratic { 1, -2, 0.5 }
    u:bind(s2)
    local _, info = u:step(c2)
    assert.is_false(info.skipped)
    H.assert_error(function() u:bind(set) end, 'BSAM.bind', 'already bound')
    opt.noise = 'x'
    H.assert_error(function() opt:step(closure) end, 'BSAM.step: noise is "x"')
    same(set:flat_parameters(), w, 'weights after the refused steps')
  end)
end)

describe('BSAM: on the GPU', function()
  it('CPU = GPU (float32, fixture noise, 5 steps)', function()
    if not (ms.cuda and ms.cuda.is_available()) then
      pending('no usable GPU')
      return
    end
    local m1, c1 = mlp('float32')
    local m2, c2 = mlp('float32', 'cuda')
    local a = BSAM(m1, config_of('custom', { noise = fixture_noise }))
    local b = BSAM(m2, config_of('custom', { noise = fixture_noise }))
    for _ = 1, 5 do a:step(c1); b:step(c2) end
    H.assert_close(m2:flat_parameters():to('cpu'), m1:flat_parameters(), 1e-5, 'GPU vs CPU parameters')
    H.assert_close(b.buffers.precision:to('cpu'), a.buffers.precision, 1e-5, 'GPU vs CPU precision')
    local r = b:sample({ seed = 1, stream = 2 })
    local s2 = m2:flat_parameters():to('cpu')
    r()
    a:sample({ seed = 1, stream = 2 })
    H.assert_close(s2, m1:flat_parameters(), 1e-5, 'GPU vs CPU sample')
    a:restore_mean()
    same(m2:flat_parameters(), b._scratches.mean, 'GPU mean restored')
  end)
end)

describe('BSAM misuse found in review', function()
  it('sample() from inside a step\'s closure is refused, and the step is not corrupted', function()
    local set = ms.params { ms.tensor({ 1, -2, 0.5 }, { dtype = 'float64' }) }
    local flat, g = set:flat_parameters(), set:flat_gradients()
    local opt = BSAM(set, { num_data = 100 })
    local before = flat:clone()
    H.assert_error(function()
      opt:step(function(pass)
        g:copy_(flat)
        if pass == 1 then opt:sample() end
        return 1
      end)
    end, 'BSAM.sample', 'taking a step on the same parameters')
    H.same_bits(before, flat, 'the mean after the refused sample')
  end)
end)
