-- Optimizers under data parallelism (lua/moonstep/optim/dist_sync.lua): on 2 ranks under
-- mpirun, each with half the batch, the trajectory of one process with the whole batch
-- (SGD-momentum, Adam, SAM and GSAM with sync = 'both', ACME, LBFGS; the caller's own
-- backward; no_sync accumulation), SAM with sync = 'final' as one process accumulating
-- the two halves as micro-batches, parameters that differ at start broadcast from rank 0,
-- distributed = false keeping the ranks apart; with one process the options change
-- nothing and misuse is refused.
local ms = require 'moonstep'
local optim = ms.optim
local H = require 'helper'
local D = require 'dist_helper'
local P = dofile('tests/dist/optim_common.lua')

local dit = H.gate(it, pending, D.available, D.why)
local STEPS = 4

local agree = D.agree

-- rank -> which -> {losses =, params =} out of the scripts' lines.
local function parse(out)
  local res = { [0] = {}, [1] = {} }
  for r, w, l, p in out:gmatch('rank (%d) of 2 ([%w_]+) losses=([^ ]+) params=([^ ]+)') do
    res[tonumber(r)][w] = { losses = P.parse(l), params = P.parse(p) }
  end
  return res
end

local RUNS = { 'sgd', 'adam', 'sam_both', 'gsam_both', 'acme', 'lbfgs', 'sgd_manual', 'sgd_accum2',
               'sam_final', 'wsam_final', 'sgd_nosync' }

describe('optimizers on 2 ranks (mpirun), half the batch each', function()
  local res, out
  local function runs()
    if not res then
      local rc, log
      local prefix = os.tmpname()
      -- INIT = 'rank': rank 1 builds its model from another seed; the bind broadcast fixes it
      rc, log = D.run(2, 'tests/dist/optim_traj.lua', table.concat(RUNS, ',') .. ' ' .. STEPS .. ' rank ' .. prefix,
                      { timeout = 300 })
      assert.are.equal(0, rc, log)
      out = ''
      for r = 0, 1 do
        local f = assert(io.open(prefix .. '.' .. r))
        out = out .. f:read('*a')
        f:close()
        os.remove(prefix .. '.' .. r)
      end
      os.remove(prefix)
      res = parse(out)
    end
    return res
  end

  for _, which in ipairs { 'sgd', 'adam', 'sam_both', 'gsam_both', 'acme', 'lbfgs' } do
    dit(which .. ': both ranks follow one process with the whole batch (float64, 1e-12)', function()
      local r = runs()
      local losses, params = P.run(which, 0, 1, STEPS)
      for rank = 0, 1 do
        local got = r[rank][which]
        assert.truthy(got, out)
        agree(got.losses, losses, 1e-12, ('%s rank %d losses'):format(which, rank))
        agree(got.params, params, 1e-12, ('%s rank %d parameters'):format(which, rank))
      end
      assert.are.same(r[0][which].params, r[1][which].params)   -- the ranks bit-identical
    end)
  end

  dit("the caller's own backward then opt:step(), and no_sync accumulation then apply(): the whole batch's SGD", function()
    local r = runs()
    local losses, params = P.run('sgd', 0, 1, STEPS)
    for _, which in ipairs { 'sgd_manual', 'sgd_accum2' } do
      for rank = 0, 1 do
        agree(r[rank][which].params, params, 1e-12, ('%s rank %d parameters'):format(which, rank))
      end
    end
    -- the losses the caller computed (and those of evaluations under no_sync) are each
    -- rank's own: their mean is the whole batch's
    for _, which in ipairs { 'sgd_manual', 'sgd_accum2' } do
      local mean = {}
      for s = 1, STEPS do mean[s] = (r[0][which].losses[s] + r[1][which].losses[s]) / 2 end
      agree(mean, losses, 1e-12, which .. ' losses (the mean over the ranks)')
    end
  end)

  dit("SAM sync = 'final': the ranks step as one process accumulating the two halves (m-sharpness)", function()
    local r = runs()
    local _, params = P.run('sam_accum', 0, 1, STEPS)
    for rank = 0, 1 do agree(r[rank].sam_final.params, params, 1e-12, ('sam_final rank %d'):format(rank)) end
    -- and not the global perturbation of sync = 'both'
    local _, both = P.run('sam_both', 0, 1, STEPS)
    assert.is_true(math.abs(r[0].sam_final.params[1] - both[1]) > 1e-9)
    -- the losses are each rank's own (the halves differ)
    assert.are_not.equal(r[0].sam_final.losses[1], r[1].sam_final.losses[1])
    -- decoupled WSAM (two directions averaged): the ranks stay identical
    assert.are.same(r[0].wsam_final.params, r[1].wsam_final.params)
  end)

  dit('distributed = false: no broadcast, no all-reduce, each rank trains its half alone', function()
    local r = runs()
    for rank = 0, 1 do
      local losses, params = P.run('sgd', rank, 2, STEPS, { init_seed = 1 + rank })
      agree(r[rank].sgd_nosync.losses, losses, 0, ('sgd_nosync rank %d losses'):format(rank))
      agree(r[rank].sgd_nosync.params, params, 0, ('sgd_nosync rank %d parameters'):format(rank))
    end
    assert.is_true(math.abs(r[0].sgd_nosync.params[1] - r[1].sgd_nosync.params[1]) > 1e-6)
  end)
end)

