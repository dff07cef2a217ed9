-- Every layer and loss: backward against central finite differences in float64.
local ms = require 'moonstep'
local nn = ms.nn
local G = require 'gradcheck'

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
