-- The classic optimizers (SGD, Adam, AdamW, NAdam, RMSprop, Adagrad) against torch.optim,
-- step by step: tests/fixtures/optim_classics.lua (scripts/fixtures/optim_classics.py)
-- holds, for every case, on a 6-5-3 tanh MLP and on a 37-element quadratic, in float64 and
-- float32, the gradient PyTorch used at each of 60 steps and the parameters after each.
-- The replay feeds those gradients to moonstep and compares every step: float64 within
-- 1e-10 relative, float32 bit for bit (or the few ulps TOL says, with the reason).
-- NAdam is PyTorch >= 2.0's (the generator's docstring says how 1.13's differs).
local ms = require 'moonstep'
local optim = ms.optim
local H = require 'helper'
local fx = require 'fixtures.optim_classics'

-- Float32 tolerance in ulps per case (absent: 0, bit for bit). Float64: REL64 relative.
-- Every case is bit for bit in float32 today (the rules round as ATen does, fma where its
-- kernels fuse), and the float64 runs happen to be bit-identical too; the float64 bound
-- stays the issue's 1e-10 (another libm pow, for one, could move the last bit).
local TOL32 = {}
local REL64 = 1e-10

---------------------------------------------------------------------------------------
-- the fixture's arrays: base64 of little-endian IEEE values
---------------------------------------------------------------------------------------
local decode = require 'fixture_decode'

---------------------------------------------------------------------------------------
-- replay
---------------------------------------------------------------------------------------
local function copy_config(cfg)
  local c = {}
  for k, v in pairs(cfg) do c[k] = type(v) == 'table' and { unpack(v) } or v end
  return c
end

