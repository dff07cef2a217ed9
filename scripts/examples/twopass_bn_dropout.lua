-- twopass_bn_dropout.lua — a two-pass optimizer (SAM around SGD with momentum) on a model
-- with BatchNorm1d and Dropout, and what the optimizer does so that its two passes agree.
--
--   bin/moonstep scripts/examples/twopass_bn_dropout.lua [--steps N] [--quick] [--help]
--
-- SAM calls the closure twice per step on the same mini-batch: at the weights w, then at
-- the perturbed w + e. Run naively, the second forward would (1) move BatchNorm's running
-- statistics a second time, with statistics of perturbed weights, and (2) draw new dropout
-- masks, so the two gradients would belong to two different networks. moonstep's pass
-- policy (the closure protocol of every multi-pass optimizer):
--   bn = 'first'        running statistics are updated in pass 1 only (frozen in pass 2)
--   replay_rng = true   the random generator is reset before pass 2: same dropout masks
-- The script checks both on one step (the running mean follows exactly one momentum update
-- with pass 1's batch mean; the masks of the two passes are equal), shows the opposite
-- settings (bn = 'both', replay_rng = false) break them, then trains a few steps.
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim
local flags = require 'moonstep.flags'

local args = flags.parse('examples/twopass_bn_dropout.lua', {
  { 'steps', 'integer', 300, 'training steps after the checks', min = 1 },
  { 'quick', 'flag', false, 'a short run (30 steps): the tests use it' },
}, arg or {})
if args.quick then args.steps = 30 end

ms.manual_seed(0)
local images = ms.data.fashion_mnist('train')
local train, held_out = images:subset(1, 6400), images:subset(50001, 2000)

local linear1, bn, dropout = nn.Linear(784, 64), nn.BatchNorm1d(64), nn.Dropout(0.3)
local model = nn.Sequential(linear1, bn, nn.ReLU(), dropout, nn.Linear(64, 10))
model.input_grad = false
local crit = nn.CrossEntropyLoss()
local opt = optim.SAM(model, { base = optim.SGD { lr = 0.05, momentum = 0.9 }, rho = 0.05 })
-- (bn = 'first' and replay_rng = true are the defaults; they are hyper-parameters:
-- opt.bn, opt.replay_rng)

-- One SAM step on (x, y) that also records, for each pass, what BatchNorm saw and did and
-- the dropout mask drawn.
local function observed_step(x, y)
  local seen = {}
  local before = bn.running_mean:clone()
  local loss = opt:step(function(pass)
    local out = model:forward(x)
    local l = crit:forward(out, y)
    model:backward(x, crit:backward(out, y))
    seen[pass] = { batch_mean = linear1.output:mean(1),           -- BatchNorm's input, per channel
                   running_mean = bn.running_mean:clone(),       -- after this forward
                   mask = dropout.mask:clone() }
    return l
  end)
  return loss, before, seen
end

local function same(a, b) return a:eq(b):sum() == a:numel() end
local function max_diff(a, b) return (a - b):abs():max() end

local batch = train:batches(64, { shuffle = true })
local x, y = batch()

-- 1. The default policy.
local _, before, seen = observed_step(x, y)
local m = bn.momentum
local expected = before * (1 - m) + seen[1].batch_mean * m   -- ONE update, with pass 1's statistics
local once = max_diff(bn.running_mean, expected) < 1e-6 and same(bn.running_mean, seen[1].running_mean)
local masks_equal = same(seen[1].mask, seen[2].mask)
print(('default policy (bn = %q, replay_rng = %s): %d closure calls'):format(opt.bn, tostring(opt.replay_rng), #seen))
print(('  running mean moved once (pass 1 only): %s   (|running - expected| = %.2g)'):format(
  once and 'yes' or 'NO', max_diff(bn.running_mean, expected)))
print(('  dropout masks of pass 1 and pass 2 equal: %s'):format(masks_equal and 'yes' or 'NO'))

-- 2. The opposite settings, for contrast: the statistics move in both passes, new masks.
opt.bn, opt.replay_rng = 'both', false
x, y = batch()
_, before, seen = observed_step(x, y)
local moved_twice = not same(seen[2].running_mean, seen[1].running_mean)
print(("bn = 'both', replay_rng = false: running mean moved in pass 2 too: %s; masks equal: %s"):format(
  moved_twice and 'yes' or 'no', same(seen[1].mask, seen[2].mask) and 'yes' or 'no'))
opt.bn, opt.replay_rng = 'first', true

if not (once and masks_equal) then
  io.stderr:write('twopass_bn_dropout: the pass policy check failed\n')
  os.exit(1)
end

-- 3. Train with the default policy; evaluate (running statistics, no dropout) as we go.
local step, sum = 0, 0
print(('%6s  %10s  %14s'):format('step', 'mean loss', 'held-out acc.'))
while step < args.steps do
  for bx, by in train:batches(64, { shuffle = true }) do
    step = step + 1
    sum = sum + opt:step(function()
      local out = model:forward(bx)
      local l = crit:forward(out, by)
      model:backward(bx, crit:backward(out, by))
      return l
    end)
    if step % math.max(1, math.floor(args.steps / 5)) == 0 or step == args.steps then
      print(('%6d  %10.4f  %14.3f'):format(step, sum / step, ms.metrics.accuracy(model, held_out)))
    end
    if step == args.steps then break end
  end
end
print(('%d SAM steps (2 in the checks above, %d of training), %d closure calls (2 per step)'):format(
  opt.t, step, opt.passes))
