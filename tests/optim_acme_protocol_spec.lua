-- ACME's protocol beyond its reference trajectories (optim_acme_spec.lua has the line
-- model and the trajectories against the authors' code): the closure protocol (calls per
-- step, BatchNorm once per step, dropout replayed, weights restored exactly, skips and the
-- guard, non-finite gradients in every pass), groups, resume, misuse, the C boundary and
-- GPU = CPU.
local ffi = require 'ffi'
local ms = require 'moonstep'
local nn = ms.nn
local ACME = require 'moonstep.optim.ACME'
local H = require 'helper'

local same = H.same_bits
local function rel(got, want) return math.abs(got - want) / math.max(math.abs(want), 1e-3) end

-- A small model and a fixed batch for the protocol tests (float64 unless told).
local function mlp(seed, opts)
  opts = opts or {}
  ms.manual_seed(seed or 1)
  local layers = { nn.Linear(4, 6) }
  if opts.bn then layers[#layers + 1] = nn.BatchNorm1d(6) end
  layers[#layers + 1] = nn.Tanh()
  if opts.dropout then layers[#layers + 1] = nn.Dropout(0.5) end
  layers[#layers + 1] = nn.Linear(6, 2)
  local model = nn.Sequential(unpack(layers))
  model:to(opts.dtype or 'float64')
  local x = H.random_tensor({ 10, 4 }, seed or 1):to(opts.dtype or 'float64')
  local y = H.random_tensor({ 10, 2 }, (seed or 1) + 1):to(opts.dtype or 'float64')
  local crit = nn.MSELoss()
  local log = {}
  local function closure(pass)
    log[#log + 1] = pass
    local out = model:forward(x)
    local loss = crit:forward(out, y)
    model:backward(x, crit:backward(out, y))
    return loss
  end
  return model, closure, log
end

describe('ACME closure protocol', function()
  it('calls the closure 1, 2 or 3 times as acme and asam require, numbering the passes', function()
    local want = { { false, false, 1 }, { false, true, 2 }, { true, false, 2 }, { true, true, 3 } }
    for _, w in ipairs(want) do
      local model, closure, log = mlp(2)
      local opt = ACME(model, { lr = 0.05, acme = w[1], asam = w[2], rho = 0.05 })
      for s = 1, 3 do
        local _, info = opt:step(closure)
        assert.equal(w[3], info.passes)
        assert.equal(w[3] * s, #log, ('acme %s asam %s'):format(tostring(w[1]), tostring(w[2])))
        for k = 1, w[3] do assert.equal(k, log[(s - 1) * w[3] + k]) end
      end
      assert.equal(3 * w[3], opt.passes)
      assert.equal(3, opt.t)
    end
  end)

  it('returns the first-pass loss and what users log', function()
    local model, closure = mlp(3)
    local opt = ACME(model, { lr = 0.05 })
    local w0 = model:flat_parameters():clone()
    local L0, info = opt:step(closure)
    model:flat_parameters():copy_(w0)
    assert.equal(closure(1), L0)
    assert.equal(L0, info.loss)
    assert.is_number(info.loss2)
    assert.is_true(info.code >= 0 and info.code <= 7)
    assert.same({ info.code }, info.codes)
    assert.equal(opt:step_size(), info.lr)
    assert.is_true(info.alpha > 0)
    assert.is_false(info.skipped)
    assert.equal(0, info.guards)
    assert.equal(1, opt:code_counts()[info.code])
  end)

  it('updates BatchNorm running statistics once per step (pass 1 only) by default', function()
    for _, bn in ipairs { 'first', 'both' } do
      local model, closure = mlp(4, { bn = true })
      local ref = mlp(4, { bn = true })
      local opt = ACME(model, { lr = 0.05, asam = true, rho = 0.05, bn = bn })
      local x = H.random_tensor({ 10, 4 }, 4):to('float64')
      ref:forward(x)              -- one forward at w0: the statistics pass 1 leaves
      opt:step(closure)
      local a, b = model.modules[2].running_mean, ref.modules[2].running_mean
      if bn == 'first' then
        same(a, b, 'running mean after one step')
        same(model.modules[2].running_var, ref.modules[2].running_var, 'running var')
      else
        assert.is_true((a - b):abs():max() > 0, "bn = 'both' updates on every pass")
      end
    end
  end)

  it('replays the dropout masks on every pass of a step', function()
    local model, _ = mlp(5, { dropout = true })
    local x = H.random_tensor({ 10, 4 }, 5):to('float64')
    local y = H.random_tensor({ 10, 2 }, 6):to('float64')
    local crit, masks = nn.MSELoss(), {}
    local drop = model.modules[3]
    local function closure(pass)
      local out = model:forward(x)
      masks[pass] = drop.mask:clone()
      local loss = crit:forward(out, y)
      model:backward(x, crit:backward(out, y))
      return loss
    end
    local opt = ACME(model, { lr = 0.05, asam = true, rho = 0.05 })
    opt:step(closure)
    same(masks[1], masks[2], 'the ASAM pass mask')
    same(masks[1], masks[3], 'the trial pass mask')
    local first = masks[1]:clone()
    opt:step(closure)
    assert.is_true((masks[1] - first):abs():max() > 0, 'a new step draws new masks')
    local o2 = ACME(model, { lr = 0.05, replay_rng = false })
    o2:step(closure)
    assert.is_true((masks[1] - masks[2]):abs():max() > 0, 'replay_rng = false draws anew')
  end)

  it('restores the weights exactly when a pass is non-finite or raises', function()
    for _, cfg in ipairs { { asam = true, rho = 0.05 }, {}, { nesterov = true } } do
      local model, closure = mlp(6)
      cfg.lr = 0.05
      local opt = ACME(model, cfg)
      opt:step(closure)
      local w, m = model:flat_parameters():clone(), opt.buffers.m:clone()
      local lr = opt:step_size()
      -- pass 1 non-finite: skipped, nothing changes
      local L, info = opt:step(function(p) closure(p); return 0 / 0 end)
      assert.is_true(info.skipped)
      assert.equal(1, info.passes)
      same(w, model:flat_parameters(), 'after a skipped pass 1')
      same(m, opt.buffers.m, 'm after a skipped pass 1')
      assert.equal(1, opt.skipped)
      assert.equal(1, opt.t)
      assert.is_true(L ~= L)
      -- a raising pass 2: weights back, error propagated
      H.assert_error(function() opt:step(function(p) if p > 1 then error('boom at pass ' .. p) end; return closure(p) end) end, 'boom at pass 2')
      same(w, model:flat_parameters(), 'after a raising pass')
      assert.equal(1, opt.t)
      -- the trial pass non-finite: the reference's guard (lr *= beta1, step 1), skipped
      local last = cfg.asam and 3 or 2
      local _, i2 = opt:step(function(p) local l = closure(p); return p == last and 1 / 0 or l end)
      same(w, model:flat_parameters(), 'after a non-finite trial pass')
      assert.is_true(i2.skipped)
      assert.equal(1, i2.guards)
      assert.equal(2, opt.skipped)
      assert.is_true(math.abs(opt:step_size() - 0.9 * lr) < 1e-15)
      assert.equal(1, opt:code_counts()[-1])
      if cfg.asam then   -- the ASAM pass non-finite: a plain skip
        local _, i3 = opt:step(function(p) local l = closure(p); return p == 2 and 0 / 0 or l end)
        assert.is_true(i3.skipped)
        same(w, model:flat_parameters(), 'after a non-finite ASAM pass')
      end
    end
  end)

  it('non-finite inner products take the reference\'s guard (no exit): w = w0, lr *= beta1, step 1', function()
    for _, acme in ipairs { true, false } do
      local model, closure = mlp(15)
      local opt = ACME(model, { lr = 0.05, acme = acme })
      opt:step(closure)
      opt:step(closure)
      local w, lr = model:flat_parameters():clone(), opt:step_size()
      opt.buffers.m:fill_(0 / 0)   -- the momentum overflowed: its inner products are nan
      local _, info = opt:step(closure)
      same(w, model:flat_parameters(), 'weights under the guard')
      assert.equal(1, info.guards)
      assert.is_false(info.skipped)
      assert.equal(0, info.alpha)
      assert.is_true(math.abs(opt:step_size() - 0.9 * lr) < 1e-15)
      assert.equal(1, opt.gs[1].step)
      assert.equal(1, opt:code_counts()[-1])
      if acme then assert.equal(-1, info.code) end
      assert.equal(3, opt.t)
    end
  end)

  it('raises instead with skip_nonfinite = false, weights restored', function()
    local model, closure = mlp(7)
    local opt = ACME(model, { lr = 0.05, skip_nonfinite = false })
    local w = model:flat_parameters():clone()
    H.assert_error(function() opt:step(function(p) local l = closure(p); return p == 2 and 0 / 0 or l end) end,
                   'ACME.step', 'the loss is nan')
    same(w, model:flat_parameters(), 'after the raise')
    assert.equal(0, opt.t)
  end)

  it('a zero trial step leaves the weights alone (code 0) and assigning lr restarts the adaptation', function()
    local model, closure = mlp(8)
    local opt = ACME(model, { lr = 0.05 })
    opt:step(closure)
    opt.lr = 0
    local w = model:flat_parameters():clone()
    local _, info = opt:step(closure)
    assert.equal(0, info.code)
    assert.equal(0, opt:step_size())
    same(w, model:flat_parameters(), 'zero step')
    opt.lr = 0.01
    opt:step(closure)
    assert.is_true(opt:step_size() > 0)
  end)
end)

describe('ACME groups', function()
  it('sums the inner products per group (the DOTS pass against tensor arithmetic)', function()
    local model, closure = mlp(9)
    local opt = ACME(model, { lr = 0.05, groups = { { match = 'bias', betas = { 0.5, 0.99 } } } })
    opt:step(closure)
    closure(1)
    local b, st = opt.buffers, opt.table
    local gs = opt.gs
    for g = 1, 2 do opt:_hyper_for(g, opt:_values('t', 1, g), gs[g], 1) end
    local out = opt:_pass('t', ms.C.MS_ACME_DOTS, 0)
    local m, v, gr = b.m, b.v, model:flat_gradients()
    local want = { { 0, 0, 0 }, { 0, 0, 0 } }
    for i = 1, st.nslices do
      local s = st.slices[i - 1]
      local g = s.group + 1
      local h = opt._h[g - 1]
      local lo, n = tonumber(s.offset) + 1, tonumber(s.count)
      local ms_, vs, gs_ = m:narrow(1, lo, n), v:narrow(1, lo, n), gr:narrow(1, lo, n)
      local D = (vs / h.bc2):sqrt():add(h.eps):mul(h.bc1)
      want[g][1] = want[g][1] + (ms_ * gs_ / D):sum()
      want[g][2] = want[g][2] + (ms_ * ms_ / D):sum()
      want[g][3] = want[g][3] + (gs_ * gs_ / D):sum()
    end
    for g = 1, 2 do
      for j = 1, 3 do
        assert.is_true(rel(out[4 * (g - 1) + j - 1], want[g][j]) < 1e-12, ('group %d sum %d'):format(g, j))
      end
    end
  end)

  it('each group adapts its own lr and step; a group with lr 0 stays put', function()
    local model, closure = mlp(10)
    local opt = ACME(model, { lr = 0.05, groups = { { match = 'bias', lr = 0 } } })
    local before = model:flat_parameters():clone()
    for _ = 1, 4 do
      local _, info = opt:step(closure)
      assert.equal(2, #info.lrs)
      assert.equal(0, info.lrs[2])
      assert.equal(0, info.alphas[2])
    end
    local p = model:parameters()   -- 1.weight, 1.bias, 3.weight, 3.bias
    local flat = model:flat_parameters()
    assert.is_true(opt:step_size(1) ~= 0.05)
    assert.equal(0, opt:step_size(2))
    same(flat:narrow(1, 25, 6), before:narrow(1, 25, 6), 'the lr-0 group (1.bias)')
    assert.is_true((flat:narrow(1, 1, 24) - before:narrow(1, 1, 24)):abs():max() > 0)
    assert.equal(4, #p)
  end)
end)

describe('ACME state', function()
  it('resumes bit-exactly (3 steps, save, 3 more; a fresh optimizer loads and runs 3)', function()
    local cfg = { lr = 0.1, asam = true, rho = 0.05, nesterov = true, weight_decay = 0.01,
                  groups = { { match = 'bias', lr = 0.02 } } }
    local m1, c1 = mlp(11)
    local o1 = ACME(m1, cfg)
    for _ = 1, 3 do o1:step(c1) end
    local s, p = o1:state(), m1:flat_parameters():clone()
    for _ = 1, 3 do o1:step(c1) end
    local m2, c2 = mlp(11)
    m2:flat_parameters():copy_(p)
    local o2 = ACME(m2, cfg)
    o2:load_state(s)
    for _ = 1, 3 do o2:step(c2) end
    same(m1:flat_parameters(), m2:flat_parameters(), 'resumed ACME')
    assert.equal(o1:step_size(2), o2:step_size(2))
    assert.same(o1:code_counts(), o2:code_counts())
    H.assert_error(function() o2:load_state({ t = 1, optimizer = 'ACME', extra = { groups = 5 } }) end,
                   'ACME.load_state', 'state.extra.groups')
  end)
end)

describe('ACME misuse', function()
  it('names ACME.step / ACME and the option', function()
    local model, closure = mlp(12)
    local opt = ACME(model, {})
    H.assert_error(function() opt:step() end, 'ACME.step', 'a closure is required')
    H.assert_error(function() opt:step(5) end, 'ACME.step', 'closure is 5')
    H.assert_error(function() ACME(model, { lr = -1 }) end, 'ACME', 'lr is -1')
    H.assert_error(function() ACME(model, { betas = { 1, 0.9 } }) end, 'ACME', 'betas[1]')
    H.assert_error(function() ACME(model, { eps = 1e-8 }) end, 'ACME', 'unknown option "eps"')
    H.assert_error(function() ACME(model, { clip_norm = 1 }) end, 'ACME', 'clip_norm is not supported')
    H.assert_error(function() ACME(model, { limit_factor = 0.5 }) end, 'ACME', 'limit_factor')
    H.assert_error(function() ACME(model, { schedule_total = 0 }) end, 'ACME', 'schedule_total')
    H.assert_error(function() ACME(model, { compat = { periodic = true } }) end, 'ACME', 'periodic')
    H.assert_error(function() ACME(model, { bn = 'sometimes' }) end, 'ACME', 'bn')
    local g = ACME(model, { groups = { { match = 'bias', asam = true } } })
    H.assert_error(function() g:step(closure) end, 'ACME.step', 'asam must be the same in every group')
    H.assert_error(function() ACME.line_model(1, 2, 'x', 1, 1, 0.9) end, 'ACME.line_model', 'argument 3')
    H.assert_error(function() ACME.line_model(1, 2, 1, 1, 1, 0.9, { grow = 2 }) end, 'ACME.line_model', 'unknown option "grow"')
    H.assert_error(function() ACME.line_model(1, 2, 1, 1, 1, 0.9, { shrink_floor = 2 }) end, 'ACME.line_model', 'opts.shrink_floor')
    H.assert_error(function() opt:apply() end, 'ACME.apply', 'use opt:step(closure)')
    local unbound = ACME { lr = 0.1 }
    H.assert_error(function() unbound:step(closure) end, 'ACME.step', 'not bound')
  end)

  it('holds the internal cosine at schedule_min past schedule_total (compat: periodic)', function()
    local gamma = 2 * 0.1 / 1.9 * 2.8 / 1.1
    local f = function(x) return 0.5 + 0.5 * (1 + math.cos(math.pi * x / 2)) / 2 end
    for _, periodic in ipairs { false, true } do
      local model, closure = mlp(13)
      -- a small trial step: every step improves (the applied step is gamma s lr)
      local opt = ACME(model, { lr = 1e-3, schedule_total = 2, schedule_min = 0.5,
                                compat = { periodic_schedule = periodic } })
      for s = 1, 6 do
        local lr = opt:step_size() or 1e-3
        local _, info = opt:step(closure)
        assert.is_true(info.loss2 <= info.loss)
        local want = f(periodic and s - 1 or math.min(s - 1, 2))
        assert.is_true(math.abs(info.alpha / (gamma * lr) - want) < 1e-12,
                       ('step %d: s = %.17g, expected %.17g'):format(s, info.alpha / (gamma * lr), want))
      end
    end
  end)
end)

describe('ACME passes at the C boundary', function()
  it('refuse freed tensors, missing operands and bad constants with an error, never a crash', function()
    local C = ms.C
    local p, g, m = ms.zeros(8), ms.zeros(8), ms.zeros(8)
    local h = ffi.new('ms_acme_hyper[1]')
    h[0].beta1, h[0].beta2, h[0].bc1, h[0].bc2, h[0].dconst, h[0].kappa, h[0].decay = 0.9, 0.999, 1, 1, 1, 1, 1
    local a = ffi.new('ms_acme_args[1]')
    local out = ffi.new('double[4]')
    a[0].param, a[0].grad, a[0].m = p, g, m
    assert.equal(0, C.ms_acme_pass(C.MS_ACME_DOTS, a, h, out))
    local function fails(frag)
      assert.equal(-1, C.ms_acme_pass(C.MS_ACME_MOVE, a, h, out))
      local msg = ffi.string(C.ms_last_error())
      assert.is_truthy(msg:find(frag, 1, true), msg)
    end
    h[0].adam = 1
    fails("argument 'v' is NULL")
    h[0].adam, h[0].from_saved = 0, 1
    fails("argument 'w0' is NULL")
    h[0].from_saved, h[0].kappa = 0, 0 / 0
    fails('kappa is')
    h[0].kappa = 1
    local dead = ms.zeros(8)
    dead:free()
    a[0].m = dead
    assert.equal(-1, C.ms_acme_pass(C.MS_ACME_MOVE, a, h, out))
    a[0].m = ms.zeros(4)
    fails("'m'")
    a[0].m = m
    assert.equal(-1, C.ms_acme_pass(7, a, h, out))
    assert.equal(0, C.ms_acme_pass(C.MS_ACME_MOVE, a, h, nil))
    assert.equal(-1, C.ms_acme_pass(C.MS_ACME_DOTS, a, h, nil))
  end)
end)

describe('ACME on the GPU', function()
  local gpu = ms.cuda and ms.cuda.is_available()
  it('matches the CPU (float32)', function()
    if not gpu then pending('no usable GPU'); return end
    for _, cfg in ipairs { { lr = 0.05 }, { lr = 0.05, asam = true, rho = 0.05, nesterov = true, weight_decay = 0.01 },
                           { lr = 0.05, acme = false, adam = false }, { lr = 0.05, groups = { { match = 'bias', lr = 0.01 } } } } do
      local m1, c1 = mlp(14, { dtype = 'float32' })
      local m2 = mlp(14, { dtype = 'float32' })
      m2:to('cuda')
      local x = H.random_tensor({ 10, 4 }, 14):to('cuda')
      local y = H.random_tensor({ 10, 2 }, 15):to('cuda')
      local crit = nn.MSELoss()
      local function c2()
        local out = m2:forward(x)
        local loss = crit:forward(out, y)
        m2:backward(x, crit:backward(out, y))
        return loss
      end
      local o1, o2 = ACME(m1, cfg), ACME(m2, cfg)
      for _ = 1, 5 do
        local _, i1 = o1:step(c1)
        local _, i2 = o2:step(c2)
        assert.equal(i1.code, i2.code)
      end
      H.assert_close(m2:flat_parameters():to('cpu'), m1:flat_parameters(), 1e-4)
    end
  end)
end)

-- a warm optimizer whose pass k returns a finite loss but a non-finite gradient (ACME judges
-- each pass from the sums of the fused pass that reads its gradient next)
local function mse_mlp(seed)
  ms.manual_seed(seed)
  local model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2))
  model:to('float64')
  local x, y = H.random_tensor({ 10, 4 }, seed):to('float64'), H.random_tensor({ 10, 2 }, seed + 1):to('float64')
  local crit = nn.MSELoss()
  return model, function()
    local out = model:forward(x)
    local loss = crit:forward(out, y)
    model:backward(x, crit:backward(out, y))
    return loss
  end
end

describe('ACME non-finite gradients (finite loss)', function()
  it('skips (weights, m, v, lr, t as before) or raises naming the pass, in every pass of a warm step', function()
    for _, cfg in ipairs { {}, { asam = true, rho = 0.05 }, { acme = false } } do
      local calls = (cfg.acme == false and 1 or 2) + (cfg.asam and 1 or 0)
      for bad = 1, calls do
        for _, val in ipairs { 0 / 0, math.huge } do
          local model, closure = mse_mlp(11)
          local c = { lr = 0.05 }
          for k, v in pairs(cfg) do c[k] = v end
          local opt = ACME(model, c)
          opt:step(closure); opt:step(closure)
          local w, m, v, lr = model:flat_parameters():clone(), opt.buffers.m:clone(), opt.buffers.v:clone(), opt:step_size()
          local poisoned = function(p)
            local l = closure(p)
            if p == bad then model:flat_gradients():narrow(1, 3, 1):fill_(val) end
            return l
          end
          local _, info = opt:step(poisoned)
          assert.is_true(info.skipped, 'skipped')
          assert.equal(1, opt.skipped)
          assert.equal(2, opt.t)
          assert.equal(bad, info.passes)
          H.same_bits(w, model:flat_parameters(), 'weights after a skipped step')
          if bad < calls or cfg.acme == false then   -- (the trial pass: the reference's guard)
            H.same_bits(m, opt.buffers.m, 'm'); H.same_bits(v, opt.buffers.v, 'v')
            assert.equal(lr, opt:step_size())
          else
            assert.equal(1, info.guards)
            assert.is_true(math.abs(opt:step_size() - 0.9 * lr) < 1e-15)
          end
          opt.skip_nonfinite = false
          H.assert_error(function() opt:step(poisoned) end, 'ACME.step', 'gradients hold non-finite values', 'unchanged')
          H.same_bits(w, model:flat_parameters(), 'weights after the raise')
          assert.equal(2, opt.t)
        end
      end
    end
  end)
end)

describe('ACME misuse found in review', function()
  it('line_model checks its arguments; a zero gradient with asam_norm_eps = 0 runs', function()
    H.assert_error(function() ACME.line_model(1, 2) end, 'ACME.line_model', 'argument 3 is nil')
    H.assert_error(function() ACME.line_model(1, 2, 1, 1, -1, 0.9) end, 'ACME.line_model', 'h (argument 5)')
    H.assert_error(function() ACME.line_model(1, 2, 1, 1, 1, 1) end, 'ACME.line_model', 'beta (argument 6)')
    local set = ms.params { weight = ms.tensor({ 1, 2 }, { dtype = 'float64' }) }
    local opt = ACME(set, { asam = true, asam_norm_eps = 0 })
    local loss, info = opt:step(function() set:flat_gradients():zero_(); return 1 end)
    assert.equal(1, loss)
    assert.equal(3, info.passes)
  end)
end)
