-- zo.lua (bench) — what zeroth-order SPSA (optim.SPSA, issue 9) costs, each figure beside
-- its competitor measured in the same run:
--   1. overhead: MeZO-like steps (n = 1, central, update 'mezo', lr 1e-6) of the MLP
--      784-1024-1024-10 (batch 64; 1024 too without --quick) in each memory mode: step time
--      / (passes x one plain forward of the same model and batch), goal <= 1.1; the split
--      forward vs zo ops (perturb, restore, update = step - passes x forward).
--   2. batched: the Zeroth-Learn setting (MLP 784-128-10, T = 50, batch 50, forward
--      differences, Adam: preset 'zeroth_learn' with a criterion), 1 thread: opt:step(x, y)
--      batched vs batched = false (T + 1 separate forwards, goal <= 0.5x), vs the sgemm floor
--      of the same FLOPs (ms.matmul of the same shapes, goal <= 1.2x), vs our numpy float32
--      re-implementation of the step (zo_numpy.py) and Zeroth-Learn's own code (its checkout
--      at $ZEROTH_LEARN_DIR, default /work/refs/nicolasmalet+Zeroth-Learn; skipped if absent).
--      Anchor (issue 9): Zeroth-Learn 27 ms/step on one thread, floor ~5.5 ms.
--   3. memory: MLP 784-2048-2048-10, batch 64, in child processes: forwards only, seeded
--      SPSA steps (exact restore), and restore = 'subtract'. Peak RSS (VmHWM) and the
--      allocator's high-water mark (glibc mallinfo2 in use less the runtime's block cache,
--      sampled after every forward and step; garbage collected after each step), seeded /
--      inference, goal <= 1.05; the exact-restore log (opt._zo_seeded.log; one alive at a time): entries, and
--      bytes as a fraction of the parameter bytes, at the initial weights and after 200 Adam
--      (backprop) steps on Fashion-MNIST (random data when it is missing).
--   4. accuracy (not with --quick unless --accuracy): one Fashion-MNIST epoch of the
--      zeroth_learn preset (784-128-10, batch 50, 1 thread, inputs standardized by one mean
--      and std as Zeroth-Learn does), test accuracy beside Zeroth-Learn's 77.0%.
-- Samples (about SAMPLE_MS each) alternate the order of the contenders round by round;
-- ratios are medians of the per-round ratios, times medians of the samples.
--
--   bin/moonstep scripts/bench/zo.lua [--quick] [--accuracy] [--rounds N] [--only 1,2,3,4]
--   (about 80 s; --quick about 25 s, what make bench runs; --only picks sections)
--   MOONSTEP_GPU_ONLY=1    sections 1 and 2 on the GPU (make gpu-check; skips without a GPU)
--   MOONSTEP_BENCH_THREADS=1   threads of sections 1 and 3 (sections 2 and 4: 1 thread)
--   MOONSTEP_BENCH_PYTHON=0    no numpy / Zeroth-Learn lines; MOONSTEP_BENCH_RSS=0  no section 3
local ms = require 'moonstep'
local ffi = require 'ffi'
local nn, optim, clock = ms.nn, ms.optim, ms.clock
local home = require('moonstep.core').home
local stats = dofile(home .. '/scripts/bench/stats.lua')
local median, vmhwm_kb = stats.median, stats.peak_kb

local opts = { rounds = nil, quick = false, accuracy = false, only = nil }
do
  local i = 1
  while arg and arg[i] do
    local a = arg[i]
    if a == '--quick' then opts.quick = true
    elseif a == '--accuracy' then opts.accuracy = true
    elseif a == '--rounds' then i = i + 1; opts.rounds = tonumber(arg[i])
    elseif a == '--only' then
      i = i + 1
      opts.only = {}
      for n in tostring(arg[i]):gmatch('%d') do opts.only[tonumber(n)] = true end
    elseif a == '--child' then opts.child = arg[i + 1]; break
    else io.stderr:write('zo.lua: unknown argument ' .. a .. '\n'); os.exit(2) end
    i = i + 1
  end
end
local ROUNDS = opts.rounds or (opts.quick and 3 or 5)
local SAMPLE_S = (tonumber(os.getenv('MOONSTEP_BENCH_SAMPLE_MS')) or (opts.quick and 80 or 150)) / 1000
local THREADS = tonumber(os.getenv('MOONSTEP_BENCH_THREADS')) or 1
local gpu_only = os.getenv('MOONSTEP_GPU_ONLY') == '1'

