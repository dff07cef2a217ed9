-- optim.spsa_hessian: 2-SPSA's smoothed Hessian and preconditioner.
-- Against tests/fixtures/spsa_hessian.lua (scripts/fixtures/spsa_hessian.py, a numpy
-- re-statement of Qiskit's SPSA(second_order=True)): per iteration the running mean
-- (Qiskit's k/(k+1) formula, identity and zeros initial Hessians, 1-3 resamplings) and,
-- per regularization, Qiskit's SPD matrix sqrtm(S·S) + reg·I and solve(spd, g).
-- Tolerances, relative to max(1, |value|): mean 1e-12 (float64), 1e-5 (float32); the SPD
-- matrix 1e-7 and Qiskit's preconditioned gradient 1e-5 (float32: 1e-4): the reference's
-- square root of the rounded S·S loses about half the digits of eigenvalues near 0, which
-- 1/reg = 100 amplifies (the script reports gaps of 6.8e-9 in the matrix and 3.8e-6 in the
-- gradient to the eigen form on the rank-deficient 'zeros' run); the eigen form itself
-- (out_eig, numpy's eigh of S) 1e-11 (float32 1e-4). Seen: float64 mean 9e-16, spd 7e-9,
-- out 3.8e-6, out_eig 3e-13; float32 mean 8e-7, spd 1e-6, out and out_eig 9e-6.
-- On a quadratic with a known Hessian A, the estimate from exact coefficients (Δ1ᵀ A Δ2)
-- and Rademacher directions (θ and ε arbitrary: they cancel) converges: after N = 40000
-- iterations every entry of the mean (rescaled by (N+1)/N for the zero initial matrix) is
-- within 0.12 of A (entries of A in [-2, 3]; the per-entry standard error is about
-- ||A||_F / sqrt(N) = 0.026, 0.038 the largest error seen), the error falls from N = 1000
-- (0.29 seen) to N = 40000, and the preconditioned gradient is within 10% (max-norm) of the
-- one from the exact A (1.3% seen).
local ms = require 'moonstep'
local H = require 'helper'
local Hs = require 'moonstep.optim.spsa_hessian'
local fx = dofile('tests/fixtures/spsa_hessian.lua')

local function assert_near(t, want, tol, what)
  local got = H.flatten(t:double():totable())
  assert.are.equal(#want, #got, what .. ': element count')
  for i = 1, #want do
    local err = math.abs(got[i] - want[i])
    if not (err <= tol * math.max(1, math.abs(want[i]))) then
      error(('%s: element %d is %.17g, expected %.17g (tol %g)'):format(what, i, got[i], want[i], tol), 2)
    end
  end
end

local function tensor(values, shape, dtype)
  return ms.tensor(values, { dtype = dtype }):view(unpack(shape))
end

local TOL = {
  float64 = { mean = 1e-12, spd = 1e-7, out = 1e-5, out_eig = 1e-11 },
  float32 = { mean = 1e-5, spd = 1e-4, out = 1e-4, out_eig = 1e-4 },
}

describe('spsa_hessian against the Qiskit reference', function()
  for _, case in ipairs { 'identity', 'zeros' } do
    for _, dtype in ipairs { 'float64', 'float32' } do
      it(('replays the %s-initialised run in %s'):format(case, dtype), function()
        local c, tol = fx[case], TOL[dtype]
        local d = c.d
        local st = Hs.new(d, ms.zeros(1, { dtype = dtype }), c.initial)
        for k, s in ipairs(c.steps) do
          local d1, d2, coef
          if s.n == 1 then   -- the single-direction form: a number and [d] tensors
            d1, d2, coef = tensor(s.delta1, { d }, dtype), tensor(s.delta2, { d }, dtype), s.coef[1]
          else
            d1, d2, coef = tensor(s.delta1, { s.n, d }, dtype), tensor(s.delta2, { s.n, d }, dtype), s.coef
          end
          Hs.update(st, coef, d1, d2)
          assert.are.equal(k, st.count)
          assert_near(st.mean, s.mean, tol.mean, ('step %d mean'):format(k))
          for _, p in ipairs(s.pre) do
            local g = tensor(s.g, { d }, dtype)
            assert_near(Hs.spd(st, p.reg), p.spd, tol.spd, ('step %d spd (reg %g)'):format(k, p.reg))
            local out = Hs.precondition(st, g, p.reg)
            assert_near(out, p.out, tol.out, ('step %d out (reg %g)'):format(k, p.reg))
            assert_near(out, p.out_eig, tol.out_eig, ('step %d out_eig (reg %g)'):format(k, p.reg))
            -- in place: out = g
            Hs.precondition(st, g, p.reg, g)
            assert_near(g, p.out, tol.out, ('step %d in place'):format(k))
          end
        end
      end)
    end
  end
end)

describe('spsa_hessian', function()
  it('counts iterations as Qiskit: the initial matrix weighs one sample', function()
    local st = Hs.new(2, ms.zeros(1, { dtype = 'float64' }))
    H.assert_close(st.mean, { { 1, 0 }, { 0, 1 } }, 0)
    assert.are.equal(0, st.count)
    local d1 = ms.tensor({ 1, 1 }, { dtype = 'float64' })
    -- sample = 4 d1 d1ᵀ = [[4,4],[4,4]]; mean_1 = (I + sample)/2
    Hs.update(st, 4, d1, d1)
    H.assert_close(st.mean, { { 2.5, 2 }, { 2, 2.5 } }, 1e-15)
    -- mean_2 = 2/3 mean_1 + 1/3 sample(0) = 2/3 mean_1
    Hs.update(st, 0, d1, d1)
    H.assert_close(st.mean, { { 5 / 3, 4 / 3 }, { 4 / 3, 5 / 3 } }, 1e-15)
    assert.are.equal(2, st.count)
  end)

  it('applies the preconditioner only after hessian_delay iterations', function()
    local st = Hs.new(3, ms.zeros(1))
    assert.is_false(Hs.active(st, 0))
    Hs.update(st, 1, ms.ones(3), ms.ones(3))
    assert.is_true(Hs.active(st, 0))        -- delay 0: from iteration 1 on
    assert.is_false(Hs.active(st, 1))
    Hs.update(st, 1, ms.ones(3), ms.ones(3))
    assert.is_true(Hs.active(st, 1))        -- iteration 2 > 1
    assert.is_false(Hs.active(st, 2))
    H.assert_error(function() Hs.active(st, -1) end, 'hessian_delay', '-1')
  end)

  it('preconditions with (|H| + reg I)^-1 on an indefinite mean', function()
    local st = Hs.new(2, ms.zeros(1, { dtype = 'float64' }), ms.tensor({ { 2, 0 }, { 0, -4 } }, { dtype = 'float64' }))
    local out = Hs.precondition(st, ms.tensor({ 1, 1 }, { dtype = 'float64' }), 0.5)
    H.assert_close(out, { 1 / 2.5, 1 / 4.5 }, 1e-15)
    H.assert_close(Hs.spd(st, 0.5), { { 2.5, 0 }, { 0, 4.5 } }, 1e-15)
  end)

  it('converges to the Hessian of a quadratic', function()
    local d = 5
    local A = ms.tensor({ { 3, 1, 0, -1, 0.5 }, { 1, 2, 0.5, 0, 0 }, { 0, 0.5, -2, 1, 0 },
                          { -1, 0, 1, 1, 0.3 }, { 0.5, 0, 0, 0.3, 1.5 } }, { dtype = 'float64' })
    local b = ms.tensor({ 0.1, -0.2, 0.3, 0, 1 }, { dtype = 'float64' })
    local theta = ms.tensor({ 0.5, -1, 2, 0.3, -0.7 }, { dtype = 'float64' })
    local function y(x) return 0.5 * ms.dot(x, ms.matmul(A, x:view(d, 1)):view(d)) + ms.dot(b, x) end
    local eps = 0.25
    local st = Hs.new(d, theta, 'zeros')
    local d1, d2 = ms.empty(d, { dtype = 'float64' }), ms.empty(d, { dtype = 'float64' })
    local errs = {}
    ms.manual_seed(7)
    for k = 1, 40000 do
      d1:rademacher_(); d2:rademacher_()
      local p, m = theta + d1 * eps, theta - d1 * eps
      local coef = ((y(p + d2 * eps) - y(p)) - (y(m + d2 * eps) - y(m))) / (2 * eps ^ 2)
      -- the caller's coefficient is exactly Δ1ᵀ A Δ2 for a quadratic
      if k <= 100 then
        assert.is_true(math.abs(coef - ms.dot(d1, ms.matmul(A, d2:view(d, 1)):view(d))) < 1e-12)
      end
      Hs.update(st, coef, d1, d2)
      if k == 1000 or k == 40000 then
        -- Qiskit's (mean_0 + sum)/(k+1) from zeros: rescale to the plain mean of k samples
        errs[k] = (st.mean * ((k + 1) / k) - A):abs():max()
      end
    end
    assert.is_true(errs[40000] <= 0.12, ('max error %.3g after 40000 iterations'):format(errs[40000]))
    assert.is_true(errs[40000] < errs[1000], 'the error falls')
    -- and the preconditioner is then close to A^-1 on the positive-definite part's scale:
    -- compare with the preconditioner of the exact A
    local exact = Hs.new(d, theta, A)
    local g = ms.tensor({ 1, -1, 0.5, 2, 0 }, { dtype = 'float64' })
    st.mean:mul_(40001 / 40000)
    local got, want = Hs.precondition(st, g, 0.01), Hs.precondition(exact, g, 0.01)
    assert.is_true((got - want):abs():max() <= 0.1 * want:abs():max(), 'preconditioned gradient')
  end)

  it('saves and loads its state, checked', function()
    local st = Hs.new(3, ms.zeros(1))
    Hs.update(st, 2, ms.tensor({ 1, -1, 1 }), ms.tensor({ 1, 1, -1 }))
    local s = Hs.save(st)
    assert.are.equal(1, s.count)
    assert.are_not.equal(st.mean, s.mean)    -- a copy
    local back = Hs.load('SPSA.load_state', s, 3, ms.zeros(1, { dtype = 'float64' }))
    assert.are.equal('float64', back.mean.dtype)
    assert.are.equal(1, back.count)
    H.assert_close(back.mean, st.mean, 0)
    Hs.update(back, 1, ms.ones(3, { dtype = 'float64' }), ms.ones(3, { dtype = 'float64' }))
    Hs.update(st, 1, ms.ones(3), ms.ones(3))
    H.assert_close(back.mean, st.mean, 1e-6)
    local who = 'SPSA.load_state'
    H.assert_error(function() Hs.load(who, 7) end, who, 'is 7', 'count =, mean =')
    H.assert_error(function() Hs.load(who, { count = -1, mean = s.mean }) end, who, 'count', '-1')
    H.assert_error(function() Hs.load(who, { count = 1.5, mean = s.mean }) end, who, 'count', '1.5')
    H.assert_error(function() Hs.load(who, { count = 1, mean = ms.zeros(2, 3) }) end, who, 'mean', '[2,3]')
    H.assert_error(function() Hs.load(who, { count = 1, mean = s.mean }, 4) end, who, 'mean', 'expected a live float [4,4]')
    H.assert_error(function() Hs.load(who, { count = 1, mean = s.mean, extra = 1 }) end, who, '"extra"')
    local bad = s.mean:clone(); bad:set(2, 3, 0 / 0)
    H.assert_error(function() Hs.load(who, { count = 1, mean = bad }) end, who, 'non-finite')
  end)

  it('refuses bad arguments, naming the caller', function()
    local st = Hs.new(3, ms.zeros(1))
    local u = ms.ones(3)
    H.assert_error(function() Hs.update(st, 0 / 0, u, u) end, 'SPSA.step', 'coefficient is nan', 'finite')
    H.assert_error(function() Hs.update(st, { 1, math.huge }, ms.ones(2, 3), ms.ones(2, 3)) end,
                   'SPSA.step', 'coefficient[2] is inf')
    H.assert_error(function() Hs.update(st, 1, ms.ones(4), u) end, 'SPSA.step', 'delta1', '[4]', 'expected [3]')
    H.assert_error(function() Hs.update(st, { 1, 2 }, ms.ones(3, 3), ms.ones(2, 3)) end, 'delta1', 'expected [3] or [2,3]')
    H.assert_error(function() Hs.update(st, 1, u, ms.ones(3, { dtype = 'float64' })) end, 'delta2', 'float64', 'expected float32')
    H.assert_error(function() Hs.update({}, 1, u, u) end, 'Hessian state')
    H.assert_error(function() Hs.precondition(st, u, -1) end, 'regularization', '-1')
    H.assert_error(function() Hs.precondition(st, ms.ones(4), 0.1) end, 'gradient', '4')
    local z = Hs.new(3, ms.zeros(1), 'zeros')
    H.assert_error(function() Hs.precondition(z, u, 0) end, 'SPSA.step', 'singular', 'regularization > 0')
    H.assert_error(function() Hs.new(0, ms.zeros(1)) end, 'SPSA', 'd', '0')
    H.assert_error(function() Hs.new(3, ms.zeros(1), 'eye') end, 'initial_hessian', '"eye"', '"identity" or "zeros"')
    H.assert_error(function() Hs.new(3, ms.zeros(1), ms.zeros(2, 2)) end, 'initial_hessian', '[3,3]')
    H.assert_error(function() Hs.new(3, ms.zeros(1, { dtype = 'int64' })) end, 'like', 'float32 or float64')
  end)
end)
