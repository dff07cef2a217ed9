-- train.lua (bench) — one epoch of Adam on Fashion-MNIST, moonstep against PyTorch CPU
-- (Debian python3-torch, run from here when installed) in the same run: same models
-- (784-256-10 and 784-512-512-10), batch 128, same thread count. Goal: >= 2x PyTorch's
-- samples/s at equal accuracy. On a GPU (when available): epoch time for 784-512-512-10
-- with the data resident on the device (goal <= 50 ms on an H100).
--   bin/moonstep scripts/bench/train.lua
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim
local home = require('moonstep.core').home

local batch, threads = 128, ms.num_threads()
local train, test = ms.data.fashion_mnist('train'), ms.data.fashion_mnist('test')

local function mlp(hidden)
  local layers, prev = {}, 784
  for _, h in ipairs(hidden) do
    layers[#layers + 1] = nn.Linear(prev, h)
    layers[#layers + 1] = nn.ReLU()
    prev = h
  end
  layers[#layers + 1] = nn.Linear(prev, 10)
  return nn.Sequential(unpack(layers))
end

-- One epoch; returns samples/s, test accuracy and seconds.
local function epoch(hidden, device)
  ms.manual_seed(0)
  local model = mlp(hidden)
  model.input_grad = false   -- as PyTorch: the data does not require grad
  local tr, te = train, test
  if device ~= 'cpu' then model:to(device); tr, te = train:to(device), test:to(device) end
  local opt, crit = optim.Adam(model, { lr = 1e-3 }), nn.CrossEntropyLoss()
  local t0 = ms.clock()
  for x, y in tr:batches(batch, { shuffle = true, seed = 0 }) do
    opt:step(function()
      local out = model:forward(x)
      local loss = crit:forward(out, y)
      model:backward(x, crit:backward(out, y))
      return loss
    end)
  end
  if device ~= 'cpu' then ms.cuda.synchronize() end
  local secs = ms.clock() - t0
  return tr:size() / secs, ms.metrics.accuracy(model, te), secs
end

local models = { { 256 }, { 512, 512 } }
-- PyTorch runs twice: with its default environment, and with OMP_WAIT_POLICY=PASSIVE
-- (its intra-op pool and its BLAS pool contend on few cores; passive is much faster
-- here). The ratio is taken against the better of the two.
-- MOONSTEP_GPU_ONLY=1 (make gpu-check): the GPU epoch alone.
if os.getenv('MOONSTEP_GPU_ONLY') ~= '1' then
  local torch = {}
  local specs = {}
  for i, h in ipairs(models) do specs[i] = table.concat(h, ',') end
  for _, env in ipairs { '', 'OMP_WAIT_POLICY=PASSIVE' } do
    local py = io.popen(('env %s /usr/bin/python3 %s/scripts/bench/torch_train.py %d %d %s 2>/dev/null'):format(
      env, home, threads, batch, table.concat(specs, ' ')))
    for line in py:lines() do
      local spec, rate, acc = line:match('^(%S+) samples_per_s (%S+) accuracy (%S+)')
      if spec and (not torch[spec] or tonumber(rate) > torch[spec][1]) then
        torch[spec] = { tonumber(rate), tonumber(acc), env == '' and 'default env' or env }
      end
    end
    py:close()
  end

  print(('one epoch of Adam, batch %d, %d threads: samples/s (test accuracy)'):format(batch, threads))
  print(('  %-18s %20s %20s %8s   %s'):format('model', 'moonstep', 'PyTorch', 'ratio', 'goal'))
  for i, h in ipairs(models) do
    local rate, acc = epoch(h, 'cpu')
    local t = torch[specs[i]]
    local name = '784-' .. table.concat(h, '-') .. '-10'
    if t then
      print(('  %-18s %12.0f (%.4f) %12.0f (%.4f) %7.2fx   >= 2x  (PyTorch best with %s)'):format(
        name, rate, acc, t[1], t[2], rate / t[1], t[3]))
    else
      print(('  %-18s %12.0f (%.4f) %20s %8s   >= 2x (python3-torch not installed)'):format(name, rate, acc, '-', '-'))
    end
  end
end
if ms.cuda.is_available() then
  local _, acc, secs = epoch({ 512, 512 }, 'cuda')
  print(('  GPU 784-512-512-10: epoch %.1f ms (accuracy %.4f), goal <= 50 ms on H100'):format(secs * 1e3, acc))
else
  print('  GPU: skipped (no usable GPU)')
end
