-- nn layers and losses: PyTorch parity for every option (tests/fixtures/torch_layers.lua,
-- written by scripts/fixtures/layers.py), the forward/backward protocol, constructor
-- checks and bad input. (Finite-difference gradients of the options: nn_gradcheck_spec.)
local ms = require 'moonstep'
local nn = ms.nn
local H = require 'helper'
local fx = dofile('tests/fixtures/torch_layers.lua')

local function T(v, dtype) return ms.tensor(v, dtype or 'float64') end

-- Copy a fixture case's parameters in, run forward and backward, compare everything
-- PyTorch recorded (in dtype, tolerance tol).
local function check_layer(m, case, dtype, tol)
  m:to(dtype)
  for _, name in ipairs { 'weight', 'bias' } do
    if case[name] then m[name]:copy_(T(case[name], dtype)) end
  end
  m:zero_grad()
  local x = T(case.input, dtype)
  H.assert_close(m:forward(x), case.output, tol, 'output')
  H.assert_close(m:backward(x, T(case.grad_output, dtype)), case.grad_input, tol, 'grad_input')
  for _, name in ipairs { 'weight', 'bias' } do
    if case['grad_' .. name] then H.assert_close(m['grad_' .. name], case['grad_' .. name], tol, 'grad_' .. name) end
  end
  return m
end

local L, LS = fx.layers, fx.losses
local DTYPES = { { 'float64', 1e-10 }, { 'float32', 2e-5 } }

