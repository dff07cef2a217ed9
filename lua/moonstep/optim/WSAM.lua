-- optim.WSAM — Weighted SAM (Yue et al., KDD'23; the official dlrover code;
-- ../shared/reference/sam_family.md §5) around any base optimizer: the objective
-- L(w) + alpha_w [max_{||e|| <= rho} L(w + e) - L(w)], alpha_w = gamma / (1 - gamma).
--
--   opt = optim.WSAM(model, {base = optim.SGD{lr = 0.1, momentum = 0.9}, rho = 0.05, gamma = 0.9})
--
-- Per step, two closure calls: g1 at w; e = rho a g1 / (||a g1|| + perturb_eps); g2 at w + e;
-- w restored; with max_norm, g1 and g2 each clipped to that global norm (as
-- torch.nn.utils.clip_grad_norm_; the official code clips both, kozistr's only g2). Then
--   decouple = true    the base steps with g1, then w -= lr alpha_w (g2 - g1), lr the
--                      base's lr of that step for each parameter's group (a plain SGD-style
--                      step whatever the base is, as the official code)
--   decouple = false   the base steps with g1 + alpha_w (g2 - g1)
--   gamma = 0.9        in [0, 1): 0.5 is SAM, 0 the base alone
-- Plus every option of optim/sharpness.lua (gradient accumulation needs decouple = false:
-- the decoupled update is two directions). Scratch: two copies of the parameters (w, g1).
--
-- Data parallelism (sync = 'final', several ranks): e from this rank's local g1; g1 and
-- g2 averaged over the ranks, then clipped by max_norm (the official dlrover order: with
-- max_norm this class averages its passes itself, _own_sync; without, the update is linear
-- in g1 and g2 and the driver's one average of the direction gives it). docs/optim.md
-- "Data parallelism".
local check = require 'moonstep.check'
local sharpness = require 'moonstep.optim.sharpness'
local reduce = require 'moonstep.optim.reduce'
local dist_sync = require 'moonstep.optim.dist_sync'

local function gamma_rule(who, name, v)
  if type(v) ~= 'number' or not (v >= 0 and v < 1) then
    check.fail('%s: %s is %s, expected a number in [0, 1)', who, name, check.describe(v))
  end
end

local WSAM = sharpness.define('WSAM', { gamma = 0.9, decouple = true, max_norm = false },
  { gamma = gamma_rule, decouple = 'boolean',
    max_norm = function(who, name, v)
      if v ~= false and (type(v) ~= 'number' or not (v > 0 and v < math.huge)) then
        check.fail('%s: %s is %s, expected false (off) or a finite number > 0', who, name, check.describe(v))
      end
    end })

function WSAM:_variant_check(who, v)
  if v.decouple and v.gradient_accumulation_steps ~= 1 and type(v.gradient_accumulation_steps) == 'number' then
    check.fail('%s: gradient_accumulation_steps = %s needs decouple = false (the decoupled update is two directions)',
               who, check.describe(v.gradient_accumulation_steps))
  end
end

-- torch.nn.utils.clip_grad_norm_ of the whole arena.
local function clip(who, g, max_norm)
  local coef = max_norm / (math.sqrt(reduce.sumsq(who, g)) + 1e-6)
  if coef < 1 then g:mul_(coef) end
end

-- With sync = 'final' on several ranks, max_norm acts on the ranks' averages (the
-- official order): this class averages g1 and g2 itself, before clipping.
function WSAM:_own_sync(v) return v.max_norm ~= false end

function WSAM:_ascent(who, t, info, vs)
  local v, g = vs[1], self.arena.gflat
  local norm = sharpness.perturb(self, who, g, vs)   -- e from the raw (local) g1
  if norm ~= norm or norm == math.huge then return nil end
  -- (own sync: g1 is averaged, then clipped, in _descent, once every rank has its passes)
  if v.max_norm and not sharpness.own_sync(self, v) then clip(who, g, v.max_norm) end
  self:_scratch('g1'):copy_(g)
  return true
end

function WSAM:_descent(who, t, info, second, vs)
  local v = vs[1]
  local g, g1 = self.arena.gflat, self:_scratch('g1')
  if sharpness.own_sync(self, v) then   -- (the ranks agreed: each has finite g1 and g2)
    dist_sync.mean(g1)
    clip(who, g1, v.max_norm)
    dist_sync.mean(g)
  end
  if v.max_norm then clip(who, g, v.max_norm) end
  local a = v.gamma / (1 - v.gamma)
  if v.decouple then
    -- the sharpness s = g2 - g1 into the (now free) copy of w; the base gets g1
    local s = self:_scratch('w')
    s:copy_(g)
    reduce.axpby(who, s, 1, g1, -1)
    g:copy_(g1)
  else
    reduce.axpby(who, g, a, g1, 1 - a)
  end
end

-- sync = 'final' with decouple (and no max_norm: otherwise g1 and g2 were averaged in
-- _descent): the update is two directions, g1 (the gradient arena, averaged by the
-- driver) and the sharpness s: s is averaged too.
function WSAM:_sync_direction(who, v)
  if v.decouple then dist_sync.mean(self:_scratch('w')) end
end

function WSAM:_apply_direction(who, t, vs)
  local v, base = vs[1], self.base
  if v.decouple and base.defaults.lr == nil then   -- (before the base moves anything)
    check.fail('%s: decouple = true steps with the base optimizer\'s lr, but optim.%s has none (use decouple = false)',
               who, base.__name)
  end
  if sharpness.apply_direction(self, who) == false then return false end
  if not v.decouple then return true end
  local a, bt, per = v.gamma / (1 - v.gamma), base.table, {}
  local lrs = {}
  for g = 1, #base.groups + 1 do lrs[g] = base:_hyper(who, 'lr', base.t, g) end
  for i = 1, bt.nslices do per[i] = -lrs[bt.slices[i - 1].group + 1] * a end
  reduce.axpby(who, self.arena.flat, 1, self:_scratch('w'), per, bt)
  return true
end

return WSAM
