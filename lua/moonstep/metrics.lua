-- moonstep.metrics — evaluating a model on a dataset, in evaluation mode and in
-- batches; the model's mode is restored afterwards.
--   ms.metrics.accuracy(model, ds [, {batch = 1000}])         fraction correct (argmax)
--   ms.metrics.evaluate(model, ds, crit [, {batch = 1000}])   {loss = mean loss, accuracy =}
local M = {}

local function run(model, ds, crit, opts)
  opts = opts or {}
  local was_training = model.training
  model:evaluate()
  local correct, loss, n = 0, 0, 0
  local ok, err = pcall(function()
    for x, y in ds:batches(opts.batch or 1000) do
      local out = model:forward(x)
      local m = x:size(1)
      if crit then loss = loss + crit:forward(out, y) * m end
      if y.dtype == 'int64' and out:dim() == 2 then
        correct = correct + out:argmax(2):to('float32'):eq(y:to('float32')):sum()
      end
      n = n + m
    end
  end)
  model:train(was_training)
  if not ok then error(err, 0) end
  return correct / n, loss / n
end

function M.accuracy(model, ds, opts)
  local acc = run(model, ds, nil, opts)
  return acc
end

function M.evaluate(model, ds, crit, opts)
  local acc, loss = run(model, ds, crit, opts)
  return { loss = loss, accuracy = acc }
end

return M
