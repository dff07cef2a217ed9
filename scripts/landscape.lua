-- landscape.lua — loss-landscape slices of a small MLP and optimizer trajectories on 2-D
-- test functions, drawn with gnuplot (ms.landscape, ms.objectives, ms.plot).
--
--   bin/moonstep scripts/landscape.lua [--out results/landscape] [--quick] [...]   (--help)
--
-- 1. An MLP 784-256-10 trained for one epoch (SGD-momentum) on the first --train
--    Fashion-MNIST images (a synthetic 10-class set when the Debian package is missing),
--    then slices of its training loss on --eval images: 1-D along a random filter-normalised
--    direction and along the gradient (slice1d.png), 2-D along two random directions
--    (slice2d.png, the trained weights at the centre).
-- 2. SGD-momentum, Adam, SAM(SGD-m), ACME and SPSA (spall) for --steps steps on Rosenbrock,
--    Rastrigin and Beale, drawn on their contour maps (rosenbrock.png, ...), with
--    ms.objectives.standard_runs and ms.objectives.plot_trajectories.
-- Every figure is written as .png and .svg, each with its .dat and .gp beside it. Without
-- gnuplot the script still runs and says so. Default size: well under 60 s on one core.
local ms = require 'moonstep'
local flags = require 'moonstep.flags'
local nn, optim = ms.nn, ms.optim

local FLAGS = {
  { 'out', 'string', 'results/landscape', 'directory for the figures (created)', metavar = 'DIR' },
  { 'train', 'integer', 5000, 'training images for the MLP', min = 1 },
  { 'eval', 'integer', 500, 'images the slices evaluate the loss on', min = 1 },
  { 'points', 'integer', 31, 'points per axis of the 2-D slice (the 1-D ones: twice as many)', min = 2 },
  { 'steps', 'integer', 300, 'optimizer steps on each test function', min = 1 },
  { 'grid', 'integer', 121, 'grid points per axis of the test functions\' maps', min = 2 },
  { 'seed', 'integer', 0, 'seed of the weights, the shuffling and the random directions', min = 0 },
  { 'threads', 'integer', nil, 'CPU threads (default: all cores)', min = 1 },
  { 'quick', 'flag', false, 'a tiny run (the tests use it)' },
}
local args = flags.parse('landscape.lua', FLAGS, arg or {})
if args.quick then
  args.train, args.eval, args.points = math.min(args.train, 300), math.min(args.eval, 100), math.min(args.points, 7)
  args.steps, args.grid = math.min(args.steps, 40), math.min(args.grid, 41)
end
if args.threads then ms.set_num_threads(args.threads) end
io.stdout:setvbuf('line')
local out = args.out:gsub('/+$', '')   -- created by the plots themselves (any name, a leading - too)
local t0 = ms.clock()
local missing = false

-- draw(f, opts): f = ms.plot.lines / contour (or a function of out), as PNG and SVG
local function draw(name, f, opts)
  for _, ext in ipairs { 'png', 'svg' } do
    opts.out = ('%s/%s.%s'):format(out, name, ext)
    local r, msg = f(opts)
    if not r and not missing then missing = true; print('note: ' .. tostring(msg)) end
    if r then print('wrote ' .. r) end
  end
end

---------------------------------------------------------------------------------------
-- 1. the MLP and its landscape
---------------------------------------------------------------------------------------
local function data(n)
  local ok, train = pcall(ms.data.fashion_mnist, 'train')
  if ok then return train:subset(1, math.min(n, train:size())), 'Fashion-MNIST' end
  print('note: Fashion-MNIST not found (Debian: dataset-fashion-mnist); using a synthetic 10-class set')
  ms.manual_seed(args.seed + 1000)
  local centers = ms.randn(10, 784)
  local labels = {}
  for i = 1, n do labels[i] = (i - 1) % 10 + 1 end
  local y = ms.tensor(labels, { dtype = 'int64' })
  local x = centers:index_select(1, y):add(ms.randn(n, 784):mul(3))
  return ms.data.Dataset(x, y), 'synthetic'
end

ms.manual_seed(args.seed)
local train, source = data(args.train)
local model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
model.input_grad = false
local crit = nn.CrossEntropyLoss()
local opt = optim.SGD(model, { lr = 0.05, momentum = 0.9 })
model:train()
for x, y in train:batches(64, { shuffle = true, seed = args.seed }) do
  opt:step(function()
    local o = model:forward(x)
    local l = crit:forward(o, y)
    model:backward(x, crit:backward(o, y))
    return l
  end)
end
model:evaluate()
local ev = train:subset(1, math.min(args.eval, train:size()))
local ex, ey = ev.x, ev.y
local function loss_fn() return crit:forward(model:forward(ex), ey) end
local function closure()
  local o = model:forward(ex)
  local l = crit:forward(o, ey)
  model:backward(ex, crit:backward(o, ey))
  return l
end
print(('MLP 784-256-10, one epoch on %d %s images: loss %.4f on %d of them (%.1f s)'):format(
  train:size(), source, loss_fn(), ev:size(), ms.clock() - t0))

local random = ms.landscape.slice1d(model, loss_fn, { points = 2 * args.points - 1, seed = args.seed })
local gradient = ms.landscape.slice1d(model, loss_fn, { direction = 'gradient', closure = closure,
                                                       points = 2 * args.points - 1 })
draw('slice1d', ms.plot.lines, {
  title = 'MLP loss along one direction (filter-normalised, Li et al. 2018)',
  xlabel = 'alpha (weights + alpha d; the gradient direction points uphill)', ylabel = 'training loss',
  logy = true,
  series = { { label = 'random direction', x = random.alpha, y = random.loss },
             { label = 'gradient direction', x = gradient.alpha, y = gradient.loss } } })
local s2 = ms.landscape.slice2d(model, loss_fn, { points = args.points, seed = args.seed })
draw('slice2d', ms.plot.contour, {
  title = 'MLP loss on a plane of two random filter-normalised directions',
  x = s2.x, y = s2.y, z = s2.loss, zlabel = 'training loss', xlabel = 'alpha (d1)',
  ylabel = 'beta (d2)', minimum = { x = 0, y = 0, label = 'trained weights' } })
print(('slices: %d + %d + %d loss evaluations (%.1f s)'):format(#random.loss, #gradient.loss,
  #s2.x * #s2.y, ms.clock() - t0))

---------------------------------------------------------------------------------------
-- 2. trajectories on the test functions
---------------------------------------------------------------------------------------
local O = ms.objectives
for _, name in ipairs { 'rosenbrock', 'rastrigin', 'beale' } do
  local obj = O[name]()
  local runs = O.standard_runs(obj, args.steps)
  local final
  draw(name, function(o)
    local r, msg, trajs = O.plot_trajectories(o)
    final = r and msg or trajs
    return r, msg
  end, { objective = obj, runs = runs, steps = args.steps, n = args.grid })
  local parts = {}
  for i, t in ipairs(final) do
    parts[i] = ('%s %.3g'):format(runs[i].label:match('^[^ (]+'), t.loss[#t.loss])
  end
  print(('%s after %d steps: %s'):format(obj.name, args.steps, table.concat(parts, ', ')))
end
print(('done in %.1f s: %s/'):format(ms.clock() - t0, out))
