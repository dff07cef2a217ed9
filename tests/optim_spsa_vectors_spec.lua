-- optim.SPSA: the test vectors of the spec (/work/shared/reference/spsa.md 6.5), some with
-- values from the numpy references (tests/fixtures/spsa_reference.lua, written by
-- scripts/fixtures/spsa_reference.py; the trajectories: optim_spsa_fixtures_spec.lua).
-- The seed's and PennyLane's gain tables through info.a / info.c; the linear-loss exactness
-- (central +-1: ghat = (g.u) u bit for bit, dyadic data, float64 and float32); Qiskit's trust
-- region at norms 1.5 / 0.5 / 8.5 and its blocking rule at equality (fx + allowed_increase <=
-- L(candidate) rejects; 2n + 1 evaluations, + 1 at step 1), both exact; opt.gains and
-- preset('seed'); Zeroth-Learn's gradient check (forward, delta 1e-6, T = 2000, moonstep's own
-- Rademacher directions, seed 2: |ghat - g|inf <= 0.06, and ghat equal to the numpy Philox
-- prediction).
local ms = require 'moonstep'
local fx = require 'fixtures.spsa_reference'

local REPORT = os.getenv('SPSA_FX_REPORT')
local GAIN_TOL = 1e-13

---------------------------------------------------------------------------------------
-- what exists yet
---------------------------------------------------------------------------------------
local function spsa_class()
  local ok, cls = pcall(function() return ms.optim.SPSA end)
  if not ok or cls == nil then
    error('optim.SPSA is missing (lua/moonstep/optim/SPSA.lua not there yet): ' .. tostring(cls), 2)
  end
  return cls
end

local rel, copy = require('zo_helper').rel, require('zo_helper').copy

---------------------------------------------------------------------------------------
-- 3. spec 6.5 test vectors
---------------------------------------------------------------------------------------
-- A d-element float64 (or dtype) parameter with the loss g.theta (a plain Lua closure).
local function linear(g, theta0, dtype)
  local p = ms.tensor(theta0, { dtype = dtype or 'float64' })
  local calls = 0
  local function closure()
    calls = calls + 1
    local s = 0
    for j = 1, #g do s = s + g[j] * p:get(j) end
    return s
  end
  return p, closure, function() return calls end
end

local function values(p)
  local v = {}
  for j = 1, p:numel() do v[j] = p:get(j) end
  return v
end

