-- ms.experiment against hostile files and inputs: corrupt or foreign config.json and
-- result.json, missing run files, paths that are files or directories where the other is
-- expected, empty grid axes, typos in metric names, user callbacks that raise. Each is an
-- error naming the public function (and the file), never a raw Lua error. No training.
local ms = require 'moonstep'
local H = require 'helper'
local E = ms.experiment
local json = require 'moonstep.json'

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  os.execute('mkdir -p ' .. p)
  return p
end
local function write(p, s) local f = assert(io.open(p, 'w')); f:write(s); f:close() end
local function rm(dir) os.execute('rm -rf ' .. dir) end

-- No raw Lua error: neither "attempt to ..." nor a message from inside the package.
local function clean(err)
  err = tostring(err)
  assert.falsy(err:find('attempt to', 1, true), err)
  assert.falsy(err:find('bad argument', 1, true), err)
  assert.falsy(err:find('lua/moonstep/', 1, true), err)
  return err
end
local function refuses(f, ...) return clean(H.assert_error(f, ...)) end

-- A complete, plausible run directory written by hand.
local function fake_run(dir, over)
  os.execute('mkdir -p ' .. dir)
  over = over or {}
  write(dir .. '/config.json', over.config or json.encode { name = 'Adam', seed = 1, epochs = 1 })
  write(dir .. '/result.json', over.result or json.encode { test_accuracy = 0.5, time = 1, forward = 2, backward = 2 })
  write(dir .. '/steps.csv', over.steps or 'step,epoch,loss,accuracy,lr,grad_norm,time,forward,backward\n1,1,2.3,0.1,0.001,1,0.5,1,1\n')
  write(dir .. '/epochs.csv', over.epochs or 'epoch,step,train_loss,train_accuracy,test_loss,test_accuracy,time,forward,backward\n1,1,2.3,0.1,2.2,0.5,1,2,2\n')
end

describe('experiment.replay with a hostile config.json', function()
  it('names the function and the file', function()
    local d = tmpdir()
    local cases = {
      { '{"name": "x", "seed": ', 'not valid JSON' },
      { '', 'not valid JSON' },
      { '[1, 2, 3]', 'holds a list, expected a JSON object' },
      { 'null', 'holds null, expected a JSON object' },
      { '"Adam"', 'holds "Adam", expected a JSON object' },
      { '{"name": "x", "bogus": 1}', 'unknown field "bogus"' },
      { '{"epochs": "two"}', 'epochs is "two"' },
      { '{"model": {"type": "resnet"}}', 'model.type is "resnet"' },
      { '{"lr": null, "optimizer": {"class": "SGD", "lr": -1}}', 'lr is -1' },
      { '{"lr": 1e999}', 'lr is inf' },
    }
    for i, c in ipairs(cases) do
      local sub = d .. '/c' .. i
      os.execute('mkdir -p ' .. sub)
      write(sub .. '/config.json', c[1])
      local err = refuses(function() E.replay(sub, { quiet = true }) end, 'experiment.replay', c[2])
      if c[2] == 'not valid JSON' or c[2]:find('holds') then assert.truthy(err:find(sub .. '/config.json', 1, true), err) end
    end
    refuses(function() E.replay(d .. '/none') end, 'experiment.replay', 'not found')
    write(d .. '/plain.txt', 'hello')
    refuses(function() E.replay(d .. '/plain.txt') end, 'experiment.replay', d .. '/plain.txt', 'not valid JSON')
    rm(d)
  end)

  it('never replays over a record', function()
    local d = tmpdir()
    fake_run(d .. '/run', { config = json.encode { name = 'Adam', seed = 1, device = 'cpu', data = { train = 64, test = 32 } } })
    local before = io.open(d .. '/run/result.json'):read('*a')
    refuses(function() E.replay(d .. '/run', { out = d .. '/run', quiet = true }) end, 'experiment.replay',
            'already holds a run')
    refuses(function() E.replay(d .. '/run', { out = d .. '/run/steps.csv', quiet = true }) end, 'experiment.replay',
            'is a file')
    assert.equal(before, io.open(d .. '/run/result.json'):read('*a'))
    rm(d)
  end)
end)

describe('experiment.load with hostile run directories', function()
  it('names the function, the directory and the file', function()
    local d = tmpdir()
    local cases = {
      { 'corrupt_result', { result = '{"test_accuracy": ' }, 'result.json is not valid JSON' },
      { 'list_result', { result = '[1]' }, 'result.json holds a list' },
      { 'string_metric', { result = '{"test_accuracy": "high"}' }, 'result.json: test_accuracy is "high", expected a number' },
      { 'no_name', { config = '{"seed": 1}' }, 'config.json: name is nil' },
      { 'bad_seed', { config = '{"name": "x", "seed": "one"}' }, 'config.json: seed is "one"' },
      { 'bad_csv', { steps = 'step,loss\n1,abc\n' }, 'steps.csv line 2: field loss is "abc"' },
      { 'short_row', { steps = 'step,loss\n1\n' }, 'steps.csv line 2 has 1 fields, expected 2' },
      { 'reserved_col', { steps = 'step,n\n1,2\n' }, 'steps.csv has the column name "n"' },
      { 'dup_col', { epochs = 'epoch,epoch\n1,1\n' }, 'epochs.csv has the column "epoch" twice' },
      { 'empty_csv', { epochs = '' }, 'epochs.csv is empty' },
    }
    for _, c in ipairs(cases) do
      fake_run(d .. '/' .. c[1], c[2])
      refuses(function() E.load(d .. '/' .. c[1]) end, 'experiment.load', d .. '/' .. c[1], c[3])
    end
    -- a finished run missing a file; a directory of runs with a bad one
    fake_run(d .. '/nosteps')
    os.remove(d .. '/nosteps/steps.csv')
    refuses(function() E.load(d .. '/nosteps') end, 'experiment.load', 'has no steps.csv')
    refuses(function() E.load(d) end, 'experiment.load')
    -- a file, not a directory; nothing there
    refuses(function() E.load(d .. '/nosteps/config.json') end, 'experiment.load', 'is not a directory')
    refuses(function() E.load(d .. '/none') end, 'experiment.load', 'is not a directory')
    rm(d)
    -- a good one loads
    local g = tmpdir()
    fake_run(g .. '/ok')
    assert.equal(0.5, E.load(g .. '/ok').metrics.test_accuracy)
    rm(g)
  end)
end)

