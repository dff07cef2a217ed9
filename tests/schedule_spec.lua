-- ms.schedule: every schedule against PyTorch's lr_scheduler (tests/fixtures/torch_schedules.lua,
-- from scripts/fixtures/schedules.py), optax's join/warm-up semantics, the AutoSGM windows
-- against acme_autosgm.md §2.7 and values of the authors' reference (07b5e79), errors, state,
-- and plot. The step convention: PyTorch's lr after k scheduler steps is our s(k + 1).
local ms = require 'moonstep'
local H = require 'helper'
local schedule = ms.schedule
local fixtures = require 'fixtures.torch_schedules'

local function close(got, want, tol, msg)
  tol = tol or 1e-12
  local ok = got == want or (got ~= got and want ~= want)
             or math.abs(got - want) <= tol * math.max(1e-3, math.abs(want))
  assert(ok, ('%s: %.17g, expected %.17g'):format(msg or '', got, want))
end

local function gnuplot_missing()
  return not H.sh('command -v gnuplot'):match('%S')
end

describe('ms.schedule against PyTorch lr_scheduler', function()
  it('has a fixture for every torch-backed kind', function()
    local kinds = {}
    for _, c in ipairs(fixtures) do kinds[c.kind] = true end
    for _, k in ipairs { 'step', 'multistep', 'exponential', 'cosine', 'linear', 'polynomial',
                         'one_cycle', 'one_cycle_momentum', 'reduce_on_plateau' } do
      assert.is_true(kinds[k] or false, k)
    end
  end)

  for _, c in ipairs(fixtures) do
    it(c.name .. ': s(k + 1) = the lr after k scheduler steps', function()
      local s = schedule[c.kind](c.opts)
      if c.metrics then
        close(s(1), c.values[1], nil, c.name .. ' initial')
        for j, m in ipairs(c.metrics) do
          local v = s:observe(m)
          close(v, c.values[j + 1], nil, ('%s after %d observations'):format(c.name, j))
          close(s(j + 1), v, 0, c.name .. ' s(t) = the current value')
        end
      else
        for j, want in ipairs(c.values) do
          close(s(j), want, 1e-12, ('%s t=%d'):format(c.name, j))
          close(s:value(j), want, 1e-12, ('%s :value(%d)'):format(c.name, j))
        end
      end
    end)
  end

  it('holds cosine at eta_min after T_max, and one_cycle at its final value after total_steps', function()
    local c = schedule.cosine { init = 0.1, T_max = 10, eta_min = 0.001 }
    for t = 11, 40 do assert.are.equal(0.001, c(t)) end
    local o = schedule.one_cycle { max_lr = 0.5, total_steps = 23 }
    close(o(23), 0.5 / 25 / 1e4, 1e-12, 'one_cycle s(N) = min')
    for t = 24, 30 do assert.are.equal(o(23), o(t)) end
  end)

  it('one_cycle: a warm-up phase of zero length (pct N - 1 = 0, a division by zero in PyTorch) starts at max_lr', function()
    local o = schedule.one_cycle { max_lr = 1, total_steps = 10, pct_start = 0.1 }
    assert.are.equal(1, o(1))
    local lo = 1 / 25 / 1e4
    close(o(2), lo + (1 - lo) / 2 * (math.cos(math.pi / 9) + 1), 1e-14, 'then anneals from max_lr')
    local m = schedule.one_cycle_momentum { total_steps = 10, pct_start = 0.1 }
    assert.are.equal(0.85, m(1))
  end)

  it('warm restarts restart at the right steps for T_mult > 1 (integer arithmetic)', function()
    local s = schedule.cosine { init = 1, T_0 = 3, T_mult = 3 }
    -- cycles of 3, 9, 27 steps: restarts (value = init) at steps 1, 4, 13, 40
    for _, t in ipairs { 1, 4, 13, 40 } do assert.are.equal(1, s(t)) end
    for _, t in ipairs { 2, 3, 5, 12, 14, 39 } do assert.is_true(s(t) < 1) end
  end)
end)

