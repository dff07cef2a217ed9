-- tests/lbfgs_problems.lua — the problems of the LBFGS fixture (tests/fixtures/lbfgs.lua,
-- scripts/fixtures/lbfgs.py) as moonstep builds them: problems.mlp / quadratic /
-- rosenbrock(dtype [, device]) -> target (what the optimizer binds), flat parameters,
-- closure. Shared by optim_lbfgs_spec.lua and optim_lbfgs_protocol_spec.lua.
local ffi = require 'ffi'
local ms = require 'moonstep'
local fx = require 'fixtures.lbfgs'
local decode = require 'fixture_decode'

local function tensor64(list, shape, dtype)
  return ms.tensor(list, { dtype = 'float64' }):view(shape):to(dtype)
end

local problems = {}

-- A float32 user's loss is a float32 value (torch's closure returns a float32 tensor);
-- moonstep's reductions return float64 numbers: the test closures round them.
local f32 = ffi.new('float[1]')
local function as_dtype(x, dtype)
  if dtype ~= 'float32' then return x end
  f32[0] = x
  return tonumber(f32[0])
end

-- returns target (what the optimizer binds), flat parameters, closure
function problems.mlp(dtype)
  local pr = fx.problems.mlp
  local nn = ms.nn
  local model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
  model:to(dtype)
  local flat = model:flat_parameters()
  flat:copy_(ms.tensor(decode(pr[dtype], dtype), { dtype = dtype }))
  local x = tensor64(decode(pr.x, 'float64'), { 8, 6 }, dtype)
  local y = tensor64(decode(pr.y, 'float64'), { 8, 3 }, dtype)
  local crit = nn.MSELoss()
  local function closure()
    local out = model:forward(x)
    local loss = crit:forward(out, y)
    model:backward(x, crit:backward(out, y))
    return as_dtype(loss, dtype)
  end
  return model, flat, closure
end

function problems.quadratic(dtype, device)
  local pr = fx.problems.quadratic
  local n = pr.n
  local a = tensor64(decode(pr.a, 'float64'), { n, n }, dtype):to(device or 'cpu')
  local b = tensor64(decode(pr.b, 'float64'), { n }, dtype):to(device or 'cpu')
  local set = ms.params { ms.tensor(decode(pr[dtype], dtype), { dtype = dtype }):to(device or 'cpu') }
  local p, g = set.flat, set.gflat
  local function closure()
    local ax = ms.matmul(a, p)
    g:copy_(ax - b)
    return as_dtype(as_dtype(0.5 * as_dtype(ms.dot(p, ax), dtype), dtype) - as_dtype(ms.dot(b, p), dtype), dtype)
  end
  return set, p, closure
end

function problems.rosenbrock(dtype)
  local pr = fx.problems.rosenbrock
  local n = pr.n
  local set = ms.params { ms.tensor(decode(pr[dtype], dtype), { dtype = dtype }) }
  local p, g = set.flat, set.gflat
  local head, tail = p:narrow(1, 1, n - 1), p:narrow(1, 2, n - 1)
  local function closure()
    local r = tail - head * head
    local one = 1 - head
    g:narrow(1, 1, n - 1):copy_(-400 * head * r - 2 * one)
    g:narrow(1, 2, n - 1):add_(200 * r)
    return as_dtype((100 * r * r + one * one):sum(), dtype)
  end
  return set, p, closure
end

return problems
