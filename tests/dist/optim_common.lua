-- The data-parallel optimizer problem (tests/dist_optim_spec.lua and tests/dist/optim_*.lua):
-- a Linear(4, 6) - tanh - Linear(6, 2) MLP in float64, MSE (a mean) on a fixed batch of 8.
-- Rank r of `world` takes rows r * 8 / world + 1 .. (r + 1) * 8 / world, so the mean of the
-- ranks' losses is the whole batch's loss and one process (world 1) sees all of it.
--   run(which, rank, world, steps, opts) -> losses (one per step), the final parameters
--   (a Lua list); opts.init_seed: the parameters' seed (default 1: the same on every rank)
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim

local N = 8

-- The problem, shared with tests/dist/wsam_traj.lua: the batch, and the model from a seed.
local function data()
  ms.manual_seed(7)
  local x = ms.randn({ N, 4 }, { dtype = 'float64' })
  local y = ms.randn({ N, 2 }, { dtype = 'float64' })
  return x, y
end
local function new_model(seed)
  ms.manual_seed(seed)
  local model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2))
  return model:to('float64')
end

-- The optimizers under test, by name.
local MAKE = {
  sgd = function(m) return optim.SGD(m, { lr = 0.1, momentum = 0.9 }) end,
  adam = function(m) return optim.Adam(m, { lr = 0.02 }) end,
  sam_both = function(m) return optim.SAM(m, { base = optim.SGD { lr = 0.1, momentum = 0.9 }, rho = 0.05, sync = 'both' }) end,
  gsam_both = function(m) return optim.GSAM(m, { base = optim.Adam { lr = 0.02 }, rho = 0.05, sync = 'both' }) end,
  sam_final = function(m) return optim.SAM(m, { base = optim.SGD { lr = 0.1, momentum = 0.9 }, rho = 0.05 }) end,
  sam_accum = function(m)   -- the one-process twin of sam_final on 2 ranks
    return optim.SAM(m, { base = optim.SGD { lr = 0.1, momentum = 0.9 }, rho = 0.05, gradient_accumulation_steps = 2 })
  end,
  wsam_final = function(m) return optim.WSAM(m, { base = optim.SGD { lr = 0.1 }, rho = 0.05 }) end,
  acme = function(m) return optim.ACME(m, { lr = 0.02 }) end,
  lbfgs = function(m) return optim.LBFGS(m, { lr = 0.5, max_iter = 4, line_search_fn = 'strong_wolfe' }) end,
  sgd_nosync = function(m) return optim.SGD(m, { lr = 0.1, momentum = 0.9, distributed = false }) end,
}

local M = {}
M.N, M.data, M.new_model = N, data, new_model

function M.run(which, rank, world, steps, opts)
  opts = opts or {}
  local x, y = data()
  local n = N / world
  local xs, ys = x:narrow(1, rank * n + 1, n), y:narrow(1, rank * n + 1, n)
  local model = new_model(opts.init_seed or 1)
  local crit = nn.MSELoss()
  local function closure_on(a, b)
    return function()
      local out = model:forward(a)
      local loss = crit:forward(out, b)
      model:backward(a, crit:backward(out, b))
      return loss
    end
  end
  local base = which:gsub('_manual$', ''):gsub('_accum2$', '')
  local opt = MAKE[base](model)
  local closure = closure_on(xs, ys)
  local losses = {}
  for s = 1, steps do
    local loss
    if which == 'sam_accum' then        -- one process: the two halves as micro-batches
      opt:step(closure_on(x:narrow(1, 1, N / 2), y:narrow(1, 1, N / 2)))
      loss = opt:step(closure_on(x:narrow(1, N / 2 + 1, N / 2), y:narrow(1, N / 2 + 1, N / 2)))
    elseif which:match('_manual$') then -- the PyTorch habit: backward, then opt:step()
      model:zero_grad()
      loss = closure()
      opt:step()
    elseif which:match('_accum2$') then -- 2 micro-batches of this rank's share, unsynced, then apply
      local h = n / 2
      local c1 = closure_on(xs:narrow(1, 1, h), ys:narrow(1, 1, h))
      local c2 = closure_on(xs:narrow(1, h + 1, h), ys:narrow(1, h + 1, h))
      model:zero_grad()
      local l1 = opt:no_sync(function() return opt:evaluate(c1, { zero_grad = false }) end)
      local l2 = opt:no_sync(function() return opt:evaluate(c2, { zero_grad = false }) end)
      opt.arena.gflat:mul_(0.5)         -- the mean of the two half-share gradients
      opt:apply()                       -- synced here (nothing synced them yet)
      loss = (l1 + l2) / 2
    else
      loss = opt:step(closure)
    end
    losses[s] = loss
  end
  return losses, model:flat_parameters():totable()
end

local numbers = dofile('tests/dist/numbers.lua')   -- (lines of numbers, exactly)
M.format, M.parse = numbers.format, numbers.parse

return M
