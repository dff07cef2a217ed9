-- moonstep.nn.batched: the losses of m perturbed models in one batched pass equal m
-- separate forwards at the perturbed parameters; supports(); per-example losses; the
-- strided (grouped, tiled) and gathering paths; argument errors.
local ms = require 'moonstep'
local H = require 'helper'
local nn = ms.nn
local batched = require 'moonstep.nn.batched'

local TOL = { float64 = 1e-12, float32 = 1e-5 }

-- The reference: criterion(model(x), y) with the arena set to w + s U[row], one model at
-- a time (the perturbation fl(w + fl(s u)) in the arena's dtype); the arena restored.
local function separate(model, crit, x, y, U, scales, none)
  local flat = model:flat_parameters()
  local w0 = flat:clone()
  local out, pe = {}, {}
  for t, e in ipairs(scales) do
    if e.row > 0 then flat:copy_(w0 + U:select(1, e.row) * e.scale) end
    local o = model:forward(x)
    out[t] = crit:forward(o, y)
    if none then pe[t] = none:forward(o, y) end
    flat:copy_(w0)
  end
  return out, pe
end

local function assert_losses(got, want, tol, what)
  assert.equal(#want, #got, what .. ': number of losses')
  for t = 1, #want do
    local ok = math.abs(got[t] - want[t]) <= tol * math.max(1, math.abs(want[t]))
    assert(ok, ('%s: loss %d is %.17g, expected %.17g (tol %g)'):format(what, t, got[t], want[t], tol))
  end
end

-- Integer class targets 1..C, deterministic.
local function classes(n, c, seed)
  local v = {}
  for i = 1, n do v[i] = (i * 7 + seed) % c + 1 end
  return ms.tensor(v, { dtype = 'int64' })
end

-- +h and -h per row (grouped), the nominal first.
local function central(n, h)
  local s = { { row = 0 } }
  for i = 1, n do
    s[#s + 1] = { row = i, scale = h }
    s[#s + 1] = { row = i, scale = -h }
  end
  return s
end

local ACTS = {
  function() return nn.ReLU() end, function() return nn.Tanh() end,
  function() return nn.Sigmoid() end, function() return nn.LeakyReLU(0.2) end,
  function() return nn.GELU() end, function() return nn.GELU('tanh') end,
}

-- A random MLP: `layers` Linear layers (bias per the list), activations between, an
-- optional Flatten first.
local function mlp(sizes, bias, act_seed, flatten)
  local mods = {}
  if flatten then mods[#mods + 1] = nn.Flatten() end
  for i = 1, #sizes - 1 do
    mods[#mods + 1] = nn.Linear(sizes[i], sizes[i + 1], bias[i])
    if i < #sizes - 1 then mods[#mods + 1] = ACTS[(act_seed + i) % #ACTS + 1]() end
  end
  return nn.Sequential(unpack(mods))
end

describe('nn.batched.supports', function()
  it('accepts Sequentials of Linear, activations, Flatten, Dropout (eval), Softmax, nested', function()
    local m = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Dropout(0.5),
                            nn.Sequential(nn.Linear(3, 3, false), nn.GELU()), nn.Linear(3, 2),
                            nn.LogSoftmax())
    m:evaluate()
    assert.is_true((batched.supports(m)))
    assert.is_true((batched.supports(m, nn.NLLLoss())))
    m:train()
    local ok, why = batched.supports(m)
    assert.is_false(ok)
    assert.truthy(why:find('module 4 (Dropout', 1, true), why)
    assert.is_true((batched.supports(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0)))))
  end)

  it('refuses and names the first unsupported module', function()
    local ok, why = batched.supports(nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU(), nn.LayerNorm(4)),
                                                   nn.Conv2d(1, 1, 1)))
    assert.is_false(ok)
    assert.truthy(why:find('module 2.2 (LayerNorm) is not supported', 1, true), why)
    ok, why = batched.supports(nn.Linear(2, 2))
    assert.is_false(ok)
    assert.truthy(why:find('expected an nn.Sequential', 1, true), why)
    local outer = nn.Sequential(nn.Sequential(nn.Linear(2, 2)))
    ok, why = batched.supports(outer.modules[1])
    assert.is_false(ok)
    assert.truthy(why:find('part of a larger model', 1, true), why)
    ok, why = batched.supports(nn.Sequential(nn.ReLU()))
    assert.is_false(ok)
    assert.truthy(why:find('no Linear layer', 1, true), why)
    ok, why = batched.supports(nn.Sequential(nn.Linear(2, 2)), nn.CrossEntropyLoss('none'))
    assert.is_false(ok)
    assert.truthy(why:find("reduction \"none\", expected 'mean' or 'sum'", 1, true), why)
  end)
end)

describe('nn.batched.evaluate', function()
  it('equals m separate forwards for random MLPs (float64 and float32, CE and MSE)', function()
    local case = 0
    for _, dt in ipairs { 'float64', 'float32' } do
      for nl = 1, 3 do
        for _, bias in ipairs { true, false } do
          for _, kind in ipairs { 'ce', 'mse' } do
            case = case + 1
            ms.manual_seed(100 + case)
            local flatten = nl ~= 2
            local sizes = { flatten and 2 * 5 * 5 or 9 }
            for i = 2, nl do sizes[i] = 4 + i end
            sizes[nl + 1] = kind == 'ce' and 4 or 3
            local model = mlp(sizes, { bias, not bias, bias }, case, flatten):to(dt)
            local B = 6
            local x = flatten and ms.randn(B, 2, 5, 5):to(dt) or ms.randn(B, sizes[1]):to(dt)
            local crit, y = nn.CrossEntropyLoss(), classes(B, sizes[nl + 1], case)
            if kind == 'mse' then crit, y = nn.MSELoss(), ms.randn(B, sizes[nl + 1]):to(dt) end
            local U = ms.randn(3, model:flat_parameters():numel()):to(dt)
            for _, sc in ipairs { central(3, 0.05), { { row = 2, scale = 0.3 }, { row = 0 }, { row = 1, scale = -0.2 },
                                                       { row = 2, scale = 0.1 } } } do
              local got = batched.evaluate(model, crit, x, y, U, sc)
              local want = separate(model, crit, x, y, U, sc)
              assert_losses(got, want, TOL[dt], ('case %d (%s, %d layers, %s)'):format(case, dt, nl, kind))
              assert.are_not.equal(got[2], got[3])        -- the perturbations matter
            end
          end
        end
      end
    end
  end)

  it('takes the strided path for grouped and tiled orders, gathers otherwise: same losses', function()
    ms.manual_seed(3)
    local model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 4)):double()
    local crit, x, y = nn.CrossEntropyLoss(), ms.randn(7, 5):double(), classes(7, 4, 1)
    local U = ms.randn(5, model:flat_parameters():numel()):double()
    local tiled = { { row = 0 }, { row = 0 } }
    for _, s in ipairs { 0.1, -0.1, 0.2 } do
      for i = 2, 4 do tiled[#tiled + 1] = { row = i, scale = s } end
    end
    local cases = {
      grouped = central(5, 0.1),
      tiled = tiled,
      gather = { { row = 4, scale = 0.1 }, { row = 0 }, { row = 2, scale = 0.3 }, { row = 4, scale = -0.1 } },
      nominal = { { row = 0 }, { row = 0, scale = 0.5 } },
    }
    for path, sc in pairs(cases) do
      assert.equal(path, batched._path(sc))
      assert_losses(batched.evaluate(model, crit, x, y, U, sc), separate(model, crit, x, y, U, sc), 1e-12, path)
    end
  end)

  it('rows used with +h and -h give symmetric perturbations; the nominal alone needs no U', function()
    ms.manual_seed(4)
    local model = nn.Sequential(nn.Linear(3, 1, false))          -- a linear model: MSE is quadratic in w
    local crit, x, y = nn.MSELoss(), ms.randn(5, 3):double(), ms.randn(5, 1):double()
    model:double()
    local U = ms.randn(2, 3):double()
    local l = batched.evaluate(model, crit, x, y, U, central(2, 0.01))
    local nominal = crit:forward(model:forward(x), y)
    assert_losses({ l[1] }, { nominal }, 1e-12, 'nominal')
    -- l(+h) + l(-h) - 2 l(0) = 2 h^2 |X u|^2 / N (exact for a quadratic)
    local xu = ms.matmul(x, U:select(1, 1):view(3, 1))
    local curv = 2 * 0.01 ^ 2 * xu:square():sum() / 5
    assert.is_true(math.abs(l[2] + l[3] - 2 * l[1] - curv) <= 1e-12)
    local n1 = batched.evaluate(model, crit, x, y, nil, { { row = 0 }, { row = 0 } })
    assert_losses(n1, { nominal, nominal }, 1e-12, 'nominal only')
    assert_losses(batched.evaluate(model, crit, x, y, U, { { row = 0 } }), { nominal }, 1e-12, 'nominal with U')
  end)

  it('returns the per-example losses [m, B] (reduction none of each model)', function()
    ms.manual_seed(5)
    local model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)):double()
    local x = ms.randn(6, 4):double()
    local U = ms.randn(2, model:flat_parameters():numel()):double()
    local sc = { { row = 0 }, { row = 1, scale = 0.2 }, { row = 2, scale = -0.1 } }
    -- CrossEntropy: per example as reduction 'none'
    local y = classes(6, 3, 2)
    local l, pe = batched.evaluate(model, nn.CrossEntropyLoss(), x, y, U, sc, { per_example = true })
    local want, wpe = separate(model, nn.CrossEntropyLoss(), x, y, U, sc, nn.CrossEntropyLoss('none'))
    assert_losses(l, want, 1e-12, 'ce')
    assert.same({ 3, 6 }, pe:shape())
    for t = 1, 3 do H.assert_close(pe:select(1, t), wpe[t], 1e-12, 'ce per example ' .. t) end
    -- MSE: the mean of each example's elements, their mean the loss
    local yt = ms.randn(6, 3):double()
    l, pe = batched.evaluate(model, nn.MSELoss(), x, yt, U, sc, { per_example = true })
    want, wpe = separate(model, nn.MSELoss(), x, yt, U, sc, nn.MSELoss('none'))
    assert_losses(l, want, 1e-12, 'mse')
    for t = 1, 3 do
      H.assert_close(pe:select(1, t), wpe[t]:mean(2), 1e-12, 'mse per example ' .. t)
      assert.is_true(math.abs(pe:select(1, t):mean() - l[t]) <= 1e-12)
    end
    -- MSE 'sum': each example's elements summed, their sum the loss
    local ls, ps = batched.evaluate(model, nn.MSELoss('sum'), x, yt, U, sc, { per_example = true })
    for t = 1, 3 do
      H.assert_close(ps:select(1, t), wpe[t]:sum(2), 1e-12, 'mse sum per example ' .. t)
      assert.is_true(math.abs(ps:select(1, t):sum() - ls[t]) <= 1e-12 * math.abs(ls[t]))
    end
    -- nominal only, m copies
    local _, pn = batched.evaluate(model, nn.MSELoss(), x, yt, nil, { { row = 0 }, { row = 0 } }, { per_example = true })
    assert.same({ 2, 6 }, pn:shape())
    H.assert_close(pn:select(1, 2), pe:select(1, 1), 1e-12, 'nominal per example')
  end)

  it('handles sum reductions, NLL after LogSoftmax, weights and ignore_index, BCE, Softmax', function()
    ms.manual_seed(6)
    local x = ms.randn(8, 4):double()
    local y = classes(8, 3, 5)
    local sc = central(2, 0.1)
    local base = function(tail)
      local m = nn.Sequential(nn.Linear(4, 5), nn.Sigmoid(), nn.Linear(5, 3), tail):double()
      return m, ms.randn(2, m:flat_parameters():numel()):double()
    end
    local checks = {
      { nn.Dropout(0), nn.CrossEntropyLoss('sum'), y },
      { nn.LogSoftmax(), nn.NLLLoss(), y },
      { nn.LogSoftmax(2), nn.NLLLoss { reduction = 'sum', ignore_index = 2 }, y },
      { nn.Dropout(0), nn.CrossEntropyLoss { weight = ms.tensor({ 0.5, 2, 1 }):double(), ignore_index = 3,
                                             label_smoothing = 0.1 }, y },
      { nn.Softmax(), nn.MSELoss('sum'), ms.rand(8, 3):double() },
      { nn.Dropout(0), nn.BCEWithLogitsLoss { pos_weight = ms.tensor({ 1, 2, 3 }):double() }, ms.rand(8, 3):double() },
    }
    for i, c in ipairs(checks) do
      local model, U = base(c[1])
      model:evaluate()
      assert_losses(batched.evaluate(model, c[2], x, c[3], U, sc), separate(model, c[2], x, c[3], U, sc), 1e-12,
                    'check ' .. i)
    end
  end)

  it('follows inputs of more dims: Linear over [B, T, in], Softmax over a middle dim, Flatten after a Linear', function()
    ms.manual_seed(8)
    local x = ms.randn(4, 5, 6):double()
    local sc = { { row = 0 }, { row = 2, scale = 0.2 }, { row = 1, scale = -0.3 } }
    local a = nn.Sequential(nn.Linear(6, 3), nn.Tanh(), nn.Softmax(2), nn.Flatten(), nn.Linear(15, 2)):double()
    local b = nn.Sequential(nn.Linear(6, 3), nn.Flatten(), nn.LogSoftmax()):double()
    local c = nn.Sequential(nn.Linear(6, 3), nn.GELU(), nn.Linear(3, 2)):double()     -- output [B, 5, 2]
    for i, case in ipairs { { a, nn.CrossEntropyLoss(), classes(4, 2, 1) }, { b, nn.NLLLoss(), classes(4, 15, 2) },
                            { c, nn.MSELoss(), ms.randn(4, 5, 2):double() } } do
      local model, crit, y = unpack(case)
      local U = ms.randn(2, model:flat_parameters():numel()):double()
      assert_losses(batched.evaluate(model, crit, x, y, U, sc), separate(model, crit, x, y, U, sc), 1e-12, 'model ' .. i)
    end
    local U = ms.randn(2, 21):double()
    H.assert_error(function() batched.evaluate(nn.Sequential(nn.Linear(6, 3), nn.Softmax(4)):double(), nn.MSELoss(),
                                               x, ms.randn(4, 5, 3):double(), U, sc) end,
                   'batched.evaluate: module 2 (Softmax): dim 4 is out of range for the input of shape [4,5,3]')
    H.assert_error(function() batched.evaluate(nn.Sequential(nn.Linear(6, 3), nn.Flatten(4)):double(), nn.MSELoss(),
                                               x, ms.randn(4, 5, 3):double(), U, sc) end,
                   'batched.evaluate: module 2 (Flatten): dims 4..-1 do not fit the input of shape [4,5,3]')
    H.assert_error(function() batched.evaluate(nn.Sequential(nn.Linear(6, 3)):double(), nn.CrossEntropyLoss(),
                                               x, classes(4, 3, 0), U, sc) end,
                   'batched.evaluate: the model\'s output is [4,5,3] per model, expected [B, C] scores')
  end)

  it('leaves the parameters and the criterion untouched and reuses buffers across shapes', function()
    ms.manual_seed(7)
    local model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
    local crit = nn.CrossEntropyLoss()
    local U = ms.randn(3, model:flat_parameters():numel())
    local w0 = model:flat_parameters():clone()
    for _, B in ipairs { 5, 9, 5 } do
      for _, sc in ipairs { central(3, 0.05), central(2, 0.05) } do
        local x, y = ms.randn(B, 4), classes(B, 3, B)
        assert_losses(batched.evaluate(model, crit, x, y, U, sc), separate(model, crit, x, y, U, sc), 1e-5, 'B ' .. B)
      end
    end
    H.same_bits(model:flat_parameters(), w0, 'parameters')
    batched.release(model)
    local x1, y1 = ms.randn(5, 4), classes(5, 3, 1)
    assert_losses(batched.evaluate(model, crit, x1, y1, U, central(3, 0.05)),
                  separate(model, crit, x1, y1, U, central(3, 0.05)), 1e-5, 'after release')
    local x, y = ms.randn(5, 4), classes(5, 3, 0)
    local o = model:forward(x)
    crit:forward(o, y)
    batched.evaluate(model, crit, x, y, U, central(1, 0.1))
    crit:backward(o, y)                  -- still paired with the user's own forward
  end)

  it('raises clear errors naming batched.evaluate and the argument', function()
    local model = nn.Sequential(nn.Linear(3, 2))
    local d = model:flat_parameters():numel()
    local crit, x, y = nn.CrossEntropyLoss(), ms.randn(4, 3), classes(4, 2, 0)
    local U = ms.randn(2, d)
    local sc = { { row = 1, scale = 0.1 } }
    local function E(...)
      local a, n = { ... }, select('#', ...)
      return function() return batched.evaluate(unpack(a, 1, n)) end
    end
    H.assert_error(E(nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3)), crit, x, y, U, sc),
                   'batched.evaluate:', 'module 2 (LayerNorm) is not supported')
    H.assert_error(E(model, nn.Linear(2, 2), x, y, U, sc), 'batched.evaluate: criterion is a Linear, expected one of')
    H.assert_error(E(model, nn.CrossEntropyLoss('none'), x, y, U, sc), 'batched.evaluate:', "reduction \"none\"")
    H.assert_error(E(model, crit, x, y, ms.randn(2, d + 1), sc), 'batched.evaluate: U is a float32 tensor [2,' .. (d + 1) .. ']',
                   'expected [n, ' .. d .. ']')
    H.assert_error(E(model, crit, x, y, ms.randn(d), sc), 'batched.evaluate: U is a float32 tensor [' .. d .. ']')
    H.assert_error(E(model, crit, x, y, U:double(), sc), 'batched.evaluate: U is a float64 tensor', 'expected float32 on cpu')
    H.assert_error(E(model, crit, x, y, nil, sc), 'batched.evaluate: U is nil, expected', '[n, ' .. d .. ']')
    H.assert_error(E(model, crit, x, y, U, {}), 'batched.evaluate: scales is empty')
    H.assert_error(E(model, crit, x, y, U, 'a'), 'batched.evaluate: scales is "a", expected a Lua array')
    H.assert_error(E(model, crit, x, y, U, { 1 }), 'batched.evaluate: scales[1] is 1, expected a table {row = i, scale = s}')
    H.assert_error(E(model, crit, x, y, U, { { row = -1, scale = 1 } }), 'batched.evaluate: scales[1].row is -1, expected an integer >= 0')
    H.assert_error(E(model, crit, x, y, U, { { row = 0 }, { row = 1.5, scale = 1 } }), 'scales[2].row is 1.5')
    H.assert_error(E(model, crit, x, y, U, { { row = 3, scale = 1 } }), 'batched.evaluate: scales[1].row is 3, expected 0..2 (U has 2 rows)')
    H.assert_error(E(model, crit, x, y, U, { { row = 1 } }), 'batched.evaluate: scales[1].scale is nil, expected a finite number')
    H.assert_error(E(model, crit, x, y, U, { { row = 1, scale = 0 / 0 } }), 'scales[1].scale is nan')
    H.assert_error(E(model, crit, x, y, U, { { row = 1, scale = 1, sign = 1 } }), 'scales[1] has the unknown key "sign"')
    H.assert_error(E(model, crit, x, y, U, { { row = 1, scale = 1 }, n = 2 }), 'scales has the key "n"')
    H.assert_error(E(model, crit, x, y, U, sc, { per_sample = true }), 'batched.evaluate: unknown option "per_sample"')
    H.assert_error(E(model, crit, x, y, U, sc, { per_example = 1 }), 'batched.evaluate: per_example is 1, expected true or false')
    H.assert_error(E(model, crit, x:double(), y, U, sc), 'batched.evaluate: x is a float64 tensor [4,3] on cpu, expected float32 on cpu')
    H.assert_error(E(model, crit, ms.randn(3), y, U, sc), 'batched.evaluate: x is a float32 tensor [3], expected a non-empty batch')
    H.assert_error(E(model, crit, ms.empty(0, 3), y, U, sc), 'batched.evaluate: x is a float32 tensor [0,3], expected a non-empty batch')
    H.assert_error(E(model, crit, ms.randn(4, 5), y, U, sc), 'batched.evaluate: the input of module 1 (Linear) has shape [4,5], expected [..., 3]')
    H.assert_error(E(model, crit, x, classes(5, 2, 0), U, sc), 'batched.evaluate: y is a int64 tensor [5], expected int64 class indices [4]')
    H.assert_error(E(model, crit, x, ms.tensor({ 1, 2, 3, 1 }, { dtype = 'int64' }), U, sc),
                   'batched.evaluate: target 3 at position 3 is not a class')
    H.assert_error(E(model, nn.MSELoss(), x, ms.randn(4, 3), U, sc), 'batched.evaluate: y has shape [4,3], expected [4,2]')
    H.assert_error(E(model, crit, x, 'y', U, sc), 'batched.evaluate: y is "y", expected a tensor')
    local train = nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.3))
    H.assert_error(function() batched.evaluate(train, crit, x, y, ms.randn(1, 8), sc) end,
                   'batched.evaluate: module 2 (Dropout, p = 0.3) is in training mode')
  end)
end)

describe('nn.batched on the GPU', function()
  local git = H.gate(it, pending, ms.cuda.is_available(), ms.cuda.why())
  git('matches the CPU (float32)', function()
    ms.manual_seed(9)
    local model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 4))
    local crit, x, y = nn.CrossEntropyLoss(), ms.randn(5, 3, 4), classes(5, 4, 3)
    local U = ms.randn(4, model:flat_parameters():numel())
    local sc = central(4, 0.05)
    local cpu = batched.evaluate(model, crit, x, y, U, sc)
    local gmodel = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 4))
    gmodel:load_state_dict(model:state_dict())
    gmodel:cuda()
    local got, pe = batched.evaluate(gmodel, crit, x:cuda(), y:cuda(), U:cuda(), sc, { per_example = true })
    assert_losses(got, cpu, 1e-5, 'gpu')
    assert.equal('cuda', pe.device)
    local gath = { { row = 3, scale = 0.1 }, { row = 0 }, { row = 1, scale = -0.1 } }
    assert_losses(batched.evaluate(gmodel, crit, x:cuda(), y:cuda(), U:cuda(), gath),
                  batched.evaluate(model, crit, x, y, U, gath), 1e-5, 'gpu gather')
  end)
end)