for _, dt in ipairs(DTYPES) do
  local dtype, tol = dt[1], dt[2]
  describe('layer options against PyTorch (' .. dtype .. ')', function()
    it("GELU approximate = 'tanh'", function()
      check_layer(nn.GELU { approximate = 'tanh' }, L.gelu_tanh, dtype, tol)
      check_layer(nn.GELU('tanh'), L.gelu_tanh, dtype, tol)
    end)
    it('Softmax and LogSoftmax over any dim (positive and negative)', function()
      check_layer(nn.Softmax(L.softmax_dim2.dim), L.softmax_dim2, dtype, tol)
      check_layer(nn.LogSoftmax(L.logsoftmax_dim1.dim), L.logsoftmax_dim1, dtype, tol)
      check_layer(nn.Softmax(L.softmax_neg2.dim), L.softmax_neg2, dtype, tol)
      check_layer(nn.LogSoftmax(L.logsoftmax_dim3.dim), L.logsoftmax_dim3, dtype, tol)
    end)
    it('BatchNorm1d track_running_stats = false (training, eps)', function()
      local c = L.bn1d_nostats_train
      local bn = check_layer(nn.BatchNorm1d(3, c.eps, 0.1, true, false), c, dtype, tol)
      assert.is_nil(bn.running_mean)
      assert.same({ 'weight', 'bias' }, (function()
        local names = {}
        for k in pairs(bn:state_dict()) do names[#names + 1] = k end
        table.sort(names, function(a, b) return a > b end)
        return names
      end)())
      -- evaluation uses the batch statistics too: the same output
      bn:evaluate()
      H.assert_close(bn:forward(T(c.input, dtype)), c.output, tol, 'eval output')
    end)
    it('BatchNorm2d affine = false, track_running_stats = false, in evaluation', function()
      local bn = nn.BatchNorm2d(2, { affine = false, track_running_stats = false })
      bn:evaluate()
      check_layer(bn, L.bn2d_nostats_eval, dtype, tol)
    end)
    it('BatchNorm1d eps and momentum (running statistics)', function()
      local c = L.bn1d_momentum
      local bn = check_layer(nn.BatchNorm1d(4, c.eps, c.momentum), c, dtype, tol)
      H.assert_close(bn.running_mean, c.running_mean, tol, 'running_mean')
      H.assert_close(bn.running_var, c.running_var, tol, 'running_var')
    end)
    it('LayerNorm elementwise_affine = false, eps', function()
      local c = L.layernorm_noaffine
      check_layer(nn.LayerNorm({ 3, 4 }, c.eps, false), c, dtype, tol)
    end)
    it('Embedding padding_idx (1-based, and negative)', function()
      for _, c in ipairs { L.embedding_padding, L.embedding_padding_neg } do
        local e = nn.Embedding(c.num, c.dim, c.padding_idx):to(dtype)
        local row = c.padding_idx > 0 and c.padding_idx or c.num + c.padding_idx + 1
        assert.equal(0, e.weight:narrow(1, row, 1):abs():sum())   -- starts as zeros, as PyTorch
        e.weight:copy_(T(c.weight, dtype))
        e:zero_grad()
        local idx = ms.tensor(c.input, 'int64')
        H.assert_close(e:forward(idx), c.output, tol, 'output')
        assert.is_nil(e:backward(idx, T(c.grad_output, dtype)))
        H.assert_close(e.grad_weight, c.grad_weight, tol, 'grad_weight')
        assert.equal(0, e.grad_weight:narrow(1, row, 1):abs():sum())
      end
    end)
  end)

  describe('loss options against PyTorch (' .. dtype .. ')', function()
    local classes = { ce = nn.CrossEntropyLoss, nll = nn.NLLLoss, bce = nn.BCEWithLogitsLoss }
    local names = {}
    for name in pairs(LS) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do
      it(name, function()
        local c = LS[name]
        local opts = {}
        for k, v in pairs(c.options) do opts[k] = type(v) == 'table' and T(v, dtype) or v end
        local crit = classes[name:match('^(%a+)_')](opts)
        local x = T(c.input, dtype)
        local t = name:match('^bce') and T(c.target, dtype) or ms.tensor(c.target, 'int64')
        local loss = crit:forward(x, t)
        if type(c.loss) == 'number' then
          assert.is_number(loss)
          assert(math.abs(loss - c.loss) <= tol * math.max(1, math.abs(c.loss)),
                 ('loss %.12g, expected %.12g'):format(loss, c.loss))
        else
          H.assert_close(loss, c.loss, tol, 'losses')
        end
        local go = type(c.grad_output) == 'number' and c.grad_output or T(c.grad_output, dtype)
        H.assert_close(crit:backward(x, t, go), c.grad_input, tol, 'grad_input')
      end)
    end
  end)
end

describe('the forward/backward protocol', function()
  local function layers()
    return {
      nn.Linear(3, 2), nn.ReLU(), nn.LeakyReLU(0.1), nn.Tanh(), nn.Sigmoid(), nn.GELU(),
      nn.GELU('tanh'), nn.Softmax(2), nn.LogSoftmax(), nn.Dropout(0.5), nn.BatchNorm1d(3),
      nn.LayerNorm(3), nn.Flatten(), nn.Sequential(nn.Linear(3, 3), nn.ReLU()),
    }
  end

  it('backward before any forward is an error naming the layer', function()
    for _, m in ipairs(layers()) do
      H.assert_error(function() m:backward(ms.ones(4, 3), ms.ones(4, 3)) end, m.__name .. '.backward', 'forward')
    end
    local e = nn.Embedding(4, 2)
    H.assert_error(function() e:backward(ms.tensor({ 1 }, 'int64'), ms.ones(1, 2)) end, 'Embedding.backward', 'forward')
  end)

  it('backward with another input than the last forward is an error, never a re-run', function()
    for _, m in ipairs(layers()) do
      m:forward(ms.randn(4, 3))
      H.assert_error(function() m:backward(ms.randn(4, 3), ms.ones(4, 3)) end, m.__name .. '.backward',
                     'not the one of the last forward')
    end
  end)

  it('Sequential.backward does not re-run forward (statistics and masks stay)', function()
    ms.manual_seed(1)
    local model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Dropout(0.5))
    local x = ms.randn(8, 3)
    local y = model:forward(x)
    local rm, mask = model.modules[2].running_mean:clone(), model.modules[3].mask:clone()
    model:backward(x, ms.ones(y:shape()))
    H.assert_close(model.modules[2].running_mean, rm, 0, 'running_mean')
    H.assert_close(model.modules[3].mask, mask, 0, 'mask')
    H.assert_error(function() model:backward(x:clone(), ms.ones(y:shape())) end, 'Sequential.backward',
                   'not the one of the last forward')
    H.assert_close(model.modules[2].running_mean, rm, 0, 'running_mean after the refused backward')
  end)

  it('a forward that fails leaves nothing for backward', function()
    local l = nn.Linear(3, 2)
    local x = ms.ones(2, 3)
    l:forward(x)
    local bad = ms.ones(2, 4)
    pcall(l.forward, l, bad)
    H.assert_error(function() l:backward(bad, ms.ones(2, 2)) end, 'Linear.backward', 'call forward')
  end)

  it('backward checks gradOutput (type, shape, dtype)', function()
    local l = nn.Linear(3, 2)
    local x = ms.ones(2, 3)
    l:forward(x)
    H.assert_error(function() l:backward(x, 5) end, 'Linear.backward', 'gradOutput', 'expected a tensor')
    H.assert_error(function() l:backward(x, ms.ones(2, 3)) end, 'Linear.backward', 'gradOutput', '[2,3]', '[2,2]')
    H.assert_error(function() l:backward(x, ms.ones(2, 2, 'float64')) end, 'Linear.backward', 'float64', 'float32')
  end)

  it('losses: backward needs the forward of the same (input, target)', function()
    local x, t = ms.randn(3, 4), ms.tensor({ 1, 2, 3 }, 'int64')
    for _, crit in ipairs { nn.CrossEntropyLoss(), nn.NLLLoss() } do
      H.assert_error(function() crit:backward(x, t) end, crit.__name .. '.backward', 'call forward')
      crit:forward(x, t)
      H.assert_error(function() crit:backward(x, t:clone()) end, crit.__name .. '.backward', 'not the pair')
      crit:backward(x, t)
    end
    local y = ms.rand(3, 4)
    for _, crit in ipairs { nn.MSELoss(), nn.BCEWithLogitsLoss() } do
      H.assert_error(function() crit:backward(x, y) end, crit.__name .. '.backward', 'call forward')
      crit:forward(x, y)
      H.assert_error(function() crit:backward(x:clone(), y) end, crit.__name .. '.backward', 'not the pair')
      H.assert_error(function() crit:backward(x, y, 'a') end, crit.__name .. '.backward', 'gradOutput')
      crit:backward(x, y)
    end
  end)
end)

