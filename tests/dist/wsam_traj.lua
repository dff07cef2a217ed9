-- WSAM with sync = 'final' on several ranks (tests/dist_wsam_spec.lua). As a module
-- (dofile): the problem, WSAM's run on it, and an INDEPENDENT reference of the official
-- dlrover order written as explicit arithmetic (no optimizer: the model's forward and
-- backward give gradients, the rest is Lua numbers). As a script under mpirun:
--   wsam_traj.lua STEPS OUT     every run of M.RUNS on this rank's share; rank r writes
--                               "NAME losses=... params=... skipped=N" lines to OUT.r
-- The problem: tests/dist/optim_common.lua's (a Linear(4, 6) - tanh - Linear(6, 2) MLP in
-- float64, MSE on a fixed batch of 8, rank r of `world` takes rows r * 8 / world + 1 ..
-- (r + 1) * 8 / world), with WSAM around a plain SGD (lr 0.1, no momentum), rho 0.05,
-- gamma 0.9.
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim

local M = {}
local N, LR, RHO, GAMMA, EPS = 8, 0.1, 0.05, 0.9, 1e-12

-- The runs: WSAM's options, and fault = {step = s, pass = k, micro = j}: on rank 1 (of
-- 2), step s's pass k (nil: both) of micro-batch j (nil: every one) sees a NaN in its input.
M.RUNS = {
  dec = { decouple = true },
  cpl = { decouple = false },
  dec_clip = { decouple = true, max_norm = 0.05 },
  cpl_clip = { decouple = false, max_norm = 0.05 },
  -- two micro-batches of the rank's share per update
  acc_clip = { decouple = false, max_norm = 0.05, gradient_accumulation_steps = 2 },
  acc = { decouple = false, gradient_accumulation_steps = 2 },
  -- rank 1's step 2 is non-finite: in pass 1 (its data), or in pass 2 only
  dec_clip_nan1 = { decouple = true, max_norm = 0.05, fault = { step = 2 } },
  dec_clip_nan2 = { decouple = true, max_norm = 0.05, fault = { step = 2, pass = 2 } },
  cpl_nan1 = { decouple = false, fault = { step = 2 } },
  acc_clip_nan2 = { decouple = false, max_norm = 0.05, gradient_accumulation_steps = 2,
                    fault = { step = 2, pass = 2, micro = 1 } },
}
M.ORDER = { 'dec', 'cpl', 'dec_clip', 'cpl_clip', 'acc_clip', 'acc', 'dec_clip_nan1', 'dec_clip_nan2', 'cpl_nan1',
            'acc_clip_nan2' }

local problem = dofile('tests/dist/optim_common.lua')   -- (the same batch and model)
assert(problem.N == N)
local data = problem.data
local function model() return problem.new_model(1) end

local crit = nn.MSELoss()

-- closure(pass) on rows a..a+n-1; poison(pass) -> true: the input holds a NaN.
local function closure_on(m, x, y, a, n, poison)
  local xs, ys = x:narrow(1, a, n), y:narrow(1, a, n)
  local bad = xs:clone()
  bad:view(-1):narrow(1, 1, 1):fill_(0 / 0)
  return function(pass)
    local input = (poison and poison(pass)) and bad or xs
    local out = m:forward(input)
    local loss = crit:forward(out, ys)
    m:backward(input, crit:backward(out, ys))
    return loss
  end
end

