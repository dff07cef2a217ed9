-- dist.lua (bench) — data-parallel training steps on CPU over Open MPI (ms.dist, issue 13):
-- per step, the bytes each rank hands to MPI and the step time, on 1 rank and on 2 ranks
-- (mpirun -np 2 on loopback), for
--   first-order: the MLP of scripts/train.lua (784-256-10, 203530 parameters), Adam, a
--     GLOBAL batch (--batch, default 128; each of W ranks takes 1 / W of it); the optimizer averages the
--     gradient arena (one arena-sized all_reduce) and the loss over the ranks once per
--     step (optim/dist_sync.lua), as in scripts/train.lua --distributed;
--   deep: MLP 784-1024-1024-1024-10 (2.9 M parameters, 11.6 MB), the same step, on 2 ranks
--     with the gradient all-reduce in 1 MB buckets started as the backward finishes them
--     (optim/dist_buckets.lua, the default) against one flat all-reduce after the backward
--     (bucket_mb = false);
--   latency: an 8-byte all_reduce back to back, with ms.dist's agreement check (the
--     default) and without (ms.dist.init{check = false});
--   spsa: the zeroth_learn preset (784-128-10, T = 50 forward differences, Adam), in
--     SPSA's two data-parallel modes (optim/spsa_dist.lua, its dist_split): 'batch' (a global batch of 50,
--     25 per rank; every rank evaluates all T + 1 points on its half and the losses are
--     averaged: one process's trajectory) and 'directions' (a batch of 50 per rank; each
--     rank evaluates its half of the directions). Goal: <= 16 T = 800 bytes per rank per step.
-- Bytes are counted by wrapping ms.dist's collectives in the worker: for each call, the
-- payload handed to MPI (elements x element size) plus the 32 bytes of the size/dtype
-- agreement check ms.dist runs before each collective (4 int64). That is the PAYLOAD per
-- rank, not the wire: a ring all-reduce moves 2 (n - 1) / n x the payload out of each rank
-- (1x at n = 2), shown beside it; Open MPI picks its own algorithm (and on one host, shared
-- memory), so neither is a measured network figure. For SPSA's all_gather the ring factor is
-- n - 1 (1x at n = 2 as well). Step time: the median of single
-- steps after a warm-up (rank 0's; the ranks move in lock step); comm: the time inside the
-- collectives per step, waiting for the slower rank included.
-- Every configuration runs in its own processes, in alternation round by round (medians of
-- the rounds): 1 rank x 1 thread, 1 rank x 2 threads (the same cores as 2 ranks), 'pair':
-- two independent 1-rank processes at once with half the batch each and no MPI (what this
-- machine gives two processes: the ceiling of a 2-rank row here), 2 ranks x 1 thread. On
-- this 2-core machine two ranks share the two cores with everything else running, so
-- their speedup is bounded by 2x and, with the exchange and the machine's other load, is
-- far less: the figure says what 2 processes cost here, not how a cluster scales.
--
--   bin/moonstep scripts/bench/dist.lua [--quick] [--rounds N] [--steps N] [--cases first,spsa]
--                                       [--batch 128]   (first-order's global batch)
--   (about 20 s; --quick: 1 round of 10 steps, what make bench and the smoke spec run)
--   Needs mpirun (Debian's openmpi-bin) and the plugin libmoonstep_mpi.so beside the library
--   (`make` builds it with libopenmpi-dev): without them the 2-rank rows are skipped.
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim
local home = require('moonstep.core').home
local stats = dofile(home .. '/scripts/bench/stats.lua')
local harness = dofile(home .. '/scripts/bench/harness.lua')
local median, clock, q = stats.median, ms.clock, harness.quote

local CASES = { 'first', 'deep', 'spsa', 'latency' }

---------------------------------------------------------------------------------------
-- Does optim.SPSA run data-parallel (optim/spsa_dist.lua, its `distributed` option)?
---------------------------------------------------------------------------------------
local function spsa_is_distributed()
  return (pcall(require, 'moonstep.optim.spsa_dist'))
end

---------------------------------------------------------------------------------------
-- Worker: bin/moonstep dist.lua --worker CASE THREADS STEPS [MODE] (under mpirun or alone).
---------------------------------------------------------------------------------------
local function worker(case, threads, steps, mode, global)
  local rank, world = ms.dist.init { timeout = 120, check = mode ~= 'nocheck' }
  local CHECK = mode == 'nocheck' and 0 or 32
  ms.set_num_threads(threads)
  -- count what every collective hands to MPI, and the time spent inside them
  -- ring: what a ring algorithm sends out of each rank for that payload p: all_reduce
  -- 2 (n - 1) / n p, all_gather (n - 1) p, broadcast p (pipelined); the size check is an
  -- all_reduce of 32 bytes
  local count = { bytes = 0, ring = 0, calls = 0, secs = 0 }
  local ESIZE = { float32 = 4, float64 = 8, int64 = 8, uint8 = 1 }
  local RING = { all_reduce = 2 * (world - 1) / world, all_gather = world - 1, broadcast = 1 }
  for _, name in ipairs { 'all_reduce', 'broadcast', 'all_gather' } do
    local f = ms.dist[name]
    ms.dist[name] = function(t, ...)
      local t0 = clock()
      local r = f(t, ...)
      if world > 1 then
        local p = t:numel() * ESIZE[t.dtype]
        count.secs = count.secs + clock() - t0
        count.bytes = count.bytes + p + CHECK
        count.ring = count.ring + p * RING[name] + CHECK * RING.all_reduce
        count.calls = count.calls + 1
      end
      return r
    end
  end
  -- the buckets' started all-reduces (no agreement check); comm counts the time in their
  -- starts and waits: what the backward did not hide
  local start, wait = ms.dist._start_all_reduce, ms.dist._wait
  ms.dist._start_all_reduce = function(t)
    local t0 = clock()
    local p = t:numel() * ESIZE[t.dtype]
    count.bytes, count.ring, count.calls = count.bytes + p, count.ring + p * RING.all_reduce, count.calls + 1
    local h = start(t)
    count.secs = count.secs + clock() - t0
    return h
  end
  ms.dist._wait = function(h)
    local t0 = clock()
    wait(h)
    count.secs = count.secs + clock() - t0
  end
  local now = ms.dist._all_reduce_unchecked   -- (the last bucket, blocking)
  ms.dist._all_reduce_unchecked = function(t)
    local t0 = clock()
    local p = t:numel() * ESIZE[t.dtype]
    count.bytes, count.ring, count.calls = count.bytes + p, count.ring + p * RING.all_reduce, count.calls + 1
    now(t)
    count.secs = count.secs + clock() - t0
  end
  ms.manual_seed(0)
  local model, step, batch
  if case == 'latency' then
    local t, times = ms.zeros({ 1 }, 'float64'), {}
    for i = 1, 200 + steps * 20 do
      local t0 = clock()
      ms.dist.all_reduce(t)
      times[i] = clock() - t0
    end
    if rank == 0 then
      print(('result case=latency ranks=%d threads=1 step_s=%.9f comm_s=0 bytes=%d ring=0 calls=1 params=1 agree=1 ' ..
             'alone_s=0'):format(world, median({ unpack(times, 201) }), 8 + CHECK))
    end
    return
  end
  if case == 'first' or case == 'deep' then
    batch = global
    if case == 'first' then
      model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    else
      model = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                            nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))
    end
    model.input_grad = false
    local bucket_mb                       -- nil: the default (1 MB buckets)
    if mode == 'flat' then bucket_mb = false end
    local opt = optim.Adam(model, { lr = 1e-3, bucket_mb = bucket_mb })
    local crit = nn.CrossEntropyLoss()
    local mine = mode == 'pair' and batch / 2 or batch / world
    local x = ms.rand(mine, 784):add_(rank)
    local y = ms.randint(1, 11, { mine })
    step = function() harness.module_step(model, opt, crit, x, y) end   -- (the optimizer syncs)
  else
    batch = 50
    local mine = mode == 'batch' and batch / world or mode == 'pair' and batch / 2 or batch   -- 'directions': 50 per rank
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    local opt = optim.SPSA(model, optim.SPSA.preset('zeroth_learn', { lr = 1e-3, seed = 1,
      criterion = nn.CrossEntropyLoss(), dist_split = world > 1 and mode or nil }))
    local x = ms.rand(mine, 784):add_(rank)
    local y = ms.randint(1, 11, { mine })
    step = function() opt:step(x, y) end
  end
  for _ = 1, 3 do step() end
  count.bytes, count.ring, count.calls, count.secs = 0, 0, 0, 0
  local times = {}
  for i = 1, steps do
    local t0 = clock()
    step()
    times[i] = clock() - t0
  end
  local per = { bytes = count.bytes / steps, ring = count.ring / steps, calls = count.calls / steps,
                comm = count.secs / steps }
  -- the arena-sized all_reduce alone, back to back (no training between): the collective's
  -- own cost on this machine
  local alone = 0
  if world > 1 and (case == 'first' or case == 'deep') then
    local g, ts = model:flat_gradients(), {}
    for i = 1, steps do
      local t0 = clock()
      ms.dist.all_reduce(g, 'mean')
      ts[i] = clock() - t0
    end
    alone = median(ts)
  end
  -- the ranks must hold the same parameters (not counted: after the measurement)
  local sums = ms.dist.all_gather(ms.tensor({ model:flat_parameters():to('float64'):sum() }, 'float64'))
  local agree = 1
  for _, v in ipairs(sums:view(-1):totable()) do if v ~= sums:view(-1):totable()[1] then agree = 0 end end
  if rank == 0 then
    print(('result case=%s ranks=%d threads=%d step_s=%.9f comm_s=%.9f bytes=%.0f ring=%.0f calls=%g params=%d ' ..
           'agree=%d alone_s=%.9f'):format(case, world, threads, median(times), per.comm, per.bytes, per.ring,
                                           per.calls, model:flat_parameters():numel(), agree, alone))
  end
end

if arg and arg[1] == '--worker' then
  worker(arg[2], tonumber(arg[3]), tonumber(arg[4]), arg[5], tonumber(arg[6]))
  os.exit(0)
end

---------------------------------------------------------------------------------------
-- Driver
---------------------------------------------------------------------------------------
local opts = harness.options('dist.lua', arg or {}, { quick = false, cases = CASES, rounds = nil, steps = nil,
                                                     batch = 128 }, { ['--steps'] = 'number', ['--batch'] = 'number' })
if opts.batch % 2 ~= 0 or opts.batch < 2 then
  io.stderr:write('dist.lua: --batch must be even (2 ranks share it)\n')
  os.exit(2)
end
local ROUNDS = opts.rounds or (opts.quick and 1 or 5)
local STEPS = opts.steps or (opts.quick and 10 or 40)

local lib = os.getenv('MOONSTEP_LIB') or (home .. '/build/libmoonstep.so')
local plugin = lib:gsub('[^/]*$', '') .. 'libmoonstep_mpi.so'
local have_mpi = os.execute('command -v mpirun >/dev/null 2>&1') == 0 and io.open(plugin) ~= nil
local self = home .. '/scripts/bench/dist.lua'
local bin = home .. '/bin/moonstep'

-- One worker run: its result table, or nil and why.
local function launch(case, ranks, threads, mode)
  local cmd
  mode = mode or '-'
  if ranks == 1 then
    cmd = ('%s %s --worker %s %d %d %s %d'):format(q(bin), q(self), case, threads, STEPS, mode, opts.batch)
    if mode == 'pair' then cmd = ('(%s & %s; wait)'):format(cmd, cmd) end
  else
    -- loopback, oversubscribed (fewer cores than ranks x threads is allowed), root allowed
    cmd = ('OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 ' ..
           'timeout -k 5 300 mpirun -np %d --oversubscribe --bind-to none %s %s --worker %s %d %d %s %d')
          :format(ranks, q(bin), q(self), case, threads, STEPS, mode, opts.batch)
  end
  local p = io.popen(cmd .. ' 2>&1')
  local res, first_error, last = nil, nil, nil
  for line in p:lines() do
    res = res or harness.parse_result(line)
    if not first_error and line:match('^moonstep: ') then first_error = line end
    if line:find('%S') then last = line end
  end
  p:close()
  if res then return res end
  return nil, first_error or last or 'no output'
end

-- 'pair': two independent 1-rank processes at once, each with half the batch (no MPI):
-- what this machine gives two processes, the ceiling of a 2-rank row here
local CONFIGS = {
  first = { { ranks = 1, threads = 1 }, { ranks = 1, threads = 2 }, { ranks = 1, threads = 1, mode = 'pair' },
            { ranks = 2, threads = 1 }, { ranks = 2, threads = 1, mode = 'flat' } },
  spsa = { { ranks = 1, threads = 1 }, { ranks = 1, threads = 2 }, { ranks = 1, threads = 1, mode = 'pair' },
           { ranks = 2, threads = 1, mode = 'batch' },
           { ranks = 2, threads = 1, mode = 'directions' } },
  deep = { { ranks = 1, threads = 1 }, { ranks = 1, threads = 1, mode = 'pair' }, { ranks = 2, threads = 1, mode = 'flat' },
           { ranks = 2, threads = 1, mode = 'buckets' } },
  latency = { { ranks = 2, threads = 1, mode = 'checked' }, { ranks = 2, threads = 1, mode = 'nocheck' } },
}
local spsa_dist = spsa_is_distributed()

print(('dist.lua — data-parallel steps on CPU over Open MPI, %d round%s of %d steps (medians)'):format(
  ROUNDS, ROUNDS == 1 and '' or 's', STEPS))
if not have_mpi then
  print(('  mpirun or %s is missing: the 2-rank rows are skipped (apt-get install openmpi-bin ' ..
         'libopenmpi-dev; make)'):format(plugin))
end

local HEAD = {
  first = ('first-order: MLP 784-256-10, Adam, global batch %d (%d per rank on 2), gradient arena + loss ' ..
           'all-reduced (mean) by the optimizer once per step'):format(opts.batch, opts.batch / 2),
  deep = ('deep: MLP 784-1024-1024-1024-10 (2.9 M parameters), Adam, global batch %d; 2 ranks: the gradient ' ..
          'all-reduce in 1 MB buckets during the backward vs one flat all-reduce after it'):format(opts.batch),
  latency = 'latency: an 8-byte all_reduce on 2 ranks, back to back, with and without the agreement check',
  spsa = "spsa: the zeroth_learn preset (MLP 784-128-10, T = 50 forward differences, Adam); 1 rank: batch 50; " ..
         "'batch': 25 per rank, 'directions': 50 per rank, 25 directions each",
}

for _, case in ipairs(opts.cases) do
  print()
  print(HEAD[case])
  local configs = CONFIGS[case]
  if case == 'spsa' and not spsa_dist then
    print('  not measured: optim.SPSA has no data-parallel mode (optim/spsa_dist.lua) in this tree')
  else
    local samples, failed = {}, {}
    for i = 1, #configs do samples[i] = {} end
    for _ = 1, ROUNDS do                  -- the configurations in alternation, round by round
      for i, c in ipairs(configs) do
        if c.ranks == 1 or have_mpi then
          local r, why = launch(case, c.ranks, c.threads, c.mode)
          if r then samples[i][#samples[i] + 1] = r else failed[i] = why end
        end
      end
    end
    print(('  %5s %8s %-11s %9s %9s %15s %13s %8s %6s'):format('ranks', 'threads', 'mode', 'step ms', 'comm ms',
          'payload B/step', 'ring B/step', 'vs 1x1', 'agree'))
    local base
    for i, c in ipairs(configs) do
      local s = samples[i]
      local mode = c.mode or (c.ranks == 1 and '-' or 'gradients')
      if #s > 0 then
        local function med(k) local v = {}; for j, r in ipairs(s) do v[j] = r[k] end; return median(v) end
        local step, payload = med('step_s'), med('bytes')
        base = base or step
        local agree = 1
        for _, r in ipairs(s) do agree = math.min(agree, r.agree) end
        print(('  %5d %8d %-11s %9.3f %9.3f %15.0f %13.0f %7.2fx %6s'):format(c.ranks, c.threads, mode, step * 1e3,
              med('comm_s') * 1e3, payload, med('ring'), base / step,
              agree == 1 and 'yes' or 'NO'))
        if case == 'latency' then
          print(('  %36s %.1f us per all_reduce'):format('', step * 1e6))
        elseif c.ranks > 1 and (case == 'first' or case == 'deep') then
          local p = s[1].params
          local flat = c.mode == 'flat'   -- (otherwise the arena goes in buckets: no size check for them)
          print(('  %36s payload = 4 x %d (the float32 arena) + 8 (the loss, float64) + %s = %d; calls/step %g')
                :format('', p, flat and "2 x 32 (ms.dist's size checks)" or "32 (the loss's size check)",
                        4 * p + (flat and 72 or 40), med('calls')))
          local alone = med('alone_s')
          print(('  %36s the arena all_reduce alone, back to back: %.3f ms (%.0f MB/s of payload; ring bus ' ..
                 'bandwidth %.0f MB/s)'):format('', alone * 1e3, 4 * p / alone / 1e6,
                 4 * p * 2 * (c.ranks - 1) / c.ranks / alone / 1e6))
        elseif c.ranks > 1 then
          print(('  %36s %d collective(s)/step; goal <= 16 T = 800 bytes per rank per step: %s'):format('',
                med('calls'), payload <= 800 and 'met' or 'NOT met'))
        end
      elseif c.ranks > 1 and not have_mpi then
        print(('  %5d %8d %-11s skipped (no mpirun)'):format(c.ranks, c.threads, mode))
      else
        print(('  %5d %8d %-11s FAILED: %s'):format(c.ranks, c.threads, mode, tostring(failed[i])))
      end
    end
  end
end
print()
print(('vs 1x1: the step rate against 1 rank x 1 thread (2 ranks: 2x would be perfect scaling). pair: two ' ..
       '1-rank processes at once, half the batch each, no MPI: the most 2 processes get here. This machine ' ..
       'has %s cores, which the 2 ranks share with each other and with anything else running: a 2-rank row ' ..
       'says what two processes and their exchange cost here, not how a cluster scales. comm: the time inside ' ..
       'the collectives, waiting for the slower rank included (buckets: in starting them and waiting for them ' ..
       'after the backward, the part the backward did not hide). The payload is what each rank hands to MPI ' ..
       '(with ms.dist\'s 32-byte size check per collective); "ring" what a ring algorithm sends out of each ' ..
       'rank for it (all_reduce 2(n-1)/n, all_gather n-1, broadcast 1 x the payload).')
      :format(io.popen('nproc'):read('*l') or '?'))