describe('constructors', function()
  it('take positional arguments as PyTorch/Torch7 users type them', function()
    assert.is_nil(nn.Linear(3, 2, false).bias)
    assert.is_nil(nn.Linear(3, 2, { bias = false }).bias)
    local bn = nn.BatchNorm2d(4, 1e-3, 0.2, false, true)
    assert.same({ 1e-3, 0.2 }, { bn.eps, bn.momentum })
    assert.is_nil(bn.weight)
    assert.truthy(bn.running_mean)
    local ln = nn.LayerNorm({ 2, 3 }, 1e-4, false)
    assert.same({ 1e-4 }, { ln.eps })
    assert.is_nil(ln.weight)
    assert.equal(3, nn.Embedding(5, 2, 3).padding_idx)
    assert.equal(5, nn.Embedding(5, 2, -1).padding_idx)
    assert.equal(0.2, nn.Dropout(0.2).p)
    assert.equal(0.3, nn.LeakyReLU(0.3).slope)
    assert.equal(-1, nn.Softmax().dim)
  end)

  it('refuse missing, wrong and out-of-range values with a clear error', function()
    H.assert_error(function() nn.Linear(784) end, 'Linear', 'out_features')
    H.assert_error(function() nn.Linear(0, 3) end, 'Linear', 'in_features', '0')
    H.assert_error(function() nn.Linear(3, 2.5) end, 'Linear', 'out_features', '2.5')
    H.assert_error(function() nn.Linear(3, 2, 'yes') end, 'Linear', 'bias')
    H.assert_error(function() nn.Linear(3, 2, true, 4) end, 'Linear', '4 arguments')
    H.assert_error(function() nn.BatchNorm1d(0) end, 'BatchNorm1d', 'num_features')
    H.assert_error(function() nn.BatchNorm1d(3, 0) end, 'BatchNorm1d', 'eps', '> 0')
    H.assert_error(function() nn.BatchNorm1d(3, 1e-5, 1.5) end, 'BatchNorm1d', 'momentum', '1.5')
    H.assert_error(function() nn.BatchNorm2d(3, { affine = 1 }) end, 'BatchNorm2d', 'affine')
    H.assert_error(function() nn.LayerNorm({}) end, 'LayerNorm', 'normalized_shape')
    H.assert_error(function() nn.LayerNorm({ 3, 0 }) end, 'LayerNorm', 'normalized_shape[2]')
    H.assert_error(function() nn.LayerNorm(3, -1) end, 'LayerNorm', 'eps')
    H.assert_error(function() nn.Embedding(5) end, 'Embedding', 'embedding_dim')
    H.assert_error(function() nn.Embedding(5, 2, 0) end, 'Embedding', 'padding_idx', '1-based')
    H.assert_error(function() nn.Embedding(5, 2, 6) end, 'Embedding', 'padding_idx', '6')
    H.assert_error(function() nn.Embedding(5, 2, nil, 1.0) end, 'Embedding', 'max_norm', 'not supported')
    H.assert_error(function() nn.Embedding(5, 2, { sparse = true }) end, 'Embedding', 'sparse')
    H.assert_error(function() nn.Dropout(1.5) end, 'Dropout', 'p', '1.5')
    H.assert_error(function() nn.Dropout(0.5, true) end, 'Dropout', 'inplace')
    H.assert_error(function() nn.ReLU(true) end, 'ReLU', 'inplace')
    H.assert_error(function() nn.LeakyReLU('a') end, 'LeakyReLU', 'negative_slope')
    H.assert_error(function() nn.GELU('fast') end, 'GELU', 'approximate', '"fast"', '"tanh"')
    H.assert_error(function() nn.Softmax(0) end, 'Softmax', 'dim is 0')
    H.assert_error(function() nn.LogSoftmax(1.5) end, 'LogSoftmax', 'dim')
    H.assert_error(function() nn.Tanh(1) end, 'Tanh', 'inplace')
    H.assert_error(function() nn.CrossEntropyLoss { label_smoothing = 2 } end, 'CrossEntropyLoss', 'label_smoothing')
    H.assert_error(function() nn.CrossEntropyLoss { ignore_index = 0.5 } end, 'CrossEntropyLoss', 'ignore_index')
    H.assert_error(function() nn.CrossEntropyLoss { weight = { 1, 2 } } end, 'CrossEntropyLoss', 'weight')
    H.assert_error(function() nn.NLLLoss { weight = ms.ones(2, 2) } end, 'NLLLoss', 'weight', '1-D')
    H.assert_error(function() nn.BCEWithLogitsLoss { pos_weight = 2 } end, 'BCEWithLogitsLoss', 'pos_weight')
    H.assert_error(function() nn.Sequential(nn.ReLU(), 5) end, 'Sequential', 'argument 2')
    local r = nn.ReLU()
    H.assert_error(function() nn.Sequential(r, r) end, 'Sequential', 'same module')
  end)

  it('options tables reject unknown keys, naming the key and the accepted ones', function()
    H.assert_error(function() nn.Linear(3, 2, { bais = false }) end, 'Linear', '"bais"', 'bias')
    H.assert_error(function() nn.BatchNorm1d(3, { momentun = 0.1 }) end, 'BatchNorm1d', '"momentun"',
                   'track_running_stats')
    H.assert_error(function() nn.LayerNorm(3, { affine = false }) end, 'LayerNorm', '"affine"', 'elementwise_affine')
    H.assert_error(function() nn.Embedding(3, 2, { padding = 1 }) end, 'Embedding', '"padding"', 'padding_idx')
    H.assert_error(function() nn.GELU { approx = 'tanh' } end, 'GELU', '"approx"', 'approximate')
    H.assert_error(function() nn.CrossEntropyLoss { size_average = true } end, 'CrossEntropyLoss', '"size_average"',
                   'ignore_index, label_smoothing, reduction, weight')
    H.assert_error(function() nn.MSELoss { weight = ms.ones(2) } end, 'MSELoss', '"weight"', 'reduction')
    H.assert_error(function() nn.BCEWithLogitsLoss { ignore_index = 1 } end, 'BCEWithLogitsLoss', 'pos_weight')
    H.assert_error(function() nn.NLLLoss { label_smoothing = 0.1 } end, 'NLLLoss', '"label_smoothing"')
  end)
end)

