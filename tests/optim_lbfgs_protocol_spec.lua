-- optim.LBFGS beyond torch's trajectories (optim_lbfgs_spec.lua): the tolerance stops,
-- the history, the closure protocol (BatchNorm, dropout, skips and restores), resume,
-- misuse.
local ms = require 'moonstep'
local H = require 'helper'
local LBFGS = require 'moonstep.optim.LBFGS'
local problems = require 'lbfgs_problems'

local assert_same_bits = H.same_bits

-- a tensor's values as a Lua list (float64, CPU)
local function bits(t)
  local out = {}
  local c = t:to('float64', 'cpu'):contiguous():flatten()
  for i = 1, c:numel() do out[i] = c:get(i) end
  return out
end

describe('LBFGS', function()
  it('stops at the first evaluation when max |g| <= tolerance_grad, without moving', function()
    local set, flat, closure = problems.quadratic('float64')
    local before = flat:clone()
    local opt = LBFGS(set, { tolerance_grad = 1e3 })
    local calls = 0
    local loss, info = opt:step(function(p) calls = calls + 1; return closure(p) end)
    assert.equal(1, calls)
    assert.same({ loss = loss, final = loss, passes = 1, iterations = 0, skipped = false }, info)
    assert_same_bits(before, flat, 'weights after an optimal first evaluation')
    assert.equal(1, opt.t)
    local s = opt:state()
    assert.equal(0, s.extra.n_iter)
    assert.equal(1, s.extra.func_evals)
    assert.is_nil(s.buffers.d)
  end)

  it('keeps at most history_size pairs (the oldest dropped) and builds max_eval from max_iter', function()
    local set, _, closure = problems.rosenbrock('float64')
    local opt = LBFGS(set, { history_size = 3, max_iter = 8 })
    assert.equal(10, opt.max_eval)
    assert.equal(25, LBFGS(set).max_eval)
    assert.equal(7, LBFGS(set, { max_iter = 8, max_eval = 7 }).max_eval)
    local _, info = opt:step(closure)
    assert.equal(8, info.iterations)
    local s = opt:state()
    assert.equal(3, #s.extra.ro)
    for i = 1, 3 do assert.truthy(s.buffers['old_dirs_' .. i] and s.buffers['old_stps_' .. i]) end
    assert.is_nil(s.buffers.old_dirs_4)
    -- each pair: ro = 1 / (y . s)
    for i = 1, 3 do
      local ys = ms.dot(s.buffers['old_dirs_' .. i], s.buffers['old_stps_' .. i])
      assert.is_true(math.abs(s.extra.ro[i] * ys - 1) < 1e-12)
    end
  end)

  for _, dtype in ipairs { 'float64', 'float32' } do
    for _, lsf in ipairs { false, 'strong_wolfe' } do
      it(('resumes bit-exactly from state() (%s, line_search_fn = %s)'):format(dtype, tostring(lsf)), function()
        local cfg = function() return { history_size = 3, max_iter = 5, line_search_fn = lsf } end
        local m1, f1, c1 = problems.mlp(dtype)
        local a = LBFGS(m1, cfg())
        for _ = 1, 3 do a:step(c1) end
        local saved, params = a:state(), f1:clone()
        for _ = 1, 3 do a:step(c1) end
        local m2, f2, c2 = problems.mlp(dtype)
        f2:copy_(params)
        local b = LBFGS(m2, cfg())
        b:load_state(saved)
        assert.equal(3, b.t)
        for _ = 1, 3 do b:step(c2) end
        assert_same_bits(f1, f2, 'resumed weights')
        local sa, sb = a:state(), b:state()
        assert.same(sa.extra, sb.extra)
        for k, buf in pairs(sa.buffers) do assert_same_bits(buf, sb.buffers[k], 'buffer ' .. k) end
        for k in pairs(sb.buffers) do assert.truthy(sa.buffers[k], k) end
      end)
    end
  end

  it('hyper-parameters may be functions of the step (max_eval follows a max_iter schedule)', function()
    local s1, f1, c1 = problems.mlp('float64')
    local s2, f2, c2 = problems.mlp('float64')
    local a = LBFGS(s1, { lr = 0.5, max_iter = 4 })
    local b = LBFGS(s2, { lr = function() return 0.5 end, max_iter = function(t) return t < 3 and 4 or 8 end })
    for t = 1, 4 do
      local _, ia = a:step(c1)
      local _, ib = b:step(c2)
      if t < 3 then
        assert.equal(ia.passes, ib.passes)
        assert_same_bits(f1, f2, 'step ' .. t)
      else
        assert.equal(8, ib.iterations)
      end
    end
    assert.equal(10, b:get('max_eval'))
  end)

  it('refuses a malformed state before changing anything', function()
    local set, _, closure = problems.quadratic('float64')
    local opt = LBFGS(set, { history_size = 4, max_iter = 6 })
    opt:step(closure)
    local good = opt:state()
    local s = opt:state()
    s.extra.ro[#s.extra.ro + 1] = 0.5
    H.assert_error(function() opt:load_state(s) end, 'LBFGS.load_state', 'curvature pairs', 'old_dirs_')
    s = opt:state()
    s.extra = nil
    H.assert_error(function() opt:load_state(s) end, 'LBFGS.load_state', 'state.extra')
    s = opt:state()
    s.buffers.old_dirs_9 = s.buffers.old_dirs_1
    H.assert_error(function() opt:load_state(s) end, 'LBFGS.load_state', 'old_dirs_9')
    s = opt:state()
    s.extra.t = 'x'
    H.assert_error(function() opt:load_state(s) end, 'LBFGS.load_state', 'state.extra.t')
    assert.same(good.extra, opt:state().extra)
  end)

  it('misuse: a closure is required, apply, groups, clipping, bad options', function()
    local set, _, closure = problems.quadratic('float64')
    local opt = LBFGS(set)
    H.assert_error(function() opt:step() end, 'LBFGS.step', 'closure is nil', 'closure is required')
    H.assert_error(function() opt:step(42) end, 'LBFGS.step', 'closure is 42')
    H.assert_error(function() opt:apply() end, 'LBFGS.apply', 'opt:step(closure)')
    H.assert_error(function() LBFGS(problems.mlp('float64'), { groups = { { match = 'bias' } } }) end, 'LBFGS', 'one parameter group')
    H.assert_error(function() LBFGS(set, { clip_norm = 1 }) end, 'LBFGS', 'clip_norm', 'not supported')
    H.assert_error(function() LBFGS(set, { line_search_fn = 'armijo' }) end, 'LBFGS', 'line_search_fn', 'strong_wolfe')
    H.assert_error(function() LBFGS(set, { max_iter = 0 }) end, 'LBFGS', 'max_iter')
    H.assert_error(function() LBFGS(set, { history_size = 2.5 }) end, 'LBFGS', 'history_size')
    H.assert_error(function() LBFGS(set, { max_eval = -1 }) end, 'LBFGS', 'max_eval')
    H.assert_error(function() LBFGS(set, { tolerance_grad = -1 }) end, 'LBFGS', 'tolerance_grad')
    H.assert_error(function() LBFGS(set, { bn = 'sometimes' }) end, 'LBFGS', 'bn')
    H.assert_error(function() LBFGS(set, { momentum = 0.9 }) end, 'LBFGS', 'unknown option "momentum"')
    H.assert_error(function() opt:step(function() return 'x' end) end, 'LBFGS.step', 'the closure returned')
    local u = LBFGS { lr = 0.5 }
    H.assert_error(function() u:step(closure) end, 'LBFGS.step', 'not bound')
    u:bind(set)
    u:step(closure)
    assert.equal(1, u.t)
  end)

  -- A closure whose pass k (of the step) is non-finite or raises.
  local function failing(closure, at, how)
    return function(p)
      local l = closure(p)
      if p == at then
        if how == 'raise' then error('user error in pass ' .. p) end
        return 0 / 0
      end
      return l
    end
  end

  for _, lsf in ipairs { false, 'strong_wolfe' } do
    it(('a non-finite or failing pass restores the weights exactly (line_search_fn = %s)'):format(tostring(lsf)), function()
      local set, flat, closure = problems.rosenbrock('float64')
      local opt = LBFGS(set, { line_search_fn = lsf, history_size = 3, max_iter = 6 })
      opt:step(closure)
      local before, pairs_before = flat:clone(), #opt:state().extra.ro
      local loss, info = opt:step(failing(closure, 4))
      assert.is_true(info.skipped)
      assert.equal(4, info.passes)
      assert.equal(1, opt.skipped)
      assert.equal(1, opt.t)
      assert.equal(loss, info.loss)
      assert_same_bits(before, flat, 'weights after the skipped step')
      local s = opt:state()
      assert.is_nil(s.buffers.d)          -- the pending direction is dropped
      assert.is_true(#s.extra.ro >= pairs_before)
      -- the next step starts from the kept pairs (and their H_diag) and makes progress;
      -- a resumed copy takes the same step
      local set2, flat2, closure2 = problems.rosenbrock('float64')
      flat2:copy_(flat)
      local copy = LBFGS(set2, { line_search_fn = lsf, history_size = 3, max_iter = 6 })
      copy:load_state(s)
      copy:step(closure2)
      local l2 = opt:step(closure)
      assert_same_bits(flat, flat2, 'the step after a skip, resumed')
      local _, after = opt:step(closure)
      assert.is_true(after.final < l2)
      -- a raising closure: weights restored, then the error
      before = flat:clone()
      H.assert_error(function() opt:step(failing(closure, 3, 'raise')) end, 'user error in pass 3')
      assert_same_bits(before, flat, 'weights after a raising pass')
      assert.equal(1, opt.skipped)
      -- skip_nonfinite = false: an error naming LBFGS.step, weights restored
      local strict = LBFGS(set, { line_search_fn = lsf, skip_nonfinite = false })
      before = flat:clone()
      H.assert_error(function() strict:step(failing(closure, 2)) end, 'LBFGS.step', 'nan', 'skip_nonfinite')
      assert_same_bits(before, flat, 'weights after a refused step')
      -- a non-finite first pass: nothing changes
      local s1 = opt:state()
      local _, i1 = opt:step(failing(closure, 1))
      assert.is_true(i1.skipped)
      assert.equal(1, i1.passes)
      assert_same_bits(before, flat, 'weights after a non-finite first pass')
      assert.same(s1.extra.ro, opt:state().extra.ro)
    end)
  end

  it('BatchNorm statistics move on the first closure call of a step only; dropout masks repeat', function()
    local nn = ms.nn
    ms.manual_seed(7)
    local x, y = ms.randn(16, 4):to('float64'), ms.randn(16, 2):to('float64')
    local function build(bn)
      ms.manual_seed(3)
      local model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Dropout(0.3), nn.Linear(6, 2))
      model:to('float64')
      local opt = LBFGS(model, { max_iter = 4, bn = bn })
      return model, opt
    end
    local crit = nn.MSELoss()
    local function closure_of(model, log)
      return function()
        local out = model:forward(x)
        log[#log + 1] = model.modules[4].output:clone()
        local loss = crit:forward(out, y)
        model:backward(x, crit:backward(out, y))
        return loss
      end
    end
    -- one plain forward in training mode moves the statistics as one step should
    local ref = build('first')
    ref:forward(x)
    local want = ref.modules[2].running_mean:clone()
    local model, opt = build('first')
    local log = {}
    local _, info = opt:step(closure_of(model, log))
    assert.is_true(info.passes > 1)
    assert_same_bits(want, model.modules[2].running_mean, 'running_mean after one step')
    -- dropout: the same zeros in every pass (replay_rng)
    for k = 2, #log do
      local a, b = bits(log[1]), bits(log[k])
      for i = 1, #a do assert.equal(a[i] == 0, b[i] == 0, 'dropout mask of pass ' .. k) end
    end
    -- bn = 'both': every pass moves them
    local m2, o2 = build('both')
    local _, i2 = o2:step(closure_of(m2, {}))
    assert.is_true(i2.passes > 1)
    assert.is_true((m2.modules[2].running_mean - want):abs():max() > 0)
  end)

  it('CPU = GPU', function()
    if not (ms.cuda and ms.cuda.is_available()) then
      pending('no usable GPU')
      return
    end
    local function run(device)
      local set, flat, closure = problems.quadratic('float64', device)
      local opt = LBFGS(set, { line_search_fn = 'strong_wolfe', history_size = 3, max_iter = 10 })
      for _ = 1, 2 do opt:step(closure) end
      return flat:to('cpu')
    end
    H.assert_close(run('cuda'), run('cpu'), 1e-9, 'GPU vs CPU')
  end)
end)
