-- schedule_function.lua — a learning-rate schedule written as a plain Lua function of the
-- step, next to a built-in one from ms.schedule, each driving the same optimizer.
--
--   bin/moonstep scripts/examples/schedule_function.lua [--steps N] [--quick] [--help]
--
-- Every hyper-parameter of a moonstep optimizer may be a number, a schedule object or ANY
-- callable of the 1-based step t (t = 1 is the first update). Here the function is a linear
-- warm-up followed by an inverse-square-root decay (the Transformer's schedule); the
-- built-in is ms.schedule.warmup into a cosine. Both train the same small MLP (same seed,
-- same batches) on a Fashion-MNIST subset with SGD + momentum; the script prints the step
-- size in force at each step (opt:get('lr')) and the losses.
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim
local flags = require 'moonstep.flags'

local args = flags.parse('examples/schedule_function.lua', {
  { 'steps', 'integer', 300, 'training steps per schedule', min = 1 },
  { 'warmup', 'integer', 30, 'warm-up steps', min = 1 },
  { 'lr', 'number', 0.1, 'the peak learning rate', min = 0, positive = true },
  { 'every', 'integer', 10, 'print every N steps', min = 1 },
  { 'quick', 'flag', false, 'a short run (30 steps, warm-up 5, every step printed): the tests use it' },
}, arg or {})
if args.quick then args.steps, args.warmup, args.every = 30, 5, 1 end

-- 1. The custom schedule: just a function of t. Rises linearly to lr over `warmup` steps,
--    then decays as lr * sqrt(warmup / t).
local function inverse_sqrt(t)
  if t <= args.warmup then return args.lr * t / args.warmup end
  return args.lr * math.sqrt(args.warmup / t)
end

-- 2. The built-in one: a linear warm-up from 0 into a cosine over the remaining steps.
local builtin = ms.schedule.warmup {
  steps = args.warmup,
  schedule = ms.schedule.cosine { init = args.lr, T_max = math.max(1, args.steps - args.warmup) },
}

-- The data: Fashion-MNIST's training images (pixels in [0, 1], labels 1..10).
local images = ms.data.fashion_mnist('train')

-- Train a fresh MLP with SGD-momentum whose lr is `schedule`; returns the step sizes in
-- force and the losses, one per step.
local function run(schedule)
  ms.manual_seed(0)                                -- same initial weights for both runs
  local train = images:subset(1, 2000)             -- a fresh subset: the same shuffles too
  local model = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
  model.input_grad = false                         -- no gradient w.r.t. the images
  local crit = nn.CrossEntropyLoss()
  local opt = optim.SGD(model, { lr = schedule, momentum = 0.9 })
  local lrs, losses = {}, {}
  while #losses < args.steps do
    for x, y in train:batches(64, { shuffle = true, seed = 1 }) do
      local loss = opt:step(function()
        local out = model:forward(x)
        local l = crit:forward(out, y)
        model:backward(x, crit:backward(out, y))
        return l
      end)
      lrs[#lrs + 1], losses[#losses + 1] = opt:get('lr'), loss   -- the lr this step used
      if #losses == args.steps then break end
    end
  end
  return lrs, losses
end

local lr_f, loss_f = run(inverse_sqrt)
local lr_b, loss_b = run(builtin)

print(('%5s  %12s  %10s  %12s  %10s'):format('step', 'lr(function)', 'loss', 'lr(builtin)', 'loss'))
for t = 1, args.steps do
  if t % args.every == 0 or t == 1 or t == args.steps then
    print(('%5d  %12.6f  %10.4f  %12.6f  %10.4f'):format(t, lr_f[t], loss_f[t], lr_b[t], loss_b[t]))
  end
  -- the optimizer used exactly the values the schedules give at t
  assert(lr_f[t] == inverse_sqrt(t) and lr_b[t] == builtin(t), 'the lr in force differs from the schedule')
end

-- The mean loss of the last 10 steps against the first 10, for each schedule.
local function mean(list, a, b)
  local s = 0
  for i = a, b do s = s + list[i] end
  return s / (b - a + 1)
end
local k = math.min(10, args.steps)
for _, r in ipairs { { 'function', loss_f }, { 'builtin', loss_b } } do
  print(('%-8s  loss %.4f (first %d steps) -> %.4f (last %d)'):format(
    r[1], mean(r[2], 1, k), k, mean(r[2], args.steps - k + 1, args.steps), k))
end
