-- Philox4x32-10: known answers, reproducibility, independence from threads, and
-- distribution checks tight enough that a broken generator fails them.
local ms = require 'moonstep'

describe('philox4x32-10', function()
  -- Known-answer vectors from the Random123 distribution (reference/philox.md).
  local kat = {
    { { 0, 0, 0, 0 }, { 0, 0 }, { 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8 } },
    { { 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff }, { 0xffffffff, 0xffffffff },
      { 0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd } },
    { { 0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344 }, { 0xa4093822, 0x299f31d0 },
      { 0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1 } },
  }
  for i, v in ipairs(kat) do
    it('matches known-answer vector ' .. i, function()
      assert.same(v[3], ms.philox(v[1], v[2]))
    end)
  end

  it('uniform element i is the top 24 bits of word i%4 of block i/4', function()
    local t = ms.empty(8):uniform_(0, 1, { seed = 0, stream = 0 })
    local w = ms.philox({ 1, 0, 0, 0 }, { 0, 0 })
    for j = 1, 4 do
      assert.equal(math.floor(w[j] / 256) / 2 ^ 24, t:get(4 + j))
    end
  end)
end)

describe('generator state', function()
  it('the same seed gives the same values; streams differ', function()
    ms.manual_seed(42)
    local a = ms.randn(1000)
    local b = ms.randn(1000)
    ms.manual_seed(42)
    local a2 = ms.randn(1000)
    assert.same(a:totable(), a2:totable())
    assert.are_not.same(a:totable(), b:totable())
  end)

  it('rng_state / set_rng_state replay a draw', function()
    ms.manual_seed(7)
    ms.rand(3)
    local s = ms.rng_state()
    local x = ms.rand(100)
    ms.set_rng_state(s)
    assert.same(x:totable(), ms.rand(100):totable())
    assert.same({ seed = 7, stream = 2 }, ms.rng_state())
  end)

  it('values do not depend on the thread count or on contiguity', function()
    local n = 2 ^ 20
    local saved = ms.num_threads()
    ms.set_num_threads(1)
    local one = ms.empty(n):normal_(0, 1, { seed = 3, stream = 9 })
    ms.set_num_threads(math.max(2, saved))
    local many = ms.empty(n):normal_(0, 1, { seed = 3, stream = 9 })
    ms.set_num_threads(saved)
    assert.equal(0, (one - many):abs():max())
    -- a transposed destination receives element i in row-major order
    local t = ms.empty(4, 3):t():uniform_(0, 1, { seed = 1, stream = 2 })
    local c = ms.empty(3, 4):uniform_(0, 1, { seed = 1, stream = 2 })
    assert.same(c:totable(), t:totable())
  end)
end)

describe('distributions', function()
  local n = 2 ^ 20
  it('uniform: mean 1/2, variance 1/12, flat histogram (chi-square)', function()
    local u = ms.empty(n):uniform_(0, 1, { seed = 11 })
    assert.is_true(math.abs(u:mean() - 0.5) < 5 * math.sqrt(1 / 12 / n))
    assert.is_true(math.abs(u:var() - 1 / 12) < 1e-3)
    assert.is_true(u:min() >= 0 and u:max() < 1)
    -- 16 bins; chi-square with 15 dof has mean 15, P(> 50) ~ 1e-5
    local bins = (u * 16):clamp(0, 15.999):to('int64'):to('float32')
    local chi = 0
    for b = 0, 15 do
      local count = (bins:eq(b)):sum()
      chi = chi + (count - n / 16) ^ 2 / (n / 16)
    end
    assert.is_true(chi < 50, 'chi-square ' .. chi)
    local ab = ms.empty(1000):uniform_(-3, 5)
    assert.is_true(ab:min() >= -3 and ab:max() < 5)
  end)

  it('normal: mean, variance and tails', function()
    local z = ms.empty(n):normal_(0, 1, { seed = 12 })
    assert.is_true(math.abs(z:mean()) < 5 / math.sqrt(n))
    assert.is_true(math.abs(z:var() - 1) < 0.01)
    local tail = (z:abs():gt(1.96)):mean()      -- 5% two-sided
    assert.is_true(math.abs(tail - 0.05) < 0.003, 'tail ' .. tail)
    local s = ms.empty(n):normal_(3, 2, { seed = 13 })
    assert.is_true(math.abs(s:mean() - 3) < 0.02 and math.abs(s:std() - 2) < 0.02)
    local d = ms.empty(n, 'float64'):normal_(0, 1, { seed = 14 })
    assert.is_true(math.abs(d:var() - 1) < 0.01)
  end)

  it('rademacher is +-1 and balanced; bernoulli has mean p', function()
    local r = ms.empty(n):rademacher_({ seed = 15 })
    assert.equal(n, r:abs():sum())
    assert.is_true(math.abs(r:mean()) < 5 / math.sqrt(n))
    local b = ms.empty(n):bernoulli_(0.3, { seed = 16 })
    assert.is_true(math.abs(b:mean() - 0.3) < 5 * math.sqrt(0.21 / n))
    assert.equal(n, (b:eq(0) + b:eq(1)):sum())
  end)

  it('float64 uniform uses 53 bits (values are not all multiples of 2^-24)', function()
    local u = ms.empty(100, 'float64'):uniform_(0, 1, { seed = 5 })
    local fine = 0
    for i = 1, 100 do
      local v = u:get(i) * 2 ^ 24
      if v ~= math.floor(v) then fine = fine + 1 end
    end
    assert.is_true(fine > 90)
  end)
end)
