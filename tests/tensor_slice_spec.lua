-- Torch7's slicing t[{ ... }] (lua/moonstep/tensor_slice.lua): views checked element by
-- element against the index arithmetic done by hand, assignment, and misuse.
local H = require 'tests.helper'
local ms = require 'moonstep'

-- t [3, 4, 5] with t[i][j][k] = 100 i + 10 j + k (1-based)
local function grid()
  local t = ms.empty(3, 4, 5)
  for i = 1, 3 do for j = 1, 4 do for k = 1, 5 do t:set(i, j, k, 100 * i + 10 * j + k) end end end
  return t
end

-- The expected contents of a slice: ranges per dim (a, b) and picked dims (nil range).
local function check_view(v, ranges)
  local kept = {}
  for d = 1, 3 do if ranges[d][2] then kept[#kept + 1] = d end end
  assert.equal(#kept, v:dim())
  for k, d in ipairs(kept) do assert.equal(ranges[d][2] - ranges[d][1] + 1, v:size(k)) end
  local idx = {}
  local function walk(d)
    if d > 3 then
      local pos, at = {}, 1
      for dd = 1, 3 do
        if ranges[dd][2] then pos[at] = idx[dd] - ranges[dd][1] + 1; at = at + 1 end
      end
      assert.equal(100 * idx[1] + 10 * idx[2] + idx[3], v:get(unpack(pos)))
      return
    end
    for i = ranges[d][1], ranges[d][2] or ranges[d][1] do idx[d] = i; walk(d + 1) end
  end
  walk(1)
end

describe('t[{ ... }] slicing', function()
  it('takes integers, {a, b}, {a}, {} and negative indices, as views', function()
    local t = grid()
    check_view(t[{ 2 }], { { 2 }, { 1, 4 }, { 1, 5 } })
    check_view(t[{ { 2, 3 } }], { { 2, 3 }, { 1, 4 }, { 1, 5 } })
    check_view(t[{ {}, 3, { 2, -2 } }], { { 1, 3 }, { 3 }, { 2, 4 } })
    check_view(t[{ -1, { 2 }, {} }], { { 3 }, { 2, 2 }, { 1, 5 } })
    check_view(t[{ { -2, -1 }, -4 }], { { 2, 3 }, { 1 }, { 1, 5 } })
    assert.equal(234, t[{ 2, 3, 4 }])
    assert.equal(345, t[{ -1, -1, -1 }])
    local v = t[{ 1, {} }]
    v:fill_(0)
    assert.equal(0, t:get(1, 4, 5))               -- a view: writes reach t
  end)

  it('assigns a number or a tensor (broadcast) into the view', function()
    local t = grid()
    t[{ { 1, 2 }, 2 }] = -1
    assert.equal(-1, t:get(1, 2, 3)); assert.equal(-1, t:get(2, 2, 5)); assert.equal(332, t:get(3, 3, 2))
    t[{ 3, {}, { 1, 2 } }] = ms.tensor({ 7, 8 })
    assert.equal(7, t:get(3, 4, 1)); assert.equal(8, t:get(3, 1, 2)); assert.equal(313, t:get(3, 1, 3))
    t[{ 1, 1, 1 }] = 5
    assert.equal(5, t:get(1, 1, 1))
  end)

  it('refuses bad specs with a message naming the slice', function()
    local t = grid()
    H.assert_error(function() return t[{ 4 }] end, 't[{...}]', 'index 4 of dim 1 is out of range', '1..3')
    H.assert_error(function() return t[{ 1, { 3, 2 } }] end, 'spec 2 is {3, 2}, an empty range')
    H.assert_error(function() return t[{ 1, 1, 1, 1 }] end, '4 specs for a tensor of 3 dims')
    H.assert_error(function() return t[{ 1.5 }] end, 'index of dim 1 is 1.5, expected an integer')
    H.assert_error(function() return t[{ 'a' }] end, "spec 1 is", 'expected an integer, {}, {a} or {a, b}')
    H.assert_error(function() return t[{ { 1, 2, 3 } }] end, 'expected {}, {a} or {a, b}')
    H.assert_error(function() return t[{ x = 1 }] end, 'expected a list')
    H.assert_error(function() t[{ 1 }] = 'x' end, 'assignment', 'expected a number or a tensor')
    H.assert_error(function() return t[1] end, 't[{ i }]')
  end)
end)