-- The problem's parameters as separate tensors (the MLP's four, in arena order) in one
-- arena, initialised from the fixture.
local function build(kind, dtype, device)
  local pr = fx.problems[kind]
  local p0 = decode(pr[dtype], dtype)
  assert(#p0 == pr.n)
  local tensors, off = {}, 0
  for i, l in ipairs(pr.layout) do
    local shape, n = l[2], 1
    for _, s in ipairs(shape) do n = n * s end
    tensors[i] = ms.tensor({ unpack(p0, off + 1, off + n) }, { dtype = dtype, device = device }):view(shape)
    off = off + n
  end
  assert(off == pr.n)
  return ms.params(tensors)
end

-- Size of one unit in the last place of float32 value y.
local function ulp32(y)
  if y == 0 then return 2 ^ -149 end
  local _, e = math.frexp(math.abs(y))
  return math.max(2 ^ (e - 24), 2 ^ -149)
end

-- recorded[t] = the position of step t among the steps whose parameters were recorded
local recorded = {}
for k, t in ipairs(fx.record) do recorded[t] = k end

-- Replays case `name` on problem `kind` in `dtype`; returns the worst error (ulps for
-- float32, relative for float64) and where it is.
local function replay(name, kind, dtype, device)
  local c = fx.cases[name]
  local run = c[kind][dtype]
  local n = fx.problems[kind].n
  local grads, after = decode(run.grads, dtype), decode(run.after, dtype)
  local set = build(kind, dtype, device)
  local opt = optim[c.optim](set, copy_config(c.config))
  local worst, at = 0, 'nowhere'
  for t = 1, fx.steps do
    set.gflat:copy_(ms.tensor({ unpack(grads, (t - 1) * n + 1, t * n) }, { dtype = dtype, device = device }))
    opt:step()
    local k = recorded[t]
    local got = k and (device and set.flat:to('cpu') or set.flat):totable()
    for i = 1, k and n or 0 do
      local x, y = got[i], after[(k - 1) * n + i]
      local err
      if dtype == 'float32' then err = math.abs(x - y) / ulp32(y)
      else err = math.abs(x - y) / math.max(math.abs(y), 1e-300) end
      if not (err <= worst) then   -- NaN counts as worst
        worst, at = err, ('step %d element %d: %.17g, PyTorch %.17g'):format(t, i, x, y)
        if err ~= err then return math.huge, at end
      end
    end
  end
  return worst, at
end

local names = {}
for name in pairs(fx.cases) do names[#names + 1] = name end
table.sort(names)

describe('classic optimizers against torch.optim (60 steps, MLP and quadratic)', function()
  it('the fixture covers every optimizer, both problems and both dtypes', function()
    local seen = {}
    for _, name in ipairs(names) do
      local c = fx.cases[name]
      seen[c.optim] = true
      for _, kind in ipairs { 'mlp', 'quadratic' } do
        for _, dtype in ipairs { 'float64', 'float32' } do
          local r = c[kind][dtype]
          assert(#decode(r.grads, dtype) == fx.steps * fx.problems[kind].n, name)
          assert(#decode(r.after, dtype) == #fx.record * fx.problems[kind].n, name)
        end
      end
    end
    for _, o in ipairs { 'SGD', 'Adam', 'AdamW', 'NAdam', 'RMSprop', 'Adagrad' } do
      assert(seen[o], o .. ' has no fixture case')
    end
    assert(fx.steps >= 50)
  end)

  -- The CUDA kernels run the same element rules: float32 on the GPU is bit for bit too.
  it('every float32 case on the GPU, bit for bit', function()
    if not (ms.cuda and ms.cuda.is_available()) then
      pending('no usable GPU')
      return
    end
    local bad = {}
    for _, name in ipairs(names) do
      for _, kind in ipairs { 'mlp', 'quadratic' } do
        local err, at = replay(name, kind, 'float32', 'cuda')
        if err > (TOL32[name] or 0) then bad[#bad + 1] = ('%s %s: %g ulps at %s'):format(name, kind, err, at) end
      end
    end
    assert(#bad == 0, table.concat(bad, '\n'))
  end)

  for _, name in ipairs(names) do
    local c = fx.cases[name]
    for _, kind in ipairs { 'mlp', 'quadratic' } do
      it(('%s (%s) on the %s, float64, within %g relative'):format(name, c.torch, kind, REL64), function()
        local err, at = replay(name, kind, 'float64')
        assert(err <= REL64, ('%s %s float64: %.3g relative at %s'):format(name, kind, err, at))
      end)
      local tol = TOL32[name] or 0
      it(('%s on the %s, float32, %s'):format(name, kind, tol == 0 and 'bit for bit' or tol .. ' ulps'), function()
        local err, at = replay(name, kind, 'float32')
        assert(err <= tol, ('%s %s float32: %g ulps at %s'):format(name, kind, err, at))
      end)
    end
  end
end)

---------------------------------------------------------------------------------------
-- what the trajectories do not show
---------------------------------------------------------------------------------------
-- A run of `steps` steps of optimizer `name` on two tensors with gradient sequence
-- g_t = sin(t i) (deterministic); returns the arena's values.
local function run_two(name, config, steps, dtype, w0)
  local a = ms.tensor(w0 or { 0.5, -1, 2, 0.25 }, { dtype = dtype or 'float64' })
  local b = ms.tensor({ -0.75, 1.5, 3 }, { dtype = dtype or 'float64' })
  local set = ms.params { a, b }
  local opt = optim[name](set, config)
  for t = 1, steps do
    local g = {}
    for i = 1, 7 do g[i] = math.sin(t * i) end
    set.gflat:copy_(ms.tensor(g, { dtype = dtype or 'float64' }))
    opt:step()
  end
  return set.flat:totable(), opt, set
end

describe('NAdam, RMSprop and Adagrad beyond the fixtures', function()
  it('NAdam keeps mu_product per group: a resumed run is bit-identical', function()
    for _, dtype in ipairs { 'float32', 'float64' } do
      local cfg = function()
        return { lr = 0.05, momentum_decay = 0.05, groups = { { match = '^2$', betas = { 0.5, 0.9 } } } }
      end
      local want = run_two('NAdam', cfg(), 12, dtype)
      local _, opt, set = run_two('NAdam', cfg(), 7, dtype)
      local s = opt:state()
      assert(#s.extra.mu_product == 2 and s.extra.mu_product[1] ~= s.extra.mu_product[2])
      local w = set.flat:totable()
      local a = ms.tensor({ w[1], w[2], w[3], w[4] }, { dtype = dtype })
      local b = ms.tensor({ w[5], w[6], w[7] }, { dtype = dtype })
      local set2 = ms.params { a, b }
      local opt2 = optim.NAdam(set2, cfg())
      opt2:load_state(s)
      for t = 8, 12 do
        local g = {}
        for i = 1, 7 do g[i] = math.sin(t * i) end
        set2.gflat:copy_(ms.tensor(g, { dtype = dtype }))
        opt2:step()
      end
      local got = set2.flat:totable()
      for i = 1, 7 do assert(got[i] == want[i], ('%s element %d: %.17g vs %.17g'):format(dtype, i, got[i], want[i])) end
    end
  end)

  it('NAdam refuses a state without a valid mu_product', function()
    local _, opt = run_two('NAdam', { lr = 0.01 }, 2)
    local s = opt:state()
    s.extra.mu_product[1] = 1.5
    H.assert_error(function() opt:load_state(s) end, 'NAdam.load_state', 'mu_product[1]', '1.5')
    s.extra = nil
    H.assert_error(function() opt:load_state(s) end, 'NAdam.load_state', 'mu_product')
  end)

  it('groups with different settings equal separate optimizers (lazy buffers, first step)', function()
    -- group 2 (the second tensor) centered with momentum / its own initial accumulator.
    local cases = {
      { 'RMSprop', { lr = 0.01 }, { centered = true, momentum = 0.7, alpha = 0.9 } },
      { 'Adagrad', { lr = 0.1 }, { initial_accumulator_value = 0.5, lr_decay = 0.1 } },
      { 'NAdam', { lr = 0.01 }, { betas = { 0.7, 0.99 }, weight_decay = 0.1, decoupled_weight_decay = true } },
    }
    for _, c in ipairs(cases) do
      local name, base, over = c[1], c[2], c[3]
      local grouped = copy_config(base)
      local g2 = copy_config(over)
      g2.match = '^2$'
      grouped.groups = { g2 }
      local got = run_two(name, grouped, 9)
      -- the same steps as two optimizers, one per tensor
      local a = ms.tensor({ 0.5, -1, 2, 0.25 }, { dtype = 'float64' })
      local b = ms.tensor({ -0.75, 1.5, 3 }, { dtype = 'float64' })
      local sa, sb = ms.params { a }, ms.params { b }
      local cb = copy_config(base)
      for k, v in pairs(over) do cb[k] = v end
      local oa, ob = optim[name](sa, copy_config(base)), optim[name](sb, cb)
      for t = 1, 9 do
        local ga, gb = {}, {}
        for i = 1, 4 do ga[i] = math.sin(t * i) end
        for i = 5, 7 do gb[i - 4] = math.sin(t * i) end
        sa.gflat:copy_(ms.tensor(ga, { dtype = 'float64' }))
        sb.gflat:copy_(ms.tensor(gb, { dtype = 'float64' }))
        oa:step(); ob:step()
      end
      local want = sa.flat:totable()
      for _, v in ipairs(sb.flat:totable()) do want[#want + 1] = v end
      for i = 1, 7 do
        assert(got[i] == want[i], ('%s element %d: %.17g vs %.17g'):format(name, i, got[i], want[i]))
      end
    end
  end)

  it('a skipped first step leaves Adagrad to start from initial_accumulator_value', function()
    local w = ms.tensor({ 1, 2 }, { dtype = 'float64' })
    local set = ms.params { w }
    local opt = optim.Adagrad(set, { lr = 0.5, initial_accumulator_value = 3, skip_nonfinite = true })
    set.gflat:copy_(ms.tensor({ 0 / 0, 1 }, { dtype = 'float64' }))
    opt:step()
    assert(opt.skipped == 1 and opt.t == 0)
    set.gflat:copy_(ms.tensor({ 1, 1 }, { dtype = 'float64' }))
    opt:step()
    assert(w:get(1) == 1 - 0.5 * 1 / (math.sqrt(3 + 1) + 1e-10), tostring(w:get(1)))
  end)

  it('refuses bad hyper-parameters, naming them', function()
    local function make(name, cfg)
      return function() optim[name](ms.params { ms.zeros(3) }, cfg) end
    end
    H.assert_error(make('RMSprop', { alpha = 1.5 }), 'RMSprop', 'alpha', '1.5')
    H.assert_error(make('RMSprop', { eps = -1 }), 'RMSprop', 'eps')
    H.assert_error(make('RMSprop', { nesterov = true }), 'RMSprop', 'nesterov')
    H.assert_error(make('Adagrad', { lr_decay = -0.1 }), 'Adagrad', 'lr_decay')
    H.assert_error(make('Adagrad', { initial_accumulator_value = -1 }), 'Adagrad', 'initial_accumulator_value')
    H.assert_error(make('NAdam', { betas = { 0.9, 1 } }), 'NAdam', 'betas')
    H.assert_error(make('NAdam', { momentum_decay = -1 }), 'NAdam', 'momentum_decay')
    H.assert_error(make('NAdam', { decoupled_weight_decay = 1 }), 'NAdam', 'decoupled_weight_decay')
    -- a scheduled value is checked when a step reads it
    local set = ms.params { ms.zeros(3) }
    local opt = optim.RMSprop(set, { alpha = function(t) return t < 2 and 0.9 or 2 end })
    opt:step()
    H.assert_error(function() opt:step() end, 'RMSprop.step', 'alpha', 'step 2')
  end)
end)
