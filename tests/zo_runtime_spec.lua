-- The zeroth-order direction runtime (runtime/zo.c, zo_move.c, optim/zo.h through
-- lua/moonstep/optim/zo_ops.lua): the direction values against an independent Lua
-- computation from the raw Philox words, offsets, thread counts, the exact-restore move on
-- hostile arenas, estimate and MeZO's update against references, argument errors, GPU = CPU.
local ffi = require 'ffi'
local ms = require 'moonstep'
local zo = require 'moonstep.optim.zo_ops'
local T = require 'moonstep.tensor'
local H = require 'helper'
local C = ms.C

local DISTS = { 'rademacher', 'gaussian', 'segmented_uniform' }
local gpu = ms.cuda and ms.cuda.is_available()

-- The four Philox words of block `block` of direction (seed, step, index) (seed < 2^32 here).
local ctr, key, out = ffi.new('uint32_t[4]'), ffi.new('uint32_t[2]'), ffi.new('uint32_t[4]')
local function words(seed, step, index, block)
  ctr[0], ctr[1], ctr[2], ctr[3] = block % 2 ^ 32, math.floor(block / 2 ^ 32), index, step
  key[0], key[1] = seed % 2 ^ 32, math.floor(seed / 2 ^ 32)
  C.ms_philox4x32_10(ctr, key, out)
  return { tonumber(out[0]), tonumber(out[1]), tonumber(out[2]), tonumber(out[3]) }
end
local f32 = ffi.new('float[1]')
local function round32(x) f32[0] = x; return tonumber(f32[0]) end

-- The contract's definitions, from the words (gaussian in float64: compare with tolerance).
local function reference(dist, seed, step, index, j)
  if dist == 'rademacher' then
    local w = words(seed, step, index, math.floor(j / 128))[math.floor(j / 32) % 4 + 1]
    return math.floor(w / 2 ^ (j % 32)) % 2 == 1 and 1 or -1
  end
  local w = words(seed, step, index, math.floor(j / 4))
  if dist == 'segmented_uniform' then
    local x = w[j % 4 + 1]
    local mag = (2 ^ 23 + math.floor(x / 512)) * 2 ^ -24   -- exact in float32
    return x % 2 == 1 and mag or -mag
  end
  local p = j % 4 < 2 and 1 or 3
  local u1 = (math.floor(w[p] / 256) + 1) * 2 ^ -24
  local u2 = math.floor(w[p + 1] / 256) * 2 ^ -24
  local r, th = math.sqrt(-2 * math.log(u1)), 2 * math.pi * u2
  return j % 2 == 0 and r * math.cos(th) or r * math.sin(th)
end

local Z = require 'zo_helper'
local dir, bits_equal, hostile = Z.dir, Z.bits_equal, Z.hostile

