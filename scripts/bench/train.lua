-- train.lua (bench) — training steps against their GEMM floor and against PyTorch CPU, in
-- one run, at 1 and 2 threads (issue 11's "Performance" table):
--   MLP 784-256-10, MLP 784-512-512-10, and the CNN of scripts/train.lua (conv3x3 1->32,
--   ReLU, maxpool2, conv3x3 32->64, ReLU, maxpool2, flatten, linear 3136->128, ReLU,
--   linear 128->10); Adam lr 1e-3, batch 128, Fashion-MNIST shuffled; each model as a user
--   writes it (input_grad left at its default: the first layer computes no gx).
-- Every case runs in its own process (so that its peak memory is its own), moonstep's as
-- `train.lua --worker`, PyTorch's as torch_train.py, twice (its default environment and
-- OMP_WAIT_POLICY=PASSIVE; the better is kept). A worker:
--   1. trains: the MLPs one epoch (469 steps), the CNN its first --cnn-steps steps, each
--      step (batch gather included) timed alone -> samples/s = batch / median step;
--      then the test accuracy (in batches of 128) and the peak memory (VmHWM) so far;
--   2. measures the GEMM floor: the sgemm calls of one forward+backward of the same model
--      (shapes, transposes, input_grad choice), timed alone through ms.matmul on
--      preallocated tensors, in alternation with further training steps (blocks of
--      --block of each, --rounds rounds): step ms and floor ms are the medians of that
--      phase, their quotient the "x floor" column.
-- The floor counts, per Linear(in, out) on x [N, in]: y = x W^T (N x out x in), gW += g^T x
-- (out x in x N, beta 1), and gx = g W (N x in x out) unless it is the model's first layer;
-- per Conv2d (as im2col + GEMM, K = Cin kh kw, NL = N OH OW): Y = W cols (O x NL x K),
-- gW += G cols^T (O x K x NL, beta 1), gcols = W^T G (K x NL x O) unless first. Forward and
-- gx GEMMs write their output (beta 0; the bias is not GEMM work). The list is checked
-- against the shapes and transposes of the ms.matmul calls of one real step (the driver
-- prints any difference). Nothing else (bias, activations, pooling, im2col, loss, Adam) is
-- in the floor. Goals: step <= 1.2x floor (MLPs), <= 1.35x (CNN), >= 1.5x PyTorch's
-- samples/s, equal accuracy, peak memory <= PyTorch's.
--
--   bin/moonstep scripts/bench/train.lua [--quick] [--threads 1,2] [--cases mlp1,mlp2,cnn]
--                                        [--cnn-steps 60] [--rounds 7] [--block 4] [--no-torch]
--   About 90 s on a quiet 2-core machine (PyTorch's six processes per thread count are
--   most of it). --quick: a smoke run (few steps, 2 rounds, PyTorch in its default env only).
--   MOONSTEP_GPU_ONLY=1 (make gpu-check): the GPU epoch alone (784-512-512-10, data on the
--   device; goal <= 50 ms on an H100).
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim
local home = require('moonstep.core').home
local stats = dofile(home .. '/scripts/bench/stats.lua')
local harness = dofile(home .. '/scripts/bench/harness.lua')
local q = harness.quote
local median, clock = stats.median, ms.clock

local BATCH = 128
local NAMES = { mlp1 = '784-256-10', mlp2 = '784-512-512-10', cnn = 'CNN' }
local GOAL_FLOOR = { mlp1 = 1.2, mlp2 = 1.2, cnn = 1.35 }

