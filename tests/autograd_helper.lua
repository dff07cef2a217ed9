-- tests/autograd_helper.lua — ms.autograd's gradients against central finite differences
-- in float64. AG.check(f, params, opts): f(params) returns a one-element tensor; every
-- parameter coordinate (or opts.samples of them per tensor) is moved by +-h and the
-- difference quotient compared with the gradient ms.autograd.grad gives.
-- AG.check_op(op, args, opts): the same for f = sum(op(args...) * r), r a fixed random
-- tensor of the output's shape; args[i] with opts.wrt[i] (default: every float tensor
-- argument) are differentiated. Both return the worst relative error.
local ms = require 'moonstep'
local H = require 'helper'

local AG = {}

local function sample(n, k, seed)
  if n <= k then local all = {}; for i = 1, n do all[i] = i end; return all end
  local r, picked, seen = H.lcg(seed), {}, {}
  while #picked < k do
    local i = math.floor((r() + 1) / 2 * n) + 1
    if i >= 1 and i <= n and not seen[i] then seen[i] = true; picked[#picked + 1] = i end
  end
  return picked
end

-- The element at flat position i of t (any strides), read and written through a
-- contiguous copy's index arithmetic: t:get/set with the multi-index of i.
local function index_of(t, i)
  local idx, rest = {}, i - 1
  for d = t:dim(), 1, -1 do
    local s = t:size(d)
    idx[d] = rest % s + 1
    rest = math.floor(rest / s)
  end
  return idx
end

function AG.check(f, params, opts)
  opts = opts or {}
  local tol, h, k = opts.tol or 1e-6, opts.h or 1e-6, opts.samples or 40
  local grads = ms.autograd.grad(f)(params)
  local list, glist = {}, {}
  if ms.is_tensor(params) then list, glist = { params }, { grads }
  else
    for key, p in pairs(params) do list[#list + 1] = p; glist[#glist + 1] = grads[key] end
  end
  -- (outside the tape a sum is a Lua number)
  local function value()
    local v = ms.no_grad(f, params)
    return type(v) == 'number' and v or v:item()
  end
  local worst = 0
  for j, p in ipairs(list) do
    assert(ms.is_tensor(glist[j]), 'no gradient tensor for parameter ' .. j)
    for _, i in ipairs(sample(p:numel(), k, j)) do
      local idx = index_of(p, i)
      local v = p:get(unpack(idx))
      idx[#idx + 1] = v + h; p:set(unpack(idx)); local fp = value()
      idx[#idx] = v - h; p:set(unpack(idx)); local fm = value()
      idx[#idx] = v; p:set(unpack(idx))
      table.remove(idx)
      local a, num = glist[j]:get(unpack(idx)), (fp - fm) / (2 * h)
      local err = math.abs(a - num) / math.max(opts.floor or 1e-3, math.abs(a) + math.abs(num))
      worst = math.max(worst, err)
      assert(err < tol, ('%s: parameter %d, element %d: ms.autograd gives %.12g, finite differences %.12g')
        :format(opts.what or 'gradient', j, i, a, num))
    end
  end
  return worst
end

-- op(args...) differentiated with respect to its float tensor arguments (opts.wrt: a
-- list of argument positions to restrict to).
function AG.check_op(op, args, opts)
  opts = opts or {}
  local out = ms.no_grad(op, unpack(args, 1, opts.nargs or #args))
  if type(out) == 'number' then out = ms.full({}, out, { dtype = 'float64' }) end   -- (a number off the tape)
  local r = ms.empty(out:shape(), { dtype = 'float64' }):normal_(0, 1, { seed = opts.seed or 7 })
  if out.device ~= 'cpu' then r = r:to(out.device) end
  local pos = opts.wrt
  if not pos then
    pos = {}
    for i = 1, opts.nargs or #args do
      local a = args[i]
      if ms.is_tensor(a) and (a.dtype == 'float64' or a.dtype == 'float32') then pos[#pos + 1] = i end
    end
  end
  local params = {}
  for j, i in ipairs(pos) do params[j] = args[i] end
  local function f(p)
    local a = { unpack(args, 1, opts.nargs or #args) }
    for j, i in ipairs(pos) do a[i] = p[j] end
    return (op(unpack(a, 1, opts.nargs or #args)) * r):sum()
  end
  return AG.check(f, params, opts)
end

return AG
