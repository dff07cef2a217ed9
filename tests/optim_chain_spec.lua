-- Composable transforms (optim.chain, lua/moonstep/optim/transforms.lua): each named
-- optimizer (SGD, Adam, AdamW, RMSprop, Adagrad, NAdam) equals its chain over 50 steps on a quadratic and
-- on a small MLP's arena, in float64 and float32; the transforms against hand
-- computations; masks; refused options; the chain as an engine optimizer (unbound + bind,
-- evaluate + apply, step(), nesting, the common options, dtype moves); state round trip.
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim
local H = require 'helper'

local STEPS = 50
-- chain vs fused: the same update in separate passes (no fused multiply-adds, 1/bc1
-- folded into Adam's denominator): relative to the parameters' scale.
local TOL = { float64 = 1e-13, float32 = 1e-5 }

-- A separable quadratic over two named tensors (two slices: 'bias' 4, 'weight' 12):
-- f = 0.5 sum a (x - c)^2, gradient a (x - c), curvatures a in [0.5, 2.5].
local function quadratic(dtype)
  local w = H.random_tensor({ 3, 4 }, 1, { dtype = dtype })
  local b = H.random_tensor({ 4 }, 2, { dtype = dtype })
  local set = ms.params { weight = w, bias = b }
  local n = set.flat:numel()
  local a = ms.arange(n, { dtype = dtype }):mul_(2 / n):add_(0.5)
  local c = H.random_tensor({ n }, 3, { dtype = dtype }):mul_(3)
  local function closure()
    local d = set.flat - c
    set.gflat:copy_(a * d)
    return 0.5 * (a * d * d):sum()
  end
  return { target = set, flat = set.flat, grad = set.gflat, closure = closure }
end

-- A small MLP's arena (4 slices, two of kind bias), MSE on fixed data.
local function mlp(dtype)
  ms.manual_seed(7)
  local model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
  if dtype == 'float64' then model:double() end
  local x = H.random_tensor({ 16, 3 }, 4, { dtype = dtype })
  local y = H.random_tensor({ 16, 2 }, 5, { dtype = dtype })
  local crit = nn.MSELoss()
  local function closure()
    local out = model:forward(x)
    local loss = crit:forward(out, y)
    model:backward(x, crit:backward(out, y))
    return loss
  end
  return { target = model, flat = model:flat_parameters(), grad = model:flat_gradients(), closure = closure,
           x = x, y = y, crit = crit }
end

local PROBLEMS = { quadratic = quadratic, mlp = mlp }

-- Max |a - b| relative to max(1, max |a|).
local function rel_diff(a, b)
  local scale = math.max(1, a:abs():max())
  return (a - b):abs():max() / scale
end

-- make_named(target), make_chain(target): optimizers; both run STEPS steps on a fresh
-- problem of each kind and dtype and must end within tols (default TOL).
local function assert_same(make_named, make_chain, tols)
  for pname, problem in pairs(PROBLEMS) do
    for dtype, tol in pairs(tols or TOL) do
      local p1, p2 = problem(dtype), problem(dtype)
      local o1, o2 = make_named(p1.target), make_chain(p2.target)
      for _ = 1, STEPS do
        o1:step(p1.closure)
        o2:step(p2.closure)
      end
      local d = rel_diff(p1.flat, p2.flat)
      assert.is_true(d <= tol, ('%s %s: chain differs from the named optimizer by %g (tolerance %g)')
                     :format(pname, dtype, d, tol))
      assert.is_true(rel_diff(p1.flat, problem(dtype).flat) > 1e-3, pname .. ': the parameters did not move')
    end
  end
end

describe('optim.chain', function()
  it('SGD = chain(add_decayed_weights, trace, scale(-lr))', function()
    for _, c in ipairs {
      { lr = 0.05 },
      { lr = 0.05, weight_decay = 0.01 },
      { lr = 0.02, momentum = 0.9 },
      { lr = 0.02, momentum = 0.9, weight_decay = 0.03 },
      { lr = 0.02, momentum = 0.8, nesterov = true, weight_decay = 0.01 },
      { lr = 0.02, momentum = 0.8, dampening = 0.3, weight_decay = 0.01 },
    } do
      assert_same(function(t) return optim.SGD(t, c) end, function(t)
        local list = { optim.add_decayed_weights(c.weight_decay or 0) }
        if c.momentum then
          list[#list + 1] = optim.trace { decay = c.momentum, nesterov = c.nesterov or false,
                                          dampening = c.dampening or 0 }
        end
        list[#list + 1] = optim.scale(-c.lr)
        return optim.chain(t, unpack(list))
      end)
    end
  end)

  it('Adam = chain(add_decayed_weights, scale_by_adam, scale(-lr))', function()
    for _, c in ipairs {
      { lr = 0.01 },
      { lr = 0.02, betas = { 0.8, 0.99 }, eps = 1e-6, weight_decay = 0.05 },
    } do
      local b = c.betas or { 0.9, 0.999 }
      assert_same(function(t) return optim.Adam(t, c) end, function(t)
        return optim.chain(t, optim.add_decayed_weights(c.weight_decay or 0),
                           optim.scale_by_adam { b1 = b[1], b2 = b[2], eps = c.eps or 1e-8 },
                           optim.scale(-c.lr))
      end)
    end
  end)

  it('AdamW = chain(scale_by_adam, add_decayed_weights, scale(-lr))', function()
    for _, c in ipairs { { lr = 0.01 }, { lr = 0.03, weight_decay = 0.1, betas = { 0.85, 0.995 } } } do
      local b = c.betas or { 0.9, 0.999 }
      assert_same(function(t) return optim.AdamW(t, c) end, function(t)
        return optim.chain(t, optim.scale_by_adam { b1 = b[1], b2 = b[2] },
                           optim.add_decayed_weights(c.weight_decay or 0.01),
                           optim.scale_by_learning_rate(c.lr))
      end)
    end
  end)

  it('RMSprop = chain(add_decayed_weights, scale_by_rms or scale_by_stddev, [trace], scale(-lr))', function()
    local RMSprop = rawget(optim, 'RMSprop')
    if not RMSprop then
      pending('no optim.RMSprop')
      return
    end
    for _, c in ipairs {
      { lr = 0.01 },
      { lr = 0.01, alpha = 0.9, eps = 1e-6, weight_decay = 0.01 },
      { lr = 0.005, momentum = 0.9 },
      { lr = 0.005, centered = true, momentum = 0.5, weight_decay = 0.02 },
    } do
      assert_same(function(t) return RMSprop(t, c) end, function(t)
        local o = { decay = c.alpha or 0.99, eps = c.eps or 1e-8 }
        local list = { optim.add_decayed_weights(c.weight_decay or 0),
                       c.centered and optim.scale_by_stddev(o) or optim.scale_by_rms(o) }
        if c.momentum then list[#list + 1] = optim.trace { decay = c.momentum } end
        list[#list + 1] = optim.scale(-c.lr)
        return optim.chain(t, unpack(list))
      end, { float64 = 1e-12, float32 = 1e-4 })   -- g / sqrt(v), no bias correction: float32
    end                                           -- rounding grows to 1e-5 on the MLP
  end)

  it('Adagrad = chain(add_decayed_weights, scale_by_rss, scale_by_schedule(-lr / (1 + (t-1) lr_decay)))', function()
    for _, c in ipairs {
      { lr = 0.05 },
      { lr = 0.05, lr_decay = 0.01, weight_decay = 0.02, initial_accumulator_value = 0.1, eps = 1e-8 },
    } do
      assert_same(function(t) return optim.Adagrad(t, c) end, function(t)
        return optim.chain(t, optim.add_decayed_weights(c.weight_decay or 0),
                           optim.scale_by_rss { initial_accumulator_value = c.initial_accumulator_value or 0,
                                                eps = c.eps or 1e-10 },
                           optim.scale_by_schedule(function(step) return -c.lr / (1 + (step - 1) * (c.lr_decay or 0)) end))
      end)
    end
  end)

  it('NAdam = chain(add_decayed_weights, scale_by_nadam, scale(-lr))', function()
    for _, c in ipairs {
      { lr = 0.01 },
      { lr = 0.005, betas = { 0.85, 0.99 }, eps = 1e-6, weight_decay = 0.05, momentum_decay = 0.01 },
    } do
      local b = c.betas or { 0.9, 0.999 }
      assert_same(function(t) return optim.NAdam(t, c) end, function(t)
        return optim.chain(t, optim.add_decayed_weights(c.weight_decay or 0),
                           optim.scale_by_nadam { b1 = b[1], b2 = b[2], eps = c.eps or 1e-8,
                                                  momentum_decay = c.momentum_decay or 4e-3 },
                           optim.scale(-c.lr))
      end, { float64 = 1e-13, float32 = 5e-5 })   -- float32: the step sizes are folded into
                                                  -- the denominator (other roundings)
    end
  end)

  it('schedules: scale_by_schedule and scale_by_learning_rate take the 1-based step', function()
    local lr = function(step) return 0.1 / step end
    assert_same(function(t) return optim.SGD(t, { lr = lr, momentum = 0.5 }) end, function(t)
      return optim.chain(t, optim.trace { decay = 0.5 }, optim.scale_by_schedule(function(s) return -lr(s) end))
    end)
    assert_same(function(t) return optim.Adam(t, { lr = lr }) end, function(t)
      return optim.chain(t, optim.scale_by_adam {}, optim.scale_by_learning_rate(lr))
    end)
    -- not folded (a transform follows): the same
    local seen = {}
    local p = quadratic('float64')
    local opt = optim.chain(p.target, optim.scale_by_schedule(function(s) seen[#seen + 1] = s; return -0.1 end),
                            optim.clip(1e9))
    for _ = 1, 3 do opt:step(p.closure) end
    assert.same({ 1, 2, 3 }, seen)
  end)

  it('clip_global_norm equals a hand computation', function()
    for _, max_norm in ipairs { 0.5, 1e6 } do
      local p = quadratic('float64')
      local x0 = p.flat:clone()
      p.closure()
      local g = p.grad:clone()
      local norm = g:norm()
      local opt = optim.chain(p.target, optim.clip_global_norm(max_norm), optim.scale(-0.1))
      opt:step(p.closure)
      local k = norm > max_norm and max_norm / norm or 1
      H.assert_close(p.flat, x0 - g * (0.1 * k), 1e-14)
      assert.equal(0, (p.grad - g):abs():max())   -- the gradient arena is left alone
    end
  end)

  it('clip_by_tensor_norm clips each slice by its own norm', function()
    local p = quadratic('float64')
    local x0 = p.flat:clone()
    p.closure()
    local g = p.grad:clone()
    local opt = optim.chain(p.target, optim.clip_by_tensor_norm(0.3), optim.scale(-1))
    opt:step(p.closure)
    local expect = x0:clone()
    for _, s in ipairs(p.target:slices()) do
      local gs = g:narrow(1, s.offset + 1, s.numel)
      local k = math.min(1, 0.3 / gs:norm())
      expect:narrow(1, s.offset + 1, s.numel):add_(gs, -k)
    end
    H.assert_close(p.flat, expect, 1e-14)
  end)

  it('clip, scale_by_rms, scale_by_stddev, apply_every against hand computations', function()
    local p = quadratic('float64')
    local x0 = p.flat:clone()
    p.closure()
    local g = p.grad:clone()
    local opt = optim.chain(p.target, optim.clip(0.2), optim.scale(-1))
    opt:step(p.closure)
    H.assert_close(p.flat, x0 - g:clamp(-0.2, 0.2), 1e-15)

    -- two steps of RMS (and of its centred form) from a fixed gradient sequence
    local g1, g2 = H.random_tensor({ 16 }, 8, { dtype = 'float64' }), H.random_tensor({ 16 }, 9, { dtype = 'float64' })
    local params = ms.zeros(16, { dtype = 'float64' })
    local rms = optim.scale_by_rms { decay = 0.7, eps = 1e-3, initial_scale = 0.5 }
    local st = rms.init(params)
    rms.update(g1, st, params, 1)
    local u = rms.update(g2, st, params, 2)
    local nu = (ms.full({ 16 }, 0.5, { dtype = 'float64' }) * 0.7 + g1 * g1 * 0.3) * 0.7 + g2 * g2 * 0.3
    H.assert_close(u, g2 / (nu:sqrt() + 1e-3), 1e-14)
    local sd = optim.scale_by_stddev { decay = 0.7, eps = 1e-3 }
    st = sd.init(params)
    sd.update(g1, st, params, 1)
    u = sd.update(g2, st, params, 2)
    local mu = g1 * 0.3 * 0.7 + g2 * 0.3
    nu = g1 * g1 * 0.3 * 0.7 + g2 * g2 * 0.3
    H.assert_close(u, g2 / ((nu - mu * mu):sqrt() + 1e-3), 1e-13)

    local every = optim.apply_every(2)
    st = every.init(params)
    assert.equal(0, every.update(g1, st, params, 1):abs():max())
    H.assert_close(every.update(g2, st, params, 2), g1 + g2, 1e-15)
    assert.equal(0, every.update(g2, st, params, 3):abs():max())
  end)

  it('masks: add_decayed_weights and masked by name pattern, kind or function', function()
    ms.manual_seed(3)
    local model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.LayerNorm(4), nn.Linear(4, 2)):double()
    local flat = model:flat_parameters()
    local function check(opt, want_of)
      local x0 = flat:clone()
      opt:step(function() model:zero_grad(); return 0 end)   -- zero gradients: only decay moves
      for _, s in ipairs(model:slices()) do
        local got, was = flat:narrow(1, s.offset + 1, s.numel), x0:narrow(1, s.offset + 1, s.numel)
        H.assert_close(got, was * want_of(s), 1e-15, s.name)
      end
    end
    -- 'bias|norm' matches by name ('1.bias') or kind (LayerNorm's '3.weight' is a norm)
    check(optim.chain(model, optim.add_decayed_weights(0.5), optim.masked(optim.scale(0), 'bias|norm'),
                      optim.scale(-1)),
          function(s) return s.kind == 'weight' and 0.5 or 1 end)
    check(optim.chain(model, optim.add_decayed_weights(0.25, function(s) return s.kind == 'bias' end),
                      optim.scale(-1)),
          function(s) return s.kind == 'bias' and 0.75 or 1 end)
    check(optim.chain(model, optim.add_decayed_weights(0.5, '^4%.'), optim.scale(-1)),
          function(s) return s.name:match('^4%.') and 0.5 or 1 end)
    -- masked(inner): inner's norm covers the masked slices only
    local q = quadratic('float64')
    local y0 = q.flat:clone()
    q.closure()
    local g = q.grad:clone()
    local only = function(s) return s.name == 'weight' end
    optim.chain(q.target, optim.masked(optim.clip_global_norm(0.1), only), optim.scale(-1)):step(q.closure)
    local expect = y0 - g
    for _, s in ipairs(q.target:slices()) do
      if s.name == 'weight' then
        local gs = g:narrow(1, s.offset + 1, s.numel)
        expect:narrow(1, s.offset + 1, s.numel):copy_(y0:narrow(1, s.offset + 1, s.numel) - gs * (0.1 / gs:norm()))
      end
    end
    H.assert_close(q.flat, expect, 1e-14)
  end)

  it('refuses unknown options, bad hyper-parameters and non-transforms', function()
    H.assert_error(function() optim.scale_by_adam { beta1 = 0.9 } end, 'scale_by_adam', 'beta1')
    H.assert_error(function() optim.trace { momentum = 0.9 } end, 'trace', 'momentum')
    H.assert_error(function() optim.scale_by_adam { b1 = 1 } end, 'scale_by_adam', 'b1', '[0, 1)')
    H.assert_error(function() optim.clip_global_norm(0) end, 'clip_global_norm', 'max_norm')
    H.assert_error(function() optim.scale(0 / 0) end, 'scale', 's')
    H.assert_error(function() optim.scale_by_schedule(3) end, 'scale_by_schedule', 'function of the step')
    H.assert_error(function() optim.add_decayed_weights(0.1, 42) end, 'add_decayed_weights', 'mask')
    local p = quadratic('float64')
    H.assert_error(function() optim.chain(p.target, optim.scale(1), 'adam') end, 'chain', 'argument 3', 'transform')
    -- a hyper-parameter written later is checked when the step reads it; nothing moves
    local adam = optim.scale_by_adam {}
    local opt = optim.chain(p.target, adam, optim.scale(-0.1))
    adam.b1 = 2
    local x0 = p.flat:clone()
    H.assert_error(function() opt:step(p.closure) end, 'scale_by_adam', 'b1')
    assert.equal(0, (p.flat - x0):abs():max())
    local bad = optim.chain(p.target, optim.scale_by_schedule(function() return 'x' end))
    H.assert_error(function() bad:step(p.closure) end, 'scale_by_schedule', 'at step 1')
    H.assert_error(function() optim.scale_by_learning_rate(-0.1) end, 'scale_by_learning_rate', 'lr')
    H.assert_error(function() optim.add_decayed_weights(0.1, 'bias|') end, 'add_decayed_weights', 'empty alternative')
    -- standalone use: the state and step are checked
    local a, x = optim.scale_by_adam {}, ms.zeros(3)
    local st = a.init(x)
    H.assert_error(function() a.update(ms.zeros(4), st, ms.zeros(4), 1) end, 'scale_by_adam.update', 'state.mu', '4')
    H.assert_error(function() a.update(x, {}, x, 1) end, 'scale_by_adam.update', 'state.mu is nil')
    H.assert_error(function() a.update(x, st, x, 0) end, 'scale_by_adam.update', 'step')
  end)

  it('state / load_state resume bit-exact', function()
    local function make(target)
      return optim.chain(target, optim.clip_global_norm(2), optim.add_decayed_weights(0.01, 'weight'),
                         optim.trace { decay = 0.9, nesterov = true }, optim.scale_by_adam { b2 = 0.99 },
                         optim.scale_by_learning_rate(function(s) return 0.01 / math.sqrt(s) end))
    end
    local p1 = mlp('float32')
    local a = make(p1.target)
    for _ = 1, 5 do a:step(p1.closure) end
    local saved, xsaved = a:state(), p1.flat:clone()
    for _ = 1, 5 do a:step(p1.closure) end
    local p2 = mlp('float32')
    p2.flat:copy_(xsaved)
    local b = make(p2.target)
    b:load_state(saved)
    for _ = 1, 5 do b:step(p2.closure) end
    assert.equal(0, (p1.flat - p2.flat):abs():max())
    -- a state from another chain is refused: other buffers, or the same buffers under
    -- other transforms
    local other = optim.chain(mlp('float32').target, optim.scale_by_rms {}, optim.scale(-1))
    H.assert_error(function() other:load_state(saved) end, 'chain.load_state', 'buffer')
    local twin = optim.chain(mlp('float32').target, optim.clip(2), optim.add_decayed_weights(0.01, 'weight'),
                             optim.trace { decay = 0.9, nesterov = true }, optim.scale_by_adam { b2 = 0.99 },
                             optim.scale(-0.01))
    H.assert_error(function() twin:load_state(saved) end, 'chain.load_state', 'clip_global_norm', 'expected one from chain(clip,')
    -- the transforms' numeric hyper-parameters are part of the state
    local c = make(mlp('float32').target)
    c.transforms[4].b2 = 0.5
    c:load_state(saved)
    assert.equal(0.99, c.transforms[4].b2)
  end)

  it('is an optimizer like the others: unbound + bind, evaluate + apply, step(), nesting', function()
    local function make(target)
      local opt = optim.chain(optim.scale_by_adam {}, optim.add_decayed_weights(0.01), optim.scale(-0.01))
      if target then opt:bind(target) end
      return opt
    end
    local p1, p2, p3, p4 = mlp('float64'), mlp('float64'), mlp('float64'), mlp('float64')
    local a = optim.chain(p1.target, optim.scale_by_adam {}, optim.add_decayed_weights(0.01), optim.scale(-0.01))
    local b = make()
    H.assert_error(function() b:step(p2.closure) end, 'chain.step', 'not bound')
    b:bind(p2.target)
    local c = make(p3.target)
    -- a chain nested in a chain: the same transforms
    local d = optim.chain(p4.target, optim.chain(optim.scale_by_adam {}), optim.add_decayed_weights(0.01),
                          optim.scale(-0.01))
    for _ = 1, 5 do
      a:step(p1.closure)
      b:evaluate(p2.closure)
      b:apply()
      p3.target:zero_grad()
      p3.closure()
      c:step()
      d:step(p4.closure)
    end
    assert.equal(5, b.t)
    for _, p in ipairs { p2, p3, p4 } do assert.equal(0, (p1.flat - p.flat):abs():max()) end
    -- the transforms never write the gradient arena
    local g = p1.grad:clone()
    a:apply()
    assert.equal(0, (p1.grad - g):abs():max())
    -- the functional form: opt.tx.init / opt.tx.update
    local tx = make().tx
    local q = quadratic('float64')
    local st = tx.init(q.flat)
    q.closure()
    local u = tx.update(q.grad, st, q.flat, 1)
    H.assert_close(u, (q.grad / (q.grad:abs() + 1e-8) + q.flat * 0.01) * -0.01, 1e-12)
  end)

  it('takes the common options, refuses groups and unknown ones', function()
    local p = quadratic('float64')
    H.assert_error(function() optim.chain(p.target, optim.scale(-1), { lr = 1 }) end, 'chain', 'unknown option', 'lr')
    H.assert_error(function() optim.chain(p.target, optim.scale(-1), { groups = { { match = 'bias' } } }) end,
                   'chain', 'groups', 'mask')
    local opt = optim.chain(p.target, optim.scale(-1), { skip_nonfinite = true })
    local x0 = p.flat:clone()
    opt:step(function() p.grad:fill_(0 / 0); return 1 end)
    assert.equal(1, opt.skipped)
    assert.equal(0, (p.flat - x0):abs():max())
    H.assert_error(function() optim.chain(p.target, optim.scale(-1)):step(function() p.grad:fill_(0 / 0); return 1 end) end,
                   'chain.step', 'non-finite')
  end)

  it('follows the arena when the model changes dtype', function()
    local p = mlp('float32')
    local opt = optim.chain(p.target, optim.scale_by_adam {}, optim.masked(optim.trace { decay = 0.5 }, 'bias'),
                            optim.scale(-0.01))
    local first = opt:step(p.closure)
    for _ = 1, 3 do opt:step(p.closure) end
    p.target:double()
    local x = p.target:flat_parameters()
    assert.equal('float64', x.dtype)
    p.closure = (function()
      local q = mlp('float64')   -- the same data in float64, on the moved model
      return function()
        local out = p.target:forward(q.x)
        local loss = q.crit:forward(out, q.y)
        p.target:backward(q.x, q.crit:backward(out, q.y))
        return loss
      end
    end)()
    local last
    for _ = 1, 20 do last = opt:step(p.closure) end
    assert.equal('float64', opt.buffers['1.mu'].dtype)
    assert.is_true(last < first, ('loss %g -> %g'):format(first, last))
  end)

  it('CPU = GPU', function()
    if not (ms.cuda and ms.cuda.is_available()) then
      pending('no usable GPU')
      return
    end
    local function run(device)
      local p = quadratic('float32')
      local model = p.target:to('float32', device)
      local c = ms.full({ model.flat:numel() }, 0.5, { device = device })
      local opt = optim.chain(model, optim.clip_by_tensor_norm(1), optim.trace { decay = 0.9, nesterov = true },
                              optim.scale_by_adam {}, optim.add_decayed_weights(0.1, 'bias'),
                              optim.masked(optim.clip_global_norm(0.5), 'weight'), optim.scale(-0.05))
      for _ = 1, 10 do opt:step(function() model.gflat:copy_(model.flat - c); return 0 end) end
      return model.flat:to('cpu')
    end
    H.assert_close(run('cuda'), run('cpu'), 1e-5, 'chain GPU vs CPU')
  end)
end)
