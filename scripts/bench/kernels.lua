-- kernels.lua (bench) — each training kernel of the CNN and MLP steps against its own
-- floor, in one run: the plain C loop a programmer would write (scripts/bench/baseline.c,
-- built with the library's flags; the optimizer loops from scripts/bench/optim_loop.c,
-- compiled here with -march=x86-64-v3 as scripts/bench/optim.lua does) and the bandwidth
-- it must move (its bytes read + written over the GB/s of a plain copy of the same
-- traffic, measured in the same run). ns per element (of the tensor named in the row) and
-- moonstep / floor ratios (1.00x: at the floor; lower is better). At n threads, each floor
-- is the better of n threads and 1 (moonstep runs small kernels on one thread too).
--
-- moonstep is called as a training step calls it: the nn modules' forward/backward, the
-- optimizer's step, model:zero_grad(); im2col/col2im through their C entry points. Rows
-- marked "- GEMM" time the whole layer call and subtract its GEMMs timed alone on the
-- same shapes (in alternation), so that a fused epilogue counts wherever it lives.
--
--   bin/moonstep scripts/bench/kernels.lua [--quick] [--threads 1,2] [--rounds 7]
--   --quick: 2 rounds (a smoke run).
-- Needs libbaseline.so beside the library in use (make bench builds build/libbaseline.so;
-- else it is compiled here).
local ms = require 'moonstep'
local ffi = require 'ffi'
local T = require 'moonstep.tensor'
local nn, optim = ms.nn, ms.optim
local home = require('moonstep.core').home
local stats = dofile(home .. '/scripts/bench/stats.lua')
local clock = ms.clock

