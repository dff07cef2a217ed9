-- ms.params: the arena over plain tensors refuses what it could not honour.
local ms = require 'moonstep'
local H = require 'helper'

describe('params', function()
  it('builds one arena over named and listed tensors', function()
    local a, b = ms.ones(2), ms.zeros(3)
    local set = ms.params{ a, w = b }
    assert.equal(5, set:numel())
    a:fill_(7)
    assert.equal(7, set:flat_parameters():get(1))
  end)

  it('refuses a tensor given twice or overlapping views of one storage', function()
    local w = ms.ones(4)
    H.assert_error(function() ms.params{ w, w } end, 'params', 'overlap')
    H.assert_error(function() ms.params{ w, w:narrow(1, 2, 2) } end, 'params', 'overlap')
    -- disjoint views of one storage are fine
    local set = ms.params{ w:narrow(1, 1, 2), w:narrow(1, 3, 2) }
    assert.equal(4, set:numel())
  end)

  it('refuses mixed dtypes, freed tensors, stray keys and non-tables', function()
    H.assert_error(function() ms.params{ ms.ones(2), ms.ones(2, 'float64') } end, 'params', 'float64')
    local f = ms.ones(2); f:free()
    H.assert_error(function() ms.params{ f } end, 'params', 'freed')
    H.assert_error(function() ms.params{ ms.ones(2), [true] = 1 } end, 'params', 'key true')
    H.assert_error(function() ms.params(5) end, 'params', 'expected a table')
    H.assert_error(function() ms.params{} end, 'params', 'no tensors')
  end)

  it('lets modules whose arenas exist nest into a new model', function()
    local l = ms.nn.Linear(2, 3)
    l:flat_parameters()
    local s = ms.nn.Sequential(l, ms.nn.ReLU())
    assert.equal(9, s:flat_parameters():numel())
  end)
end)
