-- Review of the bucketed gradient all-reduce (optim/dist_buckets.lua) on 2 ranks under
-- mpirun: cases where bucket_mb = 1e-4 must give the numbers bucket_mb = false gives (an
-- abandoned backward, a stale round before an ms.autograd closure, a second optimizer),
-- more buckets than the plugin's 256 slots, and bucket_mb set after construction.
local H = require 'helper'
local D = require 'dist_helper'

local dit = H.gate(it, pending, D.available, D.why)

local function cases(list)
  local outf = os.tmpname()
  local rc, log = D.run(2, 'tests/dist/review2_cases.lua', list .. ' ' .. outf, { timeout = 120 })
  assert.are.equal(0, rc, log)
  local res = {}
  for line in io.lines(outf) do
    local name, kind, v = line:match('^(%S+) (%a+)=(.*)$')
    res[name] = { kind = kind, v = v }
  end
  os.remove(outf)
  return res
end

describe('bucketed vs flat gradient all-reduce on 2 ranks (review)', function()
  local res
  local function get(name)
    res = res or cases('abandon,stale,other_opt,autograd_after')
    local c = res[name]
    assert.is_not_nil(c, name)
    assert.are.equal('diff', c.kind, name .. ': ' .. tostring(c.v))
    return tonumber(c.v)
  end

  dit('a backward that raised after a bucket was summed leaves the step the flat path gives', function()
    -- (Plan:abandon must scale the buckets that completed to the mean)
    assert.is_true(get('abandon') <= 1e-12, 'abandon: max diff ' .. get('abandon'))
  end)

  dit('a round completed outside the step does not stand for an ms.autograd closure\'s gradients', function()
    assert.is_true(get('stale') <= 1e-12, 'stale: max diff ' .. get('stale'))
  end)

  dit('ms.autograd gradients added after a bucketed backward are averaged at the step', function()
    assert.is_true(get('autograd_after') <= 1e-12, 'autograd_after: max diff ' .. get('autograd_after'))
  end)

  dit('a second optimizer with distributed = false is not averaged by the first one\'s buckets', function()
    assert.is_true(get('other_opt') <= 1e-12, 'other_opt: max diff ' .. get('other_opt'))
  end)

  dit('more buckets than the plugin has slots (300 Linear layers, bucket_mb = 1e-5) still train', function()
    local rc, log = D.run(2, 'tests/dist/review2_many.lua', '', { timeout = 120 })
    assert.are.equal(0, rc, log)
    assert.is_truthy(log:find('rank 0 ok', 1, true), log)
    assert.is_truthy(log:find('rank 1 ok', 1, true), log)
  end)

  dit('bucket_mb set after construction is checked as the constructor checks it', function()
    local rc, log = D.run(2, 'tests/dist/review2_mb.lua', '', { timeout = 120 })
    assert.are.equal(0, rc, log)
    for _, v in ipairs { '-1', '0', 'inf', 'x', 'true' } do
      local line = log:match('\n?(' .. v:gsub('%p', '%%%0') .. ': [^\n]*)')
      assert.is_not_nil(line, v .. '\n' .. log)
      assert.is_truthy(line:find('SGD', 1, true) and line:find('bucket_mb is', 1, true), line)
      assert.is_falsy(line:find('attempt to', 1, true), line)
    end
  end)
end)
