-- The gradient all-reduce in buckets that overlap the backward pass (optim/dist_buckets.lua):
-- on 2 ranks under mpirun, each with half the batch, every way of running steps gives the
-- trajectory of one process with the whole batch (tests/dist/buckets_common.lua names the
-- modes), the ranks stay bit-identical, and the buckets really started during the backward;
-- a rank that stops answering mid-backward is an error, not a hang; with one process the
-- option changes nothing and misuse is refused.
local ms = require 'moonstep'
local optim = ms.optim
local H = require 'helper'
local D = require 'dist_helper'
local P = dofile('tests/dist/buckets_common.lua')

local dit = H.gate(it, pending, D.available, D.why)
local STEPS = 5
local MODES = { 'sgd', 'adam', 'sgd_flat', 'sgd_default', 'sgd_manual', 'sgd_twice', 'sgd_nosync', 'sgd_late_nosync',
                'sgd_switch', 'sgd_error', 'lbfgs' }

local agree = D.agree

-- env: the ranks' environment (MOONSTEP_DIST_PROGRESS_THREAD=0: the started all-reduces
-- move only when the backward calls MPI, no progress thread)
local runs = {}
local function results(env)
  env = env or ''
  if runs[env] then return runs[env] end
  local prefix = os.tmpname()
  local rc, log = D.run(2, 'tests/dist/buckets_traj.lua', table.concat(MODES, ',') .. ' ' .. STEPS .. ' ' .. prefix,
                        { timeout = 300, env = env })
  assert.are.equal(0, rc, log)
  local res = { [0] = {}, [1] = {} }
  for r = 0, 1 do
    for line in io.lines(prefix .. '.' .. r) do
      local mode, l, p, c = line:match('^(%S+) losses=(%S*) params=(%S*) counters=(%S*)$')
      res[r][mode] = { losses = P.parse(l), params = P.parse(p), counters = P.parse(c) }
    end
    os.remove(prefix .. '.' .. r)
  end
  os.remove(prefix)
  runs[env] = res
  return res
end

