-- optim.dist_buckets — the gradient all-reduce in buckets that overlap the backward pass
-- (data parallelism, optim/dist_sync.lua; docs/optim.md "Data parallelism").
--
-- The model's root is an nn.Sequential: its backward runs the children last to first, and
-- the gradient arena holds their parameters first to last, so every child done adds to a
-- finished tail of the arena. Once the tail not yet sent holds bucket_mb megabytes (option
-- of the optimizer, default 1; false: one flat all-reduce after the closure, as before),
-- its all-reduce (sum, nonblocking) starts, and the backward goes on with the next child
-- while MPI moves it (Open MPI moves it only inside MPI calls: the plugin's progress thread
-- makes them, runtime/mpi/dist_mpi.c; without one, each child's end does). After child 1
-- the head (what is left) is all-reduced at once, blocking: nothing is left to overlap it
-- with. Then every started bucket is waited for, and the arena is scaled by 1 / world:
-- the mean the flat all-reduce gives.
--
-- The buckets cover the whole arena, so a bucketed backward leaves every rank with the
-- mean of what each held: as the flat all-reduce at that moment. The evaluation or apply
-- that takes the gradients (dist_sync.evaluated / before_apply: M.consume) then skips its
-- flat all-reduce, unless something else changed the gradients after it (a backward not
-- bucketed, under no_sync say; ms.autograd's gradients; a backward that raised, its
-- finished buckets scaled to the mean first; a closure starting; zero_grad): then the
-- flat all-reduce runs, still the mean, since every rank holds the same averaged part c
-- plus its own later gradients g_r, and
-- mean(c + g_r) = c + mean(g_r). Several bucketed backwards in one closure (micro-batches
-- without no_sync) are each averaged so, on top of the last.
-- As with PyTorch's DistributedDataParallel, the gradients are averaged when the backward
-- ends: what a closure adds to them after model:backward is averaged only when it is the
-- same on every rank (weight decay, a scale); bucket_mb = false averages after the closure.
--
-- Bucketed: the CPU arena (float32/float64) of a root Sequential bound to one optimizer;
-- anything else (a CUDA arena: NCCL through the flat path, autograd's tape, a model without
-- children) takes the flat all-reduce.
--   M.attach(opt)          at bind: the plan on opt.model (model._dist_buckets) and on its
--                          arena (arena._dist_plan), or nothing (a second optimizer bound
--                          to the model: false, flat for both)
--   M.consume(opt)         -> true when the round's gradients are averaged already
--   M.closure_begins(opt) -> outer, M.closure_ends(outer)   around a closure (policy.run)
--   plan:stale()           the arena changed outside a bucketed backward (params.lua)
-- plan.nbuckets (per backward), plan.rounds (bucketed backwards so far), plan.early (buckets
-- started while the backward still ran): what tests and benchmarks read.
-- Sequential:backward calls plan:begin() (-> the plan, or nil: not bucketed),
-- plan:child_done(i) after child i, plan:finish() at the end, plan:abandon() when a child
-- raised. A round's state: 'fresh' (the flat all-reduce will run), 'running' (a bucketed
-- backward), 'complete' (the arena is averaged).
local ms = require 'moonstep'
local check = require 'moonstep.check'
local config = require 'moonstep.optim.config'

local M = {}

