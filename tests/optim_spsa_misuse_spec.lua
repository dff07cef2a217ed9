-- optim.SPSA under misuse (1/2): every option with wrong types and values, combinations
-- that cannot work together (refused, with the function, argument, given and expected
-- named), options that would have no effect (refused, never ignored), closures that
-- misbehave (the weights bit for bit as before, the layers unpatched, in every memory mode
-- and update rule), non-finite values inside the extras. Part 2:
-- optim_spsa_misuse_state_spec.lua (resume, hostile states, step(input, target), lists,
-- presets, get / gains / info).
local ms = require 'moonstep'
local nn = ms.nn
local optim = ms.optim
local H = require 'helper'
local T = require 'spsa_misuse_helper'
local mlp, data, crit, closure_for, w4, quad, refused, unpatched, has_nonfinite, mezo_ok, same_bits =
  T.mlp, T.data, T.crit, T.closure_for, T.w4, T.quad, T.refused, T.unpatched, T.has_nonfinite, T.mezo_ok, T.same_bits

---------------------------------------------------------------------------------------
describe('SPSA options: wrong types and values are refused, naming option, given, expected', function()
  local cases = {
    { { a = 0 / 0 }, 'a is nan' }, { { a = math.huge }, 'a is inf' }, { { a = -1 }, 'a is -1' },
    { { a = 'x' }, 'a is "x"' }, { { a = {} }, 'a is a table' }, { { a = ms.ones(1) }, 'a is a float32 tensor' },
    { { lr = 0 / 0 }, 'nan' }, { { lr = -1 }, '-1' },
    { { c = 0 }, 'c is 0' }, { { c = 0 / 0 }, 'c is nan' }, { { c = math.huge }, 'c is inf' },
    { { A = math.huge }, 'A is inf' }, { { alpha = -1 }, 'alpha is -1' }, { { gamma = -1 }, 'gamma is -1' },
    { { n = 0 }, 'n is 0' }, { { n = 1.5 }, 'n is 1.5' }, { { n = 0 / 0 }, 'n is nan' }, { { n = '2' }, 'n is "2"' },
    { { dist = 'normal' }, 'dist is "normal"', 'rademacher' }, { { diff = 1 }, 'diff is 1', 'central' },
    { { divide = 'yes' }, 'divide is "yes"' }, { { update = 'lbfgs' }, 'update is "lbfgs"', 'mezo' },
    { { memory = 3 }, 'memory is 3', 'virtual' }, { { restore = 'undo' }, 'restore is "undo"' },
    { { seed = -1 }, 'seed is -1' }, { { seed = 1.5 }, 'seed is 1.5' }, { { seed = 0 / 0 }, 'seed is nan' },
    { { seed = 2 ^ 60 }, 'seed is' }, { { seed = '1' }, 'seed is "1"' },
    { { beta = 1.5 }, 'beta is 1.5' }, { { betas = { 1, 2 } }, 'betas[1] is 1' }, { { betas = 0.9 }, 'betas is 0.9' },
    { { eps = -1 }, 'eps is -1' }, { { eps = math.huge }, 'eps is inf' }, { { weight_decay = 0 / 0 }, 'weight_decay is nan' },
    { { blocking = 1 }, 'blocking is 1' }, { { blocking = true, allowed_increase = -1 }, 'allowed_increase is -1' },
    { { blocking = true, allowed_increase = 0 / 0 }, 'allowed_increase is nan' },
    { { blocking = true, allowed_increase = true }, 'allowed_increase is true' },
    { { trust_region = 'y' }, 'trust_region is "y"' },
    { { calibrate = 'yes' }, 'calibrate' }, { { calibrate = { foo = 1 } }, 'foo' },
    { { calibrate = { target = 0 / 0 } }, 'calibrate.target is nan' }, { { calibrate = { steps = 0 } }, 'calibrate.steps is 0' },
    { { calibrate = { c = 0 } }, 'calibrate.c' },
    { { average_from = 0 }, 'average_from is 0' }, { { average_from = 1.5 }, 'average_from is 1.5' },
    { { second_order = 1 }, 'second_order is 1' },
    { { second_order = true, memory = 'materialized', regularization = -1 }, 'regularization is -1' },
    { { second_order = true, memory = 'materialized', regularization = math.huge }, 'regularization is inf' },
    { { second_order = true, memory = 'materialized', hessian_delay = 0.5 }, 'hessian_delay is 0.5' },
    { { criterion = 'mse' }, 'criterion is "mse"' }, { { batched = 'y' }, 'batched is "y"' },
    { { per_example = 1 }, 'per_example is 1' }, { { gain_unit = 'batch' }, 'gain_unit is "batch"' },
    { { gain_unit = 'epoch', steps_per_epoch = 0 }, 'steps_per_epoch is 0' },
    { { directions = 5, memory = 'materialized' }, 'directions is 5' },
    { { groups = 'x' }, 'groups is "x"' }, { { groups = { { match = '.', lr = 1 } } }, 'groups[1].lr' },
    { { base = 'adam' }, 'base is "adam"' }, { { base = optim.SAM }, 'base is optim.SAM' },
    { { bogus = 1 }, 'unknown option "bogus"' }, { { bn = 'always' }, 'bn is "always"' },
  }
  for _, c in ipairs(cases) do
    local desc = {}
    for k, v in pairs(c[1]) do desc[#desc + 1] = k .. '=' .. tostring(v) end
    it('refuses ' .. table.concat(desc, ', '), function()
      local w = w4()
      refused(function() optim.SPSA({ w }, c[1]):step(quad { w }) end, unpack(c, 2))
    end)
  end

  it('refuses a non-table config and a bad first argument', function()
    refused(function() optim.SPSA({ w4() }, 'sgd') end)
    refused(function() optim.SPSA({}, {}) end, 'first argument')
    refused(function() optim.SPSA({ 1, 2 }, {}) end, 'first argument')
    refused(function() optim.SPSA(w4(), {}) end, 'first argument', 'tensor')
    H.assert_error(function() optim.SPSA({ ms.tensor({ 1, 2 }, { dtype = 'int64' }) }, {}) end, 'int64')
    H.assert_error(function() optim.SPSA({ ms.randn(3), ms.randn(2):double() }, {}) end, 'float64')
  end)
end)

describe('SPSA option combinations that cannot work together are refused', function()
  local cases = {
    { { a = 1, lr = 1 }, 'both a and lr' },
    { { update = 'sgd', base = optim.Adam { lr = 1 } }, 'both update and base' },
    { { base = optim.Adam { lr = 1 }, beta = 0.5 }, 'beta is given with base' },
    { { dist = 'gaussian', divide = true }, 'divide = true', 'gaussian' },
    { { memory = 'materialized', restore = 'subtract' }, "restore = 'subtract'" },
    { { directions = function() end }, 'materialized' },
    { { gc_reset = 'first_epoch', steps_per_epoch = 2 }, 'gc_reset', 'spsa_gc' },
    { { update = 'spsa_gc', gc_reset = 'first_epoch' }, 'steps_per_epoch' },
    { { gain_unit = 'epoch' }, 'steps_per_epoch' },
    { { calibrate = true, a = 0.1 }, 'calibrate' }, { { calibrate = true, lr = 0.1 }, 'calibrate' },
    { { second_order = true }, 'materialized' },
    { { second_order = true, memory = 'materialized', diff = 'forward' }, 'central' },
    { { second_order = true, memory = 'materialized', update = 'mezo' }, 'mezo' },
    { { batched = true }, 'criterion' },
    { { criterion = crit, batched = true }, 'materialized' },
    { { criterion = crit, batched = true, memory = 'materialized', second_order = true }, 'second_order' },
    { { per_example = true }, 'batched' },
    { { blocking = true, update = 'adam' }, 'blocking', 'adam' },
    { { blocking = true, update = 'spsa_gc' }, 'blocking', 'spsa_gc' },
    { { trust_region = true, update = 'mezo' }, 'trust_region', 'mezo' },
    { { update = 'mezo', clip_norm = 1 }, 'clip_norm', 'mezo' },
    { { base = optim.SGD { lr = 1 }, clip_value = 1 }, 'clip_value' },
    { { groups = { { match = '.', beta = 0.5 } } }, 'groups[1].beta' },
  }
  for _, c in ipairs(cases) do
    local desc = {}
    for k, v in pairs(c[1]) do desc[#desc + 1] = k .. '=' .. tostring(v) end
    it('refuses ' .. table.concat(desc, ', '), function()
      local w = w4()
      refused(function() optim.SPSA({ w }, c[1]):step(quad { w }) end, unpack(c, 2))
    end)
  end

  it("update = 'spsa_gc' with beta = 0 is plain SGD (no nesterov the user never set)", function()
    local w = w4()
    local ok, err = pcall(function() optim.SPSA({ w }, { update = 'spsa_gc', beta = 0 }):step(quad { w }) end)
    if not ok then
      assert(not tostring(err):find('nesterov', 1, true), tostring(err))
      assert(tostring(err):find('beta', 1, true), tostring(err))
    end
  end)

  it("refuses memory = 'virtual' on a list of tensors at the step, naming it", function()
    local w = w4()
    local opt = optim.SPSA({ w }, { memory = 'virtual' })
    local w0 = w:clone()
    refused(function() opt:step(quad { w }) end, 'SPSA.step', 'virtual', 'model')
    same_bits(w, w0)
  end)
end)

-- Options that act only with another one. The project refuses those (GSAM's lr_min,
-- the SAM family's eta and ema options, SPSA's own restore and gc_reset); each of these
-- is accepted by SPSA today and has no effect at all (the trajectory is bit for bit the
-- one without it).
describe('SPSA options that would have no effect are refused, never ignored', function()
  local function run(cfg)
    local m = mlp()
    local c = { seed = 3, a = 0.05, c = 0.01 }
    for k, v in pairs(cfg) do c[k] = v end
    if c.base then c.a = nil end
    local opt = optim.SPSA(m, c)
    for _ = 1, 3 do opt:step(closure_for(m)) end
    return m:flat_parameters():clone()
  end
  -- either refused at construction (naming the option), or it changes the trajectory
  local function not_ignored(with, without, name)
    local ok, res = pcall(run, with)
    if not ok then
      assert(tostring(res):find(name, 1, true), ('refused without naming %s: %s'):format(name, tostring(res)))
      return
    end
    local ref = run(without)
    local differs = not pcall(same_bits, res, ref)
    assert(differs, ('%s was accepted and had no effect (silently ignored)'):format(name))
  end

  it("beta (spsa_gc's momentum) with update = 'sgd' or 'adam' is refused, not ignored", function()
    not_ignored({ update = 'sgd', beta = 0.1 }, { update = 'sgd' }, 'beta')
    not_ignored({ update = 'adam', beta = 0.1 }, { update = 'adam' }, 'beta')
  end)
  it("betas and eps (Adam's) with update = 'sgd' / 'spsa_gc' are refused, not ignored", function()
    not_ignored({ update = 'sgd', betas = { 0.5, 0.5 } }, { update = 'sgd' }, 'betas')
    not_ignored({ update = 'sgd', eps = 0.5 }, { update = 'sgd' }, 'eps')
    not_ignored({ update = 'spsa_gc', eps = 0.5 }, { update = 'spsa_gc' }, 'eps')
  end)
  it('regularization and hessian_delay without second_order are refused', function()
    not_ignored({ regularization = 5 }, {}, 'regularization')
    not_ignored({ hessian_delay = 5 }, {}, 'hessian_delay')
  end)
  it('allowed_increase without blocking is refused', function()
    not_ignored({ allowed_increase = 1e-9 }, {}, 'allowed_increase')
  end)
  it("steps_per_epoch with gain_unit = 'step' (and no gc_reset = 'first_epoch') is refused", function()
    not_ignored({ gamma = 0.5, alpha = 0.5, steps_per_epoch = 2 }, { gamma = 0.5, alpha = 0.5 }, 'steps_per_epoch')
  end)
  it('groups with base = an optimizer are refused (the base takes the groups)', function()
    not_ignored({ base = optim.SGD { lr = 0.05 }, groups = { { match = '.', weight_decay = 0.9 } } },
                { base = optim.SGD { lr = 0.05 } }, 'groups')
  end)
  it('check_finite is refused (SPSA reads no gradient; every loss is checked)', function()
    -- a non-finite estimate (user directions with a zero, divide form) must be caught
    local w = w4()
    local w0 = w:clone()
    local ok, err = pcall(function()
      local opt = optim.SPSA({ w }, { memory = 'materialized', divide = true, check_finite = true,
                                      directions = function(_, _, u) u:fill_(1); u:narrow(1, 1, 1):fill_(0) end })
      return opt:step(quad { w })
    end)
    assert(not ok or not has_nonfinite(w), 'check_finite = true let a non-finite estimate into the weights')
    if ok then same_bits(w, w0) end
    if not ok then assert(tostring(err):find('SPSA', 1, true), tostring(err)) end
  end)
  it("clip_value / clip_norm / trust_region with update = 'sign' (which they cannot change) are refused", function()
    not_ignored({ update = 'sign', clip_value = 1e-9 }, { update = 'sign' }, 'clip_value')
    not_ignored({ update = 'sign', clip_norm = 1e-9 }, { update = 'sign' }, 'clip_norm')
    not_ignored({ update = 'sign', a = 1, trust_region = true }, { update = 'sign', a = 1 }, 'trust_region')
  end)

  it('honours the options that do act (clip_norm, gamma, weight_decay with sign, hessian_delay)', function()
    not_ignored({ clip_norm = 1e-6 }, {}, 'clip_norm')
    not_ignored({ gamma = 1 }, {}, 'gamma')
    not_ignored({ update = 'sign', weight_decay = 0.9 }, { update = 'sign' }, 'weight_decay')
    not_ignored({ second_order = true, memory = 'materialized', hessian_delay = 100 },
                { second_order = true, memory = 'materialized' }, 'hessian_delay')
  end)

  it("groups' lr_scale scales a (SPSA's step size)", function()
    local m = mlp()
    local opt = optim.SPSA(m, { seed = 3, a = 0.05, groups = { { match = 'bias', lr_scale = 0 } } })
    local biases = {}
    for _, mod in ipairs { m.modules[1], m.modules[3] } do biases[#biases + 1] = mod.bias:clone() end
    opt:step(closure_for(m))
    same_bits(m.modules[1].bias, biases[1], 'lr_scale = 0 group moved')
    same_bits(m.modules[3].bias, biases[2], 'lr_scale = 0 group moved')
  end)
end)

---------------------------------------------------------------------------------------
describe('SPSA closures that misbehave: weights bit for bit, layers unpatched', function()
  local MODES = { 'seeded', 'materialized', 'virtual' }
  local misbehave = {
    { 'returns nil', function() return nil end, 'the closure returned nil', 'number' },
    { 'returns a string', function() return 'x' end, 'the closure returned "x"' },
    { 'returns a tensor', function(L) return ms.tensor({ L }) end, 'tensor', 'number' },
    { 'returns a table', function(L) return { L } end, 'table', 'number' },
    { 'returns true', function() return true end, 'returned true' },
    { 'raises', function() error('boom from the closure') end, 'boom from the closure' },
  }
  for _, mem in ipairs(MODES) do
    for _, mb in ipairs(misbehave) do
      it(('%s: a closure that %s on its 3rd call raises clearly, weights exact'):format(mem, mb[1]), function()
        local m = mlp()
        local w0 = m:flat_parameters():clone()
        local opt = optim.SPSA(m, { memory = mem, n = 2, seed = 3 })
        local calls, f = 0, closure_for(m)
        local err = H.assert_error(function()
          opt:step(function()
            calls = calls + 1
            local L = f()
            if calls == 3 then return mb[2](L) end
            return L
          end)
        end, unpack(mb, 3))
        if mb[1] ~= 'raises' then assert(err:find('SPSA.step', 1, true), err) end
        same_bits(m:flat_parameters(), w0)
        unpatched(m)
        assert.equal(0, opt.t)
        -- and the optimizer still works
        opt:step(closure_for(m))
        assert.equal(1, opt.t)
      end)
    end
    for _, v in ipairs { 0 / 0, math.huge, -math.huge } do
      it(('%s: a loss of %s on the k-th call skips the step, weights exact'):format(mem, tostring(v)), function()
        for k = 1, 4 do
          local m = mlp()
          local w0 = m:flat_parameters():clone()
          local opt = optim.SPSA(m, { memory = mem, n = 2, seed = 3 })
          local calls, f = 0, closure_for(m)
          local loss, info = opt:step(function()
            calls = calls + 1
            local L = f()
            if calls == k then return v end
            return L
          end)
          assert.is_true(info.skipped)
          assert.equal(1, opt.skipped)
          assert.equal(0, opt.t)
          assert.equal(k, info.passes)
          assert.equal(k, #info.losses)
          assert.equal(tostring(loss), tostring(info.losses[#info.losses]))
          same_bits(m:flat_parameters(), w0)
          unpatched(m)
        end
      end)
      it(('%s: skip_nonfinite = false raises on a loss of %s, weights exact'):format(mem, tostring(v)), function()
        local m = mlp()
        local w0 = m:flat_parameters():clone()
        local opt = optim.SPSA(m, { memory = mem, seed = 3, skip_nonfinite = false })
        local calls, f = 0, closure_for(m)
        refused(function()
          opt:step(function() calls = calls + 1; if calls == 2 then return v end; return f() end)
        end, 'SPSA.step', tostring(v))
        same_bits(m:flat_parameters(), w0)
        unpatched(m)
      end)
    end
    it(mem .. ': opt:step from inside the closure is refused, weights exact', function()
      local m = mlp()
      local w0 = m:flat_parameters():clone()
      local opt = optim.SPSA(m, { memory = mem, seed = 3 })
      local f = closure_for(m)
      refused(function()
        opt:step(function() opt:step(f); return f() end)
      end, 'SPSA.step', 'inside another')
      same_bits(m:flat_parameters(), w0)
      unpatched(m)
      opt:step(f)
      assert.equal(1, opt.t)
    end)
    it(mem .. ': a closure that frees the parameters gets a clear error', function()
      local m = mlp()
      local opt = optim.SPSA(m, { memory = mem, seed = 3 })
      local f = closure_for(m)
      local calls = 0
      H.assert_error(function()
        opt:step(function() calls = calls + 1; if calls == 2 then m:flat_parameters():free() end; return f() end)
      end, 'SPSA.step', 'freed')
      unpatched(m)
    end)
    it(mem .. ': a failed step from the directions side (opt._zo.dist broken) leaves the weights exact', function()
      local m = mlp()
      local w0 = m:flat_parameters():clone()
      local opt = optim.SPSA(m, { memory = mem, seed = 3 })
      opt._zo.dist = 'normal'
      H.assert_error(function() opt:step(closure_for(m)) end, 'SPSA.step', 'normal')
      same_bits(m:flat_parameters(), w0)
      unpatched(m)
    end)
  end

  it("mezo (fused update): a failing closure or hyper-parameter leaves the weights exact, every mode", function()
    if not mezo_ok() then pending('update = mezo is being changed (zo_ops.mezo_update)') return end
    for _, mem in ipairs(MODES) do
      for _, how in ipairs { 'nan', 'raise', 'weight_decay', 'a' } do
        local m = mlp()
        local w0 = m:flat_parameters():clone()
        local cfg = { update = 'mezo', memory = mem, seed = 3, n = 2 }
        if how == 'weight_decay' then cfg.weight_decay = function() return 0 / 0 end end
        if how == 'a' then cfg.a = function() return -1 end end
        local opt = optim.SPSA(m, cfg)
        local calls, f = 0, closure_for(m)
        local ok, err = pcall(opt.step, opt, function()
          calls = calls + 1
          if calls == 4 then if how == 'nan' then return 0 / 0 elseif how == 'raise' then error('x') end end
          return f()
        end)
        if how == 'weight_decay' or how == 'a' then
          assert(not ok and tostring(err):find('SPSA.step: ' .. how, 1, true), tostring(err))
        end
        same_bits(m:flat_parameters(), w0, mem .. ' ' .. how)
        unpatched(m)
        assert.equal(0, opt.t)
      end
    end
  end)

  it('mezo with a = 0 returns the weights bit for bit in every mode, dtype and distribution', function()
    if not mezo_ok() then pending('update = mezo is being changed (zo_ops.mezo_update)') return end
    for _, dt in ipairs { 'float32', 'float64' } do
      for _, mem in ipairs(MODES) do
        for _, dist in ipairs { 'gaussian', 'rademacher', 'segmented_uniform' } do
          local m = mlp(dt)
          local w0 = m:flat_parameters():clone()
          local opt = optim.SPSA(m, { update = 'mezo', memory = mem, seed = 3, n = 3, a = 0, dist = dist, c = 0.37 })
          for _ = 1, 3 do opt:step(closure_for(m)) end
          same_bits(m:flat_parameters(), w0, ('%s %s %s'):format(dt, mem, dist))
        end
      end
    end
  end)

  it('materialized: the model moved to float64 inside the closure is a clear error', function()
    local m = mlp()
    local opt = optim.SPSA(m, { memory = 'materialized', seed = 3, n = 2 })
    local calls, f = 0, closure_for(m)
    refused(function()
      opt:step(function() calls = calls + 1; if calls == 2 then m:double() end; return f() end)
    end, 'SPSA.step', 'moved')
  end)

  it('seeded: the model moved to float64 inside the closure is a clear error', function()
    local m = mlp()
    local w0 = m:flat_parameters():clone()
    local opt = optim.SPSA(m, { memory = 'seeded', seed = 3, n = 2, a = 0 })
    local calls, f = 0, closure_for(m)
    local ok = pcall(opt.step, opt, function()
      calls = calls + 1; if calls == 2 then m:double() end; return f()
    end)
    -- either refused (as materialized does), or w exactly w0 (a = 0: no update)
    if ok then same_bits(m:flat_parameters(), w0, 'weights after a = 0 step') end
  end)

  it("virtual: the model moved to float64 inside the closure is a clear error (raised in the closure's forward)", function()
    local m = mlp()
    local opt = optim.SPSA(m, { memory = 'virtual', seed = 3, n = 2 })
    local calls, f = 0, closure_for(m)
    local ok, err = pcall(opt.step, opt, function() calls = calls + 1; if calls == 2 then m:double() end; return f() end)
    assert.is_false(ok)
    err = tostring(err)
    assert(err:find('SPSA.step', 1, true), err)
    assert(not err:find("argument 'out'", 1, true), err)
    assert(err:find('moved', 1, true), err)
    unpatched(m)
  end)

  it('a closure that writes the weights itself does not crash any mode', function()
    for _, mem in ipairs(MODES) do
      local m = mlp()
      local opt = optim.SPSA(m, { memory = mem, seed = 3 })
      local f = closure_for(m)
      local calls = 0
      opt:step(function() calls = calls + 1; if calls == 1 then m:flat_parameters():add_(0.5) end; return f() end)
      assert.is_false(has_nonfinite(m:flat_parameters()))
      unpatched(m)
    end
  end)
end)

---------------------------------------------------------------------------------------
describe('SPSA non-finite values inside the extras', function()
  it('blocking: a NaN among the 25 evaluations that set allowed_increase skips the step (allowed_increase stays unset)', function()
    local w = w4()
    local calls = 0
    local sq = quad { w }
    local opt = optim.SPSA({ w }, { blocking = true, seed = 1 })
    opt:step(function() calls = calls + 1; if calls == 5 then return 0 / 0 end; return sq() end)
    local s = opt:state()
    if s.extra.allowed ~= nil then
      assert(s.extra.allowed == s.extra.allowed, 'allowed_increase became nan')
    end
    optim.SPSA({ w4() }, { blocking = true }):load_state(s)   -- the checkpoint must load
  end)

  -- evaluations of a 2-SPSA step: 1, 2 the gradient's; 3 y(w + h(D1 + D2)); 4 y(w - h(D1 - D2))
  for _, bad in ipairs { 3, 4 } do
    it(('2-SPSA: a NaN at evaluation %d of 4 skips the step; weights exact, no Hessian sample'):format(bad), function()
      local w = w4()
      local w0 = w:clone()
      local calls = 0
      local sq = quad { w }
      local opt = optim.SPSA({ w }, { second_order = true, memory = 'materialized', seed = 1 })
      local _, info = opt:step(function() calls = calls + 1; if calls == bad then return 0 / 0 end; return sq() end)
      assert.is_true(info.skipped)
      same_bits(w, w0)
      assert.is_nil(opt:state().extra.hessian)   -- the Hessian took no NaN sample
    end)
  end

  it('calibrate: a NaN at y(w + c D) or y(w - c D) skips the step, uncalibrated', function()
    local results = {}
    for k = 1, 2 do
      local w = w4()
      local calls = 0
      local sq = quad { w }
      local opt = optim.SPSA({ w }, { calibrate = true, seed = 1 })
      local _, info = opt:step(function() calls = calls + 1; if calls == k then return 0 / 0 end; return sq() end)
      results[k] = { skipped = info.skipped, calibrated = opt.calibrated or false }
    end
    assert.same(results[2], results[1])
    assert.is_true(results[1].skipped)
  end)

  it('own directions with a zero element and divide = true skip the step (non-finite estimate)', function()
    local w = w4()
    local w0 = w:clone()
    local opt = optim.SPSA({ w }, { memory = 'materialized', divide = true,
                                    directions = function(_, _, u) u:fill_(1); u:narrow(1, 1, 1):fill_(0) end })
    local ok, info = pcall(function() return select(2, opt:step(quad { w })) end)
    assert.is_false(has_nonfinite(w))
    if ok then assert.is_true(info.skipped); same_bits(w, w0) end
  end)

  it('own directions: a NaN direction skips the step (the losses are NaN), weights exact', function()
    local w = w4()
    local w0 = w:clone()
    local opt = optim.SPSA({ w }, { memory = 'materialized', directions = function(_, _, u) u:fill_(0 / 0) end })
    local _, info = opt:step(quad { w })
    assert.is_true(info.skipped)
    same_bits(w, w0)
  end)

  it('own directions: a directions function that raises or frees u leaves the weights exact', function()
    for _, f in ipairs { function() error('dir boom') end, function(_, _, u) u:free() end } do
      local w = w4()
      local w0 = w:clone()
      local opt = optim.SPSA({ w }, { memory = 'materialized', directions = f })
      H.assert_error(function() opt:step(quad { w }) end)
      same_bits(w, w0)
    end
  end)

  it('hyper-parameter callables returning bad values name the step', function()
    local w = w4()
    refused(function() optim.SPSA({ w }, { a = function() return 0 / 0 end }):step(quad { w }) end,
            'SPSA.step', 'a (its value at step 1) is nan')
    refused(function() optim.SPSA({ w }, { c = function() return 0 end }):step(quad { w }) end,
            'SPSA.step', 'c (its value at step 1) is 0')
    local opt = optim.SPSA({ w }, {})
    opt.a = 0 / 0
    refused(function() opt:step(quad { w }) end, 'SPSA.step', 'a is nan')
    local opt2 = optim.SPSA({ w }, {})
    opt2.t = 2 ^ 33
    refused(function() opt2:step(quad { w }) end, 'SPSA.step', '2^32')
  end)

  it('opt.seed overwritten with a bad value is reported as opt.seed', function()
    local w = w4()
    local opt = optim.SPSA({ w }, {})
    opt.seed = -1
    local err = refused(function() opt:step(quad { w }) end, 'SPSA.step', 'seed')
    assert(not err:find('to.seed', 1, true), err)
  end)
end)
