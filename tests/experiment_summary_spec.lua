-- ms.experiment summaries (mean ± std by group, checked by hand), the plot series (bands
-- over seeds), and the Logger (Torch7's optim.Logger) round trip. No training here.
local ms = require 'moonstep'
local H = require 'helper'
local E = ms.experiment
local Result = require('moonstep.experiment.result').Result

-- A Result made by hand: steps with the given losses (one row per step).
local function fake(name, seed, metrics, losses, extra)
  local n = #(losses or {})
  local steps = { columns = { 'step', 'epoch', 'loss', 'time', 'forward', 'backward' }, n = n,
                  step = {}, epoch = {}, loss = {}, time = {}, forward = {}, backward = {} }
  for i = 1, n do
    steps.step[i], steps.epoch[i], steps.loss[i] = i, 1, losses[i]
    steps.time[i] = i * (extra and extra.dt or 1)
    steps.forward[i], steps.backward[i] = 2 * i, 2 * i
  end
  metrics.steps, metrics.epochs = metrics.steps or n, metrics.epochs or 1
  return Result.new { id = name .. '-s' .. seed, config = { name = name, seed = seed, lr = extra and extra.lr },
                      metrics = metrics, steps = steps,
                      epochs = { columns = { 'epoch', 'step', 'test_accuracy' }, n = 1, epoch = { 1 }, step = { n },
                                 test_accuracy = { metrics.test_accuracy } } }
end

local function set()
  return E.ResultSet {
    fake('Adam', 1, { test_accuracy = 0.80, time = 10, forward = 100, backward = 100 }, { 3, 2, 1 }),
    fake('SGD', 1, { test_accuracy = 0.70, time = 8, forward = 100, backward = 100 }, { 4, 3, 2 }),
    fake('Adam', 2, { test_accuracy = 0.84, time = 12, forward = 100, backward = 100 }, { 5, 2, 0 }, { dt = 2 }),
    fake('SGD', 2, { test_accuracy = 0.75, time = 9, forward = 100, backward = 100 }, { 2, 1, 1 }),
    fake('Adam', 3, { test_accuracy = 0.86, time = 11, forward = 100, backward = 100 }, { 4, 2, 2 }),
  }
end

describe('ResultSet:summary', function()
  it('gives mean and sample std per group, in order of appearance', function()
    local s = set():summary { by = 'name', metrics = { 'test_accuracy', 'time', 'forward' } }
    assert.equal(2, #s.rows)
    local adam, sgd = s.rows[1], s.rows[2]
    assert.same({ 'Adam', 3, 'SGD', 2 }, { adam.group, adam.n, sgd.group, sgd.n })
    -- by hand: Adam 0.80, 0.84, 0.86 -> mean 0.8333..., deviations -0.0333, 0.0067, 0.0267
    local mean = (0.80 + 0.84 + 0.86) / 3
    local var = ((0.80 - mean) ^ 2 + (0.84 - mean) ^ 2 + (0.86 - mean) ^ 2) / 2
    assert.near(mean, adam.mean.test_accuracy, 1e-15)
    assert.near(math.sqrt(var), adam.std.test_accuracy, 1e-15)
    assert.near(0.0305505046330389, adam.std.test_accuracy, 1e-12)
    assert.near(11, adam.mean.time, 1e-15)
    assert.near(1, adam.std.time, 1e-15)
    assert.near(0.725, sgd.mean.test_accuracy, 1e-15)
    assert.near(math.sqrt(0.00125), sgd.std.test_accuracy, 1e-15)
    assert.same({ 100, 0 }, { sgd.mean.forward, sgd.std.forward })
  end)

  it('prints an aligned table, Markdown, and writes them', function()
    local s = set():summary { metrics = { 'test_accuracy', 'time' } }
    local text = tostring(s)
    local lines = {}
    for l in text:gmatch('[^\n]+') do lines[#lines + 1] = l end
    assert.equal(4, #lines)
    assert.truthy(lines[1]:match('^name%s+n%s+test_accuracy %(%%%)%s+time %(s%)$'), lines[1])
    -- accuracy as a percentage with 2 decimals, seconds with 1 decimal (>= 1 s)
    assert.truthy(lines[3]:find('83.33 ± 3.06', 1, true), text)
    assert.truthy(lines[3]:find('11.0 ± 1.0', 1, true), text)
    -- columns aligned: every row as wide as the header (± is one column)
    local function w(l) return #l - select(2, l:gsub('[\128-\191]', '')) end
    for i = 2, 4 do assert.equal(w(lines[1]), w(lines[i]), text) end
    local md = s:markdown()
    assert.truthy(md:find('| name | n | test_accuracy (%) | time (s) |\n| --- | ---: | ---: | ---: |\n', 1, true), md)
    assert.truthy(md:find('| SGD | 2 | 72.50 ± 3.54 | 8.5 ± 0.7 |', 1, true), md)
    local path = os.tmpname() .. '.md'
    assert.equal(path, s:write(path))
    local f = io.open(path); assert.equal(md, f:read('*a')); f:close()
    os.remove(path)
  end)

  it('groups by several fields or a function; skips missing values', function()
    local rs = set()
    rs[1].metrics.test_accuracy = nil
    local s = E.summary(rs, { by = { 'name', 'seed' }, metrics = 'test_accuracy' })
    assert.equal(5, #s.rows)
    assert.equal('Adam 1', s.rows[1].group)
    assert.is_nil(s.rows[1].mean.test_accuracy)
    assert.truthy(tostring(s):find('\nAdam 1     1 +%-\n'), tostring(s))
    assert.truthy(tostring(s):find('\nSGD 1      1 +70.00\n'), tostring(s))   -- n = 1: no ± std
    local by_fn = rs:summary { by = function(r) return r.metrics.time > 9 and 'slow' or 'fast' end }
    assert.same({ 'slow', 'fast' }, { by_fn.rows[1].group, by_fn.rows[2].group })
    assert.equal(2, by_fn.rows[1].count.test_accuracy)          -- Adam 1 has none
  end)

  it('refuses bad options, naming ResultSet.summary', function()
    H.assert_error(function() set():summary { bye = 'name' } end, 'ResultSet.summary', 'unknown option "bye"')
    H.assert_error(function() set():summary { by = 5 } end, 'ResultSet.summary', 'by is 5')
    H.assert_error(function() set():summary { metrics = {} } end, 'ResultSet.summary', 'metrics is')
    H.assert_error(function() set().summary({}) end, 'ResultSet.summary', 'called on')
  end)
end)

describe('ResultSet:series (what ResultSet:plot draws)', function()
  it('averages the runs of a group at each step with a min..max band', function()
    local s = set():series { y = 'loss', x = 'step' }
    assert.equal(2, #s)
    assert.equal('Adam', s[1].label)
    assert.same({ 1, 2, 3 }, s[1].x)
    assert.same({ 4, 2, 1 }, s[1].y)                             -- (3+5+4)/3, (2+2+2)/3, (1+0+2)/3
    assert.same({ 3, 2, 0 }, s[1].lo)
    assert.same({ 5, 2, 2 }, s[1].hi)
    -- x = time: the mean of the runs' times at each step (Adam seed 2 runs at 2 s a step)
    local t = set():series { y = 'loss', x = 'time', bands = 'std' }
    assert.near(4 / 3, t[1].x[1], 1e-15)
    assert.near(4 + 1, t[1].hi[1], 1e-12)                         -- mean 4, std 1
    local p = set():series { y = 'loss', x = 'passes', bands = false }
    assert.same({ 4, 8, 12 }, p[2].x)
    assert.is_nil(p[2].lo)
    local e = set():series { y = 'test_accuracy', x = 'epoch' }
    assert.near(0.725, e[2].y[1], 1e-15)
  end)

  it('refuses unknown columns and axes', function()
    H.assert_error(function() set():series { y = 'los' } end, 'ResultSet.series', 'y is "los"')
    H.assert_error(function() set():plot { y = 'loss', x = 'steps', out = 'x.png' } end, 'ResultSet.plot', 'x is "steps"')
    H.assert_error(function() set():plot { y = 'loss' } end, 'ResultSet.plot', 'out is nil')
  end)

  it('plots through ms.plot when it is there, else says why', function()
    local out = os.tmpname() .. '.svg'
    local r, why = set():plot { y = 'loss', x = 'passes', out = out }
    assert.truthy(r == out or (r == nil and type(why) == 'string'), tostring(why))
    os.remove(out)
  end)
end)

describe('experiment.Logger', function()
  it('writes a CSV that reads back (by position and by name, flushed per row)', function()
    local path = os.tmpname()
    local log = E.Logger(path, { names = { 'epoch', 'loss', 'acc' } })
    log:add { 1, 0.5, 0.8 }
    log:add { epoch = 2, loss = 1 / 3 }                           -- acc not measured
    -- flushed: readable before close
    local t = E.read_csv(path)
    assert.same({ 'epoch', 'loss', 'acc' }, t.columns)
    assert.same({ 1, 2 }, t.epoch)
    assert.same({ 0.5, 1 / 3 }, t.loss)                          -- exact
    assert.same({ 0.8 }, t.acc)
    assert.equal(2, t.n)
    assert.equal('Logger(' .. path .. '): 2 rows of epoch, loss, acc', tostring(log))
    log:close()
    -- Torch7's way: setNames then add; without names the first add names the columns
    local l2 = E.Logger(path)
    l2:add { b = 2, a = 1 }
    l2:close()
    assert.same({ 'a', 'b' }, E.read_csv(path).columns)
    local l3 = E.Logger(path)
    l3:setNames { 'x' }
    l3:add { 7 }
    assert.same({ 7 }, E.read_csv(path).x)
    os.remove(path)
  end)

  it('refuses misuse, naming the method', function()
    local path = os.tmpname()
    local log = E.Logger(path, { names = { 'a' } })
    H.assert_error(function() log:add { b = 1 } end, 'Logger.add', 'key "b"')
    H.assert_error(function() log:add { 'x' } end, 'Logger.add', 'row[1] is "x"')
    H.assert_error(function() log:names { 'c' } end, 'Logger.names', 'already named')
    H.assert_error(function() log.add { 1 } end, 'Logger.add', 'called on')
    H.assert_error(function() E.Logger(path, { name = {} }) end, 'Logger', 'unknown option "name"')
    H.assert_error(function() E.Logger('/nonexistent/dir/x.csv') end, 'Logger', 'cannot write')
    H.assert_error(function() log:plot { y = 'zz', out = 'x.png' } end, 'Logger.plot')
    log:close()
    os.remove(path)
  end)
end)
