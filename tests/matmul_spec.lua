-- matmul / bmm / dot against a naive triple loop in Lua, on odd shapes, both
-- transpose flags, transposed views and batches.
local ms = require 'moonstep'
local H = require 'helper'

-- C = op(A) op(B) from flat row-major values.
local function naive(av, bv, m, k, n, ta, tb)
  local out = {}
  for i = 1, m do
    for j = 1, n do
      local s = 0
      for p = 1, k do
        local a = ta and av[(p - 1) * m + i] or av[(i - 1) * k + p]
        local b = tb and bv[(j - 1) * k + p] or bv[(p - 1) * n + j]
        s = s + a * b
      end
      out[#out + 1] = s
    end
  end
  return out
end

describe('matmul', function()
  for _, dtype in ipairs { 'float32', 'float64' } do
    local tol = dtype == 'float32' and 1e-5 or 1e-12
    for _, dims in ipairs { { 1, 1, 1 }, { 3, 5, 7 }, { 17, 1, 9 }, { 33, 65, 31 } } do
      local m, k, n = dims[1], dims[2], dims[3]
      for _, flags in ipairs { { false, false }, { true, false }, { false, true }, { true, true } } do
        local ta, tb = flags[1], flags[2]
        it(('%s %dx%dx%d trans_a=%s trans_b=%s'):format(dtype, m, k, n, tostring(ta), tostring(tb)), function()
          local a, av = H.random_tensor(ta and { k, m } or { m, k }, m + k, dtype)
          local b, bv = H.random_tensor(tb and { n, k } or { k, n }, k + n + 1, dtype)
          local want = naive(av, bv, m, k, n, ta, tb)
          H.assert_close(ms.matmul(a, b, { transpose_a = ta, transpose_b = tb }), want, tol)
          -- the same product through transposed views instead of flags
          local av2 = ta and a:t() or a
          local bv2 = tb and b:t() or b
          H.assert_close(ms.matmul(av2, bv2), want, tol)
        end)
      end
    end
  end

  it('copies views BLAS cannot take (no unit stride)', function()
    local big = H.random_tensor({ 8, 10 }, 3)
    local a = big:view(8, 5, 2):select(3, 1)          -- [8, 5], strides [10, 2]
    assert.same({ 10, 2 }, a:stride())
    local b, bv = H.random_tensor({ 5, 3 }, 4)
    local av = H.flatten(a:totable())
    H.assert_close(ms.matmul(a, b), naive(av, bv, 8, 5, 3), 1e-5)
  end)

  it('alpha, beta and out accumulate', function()
    local a, b = ms.ones(2, 3), ms.ones(3, 2)
    local c = ms.full({ 2, 2 }, 1)
    ms.matmul(a, b, { out = c, alpha = 2, beta = 0.5 })
    assert.same({ { 6.5, 6.5 }, { 6.5, 6.5 } }, c:totable())
  end)

  it('batched (bmm) and broadcast over the batch', function()
    local a, av = H.random_tensor({ 3, 4, 5 }, 8)
    local b, bv = H.random_tensor({ 3, 5, 2 }, 9)
    local c = ms.bmm(a, b)
    assert.same({ 3, 4, 2 }, c:shape())
    for bi = 1, 3 do
      local as, bs = {}, {}
      for i = 1, 20 do as[i] = av[(bi - 1) * 20 + i] end
      for i = 1, 10 do bs[i] = bv[(bi - 1) * 10 + i] end
      H.assert_close(c:select(1, bi), naive(as, bs, 4, 5, 2), 1e-5)
    end
    local w = b:select(1, 2)
    local cw = ms.matmul(a, w)   -- [3,4,5] @ [5,2]
    H.assert_close(cw:select(1, 3), ms.matmul(a:select(1, 3), w), 1e-6)
  end)

  it('vectors: matrix-vector and dot', function()
    local m = ms.tensor { { 1, 2 }, { 3, 4 } }
    assert.same({ 5, 11 }, ms.matmul(m, ms.tensor { 1, 2 }):totable())
    assert.same({ 7, 10 }, ms.matmul(ms.tensor { 1, 2 }, m):totable())
    assert.equal(5, ms.dot(ms.tensor { 1, 2 }, ms.tensor { 1, 2 }))
    local n = 2 ^ 20
    assert.equal(n, ms.dot(ms.ones(n), ms.ones(n)))
  end)
end)
