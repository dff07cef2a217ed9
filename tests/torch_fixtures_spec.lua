-- Layers, losses and optimizers against PyTorch: fixtures written by
-- scripts/gen_fixtures.py (float64, tests/fixtures/torch.lua).
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim
local H = require 'helper'
local fx = dofile('tests/fixtures/torch.lua')

local function t64(v) return ms.tensor(v, 'float64') end

-- Load a fixture case's parameters into module m (float64), run forward and
-- backward, compare everything PyTorch recorded.
local function check_layer(m, case, tol)
  tol = tol or 1e-10
  m:double()
  for _, name in ipairs { 'weight', 'bias' } do
    if case[name] then m[name]:copy_(t64(case[name])) end
  end
  m:zero_grad()
  local x = t64(case.input)
  local y = m:forward(x)
  H.assert_close(y, case.output, tol, 'output')
  local gx = m:backward(x, t64(case.grad_output))
  H.assert_close(gx, case.grad_input, tol, 'grad_input')
  for _, name in ipairs { 'weight', 'bias' } do
    if case['grad_' .. name] then H.assert_close(m['grad_' .. name], case['grad_' .. name], tol, 'grad_' .. name) end
  end
  return m
end

describe('layers against PyTorch', function()
  local L = fx.layers
  it('Linear', function() check_layer(nn.Linear(5, 4), L.linear) end)
  it('Conv2d (stride 2, padding 1)', function()
    check_layer(nn.Conv2d(2, 3, 3, { stride = 2, padding = 1 }), L.conv2d)
  end)
  it('BatchNorm2d (training, running statistics)', function()
    local bn = check_layer(nn.BatchNorm2d(3), L.batchnorm2d)
    H.assert_close(bn.running_mean, L.batchnorm2d.running_mean, 1e-10, 'running_mean')
    H.assert_close(bn.running_var, L.batchnorm2d.running_var, 1e-10, 'running_var')
  end)
  it('BatchNorm1d', function() check_layer(nn.BatchNorm1d(4), L.batchnorm1d) end)
  it('LayerNorm', function() check_layer(nn.LayerNorm(6), L.layernorm) end)
  it('GELU', function() check_layer(nn.GELU(), L.gelu) end)
  it('MaxPool2d (3, stride 2, padding 1)', function()
    check_layer(nn.MaxPool2d(3, { stride = 2, padding = 1 }), L.maxpool2d)
  end)
  it('AvgPool2d (3, stride 2, padding 1)', function()
    check_layer(nn.AvgPool2d(3, { stride = 2, padding = 1 }), L.avgpool2d)
  end)
  it('CrossEntropyLoss with label smoothing', function()
    local c = L.cross_entropy
    local crit = nn.CrossEntropyLoss { label_smoothing = c.label_smoothing }
    local x, t = t64(c.input), ms.tensor(c.target, 'int64')
    assert.is_true(math.abs(crit:forward(x, t) - c.loss) < 1e-12)
    H.assert_close(crit:backward(x, t), c.grad_input, 1e-12, 'grad_input')
  end)
end)

describe('optimizers against torch.optim', function()
  local O = fx.optim
  local classes = { sgd = optim.SGD, adam = optim.Adam, adamw = optim.AdamW }
  for name, case in pairs(O.cases) do
    it(name, function()
      local p1, p2 = t64(O.params[1]), t64(O.params[2])
      local set = ms.params { p1, p2 }
      local cls = classes[name:match('^(%a+)')]
      local opt = cls(set, case.config)
      for k, g in ipairs(O.grads) do
        opt:step(function()
          set.grads[1]:copy_(t64(g[1]))
          set.grads[2]:copy_(t64(g[2]))
          return 0
        end)
        H.assert_close(p1, case.trajectory[k][1], 1e-12, name .. ' step ' .. k .. ' param 1')
        H.assert_close(p2, case.trajectory[k][2], 1e-12, name .. ' step ' .. k .. ' param 2')
      end
    end)
  end
end)
