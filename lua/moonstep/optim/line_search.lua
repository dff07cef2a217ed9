-- optim.line_search — the strong Wolfe line search L-BFGS uses (line_search_fn =
-- 'strong_wolfe'), with the semantics of torch.optim.LBFGS's (itself a port of Torch7's
-- optim.lswolfe / polyinterp): bracket a step length satisfying the strong Wolfe
-- conditions, then zoom into the bracket by safeguarded cubic interpolation.
--
--   t = ls.cubic_min(x1, f1, g1, x2, f2, g2 [, lo, hi])
--       the minimiser of the cubic through (x1, f1) and (x2, f2) with slopes g1 and g2,
--       clamped to [lo, hi] (default: the interval between x1 and x2); the midpoint of
--       [lo, hi] when the cubic has no real minimiser.
--
--   f, g, t, evals = ls.strong_wolfe(p)
--     p.eval(t)    evaluates the objective at x + t d (the caller moves the weights and
--                  runs the closure); returns the loss, the gradient left in p.grad
--     p.grad       the tensor the gradient of the last evaluation is in (overwritten by
--                  the next evaluation)
--     p.d          the search direction;  p.d_norm = max |d|
--     p.pool       three gradient-sized tensors the search copies kept gradients into
--     p.t          the first trial step;  p.f, p.g, p.gtd: loss, gradient (a tensor the
--                  search only reads) and slope g.d at t = 0
--     p.dot(a, b)  the dot product to use (the caller's deterministic reduction)
--     optional: p.c1 (1e-4, sufficient decrease), p.c2 (0.9, curvature),
--               p.tolerance_change (1e-9, smallest bracket |t1 - t2| * max |d|),
--               p.max_ls (25, most evaluations)
--   Returns the loss, the gradient (p.g or one of p.pool) and the step length of the
--   accepted point, and the number of evaluations made. torch.optim.LBFGS calls its search
--   with these default constants whatever its own tolerance_change: so does LBFGS.lua.
--
-- Gradients are kept by reference: a trial's gradient is copied from p.grad into a pool
-- tensor no bracket end (or the previous trial) still holds, so at most three copies exist
-- at once (torch clones one per trial).
local M = {}

M.C1, M.C2, M.TOLERANCE_CHANGE, M.MAX_LS = 1e-4, 0.9, 1e-9, 25

local abs, sqrt = math.abs, math.sqrt

-- min and max of two numbers as Python's builtins compute them: the first argument
-- unless the second is strictly smaller (larger); a NaN first argument stays.
local function pmin(a, b) if b < a then return b end return a end
local function pmax(a, b) if b > a then return b end return a end
M.pmin, M.pmax = pmin, pmax

function M.cubic_min(x1, f1, g1, x2, f2, g2, lo, hi)
  if lo == nil then
    if x1 <= x2 then lo, hi = x1, x2 else lo, hi = x2, x1 end
  end
  -- With d1 = g1 + g2 - 3 (f1 - f2) / (x1 - x2) and d2 = sqrt(d1^2 - g1 g2), the
  -- minimiser measured from the farther point x2 is x2 - (x2 - x1) (g2 + d2 - d1) /
  -- (g2 - g1 + 2 d2) (with the roles swapped when x2 < x1).
  local d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
  local disc = d1 * d1 - g1 * g2
  if disc >= 0 then
    local d2 = sqrt(disc)
    local m
    if x1 <= x2 then
      m = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else
      m = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    end
    return pmin(pmax(m, lo), hi)
  end
  return (lo + hi) / 2
end

local cubic_min = M.cubic_min

-- A pool tensor none of a, b, c refers to.
local function free_slot(pool, a, b, c)
  for _, x in ipairs(pool) do
    if x ~= a and x ~= b and x ~= c then return x end
  end
  error('line_search: no free gradient buffer (internal error)')
end

function M.strong_wolfe(p)
  local c1, c2 = p.c1 or M.C1, p.c2 or M.C2
  local tol, max_ls = p.tolerance_change or M.TOLERANCE_CHANGE, p.max_ls or M.MAX_LS
  local d, pool, dot = p.d, p.pool, p.dot
  local f, g, gtd, t = p.f, p.g, p.gtd, p.t
  local d_norm = p.d_norm

  -- evaluate at t; keep the gradient in a pool tensor other than the ones listed
  local function trial(at, k1, k2, k3)
    local fv = p.eval(at)
    local gtdv = dot(p.grad, d)
    local kept = free_slot(pool, k1, k2, k3)
    kept:copy_(p.grad)
    return fv, kept, gtdv
  end

  local f_new, g_new, gtd_new = trial(t, g)
  local evals = 1

  -- Phase 1: grow the step until an interval [t_prev, t] brackets an acceptable point
  -- (or t itself is one).
  local t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
  local done, iter = false, 0
  local bt, bf, bg, bgtd                -- the bracket: steps, losses, gradients, slopes
  while iter < max_ls do
    if f_new > f + c1 * t * gtd or (iter > 1 and f_new >= f_prev) then
      bt, bf, bg, bgtd = { t_prev, t }, { f_prev, f_new }, { g_prev, g_new }, { gtd_prev, gtd_new }
      break
    end
    if abs(gtd_new) <= -c2 * gtd then   -- strong Wolfe conditions hold at t
      bt, bf, bg = { t }, { f_new }, { g_new }
      done = true
      break
    end
    if gtd_new >= 0 then                -- the slope turned: the minimum is behind t
      bt, bf, bg, bgtd = { t_prev, t }, { f_prev, f_new }, { g_prev, g_new }, { gtd_prev, gtd_new }
      break
    end
    -- extrapolate: a cubic step within [t + 0.01 (t - t_prev), 10 t]
    local lo, hi = t + 0.01 * (t - t_prev), t * 10
    local prev = t
    t = cubic_min(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, lo, hi)
    t_prev, f_prev, g_prev, gtd_prev = prev, f_new, g_new, gtd_new
    f_new, g_new, gtd_new = trial(t, g, g_prev)
    evals = evals + 1
    iter = iter + 1
  end
  if iter == max_ls then                -- out of evaluations: the better of 0 and t
    bt, bf, bg = { 0, t }, { f, f_new }, { g, g_new }
  end

  -- Phase 2 (zoom): shrink the bracket around a point satisfying the conditions.
  local insufficient = false
  local low, high = 1, 2
  if not (bf[1] <= bf[#bf]) then low, high = 2, 1 end
  while not done and iter < max_ls do
    if abs(bt[2] - bt[1]) * d_norm < tol then break end   -- the bracket is too small
    t = cubic_min(bt[1], bf[1], bgtd[1], bt[2], bf[2], bgtd[2])
    -- A trial within a tenth of the bracket from one end counts as little progress: at
    -- an end, or twice in a row, it is moved to a tenth of the bracket from the nearer end.
    local top, bottom = pmax(bt[1], bt[2]), pmin(bt[1], bt[2])
    local eps = 0.1 * (top - bottom)
    if pmin(top - t, t - bottom) < eps then
      if insufficient or t >= top or t <= bottom then
        if abs(t - top) < abs(t - bottom) then t = top - eps else t = bottom + eps end
        insufficient = false
      else
        insufficient = true
      end
    else
      insufficient = false
    end
    f_new, g_new, gtd_new = trial(t, g, bg[1], bg[2])
    evals = evals + 1
    iter = iter + 1
    if f_new > f + c1 * t * gtd or f_new >= bf[low] then
      -- not a sufficient decrease, or no lower than the low end: the new high end
      bt[high], bf[high], bg[high], bgtd[high] = t, f_new, g_new, gtd_new
      if bf[1] <= bf[2] then low, high = 1, 2 else low, high = 2, 1 end
    else
      if abs(gtd_new) <= -c2 * gtd then
        done = true
      elseif gtd_new * (bt[high] - bt[low]) >= 0 then
        -- the minimum lies between the old low end and t: the old low end becomes high
        bt[high], bf[high], bg[high], bgtd[high] = bt[low], bf[low], bg[low], bgtd[low]
      end
      bt[low], bf[low], bg[low], bgtd[low] = t, f_new, g_new, gtd_new
    end
  end
  return bf[low], bg[low], bt[low], evals
end

return M
