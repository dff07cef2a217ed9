-- ms.linalg.eigh / ms.linalg.solve (runtime/linalg.c over LAPACK).
-- eigh: a known 3x3 (eigenvalues 3 - sqrt 3, 3, 3 + sqrt 3), random symmetric positive
-- definite and indefinite matrices (A V = V Λ, Vᵀ V = I, ascending Λ, trace), the lower
-- triangle only. solve: a known system, random general matrices (residual), b [d] and
-- [d,k], strided operands. Tolerances, relative to max(1, |A|): float64 1e-12 (1e-14 seen),
-- float32 1e-5 (computed in float64, rounded once: ~1e-7 seen).
local ms = require 'moonstep'
local H = require 'helper'

local TOL = { float64 = 1e-12, float32 = 1e-5 }

-- A [d,d] tensor of pseudo-random values in [-1, 1).
local function random_matrix(d, seed, dtype)
  return (H.random_tensor({ d, d }, seed, { dtype = 'float64' })):to(dtype)
end

-- The largest |x| of a tensor, as a number.
local function absmax(t) return t:abs():max() end

-- Symmetric: (M + Mᵀ)/2; SPD: M Mᵀ + d I; indefinite: symmetric with a shifted spectrum.
local function symmetric(m) return (m + m:t()):mul(0.5) end

local function check_eigh(a, vals, vecs, tol)
  local d = a:size(1)
  local scale = math.max(1, absmax(a))
  local av = ms.matmul(a, vecs)
  local vl = vecs * vals:view(1, d)
  assert.is_true(absmax(av - vl) <= tol * scale, 'A V = V L')
  local vtv = ms.matmul(vecs, vecs, { transpose_a = true })
  local eye = ms.zeros(d, d, { dtype = a.dtype })
  for i = 1, d do eye:set(i, i, 1) end
  assert.is_true(absmax(vtv - eye) <= tol, 'V^T V = I')
  for i = 2, d do assert.is_true(vals:get(i - 1) <= vals:get(i), 'ascending') end
  local trace = 0
  for i = 1, d do trace = trace + a:get(i, i) end
  assert.is_true(math.abs(vals:sum() - trace) <= tol * scale * d, 'sum of eigenvalues = trace')
end