describe('optim.SPSA spec 6.5 vectors', function()
  -- info.a / info.c at the given 1-based steps of a run of `steps` on a 2-element linear loss
  local function gains_at(cfg, steps, want_steps)
    local SPSA = spsa_class()
    local p, closure = linear({ 0.5, -0.25 }, { 0.1, 0.2 })
    cfg = copy(cfg)
    cfg.seed = 1
    local opt = SPSA({ p }, cfg)
    local out = {}
    for t = 1, steps do
      local _, info = opt:step(closure)
      if want_steps[t] then out[t] = { a = info.a, c = info.c } end
    end
    return out, opt
  end

  it("the seed's gain table (e = 1, 2, 10, 100) per step and per epoch", function()
    local G = fx.gains.seed
    local base = { dist = 'segmented_uniform', diff = 'central', n = 1, a = G.a, A = G.A, alpha = G.alpha,
                   c = G.c, gamma = G.gamma, update = 'spsa_gc' }
    local want = {}
    for _, row in ipairs(G.rows) do want[row.e] = row end
    local got, opt = gains_at(base, 100, want)
    for e, row in pairs(want) do
      assert(rel(got[e].a, row.a) <= GAIN_TOL, ('step %d: a %.17g, expected %.17g'):format(e, got[e].a, row.a))
      assert(rel(got[e].c, row.c) <= GAIN_TOL, ('step %d: c %.17g, expected %.17g'):format(e, got[e].c, row.c))
    end
    -- per epoch, 3 steps an epoch: steps 3e - 2 .. 3e run epoch e (e = 1, 2, 10)
    local ep = copy(base)
    ep.gain_unit, ep.steps_per_epoch = 'epoch', 3
    local steps = {}
    for _, e in ipairs { 1, 2, 10 } do for s = 3 * e - 2, 3 * e do steps[s] = e end end
    local got2 = gains_at(ep, 30, steps)
    for s, e in pairs(steps) do
      assert(rel(got2[s].a, want[e].a) <= GAIN_TOL and rel(got2[s].c, want[e].c) <= GAIN_TOL,
             ('per epoch, step %d (epoch %d): a %.17g c %.17g, expected %.17g %.17g'):format(
               s, e, got2[s].a, got2[s].c, want[e].a, want[e].c))
    end
  end)

  it('opt.gains holds the gains the step uses (contract)', function()
    local G = fx.gains.seed
    local _, opt = gains_at({ dist = 'rademacher', n = 1, a = G.a, A = G.A, alpha = G.alpha, c = G.c,
                              gamma = G.gamma }, 1, {})
    assert(type(opt.gains) == 'table', 'opt.gains is ' .. type(opt.gains))
    for _, k in ipairs { 'a', 'A', 'alpha', 'c', 'gamma' } do
      assert(opt.gains[k] == G[k], ('opt.gains.%s = %s, expected %s'):format(k, tostring(opt.gains[k]), G[k]))
    end
  end)

  -- Qiskit rejects when fx + allowed_increase <= L(candidate): a flat loss (ghat = 0, the
  -- candidate is the iterate, same loss) is rejected at every step with allowed_increase = 0;
  -- 2n + 1 evaluations a step, one more at the first (L(theta_0)).
  it('blocking: a candidate whose loss equals the last accepted one is rejected (Qiskit)', function()
    local SPSA = spsa_class()
    local p = ms.tensor({ 0.5, -0.5 }, { dtype = 'float64' })
    local calls = 0
    local opt = SPSA({ p }, { dist = 'rademacher', n = 2, c = 0.1, a = 0.1, blocking = true,
                              allowed_increase = 0, seed = 3 })
    for t = 1, 3 do
      local before = calls
      local _, info = opt:step(function() calls = calls + 1; return 1.25 end)
      assert(info.blocked == true, ('step %d: info.blocked %s, expected true'):format(t, tostring(info.blocked)))
      assert(calls - before == (t == 1 and 6 or 5), ('step %d: %d evaluations, expected %d'):format(
        t, calls - before, t == 1 and 6 or 5))
    end
  end)

  it("preset('seed') holds the seed's constants", function()
    local SPSA = spsa_class()
    local G = fx.gains.seed
    local cfg = SPSA.preset('seed')
    for _, k in ipairs { 'a', 'A', 'alpha', 'c', 'gamma' } do
      assert(cfg[k] == G[k], ("preset('seed').%s = %s, expected %s"):format(k, tostring(cfg[k]), G[k]))
    end
    assert(cfg.n == 5 and cfg.dist == 'segmented_uniform' and cfg.update == 'spsa_gc',
           ("preset('seed'): n %s dist %s update %s"):format(tostring(cfg.n), tostring(cfg.dist), tostring(cfg.update)))
  end)

  it("PennyLane's defaults: a_k 0.05, c_k 0.2 at k = 1; 0.01751, 0.12561 at k = 100", function()
    local P = fx.gains.pennylane
    local want = {}
    for _, row in ipairs(P.rows) do want[row.k] = row end
    local got = gains_at({ dist = 'rademacher', diff = 'central', n = 1, a = P.a, A = P.A, alpha = P.alpha,
                           c = P.c, gamma = P.gamma }, 100, want)
    for k, row in pairs(want) do
      assert(rel(got[k].a, row.a) <= GAIN_TOL and rel(got[k].c, row.c) <= GAIN_TOL,
             ('k = %d: a %.17g c %.17g, expected %.17g %.17g'):format(k, got[k].a, got[k].c, row.a, row.c))
    end
    assert(math.abs(got[1].a - 0.05) <= 1e-15)
  end)

  -- Linear loss, central +-1: s = (g.(theta + h u) - g.(theta - h u)) / 2h = g.u exactly, so
  -- ghat = (g.u) u and, with dyadic data, theta_1 = theta_0 - a (g.u) u bit for bit.
  local G4, T4 = { 1.5, -2, 0.5, 0.25 }, { 0.25, -0.5, 0.75, 1 }
  local function dot(a, b) local s = 0; for j = 1, #a do s = s + a[j] * b[j] end; return s end

  for _, dtype in ipairs { 'float64', 'float32' } do
    it('linear loss: one direction, runtime Rademacher: ghat = (g.u) u exactly (' .. dtype .. ')', function()
      local SPSA = spsa_class()
      local p, closure = linear(G4, T4, dtype)
      local opt = SPSA({ p }, { dist = 'rademacher', diff = 'central', n = 1, c = 0.5, a = 0.5, seed = 7 })
      for t = 1, 3 do
        local before = values(p)
        local _, info = opt:step(closure)
        local now = values(p)
        -- u up to its sign (u and -u give the same (g.u) u): the sign of the step
        local v, ghat = {}, {}
        for j = 1, 4 do
          ghat[j] = (before[j] - now[j]) / 0.5
          assert(ghat[j] ~= 0, ('step %d element %d did not move'):format(t, j))
          v[j] = ghat[j] > 0 and 1 or -1
        end
        local s = dot(G4, v)
        for j = 1, 4 do
          assert(ghat[j] == s * v[j], ('step %d element %d: ghat %.17g, expected (g.u) u = %.17g'):format(t, j, ghat[j], s * v[j]))
        end
        assert(rel(info.ghat_norm, math.abs(s) * 2) <= 1e-15,
               ('step %d: info.ghat_norm %s, expected %.17g'):format(t, tostring(info.ghat_norm), math.abs(s) * 2))
      end
    end)
  end

  it('linear loss: four given directions: ghat = mean (g.u_i) u_i exactly', function()
    local SPSA = spsa_class()
    local U = { { 1, -1, 1, 1 }, { -1, -1, 1, -1 }, { 1, 1, -1, -1 }, { -1, 1, 1, 1 } }
    local p, closure = linear(G4, T4)
    local opt = SPSA({ p }, { dist = 'rademacher', diff = 'central', n = 4, c = 0.5, a = 0.5,
                              memory = 'materialized',
                              directions = function(_, i, u) for j = 1, 4 do u:set(j, U[i][j]) end end })
    local before = values(p)
    opt:step(closure)
    for j = 1, 4 do
      local want = 0
      for i = 1, 4 do want = want + dot(G4, U[i]) * U[i][j] / 4 end
      want = before[j] - 0.5 * want
      assert(p:get(j) == want, ('element %d: %.17g, expected %.17g'):format(j, p:get(j), want))
    end
  end)

  -- Qiskit's trust region: ghat / ||ghat|| when ||ghat|| > 1, before a_k. Linear loss,
  -- ghat = (g.u) u, ||ghat|| = 2 |g.u|: 1.5 (scaled), 0.5 (kept), 8.5 (scaled); exact.
  it('trust_region: the estimate scaled to norm 1 only when its norm exceeds 1 (exact)', function()
    local SPSA = spsa_class()
    local U = { { 1, 1, -1, 1 }, { 1, 1, 1, 1 }, { 1, -1, 1, 1 } }   -- g.u = -0.75, 0.25, 4.25
    local p, closure = linear(G4, T4)
    local opt = SPSA({ p }, { dist = 'rademacher', diff = 'central', n = 1, c = 0.5, a = 0.5,
                              trust_region = true, memory = 'materialized',
                              directions = function(k, _, u) for j = 1, 4 do u:set(j, U[k + 1][j]) end end })
    for t = 1, 3 do
      local before = values(p)
      local _, info = opt:step(closure)
      local s = dot(G4, U[t])
      local scale = 2 * math.abs(s) > 1 and 1 / (2 * math.abs(s)) or 1
      for j = 1, 4 do
        local want = before[j] - 0.5 * (s * U[t][j] * scale)
        assert(p:get(j) == want, ('step %d (||ghat|| = %g) element %d: %.17g, expected %.17g'):format(
          t, 2 * math.abs(s), j, p:get(j), want))
      end
    end
  end)

  it("Zeroth-Learn's gradient check: forward, delta 1e-6, T = 2000 => |ghat - g|inf <= 0.06", function()
    local SPSA = spsa_class()
    local Z = fx.zl_check
    local g = { 1.5, -2.0, 0.5 }
    local p, closure, calls = linear(g, { 0.2, -0.1, 0.3 })
    local opt = SPSA({ p }, { dist = 'rademacher', diff = 'forward', n = 2000, c = 1e-6 / math.sqrt(2000),
                              a = 1, update = 'sgd', seed = Z.seed })
    local before = values(p)
    local loss, info = opt:step(closure)
    assert(calls() == 2001 and info.passes == 2001, ('%d closure calls, info.passes %s, expected 2001'):format(
      calls(), tostring(info.passes)))
    assert(loss == dot(g, before), ('returned loss %.17g, expected the nominal %.17g'):format(loss, dot(g, before)))
    local ghat, err = {}, 0
    for j = 1, 3 do
      ghat[j] = before[j] - p:get(j)
      err = math.max(err, math.abs(ghat[j] - g[j]))
    end
    local show = ('ghat {%.6f, %.6f, %.6f}'):format(ghat[1], ghat[2], ghat[3])
    -- the estimate is the one numpy predicts from the contract's Philox directions (i -> index
    -- i - 1 or i: both are listed; the forward difference at h = 2.2e-8 costs ~1e-8)
    local function near(w) for j = 1, 3 do if math.abs(ghat[j] - w[j]) > 1e-6 then return false end end; return true end
    assert(near(Z.ghat_base0) or near(Z.ghat_base1),
           ('%s is not numpy\'s prediction {%.4f, %.4f, %.4f} (index i - 1) or {%.4f, %.4f, %.4f} (index i)'):format(
             show, Z.ghat_base0[1], Z.ghat_base0[2], Z.ghat_base0[3], Z.ghat_base1[1], Z.ghat_base1[2], Z.ghat_base1[3]))
    assert(err <= 0.06, ('%s: |ghat - g|inf = %.4f > 0.06'):format(show, err))
    if REPORT then
      io.stderr:write(('zl check: %s, |ghat - g|inf %.4f, convention %s\n'):format(
        show, err, near(Z.ghat_base0) and 'index = i - 1' or 'index = i'))
    end
  end)
end)