describe('bad input', function()
  it('every forward checks its input type first', function()
    local all = {
      nn.Linear(3, 2), nn.ReLU(), nn.LeakyReLU(), nn.Tanh(), nn.Sigmoid(), nn.GELU(), nn.Softmax(),
      nn.LogSoftmax(), nn.Dropout(), nn.BatchNorm1d(3), nn.BatchNorm2d(3), nn.LayerNorm(3), nn.Flatten(),
      nn.Embedding(3, 2), nn.Sequential(nn.ReLU()),
    }
    for _, m in ipairs(all) do
      for _, v in ipairs { 5, 'x', {}, true } do
        local err = H.assert_error(function() m:forward(v) end, m.__name .. '.forward', 'input')
        assert.is_nil(err:find('attempt to', 1, true), err)
      end
    end
    H.assert_error(function() nn.ReLU():forward(ms.ones(2, 'int64')) end, 'ReLU.forward', 'int64',
                   'float32 or float64')
    H.assert_error(function() nn.Linear(3, 2):forward(ms.ones(2, 3, 'float64')) end, 'Linear.forward',
                   'float64', 'to()')
    H.assert_error(function() nn.Embedding(3, 2):forward(ms.ones(2)) end, 'Embedding.forward', 'int64')
    H.assert_error(function() nn.Embedding(3, 2):forward(ms.tensor({ 4 }, 'int64')) end, 'Embedding.forward',
                   '1..3')
    for _, crit in ipairs { nn.MSELoss(), nn.CrossEntropyLoss(), nn.NLLLoss(), nn.BCEWithLogitsLoss() } do
      H.assert_error(function() crit:forward(5, ms.ones(2)) end, crit.__name .. '.forward', 'input')
      H.assert_error(function() crit:forward(ms.ones(2, 2), 'y') end, crit.__name .. '.forward', 'target')
    end
  end)

  it('Softmax: a dim outside the input is an error naming the shape', function()
    H.assert_error(function() nn.Softmax(3):forward(ms.ones(2, 2)) end, 'Softmax.forward', 'dim 3', '[2,2]')
    H.assert_error(function() nn.LogSoftmax(-3):forward(ms.ones(2, 2)) end, 'LogSoftmax.forward', 'dim -3')
  end)

  it('class losses: targets, shapes and weights', function()
    local ce = nn.CrossEntropyLoss()
    H.assert_error(function() ce:forward(ms.zeros(2, 3), ms.zeros(2, 3)) end, 'class-probability targets')
    H.assert_error(function() ce:forward(ms.zeros(2, 3, 4), ms.tensor({ 1, 2 }, 'int64')) end,
                   'CrossEntropyLoss.forward', 'target has shape [2]', 'expected', '[2,4]')
    H.assert_error(function() ce:forward(ms.zeros(2, 3), ms.tensor({ 1, -5 }, 'int64')) end, 'target -5',
                   'position 2', '1..3')
    -- the default ignore_index is -100, as PyTorch: such targets are ignored
    H.assert_close(ms.tensor { ce:forward(ms.zeros(2, 3), ms.tensor({ 1, -100 }, 'int64')) }, { math.log(3) }, 1e-6)
    local ii = nn.CrossEntropyLoss { ignore_index = 3 }
    H.assert_error(function() ii:forward(ms.zeros(2, 3), ms.tensor({ 4, 3 }, 'int64')) end, 'target 4',
                   'or ignore_index 3')
    local wce = nn.CrossEntropyLoss { weight = ms.ones(4) }
    H.assert_error(function() wce:forward(ms.zeros(2, 3), ms.tensor({ 1, 2 }, 'int64')) end, 'weight has 4', '3 classes')
    local all_ignored = nn.CrossEntropyLoss { ignore_index = 2 }:forward(ms.zeros(2, 3), ms.tensor({ 2, 2 }, 'int64'))
    assert.is_true(all_ignored ~= all_ignored)                 -- 0/0, as PyTorch
    local bce = nn.BCEWithLogitsLoss { pos_weight = ms.ones(4) }
    H.assert_error(function() bce:forward(ms.zeros(2, 3), ms.zeros(2, 3)) end, 'pos_weight', '[4]', '[2,3]')
  end)

  it('BatchNorm in training refuses an empty batch and one value per channel; statistics stay', function()
    local bn = nn.BatchNorm1d(2)
    local rm, rv = bn.running_mean:clone(), bn.running_var:clone()
    H.assert_error(function() bn:forward(ms.zeros(0, 2)) end, 'BatchNorm1d.forward', '[0,2]', 'more than 1')
    H.assert_error(function() bn:forward(ms.ones(1, 2)) end, 'BatchNorm1d.forward', '[1,2]', 'more than 1')
    H.assert_close(bn.running_mean, rm, 0, 'running_mean')
    H.assert_close(bn.running_var, rv, 0, 'running_var')
    local bn2 = nn.BatchNorm2d(2)
    H.assert_error(function() bn2:forward(ms.zeros(1, 2, 1, 1)) end, 'BatchNorm2d.forward', 'more than 1')
    bn2:evaluate()                                                    -- running statistics: fine
    assert.same({ 1, 2, 1, 1 }, bn2:forward(ms.zeros(1, 2, 1, 1)):shape())
    assert.same({ 1, 2, 3 }, bn:forward(ms.ones(1, 2, 3)):shape())   -- 3 values per channel: fine
    local nostats = nn.BatchNorm1d(2, { track_running_stats = false })
    nostats:evaluate()
    H.assert_error(function() nostats:forward(ms.ones(1, 2)) end, 'track_running_stats = false')
  end)
end)

