-- The SAM family (lua/moonstep/optim/sharpness.lua and SAM, GSAM, WSAM, LookSAM,
-- FriendlySAM): the float64 test vectors of ../shared/reference/sam_family.md §11.1
-- (to 1e-9, and in float32 to float tolerance), the closure protocol (calls per step,
-- gradients zeroed before each, the pass number, BatchNorm statistics moved once,
-- dropout masks replayed, weights restored bit-exactly, non-finite passes skipped) and
-- misuse. The options (accumulation, loss scaling, clipping, EMA, groups, resume) are in
-- optim_sam_options_spec.lua; the reference trajectories in optim_sam_fixtures_spec.lua.
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim
local H = require 'helper'

local FAMILY = { 'SAM', 'GSAM', 'WSAM', 'LookSAM', 'FriendlySAM' }

local same = H.same_bits

local function close(t, want, tol, what)
  for i, v in ipairs(want) do
    local got = t:get(i)
    if math.abs(got - v) > tol * math.max(1, math.abs(v)) then
      error(('%s: element %d is %.12g, expected %.12g (tolerance %g)'):format(what, i, got, v, tol), 2)
    end
  end
end

-- The spec's quadratic: L(w) = 1/2 (w - c)' H (w - c), w0 = (1, -2, 0.5); two tensors
-- T1 = w[1:2] and T2 = w[3] (named "weight..." so the official ASAM form scales both).
local function quadratic(dtype)
  local o = { dtype = dtype or 'float64' }
  local Hm = ms.tensor({ { 2, 0.5, 0 }, { 0.5, 1, 0 }, { 0, 0, 3 } }, o)
  local c = ms.tensor({ 0.5, -0.5, 1 }, o)
  local set = ms.params { weight1 = ms.tensor({ 1, -2 }, o), weight2 = ms.tensor({ 0.5 }, o) }
  local flat, gflat = set:flat_parameters(), set:flat_gradients()
  local calls = 0
  local function closure()
    calls = calls + 1
    local d = flat - c
    local g = Hm:matmul(d:view(3, 1)):view(3)
    gflat:add_(g)            -- adds: a gradient not zeroed before the call would show
    return 0.5 * (d * g):sum()
  end
  return set, closure, function() return calls end
end

local VECTORS = {
  { 'SAM', { rho = 0.05 }, { 0.9753175003, -1.8721424971, 0.6614300114 } },
  { 'SAM', { rho = 0.5, adaptive = true }, { 1.0131385036, -1.7820373975, 0.6714529083 } },
  { 'SAM', { rho = 0.5, adaptive = 'asam', eta = 0.01 }, { 1.0131849342, -1.7817154004, 0.6721802873 } },
  { 'GSAM', { rho = 0.05, alpha = 0.4 }, { 0.9759500492, -1.8736182826, 0.6626955948 } },
  { 'WSAM', { rho = 0.05, gamma = 0.9 }, { 0.9778575029, -1.8492824743, 0.7528701029 } },
  { 'WSAM', { rho = 0.05, gamma = 0.9, decouple = false }, { 0.9778575029, -1.8492824743, 0.7528701029 } },
}

