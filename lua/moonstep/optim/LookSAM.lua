-- optim.LookSAM — SAM every k steps, the sharpness direction reused in between (Liu et
-- al., CVPR'22; ../shared/reference/sam_family.md §7) around any base optimizer.
--
--   opt = optim.LookSAM(model, {base = optim.SGD{lr = 0.1}, rho = 0.1, k = 10, alpha = 0.7})
--
-- Step t (0-based: opt.t before the step) with t mod k = 0: SAM (two closure calls): g at
-- w, e as SAM, g_s at w + e, w restored; g_v = g_s - (<g, g_s> / ||g||^2) g, the part of
-- g_s orthogonal to g, is kept; the base steps with g_s. Other steps: ONE closure call, the
-- base steps with g + alpha (||g|| / (||g_v|| + 1e-8)) g_v. Closure calls: 1 + 1/k a step
-- on average, whatever the base (kozistr's never reuses with a stateless SGD and calls the
-- closure twice on reuse steps, doubling g).
--   k = 10, alpha = 0.7 (in (0, 1)), rho = 0.1
--   scope = 'tensor'   norms and projections per parameter tensor (the community code;
--                      a 1-element tensor then has g_v = 0); 'global': over all of them
--                      (the paper)
--   use_gc = false     gradient centralization of g on SAM steps, after its norm
-- A step whose SAM pass failed (non-finite) leaves no g_v to reuse: the next step is a SAM
-- step. Plus every option of optim/sharpness.lua. State: g_v (one copy of the parameters);
-- scratch: the copy of w on SAM steps. info.reuse: true on reuse steps.
local check = require 'moonstep.check'
local sharpness = require 'moonstep.optim.sharpness'
local reduce = require 'moonstep.optim.reduce'

local LookSAM = sharpness.define('LookSAM',
  { rho = 0.1, k = 10, alpha = 0.7, scope = 'tensor', use_gc = false },
  { k = function(who, name, v) check.integer(who, name, v, 1) end,
    alpha = function(who, name, v)
      if type(v) ~= 'number' or not (v > 0 and v < 1) then
        check.fail('%s: %s is %s, expected a number in (0, 1)', who, name, check.describe(v))
      end
    end,
    scope = function(who, name, v) check.oneof(who, name, v, { 'tensor', 'global' }) end,
    use_gc = 'boolean' })
LookSAM.state_buffers = { 'gv' }
LookSAM.passes_doc = 'twice every k-th step, once on the others'

-- The scope's inner products <x, y>: per slice (a list), or the global one repeated.
local function dots(self, who, x, y, v)
  if v.scope == 'global' then
    local total, list = reduce.dot(who, x, y), {}
    for i = 1, self.table.nslices do list[i] = total end
    return list
  end
  return select(2, reduce.dot(who, x, y, self.table))
end

-- per: the per-slice sums already known (their total in slice order is reduce's total,
-- bit for bit)
local function sumsq(self, who, x, v, per)
  if not per then per = select(2, reduce.sumsq(who, x, self.table)) end
  if v.scope == 'global' then
    local total, list = 0, {}
    for i = 1, #per do total = total + per[i] end
    for i = 1, #per do list[i] = total end
    return list
  end
  return per
end

local function sam_step(self) return self.t % self:_hyper('LookSAM.step', 'k', self.t + 1, 1) == 0 end

function LookSAM:_ascent(who, t, info, vs)
  local v, g = vs[1], self.arena.gflat
  -- a reuse step needs a g_v that a completed SAM step made (not one whose pass 2 failed)
  if not sam_step(self) and self._gv_valid then
    info.reuse = true
    local gv = self.buffers and self.buffers.gv
    if not gv then
      check.fail('%s: no sharpness direction to reuse (state buffer gv is missing)', who)
    end
    -- d = g + alpha ||g|| / (||g_v|| + 1e-8) g_v; ||g|| per slice from pass 1's scan,
    -- ||g_v|| kept since the SAM step that made it
    local ng = sumsq(self, who, g, v, rawget(self, '_sq_per'))
    self._sq_per = nil
    local cached = rawget(self, '_gv_sq')
    local nv = cached and cached.scope == v.scope and cached.list or sumsq(self, who, gv, v)
    self._gv_sq = { scope = v.scope, list = nv }
    local b = {}
    for i = 1, #ng do b[i] = v.alpha * math.sqrt(ng[i]) / (math.sqrt(nv[i]) + 1e-8) end
    reduce.axpby(who, g, 1, gv, b, self.table)
    return false
  end
  info.reuse = false
  local norm = sharpness.perturb(self, who, g, vs, v.use_gc)
  if norm ~= norm or norm == math.huge then return nil end
  self._gv_valid, self._gv_sq = false, nil
  self:_buffer('gv'):copy_(g)   -- g (centralized with use_gc), projected after pass 2
  return true
end

function LookSAM:_descent(who, t, info, second, vs)
  if not second then return end
  local v, gs, gv = vs[1], self.arena.gflat, self.buffers.gv
  -- g_v = g_s - (<g, g_s> / ||g||^2) g, g in gv; no projection where ||g|| = 0
  local dp, sq = dots(self, who, gv, gs, v), sumsq(self, who, gv, v)
  local a = {}
  for i = 1, #dp do a[i] = sq[i] > 0 and -dp[i] / sq[i] or 0 end
  reduce.axpby(who, gv, a, gs, 1, self.table)
  self._gv_valid, self._gv_sq = true, nil
end

function LookSAM:_variant_save() return { gv_valid = self._gv_valid == true } end
function LookSAM:_variant_load(who, x)
  if x ~= nil and (type(x) ~= 'table' or type(x.gv_valid) ~= 'boolean') then
    check.fail('%s: state.extra.variant is %s, expected {gv_valid = true|false}', who, check.describe(x))
  end
  self._gv_valid, self._gv_sq = x and x.gv_valid or false, nil
end

return LookSAM
