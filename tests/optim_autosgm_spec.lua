-- AutoSGM (optim.AutoSGM) against the authors' reference, AutoSGM v2 = somefunAgba/autosgm
-- commit 07b5e79 (tests/fixtures/autosgm.lua, written by scripts/fixtures/autosgm.py from
-- that code; the spec is ../shared/reference/acme_autosgm.md section 2):
--   every fixture case (numerators 0-4, per-layer or not, filter zero/gain/debias, eps,
--   decay levels, maximize, constant lr, 24 windows, an MLP with the gradients it was fed,
--   the seed README's configuration, zero-parameter nudging, float32);
--   section 2.8: the special cases reproduce torch.optim SGD (momentum, Nesterov), Adam,
--   AdamW and RMSprop (fixture trajectories) and moonstep's own fused optimizers;
--   section 2.7: the window values through the optimizer's F_t;
--   tuple form = named fields, a scheduled hyper-parameter, groups with their own
--   numerator, state round trip (float32 and float64, compat and per-slice numerators
--   carried), the same bits for any thread count, errors; the float32 cases on the GPU.
-- Tolerances. float64: the reference's and moonstep's operations are the same but not
-- always in the same order (torch.mean vs the deterministic block sum), so a trajectory
-- differs by a few ulps: 1e-10 relative to each parameter (floored at 1e-2 of the largest)
-- and 1e-8 of the largest displacement from the start (the slow-ramp cases barely move).
-- Measured: 0 (bit for bit) for every case with a constant numerator, <= 1.2e-14 with an
-- estimator (num_lrc 2-4).
-- float32: the constant-numerator cases are bit for bit; the estimators (num_lrc 2-4)
-- differ from the reference in the float32 rounding of their per-tensor mean (torch.mean's
-- order vs the block sum in float64) and of Q, and each rounding feeds the next step
-- through the clipped EMAs: measured <= 2.8e-6 relative to a parameter and 1.3e-6 of the
-- displacement after 60 steps (a few float32 ulps); tolerances 1e-5 and 1e-4.
local ffi = require 'ffi'
local ms = require 'moonstep'
local optim = ms.optim
local params = require 'moonstep.params'
local H = require 'helper'
local fx = require 'fixtures.autosgm'

local gpu = ms.cuda.is_available()
local abs, max = math.abs, math.max

local f32 = ffi.new('float[1]')
local function r32(x) f32[0] = x; return f32[0] end

local function count_of(shape)
  local n = 1
  for _, d in ipairs(shape) do n = n * d end
  return n
end

-- The case's parameters as an arena: one tensor per shape (MLP: weight, bias, weight, bias).
local function arena(c, device)
  local prob = c.problem == 'mlp' and fx.mlp or fx.quad
  local w0, entries, off = {}, {}, 0
  for i, x in ipairs(prob.w0) do w0[i] = c.dtype == 'float32' and r32(x) or x end
  for i, shape in ipairs(prob.shapes) do
    local n, vals = count_of(shape), {}
    local bias = c.problem == 'mlp' and i % 2 == 0
    for j = 1, n do
      if c.zero_bias and bias then w0[off + j] = 0 end
      vals[j] = w0[off + j]
    end
    off = off + n
    entries[i] = { name = ('p%d'):format(i), kind = bias and 'bias' or 'weight',
                   param = ms.tensor(vals, { dtype = c.dtype, device = device or 'cpu' }) }
  end
  return params.build(entries), w0
end

-- The quadratic's gradient at flat (a Lua list), rounded as torch does in c.dtype.
local function quad_grad(w, t, ascent, dtype)
  local q, g = fx.quad, {}
  local r = dtype == 'float32' and r32 or function(x) return x end
  for i = 1, #w do
    local a, b, n = r(q.a[i]), r(q.b[i]), r(q.noise[t][i])
    local aw = r(a * w[i])
    g[i] = r(r(ascent and b - aw or aw - b) + n)
  end
  return g
end

local function list_of(t)
  local c, out = t:to('float64', 'cpu'), {}
  for i = 1, c:numel() do out[i] = c:get(i) end
  return out
end

-- The case's configuration for optim.AutoSGM: the seed's tuples (named = false) or the
-- same values as named fields, with the compat flags the case needs.
local TUPLES = optim.AutoSGM.TUPLES
local function config_of(c, named)
  local cfg = { maximize = c.config.maximize, cf = c.config.cf }
  for k, fields in pairs(TUPLES) do
    local tuple = c.config[k]
    if named then
      for i, f in ipairs(fields) do cfg[f] = tuple[i] end
      if k == 'miscs' then cfg.per_layer = tuple[1] == 1 end
    else
      cfg[k] = { unpack(tuple) }
    end
  end
  if c.compat then
    cfg.compat = {}
    for k, v in pairs(c.compat) do cfg.compat[k] = v end
  end
  return cfg
end

-- Runs case c: the parameters after each recorded step (every step if c.every), the
-- window values F_t, the optimizer.
local function run(c, opts)
  opts = opts or {}
  local set, w0 = arena(c, opts.device)
  local opt = optim.AutoSGM(set, opts.config or config_of(c, opts.named))
  local flat, gflat = set:flat_parameters(), set:flat_gradients()
  local got, F, rec = {}, {}, 1
  for t = 1, fx.steps do
    local g = c.grads and c.grads[t] or quad_grad(list_of(flat), t, c.problem == 'quad_max', c.dtype)
    gflat:copy_(ms.tensor(g, { dtype = c.dtype, device = opts.device or 'cpu' }))
    opt:step()
    F[t] = opt:window(t)
    if c.every or t == fx.record[rec] then
      got[#got + 1] = list_of(flat)
      rec = rec + 1
    end
  end
  return got, F, opt, w0
end

-- Largest errors of got vs want: relative to each parameter (floored) and to the largest
-- displacement from w0.
local function errors(got, want, w0)
  local ep, ed = 0, 0
  for r, wv in ipairs(want) do
    local big, disp = 0, 0
    for i, y in ipairs(wv) do big, disp = max(big, abs(y)), max(disp, abs(y - w0[i])) end
    for i, y in ipairs(wv) do
      local e = abs(got[r][i] - y)
      if e ~= e then return math.huge, math.huge end
      ep = max(ep, e / max(abs(y), 1e-2 * big))
      if disp > 0 then ed = max(ed, e / disp) end
    end
  end
  return ep, ed
end

local TOL = { float64 = { 1e-10, 1e-8 }, float32 = { 1e-5, 1e-4 } }

local names = {}
for k in pairs(fx.cases) do names[#names + 1] = k end
table.sort(names)

describe('AutoSGM against the reference (AutoSGM v2, 07b5e79)', function()
  for _, name in ipairs(names) do
    local c = fx.cases[name]
    it(('%s (%s, %s)'):format(name, c.problem, c.dtype), function()
      local got, F, _, w0 = run(c)
      local ep, ed = errors(got, c.after, w0)
      if os.getenv("ASGM_VERBOSE") then io.stderr:write(("%-24s %.3g %.3g\n"):format(name, ep, ed)) end
      local tol = TOL[c.dtype]
      assert(ep <= tol[1] and ed <= tol[2],
             ('%s: error %.3g relative to the parameters (tolerance %g), %.3g of the displacement (%g)')
               :format(name, ep, tol[1], ed, tol[2]))
      if c.F then
        for t, want in ipairs(c.F) do
          if F[t] ~= want then error(('%s: F_%d is %.17g, reference %.17g'):format(name, t, F[t], want)) end
        end
      end
    end)
  end
end)

-- Runs AutoSGM or moonstep's optimizer `cls` with config on the quad problem (float64).
local function quad_run(cls, config, steps)
  local c = { problem = 'quad', dtype = 'float64' }
  local set, w0 = arena(c)
  local opt = cls(set, config)
  local flat, gflat = set:flat_parameters(), set:flat_gradients()
  local got, rec = {}, 1
  for t = 1, steps or fx.steps do
    gflat:copy_(ms.tensor(quad_grad(list_of(flat), t, false, 'float64'), 'float64'))
    opt:step()
    if t == fx.record[rec] then
      got[#got + 1] = list_of(flat)
      rec = rec + 1
    end
  end
  return got, w0
end

local function tuple_config(cfg)
  local out = {}
  for k, v in pairs(cfg) do out[k] = type(v) == 'table' and { unpack(v) } or v end
  return out
end

describe('AutoSGM special cases (section 2.8)', function()
  local special = {}
  for k in pairs(fx.special) do special[#special + 1] = k end
  table.sort(special)
  for _, name in ipairs(special) do
    local s = fx.special[name]
    it(name .. ' reproduces torch.optim.' .. s.torch .. ' (fixture trajectory)', function()
      local got, w0 = quad_run(optim.AutoSGM, tuple_config(s.config))
      local ep, ed = errors(got, s.after, w0)
      if os.getenv('ASGM_VERBOSE') then io.stderr:write(('special %-14s %.3g %.3g\n'):format(name, ep, ed)) end
      assert(ep <= 1e-12 and ed <= 1e-10, ('%s: %.3g / %.3g'):format(name, ep, ed))
    end)
    it(name .. ' reproduces moonstep\'s optim.' .. s.torch, function()
      local got, w0 = quad_run(optim.AutoSGM, tuple_config(s.config))
      local want = quad_run(optim[s.torch], tuple_config(s.torch_config))
      local ep, ed = errors(got, want, w0)
      if os.getenv('ASGM_VERBOSE') then io.stderr:write(('special %-14s %.3g %.3g\n'):format(name, ep, ed)) end
      assert(ep <= 1e-12 and ed <= 1e-10, ('%s: %.3g / %.3g'):format(name, ep, ed))
    end)
  end
end)

describe('AutoSGM windows (section 2.7) through F_t', function()
  local function F(cfg, t)
    local set = arena { problem = 'quad', dtype = 'float64' }
    return optim.AutoSGM(set, cfg):window(t)
  end
  local function half(rcm, n, extra)
    local c = { rcm = rcm, n = n, tau = 1000, spe = 1, m = 1, x = 0 }
    for k, v in pairs(extra or {}) do c[k] = v end
    return c
  end
  it('a half window of N = 1000 starts at 1 (rcm 1-5) and anneals to about 0', function()
    for _, c in ipairs { half(1, 2), half(2, 1), half(3, 0.5), half(4, 2), half(5, 4) } do
      assert.equal(1, F(c, 1))
      assert(F(c, 1000) < 0.01, 'rcm ' .. c.rcm)
    end
  end)
  it('the values at t = 500 of section 2.7 (given there to 3 decimals)', function()
    local cases = {
      { half(1, 2), 0.502 }, { half(2, 1), 0.501 }, { half(2, 2), 0.251 }, { half(3, 0.9), 0.488 },
      { half(3, 0.5), 0.415 }, { half(3, 0.05), 0.184 }, { half(4, 1.8), 0.510 }, { half(4, 2), 0.564 },
      { half(5, 4), 0.502 }, { half(6, 4), 0.941 },
    }
    for _, tc in ipairs(cases) do
      local v = F(tc[1], 500)
      assert(abs(v - tc[2]) <= 6e-4, ('rcm %d n %g: F(500) = %.4f, expected %.3f'):format(tc[1].rcm, tc[1].n, v, tc[2]))
    end
  end)
  it('rcm 6 (the reference, not normalized) starts at 1.058 and ends at 0.311', function()
    assert(abs(F(half(6, 4), 1) - 1.058) < 5e-4)
    assert(abs(F(half(6, 4), 1000) - 0.311) < 2e-3)
  end)
  it('a full raised-cosine window goes 0 -> 1 (middle) -> 0; a flat top holds 1, then anneals to x', function()
    local full = half(1, 2, { m = 0 })
    assert(F(full, 1) < 1e-12)
    assert.equal(1, F(full, 501))
    assert(F(full, 1000) < 1e-4)
    local flat = half(1, 2, { x = 0.1, e = 0.5 })
    for _, t in ipairs { 1, 250, 500 } do assert.equal(1, F(flat, t)) end
    assert(F(flat, 750) < 1 and F(flat, 750) > 0.1)
    assert(abs(F(flat, 1000) - 0.1) < 1e-4)
  end)
  it('the window scales the update: F_t multiplies the step', function()
    local c = fx.cases.lrc0
    local set = arena(c)
    local flat = set:flat_parameters()
    local before = list_of(flat)
    local cfg = config_of(c)
    cfg.rc_cfg = { 2, 0, 0, 1, 0, 1, 10, 1, 0 }     -- full triangle over 10 steps: F_1 = 0
    local opt = optim.AutoSGM(set, cfg)
    set:flat_gradients():copy_(ms.tensor(quad_grad(before, 1, false, 'float64'), 'float64'))
    opt:step()
    assert.equal(0, opt:window(1))
    assert.same(before, list_of(flat))
  end)
end)

describe('AutoSGM options', function()
  it('named fields give the same bits as the seed\'s tuples', function()
    for _, name in ipairs { 'win_lrc3', 'lrc4_pl0', 'mlp_seed_readme', 'wd1_gamma', 'f32_lrc3' } do
      local a = run(fx.cases[name])
      local b = run(fx.cases[name], { named = true })
      assert.same(a, b, name)
    end
  end)

  it('a hyper-parameter given as a function of the step', function()
    local c = fx.cases.lrc3
    local cfg = config_of(c, true)
    local mu = cfg.lr_init
    cfg.lr_init = function() return mu end
    assert.same(run(c), run(c, { config = cfg }))
  end)

  it('groups: a bias group with its own numerator and lr_init = 0 stays put, the weights are unchanged', function()
    local c = fx.cases.mlp_lrc3
    local plain = run(c)
    local cfg = config_of(c)
    cfg.groups = { { kind = 'bias', lr_init = 0, num_lrc = 0, per_layer = false } }
    local grouped, _, _, w0 = run(c, { config = cfg })
    local last, glast = plain[#plain], grouped[#grouped]
    local bias = { [7] = true, [8] = true, [9] = true, [16] = true, [17] = true }
    for i = 1, #w0 do
      if bias[i] then assert.equal(w0[i], glast[i]) else assert.equal(last[i], glast[i]) end
    end
  end)

  for _, dtype in ipairs { 'float64', 'float32' } do
    it('state round trip (' .. dtype .. '): a resumed run is bit-identical', function()
      for _, extra in ipairs {
        { lr_cfg = { true, 0.05, 3 }, beta_n = 0.99, rc_cfg = { 1, 0, 0.1, 2, 1, 3, 10, 1, 0 } },
        { lr_cfg = { true, 0.05, 4 }, beta_n = 0.99, per_layer = false, gamma_i = 0.5 },
        { lr_cfg = { true, 0.05, 2 }, beta_n = 0.9, wd_cfg = { 0.05, 1 },
          compat = { nudge_zeros = true } },
      } do
        local c = { problem = 'quad', dtype = dtype }
        local function steps(set, opt, from, to)
          local flat, gflat = set:flat_parameters(), set:flat_gradients()
          for t = from, to do
            gflat:copy_(ms.tensor(quad_grad(list_of(flat), t, false, dtype), dtype))
            opt:step()
          end
        end
        local a = arena(c)
        steps(a, optim.AutoSGM(a, tuple_config(extra)), 1, 30)
        local b = arena(c)
        local ob = optim.AutoSGM(b, tuple_config(extra))
        steps(b, ob, 1, 12)
        local st = ob:state()
        local r = arena(c)
        r:flat_parameters():copy_(b:flat_parameters())
        local orr = optim.AutoSGM(r, tuple_config(extra))
        orr:load_state(st)
        assert.equal(12, orr.t)
        steps(r, orr, 13, 30)
        assert.same(list_of(a:flat_parameters()), list_of(r:flat_parameters()))
      end
    end)
  end

  it('the state carries the compat flags; a malformed extra is refused before anything changes', function()
    local set = arena { problem = 'quad', dtype = 'float64' }
    local a = optim.AutoSGM(set, { num_lrc = 2, compat = { nudge_zeros = true, lrc2_elementwise_unclipped = true } })
    set:flat_gradients():fill_(0.5)
    a:step()
    local st = a:state()
    assert.is_true(st.extra.compat.nudge_zeros)
    assert.equal(#fx.quad.shapes, #st.extra.q_slice)
    local b = optim.AutoSGM(set, { num_lrc = 2 })
    b:load_state(st)
    assert.is_true(b.compat.nudge_zeros and b.compat.lrc2_elementwise_unclipped)
    local c = optim.AutoSGM(set, { num_lrc = 2 })
    st.extra.q_slice = { 1, 2 }
    H.assert_error(function() c:load_state(st) end, 'AutoSGM.load_state', 'q_slice', 'expected 3 numbers')
    assert.equal(0, c.t)
    st.extra.q_slice, st.extra.compat = nil, { bogus = true }
    H.assert_error(function() c:load_state(st) end, 'AutoSGM.load_state', 'bogus')
    assert.is_false(c.compat.nudge_zeros)
  end)

  it('refuses conflicting, malformed and out-of-range options, naming them', function()
    local set = arena { problem = 'quad', dtype = 'float64' }
    H.assert_error(function() optim.AutoSGM(set, { lr_cfg = { true, 1e-3, 0 }, lr_init = 0.1 }) end,
                   'AutoSGM', 'lr_cfg and lr_init are both given')
    H.assert_error(function() optim.AutoSGM(set, { lr_cfg = { true, 1e-3 } }) end,
                   'AutoSGM', 'lr_cfg', 'expected a table of 3 values')
    H.assert_error(function() optim.AutoSGM(set, { rc_cfg = 1 }) end, 'AutoSGM', 'rc_cfg')
    H.assert_error(function() optim.AutoSGM(set, { compat = { no_such_quirk = true } }) end,
                   'AutoSGM', 'no_such_quirk')
    H.assert_error(function() optim.AutoSGM(set, { compat = { nudge_zeros = 1 } }) end,
                   'AutoSGM', 'compat.nudge_zeros')
    H.assert_error(function() optim.AutoSGM(set, { compat = { lrc1_is_const = false } }) end,
                   'AutoSGM', 'not implemented')
    H.assert_error(function() optim.AutoSGM(set, { num_lrc = 5 }) end, 'AutoSGM', 'num_lrc')
    H.assert_error(function() optim.AutoSGM(set, { beta_i = 1 }) end, 'AutoSGM', 'beta_i')
    H.assert_error(function() optim.AutoSGM(set, { gamma_i = 1 }) end, 'AutoSGM', 'gamma_i')
    H.assert_error(function() optim.AutoSGM(set, { eta_i = 1.5 }) end, 'AutoSGM', 'eta_i')
    H.assert_error(function() optim.AutoSGM(set, { per_layer = 1 }) end, 'AutoSGM', 'per_layer')
    H.assert_error(function() optim.AutoSGM(set, { miscs = { 2 } }) end, 'AutoSGM', 'per_layer')
    H.assert_error(function() optim.AutoSGM(set, { rcm = 3, n = 2 }) end, 'AutoSGM', 'n is 2', 'rcm 3')
    H.assert_error(function() optim.AutoSGM(set, { rcm = 1, tau = 1, spe = 1 }) end, 'AutoSGM', 'expected >= 2')
    H.assert_error(function() optim.AutoSGM(set, { rcm = 1, cfact = 2, tau = 5, spe = 1 }) end,
                   'AutoSGM', 'window')
    H.assert_error(function() optim.AutoSGM(set, { wd_lvl = 2 }) end, 'AutoSGM', 'wd_lvl')
    local opt = optim.AutoSGM(set, { lr_init = function() return -1 end })
    set:flat_gradients():fill_(1)
    H.assert_error(function() opt:step() end, 'AutoSGM.step', 'lr_init')
    H.assert_error(function() opt:window(0) end, 'AutoSGM.window', 't')
  end)
end)

describe('AutoSGM is deterministic', function()
  it('the same bits with 1 and 4 threads (per-tensor means over many blocks included)', function()
    local function go(threads, dtype, cfg)
      local old = ms.num_threads()
      ms.set_num_threads(threads)
      local entries = {}
      for i, n in ipairs { 50000, 30011, 20000 } do
        entries[i] = { name = 'p' .. i, kind = 'weight', param = H.random_tensor({ n }, i, { dtype = dtype }) }
      end
      local set = params.build(entries)
      local opt = optim.AutoSGM(set, cfg)
      local g = H.random_tensor({ 100011 }, 9, { dtype = dtype })
      for t = 1, 4 do
        set:flat_gradients():copy_(g * (1 + 0.1 * t))
        opt:step()
      end
      ms.set_num_threads(old)
      return set:flat_parameters()
    end
    for _, dtype in ipairs { 'float32', 'float64' } do
      for _, cfg in ipairs { { num_lrc = 3, beta_n = 0.9, lr_init = 0.05 }, { lr_init = 0.05, gamma_i = 0.3 },
                             { num_lrc = 4, per_layer = false, lr_init = 0.05 } } do
        local a, b = go(1, dtype, cfg), go(4, dtype, cfg)
        local d = (a - b):abs():max()
        assert.equal(0, type(d) == 'number' and d or d:item(), dtype)
      end
    end
  end)
end)

describe('AutoSGM on the GPU', function()
  local run_gpu = gpu and it or pending
  run_gpu('float32 cases match the reference on the GPU as on the CPU', function()
    for _, name in ipairs(names) do
      local c = fx.cases[name]
      if c.dtype == 'float32' then
        local got, _, _, w0 = run(c, { device = 'cuda' })
        local ep, ed = errors(got, c.after, w0)
        assert(ep <= TOL.float32[1] and ed <= TOL.float32[2], ('%s on the GPU: %.3g / %.3g'):format(name, ep, ed))
      end
    end
  end)
end)