describe('linalg.eigh', function()
  it('decomposes a known 3x3 matrix', function()
    local a = ms.tensor({ { 2, 1, 0 }, { 1, 3, 1 }, { 0, 1, 4 } }, { dtype = 'float64' })
    local vals, vecs = ms.linalg.eigh(a)
    H.assert_close(vals, { 3 - math.sqrt(3), 3, 3 + math.sqrt(3) }, 1e-14)
    check_eigh(a, vals, vecs, 1e-14)
    -- the eigenvector of 3 is (1, 1, -1)/sqrt 3 up to sign
    local v = vecs:select(2, 2)
    local s = v:get(1) > 0 and 1 or -1
    local r = 1 / math.sqrt(3)
    H.assert_close(v:mul(s), { r, r, -r }, 1e-14)
  end)

  for _, dtype in ipairs { 'float64', 'float32' } do
    for _, d in ipairs { 1, 7, 30 } do
      it(('decomposes random SPD and indefinite %dx%d %s matrices'):format(d, d, dtype), function()
        local m = random_matrix(d, 11 + d, 'float64')
        local spd = ms.matmul(m, m, { transpose_b = true }):add(d):to(dtype)  -- + d everywhere
        for i = 1, d do spd:set(i, i, spd:get(i, i) + d) end
        local indef = symmetric(m):to(dtype)
        for _, a in ipairs { spd, indef } do
          local vals, vecs = ms.linalg.eigh(a)
          assert.are.equal(dtype, vals.dtype)
          assert.are.equal(dtype, vecs.dtype)
          check_eigh(a:double(), vals:double(), vecs:double(), TOL[dtype])
        end
        if d > 1 then
          local vals = ms.linalg.eigh(spd)
          assert.is_true(vals:get(1) > 0, 'SPD: positive eigenvalues')
          local ivals = ms.linalg.eigh(indef)
          assert.is_true(ivals:get(1) < 0 and ivals:get(d) > 0, 'indefinite: both signs')
        end
      end)
    end
  end

  it('reads only the lower triangle', function()
    local a = symmetric(random_matrix(6, 3, 'float64'))
    local junk = a:clone()
    for i = 1, 6 do
      for j = i + 1, 6 do junk:set(i, j, 100 * i + j) end
    end
    junk:set(1, 6, 0 / 0)   -- not even a NaN in the upper triangle is read
    local v1, e1 = ms.linalg.eigh(a)
    local v2, e2 = ms.linalg.eigh(junk)
    H.same_bits(v1, v2, 'eigenvalues')
    H.same_bits(e1, e2, 'eigenvectors')
  end)

  it('takes strided input and an empty matrix', function()
    local a = symmetric(random_matrix(5, 4, 'float64'))
    local wide = ms.zeros(5, 10, { dtype = 'float64' })
    wide:narrow(2, 3, 5):copy_(a)
    local v1 = ms.linalg.eigh(a)
    local v2 = ms.linalg.eigh(wide:narrow(2, 3, 5))
    H.same_bits(v1, v2, 'strided')
    local v0, e0 = ms.linalg.eigh(ms.zeros(0, 0))
    assert.are.equal(0, v0:numel())
    assert.are.equal(0, e0:numel())
  end)

  it('gives the eigenvalues alone through the C ABI (vecs NULL)', function()
    local a = symmetric(random_matrix(8, 31, 'float64'))
    local vals = ms.empty(8, { dtype = 'float64' })
    assert.are.equal(0, ms.C.ms_linalg_eigh(vals, nil, a))
    H.assert_close(vals, (ms.linalg.eigh(a)), 1e-13)
    local both = ms.empty(9, { dtype = 'float64' })
    local v, e = both:narrow(1, 1, 2), both:narrow(1, 1, 4):view(2, 2)
    assert.are.equal(-1, ms.C.ms_linalg_eigh(v, e, ms.ones(2, 2, { dtype = 'float64' })))
    assert.truthy(require('ffi').string(ms.C.ms_last_error()):find("'vecs' and 'vals' share memory", 1, true))
  end)

  it('refuses what it cannot decompose, naming linalg.eigh', function()
    H.assert_error(function() ms.linalg.eigh(ms.zeros(2, 3)) end, 'linalg.eigh', '[2,3]', 'square')
    H.assert_error(function() ms.linalg.eigh(ms.zeros(4)) end, 'linalg.eigh', 'square')
    H.assert_error(function() ms.linalg.eigh({ { 1 } }) end, 'linalg.eigh', 'a table', 'expected a tensor')
    H.assert_error(function() ms.linalg.eigh(ms.zeros(2, 2, { dtype = 'int64' })) end,
                   'linalg.eigh', 'int64', 'float32 or float64')
    local a = ms.zeros(3, 3)
    a:set(3, 1, 0 / 0)
    H.assert_error(function() ms.linalg.eigh(a) end, 'linalg.eigh', 'nan at [3,1]', 'finite')
    a:set(3, 1, math.huge)
    H.assert_error(function() ms.linalg.eigh(a) end, 'linalg.eigh', 'inf at [3,1]')
    local t = ms.zeros(2, 2); t:free()
    H.assert_error(function() ms.linalg.eigh(t) end, 'linalg.eigh', 'freed')
  end)
end)

