-- The helpers the layers and their functional forms share (written once after the review
-- of issue 12): the dropout stream (random.take_stream), the pooling window and a
-- convolution's padding (nn/window.lua), the class-target rows (nn/class_rows.lua),
-- check.float_tensor / check.given. Each is checked through both of its callers.
local ms = require 'moonstep'
local H = require 'helper'
local nn, F = ms.nn, ms.nn.functional
local random = require 'moonstep.random'
local check = require 'moonstep.check'

describe('shared helpers of the layers and the functional forms', function()
  it('dropout: each draw takes one stream of the global generator (Module and form alike)', function()
    ms.manual_seed(11)
    local s0 = ms.rng_state()
    local gen = random.take_stream()
    assert.are.same(s0, gen)
    assert.are.same({ seed = s0.seed, stream = s0.stream + 1 }, ms.rng_state())
    local x = ms.ones(200, { dtype = 'float64' })
    local d = nn.Dropout(0.5)
    local a = d:forward(x):clone()
    local b = d:forward(x):clone()
    assert.are.same({ seed = s0.seed, stream = s0.stream + 3 }, ms.rng_state())
    assert.is_true((a - b):abs():max() > 0, 'two forwards drew the same mask')
    local fa, fb = F.dropout(x, 0.5), F.dropout(x, 0.5)
    assert.are.same({ seed = s0.seed, stream = s0.stream + 5 }, ms.rng_state())
    assert.is_true((fa - fb):abs():max() > 0, 'two calls drew the same mask')
    -- the same stream gives the same mask through either caller
    ms.set_rng_state(s0)
    random.take_stream()
    H.same_bits(F.dropout(x, 0.5), a, 'form vs Module, same stream')
  end)

  it('pooling window and conv padding: one rule for the Module and the form', function()
    H.assert_error(function() nn.MaxPool2d(2, 2, 2) end, 'MaxPool2d', 'padding 2', 'half the kernel size 2')
    H.assert_error(function() F.max_pool2d(ms.ones(1, 1, 4, 4), 2, 2, 2) end, 'nn.functional.max_pool2d',
                   'padding 2', 'half the kernel size 2')
    H.assert_error(function() F.avg_pool2d(ms.ones(1, 1, 4, 4)) end, 'nn.functional.avg_pool2d', 'kernel_size is missing')
    H.assert_error(function() nn.Conv2d(1, 1, 3, 2, 'same') end, 'Conv2d', "padding='same'", 'stride 2x2')
    H.assert_error(function() F.conv2d(ms.ones(1, 1, 4, 4), ms.ones(1, 1, 3, 3), nil, 2, 'same') end,
                   'nn.functional.conv2d', "padding='same'", 'stride 2x2')
    H.assert_error(function() F.conv2d(ms.ones(1, 1, 4, 4), ms.ones(1, 1, 3, 3), nil, 1, 'full') end,
                   'nn.functional.conv2d', "padding is \"full\"")
    -- 'same' with an even kernel: the extra row/column at the bottom/right (as PyTorch)
    local m = nn.Conv2d(1, 1, 2, { padding = 'same', bias = false })
    assert.are.same({ 0, 1, 0, 1 }, { m._geom.pt, m._geom.pb, m._geom.pl, m._geom.pr })
    local x = ms.randn(1, 1, 5, 5)
    H.same_bits(F.conv2d(x, m.weight, nil, 1, 'same'), m:forward(x), 'same padding, form vs Module')
    local p = nn.AvgPool2d(3, 2, 1, true)
    local x2 = ms.randn(2, 3, 7, 7)
    H.same_bits(F.avg_pool2d(x2, 3, 2, 1, true), p:forward(x2), 'avg pool, form vs Module')
  end)

  it('class rows: the target checks of the loss Modules and the forms, each named', function()
    local x = ms.randn(2, 3, 4)
    local bad = ms.ones(2, 3, { dtype = 'int64' })
    H.assert_error(function() nn.CrossEntropyLoss():forward(x, bad) end, 'CrossEntropyLoss.forward',
                   'expected int64 class indices of shape [2,4]')
    H.assert_error(function() F.cross_entropy(x, bad) end, 'nn.functional.cross_entropy',
                   'expected int64 class indices of shape [2,4]')
    H.assert_error(function() F.nll_loss(x, x) end, 'nn.functional.nll_loss', 'class-probability targets')
    local t = ms.tensor({ { 1, 2, 3, 1 }, { 3, 3, 2, 1 } }, { dtype = 'int64' })
    local crit = nn.CrossEntropyLoss('none')
    H.same_bits(F.cross_entropy(x, t, 'none'), crit:forward(x, t), 'per-element losses')
  end)

  it('check.float_tensor and check.given', function()
    local x = ms.ones(2, { dtype = 'float64' })
    assert.are.equal(x, check.float_tensor('f', 'input', x))
    H.assert_error(function() check.float_tensor('f', 'input', ms.ones(2, { dtype = 'int64' })) end,
                   'f: input is', 'expected a float32 or float64 tensor')
    H.assert_error(function() check.float_tensor('f', 'bias', ms.ones(2), x) end,
                   'f: bias is', 'expected float64 on cpu (as the input)')
    H.assert_error(function() check.float_tensor('f', 'w', ms.ones(2), x, "(the layer's)") end, "(the layer's)")
    H.assert_error(function() check.float_tensor('f', 'input', 3) end, 'f: input is 3, expected a tensor')
    assert.is_true(check.given(false))
    assert.is_false(check.given(nil))
    assert.is_true(check.given(require('ffi').cast('void *', 0)))    -- a NULL pointer is given
  end)
end)
