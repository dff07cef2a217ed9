-- scripts/demo.lua (the comparison `make demo` runs) at its smoke size (--quick), and
-- scripts/tour.lua, through bin/moonstep as a user runs them: the table, the records, the
-- figures, the resume of an interrupted demo, and the flags' errors.
local H = require 'helper'
local ms = require 'moonstep'
local json = require 'moonstep.json'
local q, sh = H.quote, H.sh

local root = os.getenv('MOONSTEP_HOME') or '.'
local function run(script, args, env)
  return H.sh_rc(('cd %s && %s MOONSTEP_QUIET=1 bin/moonstep scripts/%s %s 2>&1'):format(
    q(root), env or '', script, args or ''))
end
local function ok(out) assert.truthy(out:find('\nrc=0\n$'), out) end
local function exists(path) local f = io.open(path, 'rb'); if f then f:close() end; return f ~= nil end

local NAMES = { 'SGD-momentum', 'Adam', 'AdamW', 'AutoSGM-Eq5', 'AutoSGM-Eq8', 'ACME', 'SAM', 'ASAM',
                'LookSAM', 'SPSA' }

describe('scripts/demo.lua', function()
  local dir, out
  setup(function()
    dir = (sh('mktemp -d'):gsub('%s+$', ''))
    out = run('demo.lua', ('--quick --train 600 --test 300 --out %s'):format(q(dir .. '/demo')))
  end)
  teardown(function() sh('rm -rf ' .. q(dir)) end)

  it('prints the table of every optimizer and writes summary.md', function()
    ok(out)
    for _, name in ipairs(NAMES) do
      assert.truthy(out:find('\n' .. name:gsub('%-', '%%-') .. ' ', 1), 'no row for ' .. name .. ' in\n' .. out)
    end
    local md = assert(io.open(dir .. '/demo/summary.md')):read('*a')
    for _, name in ipairs(NAMES) do assert.truthy(md:find(name, 1, true), name) end
  end)

  it('records one finished run per optimizer with its config, CSVs and result', function()
    ok(out)
    local runs = ms.experiment.load(dir .. '/demo')
    assert.equal(#NAMES, #runs)
    for _, r in ipairs(runs) do
      local d = r.dir
      for _, f in ipairs { 'config.json', 'steps.csv', 'epochs.csv', 'result.json' } do
        assert.truthy(exists(d .. '/' .. f), d .. '/' .. f)
      end
      local res = json.read(d .. '/result.json')
      assert.truthy(res.test_accuracy > 0.1, d)   -- better than chance after 12 steps
    end
    -- passes: SPSA forward only (51 a step), SAM two of each, Adam one of each
    local by = {}
    for _, r in ipairs(runs) do by[r.config.name] = json.read(r.dir .. '/result.json') end
    assert.equal(0, by.SPSA.backward)
    assert.equal(51 * by.SPSA.steps, by.SPSA.forward)
    assert.equal(2 * by.SAM.steps, by.SAM.backward)
    assert.equal(by.Adam.steps, by.Adam.forward)
  end)

  it('draws the figures when gnuplot is there', function()
    ok(out)
    if not ms.plot.available() then
      assert.truthy(out:find('no figures', 1, true), out); return
    end
    for _, f in ipairs { 'loss_vs_steps.png', 'loss_vs_passes.svg', 'loss_vs_time.png',
                         'accuracy_vs_epoch.png', 'trajectories_rosenbrock.png' } do
      assert.truthy(exists(dir .. '/demo/' .. f), f)
    end
  end)

  it('resumes: a second run finds every run finished and trains nothing', function()
    ok(out)
    local t0 = ms.clock()
    local again = run('demo.lua', ('--quick --train 600 --test 300 --out %s'):format(q(dir .. '/demo')))
    ok(again)
    -- the same table (the records are read back, nothing is retrained)
    local function rowsof(s) return s:match('\n(name.-)\n\n') end
    assert.equal(rowsof(out), rowsof(again))
    assert.truthy(ms.clock() - t0 < 60)
  end)

  it('refuses unknown flags and unknown optimizer names', function()
    local bad = run('demo.lua', '--epoch 3')
    assert.truthy(bad:find('rc=2', 1, true), bad)
    bad = run('demo.lua', '--quick --only Adamm --out ' .. q(dir .. '/x'))
    assert.truthy(bad:find('Adamm', 1, true) and not bad:find('rc=0', 1, true), bad)
  end)
end)

describe('scripts/tour.lua', function()
  it('runs the tour of the core', function()
    local out = run('tour.lua', '', '')
    ok(out)
    assert.truthy(out:find('replayed identical:%s+true'), out)
  end)
end)
