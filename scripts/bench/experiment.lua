-- experiment.lua (bench) — what ms.experiment.run's bookkeeping costs over a bare loop.
--
-- Measures: the training seconds of one epoch of an MLP 784-256-10 (ReLU; batch 128;
-- Adam lr 1e-3; float32; CPU, 1 thread; the first --train Fashion-MNIST images) run
--   A) by hand: a closure (forward, loss, backward) and opt:step, nothing else;
--   B) by ms.experiment.run with {out = a temporary directory, quiet = true}: the same
--      model, weights, batches and optimizer, plus what the runner does each step (the
--      mini-batch accuracy, lr, gradient norm, pass counts, a steps.csv row every
--      --log-every steps, the interrupt check; the progress bar is off).
-- B's seconds are result.json's `time` (evaluation excluded, as in A). A and B alternate
-- (A B, B A, A B, ...: the order flips each round so that drift on a shared machine falls
-- on both), after one warm-up pair that is not counted; printed: the median seconds of
-- each, the median of the per-round ratios B / A, and the overhead in percent.
--
--   bin/moonstep scripts/bench/experiment.lua                 (default: all 60000 images, 7 rounds)
--   bin/moonstep scripts/bench/experiment.lua --train 10000 --rounds 15 --log-every 10
--   bin/moonstep scripts/bench/experiment.lua --help
-- The default takes about 15 s (under 60 s on a busy 2-core machine). Needs
-- Debian's dataset-fashion-mnist.
local ms = require 'moonstep'
local flags = require 'moonstep.flags'
local home = require('moonstep.core').home
local median = dofile(home .. '/scripts/bench/stats.lua').median
local spec = require 'moonstep.experiment.spec'
local E = ms.experiment

local args = flags.parse('bench/experiment.lua', {
  { 'train', 'integer', 60000, 'training images (the first N of Fashion-MNIST, at most 60000)', min = 128, metavar = 'N' },
  { 'rounds', 'integer', 7, 'measured A/B pairs (after one warm-up pair)', min = 1 },
  { 'log-every', 'integer', 1, 'the runner writes a steps.csv row every K steps', min = 1 },
  { 'no-check', 'flag', false, 'Adam with check_finite = false in both (no nan/inf scan)' },
}, arg or {})

local exp = {
  data = { 'fashion_mnist', train = args.train, test = 256 }, model = { 'mlp', sizes = { 784, 256, 10 } },
  optimizer = args['no-check'] and { 'Adam', lr = 1e-3, check_finite = false } or { 'Adam', lr = 1e-3 },
  batch_size = 128, threads = 1, seed = 1, device = 'cpu', log_every = args['log-every'],
}
local cfg = E.normalize(exp)
local out = os.tmpname()
os.remove(out)

-- A: the bare loop (the runner's data, model and seed: the same weights and batches).
local function bare()
  local prev = ms.num_threads()
  ms.set_num_threads(1)
  ms.manual_seed(cfg.seed)
  local train = spec.data(cfg)
  local model = spec.model(cfg)
  local opt = ms.optim.Adam(model, { lr = 1e-3, check_finite = not args['no-check'] })
  local crit = ms.nn.CrossEntropyLoss()
  model:train()
  local x, y
  local function closure()
    local o = model:forward(x)
    local l = crit:forward(o, y)
    model:backward(x, crit:backward(o, y))
    return l
  end
  local t0 = ms.clock()
  for bx, by in train:batches(cfg.batch_size, { shuffle = true, seed = cfg.seed }) do
    x, y = bx, by
    opt:step(closure)
  end
  local t = ms.clock() - t0
  ms.set_num_threads(prev)
  return t
end

-- B: the runner (files written, then overwritten by the next round: resume = false).
local function runner()
  return E.run(exp, { out = out, quiet = true, resume = false }).metrics.time
end

local steps = math.ceil(args.train / cfg.batch_size)
print(('runner overhead: MLP 784-256-10, Adam, batch 128, %d steps, 1 thread, log_every %d%s; %d rounds'):format(
  steps, args['log-every'], args['no-check'] and ', check_finite = false' or '', args.rounds))
bare(); runner()                                   -- warm-up: data read, code compiled
local a, b, ratios = {}, {}, {}
for i = 1, args.rounds do
  local ta, tb
  if i % 2 == 1 then ta = bare(); tb = runner() else tb = runner(); ta = bare() end
  a[i], b[i], ratios[i] = ta, tb, tb / ta
  io.write(('  round %d: bare %.3f s  runner %.3f s  ratio %.3f\n'):format(i, ta, tb, tb / ta))
end
os.execute(('rm -rf %q'):format(out))
local r = median(ratios)
print(('median: bare %.3f s (%.2f ms/step)  runner %.3f s (%.2f ms/step)  ratio %.3f  overhead %+.1f%%'):format(
  median(a), 1000 * median(a) / steps, median(b), 1000 * median(b) / steps, r, 100 * (r - 1)))