describe('zo directions', function()
  it('rademacher and segmented_uniform equal the Lua computation from the Philox words', function()
    local idx = { 0, 1, 31, 32, 63, 64, 127, 128, 129, 255, 1000, 4095, 70001 }
    for _, dist in ipairs { 'rademacher', 'segmented_uniform' } do
      for _, seed in ipairs { 0, 12345, 2 ^ 40 + 7 } do
        local t = ms.empty(70002)
        zo.fill('test', t, { seed = seed, step = 5, index = 2, dist = dist })
        for _, j in ipairs(idx) do
          local want = reference(dist, seed, 5, 2, j)
          assert(t:get(j + 1) == want, ('%s seed %g: u(%d) = %.9g, expected %.9g'):format(dist, seed,
                 j, t:get(j + 1), want))
        end
      end
    end
  end)

  it('gaussian values match a float64 Box-Muller to 1e-6 relative', function()
    local t = ms.empty(4000)
    zo.fill('test', t, dir('gaussian', 1, 9, 1))
    local worst = 0
    for j = 0, 3999, 7 do
      local want = reference('gaussian', 12345, 9, 1, j)
      worst = math.max(worst, math.abs(t:get(j + 1) - want) / math.max(1, math.abs(want)))
    end
    assert(worst < 2e-6, 'worst relative error ' .. worst)
  end)

  it('gaussian: mean 0, std 1, independent across directions and within a pair', function()
    local n = 1000000
    local a, b = ms.empty(n, { dtype = 'float64' }), ms.empty(n, { dtype = 'float64' })
    zo.fill('test', a, dir('gaussian', 1, 0, 0))
    zo.fill('test', b, dir('gaussian', 1, 0, 1))
    local mean, sd = a:mean(), a:std()
    assert(math.abs(mean) < 0.005 and math.abs(sd - 1) < 0.005, ('mean %g std %g'):format(mean, sd))
    local kurt = (a ^ 4):mean()
    assert(math.abs(kurt - 3) < 0.05, 'fourth moment ' .. kurt)
    local corr = (a * b):mean()
    assert(math.abs(corr) < 0.005, 'correlation of directions 0 and 1: ' .. corr)
    local even, odd = a:view(n / 2, 2):narrow(2, 1, 1), a:view(n / 2, 2):narrow(2, 2, 1)
    local pc = (even * odd):mean()
    assert(math.abs(pc) < 0.007, 'correlation within a Box-Muller pair: ' .. pc)
  end)

  it('rademacher and segmented_uniform have the right laws', function()
    local n = 400000
    local r = ms.empty(n, { dtype = 'float64' })
    zo.fill('test', r, dir('rademacher'))
    assert(math.abs(r:mean()) < 0.005)
    assert((r:abs() - 1):abs():max() == 0)
    zo.fill('test', r, dir('segmented_uniform'))
    local m = r:abs()
    assert(m:min() >= 0.5 and m:max() < 1)
    assert(math.abs(m:mean() - 0.75) < 0.002 and math.abs(r:mean()) < 0.005)
  end)

  it('scale multiplies in the arena dtype, and steps, indices and seeds give other directions', function()
    for _, dist in ipairs(DISTS) do
      local u, d = ms.empty(1000), ms.empty(1000)
      zo.fill('test', u, dir(dist, 1))
      zo.fill('test', d, dir(dist, 1e-3))
      bits_equal(d, u * round32(1e-3), dist .. ' scaled')
      local u64 = ms.empty(1000, { dtype = 'float64' })
      zo.fill('test', u64, dir(dist, 1e-3))
      bits_equal(u64, u:to('float64') * 1e-3, dist .. ' float64 scaled')
      for _, other in ipairs { dir(dist, 1, 4), dir(dist, 1, 3, 1), dir(dist, 1, 3, 0, 54321) } do
        local v = ms.empty(1000)
        zo.fill('test', v, other)
        assert((v - u):abs():max() > 0, dist .. ': another direction is the same')
      end
    end
  end)

  it('a slice filled at an offset equals those elements of a full fill', function()
    for _, dist in ipairs(DISTS) do
      for _, dtype in ipairs { 'float32', 'float64' } do
        local full = ms.empty(3000, { dtype = dtype })
        zo.fill('test', full, dir(dist, 0.5))
        for _, cut in ipairs { { 0, 1 }, { 5, 10 }, { 130, 700 }, { 511, 2 }, { 1000, 2000 }, { 2999, 1 } } do
          local part = ms.empty(cut[2], { dtype = dtype })
          zo.fill('test', part, dir(dist, 0.5), cut[1])
          bits_equal(part, full:narrow(1, cut[1] + 1, cut[2]), ('%s %s offset %d'):format(dist, dtype, cut[1]))
        end
        local w = ms.randn(3000):to(dtype)
        local p = ms.empty(700, { dtype = dtype })
        zo.perturb('test', p, w:narrow(1, 131, 700):contiguous(), dir(dist, 0.5), 130)
        bits_equal(p, (w + full):narrow(1, 131, 700), dist .. ' perturb at an offset')
        local m = ms.empty(2, 3, 50, { dtype = dtype })
        zo.fill('test', m, dir(dist, 0.5), 10)
        bits_equal(m:view(-1), full:narrow(1, 11, 300), dist .. ' a 3-D tensor is row-major')
      end
    end
  end)

  it('a 2-D fill [r, d]: row k is direction index + k, equal to r separate fills', function()
    for _, dist in ipairs(DISTS) do
      for _, dtype in ipairs { 'float32', 'float64' } do
        for _, shape in ipairs { { 5, 1300, 0 }, { 3, 700, 130 }, { 1, 600, 7 }, { 4, 1, 511 } } do
          local r, d, off = shape[1], shape[2], shape[3]
          local m = ms.empty(r, d, { dtype = dtype })
          zo.fill('test', m, dir(dist, 0.5, 3, 2), off)
          for k = 1, r do
            local row = ms.empty(d, { dtype = dtype })
            zo.fill('test', row, dir(dist, 0.5, 3, 2 + k - 1), off)
            bits_equal(m:select(1, k), row, ('%s %s [%d, %d] offset %d row %d'):format(dist, dtype, r, d, off, k))
          end
        end
      end
    end
    H.assert_error(function() zo.fill('SPSA.step', ms.empty(3, 4), dir('gaussian', 1, 0, 2 ^ 32 - 2)) end,
                   'SPSA.step', 'index', '2^32')
  end)

  it('the same bits for 1 and 2 threads', function()
    local saved = ms.num_threads()
    local function run(nth)
      ms.set_num_threads(nth)
      local res = {}
      for _, dist in ipairs(DISTS) do
        local t = ms.empty(300001)
        zo.fill('test', t, dir(dist, 1), 77)
        res[#res + 1] = t
        local w = ms.randn(300001)
        w:narrow(1, 1, 3000):copy_(hostile('float32', 3000))
        local A, B = zo.log(), zo.log()
        zo.move('test', w, nil, nil, dir(dist, 1e-3), A)
        res[#res + 1] = w:clone()
        res[#res + 1] = A:count()
        zo.move('test', w, dir(dist, 1e-3), A, dir(dist, -1e-1), B)
        res[#res + 1] = w:clone()
        res[#res + 1] = B:count()
        zo.move('test', w, dir(dist, -1e-1), B, nil, nil)
        res[#res + 1] = w
        local g = ms.empty(300001)
        zo.estimate('test', g, { dir(dist), dir(dist, 1, 3, 1) }, { 0.5, -2 }, false, 0)
        res[#res + 1] = g
      end
      return res
    end
    ms.manual_seed(4)
    local one = run(1)
    ms.manual_seed(4)
    local two = run(2)
    ms.set_num_threads(saved)
    for i = 1, #one do
      if type(one[i]) == 'number' then assert(one[i] == two[i], 'log counts differ')
      else bits_equal(one[i], two[i], 'result ' .. i) end
    end
  end)
end)

-- ---- the exact-restore move --------------------------------------------------------------

describe('zo.move', function()
  it('the round trip NULL -> +h u1 -> -h u1 -> +h u2 -> NULL is exact, bit for bit', function()
    for _, dtype in ipairs { 'float32', 'float64' } do
      for _, dist in ipairs(DISTS) do
        for _, h in ipairs { 1e-4, 1e-3, 1e-1, 10 } do
          local w = hostile(dtype, 5000)
          local w0 = w:clone()
          local A, B = zo.log(), zo.log()
          local seq = { dir(dist, h, 1, 0), dir(dist, -h, 1, 0), dir(dist, h, 1, 1) }
          local prev, logs = nil, { A, B }
          for s, d in ipairs(seq) do
            local lin, lout = logs[s % 2 + 1], logs[(s - 1) % 2 + 1]
            zo.move('test', w, prev, prev and lin or nil, d, lout)
            local want = ms.empty(5000, { dtype = dtype })
            zo.perturb('test', want, w0, d)
            bits_equal(w, want, ('%s %s h %g state %d'):format(dtype, dist, h, s))
            prev = d
          end
          zo.move('test', w, prev, logs[(#seq - 1) % 2 + 1], nil, nil)
          bits_equal(w, w0, ('%s %s h %g round trip'):format(dtype, dist, h))
        end
      end
    end
  end)

  it('logs the elements that subtraction would not restore (and only those)', function()
    local w = ms.empty(200000)
    w:normal_(0, 0.02)
    local w0 = w:clone()
    local A = zo.log()
    local d = dir('gaussian', 1e-3)
    zo.move('test', w, nil, nil, d, A)
    local frac = A:count() / 200000
    assert(A:count() > 0 and A:bytes() >= 2 * A:count())
    -- the naive restore differs from w0 in exactly A:count() places
    local naive = w:clone()
    zo.move('test', naive, d, nil, nil, nil)
    local differ = (ms.ne(naive, w0)):sum()
    assert(differ <= A:count(), ('naive restore differs in %d places, log holds %d'):format(differ, A:count()))
    print(('\n  zo.move: N(0, 0.02) float32, gaussian h = 1e-3: %.3f%% of elements logged'):format(100 * frac))
    -- nothing to log for an exactly representable perturbation of small integers
    local ints = ms.tensor({ 1, 2, 3, 4, 5, 6, 7, 8 })
    zo.move('test', ints, nil, nil, dir('rademacher', 1), A)
    assert(A:count() == 0)
    -- zero scale and NULL moves change nothing and log nothing
    local z = w0:clone()
    zo.move('test', z, nil, nil, dir('gaussian', 0), A)
    bits_equal(z, w0, 'scale 0')
    assert(A:count() == 0)
  end)

  it('refuses a log of another arena and in == out', function()
    local w, v = ms.randn(1000), ms.randn(999)
    local A, B = zo.log(), zo.log()
    zo.move('test', w, nil, nil, dir('gaussian', 1e-2), A)
    assert(A:count() > 0)
    H.assert_error(function() zo.move('SPSA.step', v, dir('gaussian', 1e-2), A, nil, B) end,
                   'SPSA.step', 'log', '1000')
    H.assert_error(function() zo.move('SPSA.step', w, dir('gaussian', 1e-2), A, nil, A) end,
                   'SPSA.step', 'same')
    H.assert_error(function() zo.move('SPSA.step', w:to('float64'), dir('gaussian', 1e-2), A, nil, B) end,
                   'SPSA.step', 'float32')
    H.assert_error(function() zo.move('SPSA.step', w, nil, {}, nil, nil) end, 'SPSA.step', 'log_in')
    A:free()
    H.assert_error(function() zo.move('SPSA.step', w, nil, A, nil, nil) end, 'SPSA.step', 'freed')
  end)
end)

-- ---- estimate and MeZO's update ----------------------------------------------------------

local function dirs_of(dist, n)
  local ds = {}
  for i = 1, n do ds[i] = dir(dist, 1, 6, i - 1) end
  return ds
end

local function materialized(ds, n)
  local us = {}
  for i, d in ipairs(ds) do
    us[i] = ms.empty(n, { dtype = 'float64' })
    zo.fill('test', us[i], { seed = d.seed, step = d.step, index = d.index, dist = d.dist, scale = 1 })
  end
  return us
end

describe('zo.estimate', function()
  it('equals a Lua loop over the filled directions (float64 exactly, float32 closely)', function()
    local n = 1500
    for _, dist in ipairs(DISTS) do
      for _, divide in ipairs { false, true } do
        if not (divide and dist == 'gaussian') then
          local ds, coefs = dirs_of(dist, 3), { 0.25, -1.5, 3 }
          local us = materialized(ds, n)
          for _, beta in ipairs { 0, 0.9 } do
            local g64 = ms.randn(n):to('float64')
            local g32 = g64:to('float32')
            local want = {}
            for j = 1, n do
              local t = 0
              for i = 1, 3 do
                local u = us[i]:get(j)
                t = t + coefs[i] * (divide and 1 / u or u)
              end
              want[j] = beta == 0 and t or beta * g64:get(j) + t
            end
            zo.estimate('test', g64, ds, coefs, divide, beta)
            zo.estimate('test', g32, ds, coefs, divide, beta)
            for j = 1, n do
              assert(g64:get(j) == want[j], ('%s divide %s beta %g: g[%d] = %.17g, expected %.17g')
                     :format(dist, tostring(divide), beta, j, g64:get(j), want[j]))
            end
            H.assert_close(g32, want, 1e-5, dist .. ' float32')
          end
        end
      end
    end
  end)

  it('beta = 0 does not read g (NaN does not leak)', function()
    local g = ms.full({ 700 }, 0 / 0)
    zo.estimate('test', g, dirs_of('rademacher', 2), { 1, 1 }, false, 0)
    for j = 1, 700 do assert(g:get(j) == g:get(j), 'NaN leaked at ' .. j) end
  end)

  it('refuses the divide form for gaussian directions, naming the function', function()
    H.assert_error(function() zo.estimate('SPSA.step', ms.empty(10), dirs_of('gaussian', 1), { 1 }, true) end,
                   'SPSA.step', 'divide', 'gaussian')
  end)
end)

local slice_table = Z.slice_table

describe('zo.mezo_update', function()
  it('equals the tensor-op reference, with per-group lr and weight decay', function()
    local spec = { { 300, 0 }, { 10, 1 }, { 700, 0 }, { 3, 1 }, { 1200, 2 } }
    local ct, keep = slice_table(spec, 3)
    local lr, wd = { 0.1, 0.05, 0.2 }, { 0.01, 0, 0.5 }
    for _, dtype in ipairs { 'float32', 'float64' } do
      for _, dist in ipairs(DISTS) do
        local n = 2213
        local ds, coefs = dirs_of(dist, 2), { 0.7, -0.3 }
        local us = materialized(ds, n)
        local w = ms.randn(n):to(dtype)
        local ref = w:to('float64')
        local sum = us[1] * coefs[1] + us[2] * coefs[2]
        local off = 0
        for _, s in ipairs(spec) do
          local g = s[2] + 1
          local wr = ref:narrow(1, off + 1, s[1])
          wr:copy_(wr - (sum:narrow(1, off + 1, s[1]) + wr * wd[g]) * lr[g])
          off = off + s[1]
        end
        zo.mezo_update('test', w, nil, nil, ds, coefs, ct, lr, wd)
        H.assert_close(w, ref, dtype == 'float32' and 1e-6 or 1e-14, dtype .. ' ' .. dist)
        local v = ms.randn(n):to(dtype)
        local vref = v:to('float64') - (sum + v:to('float64') * 0.01) * 0.1
        zo.mezo_update('test', v, nil, nil, ds, coefs, nil, 0.1, 0.01)
        H.assert_close(v, vref, dtype == 'float32' and 1e-6 or 1e-14, dtype .. ' ' .. dist .. ' no table')
      end
    end
    assert(keep)
  end)

  it('lr = 0 and wd = 0 leave the weights bit for bit', function()
    local w = hostile('float32', 3000)
    local w0 = w:clone()
    zo.mezo_update('test', w, nil, nil, dirs_of('gaussian', 1), { 5 }, nil, 0, 0)
    bits_equal(w, w0, 'lr 0')
  end)
end)

-- ---- argument errors ----------------------------------------------------------------------

describe('zo_ops argument errors', function()
  it('name the public function, the argument, what was given and what was expected', function()
    local who = 'SPSA.step'
    local d = dir('rademacher')
    H.assert_error(function() zo.fill(who, ms.zeros(3, { dtype = 'int64' }), d) end, who, "'out'", 'int64', 'float32')
    H.assert_error(function() zo.fill(who, ms.zeros(3, 4):t(), d) end, who, 'not contiguous')
    H.assert_error(function() zo.perturb(who, ms.zeros(3), ms.zeros(4), d) end, who, "'out'", 'shape')
    H.assert_error(function() zo.perturb(who, ms.zeros(3), ms.zeros(3, { dtype = 'float64' }), d) end, who, 'dtype')
    local f = ms.zeros(3)
    f:free()
    H.assert_error(function() zo.fill(who, f, d) end, who, 'freed')
    H.assert_error(function() zo.move(who, f, nil, nil, d, nil) end, who, 'freed')
    H.assert_error(function() zo.fill(who, ms.zeros(3), dir('rademacher', 1, 2 ^ 32)) end, who, 'dir.step', '4294967296')
    H.assert_error(function() zo.fill(who, ms.zeros(3), dir('uniform')) end, who, 'dir.dist', '"uniform"', 'rademacher')
    H.assert_error(function() zo.fill(who, ms.zeros(3), { seed = 1, step = 0, dist = 'gaussian', sacle = 1 }) end,
                   who, 'sacle')
    H.assert_error(function() zo.fill(who, ms.zeros(3), dir('gaussian', 0 / 0)) end, who, 'scale', 'nan')
    H.assert_error(function() zo.fill(who, ms.zeros(3), d, -1) end, who, 'offset', '-1')
    H.assert_error(function() zo.fill(who, ms.zeros(3), 'x') end, who, 'dir', 'direction')
    H.assert_error(function() zo.estimate(who, ms.zeros(3), {}, {}) end, who, 'dirs', 'non-empty')
    H.assert_error(function() zo.estimate(who, ms.zeros(3), { d }, { 1, 2 }) end, who, 'coefs', '1 numbers')
    H.assert_error(function() zo.estimate(who, ms.zeros(3), { d }, { 0 / 0 }) end, who, 'coefs[1]', 'nan')
    H.assert_error(function() zo.mezo_update(who, ms.zeros(3), nil, nil, { d }, { 1 }, nil, 'x', 0) end, who, 'lr')
    local ct = slice_table({ { 2, 0 } }, 1)
    H.assert_error(function() zo.mezo_update(who, ms.zeros(3), nil, nil, { d }, { 1 }, ct, 0.1, 0) end, who, 'slice')
  end)

  it('the C entry points refuse what Lua would not pass', function()
    local d = ffi.new('ms_zo_dir[1]')
    d[0].seed, d[0].step, d[0].index, d[0].dist, d[0].scale = 1, 2 ^ 32, 0, 0, 1
    assert(C.ms_zo_fill(ms.zeros(3), d, 0) ~= 0)
    assert(ffi.string(C.ms_last_error()):find('step is 4294967296, expected < 2^32', 1, true))
    d[0].step, d[0].dist = 0, 7
    assert(C.ms_zo_fill(ms.zeros(3), d, 0) ~= 0)
    assert(ffi.string(C.ms_last_error()):find('dist is 7', 1, true))
    d[0].dist = 0
    assert(C.ms_zo_estimate(ms.zeros(3), d, ffi.new('double[1]', 1), 0, 0, 0) ~= 0)
    assert(ffi.string(C.ms_last_error()):find('n is 0', 1, true))
    assert(C.ms_zo_log_count(nil) == 0)
  end)
end)

-- ---- GPU = CPU ----------------------------------------------------------------------------

describe('zo on the GPU', function()
  it('fill, perturb, move, estimate and mezo_update give the CPU bits', function()
    if not gpu then pending('no usable GPU'); return end
    local n = 100003
    for _, dist in ipairs(DISTS) do
      local c, g = ms.empty(n), ms.empty(n, { device = 'cuda' })
      zo.fill('test', c, dir(dist, 0.3), 5)
      zo.fill('test', g, dir(dist, 0.3), 5)
      bits_equal(g:to('cpu'), c, dist .. ' fill')
      local w = hostile('float32', n)
      local wg = w:to('cuda')
      local A, B, Ag, Bg = zo.log(), zo.log(), zo.log(), zo.log()
      local p, m = dir(dist, 1e-3), dir(dist, -1e-3)
      zo.move('test', w, nil, nil, p, A)
      zo.move('test', wg, nil, nil, p, Ag)
      assert(A:count() == Ag:count(), dist .. ' log counts')
      bits_equal(wg:to('cpu'), w, dist .. ' moved')
      zo.move('test', w, p, A, m, B)
      zo.move('test', wg, p, Ag, m, Bg)
      bits_equal(wg:to('cpu'), w, dist .. ' moved twice')
      zo.move('test', wg, m, Bg, nil, nil)
      bits_equal(wg:to('cpu'), hostile('float32', n), dist .. ' GPU round trip')
      local ds = dirs_of(dist, 3)
      local ec, eg = ms.randn(n), nil
      eg = ec:to('cuda')
      zo.estimate('test', ec, ds, { 1, -2, 0.5 }, false, 0.5)
      zo.estimate('test', eg, ds, { 1, -2, 0.5 }, false, 0.5)
      bits_equal(eg:to('cpu'), ec, dist .. ' estimate')
      local mc = ms.randn(n)
      local mg = mc:to('cuda')
      zo.mezo_update('test', mc, nil, nil, ds, { 1, -2, 0.5 }, nil, 0.01, 0.1)
      zo.mezo_update('test', mg, nil, nil, ds, { 1, -2, 0.5 }, nil, 0.01, 0.1)
      bits_equal(mg:to('cpu'), mc, dist .. ' mezo')
      -- fused with the last restore (from = dirs[2], and another direction)
      for _, from in ipairs { dir(dist, -1e-3, 6, 1), dir(dist, 1e-2, 8, 0) } do
        local hc = hostile('float32', n)
        local hg = hc:to('cuda')
        zo.move('test', hc, nil, nil, from, A)
        zo.move('test', hg, nil, nil, from, Ag)
        assert(A:count() == Ag:count(), dist .. ' log counts (from)')
        zo.mezo_update('test', hc, from, A, ds, { 1, -2, 0.5 }, nil, 0.01, 0.1)
        zo.mezo_update('test', hg, from, Ag, ds, { 1, -2, 0.5 }, nil, 0.01, 0.1)
        bits_equal(hg:to('cpu'), hc, dist .. ' mezo with from and log')
      end
      local rc, rg = ms.empty(3, 1001), ms.empty(3, 1001, { device = 'cuda' })
      zo.fill('test', rc, dir(dist, 0.5, 2, 4), 9)
      zo.fill('test', rg, dir(dist, 0.5, 2, 4), 9)
      bits_equal(rg:to('cpu'), rc, dist .. ' 2-D fill')
    end
  end)
end)
