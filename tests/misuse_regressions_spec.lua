-- Regressions of the API-misuse fuzzer's findings (tests/fuzz/api_misuse.lua): one
-- test per class of unclear error it reported. Each asserts what the fuzzer asks of an
-- error: raised at the caller's line (this file, not lua/moonstep/), naming the public
-- function called, no raw LuaJIT message, no int64 wrap printed.
local ms = require 'moonstep'

local RAW = { 'attempt to ', 'bad argument #', 'ms_', 'stack overflow', 'cdata<', 'table index is',
              'cannot convert', '-9223372036854775808' }

-- f() must raise a clear error whose message starts with `fn: ` and contains each of
-- the fragments; returns the message.
local function clear(f, fn, ...)
  local ok, err = pcall(f)
  assert(not ok, 'expected an error, but the call succeeded')
  assert(type(err) == 'string', 'error value is a ' .. type(err))
  local pos, msg = err:match('^(.-):%d+: (.*)$')
  assert(pos, ('error %q has no position'):format(err))
  assert(pos:find('misuse_regressions_spec.lua', 1, true),
         ('error %q is not raised at the caller\'s line'):format(err))
  for _, raw in ipairs(RAW) do
    assert(not msg:find(raw, 1, true), ('error %q holds the raw fragment %q'):format(err, raw))
  end
  assert(msg:sub(1, #fn + 2) == fn .. ': ', ('error %q does not start with %q'):format(err, fn .. ': '))
  for _, frag in ipairs { ... } do
    assert(msg:find(frag, 1, true), ('error %q does not mention %q'):format(err, frag))
  end
  return msg
end

local function model_and_opt(cls, config)
  local m = ms.nn.Linear(3, 2)
  local x, y = ms.rand(4, 3), ms.tensor({ 1, 2, 1, 2 }, 'int64')
  local crit = ms.nn.CrossEntropyLoss()
  local opt = ms.optim[cls](m, config or { lr = 0.1 })
  local function closure()
    local o = m:forward(x)
    local l = crit:forward(o, y)
    m:backward(x, crit:backward(o, y))
    return l
  end
  return m, opt, closure
end

describe('misuse regressions (fuzzer findings)', function()
  it('optimizer helpers are private: no hyper/update/check_* methods', function()
    for _, cls in ipairs { 'SGD', 'Adam', 'AdamW' } do
      local _, opt = model_and_opt(cls)
      for _, k in ipairs { 'hyper', 'hypers', 'update', 'check_values', 'check_config', 'init' } do
        assert.is_nil(opt[k], cls .. ':' .. k .. ' is reachable')
      end
    end
  end)

  it('an optimizer step count out of range is described, not wrapped to int64', function()
    local _, opt, closure = model_and_opt('Adam')
    opt.t = 2 ^ 63
    clear(function() opt:step(closure) end, 'Adam.step', 'opt.t', '9223372036854775808')
    opt.t = 0 / 0
    clear(function() opt:step(closure) end, 'Adam.step', 'opt.t', 'nan')
  end)

  it('a closure that frees the gradient arena names the optimizer step', function()
    for _, cls in ipairs { 'SGD', 'Adam' } do
      local m, opt = model_and_opt(cls)
      clear(function() opt:step(function() m:flat_gradients():free() return 1 end) end,
            cls .. '.step', 'gradient arena', 'freed')
    end
    local m, opt = model_and_opt('AdamW')
    m.weight:free()
    clear(function() opt:step(function() return 1 end) end, 'AdamW.step', 'parameter weight', 'freed')
  end)

  it('optimizer state with freed buffers or a foreign table', function()
    local _, opt, closure = model_and_opt('Adam')
    opt:step(closure)
    local s = opt:state()
    for _, b in pairs(s.buffers) do b:free() end
    clear(function() opt:load_state(s) end, 'Adam.load_state', 'exp_avg')
    clear(function() opt:load_state(ms) end, 'Adam.load_state', 'expected a table from state()')
    clear(function() opt:load_state({ t = 1, hyper = 5 }) end, 'Adam.load_state', 'state.hyper')
    for _, b in pairs(opt.buffers) do b:free() end
    clear(function() opt:state() end, 'Adam.state', 'state buffer', 'freed')
    -- a refused state leaves SGD without a half-made momentum buffer
    local _, sgd = model_and_opt('SGD', { lr = 0.1, momentum = 0.9 })
    clear(function() sgd:load_state({ t = 1, buffers = { momentum = ms.rand(2) } }) end,
          'SGD.load_state', 'momentum')
    assert.is_nil(sgd.buffers.momentum)
  end)

  it('Dataset methods on freed or mismatched tensors name the method', function()
    local ds = ms.data.Dataset(ms.rand(6, 4), ms.rand(6))
    clear(function() ds:normalize(ms.rand(0, 4), 1) end, 'Dataset.normalize', 'mean', 'broadcasts')
    clear(function() ds:normalize(0, ms.rand(4, 'float64')) end, 'Dataset.normalize', 'std', 'dtype')
    local before = ds.x:clone()
    clear(function() ds:normalize(ms.rand(4), ms.rand(3)) end, 'Dataset.normalize', 'std')
    assert.are.same(before:totable(), ds.x:totable())   -- refused before anything was written
    clear(function() ds:subset({ [1] = 1, [3] = 3 }) end, 'Dataset.subset', 'holes')
    ds.x:free()
    for _, call in ipairs {
      { 'normalize', function() ds:normalize(0, 1) end }, { 'subset', function() ds:subset(1, 2) end },
      { 'mean_std', function() ds:mean_std() end }, { 'split', function() ds:split(0.5) end },
    } do
      clear(call[2], 'Dataset.' .. call[1], 'ds.x', 'freed')
    end
    local ds2 = ms.data.Dataset(ms.rand(6, 4), ms.rand(6))
    clear(function() for a in ds2:batches(2) do a:free() end end, 'Dataset.batches', 'freed')
    clear(function() for _ in ds2:batches(2) do ds2.y = ms.rand(1) end end, 'Dataset.batches', 'replaced')
  end)

  it('data.permutation checks its arguments', function()
    clear(function() ms.data.permutation(2, ms.Tensor) end, 'data.permutation', 'unknown option')
    clear(function() ms.data.permutation(2, 7) end, 'data.permutation', 'generator')
    clear(function() ms.data.permutation(-1) end, 'data.permutation', 'n')
    clear(function() ms.data.permutation(3, { seed = -1 }) end, 'data.permutation', 'seed')
    assert.are.same({ 1, 2, 3 }, (function()
      local p = ms.data.permutation(3, { seed = 1 }):totable(); table.sort(p); return p end)())
  end)

  it('probing an argument does not trip ms\' strict __index', function()
    clear(function() ms.nn.Sequential(ms.nn.Linear(2, 2), ms) end, 'Sequential', 'argument 2')
    local ds = ms.data.Dataset(ms.rand(6, 4), ms.tensor({ 1, 2, 3, 1, 2, 3 }, 'int64'))
    clear(function() ms.metrics.evaluate(ms, ds, ms.nn.CrossEntropyLoss()) end, 'metrics.evaluate', 'model')
    clear(function() ms.metrics.accuracy(ms.nn.Linear, ds) end, 'metrics.accuracy', 'model')
    clear(function() ms.optim.SGD(ms) end, 'SGD', 'first argument')
    clear(function() ms.optim.AdamW(ms.nn.Linear, {}) end, 'AdamW', 'first argument')
    clear(function() ms.nn.Linear(2, 2):load_state_dict(ms) end, 'Linear.load_state_dict')
  end)

  it('errors met inside metrics.evaluate name it', function()
    local ds = ms.data.Dataset(ms.rand(5, 4), ms.rand(5, 3))
    clear(function() ms.metrics.evaluate(ms.nn.Linear(4, 3), ds, ms.nn.CrossEntropyLoss()) end,
          'metrics.evaluate', 'CrossEntropyLoss.forward')
  end)

  it('a tensor with a size-0 dim is contiguous (conv/pool on empty inputs)', function()
    local t = ms.rand(3, 0, 2)
    assert.is_true(t:is_contiguous())
    assert.are.same({ 0, 3, 2 }, t:transpose(1, 2):contiguous():view(0, 3, 2):shape())
    local out = ms.nn.AvgPool2d(2):forward(ms.rand(0, 4, 4))
    assert.are.same({ 0, 2, 2 }, out:shape())
    clear(function() ms.nn.MaxPool2d(2):forward(ms.rand(3, 0, 2)) end, 'MaxPool2d.forward')
  end)

  it('backward after m:to() between forward and backward is refused by name', function()
    for _, make in ipairs {
      function() return ms.nn.Linear(4, 3), ms.rand(2, 4) end,
      function() return ms.nn.Conv2d(2, 3, 3), ms.rand(1, 2, 5, 5) end,
      function() return ms.nn.LayerNorm(3), ms.rand(2, 3) end,
      function() return ms.nn.Embedding(5, 3), ms.tensor({ 1, 5, 2 }, 'int64') end,
    } do
      local m, x = make()
      local o = m:forward(x)
      local g = o:clone()
      m:to('float64')
      o:free()
      clear(function() m:backward(x, g) end, m.__name .. '.backward', 'call forward again')
    end
  end)

  it('containers refuse cycles and repeated modules', function()
    local m = ms.nn.Sequential(ms.nn.Linear(4, 4), ms.nn.ReLU())
    clear(function() m:add(m) end, 'Sequential.add', 'cannot contain itself')
    local outer = ms.nn.Sequential(m)
    clear(function() m:add(outer) end, 'Sequential.add', 'cannot contain itself')
    clear(function() m:add(m.modules[1]) end, 'Sequential.add', 'already part of this model')
    assert.are.equal(2, #m.modules)
    assert.are.same({ 2, 4 }, m:forward(ms.rand(2, 4)):shape())
    assert.is_string(tostring(m))
  end)

  it('zero_grad and state_dict name themselves on freed arenas and buffers', function()
    local m = ms.nn.Linear(3, 2)
    m:flat_gradients():free()
    clear(function() m:zero_grad() end, 'Linear.zero_grad', 'gradient arena', 'freed')
    local bn = ms.nn.BatchNorm1d(3)
    bn:forward(ms.rand(4, 3))
    bn.running_mean:free()
    clear(function() bn:state_dict() end, 'BatchNorm1d.state_dict', 'running_mean')
    local l = ms.nn.Linear(4, 3)
    l.weight:free()
    clear(function() l:state_dict() end, 'Linear.state_dict', 'weight')
    -- public methods that once took the name to report as an argument name themselves
    local ln = ms.nn.LayerNorm(3)
    ln.weight:free()
    clear(function() ln:ensure_arena('[') end, 'LayerNorm.ensure_arena', 'weight')
    local set = ms.params { ms.rand(2) }
    set:flat_gradients():free()
    clear(function() set:zero_grad('x') end, 'params.zero_grad', 'gradient arena')
  end)

  it('calling an instance like a function is a clear error', function()
    -- (local r = ...: a tail call would drop the caller's line from the stack)
    clear(function() local r = ms.nn.Linear(2, 2)(ms.rand(1, 2)); return r end, 'Linear', 'm:forward(input)')
    clear(function() local r = ms.nn.Sequential(ms.nn.ReLU())(ms.rand(1, 2)); return r end, 'Sequential', 'not callable')
    clear(function() local r = ms.optim.Adam(ms.nn.Linear(2, 2))(function() return 1 end); return r end, 'Adam', 'opt:step')
    clear(function() local r = ms.data.Dataset(ms.rand(2), ms.rand(2))(); return r end, 'Dataset', 'not callable')
    clear(function() local r = ms.rand(3)(1); return r end, 'Tensor.__call', 'not callable')
  end)

  it('errors below a public method of Module, Optimizer, Dataset and params name it (check.methods)', function()
    clear(function() ms.params { ms.rand(2) }:to('bogus') end, 'params.to', 'bogus')
    local ds = ms.data.Dataset(ms.rand(6, 4), ms.rand(6))
    local ok, err = pcall(ds.subset, ds, ms.tensor({ 1, 9 }, 'int64'))
    assert.is_false(ok)
    assert.truthy(tostring(err):find('Dataset.subset: ', 1, true))
  end)

  it('a method called with a dot instead of a colon names itself', function()
    local m = ms.nn.LeakyReLU(0.1)
    local x = ms.rand(2, 3)
    local o = m:forward(x)
    clear(function() m.backward(x, o) end, 'LeakyReLU.backward', 'called on', 'with a colon')
    clear(function() m.float() end, 'Module.float', 'called on nil')
    local opt = ms.optim.Adam(ms.nn.Linear(2, 2))
    clear(function() opt.step(function() return 1 end) end, 'Optimizer.step', 'opt:step(...)')
    local ds = ms.data.Dataset(ms.rand(2), ms.rand(2))
    clear(function() ds.size() end, 'Dataset.size', 'ds:size(...)')
    clear(function() ms.nn.Linear.forward(ms.nn.Linear, x) end, 'Linear.forward', 'called on')
  end)

  it('a misspelt name in a sub-package is an error naming it', function()
    clear(function() local r = ms.nn.Linaer(3, 2); return r end, 'ms.nn', '"Linaer"', 'Linear')
    clear(function() local r = ms.optim.sgd(); return r end, 'ms.optim', 'SGD')
    clear(function() local r = ms.data.Datset(); return r end, 'ms.data', 'Dataset')
    clear(function() local r = ms.metrics.acc(); return r end, 'ms.metrics', '"acc"')
    clear(function() local r = ms.cuda.available(); return r end, 'ms.cuda', '"available"')
    assert.is_nil(ms.nn[1])               -- generic probes still read nil
    assert.is_nil(ms.nn.__name)
  end)

  it('nn.functional exports only functions that name themselves', function()
    for _, k in ipairs { 'protect', 'alloc', 'buffer', '_protect', '_alloc', '_buffer' } do
      assert.is_nil(rawget(ms.nn.functional, k), 'nn.functional.' .. k .. ' is reachable')
    end
    clear(function() ms.nn.functional.one_hot(ms.rand(1), 'x', ms.rand(2)) end, 'one_hot', 'classes')
  end)
end)
