-- The exact-restore log of the zeroth-order runtime (runtime/zo_move.c, optim/zo.h: per
-- chunk of 4096 elements a byte stream of (gap, ulp difference) entries): exactly the
-- elements subtraction would not restore, sparse gaps and escapes at chunk edges, its size
-- (about 2 bytes an entry), logs written and read at other thread counts, and MeZO's update
-- fused with the last restore (= the separate move then update, bit for bit).
local ms = require 'moonstep'
local zo = require 'moonstep.optim.zo_ops'
local T = require 'moonstep.tensor'
local H = require 'helper'

local DISTS = { 'rademacher', 'gaussian', 'segmented_uniform' }

local Z = require 'zo_helper'
local dir, bits_equal, hostile = Z.dir, Z.bits_equal, Z.hostile

local function dirs_of(dist, n)
  local ds = {}
  for i = 1, n do ds[i] = dir(dist, 1, 6, i - 1) end
  return ds
end

local slice_table = Z.slice_table

describe('zo log', function()
  it('a log written by 2 threads is put back by 1 and the other way round', function()
    local saved = ms.num_threads()
    local n = 600001
    for _, order in ipairs { { 2, 1 }, { 1, 2 } } do
      local w = ms.empty(n)
      w:normal_(0, 0.02)
      local w0 = w:clone()
      local A, B = zo.log(), zo.log()
      ms.set_num_threads(order[1])
      zo.move('test', w, nil, nil, dir('gaussian', 1e-3), A)
      ms.set_num_threads(order[2])
      zo.move('test', w, dir('gaussian', 1e-3), A, dir('gaussian', -1e-3), B)
      ms.set_num_threads(order[1])
      local v = w0:clone()
      zo.mezo_update('test', w, dir('gaussian', -1e-3), B, { dir('rademacher', 1, 6, 0) }, { 1 }, nil, 0.1, 0)
      zo.mezo_update('test', v, nil, nil, { dir('rademacher', 1, 6, 0) }, { 1 }, nil, 0.1, 0)
      ms.set_num_threads(saved)
      assert(A:count() > 0.05 * n and B:count() > 0.05 * n)
      bits_equal(w, v, ('threads %d then %d'):format(order[1], order[2]))
    end
  end)

  it('logs exactly the elements that subtraction would not restore: sparse, escapes, chunk edges', function()
    for _, dtype in ipairs { 'float32', 'float64' } do
      local n = 3 * 4096 + 1000
      local w = ms.ones(n, { dtype = dtype })
      local tiny = dtype == 'float32' and 2 ^ -30 or 2 ^ -60   -- 1.5 + tiny - 1.5 = 0: an escape
      local pos = { 0, 1, 3, 130, 258, 387, 517, 4095, 4096, 4097, 4096 + 127, 4096 + 255,
                    8191, 8192, 8192 + 4095, n - 1 }   -- gaps 0, 1, 126, 127, 128, 129, 4095, edges
      for _, p in ipairs(pos) do w:set(p + 1, tiny) end
      for k = 1, 40 do w:set(9000 + 7 * k, 1 + k * (dtype == 'float32' and 2 ^ -23 or 2 ^ -52)) end
      local w0 = w:clone()
      local A, B = zo.log(), zo.log()
      for _, dist in ipairs(DISTS) do
        local p, m = dir(dist, 1.5), dir(dist, -1.5, 3, 1)
        zo.move('test', w, nil, nil, p, A)
        local D = ms.empty(n, { dtype = dtype })
        zo.fill('test', D, p)
        local want = ms.ne((w0 + D) - D, w0):sum()
        assert(A:count() == want and want >= #pos, ('%s %s: %d logged, %d expected'):format(dtype, dist, A:count(), want))
        zo.move('test', w, p, A, m, B)
        zo.fill('test', D, m)
        want = ms.ne((w0 + D) - D, w0):sum()
        assert(B:count() == want, ('%s %s -h: %d logged, %d expected'):format(dtype, dist, B:count(), want))
        zo.move('test', w, m, B, nil, nil)
        bits_equal(w, w0, dtype .. ' ' .. dist .. ' sparse round trip')
      end
    end
  end)

  it('the log takes about 2 bytes an entry: <= 0.2 bytes an element at 7.5% logged', function()
    local n = 2 ^ 21
    local w = ms.empty(n)
    w:normal_(0, 0.02)
    local w0 = w:clone()
    local A = zo.log()
    local d = dir('gaussian', 1e-3)
    zo.move('test', w, nil, nil, d, A)
    local D = ms.empty(n)
    zo.fill('test', D, d)
    assert(A:count() == ms.ne((w0 + D) - D, w0):sum(), 'logged count')
    local per_el, per_entry = A:bytes() / n, A:bytes() / A:count()
    print(('\n  zo log: %.3f%% logged, %.4f bytes an element, %.3f an entry (capacity)'):format(
      100 * A:count() / n, per_el, per_entry))
    assert(A:count() / n > 0.06 and per_el <= 0.2 and per_entry < 2.3, 'log too large')
    zo.move('test', w, d, A, nil, nil)
    bits_equal(w, w0, 'restored')
  end)

end)

describe('zo.mezo_update fused with the last restore', function()
  it('from and log_in: one pass equal to move(from, log_in -> nil) then the update, bit for bit', function()
    local spec = { { 5000, 0 }, { 10, 1 }, { 4000, 0 }, { 3, 1 } }
    local ct, keep = slice_table(spec, 2)
    local n = 9013
    for _, dtype in ipairs { 'float32', 'float64' } do
      for _, dist in ipairs(DISTS) do
        local ds, coefs = dirs_of(dist, 2), { 0.7, -0.3 }
        local w0 = hostile(dtype, n)
        for case, from in ipairs { dir(dist, -1e-3, 6, 1), dir(dist, 1e-1, 9, 0), dir(dist, 0, 6, 0), false } do
          for _, tbl in ipairs { false, true } do
            local A = zo.log()
            local a, b = w0:clone(), w0:clone()
            if from then
              zo.move('test', a, nil, nil, from, A)
              zo.move('test', b, nil, nil, from, nil)
              bits_equal(a, b, 'moved alike')
            end
            local t, lr, wd = tbl and ct or nil, tbl and { 0.1, 0.05 } or 0.1, tbl and { 0.01, 0.5 } or 0.01
            zo.move('test', a, from or nil, from and A or nil, nil, nil)
            zo.mezo_update('test', a, nil, nil, ds, coefs, t, lr, wd)
            zo.mezo_update('test', b, from or nil, from and A or nil, ds, coefs, t, lr, wd)
            bits_equal(b, a, ('%s %s from case %d table %s'):format(dtype, dist, case, tostring(tbl)))
          end
        end
      end
    end
    -- a log of another arena is refused
    local A = zo.log()
    zo.move('test', ms.randn(1000), nil, nil, dir('gaussian', 1e-2), A)
    H.assert_error(function() zo.mezo_update('SPSA.step', ms.randn(999), dir('gaussian', 1e-2), A,
                                             dirs_of('gaussian', 1), { 1 }, nil, 0.1, 0) end,
                   'SPSA.step', 'log', '1000')
    assert(keep)
  end)

end)
