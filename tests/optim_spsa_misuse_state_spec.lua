-- optim.SPSA under misuse (2/2): state()/load_state() resume bit for bit in every update
-- rule, memory mode and extra, hostile states, the model moving between steps,
-- step(input, target) with bad data, lists / sets / unbound optimizers, presets with
-- overrides, opt:get / opt.gains / info. Part 1: optim_spsa_misuse_spec.lua.
local ms = require 'moonstep'
local nn = ms.nn
local optim = ms.optim
local H = require 'helper'
local T = require 'spsa_misuse_helper'
local mlp, data, crit, closure_for, w4, quad, refused, unpatched, has_nonfinite, mezo_ok, same_bits =
  T.mlp, T.data, T.crit, T.closure_for, T.w4, T.quad, T.refused, T.unpatched, T.has_nonfinite, T.mezo_ok, T.same_bits

---------------------------------------------------------------------------------------
describe('SPSA state()/load_state(): resume bit for bit', function()
  local cases = {
    { update = 'sgd' }, { update = 'sign' }, { update = 'spsa_gc' }, { update = 'adam' },
    { update = 'adam', memory = 'materialized' }, { update = 'adam', memory = 'virtual' },
    { memory = 'virtual', n = 2 }, { restore = 'subtract' },
    { calibrate = true }, { blocking = true }, { blocking = true, allowed_increase = 0.01 },
    { average_from = 2 }, { second_order = true, memory = 'materialized' },
    { second_order = true, memory = 'materialized', hessian_delay = 2, dtype = 'float64' },
    { dist = 'segmented_uniform', n = 3 }, { dist = 'gaussian', diff = 'forward' },
    { gain_unit = 'epoch', steps_per_epoch = 2, alpha = 0.6, gamma = 0.1 },
    { update = 'spsa_gc', gc_reset = 'first_epoch', steps_per_epoch = 2 }, { trust_region = true },
    { criterion = crit, memory = 'materialized', xy = true },
    { criterion = crit, memory = 'materialized', batched = false, xy = true },
    { base = 'adam' }, { update = 'adam', dtype = 'float64' },
    { update = 'mezo', weight_decay = 0.01, mezo = true }, { update = 'mezo', memory = 'virtual', mezo = true },
    { update = 'mezo', restore = 'subtract', mezo = true },
  }
  for _, c in ipairs(cases) do
    local desc = {}
    for k, v in pairs(c) do desc[#desc + 1] = k .. '=' .. tostring(v) end
    table.sort(desc)
    it('resumes ' .. table.concat(desc, ', '), function()
      if c.mezo and not mezo_ok() then pending('update = mezo is being changed') return end
      local function make(resumed)
        local cfg = {}
        for k, v in pairs(c) do if k ~= 'xy' and k ~= 'dtype' and k ~= 'mezo' then cfg[k] = v end end
        if cfg.base then cfg.base = optim.Adam { lr = 1e-2 } end
        local m = mlp(c.dtype)
        -- the run draws its seed; the resumed one is given another: the state brings the run's
        if resumed then cfg.seed = 987654 end
        return m, optim.SPSA(m, cfg)
      end
      local x, y = data()
      local function go(m, o)
        local xx = x:to(m:flat_parameters().dtype)
        if c.xy then return o:step(xx, y) end
        return o:step(function() return crit:forward(m:forward(xx), y) end)
      end
      local m1, o1 = make()
      for _ = 1, 3 do go(m1, o1) end
      local st, w = o1:state(), m1:flat_parameters():clone()
      for _ = 1, 3 do go(m1, o1) end
      local m2, o2 = make(true)
      m2:flat_parameters():copy_(w)
      o2:load_state(st)
      for _ = 1, 3 do go(m2, o2) end
      same_bits(m2:flat_parameters(), m1:flat_parameters(), 'resumed weights')
      assert.equal(o1.t, o2.t)
      assert.equal(o1.skipped, o2.skipped)
      assert.equal(o1.passes, o2.passes)
      if c.average_from then same_bits(o2:averaged(), o1:averaged(), 'average') end
      if c.calibrate then assert.same(o1.gains, o2.gains) end
      if c.blocking then assert.equal(o1.blocked, o2.blocked) end
    end)
  end

  it('resumes a seeded run in virtual mode and a virtual one in seeded mode (same directions)', function()
    for _, pair in ipairs { { 'seeded', 'virtual' }, { 'virtual', 'materialized' } } do
      local m1 = mlp()
      local o1 = optim.SPSA(m1, { memory = pair[1], n = 2 })
      for _ = 1, 2 do o1:step(closure_for(m1)) end
      local st, w = o1:state(), m1:flat_parameters():clone()
      for _ = 1, 2 do o1:step(closure_for(m1)) end
      local m2 = mlp()
      m2:flat_parameters():copy_(w)
      local o2 = optim.SPSA(m2, { memory = pair[2], n = 2, seed = 987654 })
      o2:load_state(st)
      for _ = 1, 2 do o2:step(closure_for(m2)) end
      H.assert_close(m2:flat_parameters(), m1:flat_parameters(), 1e-6)
    end
  end)

  it('a state() after a skipped step resumes with the same direction keys', function()
    local function run(resume)
      local w = w4()
      local sq = quad { w }
      local opt = optim.SPSA({ w }, { seed = 4, a = 0.1 })
      local calls = 0
      opt:step(function() calls = calls + 1; if calls == 1 then return 0 / 0 end; return sq() end)
      opt:step(sq)
      if resume then
        local s = opt:state()
        local w2 = w:clone()
        opt = optim.SPSA({ w2 }, {})
        opt:load_state(s)
        w, sq = w2, quad { w2 }
      end
      opt:step(sq)
      return w
    end
    same_bits(run(true), run(false))
  end)
end)

describe('SPSA load_state: hostile states are refused before anything changes', function()
  local function base_state()
    local w = w4()
    local opt = optim.SPSA({ w }, { blocking = true, average_from = 1, seed = 5 })
    opt:step(quad { w }); opt:step(quad { w })
    return opt:state()
  end
  local function copy(t)
    if type(t) ~= 'table' or ms.is_tensor(t) then return t end
    local o = {}
    for k, v in pairs(t) do o[k] = copy(v) end
    return o
  end
  local muts = {
    { 'extra missing', function(s) s.extra = nil end, 'state.extra is nil' },
    { 'extra a number', function(s) s.extra = 5 end, 'state.extra is 5' },
    { 'seed a string', function(s) s.extra.seed = 'x' end, 'state.extra.seed is "x"' },
    { 'seed nan', function(s) s.extra.seed = 0 / 0 end, 'state.extra.seed is nan' },
    { 'fx nan', function(s) s.extra.fx = 0 / 0 end, 'state.extra.fx is nan' },
    { 'fx inf', function(s) s.extra.fx = math.huge end, 'state.extra.fx is inf' },
    { 'allowed nan', function(s) s.extra.allowed = 0 / 0 end, 'state.extra.allowed is nan' },
    { 'blocked negative', function(s) s.extra.blocked = -1 end, 'state.extra.blocked is -1' },
    { 'averaged fractional', function(s) s.extra.averaged = 1.5 end, 'state.extra.averaged is 1.5' },
    { 'calibrated a number', function(s) s.extra.calibrated = 1 end, 'state.extra.calibrated is 1' },
    { 'a Hessian without second_order', function(s) s.extra.hessian = { count = 1 } end, 'second_order' },
    { 'hyper a nan', function(s) s.hyper.a = 0 / 0 end, 'state.hyper.a is nan' },
    { 'hyper lr', function(s) s.hyper.lr = 0.1 end, '"lr"' },
    { 'average of another shape', function(s) s.buffers.average = ms.zeros(3) end, 'average' },
    { 't nan', function(s) s.t = 0 / 0 end, 'state.t is nan' },
    { 'skipped negative', function(s) s.skipped = -1 end, 'state.skipped is -1' },
    { 'another arena size', function(s) s.numel = 3 end, 'arena of 3' },
    { 'another optimizer', function(s) s.optimizer = 'SGD' end, 'optim.SGD' },
  }
  for _, mu in ipairs(muts) do
    it('refuses a state with ' .. mu[1] .. ', the optimizer unchanged', function()
      local s = copy(base_state())
      mu[2](s)
      local w = w4()
      local opt = optim.SPSA({ w }, { blocking = true, average_from = 1, seed = 9 })
      opt:step(quad { w })
      local before = opt:state()
      refused(function() opt:load_state(s) end, 'SPSA.load_state', mu[3])
      local after = opt:state()
      assert.same(before.extra, after.extra)
      assert.equal(before.t, after.t)
      same_bits(after.buffers.average, before.buffers.average)
    end)
  end

  it('refuses states of other optimizers and other update rules', function()
    local w = w4()
    refused(function() optim.SPSA({ w }, {}):load_state(optim.SGD({ w }, { lr = 0.1 }):state()) end, 'optim.SGD')
    local a = optim.SPSA({ w }, { update = 'adam' })
    a:step(quad { w })
    refused(function() optim.SPSA({ w4() }, { update = 'sgd' }):load_state(a:state()) end, 'optim.Adam')
    local s = optim.SPSA({ w }, { second_order = true, memory = 'materialized' })
    s:step(quad { w })
    refused(function() optim.SPSA({ w4() }, {}):load_state(s:state()) end, 'second_order')
    refused(function() optim.SPSA({ w4() }, {}):load_state('x') end, 'state is "x"')
    refused(function() optim.SPSA({ w4() }, {}):load_state(nil) end, 'state is nil')
    local bad = s:state()
    bad.extra.hessian.mean:fill_(0 / 0)
    refused(function() optim.SPSA({ w4() }, { second_order = true, memory = 'materialized' }):load_state(bad) end, 'non-finite')
  end)

  it('a state whose average buffer is missing but extra.averaged = 2 is refused', function()
    local s = base_state()
    s.buffers.average = nil
    local w = w4()
    local opt = optim.SPSA({ w }, { blocking = true, average_from = 1 })
    local ok = pcall(opt.load_state, opt, s)
    if ok then
      opt:step(quad { w })
      -- after one more step with count 3, an honest average is never 1/3 of w
      local avg = opt:averaged()
      local r = avg:get(1) / w:get(1)
      assert(math.abs(r - 1 / 3) > 1e-6, 'the average restarted from zeros with a count of 2')
    end
  end)

  it('a 2-SPSA state moves with the model: a float32 Hessian loads into a float64 run', function()
    local w = w4('float32')
    local a = optim.SPSA({ w }, { second_order = true, memory = 'materialized', seed = 2 })
    a:step(quad { w })
    local w2 = w4()
    local b = optim.SPSA({ w2 }, { second_order = true, memory = 'materialized' })
    b:load_state(a:state())
    b:step(quad { w2 })
    assert.is_false(has_nonfinite(w2))
  end)
end)

describe('SPSA when the model moves between steps (float64)', function()
  for _, mem in ipairs { 'seeded', 'materialized', 'virtual' } do
    it(mem .. ': steps on after model:double(), the average follows', function()
      local m = mlp()
      local opt = optim.SPSA(m, { memory = mem, n = 2, seed = 3, average_from = 1 })
      opt:step(closure_for(m))
      m:double()
      opt:step(closure_for(m))
      assert.equal(2, opt.t)
      assert.equal('float64', opt:averaged().dtype)
      unpatched(m)
    end)
  end
  it('materialized with own directions follows the dtype', function()
    local m = mlp()
    local opt = optim.SPSA(m, { memory = 'materialized', seed = 3, directions = function(_, _, u) u:fill_(1) end })
    opt:step(closure_for(m))
    m:double()
    opt:step(closure_for(m))
    assert.equal(2, opt.t)
  end)
  it("2-SPSA: after model:double() the Hessian follows the arena's dtype", function()
    local m = mlp()
    local opt = optim.SPSA(m, { memory = 'materialized', second_order = true, seed = 3 })
    opt:step(closure_for(m))
    m:double()
    opt:step(closure_for(m))
    assert.equal(2, opt.t)
  end)
end)

---------------------------------------------------------------------------------------
describe('SPSA step(input, target)', function()
  for _, batched in ipairs { true, false } do
    local function make(extra)
      local m = mlp()
      local c = { criterion = crit, memory = 'materialized', batched = batched, n = 2, seed = 3 }
      for k, v in pairs(extra or {}) do c[k] = v end
      return m, optim.SPSA(m, c)
    end
    local bad = {
      { 'inputs of the wrong width', function(x, y) return ms.randn({ 8, 7 }), y end, '[8,7]' },
      { 'targets of the wrong length', function(x) return x, ms.tensor({ 1, 2 }, { dtype = 'int64' }) end, '[2]' },
      { 'float targets', function(x) return x, ms.tensor({ 1, 2, 3, 1, 2, 3, 1, 2 }) end, 'float32' },
      { 'a target out of range', function(x) return x, ms.tensor({ 1, 2, 3, 1, 2, 3, 1, 9 }, { dtype = 'int64' }) end, '9' },
      { 'a target 0 (1-based classes)', function(x) return x, ms.tensor({ 0, 2, 3, 1, 2, 3, 1, 2 }, { dtype = 'int64' }) end, '0' },
      { 'a table as target', function(x) return x, { 1, 2, 3 } end, 'table' },
      { 'float64 inputs to a float32 model', function(x, y) return x:double(), y end, 'float64' },
    }
    for _, b in ipairs(bad) do
      it(('batched = %s: %s is a clear error, weights exact'):format(tostring(batched), b[1]), function()
        local m, opt = make()
        local w0 = m:flat_parameters():clone()
        local x, y = b[2](data())
        H.assert_error(function() opt:step(x, y) end, b[3])
        same_bits(m:flat_parameters(), w0)
        assert.equal(0, opt.t)
      end)
    end
    it(('batched = %s: a missing target, NaN inputs'):format(tostring(batched)), function()
      local m, opt = make()
      local x = data()
      refused(function() opt:step(x) end, 'SPSA.step', 'target is missing')
      local w0 = m:flat_parameters():clone()
      local _, info = opt:step(x:clone():fill_(0 / 0), select(2, data()))
      assert.is_true(info.skipped)
      same_bits(m:flat_parameters(), w0)
    end)
    it(('batched = %s: info.passes = the models evaluated, opt.passes counts them'):format(tostring(batched)), function()
      local _, opt = make()
      local _, info = opt:step(data())
      assert.equal(4, info.passes)
      assert.equal(4, #info.losses)
      assert.equal(4, opt.passes)
    end)
  end

  it('batched errors name SPSA.step (the function the user called)', function()
    local m = mlp()
    local opt = optim.SPSA(m, { criterion = crit, memory = 'materialized', batched = true })
    local x = data()
    refused(function() opt:step(x, ms.tensor({ 1, 2 }, { dtype = 'int64' })) end, 'SPSA.step')
  end)

  it('step(closure) on an optimizer with a criterion and batched evaluates through the closure', function()
    -- found by tests/fuzz/api_misuse.lua --seed 6: spsa_sample.lua: attempt to index field '_data'
    for _, first in ipairs { false, true } do
      local m = mlp()
      local w0 = m:flat_parameters():clone()
      local opt = optim.SPSA(m, { criterion = crit, memory = 'materialized', n = 2, seed = 3, a = 0 })
      if first then opt:step(data()) end
      local ok, err = pcall(opt.step, opt, closure_for(m))
      if not ok then
        assert(not tostring(err):find('attempt to', 1, true), 'raw Lua error: ' .. tostring(err))
        assert(tostring(err):find('SPSA.step', 1, true), tostring(err))
      end
      same_bits(m:flat_parameters(), w0)
    end
  end)

  it('step(input, target, extra) is refused', function()
    local m = mlp()
    local opt = optim.SPSA(m, { criterion = crit, memory = 'materialized' })
    local x, y = data()
    refused(function() opt:step(x, y, 3) end, 'SPSA.step')
  end)

  it('refuses step(closure, target), step(x, y) without a criterion or on a list of tensors', function()
    local m = mlp()
    local x, y = data()
    refused(function() optim.SPSA(m, {}):step(function() return 1 end, y) end, 'SPSA.step', 'step(closure)')
    refused(function() optim.SPSA(m, {}):step(x, y) end, 'SPSA.step', 'criterion')
    refused(function() optim.SPSA({ w4() }, { criterion = crit }):step(x, y) end, 'SPSA.step', 'list of tensors')
  end)

  it('a model batched evaluation cannot take: refused when batched = true, closures when defaulted', function()
    ms.manual_seed(1)
    local m = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Linear(5, 3))
    local x, y = data()
    local w0 = m:flat_parameters():clone()
    H.assert_error(function()
      optim.SPSA(m, { criterion = crit, memory = 'materialized', batched = true }):step(x, y)
    end, 'BatchNorm1d', 'not supported')
    same_bits(m:flat_parameters(), w0)
    local opt = optim.SPSA(m, { criterion = crit, memory = 'materialized' })
    local _, info = opt:step(x, y)
    assert.is_false(opt._zo.batched)
    assert.equal(2, info.passes)
  end)

  it('batched and separate evaluations agree (losses to float tolerance)', function()
    local x, y = data()
    local ma, mb = mlp(), mlp()
    local oa = optim.SPSA(ma, { criterion = crit, memory = 'materialized', batched = true, n = 3, seed = 8 })
    local ob = optim.SPSA(mb, { criterion = crit, memory = 'materialized', batched = false, n = 3, seed = 8 })
    local _, ia = oa:step(x, y)
    local _, ib = ob:step(x, y)
    for i = 1, 6 do assert.near(ib.losses[i], ia.losses[i], 1e-5) end
  end)

  it('per_example returns an [m, B] tensor with batched, and is refused without', function()
    local m = mlp()
    local x, y = data()
    local _, info = optim.SPSA(m, { criterion = crit, memory = 'materialized', batched = true, n = 2, per_example = true }):step(x, y)
    assert.same({ 4, 8 }, info.per_example:shape())
    refused(function() optim.SPSA(m, { criterion = crit, memory = 'materialized', batched = false, per_example = true }) end, 'per_example')
  end)
end)

---------------------------------------------------------------------------------------
describe('SPSA on lists, sets, unbound optimizers, float32 / float64', function()
  it('a list of two float32 tensors and an ms.params set step', function()
    local a, b = ms.randn(3), ms.randn({ 2, 2 })
    local opt = optim.SPSA({ a, b }, { seed = 1, memory = 'materialized', a = 0.1 })
    local a0, b0 = a:clone(), b:clone()
    opt:step(quad { a, b })
    assert.equal(1, opt.t)
    assert(not pcall(same_bits, a, a0) or not pcall(same_bits, b, b0), 'nothing moved')
    local c = ms.randn(3)
    local P = ms.params({ c })
    local o2 = optim.SPSA(P, { seed = 1 })
    o2:step(quad { c })
    assert.equal(1, o2.t)
  end)

  it('unbound then bind equals bound at construction; unbound use is refused clearly', function()
    local a = ms.tensor({ 1, 2, 3 }, { dtype = 'float64' })
    local b = a:clone()
    local o1 = optim.SPSA({ a }, { seed = 3, n = 2 })
    local o2 = optim.SPSA { seed = 3, n = 2 }
    refused(function() o2:step(quad { b }) end, 'SPSA.step', 'not bound')
    refused(function() o2:state() end, 'SPSA.state', 'not bound')
    o2:bind({ b })
    o1:step(quad { a }); o2:step(quad { b })
    same_bits(a, b)
    refused(function() o2:bind({ b }) end, 'SPSA.bind', 'already bound')
  end)

  it('unbound with a criterion decides batched at bind', function()
    local m = nn.Sequential(nn.Linear(6, 3))
    local o = optim.SPSA { criterion = crit, memory = 'materialized' }
    o:bind(m)
    assert.is_true(o._zo.batched)
  end)

  it('float32 and float64 models give the same trajectory to float32 precision', function()
    local m32, m64 = mlp(), mlp('float64')
    local o32 = optim.SPSA(m32, { seed = 2, a = 0.05, c = 0.01 })
    local o64 = optim.SPSA(m64, { seed = 2, a = 0.05, c = 0.01 })
    for _ = 1, 3 do o32:step(closure_for(m32)); o64:step(closure_for(m64)) end
    H.assert_close(m32:flat_parameters(), m64:flat_parameters():float(), 1e-4)
  end)

  it('misuse of the call forms is named', function()
    local w = w4()
    local opt = optim.SPSA({ w }, {})
    refused(function() opt:step() end, 'SPSA.step', 'closure is nil')
    refused(function() opt:step(5) end, 'SPSA.step', 'closure is 5')
    refused(function() opt:apply() end, 'SPSA.apply')
    refused(function() opt() end, 'not callable')
    refused(function() opt.step(quad { w }) end, 'colon')
    refused(function() opt:averaged() end, 'SPSA.averaged', 'average_from')
  end)
end)

describe('SPSA presets with overrides', function()
  it('refuses bad names and overrides, with the preset named', function()
    refused(function() optim.SPSA.preset('foo') end, 'SPSA.preset', 'name is "foo"', 'mezo')
    refused(function() optim.SPSA.preset() end, 'SPSA.preset', 'name is nil')
    refused(function() optim.SPSA.preset('mezo', 'x') end, 'SPSA.preset', 'overrides is "x"')
    refused(function() optim.SPSA.preset('spall', { maxiter = -1 }) end, 'overrides.maxiter is -1')
    refused(function() optim.SPSA({ w4() }, optim.SPSA.preset('mezo', { bogus = 1 })) end, 'unknown option "bogus"')
    refused(function() optim.SPSA({ w4() }, optim.SPSA.preset('mezo', { maxiter = 10 })) end, 'maxiter')
    refused(function() optim.SPSA({ w4() }, optim.SPSA.preset('seed')) end, 'steps_per_epoch')
    refused(function() optim.SPSA({ w4() }, optim.SPSA.preset('qiskit', { a = 0.5 })) end, 'calibrate')
    refused(function() optim.SPSA({ w4() }, optim.SPSA.preset('mezo', { n = 0 })) end, 'n is 0')
  end)

  it('overrides win (lr replaces the preset a), presets are copies', function()
    local o = optim.SPSA({ w4() }, optim.SPSA.preset('seed', { lr = 0.5, steps_per_epoch = 2 }))
    assert.equal(0.5, o.a)
    local p = optim.SPSA.preset('zeroth_learn')
    p.betas[1] = 0.1
    assert.equal(0.9, optim.SPSA.preset('zeroth_learn').betas[1])
    local w = w4()
    local o2 = optim.SPSA({ w }, optim.SPSA.preset('zeroth_learn', { memory = 'seeded', n = 3 }))
    local _, info = o2:step(quad { w })
    assert.equal(4, info.passes)
    assert.equal('seeded', o2._zo.memory)
  end)

  it("a preset overridden with base = optimizer drops the preset's update rule", function()
    local o = optim.SPSA({ w4() }, optim.SPSA.preset('blackvip', { base = optim.SGD { lr = 0.1 } }))
    assert.equal('base', o._zo.update)
  end)

  it("the mezo preset overridden with betas (Adam's) is refused", function()
    if not mezo_ok() then return end
    refused(function() optim.SPSA({ w4() }, optim.SPSA.preset('mezo', { betas = { 0.5, 0.5 } })) end, 'betas')
  end)
end)

---------------------------------------------------------------------------------------
describe('SPSA get, gains and info', function()
  it('get returns the value in force; unknown names and groups are refused', function()
    local w = w4()
    local opt = optim.SPSA({ w }, { lr = 0.5, c = function(t) return 0.1 / t end })
    assert.equal(0.5, opt:get('a'))
    assert.equal(0.1, opt:get('c'))
    refused(function() opt:get('n') end, 'SPSA.get', '"n"')
    refused(function() opt:get('a', 2) end, 'SPSA.get', 'group is 2')
    opt:step(function() return w:get(1) end)
    assert.equal(0.5, opt.gains.a)
    assert.equal(0.1, opt.gains.c)
    opt:step(function() return w:get(1) end)
    assert.equal(0.05, opt.gains.c)
    assert.equal(0.05, opt:get('c'))
  end)

  it("get('lr') reads a (lr is its alias)", function()
    local opt = optim.SPSA({ w4() }, { lr = 0.5 })
    assert.equal(0.5, opt:get('lr'))
  end)

  it('a skipped step returns the non-finite loss and info.losses, whatever skipped it', function()
    for _, c in ipairs { {}, { calibrate = true }, { blocking = true } } do
      local w = w4()
      local loss, info = optim.SPSA({ w }, c):step(function() return 0 / 0 end)
      assert.is_true(info.skipped)
      assert.equal('table', type(info.losses))
      assert.equal('number', type(loss))
      assert.equal(tostring(loss), tostring(info.loss))
    end
  end)

  it('info: a, c, losses, passes, loss consistent with the gains in every diff mode', function()
    for _, c in ipairs {
      { diff = 'central', n = 2 }, { diff = 'forward', n = 3 }, { blocking = true }, { calibrate = true },
      { second_order = true, memory = 'materialized' }, { n = 2, blocking = true, allowed_increase = 1 },
    } do
      local w = w4()
      local calls = 0
      local sq = quad { w }
      local f = function() calls = calls + 1; return sq() end
      c.a, c.c, c.A, c.alpha, c.gamma = (not c.calibrate) and 0.1 or nil, (not c.calibrate) and 0.01 or nil, nil, nil, nil
      local opt = optim.SPSA({ w }, c)
      local total = 0
      for k = 1, 3 do
        local before = calls
        local loss, info = opt:step(f)
        assert.equal(calls - before, info.passes)
        total = total + info.passes
        local g = opt.gains
        assert.near(g.a / (g.A + k) ^ g.alpha, info.a, 1e-15 * info.a)
        assert.near(g.c / k ^ g.gamma, info.c, 1e-15 * info.c)
        assert.equal(loss, info.loss)
        if c.diff == 'forward' then assert.equal(info.losses[1], info.loss) end
        assert.is_true(info.updated)
        assert.is_false(info.skipped)
        assert.equal(k, opt.t)
      end
      assert.equal(calls, opt.passes)
      assert.equal(calls, total)
    end
  end)
end)
