-- The optimizer engine's own mechanisms (lua/moonstep/optim/Optimizer.lua and friends):
-- parameter groups through the slice table, hyper-parameters read with get, the pass
-- policies (BatchNorm statistics, RNG replay), clipping, the deterministic arena
-- reductions, state for a moved model. The per-optimizer contract is in
-- optim_contract_spec.lua, the PyTorch trajectories in optim_classics_spec.lua.
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim
local reduce = require 'moonstep.optim.reduce'
local slices = require 'moonstep.optim.slices'
local H = require 'helper'

local same = H.same_bits

-- A model and a fixed batch; closure(model) runs forward and backward.
local function mlp(seed, dtype)
  ms.manual_seed(seed or 1)
  local model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
  local x = H.random_tensor({ 8, 4 }, 7)
  if dtype then model:to(dtype); x = x:to(dtype) end
  local y0 = ms.tensor({ 1, 2, 3, 1, 2, 3, 1, 2 }, { dtype = 'int64' })
  local crit = nn.CrossEntropyLoss()
  local function closure()   -- follows the model to another dtype
    local flat = model:flat_parameters()
    local xi = x:to(flat.dtype, flat.device)
    local y = y0:to('int64', flat.device)
    local out = model:forward(xi)
    local loss = crit:forward(out, y)
    model:backward(xi, crit:backward(out, y))
    return loss
  end
  return model, closure
end