describe('the spec test vectors (sam_family.md §11.1)', function()
  for _, dtype in ipairs { 'float64', 'float32' } do
    local tol = dtype == 'float64' and 1e-9 or 2e-6
    for _, v in ipairs(VECTORS) do
      local name, cfg, want = v[1], v[2], v[3]
      it(('%s %s in %s'):format(name, H.describe and H.describe(cfg) or '', dtype), function()
        local set, closure = quadratic(dtype)
        local c = { base = optim.SGD { lr = 0.1 } }
        for k, x in pairs(cfg) do c[k] = x end
        local opt = optim[name](set, c)
        local loss, info = opt:step(closure)
        close(set:flat_parameters(), want, tol, name)
        assert.near(1.375, loss, 1e-6)
        assert.equal(2, info.passes)
        assert.is_true(info.loss2 > loss)      -- the ascent raised the loss
        assert.near(info.loss2 - loss, info.sharpness, 1e-12)
      end)
    end
    for _, scope in ipairs { 'global', 'tensor' } do
      it(('LookSAM k = 2, %s scope, two steps, in %s'):format(scope, dtype), function()
        local set, closure, calls = quadratic(dtype)
        local opt = optim.LookSAM(set, { base = optim.SGD { lr = 0.1 }, rho = 0.1, k = 2, alpha = 0.7, scope = scope })
        local _, i1 = opt:step(closure)
        close(set:flat_parameters(), { 0.9756350006, -1.8692849943, 0.6728600229 }, tol, 'w1')
        local gv = scope == 'global' and { -0.0329790652, 0.0759952373, -0.0688258753 }
                   or { -0.0170961709, -0.0034192342, 0 }
        close(opt.buffers.gv, gv, tol, 'g_v')
        local _, i2 = opt:step(closure)
        close(set:flat_parameters(), scope == 'global' and { 0.9815812385, -1.8312806961, 0.8390555567 }
                                     or { 1.0287640833, -1.7401798783, 0.7710020160 }, tol, 'w2')
        assert.equal(2, i1.passes); assert.equal(1, i2.passes); assert.equal(3, calls())
        assert.is_false(i1.reuse); assert.is_true(i2.reuse)
      end)
    end
  end

  it('GSAM with alpha = 0 and a constant rho is SAM; WSAM with gamma = 0.5 is SAM (plain SGD)', function()
    local function run(name, cfg)
      local set, closure = quadratic()
      cfg.base = optim.SGD { lr = 0.1 }
      local opt = optim[name](set, cfg)
      for _ = 1, 3 do opt:step(closure) end
      return set:flat_parameters()
    end
    local sam = run('SAM', { rho = 0.05 })
    H.assert_close(run('GSAM', { rho = 0.05, alpha = 0 }), sam, 1e-12, 'GSAM alpha 0')
    H.assert_close(run('WSAM', { rho = 0.05, gamma = 0.5 }), sam, 1e-12, 'WSAM gamma 0.5')
    H.assert_close(run('FriendlySAM', { rho = 0.05, sigma = 0 }), sam, 1e-12, 'FriendlySAM sigma 0')
  end)
end)

