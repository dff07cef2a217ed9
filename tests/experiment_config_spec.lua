-- ms.experiment's experiment tables: normalisation (defaults, positional names, the lr
-- shortcut), ids, JSON (moonstep.json), and misuse errors that name the function and field.
local ms = require 'moonstep'
local H = require 'helper'
local E = ms.experiment
local json = require 'moonstep.json'

describe('experiment tables', function()
  it('fill the defaults and name positional fields', function()
    local cfg = E.normalize { optimizer = 'Adam', device = 'cpu' }
    assert.same({ type = 'mlp', sizes = { 784, 256, 10 }, activation = 'relu' }, cfg.model)
    assert.same({ type = 'fashion_mnist', train = 60000, test = 10000, normalize = true }, cfg.data)
    assert.same({ class = 'Adam' }, cfg.optimizer)
    assert.same({ 'Adam', 1, 128, 0, 1, 'cpu' },
                { cfg.name, cfg.epochs, cfg.batch_size, cfg.seed, cfg.log_every, cfg.device })
    assert.is_nil(cfg.threads)
    local sam = E.normalize { optimizer = { 'SAM', name = 'SAM-0.1', base = { 'SGD', lr = 0.05, momentum = 0.9 },
                                            rho = 0.1 }, model = { 'cnn' }, data = { 'fashion_mnist', train = 100 },
                              device = 'cpu' }
    assert.same({ class = 'SAM', name = 'SAM-0.1', rho = 0.1,
                  base = { class = 'SGD', lr = 0.05, momentum = 0.9 } }, sam.optimizer)
    assert.equal('SAM-0.1', sam.name)
    assert.same({ type = 'cnn' }, sam.model)
    assert.equal(100, sam.data.train)
    -- device auto resolves to what this machine has
    assert.equal(ms.cuda.is_available() and 'cuda' or 'cpu', E.normalize {}.device)
  end)

  it('is idempotent: a normalised experiment (config.json) normalises to itself, same id', function()
    local exp = { optimizer = { 'SPSA', preset = 'zeroth_learn', n = 4 }, lr = 0.01, seed = 3, device = 'cpu',
                  model = { sizes = { 784, 16, 10 }, activation = 'tanh' }, data = { train = 512, test = 256 } }
    local a = E.normalize(exp)
    local b = E.normalize(json.decode(json.encode(a)))
    assert.same(a, b)
    assert.equal(E.id(exp), E.id(b))
    assert.truthy(E.id(exp):match('^SPSA%-s3%-%x%x%x%x%x%x%x%x$'), E.id(exp))
  end)

  it('ids differ with any field and are safe directory names', function()
    local a = E.id { lr = 0.01, device = 'cpu' }
    assert.are_not.equal(a, E.id { lr = 0.02, device = 'cpu' })
    assert.are_not.equal(a, E.id { lr = 0.01, device = 'cpu', epochs = 2 })
    assert.equal(a, E.id { lr = 0.01, device = 'cpu', epochs = 1 })     -- a default is the same experiment
    assert.truthy(E.id { name = 'a b/c*', device = 'cpu' }:match('^a_b_c_%-s0%-'))
  end)

  it('take the lr shortcut into the optimizer, a base, AutoSGM\'s lr_init or SPSA\'s a', function()
    local build = require('moonstep.experiment.optimizer').build
    local model = ms.nn.Linear(4, 2)
    local function opt_of(exp)
      local cfg = E.normalize(exp)
      return build(cfg, model, { num_data = 10, steps_per_epoch = 1 })
    end
    assert.equal(0.5, opt_of({ optimizer = { 'SGD', lr = 0.1 }, lr = 0.5, device = 'cpu' }).lr)
    assert.equal(0.25, opt_of({ optimizer = { 'SAM', base = 'SGD' }, lr = 0.25, device = 'cpu' }).base.lr)
    assert.equal(0.03, opt_of({ optimizer = 'AutoSGM', lr = 0.03, device = 'cpu' }).lr_init)
    local spsa = opt_of({ optimizer = { 'SPSA', preset = 'zeroth_learn' }, lr = 0.02, seed = 7, device = 'cpu' })
    assert.equal(0.02, spsa.a)
    assert.equal(7, spsa._zo.seed)                                  -- the experiment's seed
    -- schedules from data
    local cos = opt_of({ optimizer = { 'SGD', lr = { schedule = 'cosine', init = 0.1, T_max = 10 } }, device = 'cpu' })
    assert.truthy(ms.schedule.is_schedule(cos.lr))
    assert.near(0.1, cos.lr(1), 1e-12)
    -- the name first: warmup's own `schedule` option is its inner schedule; normalised to
    -- {schedule = name, args = {...}} and back to the same experiment
    local exp = { optimizer = { 'SGD', lr = { 'warmup', steps = 4, schedule = { schedule = 'cosine', init = 0.1, T_max = 10 } } },
                  device = 'cpu' }
    local cfg = E.normalize(exp)
    assert.same({ schedule = 'warmup', args = { steps = 4, schedule = { schedule = 'cosine', args = { init = 0.1, T_max = 10 } } } },
                cfg.optimizer.lr)
    assert.same(cfg, E.normalize(json.decode(json.encode(cfg))))
    local wu = opt_of(exp)
    local want = ms.schedule.warmup { steps = 4, schedule = ms.schedule.cosine { init = 0.1, T_max = 10 } }
    for t = 1, 12 do assert.equal(want(t), wu.lr(t)) end
    H.assert_error(function() E.normalize { optimizer = { 'SGD', lr = { 'warmup', steps = 'x' } } } end,
                   'experiment.normalize', 'optimizer', 'warmup', 'schedule is required')
  end)

  it('refuse unknown fields and bad values, naming the function and the field', function()
    local run = function(exp) return function() E.run(exp) end end
    H.assert_error(run { optimzer = 'Adam' }, 'experiment.run', 'unknown field "optimzer"', 'optimizer')
    H.assert_error(run { optimizer = 'Adamm' }, 'experiment.run', 'optimizer.class is "Adamm"', 'Adam, AdamW')
    H.assert_error(run { optimizer = { 'SGD', lrr = 1 } }, 'experiment.run', 'optimizer has an unknown field "lrr"',
                   'optim.SGD')
    H.assert_error(run { optimizer = { 'SAM', base = { 'Adam', betas = 3 } } }, 'experiment.run', 'optimizer',
                   'betas')
    H.assert_error(run { optimizer = { 'SGD', lr = -1 } }, 'experiment.run', 'optimizer', 'lr is -1')
    H.assert_error(run { optimizer = { 'SGD', lr = { schedule = 'cosinus' } } }, 'experiment.run',
                   'optimizer.lr.schedule is "cosinus"')
    H.assert_error(run { optimizer = { 'SPSA', criterion = 'mse' } }, 'experiment.run', 'optimizer.criterion',
                   'set by the runner')
    H.assert_error(run { model = 'resnet' }, 'experiment.run', 'model.type is "resnet"', '"mlp" or "cnn"')
    H.assert_error(run { model = { 'mlp', sizes = { 784, 10, 3 } } }, 'experiment.run', 'model.sizes[3] is 3',
                   'expected 10')
    H.assert_error(run { model = { 'mlp', sizes = 5 } }, 'experiment.run', 'model.sizes is 5')
    H.assert_error(run { model = { 'mlp', activation = 'swish' } }, 'experiment.run', 'model.activation is "swish"')
    H.assert_error(run { model = { 'cnn', sizes = { 1 } } }, 'experiment.run', 'model has an unknown field "sizes"')
    H.assert_error(run { data = { train = 0 } }, 'experiment.run', 'data.train is 0')
    H.assert_error(run { data = 'mnist' }, 'experiment.run', 'data.type is "mnist"')
    H.assert_error(run { epochs = 1.5 }, 'experiment.run', 'epochs is 1.5')
    H.assert_error(run { device = 'tpu' }, 'experiment.run', 'device is "tpu"')
    if not ms.cuda.is_available() then
      H.assert_error(run { device = 'cuda' }, 'experiment.run', 'device is "cuda" but no usable GPU')
    end
    H.assert_error(run { lr = 'big' }, 'experiment.run', 'lr is "big"')
    H.assert_error(run { name = 5 }, 'experiment.run', 'name is 5')
    H.assert_error(run { optimizer = 'LBFGS', lr = 0.1, model = { 'mlp', activation = print } }, 'experiment.run',
                   'model.activation')
    H.assert_error(function() E.run('Adam') end, 'experiment.run', 'experiment is "Adam"')
    H.assert_error(function() E.run({}, { outt = 'x' }) end, 'experiment.run', 'unknown option "outt"')
    H.assert_error(function() E.run({}, { out = 5 }) end, 'experiment.run', 'out is 5', 'a directory path')
    H.assert_error(function() E.replay('x', { out = '' }) end, 'experiment.replay', 'out is ""')
    -- in a list: the index of the experiment
    H.assert_error(function() E.run_all { {}, { optimizer = 'Nope' } } end, 'experiment.run_all',
                   'experiment 2: optimizer.class is "Nope"')
    H.assert_error(function() E.run_all {} end, 'experiment.run_all', 'empty')
    H.assert_error(function() E.run_all(5) end, 'experiment.run_all', 'experiments is 5')
    -- no raw Lua errors escape
    local ok, err = pcall(E.run, { optimizer = { 'SGD', base = {} } })
    assert.is_false(ok)
    assert.falsy(tostring(err):find('attempt to', 1, true), err)
  end)
end)