describe('the bucketed gradient all-reduce on 2 ranks (mpirun), half the batch each', function()
  local function same_trajectories(r)
    for _, mode in ipairs(MODES) do
      local losses, params = P.reference(mode, STEPS)
      for rank = 0, 1 do
        agree(r[rank][mode].params, params, 1e-12, ('%s rank %d parameters'):format(mode, rank))
      end
      assert.are.same(r[0][mode].params, r[1][mode].params, mode)
      if not (mode == 'sgd_manual' or mode:match('nosync') or mode == 'sgd_error') then   -- (their losses are each rank's)
        agree(r[0][mode].losses, losses, 1e-12, mode .. ' losses')
      end
    end
    -- the error step took no step: the other steps' losses are the reference's
    local losses = P.reference('sgd', STEPS - 1)
    agree({ r[0].sgd_error.losses[1], unpack(r[0].sgd_error.losses, 3) }, losses, 1e-12, 'sgd_error losses')
  end

  dit('gives one process\'s whole-batch trajectory in every mode, the ranks bit-identical', function()
    same_trajectories(results())
  end)

  dit('... also without the progress thread (MOONSTEP_DIST_PROGRESS_THREAD=0)', function()
    local r = results('MOONSTEP_DIST_PROGRESS_THREAD=0')
    same_trajectories(r)
    assert.are.same({ 3, STEPS, 2 * STEPS }, r[0].sgd.counters)
  end)

  dit('started buckets while the backward ran (a bucket after each Linear; 1 MB: one, at the end)', function()
    local r = results()
    local function counters(mode) return r[0][mode].counters end
    -- {buckets per backward, bucketed backwards, buckets started before the backward's end}
    assert.are.same({ 3, STEPS, 2 * STEPS }, counters('sgd'))
    assert.are.same({ 3, STEPS, 2 * STEPS }, counters('adam'))
    assert.are.same({ 3, STEPS, 2 * STEPS }, counters('sgd_manual'))   -- the caller's backward, then step()
    assert.are.same({ 1, STEPS, 0 }, counters('sgd_default'))
    assert.are.same({}, counters('sgd_flat'))                            -- no plan
    -- two backwards in one closure: each bucketed (the second averages on top of the first)
    assert.are.same({ 3, 2 * STEPS, 4 * STEPS }, counters('sgd_twice'))
    -- no_sync then a synced backward: the second is bucketed, and averages both halves
    assert.are.same({ 3, STEPS, 2 * STEPS }, counters('sgd_nosync'))
    -- a synced backward then one under no_sync: step() adds the flat all-reduce (the
    -- trajectory test shows it averaged the second half too)
    assert.are.same({ 3, STEPS, 2 * STEPS }, counters('sgd_late_nosync'))
    -- step 2 raised halfway (its one started bucket waited for, its gradients dropped)
    assert.are.same({ 3, STEPS - 1, 2 * (STEPS - 1) + 1 }, counters('sgd_error'))
    -- LBFGS: every closure evaluation is a round of its own
    assert.is_true(counters('lbfgs')[2] > STEPS)
  end)

  dit('a rank that stops answering mid-backward is an error on the other, within the timeout', function()
    local t0 = ms.clock()
    local rc, out = D.run(2, 'tests/dist/buckets_stuck.lua', '', { timeout = 60 })
    assert.are_not.equal(124, rc, out)                 -- not the harness's timeout
    assert.truthy(out:find('rank 0: error: tests/dist/buckets_stuck.lua:%d+: Sequential.backward: ' ..
                           'dist.all_reduce: no answer from the other ranks after 2 s'), out)
    assert.is_true(ms.clock() - t0 < 30, out)
  end)
end)

describe('bucket_mb with one process', function()
  it('changes nothing (bit-identical to bucket_mb = false)', function()
    local _, a = P.run('sgd', 0, 1, 3)
    local _, b = P.run('sgd_flat', 0, 1, 3)
    assert.are.same(a, b)
  end)

  it('is refused when it cannot act, or is not megabytes', function()
    local m = ms.nn.Sequential(ms.nn.Linear(2, 2))
    H.assert_error(function() optim.SGD(m, { lr = 0.1, bucket_mb = 0 }) end, 'SGD: bucket_mb is 0, expected megabytes > 0')
    H.assert_error(function() optim.SGD(m, { lr = 0.1, bucket_mb = 'big' }) end, 'SGD: bucket_mb is')
    H.assert_error(function() optim.SGD(m, { lr = 0.1, bucket_mb = math.huge }) end, 'expected megabytes > 0')
    H.assert_error(function() optim.Adam(m, { lr = 0.1, bucket_mb = 2, distributed = false }) end,
                   'Adam: bucket_mb is 2 but distributed = false')
    H.assert_error(function() optim.SPSA(m, { lr = 0.1, c = 0.01, bucket_mb = 2 }) end,
                   'SPSA exchanges losses, not gradients')
    assert.are.equal(2, optim.SGD(m, { lr = 0.1, bucket_mb = 2 }).bucket_mb)
    -- the SAM family: only sync = 'both' all-reduces its passes' gradients
    H.assert_error(function() optim.SAM(m, { base = optim.SGD { lr = 0.1 }, bucket_mb = 2 }) end,
                   "SAM: bucket_mb is 2 but sync is \"final\": only sync = 'both'")
    assert.are.equal(2, optim.GSAM(m, { base = optim.SGD { lr = 0.1 }, bucket_mb = 2, sync = 'both' }).bucket_mb)
    -- a wrapper's base: the wrapper decides what the ranks exchange
    H.assert_error(function() optim.SAM(m, { base = optim.SGD { lr = 0.1, bucket_mb = 2 } }) end,
                   'SAM: base optim.SGD has bucket_mb = 2; give it to SAM itself')
    H.assert_error(function() optim.WSAM(m, { base = optim.Adam { lr = 0.1, distributed = false } }) end,
                   'WSAM: base optim.Adam has distributed = false; give it to WSAM itself')
  end)
end)
