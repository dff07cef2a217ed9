-- tests/spsa_misuse_helper.lua — the models, closures and assertions the SPSA misuse specs
-- (optim_spsa_misuse_spec.lua, optim_spsa_misuse_state_spec.lua) share.
local ms = require 'moonstep'
local nn = ms.nn
local optim = ms.optim
local H = require 'helper'

local same_bits = H.same_bits
local SPEC = 'optim_spsa_misuse'

local function mlp(dtype)
  ms.manual_seed(1)
  local m = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
  if dtype == 'float64' then m:double() end
  return m
end

local X, Y
local function data()
  if not X then
    ms.manual_seed(7)
    X = ms.randn({ 8, 6 })
    Y = ms.tensor({ 1, 2, 3, 1, 2, 3, 1, 2 }, { dtype = 'int64' })
  end
  return X, Y
end

local crit = nn.CrossEntropyLoss()

local function closure_for(m)
  local x, y = data()
  return function()
    local p = m:flat_parameters()
    return crit:forward(m:forward(x:to(p.dtype)), y)
  end
end

local function w4(dtype)
  return ms.tensor({ 0.1, 0.2, -0.3, 0.4 }, { dtype = dtype or 'float64' })
end

local function quad(ts)
  return function()
    local s = 0
    for _, w in ipairs(ts) do
      local f = w:contiguous():view(-1)
      for i = 1, f:numel() do s = s + f:get(i) ^ 2 end
    end
    return s
  end
end

-- the error of f, asserted to name SPSA's public function, to be raised at this file's
-- line (check.fail's position) and to contain every fragment
local function refused(f, ...)
  local err = H.assert_error(f, ...)
  assert(err:find('SPSA', 1, true), ('error %q does not name SPSA'):format(err))
  assert(not err:find('attempt to', 1, true) and not err:find('bad argument #', 1, true),
         ('raw Lua error escaped: %q'):format(err))
  assert(err:find(SPEC, 1, true), ('error %q is not positioned at the caller\'s line'):format(err))
  return err
end

-- no layer of m keeps a patched forward (virtual mode patches them during a step)
local function unpatched(m)
  local function visit(mod)
    assert(rawget(mod, 'forward') == nil, 'a layer still has a patched forward: ' .. tostring(mod.__name))
    for _, c in ipairs(mod.modules or {}) do visit(c) end
  end
  visit(m)
end

local function has_nonfinite(t)
  local f = t:to('float64', 'cpu'):contiguous():view(-1)
  for i = 1, f:numel() do
    local v = f:get(i)
    if v ~= v or v == math.huge or v == -math.huge then return true end
  end
  return false
end

-- update = 'mezo' goes through zo_ops.mezo_update, whose signature is being changed; its
-- cases run only when a plain mezo step works in this tree
local mezo_works
local function mezo_ok()
  if mezo_works == nil then
    local w = w4()
    mezo_works = pcall(function() optim.SPSA({ w }, { update = 'mezo', seed = 1 }):step(quad { w }) end)
  end
  return mezo_works
end


return { mlp = mlp, data = data, crit = crit, closure_for = closure_for, w4 = w4, quad = quad, refused = refused, unpatched = unpatched, has_nonfinite = has_nonfinite, mezo_ok = mezo_ok, same_bits = same_bits }
