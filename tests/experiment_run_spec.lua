-- ms.experiment.run / run_all / load / replay on small Fashion-MNIST runs (512 training
-- and 256 test images, MLP 784-16-10): the files and their columns, passes per step,
-- resume, restart of unfinished runs, Ctrl-C, bit-reproducibility and replay.
local ms = require 'moonstep'
local H = require 'helper'
local ffi = require 'ffi'
local E = ms.experiment
local json = require 'moonstep.json'
local train = require 'moonstep.experiment.train'

pcall(ffi.cdef, 'int kill(int pid, int sig); int getpid(void);')

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  return p
end

local function small(t)
  local e = { data = { train = 512, test = 256 }, model = { 'mlp', sizes = { 784, 16, 10 } }, device = 'cpu',
              threads = 1 }
  for k, v in pairs(t or {}) do e[k] = v end
  return e
end

local function exists(p) local f = io.open(p); if f then f:close() end; return f ~= nil end
local function read(p) local f = assert(io.open(p)); local s = f:read('*a'); f:close(); return s end
local function write(p, s) local f = assert(io.open(p, 'w')); f:write(s); f:close() end
local function rm(dir) os.execute('rm -rf ' .. dir) end

describe('experiment.run', function()
  if not H.have_fashion_mnist then
    pending('dataset-fashion-mnist is not installed')
    return
  end

  it('writes config.json, steps.csv, epochs.csv and result.json with the contract\'s columns', function()
    local out = tmpdir()
    local res = E.run(small { optimizer = { 'SGD', lr = 0.1 }, epochs = 2, log_every = 3, seed = 5 },
                      { out = out, quiet = true })
    local dir = out .. '/' .. res.id
    assert.equal(dir, res.dir)
    assert.truthy(res.id:match('^SGD%-s5%-%x+$'), res.id)
    for _, f in ipairs { 'config.json', 'steps.csv', 'epochs.csv', 'result.json' } do
      assert.truthy(exists(dir .. '/' .. f), f)
    end
    assert.equal('step,epoch,loss,accuracy,lr,grad_norm,time,forward,backward\n', read(dir .. '/steps.csv'):match('^[^\n]*\n'))
    assert.equal('epoch,step,train_loss,train_accuracy,test_loss,test_accuracy,time,forward,backward\n',
                 read(dir .. '/epochs.csv'):match('^[^\n]*\n'))
    local steps = E.read_csv(dir .. '/steps.csv')
    -- every 3rd step and each epoch's last (4 steps an epoch)
    assert.same({ 3, 4, 6, 8 }, steps.step)
    assert.same({ 1, 1, 2, 2 }, steps.epoch)
    assert.same(steps.step, steps.forward)
    assert.same(steps.step, steps.backward)
    for i = 1, steps.n do
      assert.equal(0.1, steps.lr[i])
      assert.truthy(steps.accuracy[i] >= 0 and steps.accuracy[i] <= 1)
      assert.truthy(steps.grad_norm[i] > 0)
      assert.truthy(steps.loss[i] > 0)
      assert.truthy(i == 1 or steps.time[i] > steps.time[i - 1])
    end
    local epochs = E.read_csv(dir .. '/epochs.csv')
    assert.equal(2, epochs.n)
    assert.same({ 4, 8 }, epochs.step)
    local m = json.read(dir .. '/result.json')
    for _, k in ipairs { 'test_accuracy', 'test_loss', 'train_loss', 'time', 'forward', 'backward', 'steps', 'skipped' } do
      assert.is_number(m[k], k)
    end
    assert.same({ 8, 8, 8, 0 }, { m.steps, m.forward, m.backward, m.skipped })
    assert.equal(epochs.test_accuracy[2], m.test_accuracy)
    assert.equal(epochs.time[2], m.time)
    local cfg = json.read(dir .. '/config.json')
    assert.equal('0.1.0', cfg.moonstep.version)
    cfg.moonstep = nil
    assert.same(res.config, cfg)
    -- in memory as on disk
    assert.same(steps.loss, res.steps.loss)
    assert.truthy(tostring(res):find(res.id, 1, true))
    local back = E.load(dir)
    assert.same(res.metrics, back.metrics)
    assert.same(res.steps.grad_norm, back.steps.grad_norm)
    rm(out)
  end)

  it('logs the gradient norm of the arena (the same with or without the optimizer\'s finite scan)', function()
    local a = E.run(small { optimizer = 'Adam', seed = 2 }, { quiet = true })
    local b = E.run(small { optimizer = { 'Adam', check_finite = false }, seed = 2 }, { quiet = true })
    assert.same(a.steps.loss, b.steps.loss)
    for i = 1, a.steps.n do
      assert.near(a.steps.grad_norm[i], b.steps.grad_norm[i], 1e-9 * a.steps.grad_norm[i])
    end
  end)

  it('writes nothing without out', function()
    local res = E.run(small { optimizer = 'SGD' }, { quiet = true })
    assert.is_nil(res.dir)
    assert.equal(4, res.steps.n)
    assert.equal(1, res.epochs.n)
  end)

  it('counts passes: SAM 2 forward + 2 backward a step, SPSA forward only', function()
    local sam = E.run(small { optimizer = { 'SAM', base = { 'SGD', lr = 0.05 } } }, { quiet = true })
    assert.same({ 2, 4, 6, 8 }, sam.steps.forward)
    assert.same({ 2, 4, 6, 8 }, sam.steps.backward)
    assert.same({ 0.05, 0.05, 0.05, 0.05 }, sam.steps.lr)        -- the base's lr
    local spsa = E.run(small { optimizer = { 'SPSA', preset = 'zeroth_learn', n = 4 }, lr = 0.01 }, { quiet = true })
    assert.same({ 5, 10, 15, 20 }, spsa.steps.forward)           -- n + 1 forward differences
    assert.same({ 0, 0, 0, 0 }, spsa.steps.backward)
    assert.same({ 0.01, 0.01, 0.01, 0.01 }, spsa.steps.lr)       -- a
    assert.equal(0, #spsa.steps.accuracy)                       -- not seen by the runner
    assert.truthy(spsa.steps.grad_norm[1] > 0)                   -- ghat_norm
    assert.same({ 20, 0 }, { spsa.metrics.forward, spsa.metrics.backward })
    assert.is_nil(spsa.metrics.train_accuracy)
  end)

  it('is bit-reproducible on the CPU, and replay says so', function()
    local out = tmpdir()
    local exp = small { optimizer = { 'SGD', lr = 0.1, momentum = 0.9 }, epochs = 2, seed = 3,
                        model = { 'mlp', sizes = { 784, 16, 10 }, activation = 'gelu' } }
    local a = E.run(exp, { out = out, quiet = true })
    local b = E.run(exp, { quiet = true })
    assert.same(a.steps.loss, b.steps.loss)
    assert.same(a.metrics.test_loss, b.metrics.test_loss)
    -- two threads: the same bits from run to run too
    local before = ms.num_threads()
    ms.set_num_threads(1)
    exp.threads = 2
    local c, d = E.run(exp, { quiet = true }), E.run(exp, { quiet = true })
    assert.same(c.steps.loss, d.steps.loss)
    assert.same(c.steps.grad_norm, d.steps.grad_norm)
    assert.equal(2, c.metrics.threads)
    assert.equal(1, ms.num_threads())                             -- restored after each run
    ms.set_num_threads(before)
    exp.threads = 1
    local rep = E.replay(a.dir, { quiet = true })
    assert.is_true(rep.identical, tostring(rep))
    assert.equal(a.dir .. '/replay-1', rep.out)
    assert.truthy(exists(a.dir .. '/replay-1/result.json'))
    assert.truthy(tostring(rep):find('identical', 1, true))
    -- from config.json into a given directory; a tampered record differs
    local steps = read(a.dir .. '/steps.csv')
    local line2 = steps:match('\n(2,1,[^,]+),')
    write(a.dir .. '/steps.csv', (steps:gsub(line2:gsub('%p', '%%%0'), '2,1,9.5', 1)))
    local rep2 = E.replay(a.dir .. '/config.json', { out = out .. '/again', quiet = true })
    assert.is_false(rep2.identical)
    assert.equal(1, rep2.ndiff)
    assert.truthy(tostring(rep2):find('step 2: loss 9.5 vs', 1, true), tostring(rep2))
    H.assert_error(function() E.replay(out .. '/nothing') end, 'experiment.replay', 'not found')
    rm(out)
  end)

  it('resumes: finished runs are loaded, unfinished ones restarted from scratch', function()
    local out = tmpdir()
    local list = E.grid({ seed = { 1, 2 } }, small { optimizer = 'Adam' })
    local first = E.run_all(list, { out = out, quiet = true })
    assert.equal(2, #first)
    -- run 2 looks as if killed in the middle: no result.json, a truncated steps.csv
    local d2 = first[2].dir
    local full_steps = read(d2 .. '/steps.csv')
    os.remove(d2 .. '/result.json')
    write(d2 .. '/steps.csv', full_steps:sub(1, 80))
    write(d2 .. '/result.json.tmp-1-1', '{"half":')
    H.assert_error(function() E.load(d2) end, 'experiment.load', 'unfinished run')
    assert.equal(1, #E.load(out))                                -- only the finished one
    local calls = 0
    local again = E.run_all(list, { out = out, quiet = true, on_step = function() calls = calls + 1 end })
    assert.is_true(again[1].resumed)
    assert.is_nil(again[2].resumed)
    assert.equal(4, calls)                                       -- only run 2's 4 steps ran
    assert.same(first[1].metrics, again[1].metrics)
    assert.same(first[1].steps.loss, again[1].steps.loss)
    local redone = E.read_csv(d2 .. '/steps.csv')                 -- the same run, from scratch
    assert.same(first[2].steps.loss, redone.loss)
    assert.same(first[2].steps.grad_norm, redone.grad_norm)
    assert.equal(4, redone.n)
    assert.falsy(exists(d2 .. '/result.json.tmp-1-1'))
    -- resume = false reruns everything
    calls = 0
    E.run_all(list, { out = out, quiet = true, resume = false, on_step = function() calls = calls + 1 end })
    assert.equal(8, calls)
    local set = E.load(out)
    assert.equal(2, #set)
    assert.truthy(tostring(set):find('ResultSet: 2 runs', 1, true))
    rm(out)
  end)

  it('stops on Ctrl-C with one line naming the run, and the next run_all resumes', function()
    local out = tmpdir()
    local list = E.grid({ seed = { 1, 2 } }, small { optimizer = 'SGD', epochs = 2 })
    local ids = { E.id(list[1]), E.id(list[2]) }
    local n = 0
    local ok, err = pcall(E.run_all, list, { out = out, quiet = true, on_step = function()
      n = n + 1
      if n == 8 + 3 then ffi.C.kill(ffi.C.getpid(), 2) end       -- step 3 of run 2
    end })
    ms.C.ms_sigint_uninstall()
    assert.is_false(ok)
    err = tostring(err)
    assert.truthy(err:find('experiment.run_all: interrupted (Ctrl-C) in run ' .. ids[2] .. ' (epoch 1, step 3 of 8)', 1, true), err)
    assert.truthy(err:find('run again to resume', 1, true), err)
    assert.falsy(err:find('\n', 1, true), err)
    assert.equal(0, ms.C.ms_interrupt_pending())
    assert.truthy(exists(out .. '/' .. ids[1] .. '/result.json'))
    assert.falsy(exists(out .. '/' .. ids[2] .. '/result.json'))
    local set = E.run_all(list, { out = out, quiet = true })
    ms.C.ms_sigint_uninstall()
    assert.is_true(set[1].resumed)
    assert.truthy(exists(out .. '/' .. ids[2] .. '/result.json'))
    rm(out)
  end)

  it('names the run when a run fails, and leaves it unfinished', function()
    local out = tmpdir()
    -- lr from a schedule that turns negative at step 3: SGD refuses it mid-run
    local exp = small { optimizer = { 'SGD', lr = { schedule = 'linear', init = 0.1, final = -0.1, steps = 2 } } }
    local ok, err = pcall(E.run, exp, { out = out, quiet = true })
    ms.C.ms_sigint_uninstall()
    assert.is_false(ok)
    assert.truthy(tostring(err):find('experiment.run: run ' .. E.id(exp) .. ': ', 1, true), err)
    assert.falsy(exists(out .. '/' .. E.id(exp) .. '/result.json'))
    rm(out)
  end)
end)

describe('experiment.train', function()
  it('exports its columns', function()
    assert.equal(9, #train.STEP_COLUMNS)
    assert.equal(9, #train.EPOCH_COLUMNS)
  end)
end)

describe('experiment run directories have one writer', function()
  if not H.have_fashion_mnist then
    pending('dataset-fashion-mnist is not installed')
    return
  end
  local exp = small { optimizer = { 'SGD', lr = 0.1 }, data = { train = 64, test = 32 }, seed = 9 }

  it('refuses a run directory locked by a live process, takes over a stale lock, and unlocks', function()
    local out = tmpdir()
    local dir = out .. '/' .. E.id(exp)
    os.execute(('mkdir -p %q'):format(dir))
    write(dir .. '/.lock', '1\n')                          -- pid 1 is alive
    H.assert_error(function() E.run_all({ exp }, { out = out, quiet = true }) end,
                   'experiment.run_all', 'is being written by process 1', 'use another out')
    assert.falsy(exists(dir .. '/result.json'))
    -- a pid that is not running (kill -9 of the writer): taken over
    local dead = 1
    repeat dead = dead + 7919 until ffi.C.kill(dead, 0) ~= 0
    write(dir .. '/.lock', tostring(dead) .. '\n')
    E.run_all({ exp }, { out = out, quiet = true })
    assert.truthy(exists(dir .. '/result.json'))
    assert.falsy(exists(dir .. '/.lock'))
    rm(out)
  end)

  it('names a damaged finished record and how to run it again', function()
    local out = tmpdir()
    E.run_all({ exp }, { out = out, quiet = true })
    local dir = out .. '/' .. E.id(exp)
    local f = assert(io.open(dir .. '/steps.csv', 'a')); f:write('20,0\n'); f:close()
    H.assert_error(function() E.run_all({ exp }, { out = out, quiet = true }) end,
                   'experiment.run_all', 'steps.csv', 'damaged', 'delete ' .. dir)
    rm(out)
  end)
end)