-- ---- helpers -----------------------------------------------------------------------------
local function sync(dev) if dev == 'cuda' then ms.cuda.synchronize() end end

local function mlp(sizes)
  local layers = {}
  for i = 1, #sizes - 1 do
    layers[#layers + 1] = nn.Linear(sizes[i], sizes[i + 1])
    if i < #sizes - 1 then layers[#layers + 1] = nn.ReLU() end
  end
  return nn.Sequential(unpack(layers)), table.concat(sizes, '-')
end

local function labels(B, C)
  local t = {}
  for i = 1, B do t[i] = (i * 7) % C + 1 end
  return ms.tensor(t, { dtype = 'int64' })
end

-- ms per call of f, over a sample of about SAMPLE_S seconds (at least 2 calls).
local function sample(f, dev)
  f(); sync(dev)
  local n, t0 = 0, clock()
  repeat f(); n = n + 1; sync(dev) until n >= 2 and clock() - t0 >= SAMPLE_S
  return (clock() - t0) / n * 1e3
end

-- Rounds of samples of the contenders fs[name], the order reversed every other round.
-- Returns the samples by name (lists) and, per round, the table of that round's samples.
local function alternate(fs, order, dev, rounds, between)
  local xs, per = {}, {}
  for _, k in ipairs(order) do xs[k] = {} end
  for r = 1, rounds do
    local t = {}
    for i = 1, #order do
      local k = order[r % 2 == 1 and i or #order + 1 - i]
      t[k] = sample(fs[k], dev)
      table.insert(xs[k], t[k])
    end
    per[r] = t
    if between then between(r) end
  end
  return xs, per
end

local function med_of(per, f)
  local v = {}
  for r, t in ipairs(per) do v[r] = f(t) end
  return median(v)
end

local function goal(ok) return ok and 'ok' or 'MISSED' end

-- ---- 1. the overhead of a step -----------------------------------------------------------
local MODES = {
  { 'seeded', 'gaussian' }, { 'seeded', 'rademacher' }, { 'seeded', 'gaussian', 'subtract' },
  { 'materialized', 'gaussian' }, { 'materialized', 'rademacher' },
  { 'virtual', 'gaussian' }, { 'virtual', 'rademacher' },
}

-- The runtime's direction ops alone over an arena of d elements: ns per element of one
-- pass (the step k changes every call, as in training).
local function ops_alone(dev, d)
  local zo = require 'moonstep.optim.zo_ops'
  local who = 'zo.lua'
  ms.manual_seed(6)
  local w0 = (ms.rand(d) - 0.5):mul_(2 / 32):to(dev)
  local w, out = w0:clone(), ms.empty(d):to(dev)
  local A, Bl = zo.log(), zo.log()
  local k = 0
  local function dir(dist, s) return { seed = 1, step = k % 2 ^ 31, index = 0, dist = dist, scale = s } end
  print(('  the ops alone, ns per element of one pass over %d elements (median of %d samples):'):format(d, ROUNDS))
  print('  dist        fill  perturb  move(no log)  move(+h -> -h, logged)  mezo_update   logged entries')
  for _, dist in ipairs { 'gaussian', 'rademacher' } do
    local fs = {
      fill = function() k = k + 1; zo.fill(who, out, dir(dist, 1e-3)) end,
      perturb = function() k = k + 1; zo.perturb(who, out, w, dir(dist, 1e-3)) end,
      move = function() k = k + 1; zo.move(who, w, nil, nil, dir(dist, 1e-3)); zo.move(who, w, dir(dist, 1e-3)) end,
      logged = function()   -- from fresh weights: round trips of one d quantize w
        k = k + 1
        w:copy_(w0)
        zo.move(who, w, nil, nil, dir(dist, 1e-3), A); sync(dev)
        local t0 = clock()
        zo.move(who, w, dir(dist, 1e-3), A, dir(dist, -1e-3), Bl); sync(dev)
        local t = clock() - t0
        zo.move(who, w, dir(dist, -1e-3), Bl)
        return t
      end,
      update = function() k = k + 1; zo.mezo_update(who, w, nil, nil, { dir(dist, 1) }, { 1e-9 }, nil, 1, 0) end,
    }
    local xs = {}
    for _, name in ipairs { 'fill', 'perturb', 'move', 'update' } do
      xs[name] = {}
      for r = 1, ROUNDS do xs[name][r] = sample(fs[name], dev) * 1e6 / d end
    end
    xs.move = { median(xs.move) / 2 }
    local lg = {}
    for r = 1, ROUNDS * 4 do lg[r] = fs.logged() * 1e9 / d end
    print(('  %-10s %5.2f %8.2f %13.2f %23.2f %12.2f   %.2f%% of the elements'):format(dist,
      median(xs.fill), median(xs.perturb), xs.move[1], median(lg), median(xs.update), 100 * Bl:count() / d))
  end
end

local function overhead(dev, B, with_ops)
  ms.manual_seed(1)
  local model, shape = mlp { 784, 1024, 1024, 10 }
  model:to(dev)
  local crit = nn.CrossEntropyLoss()
  local x, y = ms.rand(B, 784):to(dev), labels(B, 10):to(dev)
  local d = model:flat_parameters():numel()
  local function loss() return crit:forward(model:forward(x), y) end
  print(('\n1. step overhead: MLP %s (%d parameters), batch %d, %s, %d thread(s); mezo preset ' ..
         '(n = 1, central: 2 passes), lr 1e-6'):format(shape, d, B, dev, ms.num_threads()))
  print('  mode             dist       forward ms  step ms  2 x fwd  zo ops ms (share)  step/(2 fwd)  goal <= 1.1')
  for _, m in ipairs(MODES) do
    local cfg = { dist = m[2], memory = m[1], seed = 11, lr = 1e-6 }
    if m[3] then cfg.restore = m[3] end
    local opt = optim.SPSA(model, optim.SPSA.preset('mezo', cfg))
    local passes = 2
    local xs, per = alternate({ fwd = loss, step = function() opt:step(loss) end },
                              { 'fwd', 'step' }, dev, ROUNDS)
    local ratio = med_of(per, function(t) return t.step / (passes * t.fwd) end)
    local zo_ms = med_of(per, function(t) return t.step - passes * t.fwd end)
    local st = median(xs.step)
    print(('  %-16s %-10s %9.2f %8.2f %8.2f %9.2f (%4.0f%%) %12.3f   %s'):format(
      m[1] .. (m[3] and '/' .. m[3] or ''), m[2], median(xs.fwd), st, passes * median(xs.fwd),
      zo_ms, 100 * zo_ms / st, ratio, goal(ratio <= 1.1)))
  end
  if with_ops then ops_alone(dev, d) end
end

-- ---- 2. batched: the Zeroth-Learn setting -------------------------------------------------
local function python_ms(extra)
  if os.getenv('MOONSTEP_BENCH_PYTHON') == '0' then return nil, 'MOONSTEP_BENCH_PYTHON=0' end
  local cmd = ('OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 /usr/bin/python3 %s/scripts/bench/zo_numpy.py %s 2>&1')
    :format(home, extra)
  local p = io.popen(cmd)
  local out = p:read('*a')
  p:close()
  local v = tonumber(out:match('ms_per_step (%S+)'))
  if not v then return nil, (out:match('([^\n]*)\n?$') or 'no output'):sub(1, 160) end
  return v
end

local function batched_section(dev)
  local old = ms.num_threads()
  if dev == 'cpu' then ms.set_num_threads(1) end
  local B, T, H = 50, 50, 128
  local crit = nn.CrossEntropyLoss()
  ms.manual_seed(2)
  local mb, ms_ = mlp { 784, H, 10 }, mlp { 784, H, 10 }
  ms_:load_state_dict(mb:state_dict())
  mb:to(dev); ms_:to(dev)
  local x, y = ms.rand(B, 784):to(dev), labels(B, 10):to(dev)
  local ob = optim.SPSA(mb, optim.SPSA.preset('zeroth_learn', { criterion = crit, seed = 5 }))
  local os_ = optim.SPSA(ms_, optim.SPSA.preset('zeroth_learn', { criterion = crit, seed = 5, batched = false }))
  ob:step(x, y); os_:step(x, y)
  if not ob._zo.batched or os_._zo.batched then
    print(('\n2. batched on %s: skipped (the batched flags are not as configured)'):format(dev))
    return ms.set_num_threads(old)
  end
  -- the floor: [B, 784] x [784, (T + 1) H] and [T + 1, B, H] x [T + 1, H, 10]
  local g = { a = ms.rand(B, 784), b = ms.rand(784, (T + 1) * H), o1 = ms.empty(B, (T + 1) * H),
              h = ms.rand(T + 1, B, H), w = ms.rand(T + 1, H, 10), o2 = ms.empty(T + 1, B, 10) }
  for k, v in pairs(g) do g[k] = v:to(dev) end
  local function floor()
    ms.matmul(g.a, g.b, { out = g.o1 })
    ms.matmul(g.h, g.w, { out = g.o2 })
  end
  -- the split: the batched pass alone (the optimizer's U and scales), T + 1 plain forwards
  local scales = { { row = 0, scale = 0 } }
  for i = 1, T do scales[i + 1] = { row = i, scale = 1e-3 } end
  local evaluate = function() require('moonstep.nn.batched').evaluate(mb, crit, x, y, ob._U.tensor, scales) end
  local plain = function() for _ = 0, T do crit:forward(ms_:forward(x), y) end end
  local flops = 2 * B * 784 * H * (T + 1) + 2 * (T + 1) * B * H * 10
  local py = { numpy = {}, zl = {} }
  local why = {}
  local zl_dir = os.getenv('ZEROTH_LEARN_DIR') or '/work/refs/nicolasmalet+Zeroth-Learn'
  local have_zl = io.open(zl_dir .. '/zeroth/zeroth_order/model.py', 'r')
  if have_zl then have_zl:close() else why.zl = 'no checkout at ' .. zl_dir end
  local py_rounds = dev ~= 'cpu' and 0 or opts.quick and 1 or 3
  local function between(r)    -- the python competitors, alternating with our rounds
    if r > py_rounds then return end
    local v, e = python_ms(opts.quick and '--samples 3 --steps 5' or '--samples 5 --steps 10')
    if v then table.insert(py.numpy, v) else why.numpy = e end
    if have_zl then
      v, e = python_ms(('--samples %d --steps 5 --zeroth-learn %s'):format(opts.quick and 2 or 3, zl_dir))
      if v then table.insert(py.zl, v) else why.zl = e end
    end
  end
  local xs, per = alternate({ batched = function() ob:step(x, y) end, separate = function() os_:step(x, y) end,
                              floor = floor, evaluate = evaluate, plain = plain },
                            { 'batched', 'separate', 'floor', 'evaluate', 'plain' }, dev, ROUNDS, between)
  ms.set_num_threads(old)
  local b, s, f = median(xs.batched), median(xs.separate), median(xs.floor)
  local rs = med_of(per, function(t) return t.batched / t.separate end)
  local rf = med_of(per, function(t) return t.batched / t.floor end)
  local ev, pl = median(xs.evaluate), median(xs.plain)
  print(('\n2. batched: Zeroth-Learn setting, MLP 784-%d-10, T = %d, batch %d, forward differences, ' ..
         'Adam, float32, %s, %d thread(s)'):format(H, T, B, dev, dev == 'cpu' and 1 or old))
  print(('  SPSA step, batched            %8.2f ms   = batched.evaluate %.2f + directions, estimate, Adam %.2f')
    :format(b, ev, med_of(per, function(t) return t.batched - t.evaluate end)))
  print(('  SPSA step, batched = false    %8.2f ms   batched / separate %.3f  (goal <= 0.5: %s)'):format(s, rs, goal(rs <= 0.5)))
  print(('  %d plain forwards             %8.2f ms   batched.evaluate / plain forwards %.3f'):format(
    T + 1, pl, med_of(per, function(t) return t.evaluate / t.plain end)))
  print(('  sgemm floor (same FLOPs)      %8.2f ms   %.2f GFLOP, %.1f GFLOP/s; batched / floor %.3f  (goal <= 1.2: %s)')
    :format(f, flops * 1e-9, flops / f * 1e-6, rf, goal(rf <= 1.2)))
  if dev ~= 'cpu' then return end
  for _, c in ipairs { { 'numpy', 'numpy float32 (zo_numpy.py)  ' }, { 'zl', 'Zeroth-Learn own (float64)   ' } } do
    local m = median(py[c[1]])
    if not m then print(('  %s skipped: %s'):format(c[2], tostring(why[c[1]])))
    else
      print(('  %s %8.2f ms   ours %.2fx faster%s'):format(c[2], m, m / b, c[1] == 'numpy' and '' or
        (' (goal >= 5x: %s; anchor 27 ms, floor ~5.5 ms)'):format(goal(m / b >= 5))))
    end
  end
end

-- ---- 3. memory (child processes) ---------------------------------------------------------
ffi.cdef [[
struct zo_mallinfo2 { size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost; };
struct zo_mallinfo2 mallinfo2(void);
]]
-- The bytes live: glibc's in use (heap + mmapped chunks) less the runtime's cache of
-- released blocks (storage.c keeps them for the next request of their size).
local function in_use()
  local ok, m = pcall(ffi.C.mallinfo2)
  if not ok then return 0 end
  return tonumber(m.uordblks) + tonumber(m.hblkhd) - tonumber(ms.C.ms_cpu_cache_bytes())
end


local MEM_SIZES, MEM_B, MEM_STEPS = { 784, 2048, 2048, 10 }, 64, 10

-- The child: kind = infer | seeded | subtract. Prints key=value lines.
local function child(kind)
  ms.set_num_threads(THREADS)
  ms.manual_seed(3)
  local model = mlp(MEM_SIZES)
  local crit = nn.CrossEntropyLoss()
  local x, y = ms.rand(MEM_B, 784), labels(MEM_B, 10)
  local peak = 0
  local function loss()
    local l = crit:forward(model:forward(x), y)
    peak = math.max(peak, in_use())
    return l
  end
  local opt
  if kind ~= 'infer' then
    opt = optim.SPSA(model, optim.SPSA.preset('mezo', { seed = 9, lr = 1e-6,
      restore = kind == 'subtract' and 'subtract' or 'exact' }))
  end
  local function logs(steps)
    local e, bytes = 0, 0
    for _ = 1, steps do
      opt:step(loss)
      e = math.max(e, opt.zo_log_entries or 0)
    end
    bytes = opt.zo_log_bytes or 0
    return e, bytes
  end
  collectgarbage()
  for _ = 1, MEM_STEPS do
    if opt then opt:step(loss) else loss() end
    collectgarbage()
    peak = math.max(peak, in_use())
  end
  local pbytes = model:flat_parameters():numel() * 4
  print(('hwm_kb=%d alloc_peak=%d param_bytes=%d'):format(vmhwm_kb() or 0, peak, pbytes))
  if kind ~= 'seeded' then return end
  local e0, b0 = logs(3)
  -- train a little (backprop Adam) and measure again
  local okd, train = pcall(ms.data.fashion_mnist, 'train')
  local adam = optim.Adam(model, { lr = 1e-3 })
  local src, n = okd and train:batches(MEM_B, { shuffle = true, seed = 1 }), 0
  for _ = 1, 200 do
    local xb, yb = x, y
    if src then xb, yb = src() end
    adam:step(function()
      local out = model:forward(xb)
      local l = crit:forward(out, yb)
      model:backward(xb, crit:backward(out, yb))
      return l
    end)
    n = n + 1
  end
  local e1, b1 = logs(3)
  print(('log0_entries=%d log0_bytes=%d log1_entries=%d log1_bytes=%d trained_steps=%d data=%s zo_log_entries=%d')
    :format(e0, b0, e1, b1, n, okd and 'fashion-mnist' or 'random', opt.zo_log_entries or 0))
end

local function run_child(kind)
  local env = ('MOONSTEP_BENCH_THREADS=%d'):format(THREADS)
  local p = io.popen(('%s %s/bin/moonstep %s/scripts/bench/zo.lua --child %s 2>&1'):format(env, home, home, kind))
  local out = p:read('*a')
  p:close()
  local r = {}
  for k, v in out:gmatch('([%w_]+)=(%S+)') do r[k] = tonumber(v) or v end
  if not r.hwm_kb then r.error = out:sub(1, 300) end
  return r
end

local function memory_section()
  print(('\n3. memory: MLP %s, batch %d, %d steps or forwards per child process, %d thread(s)')
    :format(table.concat(MEM_SIZES, '-'), MEM_B, MEM_STEPS, THREADS))
  local runs = {}
  for _, k in ipairs { 'infer', 'seeded', 'subtract' } do
    runs[k] = run_child(k)
    if runs[k].error then print('  ' .. k .. ' child failed: ' .. runs[k].error); return end
  end
  local inf = runs.infer
  print(('  parameters %.1f MB; inference: peak RSS %.1f MB, allocator high-water %.1f MB')
    :format(inf.param_bytes / 2 ^ 20, inf.hwm_kb / 1024, inf.alloc_peak / 2 ^ 20))
  for _, k in ipairs { 'seeded', 'subtract' } do
    local r = runs[k]
    local rr, ra = r.hwm_kb / inf.hwm_kb, r.alloc_peak / inf.alloc_peak
    print(('  seeded%-10s peak RSS %.1f MB (%.3fx, goal <= 1.05: %s), allocator %.1f MB (%.3fx: %s)')
      :format(k == 'subtract' and '/subtract' or '/exact', r.hwm_kb / 1024, rr, goal(rr <= 1.05),
              r.alloc_peak / 2 ^ 20, ra, goal(ra <= 1.05)))
  end
  local s = runs.seeded
  local d = s.param_bytes / 4
  local extra = s.alloc_peak - inf.alloc_peak
  print(('  seeded/exact allocates %.1f MB more than inference: its logs %.1f MB (both of a move, the largest seen), the rest %.1f MB')
    :format(extra / 2 ^ 20, s.log0_bytes / 2 ^ 20, (extra - s.log0_bytes) / 2 ^ 20))
  print(('  exact-restore logs, initial weights: %d entries (%.2f%% of the elements), both logs of a move %.2f MB = %.1f%% of the parameter bytes')
    :format(s.log0_entries, 100 * s.log0_entries / d, s.log0_bytes / 2 ^ 20, 100 * s.log0_bytes / s.param_bytes))
  print(('  after %d Adam steps (%s):      %d entries (%.2f%%), both logs of a move %.2f MB = %.1f%%; opt.zo_log_entries %d')
    :format(s.trained_steps, s.data, s.log1_entries, 100 * s.log1_entries / d, s.log1_bytes / 2 ^ 20,
            100 * s.log1_bytes / s.param_bytes, s.zo_log_entries))
end

-- ---- 4. accuracy (--accuracy) ------------------------------------------------------------
local function accuracy_section()
  local ok, train = pcall(ms.data.fashion_mnist, 'train')
  print('\n4. accuracy: one Fashion-MNIST epoch, zeroth_learn preset, MLP 784-128-10, batch 50')
  if not ok then print('  skipped: ' .. tostring(train):gsub('\n.*', '')); return end
  local test = ms.data.fashion_mnist('test')
  -- Zeroth-Learn's preprocessing: one mean and std over all training pixels
  local mean, std = train.x:mean(), train.x:std()
  train:normalize(mean, std); test:normalize(mean, std)
  local old = ms.num_threads()
  ms.set_num_threads(1)
  ms.manual_seed(4)
  local model = mlp { 784, 128, 10 }
  local opt = optim.SPSA(model, optim.SPSA.preset('zeroth_learn', { criterion = nn.CrossEntropyLoss(), seed = 4 }))
  local t0, steps = clock(), 0
  for xb, yb in train:batches(50, { shuffle = true, seed = 4 }) do opt:step(xb, yb); steps = steps + 1 end
  local secs = clock() - t0
  ms.set_num_threads(old)
  local acc = ms.metrics.accuracy(model, test)
  print(('  %d steps in %.1f s (%.2f ms/step, 1 thread), inputs standardized: test accuracy %.1f%%  (Zeroth-Learn: 77.0%%)')
    :format(steps, secs, secs / steps * 1e3, 100 * acc))
end

-- ---- main ----------------------------------------------------------------------------------
if opts.child then child(opts.child); os.exit(0) end

local t_start = clock()
if gpu_only then
  print('zo.lua (GPU section): SPSA step overhead and the batched step on the GPU')
  if not ms.cuda.is_available() then
    print('  skipped: ' .. (ms.cuda.compiled() and 'no usable GPU on this machine' or 'built without CUDA'))
  else
    for i, B in ipairs { 64, 1024 } do overhead('cuda', B, i == 1) end
    batched_section('cuda')
  end
  os.exit(0)
end
print(('zo.lua: zeroth-order SPSA (issue 9), %d rounds of ~%d ms samples, medians%s')
  :format(ROUNDS, SAMPLE_S * 1000, opts.quick and ', --quick' or ''))
local function wanted(n) return opts.only == nil and (n ~= 4 or opts.accuracy or not opts.quick) or (opts.only and opts.only[n]) end
if wanted(1) then
  local old = ms.num_threads()
  ms.set_num_threads(THREADS)
  for i, B in ipairs(opts.quick and { 64 } or { 64, 1024 }) do overhead('cpu', B, i == 1) end
  ms.set_num_threads(old)
end
if wanted(2) then batched_section('cpu') end
if wanted(3) and os.getenv('MOONSTEP_BENCH_RSS') ~= '0' and vmhwm_kb() then memory_section() end
if wanted(4) then accuracy_section() end
print(('\nzo.lua: %.0f s'):format(clock() - t_start))
