-- optim.spsa_dist — SPSA on several ranks (ms.dist): only seeds and scalars travel.
--
-- Every rank regenerates the same directions from the shared seed (broadcast from rank 0
-- once, with the parameters, at the optimizer's first step), evaluates its share of the
-- step's loss evaluations, and the losses alone are exchanged (one all_gather of a small
-- float64 vector per step); every rank then forms the same s_i from the same losses in the
-- same order and applies the same update: the parameters stay bit-identical on every rank.
--
--   dist_split = 'directions' (the default)  the n directions in contiguous blocks of
--       ceil(n / world), block w on rank w (ranks past the last block evaluate nothing:
--       n = 4 on 3 ranks is 2, 2, 0): each direction's points (+-h, 2-SPSA's extras) on
--       its rank, on that rank's data; the at-w evaluations (forward differences' L0:
--       every rank with a direction; blocking's checks: the same blocks, rank 0 first).
--       With the same data on every rank the trajectory is bit for bit the one process's.
--   dist_split = 'batch'  every rank evaluates every point on its shard of the batch and
--       each loss is the mean over the ranks (summed in rank order, identical everywhere):
--       two ranks with half the batch each follow one process with the whole batch within
--       floating-point tolerance (a mean loss over equal shards).
--   distributed = false    (the common option) no exchange: each rank is an independent
--       optimizer (opt:no_sync(fn) too, for the steps fn takes).
-- With one rank (no launcher) nothing here runs: SPSA takes its one-process path.
--
--   M.mode(opt)                          'directions' | 'batch' | nil (one rank, or off)
--   M.setup(opt, who)                    seed and parameters from rank 0 (first step only)
--   get, L0 = M.run(opt, who, closure, info, job)   the exchange engine (below)
--   s, L0 = M.sample(opt, who, closure, info, h, dirs, mode)   as spsa_sample's sample
--   ok = M.calibrate(opt, who, closure, info, mode)            as spsa_sample's calibrate
--   ys = M.at_w(opt, who, closure, info, count, mode)          count losses at w (nil: bad)
-- Counters: opt.dist_bytes (bytes this rank sent in the last step's exchanges: float64
-- losses, 8 * 2 * ceil(n / world) (+ 8, forward) for 'directions', 16n for 'batch' when central),
-- opt.dist_bytes_received (from the other ranks), opt.dist_setup_bytes (the first step's
-- broadcasts); info.dist = {mode, rank, world, bytes, bytes_received, evaluations}. ms.dist
-- adds its own 32-byte agreement check to every collective (not counted here).
local ms = require 'moonstep'
local S = require 'moonstep.optim.spsa_sample'
local points = require 'moonstep.optim.spsa_points'
local check = require 'moonstep.check'
local dist_sync = require 'moonstep.optim.dist_sync'
local core = require 'moonstep.core'

local M = {}

M.MODES = { 'directions', 'batch' }

function M.mode(self)
  if not dist_sync.on(self) then return nil end   -- (one rank, distributed = false, no_sync)
  return self._zo.dist_split
end

function M.setup(self, who)
  if rawget(self, '_dist_ready') then return end
  local flat = self.arena.flat
  local seed = ms.tensor({ self.seed }, 'float64')   -- seeds are < 2^53: exact
  ms.dist.broadcast(seed, 0)
  self.seed = seed:get(1)
  ms.dist.broadcast(flat, 0)
  self.dist_setup_bytes = 8 + flat:numel() * core.C.ms_dtype_size(flat.dtype_id)
  self._dist_ready = true
  check.integer(who, 'opt.seed', self.seed, 0, 2 ^ 53 - 1)
end

-- Start of a step's counting.
function M.begin(self, info, mode)
  self.dist_bytes, self.dist_bytes_received = 0, 0
  info.dist = { mode = mode, rank = ms.dist.rank(), world = ms.dist.world_size(), bytes = 0,
                bytes_received = 0, evaluations = 0 }
end

-- rows[w][j]: rank w - 1's slot j (all_gather of every rank's K slots).
local function exchange(self, info, vals, K)
  local t = {}
  for j = 1, K do local v = vals[j]; t[j] = v == nil and 0 / 0 or v end
  local rows = ms.dist.all_gather(ms.tensor(t, 'float64')):totable()
  local W = #rows
  self.dist_bytes = self.dist_bytes + 8 * K
  self.dist_bytes_received = self.dist_bytes_received + 8 * K * (W - 1)
  info.dist.bytes, info.dist.bytes_received = self.dist_bytes, self.dist_bytes_received
  return rows
