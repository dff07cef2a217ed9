-- zo_batched.lua (bench) — the batched evaluation of issue 9 (moonstep.nn.batched): the
-- losses of the nominal model and T perturbed copies on one mini-batch, against
--   separate: T + 1 separate model:forward + criterion:forward through the runtime (the
--             parameters are not perturbed between them: the forwards alone), and
--   floor:    the raw GEMMs of the same FLOPs: one [B, in] x [in, (T+1) h] matmul and the
--             batched [T+1, B, h] x [T+1, h, C] one (float32 sgemm; the perturbation's
--             part of the first layer dominates).
-- The MLP 784-128-10 (Linear, ReLU, Linear; CrossEntropyLoss), batch 50, T = 50 directions,
-- forward differences (nominal + T models: Zeroth-Learn's step) and central ones (nominal
-- + 2T models, +h and -h sharing their product), float32 on the CPU, one thread by default.
--   goals (issue 9): batched <= 0.5x separate; the SPSA step within 1.2x the floor.
-- With forward differences every model needs its own [B, in] x [in, h] product, so the
-- separate forwards (GEMM-bound in moonstep) do the same FLOPs as the batched pass: the
-- 0.5x goal is reachable only where products are shared (central differences).
-- Samples (about 100 ms each) alternate their order round by round; the figures are
-- medians over rounds.
--
--   bin/moonstep scripts/bench/zo_batched.lua [ROUNDS]
--   MOONSTEP_BENCH_THREADS=1   threads (ms.set_num_threads)
--   from another bench:  local zb = dofile(home .. '/scripts/bench/zo_batched.lua')
--                        local r = zb.run{ rounds = 7, threads = 1 }   -- r.batched_ms, r.ratio_separate, ...
--                        zb.report(r)                                    -- prints the lines below
local ms = require 'moonstep'
local batched = require 'moonstep.nn.batched'
local home = require('moonstep.core').home
local median = dofile(home .. '/scripts/bench/stats.lua').median
local nn, clock = ms.nn, ms.clock

local M = {}

