-- moonstep.linalg — dense linear algebra on small matrices (LAPACK, runtime/linalg.c).
--
--   local vals, vecs = ms.linalg.eigh(a)   -- a [d,d] symmetric: a = vecs diag(vals) vecs^T
--   local x = ms.linalg.solve(a, b)        -- a [d,d] invertible, b [d] or [d,k]: a x = b
--
-- eigh reads only the lower triangle of a (the upper one is never read, as numpy's and
-- torch's eigh with their default UPLO='L'); vals are ascending, vecs holds orthonormal
-- eigenvectors as columns (each one's sign is LAPACK's choice). solve refuses a singular
-- matrix, or one singular to float64 working precision (reciprocal condition number below
-- 2^-52), instead of returning garbage. Both compute in float64 on the host and round
-- the results once to a's dtype: float32 and float64 tensors, CPU or CUDA (a CUDA operand
-- is copied to the host and the results back; meant for small d, as 2-SPSA's Hessian).
-- A NaN or infinite input element is an error naming it.
local core = require 'moonstep.core'
local B = require 'moonstep.tensor_base'
local check = require 'moonstep.check'
local C = core.C

local M = {}

local function matrix(fn, a)
  B.live(fn, a, 'a')
  if a.ndim ~= 2 or a.sizes[0] ~= a.sizes[1] then
    check.fail('%s: a is %s, expected a square matrix [d,d]', fn, check.describe(a))
  end
  return a
end

function M.eigh(a)
  local fn = 'linalg.eigh'
  matrix(fn, a)
  local dev = B.device_id(a, fn)
  local vals = B.empty(fn, { tonumber(a.sizes[0]) }, a.dtype_id, dev)
  local vecs = B.empty_like(fn, a)
  if C.ms_linalg_eigh(vals, vecs, a) ~= 0 then B.fail(fn) end
  return vals, vecs
end

function M.solve(a, b)
  local fn = 'linalg.solve'
  matrix(fn, a)
  B.live(fn, b, 'b')
  local x = B.empty_like(fn, b)
  if C.ms_linalg_solve(x, a, b) ~= 0 then B.fail(fn) end
  return x
end

-- (the autograd tape in front: solve has a rule; eigh is refused on a tracked tensor)
return check.strict(require('moonstep.autograd.install').install(M, 'linalg.'), 'ms.linalg')