-- WSAM on rank `rank` of `world` for `steps` updates -> losses, final parameters (a Lua
-- list), opt.skipped.
function M.train(name, rank, world, steps)
  local cfg = M.RUNS[name]
  local x, y = data()
  local m = model()
  local o = { base = optim.SGD { lr = LR }, rho = RHO, gamma = GAMMA, decouple = cfg.decouple }
  if cfg.max_norm then o.max_norm = cfg.max_norm end
  local A = cfg.gradient_accumulation_steps or 1
  if A > 1 then o.gradient_accumulation_steps = A end
  local opt = optim.WSAM(m, o)
  local share = N / world
  local losses = {}
  for s = 1, steps do
    local f = cfg.fault
    for k = 1, A do   -- micro-batch k: rows of this rank's share
      local function poison(pass)
        return f ~= nil and rank == 1 and s == f.step and (f.pass == nil or f.pass == pass) and
               (f.micro == nil or f.micro == k)
      end
      local n = share / A
      losses[#losses + 1] = opt:step(closure_on(m, x, y, rank * share + (k - 1) * n + 1, n, poison))
    end
  end
  return losses, m:flat_parameters():totable(), opt.skipped
end

-- Lua-number vector helpers.
local function norm(v)
  local s = 0
  for i = 1, #v do s = s + v[i] * v[i] end
  return math.sqrt(s)
end

local function clip(v, max_norm)   -- torch.nn.utils.clip_grad_norm_
  if not max_norm then return v end
  local coef = max_norm / (norm(v) + 1e-6)
  if coef >= 1 then return v end
  local out = {}
  for i = 1, #v do out[i] = v[i] * coef end
  return out
end

-- The official order on `world` ranks, as arithmetic: per micro-batch, each rank's g1 at
-- w on its rows, e_r = rho g1_r / (||g1_r|| + eps) from its LOCAL g1, g2_r at w + e_r;
-- g1 = clip(mean_r g1_r), g2 = clip(mean_r g2_r); the direction g1 + alpha (g2 - g1)
-- (decoupled with plain SGD: w - lr g1 - lr alpha (g2 - g1), the same step); micro-batch
-- directions averaged. skip = {[s] = true}: step s is skipped (the weights stay);
-- {[s] = j}: micro-batch j of step s is left out (the others' directions averaged).
-- Returns the final parameters (a Lua list) and the largest norm of the averaged g1 and g2
-- seen (so a test can tell that max_norm clipped).
function M.reference(name, world, steps, skip)
  local cfg = M.RUNS[name]
  local x, y = data()
  local m = model()
  local flat, gflat = m:flat_parameters(), m:flat_gradients()
  local w = flat:totable()
  local P = #w
  local A = cfg.gradient_accumulation_steps or 1
  local a = GAMMA / (1 - GAMMA)
  local share = N / world
  local biggest = 0
  local function grad_at(v, c)
    flat:copy_(ms.tensor(v, 'float64'))
    m:zero_grad()
    c(1)
    return gflat:totable()
  end
  -- micro-batch k's direction at w: the ranks' g1 and g2 averaged, then clipped
  local function micro_direction(k)
    local g1, g2 = {}, {}
    for i = 1, P do g1[i], g2[i] = 0, 0 end
    for r = 0, world - 1 do
      local n = share / A
      local c = closure_on(m, x, y, r * share + (k - 1) * n + 1, n)
      local l1 = grad_at(w, c)                 -- rank r's local g1
      local scale = RHO / (norm(l1) + EPS)     -- e_r from it
      local we = {}
      for i = 1, P do we[i] = w[i] + scale * l1[i] end
      local l2 = grad_at(we, c)                -- rank r's g2 at w + e_r
      for i = 1, P do
        g1[i] = g1[i] + l1[i] / world
        g2[i] = g2[i] + l2[i] / world
      end
    end
    biggest = math.max(biggest, norm(g1), norm(g2))
    g1, g2 = clip(g1, cfg.max_norm), clip(g2, cfg.max_norm)
    local d = {}
    for i = 1, P do d[i] = g1[i] + a * (g2[i] - g1[i]) end
    return d
  end
  for s = 1, steps do
    local left_out = skip and skip[s]
    if left_out ~= true then
      local d = {}
      for i = 1, P do d[i] = 0 end
      local used = left_out and A - 1 or A
      for k = 1, A do
        if k ~= left_out then
          local dk = micro_direction(k)
          for i = 1, P do d[i] = d[i] + dk[i] / used end
        end
      end
      for i = 1, P do w[i] = w[i] - LR * d[i] end
    end
  end
  flat:copy_(ms.tensor(w, 'float64'))
  return w, biggest
end

local numbers = dofile('tests/dist/numbers.lua')   -- (lines of numbers, exactly)
M.format, M.parse = numbers.format, numbers.parse

-- As a script (bin/moonstep tests/dist/wsam_traj.lua STEPS OUT).
if type(arg) == 'table' and type(arg[0]) == 'string' and arg[0]:match('wsam_traj%.lua$') then
  local steps, out = tonumber(arg[1]), arg[2]
  local r, n = ms.dist.init { timeout = 60 }
  local f = assert(io.open(out .. '.' .. r, 'w'))
  for _, name in ipairs(M.ORDER) do
    local losses, params, skipped = M.train(name, r, n, steps)
    f:write(('%s losses=%s params=%s skipped=%d\n'):format(name, M.format(losses), M.format(params), skipped))
  end
  f:close()
end

return M