describe('parameter groups', function()
  it('a group runs with its own hyper-parameters, bit for bit as a separate optimizer would', function()
    -- one Adam with groups over the model = one Adam per part with those values
    local model, closure = mlp()
    local opt = optim.Adam(model, { lr = 0.01, weight_decay = 0.1,
                                    groups = { { match = 'bias', weight_decay = 0, lr = 0.03 },
                                               { match = '^3%.', lr_scale = 0.5 } } })
    local ref, rclosure = mlp()
    local rg = ref:flat_gradients()   -- the reference model's gradient arena
    local p = ref:parameters()        -- 1.weight [20], 1.bias [5], 3.weight [15], 3.bias [3]
    local w1, biases, w3 = ms.params { p[1] }, ms.params { p[2], p[4] }, ms.params { p[3] }
    local o1 = optim.Adam(w1, { lr = 0.01, weight_decay = 0.1 })
    local ob = optim.Adam(biases, { lr = 0.03, weight_decay = 0 })
    local o3 = optim.Adam(w3, { lr = 0.005, weight_decay = 0.1 })
    for _ = 1, 5 do
      opt:step(closure)
      rg:zero_()
      rclosure()
      w1:flat_gradients():copy_(rg:narrow(1, 1, 20))
      biases:flat_gradients():narrow(1, 1, 5):copy_(rg:narrow(1, 21, 5))
      w3:flat_gradients():copy_(rg:narrow(1, 26, 15))
      biases:flat_gradients():narrow(1, 6, 3):copy_(rg:narrow(1, 41, 3))
      o1:step(); ob:step(); o3:step()
    end
    local mine = model:parameters()
    local theirs = { w1.params[1], biases.params[1], w3.params[1], biases.params[2] }
    for i = 1, 4 do same(mine[i], theirs[i], 'parameter ' .. i) end
    assert.equal(0.005, opt:get('lr', 3))
    assert.equal(0.03, opt:get('lr', 2))
    assert.equal(0.01, opt:get('lr'))
  end)

  it('match tests names and kinds; kind restricts; the first matching group wins', function()
    local model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    local opt = optim.SGD(model, { lr = 0.1, groups = { { match = 'bias|norm', weight_decay = 0 },
                                                         { kind = 'weight', lr = 0.2 } } })
    local group_of = {}
    for s = 0, opt.table.nslices - 1 do group_of[#group_of + 1] = opt.table.slices[s].group end
    -- 1.weight 1.bias 2.weight(norm) 2.bias(norm) 3.weight 3.bias
    assert.same({ 2, 1, 1, 1, 2, 1 }, group_of)
  end)

  it('refuses malformed groups, naming the group and the key', function()
    local model = mlp()
    H.assert_error(function() optim.SGD(model, { groups = { { match = 'bias', learning_rate = 1 } } }) end,
                   'SGD: groups[1]: unknown option "learning_rate"')
    H.assert_error(function() optim.SGD(model, { groups = { { match = 'conv' } } }) end,
                   'groups[1]', 'matches no parameter', '1.weight')
    H.assert_error(function() optim.SGD(model, { groups = { { lr = 1 } } }) end, 'groups[1] has neither match nor kind')
    H.assert_error(function() optim.SGD(model, { groups = { { match = '[' } } }) end, 'not a valid Lua pattern')
    H.assert_error(function() optim.SGD(model, { groups = { { match = 'bias', lr = -1 } } }) end, 'groups[1].lr', '-1')
    H.assert_error(function() optim.SGD(model, { groups = { { kind = 'conv' } } }) end, "groups[1].kind", "'bias'")
    H.assert_error(function() optim.SGD(model, { groups = 5 }) end, 'groups is 5')
  end)
end)

describe('hyper-parameters', function()
  it('get reads the value in force: the step being taken, else the last one, else step 1', function()
    local model, closure = mlp()
    local seen = {}
    local opt = optim.SGD(model, { lr = function(t) return 0.1 / t end })
    assert.equal(0.1, opt:get('lr'))
    opt:step(function() seen[#seen + 1] = opt:get('lr'); return closure() end)
    opt:step(function() seen[#seen + 1] = opt:get('lr'); return closure() end)
    assert.same({ 0.1, 0.05 }, seen)
    assert.equal(0.05, opt:get('lr'))
    H.assert_error(function() opt:get('learning_rate') end, 'SGD.get', 'learning_rate', 'lr, ')
    H.assert_error(function() opt:get('lr', 2) end, 'SGD.get', 'group')
  end)

  it('accepts any callable: an object with __call works like a function', function()
    local model, closure = mlp()
    local sched = setmetatable({}, { __call = function(_, t) return t <= 2 and 0.1 or 0.01 end })
    local opt = optim.SGD(model, { lr = sched })
    for _ = 1, 3 do opt:step(closure) end
    assert.equal(0.01, opt:get('lr'))
  end)
end)

describe('pass policies', function()
  it("bn = 'freeze' leaves BatchNorm's running statistics alone, and restores the flags", function()
    ms.manual_seed(3)
    local model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    local x = H.random_tensor({ 6, 3 }, 5)
    local opt = optim.SGD(model, { lr = 0.1 })
    local function closure()
      local out = model:forward(x)
      model:backward(x, ms.ones_like(out))
      return out:sum()
    end
    local bn = model.modules[2]
    local before = bn.running_mean:clone()
    opt:evaluate(closure, { bn = 'freeze' })
    same(before, bn.running_mean, 'running mean after a frozen pass')
    assert.is_true(bn.update_stats)
    opt:evaluate(closure)
    assert.is_true((bn.running_mean - before):abs():max() > 0)
    bn.update_stats = false             -- a user's own setting survives a frozen pass
    opt:evaluate(closure, { bn = 'freeze' })
    assert.is_false(bn.update_stats)
    bn.update_stats = true
    pcall(opt.evaluate, opt, function() error('boom') end, { bn = 'freeze' })
    assert.is_true(bn.update_stats)     -- restored after an error too
  end)

  it("rng = 'replay' draws the recorded pass's dropout masks again", function()
    ms.manual_seed(4)
    local model = nn.Sequential(nn.Linear(6, 6), nn.Dropout(0.5))
    local x = H.random_tensor({ 4, 6 }, 9)
    local opt = optim.SGD(model, { lr = 0.1 })
    local outs = {}
    local function closure(pass)
      local out = model:forward(x)
      outs[pass] = out:clone()
      model:backward(x, ms.ones_like(out))
      return out:sum()
    end
    opt:evaluate(closure, { pass = 1 })
    opt:evaluate(closure, { pass = 2, rng = 'replay' })
    same(outs[1], outs[2], 'the replayed pass')
    opt:evaluate(closure, { pass = 3, rng = 'none' })
    assert.is_true((outs[3] - outs[1]):abs():max() > 0)
    local fresh = optim.SGD(model, { lr = 0.1 })
    H.assert_error(function() fresh:evaluate(closure, { rng = 'replay' }) end, 'SGD.evaluate', 'no pass recorded')
    H.assert_error(function() fresh:evaluate(closure, { rng = 'again' }) end, 'SGD.evaluate', 'pass.rng')
    H.assert_error(function() fresh:evaluate(closure, { passes = 2 }) end, 'unknown option "passes"')
  end)
end)

describe('clipping', function()
  local function setup(config)
    local w = ms.tensor({ 3, 4, 0, 0 })
    local b = ms.tensor({ 12 })
    local set = require('moonstep.params').build({ { name = 'w', param = w }, { name = 'b', param = b, kind = 'bias' } })
    local opt = optim.SGD(set, config)
    local function closure()
      set:flat_gradients():copy_(ms.tensor({ 3, 4, 0, 0, 12 }))
      return 0
    end
    return set, opt, closure
  end

  it('clip_norm scales the gradients to the global norm, as clip_grad_norm_', function()
    local set, opt, closure = setup({ lr = 1, clip_norm = 1 })
    opt:step(closure)    -- norm 13: g * 1 / (13 + 1e-6)
    local c = 1 / (13 + 1e-6)
    H.assert_close(set:flat_parameters(), { 3 - 3 * c, 4 - 4 * c, 0, 0, 12 - 12 * c }, 1e-6)
  end)

  it('clip_tensor_norm caps each tensor, clip_value each element', function()
    local set, opt, closure = setup({ lr = 1, clip_tensor_norm = 5 })
    opt:step(closure)    -- w's norm 5 stays; b's 12 becomes 5
    H.assert_close(set:flat_parameters(), { 0, 0, 0, 0, 12 - 5 / (12 + 1e-6) * 12 }, 1e-5)
    local set2, opt2, closure2 = setup({ lr = 1, clip_value = 3.5 })
    opt2:step(closure2)
    H.assert_close(set2:flat_parameters(), { 0, 0.5, 0, 0, 8.5 }, 1e-6)
    H.assert_error(function() setup({ clip_norm = 0 }) end, 'SGD: clip_norm is 0', '> 0')
  end)
end)

describe('arena reductions', function()
  it('give the same bits whatever the thread count, and per-slice values that add up', function()
    local n = 300000
    local a = H.random_tensor({ n }, 11)
    local b = H.random_tensor({ n }, 12)
    local set = require('moonstep.params').build({ { name = 'x', param = a:narrow(1, 1, 100000):clone() },
                                                   { name = 'y', param = a:narrow(1, 100001, 200000):clone() } })
    local st = slices.table(set, { 1, 1 }, 1)
    local threads = ms.num_threads and ms.num_threads() or 1
    local results = {}
    for _, nt in ipairs { 1, 2 } do
      if ms.set_num_threads then ms.set_num_threads(nt) end
      results[nt] = { reduce.sumsq('t', a), reduce.dot('t', a, b), select(2, reduce.sum('t', set.flat, st)) }
    end
    if ms.set_num_threads then ms.set_num_threads(threads) end
    assert.equal(results[1][1], results[2][1])
    assert.equal(results[1][2], results[2][2])
    assert.same(results[1][3], results[2][3])
    local total, per = reduce.sumsq('t', set.flat, st)
    assert.near(per[1] + per[2], total, 1e-9 * total)
    assert.near((a:to('float64'):square()):sum(), reduce.sumsq('t', a), 1e-9 * reduce.sumsq('t', a))
    assert.near((a:to('float64') * b:to('float64')):sum(), reduce.dot('t', a, b), 1e-6)
    local bad = ms.tensor({ 1, 0 / 0, 3 })
    local v = reduce.sumsq('t', bad)
    assert.is_true(v ~= v)
  end)
end)

describe('a moved model', function()
  it('state buffers follow the arena to another dtype', function()
    local m1, c1 = mlp(5)
    local opt = optim.Adam(m1, { lr = 0.01 })
    m1:double()
    opt:step(c1)
    local m2, c2 = mlp(5, 'float64')
    local ref = optim.Adam(m2, { lr = 0.01 })
    ref:step(c2)
    same(m1:flat_parameters(), m2:flat_parameters(), 'after :double()')
    assert.equal('float64', opt.buffers.exp_avg.dtype)
  end)
end)

describe('on the GPU', function()
  local gpu = ms.cuda and ms.cuda.is_available()
  it('reductions and grouped steps equal the CPU', function()
    if not gpu then pending('no usable GPU'); return end
    local a = H.random_tensor({ 100003 }, 21)
    local g = a:to('cuda')
    assert.near(reduce.sumsq('t', a), reduce.sumsq('t', g), 1e-6 * reduce.sumsq('t', a))
    local m1, c1 = mlp(6)
    local m2, c2 = mlp(6)
    m2:to('cuda')
    local x1 = optim.Adam(m1, { lr = 0.01, groups = { { match = 'bias', lr = 0.1, weight_decay = 0 } }, clip_tensor_norm = 0.5 })
    local x2 = optim.Adam(m2, { lr = 0.01, groups = { { match = 'bias', lr = 0.1, weight_decay = 0 } }, clip_tensor_norm = 0.5 })
    local function on_gpu() -- the closure of m2 with its batch on the GPU
      return c2()
    end
    for _ = 1, 3 do x1:step(c1); x2:step(on_gpu) end
    H.assert_close(m2:flat_parameters():to('cpu'), m1:flat_parameters(), 1e-5)
  end)
end)

describe('a wrapper built from the pieces', function()
  -- A two-pass wrapper as the SAM family will be: the second pass with BatchNorm frozen
  -- and the RNG replayed, the gradients of both passes averaged, the base applies.
  local Optimizer = require 'moonstep.optim.Optimizer'
  local TwoPass = Optimizer.define('TwoPass', { weight = 0.5 }, { weight = 'unit' }, { wraps = true })
  function TwoPass:_init() self.buffers = { first = ms.zeros_like(self.arena.flat) } end
  function TwoPass:step(closure)
    local loss = self:_evaluate('TwoPass.step', closure, { pass = 1 })
    self.buffers.first:copy_(self.arena.gflat)
    self:_evaluate('TwoPass.step', closure, { pass = 2, bn = 'freeze', rng = 'replay' })
    self.arena.gflat:lerp_(self.buffers.first, 1 - self.weight)
    self.base:_apply('TwoPass.step')
    self.t = self.t + 1
    return loss
  end

  it('binds an unbound base, nests its state, and resumes bit-exactly', function()
    local m1, c1 = mlp(8)
    local w = TwoPass(m1, { base = optim.Adam { lr = 0.01 } })
    assert.equal(m1:flat_parameters():numel(), w.base.arena.flat:numel())
    for _ = 1, 3 do w:step(c1) end
    local saved, params = w:state(), m1:flat_parameters():clone()
    assert.equal('Adam', saved.base.optimizer)
    for _ = 1, 3 do w:step(c1) end
    local m2, c2 = mlp(8)
    m2:flat_parameters():copy_(params)
    local w2 = TwoPass(m2, { base = optim.Adam { lr = 0.01 } })
    w2:load_state(saved)
    assert.equal(3, w2.base.t)
    for _ = 1, 3 do w2:step(c2) end
    same(m1:flat_parameters(), m2:flat_parameters(), 'resumed wrapper')
    H.assert_error(function() TwoPass(m1, {}) end, 'TwoPass: base is missing')
    H.assert_error(function() TwoPass(m1, { base = 5 }) end, 'TwoPass: base is 5', 'optim.Adam{lr = 1e-3}')
    H.assert_error(function() TwoPass(m1, { base = optim.Adam((mlp(9))) }) end, 'bound to other parameters')
    assert.equal(1e-3, TwoPass(m1, { base = optim.Adam }).base.lr)
  end)
end)

describe('schedules in the state', function()
  it("a reduce_on_plateau lr has its state saved with the optimizer's", function()
    local m, c = mlp(10)
    local plateau = ms.schedule.reduce_on_plateau { init = 0.1, patience = 0, factor = 0.5 }
    local opt = optim.SGD(m, { lr = plateau })
    opt:step(c)
    plateau:observe(1.0)
    plateau:observe(2.0)          -- worse: halved
    local s = opt:state()
    local fresh = ms.schedule.reduce_on_plateau { init = 0.1, patience = 0, factor = 0.5 }
    local o2 = optim.SGD((mlp(10)), { lr = fresh })
    o2:load_state(s)
    assert.equal(opt:get('lr'), o2:get('lr'))
    assert.equal(0.05, o2:get('lr'))
    H.assert_error(function() optim.SGD((mlp(10)), { lr = 0.1 }):load_state(s) end,
                   'SGD.load_state', 'schedule of "lr"')
  end)
end)

describe('check_finite', function()
  it('= false skips the gradient scan (the loss is still checked); it cannot go with skip_nonfinite', function()
    local m = mlp(11)
    local opt = optim.SGD(m, { lr = 0.1, check_finite = false })
    opt:step(function() m:flat_gradients():fill_(0 / 0); return 1 end)   -- not scanned: applied
    assert.is_true(m:flat_parameters():get(1) ~= m:flat_parameters():get(1))
    H.assert_error(function() opt:step(function() return 0 / 0 end) end, 'SGD.step', 'the loss is nan')
    H.assert_error(function() optim.SGD(m, { check_finite = false, skip_nonfinite = true }) end,
                   'skip_nonfinite = true needs check_finite')
    H.assert_error(function() optim.SGD(m, { check_finite = 1 }) end, 'SGD: check_finite is 1')
  end)
end)

describe('misuse found in review', function()
  local function two()
    local set = ms.params { ms.tensor({ 1, 2, 3 }, { dtype = 'float64' }), ms.tensor({ 4, 5 }, { dtype = 'float64' }) }
    return set, function() set:flat_gradients():copy_(set:flat_parameters() * 0.5); return 1 end
  end

  it('groups are fixed at bind: growing or replacing them is an error, not a crash', function()
    local set, c = two()
    local o = optim.Adam(set)
    table.insert(o.groups, { match = '1', lr = 0.5 })
    H.assert_error(function() o:step(c) end, 'Adam.step: opt.groups is a list of 1', 'bound with 0 groups')
    o.groups = nil
    H.assert_error(function() o:step(c) end, 'Adam.step: opt.groups is nil')
    local o2 = optim.Adam(set)
    o2.buffers = nil
    H.assert_error(function() o2:step(c) end, 'Adam.step: opt.buffers is nil')
    H.assert_error(function() optim.SGD(set, { groups = { bias = { match = '2' } } }) end, 'groups has the key "bias"')
    H.assert_error(function() optim.SGD(set, { groups = { [1] = { match = '1' }, [3] = { match = '2' } } }) end, 'groups ha')
  end)

  it('load_state resets what the state does not have, and changes nothing when it refuses', function()
    for _, make in ipairs { function(s) return optim.Adam(s, { amsgrad = true }) end,
                            function(s) return optim.SGD(s, { momentum = 0.9 }) end,
                            function(s) return optim.RMSprop(s, { momentum = 0.9, centered = true }) end } do
      local set, c = two()
      local o = make(set)
      local s0, p0 = o:state(), set:flat_parameters():clone()
      for _ = 1, 5 do o:step(c) end
      o:load_state(s0)
      set:flat_parameters():copy_(p0)
      for _ = 1, 5 do o:step(c) end
      local fresh_set, fc = two()
      local fresh = make(fresh_set)
      for _ = 1, 5 do fresh:step(fc) end
      same(fresh_set:flat_parameters(), set:flat_parameters(), o.__name .. ' reloaded from step 0')
    end
    local set, c = two()
    local o = optim.Adam(set, { lr = 0.1 })
    for _ = 1, 3 do o:step(c) end
    local s = o:state()
    s.buffers.exp_avg = s.buffers.exp_avg:view(5, 1)
    s.hyper.lr = 0.5
    local fresh = optim.Adam((two()), { lr = 0.1 })
    H.assert_error(function() fresh:load_state(s) end, 'Adam.load_state: buffer "exp_avg"', 'shape [5]')
    assert.equal(0, fresh.t)
    assert.equal(0.1, fresh.lr)
    s = o:state()
    s.buffers.exp_avg = nil
    H.assert_error(function() fresh:load_state(s) end, 'the state has no buffer "exp_avg"')
    s = o:state()
    s.buffers.foo = s.buffers.exp_avg
    H.assert_error(function() fresh:load_state(s) end, 'holds buffer "foo", which Adam does not have')
  end)

  it('SGD resumes its momentum from a state without extra', function()
    local s1, c1 = two()
    local a = optim.SGD(s1, { lr = 0.1, momentum = 0.9 })
    for _ = 1, 3 do a:step(c1) end
    local s = a:state()
    s.extra = nil
    local s2, c2 = two()
    s2:flat_parameters():copy_(s1:flat_parameters())
    local b = optim.SGD(s2, { lr = 0.1, momentum = 0.9 })
    b:load_state(s)
    for _ = 1, 3 do a:step(c1); b:step(c2) end
    same(s1:flat_parameters(), s2:flat_parameters(), 'resumed without extra')
  end)

  it('apply() checks and clips the gradients as they are when it runs', function()
    local w = ms.tensor({ 0, 0, 3, 4 })
    local set = ms.params { w }
    local o = optim.SGD(set, { lr = 1, clip_norm = 1 })
    o:evaluate(function() set:flat_gradients():copy_(ms.tensor({ 3, 4, 0, 0 })); return 1 end)
    set:flat_gradients():mul_(0.1)      -- norm 0.5 now: no clipping
    o:apply()
    H.assert_close(w, { -0.3, -0.4, 3, 4 }, 1e-6)
    o:evaluate(function() set:flat_gradients():fill_(1); return 1 end)
    set:flat_gradients():fill_(0 / 0)
    H.assert_error(function() o:apply() end, 'SGD.apply', 'non-finite')
    local big = ms.params { ms.tensor({ 1, 2 }, { dtype = 'float64' }) }
    local ob = optim.SGD(big, { lr = 1, clip_norm = 1 })
    ob:step(function() big:flat_gradients():copy_(ms.tensor({ 1e200, 1 }, { dtype = 'float64' })); return 1 end)
    -- not refused as non-finite: the norm overflows to inf and the clipping factor is 0,
    -- as torch.nn.utils.clip_grad_norm_ computes it in float64
    assert.equal(1, big.params[1]:get(1))
  end)

  it('chain.load_state refuses a malformed extra with its name', function()
    local o = optim.chain({ ms.zeros(2) }, optim.scale_by_adam {})
    local s = o:state()
    s.extra.hyper = { 5 }
    H.assert_error(function() o:load_state(s) end, 'chain.load_state: state.extra.hyper[1] is 5')
    H.assert_error(function() optim.SGD({ ms.zeros(2) }):evaluate(function() return 1 end, 5) end,
                   'SGD.evaluate: pass is 5')
  end)
end)
