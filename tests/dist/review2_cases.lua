-- Run by tests/dist_review2_spec.lua under mpirun on 2 ranks: `review2_cases.lua CASES OUT`.
-- Each case trains the same float64 MLP (nn.Sequential) twice, with bucket_mb = 1e-4 (a
-- bucket after every Linear) and with bucket_mb = false (one flat all-reduce), each rank on
-- its own data; rank 0 writes "case diff=<max |bucketed - flat|>" or "case err=<message>"
-- per case to OUT. The two must agree up to rounding.
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim
local cases, out = arg[1], arg[2]
local r = ms.dist.init { timeout = 30 }
local crit = nn.MSELoss()

local function setup(mb, make)
  ms.manual_seed(1)
  local model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))
  model:to('float64')
  local opt = make and make(model, mb) or optim.SGD(model, { lr = 0.1, bucket_mb = mb })
  ms.manual_seed(10 + r)                   -- each rank its own batch
  local x, y = ms.randn({ 4, 8 }, { dtype = 'float64' }), ms.randn({ 4, 4 }, { dtype = 'float64' })
  return model, opt, x, y
end
local function pass(model, x, y)
  local o = model:forward(x)
  local l = crit:forward(o, y)
  model:backward(x, crit:backward(o, y))
  return l
end

local C = {}
-- gradient accumulation over two micro-batches, the second's backward raises in child 1
-- (after child 3's bucket was summed), caught; then opt:step()
function C.abandon(mb)
  local model, opt, x, y = setup(mb)
  model:zero_grad()
  pass(model, x, y)
  local lin = model.modules[1]
  lin.backward = function() error('a bad micro-batch') end
  assert(not pcall(pass, model, x, y))
  lin.backward = nil
  opt:step()
  return model:flat_parameters()
end
-- a backward outside any step (a diagnostic), zero_grad, then a step whose closure takes
-- its gradients from ms.autograd (no Sequential backward): they must still be averaged
function C.stale(mb)
  local model, opt, x, y = setup(mb)
  pass(model, x, y)
  model:zero_grad()
  local F = nn.functional
  local vg = ms.autograd.value_and_grad(function(m, a, b)
    local L1, L2 = m.modules[1], m.modules[3]
    local o = F.linear(ms.tanh(F.linear(a, L1.weight, L1.bias)), L2.weight, L2.bias)
    return ms.mean(ms.pow(ms.sub(o, b), 2))
  end)
  opt:step(function() return (vg(model, x, y)) end)
  return model:flat_parameters()
end
-- the model's first optimizer is distributed (its plan is on the model); the user trains
-- with a second one, distributed = false: its closure's backward must not be averaged
function C.other_opt(mb)
  local model, _, x, y = setup(mb, function(m, b) return optim.Adam(m, { lr = 0.01, bucket_mb = b }) end)
  local opt2 = optim.SGD(model, { lr = 0.1, distributed = false })
  opt2:step(function() return pass(model, x, y) end)
  return model:flat_parameters()
end

-- the caller's own bucketed backward (averaged), then ms.autograd adds a second batch's
-- gradients into the arena (each rank its own), then opt:step(): they must be averaged too
function C.autograd_after(mb)
  local model, opt, x, y = setup(mb)
  model:zero_grad()
  pass(model, x, y)
  local F = nn.functional
  local vg = ms.autograd.value_and_grad(function(m, a, b)
    local L1, L2 = m.modules[1], m.modules[3]
    local o = F.linear(ms.tanh(F.linear(a, L1.weight, L1.bias)), L2.weight, L2.bias)
    return ms.mean(ms.pow(ms.sub(o, b), 2))
  end)
  vg(model, x:mul(0.5), y)
  opt:step()
  return model:flat_parameters()
end

local f = r == 0 and assert(io.open(out, 'w'))
for name in cases:gmatch('[^,]+') do
  local ok1, a = pcall(C[name], 1e-4)
  local ok2, b = pcall(C[name], false)
  if f then
    if ok1 and ok2 then f:write(('%s diff=%.17g\n'):format(name, ms.sub(a, b):abs():max()))
    else f:write(('%s err=%s\n'):format(name, tostring(ok1 and b or a):gsub('\n', ' '))) end
  end
end
if f then f:close() end