local MAX_PIECE = 2 ^ 30 - 1     -- elements in one started all-reduce (MPI's int count)
local MAX_PENDING = 256          -- started all-reduces in flight at once (MS_DIST_MAX_PENDING)

local Plan = {}
Plan.__index = Plan

-- Element ranges [lo, hi) of each child's parameters in the arena (nil: no parameters);
-- nil when they are not in child order or overlap (the flat path then).
local function child_ranges(model, flat)
  local ranges, last = {}, 0
  for i, m in ipairs(model.modules) do
    local lo, hi
    for _, p in ipairs(m:parameters()) do
      local a = tonumber(p.offset) - tonumber(flat.offset)
      lo, hi = math.min(lo or a, a), math.max(hi or a, a + p:numel())
    end
    if lo then
      if lo < last then return nil end
      ranges[i], last = { lo, hi }, hi
    end
  end
  return ranges
end

-- The buckets, as started after each child: starts[i] = list of {lo, hi} pieces.
local function plan_buckets(ranges, nchildren, total, bucket_elems)
  local starts, open_hi = {}, total
  local function start(i, lo)
    local list = starts[i] or {}
    for a = lo, open_hi - 1, MAX_PIECE do list[#list + 1] = { a, math.min(a + MAX_PIECE, open_hi) } end
    starts[i], open_hi = list, lo
  end
  for i = nchildren, 1, -1 do
    local r = ranges[i]
    if i == 1 then
      if open_hi > 0 then start(1, 0) end
    elseif r and open_hi - r[1] >= bucket_elems then
      start(i, r[1])
    end
  end
  return starts
end

-- opt.bucket_mb now (a plain field: its value checked here as at construction; where it
-- is refused, only at construction).
local function bucket_mb(opt)
  local v = rawget(opt, 'bucket_mb')
  if v == nil then return 1 end
  config.rules.bucket_mb(opt.__name .. '.bucket_mb', 'bucket_mb', v)
  return v
end

-- The plan for opt's model, or nil (the flat path). The ranks agree on the number of
-- buckets once (a mismatch would pair different all-reduces).
local function build(opt)
  local model, arena = rawget(opt, 'model'), opt.arena
  local mb = bucket_mb(opt)
  if mb == false or type(model) ~= 'table' or not rawget(getmetatable(model) or {}, '_backward_in_buckets')
     or rawget(model, '_arena') ~= arena then
    return nil
  end
  local flat = arena.gflat
  if flat.device ~= 'cpu' or (flat.dtype ~= 'float32' and flat.dtype ~= 'float64') or #model.modules == 0 then
    return nil
  end
  local ranges = child_ranges(model, flat)
  if not ranges then return nil end
  local esize = flat.dtype == 'float32' and 4 or 8
  local elems = math.max(1, math.floor(mb * 2 ^ 20 / esize))
  local starts, n
  repeat   -- at most MAX_PENDING started at once (the plugin's slots): bigger buckets if need be
    starts, n = plan_buckets(ranges, #model.modules, flat:numel(), elems), 0
    for _, list in pairs(starts) do n = n + #list end
    elems = elems * 2
  until n <= MAX_PENDING
  local agree = ms.tensor({ n, -n }, 'int64')
  ms.dist.all_reduce(agree, 'max')
  local most, fewest = agree:get(1), -agree:get(2)
  if most ~= n or fewest ~= n then
    check.fail('%s: the ranks cut the gradient arena into different buckets (this rank %d, another %d): ' ..
               'give every rank the same model and bucket_mb', opt.__name, n, most == n and fewest or most)
  end
  return setmetatable({ opt = opt, mb = mb, starts = starts, state = 'fresh', handles = {}, reduced = {}, views = {},
                        nbuckets = n, rounds = 0, early = 0 }, Plan)
end

-- What attach decided for each optimizer: its bucket_mb then (a change is seen at the next
-- sync point, where every rank makes it together) and its plan (nil: the flat path).
local attached = setmetatable({}, { __mode = 'k' })

function M.attach(opt)
  local model = rawget(opt, 'model')
  if type(model) ~= 'table' then return end
  local plan = build(opt)
  local other = rawget(model, '_dist_buckets')
  if other ~= nil and not (other and other.opt == opt) then   -- a second optimizer on the model: flat for both
    plan = nil
    model._dist_buckets = false
  else
    model._dist_buckets = plan
  end
  attached[opt] = { mb = bucket_mb(opt), plan = plan }
  rawset(opt.arena, '_dist_plan', plan)   -- (told when the arena is zeroed or given gradients)
end

-- Wait for every started bucket (after an error inside a backward too).
function Plan:_drain()
  local handles = self.handles
  self.handles = {}
  for _, h in ipairs(handles) do ms.dist._wait(h) end
end

-- Is this backward bucketed? When opt syncs it: inside its closure when its evaluations
-- sync (dist_sync.passes_sync), outside when apply will. A bucketed backward leaves the
-- whole arena averaged, whatever it held before; one that is not, after one that was,
-- leaves the round to the flat all-reduce.
function Plan:begin()
  local opt = self.opt
  local dist_sync = require 'moonstep.optim.dist_sync'   -- (it requires this module)
  local on
  local owner = M.closure_owner
  if owner == opt then on = dist_sync.passes_sync(opt)
  elseif owner ~= nil then on = false     -- another optimizer's closure
  else on = dist_sync.syncs_at_apply(opt) end
  local flat = opt.arena.gflat
  if not on or flat.device ~= 'cpu' or bucket_mb(opt) ~= self.mb then   -- (moved, or bucket_mb changed)
    self:stale()
    return nil
  end
  if self.flat ~= flat then self.flat, self.views = flat, {} end   -- (re)bound arena: new views
  self.state = 'running'
  return self
end

-- Child i's backward is done: start its bucket, or let MPI move those in flight. The
-- head (after child 1) is all-reduced at once: nothing is left to overlap it with (a
-- model in one bucket is then the flat all-reduce, less its agreement check).
function Plan:child_done(i)
  local list = self.starts[i]
  if not list then
    if #self.handles > 0 then ms.dist._progress() end
    return
  end
  local views = self.views[i]
  if not views then
    views = {}
    for k, r in ipairs(list) do views[k] = self.flat:narrow(1, r[1] + 1, r[2] - r[1]) end
    self.views[i] = views
  end
  for _, v in ipairs(views) do
    if i == 1 then ms.dist._all_reduce_unchecked(v)
    else self.handles[#self.handles + 1] = ms.dist._start_all_reduce(v) end
    self.reduced[#self.reduced + 1] = v
  end
  if i > 1 then self.early = self.early + #views end
end

-- A child raised: the buckets in flight are waited for (MPI writes into the arena until
-- then); the round's gradients are partial, left to the flat path.
function Plan:abandon()
  self:_drain()
  for _, v in ipairs(self.reduced) do v:mul_(1 / ms.dist.world_size()) end   -- their sums -> means (as finish)
  self.reduced, self.state = {}, 'fresh'
end

function Plan:finish()
  self:_drain()
  self.reduced = {}
  self.flat:mul_(1 / ms.dist.world_size())
  self.state, self.rounds = 'complete', self.rounds + 1
end

-- At the sync point (evaluated / before_apply of opt): true when the round is complete
-- (the gradients are averaged); the next round starts fresh. bucket_mb changed since the
-- plan was made: a new plan (every rank changes it at the same step).
function M.consume(opt)
  local a = attached[opt]
  if not a then return false end
  local plan, complete = a.plan, false
  if plan then
    plan:_drain()
    complete = plan.state == 'complete'
    plan.state = 'fresh'
  end
  if bucket_mb(opt) ~= a.mb then M.attach(opt) end
  return complete
end

-- A closure of opt starts / ends (policy.run; M.closure_owner: the optimizer whose
-- closure runs, for Plan:begin). A round completed before it (a backward outside any
-- step) no longer speaks for the gradients this closure makes.
function M.closure_begins(opt)
  local a = attached[opt]
  if a and a.plan then a.plan:stale() end
  local outer = M.closure_owner
  M.closure_owner = opt
  return outer
end
function M.closure_ends(outer) M.closure_owner = outer end

-- The arena changed outside a bucketed backward (zeroed, given ms.autograd's gradients:
-- params.lua; a backward not bucketed; a closure starting): a complete round no longer
-- stands for it.
function Plan:stale()
  if self.state == 'complete' then self.state = 'fresh' end
end

return M