local opts = { threads = { 1, 2 }, rounds = 7 }
do
  local i = 1
  while arg[i] do
    local a, v = arg[i], arg[i + 1]
    if a == '--quick' then opts.quick = true
    elseif a == '--threads' and v then
      opts.threads = {}
      for t in v:gmatch('[^,]+') do opts.threads[#opts.threads + 1] = tonumber(t) end
      i = i + 1
    elseif a == '--rounds' and v then opts.rounds = tonumber(v); i = i + 1
    else io.stderr:write(('kernels.lua: unknown argument %s\n'):format(a)); os.exit(2) end
    i = i + 1
  end
  if opts.quick then opts.rounds = 2 end
end

ffi.cdef [[
void bl_maxpool2x2(float *y, int64_t *idx, const float *x, int64_t planes, int64_t h, int64_t w, int nth);
void bl_maxpool_backward(float *gx, const float *gy, const int64_t *idx, int64_t planes, int64_t hw, int64_t l, int nth);
void bl_avgpool2x2(float *y, const float *x, int64_t planes, int64_t h, int64_t w, int nth);
void bl_avgpool2x2_backward(float *gx, const float *gy, int64_t planes, int64_t h, int64_t w, int nth);
void bl_im2col(float *cols, const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t pad, int nth);
void bl_col2im(float *x, const float *cols, int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t pad, int nth);
void bl_bias_relu(float *y, const float *b, int64_t rows, int64_t cols, int nth);
void bl_relu_backward(float *gx, const float *gy, const float *y, int64_t n, int nth);
void bl_colsum(float *gb, const float *g, int64_t rows, int64_t cols, int nth);
double bl_ce_forward(const float *x, const int64_t *y, int64_t rows, int64_t classes);
void bl_ce_backward(float *g, const float *x, const int64_t *y, int64_t rows, int64_t classes);
void bl_conv_out(float *y, const float *yg, const float *b, int64_t n, int64_t o, int64_t l, int nth);
void bl_conv_grad_output(float *gm, float *gb, const float *g, int64_t n, int64_t o, int64_t l, int nth);
void bl_copy(float *o, const float *a, int64_t n, int nth);
void bl_zero(float *o, int64_t n, int nth);
void ol_adam(float *p, const float *g, float *m, float *v, int64_t n, float b1, float omb1,
             float b2, float omb2, float bc2_sqrt, float eps, float neg_step, int nth);
void ol_sgd_momentum(float *p, const float *g, float *buf, int64_t n, float mu, float omdamp,
                     float neg_lr, int nth);
]]

-- the competitors' libraries
local function compile(src, flags)
  local so = os.tmpname()
  local cmd = ('%s -std=c11 -D_GNU_SOURCE -fno-math-errno -fopenmp -fPIC -shared %s -o %s %s'):format(
    os.getenv('CC') or 'cc', flags, so, src)
  assert(os.execute(cmd) == 0, 'kernels.lua: could not compile: ' .. cmd)
  local lib = ffi.load(so)
  os.remove(so)
  return lib
end
local BL
do
  local lib = os.getenv('MOONSTEP_LIB')
  local dir = lib and lib:match('^(.*)/[^/]*$') or (home .. '/build')
  if dir:sub(1, 1) ~= '/' then dir = home .. '/' .. dir end
  local ok, l = pcall(ffi.load, dir .. '/libbaseline.so')
  -- an older build of it (without the training loops) is compiled afresh too
  ok = ok and pcall(function() return l.bl_conv_grad_output and l.bl_zero end)
  BL = ok and l or compile(home .. '/scripts/bench/baseline.c', '-O3 -ffp-contract=off')
end
local OL = compile(home .. '/scripts/bench/optim_loop.c', '-O3 -march=x86-64-v3')

local function fptr(t) return ffi.cast('float*', T.data(t, 'bench')) + t.offset end
local function iptr(t) return ffi.cast('int64_t*', T.data(t, 'bench')) + t.offset end

-- Calls per timing sample so that one sample lasts ~4 ms.
local function reps_for(f)
  f()
  local t0 = clock()
  f()
  local t = clock() - t0
  return math.max(1, math.min(20000, math.ceil(0.004 / math.max(t, 1e-7))))
end

-- Median seconds per call of each entry of fs, measured in alternation. An entry is a
-- function, or { f } for a plain C loop f(threads): run with NTH threads and (when NTH > 1)
-- with 1, the better kept (a plain loop need not parallelise what is too small to gain).
-- minus: { i, j, ... }: the first result is then the median over rounds of f1 - fi - fj
-- (a layer less its GEMMs, paired round by round: drift cancels).
local NTH = 1
local function measure(fs, minus)
  local flat, slot = {}, {}
  for i, f in ipairs(fs) do
    if type(f) == 'table' then
      local c = f[1]
      flat[#flat + 1] = function() c(NTH) end
      slot[i] = { #flat }
      if NTH > 1 then
        flat[#flat + 1] = function() c(1) end
        slot[i][2] = #flat
      end
    else
      flat[#flat + 1] = f
      slot[i] = { #flat }
    end
  end
  local reps = math.huge
  for _, f in ipairs(flat) do reps = math.min(reps, reps_for(f)) end
  local samples = stats.alternate_samples(flat, opts.rounds, reps, clock)
  local out = {}
  for i = 1, #fs do
    out[i] = math.huge
    for _, j in ipairs(slot[i]) do out[i] = math.min(out[i], stats.median(samples[j])) end
  end
  if minus then
    local d = {}
    for r = 1, opts.rounds do
      d[r] = samples[slot[1][1]][r]
      for _, i in ipairs(minus) do d[r] = d[r] - samples[slot[i][1]][r] end
    end
    out[1] = stats.median(d)
  end
  return unpack(out, 1, #fs)
end

-- GB/s of a plain copy moving `bytes` (read + write), cached per size.
local copy_rate = {}
local function bandwidth(bytes, nth)
  local n = math.max(1024, math.floor(bytes / 8))
  local key = nth .. ':' .. n
  if not copy_rate[key] then
    local a, o = ms.rand(n), ms.empty(n)
    local pa, po = fptr(a), fptr(o)
    local t = measure { { function(th) BL.bl_copy(po, pa, n, th) end } }
    copy_rate[key] = 8 * n / t
  end
  return copy_rate[key]
end

-- The competitor check: each C loop's output against moonstep's (the same work, or the
-- floor would be meaningless); mismatches are listed at the end.
local checked, mismatches = 0, {}
local function agree(what, a, b, tol)
  checked = checked + 1
  local ok, d = pcall(function() return a:to('float64'):sub(b:to('float64')):abs():max() end)
  if not ok then
    mismatches[#mismatches + 1] = ('%s (not comparable: %s)'):format(what, tostring(d))
  elseif not (d <= (tol or 0)) then
    mismatches[#mismatches + 1] = ('%s (max |diff| %g)'):format(what, d)
  end
end

-- name, elements, moonstep s, C-loop s (or nil), bytes moved (or nil)
local function row(name, n, ours, loop, bytes, nth)
  local bw = bytes and bytes / bandwidth(bytes, nth)
  if ours <= 0 then   -- a layer less its GEMMs, below the noise
    print(('  %-40s %9d %9s %9s %8s %9s %8s'):format(name, n, 'noise', '', '', '', ''))
    return
  end
  local function ns(t) return t and ('%9.3f'):format(t / n * 1e9) or ('%9s'):format('-') end
  local function ratio(t) return t and ('%7.2fx'):format(ours / t) or ('%8s'):format('-') end
  print(('  %-40s %9d %9s %9s %s %9s %s'):format(name, n, ns(ours), ns(loop), ratio(loop), ns(bw), ratio(bw)))
end

local function matmul_fn(a, b, o, ta, tb, beta)
  local mo = { transpose_a = ta, transpose_b = tb, out = o, beta = beta }
  return function() ms.matmul(a, b, mo) end
end

---------------------------------------------------------------------------------------
local function pools(nth)
  for _, s in ipairs { { 128, 32, 28, 28 }, { 128, 64, 14, 14 } } do
    local n, c, h, w = unpack(s)
    local x = ms.randn(n, c, h, w)
    local shape = ('[%d,%d,%d,%d]'):format(n, c, h, w)
    local numel, planes, l = n * c * h * w, n * c, (h / 2) * (w / 2)
    local y, idx = ms.empty(n, c, h / 2, w / 2), ms.zeros(n, c, h / 2, w / 2, { dtype = 'int64' })
    local gy, gx = ms.randn(n, c, h / 2, w / 2), ms.empty(n, c, h, w)
    local px, py, pi, pgy, pgx = fptr(x), fptr(y), iptr(idx), fptr(gy), fptr(gx)
    local mp = nn.MaxPool2d(2)
    mp:forward(x)
    local tf, cf = measure { function() mp:forward(x) end,
                             { function(t) BL.bl_maxpool2x2(py, pi, px, planes, h, w, t) end } }
    row('MaxPool2d(2) forward ' .. shape, numel, tf, cf, 7 * numel, nth)
    agree('MaxPool2d forward', mp.output, y)
    agree('MaxPool2d argmax', mp.argmax, idx)
    local tb, cb = measure { function() mp:backward(x, gy) end,
                             { function(t) BL.bl_maxpool_backward(pgx, pgy, pi, planes, h * w, l, t) end } }
    row('MaxPool2d(2) backward ' .. shape, numel, tb, cb, 7 * numel, nth)
    agree('MaxPool2d backward', mp.gradInput, gx)
    if c == 32 then
      local ap = nn.AvgPool2d(2)
      ap:forward(x)
      local af, acf = measure { function() ap:forward(x) end,
                                { function(t) BL.bl_avgpool2x2(py, px, planes, h, w, t) end } }
      row('AvgPool2d(2) forward ' .. shape, numel, af, acf, 5 * numel, nth)
      agree('AvgPool2d forward', ap.output, y, 1e-6)
      local ab, acb = measure { function() ap:backward(x, gy) end,
                                { function(t) BL.bl_avgpool2x2_backward(pgx, pgy, planes, h, w, t) end } }
      row('AvgPool2d(2) backward ' .. shape, numel, ab, acb, 5 * numel, nth)
      agree('AvgPool2d backward', ap.gradInput, gx, 1e-6)
    end
  end
end

-- im2col / col2im through the C entry points, and the conv layers' non-GEMM work.
local function convs(nth)
  for _, s in ipairs { { 128, 1, 28, 28, 32 }, { 128, 32, 14, 14, 64 } } do
    local n, c, h, w, O = unpack(s)
    local K, L = c * 9, h * w
    local x = ms.randn(n, c, h, w)
    local cols, cols2 = ms.empty(K, n * L), ms.empty(K, n * L)
    local xb, xc = ms.empty(n, c, h, w), ms.empty(n, c, h, w)
    local C = ms.C
    local win = ffi.new('ms_window2d', { kh = 3, kw = 3, sh = 1, sw = 1, dh = 1, dw = 1,
                                         pt = 1, pb = 1, pl = 1, pr = 1, ceil_mode = 0 })
    assert(C.ms_window2d_out(win, h, w) == 0)
    local px, pc, pxc = fptr(x), fptr(cols2), fptr(xc)
    local shape = ('[%d,%d,%d,%d]'):format(n, c, h, w)
    local ti, ci = measure { function() assert(C.ms_im2col(cols, x, win, 0) == 0) end,
                             { function(t) BL.bl_im2col(pc, px, n, c, h, w, 3, 1, t) end } }
    row('im2col 3x3 pad 1 ' .. shape .. ' (cols)', K * n * L, ti, ci, 4 * (K * n * L + n * c * h * w), nth)
    agree('im2col', cols, cols2)
    if c > 1 then
      local tc, cc = measure { function() assert(C.ms_col2im(xb, cols, win) == 0) end,
                               { function(t) BL.bl_col2im(pxc, pc, n, c, h, w, 3, 1, t) end } }
      row('col2im 3x3 pad 1 ' .. shape .. ' (cols)', K * n * L, tc, cc, 4 * (K * n * L + n * c * h * w), nth)
      agree('col2im', xb, xc, 1e-5)
    end

    -- the layer: forward minus its GEMM, against im2col + [O,N,L]->[N,O,L] + bias in C
    local conv = nn.Conv2d(c, O, 3, { padding = 1 })
    conv:forward(x)
    local Wm, Y, b = conv.weight:view(O, K), ms.empty(O, n * L), conv.bias
    local y = ms.empty(n, O, L)
    local pY, py, pb = fptr(Y), fptr(y), fptr(b)
    local tl, tg, cl = measure({
      function() conv:forward(x) end, matmul_fn(Wm, cols, Y, false, false, 0),
      { function(t)
        BL.bl_im2col(pc, px, n, c, h, w, 3, 1, t)
        BL.bl_conv_out(py, pY, pb, n, O, L, t)
      end } }, { 2 })
    row(('Conv2d(%d,%d) forward - GEMM (output)'):format(c, O), O * n * L, tl, cl,
        4 * (K * n * L + n * c * h * w) + 8 * O * n * L, nth)
    agree('Conv2d forward epilogue', conv.output:view(n, O, L), y, 1e-5)
    if c > 1 then   -- the CNN's first conv computes no gx: its backward is gW and the bias
      local g = ms.randn(n, O, h, w)
      local Gm, gW, gc = ms.empty(O, n * L), ms.zeros(O, K), ms.empty(K, n * L)
      local gb = ms.zeros(O)
      local pg, pGm, pgb, pgc = fptr(g), fptr(Gm), fptr(gb), fptr(gc)
      local gemm_w = matmul_fn(Gm, cols, gW, false, true, 1)
      local gemm_x = matmul_fn(Wm, Gm, gc, true, false, 0)
      local tbk, tgw, tgx, cbk = measure({
        function() conv:backward(x, g) end, gemm_w, gemm_x,
        { function(t)
          BL.bl_conv_grad_output(pGm, pgb, pg, n, O, L, t)
          BL.bl_col2im(pxc, pgc, n, c, h, w, 3, 1, t)
        end } }, { 2, 3 })
      row(('Conv2d(%d,%d) backward - GEMMs (output)'):format(c, O), O * n * L, tbk, cbk,
          8 * O * n * L + 4 * (K * n * L + n * c * h * w), nth)
      agree('Conv2d backward gx', conv.gradInput, xc, 1e-4)
    end
  end
end

-- The dense layers' epilogues, the loss, on the MLP's shapes.
local function dense(nth)
  local n, fin, fout = 128, 512, 512
  local x = ms.randn(n, fin)
  local lin, relu = nn.Linear(fin, fout), nn.ReLU()
  local h = relu:forward(lin:forward(x))
  local y, b = ms.empty(n, fout), lin.bias
  local py, pb = fptr(y), fptr(b)
  local tl, tg, cl = measure({
    function() relu:forward(lin:forward(x)) end,
    matmul_fn(x, lin.weight, y, false, true, 0),
    { function(t) BL.bl_bias_relu(py, pb, n, fout, t) end } }, { 2 })
  row('Linear(512,512)+ReLU forward - GEMM (y)', n * fout, tl, cl, 8 * n * fout, nth)
  ms.matmul(x, lin.weight, { transpose_b = true, out = y })
  BL.bl_bias_relu(py, pb, n, fout, 1)
  agree('Linear+ReLU forward', relu.output, y, 1e-5)

  local g, gx = ms.randn(n, fout), ms.empty(n, fout)
  local pg, pgx, ph = fptr(g), fptr(gx), fptr(h)
  local tr, cr = measure { function() relu:backward(lin.output, g) end,
                           { function(t) BL.bl_relu_backward(pgx, pg, ph, n * fout, t) end } }
  row('ReLU backward [128,512]', n * fout, tr, cr, 12 * n * fout, nth)
  agree('ReLU backward', relu.gradInput, gx)

  -- the bias gradient: a Linear with 8 inputs (its gW GEMM is small), no gx
  local x8, lin8 = ms.randn(n, 8), nn.Linear(8, fout)
  lin8.input_grad = false
  lin8:forward(x8)
  local gW8, gb = ms.zeros(fout, 8), ms.zeros(fout)
  local pgb = fptr(gb)
  local tb, tgb, cb = measure({ function() lin8:backward(x8, g) end,
                                matmul_fn(g, x8, gW8, true, false, 1),
                                { function(t) BL.bl_colsum(pgb, pg, n, fout, t) end } }, { 2 })
  row('Linear bias gradient [128,512] (- GEMM)', n * fout, tb, cb, 4 * n * fout, nth)
  gb:zero_()
  BL.bl_colsum(pgb, pg, n, fout, 1)
  agree('bias gradient', g:sum(1), gb, 1e-4)

  -- labels: moonstep's are 1-based (class 1 everywhere), the C loop's 0-based
  local out, labels, labels0 = ms.randn(n, 10), ms.ones(n, { dtype = 'int64' }), ms.zeros(n, { dtype = 'int64' })
  local crit = nn.CrossEntropyLoss()
  local gout = ms.empty(n, 10)
  local po, pl, pgo = fptr(out), iptr(labels0), fptr(gout)
  local tf, cf = measure { function() crit:forward(out, labels) end,
                           function() BL.bl_ce_forward(po, pl, n, 10) end }
  row('CrossEntropyLoss forward [128,10]', n * 10, tf, cf, 4 * n * 10, nth)
  agree('CrossEntropyLoss forward', ms.tensor({ crit:forward(out, labels) }),
        ms.tensor({ BL.bl_ce_forward(po, pl, n, 10) }), 1e-5)
  local tbw, cbw = measure { function() crit:backward(out, labels) end,
                             function() BL.bl_ce_backward(pgo, po, pl, n, 10) end }
  row('CrossEntropyLoss backward [128,10]', n * 10, tbw, cbw, 8 * n * 10, nth)
  agree('CrossEntropyLoss backward', crit:backward(out, labels), gout, 1e-6)
end

-- zero_grad and the optimizer steps on the MLP 784-512-512-10 (669,706 parameters).
local function optimizers(nth)
  local model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                              nn.Linear(512, 10))
  local P = model:flat_parameters():numel()
  local grads = model:flat_gradients()
  local buf = { p = ms.rand(P), g = ms.rand(P), m = ms.zeros(P), v = ms.zeros(P), z = ms.empty(P) }
  local p, g, m, v, z = fptr(buf.p), fptr(buf.g), fptr(buf.m), fptr(buf.v), fptr(buf.z)
  local tz, cz = measure { function() model:zero_grad() end, { function(t) BL.bl_zero(z, P, t) end } }
  row('zero_grad (MLP 784-512-512-10 params)', P, tz, cz, 4 * P, nth)
  grads:copy_(ms.randn(P):mul_(1e-3))
  local adam = optim.Adam(model, { lr = 1e-3 })
  local ta, ca = measure { function() adam:step() end,
    { function(t) OL.ol_adam(p, g, m, v, P, 0.9, 0.1, 0.999, 0.001, 0.03, 1e-8, -1e-5, t) end } }
  row('Adam step (same params)', P, ta, ca, 28 * P, nth)
  local sgd = optim.SGD(model, { lr = 1e-3, momentum = 0.9 })
  local ts, cs = measure { function() sgd:step() end,
    { function(t) OL.ol_sgd_momentum(p, g, m, P, 0.9, 1, -1e-3, t) end } }
  row('SGD momentum 0.9 step (same params)', P, ts, cs, 20 * P, nth)
end

---------------------------------------------------------------------------------------
local t_run = clock()
print('moonstep training kernels against their floors: ns per element (median of alternated runs);')
print('"plain C": the loop of baseline.c / optim_loop.c; "bandwidth": bytes read + written at the')
print('GB/s of a plain copy of the same traffic; ratio = moonstep / floor (1.00x = at the floor)')
for _, nth in ipairs(opts.threads) do
  ms.set_num_threads(nth)
  NTH = nth
  print(('\n%d thread%s'):format(nth, nth > 1 and 's' or ''))
  print(('  %-40s %9s %9s %9s %8s %9s %8s'):format('kernel', 'elements', 'moonstep', 'plain C', 'ratio',
    'bandwidth', 'ratio'))
  pools(nth)
  convs(nth)
  dense(nth)
  optimizers(nth)
  collectgarbage()
end
if #mismatches == 0 then
  print(('\n  competitor check: the C loops\' outputs equal moonstep\'s (%d comparisons)'):format(checked))
else
  print('\n  competitor check FAILED (a floor that does other work): ' .. table.concat(mismatches, '; '))
end
print(('  total %.0f s; the machine may be shared: compare within a run'):format(clock() - t_run))