describe('linalg.solve', function()
  it('solves a known system', function()
    local a = ms.tensor({ { 3, 1 }, { 1, 2 } }, { dtype = 'float64' })
    H.assert_close(ms.linalg.solve(a, ms.tensor({ 9, 8 }, { dtype = 'float64' })), { 2, 3 }, 1e-15)
    -- not symmetric: a x = b, not aᵀ x = b
    local n = ms.tensor({ { 1, 2 }, { 0, 1 } }, { dtype = 'float64' })
    H.assert_close(ms.linalg.solve(n, ms.tensor({ 5, 2 }, { dtype = 'float64' })), { 1, 2 }, 1e-15)
  end)

  for _, dtype in ipairs { 'float64', 'float32' } do
    it('solves random general systems, b [d] and [d,k], ' .. dtype, function()
      for _, d in ipairs { 1, 6, 25 } do
        local a = random_matrix(d, 5 + d, 'float64')
        for i = 1, d do a:set(i, i, a:get(i, i) + 3) end   -- comfortably invertible
        a = a:to(dtype)
        local b1 = (H.random_tensor({ d }, 40 + d, { dtype = 'float64' })):to(dtype)
        local bk = (H.random_tensor({ d, 3 }, 50 + d, { dtype = 'float64' })):to(dtype)
        local x1, xk = ms.linalg.solve(a, b1), ms.linalg.solve(a, bk)
        assert.are.same({ d }, x1:shape())
        assert.are.same({ d, 3 }, xk:shape())
        assert.are.equal(dtype, x1.dtype)
        local ad = a:double()
        local r1 = ms.matmul(ad, x1:double():view(d, 1)):view(d) - b1:double()
        local rk = ms.matmul(ad, xk:double()) - bk:double()
        local tol = TOL[dtype] * math.max(1, absmax(x1:double()), absmax(xk:double()))
        assert.is_true(absmax(r1) <= tol * d, 'residual b [d]')
        assert.is_true(absmax(rk) <= tol * d, 'residual b [d,k]')
        -- each column of the [d,k] solve is the [d] solve of that column
        for j = 1, 3 do
          H.assert_close(xk:select(2, j), ms.linalg.solve(a, bk:select(2, j):contiguous()), TOL[dtype])
        end
      end
    end)
  end

  it('takes transposed (strided) operands', function()
    local a = random_matrix(5, 21, 'float64')
    for i = 1, 5 do a:set(i, i, a:get(i, i) + 3) end
    local b = H.random_tensor({ 2, 5 }, 22, { dtype = 'float64' })
    local x = ms.linalg.solve(a:t(), b:t())
    local want = ms.linalg.solve(a:t():contiguous(), b:t():contiguous())
    H.same_bits(x, want, 'strided vs contiguous')
    H.assert_close(ms.matmul(a:t(), x), b:t(), 1e-12)
  end)

  it('refuses singular and malformed systems, naming linalg.solve', function()
    H.assert_error(function() ms.linalg.solve(ms.zeros(2, 2), ms.zeros(2)) end,
                   'linalg.solve', 'singular')
    H.assert_error(function() ms.linalg.solve(ms.tensor({ { 1, 2 }, { 2, 4 } }), ms.ones(2)) end,
                   'linalg.solve', 'singular')
    -- invertible, but its reciprocal condition number (about 2^-54) is below float64's epsilon
    local near = ms.tensor({ { 1, 1 }, { 1, 1 + 2 ^ -52 } }, { dtype = 'float64' })
    H.assert_error(function() ms.linalg.solve(near, ms.ones(2, { dtype = 'float64' })) end,
                   'linalg.solve', 'singular to working precision', 'reciprocal condition number')
    H.assert_error(function() ms.linalg.solve(ms.zeros(2, 3), ms.zeros(2)) end, 'linalg.solve', 'square')
    H.assert_error(function() ms.linalg.solve(ms.ones(2, 2), ms.zeros(3)) end,
                   'linalg.solve', "'b' has shape [3]", 'expected [2] or [2,k]')
    H.assert_error(function() ms.linalg.solve(ms.ones(2, 2), ms.zeros(2, { dtype = 'float64' })) end,
                   'linalg.solve', 'dtype')
    H.assert_error(function() ms.linalg.solve(ms.ones(2, 2), 3) end, 'linalg.solve', 'b is 3', 'expected a tensor')
    local a = ms.tensor({ { 1, 0 }, { 0, 1 } })
    a:set(1, 2, 0 / 0)   -- solve reads the whole matrix
    H.assert_error(function() ms.linalg.solve(a, ms.ones(2)) end, 'linalg.solve', "'a' holds nan at [1,2]")
    local b = ms.ones(2); b:set(2, -math.huge)
    H.assert_error(function() ms.linalg.solve(ms.tensor({ { 1, 0 }, { 0, 1 } }), b) end,
                   'linalg.solve', "'b' holds -inf at [2]")
    local bk = ms.ones(2, 3); bk:set(1, 3, 0 / 0)
    H.assert_error(function() ms.linalg.solve(ms.tensor({ { 1, 0 }, { 0, 1 } }), bk) end,
                   'linalg.solve', "'b' holds nan at [1,3]")
  end)
end)

describe('linalg on the GPU', function()
  local gpu = ms.cuda.is_available()
  local function gpu_it(name, f) if gpu then it(name, f) else pending(name .. ' (no GPU)') end end
  gpu_it('copies CUDA operands to the host and the results back', function()
    local a = symmetric(random_matrix(6, 9, 'float64')):float()
    for i = 1, 6 do a:set(i, i, a:get(i, i) + 3) end
    local vals, vecs = ms.linalg.eigh(a:cuda())
    assert.are.equal('cuda', vals.device)
    assert.are.equal('cuda', vecs.device)
    local cv, ce = ms.linalg.eigh(a)
    H.same_bits(vals:cpu(), cv, 'eigenvalues')
    H.same_bits(vecs:cpu(), ce, 'eigenvectors')
    local b = ms.ones(6, 2)
    local x = ms.linalg.solve(a:cuda(), b:cuda())
    assert.are.equal('cuda', x.device)
    H.same_bits(x:cpu(), ms.linalg.solve(a, b), 'solve')
  end)
end)
