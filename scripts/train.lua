-- train.lua — train an MLP or a small CNN on Fashion-MNIST, and save / resume.
--
--   bin/moonstep scripts/train.lua [options]
--     --model mlp|cnn      mlp: 784-256-10; cnn: 2 x (conv3x3, ReLU, maxpool) + 2 linear
--     --optim adam|sgd     Adam (lr 1e-3) or SGD with momentum 0.9 (lr 0.05)
--     --lr X               learning rate          --epochs N     (default 10)
--     --batch N            (default 128)           --seed N       (default 0)
--     --device cpu|cuda    --threads N             --limit N      use the first N training images
--     --save PATH          checkpoint after every epoch (model, optimizer, RNG, epoch)
--     --resume PATH        continue from a checkpoint: the same losses as without stopping
--   Prints a progress bar (loss, samples/s) and, per epoch, one line:
--     epoch E  loss L  test_accuracy A  seconds S  samples_per_s R
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim

local defaults = { model = 'mlp', optim = 'adam', epochs = 10, batch = 128, seed = 0, device = 'cpu' }
local args = {}
for k, v in pairs(defaults) do args[k] = v end
local i = 1
while i <= #arg do
  local k = arg[i]:match('^%-%-(.+)$')
  if not k or arg[i + 1] == nil then
    io.stderr:write('train.lua: expected --option value pairs, got ', tostring(arg[i]), '\n')
    os.exit(2)
  end
  args[k] = tonumber(arg[i + 1]) or arg[i + 1]
  i = i + 2
end
if args.threads then ms.set_num_threads(args.threads) end

local function build_model(kind)
  if kind == 'mlp' then
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)), 'flat'
  elseif kind == 'cnn' then
    return nn.Sequential(nn.Conv2d(1, 32, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
                         nn.Linear(128, 10)), 'image'
  end
  error(('train.lua: --model %s is unknown, expected mlp or cnn'):format(tostring(kind)), 0)
end

ms.manual_seed(args.seed)
local model, shape = build_model(args.model)
model.input_grad = false   -- no gradient w.r.t. the images
local train = ms.data.fashion_mnist('train', { shape = shape })
local test = ms.data.fashion_mnist('test', { shape = shape })
if args.limit then train = train:subset(1, args.limit) end
if args.device ~= 'cpu' then
  model:to(args.device)
  train, test = train:to(args.device), test:to(args.device)
end

local opt
if args.optim == 'adam' then opt = optim.Adam(model, { lr = args.lr or 1e-3 })
elseif args.optim == 'sgd' then opt = optim.SGD(model, { lr = args.lr or 0.05, momentum = 0.9 })
else error(('train.lua: --optim %s is unknown, expected adam or sgd'):format(tostring(args.optim)), 0) end
local crit = nn.CrossEntropyLoss()

local first_epoch = 1
if args.resume then
  local ck = ms.load(args.resume, { device = args.device })
  if ck.model_kind ~= args.model then
    error(('train.lua: %s holds a %s model, not %s'):format(args.resume, ck.model_kind, args.model), 0)
  end
  model:load_state_dict(ck.model)
  opt:load_state(ck.optimizer)
  ms.set_rng_state(ck.rng)
  train.epoch = ck.data_epoch
  first_epoch = ck.epoch + 1
  print(('resumed from %s after epoch %d'):format(args.resume, ck.epoch))
end

local ffi = require 'ffi'
ffi.cdef 'int isatty(int fd);'
local tty = ffi.C.isatty(2) == 1
local function progress(b, nb, loss, rate)
  if not tty then return end
  local width = 30
  local done = math.floor(width * b / nb)
  io.stderr:write(('\r[%s%s] %d/%d  loss %.4f  %.0f samples/s'):format(('='):rep(done),
    (' '):rep(width - done), b, nb, loss, rate))
  if b == nb then io.stderr:write('\r', (' '):rep(80), '\r') end
end

print(('model %s (%d parameters), %s, %d training images, batch %d, %s, %d threads'):format(
  args.model, model:flat_parameters():numel(), opt.__name, train:size(), args.batch, args.device,
  ms.num_threads()))
local nb = math.ceil(train:size() / args.batch)
for epoch = first_epoch, args.epochs do
  model:train()
  local t0, sum, seen = ms.clock(), 0, 0
  for x, y, b in train:batches(args.batch, { shuffle = true, seed = args.seed }) do
    local loss = opt:step(function()
      local out = model:forward(x)
      local l = crit:forward(out, y)
      model:backward(x, crit:backward(out, y))
      return l
    end)
    sum, seen = sum + loss * x:size(1), seen + x:size(1)
    if b % 20 == 0 or b == nb then progress(b, nb, sum / seen, seen / (ms.clock() - t0)) end
  end
  if args.device ~= 'cpu' then ms.cuda.synchronize() end
  local secs = ms.clock() - t0
  local acc = ms.metrics.accuracy(model, test)
  print(('epoch %d  loss %.10f  test_accuracy %.4f  seconds %.2f  samples_per_s %.0f'):format(
    epoch, sum / seen, acc, secs, seen / secs))
  if args.save then
    ms.save(args.save, { model_kind = args.model, model = model:state_dict(), optimizer = opt:state(),
                         rng = ms.rng_state(), epoch = epoch, data_epoch = train.epoch })
  end
end
