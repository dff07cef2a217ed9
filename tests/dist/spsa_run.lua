-- Run by tests/dist_spsa_spec.lua, alone (a world of one) or under mpirun: SPSA on a small
-- MLP with MSE, a fixed data set of 8 rows. Arguments key=value:
--   steps (6), n (4), diff (central), update (sgd), memory (seeded), restore (exact),
--   distributed (directions | batch | false | default), shard (all | rank | 0 | 1):
--   which rows this process sees (rank: its share by rank, 0/1: that half), seed (7),
--   blocking (false), batched (false), calibrate (false), second_order (false), dtype (float32),
--   shorthand (distributed = that mode), init_by_rank (false: every rank's model starts from another init), nan_rank / nan_step
--   (that rank's closure returns nan at that step), raise (skip_nonfinite = false)
-- Prints, on rank 0 only (and on every rank with every=1): 'loss <step> <%a>' per step, the
-- parameters' bits ('param <i> <%a>'), 'bytes <sent> <received> <setup>', and on several
-- ranks 'identical yes|no' (every rank's parameters, gathered, compared bit for bit).
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim

local a = {}
for _, kv in ipairs(arg) do
  local k, v = kv:match('^([%w_]+)=(.*)$')
  assert(k, 'bad argument ' .. kv)
  a[k] = v
end
local function flag(k) return a[k] == 'true' end
ms.set_num_threads(1)
local r, W = ms.dist.init { timeout = 60 }
local dtype = a.dtype or 'float32'

ms.manual_seed(3 + (a.init_by_rank == 'true' and r or 0))   -- init_by_rank: different inits
local model = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2))
if dtype == 'float64' then model:to('float64') end
ms.manual_seed(11)
local X = ms.randn({ 8, 3 }, dtype)
local Y = ms.randn({ 8, 2 }, dtype)
local shard = a.shard or 'all'
if shard ~= 'all' then
  local part = shard == 'rank' and r or tonumber(shard)
  local rows = 8 / (shard == 'rank' and W or 2)
  X, Y = X:narrow(1, part * rows + 1, rows):contiguous(), Y:narrow(1, part * rows + 1, rows):contiguous()
end
local crit = nn.MSELoss()

local cfg = { n = tonumber(a.n or 4), diff = a.diff or 'central', a = 0.05, c = 1e-2,
              seed = tonumber(a.seed or 7), update = a.update or 'sgd', memory = a.memory or 'seeded' }
if a.restore then cfg.restore = a.restore end
if a.distributed == 'false' then cfg.distributed = false
elseif a.distributed and a.distributed ~= 'default' then cfg.dist_split = a.distributed end
if a.shorthand then cfg.distributed = a.shorthand end   -- distributed = 'batch' | 'directions'
if flag('blocking') then cfg.blocking = true; cfg.allowed_increase = 0.5 end
if flag('calibrate') then cfg.calibrate = true; cfg.a = nil end
if flag('second_order') then cfg.second_order = true; cfg.memory = 'materialized' end
if flag('batched') then cfg.batched = true; cfg.criterion = crit; cfg.memory = 'materialized' end
if a.seed == 'none' then cfg.seed = nil end
if flag('raise') then cfg.skip_nonfinite = false end
local opt = optim.SPSA(model, cfg)

local every = a.every == '1' or r == 0
local function say(fmt, ...) if every then io.write(('[%d] '):format(r), fmt:format(...), '\n') end end
for k = 1, tonumber(a.steps or 6) do
  local loss, info
  if flag('batched') then loss, info = opt:step(X, Y)
  else
    local nan = tonumber(a.nan_rank) == r and tonumber(a.nan_step) == k
    loss, info = opt:step(function() return nan and 0 / 0 or crit:forward(model:forward(X), Y) end)
  end
  say('loss %d %a %s', k, loss, info.skipped and 'skipped' or '')
end
local flat = opt.arena.flat
for i = 1, flat:numel() do say('param %d %a', i, flat:get(i)) end
say('bytes %d %d %d', opt.dist_bytes or -1, opt.dist_bytes_received or 0, opt.dist_setup_bytes or 0)
if W > 1 then
  local g = ms.dist.all_gather(flat:to('float64'))
  local same = true
  for w = 2, W do
    for i = 1, flat:numel() do
      local x, y = g:get(1, i), g:get(w, i)
      if x ~= y or 1 / x ~= 1 / y then same = false end
    end
  end
  say('identical %s', same and 'yes' or 'no')
end
