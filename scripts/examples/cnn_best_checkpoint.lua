-- cnn_best_checkpoint.lua — a small CNN on Fashion-MNIST that keeps a checkpoint of its
-- best epoch, then reloads it into a fresh model and checks it is the same model.
--
--   bin/moonstep scripts/examples/cnn_best_checkpoint.lua [--epochs N] [--out DIR] [--quick] [--help]
--
-- After each epoch the model is evaluated on held-out images; when the accuracy beats the
-- best so far, everything needed to use or resume that epoch is saved with ms.save to
-- DIR/best.ck: the weights and BatchNorm-like buffers (model:state_dict()), the optimizer's
-- state (opt:state()), the random generator (ms.rng_state()), the epoch and its accuracy.
-- ms.save writes atomically (a temporary file renamed over the old one): a crash never
-- leaves a half-written "best" checkpoint. At the end a fresh model (other random weights)
-- loads it and its accuracy must equal the recorded one exactly.
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim
local flags = require 'moonstep.flags'

local args = flags.parse('examples/cnn_best_checkpoint.lua', {
  { 'epochs', 'integer', 6, 'training epochs', min = 1 },
  { 'train', 'integer', 5000, 'training images (the first N)', min = 1 },
  { 'test', 'integer', 2000, 'held-out images (from the test split)', min = 1 },
  { 'out', 'string', 'results/examples', 'directory for best.ck' },
  { 'quick', 'flag', false, 'a short run (3 epochs, 600 + 500 images): the tests use it' },
}, arg or {})
if args.quick then args.epochs, args.train, args.test = 3, 600, 500 end
os.execute("mkdir -p '" .. args.out:gsub("'", "'\\''") .. "'")
local path = args.out .. '/best.ck'

ms.manual_seed(0)
-- shape = 'image': [N, 1, 28, 28] for the convolutions
local train = ms.data.fashion_mnist('train', { shape = 'image' }):subset(1, args.train)
local test = ms.data.fashion_mnist('test', { shape = 'image' }):subset(1, args.test)

-- conv 3x3 (8) -> ReLU -> maxpool 2 -> conv 3x3 (16) -> ReLU -> maxpool 2 -> linear 784 -> 10
local function new_model()
  local m = nn.Sequential(
    nn.Conv2d(1, 8, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),     -- [N, 8, 14, 14]
    nn.Conv2d(8, 16, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),    -- [N, 16, 7, 7]
    nn.Flatten(), nn.Linear(16 * 7 * 7, 10))
  m.input_grad = false
  return m
end

local model = new_model()
local crit = nn.CrossEntropyLoss()
local opt = optim.Adam(model, { lr = 2e-3 })

local best = { accuracy = -1 }
print(('%5s  %10s  %14s'):format('epoch', 'train loss', 'held-out acc.'))
for epoch = 1, args.epochs do
  local sum, n = 0, 0
  for x, y in train:batches(64, { shuffle = true }) do
    sum = sum + opt:step(function()
      local out = model:forward(x)
      local loss = crit:forward(out, y)
      model:backward(x, crit:backward(out, y))
      return loss
    end)
    n = n + 1
  end
  local acc = ms.metrics.accuracy(model, test)
  local note = ''
  if acc > best.accuracy then
    best = { accuracy = acc, epoch = epoch }
    ms.save(path, { model = model:state_dict(), opt = opt:state(), rng = ms.rng_state(),
                    epoch = epoch, accuracy = acc })
    note = '  (best so far: saved to ' .. path .. ')'
  end
  print(('%5d  %10.4f  %14.4f%s'):format(epoch, sum / n, acc, note))
end

-- Reload the best epoch into a fresh model (and a fresh optimizer, to show the state
-- loads too: training could continue from there).
ms.manual_seed(99)
local ck = ms.load(path)
local fresh = new_model()
fresh:load_state_dict(ck.model)
local opt2 = optim.Adam(fresh, { lr = 2e-3 })
opt2:load_state(ck.opt)
local acc = ms.metrics.accuracy(fresh, test)
print(('best epoch %d: recorded accuracy %.4f, reloaded model %.4f -> %s; optimizer at step %d'):format(
  ck.epoch, ck.accuracy, acc, acc == ck.accuracy and 'equal' or 'DIFFERENT', opt2.t))
if acc ~= ck.accuracy then os.exit(1) end
