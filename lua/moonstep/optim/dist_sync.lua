-- optim.dist_sync — what an optimizer exchanges between ranks in data-parallel training
-- (ms.dist over Open MPI; docs/optim.md "Data parallelism"). Every rank runs the same
-- script on its share of the data; the optimizer keeps the ranks on one trajectory:
--
--   at bind        the parameters are broadcast from rank 0 (once per parameter arena),
--                  so every rank starts from the same point (not for loss_only classes:
--                  SPSA broadcasts them with its seed, optim/spsa_dist.lua)
--   buffers        a bound model's buffers (BatchNorm's running statistics) are broadcast
--                  from rank 0 at bind and after every synced evaluation, as PyTorch's
--                  DistributedDataParallel does (broadcast_buffers): every rank evaluates
--                  and saves rank 0's statistics
--   every closure  the gradient arena is all-reduced (mean) and the loss with it, before
--   evaluation     the non-finite scan, clipping and the update: during a Sequential
--                  model's backward, in buckets (optim/dist_buckets.lua, bucket_mb), else
--                  as ONE flat tensor right after the closure. Every rank then sees the
--                  same gradient and loss, and takes the same decisions (skip, clip, line
--                  model). This is the rule of first-order optimizers (one evaluation a
--                  step), ACME, LBFGS and BSAM (every pass), and of the SAM family with
--                  sync = 'both'
--   opt:apply() /  gradients the caller computed (no evaluate since the last update) are
--   opt:step()     all-reduced there, once (or in buckets during that backward)
--   SAM family,    sync = 'final' (m-sharpness, the default): the passes are not synced,
--   'final'        each rank perturbs with its local gradient; the final direction (after
--                  accumulation, before clipping) is all-reduced once (WSAM with max_norm
--                  averages its own passes instead: sharpness.own_sync), after the ranks
--                  agreed (one 1-element all-reduce) that every one of them has a
--                  direction: a rank whose pass was non-finite makes every rank skip
-- Off with one rank (ms.dist is then a world of one: nothing is called, results are
-- bit-identical to a single process), with the option distributed = false (this
-- optimizer exchanges nothing: the ranks train apart), inside opt:no_sync(fn), and for
-- optimizers that read only losses (cls.loss_only: SPSA has its own scheme).
--   dist_sync.on(opt)                 is synchronisation on for opt now?
--   dist_sync.passes_sync(opt)        ... for this closure evaluation of opt?
--   dist_sync.syncs_at_apply(opt)     ... for gradients apply() takes (the caller's backward)?
--   dist_sync.bind(opt)               the broadcast from rank 0 (Optimizer:_bind)
--   loss = dist_sync.evaluated(opt, loss)   after a closure (Optimizer:_evaluate)
--   dist_sync.before_apply(opt)       gradients not synced yet (Optimizer:_apply)
--   ok = dist_sync.agree(opt, ok)     true when every rank's ok is true
--   dist_sync.mean(t)                 t all-reduced (mean), in place
--   dist_sync.install(Optimizer)      opt:no_sync(fn, ...)
local ms = require 'moonstep'
local check = require 'moonstep.check'
local buckets = require 'moonstep.optim.dist_buckets'

local M = {}

local function pack(...) return { n = select('#', ...), ... } end

local function dist() return ms.dist end

-- Synchronisation on: more than one rank, distributed not false, not inside no_sync.
function M.on(opt)
  if rawget(opt, 'distributed') == false or rawget(opt, '_no_sync') then return false end
  return dist().is_distributed()
end

-- The arenas already broadcast (a wrapper and its base bind the same one).
local broadcast_done = setmetatable({}, { __mode = 'k' })

-- The buffers of module m and its children from rank 0, one broadcast each (a walk of the
-- tree, no allocation: a model without buffers costs next to nothing per step).
local function broadcast_tree(m)
  for _, b in ipairs(rawget(m, '_buffers') or {}) do
    if check.is_tensor(b.tensor) and not check.is_freed(b.tensor) then dist().broadcast(b.tensor, 0) end
  end
  for _, child in ipairs(rawget(m, 'modules') or {}) do broadcast_tree(child) end
end

local function broadcast_buffers(opt)
  local model = rawget(opt, 'model')
  if type(model) == 'table' then broadcast_tree(model) end
end

function M.bind(opt)
  if rawget(opt, 'distributed') == false or rawget(opt, '_wrapped') or rawget(getmetatable(opt), 'loss_only')
     or not dist().is_distributed() then
    return
  end
  buckets.attach(opt)
  local arena = opt.arena
  if broadcast_done[arena] then return end
  dist().broadcast(arena.flat, 0)
  broadcast_buffers(opt)
  broadcast_done[arena] = true
end

function M.mean(t) return dist().all_reduce(t, 'mean') end

-- Does this closure evaluation sync (the class may say no: loss_only, or a SAM-family
-- optimizer with sync = 'final')?
local function passes_sync(opt)
  if not M.on(opt) then return false end
  local cls = getmetatable(opt)
  if rawget(cls, 'loss_only') then return false end
  local f = rawget(cls, '_sync_passes')
  return f == nil or f(opt)
end
M.passes_sync = passes_sync

-- Are gradients the caller computed (no evaluate since the last update) synced by apply?
-- Not for a wrapper's base (the wrapper decides) nor a multi-pass optimizer (its passes do).
function M.syncs_at_apply(opt)
  if rawget(opt, '_wrapped') or not M.on(opt) then return false end
  local cls = getmetatable(opt)
  return not (rawget(cls, 'loss_only') or rawget(cls, 'multipass'))
end

-- One float64 scalar to all-reduce (the loss, an agreement flag): made once, not per step.
local scalar
local function scalar_of(v)
  scalar = scalar or ms.zeros({ 1 }, 'float64')
  return scalar:fill_(v)
end

-- After the closure: the gradient arena and the loss, averaged over the ranks.
function M.evaluated(opt, loss)
  opt._synced = nil
  local averaged = buckets.consume(opt)   -- by the buckets, during the backward
  if not passes_sync(opt) then return loss end
  if not averaged then M.mean(opt.arena.gflat) end
  local l = M.mean(scalar_of(loss))
  broadcast_buffers(opt)
  opt._synced = true
  return l:item()
end

-- Before an update from gradients that no evaluate synced (opt:step() / opt:apply() after
-- the caller's own backward, or evaluations under no_sync): they are all-reduced now
-- (unless the buckets did during that backward).
function M.before_apply(opt)
  local synced = rawget(opt, '_synced')
  opt._synced = nil
  local averaged = buckets.consume(opt)
  if synced or averaged or not M.syncs_at_apply(opt) then return end
  M.mean(opt.arena.gflat)
end

-- true when ok is true on every rank (one 1-element all-reduce).
function M.agree(opt, ok)
  return dist().all_reduce(scalar_of(ok and 0 or 1), 'max'):item() == 0
end

function M.install(Optimizer)
  -- opt:no_sync(fn, ...): fn(...) runs with this optimizer's synchronisation off (gradient
  -- accumulation steps, PyTorch's no_sync); returns all of fn's results (trailing nils
  -- too). fn: a function or a callable table (as ms.dist.alone). Gradients left unsynced
  -- are all-reduced by the next evaluate or apply outside it.
  function Optimizer:no_sync(fn, ...)
    if not check.is_callable(fn) then
      check.fail('%s.no_sync: fn is %s, expected a function (run with synchronisation off)', self.__name,
                 check.describe(fn))
    end
    local prev = rawget(self, '_no_sync')
    self._no_sync = true
    local res = pack(pcall(fn, ...))
    self._no_sync = prev
    if not res[1] then error(res[2], 0) end
    return unpack(res, 2, res.n)
  end
end

return M
