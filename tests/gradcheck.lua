-- tests/gradcheck.lua — central finite differences in float64 against a module's
-- backward. The objective is f = sum(forward(x) * r) for a fixed random r, so the
-- gradient backward receives is r; inputs and parameters are checked at sampled
-- coordinates (all of them when small; tests/helper.lua's H.sample).
local ms = require 'moonstep'
local H = require 'helper'

local G = {}

-- grads (a flat view) against the difference quotients of f at k sampled positions of
-- values (a flat view); the relative error has an absolute floor of 1e-2 for tiny
-- derivatives (the difference quotient itself carries ~1e-9 of rounding noise).
local function check_flat(what, f, values, grads, k, seed, tol, h)
  for _, i in ipairs(H.sample(values:numel(), k, seed)) do
    local num = H.central_difference(f, function() return values:get(i) end,
                                     function(v) values:set(i, v) end, h)
    H.assert_derivative(grads:get(i), num, tol, 1e-2, 'backward', ('%s: coordinate %d'):format(what, i))
  end
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
  if opts.check_input ~= false then
    check_flat('gradInput', f, x:view(-1), gx:contiguous():view(-1), k, 1, tol, h)
  end
  if #m:parameters() > 0 then
    check_flat('parameter gradient', f, m:flat_parameters(), m:flat_gradients(), k, 2, tol, h)
  end
end

-- crit: a loss; x float64 [N, ...]; target as the loss expects.
function G.check_loss(crit, x, target, opts)
  opts = opts or {}
  local tol, h = opts.tol or 1e-6, opts.h or 1e-5
  crit:forward(x, target)
  local gx = crit:backward(x, target):contiguous():view(-1)
  check_flat('loss gradient', function() return crit:forward(x, target) end, x:view(-1), gx,
             opts.samples or 40, 3, tol, h)
end

return G
