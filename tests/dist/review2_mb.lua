-- Run by tests/dist_review2_spec.lua under mpirun on 2 ranks: opt.bucket_mb set after
-- construction to a value the constructor refuses; the next step must refuse it too, with a
-- message naming the optimizer and bucket_mb. Rank 0 prints "value: <error or ok>" per value.
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim
local r = ms.dist.init { timeout = 30 }
for _, v in ipairs { -1, 0, 1 / 0, 'x', true } do
  ms.manual_seed(1)
  local model = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 4))
  local opt = optim.SGD(model, { lr = 0.01 })
  local x, y, crit = ms.randn({ 2, 4 }), ms.randn({ 2, 4 }), nn.MSELoss()
  opt.bucket_mb = v
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
  if r == 0 then print(('%s: %s'):format(tostring(v), ok and 'ok' or tostring(err):gsub('\n', ' '))) end
end
