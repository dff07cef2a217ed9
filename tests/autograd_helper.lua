-- tests/autograd_helper.lua — ms.autograd's gradients against central finite differences
-- in float64. AG.check(f, params, opts): f(params) returns a one-element tensor; every
-- parameter coordinate (or opts.samples of them per tensor) is moved by +-h and the
-- difference quotient compared with the gradient ms.autograd.grad gives.
-- AG.check_op(op, args, opts): the same for f = sum(op(args...) * r), r a fixed random
-- tensor of the output's shape; args[i] with opts.wrt[i] (default: every float tensor
-- argument) are differentiated. Both return the worst relative error.
-- AG.agree_across(loss, inputs, tol, opts): loss's gradients in float32 against float64
-- (or on CUDA against the CPU), for the "dtypes and devices" cases of the rule specs;
-- AG.cuda_it(it, pending): it() for the CUDA ones (pending without a GPU).
-- AG.randn(...), AG.transposed(a, b), AG.narrowed(a, b): float64 inputs.
local ms = require 'moonstep'
local H = require 'helper'

local AG = {}

-- Fresh float64 normal inputs: AG.randn(3, 4) [3, 4]; AG.transposed(a, b) and
-- AG.narrowed(a, b) non-contiguous [a, b] views (a transpose, a narrow of wider rows).
function AG.randn(...) return ms.randn({ ... }, { dtype = 'float64' }) end
function AG.transposed(a, b) return AG.randn(b, a):t() end
function AG.narrowed(a, b) return AG.randn(a, b + 3):narrow(2, 2, b) end

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
local function set_at(t, idx, v)
  idx[#idx + 1] = v
  t:set(unpack(idx))
  idx[#idx] = nil
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
    for _, i in ipairs(H.sample(p:numel(), k, j)) do
      local idx = index_of(p, i)
      local num = H.central_difference(value, function() return p:get(unpack(idx)) end,
                                       function(v) set_at(p, idx, v) end, h)
      local err = H.assert_derivative(glist[j]:get(unpack(idx)), num, tol, opts.floor or 1e-3, 'ms.autograd',
        ('%s: parameter %d, element %d'):format(opts.what or 'gradient', j, i))
      worst = math.max(worst, err)
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

-- The two sides AG.agree_across compares: { dtype, device } of the side checked, then
-- of the reference.
local ACROSS = {
  float32 = { { 'float32', 'cpu' }, { 'float64', 'cpu' } },   -- float32 against float64
  cuda = { { 'float32', 'cuda' }, { 'float32', 'cpu' } },     -- CUDA against the CPU
}

local function map(list, fn)
  local out = {}
  for i, v in ipairs(list) do out[i] = fn(v) end
  return out
end

-- loss(p, c)'s gradients (ms.autograd.grad, with respect to p) with inputs (a tensor or a
-- list of tensors) converted to the side checked, against those with the inputs converted
-- to the reference side: opts.across = 'float32' (default: float32 against float64 on the
-- CPU) or 'cuda' (float32 on CUDA against float32 on the CPU). Every gradient has the
-- checked side's dtype and device, every reference value is finite, and every value is
-- within tol of the reference's (H.assert_close: relative, absolute below 1).
-- opts.const: a list of tensors converted the same way and passed to loss as c, not
-- differentiated (weights, masks); opts.what names the case in a failure. Returns the
-- checked side's gradients and the reference's, as lists.
function AG.agree_across(loss, inputs, tol, opts)
  opts = opts or {}
  local sides = assert(ACROSS[opts.across or 'float32'], 'agree_across: across is float32 or cuda')
  local function grads(side)
    local function conv(t) return t:to(side[2], side[1]) end
    local p = ms.is_tensor(inputs) and conv(inputs) or map(inputs, conv)
    local c = opts.const and map(opts.const, conv)
    local g = ms.autograd.grad(function(q) return loss(q, c) end)(p)
    return ms.is_tensor(g) and { g } or g
  end
  local ref = grads(sides[2])
  local got = grads(sides[1])
  local what = opts.what or 'gradient'
  assert(#got == #ref and #ref > 0, what .. ': no gradient, or not one per input')
  for i = 1, #ref do
    local where = ('%s (argument %d, %s on %s)'):format(what, i, sides[1][1], sides[1][2])
    assert(got[i].dtype == sides[1][1] and got[i].device == sides[1][2],
           ('%s: the gradient is %s on %s'):format(where, got[i].dtype, got[i].device))
    local want = H.flatten(ref[i]:to('cpu', 'float64'):totable())
    for j, w in ipairs(want) do
      assert(w == w and math.abs(w) < math.huge, ('%s: the reference is %s at element %d'):format(where, w, j))
    end
    H.assert_close(got[i]:to('cpu', 'float64'), want, tol, where)
  end
  return got, ref
end

-- it() for a CUDA case: a pending one, saying why, without a usable GPU (H.gate).
function AG.cuda_it(it, pending)
  return H.gate(it, pending, ms.cuda.is_available(), ms.cuda.why())
end

return AG
