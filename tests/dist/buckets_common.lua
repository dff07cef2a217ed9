-- The bucketed gradient all-reduce's problem (tests/dist_buckets_spec.lua, run on 2 ranks by
-- tests/dist/buckets_traj.lua): a 3-layer tanh MLP in float64, MSE (a mean) on a fixed
-- batch of 16; rank r of `world` takes its contiguous share. Every mode is an optimizer and
-- a way to run the steps:
--   sgd / adam                 bucket_mb = 1e-4 (a bucket after every Linear: several per step)
--   sgd_flat                   bucket_mb = false (one all-reduce after the closure)
--   sgd_default                bucket_mb unset (1 MB: one bucket, the whole arena, at the end)
--   sgd_manual                 the caller's backward, then opt:step()
--   sgd_twice                  one closure, two backwards (the share's halves; gradients summed)
--   sgd_nosync                 the first half's backward under no_sync, the second's synced
--   sgd_late_nosync            the first half's backward synced, the second's under no_sync
--   sgd_switch                 bucket_mb false at step 3, back to 1e-4 at step 5
--   sgd_error                  step 2's backward raises halfway (caught): no step taken
--   lbfgs                      every closure evaluation bucketed
-- run(mode, rank, world, steps) -> losses, final parameters (Lua lists), the plan's
-- counters {nbuckets, rounds, early} (nil with one process: no plan)
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim

local N = 16

local M = {}

local MAKE = {
  sgd = function(m) return optim.SGD(m, { lr = 0.1, momentum = 0.9, bucket_mb = 1e-4 }) end,
  adam = function(m) return optim.Adam(m, { lr = 0.02, bucket_mb = 1e-4 }) end,
  sgd_flat = function(m) return optim.SGD(m, { lr = 0.1, momentum = 0.9, bucket_mb = false }) end,
  sgd_default = function(m) return optim.SGD(m, { lr = 0.1, momentum = 0.9 }) end,
  lbfgs = function(m) return optim.LBFGS(m, { lr = 0.5, max_iter = 3, bucket_mb = 1e-4 }) end,
}

function M.run(mode, rank, world, steps)
  ms.manual_seed(7)
  local x = ms.randn({ N, 8 }, { dtype = 'float64' })
  local y = ms.randn({ N, 4 }, { dtype = 'float64' })
  local n = N / world
  local xs, ys = x:narrow(1, rank * n + 1, n), y:narrow(1, rank * n + 1, n)
  ms.manual_seed(1)
  local model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 4))
  model:to('float64')
  local crit = nn.MSELoss()
  local function pass(a, b)
    local out = model:forward(a)
    local loss = crit:forward(out, b)
    model:backward(a, crit:backward(out, b))
    return loss
  end
  local opt = (MAKE[mode] or MAKE.sgd)(model)
  local h = n / 2
  local x1, y1, x2, y2 = xs:narrow(1, 1, h), ys:narrow(1, 1, h), xs:narrow(1, h + 1, h), ys:narrow(1, h + 1, h)
  local losses = {}
  for s = 1, steps do
    local loss
    if mode == 'sgd_manual' then
      model:zero_grad()
      loss = pass(xs, ys)
      opt:step()
    elseif mode == 'sgd_twice' then
      loss = opt:step(function() return (pass(x1, y1) + pass(x2, y2)) / 2 end)
    elseif mode == 'sgd_nosync' then
      model:zero_grad()
      local l1 = opt:no_sync(function() return pass(x1, y1) end)
      loss = (l1 + pass(x2, y2)) / 2
      opt:step()
    elseif mode == 'sgd_late_nosync' then
      model:zero_grad()
      local l1 = pass(x1, y1)
      loss = (l1 + opt:no_sync(function() return pass(x2, y2) end)) / 2
      opt:step()
    elseif mode == 'sgd_error' and s == 2 then
      local lin = model.modules[3]
      local backward = lin.backward
      lin.backward = function() error('stop halfway') end
      local ok = pcall(opt.step, opt, function() return pass(xs, ys) end)
      assert(not ok, 'the closure should have raised')
      lin.backward = nil
      loss = 0 / 0
    else
      if mode == 'sgd_switch' then
        if s >= 3 and s < 5 then opt.bucket_mb = false else opt.bucket_mb = 1e-4 end
      end
      loss = opt:step(function() return pass(xs, ys) end)
    end
    losses[s] = loss
  end
  local plan = rawget(model, '_dist_buckets')
  local counters = plan and { plan.nbuckets, plan.rounds, plan.early }
  return losses, model:flat_parameters():totable(), counters
end

-- The one-process reference of a mode on `world` ranks: the whole batch, the same steps
-- (the modes that sum two halves' gradients take twice the mean's gradient).
function M.reference(mode, steps)
  if mode == 'sgd_twice' or mode == 'sgd_nosync' or mode == 'sgd_late_nosync' then
    -- the sum of each rank's two halves, averaged over 2 ranks = the whole batch's mean
    -- gradient times 2: an SGD on the whole batch with lr doubled (momentum is linear)
    return M.run_scaled(steps, 2)
  end
  local base = (mode == 'adam' or mode == 'lbfgs') and mode or 'sgd_flat'
  local losses, params = M.run(base, 0, 1, mode == 'sgd_error' and steps - 1 or steps)
  return losses, params
end

-- SGD momentum on the whole batch with its gradient scaled by k (in the closure).
function M.run_scaled(steps, k)
  ms.manual_seed(7)
  local x = ms.randn({ N, 8 }, { dtype = 'float64' })
  local y = ms.randn({ N, 4 }, { dtype = 'float64' })
  ms.manual_seed(1)
  local model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 4))
  model:to('float64')
  local crit = nn.MSELoss()
  local opt = MAKE.sgd_flat(model)
  local losses = {}
  for s = 1, steps do
    losses[s] = opt:step(function()
      local out = model:forward(x)
      local loss = crit:forward(out, y)
      model:backward(x, crit:backward(out, y))
      model:flat_gradients():mul_(k)
      return loss
    end)
  end
  return losses, model:flat_parameters():totable()
end

local numbers = dofile('tests/dist/numbers.lua')   -- (lines of numbers, exactly)
M.format, M.parse = numbers.format, numbers.parse

return M
