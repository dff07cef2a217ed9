-- custom_chain.lua — your own optimizer, assembled from gradient transforms with optim.chain
-- (optax's idea), used exactly like a built-in one: step, state saved and restored.
--
--   bin/moonstep scripts/examples/custom_chain.lua [--steps N] [--out DIR] [--quick] [--help]
--
-- The optimizer here: clip the gradient's global norm to 1, Adam's direction, decoupled
-- weight decay on the weights only (not the biases), then the step size from a schedule
-- (warm-up into cosine), i.e. an AdamW with clipping, written out. Each step the update
-- u = grad goes through the transforms in order and the parameters move by p <- p + u.
--
-- Then the part every optimizer shares: halfway through, the model, the optimizer's state
-- and the random generator are checkpointed (ms.save) to DIR/chain_half.ck; a fresh model
-- and a fresh chain resume from it and end on the same weights, bit for bit.
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim
local flags = require 'moonstep.flags'

local args = flags.parse('examples/custom_chain.lua', {
  { 'steps', 'integer', 200, 'training steps (batches of 64)', min = 2 },
  { 'lr', 'number', 3e-3, 'the peak step size', min = 0, positive = true },
  { 'out', 'string', 'results/examples', 'directory for the checkpoint' },
  { 'quick', 'flag', false, 'a short run (20 steps): the tests use it' },
}, arg or {})
if args.quick then args.steps = 20 end
os.execute("mkdir -p '" .. args.out:gsub("'", "'\\''") .. "'")

-- The optimizer: a list of transforms, each an init/update pair over the flat gradient.
local function make_optimizer(model)
  local lr = ms.schedule.warmup { steps = math.max(1, math.floor(args.steps / 10)),
                                  schedule = ms.schedule.cosine { init = args.lr, T_max = args.steps } }
  return optim.chain(model,                          -- bound to the model at once
    optim.clip_global_norm(1.0),                     -- u <- u * min(1, 1 / |u|)
    optim.scale_by_adam { b1 = 0.9, b2 = 0.999 },    -- u <- m_hat / (sqrt(v_hat) + eps)
    optim.add_decayed_weights(1e-2, 'weight'),       -- u <- u + 0.01 p, for weights only
    optim.scale_by_learning_rate(lr))                -- u <- -lr(t) u
end

-- The data, as a fixed list of batches (so that the resumed run sees the same ones).
local train = ms.data.fashion_mnist('train'):subset(1, 64 * args.steps)
local batches = {}
for x, y in train:batches(64) do batches[#batches + 1] = { x:clone(), y:clone() } end

local crit = nn.CrossEntropyLoss()
local function new_model()
  local m = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
  m.input_grad = false
  return m
end

-- One step of any optimizer: the closure computes the loss and the gradients.
local function train_step(model, opt, t)
  local x, y = batches[t][1], batches[t][2]
  return opt:step(function()
    local out = model:forward(x)
    local loss = crit:forward(out, y)
    model:backward(x, crit:backward(out, y))
    return loss
  end)
end

ms.manual_seed(0)
local model = new_model()
local opt = make_optimizer(model)
print(('a chain of %d transforms: %s'):format(#opt.transforms, (function()
  local names = {}
  for i, tx in ipairs(opt.transforms) do names[i] = tx.name end
  return table.concat(names, ' -> ')
end)()))

local half = math.floor(args.steps / 2)
local ckpt = args.out .. '/chain_half.ck'
for t = 1, args.steps do
  local loss = train_step(model, opt, t)
  if t == 1 or t % 10 == 0 or t == args.steps then
    print(('step %4d  loss %.4f  (opt.t = %d)'):format(t, loss, opt.t))
  end
  if t == half then
    -- the optimizer's state is a plain table (Adam's moments, the step count, the
    -- transforms' hyper-parameters): it goes into a checkpoint like anything else
    ms.save(ckpt, { model = model:state_dict(), opt = opt:state(), rng = ms.rng_state(), step = t })
    print(('step %4d  checkpoint written to %s'):format(t, ckpt))
  end
end

-- Resume: a fresh model and a fresh chain (other initial weights), the checkpoint loaded.
ms.manual_seed(123)
local model2 = new_model()
local opt2 = make_optimizer(model2)
local ck = ms.load(ckpt)
model2:load_state_dict(ck.model)
opt2:load_state(ck.opt)
ms.set_rng_state(ck.rng)
for t = ck.step + 1, args.steps do train_step(model2, opt2, t) end

local a, b = model:flat_parameters(), model2:flat_parameters()
local same = a:eq(b):sum() == a:numel()
print(('resumed from step %d: opt.t = %d, weights %s the uninterrupted run\'s'):format(
  ck.step, opt2.t, same and 'equal (bit for bit)' or 'DIFFER from'))
if not same then os.exit(1) end
