-- Optimizer configuration is checked (as torch.optim, and stricter where PyTorch lets a
-- value through that cannot be meant), and a finite loss with non-finite gradients is
-- refused like a non-finite loss.
local ms = require 'moonstep'
local optim = ms.optim
local H = require 'helper'

local function setup()
  local w = ms.zeros(4)
  local set = ms.params { w }
  return w, set
end

-- A closure that sets the gradient to g (a number or a table) and returns loss.
local function closure(set, g, loss)
  return function()
    if type(g) == 'table' then set.grads[1]:copy_(ms.tensor(g)) else set.grads[1]:fill_(g) end
    return loss or 1
  end
end

describe('optimizer configuration', function()
  local _, set = setup()

  it('refuses values out of range, naming the optimizer, option, value and range', function()
    local cases = {
      { 'SGD', { lr = -1 }, 'lr', '-1', '>= 0' },
      { 'SGD', { lr = 0 / 0 }, 'lr', 'nan', 'finite' },
      { 'SGD', { lr = 'x' }, 'lr', '"x"', 'number' },
      { 'SGD', { momentum = -0.5 }, 'momentum', '-0.5', '>= 0' },
      { 'SGD', { weight_decay = -1e-4 }, 'weight_decay', '-0.0001', '>= 0' },
      { 'SGD', { momentum = 0.9, dampening = 1.5 }, 'dampening', '1.5', 'in [0, 1]' },
      { 'SGD', { momentum = 0.9, dampening = -0.1 }, 'dampening', '-0.1', 'in [0, 1]' },
      { 'SGD', { nesterov = 1 }, 'nesterov', '1', 'true or false' },
      { 'Adam', { lr = -0.001 }, 'lr', '-0.001', '>= 0' },
      { 'Adam', { eps = 0 }, 'eps', '0', '> 0' },
      { 'Adam', { eps = -1e-8 }, 'eps', '-1e-08', '> 0' },
      { 'Adam', { weight_decay = -1 }, 'weight_decay', '-1', '>= 0' },
      { 'Adam', { betas = { 1, 0.999 } }, 'betas[1]', '1', '[0, 1)' },
      { 'Adam', { betas = { 0.9, -0.1 } }, 'betas[2]', '-0.1', '[0, 1)' },
      { 'Adam', { betas = 0.9 }, 'betas', '0.9', '{beta1, beta2}' },
      { 'AdamW', { betas = { 0.9 } }, 'betas', 'table', '{beta1, beta2}' },
      { 'AdamW', { weight_decay = -0.01 }, 'weight_decay', '-0.01', '>= 0' },
    }
    for _, c in ipairs(cases) do
      local err = H.assert_error(function() optim[c[1]](set, c[2]) end, c[1] .. ': ', c[3], c[4], c[5])
      assert.truthy(err:find('optim_config_spec.lua:', 1, true), err)   -- the caller's line
    end
  end)

  it('nesterov needs momentum > 0 and no dampening (as torch.optim.SGD)', function()
    H.assert_error(function() optim.SGD(set, { nesterov = true }) end,
                   'SGD: nesterov', 'momentum > 0', 'dampening = 0')
    H.assert_error(function() optim.SGD(set, { nesterov = true, momentum = 0.9, dampening = 0.1 }) end,
                   'SGD: nesterov', 'dampening 0.1')
    optim.SGD(set, { nesterov = true, momentum = 0.9 })
  end)

  it('gives clear errors for a wrong first argument or options that are not a table', function()
    local err = H.assert_error(function() optim.SGD(set, 5) end, 'SGD: options is 5, expected a table')
    assert.falsy(err:find('pairs', 1, true))
    H.assert_error(function() optim.SGD(5) end, 'SGD: the first argument is 5',
                   'expected a model, an ms.params set or a list of tensors')
    H.assert_error(function() optim.Adam():step(function() return 0 end) end,
                   'Adam.step: the optimizer is not bound', 'opt:bind(model_or_params)')
    H.assert_error(function() optim.Adam(ms.zeros(3)) end, 'Adam: the first argument is a float32 tensor')
  end)

  it('refuses unknown options, listing the accepted ones', function()
    H.assert_error(function() optim.SGD(set, { learning_rate = 1 }) end,
                   'SGD: unknown option "learning_rate"', 'lr', 'momentum', 'nesterov', 'on_nonfinite')
    H.assert_error(function() optim.Adam(set, { beta1 = 0.9 }) end, 'Adam: unknown option "beta1"', 'betas')
  end)

  it('checks on_nonfinite', function()
    H.assert_error(function() optim.Adam(set, { on_nonfinite = 'ignore' }) end,
                   'Adam: on_nonfinite is "ignore"', '"error" or "skip"')
  end)

  it('checks hyper-parameters given as functions at the step that reads them', function()
    local w, s = setup()
    local opt = optim.SGD(s, { lr = function(t) return t == 2 and -1 or 0.5 end })
    opt:step(closure(s, 1))                     -- w = -0.5
    local err = H.assert_error(function() opt:step(closure(s, 1)) end,
                               'SGD.step: lr', 'step 2', '-1', '>= 0')
    assert.truthy(err:find('optim_config_spec.lua:', 1, true), err)
    assert.equal(1, opt.t)                      -- the refused step did not count
    assert.equal(-0.5, w:get(1))                -- nor move the parameters
    opt.lr = 0.5
    opt:step(closure(s, 1))
    assert.equal(2, opt.t)
    assert.equal(-1, w:get(1))

    local adam = optim.Adam(s, { betas = function() return { 0.9, 1.5 } end })
    H.assert_error(function() adam:step(closure(s, 1)) end, 'Adam.step: betas', 'step 1', '1.5', '[0, 1)')
    local sgd = optim.SGD(s, { nesterov = true, momentum = function(t) return t < 2 and 0.9 or 0 end })
    sgd:step(closure(s, 1))
    H.assert_error(function() sgd:step(closure(s, 1)) end, 'SGD.step: nesterov', 'momentum > 0')
    -- a field set after construction is checked too
    local later = optim.Adam(s)
    later.eps = 0
    H.assert_error(function() later:step(closure(s, 1)) end, 'Adam.step: eps is 0', '> 0')
  end)

  it('load_state refuses a state from another optimizer', function()
    local _, s = setup()
    local adam = optim.Adam(s)
    adam:step(closure(s, 1))
    H.assert_error(function() optim.SGD(s):load_state(adam:state()) end,
                   'SGD.load_state: the state is from optim.Adam, expected one from optim.SGD')
    local st = adam:state()
    st.optimizer = nil   -- a state without its name still fails on its content
    H.assert_error(function() optim.SGD(s):load_state(st) end,
                   'SGD.load_state: the state holds hyper-parameter', 'another optimizer')
    H.assert_error(function() optim.SGD(s):load_state(5) end, 'SGD.load_state: state is 5')
  end)
end)

