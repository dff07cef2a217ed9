-- ms.experiment for people: number formatting per metric kind (summaries, tostring),
-- ResultSet:plot's smoothing, alignment of runs, mean x across seeds and default labels
-- (ms.plot.lines stubbed: no gnuplot needed), and the REPL text of Result / ResultSet.
local ms = require 'moonstep'
local H = require 'helper'
local E = ms.experiment
local format = require 'moonstep.experiment.format'
local Result = require('moonstep.experiment.result').Result

-- A Result by hand: steps given as a list of {step, loss, forward, time} rows.
local function run(name, seed, metrics, rows)
  local steps = { columns = { 'step', 'epoch', 'loss', 'time', 'forward', 'backward' }, n = #(rows or {}),
                  step = {}, epoch = {}, loss = {}, time = {}, forward = {}, backward = {} }
  for i, r in ipairs(rows or {}) do
    steps.step[i], steps.epoch[i], steps.loss[i], steps.forward[i], steps.time[i] = r[1], 1, r[2], r[3], r[4]
    steps.backward[i] = r[3] and 0
  end
  return Result.new { id = ('%s-s%d'):format(name, seed), config = { name = name, seed = seed }, metrics = metrics,
                      steps = steps }
end

-- Calls ms.plot.lines would get from ResultSet:plot (the module stubbed for the call).
local function captured(set, opts)
  local got
  local real = package.loaded['moonstep.plot']
  package.loaded['moonstep.plot'] = { lines = function(o) got = o; return o.out end }
  local ok, err = pcall(set.plot, set, opts)
  package.loaded['moonstep.plot'] = real
  if not ok then error(err, 0) end
  return got
end

