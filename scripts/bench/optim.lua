-- optim.lua (bench) — the fused optimizer steps against a plain float C loop of the same
-- update (scripts/bench/optim_loop.c, compiled here with -O3 -march=x86-64-v3) and against
-- PyTorch CPU optimizer.step() (Debian python3-torch, its faster of foreach=False/True),
-- all in one run. Only the update is timed: gradients are already in the arena.
--
--   arenas: "big"   8 x Linear(2048, 2048)   33.6M parameters (DRAM-resident)
--           "small" 784-512-512-10 MLP         670K parameters (cache-resident)
--   threads 1 and 2; Adam, AdamW, SGD-momentum, zero_grad
--   goals: >= 0.9x the C loop's speed for each; >= 4x PyTorch for Adam;
--          groups + weight-decay masks <= 1.05x the uniform step; AutoSGM <= 1.5x Adam;
--          the chain form <= 3x the fused form; GPU: one launch per step, >= 80% of HBM peak.
--
-- Samples alternate between the contenders (A B, then B A) and rounds repeat; every figure
-- is a median (the machine is shared and noisy).
--   bin/moonstep scripts/bench/optim.lua [ROUNDS]          (make bench runs it)
--   MOONSTEP_GPU_ONLY=1     the GPU section alone          MOONSTEP_BENCH_TORCH=0  no PyTorch
--   MOONSTEP_BENCH_MODELS=small   one arena only           MOONSTEP_HBM_GBS=4800   HBM peak
local ms = require 'moonstep'
local ffi = require 'ffi'
local home = require('moonstep.core').home
local optim = ms.optim
local clock = ms.clock

local rounds = tonumber(arg and arg[1]) or 15
local gpu_only = os.getenv('MOONSTEP_GPU_ONLY') == '1'
local with_torch = os.getenv('MOONSTEP_BENCH_TORCH') ~= '0'
local maxth = ms.num_threads()
local thread_counts = maxth > 1 and { 1, 2 } or { 1 }

-- ---- helpers -----------------------------------------------------------------------------
local median = dofile(home .. '/scripts/bench/stats.lua').median

-- Seconds per call of f over reps calls.
local function sample(f, reps)
  local t0 = clock()
  for _ = 1, reps do f() end
  return (clock() - t0) / reps
end

-- reps so that one sample lasts about `secs`.
local function calibrate(f, secs)
  f()
  local t = sample(f, 1)
  return math.max(1, math.floor((secs or 0.03) / math.max(t, 1e-7)))
end

local function has(t, k)   -- a field of a strict table (ms.optim, ms.cuda), or nil
  return rawget(t, k)
end

