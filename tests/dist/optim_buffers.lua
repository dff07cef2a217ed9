-- Run by tests/dist_optim_spec.lua under mpirun: a model with BatchNorm trained on
-- different data per rank; after each step every rank holds rank 0's running statistics.
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim
local r = ms.dist.rank()
ms.manual_seed(3)
local model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, 2)):to('float64')
local opt = optim.SGD(model, { lr = 0.1 })
local crit = nn.MSELoss()
ms.manual_seed(10 + r)                                   -- each rank its own data
local x, y = ms.randn({ 8, 4 }, { dtype = 'float64' }), ms.randn({ 8, 2 }, { dtype = 'float64' })
for _ = 1, 3 do
  opt:step(function()
    local out = model:forward(x)
    local l = crit:forward(out, y)
    model:backward(x, crit:backward(out, y))
    return l
  end)
end
local bn = model.modules[2]
local mean = bn.running_mean:clone()
local all = ms.dist.all_gather(mean)
local same = (all:select(1, 1) - all:select(1, 2)):abs():max() == 0
print(('rank %d buffers same %s moved %s'):format(r, tostring(same), tostring(mean:abs():max() > 0)))