describe('freed tensors are clear errors', function()
  local function freed(...) local t = ms.ones(...); t:free(); return t end

  it('forward with a freed input after a first call (buffer reuse)', function()
    for _, m in ipairs { nn.Linear(3, 2), nn.ReLU(), nn.GELU(), nn.Dropout(0.5), nn.Softmax(), nn.LayerNorm(3) } do
      m:forward(ms.ones(2, 3))
      H.assert_error(function() m:forward(freed(2, 3)) end, m.__name .. '.forward', 'freed')
    end
    H.assert_error(function() nn.Dropout(0.5):forward(freed(4)) end, 'Dropout.forward', 'freed')
  end)

  it('backward with a freed input or gradOutput', function()
    for _, m in ipairs { nn.GELU(), nn.LeakyReLU(0.1), nn.ReLU(), nn.Linear(3, 3) } do
      local x = ms.ones(2, 3)
      m:forward(x)
      H.assert_error(function() m:backward(x, freed(2, 3)) end, m.__name .. '.backward', 'freed')
      x:free()
      H.assert_error(function() m:backward(x, ms.ones(2, 3)) end, m.__name .. '.backward', 'freed')
    end
    local s = nn.Sigmoid()
    local x = ms.ones(2)
    s:forward(x):free()
    H.assert_error(function() s:backward(x, ms.ones(2)) end, 'Sigmoid.backward', 'freed')
  end)

  it('losses with freed tensors', function()
    local ce = nn.CrossEntropyLoss()
    H.assert_error(function() ce:forward(freed(2, 3), ms.tensor({ 1, 2 }, 'int64')) end, 'CrossEntropyLoss.forward', 'freed')
    local x, t = ms.ones(2, 3), ms.tensor({ 1, 2 }, 'int64')
    ce:forward(x, t)
    x:free()
    H.assert_error(function() ce:backward(x, t) end, 'CrossEntropyLoss.backward', 'freed')
  end)
end)

