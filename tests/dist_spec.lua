-- ms.dist: the collectives on 2 ranks under mpirun, a world of one without it, and the
-- errors (a mismatched tensor, a rank that stops answering).
local ms = require 'moonstep'
local H = require 'helper'
local D = require 'dist_helper'

local dit = H.gate(it, pending, D.available, D.why)

describe('ms.dist without a launcher', function()
  it('is a world of one rank where every collective is a no-op', function()
    assert.are.equal(0, ms.dist.rank())
    assert.are.equal(1, ms.dist.world_size())
    assert.is_false(ms.dist.is_distributed())
    local t = ms.tensor({ 1, 2 }, 'float64')
    assert.are.equal(t, ms.dist.all_reduce(t, 'mean'))
    assert.are.same({ 1, 2 }, t:totable())
    assert.are.same({ { 1, 2 } }, ms.dist.all_gather(t):totable())
    ms.dist.broadcast(t, 0)
    ms.dist.barrier()
    H.assert_error(function() ms.dist.all_reduce(t, 'avg') end, "dist.all_reduce: op is \"avg\"")
    H.assert_error(function() ms.dist.broadcast(t, 1) end, 'dist.broadcast: root is 1, expected a rank in 0..0')
    H.assert_error(function() ms.dist.all_reduce(ms.tensor({ 1 }, 'uint8')) end, 'expected float32, float64 or int64')
    H.assert_error(function() ms.dist.init { timout = 3 } end, 'timout')
  end)
end)

describe('ms.dist on 2 ranks (mpirun)', function()
  dit('all_reduce (sum, mean, max), all_gather, broadcast and barrier agree on every rank', function()
    local rc, out = D.run(2, 'tests/dist/collectives.lua')
    assert.are.equal(0, rc, out)
    for r = 0, 1 do
      assert.truthy(out:find(('rank %d of 2: sum 3,3,3 mean 1.5,1.5 max 1,0 gather 0,0,1,1 bcast 17,17 strided 3,9,6,12'):format(r), 1, true), out)
    end
  end)
end)
