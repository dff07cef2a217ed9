-- Elementwise ops and reductions: float32 results against float64 references
-- computed in plain Lua, on contiguous and strided inputs, with broadcasting.
local ms = require 'moonstep'
local H = require 'helper'

local function sigmoid(v) return 1 / (1 + math.exp(-v)) end
local function sign(v) return v > 0 and 1 or v < 0 and -1 or 0 end

local unary = {
  neg = function(v) return -v end, abs = math.abs, exp = math.exp, tanh = math.tanh,
  sigmoid = sigmoid, relu = function(v) return math.max(v, 0) end, sign = sign,
  square = function(v) return v * v end,
}
local positive = {   -- need x > 0
  log = math.log, sqrt = math.sqrt, rsqrt = function(v) return 1 / math.sqrt(v) end,
  reciprocal = function(v) return 1 / v end,
}

describe('unary ops', function()
  for _, dtype in ipairs { 'float32', 'float64' } do
    local tol = dtype == 'float32' and 2e-6 or 1e-12
    for name, f in pairs(unary) do
      it(name .. ' (' .. dtype .. ', contiguous and transposed)', function()
        local x, vals = H.random_tensor({ 7, 5 }, 3, dtype)
        local want = {}
        for i, v in ipairs(vals) do want[i] = f(v * 3) end
        local x3 = x * 3
        H.assert_close(x3[name](x3), want, tol, name)
        -- strided input: same values through a transposed view
        local xt = x3:t():contiguous():t()
        assert.is_false(xt:is_contiguous())
        H.assert_close(xt[name](xt), want, tol, name .. ' strided')
        local inplace = x3:clone()
        inplace[name .. '_'](inplace)
        H.assert_close(inplace, want, tol, name .. '_')
      end)
    end
    for name, f in pairs(positive) do
      it(name .. ' (' .. dtype .. ')', function()
        local x, vals = H.random_tensor({ 33 }, 4, dtype)
        x = x:abs():add(0.01)
        local want = {}
        for i, v in ipairs(vals) do want[i] = f(math.abs(v) + 0.01) end
        H.assert_close(x[name](x), want, dtype == 'float32' and 1e-5 or 1e-12, name)
      end)
    end
  end

  it('clamp, scalar arithmetic and powers', function()
    local x = ms.tensor { -2, -0.5, 0.5, 3 }
    assert.same({ -1, -0.5, 0.5, 1 }, x:clamp(-1, 1):totable())
    assert.same({ 0, 0, 0.5, 3 }, x:clamp(0):totable())
    assert.same({ 4, 0.25, 0.25, 9 }, (x ^ 2):totable())
    H.assert_close(2 ^ x, { 0.25, 2 ^ -0.5, 2 ^ 0.5, 8 }, 1e-6)
    assert.same({ 3, 1.5, 0.5, -2 }, (1 - x):totable())
    H.assert_close(2 / x, { -1, -4, 4, 2 / 3 }, 1e-6)
    assert.same({ -1, 0.5, 1.5, 4 }, (x + 1):totable())
    assert.same({ -4, -1, 1, 6 }, (x * 2):totable())
    assert.same({ -1, -0.25, 0.25, 1.5 }, (x / 2):totable())
    assert.same({ 2, 0.5, -0.5, -3 }, (-x):totable())
  end)
end)

describe('binary ops with broadcasting', function()
  local ref = {
    add = function(a, b) return a + b end, sub = function(a, b) return a - b end,
    mul = function(a, b) return a * b end, div = function(a, b) return a / b end,
    maximum = math.max, minimum = math.min,
    lt = function(a, b) return a < b and 1 or 0 end, ge = function(a, b) return a >= b and 1 or 0 end,
    eq = function(a, b) return a == b and 1 or 0 end,
  }
  local shapes = { { { 4, 3 }, { 4, 3 } }, { { 4, 3 }, { 3 } }, { { 4, 1 }, { 1, 3 } },
                   { { 2, 4, 3 }, { 4, 1 } }, { { 5 }, { 1 } } }
  for name, f in pairs(ref) do
    it(name, function()
      for k, sh in ipairs(shapes) do
        local a = H.random_tensor(sh[1], 10 + k)
        local b = H.random_tensor(sh[2], 20 + k):add(name == 'div' and 3 or 0)
        local out = a[name](a, b)
        -- reference through explicit expansion in Lua
        local shape = out:shape()
        local ae, be = a:expand(shape):contiguous(), b:expand(shape):contiguous()
        local av, bv, want = H.flatten(ae:totable()), H.flatten(be:totable()), {}
        for i = 1, #av do want[i] = f(av[i], bv[i]) end
        H.assert_close(out, want, 1e-6, name .. ' shape ' .. k)
      end
    end)
  end

  it('in-place forms, axpy_ and operators', function()
    local y = ms.tensor { 1, 2, 3 }
    local x = ms.tensor { 10, 20, 30 }
    y:axpy_(0.5, x)
    assert.same({ 6, 12, 18 }, y:totable())
    y:add_(x, -0.5)
    assert.same({ 1, 2, 3 }, y:totable())
    y:mul_(2):sub_(1)
    assert.same({ 1, 3, 5 }, y:totable())
    assert.same({ 11, 23, 35 }, (y + x):totable())
    assert.same({ -9, -17, -25 }, (y - x):totable())
    assert.same({ 10, 60, 150 }, (y * x):totable())
    H.assert_close(y / x, { 0.1, 0.15, 5 / 30 }, 1e-6)
  end)

  it('addcmul, addcdiv, lerp and where', function()
    local t, a, b = ms.tensor { 1, 1 }, ms.tensor { 2, 3 }, ms.tensor { 4, 5 }
    assert.same({ 5, 8.5 }, t:addcmul(0.5, a, b):totable())
    H.assert_close(t:addcdiv(0.5, a, b), { 1.25, 1.3 }, 1e-6)
    assert.same({ 1.5, 2 }, t:lerp(a, 0.5):totable())
    t:addcmul_(a, b)
    assert.same({ 9, 16 }, t:totable())
    local w = ms.where(ms.tensor { 1, 0, 1 }, ms.tensor { 1, 2, 3 }, -1)
    assert.same({ 1, -1, 3 }, w:totable())
  end)

  it('a large op takes the parallel path and matches the serial result', function()
    local a = ms.arange(1e6):mul(0.125)        -- exact in float32
    local b = ms.full({ 1e6 }, 2)
    local c = a * b
    assert.equal(0.25 * 999999, c:get(1e6))
    assert.equal(0.25 * (1e6 - 1) * 1e6 / 2, c:sum())
    assert.equal(0, (c - a:mul(2)):abs():max())
  end)
end)

