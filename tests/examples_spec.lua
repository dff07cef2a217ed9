-- scripts/examples/*.lua end to end at their small sizes (--quick), through bin/moonstep as a
-- user runs them: exit status, what they print (each example checks its own claim and
-- prints it), and the files they write (under --out only).
local H = require 'helper'
local ms = require 'moonstep'
local q, sh = H.quote, H.sh

local root = os.getenv('MOONSTEP_HOME') or '.'
local function run(script, args)
  return H.sh_rc(('cd %s && bin/moonstep scripts/examples/%s %s'):format(q(root), script, args or ''))
end
local function mktemp() return (sh('mktemp -d'):gsub('%s+$', '')) end
local function ok(out) assert.truthy(out:find('\nrc=0\n$') or out:find('^rc=0\n$'), out) end

-- the table rows a script printed: lines that start with an integer (a step or an epoch)
-- and hold only numbers (and '-', skipped) up to an optional '(' note, as lists of numbers
local function rows(out)
  local list = {}
  for line in out:gmatch('[^\n]+') do
    local body = line:gsub('%s*%(.*$', '')
    if body:match('^%s*%d+%s') then
      local r, numeric = {}, true
      for f in body:gmatch('%S+') do
        if tonumber(f) then r[#r + 1] = tonumber(f) elseif f ~= '-' then numeric = false end
      end
      if numeric then list[#list + 1] = r end
    end
  end
  return list
end

local EXAMPLES = { 'schedule_function.lua', 'custom_chain.lua', 'spsa_accuracy.lua', 'spsa_rosenbrock.lua',
                   'twopass_bn_dropout.lua', 'cnn_best_checkpoint.lua' }

describe('scripts/examples', function()
  it('has exactly the examples this spec runs, each with a header comment and --help', function()
    local found = {}
    for f in sh('ls ' .. q(root .. '/scripts/examples')):gmatch('[^\n]+') do found[#found + 1] = f end
    local want = { unpack(EXAMPLES) }
    table.sort(want)
    assert.are.same(want, found)
    for _, e in ipairs(EXAMPLES) do
      local text = H.read_file(root .. '/scripts/examples/' .. e)
      assert.truthy(text:find('^%-%- ' .. e:gsub('%.', '%%.') .. ' — '), e .. ' has no header comment')
      local out = run(e, '--help')
      assert.truthy(out:find('usage: bin/moonstep scripts/examples/' .. e, 1, true), out)
      assert.truthy(out:find('--quick', 1, true), out)
      ok(out)
      out = run(e, '--no-such-flag')
      assert.truthy(out:find('unknown flag --no-such-flag', 1, true), out)
      assert.truthy(out:find('rc=2', 1, true), out)
    end
  end)

  it('spsa_rosenbrock.lua: SPSA (spall preset) on a Lua function moves (-1.2, 1) close to (1, 1)', function()
    local out = run('spsa_rosenbrock.lua', '--quick')
    ok(out)
    local r = rows(out)
    assert.are.same({ 0, -1.2, 1, 24.2, 2.2 }, r[1])
    local last = r[#r]
    assert.are.equal(1000, last[1])
    assert.is_true(last[5] < 0.5, out)            -- distance to (1, 1)
    local ax, ay, f = out:match('average of steps 501%.%.1000: %((%S+), (%S+)%)  f (%S+)')
    assert.truthy(ax, out)
    assert.is_true(math.abs(tonumber(ax) - 1) < 0.2 and math.abs(tonumber(ay) - 1) < 0.3, out)
    assert.is_true(tonumber(f) < 0.02, out)
    assert.truthy(out:find('2000 evaluations of f (2 per step)', 1, true), out)
  end)

  if not H.have_fashion_mnist then
    pending('the Fashion-MNIST examples (dataset-fashion-mnist is not installed)')
    return
  end

  it('schedule_function.lua: a Lua function as the lr, against ms.schedule.warmup + cosine', function()
    local out = run('schedule_function.lua', '--quick')
    ok(out)
    local r = rows(out)
    assert.are.equal(30, #r)
    -- step, lr(function), loss, lr(builtin), loss: warm-up to 0.1 over 5 steps, then 0.1 sqrt(5 / t)
    assert.are.same({ 1, 0.02, 0 }, { r[1][1], r[1][2], r[1][4] })
    assert.are.equal(r[1][3], r[1][5])               -- same weights, same batch before any update
    assert.are.equal(0.1, r[5][2])
    assert.is_true(math.abs(r[20][2] - 0.1 * math.sqrt(5 / 20)) < 1e-6)
    assert.are.equal(0.1, r[6][4])                   -- the cosine's first value after warm-up
    for _, name in ipairs { 'function', 'builtin' } do
      local a, b = out:match(name .. '%s+loss (%S+) %(first 10 steps%) %-> (%S+)')
      assert.is_true(tonumber(b) < tonumber(a), out)
    end
  end)

  it('custom_chain.lua: a chain trains, checkpoints its state and resumes bit for bit', function()
    local dir = mktemp()
    local out = run('custom_chain.lua', '--quick --out ' .. q(dir .. '/ck'))
    ok(out)
    assert.truthy(out:find('a chain of 4 transforms: clip_global_norm -> scale_by_adam -> add_decayed_weights -> scale_by_learning_rate', 1, true), out)
    assert.truthy(out:find('resumed from step 10: opt.t = 20, weights equal (bit for bit)', 1, true), out)
    local ck = ms.load(dir .. '/ck/chain_half.ck')
    assert.are.equal(10, ck.step)
    assert.are.equal('table', type(ck.opt))
    assert.truthy(ms.is_tensor(ck.model['1.weight']))
    assert.are.same({ 'chain_half.ck' }, { sh('ls ' .. q(dir .. '/ck')):match('^(%S+)\n$') })
    sh('rm -rf ' .. q(dir))
  end)

  it('spsa_accuracy.lua: SPSA on the batch error itself raises the accuracy well above chance', function()
    local out = run('spsa_accuracy.lua', '--quick')
    ok(out)
    local r = rows(out)
    -- step, batch accuracy, held-out accuracy, passes (the first row: step 0, no batch column)
    assert.are.equal(0, r[1][1])
    local first, last = r[1][2], r[#r][3]
    assert.are.equal(100, r[#r][1])
    assert.are.equal(100 * 2 * 20, r[#r][4])         -- central differences, n = 20
    assert.is_true(first < 0.2, out)
    assert.is_true(last > first + 0.2 and last > 0.35, out)
  end)

  it('twopass_bn_dropout.lua: BatchNorm statistics move once per SAM step, dropout masks replay', function()
    local out = run('twopass_bn_dropout.lua', '--quick')
    ok(out)
    assert.truthy(out:find('running mean moved once (pass 1 only): yes', 1, true), out)
    assert.truthy(out:find('dropout masks of pass 1 and pass 2 equal: yes', 1, true), out)
    assert.truthy(out:find("bn = 'both', replay_rng = false: running mean moved in pass 2 too: yes; masks equal: no", 1, true), out)
    assert.truthy(out:find('32 SAM steps (2 in the checks above, 30 of training), 64 closure calls (2 per step)', 1, true), out)
    local r = rows(out)
    assert.is_true(r[#r][3] > 0.5, out)              -- held-out accuracy after 30 steps
  end)

  it('cnn_best_checkpoint.lua: keeps the best epoch and a fresh model reloads it exactly', function()
    local dir = mktemp()
    local out = run('cnn_best_checkpoint.lua', '--quick --out ' .. q(dir .. '/run'))
    ok(out)
    local r, best, best_epoch = rows(out), -1, nil
    assert.are.equal(3, #r)
    for _, row in ipairs(r) do
      if row[3] > best then best, best_epoch = row[3], row[1] end
    end
    local ck = ms.load(dir .. '/run/best.ck')
    for _, k in ipairs { 'model', 'opt', 'rng', 'epoch', 'accuracy' } do assert.truthy(ck[k] ~= nil, k) end
    assert.are.equal(best_epoch, ck.epoch)
    assert.are.equal(('%.4f'):format(best), ('%.4f'):format(ck.accuracy))
    assert.truthy(out:find(('best epoch %d: recorded accuracy %.4f, reloaded model %.4f -> equal'):format(
      ck.epoch, ck.accuracy, ck.accuracy), 1, true), out)
    -- the checkpoint loads into a model of that shape here too, with the same accuracy
    local nn = ms.nn
    local m = nn.Sequential(nn.Conv2d(1, 8, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Conv2d(8, 16, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Flatten(), nn.Linear(16 * 7 * 7, 10))
    m:load_state_dict(ck.model)
    local test = ms.data.fashion_mnist('test', { shape = 'image' }):subset(1, 500)
    assert.are.equal(ck.accuracy, ms.metrics.accuracy(m, test))
    -- nothing but best.ck was written
    assert.are.same({ 'best.ck' }, { sh('ls ' .. q(dir .. '/run')):match('^(%S+)\n$') })
    sh('rm -rf ' .. q(dir))
  end)
end)
