-- zo_mnist.lua — Zeroth-Learn's experiment grid (../shared/reference/spsa.md §2.6) on
-- Fashion-MNIST: zeroth-order SPSA training (forward differences, T Rademacher directions,
-- all T + 1 models of a step in one batched pass) beside a backprop baseline of the same
-- model.
--
--   bin/moonstep scripts/zo_mnist.lua [--quick] [--threads N] [--out DIR] [--seed S] ...
--
-- The grid: models Linear (784-10), XS (784-128-10), S (784-128-64-10), ReLU hidden,
-- Xavier-uniform weights U(+-sqrt(6 / (in + out))) and zero biases (as Zeroth-Learn);
-- T in {10, 30, 100} (plus XS/Adam at T = 50, Zeroth-Learn's Fashion-MNIST anchor);
-- ZO-Adam (lr 1e-3, betas {0.9, 0.99}, eps 1e-8) and ZO-SGD (lr 0.003, see below); batch
-- 50, one epoch (1200 steps); the images normalised by the global mean / std of the
-- training set, as Zeroth-Learn does for MNIST. SPSA is optim.SPSA.preset('zeroth_learn',
-- {n = T}):
--   g = (1/T) sum_i (L(w + h u_i) - L(w)) / h * u_i,  u_i in {-1, +1}^d,  h = 1e-3
-- which is Zeroth-Learn's estimator (1/delta) P^T [L(w + delta P_i) - L(w)] with
-- P = S / sqrt(T) and h = delta / sqrt(T) (spsa.md §2.3): the same expected gradient, the
-- same noise, the same step sizes; only h is raised from 1.4e-9 (float64 only) to 1e-3
-- (float32). Backprop baseline: optim.Adam lr 1e-3 on the same batches in the same order.
--
-- ZO-SGD's step size: g's noise has norm ~ sqrt(d / T) |grad| (d = 7850 .. 109386), and
-- plain SGD has nothing to bound it. Zeroth-Learn's lr 0.1 (their SGD runs are of the
-- linear model only) trains Linear here but diverges on XS and S (the loss grows past
-- 1e20, ~10% accuracy); 0.03 and 0.01 still diverge on XS / S at T = 10; 0.003 is the
-- largest of {0.1, 0.03, 0.01, 0.003, 0.001} that trains all three models at every T, so
-- it is the default (--sgd-lr), and the full grid adds Linear at lr 0.1 (Zeroth-Learn's
-- setting) beside it.
--
-- --quick: Linear and XS, T in {10, 30}, ZO-Adam only (and backprop), the whole epoch and
-- test set: well under a minute on 1 core. The full grid (25 runs): a few minutes.
-- --limit N: N training batches per run and the first 1000 test images (for the tests).
-- Accuracies do not depend on --threads (the directions are keyed by element index); the
-- seconds do, and on the load: on a shared, busy 2-core machine the batched pass ran 20 to
-- 100 times slower with 2 OpenMP threads than with --threads 1.
--
-- Writes under --out (default results/zo_mnist; --quick: results/zo_mnist/quick):
-- zo_mnist.csv, zo_mnist.md (the table, printed to the terminal too), zo_mnist.dat +
-- zo_mnist.gp -> zo_mnist.png (gnuplot; skipped with a note when gnuplot is missing:
-- Debian gnuplot-nox).
-- CSV columns: model, optimizer, T, lr, test_accuracy (%), train_loss (mean nominal
-- minibatch loss over the run), seconds (training only), forward_passes (model
-- evaluations on a minibatch: (T + 1) per ZO step; one per backprop step, plus its
-- backward), steps, skipped (ZO steps with a non-finite loss).
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim

---------------------------------------------------------------------------------------
-- Flags
---------------------------------------------------------------------------------------
local FLAGS = {
  { 'quick', 'flag', false, 'a ~1 minute subset: Linear and XS, T 10 and 30, ZO-Adam and backprop' },
  { 'threads', 'integer', nil, 'CPU threads (default: all cores)', min = 1 },
  { 'out', 'string', nil, 'output directory, created (default results/zo_mnist; --quick: results/zo_mnist/quick)', metavar = 'DIR' },
  { 'seed', 'integer', 42, 'seed of the weights, the shuffling and the directions', min = 0 },
  { 'limit', 'integer', nil, 'N training batches per run and 1000 test images (a smoke test)', min = 1 },
  { 'models', 'string', nil, 'comma list of Linear, XS, S (default: the grid)', metavar = 'LIST' },
  { 'T', 'string', nil, 'comma list of direction counts (default: the grid)', metavar = 'LIST' },
  { 'optims', 'string', nil, 'comma list of adam, sgd, backprop (default: the grid)', metavar = 'LIST' },
  { 'sgd-lr', 'number', 0.003, "the ZO-SGD step size (Zeroth-Learn's 0.1 diverges on XS and S)", min = 0 },
  { 'h', 'number', 1e-3, 'the perturbation size h (c of the zeroth_learn preset)', min = 0, positive = true },
}

