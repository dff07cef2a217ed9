-- ms.landscape: slices through a small MLP's weights (alpha = 0 is the loss at the weights,
-- one loss evaluation per point, weights restored bit for bit, also after an error; the
-- same seed gives the same slice), the gradient direction's sign convention, filter
-- normalisation, a quadratic's exact parabola, and the argument errors.
local ms = require 'moonstep'
local H = require 'helper'
local nn, L = ms.nn, ms.landscape

local function mlp(dtype)
  ms.manual_seed(3)
  local model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
  if dtype == 'float64' then model:double() end
  local x = ms.randn(32, 8):to(dtype or 'float32')
  local labels = {}
  for i = 1, 32 do labels[i] = i % 3 + 1 end
  local y = ms.tensor(labels, { dtype = 'int64' })
  local crit = nn.CrossEntropyLoss()
  local counter = { calls = 0 }
  local function loss_fn()
    counter.calls = counter.calls + 1
    return crit:forward(model:forward(x), y)
  end
  local function closure()
    local out = model:forward(x)
    local l = crit:forward(out, y)
    model:backward(x, crit:backward(out, y))
    return l
  end
  return model, loss_fn, closure, counter
end

describe('ms.landscape', function()
  it('slice1d: alpha = 0 is the loss at the weights, one evaluation per point, weights restored', function()
    local model, loss_fn, _, counter = mlp()
    local w0 = model:flat_parameters():clone()
    local base = loss_fn()
    counter.calls = 0
    local s = L.slice1d(model, loss_fn, { points = 11, range = { -0.5, 0.5 } })
    assert.are.equal(11, counter.calls)
    assert.are.equal(11, #s.alpha); assert.are.equal(11, #s.loss)
    assert.are.equal(-0.5, s.alpha[1]); assert.are.equal(0.5, s.alpha[11])
    assert.are.equal(0, s.alpha[6])
    assert.are.equal(base, s.loss[6])                     -- exactly: w + 0 d = w
    assert.are_not.equal(s.loss[1], s.loss[11])
    H.same_bits(model:flat_parameters(), w0, 'weights after slice1d')
    assert.are.equal(base, loss_fn())
    assert.are.equal(model:flat_parameters():numel(), s.direction:numel())
  end)

  it('restores the weights bit for bit after an error in loss_fn, and names the function', function()
    local model, loss_fn = mlp()
    local w0 = model:flat_parameters():clone()
    local n = 0
    local err = H.assert_error(function()
      L.slice2d(model, function() n = n + 1; if n == 5 then error('data ran out') end; return loss_fn() end,
                { points = 3 })
    end, 'landscape.slice2d: ', 'data ran out')
    assert.truthy(err:find('landscape_spec.lua', 1, true), err)   -- at the caller's line
    H.same_bits(model:flat_parameters(), w0, 'weights after the error')
  end)

  it('is seeded: the same seed, the same slice; the global generator left alone', function()
    local model, loss_fn = mlp()
    local before = ms.rng_state()
    local a = L.slice1d(model, loss_fn, { seed = 7, points = 5 })
    local b = L.slice1d(model, loss_fn, { seed = 7, points = 5 })
    local c = L.slice1d(model, loss_fn, { seed = 8, points = 5 })
    assert.are.same(a.loss, b.loss)
    assert.are_not.same(a.loss, c.loss)
    assert.are.same(before, ms.rng_state())
    -- slice2d's first direction is slice1d's for the same seed, its second another stream
    local s2 = L.slice2d(model, loss_fn, { seed = 7, points = 3 })
    H.same_bits(s2.directions[1], a.direction, 'd1')
    local d = L.directions(model, { seed = 7, count = 2 })
    H.same_bits(d[2], s2.directions[2], 'd2')
    assert.is_true(d[1]:sub(d[2]):norm() > 0.1)
  end)

  it('normalises each filter to the weights\' filter norm and zeroes biases (Li et al.)', function()
    local model = mlp()
    local d = L.directions(model)[1]
    for _, e in ipairs(model:slices()) do
      local dv = d:narrow(1, e.offset + 1, e.numel)
      local wv = model:flat_parameters():narrow(1, e.offset + 1, e.numel)
      if e.kind == 'bias' then
        assert.are.equal(0, dv:norm(), e.name)
      else
        local rows = e.shape[1]
        local dn, wn = dv:view(rows, -1):norm(2, 2):totable(), wv:view(rows, -1):norm(2, 2):totable()
        for r = 1, rows do
          assert(math.abs(dn[r] - wn[r]) <= 1e-5 * wn[r], ('%s row %d: %g vs %g'):format(e.name, r, dn[r], wn[r]))
        end
      end
    end
    local raw = L.directions(model, { normalize = 'none' })[1]
    local bias = model:slices()[2]
    assert.is_true(raw:narrow(1, bias.offset + 1, bias.numel):norm() > 0)   -- as drawn
  end)

  it('gradient direction: uphill, so the loss falls for small negative alpha', function()
    local model, loss_fn, closure, counter = mlp('float64')
    counter.calls = 0
    local w0 = model:flat_parameters():clone()
    local s = L.slice1d(model, loss_fn, { direction = 'gradient', closure = closure, normalize = 'none',
                                          range = { -0.02, 0.02 }, points = 5 })
    assert.are.equal(5, counter.calls)                   -- loss_fn per point; the closure once
    assert.is_true(s.loss[1] < s.loss[2] and s.loss[2] < s.loss[3], table.concat(s.loss, ' '))
    assert.is_true(s.loss[3] < s.loss[4] and s.loss[4] < s.loss[5], table.concat(s.loss, ' '))
    H.same_bits(model:flat_parameters(), w0, 'weights')
    -- d = g / ||g||: the gradient the closure left, of unit norm
    local g = model:flat_gradients()
    H.assert_close(s.direction, g:div(g:norm()), 1e-12)
    assert.is_true(math.abs(s.direction:norm() - 1) < 1e-12)
    -- filter-normalised, still a descent direction for alpha < 0
    local f = L.slice1d(model, loss_fn, { direction = 'gradient', closure = closure, range = { -0.01, 0.01 }, points = 3 })
    assert.is_true(f.loss[1] < f.loss[2] and f.loss[2] < f.loss[3])
  end)

  it('gives a quadratic\'s exact parabola: L(w + a d) = L(w) + a w.d + a^2 |d|^2 / 2', function()
    local w = ms.tensor({ 1, -2, 0.5, 3 }, { dtype = 'float64' })
    local set = ms.params { w }
    local function loss() local s = w:mul(w):sum(); return 0.5 * (type(s) == "number" and s or s:item()) end
    local d = ms.tensor({ 0.5, 1, -1, 2 }, { dtype = 'float64' })
    local w0 = loss()
    local s = L.slice1d(set, loss, { direction = d, normalize = 'none', range = { -2, 2 }, points = 9 })
    local wd, dd = 0.5 - 2 - 0.5 + 6, 0.25 + 1 + 1 + 4
    for i, a in ipairs(s.alpha) do
      local want = w0 + a * wd + 0.5 * a * a * dd
      assert(math.abs(s.loss[i] - want) < 1e-12, ('alpha %g: %.17g vs %.17g'):format(a, s.loss[i], want))
    end
    assert.are.same({ 1, -2, 0.5, 3 }, w:totable())
    assert.are.same({ 0.5, 1, -1, 2 }, d:totable())      -- the given direction is not changed
    -- 2-D: a paraboloid; loss[i][j] at (x[i], y[j]); ranges and point counts per axis
    local e = ms.tensor({ 1, 0, 0, 0 }, { dtype = 'float64' })
    local s2 = L.slice2d(set, loss, { directions = { d, e }, normalize = 'none', range = { { -1, 1 }, { 0, 2 } },
                                      points = { 5, 3 } })
    assert.are.equal(5, #s2.x); assert.are.equal(3, #s2.y); assert.are.equal(5, #s2.loss); assert.are.equal(3, #s2.loss[1])
    assert.are.same({ 0, 1, 2 }, s2.y)
    for i, a in ipairs(s2.x) do
      for j, b in ipairs(s2.y) do
        local p = { 1 + 0.5 * a + b, -2 + a, 0.5 - a, 3 + 2 * a }
        local want = 0.5 * (p[1] ^ 2 + p[2] ^ 2 + p[3] ^ 2 + p[4] ^ 2)
        assert(math.abs(s2.loss[i][j] - want) < 1e-12, ('(%g, %g): %.17g vs %.17g'):format(a, b, s2.loss[i][j], want))
      end
    end
    -- filter normalisation of a 1-D 'weight': one filter scaled to |w|
    local f = L.directions(set, { direction = d })[1]
    assert.is_true(math.abs(f:norm() - w:norm()) < 1e-9 * w:norm())
  end)

  it('alpha = 0 exactly wherever the grid crosses 0, and the loss there is L(w) exactly', function()
    local model, loss_fn = mlp('float64')
    local base = loss_fn()
    -- -0.1 + 0.3 * 1 / 3 is 1.4e-17 in floating point: the grid point must be 0 itself
    local s = L.slice1d(model, loss_fn, { range = { -0.1, 0.2 }, points = 4 })
    assert.are.equal(0, s.alpha[2])
    assert.are.equal(base, s.loss[2])
    local s2 = L.slice2d(model, loss_fn, { range = { { -0.1, 0.2 }, { -0.3, 0.7 } }, points = { 4, 11 } })
    assert.are.equal(0, s2.x[2]); assert.are.equal(0, s2.y[4])
    assert.are.equal(base, s2.loss[2][4])
    -- no grid point near 0: nothing snapped
    local s3 = L.slice1d(model, loss_fn, { range = { 1e-3, 2e-3 }, points = 3 })
    assert.are.same({ 1e-3, 1.5e-3, 2e-3 }, s3.alpha)
  end)

  it('alpha = 0 leaves every weight as it is, -0 and a direction of nan or inf included', function()
    local w = ms.tensor({ -0.0, 1, -2, 0.5 }, { dtype = 'float64' })
    local set = ms.params { w }
    local function bits() local t = {}; for i = 1, 4 do t[i] = tostring(w:get(i)) end; return table.concat(t, ' ') end
    local seen = {}
    local function loss_fn() seen[#seen + 1] = bits(); return w:get(2) end
    local d = ms.tensor({ 1, 0 / 0, math.huge, 1 }, { dtype = 'float64' })
    local s = L.slice1d(set, loss_fn, { direction = d, normalize = 'none', points = 3 })
    assert.are.equal(0, s.alpha[2])
    assert.are.equal('-0 1 -2 0.5', seen[2])
    assert.are.equal(1, s.loss[2])
    assert.are.equal('-0 1 -2 0.5', bits())
    local s2 = L.slice2d(set, loss_fn, { directions = { d, 'random' }, normalize = 'none', points = 3 })
    assert.are.equal(1, s2.loss[2][2])
  end)

  it('filter-normalises a Conv2d weight per output channel (Li et al.: d_ij |theta_ij| / |d_ij|)', function()
    ms.manual_seed(5)
    local model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(16, 3))
    model:double()
    local raw = L.directions(model, { normalize = 'none', seed = 7 })[1]
    local d = L.directions(model, { seed = 7 })[1]
    local w = model:flat_parameters()
    for _, e in ipairs(model:arena():slices()) do
      local dv, rv, wv = d:narrow(1, e.offset + 1, e.numel), raw:narrow(1, e.offset + 1, e.numel),
                         w:narrow(1, e.offset + 1, e.numel)
      if e.kind ~= 'weight' then
        assert.are.equal(0, dv:norm(), e.name)                 -- biases and BatchNorm: d = 0
      else
        local rows, cols = e.shape[1], e.numel / e.shape[1]
        for j = 1, rows do
          local dj, rj, wj = dv:narrow(1, (j - 1) * cols + 1, cols), rv:narrow(1, (j - 1) * cols + 1, cols),
                             wv:narrow(1, (j - 1) * cols + 1, cols)
          local want = rj:clone():mul(wj:norm() / rj:norm())   -- the paper's formula
          H.assert_close(dj, want, 1e-9, ('%s filter %d'):format(e.name, j))
        end
      end
    end
  end)

  it('refuses bad arguments, naming the function, the field and what it expects', function()
    local model, loss_fn = mlp()
    H.assert_error(function() L.slice1d({}, loss_fn) end, 'landscape.slice1d: model is a table', 'nn module')
    H.assert_error(function() L.slice1d(model, 3) end, 'landscape.slice1d: loss_fn is 3')
    H.assert_error(function() L.slice1d(model, loss_fn, { direction = 'up' }) end,
                   'landscape.slice1d: direction is "up"', '"random", "gradient" or a tensor')
    H.assert_error(function() L.slice1d(model, loss_fn, { direction = ms.zeros(3) }) end,
                   'landscape.slice1d: direction is a float32 tensor [3]', 'elements')
    H.assert_error(function() L.slice1d(model, loss_fn, { normalize = 'layer' }) end,
                   'landscape.slice1d: normalize is "layer"', '"filter"')
    H.assert_error(function() L.slice1d(model, loss_fn, { range = { 1, -1 } }) end,
                   'landscape.slice1d: range is {1, -1}, expected lo < hi')
    H.assert_error(function() L.slice1d(model, loss_fn, { points = 1 }) end, 'landscape.slice1d: points is 1')
    H.assert_error(function() L.slice1d(model, loss_fn, { seed = -1 }) end, 'landscape.slice1d: seed is -1')
    H.assert_error(function() L.slice1d(model, loss_fn, { step = 1 }) end, 'unknown option "step"')
    H.assert_error(function() L.slice1d(model, function() return 'x' end) end,
                   'landscape.slice1d: loss_fn returned "x", expected a number')
    H.assert_error(function() L.slice1d(model, loss_fn, { direction = 'gradient' }) end,
                   'landscape.slice1d: the closure left a gradient of norm 0', 'backward')
    H.assert_error(function() L.slice2d(model, loss_fn, { directions = { 'random' } }) end,
                   'landscape.slice2d: directions is', 'list of two')
    H.assert_error(function() L.slice2d(model, loss_fn, { points = { 3, 0 } }) end, 'landscape.slice2d: points[2] is 0')
    H.assert_error(function() L.directions(model, { count = 0 }) end, 'landscape.directions: count is 0')
    H.assert_error(function() return L.slice3d end, 'ms.landscape', 'slice3d')
  end)
end)

describe('scripts/landscape.lua --quick', function()
  it('writes the slices and the trajectories as PNG and SVG (or says gnuplot is missing)', function()
    local dir = os.tmpname(); os.remove(dir)
    local out = H.sh_rc('bin/moonstep scripts/landscape.lua --quick --out ' .. H.quote(dir .. '/fig'))
    assert.truthy(out:find('rc=0', 1, true), out)
    assert.truthy(out:find('Rosenbrock after 40 steps: SGD-momentum', 1, true), out)
    assert.truthy(out:find('slices: 13 + 13 + 49 loss evaluations', 1, true), out)
    for _, name in ipairs { 'slice1d', 'slice2d', 'rosenbrock', 'rastrigin', 'beale' } do
      assert.truthy(H.read_file(dir .. '/fig/' .. name .. '.gp'):find('plot ', 1, true), name)
      if ms.plot.available() then
        assert.are.equal('\137PNG', H.read_file(dir .. '/fig/' .. name .. '.png'):sub(1, 4), name)
        assert.truthy(H.read_file(dir .. '/fig/' .. name .. '.svg'):find('<svg', 1, true), name)
      end
    end
    H.sh('rm -rf ' .. H.quote(dir))
  end)
end)

describe('landscape slices whose loss_fn moves or frees the weights (fuzzer finding)', function()
  it('is an error saying the weights could not be restored, never a silent return', function()
    local ms = require 'moonstep'
    local H = require 'helper'
    local nn = ms.nn
    local m = nn.Sequential(nn.Linear(3, 2))
    H.assert_error(function() ms.landscape.slice1d(m, function() m:to('float64') return 1 end) end,
                   'landscape.slice1d', 'could not be restored')
    local m2 = nn.Sequential(nn.Linear(3, 2))
    H.assert_error(function() ms.landscape.slice2d(m2, function() m2:flat_parameters():free() return 1 end,
                                                   { points = 2 }) end,
                   'landscape.slice2d', 'could not be restored')
  end)
end)