---------------------------------------------------------------------------------------
-- options
local worker
local opts = harness.options('train.lua', arg,
  { threads = { 1, 2 }, cases = { 'mlp1', 'mlp2', 'cnn' }, cnn_steps = 60, rounds = 7, block = 4, torch = true },
  { ['--cnn-steps'] = 'number',
    ['--worker'] = function(argv, i)   -- (the driver's own call: CASE THREADS STEPS ROUNDS BLOCK)
      worker = { case = argv[i + 1], threads = tonumber(argv[i + 2]), steps = tonumber(argv[i + 3]),
                 rounds = tonumber(argv[i + 4]), block = tonumber(argv[i + 5]) }
      return 5
    end })
if opts.quick then opts.rounds, opts.block = 2, 2 end

-- The step count of a case: the MLPs one epoch, the CNN its first cnn_steps (quick: few).
local function steps_of(case)
  if opts.quick then return case == 'cnn' and 6 or 30 end
  return case == 'cnn' and opts.cnn_steps or math.ceil(60000 / BATCH)
end

---------------------------------------------------------------------------------------
-- the models
-- One training step as a user writes it: forward, loss, backward inside Adam's closure.
local train_step = harness.module_step

local function build(case)
  if case == 'cnn' then
    return nn.Sequential(nn.Conv2d(1, 32, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
  end
  local hidden = case == 'mlp1' and { 256 } or { 512, 512 }
  local layers, prev = {}, 784
  for _, h in ipairs(hidden) do
    layers[#layers + 1] = nn.Linear(prev, h)
    layers[#layers + 1] = nn.ReLU()
    prev = h
  end
  layers[#layers + 1] = nn.Linear(prev, 10)
  return nn.Sequential(unpack(layers))
end

-- The GEMMs of one forward+backward of model (a Sequential) on x, as
-- { m, n, k, ta, tb, beta, what }: out [m, n] = op(A) op(B) (+ out), op(A) [m, k].
local function floor_gemms(model, x)
  model:forward(x)
  local list = {}
  local function add(m, n, k, ta, tb, beta, what)
    list[#list + 1] = { m = m, n = n, k = k, ta = ta, tb = tb, beta = beta, what = what }
  end
  for i, mod in ipairs(model.modules) do
    local gx = i > 1 or model.input_grad == true
    local input, name = model.inputs[i], mod.__name
    if name == 'Linear' then
      local n, fin, fout = input:size(1), mod.in_features, mod.out_features
      add(n, fout, fin, false, true, 0, 'Linear fwd')
      add(fout, fin, n, true, false, 1, 'Linear gW')
      if gx then add(n, fin, fout, false, false, 0, 'Linear gx') end
    elseif name == 'Conv2d' then
      assert(mod.groups == 1, 'train.lua: the floor assumes groups = 1')
      local out = model.inputs[i + 1]
      local O = mod.out_channels
      local K = mod.weight:numel() / O            -- weight [O, Cin, kh, kw]
      local NL = out:size(1) * out:size(3) * out:size(4)
      add(O, NL, K, false, false, 0, 'Conv2d fwd')
      add(O, K, NL, false, true, 1, 'Conv2d gW')
      if gx then add(K, NL, O, true, false, 0, 'Conv2d gx') end
    end
  end
  return list
end

-- One round of the floor: every GEMM of the list once, on preallocated tensors.
local function floor_round(list)
  local calls = {}
  for i, g in ipairs(list) do
    local a = g.ta and ms.rand(g.k, g.m) or ms.rand(g.m, g.k)
    local b = g.tb and ms.rand(g.n, g.k) or ms.rand(g.k, g.n)
    local o = ms.zeros(g.m, g.n)
    local mo = { transpose_a = g.ta, transpose_b = g.tb, out = o, beta = g.beta }
    calls[i] = function() ms.matmul(a, b, mo) end
  end
  return function() for i = 1, #calls do calls[i]() end end
end

-- The GEMMs one training step really calls through ms.matmul, as "MxNxK tA tB" keys
-- sorted (the floor's list is checked against them: same shapes and transposes).
local function key(m, n, k, ta, tb) return ('%dx%dx%d%s%s'):format(m, n, k, ta and ' tA' or '', tb and ' tB' or '') end

local function traced_gemms(step)
  local seen, orig = {}, ms.matmul
  ms.matmul = function(a, b, o)
    local ta, tb = o and o.transpose_a, o and o.transpose_b
    local d = a:dim()
    local m, k = a:size(d - 1), a:size(d)
    if ta then m, k = k, m end
    local n = tb and b:size(b:dim() - 1) or b:size(b:dim())
    seen[#seen + 1] = key(m, n, k, ta, tb) .. (d > 2 and (' x' .. a:size(1)) or '')
    return orig(a, b, o)
  end
  local ok, err = pcall(step)
  ms.matmul = orig
  if not ok then error(err, 0) end
  table.sort(seen)
  return seen
end

local function gflop(list)
  local f = 0
  for _, g in ipairs(list) do f = f + 2 * g.m * g.n * g.k end
  return f / 1e9
end

---------------------------------------------------------------------------------------
-- a worker: one case, one thread count; prints one "result ..." line
local function run_worker(w)
  ms.set_num_threads(w.threads)
  local dopts = w.case == 'cnn' and { shape = 'image' } or nil
  local train, test = ms.data.fashion_mnist('train', dopts), ms.data.fashion_mnist('test', dopts)
  ms.manual_seed(0)
  local model = build(w.case)
  local opt, crit = optim.Adam(model, { lr = 1e-3 }), nn.CrossEntropyLoss()
  local seed = 0
  local it = train:batches(BATCH, { shuffle = true, seed = seed })
  local function next_batch()
    local x, y = it()
    if not x then
      seed = seed + 1
      it = train:batches(BATCH, { shuffle = true, seed = seed })
      x, y = it()
    end
    return x, y
  end
  local function step() train_step(model, opt, crit, next_batch()) end

  -- 1. training as a user runs it
  local times = {}
  local t_all = clock()
  local t = t_all
  for _ = 1, w.steps do
    step()
    local now = clock()
    times[#times + 1] = now - t
    t = now
  end
  local epoch_s = clock() - t_all
  local correct = 0
  for x, y in test:batches(BATCH) do
    correct = correct + model:forward(x):argmax(2):to('float32'):eq(y:to('float32')):sum()
  end
  local acc = correct / test:size()
  local peak = stats.peak_kb() or 0

  -- 2. the floor, in alternation with further steps
  local xb = train.x:narrow(1, 1, BATCH)
  local list = floor_gemms(model, xb)
  local round = floor_round(list)
  local want = {}
  for i, g in ipairs(list) do want[i] = key(g.m, g.n, g.k, g.ta, g.tb) end
  table.sort(want)
  local seen = traced_gemms(step)
  local same = table.concat(seen, ';') == table.concat(want, ';')
  round()
  local steps2, floors = {}, {}
  for _ = 1, w.rounds do
    for _ = 1, w.block do
      local t0 = clock()
      step()
      steps2[#steps2 + 1] = clock() - t0
    end
    for _ = 1, w.block do
      local t0 = clock()
      round()
      floors[#floors + 1] = clock() - t0
    end
  end
  local desc = {}
  for _, g in ipairs(list) do
    desc[#desc + 1] = ('%s %dx%dx%d%s%s'):format(g.what, g.m, g.n, g.k, g.ta and ' tA' or '', g.tb and ' tB' or '')
  end
  print(('result case=%s steps=%d step_ms=%.4f epoch_s=%.4f acc=%.4f peak_kb=%d step2_ms=%.4f ' ..
         'floor_ms=%.4f gflop=%.5f same=%s gemms=%s seen=%s'):format(
    w.case, w.steps, median(times) * 1e3, epoch_s, acc, peak, median(steps2) * 1e3,
    median(floors) * 1e3, gflop(list), same and 'yes' or 'no', (table.concat(desc, '; '):gsub(' ', '_')),
    (table.concat(seen, '; '):gsub(' ', '_'))))
end

---------------------------------------------------------------------------------------
-- the driver
-- cmd run: its "result ..." line parsed, or nil and its output's tail (harness.lua)
local subprocess = harness.run_for_result

local function moonstep_case(case, th)
  return subprocess(('%s %s --worker %s %d %d %d %d'):format(q(home .. '/bin/moonstep'),
    q(home .. '/scripts/bench/train.lua'), case, th, steps_of(case), opts.rounds, opts.block))
end

-- PyTorch, both environments (--quick: its default one); the better samples/s is kept.
local function torch_case(case, th)
  local best, why
  for _, env in ipairs(opts.quick and { '' } or { '', 'OMP_WAIT_POLICY=PASSIVE' }) do
    local r, err = subprocess(('env %s /usr/bin/python3 %s %d %d %s %d'):format(env,
      q(home .. '/scripts/bench/torch_train.py'), th, BATCH, case, steps_of(case)))
    if r then
      r.env = env == '' and 'default' or 'PASSIVE'
      if not best or r.step_ms < best.step_ms then best = r end
    else
      why = err
    end
  end
  return best, why
end

local function run_driver()
  local have_torch = harness.have_torch(opts.torch)
  local t_run = clock()
  print(('moonstep training benchmark: Adam, batch %d, Fashion-MNIST; MLPs %d steps%s, CNN %d steps%s'):format(
    BATCH, steps_of('mlp1'), opts.quick and '' or ' (one epoch)', steps_of('cnn'), opts.quick and ' (--quick)' or ''))
  print('step: median ms of one step (batch gather to Adam); floor: median ms of the same GEMMs alone,')
  print('timed in alternation with steps; samples/s = 128 / the median step of the epoch (phase 1:')
  print('steadier on a shared machine than the alternated phase), PyTorch: the better of its')
  print('default env and OMP_WAIT_POLICY=PASSIVE; total s: all the timed steps of phase 1 (the MLPs:')
  print('one epoch); accuracy on the test set after them; peak: VmHWM of each case\'s own process.')
  local gemm_desc = {}
  for _, th in ipairs(opts.threads) do
    print(('\n%d thread%s'):format(th, th > 1 and 's' or ''))
    print(('  %-14s %7s %8s %15s %9s %8s %13s %13s %15s %13s'):format('model', 'step ms', 'floor ms',
      'x floor (goal)', 'samples/s', 'PyTorch', 'ratio (>=1.5)', 'total s ms/pt', 'accuracy ms/pt',
      'peak MB ms/pt'))
    for _, case in ipairs(opts.cases) do
      local r, err = moonstep_case(case, th)
      if not r then
        print(('  %-15s failed: %s'):format(NAMES[case], err))
      else
        gemm_desc[case] = ('%s (%.3f GFLOP): %s'):format(NAMES[case], r.gflop, (r.gemms:gsub('_', ' ')))
        if r.same ~= 'yes' then
          gemm_desc[case] = gemm_desc[case] .. '\n      (differs from the GEMMs its step calls through ms.matmul: ' ..
            (tostring(r.seen):gsub('_', ' ')) .. ')'
        end
        local t, terr
        if have_torch then t, terr = torch_case(case, th) end
        local rate = BATCH * 1e3 / r.step_ms
        local trate = t and BATCH * 1e3 / t.step_ms
        print(('  %-14s %7.2f %8.2f %7.2fx (%.2f) %9.0f %8s %13s %13s %15s %13s'):format(NAMES[case],
          r.step2_ms, r.floor_ms, r.step2_ms / r.floor_ms, GOAL_FLOOR[case], rate,
          t and ('%.0f'):format(trate) or '-',
          t and ('%.2fx %s'):format(rate / trate, t.env == 'default' and 'd' or 'P') or '-',
          ('%.2f/%s'):format(r.epoch_s, t and ('%.2f'):format(t.epoch_s) or '-'),
          ('%.4f/%s'):format(r.acc, t and ('%.4f'):format(t.acc) or '-'),
          ('%.0f/%s'):format(r.peak_kb / 1024, t and ('%.0f'):format(t.peak_kb / 1024) or '-')))
        if have_torch and not t then print('    PyTorch failed: ' .. tostring(terr)) end
      end
    end
  end
  print('\n  ratio: moonstep / PyTorch samples/s (d: PyTorch\'s default env was the better, P: PASSIVE)')
  print('  floor GEMMs, M x N x K (tA/tB: transposed operand; gW with beta 1, the others beta 0);')
  print('  checked against the ms.matmul calls of one real step (a difference is printed):')
  for _, case in ipairs(opts.cases) do
    if gemm_desc[case] then print('    ' .. gemm_desc[case]) end
  end
  if not have_torch then print('  (PyTorch: not run: /usr/bin/python3 has no torch, or --no-torch)') end
  print(('  total %.0f s; the machine may be shared: figures are medians, compare within a run'):format(clock() - t_run))
end

-- The GPU epoch (784-512-512-10, data on the device).
local function gpu_epoch()
  ms.manual_seed(0)
  local model = build('mlp2')
  model:to('cuda')
  local tr, te = ms.data.fashion_mnist('train'):to('cuda'), ms.data.fashion_mnist('test'):to('cuda')
  local opt, crit = optim.Adam(model, { lr = 1e-3 }), nn.CrossEntropyLoss()
  local t0 = clock()
  for x, y in tr:batches(BATCH, { shuffle = true, seed = 0 }) do train_step(model, opt, crit, x, y) end
  ms.cuda.synchronize()
  local secs = clock() - t0
  return ms.metrics.accuracy(model, te), secs
end

if worker then
  run_worker(worker)
else
  if os.getenv('MOONSTEP_GPU_ONLY') ~= '1' then run_driver() end
  if ms.cuda.is_available() then
    local acc, secs = gpu_epoch()
    print(('  GPU 784-512-512-10: epoch %.1f ms (accuracy %.4f), goal <= 50 ms on H100'):format(secs * 1e3, acc))
  else
    print('  GPU: skipped (no usable GPU)')
  end
end