describe('ms.schedule conventions', function()
  it('s(1) is the initial value; milestones and step sizes count steps done', function()
    assert.are.equal(0.1, schedule.step { init = 0.1, step_size = 30 }(1))
    local m = schedule.multistep { init = 1, milestones = { 3 }, gamma = 0.5 }
    assert.are.same({ 1, 1, 1, 0.5 }, { m(1), m(2), m(3), m(4) })
    local st = schedule.step { init = 1, step_size = 2, gamma = 0.5 }
    assert.are.same({ 1, 1, 0.5, 0.5, 0.25 }, { st(1), st(2), st(3), st(4), st(5) })
    assert.are.equal(1, schedule.exponential { gamma = 0.5 }(1))
    assert.are.equal(0.25, schedule.exponential { gamma = 0.5 }(3))
  end)

  it('parameters are readable fields, and the formula reads them at each call', function()
    local s = schedule.step { init = 0.1, step_size = 3, gamma = 0.5 }
    assert.are.same({ 0.1, 3, 0.5 }, { s.init, s.step_size, s.gamma })
    s.gamma = 0.1
    close(s(4), 0.01, 1e-15, 'after s.gamma = 0.1')
    local c = schedule.cosine { T_0 = 5, T_mult = 2 }
    assert.are.same({ 5, 2, 0, 1 }, { c.T_0, c.T_mult, c.eta_min, c.init })
    assert.is_nil(c.T_max)
    assert.truthy(tostring(c):find('schedule.cosine{', 1, true))
  end)

  it('constant, linear and polynomial formulas', function()
    assert.are.equal(0.3, schedule.constant(0.3)(99))
    assert.are.equal(0.3, schedule.constant { value = 0.3 }(1))
    local l = schedule.linear { init = 1, final = 0, steps = 4 }
    assert.are.same({ 1, 0.75, 0.5, 0.25, 0, 0 }, { l(1), l(2), l(3), l(4), l(5), l(9) })
    local p = schedule.polynomial { init = 2, final = 1, steps = 4, power = 2 }
    assert.are.same({ 2, 1 + 0.5625, 1.25, 1.0625, 1, 1 }, { p(1), p(2), p(3), p(4), p(5), p(6) })
  end)

  it('accepts a plain function wherever a schedule goes', function()
    local f = function(t) return 1 / t end
    assert.are.equal(0.5, schedule.value(f, 2))
    assert.are.equal(7, schedule.value(7, 2))
    local j = schedule.join { schedules = { f, 3 }, boundaries = { 2 } }
    assert.are.same({ 1, 0.5, 3 }, { j(1), j(2), j(3) })
    local w = schedule.warmup { steps = 2, schedule = f }
    assert.are.same({ 0, 0.5, 1, 0.5 }, { w(1), w(2), w(3), w(4) })
    local lam = schedule.lambda(f)
    assert.is_true(schedule.is_schedule(lam))
    assert.is_false(schedule.is_schedule(f))
    assert.are.equal(0.25, lam(4))
  end)
end)

