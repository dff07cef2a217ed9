-- twopass.lua (bench) — what the closure-driven optimizers of issue 8 cost: each one's
-- step against ONE step of its base optimizer (a single forward/backward), same model,
-- same mini-batches, in the same run. The 784-256-10 MLP (Linear, ReLU, Linear;
-- CrossEntropyLoss), batch 128, float32, on Fashion-MNIST's 78 test batches when Debian's
-- dataset is installed, else 64 synthetic batches (MOONSTEP_BENCH_SYNTHETIC=1 forces them).
--
--   goals: SAM <= 2.05x SGD-momentum; LookSAM (k = 10) <= 1.15x; ACME <= 2.1x Adam
--          (<= 3.1x with asam = true: ACME's default update is Adam-like, so its base is
--          Adam stepping alone); the arithmetic between the passes (perturb, restore,
--          decompose) <= 3% of a SAM step. ASAM, GSAM, WSAM, FriendlySAM, BSAM (vs Adam) and
--          LBFGS (max_iter = 1, history_size = 10, vs SGD-momentum) are for information.
--   memory: the bytes of every tensor an optimizer holds (parameters, gradients, its state
--          buffers, its scratch, its base's) over the base's; and the peak RSS (VmHWM) of a
--          process that runs only that optimizer, beside that of one that runs none.
--
-- Each optimizer trains its own copy of the model (same initial weights). Samples (about
-- 100 ms) are paired: optimizer then base, or base then optimizer, alternating; the ratio
-- is the median over rounds of the paired ratios (the machine is shared and noisy), ms/step
-- are medians. LookSAM samples are whole k-cycles. Then each step is split by instrumented
-- timers and the arithmetic between the passes is timed alone (twopass_split.lua). ACME,
-- BSAM and LBFGS are looked up in ms.optim at run time (else loaded from their file if it
-- exists, marked "unregistered"), else "not available".
--
--   bin/moonstep scripts/bench/twopass.lua [ROUNDS]         (make bench runs it; ~1 minute)
--   MOONSTEP_GPU_ONLY=1       the GPU section alone (make gpu-check)
--   MOONSTEP_BENCH_OUT=path   also write the numbers there (key=value lines)
--   MOONSTEP_BENCH_RSS=0      no subprocesses for the peak RSS
--   MOONSTEP_BENCH_THREADS=1  the thread counts to run (default 1 and 2 when available)
--   MOONSTEP_BENCH_ONLY=SAM,LookSAM   those classes only (and the bases)
--   MOONSTEP_BENCH_PROFILE=1  the exclusive times of every row (default: the rows missing a goal)
--   MOONSTEP_BENCH_SAMPLE_MS=100      the length of one timing sample
local ms = require 'moonstep'
local B = require 'moonstep.tensor_base'
local nn, optim, clock = ms.nn, ms.optim, ms.clock
local passes = require 'moonstep.optim.passes'
local sharpness = require 'moonstep.optim.sharpness'
local reduce = require 'moonstep.optim.reduce'
local home = require('moonstep.core').home
-- where the time of a step goes: split.anatomy (instrumented timers), split.arithmetic
local split = dofile(home .. '/scripts/bench/twopass_split.lua')

local BATCH, NB = 128, 64         -- batch size, synthetic batches cycled through
local SAMPLE_S = (tonumber(os.getenv('MOONSTEP_BENCH_SAMPLE_MS')) or 100) / 1000   -- one sample lasts about this long

-- ---- helpers -----------------------------------------------------------------------------
local stats = dofile(home .. '/scripts/bench/stats.lua')
local median, vmhwm_kb = stats.median, stats.peak_kb

local function first_line(e) return (tostring(e):gsub('\n.*', '')) end

-- The optimizer class `name`: registered, else its file (unregistered), else nil + why.
local function lookup(name)
  local cls = rawget(optim, name)
  if cls then return cls, nil end
  local ok, mod = pcall(require, 'moonstep.optim.' .. name)
  if ok and type(mod) == 'table' then return mod, 'unregistered' end
  return nil, ok and 'not available' or (tostring(mod):find('not found', 1, true) and 'not available'
                                                        or 'not available: ' .. first_line(mod))
end

-- ---- what is measured --------------------------------------------------------------------
local function sgdm() return optim.SGD { lr = 0.01, momentum = 0.9 } end
-- base: the name of the row it is divided by; cycle: steps per sample are a multiple of it.
local ROWS = {
  { name = 'SGD-momentum', cls = 'SGD', role = 'base', opts = function() return { lr = 0.01, momentum = 0.9 } end },
  { name = 'Adam', cls = 'Adam', role = 'base', opts = function() return { lr = 1e-3 } end },
  { name = 'SAM', cls = 'SAM', base = 'SGD-momentum', goal = 2.05, sam = true,
    opts = function() return { base = sgdm(), rho = 0.05 } end },
  { name = 'ASAM (adaptive)', cls = 'SAM', base = 'SGD-momentum', sam = true,
    opts = function() return { base = sgdm(), rho = 0.5, adaptive = true } end },
  { name = 'GSAM', cls = 'GSAM', base = 'SGD-momentum', sam = true,
    opts = function() return { base = sgdm(), rho = 0.05, alpha = 0.4 } end },
  { name = 'WSAM', cls = 'WSAM', base = 'SGD-momentum', sam = true,
    opts = function() return { base = sgdm(), rho = 0.05 } end },
  { name = 'FriendlySAM', cls = 'FriendlySAM', base = 'SGD-momentum', sam = true,
    opts = function() return { base = sgdm(), rho = 0.05 } end },
  { name = 'LookSAM (k = 10)', cls = 'LookSAM', base = 'SGD-momentum', goal = 1.15, cycle = 10, sam = true,
    opts = function() return { base = sgdm(), rho = 0.1, k = 10 } end },
  { name = 'ACME', cls = 'ACME', base = 'Adam', goal = 2.1, opts = function() return {} end },
  { name = 'ACME (asam = true)', cls = 'ACME', base = 'Adam', goal = 3.1, opts = function() return { asam = true } end },
  { name = 'BSAM', cls = 'BSAM', base = 'Adam', opts = function() return { num_data = 60000 } end },
  { name = 'LBFGS (max_iter = 1)', cls = 'LBFGS', base = 'SGD-momentum',
    opts = function() return { lr = 0.05, max_iter = 1, history_size = 10 } end },
}
local BY_NAME = {}
for i, r in ipairs(ROWS) do r.index = i; BY_NAME[r.name] = r end
local ONLY = os.getenv('MOONSTEP_BENCH_ONLY')   -- 'SAM,LookSAM': those classes (and the bases) only
local function selected(row)
  return not ONLY or row.role == 'base' or (',' .. ONLY .. ','):find(',' .. row.cls .. ',', 1, true) ~= nil
end

-- ---- data and model ----------------------------------------------------------------------
-- Many batches, so that no optimizer memorizes them: a collapsing loss gives zero
-- gradients, momentum buffers decaying through the float32 subnormal range, and subnormal
-- arithmetic is 10x slower on x86 (the bench would time that, differently for each row).
local function synthetic()
  ms.manual_seed(1)
  local X, Y = {}, {}
  for b = 1, NB do
    X[b] = ms.rand(BATCH, 784)
    local u, lab = ms.rand(BATCH), {}
    for i = 1, BATCH do lab[i] = math.min(10, math.floor(u:get(i) * 10) + 1) end
    Y[b] = ms.tensor(lab, 'int64')
  end
  return X, Y, ('synthetic (%d random batches)'):format(NB)
end

local function load_data(force_synthetic)
  if force_synthetic or os.getenv('MOONSTEP_BENCH_SYNTHETIC') == '1' then return synthetic() end
  local ok, ds = pcall(ms.data.fashion_mnist, 'test')
  if not ok then return synthetic() end
  local X, Y = {}, {}
  for x, y in ds:batches(BATCH, { drop_last = true }) do X[#X + 1], Y[#Y + 1] = x:clone(), y:clone() end
  return X, Y, ('Fashion-MNIST (test split, %d batches)'):format(#X)
end

local function mlp(device)
  ms.manual_seed(0)   -- every copy starts from the same weights
  local model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
  model.input_grad = false   -- the data does not require grad
  if device ~= 'cpu' then model:to(device) end
  return model
end

-- A row's optimizer on its own model, with step() cycling through the batches.
local function build(row, X, Y, device)
  local cls, why = lookup(row.cls)
  if not cls then return nil, why end
  local c = { row = row, note = why, t = {}, tb = {}, ratios = {} }
  local ok, err = pcall(function()
    local model = mlp(device)
    c.model = model
    c.opt = cls(model, row.opts())
    local crit = nn.CrossEntropyLoss()
    local x, y, b, nb = nil, nil, 0, #X
    local function fwd_bwd()
      local out = model:forward(x)
      local loss = crit:forward(out, y)
      model:backward(x, crit:backward(out, y))
      return loss
    end
    local timed_fb, timed_by
    local function closure()
      local wrap = c.timed   -- set while anatomy() instruments the step
      if not wrap then return fwd_bwd() end
      if timed_by ~= wrap then timed_fb, timed_by = wrap('closure', fwd_bwd), wrap end
      return timed_fb()
    end
    c.closure = function() b = b % nb + 1; x, y = X[b], Y[b]; return closure() end
    local opt = c.opt
    c.step = function()
      b = b % nb + 1
      x, y = X[b], Y[b]
      return opt:step(closure)
    end
    for _ = 1, 2 * (row.cycle or 1) do c.step() end   -- warm: buffers made, caches filled
  end)
  if not ok then return nil, 'failed: ' .. first_line(err) end
  return c
end

local function sync(device) if device == 'cuda' then ms.cuda.synchronize() end end

local function sample(c, reps, device)
  local step = c.step
  sync(device)
  local t0 = clock()
  for _ = 1, reps do step() end
  sync(device)
  return (clock() - t0) / reps
end

local function calibrate(c, device)
  local cyc = c.row.cycle or 1
  local t = sample(c, cyc, device)
  local reps = math.max(1, math.floor(SAMPLE_S / math.max(t, 1e-7) / cyc + 0.5)) * cyc
  return reps
end

-- ---- memory: the distinct storages an optimizer reaches (models excluded) -----------------
local function each_storage(root, f)
  local seen, storages = {}, {}
  local function walk(v, depth)
    if ms.is_tensor(v) then
      local key = B.storage_key(v)
      if key ~= nil and not storages[key] then storages[key] = true; f(v, B.storage_nbytes(v)) end
      return
    end
    if type(v) ~= 'table' or seen[v] or depth > 8 then return end
    seen[v] = true
    if rawget(v, '_params') ~= nil then return end   -- a model (its activations are not the optimizer's)
    for k, x in pairs(v) do
      if k ~= 'model' then walk(x, depth + 1) end
    end
  end
  walk(root, 0)
end

local function tensor_bytes(root)
  local total = 0
  each_storage(root, function(_, nbytes) total = total + nbytes end)
  return total
end

-- The share of subnormal float32 values in what the optimizer holds (slow arithmetic).
local function subnormal_share(root)
  local n, total = 0, 0
  each_storage(root, function(t)
    if t.dtype == 'float32' and t.device == 'cpu' and t:numel() > 0 then
      local a = t:abs()
      n = n + (a:lt(1.1754944e-38):float() * a:gt(0):float()):sum()
      total = total + t:numel()
    end
  end)
  return total > 0 and n / total or 0
end

-- ---- the peak RSS of one optimizer in its own process ------------------------------------

if arg and arg[1] == '--rss' then   -- child: row index (0: no optimizer), steps
  local X, Y = load_data(true)
  local idx, steps = tonumber(arg[2]), tonumber(arg[3]) or 20
  if idx == 0 then
    local c = build(BY_NAME['SGD-momentum'], X, Y, 'cpu')
    for _ = 1, steps do c.opt.arena:zero_grad(); c.closure() end
  else
    local c, why = build(ROWS[idx], X, Y, 'cpu')
    if not c then print('error ' .. why); os.exit(0) end
    for _ = 1, steps do c.step() end
  end
  print(('vmhwm_kb %d'):format(vmhwm_kb() or -1))
  os.exit(0)
end

local function rss_of(idx)
  local p = io.popen(('%s/bin/moonstep %s/scripts/bench/twopass.lua --rss %d 20 2>/dev/null'):format(home, home, idx))
  if not p then return nil end
  local out = p:read('*a')
  p:close()
  local kb = tonumber(out:match('vmhwm_kb (%-?%d+)'))
  return kb and kb > 0 and kb or nil
end

-- ---- one device, one thread count ------------------------------------------------------------
local function measure(device, nth, rounds, X, Y)
  if device == 'cpu' then ms.set_num_threads(nth) end
  local cs, order, missing = {}, {}, {}
  for _, row in ipairs(ROWS) do
    local c, why
    if not selected(row) then
      why = 'not selected (MOONSTEP_BENCH_ONLY)'
    else
      c, why = build(row, X, Y, device)
    end
    if c then
      cs[row.name] = c
      order[#order + 1] = c
    else
      missing[row.name] = why
    end
  end
  for _, c in ipairs(order) do c.reps = calibrate(c, device) end
  for r = 1, rounds do
    io.stderr:write(('  %s %d thr: round %d/%d\r'):format(device, nth, r, rounds))
    local n = #order
    for j = 1, n do
      local c = order[r % 2 == 1 and j or n + 1 - j]
      local b = c.row.base and cs[c.row.base]
      if not b then
        c.t[#c.t + 1] = sample(c, c.reps, device)
      else
        local tc, tb
        if (r + j) % 2 == 1 then
          tc = sample(c, c.reps, device); tb = sample(b, b.reps, device)
        else
          tb = sample(b, b.reps, device); tc = sample(c, c.reps, device)
        end
        c.t[#c.t + 1], c.tb[#c.tb + 1], c.ratios[#c.ratios + 1] = tc, tb, tc / tb
        b.t[#b.t + 1] = tb
      end
    end
  end
  io.stderr:write('\n')
  local res = { device = device, nth = nth, rows = {}, missing = missing }
  for _, row in ipairs(ROWS) do
    local c = cs[row.name]
    if c then
      local b = row.base and cs[row.base]
      res.rows[row.name] = {
        t = median(c.t), ratio = b and median(c.ratios), t_base = b and median(c.tb),
        best = b and math.min(unpack(c.t)) / math.min(unpack(c.tb)),
        bytes = tensor_bytes(c.opt), base_bytes = b and tensor_bytes(b.opt),
        skipped = c.opt.skipped or 0,
        subnormal = device == 'cpu' and subnormal_share(c.opt) or 0,
        passes = (c.opt.passes or 0) / math.max(1, (c.opt.t or 0) + (c.opt.skipped or 0)),   -- closure calls
        note = c.note,
      }
    end
  end
  -- the split of a step, then the arithmetic alone
  res.anatomy = {}
  for _, row in ipairs(ROWS) do
    local c = cs[row.name]
    if c then
      local ok, a = pcall(split.anatomy, c, row.cycle or 10, 7, function() sync(device) end)
      if ok then res.anatomy[row.name] = a else print(('  %s: split not measured: %s'):format(row.name, first_line(a))) end
    end
  end
  res.arith = split.arithmetic(cs, math.max(5, math.floor(rounds / 2)), function() sync(device) end,
                               function(c) return sample(c, c.reps, device) end)
  return res
end

-- ---- printing ---------------------------------------------------------------------------------
local lines_out = {}
local function out(fmt, ...)
  lines_out[#lines_out + 1] = fmt:format(...)
end

local function report(res, rss)
  local tag = res.device == 'cpu' and ('CPU, %d thread%s'):format(res.nth, res.nth > 1 and 's' or '') or 'GPU'
  print(('\n%s: ms per step (medians); ratio = median of the paired (optimizer / base) samples, the\n' ..
         '  verdict\'s; best = fastest sample / fastest base sample (less sensitive to a loaded machine);\n' ..
         '  calls = closure calls per step'):format(tag))
  print(('  %-22s %9s %-13s %9s %8s %8s %-9s %8s %8s %8s %s'):format('optimizer', 'ms/step', 'base', 'base ms',
    'ratio', 'goal', 'verdict', 'best', 'mem', 'calls', rss and 'peak RSS (+ over no optimizer)' or ''))
  for _, row in ipairs(ROWS) do
    local r = res.rows[row.name]
    if not r then
      print(('  %-22s %s'):format(row.name, res.missing[row.name] or 'not available'))
      out('twopass device=%s threads=%d optimizer=%q status=%q', res.device, res.nth, row.name,
          res.missing[row.name] or 'not available')
    else
      local verdict = row.goal and (r.ratio <= row.goal and 'pass' or 'FAIL') or (row.role == 'base' and 'base' or 'info')
      local mem = r.base_bytes and r.bytes / r.base_bytes
      local rs = ''
      if rss and rss[row.index] and rss[0] then
        rs = ('%.1f MB (%+.1f)'):format(rss[row.index] / 1024, (rss[row.index] - rss[0]) / 1024)
      end
      local notes = {}
      if r.note then notes[#notes + 1] = r.note end
      if r.skipped > 0 then notes[#notes + 1] = ('%d steps skipped'):format(r.skipped) end
      if r.subnormal > 0.001 then notes[#notes + 1] = ('%.1f%% of its floats subnormal'):format(r.subnormal * 100) end
      print(('  %-22s %9.3f %-13s %9s %8s %8s %-9s %8s %8s %8.2f %s%s'):format(row.name, r.t * 1e3,
        row.base or '-', r.t_base and ('%.3f'):format(r.t_base * 1e3) or '-',
        r.ratio and ('%.3fx'):format(r.ratio) or '-', row.goal and ('<= %.2f'):format(row.goal) or '-',
        verdict, r.best and ('%.3fx'):format(r.best) or '-',
        mem and ('%.2fx'):format(mem) or ('%.1fMB'):format(r.bytes / 2 ^ 20), r.passes, rs,
        #notes > 0 and ('  (' .. table.concat(notes, '; ') .. ')') or ''))
      out('twopass device=%s threads=%d optimizer=%q ms=%.4f base=%q base_ms=%s ratio=%s best=%s goal=%s ' ..
          'verdict=%s bytes=%d base_bytes=%s mem_ratio=%s calls_per_step=%.3f rss_kb=%s rss_none_kb=%s skipped=%d ' ..
          'subnormal=%.4f',
        res.device, res.nth, row.name, r.t * 1e3, row.base or '-', r.t_base and ('%.4f'):format(r.t_base * 1e3) or '-',
        r.ratio and ('%.4f'):format(r.ratio) or '-', r.best and ('%.4f'):format(r.best) or '-', row.goal or '-',
        verdict, r.bytes, r.base_bytes or '-',
        mem and ('%.4f'):format(mem) or '-', r.passes, rss and rss[row.index] or '-', rss and rss[0] or '-', r.skipped, r.subnormal)
    end
  end
  print(('\n%s: split of a step, ms per step (instrumented; the fastest of 7 chunks; closure = forward +\n' ..
         '  backward; zero = zero_grad; scan = the non-finite scans after each pass; apply = the base\n' ..
         '  update, its own scan included; other = the rest: Lua bookkeeping, the optimizer\'s own arithmetic)'):format(tag))
  print(('  %-22s %8s %6s %8s %7s %7s %8s %8s %8s %8s %8s %8s'):format('', 'step', 'calls', 'closure', 'zero',
    'scan', 'ascent', 'restore', 'descent', 'apply', 'other', 'arith %'))
  for _, row in ipairs(ROWS) do
    local a = res.anatomy[row.name]
    if a then
      local arith = (a.ascent + a.restore + a.descent) / a.total * 100
      print(('  %-22s %8.3f %6.2f %8.3f %7.3f %7.3f %8.3f %8.3f %8.3f %8.3f %8.3f %8s'):format(row.name,
        a.total * 1e3, a.calls_closure, a.closure * 1e3, a.zero * 1e3, a.scan * 1e3, a.ascent * 1e3,
        a.restore * 1e3, a.descent * 1e3, a.apply * 1e3, a.other * 1e3, row.sam and ('%.2f%%'):format(arith) or '-'))
      out('twopass_split device=%s threads=%d optimizer=%q step_ms=%.4f calls=%.3f closure_ms=%.4f zero_ms=%.4f ' ..
          'scan_ms=%.4f ascent_ms=%.4f restore_ms=%.4f descent_ms=%.4f apply_ms=%.4f other_ms=%.4f',
        res.device, res.nth, row.name, a.total * 1e3, a.calls_closure, a.closure * 1e3, a.zero * 1e3, a.scan * 1e3,
        a.ascent * 1e3, a.restore * 1e3, a.descent * 1e3, a.apply * 1e3, a.other * 1e3)
    end
  end
  -- exclusive times for the rows that miss a goal (all rows with MOONSTEP_BENCH_PROFILE=1)
  local all = os.getenv('MOONSTEP_BENCH_PROFILE') == '1'
  for _, row in ipairs(ROWS) do
    local r, a = res.rows[row.name], res.anatomy[row.name]
    if a and r and ((row.goal and r.ratio > row.goal) or (all and row.role ~= 'base')) then
      print(('  %s: self time, ms per step (calls per step), biggest first; step %.3f ms'):format(row.name, a.total * 1e3))
      local shown, parts = 0, {}
      for _, e in ipairs(a.top) do
        if shown >= 10 or e[2] < 0.002 * a.total then break end
        parts[#parts + 1] = ('%s %.3f (%.3g)'):format(e[1], e[2] * 1e3, e[3])
        shown = shown + 1
      end
      for i = 1, #parts, 3 do print('    ' .. table.concat(parts, ';  ', i, math.min(i + 2, #parts))) end
    end
  end
  local sam = res.rows['SAM']
  if #res.arith > 0 and sam then
    print(('\n%s: the arithmetic between the passes alone (each variant\'s _ascent, restore, _descent, called\n' ..
           '  in a loop on its arena), as a share of a SAM step (paired samples); goal <= 3%%'):format(tag))
    for _, a in ipairs(res.arith) do
      local share = a.share * 100
      local own = res.rows[a.row]
      print(('  %-44s %8.4f ms %7.2f%% %s   (%.2f%% of a median %s step)'):format(a.name, a.t * 1e3, share,
        share <= 3 and 'pass' or 'FAIL', a.t / own.t * 100, a.row))
      out('twopass_arith device=%s threads=%d case=%q ms=%.5f share_of_sam=%.4f share_of_own=%.4f verdict=%s',
        res.device, res.nth, a.name, a.t * 1e3, share, a.t / own.t * 100, share <= 3 and 'pass' or 'FAIL')
    end
  end
end

-- ---- main -----------------------------------------------------------------------------------
local rounds = tonumber(arg and arg[1]) or 12
local gpu_only = os.getenv('MOONSTEP_GPU_ONLY') == '1'
local maxth = ms.num_threads()
local thread_counts = maxth > 1 and { 1, 2 } or { 1 }
if os.getenv('MOONSTEP_BENCH_THREADS') then
  thread_counts = {}
  for n in os.getenv('MOONSTEP_BENCH_THREADS'):gmatch('%d+') do thread_counts[#thread_counts + 1] = tonumber(n) end
end
local t_start = clock()

local function loadavg()
  local f = io.open('/proc/loadavg')
  if not f then return '?' end
  local l = f:read('*l') or '?'
  f:close()
  return (l:match('^(%S+ %S+ %S+)') or l)
end

local all_res = {}
local X, Y, source = load_data()
print(('two-pass optimizer benchmark: 784-256-10 MLP, batch %d, float32, %s; %d rounds'):format(BATCH, source, rounds))
print('bases: SGD-momentum (lr 0.01, momentum 0.9) for the SAM family and LBFGS; Adam (lr 1e-3) for ACME and BSAM')
print(('load average at the start: %s (%d threads available; the machine is shared: compare the ratios, not the times)'):format(
  loadavg(), maxth))
print('mem = tensor bytes held (parameters + gradients + state + scratch + the base\'s) / the base\'s')

if not gpu_only then
  local rss
  if os.getenv('MOONSTEP_BENCH_RSS') ~= '0' and vmhwm_kb() then
    rss = { [0] = rss_of(0) }
    for i, row in ipairs(ROWS) do
      if selected(row) and (row.role == 'base' or lookup(row.cls)) then rss[i] = rss_of(i) end
    end
  end
  for _, nth in ipairs(thread_counts) do
    local res = measure('cpu', nth, rounds, X, Y)
    report(res, rss)
    all_res[#all_res + 1] = res
  end
  ms.set_num_threads(maxth)
end

print('\nGPU')
if not ms.cuda.is_available() then
  print('  skipped: ' .. (ms.cuda.compiled() and 'no usable GPU on this machine' or 'built without CUDA'))
else
  local GX, GY = {}, {}
  for b = 1, #X do GX[b], GY[b] = X[b]:to('cuda'), Y[b]:to('cuda') end
  local res = measure('cuda', 1, rounds, GX, GY)
  report(res, nil)
  all_res[#all_res + 1] = res
end

-- ---- the closing table (for the notes) --------------------------------------------------------
if #all_res > 0 then
  local heads, rule = { '| optimizer | base | calls/step |' }, { '|---|---|---|' }
  for _, res in ipairs(all_res) do
    local tag = res.device == 'cpu' and ('%d thr'):format(res.nth) or 'GPU'
    heads[#heads + 1] = (' %s ms | %s ratio |'):format(tag, tag)
    rule[#rule + 1] = '---|---|'
  end
  print('\n## Two-pass optimizer benchmark (medians; ratio = step / one base step)\n')
  print(table.concat(heads) .. ' goal | memory / base |')
  print(table.concat(rule) .. '---|---|')
  for _, row in ipairs(ROWS) do
    local first = all_res[1].rows[row.name]
    if first and row.role ~= 'base' then
      local cells = { ('| %s | %s | %.2f |'):format(row.name, row.base, first.passes) }
      for _, res in ipairs(all_res) do
        local r = res.rows[row.name]
        if r then
          local v = row.goal and (r.ratio <= row.goal and ' pass' or ' FAIL') or ''
          cells[#cells + 1] = (' %.3f | %.3fx%s |'):format(r.t * 1e3, r.ratio, v)
        else
          cells[#cells + 1] = ' - | - |'
        end
      end
      print(table.concat(cells) .. (' %s | %.2fx |'):format(row.goal and ('<= %.2fx'):format(row.goal) or '-',
        first.bytes / first.base_bytes))
    end
  end
  print('\n| arithmetic between the passes | run | ms | share of a SAM step (<= 3%) |')
  print('|---|---|---|---|')
  for _, res in ipairs(all_res) do
    for _, a in ipairs(res.arith or {}) do
      if a.share then
        print(('| %s | %s | %.4f | %.2f%% %s |'):format(a.name, res.device == 'cpu' and ('%d thr'):format(res.nth) or 'GPU',
          a.t * 1e3, a.share * 100, a.share <= 0.03 and 'pass' or 'FAIL'))
      end
    end
  end
end

print(('\n(%.0f s; load average at the end: %s)'):format(clock() - t_start, loadavg()))
local path = os.getenv('MOONSTEP_BENCH_OUT')
if path and path ~= '' then
  local f = assert(io.open(path, 'w'))
  f:write(table.concat(lines_out, '\n'), '\n')
  f:close()
  print('numbers written to ' .. path)
end
