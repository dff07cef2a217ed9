-- autograd.lua (bench) — ms.autograd against the Module protocol and PyTorch, in one run
-- (issue 12's "Performance" section):
--   1. tape: the tape's cost outside ms.autograd — a tiny op (x:add(1) on a 1-element
--      tensor, t + u, x:add_(1)) through the installed wrappers vs the raw functions they
--      wrap (autograd/install.lua's originals, swapped in for the raw blocks), ns per op,
--      in alternation; and the same op recorded on a tape (x tracked) for scale.
--   2. rosen: Rosenbrock in 2-D, p float64 [2] from (-1.5, 2), Adam lr 1e-2, 10,000 steps;
--      moonstep's step is opt:step(closure) with ms.autograd.value_and_grad, PyTorch's
--      zero_grad / loss.backward() / step. --rounds rounds, each a fresh run of both
--      sides in alternating blocks of 100 steps; us/step = the median block; the
--      speed-up also as the median of the paired blocks' ratios. Goal: moonstep >= 5x
--      faster. The final points of both are printed (they should agree). Then where a
--      step's time goes (the tensor ops alone, recording, reverse pass, Adam).
--   3. mlp: MLP 784-256-10, Fashion-MNIST, batch 128, Adam lr 1e-3, one epoch (469 steps),
--      (a) written with ms.autograd (F.linear, relu, F.cross_entropy over an ms.params
--      set), (b) the Module protocol (nn.Sequential, nn.CrossEntropyLoss), (c) PyTorch CPU;
--      all three from the same initial weights and the same batch order (a random
--      permutation, each batch gathered with index_select before its step is timed), in
--      alternating blocks of --block steps, each step timed alone. ms/step = median;
--      samples/s = samples / the sum of the epoch's step times; accuracy on the test set
--      after the epoch. Goal: a <= 1.15x b. Then a profile of the autograd step on one
--      batch (forward plain / recorded, reverse pass, Adam, fresh memory, allocations),
--      timed in alternation with the Module step.
-- PyTorch runs as a step server (scripts/bench/autograd_torch.py, through /usr/bin/python3)
-- that this script drives block by block, so that both sides see the same machine load.
-- One thread by default (the machine is shared): ms.set_num_threads, torch.set_num_threads.
--
--   bin/moonstep scripts/bench/autograd.lua [--quick] [--no-torch] [--threads 1]
--                                           [--cases tape,rosen,mlp] [--rounds 3] [--block 4]
--   About 30 s. --quick: a smoke run (1000 Rosenbrock steps, 30 MLP steps, one round).
local ms = require 'moonstep'
local ffi = require 'ffi'
local T = require 'moonstep.tensor'
local B = require 'moonstep.tensor_base'
local A = require 'moonstep.autograd.tape'
local install = require 'moonstep.autograd.install'
local nn, optim = ms.nn, ms.optim
local home = require('moonstep.core').home
local stats = dofile(home .. '/scripts/bench/stats.lua')
local harness = dofile(home .. '/scripts/bench/harness.lua')
local median, clock = stats.median, ms.clock

---------------------------------------------------------------------------------------
-- options
local opts = harness.options('autograd.lua', arg,
  { threads = 1, cases = { 'tape', 'rosen', 'mlp' }, rounds = 3, block = 4, torch = true })
if opts.quick then opts.rounds = 1 end
ms.set_num_threads(opts.threads)
local have_torch = harness.have_torch(opts.torch)

---------------------------------------------------------------------------------------
-- shared helpers
-- PyTorch's step server for CASE ARGS... (scripts/bench/autograd_torch.py; harness.lua).
local function torch_server(...)
  return harness.step_server(home .. '/scripts/bench/autograd_torch.py', ...)
end

-- Runs fn() under pcall; on an error prints why the autograd side is skipped.
local function available(what, fn)
  local ok, err = pcall(fn)
  if not ok then
    print(('  %s: not measured: %s'):format(what, tostring(err):gsub('\n.*', '')))
  end
  return ok
end

-- The raw function an installed wrapper calls (install.lua's originals map; else the
-- wrapper's upvalue `raw`).
local function raw_of(w, upname)
  if install.originals and install.originals[w] then return install.originals[w] end
  for i = 1, 60 do
    local name, v = debug.getupvalue(w, i)
    if name == nil then break end
    if name == upname and type(v) == 'function' then return v end
  end
  return nil
end

-- f(...) recorded on a fresh tape that tracks `leaves` (the forward alone); the tape.
local function recorded(leaves, f, ...)
  local tp = A.new_tape()
  for _, t in ipairs(leaves) do tp:track(t) end
  A.current = tp
  local ok, err = pcall(f, ...)
  A.current = nil
  if not ok then error(err, 0) end
  return tp
end

---------------------------------------------------------------------------------------
-- 1. the tape's cost outside autograd
local function bench_tape()
  print('\n1. the tape outside ms.autograd: a tiny op through the installed wrapper vs the raw function')
  local Tensor = ms.Tensor
  -- the wrapped functions and their originals: Tensor.add, Tensor.add_, the metamethods' binop
  local swaps = {}
  for _, k in ipairs { 'add', 'add_' } do
    local w = Tensor[k]
    local r = raw_of(w, 'raw')
    if not r or r == w then
      print(('  not measured: Tensor.%s is not wrapped, or its original cannot be found'):format(k))
      return
    end
    swaps[#swaps + 1] = { Tensor, k, w, r }
  end
  local binop_r = raw_of(B.binop, 'binop')           -- (t + u: B.binop, then Tensor.add)
  if binop_r then swaps[#swaps + 1] = { B, 'binop', B.binop, binop_r } end
  local x, t, u = ms.tensor({ 1 }), ms.tensor({ 1 }), ms.tensor({ 2 })
  -- Each case a loop of its own (its own JIT trace); the raw blocks run with the raw
  -- functions swapped into Tensor and B (restored at once), so the user's syntax is timed.
  local function loop(src)
    return assert(load('local x, t, u = ...; return function(n) for _ = 1, n do ' .. src .. ' end end'))(x, t, u)
  end
  local cases = {
    { 'x:add(1)', 'local _ = x:add(1)' },
    { 't + u', 'local _ = t + u' },
    { 'x:add_(1)', 'x:add_(1)' },
  }
  local function as_raw(f)
    return function(n)
      for _, sw in ipairs(swaps) do rawset(sw[1], sw[2], sw[4]) end
      local ok, err = pcall(f, n)
      for _, sw in ipairs(swaps) do rawset(sw[1], sw[2], sw[3]) end
      if not ok then error(err, 0) end
    end
  end
  local n = opts.quick and 20000 or 200000
  local rounds = opts.quick and 5 or 21
  print(('  ns/op, median of %d alternated rounds of %d ops (add and + allocate their result, add_ does not)'):format(rounds, n))
  print(('  %-10s %10s %10s %12s %16s'):format('op', 'installed', 'raw', 'difference', 'paired median'))
  for _, c in ipairs(cases) do
    local name, inst, raw = c[1], loop(c[2]), as_raw(loop(c[2]))
    inst(n); raw(n)                                  -- warm up (the JIT traces)
    local s = stats.alternate_samples({ function() inst(n) end, function() raw(n) end }, rounds, 1, clock)
    local diffs = {}
    for r = 1, rounds do diffs[r] = s[1][r] - s[2][r] end
    local mi, mr = median(s[1]) / n * 1e9, median(s[2]) / n * 1e9
    print(('  %-10s %10.1f %10.1f %+12.1f %+16.1f'):format(name, mi, mr, mi - mr, median(diffs) / n * 1e9))
  end
  -- for scale: the same op recorded, on a fresh tape every 16 ops (x tracked), as a small
  -- function differentiated in a loop records it
  local on
  if available('on the tape', function()
    local f = loop('local _ = x:add(1)')
    local m = opts.quick and 2000 or 20000
    local leaves = { x }
    local function taped() for _ = 1, m / 16 do recorded(leaves, f, 16) end end
    taped()
    local tt = stats.alternate_samples({ taped }, 5, 1, clock)
    on = median(tt[1]) / m * 1e9
  end) then
    print(('  %-10s %10.1f  (recorded on a tape, x tracked: a node per op; for scale)'):format('x:add(1)', on))
  end
  print('  difference: median installed - median raw; paired median: the median of the per-round')
  print('  differences (noise: a few ns either way on a shared machine)')
end

---------------------------------------------------------------------------------------
-- The tensors (fresh storage: B.empty/empty_like counted; views not), their bytes and the
-- Lua heap (kB) allocated per call of fn: the mean of reps calls after one more, the
-- collector stopped meanwhile.
local function allocations(fn, reps)
  reps = reps or 10
  fn()
  local e, el = B.empty, B.empty_like
  local count, bytes = 0, 0
  B.empty = function(...)
    local t = e(...)
    count, bytes = count + 1, bytes + B.storage_nbytes(t)
    return t
  end
  B.empty_like = function(...)
    local t = el(...)
    count, bytes = count + 1, bytes + B.storage_nbytes(t)
    return t
  end
  collectgarbage('stop')
  local kb0 = collectgarbage('count')
  local ok, err = pcall(function() for _ = 1, reps do fn() end end)
  local kb = collectgarbage('count') - kb0
  collectgarbage('restart')
  B.empty, B.empty_like = e, el
  if not ok then error(err, 0) end
  return count / reps, bytes / reps, kb / reps
end

-- 2. Rosenbrock with Adam
local ROSEN_LR = 1e-2

-- A fresh Rosenbrock run as the issue writes it; R.block(k) runs k steps and returns the
-- seconds per step.
local function rosen_setup()
  local p = ms.tensor({ -1.5, 2 }, { dtype = 'float64' })
  local set = ms.params({ p })
  local function f()
    local x, y = p[{ 1 }], p[{ 2 }]
    return (1 - x) ^ 2 + 100 * (y - x ^ 2) ^ 2
  end
  local vg = ms.autograd.value_and_grad(f)
  local opt = optim.Adam(set, { lr = ROSEN_LR })
  local function closure() return (vg(set)) end
  local R = { p = p, set = set, f = f, vg = vg, opt = opt, closure = closure }
  function R.block(k)
    local t0 = clock()
    for _ = 1, k do opt:step(closure) end
    return (clock() - t0) / k
  end
  return R
end

local function rosen_value(x, y) return (1 - x) ^ 2 + 100 * (y - x * x) ^ 2 end

local function bench_rosen()
  local steps, block = opts.quick and 1000 or 10000, 100
  print(('\n2. Rosenbrock 2-D, Adam lr %g, %d steps from (-1.5, 2), float64'):format(ROSEN_LR, steps))
  if not available('ms.autograd', function() rosen_setup().block(2) end) then return end
  -- each round: a fresh run of each side, in alternating blocks of 100 steps
  local mine, theirs, ratios, r, tlast, why = {}, {}, {}, nil, nil, nil
  for _ = 1, opts.rounds do
    r = rosen_setup()
    local srv
    if have_torch then srv, why = torch_server('rosen', opts.threads, ROSEN_LR) end
    for _ = 1, steps / block do
      local m = r.block(block)
      mine[#mine + 1] = m
      if srv then
        local ok, ts = pcall(srv.run, block)
        if ok then
          theirs[#theirs + 1], ratios[#ratios + 1] = ts[1], ts[1] / m
        else
          why, srv = ts, nil
        end
      end
    end
    if srv then
      local ok, res = pcall(srv.finish)
      if ok then tlast = res else why = res end
    end
  end
  local x, y = r.p:get(1), r.p:get(2)
  local us = median(mine) * 1e6
  print(('  %-22s %10s %26s %12s'):format('', 'us/step', 'final point', 'f(final)'))
  print(('  %-22s %10.2f %26s %12.3g'):format('moonstep ms.autograd', us, ('(%.10f, %.10f)'):format(x, y),
    rosen_value(x, y)))
  if tlast and #theirs > 0 then
    local tus = median(theirs) * 1e6
    print(('  %-22s %10.2f %26s %12.3g'):format('PyTorch', tus, ('(%.10f, %.10f)'):format(tlast.x, tlast.y), tlast.f))
    print(('  speed-up: PyTorch / moonstep per step %.2fx (goal >= 5x; the median of the %d paired blocks: %.2fx); ' ..
           'final points differ by %.2g'):format(tus / us, #ratios, median(ratios),
      math.max(math.abs(tlast.x - x), math.abs(tlast.y - y))))
  elseif have_torch then
    print('  PyTorch failed: ' .. tostring(why))
  else
    print('  (PyTorch: not run)')
  end
  -- where a step's time goes: the same tensor ops without the tape (p untracked, its
  -- elements as 0-d tensors: p:select), f recorded, value_and_grad, the full step
  local function ops()
    local x, y = r.p:select(1, 1), r.p:select(1, 2)
    return (1 - x) ^ 2 + 100 * (y - x ^ 2) ^ 2
  end
  local leaves = { r.p }
  local function tp_f() return recorded(leaves, r.f) end
  local nodes = tp_f().n
  local reps = 200
  local fs = { ops, tp_f, function() r.vg(r.set) end, function() r.opt:step(r.closure) end }
  for _, f in ipairs(fs) do f() end
  local s = stats.alternate_samples(fs, opts.quick and 3 or 15, reps, clock)
  local m = {}
  for i = 1, #fs do m[i] = median(s[i]) * 1e6 end
  print(('  per step, us: the tensor ops of f without the tape %.2f; f recorded %.2f (+%.2f recording %d ' ..
         'nodes); value_and_grad %.2f (+%.2f reverse pass and grads); full opt:step %.2f (+%.2f zero_grad ' ..
         'and Adam)'):format(m[1], m[2], m[2] - m[1], nodes, m[3], m[3] - m[2], m[4], m[4] - m[3]))
  local count, bytes, kb = allocations(function() r.opt:step(r.closure) end)
  local gc = collectgarbage('count')
  print(('  per step: %.0f tensors allocated (%.0f bytes of storage), %.1f kB of Lua heap (the collector runs ' ..
         'on a heap of %.0f kB)'):format(count, bytes, kb, gc))
end

---------------------------------------------------------------------------------------
-- 3. MLP 784-256-10
local BATCH = 128

-- The raw bytes of tensors (contiguous copies) appended to file f.
local function write_raw(f, t, ctype)
  t = t:contiguous()
  local size = ffi.sizeof(ctype)
  f:write(ffi.string(ffi.cast('char*', ffi.cast(ctype .. '*', T.data(t, 'bench')) + t.offset), t:numel() * size))
end

local profile_mlp

local function bench_mlp()
  local steps = opts.quick and 30 or math.ceil(60000 / BATCH)
  local ntest = opts.quick and 2000 or 10000
  print(('\n3. MLP 784-256-10, Fashion-MNIST, batch %d, Adam lr 1e-3, %d steps%s'):format(BATCH, steps,
    opts.quick and ' (--quick)' or ' (one epoch)'))
  local ok, train, test = pcall(function() return ms.data.fashion_mnist('train'), ms.data.fashion_mnist('test') end)
  if not ok then print('  not measured: ' .. tostring(train)); return end
  local F = ms.nn.functional

  -- the models: the same initial weights, the same batch order
  ms.manual_seed(0)
  local model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
  local crit = nn.CrossEntropyLoss()
  local opt_b = optim.Adam(model, { lr = 1e-3 })
  local l1, l2 = model.modules[1], model.modules[3]
  local P = { W1 = l1.weight:clone(), b1 = l1.bias:clone(), W2 = l2.weight:clone(), b2 = l2.bias:clone() }
  local init = { P.W1:clone(), P.b1:clone(), P.W2:clone(), P.b2:clone() }
  local set = ms.params(P)
  local opt_a = optim.Adam(set, { lr = 1e-3 })
  local order = ms.randperm(train:size())

  local function f(_, x, y)
    return F.cross_entropy(F.linear(F.linear(x, P.W1, P.b1):relu(), P.W2, P.b2), y)
  end
  local vg = ms.autograd.value_and_grad(f)
  local function batch(s)            -- the s-th batch (1-based) of the order
    local first = ((s - 1) * BATCH) % train:size() + 1
    local idx = order:narrow(1, first, math.min(BATCH, train:size() - first + 1))
    return train.x:index_select(1, idx), train.y:index_select(1, idx)
  end
  local function step_a(x, y) opt_a:step(function() return (vg(set, x, y)) end) end
  local function step_b(x, y) harness.module_step(model, opt_b, crit, x, y) end
  local have_a = available('(a) ms.autograd', function()
    if not (F.linear and F.cross_entropy) then error('ms.nn.functional.linear / cross_entropy do not exist yet', 0) end
    local x, y = batch(1)
    vg(set, x, y)
    set:zero_grad()
  end)

  -- PyTorch's server, from the same start and order
  local dir, srv, twhy
  if have_torch then
    dir = io.popen('mktemp -d'):read('*l')
    local fw = assert(io.open(dir .. '/init.bin', 'wb'))
    for _, t in ipairs(init) do write_raw(fw, t, 'float') end
    fw:close()
    local fo = assert(io.open(dir .. '/order.bin', 'wb'))
    write_raw(fo, order, 'int64_t')            -- 1-based (the server subtracts 1)
    fo:close()
    local fn = assert(io.open(dir .. '/ntest.txt', 'w'))
    fn:write(tostring(ntest))
    fn:close()
    srv, twhy = torch_server('mlp', opts.threads, BATCH, dir)
  end

  -- a, b and PyTorch in alternating blocks, each step timed alone (its batch gathered first)
  local ta, tb, tc, sa, sb = {}, {}, {}, 0, 0
  local function block(times, s, fn)
    for _ = 1, opts.block do
      if s >= steps then break end
      s = s + 1
      local x, y = batch(s)
      local t0 = clock()
      fn(x, y)
      times[#times + 1] = clock() - t0
    end
    return s
  end
  while sb < steps or (have_a and sa < steps) do
    if have_a then sa = block(ta, sa, step_a) end
    sb = block(tb, sb, step_b)
    if srv and #tc < steps then
      local ok, ts = pcall(srv.run, math.min(opts.block, steps - #tc))
      if ok then for _, t in ipairs(ts) do tc[#tc + 1] = t end else twhy, srv = ts, nil end
    end
  end
  local tres
  if srv then
    local ok, res = pcall(srv.finish)
    if ok then tres = res else twhy = res end
  end

  local function sum(xs) local s = 0; for _, v in ipairs(xs) do s = s + v end; return s end
  local samples = math.min(steps * BATCH, train:size())
  local function accuracy(forward)
    local correct = 0
    for i = 1, ntest, BATCH do
      local k = math.min(BATCH, ntest - i + 1)
      local x, y = test.x:narrow(1, i, k), test.y:narrow(1, i, k)
      correct = correct + forward(x):argmax(2):to('float32'):eq(y:to('float32')):sum()
    end
    return correct / ntest
  end
  local acc_b = accuracy(function(x) return model:forward(x) end)
  local acc_a = have_a and accuracy(function(x) return F.linear(F.linear(x, P.W1, P.b1):relu(), P.W2, P.b2) end)

  print(('  %-26s %8s %10s %9s %9s'):format('', 'ms/step', 'samples/s', 'epoch s', 'accuracy'))
  local mb = median(tb) * 1e3
  local ma = have_a and median(ta) * 1e3
  if have_a then
    print(('  %-26s %8.3f %10.0f %9.2f %9.4f'):format('(a) ms.autograd', ma, samples / sum(ta), sum(ta), acc_a))
  end
  print(('  %-26s %8.3f %10.0f %9.2f %9.4f'):format('(b) Module protocol', mb, samples / sum(tb), sum(tb), acc_b))
  local mt
  if tres and #tc == steps then
    mt = median(tc) * 1e3
    print(('  %-26s %8.3f %10.0f %9.2f %9.4f'):format('(c) PyTorch', mt, samples / sum(tc), sum(tc), tres.acc))
  elseif have_torch then
    print('  (c) PyTorch failed: ' .. tostring(twhy))
  end
  if have_a then
    print(('  autograd / Module: %.3fx per step (goal <= 1.15x), %.3fx per epoch'):format(ma / mb, sum(ta) / sum(tb)))
    if mt then print(('  autograd / PyTorch: %.3fx per step; Module / PyTorch: %.3fx'):format(ma / mt, mb / mt)) end
  elseif mt then
    print(('  Module / PyTorch: %.3fx per step'):format(mb / mt))
  end
  if dir then
    for _, name in ipairs { 'init.bin', 'order.bin', 'ntest.txt' } do os.remove(dir .. '/' .. name) end
    os.remove(dir)
  end
  if have_a then profile_mlp(F, P, set, f, vg, model, crit, step_a, step_b, batch(1)) end
end

-- The profile of the MLP step: one batch, every part timed in alternation with the full
-- steps; the allocations of each step; the tape's nodes.
profile_mlp = function(F, P, set, f, vg, model, crit, step_a, step_b, x, y)
  local leaves = set.params
  local function fwd_plain() f(set, x, y) end
  local function fwd_taped() recorded(leaves, f, set, x, y) end
  local function fb_b()
    local out = model:forward(x)
    crit:forward(out, y)
    model:backward(x, crit:backward(out, y))
  end
  local function fwd_b() crit:forward(model:forward(x), y) end
  local rows = {
    { 'Module step (b)', function() step_b(x, y) end },
    { 'autograd step (a)', function() step_a(x, y) end },
    { 'Module forward', fwd_b },
    { 'Module forward+backward', fb_b },
    { 'f without the tape', fwd_plain },
    { 'f recorded (tape on)', fwd_taped },
    { 'value_and_grad', function() vg(set, x, y) end },
  }
  -- an elementwise op into fresh memory (never touched: a dead tensor's storage returns to
  -- the cache only when the collector runs) vs the same op freed at once (recycled)
  local h = F.linear(x, P.W1, P.b1)
  rows[#rows + 1] = { 'h:relu(), fresh memory', function() h:relu() end }
  rows[#rows + 1] = { 'h:relu() then free', function() h:relu():free() end }
  local fs = {}
  for i, r in ipairs(rows) do fs[i] = r[2]; r[2]() end
  local s = stats.alternate_samples(fs, opts.quick and 3 or 25, opts.quick and 2 or 5, clock)
  local m = {}
  for i = 1, #rows do m[i] = median(s[i]) * 1e3 end
  print('  profile, one batch, ms (medians, in alternation):')
  for i, r in ipairs(rows) do print(('    %-26s %8.3f'):format(r[1], m[i])) end
  print(('    -> recording %.3f, reverse pass + grads into the arena %.3f, zero_grad + Adam %.3f'):format(
    m[6] - m[5], m[7] - m[6], m[2] - m[7]))
  print(('    -> Module: forward %.3f, backward %.3f, zero_grad + Adam %.3f; forms forward vs Module forward %+.3f'):format(
    m[3], m[4] - m[3], m[1] - m[4], m[5] - m[3]))
  print(('    -> h [%d, 256]:relu() into fresh memory costs %.3f ms more than into recycled memory (page faults)'):format(
    x:size(1), m[8] - m[9]))
  local ca, ba, ka = allocations(function() step_a(x, y) end)
  local cb, bb, kb = allocations(function() step_b(x, y) end)
  local tp = recorded(leaves, f, set, x, y)
  local names = {}
  for i = 1, tp.n do names[i] = tp.nodes[i].name end
  print(('    allocations per step: autograd %.0f tensors, %.2f MB, %.0f kB Lua heap; Module %.0f tensors, %.2f MB, ' ..
         '%.0f kB Lua heap; the tape: %d nodes (%s)'):format(ca, ba / 2 ^ 20, ka, cb, bb / 2 ^ 20, kb, tp.n,
    table.concat(names, ', ')))
end

---------------------------------------------------------------------------------------
print(('moonstep autograd benchmark: %d thread%s%s%s'):format(opts.threads, opts.threads > 1 and 's' or '',
  opts.quick and ', --quick' or '', have_torch and '' or ', without PyTorch'))
local t_run = clock()
for _, c in ipairs(opts.cases) do
  if c == 'tape' then bench_tape() elseif c == 'rosen' then bench_rosen() else bench_mlp() end
end
print(('\ntotal %.0f s; the machine may be shared: figures are medians, compare within a run'):format(clock() - t_run))
