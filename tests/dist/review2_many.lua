-- Run by tests/dist_review2_spec.lua under mpirun on 2 ranks: a Sequential of 300 Linear
-- layers with bucket_mb = 1e-5 (a bucket per layer: more than the plugin's 256 started
-- all-reduces in flight) takes two steps; each rank prints "rank R ok" or "rank R err <msg>".
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim
local r = ms.dist.init { timeout = 30 }
local mods = {}
for i = 1, 300 do mods[i] = nn.Linear(4, 4) end
ms.manual_seed(1)
local model = nn.Sequential(unpack(mods))
local opt = optim.SGD(model, { lr = 0.01, bucket_mb = 1e-5 })
local x, y, crit = ms.randn({ 2, 4 }), ms.randn({ 2, 4 }), nn.MSELoss()
local ok, err = pcall(function()
  for _ = 1, 2 do
    opt:step(function()
      local o = model:forward(x)
      local l = crit:forward(o, y)
      model:backward(x, crit:backward(o, y))
      return l
    end)
  end
end)
print(ok and ('rank %d ok'):format(r) or ('rank %d err %s'):format(r, tostring(err)))
