-- The Rademacher fast paths of the zeroth-order runtime (runtime/zo_rad.c): the sum of many
-- directions (estimate, MeZO's update) selects +-coef_i from the sign bits, in tiles of
-- blocks by batches of directions; it must give the bits of the plain ordered sum
-- acc = (((0 + c_1 u_1) + c_2 u_2) + ...) in the arena's dtype. The reference here adds the
-- filled rows c_i u_i (zo.fill, checked against the Philox words in zo_runtime_spec.lua)
-- one by one with tensor ops, so a wrong order, a lost direction, a batch or tile edge, or
-- a first step that skips the 0 + (which turns -0 into +0) shows as a differing bit.
local ms = require 'moonstep'
local zo = require 'moonstep.optim.zo_ops'
local Z = require 'zo_helper'
local bits_equal = Z.bits_equal

-- n directions (indices 0 .. n - 1 of one step) and coefficients: -0 first (its products
-- are signed zeros), then values whose sums round.
local function problem(n)
  local ds, cs = {}, {}
  for i = 1, n do
    ds[i] = { seed = 2 ^ 33 + 77, step = 9, index = i - 1, dist = 'rademacher', scale = 1 }
    cs[i] = i == 1 and -0.0 or (i % 3 == 0 and -1 or 1) * (0.1 * i + 1 / 3)
  end
  return ds, cs
end

-- sum_i c_i u_i in order, in dtype, from the filled rows.
local function ordered_sum(ds, cs, size, dtype)
  local acc = ms.zeros(size, { dtype = dtype })
  local row = ms.empty(size, { dtype = dtype })
  for i, d in ipairs(ds) do
    zo.fill('test', row, { seed = d.seed, step = d.step, index = d.index, dist = d.dist,
                           scale = cs[i] })
    acc = acc + row
  end
  return acc
end

local SIZES = { 1, 127, 129, 4097, 9000 }

describe('zo rademacher sums', function()
  it('estimate equals the ordered sum of the filled directions, bit for bit', function()
    for _, dtype in ipairs { 'float32', 'float64' } do
      for _, n in ipairs { 1, 7, 33, 50 } do
        local ds, cs = problem(n)
        for _, size in ipairs(SIZES) do
          local want = ordered_sum(ds, cs, size, dtype)
          local what = ('%s n %d size %d'):format(dtype, n, size)
          local g = ms.full({ size }, 0 / 0, { dtype = dtype })
          zo.estimate('test', g, ds, cs, false, 0)
          bits_equal(g, want, what)
          zo.estimate('test', g, ds, cs, true, 0)   -- divide: 1/u = u for +-1
          bits_equal(g, want, what .. ' divide')
          local g0 = ms.randn(size):to(dtype)
          local gb = g0:clone()
          zo.estimate('test', gb, ds, cs, false, 0.5)
          bits_equal(gb, g0 * 0.5 + want, what .. ' beta 0.5')
        end
      end
    end
  end)

  it('estimate of many directions equals single-direction estimates added in order', function()
    local ds, cs = problem(50)
    for _, dtype in ipairs { 'float32', 'float64' } do
      for _, size in ipairs(SIZES) do
        local one = ms.empty(size, { dtype = dtype })
        zo.estimate('test', one, { ds[1] }, { cs[1] }, false, 0)
        for i = 2, #ds do zo.estimate('test', one, { ds[i] }, { cs[i] }, false, 1) end
        local all = ms.empty(size, { dtype = dtype })
        zo.estimate('test', all, ds, cs, false, 0)
        bits_equal(all, one, ('%s size %d'):format(dtype, size))
      end
    end
  end)

  it('the same bits for 1 and 2 threads', function()
    local saved = ms.num_threads()
    local ds, cs = problem(7)
    local got = {}
    for _, nth in ipairs { 1, 2 } do
      ms.set_num_threads(nth)
      got[nth] = ms.empty(300001)
      zo.estimate('test', got[nth], ds, cs, false, 0)
    end
    ms.set_num_threads(saved)
    bits_equal(got[2], got[1], '2 threads')
  end)

  it('a 2-D fill split between threads mid-row equals separate row fills', function()
    local saved = ms.num_threads()
    for _, nth in ipairs { 1, 2 } do
      ms.set_num_threads(nth)
      for _, dtype in ipairs { 'float32', 'float64' } do
        local m = ms.empty(5, 33001, { dtype = dtype })
        zo.fill('test', m, Z.dir('rademacher', -0.25, 4, 3), 131)
        for k = 1, 5 do
          local row = ms.empty(33001, { dtype = dtype })
          zo.fill('test', row, Z.dir('rademacher', -0.25, 4, 3 + k - 1), 131)
          bits_equal(m:select(1, k), row, ('%s %d threads row %d'):format(dtype, nth, k))
        end
      end
    end
    ms.set_num_threads(saved)
  end)

  it("MeZO's update uses the same sums (lr, wd exact in float32)", function()
    for _, dtype in ipairs { 'float32', 'float64' } do
      for _, n in ipairs { 1, 7, 50 } do
        local ds, cs = problem(n)
        for _, size in ipairs { 129, 4097, 9000 } do
          local w = ms.randn(size):to(dtype)
          local want = w - (ordered_sum(ds, cs, size, dtype) + w * 0.25) * 0.5
          zo.mezo_update('test', w, nil, nil, ds, cs, nil, 0.5, 0.25)
          bits_equal(w, want, ('%s n %d size %d'):format(dtype, n, size))
        end
      end
    end
  end)
end)