describe('edge shapes and state dicts', function()
  it('empty inputs give empty outputs and gradients', function()
    for _, m in ipairs { nn.Linear(3, 2), nn.ReLU(), nn.GELU('tanh'), nn.Softmax(1), nn.LogSoftmax(),
                         nn.LayerNorm(3), nn.Flatten() } do
      local x = ms.zeros(0, 3)
      local y = m:forward(x)
      assert.equal(0, y:numel())
      assert.equal(0, m:backward(x, ms.zeros(y:shape())):numel())
    end
    local bn = nn.BatchNorm1d(3)
    bn:evaluate()
    assert.same({ 0, 3 }, bn:forward(ms.zeros(0, 3)):shape())
    local ce = nn.CrossEntropyLoss 'none'
    assert.same({ 0 }, ce:forward(ms.zeros(0, 3), ms.zeros(0, 'int64')):shape())
  end)

  it('Dropout(1) zeroes everything (as PyTorch); Flatten(start_dim, end_dim)', function()
    local d = nn.Dropout(1)
    local x = ms.ones(3, 4)
    assert.equal(0, d:forward(x):abs():sum())
    assert.equal(0, d:backward(x, ms.ones(3, 4)):abs():sum())
    local f = nn.Flatten(2, 3)
    local y = f:forward(ms.ones(2, 3, 4, 5))
    assert.same({ 2, 12, 5 }, y:shape())
    assert.same({ 12, 5 }, nn.Flatten(1, -2):forward(ms.ones(3, 4, 5)):shape())
    H.assert_error(function() nn.Flatten():forward(ms.ones(3)) end, 'Flatten.forward', '[3]')
    H.assert_error(function() nn.Flatten(3, 2) end, 'Flatten', 'start_dim 3 comes after end_dim 2')
  end)

  it('CrossEntropyLoss over unbatched [C] scores and a 0-d target', function()
    local c = LS.ce_unbatched
    local crit = nn.CrossEntropyLoss 'none'
    local x, t = T(c.input), ms.tensor(c.target, 'int64')
    local l = crit:forward(x, t)
    assert.equal(0, l:dim())
    assert.is_true(math.abs(l:item() - c.loss) < 1e-12)
    H.assert_close(crit:backward(x, t, ms.tensor(1.0, 'float64')), c.grad_input, 1e-12)
  end)

  it('load_state_dict checks everything before copying anything', function()
    local m = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    local before = m:flat_parameters():clone()
    local sd = m:state_dict()
    for k, v in pairs(sd) do sd[k] = v:clone():fill_(7) end
    sd['extra'] = ms.ones(1)
    H.assert_error(function() m:load_state_dict(sd) end, 'Sequential.load_state_dict', 'unexpected entry "extra"')
    H.assert_close(m:flat_parameters(), before, 0, 'untouched')
    sd['extra'] = nil
    sd['2.running_var'] = 'x'
    H.assert_error(function() m:load_state_dict(sd) end, '"2.running_var" is "x"', 'expected a tensor of shape [2]')
    H.assert_error(function() m:load_state_dict(5) end, 'load_state_dict', 'state_dict is 5')
    H.assert_close(m:flat_parameters(), before, 0, 'untouched')
  end)
end)

