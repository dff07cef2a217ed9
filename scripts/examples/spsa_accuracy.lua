-- spsa_accuracy.lua — training on a non-differentiable objective: the classification error
-- of the mini-batch itself, with zeroth-order SPSA (no backward pass anywhere).
--
--   bin/moonstep scripts/examples/spsa_accuracy.lua [--steps N] [--quick] [--help]
--
-- The error rate (1 - accuracy) is piecewise constant in the weights: its gradient is zero
-- almost everywhere, so backpropagation cannot train on it. SPSA only needs loss VALUES:
-- each step it perturbs all weights along n random +-1 directions u_i by +-c u_i, evaluates
-- the error at both points and moves along the estimate
--   g = (1/n) sum_i (err(w + c u_i) - err(w - c u_i)) / (2 c) * u_i.
-- With c large enough to flip some predictions, the differences are informative. Here the
-- update is SGD on sign(g) ('sign': every weight moves by +-a), a small MLP on a
-- Fashion-MNIST subset; the script prints the accuracy on a training batch and on held-out
-- images, rising from chance (10%).
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim
local flags = require 'moonstep.flags'

local args = flags.parse('examples/spsa_accuracy.lua', {
  { 'steps', 'integer', 600, 'SPSA steps (each 2n evaluations of the batch error)', min = 1 },
  { 'n', 'integer', 20, 'random directions per step', min = 1 },
  { 'batch', 'integer', 250, 'mini-batch size', min = 1 },
  { 'every', 'integer', 50, 'print every N steps', min = 1 },
  { 'quick', 'flag', false, 'a short run (100 steps): the tests use it' },
}, arg or {})
if args.quick then args.steps, args.every = 100, 20 end

ms.manual_seed(0)
local images = ms.data.fashion_mnist('train')
local train = images:subset(1, 4000)          -- 4000 images to train on
local held_out = images:subset(50001, 2000)   -- 2000 others to check on

-- The objective: the fraction of the batch classified wrongly. A plain function of the
-- model's output (argmax), not differentiable.
local function accuracy(out, y)
  return out:argmax(2):to('float32'):eq(y:to('float32')):mean()
end

local model = nn.Sequential(nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10))
local opt = optim.SPSA(model, {
  n = args.n,            -- directions averaged per step
  dist = 'rademacher',   -- u_i in {-1, +1}^d
  diff = 'central',      -- err(w + c u) - err(w - c u): 2n evaluations per step
  c = 0.1,               -- the perturbation: large enough to change some predictions
  update = 'sign',       -- w <- w - a sign(g)
  a = 0.02,
  seed = 1,              -- the directions are reproducible
})

print(('%6s  %14s  %14s  %8s'):format('step', 'batch accuracy', 'held-out acc.', 'passes'))
print(('%6d  %14s  %14.3f  %8d'):format(0, '-', ms.metrics.accuracy(model, held_out), 0))
local step = 0
while step < args.steps do
  for x, y in train:batches(args.batch, { shuffle = true }) do
    step = step + 1
    -- the closure only evaluates: no backward, no gradient (SPSA never reads one)
    opt:step(function() return 1 - accuracy(model:forward(x), y) end)
    if step % args.every == 0 or step == args.steps then
      local batch_acc = accuracy(model:forward(x), y)   -- at the new weights
      print(('%6d  %14.3f  %14.3f  %8d'):format(step, batch_acc, ms.metrics.accuracy(model, held_out), opt.passes))
    end
    if step == args.steps then break end
  end
end
