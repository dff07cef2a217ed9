-- demo.lua — moonstep's main job: a comparison of optimizers on Fashion-MNIST.
--
--   make demo                                 (or bin/moonstep scripts/demo.lua)
--   bin/moonstep scripts/demo.lua --full      more epochs and seeds (about half an hour)
--   bin/moonstep scripts/demo.lua --help      every flag
--
-- One MLP 784-256-10 (ReLU, PyTorch's default initialisation), trained from the same
-- seeds on the same shuffled batches by ten optimizers, on the GPU when there is one:
--
--   SGD-momentum      SGD lr 0.02, momentum 0.9                       1 forward + 1 backward a step
--   Adam, AdamW       lr 1e-3 (AdamW weight_decay 0.01)               1 + 1
--   AutoSGM Eq.5      the constant numerator (num_lrc 0), lr 1e-3     1 + 1
--   AutoSGM Eq.8      the partial-correlation numerator (num_lrc 3)   1 + 1
--   ACME              around Adam, lr 1e-3: a trial point a step      2 + 2
--   SAM, ASAM         around SGD-momentum, rho 0.05 / adaptive 0.5   2 + 2
--   LookSAM           k 5, alpha 0.7 (SAM every 5th step)             1.2 + 1.2
--   SPSA              Zeroth-Learn's preset: 50 random directions,    51 forward, no backward
--                     forward differences, Adam 1e-3, batch 50
--
-- The images are standardised by the training set's mean and std. Every run is an
-- ms.experiment record under --out (default results/demo): config.json (replay it with
-- `bin/moonstep replay DIR`), steps.csv, epochs.csv, result.json. An interrupted demo
-- (Ctrl-C, kill) resumes where it stopped: finished runs are not run again (--fresh
-- starts over). At the end: the table (test accuracy mean ± std over the seeds,
-- seconds, passes) printed and written as summary.md, and gnuplot figures: the loss (a
-- moving average over 25 steps) against steps, against passes and against seconds (log
-- scales), test accuracy per epoch (one line per optimizer, a band over the seeds), and
-- the optimizers' trajectories on Rosenbrock and Beale.
--
-- Budget: the default (2 epochs of the 60,000 images, 3 seeds, 30 runs) took 1 min 53 s
-- on both cores of a shared 2-core machine, most of it SPSA's 51 forward passes a step.
-- --threads: all cores by default on a CPU (moonstep's loops and OpenBLAS fall back to
-- one thread while other processes hold the cores: runtime/threads.c); the accuracies
-- are the same bits on any number of threads (on one CPU model).
local ms = require 'moonstep'
local flags = require 'moonstep.flags'

local FLAGS = {
  { 'full', 'flag', false, '10 epochs and 5 seeds (about half an hour on 2 cores)' },
  { 'quick', 'flag', false, 'a smoke run: 2,000 images, 1 epoch, 1 seed (the tests use it)' },
  { 'epochs', 'integer', nil, 'epochs per run (default 2; --full 10; --quick 1)', min = 1 },
  { 'seeds', 'integer', nil, 'seeds per optimizer (default 3; --full 5; --quick 1)', min = 1 },
  { 'train', 'integer', nil, 'training images, the first N (default all 60,000)', min = 1, metavar = 'N' },
  { 'test', 'integer', nil, 'test images, the first N (default all 10,000)', min = 1, metavar = 'N' },
  { 'only', 'string', nil, 'comma list of optimizer names to run (default all)', metavar = 'LIST' },
  { 'device', 'choice', 'auto', 'where to train', choices = { 'auto', 'cpu', 'cuda' } },
  { 'threads', 'integer', nil, 'CPU threads (default: all cores)', min = 1 },
  { 'out', 'string', 'results/demo', 'output directory', metavar = 'DIR' },
  { 'fresh', 'flag', false, 'delete the previous records under --out first' },
  { 'quiet', 'flag', false, 'no progress bar' },
}
local args = flags.parse('demo.lua', FLAGS, arg or {})
local function die(fmt, ...) flags.die('demo.lua', 1, fmt, ...) end
io.stdout:setvbuf('line')

local epochs = args.epochs or (args.full and 10) or (args.quick and 1) or 2
local nseeds = args.seeds or (args.full and 5) or (args.quick and 1) or 3
local ntrain = args.train or (args.quick and 2000) or nil
local ntest = args.test or (args.quick and 1000) or nil
local device = args.device
if device == 'auto' then device = ms.cuda.is_available() and 'cuda' or 'cpu' end
if device == 'cuda' and not ms.cuda.is_available() then die('--device cuda: no usable GPU here') end
local threads = args.threads or (device == 'cpu' and ms.num_threads() or nil)

---------------------------------------------------------------------------------------
-- The optimizers (ms.experiment's data form: {class, config...}; name is the label)
---------------------------------------------------------------------------------------
local SGDM = { 'SGD', lr = 0.02, momentum = 0.9 }
local OPTIMIZERS = {
  { name = 'SGD-momentum', optimizer = SGDM },
  { name = 'Adam', optimizer = { 'Adam', lr = 1e-3 } },
  { name = 'AdamW', optimizer = { 'AdamW', lr = 1e-3, weight_decay = 0.01 } },
  { name = 'AutoSGM-Eq5', optimizer = { 'AutoSGM', lr_init = 1e-3, num_lrc = 0 } },
  { name = 'AutoSGM-Eq8', optimizer = { 'AutoSGM', lr_init = 1e-3, num_lrc = 3 } },
  { name = 'ACME', optimizer = { 'ACME', lr = 1e-3 } },
  { name = 'SAM', optimizer = { 'SAM', base = SGDM, rho = 0.05 } },
  { name = 'ASAM', optimizer = { 'SAM', base = SGDM, rho = 0.5, adaptive = true } },
  { name = 'LookSAM', optimizer = { 'LookSAM', base = SGDM, rho = 0.05, k = 5, alpha = 0.7 } },
  { name = 'SPSA', optimizer = { 'SPSA', preset = 'zeroth_learn' }, batch_size = 50 },
}

local wanted
if args.only then
  wanted = {}
  for name in args.only:gmatch('[^,]+') do wanted[name] = true end
  for name in pairs(wanted) do
    local known = false
    for _, o in ipairs(OPTIMIZERS) do known = known or o.name == name end
    if not known then die('--only: no optimizer named %q in this demo', name) end
  end
end

local seeds = {}
for s = 1, nseeds do seeds[s] = s end
local runs = {}
for _, o in ipairs(OPTIMIZERS) do
  if not wanted or wanted[o.name] then
    local base = {
      name = o.name, optimizer = o.optimizer,
      model = { 'mlp', sizes = { 784, 256, 10 }, activation = 'relu' },
      data = { 'fashion_mnist', train = ntrain, test = ntest, normalize = true },
      epochs = epochs, batch_size = o.batch_size or 128, device = device, threads = threads,
    }
    for _, e in ipairs(ms.experiment.grid({ seed = seeds }, base)) do runs[#runs + 1] = e end
  end
end

---------------------------------------------------------------------------------------
-- Run (resumable), then the table and the figures
---------------------------------------------------------------------------------------
print(('moonstep demo: %d optimizers x %d seeds, MLP 784-256-10 on Fashion-MNIST (%s train / %s test images), %d epoch%s, %s%s'):format(
  #runs / nseeds, nseeds, ntrain or '60000', ntest or '10000', epochs, epochs > 1 and 's' or '',
  device, threads and (', %d thread%s'):format(threads, threads > 1 and 's' or '') or ''))
print(('records under %s/ (an interrupted demo resumes there)\n'):format(args.out))
if args.fresh then os.execute(('rm -rf %q'):format(args.out)) end

local t0 = ms.clock()
local set = ms.experiment.run_all(runs, { out = args.out, quiet = args.quiet })
local summary = set:summary { by = 'name', metrics = { 'test_accuracy', 'time', 'forward', 'backward' } }
print()
print(summary)
summary:write(args.out .. '/summary.md')

local figures = {}
local function figure(path, ok, msg)
  if ok then figures[#figures + 1] = path elseif msg then figures.missing = msg end
end
for _, f in ipairs {
  { y = 'loss', x = 'step', file = 'loss_vs_steps', smooth = 25 },
  { y = 'loss', x = 'passes', file = 'loss_vs_passes', smooth = 25, logx = true },
  { y = 'loss', x = 'time', file = 'loss_vs_time', smooth = 25, logx = true },
  { y = 'test_accuracy', x = 'epoch', file = 'accuracy_vs_epoch' },
} do
  for _, ext in ipairs { '.png', '.svg' } do
    local path = args.out .. '/' .. f.file .. ext
    figure(path, set:plot { y = f.y, x = f.x, by = 'name', out = path, bands = true, smooth = f.smooth,
                            logx = f.logx })
  end
end

-- Optimizers on 2-D test functions, drawn on their contour maps: a picture of what each
-- update rule does (ms.objectives.standard_runs: SGD-momentum, Adam, SAM, ACME, SPSA).
for _, name in ipairs { 'rosenbrock', 'beale' } do
  local obj = ms.objectives[name]()
  for _, ext in ipairs { '.png', '.svg' } do
    local path = ('%s/trajectories_%s%s'):format(args.out, name, ext)
    figure(path, ms.objectives.plot_trajectories { objective = obj, runs = ms.objectives.standard_runs(obj, 300),
                                                    steps = 300, out = path })
  end
end

print()
if #figures > 0 then
  print('figures:')
  for _, p in ipairs(figures) do print('  ' .. p) end
end
if figures.missing then print('no figures: ' .. figures.missing) end
print(('table: %s/summary.md; per-step and per-epoch CSVs in each run directory; %.0f s in all'):format(
  args.out, ms.clock() - t0))