-- A small model with BatchNorm and dropout; closure(pass) on a fixed batch.
local function bn_model(seed)
  ms.manual_seed(seed or 3)
  local model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Dropout(0.3), nn.Linear(6, 3))
  model:to('float64')
  local x = H.random_tensor({ 10, 4 }, 11):to('float64')
  local y = ms.tensor({ 1, 2, 3, 1, 2, 3, 1, 2, 3, 1 }, { dtype = 'int64' })
  local crit = nn.CrossEntropyLoss()
  local seen = {}
  local function closure(pass)
    seen[#seen + 1] = pass
    local out = model:forward(x)
    local loss = crit:forward(out, y)
    model:backward(x, crit:backward(out, y))
    return loss
  end
  return model, closure, seen
end

describe('the closure protocol', function()
  it('calls the closure with the pass number, the documented number of times, grads zeroed before each', function()
    for _, name in ipairs(FAMILY) do
      local set, closure, calls = quadratic()
      local opt = optim[name](set, { base = optim.SGD { lr = 0.1 }, k = name == 'LookSAM' and 3 or nil })
      for _ = 1, 6 do opt:step(closure) end
      local want = name == 'LookSAM' and 6 + 2 or 12   -- LookSAM: 1 + 1/k a step
      assert.equal(want, calls(), name)
      assert.equal(want, opt.passes, name)
      assert.equal(6, opt.t); assert.equal(6, opt.base.t)
    end
    local model, closure, seen = bn_model()
    optim.SAM(model, { base = optim.SGD { lr = 0.1 } }):step(closure)
    assert.same({ 1, 2 }, seen)
  end)

  it('BatchNorm running statistics move once per step (bn = first), twice (both), never (none)', function()
    local function stats(policy)
      local model, closure = bn_model(5)
      local bn = model.modules[2]
      local before = bn.running_mean:clone()
      optim.SAM(model, { base = optim.SGD { lr = 0.1 }, bn = policy }):step(closure)
      return bn, before
    end
    local bn, before = stats('none')
    same(before, bn.running_mean, 'bn = none')
    assert.is_true(bn.update_stats)
    local first = stats('first')
    local both = stats('both')
    assert.is_true((first.running_mean - before):abs():max() > 0, 'first moved them')
    assert.is_true((both.running_mean - first.running_mean):abs():max() > 0, 'both moved them again')
    -- once: equal to one momentum update from the batch statistics of pass 1
    local m2, c2 = bn_model(5)
    local bn2 = m2.modules[2]
    c2(1)
    same(bn2.running_mean, first.running_mean, 'one update')
    same(bn2.running_var, first.running_var, 'one update (var)')
  end)

  it('dropout draws the same masks in every pass (replay_rng), different ones without', function()
    local function masks(replay)
      local model, closure = bn_model(7)
      local drop = model.modules[4]
      local got = {}
      local function c(pass)
        local loss = closure(pass)
        got[pass] = drop.output:ne(0):to('float64')
        return loss
      end
      optim.SAM(model, { base = optim.SGD { lr = 0.1 }, replay_rng = replay }):step(c)
      return got
    end
    local on = masks(true)
    same(on[1], on[2], 'masks with replay_rng')
    local off = masks(false)
    assert.is_true((off[1] - off[2]):abs():max() > 0, 'masks without replay differ')
  end)

  it('restores the weights bit-exactly: with lr = 0 a step leaves them as they were', function()
    for _, name in ipairs(FAMILY) do
      for _, adaptive in ipairs { false, true, 'asam' } do
        local model, closure = bn_model(9)
        local before = model:flat_parameters():clone()
        local opt = optim[name](model, { base = optim.SGD { lr = 0 }, adaptive = adaptive,
                                         eta = adaptive == 'asam' and 0.01 or 0,
                                         k = name == 'LookSAM' and 2 or nil, rho = 0.3 })
        for _ = 1, 3 do opt:step(closure) end
        same(before, model:flat_parameters(), name .. ' ' .. tostring(adaptive))
      end
    end
  end)

  it('a non-finite pass skips the update (counted, weights as before); skip_nonfinite = false raises after restoring', function()
    for _, name in ipairs(FAMILY) do
      for _, bad_pass in ipairs { 1, 2 } do
        local set, closure = quadratic()
        local before = set:flat_parameters():clone()
        local function c(pass)
          local l = closure(pass)
          if pass == bad_pass then set:flat_gradients():narrow(1, 2, 1):fill_(0 / 0) end
          return l
        end
        local opt = optim[name](set, { base = optim.SGD { lr = 0.1 } })
        local loss, info = opt:step(c)
        assert.is_true(info.skipped, name)
        assert.equal(1, opt.skipped); assert.equal(0, opt.t); assert.equal(0, opt.base.t)
        assert.near(1.375, loss, 1e-12)
        same(before, set:flat_parameters(), name .. ' skipped at pass ' .. bad_pass)
        local strict = optim[name](set, { base = optim.SGD { lr = 0.1 }, skip_nonfinite = false })
        H.assert_error(function() strict:step(c) end, name .. '.step', 'non-finite')
        same(before, set:flat_parameters(), name .. ' raised at pass ' .. bad_pass)
        -- a closure that raises in pass 2: the weights are restored, the error goes on
        local boom = optim[name](set, { base = optim.SGD { lr = 0.1 } })
        H.assert_error(function()
          boom:step(function(pass) if pass == 2 then error('boom in pass 2') end; return closure(pass) end)
        end, 'boom in pass 2')
        same(before, set:flat_parameters(), name .. ' after an error in pass 2')
      end
    end
  end)
end)

describe('the forms and options of the ascent', function()
  -- the pass-2 point of one SAM-family step on the bn-free MLP, and g1 at w0
  local function probe(name, cfg)
    ms.manual_seed(13)
    local model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    model:to('float64')
    local x = H.random_tensor({ 6, 4 }, 17):to('float64')
    local crit = nn.MSELoss()
    local y = H.random_tensor({ 6, 2 }, 19):to('float64')
    local function c()
      local out = model:forward(x)
      local l = crit:forward(out, y)
      model:backward(x, crit:backward(out, y))
      return l
    end
    model:zero_grad(); c()
    local g1, w0 = model:flat_gradients():clone(), model:flat_parameters():clone()
    local at2
    cfg.base = optim.SGD { lr = 0.1 }
    local opt = optim[name](model, cfg)
    opt:step(function(pass)
      if pass == 2 then at2 = model:flat_parameters():clone() end
      return c()
    end)
    return at2, w0, g1, require('moonstep.optim.Optimizer').arena_of(model).entries, opt
  end

  it("use_gc centralizes g1 per output row after its (raw) norm", function()
    local at2, w0, g1, entries = probe('SAM', { rho = 0.05, use_gc = true })
    local n = math.sqrt((g1 * g1):sum())
    local gc = g1:clone()
    for _, e in ipairs(entries) do
      if #e.shape > 1 then
        local v = gc:narrow(1, e.offset + 1, e.numel):view(e.shape[1], e.numel / e.shape[1])
        v:sub_(v:mean(2, true))
      end
    end
    H.assert_close(at2, w0 + gc * (0.05 / (n + 1e-12)), 1e-14, 'use_gc')
  end)

  it("adaptive = 'abs' is big_vision's form: rho |w| g / (||g|| + eps)", function()
    local at2, w0, g1 = probe('SAM', { rho = 0.5, adaptive = 'abs' })
    local n = math.sqrt((g1 * g1):sum())
    H.assert_close(at2, w0 + (w0:abs() * g1) * (0.5 / (n + 1e-12)), 1e-14, 'abs')
  end)

  it('GSAM rho follows the base lr between rho_min and rho_max (ProportionScheduler)', function()
    local lr = ms.schedule.linear { init = 0.1, final = 0.0, steps = 10 }
    local set, closure = quadratic()
    local opt = optim.GSAM(set, { base = optim.SGD { lr = lr }, rho_min = 0.01, rho_max = 0.05, lr_min = 0 })
    for t = 1, 3 do
      local _, info = opt:step(closure)
      assert.near(0.01 + 0.04 * lr(t) / 0.1, info.rho, 1e-15)
    end
  end)

  it('WSAM max_norm clips g1 and g2 to that global norm (clip_grad_norm_)', function()
    local at2, w0, g1, _, opt = probe('WSAM', { rho = 0.05, max_norm = 1e-3, gamma = 0.5, decouple = false })
    assert.is_true(math.sqrt((g1 * g1):sum()) > 1e-3)
    -- gamma = 0.5: the base steps with g2 (clipped); check the SGD step had norm <= lr * 1e-3
    local step = (w0 - opt.arena.flat)
    assert.is_true(math.sqrt((step * step):sum()) <= 0.1 * 1e-3 * (1 + 1e-9))
    H.assert_close(at2, w0 + g1 * (0.05 / (math.sqrt((g1 * g1):sum()) + 1e-12)), 1e-14, 'e from the raw g1')
  end)

  it('CPU = GPU for each member', function()
    if not (ms.cuda and ms.cuda.is_available()) then
      pending('no usable GPU')
      return
    end
    for _, name in ipairs(FAMILY) do
      for _, adaptive in ipairs { false, true, 'asam' } do
        local function run(device)
          ms.manual_seed(23)
          local model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)):to(device)
          local x = H.random_tensor({ 9, 5 }, 29):to(device)
          local y = ms.tensor({ 1, 2, 3, 1, 2, 3, 1, 2, 3 }, { dtype = 'int64' }):to(device)
          local crit = nn.CrossEntropyLoss()
          local opt = optim[name](model, { base = optim.Adam { lr = 0.01 }, adaptive = adaptive,
                                           eta = adaptive == 'asam' and 0.01 or 0,
                                           k = name == 'LookSAM' and 2 or nil })
          for _ = 1, 5 do
            opt:step(function()
              local out = model:forward(x)
              local l = crit:forward(out, y)
              model:backward(x, crit:backward(out, y))
              return l
            end)
          end
          return model:flat_parameters():to('cpu')
        end
        H.assert_close(run('cuda'), run('cpu'), 1e-5, name .. ' GPU vs CPU')
      end
    end
  end)
