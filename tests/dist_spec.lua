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
    H.assert_error(function() ms.dist.init { check = 'no' } end, 'dist.init: check is "no", expected')
    H.assert_error(function() ms.dist.all_gather(ms.ones(1, 1, 1, 1, 1, 1, 1, 1)) end,
                   'dist.all_gather: tensor is')
    assert.are.same({ 0, 1 }, { ms.dist.init { check = false } })
    ms.dist.init { check = true }
    local out = H.sh_rc([[MOONSTEP_DIST_CHECK=2 bin/moonstep -e "require('moonstep').dist.init()"]])
    assert.truthy(out:find('dist.init: MOONSTEP_DIST_CHECK is "2", expected 0 (no agreement check) or 1', 1, true), out)
  end)
end)

describe('ms.dist on 2 ranks with GPUs (mpirun)', function()
  local gpus = D.available and ms.cuda.is_available() and ms.cuda.device_count() >= 2
  local git = H.gate(it, pending, gpus, D.available and (ms.cuda.why() or 'needs 2 GPUs') or D.why)
  git('all_reduce and broadcast of CUDA tensors give the CPU values (NCCL when built)', function()
    local rc, out = D.run(2, 'tests/dist/gpu_collectives.lua')
    assert.are.equal(0, rc, out)
    for r = 0, 1 do assert.truthy(out:find(('rank %d: gpu==cpu true bcast 4'):format(r), 1, true), out) end
  end)
end)

describe('ms.dist on 2 ranks (mpirun)', function()
  dit('all_reduce (sum, mean, max), all_gather, broadcast and barrier agree on every rank', function()
    for _, how in ipairs { '', 'nocheck' } do   -- with and without the agreement check
      local rc, out = D.run(2, 'tests/dist/collectives.lua', how)
      assert.are.equal(0, rc, out)
      for r = 0, 1 do
        assert.truthy(out:find(('rank %d of 2: sum 3,3,3 mean 1.5,1.5 max 1,0 gather 0,0,1,1 bcast 17,17 strided 3,9,6,12'):format(r), 1, true), out)
      end
    end
  end)

  dit('refuses a MOONSTEP_DIST_PROGRESS_THREAD that is not 0 or 1, by name', function()
    local rc, out = D.run(2, 'tests/dist/collectives.lua', '', { env = 'MOONSTEP_DIST_PROGRESS_THREAD=yes' })
    assert.are_not.equal(0, rc, out)
    assert.truthy(out:find('dist.init: MOONSTEP_DIST_PROGRESS_THREAD is "yes", expected 0 (no progress thread) or 1', 1, true), out)
  end)

  dit('names a mismatched tensor on every rank', function()
    local rc, out = D.run(2, 'tests/dist/failures.lua', 'mismatch')
    assert.are.equal(0, rc, out)
    assert.truthy(out:find('rank 0: dist.all_reduce: the ranks passed different tensors: this rank (0) 4 elements', 1, true), out)
    assert.truthy(out:find('rank 1: dist.all_reduce: the ranks passed different tensors: this rank (1) 5 elements', 1, true), out)
  end)

  dit('gives an error, not a hang, when a rank stops answering', function()
    local t0 = ms.clock()
    local rc, out = D.run(2, 'tests/dist/failures.lua', 'stuck', { timeout = 60 })
    assert.truthy(out:find('rank 0: after 3.%d s: dist.all_reduce: no answer from the other ranks after 3 s'), out)
    assert.is_true(ms.clock() - t0 < 40, out)
    local _ = rc
  end)

  dit('ends the job with a message naming a rank that died, not a hang', function()
    local t0 = ms.clock()
    local rc, out = D.run(2, 'tests/dist/failures.lua', 'killed', { timeout = 60 })
    assert.are_not.equal(0, rc, out)
    assert.are_not.equal(124, rc, out)                               -- not the harness's timeout
    assert.truthy(out:find('rank 1') and out:find('signal 9'), out)
    assert.is_true(ms.clock() - t0 < 30, out)
  end)

  dit('ends the whole job at once when a rank raises a Lua error', function()
    local t0 = ms.clock()
    local rc, out = D.run(2, 'tests/dist/failures.lua', 'luaerror', { timeout = 60 })
    assert.are_not.equal(0, rc, out)
    assert.truthy(out:find('boom on rank 1', 1, true), out)
    assert.is_true(ms.clock() - t0 < 15, out)                        -- not the 30 s timeout
  end)

  dit('refuses different collectives, roots or ops on the ranks', function()
    local rc, out = D.run(2, 'tests/dist/failures.lua', 'kinds')
    assert.are.equal(0, rc, out)
    for r = 0, 1 do
      assert.truthy(out:find(('rank %d refused: kinds true roots true ops true'):format(r), 1, true), out)
    end
  end)
end)