describe('Module methods name themselves', function()
  it('to/cuda/apply/set_update_stats/train check their arguments', function()
    local l = nn.Linear(3, 3)
    H.assert_error(function() l:to('int64') end, 'Linear.to', '"int64"', 'float dtype')
    if not ms.cuda.is_available() then
      H.assert_error(function() l:cuda() end, 'Linear.cuda', 'CUDA')
      assert.equal('float32', l.weight.dtype)                         -- nothing moved
    end
    H.assert_error(function() l:apply(5) end, 'Linear.apply', 'function')
    H.assert_error(function() l:set_update_stats('no') end, 'Linear.set_update_stats', 'true or false')
    H.assert_error(function() l:train(1) end, 'Linear.train', 'true or false')
    H.assert_error(function() nn.Sequential():add(5) end, 'Sequential.add', 'expected a module')
  end)

  it('freed parameters and buffers, conversions between forward and backward', function()
    local bn = nn.BatchNorm1d(3)
    bn.running_mean:free()
    H.assert_error(function() bn:forward(ms.ones(4, 3)) end, 'BatchNorm1d.forward', 'running_mean', 'freed')
    local b2 = nn.BatchNorm1d(3)
    local x = ms.randn(4, 3)
    local y = b2:forward(x)
    b2:double()
    H.assert_error(function() b2:backward(x, y:clone()) end, 'BatchNorm1d.backward', 'float64', 'forward again')
    H.assert_error(function() nn.Linear(2 ^ 30, 2 ^ 30) end, 'Linear:')
  end)
end)
