-- The shipped layers written as Lua functions of tensors inside nn.Function: their
-- composed gradients (ms.autograd's tape) equal each layer's hand-written backward —
-- gradInput and every parameter gradient — to float64 tolerance. LayerNorm, BatchNorm
-- and Embedding are written from elementwise ops, reductions and index_select, so these
-- cases also test the composition of rules against an independent implementation.
local ms = require 'moonstep'
local nn, F = ms.nn, ms.nn.functional

local f64 = { dtype = 'float64' }

local function close(a, b, tol, what)
  local d = (a - b):abs():max()
  assert(d <= (tol or 1e-12) * math.max(1, b:abs():max()), ('%s: max difference %g'):format(what or '', d))
end

-- layer: a float64 module; fn(x, p): the same computation from tensor ops, p the
-- layer's parameters by name (copies); x an input. Compares forward, gradInput and each
-- parameter's gradient for the same random gradOutput.
local function same_as(layer, fn, x, tol)
  local p = {}
  for _, e in ipairs(layer:named_parameters()) do p[e.name] = e.param:clone() end
  local f = nn.Function(fn, next(p) and p or nil)
  local y_ref = layer:forward(x):clone()
  local y = f:forward(x)
  close(y, y_ref, tol, 'forward')
  local g = ms.empty(y:shape(), f64):normal_(0, 1, { seed = 5 })
  layer:zero_grad(); f:zero_grad()
  layer.input_grad, f.input_grad = true, true
  local gx_ref = layer:backward(x, g)
  local gx = f:backward(x, g)
  if x.dtype == 'float64' then close(gx, gx_ref, tol, 'gradInput') end
  for _, e in ipairs(layer:named_parameters()) do
    close(f['grad_' .. e.name], e.grad, tol, 'grad ' .. e.name)
  end
end

describe('nn.Function reproduces the hand-written backward of', function()
  before_each(function() ms.manual_seed(31) end)
  local function randn(...) return ms.randn({ ... }, f64) end

  it('Linear', function()
    same_as(nn.Linear(5, 3):double(), function(x, p) return F.linear(x, p.weight, p.bias) end, randn(4, 5))
    same_as(nn.Linear(5, 3, false):double(), function(x, p) return F.linear(x, p.weight) end, randn(2, 4, 5))
  end)

  it('Conv2d with stride, padding, dilation and groups, and the 1x1 case', function()
    same_as(nn.Conv2d(4, 6, 3, { stride = 2, padding = 1, dilation = 1, groups = 2 }):double(),
            function(x, p) return F.conv2d(x, p.weight, p.bias, { stride = 2, padding = 1, groups = 2 }) end,
            randn(2, 4, 7, 6))
    same_as(nn.Conv2d(3, 2, 1):double(), function(x, p) return F.conv2d(x, p.weight, p.bias) end, randn(2, 3, 4, 5))
    same_as(nn.Conv2d(2, 3, { 2, 3 }, { dilation = 2, bias = false }):double(),
            function(x, p) return F.conv2d(x, p.weight, nil, { dilation = 2 }) end, randn(1, 2, 8, 9))
  end)

  it('MaxPool2d and AvgPool2d', function()
    same_as(nn.MaxPool2d(3, { stride = 2, padding = 1, ceil_mode = true }),
            function(x) return F.max_pool2d(x, 3, { stride = 2, padding = 1, ceil_mode = true }) end, randn(2, 3, 7, 8))
    same_as(nn.AvgPool2d(2, { stride = 1, padding = 1, count_include_pad = false }),
            function(x) return F.avg_pool2d(x, 2, { stride = 1, padding = 1, count_include_pad = false }) end,
            randn(2, 2, 5, 4))
  end)

  it('the activations, Softmax and LogSoftmax, Flatten', function()
    local x = randn(4, 6)
    same_as(nn.ReLU(), function(v) return v:relu() end, x)
    same_as(nn.Tanh(), function(v) return v:tanh() end, x)
    same_as(nn.Sigmoid(), function(v) return v:sigmoid() end, x)
    same_as(nn.GELU(), function(v) return v:gelu() end, x, 1e-10)
    same_as(nn.LeakyReLU(0.2), function(v) return v:leaky_relu(0.2) end, x)
    same_as(nn.Softmax(2), function(v) return v:softmax(2) end, x)
    same_as(nn.LogSoftmax(1), function(v) return v:log_softmax(1) end, x)
    same_as(nn.Flatten(), function(v) return v:reshape(v:size(1), -1) end, randn(3, 2, 4))
  end)

  it('LayerNorm, from its formula', function()
    local m = nn.LayerNorm({ 3, 4 }):double()
    m.weight:normal_(1, 0.2); m.bias:normal_(0, 0.2)
    same_as(m, function(x, p)
      local flat = x:reshape(x:size(1), 12)
      local mu = flat:mean(2, true)
      local c = flat - mu
      local var = (c * c):mean(2, true)
      local y = (c / (var + 1e-5):sqrt()):reshape(x:shape())
      return y * p.weight + p.bias
    end, randn(5, 3, 4), 1e-10)
  end)

  it('BatchNorm1d in training, from its formula', function()
    local m = nn.BatchNorm1d(4):double()
    m.weight:normal_(1, 0.2); m.bias:normal_(0, 0.2)
    same_as(m, function(x, p)
      local mu = x:mean(1, true)
      local c = x - mu
      local var = (c * c):mean(1, true)                      -- the biased variance normalises
      return c / (var + 1e-5):sqrt() * p.weight + p.bias
    end, randn(6, 4), 1e-10)
  end)

  it('Embedding, from index_select', function()
    local m = nn.Embedding(7, 3):double()
    local idx = ms.tensor({ 1, 4, 4, 7, 2 }, { dtype = 'int64' })
    same_as(m, function(i, p) return p.weight:index_select(1, i) end, idx)
  end)
end)

describe('nn.Function reproduces the losses', function()
  before_each(function() ms.manual_seed(32) end)

  it('CrossEntropyLoss and MSELoss (gradients with respect to the input)', function()
    local x = ms.randn({ 6, 5 }, f64)
    local t = ms.randint(1, 6, { 6 })
    local crit = nn.CrossEntropyLoss { label_smoothing = 0.1 }
    local l_ref = crit:forward(x, t)
    local g_ref = crit:backward(x, t)
    local v, g = ms.autograd.value_and_grad(function(z) return F.cross_entropy(z, t, { label_smoothing = 0.1 }) end)(x)
    assert.is_true(math.abs(v - l_ref) < 1e-13)
    close(g, g_ref, 1e-13)
    local y = ms.randn({ 6, 5 }, f64)
    local mse = nn.MSELoss()
    local m_ref = mse:forward(x, y)
    local mg_ref = mse:backward(x, y)
    local mv, mg = ms.autograd.value_and_grad(function(z) return F.mse_loss(z, y) end)(x)
    assert.is_true(math.abs(mv - m_ref) < 1e-13)
    close(mg, mg_ref, 1e-13)
  end)
end)
