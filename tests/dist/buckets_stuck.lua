-- Run by tests/dist_buckets_spec.lua under mpirun: rank 1 stops answering (sleeps) in its
-- second step's backward, after its first bucket started; rank 0's wait for the buckets must
-- end with an error after the timeout (2 s), not hang.
local ms = require 'moonstep'
local ffi = require 'ffi'
local nn, optim = ms.nn, ms.optim
local r = ms.dist.init { timeout = 2 }
ms.manual_seed(1)
local model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))
local opt = optim.SGD(model, { lr = 0.1, bucket_mb = 1e-4 })
local x, y, crit = ms.randn({ 4, 8 }), ms.randn({ 4, 4 }), nn.MSELoss()
ffi.cdef 'unsigned int sleep(unsigned int s);'
local tanh = model.modules[2]
for step = 1, 2 do
  if step == 2 and r == 1 then
    tanh.backward = function(self, ...) ffi.C.sleep(6); return nn.Tanh.backward(self, ...) end
  end
  local ok, err = pcall(opt.step, opt, function()
    local out = model:forward(x)
    local loss = crit:forward(out, y)
    model:backward(x, crit:backward(out, y))
    return loss
  end)
  if not ok then print(('rank %d: error: %s'):format(r, tostring(err))) break end
end