end

local function finite(v) return v == v and v ~= math.huge and v ~= -math.huge end

-- The engine. job = {groups = J, first = P1, extra = P2, point = function(j, p) -> terms
-- (nil: w), at_w = true|nil, walk = true|nil, local_eval = function(list) -> losses (the
-- batched pass, optional)}. Group j (1..J) has P1 points evaluated in one sweep over the
-- groups, then P2 more in a second sweep (2-SPSA's); at_w: one more evaluation at w before
-- them (forward differences' L0). 'directions': the groups in contiguous blocks of
-- ceil(J / world), block w on rank w (the at-w one on every rank that owns a group);
-- 'batch': everything on every rank, averaged.
-- walk: the ranks move the weights through the points they do not evaluate (seeded
-- subtract: the drift stays the one process's). The losses go into info.losses in the
-- one process's order; at the first non-finite one, opt._bad is set (or the error raised,
-- skip_nonfinite = false) on every rank and run returns nil. Else get(j, p) and L0.
function M.run(self, who, closure, info, job, mode)
  local W, r = ms.dist.world_size(), ms.dist.rank()
  local J, P1, P2 = job.groups, job.first, job.extra or 0
  local P = P1 + P2
  local split = mode == 'directions'
  local per = split and math.ceil(J / W) or J
  local base = job.at_w and 1 or 0
  local K = base + P * per
  -- 'directions': rank w owns the block of groups w * per + 1 .. (w + 1) * per (contiguous:
  -- the batched pass keeps its fast layout)
  local function owner(j) return math.floor((j - 1) / per) end
  local function owns(j, rank) return not split or owner(j) == rank end
  local function slot(j, p) return base + (split and (j - 1) % per or (j - 1)) * P + p end
  local mine = 0
  for j = 1, J do if owns(j, r) then mine = mine + 1 end end

  -- this rank's evaluations (a non-finite loss raises only after the exchange, on every rank)
  local vals, nlos = {}, #info.losses
  local keep = self.skip_nonfinite
  self.skip_nonfinite = true
  local ok, err = pcall(function()
    local bad = false
    local function ev(terms)
      if bad then return 0 / 0 end
      local l = S.eval(self, who, closure, terms, info)
      info.dist.evaluations = info.dist.evaluations + 1
      if self._bad then bad = true end
      return l
    end
    if job.local_eval then
      local list = {}
      if job.at_w and mine > 0 then list[1] = { slot = 1 } end
      for j = 1, J do
        if owns(j, r) then for p = 1, P do list[#list + 1] = { slot = slot(j, p), j = j, p = p } end end
      end
      local ls = job.local_eval(list)
      info.dist.evaluations = info.dist.evaluations + #list
      for q, e in ipairs(list) do vals[e.slot] = ls[q] end
      return
    end
    if job.at_w and mine > 0 then vals[1] = ev(nil) end
    for j = 1, J do
      if owns(j, r) then
        for p = 1, P1 do vals[slot(j, p)] = ev(job.point(j, p)) end
      elseif job.walk then
        for p = 1, P1 do points.at(self, who, job.point(j, p)) end
      end
    end
    for j = 1, J do
      if owns(j, r) then for p = P1 + 1, P do vals[slot(j, p)] = ev(job.point(j, p)) end end
    end
  end)
  self.skip_nonfinite = keep
  if not ok then error(err, 0) end
  for j = #info.losses, nlos + 1, -1 do info.losses[j] = nil end
  self._bad = nil

  local rows = exchange(self, info, vals, K)
  local function get(j, p)
    if split then return rows[owner(j) + 1][slot(j, p)] end
    local sum = rows[1][slot(j, p)]
    for w = 2, W do sum = sum + rows[w][slot(j, p)] end
    return sum / W
  end
  local L0
  if job.at_w then
    if split then L0 = rows[1][1]
    else L0 = rows[1][1]; for w = 2, W do L0 = L0 + rows[w][1] end; L0 = L0 / W end
  end
  -- the one process's order, checked as it goes
  local order = {}
  if job.at_w then order[1] = L0 end
  for j = 1, J do for p = 1, P1 do order[#order + 1] = get(j, p) end end
  for j = 1, J do for p = P1 + 1, P do order[#order + 1] = get(j, p) end end
  for _, l in ipairs(order) do
    info.losses[#info.losses + 1] = l
    if not finite(l) then
      self._bad = self:_nonfinite(who, ('the loss is %s'):format(check.describe(l)))
      return nil
    end
  end
  -- forward differences: each direction's L0 is its own rank's (the same with the same data)
  local function L0_of(j)
    if split then return rows[owner(j) + 1][1] end
    return L0
  end
  if job.at_w and split then
    for w = 2, owner(J) + 1 do
      local l = rows[w][1]
      if not finite(l) then
        self._bad = self:_nonfinite(who, ('the loss is %s (at w, on rank %d)'):format(check.describe(l), w - 1))
        return nil
      end
    end
  end
  return get, L0, L0_of
end

function M.sample(self, who, closure, info, h, dirs, mode)
  local o = self._zo
  local n, central = o.n, o.diff == 'central'
  local P1 = central and 2 or 1
  local function term(i, sign)
    if o.directions then return { row = i, scale = sign * h } end
    return dirs.at[i][sign]
  end
  local function point(i, p)
    if p == 1 then return { term(i, 1) } end
    if p == 2 then return { term(i, -1) } end
    local d2 = o.directions and { row = n + i, scale = h } or S.dir(self, dirs.step, n + i - 1, h)
    return { term(i, p == 3 and 1 or -1), d2 }
  end
  local job = { groups = n, first = P1, extra = o.second_order and 2 or 0, point = point,
                at_w = not central, walk = mode == 'directions' and o.memory == 'seeded' and o.restore == 'subtract' }
  if o.batched and self._data then
    job.local_eval = function(list)
      local scales = {}
      for q, e in ipairs(list) do
        if e.j == nil then scales[q] = { row = 0, scale = 0 }
        else scales[q] = { row = e.j, scale = e.p == 1 and h or -h } end
      end
      if #scales == 0 then return {} end
      local ok, out, per = pcall(require('moonstep.nn.batched').evaluate, self.model, o.criterion,
        self._data[1], self._data[2], self._U.tensor, scales, { per_example = o.per_example })
      if not ok then check.raise(check.rename(who, check.reason(out))) end
      info.per_example = per   -- this rank's models only
      info.passes = info.passes + #out
      self.passes = self.passes + #out
      return out
    end
  end
  local get, L0, L0_of = M.run(self, who, closure, info, job, mode)
  if not get then return nil end
  local s = {}
  for i = 1, n do
    if central then s[i] = (get(i, 1) - get(i, 2)) / (2 * h)
    else s[i] = (get(i, 1) - L0_of(i)) / h end
  end
  if o.second_order then
    local coefs = {}
    for i = 1, n do coefs[i] = ((get(i, 3) - get(i, 1)) - (get(i, 4) - get(i, 2))) / (2 * h * h) end
    info.hessian_coefs = coefs
  end
  return s, L0
end

function M.calibrate(self, who, closure, info, mode)
  local c = self._zo.calibrate
  local job = { groups = c.steps, first = 2, point = function(j, p)
    return { S.dir(self, S.CALIBRATION_STEP, j - 1, p == 1 and c.c or -c.c, 'rademacher') }
  end, walk = mode == 'directions' and self._zo.memory == 'seeded' and self._zo.restore == 'subtract' }
  local get = M.run(self, who, closure, info, job, mode)
  points.home(self, who)
  if not get then return false end
  local total = 0
  for j = 1, c.steps do total = total + math.abs((get(j, 1) - get(j, 2)) / (2 * c.c)) end
  return S.calibrated(self, total, info)
end

-- count losses at w (blocking's): round robin over the ranks ('directions'), or each the
-- mean over the ranks ('batch'); nil when one is non-finite (opt._bad set).
function M.at_w(self, who, closure, info, count, mode)
  local get = M.run(self, who, closure, info,
    { groups = count, first = 1, point = function() return nil end }, mode)
  if not get then return nil end
  local ys = {}
  for j = 1, count do ys[j] = get(j, 1) end
  return ys
end

return M
