-- Tensor:sort, Tensor:topk, Tensor:cumsum (lua/moonstep/tensor_sort.lua, runtime/sort.c):
-- against PyTorch through tests/fixtures/sort_fixtures.lua (scripts/fixtures/sort_fixtures.py),
-- and against plain Lua loops on random shapes, dims, non-contiguous inputs and thread counts.
local ms = require 'moonstep'
local H = require 'helper'
local decode = require 'fixture_decode'
local tensor = require 'moonstep.tensor'
local fx = dofile('tests/fixtures/sort_fixtures.lua')

local function list(data, dtype)
  if type(data) == 'table' then return data end
  return decode(data, dtype)
end

local function from_case(c)
  local x = ms.tensor(list(c.x, c.dtype), c.dtype):view(c.shape)
  if c.transpose then x = x:t() end
  return x
end

-- same bits: NaN equals NaN, -0 differs from 0
local function same(a, b)
  if a ~= a then return b ~= b end
  return a == b and (a ~= 0 or 1 / a == 1 / b)
end

local function assert_list(got, want, what)
  assert(#got == #want, ('%s: %d values, expected %d'):format(what, #got, #want))
  for i = 1, #want do
    if not same(got[i], want[i]) then
      error(('%s: element %d is %.17g, expected %.17g'):format(what, i, got[i], want[i]), 2)
    end
  end
end

-- numerically equal (-0 == 0): tied values whose order torch leaves unspecified
local function assert_numeric(got, want, what)
  assert(#got == #want, ('%s: %d values, expected %d'):format(what, #got, #want))
  for i = 1, #want do
    local a, b = got[i], want[i]
    if not (a == b or (a ~= a and b ~= b)) then
      error(('%s: element %d is %.17g, expected %.17g'):format(what, i, a, b), 2)
    end
  end
end

local function flat(t) return H.flatten(t:contiguous():totable()) end
local function plus1(l) local r = {} for i, v in ipairs(l) do r[i] = v + 1 end return r end

describe('sort', function()
  it('matches torch.sort(stable = true): ties, NaN, infinities, dims, descending, non-contiguous', function()
    for n, c in ipairs(fx.sort) do
      local x = from_case(c)
      local v, i = x:sort(c.dim, { descending = c.descending })
      assert.are.equal(c.dtype, v.dtype)
      assert.are.equal('int64', i.dtype)
      assert.are.same(x:shape(), v:shape())
      assert_list(flat(v), list(c.values, c.dtype), 'sort case ' .. n .. ' values')
      assert_list(flat(i), plus1(c.indices), 'sort case ' .. n .. ' indices')
      -- stable = true/false and the functional form give the same
      local v2, i2 = tensor.sort(x, c.dim, { descending = c.descending, stable = false })
      assert_list(flat(v2), flat(v), 'sort case ' .. n .. ' stable = false')
      assert_list(flat(i2), flat(i), 'sort case ' .. n .. ' stable = false indices')
    end
  end)

  it('agrees with a Lua stable sort on random shapes, every dim, both orders, any thread count', function()
    local rnd = H.lcg(7)
    local threads = ms.num_threads()
    for trial = 1, 30 do
      local nd = 1 + trial % 3
      local shape = {}
      for d = 1, nd do shape[d] = 1 + math.floor((rnd() + 1) * 6) end
      if trial % 5 == 0 then shape[nd] = 200 + trial end
      local x = ms.empty(shape, trial % 2 == 0 and 'float64' or 'float32')
      local xf = x:view(-1)
      for k = 1, x:numel() do
        local r = rnd()
        xf:set(k, r > 0.9 and 0 / 0 or math.floor(r * 4))
      end
      local dim = 1 + trial % nd
      local desc = trial % 3 == 0
      ms.set_num_threads(1)
      local v1, i1 = x:sort(dim, desc)
      ms.set_num_threads(2)
      local v2, i2 = x:sort(dim, { descending = desc })
      ms.set_num_threads(threads)
      assert_list(flat(v2), flat(v1), 'threads values')
      assert_list(flat(i2), flat(i1), 'threads indices')
      -- reference: each line along dim sorted with (value, index) in Lua
      local vt, it_ = v1:transpose(dim, nd):contiguous(), i1:transpose(dim, nd):contiguous()
      local xt = x:transpose(dim, nd):contiguous()
      local size = shape[dim]
      local xl, vl, il = flat(xt), flat(vt), flat(it_)
      for base = 0, #xl - 1, size do
        local idx = {}
        for e = 1, size do idx[e] = e end
        table.sort(idx, function(p, q)
          local a, b = xl[base + p], xl[base + q]
          local an, bn = a ~= a, b ~= b
          if an ~= bn then if desc then return an else return bn end end
          if not an and a ~= b then if desc then return a > b else return a < b end end
          return p < q
        end)
        for e = 1, size do
          assert(il[base + e] == idx[e], ('trial %d: index %d of a line is %d, expected %d')
                 :format(trial, e, il[base + e], idx[e]))
          assert(same(vl[base + e], xl[base + idx[e]]), 'value at its index')
        end
      end
    end
  end)

  it('sorts int64 and uint8, 0-d and empty tensors, and defaults to the last dim ascending', function()
    local v, i = ms.tensor({ { 3, 1, 2 }, { 0, 0, -7 } }, 'int64'):sort()
    assert.are.same({ { 1, 2, 3 }, { -7, 0, 0 } }, v:totable())
    assert.are.same({ { 2, 3, 1 }, { 3, 1, 2 } }, i:totable())
    v, i = ms.tensor({ 5, 200, 7 }, 'uint8'):sort({ descending = true })
    assert.are.same({ 200, 7, 5 }, v:totable())
    assert.are.same({ 2, 3, 1 }, i:totable())
    v, i = ms.tensor(4.5):sort()
    assert.are.same({}, v:shape())
    assert.are.equal(4.5, v:item()); assert.are.equal(1, i:item())
    v, i = ms.zeros(3, 0):sort(2)
    assert.are.same({ 3, 0 }, v:shape()); assert.are.same({ 3, 0 }, i:shape())
    v, i = ms.zeros(0, 4):sort(2)
    assert.are.same({ 0, 4 }, v:shape())
  end)

  it('rejects bad arguments naming sort', function()
    local x = ms.zeros(2, 3)
    H.assert_error(function() x:sort(3) end, 'sort:', 'dim 3')
    H.assert_error(function() x:sort(1.5) end, 'sort:', 'dim')
    H.assert_error(function() x:sort({ descending = 1 }) end, 'sort:', 'descending', 'true or false')
    H.assert_error(function() x:sort(1, { order = 'up' }) end, 'sort:', 'unknown option', 'order')
    H.assert_error(function() x:sort(1, 'desc') end, 'sort:', 'options')
    H.assert_error(function() tensor.sort(42) end, 'sort:', 'expected a tensor')
    local y = ms.zeros(3); y:free()
    H.assert_error(function() y:sort() end, 'sort:', 'freed')
  end)
end)

describe('topk', function()
  it('matches torch.topk: values always, indices where the values are distinct (NaN largest)', function()
    for n, c in ipairs(fx.topk) do
      local x = from_case(c)
      local v, i = x:topk(c.k, c.dim, { largest = c.largest })
      local shape = x:shape(); shape[c.dim] = c.k
      assert.are.same(shape, v:shape()); assert.are.same(shape, i:shape())
      if c.distinct then
        assert_list(flat(v), list(c.values, c.dtype), 'topk case ' .. n .. ' values')
        assert_list(flat(i), plus1(c.indices), 'topk case ' .. n .. ' indices')
      else
        assert_numeric(flat(v), list(c.values, c.dtype), 'topk case ' .. n .. ' values')
      end
      -- indices point at their values; ties come in input order (the stable sort's first k)
      if c.k > 0 then
        assert_list(flat(x:gather(c.dim, i)), flat(v), 'topk case ' .. n .. ' gather')
        local sv, si = x:sort(c.dim, { descending = c.largest })
        local nar = si:narrow(c.dim, 1, c.k)
        assert_list(flat(i), flat(nar), 'topk case ' .. n .. ' = first k of sort')
        assert_list(flat(v), flat(sv:narrow(c.dim, 1, c.k)), 'topk case ' .. n .. ' sort values')
      end
    end
  end)

  it('is the first k of the stable sort for every k (one-pass path for small k, sort path above)', function()
    local rnd = H.lcg(5)
    for trial = 1, 8 do
      local x = ms.empty(3 + trial, 45 + trial, trial % 2 == 0 and 'float64' or 'float32')
      local xf = x:view(-1)
      for q = 1, x:numel() do
        local r = rnd()
        xf:set(q, r > 0.92 and 0 / 0 or r < -0.95 and -math.huge or math.floor(r * 5))
      end
      local dim = trial % 2 == 0 and 2 or 1
      if trial > 4 then x = x:t(); dim = 3 - dim end
      local size = x:size(dim)
      for _, largest in ipairs { true, false } do
        local sv, si = x:sort(dim, { descending = largest })
        for _, k in ipairs { 1, 2, 7, 32, 33, size - 1, size } do if k <= size then
          local v, i = x:topk(k, dim, { largest = largest })
          assert_list(flat(i), flat(si:narrow(dim, 1, k)), ('trial %d k %d indices'):format(trial, k))
          assert_list(flat(v), flat(sv:narrow(dim, 1, k)), ('trial %d k %d values'):format(trial, k))
        end end
      end
    end
  end)

  it('k = 0 and k = size, the default dim, largest = false, sorted = false, 0-d', function()
    local x = ms.tensor({ { 4, 1, 9, 1 }, { 0, 0 / 0, -2, 8 } })
    local v, i = x:topk(0)
    assert.are.same({ 2, 0 }, v:shape()); assert.are.same({ 2, 0 }, i:shape())
    v, i = x:topk(4)
    assert.are.same({ { 3, 1, 2, 4 }, { 2, 4, 1, 3 } }, i:totable())
    v, i = x:topk(2, { largest = false, sorted = false })
    assert.are.same({ { 1, 1 }, { -2, 0 } }, v:totable())
    assert.are.same({ { 2, 4 }, { 3, 1 } }, i:totable())
    v, i = x:topk(1, 1)
    local got = flat(v)
    assert.are.same({ 4, 9, 8 }, { got[1], got[3], got[4] })
    assert.is_true(got[2] ~= got[2])   -- NaN is the largest
    assert.are.same({ { 1, 2, 1, 2 } }, i:totable())
    v, i = ms.tensor(2.5, 'float64'):topk(1)
    assert.are.equal(2.5, v:item()); assert.are.equal(1, i:item())
    assert.are.same({}, v:shape())
    v, i = ms.tensor(2.5):topk(0)   -- no empty 0-d tensor: [0]
    assert.are.same({ 0 }, v:shape()); assert.are.same({ 0 }, i:shape())
  end)

  it('rejects bad arguments naming topk', function()
    local x = ms.zeros(2, 3)
    H.assert_error(function() x:topk(4) end, 'topk:', 'k is 4', '0..3')
    H.assert_error(function() x:topk(-1) end, 'topk:', 'k is -1')
    H.assert_error(function() x:topk(1.5) end, 'topk:', 'k is 1.5')
    H.assert_error(function() x:topk() end, 'topk:', 'k is nil')
    H.assert_error(function() x:topk(1, 3) end, 'topk:', 'dim 3')
    H.assert_error(function() x:topk(1, 1, { largest = 'yes' }) end, 'topk:', 'largest')
    H.assert_error(function() x:topk(1, { k = 2 }) end, 'topk:', 'unknown option')
  end)
end)

describe('cumsum', function()
  it('matches torch.cumsum bit for bit (float32 adds in float64, rounds each prefix once)', function()
    for n, c in ipairs(fx.cumsum) do
      local x = from_case(c)
      local y = x:cumsum(c.dim, c.out_dtype and { dtype = c.out_dtype } or nil)
      local want_dtype = c.out_dtype or c.dtype
      assert.are.equal(want_dtype, y.dtype)
      assert.are.same(x:shape(), y:shape())
      assert_list(flat(y), list(c.values, want_dtype), 'cumsum case ' .. n)
      assert_list(flat(tensor.cumsum(x, c.dim, c.out_dtype and { dtype = c.out_dtype } or nil)), flat(y),
                  'cumsum case ' .. n .. ' functional')
    end
  end)

  it('agrees with a float64 Lua loop on random shapes and dims, any thread count', function()
    local rnd = H.lcg(3)
    local threads = ms.num_threads()
    for trial = 1, 12 do
      local shape = { 1 + trial % 4, 2 + trial % 5, 300 + trial }
      local x = ms.empty(shape, trial % 2 == 0 and 'float64' or 'float32')
      local xf = x:view(-1)
      for k = 1, x:numel() do xf:set(k, rnd() * 10 ^ math.floor(rnd() * 6)) end
      local dim = 1 + trial % 3
      ms.set_num_threads(1)
      local y1 = x:cumsum(dim)
      ms.set_num_threads(2)
      local y2 = x:cumsum(-4 + dim)
      ms.set_num_threads(threads)
      assert_list(flat(y2), flat(y1), 'threads')
      local xt, yt = flat(x:transpose(dim, 3)), flat(y1:transpose(dim, 3))
      local size = shape[dim]
      local round = x.dtype == 'float32' and function(v) return ms.tensor(v):item() end
                    or function(v) return v end
      for base = 0, #xt - 1, size do
        local acc = 0
        for e = 1, size, 37 do
          acc = 0
          for q = 1, e do acc = acc + xt[base + q] end
          assert(same(yt[base + e], round(acc)), ('trial %d element %d'):format(trial, e))
        end
      end
    end
  end)

  it('int64 and uint8 (to int64), dtype option, 0-d, empty', function()
    local y = ms.tensor({ 250, 250, 250 }, 'uint8'):cumsum(1)
    assert.are.equal('int64', y.dtype)
    assert.are.same({ 250, 500, 750 }, y:totable())
    y = ms.tensor({ { 1, 2 }, { 3, 4 } }, 'int64'):cumsum(1, { dtype = 'float32' })
    assert.are.equal('float32', y.dtype)
    assert.are.same({ { 1, 2 }, { 4, 6 } }, y:totable())
    assert.are.equal(3, ms.tensor(3):cumsum(1):item())
    assert.are.same({ 0, 5 }, ms.zeros(0, 5):cumsum(2):shape())
  end)

  it('rejects bad arguments naming cumsum', function()
    local x = ms.zeros(2, 3)
    H.assert_error(function() x:cumsum() end, 'cumsum:', 'dim is nil')
    H.assert_error(function() x:cumsum({ dtype = 'float64' }) end, 'cumsum:', 'dim')
    H.assert_error(function() x:cumsum(0) end, 'cumsum:', 'dim 0')
    H.assert_error(function() x:cumsum(1, { dtype = 'uint8' }) end, 'cumsum:', 'uint8')
    H.assert_error(function() x:cumsum(1, { dtype = 'half' }) end, 'cumsum:', 'half')
    H.assert_error(function() x:cumsum(1, { keepdim = true }) end, 'cumsum:', 'unknown option')
  end)
end)

describe('threads', function()
  it('give the same bits on 1 and 2 threads for work large enough to split', function()
    local threads = ms.num_threads()
    local x = ms.empty(257, 300)
    local rnd = H.lcg(11)
    local xf = x:view(-1)
    for k = 1, x:numel() do xf:set(k, math.floor(rnd() * 50) / 7) end
    local runs = {}
    for _, n in ipairs { 1, 2 } do
      ms.set_num_threads(n)
      local v1, i1 = x:sort(2, { descending = true })
      local v2, i2 = x:t():topk(100, 1)
      runs[n] = { flat(v1), flat(i1), flat(v2), flat(i2), flat(x:cumsum(2)), flat(x:t():cumsum(2)) }
    end
    ms.set_num_threads(threads)
    for k = 1, 6 do assert_list(runs[2][k], runs[1][k], 'output ' .. k) end
  end)
end)

describe('sort, topk, cumsum on CUDA', function()
  local has_gpu = ms.cuda.is_available and ms.cuda.is_available()
  it('are a clear error (no CUDA kernel yet)', function()
    if not has_gpu then return pending('no GPU') end
    local x = ms.zeros(3, 4):cuda()
    for _, f in ipairs {
      function() x:sort() end, function() x:topk(1) end, function() x:cumsum(1) end } do
      H.assert_error(f, "not available on CUDA tensors yet (move to the CPU with :to('cpu'))")
    end
  end)
end)
