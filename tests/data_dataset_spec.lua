-- Dataset and fashion_mnist: every argument and option is checked, with messages that
-- name the method and the argument (no raw Lua errors).
local ms = require 'moonstep'
local H = require 'helper'

local function err(f, ...)
  local e = H.assert_error(f, ...)
  for _, bad in ipairs { 'attempt to', 'bad argument' } do assert.is_nil(e:find(bad, 1, true), e) end
  return e
end

describe('Dataset arguments', function()
  local function ds() return ms.data.Dataset(ms.arange(20):view(10, 2), ms.arange(1, 11, 'int64')) end

  it('batches: batch size an integer >= 1, options checked', function()
    local d = ds()
    for _, bad in ipairs { 0, -1, 1.5, 'a', 0 / 0, math.huge } do
      err(function() d:batches(bad) end, 'Dataset.batches: batch size is', 'expected an integer >= 1')
    end
    err(function() d:batches(4, { shufle = true }) end, 'Dataset.batches: unknown option "shufle"', 'drop_last, seed, shuffle')
    err(function() d:batches(4, { shuffle = 'yes' }) end, 'Dataset.batches: shuffle is "yes"', 'true or false')
    err(function() d:batches(4, { drop_last = 1 }) end, 'Dataset.batches: drop_last is 1')
    err(function() d:batches(4, { shuffle = true, seed = -1 }) end, 'Dataset.batches: seed is -1')
    err(function() d:batches(4, { shuffle = true, seed = 0.5 }) end, 'Dataset.batches: seed is 0.5')
    err(function() d:batches(4, { seed = 1 }) end, 'Dataset.batches: a seed was given without shuffle = true')
    err(function() d.batches(4) end, 'Dataset.batches: called on 4', 'ds:batches(...) with a colon')
    local n = 0
    for _ in d:batches(100) do n = n + 1 end     -- larger than the dataset: one batch
    assert.equal(1, n)
  end)

  it('subset, split, normalize, to, the constructor', function()
    local d = ds()
    err(function() d:subset(0) end, 'Dataset.subset: first is 0', 'in [1, 11]')
    err(function() d:subset(2, 10) end, 'Dataset.subset: count is 10', 'in [0, 9]')
    err(function() d:subset(1, -1) end, 'Dataset.subset: count is -1')
    err(function() d:subset({ 1, 11 }) end, 'Dataset.subset: indices[2] is 11', 'in [1, 10]')
    err(function() d:subset({ 1.5 }) end, 'Dataset.subset: indices[1] is 1.5')
    err(function() d:subset({}) end, 'Dataset.subset: indices is an empty table')
    err(function() d:subset(ms.tensor({ 0, 3 }, 'int64')) end, 'Dataset.subset: indices hold values in [0, 3], expected 1 to 10')
    err(function() d:subset(ms.tensor({ 1, 3 })) end, 'Dataset.subset: indices is a float32 tensor', '1-d int64')
    err(function() d:subset('a') end, 'Dataset.subset: expected (first [, count])')
    assert.equal(0, d:subset(11):size())
    assert.same({ 3, 1 }, d:subset(ms.tensor({ 3, 1 }, 'int64')).y:totable())
    for _, bad in ipairs { 0, 1, -0.5, 'half', 0 / 0 } do
      err(function() d:split(bad) end, 'Dataset.split: fraction is', 'strictly between 0 and 1')
    end
    err(function() d:split(0.5, 1.5) end, 'Dataset.split: seed is 1.5')
    err(function() d:split(0.01) end, 'Dataset.split: fraction 0.01 of 10 examples leaves one part empty')
    err(function() d:normalize('a', 1) end, 'Dataset.normalize: mean is "a"')
    err(function() d:normalize(0, 0) end, 'Dataset.normalize: std is 0', '> 0')
    err(function() d:normalize(0, 0 / 0) end, 'Dataset.normalize: std is nan')
    err(function() d:to('tpu') end, 'Dataset.to: device is "tpu"')
    err(function() ms.data.Dataset(ms.zeros(2), 5) end, 'Dataset: y is 5, expected a tensor')
    local freed = ms.zeros(2)
    freed:free()
    err(function() ms.data.Dataset(freed, ms.zeros(2)) end, 'Dataset: x', 'freed')
    err(function() ms.data.Dataset(ms.zeros(3, 2), ms.zeros(4)) end, 'same first dimension')
    err(function() ms.data.Dataset(ms.zeros(0, 2), ms.zeros(0)):mean_std() end, 'Dataset.mean_std: the dataset is empty')
  end)

  it('fashion_mnist checks its split and options before touching files', function()
    err(function() ms.data.fashion_mnist('validation') end, 'fashion_mnist: split is "validation"', '"train" or "test"')
    err(function() ms.data.fashion_mnist(1) end, 'fashion_mnist: split is 1')
    err(function() ms.data.fashion_mnist('test', { shape = 'square' }) end, 'fashion_mnist: shape is "square"', '"flat" or "image"')
    err(function() ms.data.fashion_mnist('test', { dirr = '/x' }) end, 'fashion_mnist: unknown option "dirr"', 'dir, shape')
    err(function() ms.data.fashion_mnist('test', { dir = 5 }) end, 'fashion_mnist: dir is 5')
    err(function() ms.data.fashion_mnist('test', { dir = '/nonexistent' }) end, 'dataset-fashion-mnist', 'apt-get install')
  end)
end)
