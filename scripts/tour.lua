-- tour.lua — a short tour of the moonstep core: tensors, views, broadcasting,
-- BLAS-backed matmul, reproducible Philox random numbers, errors, a little training, and
-- the GPU when there is one. Run with `bin/moonstep scripts/tour.lua` (the demo is scripts/demo.lua).
local ms = require 'moonstep'

local function section(title) print(('\n== %s '):format(title) .. ('='):rep(60 - #title)) end
local clock = ms.clock

section('tensors')
local x = ms.tensor { { 1, 2, 3 }, { 4, 5, 6 } }
print(x)
print('shape', table.concat(x:shape(), 'x'), 'dtype', x.dtype, 'device', x.device)

section('views share memory (no copies)')
local col = x:select(2, 2)
col:mul_(10)
print('x after scaling its 2nd column in place through a view:')
print(x)
print('transpose is a view:', table.concat(x:t():stride(), ','), 'contiguous?', x:t():is_contiguous())

section('broadcasting and fused forms')
local bias = ms.tensor { 0.5, -0.5, 0 }
print(x + bias)
local y = ms.zeros(3)
y:axpy_(2, bias)                       -- y += 2 * bias
print('axpy:', table.concat(y:totable(), ' '))

section('reductions (float64 accumulation)')
print('sum', x:sum(), 'mean', x:mean(), 'max', x:max(), 'argmax', x:argmax())
local vals, idx = x:max(2)
print('row max', table.concat(vals:totable(), ' '), 'at', table.concat(idx:totable(), ' '))

section('reproducible random numbers (Philox4x32-10)')
ms.manual_seed(2026)
local state = ms.rng_state()
local a = ms.randn(4)
ms.set_rng_state(state)
local b = ms.randn(4)
print('draw', table.concat(a:totable(), ' '))
print('replayed identical:', (a - b):abs():max() == 0)
local u = ms.rand(1e6)
print(('1e6 uniforms: mean %.4f (1/2), var %.5f (1/12 = %.5f)'):format(u:mean(), u:var(), 1 / 12))

section('matmul through OpenBLAS')
for _, n in ipairs { 256, 512 } do
  local A, B = ms.randn(n, n), ms.randn(n, n)
  ms.matmul(A, B)
  local t0, reps = clock(), 5
  for _ = 1, reps do ms.matmul(A, B) end
  local dt = (clock() - t0) / reps
  print(('%4d^3: %.1f GFLOP/s on %d threads'):format(n, 2 * n ^ 3 / dt / 1e9, ms.num_threads()))
end

section('errors are Lua errors that say what was wrong')
for _, f in ipairs {
  function() return ms.zeros(2, 3) + ms.zeros(4) end,
  function() return ms.matmul(ms.zeros(2, 3), ms.zeros(4, 5)) end,
  function() return ms.zeros(3):get(0) end,
} do
  local _, err = pcall(f)
  print('  ' .. tostring(err):gsub('^[^:]*:%d+: ', ''))
end

section('training: an MLP on 5000 Fashion-MNIST images, 2 epochs of Adam')
local ok_data, train = pcall(ms.data.fashion_mnist, 'train')
if ok_data then
  local test = ms.data.fashion_mnist('test')
  train = train:subset(1, 5000)
  ms.manual_seed(0)
  local nn = ms.nn
  local model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
  model.input_grad = false
  print(model)
  local crit, opt = nn.CrossEntropyLoss(), ms.optim.Adam(model, { lr = 2e-3 })
  for epoch = 1, 2 do
    local t0, sum, n = clock(), 0, 0
    for bx, by in train:batches(128, { shuffle = true }) do
      sum = sum + opt:step(function()
        local out = model:forward(bx)
        local loss = crit:forward(out, by)
        model:backward(bx, crit:backward(out, by))
        return loss
      end)
      n = n + 1
    end
    print(('epoch %d: loss %.4f, test accuracy %.4f, %.2f s'):format(epoch, sum / n,
      ms.metrics.accuracy(model, test), clock() - t0))
  end
  print('(bin/moonstep scripts/train.lua trains the full set; --model cnn reaches ~92%;')
  print(' make demo compares ten optimizers)')

  -- The same model and data with a two-pass optimizer: the closure takes the pass number,
  -- the optimizer owns the passes (gradients zeroed, the weights perturbed and restored).
  section('sharpness-aware: the same MLP with SAM around SGD with momentum, 2 epochs')
  ms.manual_seed(0)
  local m2 = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
  m2.input_grad = false
  local sam = ms.optim.SAM(m2, { base = ms.optim.SGD { lr = 0.05, momentum = 0.9 }, rho = 0.05 })
  for epoch = 1, 2 do
    local t0, sum, sharp, n = clock(), 0, 0, 0
    for bx, by in train:batches(128, { shuffle = true }) do
      local loss, info = sam:step(function(pass)
        local out = m2:forward(bx)
        local l = crit:forward(out, by)
        m2:backward(bx, crit:backward(out, by))
        return l
      end)
      sum, sharp, n = sum + loss, sharp + info.sharpness, n + 1
    end
    print(('epoch %d: loss %.4f, sharpness %.4f, test accuracy %.4f, %.2f s, %d closure calls so far'):format(
      epoch, sum / n, sharp / n, ms.metrics.accuracy(m2, test), clock() - t0, sam.passes))
  end

  -- Zeroth-order: no backward at all. Each step evaluates the loss at the weights and at 50
  -- random perturbations of them (one batched pass) and estimates the gradient from those.
  section('zeroth-order: the same MLP from loss values only (SPSA, Zeroth-Learn preset), 1 epoch of 2000 images')
  ms.manual_seed(0)
  local m3 = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
  local spsa = ms.optim.SPSA(m3, ms.optim.SPSA.preset('zeroth_learn', { criterion = crit, seed = 0 }))
  local t0, sum, n = clock(), 0, 0
  for bx, by in train:subset(1, 2000):batches(50, { shuffle = true }) do
    sum, n = sum + spsa:step(bx, by), n + 1
  end
  print(('loss %.4f, test accuracy %.4f, %.2f s, %d forward passes, no backward (scripts/zo_mnist.lua: the grid)'):format(
    sum / n, ms.metrics.accuracy(m3, test), clock() - t0, spsa.passes))
else
  print('skipped: ' .. tostring(train))
end

section('GPU')
if ms.cuda.is_available() then
  local g = ms.randn(1000, 1000):cuda()
  print('on', g.device, 'sum of squares', (g * g):sum())
else
  print(ms.cuda.compiled() and 'built with CUDA, but no GPU is usable here'
        or 'built without CUDA (nvcc was not found at build time)')
end
print('\nThe REPL: run bin/moonstep with no arguments.')
