-- ms.metrics: evaluation in batches, with checked arguments.
local ms = require 'moonstep'
local nn = ms.nn
local H = require 'helper'

describe('ms.metrics', function()
  ms.manual_seed(0)
  local model = nn.Sequential(nn.Linear(3, 4))
  local x = ms.randn(10, 3)
  local ds = ms.data.Dataset(x, model:forward(x):argmax(2))   -- labels the model predicts

  it('accuracy and evaluate, in any batch size; the mode is restored', function()
    model:train()
    assert.equal(1, ms.metrics.accuracy(model, ds, { batch = 3 }))
    local r = ms.metrics.evaluate(model, ds, nn.CrossEntropyLoss(), { batch = 4 })
    assert.equal(1, r.accuracy)
    assert.is_true(r.loss > 0 and r.loss < math.huge)
    assert.is_true(model.training)
  end)

  it('refuses bad arguments with the function and argument named', function()
    H.assert_error(function() ms.metrics.accuracy(model, ds, { batch = 0 }) end,
                   'metrics.accuracy: batch is 0', 'integer >= 1')
    H.assert_error(function() ms.metrics.accuracy(model, ds, { bacth = 10 }) end,
                   'metrics.accuracy: unknown option "bacth"', 'batch')
    H.assert_error(function() ms.metrics.accuracy(5, ds) end, 'metrics.accuracy: model is 5')
    H.assert_error(function() ms.metrics.accuracy(model, {}) end, 'metrics.accuracy: dataset is a table')
    H.assert_error(function() ms.metrics.evaluate(model, ds) end, 'metrics.evaluate: criterion is nil')
    H.assert_error(function() ms.metrics.accuracy(model, ds:subset(1, 0)) end, 'the dataset is empty')
  end)
end)
