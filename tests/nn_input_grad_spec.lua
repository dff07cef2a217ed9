-- A model computes no gradient w.r.t. its input unless asked (PyTorch's default for data
-- that does not require grad): Sequential.input_grad. The parameter gradients are the same
-- either way; a Sequential fed by another module inside a container still computes its
-- input gradient (the container needs it); input_grad = true gives it back at the top.
local ms = require 'moonstep'
local H = require 'helper'
local nn = ms.nn

local function mlp()
  ms.manual_seed(3)
  return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)):double()
end

local function grads(model, x, gy)
  model:zero_grad()
  model:forward(x)
  local gx = model:backward(x, gy)
  return gx, model:flat_gradients():clone()
end

describe('Sequential.input_grad', function()
  local x = ms.randn(4, 6):double()
  local gy = ms.randn(4, 3):double()

  it('is off for a model by default: backward returns nil, parameter gradients unchanged', function()
    local a, b = mlp(), mlp()
    b.input_grad = true
    local gxa, ga = grads(a, x, gy)
    local gxb, gb = grads(b, x, gy)
    assert.is_nil(gxa)
    assert.equal(false, a.modules[1].input_grad)      -- (the first layer skips its product)
    assert.truthy(ms.is_tensor(gxb))
    H.same_bits(ga, gb, 'parameter gradients')
  end)

  it('input_grad = true gives the gradient of the input (against the manual chain)', function()
    local m = mlp()
    m.input_grad = true
    m:forward(x)
    local gx = m:backward(x, gy)
    -- manual: gx = ((gy W2) * (1 - tanh^2)) W1
    local W1, W2 = m.modules[1].weight, m.modules[3].weight
    local h = ms.matmul(x, W1:t()) + m.modules[1].bias
    local g = ms.matmul(gy, W2) * (1 - h:tanh():square())
    H.assert_close(gx, ms.matmul(g, W1), 1e-12)
  end)

  it('a Sequential fed by another module inside a model computes its input gradient', function()
    ms.manual_seed(4)
    local inner = nn.Sequential(nn.Linear(5, 4), nn.ReLU())
    local model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), inner, nn.Linear(4, 3)):double()
    ms.manual_seed(4)
    local flat = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)):double()
    flat:flat_parameters():copy_(model:flat_parameters())
    local gxm, gm = grads(model, x, gy)
    local gxf, gf = grads(flat, x, gy)
    assert.is_nil(gxm); assert.is_nil(gxf)
    H.same_bits(gm, gf, 'parameter gradients through the nested Sequential')
    -- the model's first child, itself a Sequential, skips its input gradient too
    local nested = nn.Sequential(nn.Sequential(nn.Linear(6, 3)), nn.Tanh()):double()
    nested:forward(x)
    assert.is_nil(nested:backward(x, gy))
    nested.input_grad = true
    nested:forward(x)
    assert.truthy(ms.is_tensor(nested:backward(x, gy)))
  end)

  it('a single layer used on its own keeps the Torch7 protocol (gradInput returned)', function()
    local l = nn.Linear(6, 3):double()
    l:forward(x)
    assert.truthy(ms.is_tensor(l:backward(x, gy)))
  end)
end)
