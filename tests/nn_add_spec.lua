-- Module:add after the parameters were gathered (nn.Sequential() builds its arena at once):
-- Torch7's `m = nn.Sequential(); m:add(...)` must train every layer; adding under an
-- optimizer that holds the parameters, or inside a gathered model, is refused.
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim
local H = require 'helper'

describe('Module:add', function()
  it('regathers the parameters of an empty or grown Sequential, values kept', function()
    local m = nn.Sequential()
    m:add(nn.Linear(3, 2)); m:add(nn.Tanh()); m:add(nn.Linear(2, 1))
    assert.are.equal(11, m:flat_parameters():numel())
    local s = nn.Sequential(nn.Linear(2, 2))
    local w = s.modules[1].weight:clone()
    s:add(nn.Linear(2, 2))
    assert.are.equal(12, s:flat_parameters():numel())
    assert.are.same(w:totable(), s.modules[1].weight:totable())
    s.modules[1].grad_weight:fill_(2)                  -- its gradient is a view of the new arena
    assert.are.equal(8, s:flat_gradients():sum())
    -- Torch7 nesting: a block filled with add, then added
    local b = nn.Sequential(); b:add(nn.Linear(3, 3))
    local mm = nn.Sequential(); mm:add(b); mm:add(nn.Linear(3, 1))
    assert.are.equal(16, mm:flat_parameters():numel())
  end)

  it('trains every layer added before the optimizer', function()
    ms.manual_seed(3)
    local m = nn.Sequential()
    m:add(nn.Linear(3, 2)); m:add(nn.Tanh()); m:add(nn.Linear(2, 1))
    local opt = optim.SGD(m, { lr = 0.1 })
    local x, y, c = ms.randn(4, 3), ms.randn(4, 1), nn.MSELoss()
    local w1, w3 = m.modules[1].weight:clone(), m.modules[3].weight:clone()
    opt:step(function() local o = m:forward(x); local l = c:forward(o, y); m:backward(x, c:backward(o, y)); return l end)
    assert.is_true(ms.sub(m.modules[1].weight, w1):abs():max() > 0)
    assert.is_true(ms.sub(m.modules[3].weight, w3):abs():max() > 0)
  end)

  it('is refused under an optimizer that holds the parameters, and inside a gathered model', function()
    local m = nn.Sequential(nn.Linear(2, 2))
    local opt = optim.Adam(m, { lr = 0.1 })
    H.assert_error(function() m:add(nn.Tanh()) end,
                   'Sequential.add: the model\'s arena is held by an optimizer (optim.Adam); add every module before')
    local _ = opt
    local inner = nn.Sequential(nn.Linear(2, 2))
    local _outer = nn.Sequential(inner, nn.Linear(2, 2))
    H.assert_error(function() inner:add(nn.Tanh()) end,
                   'Sequential.add: this module is inside a model whose arena is built')
  end)
end)