local flags = require 'moonstep.flags'
local function die(code, fmt, ...) flags.die('zo_mnist.lua', code, fmt, ...) end

local args = flags.parse('zo_mnist.lua', FLAGS, arg or {}, 'Flags with a value take it as --T 10,30 or --T=10,30.')
args.out = args.out or (args.quick and 'results/zo_mnist/quick' or 'results/zo_mnist')
io.stdout:setvbuf('line')

local ARCH = { Linear = { 784, 10 }, XS = { 784, 128, 10 }, S = { 784, 128, 64, 10 } }
local MODEL_RANK = { Linear = 1, XS = 2, S = 3 }

-- Zeroth-Learn's reported numbers (spsa.md §2.6; MNIST, 1 epoch, batch 50, seed 42).
local ZL_MNIST_ADAM_BY_MODEL = {
  Linear = { [10] = 80.93, [30] = 85.29, [100] = 88.57 },
  XS = { [10] = 80.56, [30] = 86.00, [100] = 88.87 },
  S = { [10] = 80.08, [30] = 85.60, [100] = 88.42 },
}
local ZL_MNIST_ADAM = { [10] = 81.04, [30] = 85.70, [100] = 88.35 }
local ZL_MNIST_SGD = { [10] = 76.16, [30] = 80.77, [100] = 84.08 }
local ZL_FMNIST_XS_ADAM_T50 = 77.0
local ZL_SGD_LR = 0.1

