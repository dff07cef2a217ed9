-- moonstep.metrics — evaluating a model on a dataset, in evaluation mode and in
-- batches; the model's mode is restored afterwards.
--   ms.metrics.accuracy(model, ds [, {batch = 1000}])         fraction correct (argmax)
--   ms.metrics.evaluate(model, ds, crit [, {batch = 1000}])   {loss = mean loss, accuracy =}
local check = require 'moonstep.check'

local M = {}

local function run(who, model, ds, crit, opts)
  opts = check.options(who, opts, { 'batch' })
  local batch = check.integer(who, 'batch', opts.batch or 1000, 1)
  if type(check.field(model, 'forward')) ~= 'function' or type(check.field(model, 'evaluate')) ~= 'function'
     or rawget(model, '__index') == model then                          -- a class, not a model
    check.fail('%s: model is %s, expected an nn module', who, check.describe(model))
  end
  if type(check.field(ds, 'batches')) ~= 'function' or rawget(ds, '__index') == ds then
    check.fail('%s: dataset is %s, expected an ms.data.Dataset', who, check.describe(ds))
  end
  if (crit ~= nil or who == 'metrics.evaluate') and (type(check.field(crit, 'forward')) ~= 'function'
                                                       or rawget(crit, '__index') == crit) then
    check.fail('%s: criterion is %s, expected a loss module', who, check.describe(crit))
  end
  if ds:size() == 0 then check.fail('%s: the dataset is empty', who) end
  local was_training = model.training
  model:evaluate()
  local correct, loss, n = 0, 0, 0
  local ok, err = pcall(function()
    for x, y in ds:batches(batch) do
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
  -- an error of the model or the criterion on this data: say which public call met it
  if not ok then check.raise(who .. ': ' .. tostring(err):gsub('^[^:\n]*:%d+: ', '')) end
  return correct / n, loss / n
end

function M.accuracy(model, ds, opts)
  local acc = run('metrics.accuracy', model, ds, nil, opts)
  return acc
end

function M.evaluate(model, ds, crit, opts)
  local acc, loss = run('metrics.evaluate', model, ds, crit, opts)
  return { loss = loss, accuracy = acc }
end

return check.strict(M, 'ms.metrics')