describe('non-finite gradients', function()
  for _, name in ipairs { 'SGD', 'Adam', 'AdamW' } do
    it(name .. ': a finite loss with a nan or inf gradient is an error; parameters unchanged', function()
      for _, bad in ipairs { 0 / 0, math.huge, -math.huge } do
        local w, s = setup()
        w:fill_(2)
        local opt = optim[name](s, { lr = 0.1, momentum = name == 'SGD' and 0.9 or nil })
        H.assert_error(function() opt:step(closure(s, { 1, bad, 1, 1 }, 0.5)) end,
                       name .. '.step', 'the loss is 0.5 but the gradients hold non-finite values',
                       'unchanged', "skip_nonfinite = true")
        assert.equal(0, opt.t)
        assert.equal(8, w:sum())
      end
    end)
  end

  it("on_nonfinite = 'skip' skips and counts such steps; the next good step is the first", function()
    local w, s = setup()
    local opt = optim.Adam(s, { lr = 0.1, on_nonfinite = 'skip' })
    assert.equal(0.5, opt:step(closure(s, { 0 / 0, 1, 1, 1 }, 0.5)))
    assert.equal(1, opt.skipped)
    assert.equal(0, opt.t)
    assert.equal(0, w:abs():sum())
    assert.equal(0, opt.buffers.exp_avg:abs():sum())
    opt:step(closure(s, 1))
    assert.equal(1, opt.t)
    assert.near(-0.1, w:get(1), 1e-7)          -- Adam's first step is lr in size
  end)

  it('huge finite gradients are not mistaken for non-finite ones', function()
    local w, s = setup()
    local opt = optim.SGD(s, { lr = 0 })
    opt:step(closure(s, 3e38))
    assert.equal(1, opt.t)
    assert.equal(0, w:abs():sum())
  end)
end)