-- The model's parameter shapes; names let groups match 'bias'.
local MODELS = {
  big = (function()
    local s = {}
    for i = 1, 8 do
      s[#s + 1] = { ('l%d.weight'):format(i), { 2048, 2048 } }
      s[#s + 1] = { ('l%d.bias'):format(i), { 2048 } }
    end
    return s
  end)(),
  small = { { 'l1.weight', { 512, 784 } }, { 'l1.bias', { 512 } }, { 'l2.weight', { 512, 512 } },
            { 'l2.bias', { 512 } }, { 'l3.weight', { 10, 512 } }, { 'l3.bias', { 10 } } },
}
local model_names = {}
for name in (os.getenv('MOONSTEP_BENCH_MODELS') or 'big,small'):gmatch('[^,]+') do
  assert(MODELS[name], 'unknown model ' .. name)
  model_names[#model_names + 1] = name
end

-- A parameter arena over the model's tensors, gradients filled (device: 'cpu' or 'cuda').
local function arena(shapes, device)
  ms.manual_seed(0)
  local list = {}
  for _, e in ipairs(shapes) do list[e[1]] = ms.randn(unpack(e[2])):mul_(0.05) end
  local set = ms.params(list)
  set:flat_gradients():copy_(ms.randn(set:numel()):mul_(0.01))
  if device == 'cuda' then set:to('float32', 'cuda') end
  return set
end

-- The update alone: opt:apply() as it runs inside opt:step(closure), after evaluate()
-- has checked the gradients (so without the non-finite pass of a bare apply(); the
-- variants section times that pass), else the legacy engine's fused _update with the
-- hyper-parameters as plain values (no closure, no non-finite check).
-- checked = false: a bare opt:apply(), its own non-finite check included.
local function updater(opt, checked)
  if opt.apply then
    if checked == false then return function() opt:apply() end end
    local who = opt.__name .. '.apply'
    return function()   -- step(closure)'s second half: evaluate() has checked the gradients
      opt._checked = true
      opt:_apply(who, true)
    end
  end
  local h = {}
  for k in pairs(opt.defaults) do h[k] = opt[k] end
  return function()
    local t = opt.t + 1
    assert(opt:_update(h, t) == 0, 'step failed')
    opt.t = t
  end
end

local T = require 'moonstep.tensor'
local function ptr(t) return ffi.cast('float *', T.data(t, 'bench')) + t.offset end

-- ---- the C loop --------------------------------------------------------------------------
ffi.cdef [[
void ol_adam(float *p, const float *g, float *m, float *v, int64_t n, float b1, float omb1,
             float b2, float omb2, float bc2_sqrt, float eps, float neg_step, int nth);
void ol_adamw(float *p, const float *g, float *m, float *v, int64_t n, float decay, float b1,
              float omb1, float b2, float omb2, float bc2_sqrt, float eps, float neg_step, int nth);
void ol_sgd_momentum(float *p, const float *g, float *buf, int64_t n, float mu, float omdamp,
                     float neg_lr, int nth);
void ol_zero(float *g, int64_t n, int nth);
]]

local LOOP
local function load_loop()
  local so = os.tmpname()
  local cmd = ('%s -std=c11 -O3 -march=x86-64-v3 -fno-math-errno -fopenmp -fPIC -shared -o %s %s/scripts/bench/optim_loop.c'):format(
    os.getenv('CC') or 'cc', so, home)
  assert(os.execute(cmd) == 0, 'could not compile optim_loop.c: ' .. cmd)
  LOOP = ffi.load(so)
  os.remove(so)
end

-- The constants of one step, as the runtime derives them (double, rounded to float by FFI).
local function adam_consts(t, lr, b1, b2, wd)
  local bc1, bc2 = 1 - b1 ^ t, 1 - b2 ^ t
  return { decay = 1 - lr * (wd or 0), b1 = b1, omb1 = 1 - b1, b2 = b2, omb2 = 1 - b2,
           bc2_sqrt = math.sqrt(bc2), eps = 1e-8, neg_step = -(lr / bc1) }
end

-- Flat float buffers for the loop: p, g copied from the arena (shared by the ops, as the
-- optimizers share the arena), z the gradient zero_grad clears.
local function loop_state(set)
  local n = set:numel()
  local st = { n = n, p = set:flat_parameters():clone(), g = set:flat_gradients():clone(), z = ms.zeros(n) }
  st.pp, st.pg, st.pz = ptr(st.p), ptr(st.g), ptr(st.z)
  return st
end

-- The op's own state (zero), as each optimizer has its own buffers: the loop's memory
-- footprint is moonstep's, so both see the same caches.
local function loop_op_state(st)
  local o = setmetatable({ s0 = ms.zeros(st.n), s1 = ms.zeros(st.n) }, { __index = st })
  o.p0, o.p1 = ptr(o.s0), ptr(o.s1)
  return o
end

local function loop_step(op, st, t, nth)
  if op == 'adam' then
    local k = adam_consts(t, 1e-3, 0.9, 0.999)
    LOOP.ol_adam(st.pp, st.pg, st.p0, st.p1, st.n, k.b1, k.omb1, k.b2, k.omb2, k.bc2_sqrt, k.eps, k.neg_step, nth)
  elseif op == 'adamw' then
    local k = adam_consts(t, 1e-3, 0.9, 0.999, 0.01)
    LOOP.ol_adamw(st.pp, st.pg, st.p0, st.p1, st.n, k.decay, k.b1, k.omb1, k.b2, k.omb2, k.bc2_sqrt, k.eps,
                  k.neg_step, nth)
  elseif op == 'sgd_momentum' then   -- step 1: the buffer starts as the gradient (mu = 0)
    LOOP.ol_sgd_momentum(st.pp, st.pg, st.p0, st.n, t == 1 and 0 or 0.9, 1, -0.01, nth)
  else
    LOOP.ol_zero(st.pz, st.n, nth)
  end
end

local OPTS = {
  adam = function(set) return optim.Adam(set, { lr = 1e-3 }) end,
  adamw = function(set) return optim.AdamW(set, { lr = 1e-3, weight_decay = 0.01 }) end,
  sgd_momentum = function(set) return optim.SGD(set, { lr = 0.01, momentum = 0.9 }) end,
}
local OP_ORDER = { 'adam', 'adamw', 'sgd_momentum', 'zero_grad' }
local LABEL = { adam = 'Adam', adamw = 'AdamW', sgd_momentum = 'SGD-momentum', zero_grad = 'zero_grad' }
local BYTES = { adam = 28, adamw = 28, sgd_momentum = 20, zero_grad = 4 }   -- per parameter

-- Same update: three steps of moonstep and of the loop from the same start give the same
-- parameters (bit for bit when the runtime's rule is the loop's).
local function same_update(op)
  local set = arena(MODELS.small)
  local st = loop_op_state(loop_state(set))
  local opt = OPTS[op](set)
  local up = updater(opt)
  for t = 1, 3 do
    up()
    loop_step(op, st, t, 1)
  end
  local diff = (set:flat_parameters() - st.p):abs():max()
  return diff
end

print(('moonstep optimizer benchmark: %d rounds, medians; threads %s of %d'):format(
  rounds, table.concat(thread_counts, ','), maxth))

local results = {}   -- results[model][nth][op] = {moon=, loop=, torch=, foreach=}
local extra = {}     -- rows of the groups / AutoSGM / chain comparisons

if not gpu_only then
  load_loop()

  print('\nsame update (3 steps on the small arena, max |moonstep - C loop| over the parameters):')
  for _, op in ipairs { 'adam', 'adamw', 'sgd_momentum' } do
    local d = same_update(op)
    print(('  %-14s %s'):format(LABEL[op], d == 0 and 'bit-identical' or ('differs by %.3g'):format(d)))
  end

  -- ---- PyTorch, in its own process, run between moonstep rounds ------------------------
  local torch_runs = {}   -- key op|model|nth -> list of seconds (best foreach per run)
  local torch_fe = {}
  local torch_ok = false
  local function run_torch()
    if not with_torch then return end
    local cmd = ('/usr/bin/python3 %s/scripts/bench/torch_optim.py %s 3 %s 2>/dev/null'):format(
      home, table.concat(thread_counts, ','), table.concat(model_names, ' '))
    local py = io.popen(cmd)
    if not py then return end
    local best = {}
    for line in py:lines() do
      local op, model, nth, fe, sec = line:match('^(%S+) (%S+) (%d+) (%d) (%S+)$')
      if op then
        torch_ok = true
        local key = op .. '|' .. model .. '|' .. nth
        sec = tonumber(sec)
        if not best[key] or sec < best[key][1] then best[key] = { sec, fe == '1' } end
      end
    end
    py:close()
    for key, b in pairs(best) do
      torch_runs[key] = torch_runs[key] or {}
      table.insert(torch_runs[key], b[1])
      torch_fe[key] = torch_fe[key] or {}
      torch_fe[key][b[2] and 'foreach' or 'for-loop'] = (torch_fe[key][b[2] and 'foreach' or 'for-loop'] or 0) + 1
    end
  end

  -- ---- moonstep vs the loop --------------------------------------------------------------
  local cases = {}
  for _, model in ipairs(model_names) do
    local set = arena(MODELS[model])
    local st0 = loop_state(set)
    local sts = {}
    for _, op in ipairs { 'adam', 'adamw', 'sgd_momentum' } do sts[op] = loop_op_state(st0) end
    local gsave = set:flat_gradients():clone()
    local opts = {}
    for _, op in ipairs { 'adam', 'adamw', 'sgd_momentum' } do opts[op] = OPTS[op](set) end
    for _, nth in ipairs(thread_counts) do
      for _, op in ipairs(OP_ORDER) do
        local moon
        if op == 'zero_grad' then
          moon = function() set:zero_grad() end
        else
          moon = updater(opts[op])
        end
        local t = 10
        local st = sts[op] or st0
        local loop = function() loop_step(op, st, t, nth) end
        local c = { model = model, nth = nth, op = op, moon = moon, loop = loop, n = set:numel(),
                    set = set, gsave = gsave, tm = {}, tl = {} }
        ms.set_num_threads(nth)
        c.rm, c.rl = calibrate(moon), calibrate(loop)
        if op == 'zero_grad' then set:flat_gradients():copy_(gsave) end
        cases[#cases + 1] = c
      end
    end
  end

  local torch_at = { [1] = true, [math.max(1, math.ceil(rounds / 2))] = true, [rounds] = true }
  for r = 1, rounds do
    io.stderr:write(('  round %d/%d\r'):format(r, rounds))
    for _, c in ipairs(cases) do
      ms.set_num_threads(c.nth)
      if r % 2 == 1 then
        table.insert(c.tm, sample(c.moon, c.rm))
        table.insert(c.tl, sample(c.loop, c.rl))
      else
        table.insert(c.tl, sample(c.loop, c.rl))
        table.insert(c.tm, sample(c.moon, c.rm))
      end
      -- zero_grad cleared the gradients: restore them (Adam's moments would otherwise
      -- decay into subnormals)
      if c.op == 'zero_grad' then c.set:flat_gradients():copy_(c.gsave) end
    end
    ms.set_num_threads(maxth)
    if torch_at[r] then run_torch() end
  end
  io.stderr:write('\n')

  for _, c in ipairs(cases) do
    results[c.model] = results[c.model] or {}
    results[c.model][c.nth] = results[c.model][c.nth] or {}
    local key = c.op .. '|' .. c.model .. '|' .. c.nth
    local fe = torch_fe[key]
    local fes
    if fe then
      fes = (fe.foreach or 0) >= (fe['for-loop'] or 0) and 'foreach' or 'for-loop'
    end
    results[c.model][c.nth][c.op] = { n = c.n, moon = median(c.tm), loop = median(c.tl),
                                      moon_min = math.min(unpack(c.tm)), loop_min = math.min(unpack(c.tl)),
                                      torch = torch_runs[key] and median(torch_runs[key]), fe = fes }
  end

  print(('\nper step, medians: milliseconds (ns/param); vs loop = C loop time / moonstep time (best:\n' ..
    'the same from the fastest sample of each, less sensitive to a loaded machine); PyTorch: %s'):format(
    torch_ok and 'best of foreach=False/True' or 'not run (python3-torch missing or MOONSTEP_BENCH_TORCH=0)'))
  print(('  %-26s %18s %18s %18s %9s %9s %9s'):format('', 'moonstep', 'C loop', 'PyTorch', 'vs loop',
    'best', 'torch/ms'))
  for _, model in ipairs(model_names) do
    for _, nth in ipairs(thread_counts) do
      for _, op in ipairs(OP_ORDER) do
        local r = results[model][nth][op]
        local function cell(t)
          if not t then return ('%18s'):format('-') end
          return ('%9.3f (%5.2f)'):format(t * 1e3, t / r.n * 1e9)
        end
        print(('  %-26s %s %s %s %8.2fx %8.2fx %8s'):format(
          ('%s %s, %d thr'):format(LABEL[op], model, nth), cell(r.moon), cell(r.loop), cell(r.torch),
          r.loop / r.moon, r.loop_min / r.moon_min, r.torch and ('%.2fx'):format(r.torch / r.moon) or '-'))
      end
    end
  end

  -- ---- groups, AutoSGM, chain: each against its reference, alternated ---------------------
  -- a: the variant, b: the reference; returns median times.
  local function versus(fa, fb, nth)
    ms.set_num_threads(nth)
    local ra, rb = calibrate(fa), calibrate(fb)
    local ta, tb = {}, {}
    for r = 1, rounds do
      if r % 2 == 1 then
        table.insert(ta, sample(fa, ra)); table.insert(tb, sample(fb, rb))
      else
        table.insert(tb, sample(fb, rb)); table.insert(ta, sample(fa, ra))
      end
    end
    ms.set_num_threads(maxth)
    return median(ta), median(tb)
  end

  -- Build an optimizer, or nil and the reason when this engine lacks the feature.
  local function try(f)
    local ok, opt = pcall(f)
    if ok then return opt end
    return nil, tostring(opt):gsub('\n.*', '')
  end

  local GROUPS = { { match = 'bias', weight_decay = 0 } }
  local variants = {
    { 'AdamW + groups {bias: wd 0}', 'AdamW uniform', 1.05,
      function(set) return optim.AdamW(set, { lr = 1e-3, weight_decay = 0.01, groups = GROUPS }) end,
      OPTS.adamw },
    { 'SGD-mom wd + groups {bias: wd 0}', 'SGD-mom wd uniform', 1.05,
      function(set) return optim.SGD(set, { lr = 0.01, momentum = 0.9, weight_decay = 1e-4, groups = GROUPS }) end,
      function(set) return optim.SGD(set, { lr = 0.01, momentum = 0.9, weight_decay = 1e-4 }) end },
    { 'AutoSGM (defaults)', 'Adam', 1.5,
      function(set)
        assert(has(optim, 'AutoSGM'), 'ms.optim.AutoSGM is not present')
        return optim.AutoSGM(set)
      end, OPTS.adam },
    { 'chain(scale_by_adam, scale(-lr))', 'Adam (fused)', 3,
      function(set)
        assert(has(optim, 'chain') and has(optim, 'scale_by_adam'), 'ms.optim.chain is not present')
        local c = optim.chain(optim.scale_by_adam { b1 = 0.9, b2 = 0.999, eps = 1e-8 },
                              optim.scale_by_learning_rate(1e-3))
        c:bind(set)
        return c
      end, OPTS.adam },
    { 'Adam apply() with its non-finite check', 'Adam update', nil,
      function(set) return OPTS.adam(set) end, OPTS.adam, false },
  }
  print('\nvariants: time ratio variant / reference (lower is better), medians')
  print(('  %-42s %12s %12s %8s   %s'):format('', 'variant ms', 'ref ms', 'ratio', 'goal'))
  for _, model in ipairs(model_names) do
    local set = arena(MODELS[model])
    for _, v in ipairs(variants) do
      local a, why = try(function() return v[4](set) end)
      local b = v[5](set)
      for _, nth in ipairs(thread_counts) do
        local name = ('%s, %s, %d thr'):format(v[1], model, nth)
        if not a then
          print(('  %-42s skipped: %s'):format(name, why))
          extra[#extra + 1] = { name = name, ref = v[2], goal = v[3] }
          break
        end
        local ta, tb = versus(updater(a, v[6]), updater(b), nth)
        local ratio = ta / tb
        print(('  %-42s %12.3f %12.3f %7.3fx   %s'):format(name, ta * 1e3, tb * 1e3, ratio,
          v[3] and ('<= %.2fx %s'):format(v[3], ratio <= v[3] and 'pass' or 'FAIL') or '(for information)'))
        extra[#extra + 1] = { name = name, ref = v[2], ta = ta, tb = tb, ratio = ratio, goal = v[3] }
      end
    end
  end
end -- CPU sections

-- ---- GPU ------------------------------------------------------------------------------------
local gpu = {}
print('\nGPU')
if not ms.cuda.is_available() then
  print('  skipped: ' .. (ms.cuda.compiled() and 'no usable GPU on this machine' or 'built without CUDA'))
else
  local peak = tonumber(os.getenv('MOONSTEP_HBM_GBS')) or 4800   -- H200 HBM3e; H100 SXM: 3350
  local n = 64 * 1024 * 1024
  local function on_gpu(numel)
    ms.manual_seed(0)
    local set = ms.params { ms.randn(numel):mul_(0.05) }
    set:flat_gradients():copy_(ms.randn(numel):mul_(0.01))
    set:to('float32', 'cuda')
    return set
  end
  local counter = has(ms.cuda, 'launch_count')
  local function gtime(f, reps)
    ms.cuda.synchronize()
    local ts = {}
    for _ = 1, 5 do
      local t0 = clock()
      for _ = 1, reps do f() end
      ms.cuda.synchronize()
      ts[#ts + 1] = (clock() - t0) / reps
    end
    return median(ts)
  end
  print(('  %-30s %12s %12s %10s   %s'):format('', 'ms/step', 'GB/s', '% of peak', 'goal >= 80% of ' .. peak .. ' GB/s'))
  local big, small = on_gpu(n), on_gpu(669706)
  for _, op in ipairs(OP_ORDER) do
    local f
    if op == 'zero_grad' then f = function() big:zero_grad() end else f = updater(OPTS[op](big)) end
    f()
    local t = gtime(f, 20)
    local gbs = BYTES[op] * n / t / 1e9
    local launches = '-'
    if counter then
      local c0 = counter(); f(); ms.cuda.synchronize(); launches = tostring(counter() - c0)
    end
    print(('  %-30s %12.3f %12.0f %9.1f%%   %s  (launches per step: %s)'):format(
      LABEL[op] .. ', 64M', t * 1e3, gbs, gbs / peak * 100, gbs >= 0.8 * peak and 'pass' or 'FAIL', launches))
    gpu[#gpu + 1] = { op = op, t = t, gbs = gbs, pct = gbs / peak * 100, launches = launches }
  end
  local f = updater(OPTS.adam(small))
  f()
  local t = gtime(f, 200)
  print(('  %-30s %12.4f   (launch-bound: about one kernel launch when one launch per step)'):format(
    'Adam, 670K', t * 1e3))
  if not counter then
    print('  launches: the runtime has no launch counter; the step is one fused kernel per call by construction')
  end
end

-- ---- the closing table ------------------------------------------------------------------
print('\n## Optimizer step benchmark (medians)\n')
if next(results) then
  print('| step | arena | threads | moonstep ns/param | C loop ns/param | PyTorch ns/param | speed vs loop (>= 0.9) | same, best samples | PyTorch / moonstep |')
  print('|---|---|---|---|---|---|---|---|---|')
  for _, model in ipairs(model_names) do
    for _, nth in ipairs(thread_counts) do
      for _, op in ipairs(OP_ORDER) do
        local r = results[model][nth][op]
        local sp = r.loop / r.moon
        local tr = r.torch and r.torch / r.moon
        local goal = ''
        if op == 'adam' and tr then goal = tr >= 4 and ' (>= 4: pass)' or ' (>= 4: FAIL)' end
        print(('| %s | %s %s | %d | %.3f | %.3f | %s | %.2fx %s | %.2fx | %s |'):format(
          LABEL[op], model, model == 'big' and '33.6M' or '670K', nth, r.moon / r.n * 1e9, r.loop / r.n * 1e9,
          r.torch and ('%.3f (%s)'):format(r.torch / r.n * 1e9, r.fe or '?') or '-', sp,
          sp >= 0.9 and 'pass' or 'FAIL', r.loop_min / r.moon_min, tr and ('%.2fx%s'):format(tr, goal) or '-'))
      end
    end
  end
end
if #extra > 0 then
  print('\n| variant | vs | ratio | goal | |')
  print('|---|---|---|---|---|')
  for _, e in ipairs(extra) do
    if e.ratio and not e.goal then
      print(('| %s | %s | %.3fx | - | information |'):format(e.name, e.ref, e.ratio))
    elseif e.ratio then
      print(('| %s | %s | %.3fx | <= %.2fx | %s |'):format(e.name, e.ref, e.ratio, e.goal,
        e.ratio <= e.goal and 'pass' or 'FAIL'))
    elseif e.goal then
      print(('| %s | %s | - | <= %.2fx | not available |'):format(e.name, e.ref, e.goal))
    else
      print(('| %s | %s | - | - | not available |'):format(e.name, e.ref))
    end
  end
end
if #gpu > 0 then
  print('\n| GPU step, 64M | ms | GB/s | % of HBM peak (>= 80) | launches/step |')
  print('|---|---|---|---|---|')
  for _, g in ipairs(gpu) do
    print(('| %s | %.3f | %.0f | %.1f%% %s | %s |'):format(LABEL[g.op], g.t * 1e3, g.gbs, g.pct,
      g.pct >= 80 and 'pass' or 'FAIL', g.launches))
  end
end