describe('optimizer data-parallel options with one process', function()
  it('change nothing (bit-identical), and no_sync returns what fn returns', function()
    local _, a = P.run('sgd', 0, 1, 3)
    local _, b = P.run('sgd_nosync', 0, 1, 3)
    assert.are.same(a, b)
    local _, c = P.run('sgd_accum2', 0, 1, 3)
    agree(c, a, 1e-12, 'no_sync accumulation')
    local opt = optim.SGD({ ms.zeros({ 2 }, 'float64') }, { lr = 0.1 })
    local x, y = opt:no_sync(function(u, v) return u + 1, v end, 1, 'k')
    assert.are.same({ 2, 'k' }, { x, y })
    assert.is_nil(rawget(opt, '_no_sync'))
    assert.has_error(function() opt:no_sync(function() error('inner') end) end)
    assert.is_nil(rawget(opt, '_no_sync'))
    assert.matches('distributed = false', tostring(optim.SGD({ ms.zeros({ 2 }) }, { lr = 0.1, distributed = false })), 1, true)
  end)

  it('refuses misuse by name', function()
    local p = { ms.zeros({ 2 }, 'float64') }
    H.assert_error(function() optim.SGD(p, { lr = 0.1, distributed = 'yes' }) end,
                   'SGD: distributed is "yes", expected true or false')
    H.assert_error(function() optim.SAM(p, { base = optim.SGD { lr = 0.1 }, sync = 'sideways' }) end, 'SAM: sync is "sideways"')
    H.assert_error(function() optim.GSAM(p, { base = optim.SGD { lr = 0.1 }, sync = 'both', distributed = false }) end,
                   'GSAM: sync = "both" but distributed = false')
    H.assert_error(function() optim.SGD(p, { lr = 0.1, sync = 'both' }) end, 'sync')
    H.assert_error(function() optim.Adam(p, { lr = 0.1 }):no_sync(3) end, 'Adam.no_sync: fn is 3, expected a function')
  end)
end)

describe('BatchNorm buffers on 2 ranks', function()
  local H2 = require 'helper'
  local D2 = require 'dist_helper'
  local bit = H2.gate(it, pending, D2.available, D2.why)
  bit('are rank 0\'s on every rank after each step (as DistributedDataParallel)', function()
    local rc, out = D2.run(2, 'tests/dist/optim_buffers.lua')
    assert.are.equal(0, rc, out)
    for r = 0, 1 do assert.truthy(out:find(('rank %d buffers same true moved true'):format(r), 1, true), out) end
  end)
end)
