-- ms.experiment.grid: the product over list-valued fields, dotted keys, the order
-- (axes sorted, seed fastest), base merged and copied; its misuse errors.
local ms = require 'moonstep'
local H = require 'helper'
local E = ms.experiment

describe('experiment.grid', function()
  it('is the product in a fixed order: axes sorted by name, seed fastest, the last axis fastest', function()
    local list = E.grid { seed = { 1, 2, 3 }, optimizer = { 'SGD', 'Adam' }, lr = { 0.1, 0.01 } }
    assert.equal(12, #list)
    local got = {}
    for i, e in ipairs(list) do got[i] = ('%s/%s/%s'):format(e.lr, e.optimizer, e.seed) end
    local want = {}
    for _, lr in ipairs { 0.1, 0.01 } do
      for _, o in ipairs { 'SGD', 'Adam' } do
        for _, s in ipairs { 1, 2, 3 } do want[#want + 1] = ('%s/%s/%s'):format(lr, o, s) end
      end
    end
    assert.same(want, got)
    -- the same call gives the same list (no dependence on pairs order)
    local again = E.grid { lr = { 0.1, 0.01 }, optimizer = { 'SGD', 'Adam' }, seed = { 1, 2, 3 } }
    for i = 1, 12 do assert.same(list[i], again[i]) end
  end)

  it('varies seed fastest also when a name sorts after it', function()
    local list = E.grid { seed = { 1, 2 }, threads = { 1, 2 }, ['data.train'] = { 100 } }
    local got = {}
    for i, e in ipairs(list) do got[i] = e.threads .. '/' .. e.seed end
    assert.same({ '1/1', '1/2', '2/1', '2/2' }, got)
  end)

  it('merges base (deep-copied) and single values; dotted keys reach into tables', function()
    local base = { epochs = 2, optimizer = { 'SAM', base = { 'SGD', lr = 0.05 } }, data = { train = 512 } }
    local list = E.grid({ ['optimizer.rho'] = { 0.02, 0.05 }, ['optimizer.base.momentum'] = { 0, 0.9 },
                          batch_size = 64, ['data.test'] = 256 }, base)
    assert.equal(4, #list)
    assert.same({ 0, 0.02 }, { list[1].optimizer.base.momentum, list[1].optimizer.rho })
    assert.same({ 0, 0.05 }, { list[2].optimizer.base.momentum, list[2].optimizer.rho })
    assert.same({ 0.9, 0.02 }, { list[3].optimizer.base.momentum, list[3].optimizer.rho })
    for _, e in ipairs(list) do
      assert.equal(64, e.batch_size)
      assert.equal(2, e.epochs)
      assert.same({ train = 512, test = 256 }, e.data)
      assert.equal('SAM', e.optimizer[1])
      assert.equal(0.05, e.optimizer.base.lr)
    end
    assert.are_not.equal(list[1].optimizer, list[2].optimizer)   -- fresh tables
    assert.is_nil(base.optimizer.rho)                              -- base untouched
    assert.is_nil(base.data.test)
  end)

  it('turns a string into its table when a dotted key goes through it', function()
    local list = E.grid({ ['optimizer.lr'] = { 0.1, 0.2 } }, { optimizer = 'Adam' })
    assert.same({ 'Adam', lr = 0.1 }, list[1].optimizer)
    assert.equal('Adam', E.normalize(list[2]).optimizer.class)
    assert.equal(0.2, E.normalize(list[2]).optimizer.lr)
  end)

  it('takes a list of lists as an axis of list values; no axis gives the base alone', function()
    local list = E.grid { ['model.sizes'] = { { 784, 16, 10 }, { 784, 32, 10 } } }
    assert.equal(2, #list)
    assert.same({ 784, 32, 10 }, list[2].model.sizes)
    local one = E.grid({ epochs = 3 }, { seed = 4 })
    assert.same({ { epochs = 3, seed = 4 } }, one)
  end)

  it('rejects what is not a grid, naming grid and the argument', function()
    H.assert_error(function() E.grid(5) end, 'grid', 'axes is 5')
    H.assert_error(function() E.grid({ lr = { 1 } }, 'x') end, 'grid', 'base is "x"')
    H.assert_error(function() E.grid { [1] = { 1, 2 } } end, 'grid', 'key 1')
    H.assert_error(function() E.grid { ['a..b'] = { 1, 2 } } end, 'grid', 'axis name "a..b"')
    H.assert_error(function() E.grid({ ['optimizer.rho'] = { 1 } }, { optimizer = 5 }) end, 'grid',
                   'goes through optimizer', 'is 5')
  end)
end)

describe('experiment.grid with a NULL pointer as base (fuzzer finding)', function()
  it('refuses it by name instead of indexing it', function()
    local H = require 'helper'
    H.assert_error(function() ms.experiment.grid({ lr = { 1, 2 } }, require('ffi').cast('void *', 0)) end,
                   'experiment.grid', 'base', 'cdata')
  end)
end)
