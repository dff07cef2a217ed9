-- optim.spsa_hessian — 2-SPSA's smoothed Hessian estimate and its preconditioner, over
-- flat tensors of the d parameters (Spall 2000; Qiskit's SPSA(second_order=True)).
--
--   local H = require 'moonstep.optim.spsa_hessian'
--   local st = H.new(d, like [, initial])  -- {mean = [d,d] like `like`, count = 0}
--   H.update(st, coef, delta1, delta2)     -- one iteration's sample into the running mean
--   if H.active(st, hessian_delay) then H.precondition(st, g, regularization, g) end
--   local s = H.save(st); st = H.load(who, s [, d, like])
--
-- The caller evaluates the loss y at four points per direction pair (Rademacher delta1,
-- delta2 of d entries, perturbation eps) and passes the scalar
--   coef = [(y(θ+εΔ1+εΔ2) − y(θ+εΔ1)) − (y(θ−εΔ1+εΔ2) − y(θ−εΔ1))] / (2ε²)
-- (for a quadratic ½θᵀAθ + bᵀθ it is exactly Δ1ᵀAΔ2). The sample is
--   Ĥ = coef (Δ1Δ2ᵀ + Δ2Δ1ᵀ) / 2,
-- whose expectation over independent Rademacher Δ's is the Hessian. With n resamplings per
-- iteration (coef a list of n numbers, delta1/delta2 [n,d] with one direction per row) the
-- iteration's sample is the mean of the n samples, as Qiskit's _point_estimate.
--
-- Running mean, Qiskit's formula and count convention (SPSA._compute_update): at iteration
-- k = 1, 2, ... (1-based; st.count is the number of updates so far, so k = count + 1)
--   mean_k = k/(k+1) mean_{k-1} + Ĥ_k/(k+1),
-- i.e. mean_k = (mean_0 + Ĥ_1 + ... + Ĥ_k)/(k+1): the initial matrix counts as one sample.
-- Qiskit starts from mean_0 = the identity (its initial_hessian default); H.new takes
-- initial = 'identity' (the default, Qiskit's) | 'zeros' | a [d,d] tensor. From zeros the
-- first iterates are shrunk towards 0 (mean_1 = Ĥ_1/2, of rank <= 2), which makes the
-- preconditioner ≈ regularization·I in every other direction (a 1/regularization step).
--
-- hessian_delay (Qiskit's semantics): the mean is updated at every iteration, and the
-- gradient is preconditioned at iteration k only when k > hessian_delay, k counted after
-- this iteration's update: H.active(st, delay) = st.count > delay. Delay 0 preconditions
-- from the first iteration on.
--
-- Preconditioner: Qiskit solves (sqrtm(S·S) + reg·I) x = g with S the mean (scipy's sqrtm,
-- then np.linalg.solve). S is symmetric, S = V Λ Vᵀ (eigh), so S·S = V Λ² Vᵀ and its principal
-- (positive semi-definite) square root is V |Λ| Vᵀ, exactly what scipy's sqrtm returns for a
-- symmetric matrix (up to rounding: sqrtm of the rounded S·S loses about half the digits of
-- eigenvalues near 0, the eigen form does not). Hence
--   x = V diag(1 / (|λ| + reg)) Vᵀ g,
-- one eigh and two matrix-vector products, no solve. reg must be >= 0; a zero |λ| + reg is
-- an error (a singular preconditioner), as np.linalg.solve's.
local ms = require 'moonstep'
local check = require 'moonstep.check'

local M = {}

local INITIAL = { 'identity', 'zeros' }

local function plain(v) return type(v) == 'table' and getmetatable(v) == nil end

local function float_like(who, like)
  check.tensor(who, 'like', like)
  if like.dtype ~= 'float32' and like.dtype ~= 'float64' then
    check.fail('%s: like is %s, expected a float32 or float64 tensor', who, check.describe(like))
  end
  return like
end

-- A state for d parameters, its mean on like's dtype and device.
function M.new(d, like, initial, who)
  who = who or 'SPSA'
  d = check.integer(who, 'the parameter count d', d, 1)
  float_like(who, like)
  local opts = { dtype = like.dtype, device = like.device }
  local mean
  if initial == nil or initial == 'identity' then
    -- the identity: a [d, d+1] matrix whose first column is 1, read flat as [d,d]
    local e = ms.zeros(d, d + 1, opts)
    e:narrow(2, 1, 1):fill_(1)
    mean = e:view(-1):narrow(1, 1, d * d):view(d, d):clone()
  elseif ms.is_tensor(initial) then
    check.tensor(who, 'initial_hessian', initial)
    if initial.ndim ~= 2 or initial:size(1) ~= d or initial:size(2) ~= d then
      check.fail('%s: initial_hessian is %s, expected a [%d,%d] matrix', who, check.describe(initial), d, d)
    end
    mean = ms.zeros(d, d, opts):copy_(initial)
  else
    check.oneof(who, 'initial_hessian', initial, INITIAL)
    mean = ms.zeros(d, d, opts)
  end
  return { mean = mean, count = 0 }
end

local function check_state(who, st)
  if not plain(st) or not ms.is_tensor(rawget(st, 'mean')) or type(rawget(st, 'count')) ~= 'number' then
    check.fail('%s: Hessian state is %s, expected the table spsa_hessian.new returns', who, check.describe(st))
  end
  return st.mean:size(1)
end

-- A direction argument: [d] (one direction) or [n,d], on the mean's dtype and device.
local function directions(who, name, v, n, d, mean)
  check.tensor(who, name, v)
  local ok = (v.ndim == 1 and n == 1 and v:size(1) == d) or (v.ndim == 2 and v:size(1) == n and v:size(2) == d)
  if not ok then
    check.fail('%s: %s is %s, expected [%d] or [%d,%d] (one direction per row)', who, name, check.describe(v), d, n, d)
  end
  if v.dtype ~= mean.dtype or v.device ~= mean.device then
    check.fail('%s: %s is %s on %s, expected %s on %s (the Hessian estimate\'s)', who, name,
               check.describe(v), v.device, mean.dtype, mean.device)
  end
  return v:view(n, d)
end

-- The running mean over iterations (see the header): coef a number with [d] directions,
-- or a list of n numbers with [n,d] directions (n resamplings, averaged).
function M.update(st, coef, delta1, delta2, who)
  who = who or 'SPSA.step'
  local d = check_state(who, st)
  local coefs = type(coef) == 'table' and coef or { coef }
  local n = #coefs
  if n == 0 then check.fail('%s: coef is an empty list, expected a number or a list of numbers', who) end
  for i = 1, n do
    if type(coefs[i]) ~= 'number' or coefs[i] ~= coefs[i] or math.abs(coefs[i]) == math.huge then
      check.fail('%s: the 2-SPSA coefficient%s is %s, expected a finite number (a loss evaluation was not finite?)',
                 who, n > 1 and ('[' .. i .. ']') or '', check.describe(coefs[i]))
    end
  end
  local mean = st.mean
  local d1 = directions(who, 'delta1', delta1, n, d, mean)
  local d2 = directions(who, 'delta2', delta2, n, d, mean)
  local k = st.count + 1
  -- mean = k/(k+1) mean + 1/(k+1) * (1/n) sum_i coef_i (d1_i d2_iᵀ + d2_i d1_iᵀ)/2
  --      = beta mean + alpha (D1ᵀ W + Wᵀ D1), W = diag(coef) D2, alpha = 1/(2 n (k+1))
  local w
  if n == 1 then
    w = d2:mul(coefs[1])
  else
    w = d2:mul(ms.tensor(coefs, { dtype = mean.dtype, device = mean.device }):view(n, 1))
  end
  local alpha = 1 / (2 * n * (k + 1))
  ms.matmul(d1, w, { transpose_a = true, out = mean, alpha = alpha, beta = k / (k + 1) })
  ms.matmul(w, d1, { transpose_a = true, out = mean, alpha = alpha, beta = 1 })
  st.count = k
  return st
end

-- Whether the preconditioner is in force (Qiskit: iteration k > hessian_delay).
function M.active(st, hessian_delay, who)
  who = who or 'SPSA.step'
  check_state(who, st)
  return st.count > check.integer(who, 'hessian_delay', hessian_delay or 0, 0)
end

-- V, and 1/(|λ| + reg) as a [d] tensor: the preconditioner's eigen form.
local function eigen(who, st, reg)
  reg = check.number(who, 'regularization', reg, 0)
  local vals, vecs = ms.linalg.eigh(st.mean)
  local denom = vals:abs():add(reg)
  local lo = denom:min()
  if not (lo > 0) then
    check.fail('%s: the 2-SPSA preconditioner |H| + regularization·I is singular (smallest eigenvalue %s, ' ..
               'regularization %s), expected regularization > 0', who, check.describe(lo), check.describe(reg))
  end
  return vecs, denom
end

-- out = (sqrtm(mean·mean) + reg·I)^{-1} g = V diag(1/(|λ| + reg)) Vᵀ g; g and out [d]
-- (out may be g itself; nil: a new tensor).
function M.precondition(st, g, regularization, out, who)
  who = who or 'SPSA.step'
  local d = check_state(who, st)
  check.tensor(who, 'gradient', g)
  if g:numel() ~= d or g.dtype ~= st.mean.dtype or g.device ~= st.mean.device then
    check.fail('%s: gradient is %s, expected %d elements of %s on %s (the Hessian estimate\'s)', who,
               check.describe(g), d, st.mean.dtype, st.mean.device)
  end
  if out ~= nil then
    check.tensor(who, 'out', out)
    if out:numel() ~= d or out.dtype ~= g.dtype or out.device ~= g.device or not out:is_contiguous() then
      check.fail('%s: out is %s, expected a contiguous tensor of %d elements like the gradient', who,
                 check.describe(out), d)
    end
  end
  local vecs, denom = eigen(who, st, regularization)
  local y = ms.matmul(vecs, g:contiguous():view(d, 1), { transpose_a = true }):view(d)
  y:div_(denom)
  local res = ms.matmul(vecs, y:view(d, 1)):view(d)
  if out == nil then return g.ndim == 1 and res or res:view(g:shape()) end
  out:view(d):copy_(res)
  return out
end

-- Qiskit's SPD matrix sqrtm(mean·mean) + reg·I (= V (|Λ| + reg) Vᵀ), for inspection.
function M.spd(st, regularization, who)
  who = who or 'SPSA'
  check_state(who, st)
  local vecs, denom = eigen(who, st, regularization)
  return ms.matmul(vecs:mul(denom:view(1, -1)), vecs, { transpose_b = true })
end

-- The state as a plain table of a number and a tensor (a copy).
function M.save(st, who)
  check_state(who or 'SPSA.state', st)
  return { count = st.count, mean = st.mean:clone() }
end

-- A state from save()'s table, checked before anything is made: count an integer >= 0,
-- mean a float [d,d] matrix of finite values (d given: that size). The mean is copied
-- onto like's dtype and device when like is given, else kept as it is (a copy).
function M.load(who, s, d, like)
  if not plain(s) then
    check.fail('%s: the 2-SPSA Hessian state is %s, expected the table {count =, mean =} spsa_hessian.save returns',
               who, check.describe(s))
  end
  for k in pairs(s) do
    if k ~= 'count' and k ~= 'mean' then
      check.fail('%s: the 2-SPSA Hessian state holds %s, expected only count and mean', who, check.describe(k))
    end
  end
  local count = check.integer(who, 'the 2-SPSA Hessian state\'s count', s.count, 0, 2 ^ 53 - 1)
  local mean = s.mean
  if not ms.is_tensor(mean) or check.is_freed(mean) or (mean.dtype ~= 'float32' and mean.dtype ~= 'float64')
     or mean.ndim ~= 2 or mean:size(1) ~= mean:size(2) or (d ~= nil and mean:size(1) ~= d) then
    check.fail('%s: the 2-SPSA Hessian state\'s mean is %s, expected a live float [%s,%s] tensor', who,
               check.describe(mean), d and tostring(d) or 'd', d and tostring(d) or 'd')
  end
  local bad = mean:mul(0):sum()
  if bad ~= 0 then
    check.fail('%s: the 2-SPSA Hessian state\'s mean holds non-finite values, expected finite ones', who)
  end
  if like ~= nil then float_like(who, like) end
  local n = mean:size(1)
  local copy = ms.zeros(n, n, { dtype = like and like.dtype or mean.dtype, device = like and like.device or mean.device })
  copy:copy_(mean)
  return { mean = copy, count = count }
end

return M
