-- ms.eye, ms.range, ms.randperm, ms.randint (issue 12's day-one constructors): values
-- against plain Lua loops (and torch.range's lengths, literals below from /usr/bin/python3),
-- reproducibility through the global generator and explicit generators, and one clear
-- error naming the function for every wrong argument.
local ms = require 'moonstep'
local H = require 'tests.helper'

local function flat(t) return H.flatten(t:totable()) end
local function err(f, ...) return H.assert_error(f, ...) end

describe('ms.eye', function()
  it('is the identity (square and rectangular) as a plain loop builds it', function()
    for _, nm in ipairs { { 3, 3 }, { 2, 4 }, { 4, 2 }, { 1, 1 }, { 5, 1 } } do
      local n, m = nm[1], nm[2]
      local t = ms.eye(n, m)
      assert.same({ n, m }, t:shape())
      assert.equal('float32', t.dtype)
      local want = {}
      for i = 1, n do for j = 1, m do want[#want + 1] = i == j and 1 or 0 end end
      assert.same(want, flat(t))
    end
    assert.same({ { 1, 0 }, { 0, 1 } }, ms.eye(2):totable())
  end)

  it('takes a dtype or device string or an options table, with or without m', function()
    local a = ms.eye(3, 'int64')
    assert.equal('int64', a.dtype); assert.same({ 3, 3 }, a:shape()); assert.same({ 1, 0, 0, 0, 1, 0, 0, 0, 1 }, flat(a))
    local b = ms.eye(2, 3, { dtype = 'float64' })
    assert.equal('float64', b.dtype); assert.same({ 2, 3 }, b:shape()); assert.equal(1, b:get(2, 2))
    local c = ms.eye(2, nil, 'uint8')
    assert.equal('uint8', c.dtype); assert.same({ 2, 2 }, c:shape())
    assert.equal('cpu', ms.eye(2, 'cpu').device)
  end)

  it('handles empty matrices', function()
    assert.same({ 0, 0 }, ms.eye(0):shape())
    assert.same({ 3, 0 }, ms.eye(3, 0):shape())
    assert.same({ 0, 4 }, ms.eye(0, 4):shape())
  end)

  it('rejects wrong arguments with errors naming eye', function()
    err(function() ms.eye(-1) end, 'eye', 'n is -1')
    err(function() ms.eye(2.5) end, 'eye', 'n is 2.5')
    err(function() ms.eye('3') end, 'eye', 'n is')
    err(function() ms.eye() end, 'eye', 'n is nil')
    err(function() ms.eye(2, -1) end, 'eye', 'm is -1')
    err(function() ms.eye(2, 1.5) end, 'eye', 'm is 1.5')
    err(function() ms.eye(2, 'bogus') end, 'eye', 'dtype "bogus" is unknown')
    err(function() ms.eye(2, { bogus = 1 }) end, 'eye', 'unknown option "bogus"')
    err(function() ms.eye(2, 2, { dtype = 'half' }) end, 'eye', 'dtype')
    err(function() ms.eye(2, {}, {}) end, 'eye', 'm is')
    err(function() ms.eye(2, 2, 7) end, 'eye', 'options are 7')
  end)
end)

describe('ms.range', function()
  it('includes stop (Torch7), where arange excludes it', function()
    assert.same({ 1, 2, 3, 4 }, flat(ms.range(1, 4)))
    assert.same({ 1, 2, 3 }, flat(ms.arange(1, 4)))
    assert.same({ 5, 3, 1 }, flat(ms.range(5, 1, -2)))
    assert.same({ 1 }, flat(ms.range(1, 1)))
    assert.same({ 0, 0.25, 0.5, 0.75, 1 }, flat(ms.range(0, 1, 0.25)))
    assert.same({ 2, 4 }, flat(ms.range(2, 5, 2)))  -- 5 not reached
  end)

  it('has torch.range lengths for inexact steps', function()
    -- torch.range(0, 0.3, 0.1) -> 3 values; (0, 1, 0.1) -> 11; (-1, 2.5, 0.7) -> 6
    H.assert_close(ms.range(0, 0.3, 0.1), { 0, 0.1, 0.2 }, 1e-6)
    assert.equal(11, ms.range(0, 1, 0.1):numel())
    H.assert_close(ms.range(-1, 2.5, 0.7, 'float64'), { -1, -0.3, 0.4, 1.1, 1.8, 2.5 }, 1e-12)
  end)

  it('matches a plain loop on random arguments, in each dtype', function()
    local rnd = H.lcg(7)
    for _ = 1, 40 do
      local a = math.floor(rnd() * 20)
      local s = math.floor(rnd() * 4)
      if s == 0 then s = 3 end
      local b = a + s * math.floor((rnd() + 1) * 6) + (s > 0 and 1 or -1) * math.floor((rnd() + 1) * 1.4)
      local want = {}
      local v = a
      while (s > 0 and v <= b) or (s < 0 and v >= b) do want[#want + 1] = v; v = v + s end
      for _, dt in ipairs { 'float32', 'float64', 'int64' } do
        local t = ms.range(a, b, s, { dtype = dt })
        assert.equal(dt, t.dtype)
        assert.same(want, flat(t), ('range(%d, %d, %d, %s)'):format(a, b, s, dt))
      end
    end
  end)

  it('rejects wrong arguments with errors naming range', function()
    err(function() ms.range(1) end, 'range', 'argument 2 is nil')
    err(function() ms.range() end, 'range', 'argument 1 is nil')
    err(function() ms.range(5, 1) end, 'range', 'wrong way')
    err(function() ms.range(1, 5, -1) end, 'range', 'wrong way')
    err(function() ms.range(1, 5, 0) end, 'range', 'step is 0')
    err(function() ms.range(0, 1 / 0) end, 'range', 'stop is inf')
    err(function() ms.range(0 / 0, 1) end, 'range', 'start is')
    err(function() ms.range(0, 1, 1, {}, 5) end, 'range', 'nothing after the options')
    err(function() ms.range(0.5, 2, 1, 'int64') end, 'range', 'start')
    err(function() ms.range(0, 3, { dtype = 'x' }) end, 'range', 'dtype "x" is unknown')
    err(function() ms.range(0, 3, { bogus = 1 }) end, 'range', 'unknown option "bogus"')
  end)
end)

local function is_permutation(list, n)
  if #list ~= n then return false end
  local seen = {}
  for _, v in ipairs(list) do
    if type(v) ~= 'number' or v < 1 or v > n or v ~= math.floor(v) or seen[v] then return false end
    seen[v] = true
  end
  return true
end

describe('ms.randperm', function()
  it('is a permutation of 1..n (1-based), int64 by default', function()
    ms.manual_seed(1)
    for _, n in ipairs { 0, 1, 2, 7, 100, 1000 } do
      local p = ms.randperm(n)
      assert.equal('int64', p.dtype)
      assert.same({ n }, p:shape())
      assert.is_true(is_permutation(flat(p), n), 'randperm(' .. n .. ')')
    end
  end)

  it('draws every permutation of 3 (Fisher-Yates, not a biased shuffle)', function()
    ms.manual_seed(2)
    local count, distinct = {}, 0
    for _ = 1, 600 do
      local key = table.concat(flat(ms.randperm(3)), ',')
      if not count[key] then distinct = distinct + 1; count[key] = 0 end
      count[key] = count[key] + 1
    end
    assert.equal(6, distinct)
    for k, c in pairs(count) do assert.is_true(c > 60 and c < 140, k .. ' drawn ' .. c .. ' times of 600') end
  end)

  it('is reproducible with manual_seed, takes one stream, and equals data.permutation', function()
    ms.manual_seed(42)
    local s0 = ms.rng_state()
    local a = flat(ms.randperm(50))
    assert.equal(s0.stream + 1, ms.rng_state().stream)
    ms.manual_seed(42)
    assert.same(a, flat(ms.randperm(50)))
    ms.manual_seed(42)
    assert.same(a, flat(ms.data.permutation(50)))
    ms.manual_seed(43)
    assert.are_not.same(a, flat(ms.randperm(50)))
  end)

  it('takes gen = {seed=, stream=} and leaves the global generator alone', function()
    ms.manual_seed(5)
    local before = ms.rng_state()
    local a = flat(ms.randperm(30, { gen = { seed = 9, stream = 4 } }))
    assert.same(before, ms.rng_state())
    assert.same(a, flat(ms.randperm(30, { gen = { seed = 9, stream = 4 } })))
    assert.same(a, flat(ms.data.permutation(30, { seed = 9, stream = 4 })))
    assert.are_not.same(a, flat(ms.randperm(30, { gen = { seed = 9, stream = 5 } })))
  end)

  it('converts to other dtypes with the same values', function()
    local g = { seed = 3 }
    local want = flat(ms.randperm(20, { gen = g }))
    for _, dt in ipairs { 'float32', 'float64', 'uint8' } do
      local p = ms.randperm(20, { dtype = dt, gen = g })
      assert.equal(dt, p.dtype)
      assert.same(want, flat(p))
    end
    assert.equal('float64', ms.randperm(4, 'float64').dtype)
    assert.equal('cpu', ms.randperm(4, 'cpu').device)
  end)

  it('rejects wrong arguments with errors naming randperm', function()
    err(function() ms.randperm(-1) end, 'randperm', 'n is -1')
    err(function() ms.randperm(2.5) end, 'randperm', 'n is 2.5')
    err(function() ms.randperm('4') end, 'randperm', 'n is')
    err(function() ms.randperm() end, 'randperm', 'n is nil')
    err(function() ms.randperm(2 ^ 31) end, 'randperm', 'n is')
    err(function() ms.randperm(3, { bogus = 1 }) end, 'randperm', 'unknown option "bogus"')
    err(function() ms.randperm(3, { dtype = 'x' }) end, 'randperm', 'dtype "x" is unknown')
    err(function() ms.randperm(3, 'x') end, 'randperm', 'dtype "x" is unknown')
    err(function() ms.randperm(3, { device = 'tpu' }) end, 'randperm', 'device "tpu" is unknown')
    err(function() ms.randperm(3, { gen = 3 }) end, 'randperm', 'generator is 3')
    err(function() ms.randperm(3, { gen = { seed = -1 } }) end, 'randperm', 'seed is -1')
    err(function() ms.randperm(3, { gen = { seed = 1, bogus = 2 } }) end, 'randperm', 'unknown option "bogus"')
    err(function() ms.randperm(300, 'uint8') end, 'randperm', 'does not fit dtype uint8')
    err(function() ms.randperm(3, 7) end, 'randperm', 'options are 7')
    err(function() ms.randperm(3, {}, 1) end, 'randperm', 'nothing after the options')
  end)

  it('keeps data.permutation and Dataset.split errors named as before', function()
    err(function() ms.data.permutation(-1) end, 'data.permutation', 'n is -1')
    err(function() ms.data.permutation(2, 7) end, 'data.permutation', 'generator is 7')
  end)
end)

describe('ms.randint', function()
  it('draws integers in [low, high), every value, int64 by default', function()
    ms.manual_seed(11)
    local t = ms.randint(-2, 3, { 40, 50 })
    assert.equal('int64', t.dtype)
    assert.same({ 40, 50 }, t:shape())
    local hits = {}
    for _, v in ipairs(flat(t)) do
      assert.is_true(v >= -2 and v < 3 and v == math.floor(v), 'value ' .. v)
      hits[v] = (hits[v] or 0) + 1
    end
    for v = -2, 2 do assert.is_true((hits[v] or 0) > 300, 'value ' .. v .. ' drawn ' .. (hits[v] or 0) .. ' times') end
  end)

  it('randint(high, shape) starts at 0; a range of one value is constant', function()
    local t = ms.randint(4, { 1000 })
    local lo, hi = math.huge, -math.huge
    for _, v in ipairs(flat(t)) do lo, hi = math.min(lo, v), math.max(hi, v) end
    assert.same({ 0, 3 }, { lo, hi })
    assert.same({ 7, 7, 7 }, flat(ms.randint(7, 8, { 3 })))
  end)

  it('is the floor of the same Philox float64 uniform fill, shifted by low (a plain loop)', function()
    for _, c in ipairs { { 0, 10 }, { -5, 5 }, { -1000003, 17 }, { 2 ^ 40, 2 ^ 40 + 3 }, { -2 ^ 52, 2 ^ 52 } } do
      local low, high = c[1], c[2]
      local g = { seed = 21, stream = 6 }
      local u = flat(ms.empty(257, 'float64'):uniform_(0, high - low, g))
      local want = {}
      for i, x in ipairs(u) do want[i] = low + math.min(math.floor(x), high - low - 1) end
      assert.same(want, flat(ms.randint(low, high, { 257 }, { gen = g })), ('[%s, %s)'):format(low, high))
      assert.same(want, flat(ms.randint(low, high, { 257 }, { gen = g, dtype = 'float64' })))
    end
  end)

  it('is reproducible with manual_seed and takes one stream; gen leaves the global state alone', function()
    ms.manual_seed(8)
    local s0 = ms.rng_state()
    local a = flat(ms.randint(0, 100, { 64 }))
    assert.equal(s0.stream + 1, ms.rng_state().stream)
    ms.manual_seed(8)
    assert.same(a, flat(ms.randint(0, 100, { 64 })))
    local before = ms.rng_state()
    local b = flat(ms.randint(0, 100, { 64 }, { gen = { seed = 1 } }))
    assert.same(before, ms.rng_state())
    assert.same(b, flat(ms.randint(100, { 64 }, { gen = { seed = 1, stream = 0 } })))
  end)

  it('gives any dtype whose range holds the values, and odd shapes', function()
    for _, dt in ipairs { 'float32', 'float64', 'uint8', 'int64' } do
      local t = ms.randint(0, 256, { 2, 3 }, { dtype = dt })
      assert.equal(dt, t.dtype)
      for _, v in ipairs(flat(t)) do assert.is_true(v >= 0 and v < 256 and v == math.floor(v)) end
    end
    assert.equal('float64', ms.randint(3, { 2 }, 'float64').dtype)
    assert.equal(0, ms.randint(0, 5, {}):dim())
    assert.same({ 0, 3 }, ms.randint(0, 5, { 0, 3 }):shape())
  end)

  it('rejects wrong arguments with errors naming randint', function()
    err(function() ms.randint(3, 3, { 2 }) end, 'randint', 'low 3 >= high 3')
    err(function() ms.randint(5, 1, { 2 }) end, 'randint', 'low 5 >= high 1')
    err(function() ms.randint(0, { 2 }) end, 'randint', 'low 0 >= high 0')
    err(function() ms.randint(0.5, 3, { 2 }) end, 'randint', 'low is 0.5')
    err(function() ms.randint(0, 2.5, { 2 }) end, 'randint', 'high is 2.5')
    err(function() ms.randint(0, 1 / 0, { 2 }) end, 'randint', 'high is')
    err(function() ms.randint(-2 ^ 53, 2 ^ 53, { 2 }) end, 'randint', 'high - low')
    err(function() ms.randint(0, 5, 3) end, 'randint', 'shape is 3')
    err(function() ms.randint(0, 5) end, 'randint', 'shape is nil')
    err(function() ms.randint(0, 5, 2, 3) end, 'randint', 'shape is 2')
    err(function() ms.randint(0, 5, ms.zeros(2)) end, 'randint', 'shape is')
    err(function() ms.randint(0, 5, { -1 }) end, 'randint', 'size -1')
    err(function() ms.randint(0, 5, { 1.5 }) end, 'randint', 'size 1.5')
    err(function() ms.randint(0, 5, { a = 1 }) end, 'randint', 'shape has the key "a"')
    err(function() ms.randint(0, 5, { 2, a = 1 }) end, 'randint', 'sizes table has the key')
    err(function() ms.randint(0, 5, { 2 }, { bogus = 1 }) end, 'randint', 'unknown option "bogus"')
    err(function() ms.randint(0, 5, { 2 }, { dtype = 'x' }) end, 'randint', 'dtype "x" is unknown')
    err(function() ms.randint(0, 5, { 2 }, { gen = 'x' }) end, 'randint', 'generator is')
    err(function() ms.randint(0, 300, { 2 }, 'uint8') end, 'randint', 'does not fit dtype uint8')
    err(function() ms.randint(-1, 3, { 2 }, 'uint8') end, 'randint', 'does not fit dtype uint8')
    err(function() ms.randint(0, 5, { 2 }, 7) end, 'randint', 'options are 7')
    err(function() ms.randint(0, 5, { 2 }, {}, 1) end, 'randint', 'nothing after the options')
    err(function() ms.randint(5, { 2 }, {}, 1) end, 'randint', 'nothing after the options')
  end)
end)

describe('constructors on CUDA', function()
  local gpu = ms.cuda.is_available()
  local it_gpu = gpu and it or pending
  local it_cpu_only = gpu and pending or it
  it_cpu_only('without a GPU: a clear error naming the function, and no draw taken', function()
    ms.manual_seed(1)
    local before = ms.rng_state()
    err(function() ms.eye(2, 'cuda') end, 'eye', 'CUDA')
    err(function() ms.range(0, 1, { device = 'cuda' }) end, 'range', 'CUDA')
    err(function() ms.randperm(3, 'cuda') end, 'randperm', 'CUDA')
    err(function() ms.randint(0, 5, { 2 }, { device = 'cuda' }) end, 'randint', 'CUDA')
    assert.same(before, ms.rng_state())
  end)
  it_gpu('give the CPU values on the GPU', function()
    H.same_bits(ms.eye(3, 4, { device = 'cuda' }), ms.eye(3, 4), 'eye')
    H.same_bits(ms.range(0, 2, 0.25, { device = 'cuda' }), ms.range(0, 2, 0.25), 'range')
    local g = { seed = 4, stream = 2 }
    H.same_bits(ms.randperm(33, { device = 'cuda', gen = g }), ms.randperm(33, { gen = g }), 'randperm')
    for _, dt in ipairs { 'int64', 'float32', 'float64' } do
      H.same_bits(ms.randint(-7, 9, { 5, 7 }, { device = 'cuda', gen = g, dtype = dt }),
                  ms.randint(-7, 9, { 5, 7 }, { gen = g, dtype = dt }), 'randint ' .. dt)
    end
  end)
end)