end)

describe('robustness', function()
  it('a step from inside the closure of a step on the same parameters is refused; the weights come back', function()
    for _, name in ipairs { 'SAM', 'GSAM', 'WSAM', 'LookSAM', 'FriendlySAM', 'BSAM', 'ACME', 'LBFGS' } do
      local set, closure = quadratic()
      local before = set:flat_parameters():clone()
      local cfg = { base = optim.SGD { lr = 0 } }
      if name == 'BSAM' then cfg = { num_data = 10, lr = 0 } elseif name == 'ACME' then cfg = { lr = 0 }
      elseif name == 'LBFGS' then cfg = { lr = 0 } end
      local opt = optim[name](set, cfg)
      H.assert_error(function()
        opt:step(function(pass)
          local l = closure(pass)
          if pass == 2 then opt:step(closure) end
          return l
        end)
      end, name .. '.step', 'taking a step on the same parameters')
      same(before, set:flat_parameters(), name .. ': weights after the refused nested step')
      opt:step(closure)   -- and the optimizer still works
    end
  end)

  it('an interrupt anywhere in a step (Ctrl-C in the REPL raises at a line) leaves the weights as before', function()
    local src = debug.getinfo(require('moonstep.optim.sharpness').step_body, 'S').source
    local nlines = 0
    for _ in io.lines((src:gsub('^@', ''))) do nlines = nlines + 1 end
    for _, name in ipairs { 'SAM', 'LookSAM' } do
      for line = 1, nlines do   -- every line of optim/sharpness.lua
        local set, closure = quadratic()
        local opt = optim[name](set, { base = optim.SGD { lr = 0 }, k = name == 'LookSAM' and 1 or nil })
        opt:step(closure)
        local before = set:flat_parameters():clone()
        local fired = false
        debug.sethook(function(_, l)
          if not fired and l == line and debug.getinfo(2, 'S').source == src then
            fired = true
            error('interrupted (Ctrl-C)', 2)
          end
        end, 'l')
        local ok = pcall(opt.step, opt, closure)
        debug.sethook()
        same(before, set:flat_parameters(), ('%s interrupted at sharpness.lua:%d'):format(name, line))
        if fired then assert.is_false(ok) end
      end
    end
  end)

  it('a base is a first-order optimizer of its own; a failed bind leaves the wrapper unbound', function()
    local set, closure = quadratic()
    H.assert_error(function() optim.SAM(set, { base = optim.LookSAM { base = optim.SGD { lr = 0.1 } } }) end,
                   'SAM: base is optim.LookSAM', 'first-order')
    H.assert_error(function() optim.SAM(set, { base = optim.LBFGS }) end, 'SAM: base is optim.LBFGS')
    local b = optim.SGD { lr = 0.1, momentum = 0.9 }
    optim.SAM(set, { base = b })
    H.assert_error(function() optim.GSAM(set, { base = b }) end, 'GSAM: base is an optim.SGD that another wrapper already uses')
    local w = optim.SAM { base = optim.SGD { lr = 0.1, groups = { { match = 'nothing' } } } }
    H.assert_error(function() w:bind(set) end, 'SAM.bind (its base, optim.SGD)', 'matches no parameter')
    w.base.groups = {}
    w.base = optim.SGD { lr = 0.1 }
    w:bind(set)
    w:step(closure)
    assert.equal(1, w.t)
  end)
end)

