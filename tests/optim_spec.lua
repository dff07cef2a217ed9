-- Optimizer behaviour beyond the PyTorch trajectories (tests/torch_fixtures_spec.lua).
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim
local H = require 'helper'

-- f(w) = 0.5 |w - 3|^2 for a single parameter vector; gradient w - 3.
local function quadratic()
  local w = ms.zeros(4)
  local set = ms.params { w }
  local function closure()
    set.grads[1]:copy_(w - 3)
    return 0.5 * (w - 3):square():sum()
  end
  return w, set, closure
end

describe('optimizers', function()
  it('SGD and Adam minimise a quadratic', function()
    for _, make in ipairs { function(s) return optim.SGD(s, { lr = 0.1, momentum = 0.9 }) end,
                            function(s) return optim.Adam(s, { lr = 0.1 }) end } do
      local w, set, closure = quadratic()
      local opt = make(set)
      for _ = 1, 300 do opt:step(closure) end
      assert.is_true((w - 3):abs():max() < 1e-2, 'ended at ' .. w:get(1))
    end
  end)

  it('hyper-parameters are fields, or functions of the step', function()
    local w, set, closure = quadratic()
    local opt = optim.SGD(set, { lr = function(step) return step == 1 and 1 or 0 end })
    opt:step(closure)       -- w = 0 - 1 * (0 - 3) = 3
    assert.equal(3, w:get(1))
    opt.lr = 0.5
    w:fill_(1)
    opt:step(closure)       -- w = 1 - 0.5 * (1 - 3) = 2
    assert.equal(2, w:get(1))
  end)

  it('a non-finite loss is an error that leaves parameters alone, or skipped', function()
    local w, set = quadratic()
    local opt = optim.Adam(set, { lr = 0.1 })
    H.assert_error(function() opt:step(function() set.grads[1]:fill_(1); return 0 / 0 end) end,
                   'Adam.step', 'nan', 'unchanged')
    assert.equal(0, w:abs():sum())
    local skip = optim.Adam(set, { lr = 0.1, on_nonfinite = 'skip' })
    skip:step(function() return math.huge end)
    assert.equal(1, skip.skipped)
    assert.equal(0, skip.t)
  end)

  it('state / load_state resume exactly', function()
    local w1, s1, c1 = quadratic()
    local a = optim.Adam(s1, { lr = 0.05 })
    for _ = 1, 3 do a:step(c1) end
    local saved, wsaved = a:state(), w1:clone()
    for _ = 1, 3 do a:step(c1) end
    local w2, s2, c2 = quadratic()
    w2:copy_(wsaved)
    local b = optim.Adam(s2, { lr = 0.05 })
    b:load_state(saved)
    for _ = 1, 3 do b:step(c2) end
    assert.equal(0, (w1 - w2):abs():max())
  end)

  it('rejects bad configuration and closures', function()
    local _, set, closure = quadratic()
    H.assert_error(function() optim.SGD(set, { learning_rate = 1 }) end, 'SGD', 'learning_rate')
    H.assert_error(function() optim.SGD('model') end, 'SGD', 'expected a model')
    H.assert_error(function() optim.SGD(set):step('x') end, 'closure')
    H.assert_error(function() optim.SGD(set):step(function() return 'x' end) end, 'expected the loss')
    H.assert_error(function() optim.SGD(set, { nesterov = true }):step(closure) end, 'nesterov')
  end)

  it('trains a model given directly', function()
    ms.manual_seed(0)
    local model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    local x = ms.randn(64, 2)
    local y = (x:select(2, 1) * x:select(2, 2)):view(64, 1)
    local crit = nn.MSELoss()
    local opt = optim.Adam(model, { lr = 0.02 })
    local first, last
    for i = 1, 300 do
      last = opt:step(function()
        local out = model:forward(x)
        local loss = crit:forward(out, y)
        model:backward(x, crit:backward(out, y))
        return loss
      end)
      first = first or last
    end
    assert.is_true(last < first / 5, ('loss %g -> %g'):format(first, last))
  end)
end)
