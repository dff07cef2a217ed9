-- ms.experiment.run_all spread over 2 ranks (mpirun): each rank runs its share of the
-- grid, every rank returns the whole set, and the results equal one process running all.
local H = require 'helper'
local D = require 'dist_helper'

local dit = H.gate(it, pending, D.available, D.why)

describe('experiment.run_all on 2 ranks', function()
  dit('spreads the runs over the ranks and gives the one-process results', function()
    local a, b = os.tmpname(), os.tmpname()
    os.remove(a); os.remove(b)
    local rc, out = D.run(2, 'tests/dist/experiment_spread.lua', a)
    assert.are.equal(0, rc, out)
    local one = H.sh_rc('bin/moonstep tests/dist/experiment_spread.lua ' .. b)
    assert.truthy(one:find('rc=0', 1, true), one)
    local want = one:match('results 4: ([%d%. ]+)')
    assert.truthy(want, one)
    assert.truthy(out:find('rank 0 ran 1,3; results 4: ' .. want, 1, true), out .. '\n' .. one)
    assert.truthy(out:find('rank 1 ran 2,4; results 4: ' .. want, 1, true), out .. '\n' .. one)
    os.execute('rm -rf ' .. a .. ' ' .. b)
  end)
end)