describe('misuse', function()
  it('is refused with errors naming the optimizer, the option and the value', function()
    local set = quadratic()
    local b = function() return optim.SGD { lr = 0.1 } end
    H.assert_error(function() optim.SAM(set, { base = b() }):step() end, 'SAM.step', 'closure is nil', 'twice a step')
    H.assert_error(function() optim.LookSAM(set, { base = b() }):step(5) end, 'LookSAM.step', 'every k-th')
    H.assert_error(function() optim.SAM(set, { base = b(), adaptive = 'yes' }) end, 'SAM', 'adaptive', "'asam'")
    H.assert_error(function() optim.SAM(set, { rho = 0.1 }) end, 'SAM: base is missing')
    H.assert_error(function() optim.SAM(set, { base = b(), clipnorm = 1, clipvalue = 1 }) end, 'SAM', 'exclusive')
    H.assert_error(function() optim.SAM(set, { base = b(), bn = 'second' }) end, 'SAM', 'bn', 'first')
    H.assert_error(function() optim.LookSAM(set, { base = b(), k = 0 }) end, 'LookSAM', 'k')
    H.assert_error(function() optim.LookSAM(set, { base = b(), alpha = 1 }) end, 'LookSAM', 'alpha', '(0, 1)')
    H.assert_error(function() optim.LookSAM(set, { base = b(), scope = 'layer' }) end, 'LookSAM', 'scope')
    H.assert_error(function() optim.WSAM(set, { base = b(), gamma = 1 }) end, 'WSAM', 'gamma', '[0, 1)')
    H.assert_error(function() optim.WSAM(set, { base = b(), gradient_accumulation_steps = 2 }) end,
                   'WSAM', 'decouple = false')
    H.assert_error(function() optim.GSAM(set, { base = b(), rho_max = 0.1 }) end, 'GSAM', 'rho_min and rho_max')
    H.assert_error(function() optim.GSAM(set, { base = b(), alpha = 2 }) end, 'GSAM', 'alpha')
    H.assert_error(function() optim.SAM(set, { base = b(), gradient_accumulation_steps = 0 }) end,
                   'SAM', 'gradient_accumulation_steps')
    H.assert_error(function() optim.SAM(set, { base = b() }):finalize() end, 'SAM.finalize', 'use_ema')
    H.assert_error(function() optim.GSAM(set, { base = b() }):apply() end, 'GSAM.apply', 'opt:step(closure)')
    H.assert_error(function() optim.LookSAM(set, { base = b(), groups = { { match = 'weight1', k = 3 } } }) end,
                   'LookSAM', 'groups[1].k', 'whole model')
    local _, closure = quadratic()
    H.assert_error(function() optim.SAM(set, { base = b() }):step(function() closure(); return 'x' end) end,
                   'SAM.step', 'closure returned "x"')
  end)
end)
