-- optim.GSAM — Surrogate Gap Guided SAM (Zhuang et al., ICLR'22; the author's PyTorch
-- code; ../shared/reference/sam_family.md §4) around any base optimizer.
--
--   opt = optim.GSAM(model, {base = optim.SGD{lr = 0.1, momentum = 0.9}, rho = 0.05, alpha = 0.4})
--
-- Per step, two closure calls: g1 at w; e = rho_t a g1 / (||a g1|| + perturb_eps); g2 at
-- w + e; w restored; the base steps with d = g2 - alpha g1_perp, where
-- g1_perp = g1 - cos ||g1|| g2 / (||g2|| + eps), cos = <g1, g2> / (||g1|| ||g2|| + eps)
-- (global norms, eps = perturb_eps). alpha = 0 and a constant rho is SAM.
--   alpha = 0.4                 in [0, 1]
--   rho = 0.05                  a number or a schedule of the step; or, as the author's
--   rho_min, rho_max = false    ProportionScheduler, rho follows the base's lr:
--   lr_min = 0, lr_max = false  rho_t = rho_min + (rho_max - rho_min)(lr_t - lr_min) /
--                               (lr_max - lr_min), lr_t the lr of the step being taken
--                               (lr_max false: the base's lr at step 1), kept within
--                               [rho_min, rho_max]; rho_t = rho_max when lr_max = lr_min
-- Plus every option of optim/sharpness.lua. info.cos: the cosine of g1 and g2.
-- Scratch: two copies of the parameters (w and g1: g1 must outlive pass 2).
local check = require 'moonstep.check'
local sharpness = require 'moonstep.optim.sharpness'
local reduce = require 'moonstep.optim.reduce'

local function off_or_nonneg(who, name, v)
  if v ~= false then check.number(who, name, v, 0) end
end

local GSAM = sharpness.define('GSAM',
  { alpha = 0.4, rho_min = false, rho_max = false, lr_min = 0, lr_max = false },
  { alpha = 'unit', rho_min = off_or_nonneg, rho_max = off_or_nonneg, lr_min = 'nonnegative',
    lr_max = off_or_nonneg })

function GSAM:_variant_check(who, v)
  if (v.rho_min == false) ~= (v.rho_max == false) then
    check.fail('%s: rho_min and rho_max go together (rho follows the lr between them), expected both or neither', who)
  end
  if type(v.rho_max) == 'number' and type(v.rho_min) == 'number' and v.rho_max < v.rho_min then
    check.fail('%s: rho_max %s is below rho_min %s', who, check.describe(v.rho_max), check.describe(v.rho_min))
  end
  if v.rho_min == false and (v.lr_max ~= false or (type(v.lr_min) == 'number' and v.lr_min ~= 0)) then
    check.fail('%s: lr_min and lr_max act only with rho_min and rho_max (rho following the lr)', who)
  end
  if v.rho_min ~= false then
    for i, g in ipairs(rawget(self, 'groups') or {}) do
      if g.rho ~= nil then
        check.fail('%s: groups[%d].rho: with rho_min and rho_max, rho follows the lr for the whole model', who, i)
      end
    end
  end
end

-- rho of the step being taken, when it follows the base's lr.
local function proportional_rho(self, who, t, v)
  local base = self.base
  if base.defaults.lr == nil then
    check.fail('%s: rho_min/rho_max follow the base optimizer\'s lr, but optim.%s has none', who, base.__name)
  end
  local lr = base:_hyper(who, 'lr', base.t + 1, 1)
  local lr_max = v.lr_max or base:_hyper(who, 'lr', 1, 1)
  if lr_max == v.lr_min then return v.rho_max end
  if lr_max < v.lr_min then
    check.fail('%s: lr_max %s is below lr_min %s', who, check.describe(lr_max), check.describe(v.lr_min))
  end
  -- kept in [rho_min, rho_max] when the lr leaves [lr_min, lr_max] (a warm-up above the
  -- step-1 lr, say)
  local rho = v.rho_min + (v.rho_max - v.rho_min) * (lr - v.lr_min) / (lr_max - v.lr_min)
  return math.min(v.rho_max, math.max(v.rho_min, rho))
end

function GSAM:_ascent(who, t, info, vs)
  if vs[1].rho_max then
    local rho = proportional_rho(self, who, t, vs[1])
    for _, v in ipairs(vs) do v.rho = rho end
  end
  info.rho = vs[1].rho
  local g = self.arena.gflat
  self:_scratch('g1'):copy_(g)
  local norm = sharpness.perturb(self, who, g, vs)
  if norm ~= norm or norm == math.huge then return nil end
  return true
end

function GSAM:_descent(who, t, info, second, vs)
  local v = vs[1]
  local g, g1 = self.arena.gflat, self:_scratch('g1')
  local ip = reduce.dot(who, g1, g)
  local n1, n2 = math.sqrt(reduce.sumsq(who, g1)), math.sqrt(reduce.sumsq(who, g))
  local eps = v.perturb_eps
  local den = n2 * n1 + eps
  local cos = den > 0 and ip / den or 0       -- (eps = 0 and a zero gradient: no projection)
  info.cos = cos
  -- d = g2 - alpha (g1 - cos n1 g2 / (n2 + eps)) = (1 + alpha cos n1 / (n2 + eps)) g2 - alpha g1
  local c = n2 + eps > 0 and cos * n1 / (n2 + eps) or 0
  reduce.axpby(who, g, 1 + v.alpha * c, g1, -v.alpha)
end

return GSAM
