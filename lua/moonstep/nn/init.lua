-- moonstep.nn — layers and losses (one concept per file), the Torch7 protocol:
--   local model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
--   local out = model:forward(x); model:backward(x, crit:backward(out, y))
-- backward(x, g) must follow forward(x) with that same x (an error otherwise; it never
-- re-runs forward). Constructors take PyTorch's positional arguments, or an options
-- table whose unknown keys are errors; PyTorch options moonstep lacks are refused.
-- As everywhere in moonstep, dims (Softmax(dim), Flatten) and class indices (targets,
-- Embedding indices, padding_idx, ignore_index) are 1-based; negative dims count from
-- the end.
local nn = {
  Module = require 'moonstep.nn.Module',
  Sequential = require 'moonstep.nn.Sequential',
  Linear = require 'moonstep.nn.Linear',
  Conv2d = require 'moonstep.nn.Conv2d',
  Dropout = require 'moonstep.nn.Dropout',
  Flatten = require 'moonstep.nn.Flatten',
  Embedding = require 'moonstep.nn.Embedding',
  LayerNorm = require 'moonstep.nn.LayerNorm',
  Function = require 'moonstep.nn.Function',   -- a Lua function of tensors as a layer (ms.autograd)
  functional = require 'moonstep.nn.forms',   -- the layers' kernels and the functional forms
  batched = require 'moonstep.nn.batched',   -- many perturbed copies of a model in one pass (SPSA)
}
for _, group in ipairs { require 'moonstep.nn.activations', require 'moonstep.nn.Softmax',
                         require 'moonstep.nn.BatchNorm', require 'moonstep.nn.Pool2d',
                         require 'moonstep.nn.losses' } do
  for name, cls in pairs(group) do nn[name] = cls end
end
return require('moonstep.check').strict(nn, 'ms.nn')
