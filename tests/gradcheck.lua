-- tests/gradcheck.lua — central finite differences in float64 against a module's
-- backward. The objective is f = sum(forward(x) * r) for a fixed random r, so the
-- gradient backward receives is r; inputs and parameters are checked at sampled
-- coordinates (all of them when small).
local ms = require 'moonstep'
local H = require 'helper'

local G = {}

local function sample(n, k, seed)
  if n <= k then local all = {}; for i = 1, n do all[i] = i end; return all end
  local r, picked, seen = H.lcg(seed), {}, {}
  while #picked < k do
    local i = math.floor((r() + 1) / 2 * n) + 1
    if i >= 1 and i <= n and not seen[i] then seen[i] = true; picked[#picked + 1] = i end
  end
  return picked
end

-- Compare analytic and numeric derivatives; returns the worst relative error.
local function compare(what, analytic, numeric, tol)
  local worst = 0
  for i = 1, #analytic do
    local a, n = analytic[i], numeric[i]
    -- relative error, with an absolute floor of tol * 1e-2 for tiny derivatives (the
    -- difference quotient itself carries ~1e-9 of rounding noise)
    local err = math.abs(a - n) / math.max(1e-2, math.abs(a) + math.abs(n))
    worst = math.max(worst, err)
    assert(err < tol, ('%s: coordinate %d: backward gives %.10g, finite differences %.10g'):format(what, i, a, n))
  end
  return worst
end

-- m: a module in float64; x: float64 input (or an int64 index tensor for Embedding,
-- with check_input = false). opts: tol, h, samples, check_input.
function G.check_module(m, x, opts)
  opts = opts or {}
  local tol, h, k = opts.tol or 1e-6, opts.h or 1e-5, opts.samples or 30
  local y = m:forward(x)
  local r = ms.empty(y:shape(), 'float64'):normal_(0, 1, { seed = 99 })
  local function f() return ms.dot(m:forward(x), r) end
  m:zero_grad()
  m:forward(x)
  local gx = m:backward(x, r)
  -- values/grads: flat views; compares at sampled coordinates
  local function check_flat(what, values, grads, seed)
    local an, nu = {}, {}
    for j, i in ipairs(sample(values:numel(), k, seed)) do
      local v = values:get(i)
      values:set(i, v + h); local fp = f()
      values:set(i, v - h); local fm = f()
      values:set(i, v)
      an[j], nu[j] = grads:get(i), (fp - fm) / (2 * h)
    end
    compare(what, an, nu, tol)
  end
  if opts.check_input ~= false then
    check_flat('gradInput', x:view(-1), gx:contiguous():view(-1), 1)
  end
  if #m:parameters() > 0 then
    check_flat('parameter gradient', m:flat_parameters(), m:flat_gradients(), 2)
  end
end

-- crit: a loss; x float64 [N, ...]; target as the loss expects.
function G.check_loss(crit, x, target, opts)
  opts = opts or {}
  local tol, h = opts.tol or 1e-6, opts.h or 1e-5
  crit:forward(x, target)
  local gx = crit:backward(x, target):contiguous():view(-1)
  local flat = x:view(-1)
  local an, nu = {}, {}
  for j, i in ipairs(sample(x:numel(), opts.samples or 40, 3)) do
    local v = flat:get(i)
    flat:set(i, v + h); local fp = crit:forward(x, target)
    flat:set(i, v - h); local fm = crit:forward(x, target)
    flat:set(i, v)
    an[j], nu[j] = gx:get(i), (fp - fm) / (2 * h)
  end
  compare('loss gradient', an, nu, tol)
end

return G
