-- optim.acme_scalars — ACME's per-group scalar arithmetic, in float64 (optim/ACME.lua
-- runs the fused passes around it): the line model of the loss along the step (spec
-- ../shared/reference/acme_autosgm.md section 1.6, with the stable cubic root), the
-- momentum-norm growth limiter (section 1.5 step 4) and the internal cosine (step 12).
--   line_model(l0, l1, a0, a1, h, beta, signif, grow, shrink, flat) -> target, lr_opt, code
--   limiter(pg, pp, gg, beta1, F) -> kappa in (0, 1]
--   schedule(v, t, periodic) -> the multiplier at group step t
local M = {}
local huge, sqrt, cos, pi, min, max = math.huge, math.sqrt, math.cos, math.pi, math.min, math.max

local function finite(x) return x == x and x ~= huge and x ~= -huge end

-- The line model (spec section 1.6): from L0 = phi(0), L1 = phi(h), a0 = -phi'(0),
-- a1 = -phi'(h) and the trial step h: the target of the step-size EMA, the step applied
-- when the trial was worse, and the branch code 0..7 (the constants: see the options).
function M.line_model(l0, l1, g0, g1, h, beta, signif, grow, shrink, flat)
  local imp = l1 <= l0
  -- the reference's test is |dl| > max(l0, l1) / 1e4 (1 / 1e-4 is exactly 1e4)
  local sig = math.abs(l0 - l1) > max(l0, l1) / (1 / signif)
  local d = l1 - l0
  local lr_opt = imp and h or 0
  local target, code
  local function fallback() return imp and h or 0, lr_opt end   -- code 7's values
  if not sig then
    target, code = imp and flat * h or h, 0
  elseif g0 > 0 and g1 < 0 then
    -- cubic Hermite p(a) = A a^3 + B a^2 + C a + l0, minimiser g0 / (B + sqrt(B^2 - 3AC))
    local A = -(g0 + g1) / (h * h) - 2 * d / (h * h * h)
    local B = (2 * g0 + g1) / h + 3 * d / (h * h)
    local den = B + sqrt(B * B - 3 * A * -g0)
    code = imp and 1 or 2
    if den > 0 and finite(g0 / den) then lr_opt = g0 / den; target = lr_opt
    else target, lr_opt = fallback() end
  elseif imp and g1 < 0 then
    local a2 = -g1 / h - d / (h * h)
    local b2 = g1 + 2 * d / h
    code = 3
    if a2 > 0 and finite(-b2 / a2 / 2) then lr_opt = -b2 / a2 / 2; target = lr_opt
    else target, lr_opt = fallback() end
  elseif not imp and g0 > 0 then
    local a2 = g0 / h + d / (h * h)
    code = 4
    if a2 > 0 and finite(g0 / a2 / 2) then lr_opt = g0 / a2 / 2; target = lr_opt
    else target, lr_opt = fallback() end
  elseif imp and g0 > 0 and g1 > 0 then
    target, code = min(h * (1 + g1 / g0), (grow - beta) / (1 - beta) * h), 5
  elseif not imp and g0 < 0 and g1 < 0 then
    target, code = max(-h * g1 / g0, (shrink - beta) / (1 - beta) * h), 6
  else
    target, code = imp and h or 0, 7
  end
  return target, lr_opt, code
end

-- The limiter's gradient scale: the positive root k of ||b1 m + (1 - b1) k g||_D^2 =
-- F ||m||_D^2, capped at 1 (the reference's operation order).
function M.limiter(pg, pp, gg, b1, F)
  if pp == 0 then return 1 end
  local raiz = sqrt(F * gg * pp - b1 * b1 * gg * pp + b1 * b1 * pg * pg)
  local k = (b1 * pg - raiz) / (gg * (b1 - 1))
  if k < 1 then return k end
  return 1
end

-- The internal cosine at group step t (the reference's s after step t - 1).
function M.schedule(v, t, periodic)
  local x = t - 1
  if not periodic and x > v.schedule_total then x = v.schedule_total end
  return v.schedule_min + (1 - v.schedule_min) * (1 + cos(pi * x / v.schedule_total)) / 2
end

return M