-- The problem: model, criterion, data, directions and the scales of forward differences.
function M.setup(cfg)
  cfg = cfg or {}
  local B, T, nin, h, C = cfg.batch or 50, cfg.T or 50, cfg.nin or 784, cfg.hidden or 128, cfg.classes or 10
  local dt, dev = cfg.dtype or 'float32', cfg.device or 'cpu'
  ms.manual_seed(cfg.seed or 7)
  local model = nn.Sequential(nn.Linear(nin, h), nn.ReLU(), nn.Linear(h, C)):to(dev, dt)
  local crit = nn.CrossEntropyLoss()
  local x = ms.rand(B, nin):to(dev, dt)
  local labels = {}
  for i = 1, B do labels[i] = (i * 7) % C + 1 end
  local y = ms.tensor(labels, { dtype = 'int64' }):to(dev)
  local d = model:flat_parameters():numel()
  local U = ms.randn(T, d):sign_():to(dev, dt)                  -- Rademacher-like directions
  -- forward differences: the nominal and +h u_i; central: the nominal and +-h u_i
  local central = cfg.diff == 'central'
  local scales = { { row = 0 } }
  for i = 1, T do
    scales[#scales + 1] = { row = i, scale = 1e-3 }
    if central then scales[#scales + 1] = { row = i, scale = -1e-3 } end
  end
  local m = #scales
  -- the floor's operands: [B, in] x [in, (T+1) h] (the shared layer and the T distinct
  -- products), then [m, B, h] x [m, h, C]
  local g = {
    a = ms.rand(B, nin):to(dev, dt), b = ms.rand(nin, (T + 1) * h):to(dev, dt),
    o1 = ms.empty(B, (T + 1) * h):to(dev, dt), h = ms.rand(m, B, h):to(dev, dt),
    w = ms.rand(m, h, C):to(dev, dt), o2 = ms.empty(m, B, C):to(dev, dt),
  }
  return { model = model, crit = crit, x = x, y = y, U = U, scales = scales, gemm = g, m = m,
           B = B, T = T, nin = nin, h = h, C = C, dtype = dt, device = dev, diff = central and 'central' or 'forward' }
end

local function sync(p) if p.device == 'cuda' then ms.cuda.synchronize() end end

local function run_batched(p) batched.evaluate(p.model, p.crit, p.x, p.y, p.U, p.scales) end
local function run_separate(p)
  for _ = 1, p.m do p.crit:forward(p.model:forward(p.x), p.y) end
end
local function run_floor(p)
  local g = p.gemm
  ms.matmul(g.a, g.b, { out = g.o1 })
  ms.matmul(g.h, g.w, { out = g.o2 })
end

-- ms per call of f(p), over a sample of about sample_s seconds.
local function sample(f, p, sample_s)
  f(p); sync(p)
  local n, t0 = 0, clock()
  repeat f(p); n = n + 1; sync(p) until clock() - t0 >= sample_s
  return (clock() - t0) / n * 1e3
end

-- cfg: rounds [7], threads [MOONSTEP_BENCH_THREADS or 1], sample_ms [100], and setup's
-- batch, T, hidden, dtype, device, diff ('forward' | 'central'). Returns the medians (ms per call) and the ratios.
function M.run(cfg)
  cfg = cfg or {}
  local threads = cfg.threads or tonumber(os.getenv('MOONSTEP_BENCH_THREADS')) or 1
  local old = ms.num_threads()
  ms.set_num_threads(threads)
  local p = M.setup(cfg)
  local rounds, sample_s = cfg.rounds or 7, (cfg.sample_ms or 100) / 1000
  local fs = { batched = run_batched, separate = run_separate, floor = run_floor }
  local order = { 'batched', 'separate', 'floor' }
  local xs = { batched = {}, separate = {}, floor = {} }
  local rs, rf = {}, {}
  for r = 1, rounds do
    local t = {}
    for i = 1, #order do
      local name = order[r % 2 == 1 and i or #order + 1 - i]   -- alternate the order
      t[name] = sample(fs[name], p, sample_s)
      table.insert(xs[name], t[name])
    end
    rs[r], rf[r] = t.batched / t.separate, t.batched / t.floor
  end
  ms.set_num_threads(old)
  local B, T, nin, h, C = p.B, p.T, p.nin, p.h, p.C
  local flops = 2 * B * nin * h * (T + 1) + 2 * p.m * B * h * C
  local fl = median(xs.floor)
  return {
    batched_ms = median(xs.batched), separate_ms = median(xs.separate), floor_ms = fl,
    ratio_separate = median(rs), ratio_floor = median(rf), gflops_floor = flops / fl * 1e-6,
    threads = threads, rounds = rounds, B = B, T = T, m = p.m, diff = p.diff, shape = ('%d-%d-%d'):format(nin, h, C),
    dtype = p.dtype, device = p.device,
  }
end

function M.report(r)
  print(('zo_batched: MLP %s, batch %d, T = %d, %s differences (m = %d models), %s on %s, %d thread(s), ' ..
         '%d rounds (medians)'):format(r.shape, r.B, r.T, r.diff, r.m, r.dtype, r.device, r.threads, r.rounds))
  print(('  batched.evaluate   %8.3f ms'):format(r.batched_ms))
  print(('  %3d separate fwd   %8.3f ms'):format(r.m, r.separate_ms))
  print(('  sgemm floor        %8.3f ms  (%.1f GFLOP/s)'):format(r.floor_ms, r.gflops_floor))
  print(('  batched / separate %8.3f    (goal <= 0.5)'):format(r.ratio_separate))
  print(('  batched / floor    %8.3f    (the whole SPSA step: goal <= 1.2)'):format(r.ratio_floor))
end

if arg and type(arg[0]) == 'string' and arg[0]:match('zo_batched%.lua$') then
  local rounds = tonumber(arg[1]) or 7
  M.report(M.run { rounds = rounds })
  M.report(M.run { rounds = rounds, diff = 'central' })
end

return M