describe('reductions', function()
  local x, vals = H.random_tensor({ 6, 7 }, 5)
  local function sum(t) local s = 0; for _, v in ipairs(t) do s = s + v end; return s end

  it('sum, mean, max, min, argmax, argmin over all elements', function()
    local s = sum(vals)
    assert.is_true(math.abs(x:sum() - s) < 1e-9)
    assert.is_true(math.abs(x:mean() - s / #vals) < 1e-9)
    local mx, imx, mn, imn = -math.huge, 0, math.huge, 0
    for i, v in ipairs(vals) do
      if v > mx then mx, imx = v, i end
      if v < mn then mn, imn = v, i end
    end
    assert.equal(mx, x:max()); assert.equal(imx, x:argmax())
    assert.equal(mn, x:min()); assert.equal(imn, x:argmin())
  end)

  it('norm and var over all elements', function()
    local ss, s1, mx = 0, 0, 0
    for _, v in ipairs(vals) do ss = ss + v * v; s1 = s1 + math.abs(v); mx = math.max(mx, math.abs(v)) end
    assert.is_true(math.abs(x:norm() - math.sqrt(ss)) < 1e-9)
    assert.is_true(math.abs(x:norm(1) - s1) < 1e-9)
    assert.equal(mx, x:norm(math.huge))
    local m = sum(vals) / #vals
    local v = 0
    for _, a in ipairs(vals) do v = v + (a - m) ^ 2 end
    assert.is_true(math.abs(x:var() - v / (#vals - 1)) < 1e-9)
    assert.is_true(math.abs(x:var(nil, false) - v / #vals) < 1e-9)
  end)

  it('reduce along each dim, with keepdim, on strided input', function()
    local rows, cols = 6, 7
    local t = x:t()   -- [7, 6], non-contiguous
    for _, src in ipairs { x, t:t() } do
      local s1, s2 = src:sum(1), src:sum(2, true)
      assert.same({ cols }, s1:shape()); assert.same({ rows, 1 }, s2:shape())
      for j = 1, cols do
        local want = 0
        for i = 1, rows do want = want + vals[(i - 1) * cols + j] end
        assert.is_true(math.abs(s1:get(j) - want) < 1e-5)
      end
      local vmax, imax = src:max(2)
      for i = 1, rows do
        local best, bi = -math.huge, 0
        for j = 1, cols do
          local v = vals[(i - 1) * cols + j]
          if v > best then best, bi = v, j end
        end
        assert.equal(best, vmax:get(i)); assert.equal(bi, imax:get(i))
      end
    end
    assert.equal('int64', x:argmax(1).dtype)
    H.assert_close(x:mean(2), x:sum(2):div(cols), 1e-6)
    H.assert_close(x:norm(2, 1), x:square():sum(1):sqrt(), 1e-6)
    assert.same({ 6 }, x:var(2):shape())
  end)

  it('argmax and argmin pick the first of equal values, as torch does', function()
    local t = ms.tensor { 1, 3, 3, 2, -1, -1 }
    assert.equal(2, t:argmax()); assert.equal(5, t:argmin())
    local m = ms.tensor { { 0, 5, 5 }, { 7, 7, 1 } }
    assert.same({ 2, 1 }, m:argmax(2):totable())
    local _, idx = m:max(2)
    assert.same({ 2, 1 }, idx:totable())
    local big = ms.zeros(100000)   -- ties across the parallel split, too
    assert.equal(1, big:argmax()); assert.equal(1, big:argmin())
  end)

  it('max propagates NaN', function()
    local t = ms.tensor { 1, 0 / 0, 3 }
    local m = t:max()
    assert.is_true(m ~= m)
  end)

  it('sums float32 in float64 (no loss over many elements)', function()
    local n = 2 ^ 24 + 8
    assert.equal(n, ms.ones(n):sum())
  end)
end)