describe('ms.experiment misuse sweep', function()
  it('every public function refuses wrong arguments with a clear error naming itself', function()
    local bad = { 5, 'no/such/dir', true, { 1, 2 }, { x = 1 }, print, ms.ones(2), 0 / 0 }
    local calls = {
      { 'grid', function(v) return E.grid(v) end },
      { 'grid', function(v) return E.grid({ lr = { 1 } }, v) end },
      { 'experiment.normalize', function(v) return E.normalize(v) end },
      { 'experiment.id', function(v) return E.id(v) end },
      { 'experiment.run', function(v) return E.run(v) end },
      { 'experiment.run', function(v) return E.run({ epochs = 0 }, v) end },
      { 'experiment.run_all', function(v) return E.run_all(v) end },
      { 'experiment.run_all', function(v) return E.run_all({ v }) end },
      { 'experiment.load', function(v) return E.load(v) end },
      { 'experiment.replay', function(v) return E.replay(v) end },
      { 'experiment.summary', function(v) return E.summary(v) end },
      { 'experiment.read_csv', function(v) return E.read_csv(v) end },
      { 'experiment.ResultSet', function(v) return E.ResultSet(v) end },
      { 'ResultSet', function(v) return E.ResultSet({ v }) end },
      { 'Logger', function(v) return E.Logger(type(v) == 'string' and '/no/such/dir/x.csv' or v) end },
      { 'Logger', function(v) return E.Logger('/no/such/dir/x.csv', v) end },
      { 'json.encode', function(v) return require('moonstep.json').encode({ v }, v) end },
      { 'json.decode', function(v) return require('moonstep.json').decode(v) end },
    }
    for _, c in ipairs(calls) do
      for i, v in ipairs(bad) do
        local ok, err = pcall(c[2], v)
        if not ok then
          err = tostring(err)
          assert.truthy(err:find(c[1], 1, true), ('%s with bad[%d]: %s'):format(c[1], i, err))
          assert.falsy(err:find('attempt to', 1, true) or err:find('bad argument', 1, true),
                       ('%s with bad[%d]: %s'):format(c[1], i, err))
        end
      end
    end
  end)
end)