describe('moonstep.json against hostile texts', function()
  it('says a too deeply nested text is one, not "stack overflow"', function()
    local err = refuses(function() json.decode(('['):rep(100000) .. (']'):rep(100000), 'deep.json') end, 'json.decode',
                        'deep.json is not valid JSON', 'nested too deeply')
    assert.falsy(err:find('stack overflow', 1, true), err)
  end)
end)

describe('paths that are the wrong kind of thing', function()
  it('are refused by name', function()
    local d = tmpdir()
    write(d .. '/file', 'x')
    refuses(function() E.run({ device = 'cpu' }, { out = d .. '/file', quiet = true }) end, 'experiment.run',
            'cannot create the directory ' .. d .. '/file', 'a file of that name exists')
    refuses(function() E.read_csv(d) end, 'experiment.read_csv', 'is a directory')
    refuses(function() E.read_csv(d .. '/none.csv') end, 'experiment.read_csv', 'cannot open', 'No such file')
    refuses(function() json.read(d) end, 'json.read', 'cannot read ' .. d)
    refuses(function() json.write(d, {}) end, 'json.write', 'is a directory')
    refuses(function() E.Logger(d) end, 'Logger', 'cannot write ' .. d)
    local R = require('moonstep.experiment.result').Result
    local s = E.summary { R.new { id = 'a', config = { name = 'a', seed = 1 }, metrics = { test_accuracy = 0.5 } } }
    refuses(function() s:write(d) end, 'Summary.write', 'is a directory')
    rm(d)
  end)
end)

describe('grids, summaries, callbacks and loggers', function()
  it('refuse empty axes and oversized products', function()
    refuses(function() E.grid { lr = {} } end, 'experiment.grid', 'axis lr is an empty list')
    refuses(function() E.grid { seed = { 1 }, ['optimizer.rho'] = {} } end, 'experiment.grid', 'axis optimizer.rho')
    local ten = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }
    refuses(function() E.grid { a = ten, b = ten, c = ten, d = ten, e = ten, f = { 1, 2 } } end, 'experiment.grid',
            'the product has 200000')
    assert.equal(1, #E.grid {})                                        -- no axis: the base alone
  end)

  it('take a metric typo for a typo, and wrap errors of user callbacks', function()
    local R = require('moonstep.experiment.result').Result
    local set = E.ResultSet { R.new { id = 'a', config = { name = 'a', seed = 1 }, metrics = { test_accuracy = 0.5 } } }
    refuses(function() set:summary { metrics = { 'test_acuracy' } } end, 'ResultSet.summary',
            'no run has a metric "test_acuracy"')
    assert.truthy(tostring(set:summary { metrics = { 'train_accuracy', 'optimizer.rho' } }):find('-', 1, true))
    refuses(function() set:filter(function() error('mine') end) end, 'ResultSet.filter', 'f raised an error', 'mine')
    refuses(function() set:summary { by = function() error('mine') end } end, 'ResultSet.summary', 'by(result) raised', 'mine')
    refuses(function() set:summary { by = { 'name', 5 } } end, 'ResultSet.summary', 'by is')
  end)

  it('refuse a table that contains itself inside an optimizer (found by the API fuzzer)', function()
    local t = {}
    t[1] = t
    refuses(function() E.id { optimizer = { 'SGD', momentum = t } } end, 'experiment.id', 'nested more than 32 levels')
    local sch = { schedule = 'cosine' }
    sch.init = sch
    refuses(function() E.normalize { optimizer = { 'SGD', lr = sch } } end, 'experiment.normalize', 'optimizer.lr.init')
  end)

  it('Logger refuses reserved column names and a closed file', function()
    local path = os.tmpname()
    local err = refuses(function() E.Logger(path, { names = { 'n' } }) end, 'Logger', 'names[1] is "n"', 'reserves')
    assert.falsy(err:find('Logger.names', 1, true), err)          -- the user called Logger, not log:names
    err = refuses(function() E.Logger(path, { names = { 'a,b' } }) end, 'Logger: names[1] is "a,b"')
    refuses(function() E.Logger(path):add { columns = 1 } end, 'Logger.add', '"columns"', 'reserves')
    local log = E.Logger(path)
    log:close()
    refuses(function() log:add { 1 } end, 'Logger.add', 'is closed')
    -- plot: the errors of ms.plot.lines come out under Logger.plot (found by the API fuzzer)
    local l2 = E.Logger(path, { names = { 'epoch', 'loss', 'acc' } })
    l2:add { epoch = 1, loss = 0.5 }
    refuses(function() l2:plot { y = {}, out = 'x.png' } end, 'Logger.plot', 'y is an empty list')
    refuses(function() l2:plot { y = 'acc', out = 'x.png' } end, 'Logger.plot', 'acc (no values)')
    local err = refuses(function() l2:plot { y = 'loss', out = 'x.jpg' } end, 'Logger.plot', 'x.jpg')
    assert.falsy(err:find('plot.lines', 1, true), err)
    l2:close()
    os.remove(path)
  end)
end)
