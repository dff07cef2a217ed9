-- model:summary(input_shape): per-layer output shapes and parameter counts from one
-- forward pass in evaluation mode that leaves the model exactly as it was.
local ms = require 'moonstep'
local H = require 'helper'
local nn = ms.nn

-- summary without printing (print is stubbed: the text is also returned)
local function quiet(m, ...)
  return m:summary(..., { print = false })
end

local function cnn()
  ms.manual_seed(1)
  return nn.Sequential(
    nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
    nn.Sequential(nn.Conv2d(4, 6, 3, { padding = 1 }), nn.ReLU(), nn.Dropout(0.5)),
    nn.Flatten(), nn.Linear(6 * 5 * 5, 10))
end

describe('model:summary', function()
  it('lists every layer of an MLP with output shapes and parameter counts', function()
    local m = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    local r = m:summary({ 784 }, { print = false })
    assert.same({ 1, 784 }, r.input_shape)
    assert.equal(4, #r.rows)
    assert.same({ name = '', type = 'Sequential', depth = 0, output_shape = { 1, 10 }, params = 0, buffers = 0, container = true }, r.rows[1])
    assert.same({ '1', 'Linear(784 -> 256)', { 1, 256 }, 200960 }, { r.rows[2].name, r.rows[2].type, r.rows[2].output_shape, r.rows[2].params })
    assert.same({ 1, 256 }, r.rows[3].output_shape)
    assert.equal(2570, r.rows[4].params)
    assert.equal(203530, r.total_params)
    assert.equal(203530, r.trainable_params)
    assert.equal(m:flat_parameters():numel(), r.total_params)
    assert.equal(203530 * 4, r.param_bytes)
    assert.equal((256 + 256 + 10) * 4, r.activation_bytes)
    assert.equal(r.text, tostring(r))
    for _, frag in ipairs { 'Layer (type)', 'Output shape', 'Param #', '1  Linear(784 -> 256)', '[1, 256]', '200,960',
                            'Total parameters: 203,530 (trainable: 203,530)', 'Parameter arena: 814,120 bytes (float32, cpu)' } do
      assert.truthy(r.text:find(frag, 1, true), frag)
    end
    -- the shape is inferred from a first Linear; a number is a one-dimensional shape
    assert.same({ 1, 784 }, quiet(m).input_shape)
    assert.same({ 1, 784 }, quiet(m, 784).input_shape)
  end)

  it('handles a CNN with nested Sequential, BatchNorm, pooling, Flatten', function()
    local m = cnn()
    local r = quiet(m, { 1, 12, 12 })
    local names, shapes = {}, {}
    for i, row in ipairs(r.rows) do names[i] = row.name; shapes[i] = table.concat(row.output_shape, 'x') end
    assert.same({ '', '1', '2', '3', '4', '5', '5.1', '5.2', '5.3', '6', '7' }, names)
    assert.same({ '1x10', '1x4x10x10', '1x4x10x10', '1x4x10x10', '1x4x5x5', '1x6x5x5', '1x6x5x5', '1x6x5x5', '1x6x5x5',
                  '1x150', '1x10' }, shapes)
    assert.equal(2, r.rows[7].depth)
    assert.equal(40 + 8 + 222 + 1510, r.total_params)
    assert.equal(8, r.buffers)                       -- BatchNorm's running mean and variance
    assert.truthy(r.text:find('buffers (non-trainable): 8', 1, true))
    -- a tensor gives the shape with its batch dimension
    local r2 = quiet(m, ms.zeros(3, 1, 12, 12))
    assert.same({ 3, 10 }, r2.rows[1].output_shape)
    assert.same({ 3, 1, 12, 12 }, r2.input_shape)
    assert.same({ 2, 1, 12, 12 }, m:summary({ 1, 12, 12 }, { batch_size = 2, print = false }).input_shape)
  end)

  it('counts every layer type by hand: grouped dilated reflect-padded Conv2d, ceil_mode pools, norms, Embedding', function()
    local m = nn.Sequential(nn.Conv2d(4, 8, 3, { groups = 2, dilation = 2, padding = 2, padding_mode = 'reflect' }),
                            nn.MaxPool2d(3, { stride = 2, ceil_mode = true }), nn.AvgPool2d(2, { ceil_mode = true }),
                            nn.BatchNorm2d(8), nn.LayerNorm({ 8, 3, 3 }), nn.Dropout(0.1), nn.Flatten(), nn.Softmax(2))
    local r = quiet(m, { 4, 11, 11 })
    local shapes = {}
    for i, row in ipairs(r.rows) do shapes[i] = table.concat(row.output_shape, 'x') end
    assert.same({ '1x72', '1x8x11x11', '1x8x5x5', '1x8x3x3', '1x8x3x3', '1x8x3x3', '1x8x3x3', '1x72', '1x72' }, shapes)
    -- conv: 8 * (4 / 2) * 3 * 3 + 8; BatchNorm: 2 * 8 (+ 16 buffers); LayerNorm: 2 * 72
    assert.same({ 152, 0, 0, 16, 144, 0, 0, 0 }, { r.rows[2].params, r.rows[3].params, r.rows[4].params, r.rows[5].params,
                                                   r.rows[6].params, r.rows[7].params, r.rows[8].params, r.rows[9].params })
    assert.equal(312, r.total_params)
    assert.equal(16, r.buffers)
    local e = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(12, 2))
    r = quiet(e, { 3 })                              -- int64 indices of shape {1, 3}
    assert.same({ 1, 2 }, r.rows[1].output_shape)
    assert.equal(40 + 26, r.total_params)
    local d = nn.Sequential(nn.Linear(3, 4), nn.Tanh()):to('float64')
    r = quiet(d)
    assert.equal(16 * 8, r.param_bytes)
    assert.truthy(r.text:find('(float64, cpu)', 1, true))
  end)

  it('lays out deep nesting (wide first column) without trailing blanks', function()
    local m = nn.Linear(2, 2)
    for _ = 1, 60 do m = nn.Sequential(m) end
    local r = quiet(m, { 2 })
    assert.equal(61, #r.rows)
    assert.equal(60, r.rows[61].depth)
    assert.truthy(#r.text:match('\n(%s+[%d.]+  Linear[^\n]*)') > 100)
    assert.falsy(r.text:find(' \n', 1, true))
  end)

  it('leaves the model as it was: modes, BatchNorm statistics, RNG, the forward backward pairs with', function()
    local m = cnn()
    local x = ms.rand(2, 1, 12, 12)
    m:train()
    m.modules[5].modules[3]:evaluate()               -- mixed modes are restored one by one
    local out = m:forward(x):clone()                 -- training forward: statistics move
    local bn = m.modules[2]
    local mean, var = bn.running_mean:clone(), bn.running_var:clone()
    local rng = ms.rng_state()
    quiet(m, { 1, 12, 12 })
    H.same_bits(bn.running_mean, mean, 'running_mean')
    H.same_bits(bn.running_var, var, 'running_var')
    assert.same(rng, ms.rng_state())
    assert.is_true(m.training); assert.is_true(bn.training)
    assert.is_false(m.modules[5].modules[3].training)
    H.same_bits(m.output, out, 'the last output')
    -- backward still pairs with the forward before the summary, and gives its gradients
    local g = ms.ones(2, 10)
    m:zero_grad()
    m:backward(x, g)
    local with = m:flat_gradients():clone()
    local m2 = cnn()
    m2:train(); m2.modules[5].modules[3]:evaluate()
    m2:forward(x); m2:zero_grad(); m2:backward(x, g)
    H.same_bits(with, m2:flat_gradients(), 'gradients after a summary')
  end)

  it('names the layer that failed, refuses cycles, counts a shared module once', function()
    local m = nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.ReLU(), nn.Linear(5, 2)))
    local e = H.assert_error(function() m:summary({ 3 }, { print = false }) end, 'Sequential.summary')
    assert.truthy(e:find('failed at layer 2.2 (Linear): Linear.forward: input has shape [1,4]', 1, true), e)
    local s = nn.Sequential(nn.Linear(2, 2))
    s.modules[2] = s
    H.assert_error(function() s:summary({ 2 }, { print = false }) end,
                   'Sequential.summary: module 2 is the model itself, which contains it (a cycle)')
    local l = nn.Linear(2, 2)
    local s2 = nn.Sequential(l, nn.ReLU())
    s2.modules[3] = l                                -- the same layer twice, behind Sequential's back
    local r = quiet(s2, { 2 })
    assert.equal(6, r.total_params)
    assert.equal(0, r.rows[4].params)
    assert.truthy(r.text:find('3  Linear(2 -> 2) (shared: counted at 1)', 1, true), r.text)
    -- 100 levels deep is a model, not a damaged tree; indentation stops growing
    local deep = nn.Linear(2, 2)
    for _ = 1, 100 do deep = nn.Sequential(deep) end
    r = quiet(deep, { 2 })
    assert.equal(101, #r.rows)
    assert.truthy(r.text:find('\n' .. (' '):rep(16) .. '1%.1%.1%.1%.1%.1%.1%.1%.1  Sequential'), r.text:sub(1, 2000))
  end)

  it('prints the table unless told not to', function()
    local m = nn.Sequential(nn.Linear(3, 2))
    local printed = {}
    local real = _G.print
    _G.print = function(s) printed[#printed + 1] = s end
    local ok, r = pcall(m.summary, m, { 3 })
    local ok2 = pcall(m.summary, m, { 3 }, { print = false })
    _G.print = real
    assert.is_true(ok); assert.is_true(ok2)
    assert.same({ r.text }, printed)
  end)

  it('names summary in every error and leaves the model unchanged after a failure', function()
    local m = cnn()
    m:train()
    local function err(...)
      local args = { ... }
      return H.assert_error(function() m:summary(unpack(args, 1, 2)) end, 'Sequential.summary')
    end
    local e = err({ 3, 12, 12 })
    assert.truthy(e:find('forward pass on a zero input of shape [1, 3, 12, 12] failed at layer 1 (Conv2d): Conv2d.forward', 1, true), e)
    err({ 1, 2 })
    assert.truthy(err(nil):find('input_shape is missing', 1, true))
    assert.truthy(err('x'):find('input_shape is "x"', 1, true))
    assert.truthy(err({ 0, 3 }):find('input_shape[1] is 0', 1, true))
    assert.truthy(err({ 1.5 }):find('input_shape[1] is 1.5', 1, true))
    assert.truthy(err({ 4096, 4096, 4096 }):find('expected at most', 1, true))
    assert.truthy(err({ a = 1 }):find('input_shape', 1, true))
    assert.truthy(err({ 1, 12, 12 }, { bogus = 1 }):find('unknown option "bogus"', 1, true))
    assert.truthy(err({ 1, 12, 12 }, { batch_size = 0 }):find('batch_size', 1, true))
    local freed = ms.zeros(1, 1, 12, 12); freed:free()
    assert.truthy(err(freed):find('freed', 1, true))
    assert.is_true(m.training)
    assert.is_nil(rawget(m, 'output'))
    -- a layer on its own, and a loss (two inputs) says why it cannot be summarized
    assert.equal(6, quiet(nn.Linear(2, 2), { 2 }).total_params)
    H.assert_error(function() nn.MSELoss():summary({ 2 }, { print = false }) end, 'MSELoss.summary')
    -- a damaged tree is named, never a raw Lua error
    local s = nn.Sequential(nn.Linear(2, 2))
    s.modules[2] = 5
    H.assert_error(function() s:summary({ 2 }, { print = false }) end, 'Sequential.summary: module 2 is 5, expected a module')
    s.modules[2] = nil
    s.modules[1]._params = 7
    H.assert_error(function() s:summary({ 2 }, { print = false }) end, 'module 1 (a Linear) has no _params')
    -- without the colon
    H.assert_error(function() m.summary({ 1, 12, 12 }) end, 'summary')
  end)
end)
