-- Every layer and loss: backward against central finite differences in float64.
local ms = require 'moonstep'
local nn = ms.nn
local G = require 'gradcheck'
local H = require 'helper'

local function input(shape, seed)
  return ms.empty(shape, 'float64'):normal_(0, 1, { seed = seed or 7 })
end

describe('layer gradients (float64 finite differences)', function()
  before_each(function() ms.manual_seed(1) end)

  it('Linear (2-D and 3-D input, with and without bias)', function()
    G.check_module(nn.Linear(5, 4):double(), input { 3, 5 })
    G.check_module(nn.Linear(5, 4, false):double(), input { 2, 3, 5 })
  end)

  for _, name in ipairs { 'ReLU', 'Tanh', 'Sigmoid', 'GELU' } do
    it(name, function() G.check_module(nn[name](), input { 4, 6 }) end)
  end
  it('LeakyReLU', function() G.check_module(nn.LeakyReLU(0.2), input { 4, 6 }) end)
  it('Softmax and LogSoftmax', function()
    G.check_module(nn.Softmax(), input { 3, 7 })
    G.check_module(nn.LogSoftmax(), input { 3, 7 })
  end)

  it('Dropout (mask replayed across the differences)', function()
    local d = nn.Dropout(0.3)
    d.replay = true
    G.check_module(d, input { 5, 8 })
  end)

  it('BatchNorm1d and BatchNorm2d, training and evaluation', function()
    local bn1 = nn.BatchNorm1d(4):double()
    bn1.update_stats = false
    G.check_module(bn1, input { 6, 4 })
    local bn2 = nn.BatchNorm2d(3):double()
    bn2.update_stats = false
    G.check_module(bn2, input { 2, 3, 4, 5 })
    bn2:evaluate()
    G.check_module(bn2, input { 2, 3, 4, 5 })
  end)

  it('LayerNorm', function()
    G.check_module(nn.LayerNorm(6):double(), input { 4, 6 })
    G.check_module(nn.LayerNorm({ 3, 4 }):double(), input { 2, 3, 4 })
  end)

  it('Conv2d (stride, padding, odd sizes)', function()
    G.check_module(nn.Conv2d(2, 3, 3):double(), input { 2, 2, 5, 6 })
    G.check_module(nn.Conv2d(3, 2, { 2, 3 }, { stride = 2, padding = 1 }):double(), input { 2, 3, 7, 5 })
  end)

  it('MaxPool2d and AvgPool2d', function()
    G.check_module(nn.MaxPool2d(2), input { 2, 3, 4, 6 })
    G.check_module(nn.MaxPool2d(3, { stride = 2, padding = 1 }), input { 1, 2, 5, 5 })
    G.check_module(nn.AvgPool2d(2), input { 2, 3, 4, 6 })
    G.check_module(nn.AvgPool2d(3, { stride = 2, padding = 1 }), input { 1, 2, 5, 5 })
  end)

  it('Flatten and Sequential (a small CNN end to end)', function()
    local net = nn.Sequential(nn.Conv2d(1, 2, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(2 * 3 * 3, 4)):double()
    net.input_grad = true   -- a model computes no gradient w.r.t. its input unless asked
    G.check_module(net, input { 2, 1, 6, 6 })
  end)

  it('Embedding (repeated indices accumulate)', function()
    local e = nn.Embedding(5, 3):double()
    G.check_module(e, ms.tensor({ { 1, 3, 3 }, { 5, 1, 1 } }, 'int64'), { check_input = false })
  end)
end)

describe('loss gradients (float64 finite differences)', function()
  local x = input({ 5, 4 }, 3)
  local t = ms.tensor({ 1, 4, 2, 2, 3 }, 'int64')
  for _, reduction in ipairs { 'mean', 'sum' } do
    it('CrossEntropyLoss ' .. reduction, function()
      G.check_loss(nn.CrossEntropyLoss { reduction = reduction }, x, t)
      G.check_loss(nn.CrossEntropyLoss { reduction = reduction, label_smoothing = 0.1 }, x, t)
    end)
    it('NLLLoss ' .. reduction, function()
      G.check_loss(nn.NLLLoss { reduction = reduction }, x:log_softmax(), t)
    end)
    it('MSELoss ' .. reduction, function()
      G.check_loss(nn.MSELoss { reduction = reduction }, x, input({ 5, 4 }, 4))
    end)
    it('BCEWithLogitsLoss ' .. reduction, function()
      local y = input({ 5, 4 }, 5):sigmoid()
      G.check_loss(nn.BCEWithLogitsLoss { reduction = reduction }, x, y)
    end)
  end
  it("reduction 'none' returns per-example losses and weights them by gradOutput", function()
    local ce = nn.CrossEntropyLoss 'none'
    local l = ce:forward(x, t)
    assert.same({ 5 }, l:shape())
    local mean = nn.CrossEntropyLoss():forward(x, t)
    assert.is_true(math.abs(l:mean() - mean) < 1e-12)
    local go = ms.tensor({ 1, 0, 0, 0, 0 }, 'float64')
    local g = ce:backward(x, t, go)
    assert.equal(0, g:narrow(1, 2, 4):abs():sum())
  end)
end)

describe('gradients of the new options (float64 finite differences)', function()
  before_each(function() ms.manual_seed(2) end)

  it("GELU approximate = 'tanh'", function()
    G.check_module(nn.GELU { approximate = 'tanh' }, input({ 4, 6 }):mul_(2))
  end)
  it('Softmax and LogSoftmax over dims 1, 2, -2 of 3-D and 4-D input', function()
    for _, d in ipairs { 1, 2, -2 } do
      G.check_module(nn.Softmax(d), input { 3, 4, 5 })
      G.check_module(nn.LogSoftmax(d), input { 2, 3, 2, 4 })
    end
  end)
  it('BatchNorm track_running_stats = false, training and evaluation', function()
    local bn = nn.BatchNorm1d(3, { track_running_stats = false }):double()
    G.check_module(bn, input { 5, 3, 2 })
    bn:evaluate()
    G.check_module(bn, input { 5, 3, 2 })
    local bn2 = nn.BatchNorm2d(2, { affine = false, track_running_stats = false })
    bn2:evaluate()
    G.check_module(bn2, input { 2, 2, 3, 3 })
  end)
  it('LayerNorm without affine and without bias', function()
    G.check_module(nn.LayerNorm(5, { elementwise_affine = false }), input { 3, 5 })
    local ln = nn.LayerNorm(5, { bias = false }):double()
    assert.is_nil(ln.bias)
    ln.weight:normal_(1, 0.3, { seed = 3 })
    G.check_module(ln, input { 3, 5 })
  end)
  it('Embedding padding_idx: the other rows as without it, that row zero', function()
    local idx = ms.tensor({ { 1, 2, 2 }, { 5, 1, 2 } }, 'int64')
    local e = nn.Embedding(5, 3, { padding_idx = 2 }):double()
    G.check_module(e, ms.tensor({ { 1, 3, 3 }, { 5, 1, 4 } }, 'int64'), { check_input = false })
    local plain = nn.Embedding(5, 3):double()
    plain.weight:copy_(e.weight)
    local g = input { 2, 3, 3 }
    e:zero_grad(); plain:zero_grad()
    H.assert_close(e:forward(idx), plain:forward(idx), 0, 'output')
    e:backward(idx, g); plain:backward(idx, g)
    plain.grad_weight:narrow(1, 2, 1):zero_()
    H.assert_close(e.grad_weight, plain.grad_weight, 0, 'grad_weight')
  end)

  local x = input({ 6, 4 }, 3)
  local t = ms.tensor({ 1, 4, 2, 2, 3, 4 }, 'int64')
  local w = ms.tensor({ 0.5, 2, 1, 0.25 }, 'float64')
  for _, reduction in ipairs { 'mean', 'sum', 'none' } do
    it('CrossEntropyLoss weight, ignore_index, label_smoothing, ' .. reduction, function()
      local function loss(opts)
        opts.reduction = reduction
        local crit = nn.CrossEntropyLoss(opts)
        if reduction ~= 'none' then return crit end
        -- 'none': check the sum through gradOutput = ones
        return setmetatable({
          forward = function(_, a, b) return crit:forward(a, b):sum() end,
          backward = function(_, a, b) return crit:backward(a, b, ms.ones(b:shape(), 'float64')) end,
        }, {})
      end
      G.check_loss(loss { weight = w }, x, t)
      G.check_loss(loss { ignore_index = 2 }, x, t)
      G.check_loss(loss { weight = w, ignore_index = 4, label_smoothing = 0.3 }, x, t)
      local xn = input({ 2, 4, 3, 2 }, 5)
      local tn = ms.tensor({ { { 1, 2 }, { 3, 4 }, { 4, 4 } }, { { 2, 2 }, { 1, 3 }, { 3, 1 } } }, 'int64')
      G.check_loss(loss { weight = w, ignore_index = 3, label_smoothing = 0.1 }, xn, tn)
    end)
  end
  it('NLLLoss weight and ignore_index over (N, C, d)', function()
    G.check_loss(nn.NLLLoss { weight = w, ignore_index = 1 }, input({ 2, 4, 3 }, 6):log_softmax(),
                 ms.tensor({ { 1, 2, 4 }, { 4, 3, 1 } }, 'int64'))
  end)
  it('BCEWithLogitsLoss weight and pos_weight', function()
    local y = input({ 5, 3 }, 8):sigmoid()
    G.check_loss(nn.BCEWithLogitsLoss { pos_weight = ms.tensor({ 0.5, 2, 3 }, 'float64') }, input({ 5, 3 }, 9), y)
    G.check_loss(nn.BCEWithLogitsLoss { reduction = 'sum', weight = ms.tensor({ 2, 0.5, 1 }, 'float64'),
                                        pos_weight = ms.tensor({ 3 }, 'float64') }, input({ 5, 3 }, 9), y)
  end)
end)