describe('experiment number formatting', function()
  it('shows each metric kind by its rule', function()
    local cases = {
      { 'test_accuracy', 0.85237, '85.24' }, { 'train_accuracy', 1, '100.00' }, { 'accuracy', 0.0031, '0.31' },
      { 'test_loss', 0.048583, '0.04858' }, { 'train_loss', 2.29, '2.290' }, { 'loss', 12345.6, '12346' },
      { 'test_loss', 0.00012345, '0.0001234' },
      { 'time', 12.34, '12.3' }, { 'time', 1, '1.0' }, { 'time', 0.05522, '0.055' }, { 'time', 0.1, '0.10' },
      { 'time', 0, '0' },
      { 'forward', 16, '16' }, { 'backward', 1200.4, '1200.4' }, { 'forward', 20.24, '20.2' }, { 'steps', 938, '938' },
      { 'lr', 0.001, '0.001000' }, { 'optimizer.rho', 0.05, '0.05000' }, { 'seed', 3, '3' },
      { 'test_loss', 0 / 0, 'nan' }, { 'time', math.huge, 'inf' }, { 'forward', -math.huge, '-inf' },
    }
    for _, c in ipairs(cases) do
      assert.equal(c[3], format.number(format.kind(c[1]), c[2]), c[1] .. ' ' .. tostring(c[2]))
    end
    assert.equal('-', format.number('loss', nil))
  end)

  it('leaves out ± std where a group has one value, and right-aligns numbers', function()
    local set = E.ResultSet {
      run('Adam', 1, { test_accuracy = 0.8512, time = 12.34, forward = 1000, backward = 1000, test_loss = 0.41 }),
      run('Adam', 2, { test_accuracy = 0.8574, time = 12.96, forward = 1000, backward = 1000, test_loss = 0.40 }),
      run('LookSAM', 1, { test_accuracy = 0.8, time = 0.52, forward = 1200, backward = 1200, test_loss = 0.5 }),
      run('LookSAM', 2, { test_accuracy = 0.81, time = 0.5, forward = 1201, backward = 1201, test_loss = 0.5 }),
      run('SPSA', 1, { test_accuracy = 0.5, time = 40.04, forward = 51000, backward = 0, test_loss = 1.5 }),
    }
    local s = set:summary { metrics = { 'test_accuracy', 'time', 'forward', 'test_loss' } }
    local text = tostring(s)
    local lines = {}
    for l in text:gmatch('[^\n]+') do lines[#lines + 1] = l end
    assert.equal('name     n  test_accuracy (%)     time (s)       forward        test_loss', lines[1])
    -- a std with its mean's decimals; counts whole unless a mean is fractional
    assert.equal('Adam     2       85.43 ± 0.44   12.7 ± 0.4      1000 ± 0  0.4050 ± 0.0071', lines[3])
    assert.equal('LookSAM  2       80.50 ± 0.71  0.51 ± 0.01  1200.5 ± 0.7  0.5000 ± 0.0000', lines[4])
    assert.equal('SPSA     1              50.00         40.0         51000            1.500', lines[5])
    local md = s:markdown()
    assert.truthy(md:find('| name | n | test_accuracy (%) | time (s) | forward | test_loss |\n| --- | ---: | ---: | ---: | ---: | ---: |\n',
                          1, true), md)
    assert.truthy(md:find('| SPSA | 1 | 50.00 | 40.0 | 51000 | 1.500 |\n', 1, true), md)
    -- the CSV keeps the raw numbers in full precision
    local path = os.tmpname() .. '.csv'
    s:write(path)
    local f = assert(io.open(path))
    local csv = f:read('*a')
    f:close()
    os.remove(path)
    local lines = {}
    for l in csv:gmatch('[^\n]+') do lines[#lines + 1] = l end
    assert.equal('group,n,test_accuracy_mean,test_accuracy_std,time_mean,time_std,forward_mean,forward_std,'
                 .. 'test_loss_mean,test_loss_std', lines[1])
    local adam = {}
    for v in (lines[2] .. ','):gmatch('([^,]*),') do adam[#adam + 1] = v end
    assert.equal('"Adam"', adam[1])
    assert.equal('2', adam[2])
    assert.equal((0.8512 + 0.8574) / 2, tonumber(adam[3]))          -- the same double
    assert.equal(s.rows[1].std.test_accuracy, tonumber(adam[4]))
    assert.truthy(lines[3]:find(',1200.5,', 1, true), lines[3])
    assert.truthy(lines[4]:find('^"SPSA",1,0.5,0,40.04,0,51000,0,1.5,0$'), lines[4])
  end)

  it('takes a format per metric: a pattern or a function of the raw value', function()
    local set = E.ResultSet { run('A', 1, { test_accuracy = 0.8512, time = 3 }), run('A', 2, { test_accuracy = 0.8574, time = 5 }) }
    local s = set:summary { metrics = { 'test_accuracy', 'time' },
                            format = { test_accuracy = '%.3f', time = function(v) return ('%gs'):format(v) end } }
    local text = tostring(s)
    assert.truthy(text:find('name  n  test_accuracy           time\n', 1, true), text)   -- no unit: the user's format
    assert.truthy(text:find('0.854 ± 0.004  4s ± 1.41421s', 1, true), text)
    H.assert_error(function() set:summary { format = { tim = '%d' } } end, 'ResultSet.summary', 'format has the key "tim"')
    H.assert_error(function() set:summary { format = { time = '%d %d' } } end, 'ResultSet.summary', 'format.time is "%d %d"')
    H.assert_error(function() set:summary { format = { time = 3 } } end, 'ResultSet.summary', 'format.time is 3')
    H.assert_error(function() set:summary { format = { time = function() return {} end } } end, 'ResultSet.summary',
                   'format.time returned a table')
    H.assert_error(function() set:summary { format = { time = function() error('oops') end } } end,
                   'ResultSet.summary', 'format.time raised an error', 'oops')
    H.assert_error(function() set:summary { format = 'x' } end, 'ResultSet.summary', 'format is "x"')
    H.assert_error(function() set:summary { metrics = { 'a', x = 'b' } } end, 'ResultSet.summary', 'metrics is')
  end)
end)

describe('ResultSet:plot and series', function()
  it('smooths each run with a centred moving average before averaging over runs', function()
    local rows = {}
    for i = 1, 7 do rows[i] = { i, i * i, 2 * i, i } end           -- loss = step^2
    local set = E.ResultSet { run('A', 1, {}, rows) }
    local s = set:series { y = 'loss', smooth = 3 }[1]
    -- ends keep their own values; inside, the mean of the 3 around
    assert.same({ 1, (1 + 4 + 9) / 3, (4 + 9 + 16) / 3, (9 + 16 + 25) / 3, (16 + 25 + 36) / 3, (25 + 36 + 49) / 3, 49 }, s.y)
    local s4 = set:series { y = 'loss', smooth = 4 }[1]            -- even k: 2 before, 1 after
    assert.equal((4 + 9 + 16 + 25) / 4, s4.y[4])
    assert.equal((1 + 4 + 9) / 3, s4.y[2])                         -- 1 from the start: 1 each side
    assert.same(set:series { y = 'loss' }[1].y, set:series { y = 'loss', smooth = 1 }[1].y)
    -- the band is the spread of the smoothed runs
    local rows2 = {}
    for i = 1, 7 do rows2[i] = { i, 0, 2 * i, i } end
    local two = E.ResultSet { run('A', 1, {}, rows), run('A', 2, {}, rows2) }
    local b = two:series { y = 'loss', smooth = 3 }[1]
    assert.equal((4 + 9 + 16) / 3, b.hi[3])
    assert.equal(0, b.lo[3])
    assert.equal((4 + 9 + 16) / 6, b.y[3])
  end)

  it('puts each step at the mean x over seeds for x = passes or time', function()
    -- seed 2 is slower and (LookSAM-like) spends different passes at the same steps
    local a = run('L', 1, {}, { { 1, 4, 2, 0.5 }, { 2, 3, 4, 1.0 }, { 3, 2, 8, 1.5 } })
    local b = run('L', 2, {}, { { 1, 6, 4, 1.5 }, { 2, 5, 4, 3.0 }, { 3, 4, 6, 4.5 } })
    local set = E.ResultSet { a, b }
    local p = set:series { y = 'loss', x = 'passes' }[1]
    assert.same({ 3, 4, 7 }, p.x)                                   -- (2+4)/2, (4+4)/2, (8+6)/2 (backward 0)
    assert.same({ 5, 4, 3 }, p.y)
    assert.same({ 4, 3, 2 }, p.lo)
    assert.same({ 6, 5, 4 }, p.hi)
    local t = set:series { y = 'loss', x = 'time' }[1]
    assert.same({ 1, 2, 3 }, t.x)
  end)

  it('matches runs by step, keeping the steps every run logged', function()
    local a = run('A', 1, {}, { { 1, 1, 1, 1 }, { 2, 2, 2, 2 }, { 3, 3, 3, 3 }, { 4, 4, 4, 4 } })
    local b = run('A', 2, {}, { { 2, 10, 2, 2 }, { 4, 20, 4, 4 } })    -- logs every 2nd step
    local s = E.ResultSet { a, b }:series { y = 'loss', x = 'step' }[1]
    assert.same({ 2, 4 }, s.x)
    assert.same({ 6, 12 }, s.y)
  end)

  it('draws with default titles and axis labels, and passes logx, logy and smooth on', function()
    local rows = {}
    for i = 1, 5 do rows[i] = { i, 1 / i, 2 * i, i / 10 } end
    local set = E.ResultSet { run('A', 1, {}, rows), run('A', 2, {}, rows), run('B', 1, {}, rows) }
    local o = captured(set, { y = 'loss', x = 'passes', out = 'x.png' })
    assert.equal('forward + backward passes over a mini-batch', o.xlabel)
    assert.equal('training loss (mini-batch)', o.ylabel)
    assert.equal('training loss vs passes (mean of 2 runs, band min..max)', o.title)
    assert.is_nil(o.logx)
    o = captured(set, { y = 'loss', x = 'time', out = 'x.png', logx = true, logy = true, smooth = 3, bands = 'std' })
    assert.equal('training seconds (evaluation excluded)', o.xlabel)
    assert.equal('training loss vs time (mean of 2 runs, band ± std, centred moving average of 3 logged points)', o.title)
    assert.is_true(o.logx)
    assert.is_true(o.logy)
    assert.equal(2, #o.series)
    o = captured(set, { y = 'loss', out = 'x.png', title = 'T', xlabel = 'X', ylabel = 'Y' })
    assert.same({ 'T', 'X', 'Y' }, { o.title, o.xlabel, o.ylabel })
    H.assert_error(function() set:plot { y = 'loss', out = 'x.png', smooth = 0 } end, 'ResultSet.plot', 'smooth is 0')
    H.assert_error(function() set:plot { y = 'loss', out = 'x.png', smooth = 2.5 } end, 'ResultSet.plot', 'smooth is 2.5')
    H.assert_error(function() set:plot { y = 'loss', out = 'x.png', logx = 'yes' } end, 'ResultSet.plot', 'logx is "yes"')
    H.assert_error(function() set:plot { y = 'loss', out = 'x.png', by = function() error('mine') end } end,
                   'ResultSet.plot', 'by(result) raised', 'mine')
  end)

  it('leaves out groups that measured nothing; an error when none did', function()
    local rows = { { 1, 1, 1, 1 } }
    local none = run('SPSA', 1, {}, { { 1, nil, 51, 1 } })
    local set = E.ResultSet { run('A', 1, {}, rows), none }
    local o = captured(set, { y = 'loss', out = 'x.png' })
    assert.equal(1, #o.series)
    assert.equal('A', o.series[1].label)
    H.assert_error(function() captured(E.ResultSet { none }, { y = 'loss', out = 'x.png' }) end,
                   'ResultSet.plot', 'no run of the set has a measured loss')
  end)
end)

describe('Result and ResultSet text', function()
  it('reads well in the REPL', function()
    local r = run('Adam', 1, { test_accuracy = 0.8524, test_loss = 0.41234, time = 12.34, epochs = 2, steps = 938,
                               forward = 938, backward = 938 })
    r.dir = 'results/x/Adam-s1'
    assert.equal('Result Adam-s1: Adam, seed 1, test accuracy 85.24 %, test loss 0.4123, 12.3 s, 2 epochs (938 steps), '
                 .. 'passes 938 + 938  [results/x/Adam-s1]', tostring(r))
    local u = run('SGD', 2, nil)
    assert.equal('Result SGD-s2: SGD, seed 2, unfinished', tostring(u))
    local r2 = run('SPSA', 2, { test_accuracy = 0.5, time = 0.5 })
    r2.dir, r2.resumed = 'results/x/SPSA-s2', true
    local text = tostring(E.ResultSet { r, r2 })
    assert.equal(table.concat({
      'ResultSet: 2 runs in results/x (1 loaded from finished records)',
      '  name  seed  test_accuracy (%)  time (s)  finished',
      '  ----  ----  -----------------  --------  --------',
      '  Adam     1              85.24      12.3  yes',
      '  SPSA     2              50.00      0.50  yes',
    }, '\n'), text)
    assert.equal('ResultSet: 0 runs', tostring(E.ResultSet {}))
    local many = {}
    for i = 1, 45 do many[i] = run('A', i, { test_accuracy = 0.5, time = 1 }) end
    local t = tostring(E.ResultSet(many))
    assert.equal('  ... and 5 more (set[i] is run i)', t:match('[^\n]+$'))
  end)
end)
