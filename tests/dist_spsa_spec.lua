-- SPSA on several ranks (optim/spsa_dist.lua): the ranks share the seed, split the step's
-- loss evaluations (dist_split = 'directions') or the batch ('batch'), exchange only the
-- losses, and take the same step. Run with tests/dist/spsa_run.lua alone (a world of one)
-- and under mpirun -np 2 (tests/dist_helper.lua).
local ms = require 'moonstep'
local H = require 'helper'
local D = require 'dist_helper'

local dit = H.gate(it, pending, D.available, D.why)

-- bin/moonstep tests/dist/spsa_run.lua alone: its output
local function alone(args)
  local out = H.sh_rc(('bin/moonstep tests/dist/spsa_run.lua %s 2>&1'):format(args))
  assert.truthy(out:match('rc=0%s*$'), out)
  return (out:gsub('rc=%d+%s*$', ''))
end

local function two(args)
  local rc, out = D.run(2, 'tests/dist/spsa_run.lua', args, { timeout = 90 })
  assert.are.equal(0, rc, out)
  return out
end

local trajectory = D.trajectory

local function field(out, rank, key)
  return out:match(('%%[%d%%] %s ([^\n]*)'):format(rank, key))
end

local function bytes(out)
  local s, r, setup = field(out, 0, 'bytes'):match('^(%-?%d+) (%d+) (%d+)$')
  return tonumber(s), tonumber(r), tonumber(setup)
end

describe('SPSA on one rank', function()
  it('takes the one-process path: dist_bytes 0, dist_split accepted and checked', function()
    local m = ms.nn.Linear(3, 2)
    local opt = ms.optim.SPSA(m, { n = 2, seed = 1, dist_split = 'batch' })
    local x = ms.randn({ 4, 3 })
    local crit, y = ms.nn.MSELoss(), ms.zeros(4, 2)
    local _, info = opt:step(function() return crit:forward(m:forward(x), y) end)
    assert.are.equal(0, opt.dist_bytes)
    assert.is_nil(info.dist)
    H.assert_error(function() ms.optim.SPSA(m, { dist_split = 'rows' }) end,
      'SPSA: dist_split is "rows", expected "directions" or "batch"')
    -- distributed = 'directions' | 'batch': the shorthand (the common option is a boolean)
    assert.are.equal('batch', ms.optim.SPSA(m, { distributed = 'batch' })._zo.dist_split)
    assert.are.equal('batch', ms.optim.SPSA { distributed = 'batch' }._zo.dist_split)
    assert.are.equal('directions', ms.optim.SPSA(m, { distributed = true })._zo.dist_split)
    assert.are.equal(false, ms.optim.SPSA(m, { distributed = false }).distributed)
    H.assert_error(function() ms.optim.SPSA(m, { distributed = 'rows' }) end,
      'SPSA: distributed is "rows", expected true, false, "directions" or "batch"')
    H.assert_error(function() ms.optim.SPSA(m, { distributed = 'batch', dist_split = 'directions' }) end,
      'disagree (give one)')
  end)
end)

describe('SPSA on 2 ranks (mpirun)', function()
  -- each configuration: the 2-rank trajectory is the one process's, bit for bit
  local CASES = {
    { 'steps=5', 32 },                                      -- central, seeded, sgd, n = 4
    { 'steps=5 diff=forward update=mezo n=1', 16 },         -- L0 + 1 point, rank 1 idle
    { 'steps=5 n=3 restore=subtract', 32 },                 -- ranks walk the moves they skip
    { 'steps=4 memory=materialized update=adam n=5', 48 },
    { 'steps=4 memory=virtual update=spsa_gc', 32 },
    { 'steps=4 batched=true diff=forward n=3', 24 },
    { 'steps=4 blocking=true n=2', 24 },                    -- + 1 loss at w per step
    { 'steps=3 calibrate=true n=1', 16 },
    { 'steps=3 second_order=true n=2', 32 },
  }
  for _, c in ipairs(CASES) do
    dit(('dist_split = directions, same data: bit-identical to one process (%s)'):format(c[1]), function()
      local one, out = alone(c[1]), two(c[1])
      local a, b = trajectory(one, 0), trajectory(out, 0)
      assert.is_true(#a > 10)
      assert.are.same(a, b)
      assert.are.equal('yes', field(out, 0, 'identical'))
      local sent, received = bytes(out)
      assert.are.equal(c[2], sent)                          -- this step's float64 losses
      assert.are.equal(c[2], received)
    end)
  end

  dit('the bytes per step stay within 16 T (central, n = 4: 32 sent + 32 received)', function()
    local out = two('steps=2')
    local sent, received, setup = bytes(out)
    assert.is_true(sent + received <= 16 * 4, out)
    assert.are.equal(8 + 4 * 38, setup)   -- the seed and the 38 float32 parameters, once
  end)

  dit('every rank starts from rank 0\'s parameters (different inits)', function()
    local args = 'steps=3 init_by_rank=true'
    local out = two(args)
    assert.are.same(trajectory(alone(args), 0), trajectory(out, 0))
    assert.are.equal('yes', field(out, 0, 'identical'))
  end)

  dit('dist_split = batch: half the batch each follows one process with the whole batch (float tolerance)', function()
    local one = trajectory(alone('steps=6'), 0)
    local out = two('steps=6 shorthand=batch shard=rank')   -- distributed = 'batch'
    local two_ = trajectory(out, 0)
    assert.are.equal(#one, #two_)
    for i = 1, #one do
      local k1, x1 = one[i]:match('^(%a+ %d+) (%S+)')
      local k2, x2 = two_[i]:match('^(%a+ %d+) (%S+)')
      assert.are.equal(k1, k2)
      local x, y = tonumber(x1), tonumber(x2)
      assert.is_true(math.abs(x - y) <= 1e-5 * math.max(1, math.abs(x)), one[i] .. ' vs ' .. two_[i])
    end
    assert.are.equal('yes', field(out, 0, 'identical'))
    local sent, received = bytes(out)
    assert.are.equal(64, sent)            -- 2n losses, every rank all of them
    assert.are.equal(64, received)
  end)

  dit('distributed = false: the ranks train apart (no bytes; rank 1 = one process on its shard)', function()
    local out = two('steps=4 distributed=false shard=rank every=1')
    assert.are.equal('no', field(out, 0, 'identical'))
    assert.are.equal('0 0 0', field(out, 0, 'bytes'))
    assert.are.same(trajectory(alone('steps=4 shard=1'), 0), trajectory(out:gsub('%[1%]', '[x]'):gsub('%[0%]', '[y]'):gsub('%[x%]', '[0]'), 0))
  end)

  dit('a non-finite loss on one rank skips the step on both (or raises on both)', function()
    local out = two('steps=3 nan_rank=1 nan_step=2')
    assert.truthy(out:find('[0] loss 2 nan skipped', 1, true), out)
    assert.are.equal('yes', field(out, 0, 'identical'))
    local args = 'steps=3 nan_rank=1 nan_step=2'
    assert.are.same(trajectory(out, 0)[3], trajectory(two(args), 0)[3])
    local rc, err = D.run(2, 'tests/dist/spsa_run.lua', 'steps=3 nan_rank=1 nan_step=2 raise=true', { timeout = 60 })
    assert.are_not.equal(0, rc)
    local _, count = err:gsub('SPSA.step: the loss is nan; parameters left unchanged', '')
    assert.is_true(count >= 2, err)   -- each rank raised it (not a timeout)
  end)
end)
