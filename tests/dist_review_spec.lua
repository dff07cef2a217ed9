-- Review of issue 13 (R3): opt:no_sync's calling convention, and SPSA on THREE ranks (the
-- other dist specs run two): uneven blocks of directions (ceil(n / 3) per rank, the last
-- rank idle when n = 4) still give the one process's trajectory bit for bit.
local ms = require 'moonstep'
local H = require 'helper'
local D = require 'dist_helper'

local dit = H.gate(it, pending, D.available, D.why)

describe('opt:no_sync (one process)', function()
  local function opt()
    local p = ms.zeros(3, 'float64')
    return ms.optim.SGD({ p }, { lr = 0.1 })
  end

  it('returns every result of fn, trailing nils included', function()
    local n = select('#', opt():no_sync(function() return 1, nil, nil end))
    assert.are.equal(3, n)
  end)

  it('takes a callable table as ms.dist.alone does', function()
    local o = opt()
    local seen
    local f = setmetatable({}, { __call = function(_, a)
      seen = rawget(o, '_no_sync'); return a * 2
    end })
    assert.are.equal(10, o:no_sync(f, 5))
    assert.is_true(seen)
    assert.is_nil(rawget(o, '_no_sync'))
    H.assert_error(function() o:no_sync({}) end, 'SGD.no_sync: fn is a table')
  end)
end)

local trajectory = D.trajectory

describe('SPSA on 3 ranks (mpirun)', function()
  for _, case in ipairs {
    { args = 'n=4 diff=forward', bytes = '[0] bytes 24 48 160' },  -- per = 2: rank 2 owns none
    { args = 'n=5', bytes = '[0] bytes 32 64 160' },               -- blocks 2, 2, 1
    { args = 'n=2 second_order=true', bytes = '[0] bytes 32 64 160' },
  } do
    dit(case.args .. ': the one process\'s trajectory bit for bit, every rank identical', function()
      local one = H.sh_rc(('bin/moonstep tests/dist/spsa_run.lua %s 2>&1'):format(case.args))
      assert.truthy(one:match('rc=0%s*$'), one)
      local rc, out = D.run(3, 'tests/dist/spsa_run.lua', case.args, { timeout = 90 })
      assert.are.equal(0, rc, out)
      local want, got = trajectory(one, 0), trajectory(out, 0)
      assert.is_true(#want > 6, one)
      assert.are.same(want, got)
      assert.truthy(out:find('[0] identical yes', 1, true), out)
      assert.truthy(out:find(case.bytes, 1, true), out)
    end)
  end
end)

describe('SPSA options on several ranks', function()
  it('refuses dist_split together with distributed = false', function()
    local p = ms.tensor({ 1, 2 }, 'float64')
    H.assert_error(function() ms.optim.SPSA(ms.params { p }, { distributed = false, dist_split = 'batch' }) end,
                   'SPSA: dist_split is "batch" but distributed = false')
  end)
end)