describe('moonstep.json', function()
  it('encodes canonically: sorted keys, exact numbers, lists and objects', function()
    local s = json.encode { b = { 1 / 3, 2, 1e300 }, a = 'x"y', c = {}, d = { z = true, y = { q = 0.1 } } }
    assert.equal('{"a":"x\\"y","b":[0.3333333333333333,2,1e+300],"c":{},"d":{"y":{"q":0.1},"z":true}}', s)
    local v = json.decode(s)
    assert.equal(1 / 3, v.b[1])
    assert.equal(0.1, v.d.y.q)
    assert.equal('null', json.encode(0 / 0))
    H.assert_error(function() json.encode { f = print } end, 'json.encode', 'the value.f is a function')
    H.assert_error(function() json.encode { [1] = 1, x = 2 } end, 'json.encode', 'key 1')
  end)

  it('names the file of a corrupt JSON text', function()
    local path = os.tmpname()
    local f = io.open(path, 'w'); f:write('{"a": [1, 2'); f:close()
    H.assert_error(function() json.read(path) end, 'json.read', path, 'not valid JSON')
    f = io.open(path, 'w'); f:write('{"a": 1} trailing'); f:close()
    H.assert_error(function() json.read(path) end, 'json.read', path, 'unexpected text')
    H.assert_error(function() json.read(path .. '.missing') end, 'json.read', 'cannot open')
    json.write(path, { k = { 1, 2 } })
    assert.same({ k = { 1, 2 } }, json.read(path))
    os.remove(path)
  end)
end)