local function split(text, what, allowed)
  local out = {}
  for item in text:gmatch('[^,]+') do
    if allowed and not allowed[item] then die(2, '--%s: unknown %q', what, item) end
    out[#out + 1] = item
  end
  if #out == 0 then die(2, '--%s is empty', what) end
  return out
end

-- The runs: {model, optimizer ('zo-adam' | 'zo-sgd' | 'backprop'), T, lr, series (the plot's line)}.
local function plan()
  local models, Ts, optims, extra = { 'Linear', 'XS', 'S' }, { 10, 30, 100 }, { 'adam', 'sgd', 'backprop' }, true
  if args.quick then models, Ts, optims = { 'Linear', 'XS' }, { 10, 30 }, { 'adam', 'backprop' } end
  if args.models then models, extra = split(args.models, 'models', ARCH), false end
  if args.T then
    Ts, extra = {}, false
    for i, t in ipairs(split(args.T, 'T')) do
      Ts[i] = tonumber(t)
      if not Ts[i] or Ts[i] < 1 or Ts[i] ~= math.floor(Ts[i]) then die(2, '--T: %q is not a count >= 1', t) end
    end
  end
  if args.optims then optims, extra = split(args.optims, 'optims', { adam = 1, sgd = 1, backprop = 1 }), false end
  if args.quick then extra = false end
  local runs = {}
  for _, m in ipairs(models) do
    for _, o in ipairs(optims) do
      if o == 'backprop' then runs[#runs + 1] = { model = m, optimizer = 'backprop', lr = 1e-3, series = 'backprop' }
      else
        local lr = o == 'adam' and 1e-3 or args['sgd-lr']
        for _, t in ipairs(Ts) do
          runs[#runs + 1] = { model = m, optimizer = 'zo-' .. o, T = t, lr = lr, series = 'zo-' .. o }
        end
        -- Zeroth-Learn's one Fashion-MNIST number: XS, Adam, T = 50
        if extra and m == 'XS' and o == 'adam' then
          runs[#runs + 1] = { model = m, optimizer = 'zo-adam', T = 50, lr = lr, series = 'zo-adam' }
        end
        -- Zeroth-Learn's own SGD setting (lr 0.1, the linear model only, as their runs)
        if extra and m == 'Linear' and o == 'sgd' and lr ~= ZL_SGD_LR then
          for _, t in ipairs(Ts) do
            runs[#runs + 1] = { model = m, optimizer = 'zo-sgd', T = t, lr = ZL_SGD_LR, series = 'zo-sgd-zl' }
          end
        end
      end
    end
  end
  table.sort(runs, function(a, b)   -- by model, then backprop first, then optimizer, lr, T
    if a.model ~= b.model then return MODEL_RANK[a.model] < MODEL_RANK[b.model] end
    if (a.optimizer == 'backprop') ~= (b.optimizer == 'backprop') then return a.optimizer == 'backprop' end
    if a.optimizer ~= b.optimizer then return a.optimizer < b.optimizer end
    if a.lr ~= b.lr then return a.lr < b.lr end
    return (a.T or 0) < (b.T or 0)
  end)
  return runs
end

---------------------------------------------------------------------------------------
-- Data and models
---------------------------------------------------------------------------------------
local BATCH = 50

local function load_data()
  local train = ms.data.fashion_mnist('train')
  local test = ms.data.fashion_mnist('test')
  -- Zeroth-Learn: one global mean and std of the training images
  local mean = train.x:mean()
  local std = math.sqrt(((train.x - mean) ^ 2):mean())
  train:normalize(mean, std)
  test:normalize(mean, std)
  if args.limit then train = train:subset(1, math.min(train:size(), args.limit * BATCH)) end
  if args.limit then test = test:subset(1, 1000) end
  return train, test
end

local function build_model(name)
  local sizes = ARCH[name]
  local layers = {}
  for i = 1, #sizes - 1 do
    layers[#layers + 1] = nn.Linear(sizes[i], sizes[i + 1])
    if i < #sizes - 1 then layers[#layers + 1] = nn.ReLU() end
  end
  local model = nn.Sequential(unpack(layers))
  model.input_grad = false
  -- Xavier-uniform weights, zero biases (the arena views, after Sequential built it)
  for _, m in ipairs(model.modules) do
    if m.weight then
      local fan_out, fan_in = m.weight:size(1), m.weight:size(2)
      local b = math.sqrt(6 / (fan_in + fan_out))
      m.weight:uniform_(-b, b)
      m.bias:zero_()
    end
  end
  return model
end

---------------------------------------------------------------------------------------
-- One run: trains a fresh model for one pass over train, returns the CSV row.
---------------------------------------------------------------------------------------
local function train_run(r, train, test)
  ms.manual_seed(args.seed)            -- the same initial weights for every run of a model
  local model = build_model(r.model)
  local crit = nn.CrossEntropyLoss()
  local opt, lr = nil, r.lr
  if r.optimizer == 'backprop' then
    opt = optim.Adam(model, { lr = lr })
  else
    local cfg = optim.SPSA.preset('zeroth_learn', { n = r.T, c = args.h, seed = args.seed, criterion = crit })
    if r.optimizer == 'zo-sgd' then cfg.update, cfg.betas, cfg.eps = 'sgd', nil, nil end
    cfg.a = lr
    opt = optim.SPSA(model, cfg)
  end
  train.epoch = 0                      -- the same shuffled order for every run
  local sum, seen, passes, steps, skipped = 0, 0, 0, 0, 0
  local t0 = ms.clock()
  for x, y in train:batches(BATCH, { shuffle = true, seed = args.seed }) do
    local loss
    if r.optimizer == 'backprop' then
      loss = opt:step(function()
        local out = model:forward(x)
        local l = crit:forward(out, y)
        model:backward(x, crit:backward(out, y))
        return l
      end)
      passes = passes + 1
    else
      local info
      loss, info = opt:step(x, y)
      passes = passes + info.passes
      if info.skipped then skipped = skipped + 1 end
    end
    steps = steps + 1
    if loss == loss then sum, seen = sum + loss * x:size(1), seen + x:size(1) end
  end
  local secs = ms.clock() - t0
  local acc = 100 * ms.metrics.accuracy(model, test)
  return { model = r.model, optimizer = r.optimizer, T = r.T, lr = lr, series = r.series, acc = acc,
           loss = seen > 0 and sum / seen or 0 / 0, seconds = secs, passes = passes,
           steps = steps, skipped = skipped }
end

---------------------------------------------------------------------------------------
-- Outputs
---------------------------------------------------------------------------------------
local function write(path, text)
  local f, err = io.open(path, 'w')
  if not f then die(1, 'cannot write %s: %s', path, tostring(err)) end
  f:write(text)
  f:close()
end

local function csv(rows)
  local out = { 'model,optimizer,T,lr,test_accuracy,train_loss,seconds,forward_passes,steps,skipped' }
  for _, r in ipairs(rows) do
    out[#out + 1] = ('%s,%s,%s,%g,%.2f,%.6g,%.2f,%d,%d,%d'):format(r.model, r.optimizer,
      r.T and tostring(r.T) or '', r.lr, r.acc, r.loss, r.seconds, r.passes, r.steps, r.skipped)
  end
  return table.concat(out, '\n') .. '\n'
end

local function anchor(r)
  if r.optimizer == 'zo-adam' then
    local a = ZL_MNIST_ADAM_BY_MODEL[r.model][r.T]
    if a then return ('%.2f (MNIST)'):format(a) end
    if r.model == 'XS' and r.T == 50 then return ('%.1f (Fashion-MNIST)'):format(ZL_FMNIST_XS_ADAM_T50) end
  elseif r.optimizer == 'zo-sgd' and r.model == 'Linear' and ZL_MNIST_SGD[r.T] then
    return ('%.2f (MNIST, lr 0.1)'):format(ZL_MNIST_SGD[r.T])
  end
  return '—'
end

local function markdown(rows, note)
  local out = { note, '',
    '| model | optimizer | T | lr | test acc % | train loss | seconds | forward passes | Zeroth-Learn acc % |',
    '|---|---|---:|---:|---:|---:|---:|---:|---|' }
  for _, r in ipairs(rows) do
    local loss = ('%.4g'):format(r.loss) .. (r.skipped > 0 and (' (%d steps skipped)'):format(r.skipped) or '')
    local passes = r.optimizer == 'backprop' and ('%d (+ %d backward)'):format(r.passes, r.steps) or tostring(r.passes)
    out[#out + 1] = ('| %s | %s | %s | %g | %.2f | %s | %.1f | %s | %s |'):format(r.model, r.optimizer,
      r.T and tostring(r.T) or '—', r.lr, r.acc, loss, r.seconds, passes, anchor(r))
  end
  out[#out + 1] = ''
  out[#out + 1] = 'Zeroth-Learn anchors (nicolasmalet/Zeroth-Learn EXPERIMENTS.md, float64, delta 1e-8, seed 42):'
  out[#out + 1] = ('  MNIST, Adam lr 1e-3, 1 epoch: %.2f / %.2f / %.2f %% for T = 10 / 30 / 100'):format(
    ZL_MNIST_ADAM[10], ZL_MNIST_ADAM[30], ZL_MNIST_ADAM[100])
  out[#out + 1] = ('  MNIST, SGD lr 0.1, 1 epoch:   %.2f / %.2f / %.2f %%'):format(
    ZL_MNIST_SGD[10], ZL_MNIST_SGD[30], ZL_MNIST_SGD[100])
  out[#out + 1] = ('  Fashion-MNIST, XS, Adam, T = 50, 1 epoch: %.1f %%'):format(ZL_FMNIST_XS_ADAM_T50)
  out[#out + 1] = '  (MNIST is easier than Fashion-MNIST: compare the gaps to backprop, not the raw numbers)'
  return table.concat(out, '\n') .. '\n'
end

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function gp_quote(s) return "'" .. s:gsub("'", "''") .. "'" end

local function have_gnuplot()
  local p = io.popen('command -v gnuplot 2>/dev/null')
  local out = p:read('*a')
  p:close()
  return out:match('%S') ~= nil
end

-- Accuracy vs T, one panel per model: ZO-Adam, ZO-SGD, the backprop line, Zeroth-Learn's
-- MNIST numbers (points). Returns the image path, or nil and why.
local function plot(rows, dir, title)
  if not have_gnuplot() then return nil, 'gnuplot is not installed (Debian: apt-get install gnuplot-nox)' end
  local models, seen = {}, {}
  for _, r in ipairs(rows) do
    if not seen[r.model] then seen[r.model] = true; models[#models + 1] = r.model end
  end
  local tmin, tmax = 10, 100            -- Zeroth-Learn's points are at T = 10 .. 100
  for _, r in ipairs(rows) do if r.T then tmin, tmax = math.min(tmin, r.T), math.max(tmax, r.T) end end
  local xlo, xhi = tmin / 1.4, tmax * 1.4
  -- the data: one gnuplot index block per (model, series), named in a comment
  local blocks, index = {}, {}
  local function block(model, series, points)
    if #points == 0 then return end
    local lines = { ('# %s %s'):format(model, series) }
    for _, p in ipairs(points) do lines[#lines + 1] = ('%.6g %.4f'):format(p[1], p[2]) end
    blocks[#blocks + 1] = table.concat(lines, '\n')
    index[model] = index[model] or {}
    index[model][series] = #blocks - 1
  end
  for _, m in ipairs(models) do
    for _, o in ipairs { 'zo-adam', 'zo-sgd', 'zo-sgd-zl' } do
      local pts = {}
      for _, r in ipairs(rows) do if r.model == m and r.series == o then pts[#pts + 1] = { r.T, r.acc } end end
      table.sort(pts, function(a, b) return a[1] < b[1] end)
      block(m, o, pts)
    end
    for _, r in ipairs(rows) do
      if r.model == m and r.optimizer == 'backprop' then block(m, 'backprop', { { xlo, r.acc }, { xhi, r.acc } }) end
    end
    local zl = {}
    for _, t in ipairs { 10, 30, 100 } do zl[#zl + 1] = { t, ZL_MNIST_ADAM_BY_MODEL[m][t] } end
    block(m, 'zl-mnist-adam', zl)
    if m == 'Linear' then   -- Zeroth-Learn's SGD runs are of the linear model
      block(m, 'zl-mnist-sgd', { { 10, ZL_MNIST_SGD[10] }, { 30, ZL_MNIST_SGD[30] }, { 100, ZL_MNIST_SGD[100] } })
    end
    if m == 'XS' then block(m, 'zl-fmnist-adam', { { 50, ZL_FMNIST_XS_ADAM_T50 } }) end
  end
  local dat, gp, png = dir .. '/zo_mnist.dat', dir .. '/zo_mnist.gp', dir .. '/zo_mnist.png'
  write(dat, table.concat(blocks, '\n\n\n') .. '\n')
  local STYLE = {
    ['zo-adam'] = { 'ZO-Adam (ours)', 'with linespoints lw 2 pt 7 lc rgb "#1f77b4"' },
    ['zo-sgd'] = { ('ZO-SGD lr %g (ours)'):format(args['sgd-lr']), 'with linespoints lw 2 pt 5 lc rgb "#d62728"' },
    ['zo-sgd-zl'] = { 'ZO-SGD lr 0.1 (ours)', 'with linespoints lw 2 dt 3 pt 5 lc rgb "#ff9896"' },
    backprop = { 'backprop Adam (ours)', 'with lines lw 2 dt 2 lc rgb "#2ca02c"' },
    ['zl-mnist-adam'] = { 'Zeroth-Learn ZO-Adam, MNIST', 'with points pt 6 ps 1.5 lc rgb "#555555"' },
    ['zl-mnist-sgd'] = { 'Zeroth-Learn ZO-SGD, MNIST', 'with points pt 4 ps 1.5 lc rgb "#555555"' },
    ['zl-fmnist-adam'] = { 'Zeroth-Learn ZO-Adam, Fashion-MNIST', 'with points pt 8 ps 2 lc rgb "#000000"' },
  }
  local SERIES = { 'zo-adam', 'zo-sgd', 'zo-sgd-zl', 'backprop', 'zl-mnist-adam', 'zl-mnist-sgd', 'zl-fmnist-adam' }
  local s = {
    'if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) { set terminal pngcairo size ' .. (440 * #models) .. ',560 } '
      .. 'else { set terminal png size ' .. (440 * #models) .. ',560 }',
    'set output ' .. gp_quote(png),
    ('set multiplot layout 1,%d title %s noenhanced'):format(#models, gp_quote(title)),
    'set logscale x', ('set xrange [%g:%g]'):format(xlo, xhi), 'set xtics (10, 30, 50, 100)',
    'set xlabel "directions T"', 'set ylabel "test accuracy %"', 'set grid',
    'set key below font ",9"', 'set bmargin 10', 'set yrange [*:100]',
  }
  for _, m in ipairs(models) do
    s[#s + 1] = ('set title %s noenhanced'):format(gp_quote(m .. ' ' .. table.concat(ARCH[m], '-')))
    local parts = {}
    for _, name in ipairs(SERIES) do
      local i = index[m] and index[m][name]
      if i then
        parts[#parts + 1] = ('%s index %d using 1:2 %s title %s'):format(gp_quote(dat), i, STYLE[name][2],
          gp_quote(STYLE[name][1]))
      end
    end
    s[#s + 1] = 'plot ' .. table.concat(parts, ', \\\n     ')
  end
  s[#s + 1] = 'unset multiplot'
  s[#s + 1] = 'unset output'
  write(gp, table.concat(s, '\n') .. '\n')
  local p = io.popen('gnuplot ' .. shell_quote(gp) .. ' 2>&1')
  local msg = p:read('*a')
  local ok = p:close()
  local f = io.open(png, 'rb')
  local size = f and f:seek('end') or 0
  if f then f:close() end
  if not ok or size == 0 then return nil, 'gnuplot failed: ' .. msg:gsub('%s+$', '') end
  return png
end

---------------------------------------------------------------------------------------
-- Main
---------------------------------------------------------------------------------------
local function main()
  if args.threads then ms.set_num_threads(args.threads) end
  local runs = plan()
  os.execute('mkdir -p ' .. shell_quote(args.out) .. ' 2>/dev/null')
  write(args.out .. '/zo_mnist.csv', csv({}))   -- the header: an unwritable --out fails first
  local train, test = load_data()
  local steps = math.ceil(train:size() / BATCH)
  local scope = args.limit and ('%d batches (--limit), %d test images'):format(steps, test:size())
    or ('one epoch (%d steps), %d test images'):format(steps, test:size())
  print(('zo_mnist: Fashion-MNIST, batch %d, %s, %d runs, threads %d, seed %d, h %g, ZO-SGD lr %g')
    :format(BATCH, scope, #runs, ms.num_threads(), args.seed, args.h, args['sgd-lr']))
  local rows = {}
  for i, r in ipairs(runs) do
    local row = train_run(r, train, test)
    rows[#rows + 1] = row
    print(('[%d/%d] %-6s %-8s T %-4s lr %-6g acc %6.2f%%  loss %-10.4g %7.1f s  %d forward passes%s'):format(i,
      #runs, row.model, row.optimizer, row.T and tostring(row.T) or '-', row.lr, row.acc, row.loss, row.seconds,
      row.passes, row.skipped > 0 and ('  (%d steps skipped)'):format(row.skipped) or ''))
    write(args.out .. '/zo_mnist.csv', csv(rows))   -- after every run: a partial grid survives
  end
  local has = {}
  for _, r in ipairs(rows) do has[r.series] = true end
  local parts = { ('Fashion-MNIST, batch %d, %s'):format(BATCH, scope) }
  if has['zo-adam'] or has['zo-sgd'] then
    parts[#parts + 1] = ('SPSA preset zeroth_learn (forward differences, Rademacher, h = %g, batched pass)'):format(args.h)
  end
  if has['zo-adam'] then parts[#parts + 1] = 'ZO-Adam lr 1e-3, betas {0.9, 0.99}' end
  if has['zo-sgd'] then
    parts[#parts + 1] = ("ZO-SGD lr %g (Zeroth-Learn's 0.1 diverges on XS and S%s)"):format(args['sgd-lr'],
      has['zo-sgd-zl'] and '; Linear also at 0.1' or '')
  end
  if has.backprop then parts[#parts + 1] = 'backprop: optim.Adam lr 1e-3' end
  parts[#parts + 1] = ('seed %d, threads %d.'):format(args.seed, ms.num_threads())
  local note = table.concat(parts, '; ')
  local md = markdown(rows, note)
  write(args.out .. '/zo_mnist.md', md)
  io.stdout:write('\n', md)
  local png, why = plot(rows, args.out, ('Fashion-MNIST, %s, batch %d: SPSA forward differences (h %g) vs backprop')
    :format(args.limit and ('%d batches'):format(steps) or 'one epoch', BATCH, args.h))
  print(png and ('wrote %s/zo_mnist.csv, zo_mnist.md, %s'):format(args.out, png)
    or ('wrote %s/zo_mnist.csv, zo_mnist.md; no plot: %s'):format(args.out, why))
end

-- An error: one line on stderr (no position in this script), exit status 1.
local ok, err = xpcall(main, function(e) return (tostring(e):gsub('^[^:\n]*zo_mnist%.lua:%d+: ', '')) end)
if not ok then die(1, '%s', err) end