describe('schedule.join (optax join_schedules)', function()
  it('switches after each boundary, the next schedule counting from its boundary', function()
    local seen = {}
    local probe = function(t) seen[#seen + 1] = t; return 100 + t end
    local j = schedule.join {
      schedules = { schedule.constant(1), probe, schedule.exponential { init = 8, gamma = 0.5 } },
      boundaries = { 3, 5 },
    }
    local got = {}
    for t = 1, 8 do got[t] = j(t) end
    -- optax: count c (= t - 1) >= boundary b -> schedule(c - b), i.e. our t - b
    assert.are.same({ 1, 1, 1, 101, 102, 8, 4, 2 }, got)
    assert.are.same({ 1, 2 }, seen)
    assert.are.same({ 3, 5 }, j.boundaries)
  end)

  it('a zero boundary skips the first schedule; equal boundaries skip the middle one', function()
    local j = schedule.join { schedules = { 1, 2, 3 }, boundaries = { 0, 0 } }
    assert.are.same({ 3, 3 }, { j(1), j(2) })
    local k = schedule.sequential { schedules = { 1, 2, 3 }, boundaries = { 2, 2 } }
    assert.are.same({ 1, 1, 3 }, { k(1), k(2), k(3) })
  end)

  it('warmup is join(linear into s): optax warmup_cosine_decay_schedule values', function()
    local peak, W, D = 0.4, 5, 25   -- optax: init_value 0, warmup_steps W, decay_steps D, end 0
    local s = schedule.warmup { steps = W, schedule = schedule.cosine { init = peak, T_max = D - W } }
    for c = 0, 40 do   -- optax count c is our step c + 1
      local want
      if c < W then want = peak * c / W
      else want = peak * 0.5 * (1 + math.cos(math.pi * math.min(c - W, D - W) / (D - W))) end
      close(s(c + 1), want, 1e-13, ('count %d'):format(c))
    end
    local j = schedule.join { schedules = { schedule.linear { init = 0.1, final = peak, steps = W },
                                            s.schedule }, boundaries = { W } }
    local w2 = schedule.warmup { steps = W, init = 0.1, schedule = s.schedule }
    for t = 1, 30 do assert.are.equal(j(t), w2(t)) end
  end)
end)

describe('schedule.reduce_on_plateau', function()
  it('state round trip: a resumed run equals an uninterrupted one', function()
    local metrics = { 1, 0.9, 0.95, 0.96, 0.97, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.1 }
    local opts = { init = 0.1, patience = 1, cooldown = 1, factor = 0.5 }
    local a = schedule.reduce_on_plateau(opts)
    local ref = {}
    for i, m in ipairs(metrics) do ref[i] = a:observe(m) end
    local b = schedule.reduce_on_plateau(opts)
    for i = 1, 6 do b:observe(metrics[i]) end
    local st = b:state()
    local c = schedule.reduce_on_plateau(opts):load_state(st)
    for i = 7, #metrics do assert.are.equal(ref[i], c:observe(metrics[i])) end
    assert.are.equal(a:get(), c(1))
    assert.are.equal(a.best, c.best)
  end)

  it('nests in composites: warmup into a plateau schedule saves and restores it', function()
    local p = schedule.reduce_on_plateau { init = 1, patience = 0 }
    local w = schedule.warmup { steps = 2, schedule = p }
    p:observe(1); p:observe(2)              -- one bad epoch -> 0.1
    local st = w:state()
    local p2 = schedule.reduce_on_plateau { init = 1, patience = 0 }
    local w2 = schedule.warmup { steps = 2, schedule = p2 }
    w2:load_state(st)
    assert.are.equal(w(5), w2(5))
    close(w2(5), 0.1, 1e-15, 'restored')
    H.assert_error(function() schedule.cosine { T_max = 3 }:load_state(st) end,
                   'schedule.cosine.load_state', 'schedule.warmup')
    H.assert_error(function() p2:load_state({ kind = 'schedule.reduce_on_plateau' }) end,
                   'schedule.reduce_on_plateau.load_state', 'current')
  end)

  it('refuses a metric that is not a number', function()
    local p = schedule.reduce_on_plateau {}
    H.assert_error(function() p:observe('x') end, 'schedule.reduce_on_plateau.observe', 'metric', '"x"')
  end)
end)

describe('schedule.window (AutoSGM rc_cfg, acme_autosgm.md §2.7)', function()
  local N = 1000
  local function w(o)
    o.tau = o.tau or N
    return schedule.window(o)
  end

  it('matches the verified values of §2.7 (ordered input, x = 0, N = 1000, half window)', function()
    local at500 = {
      { 1, 2, 0.502 }, { 2, 1, 0.501 }, { 2, 2, 0.251 }, { 3, 0.9, 0.488 }, { 3, 0.5, 0.415 },
      { 3, 0.05, 0.184 }, { 4, 1.8, 0.510 }, { 4, 2, 0.564 }, { 5, 4, 0.502 }, { 6, 4, 0.941 },
    }
    for _, c in ipairs(at500) do
      local s = w { rcm = c[1], n = c[2] }
      local msg = ('rcm %d n %s'):format(c[1], c[2])
      -- 5.5e-4: the spec prints 0.184 for rcm 3 n .05, where the reference computes 0.18345
      assert(math.abs(s(500) - c[3]) <= 5.5e-4, msg .. (': F(500) = %.6f, expected %.3f'):format(s(500), c[3]))
      if c[1] <= 5 then
        assert.are.equal(1, s(1))
        assert(s(N) < 2e-3 and s(N) >= 0, msg .. (': F(N) = %g, expected about 0'):format(s(N)))
      end
    end
    -- rcm 6 is not normalized (the reference's quirk, kept): 1.058 at the start, 0.311 at f = 1
    local r6 = w { rcm = 6, n = 4 }
    assert(math.abs(r6(1) - 1.058) < 5e-4, r6(1))
    local z1 = (1 / 3 - 1 / 17) / (16 / 17 - 1 / 17)   -- s6(1) = 1 / (1 + 2^1)
    assert(math.abs(z1 - 0.311) < 5e-4)
    assert(math.abs(r6(N) - z1) < 2e-3, r6(N))
    assert.are.equal(1, w { rcm = 0 }(1))
    assert.are.equal(1, w { rcm = 0 }(777))
  end)

  it('full raised cosine goes 0 -> 1 (middle) -> 0; half with x = .1, e = .5 is flat then anneals to .1', function()
    local full = w { rcm = 1, n = 2, m = 0 }
    assert.is_true(full(1) >= 0 and full(1) < 1e-30)        -- cos(pi / 2)^2
    close(full(N / 2 + 1), 1, 1e-15, 'middle')
    assert(full(N) < 1e-4, full(N))
    for t = 2, N / 2 do assert.is_true(full(t) > full(t - 1)) end
    local half = w { rcm = 1, n = 2, x = 0.1, e = 0.5 }
    for t = 1, N / 2 do assert.are.equal(1, half(t)) end
    assert.is_true(half(N / 2 + 2) < 1)
    assert(math.abs(half(N) - 0.1) < 1e-4, half(N))
    for t = N / 2 + 2, N do assert.is_true(half(t) <= half(t - 1)) end
  end)

  it('is periodic: a new identical frame every N iterations (N = spe for cfact 2)', function()
    local s = schedule.window { rcm = 1, tau = 4, spe = 25, cfact = 1 }
    for t = 1, 100 do assert.are.equal(s(t), s(t + 100)) end
    local e = schedule.window { rcm = 2, n = 1, tau = 4, spe = 25, cfact = 2 }
    assert.are.same({ 25, 'iterations' }, { e:length() })
    for t = 1, 25 do assert.are.equal(e(t), e(t + 25)); assert.are.equal(e(t), e(t + 75)) end
    close(e(2), 1 - 1 / 25, 1e-15, 'linear decay over one epoch')
  end)

  it('staircase cfact > 2: cfact steps of the shape over tau spe iterations', function()
    local s = schedule.window { rcm = 1, tau = 10, spe = 10, cfact = 4 }
    -- at each sub-window start the value is (Ms - i + 1) / Ms
    for i = 1, 4 do close(s((i - 1) * 25 + 1), (4 - i + 1) / 4, 1e-15, 'step ' .. i) end
    -- rcm 2 has no staircase (as in the reference): the plain polynomial
    local p = schedule.window { rcm = 2, n = 1, tau = 10, spe = 10, cfact = 4 }
    close(p(51), 0.5, 1e-15, 'rcm 2 with cfact 4')
  end)

  it('Kronecker input (inseq = 1): the same schedule at quasi-random abscissae, max diff ~2e-3 at N = 1000', function()
    local rect, kron = w { rcm = 1 }, w { rcm = 1, inseq = 1 }
    local d = 0
    for t = 1, N do d = math.max(d, math.abs(rect(t) - kron(t))) end
    assert(d < 3e-3 and d > 5e-4, ('max |rect - kron| = %g, expected about 2e-3'):format(d))
    assert.are.equal(1, kron(1))
    for t = 2, N do assert.is_true(kron(t) <= kron(t - 1)) end
    for t = 1, 50 do assert.are.equal(kron(t), kron(t + N)) end
  end)

  it('cfact 0 steps once per epoch, k = ceil(t / spe); compat = true uses the reference period tau', function()
    local s = schedule.window { rcm = 2, n = 1, tau = 5, spe = 3, cfact = 0 }
    assert.are.same({ 5, 'epochs' }, { s:length() })
    local r = schedule.window { rcm = 2, n = 1, tau = 5, spe = 1, cfact = 1 }   -- the same by epoch
    for t = 1, 45 do
      assert.are.equal(math.ceil(t / 3), s:epoch(t))
      assert.are.equal(r(math.ceil(t / 3)), s(t), 't = ' .. t)
    end
    local c = schedule.window { rcm = 2, n = 1, tau = 5, spe = 3, cfact = 0, compat = true }
    for t = 1, 45 do assert.are.equal(math.ceil(t / 5), c:epoch(t)) end
    assert.are_not.equal(s(4), c(4))
    assert.are.equal(0, schedule.window { rcm = 1, tau = 1, spe = 10, compat = true }:epoch(7))
  end)

  it('takes the seed\'s rc_cfg tuple in order', function()
    local a = schedule.window { 1, 0, 0.1, 2, 0, 10, 7, 1, 0.2 }
    local b = schedule.window { rcm = 1, inseq = 0, x = 0.1, n = 2, m = 0, tau = 10, spe = 7, cfact = 1, e = 0.2 }
    for t = 1, 80 do assert.are.equal(b(t), a(t)) end
    assert.are.same({ 0.1, 0.2, 7 }, { a.x, a.e, a.spe })
    H.assert_error(function() schedule.window { 1, 0, rcm = 2 } end, 'schedule.window', 'positional', '"rcm"')
    local c = schedule.window { 1, 0, 0, 2, 1, 4, 3, 0, 0, compat = true }
    assert.is_true(c.compat)
    assert.are.equal(2, c:epoch(5))   -- the reference's epoch period tau = 4
  end)

  -- Values of the authors' reference (somefunAgba/autosgm 07b5e79, WINF / WINF_II stepped with
  -- its own epoch counter for compat = true, with k = ceil(t / spe) otherwise), computed
  -- once; cfg is the rc_cfg tuple (rcm, inseq, x, n, m, tau, spe, cfact, e).
  local reference = {
    { "rect raised cosine, staircase cfact 3", cfg = {1, 0, 0.1, 2, 1, 4, 6, 3, 0}, compat = true,
      values = {1.0, 0.988581929876693, 0.9560660171779822, 0.9074025148547634, 0.85, 0.7925974851452365, 0.743933982822018, 0.7114180701233069, 0.7, 0.6885819298766931, 0.6560660171779822, 0.6074025148547635, 0.55, 0.4925974851452366, 0.4439339828220179, 0.411418070123307, 0.4, 0.38858192987669304, 0.35606601717798214, 0.30740251485476344, 0.25000000000000006, 0.19259748514523656, 0.1439339828220179, 0.111418070123307, 1.0, 0.988581929876693, 0.9560660171779822, 0.9074025148547634, 0.85, 0.7925974851452365, 0.743933982822018, 0.7114180701233069, 0.7, 0.6885819298766931, 0.6560660171779822, 0.6074025148547635, 0.55, 0.4925974851452366, 0.4439339828220179, 0.411418070123307, 0.4, 0.38858192987669304, 0.35606601717798214, 0.30740251485476344} },
    { "rect logistic staircase cfact 4, flat top .3", cfg = {5, 0, 0, 4, 1, 2, 9, 4, 0.3}, compat = true,
      values = {1, 1, 1, 1, 1, 1, 0.9757910674788599, 0.8825271727341564, 0.7880164428977197, 0.7333183572894486, 0.6433584308303775, 0.5410504590261274, 0.4844018994027067, 0.402788516607759, 0.29532378326631004, 0.234849876216017, 0.16175943315605648, 0.05381467241674047, 1, 1, 1, 1, 1, 1, 0.9757910674788599, 0.8825271727341564, 0.7880164428977197, 0.7333183572894486, 0.6433584308303775, 0.5410504590261274, 0.4844018994027067, 0.402788516607759, 0.29532378326631004, 0.234849876216017, 0.16175943315605648, 0.05381467241674047, 1, 1, 1, 1, 1, 1, 0.9757910674788599, 0.8825271727341564} },
    { "rect simple polynomial, full window, flat top", cfg = {4, 0, 0.1, 1.8, 0, 10, 7, 1, 0.3}, compat = true,
      values = {0.1, 0.10470021310366898, 0.11817674999937841, 0.13950918629336528, 0.1677982377440671, 0.20216596687075095, 0.24175598287159225, 0.285733630444296, 0.33328616143208245, 0.38362288085537877, 0.4359752554986639, 0.4895969682723581, 0.5437638942043156, 0.5977739627089027, 0.650946853285719, 0.7026234436509422, 0.7521648823800953, 0.7989510765330706, 0.8423782353134825, 0.881854819234676, 0.9167946271551142, 0.9466042994291524, 0.970658533503471, 0.9882425691077259, 0.9983679910136404, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1} },
    { "rect beta-exp, restarts every epoch (cfact 2)", cfg = {3, 0, 0, 0.5, 1, 3, 5, 2, 0}, compat = true,
      values = {1.0, 0.7411011265922482, 0.515716566510398, 0.3195079107728942, 0.14869835499703488, 1.0, 0.7411011265922482, 0.515716566510398, 0.3195079107728942, 0.14869835499703488, 1.0, 0.7411011265922482, 0.515716566510398, 0.3195079107728942, 0.14869835499703488, 1.0, 0.7411011265922482, 0.515716566510398, 0.3195079107728942, 0.14869835499703488, 1.0, 0.7411011265922482, 0.515716566510398, 0.3195079107728942, 0.14869835499703488, 1.0, 0.7411011265922482, 0.515716566510398, 0.3195079107728942, 0.14869835499703488, 1.0, 0.7411011265922482, 0.515716566510398, 0.3195079107728942, 0.14869835499703488, 1.0, 0.7411011265922482, 0.515716566510398, 0.3195079107728942, 0.14869835499703488, 1.0, 0.7411011265922482, 0.515716566510398, 0.3195079107728942} },
    { "Kronecker raised cosine, half", cfg = {1, 1, 0, 2, 1, 10, 7, 1, 0}, compat = true,
      values = {1.0, 0.9995730270036411, 0.9982928372383233, 0.9970759214682623, 0.9944204633304666, 0.9883378868140879, 0.9834850026073872, 0.9800722985671529, 0.9738880988356436, 0.9621727780689024, 0.9538955667921958, 0.9388675395774312, 0.9285941296187161, 0.9218776474061984, 0.9104291684829428, 0.8904294701425565, 0.8771902889070148, 0.8686844390391599, 0.854414707151708, 0.8300547890504332, 0.814254598414804, 0.7875647145698681, 0.7704188691789925, 0.7595893331992449, 0.7417111928558693, 0.7119229975239546, 0.6930305411022181, 0.6617779438989015, 0.6420921435037499, 0.6298021524507444, 0.6097406846231894, 0.5768986531118305, 0.5564198638276178, 0.5437128623584798, 0.523095722970181, 0.4896683375447266, 0.4690226579976807, 0.4357446551005039, 0.4153119137480628, 0.4027538921973, 0.38257252335455855, 0.3503580677775634, 0.330773860262599, 0.31881255495975996} },
    { "Kronecker rcm 6 full: the descending sort", cfg = {6, 1, 0, 4, 0, 10, 7, 1, 0.3}, compat = true,
      values = {0.34139937853031865, 0.3924833592577793, 0.4787308455514725, 0.5327969090930463, 0.565976555074462, 0.6186106816159948, 0.6990887737773247, 0.744847901127901, 0.8111076082211457, 0.8469234103967497, 0.8670802436149871, 0.8965717404123286, 0.9365996479961164, 0.9570249440082815, 0.9840468173808229, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1.0048113890893349, 1.0150757675322546, 1.0283264974849542, 1.0348047712112773, 1.0382632403592724, 1.043098657126177, 1.049267686682026, 1.0522541361186024, 1.0560496060620868, 1.0578811369509045, 1, 1, 1, 1, 1, 1, 1, 1, 1} },
    { "Kronecker polynomial (N points) full", cfg = {2, 1, 0.1, 1.5, 0, 7, 1, 1, 0}, compat = true,
      values = {0.150155281000757, 0.24186055723180838, 0.3124611797498107, 0.44516410992796684, 0.7009309637599405, 0.8810573595724491, 1, 0.150155281000757, 0.24186055723180838, 0.3124611797498107, 0.44516410992796684, 0.7009309637599405, 0.8810573595724491, 1, 0.150155281000757, 0.24186055723180838, 0.3124611797498107, 0.44516410992796684, 0.7009309637599405, 0.8810573595724491, 1, 0.150155281000757, 0.24186055723180838, 0.3124611797498107, 0.44516410992796684, 0.7009309637599405} },
    { "Kronecker cfact 0, k = ceil(t/spe)", cfg = {1, 1, 0, 2, 1, 4, 3, 0, 0}, compat = false,
      values = {1.0, 1.0, 1.0, 0.8686844390391599, 0.8686844390391599, 0.8686844390391599, 0.31881255495975996, 0.31881255495975996, 0.31881255495975996, 0.05160858881736174, 0.05160858881736174, 0.05160858881736174, 1.0, 1.0, 1.0, 0.8686844390391599, 0.8686844390391599, 0.8686844390391599, 0.31881255495975996, 0.31881255495975996, 0.31881255495975996, 0.05160858881736174, 0.05160858881736174, 0.05160858881736174, 1.0, 1.0, 1.0, 0.8686844390391599, 0.8686844390391599, 0.8686844390391599, 0.31881255495975996, 0.31881255495975996, 0.31881255495975996, 0.05160858881736174, 0.05160858881736174, 0.05160858881736174, 1.0, 1.0, 1.0, 0.8686844390391599, 0.8686844390391599} },
    { "Kronecker raised cosine full, odd N (the flat-top count bump)", cfg = {1, 1, 0, 2, 0, 7, 1, 1, 0}, compat = true,
      values = {0.31881255495975996, 0.8686844390391599, 1, 1.0, 1, 1.0, 0.8686844390391599, 0.31881255495975996, 0.8686844390391599, 1, 1.0, 1, 1.0, 0.8686844390391599, 0.31881255495975996, 0.8686844390391599, 1, 1.0, 1, 1.0, 0.8686844390391599, 0.31881255495975996, 0.8686844390391599, 1, 1.0, 1} },
    { "rect cfact 0 compat: epoch period tau, f = (q-1)/N past a frame", cfg = {1, 0, 0, 2, 1, 4, 3, 0, 0}, compat = true,
      values = {1.0, 1.0, 1.0, 1.0, 0.8535533905932737, 0.8535533905932737, 0.8535533905932737, 0.8535533905932737, 0.5000000000000001, 0.5000000000000001, 0.5000000000000001, 0.5000000000000001, 0.1464466094067263, 0.1464466094067263, 0.1464466094067263, 0.1464466094067263, 1.0, 1.0, 1.0, 1.0, 0.8535533905932737, 0.8535533905932737, 0.8535533905932737, 0.8535533905932737, 0.5000000000000001, 0.5000000000000001, 0.5000000000000001, 0.5000000000000001, 0.1464466094067263, -0.8535533905932737, -0.8535533905932737, -0.8535533905932737, 1.0, 1.0, 1.0, 1.0, 0.8535533905932737, 0.8535533905932737, 0.8535533905932737, 0.8535533905932737, 0.5000000000000001} },
    { "rect cfact 0 compat, full, spe 1", cfg = {2, 0, 0.1, 1.5, 0, 5, 1, 0, 0.3}, compat = true,
      values = {0.1, 0.1, 0.1, 0.1, 0.1, 0.488763457952348, 0.488763457952348, 0.488763457952348, 0.488763457952348, 0.488763457952348, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1} },
  }
  for _, r in ipairs(reference) do
    it('equals the reference: ' .. r[1], function()
      local c = r.cfg
      local s = schedule.window { rcm = c[1], inseq = c[2], x = c[3], n = c[4], m = c[5], tau = c[6],
                                  spe = c[7], cfact = c[8], e = c[9], compat = r.compat }
      for t, want in ipairs(r.values) do close(s(t), want, 1e-14, ('%s, t = %d'):format(r[1], t)) end
      -- random access replays the same values (compat keeps a cache of the reference state)
      for t = #r.values, 1, -7 do close(s(t), r.values[t], 1e-14, ('%s, again t = %d'):format(r[1], t)) end
    end)
  end

  it('refuses bad configurations, naming the option', function()
    local cases = {
      { { rcm = 7 }, 'rcm', '7', '[0, 6]' },
      { { rcm = 3, n = 2 }, 'n', '2', '(0, 1)' },
      { { rcm = 1, n = 0 }, 'n', '0', '> 0' },
      { { rcm = 1, x = 1.5 }, 'x', '1.5', '[0, 1]' },
      { { rcm = 1, m = 2 }, 'm', '2', '[0, 1]' },
      { { rcm = 1, cfact = 2, spe = 1, tau = 9 }, 'window length', '1 iterations', '>= 2' },
      { { rcm = 1, cfact = 0, tau = 1, spe = 9 }, 'window length', '1 epochs', '>= 2' },
      { { rcm = 1, rc = 1 }, 'unknown option "rc"' },
      { { rcm = 1, compat = 1 }, 'compat', 'true or false' },
    }
    for _, c in ipairs(cases) do
      H.assert_error(function() schedule.window(c[1]) end, 'schedule.window: ', select(2, unpack(c)))
    end
  end)
end)

describe('ms.schedule errors', function()
  it('every constructor refuses an unknown option, naming itself and the option', function()
    local base = {
      constant = { value = 1 }, step = { step_size = 2 }, multistep = { milestones = { 2 } },
      exponential = { gamma = 0.9 }, cosine = { T_max = 3 }, linear = { steps = 3 },
      polynomial = { steps = 3 }, warmup = { steps = 2, schedule = 1 },
      one_cycle = { max_lr = 1, total_steps = 10 }, one_cycle_momentum = { total_steps = 5 },
      join = { schedules = { 1 } },
      sequential = { schedules = { 1 } }, reduce_on_plateau = {}, window = { rcm = 1 },
    }
    for name, opts in pairs(base) do
      local s = schedule[name](opts)           -- valid as given
      assert.is_true(schedule.is_schedule(s), name)
      assert.is_number(s(1))
      opts.bogus = 1
      local err = H.assert_error(function() schedule[name](opts) end,
                                 'schedule.' .. name .. ': unknown option "bogus"')
      assert.truthy(err:find('schedule_spec.lua:', 1, true), err)   -- the caller's line
    end
  end)

  it('refuses bad values and missing required options, naming the argument', function()
    local cases = {
      { 'step', {}, 'step_size is required' },
      { 'step', { step_size = 0 }, 'step_size', '0', '>= 1' },
      { 'step', { step_size = 2, gamma = -1 }, 'gamma', '-1', '>= 0' },
      { 'multistep', { milestones = {} }, 'milestones', 'non-empty list' },
      { 'multistep', { milestones = { 1, 2.5 } }, 'milestones[2]', '2.5', 'integer' },
      { 'exponential', {}, 'gamma is required' },
      { 'cosine', {}, 'exactly one of T_max' },
      { 'cosine', { T_max = 3, T_0 = 2 }, 'exactly one of T_max' },
      { 'cosine', { T_max = 3, T_mult = 2 }, 'T_mult goes with T_0' },
      { 'cosine', { T_0 = 2, T_mult = 1.5 }, 'T_mult', '1.5', 'integer' },
      { 'cosine', { T_max = 4, eta_min = 0 / 0 }, 'eta_min', 'nan', 'finite' },
      { 'linear', {}, 'steps is required' },
      { 'polynomial', { steps = 3, power = 0 }, 'power', '0', '> 0' },
      { 'warmup', { steps = 3 }, 'schedule is required' },
      { 'warmup', { steps = 3, schedule = 'x' }, 'schedule', '"x"', 'a schedule' },
      { 'one_cycle', { total_steps = 3 }, 'max_lr is required' },
      { 'one_cycle', { max_lr = 1, total_steps = 3, pct_start = 2 }, 'pct_start', '2', '[0, 1]' },
      { 'one_cycle', { max_lr = 1, total_steps = 3, anneal_strategy = 'exp' }, 'anneal_strategy', '"exp"', '"cos" or "linear"' },
      { 'one_cycle', { max_lr = 1, total_steps = 3, three_phase = 1 }, 'three_phase', 'true or false' },
      { 'join', { schedules = { 1, 2 } }, '2 schedules need 1 boundaries, got 0' },
      { 'join', { schedules = { 1, 2, 3 }, boundaries = { 5, 2 } }, 'boundaries[2]', '2', '>= 5' },
      { 'sequential', { schedules = { 1, {} }, boundaries = { 1 } }, 'schedules[2]', 'a schedule' },
      { 'reduce_on_plateau', { factor = 1 }, 'factor', '1', '[0, 1)' },
      { 'reduce_on_plateau', { mode = 'up' }, 'mode', '"up"', '"min" or "max"' },
      { 'reduce_on_plateau', { threshold_mode = 'x' }, 'threshold_mode', '"rel" or "abs"' },
      { 'reduce_on_plateau', { patience = -1 }, 'patience', '-1', '>= 0' },
    }
    for _, c in ipairs(cases) do
      H.assert_error(function() schedule[c[1]](c[2]) end, 'schedule.' .. c[1] .. ': ', select(3, unpack(c)))
    end
    H.assert_error(function() schedule.constant('x') end, 'schedule.constant', 'options', '"x"')
    H.assert_error(function() schedule.lambda(3) end, 'schedule.lambda', 'f is 3')
    H.assert_error(function() schedule.nope() end, 'ms.schedule', 'nope')
  end)

  it('refuses a step that is not an integer >= 1, and a method called without its object', function()
    local s = schedule.cosine { T_max = 3 }
    H.assert_error(function() return s(0) end, 'schedule.cosine: t is 0', 'integer >= 1')
    H.assert_error(function() return s(1.5) end, 'schedule.cosine: t is 1.5')
    H.assert_error(function() return s:value('a') end, 'schedule.cosine.value: t is "a"')
    H.assert_error(function() return s.value(2) end, 'value', 'with a colon')
    H.assert_error(function() return schedule.value(s, 0) end, 'schedule.value: t is 0')
    H.assert_error(function() return schedule.value({}, 1) end, 'schedule.value: s is', 'a schedule')
  end)
end)

describe('schedule:plot', function()
  local pit = H.gate(it, pending, not gnuplot_missing(), 'gnuplot is not installed')
  local dir
  before_each(function()
    dir = os.tmpname(); os.remove(dir)
    H.sh('mkdir -p ' .. H.quote(dir .. "/it's a dir"))
  end)
  after_each(function() H.sh('rm -rf ' .. H.quote(dir)) end)

  pit('draws a non-empty PNG and an SVG, even into a path with a quote and spaces', function()
    local s = schedule.warmup { steps = 10, schedule = schedule.cosine { init = 0.1, T_max = 90 } }
    local png = dir .. "/it's a dir/lr $(x) `y`.png"
    assert.are.equal(png, s:plot(png, { title = "warm-up 'cosine' $HOME" }))
    local bytes = H.read_file(png)
    assert.is_true(#bytes > 1000, #bytes)
    assert.are.equal('\137PNG', bytes:sub(1, 4))
    local svg = dir .. '/w.svg'
    schedule.plot(function(t) return 1 / t end, svg, { steps = 50 })
    assert.truthy(H.read_file(svg):find('<svg', 1, true))
    schedule.window { rcm = 1, tau = 20 }:plot(dir .. '/win.png')   -- default steps: tau spe
    assert.is_true(#H.read_file(dir .. '/win.png') > 1000)
  end)

  it('refuses a bad path, extension or option', function()
    local s = schedule.constant(1)
    H.assert_error(function() s:plot(dir .. '/x.jpg') end, 'schedule.constant.plot', '.png or .svg')
    H.assert_error(function() s:plot('') end, 'schedule.constant.plot', 'path')
    H.assert_error(function() s:plot(dir .. '/x\n.png') end, 'control character')
    H.assert_error(function() s:plot(dir .. '/x.png', { step = 3 }) end, 'unknown option "step"')
    H.assert_error(function() schedule.plot(function() return 0 / 0 end, dir .. '/n.png', { steps = 3 }) end,
                   'schedule.plot', 't = 1', 'nan')
  end)

  pit('reports gnuplot failing to write', function()
    H.assert_error(function() schedule.constant(1):plot(dir .. '/no/such/dir/x.png') end,
                   'schedule.constant.plot: gnuplot failed')
  end)

  it('says so clearly when gnuplot is missing', function()
    local luajit = H.sh('command -v luajit'):gsub('%s+$', '')
    local out = H.sh('cd ' .. H.quote(os.getenv('MOONSTEP_HOME') or '.') .. ' && PATH=/nonexistent '
      .. H.quote(luajit) .. ' -e "package.path=\'lua/?.lua;lua/?/init.lua;\'..package.path '
      .. 'local s = require(\'moonstep.schedule\') '
      .. 'print(select(2, pcall(s.plot, s.constant(1), \'/tmp/x.png\')))"')
    assert.truthy(out:find('gnuplot is not installed', 1, true), out)
    assert.truthy(out:find('gnuplot-nox', 1, true), out)
  end)
end)

-- The AutoSGM helper's fixture (tests/fixtures/autosgm.lua, from the authors' reference run inside
-- the optimizer): F_t for t = 1..60 of each win_* case; compat = true must reproduce every value.
describe('schedule.window against the AutoSGM fixture', function()
  local ok, fx = pcall(require, 'fixtures.autosgm')
  if not ok or type(fx) ~= 'table' or type(fx.cases) ~= 'table' then
    pending('tests/fixtures/autosgm.lua is not present')
    return
  end
  it('reproduces F_t of every win_* case with compat = true', function()
    local n = 0
    for name, c in pairs(fx.cases) do
      if type(c.F) == 'table' and c.config and c.config.rc_cfg then
        local rc = c.config.rc_cfg
        local s = schedule.window { rcm = rc[1], inseq = rc[2], x = rc[3], n = rc[4], m = rc[5], tau = rc[6],
                                    spe = rc[7], cfact = rc[8], e = rc[9], compat = true }
        for t, want in ipairs(c.F) do close(s(t), want, 1e-14, ('%s t = %d'):format(name, t)) end
        n = n + 1
      end
    end
    assert.is_true(n >= 20, n)
  end)
end)
