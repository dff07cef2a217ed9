-- optim.SPSA against independent numpy references (issue 9): tests/fixtures/spsa_reference.lua,
-- written by scripts/fixtures/spsa_reference.py from the spec (/work/shared/reference/spsa.md)
-- and the contract (/work/notes/spsa.md), not from moonstep's code.
--
-- 1. Directions: Philox4x32-10 (ms_philox4x32_10) against Random123's known answers and the
--    numpy re-implementation; ms_zo_fill's Rademacher and segmented-uniform directions bit for
--    bit, its gaussian ones within 1e-5 max(1, |u|) (the runtime's float log/sin/cos are its
--    own; numpy evaluates the same Box-Muller formula in float64).
-- 2. Trajectories with FIXED directions (fed through `directions = function(k, i, u)`,
--    memory = 'materialized'), float64, per step: the parameters, the returned loss, info.a /
--    info.c (the gains), info.passes and the closure calls, info.blocked, and every loss the
--    reference evaluated found in info.losses. Cases: Zeroth-Learn (forward, T = 4, Adam and
--    SGD), MeZO (gaussian n = 1 and 3, wd except biases, as update 'mezo' and as 'sgd'), the
--    seed's SPSA-GC (per-epoch gains, both momentum resets), Spall SPSA on Rosenbrock (plain,
--    Qiskit trust region, Qiskit blocking, both); and on moonstep's own directions (seed given,
--    memory 'seeded' and 'materialized'): Spall, SPSA-GC, Zeroth-Learn Adam, the fixture
--    holding numpy's Philox directions for them. MeZO's fused update (seeded, gaussian) is
--    checked against the update = 'sgd' path fed the same ms_zo_fill directions (1e-11
--    relative, floor 1e-3: two roundings of the same update).
--    Tolerance per case (fixture `tol`): relative |x - y| / max(|y|, 1e-3) <= tol, tol =
--    max(1e-12, 100 x the reference's own float64-vs-long-double gap): 1e-12 for Rosenbrock and
--    SPSA-GC, 3e-11 for MeZO, 1.5e-10 / 1e-9 for Zeroth-Learn Adam / SGD (forward differences
--    with h = 1e-3 turn ulp(L) into ~1e-13 of ghat). Gains within 1e-13 relative.
-- (The spec's 6.5 test vectors: optim_spsa_vectors_spec.lua.) SPSA_FX_REPORT=1 prints each
-- case's agreement on stderr.
local ffi = require 'ffi'
local ms = require 'moonstep'
local nn = ms.nn
local fx = require 'fixtures.spsa_reference'
local decode = require 'fixture_decode'

local REPORT = os.getenv('SPSA_FX_REPORT')
local GAIN_TOL = 1e-13
local MEZO_TOL = 1e-11   -- fused vs engine SGD: both round w - lr (g + wd w) their own way

---------------------------------------------------------------------------------------
-- what exists yet
---------------------------------------------------------------------------------------
local function spsa_class()
  local ok, cls = pcall(function() return ms.optim.SPSA end)
  if not ok or cls == nil then
    error('optim.SPSA is missing (lua/moonstep/optim/SPSA.lua not there yet): ' .. tostring(cls), 2)
  end
  return cls
end

local function zo_fill()
  local ok, f = pcall(function() return ms.C.ms_zo_fill end)
  if not ok then error('the runtime has no ms_zo_fill yet (contract ABI 7): ' .. tostring(f), 2) end
  return f
end

local rel, copy = require('zo_helper').rel, require('zo_helper').copy

---------------------------------------------------------------------------------------
-- 1. directions
---------------------------------------------------------------------------------------
describe('SPSA directions against the numpy Philox', function()
  it('ms_philox4x32_10 gives the known answers and the contract-layout blocks', function()
    local ctr, key, out = ffi.new('uint32_t[4]'), ffi.new('uint32_t[2]'), ffi.new('uint32_t[4]')
    for n, b in ipairs(fx.philox.blocks) do
      for w = 0, 3 do ctr[w] = b.counter[w + 1] end
      key[0], key[1] = b.key[1], b.key[2]
      ms.C.ms_philox4x32_10(ctr, key, out)
      for w = 0, 3 do
        assert(tonumber(out[w]) == b.out[w + 1],
               ('block %d word %d: %08x, expected %08x'):format(n, w, tonumber(out[w]), b.out[w + 1]))
      end
    end
  end)

  local DIST = { rademacher = 0, gaussian = 1, segmented_uniform = 2 }   -- enum ms_zo_dist

  -- ms_zo_fill of one stored vector into a `dtype` tensor, as Lua numbers
  local function fill(v, dtype)
    local f = zo_fill()
    local out = ms.empty(v.count, { dtype = dtype })
    local dir = ffi.new('ms_zo_dir')
    dir.seed, dir.step, dir.index = v.seed, v.step, v.index
    dir.dist, dir.scale = DIST[v.dist], 1
    local rc = f(out, dir, v.offset)
    assert(rc == 0, 'ms_zo_fill failed: ' .. ffi.string(ms.C.ms_last_error()))
    local got = {}
    for j = 1, v.count do got[j] = out:get(j) end
    return got
  end

  for _, dtype in ipairs { 'float32', 'float64' } do
    it('ms_zo_fill: Rademacher and segmented-uniform bit for bit, gaussian within 1e-5 (' .. dtype .. ')', function()
      for _, v in ipairs(fx.philox.dirs) do
        local want = decode(v.u, 'float64')
        local got = fill(v, dtype)
        local what = ('%s seed %.0f step %.0f index %d offset %.0f'):format(v.dist, v.seed, v.step, v.index, v.offset)
        for j = 1, v.count do
          if v.dist == 'gaussian' then
            assert(math.abs(got[j] - want[j]) <= 1e-5 * math.max(1, math.abs(want[j])),
                   ('%s element %d: %.9g, numpy %.9g'):format(what, j - 1, got[j], want[j]))
          elseif got[j] ~= want[j] then
            local hint = ''
            error(('%s element %d (global %.0f): %.17g, expected %.17g%s'):format(
              what, j - 1, v.offset + j - 1, got[j], want[j], hint))
          end
        end
      end
    end)
  end
end)

---------------------------------------------------------------------------------------
-- 2. trajectories
---------------------------------------------------------------------------------------
local function mlp()
  local pr = fx.problems.mlp
  local model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)):to('float64')
  local flat = model:flat_parameters()
  assert(flat:numel() == pr.d, 'the model has ' .. flat:numel() .. ' parameters, the fixture ' .. pr.d)
  flat:copy_(ms.tensor(decode(pr.p0, 'float64'), { dtype = 'float64' }))
  local x = ms.tensor(decode(pr.x, 'float64'), { dtype = 'float64' }):view { 8, 6 }
  local y = ms.tensor(pr.y, { dtype = 'int64' })
  local crit = nn.CrossEntropyLoss()
  local state = { calls = 0 }
  local function closure()
    state.calls = state.calls + 1
    return crit:forward(model:forward(x), y)
  end
  return model, function() return model:flat_parameters() end, closure, state
end

local function rosenbrock()
  local p = ms.tensor(decode(fx.problems.rosenbrock.p0, 'float64'), { dtype = 'float64' })
  local state = { calls = 0 }
  local function closure()   -- a plain Lua function of the parameters: reads the tensor
    state.calls = state.calls + 1
    local a, b = p:get(1), p:get(2)
    return (1 - a) ^ 2 + 100 * (b - a * a) ^ 2
  end
  return { p }, function() return p end, closure, state
end

-- Replays case `name` (config overrides in `over`). Returns a report string; raises at the
-- first disagreement with the step, the quantity and both values.
local function replay(name, over)
  local SPSA = spsa_class()
  local c = fx.cases[name]
  local target, params, closure, state = (c.problem == 'mlp' and mlp or rosenbrock)()
  local d, n = c.d, c.n
  local dirs = decode(c.dirs, 'float64')
  local after, loss = decode(c.after, 'float64'), decode(c.loss, 'float64')
  local losses, gain_a, gain_c = decode(c.losses, 'float64'), decode(c.a, 'float64'), decode(c.c, 'float64')
  local cfg = copy(c.config)
  for k, v in pairs(over or {}) do cfg[k] = v end
  local asked = nil
  if c.seed then           -- moonstep's own directions (the fixture's are numpy's Philox)
    cfg.seed = c.seed
    cfg.memory = cfg.memory or 'seeded'
  else                     -- the fixture's directions, given
    cfg.memory = 'materialized'
    asked = {}
    cfg.directions = function(k, i, u)
      asked[#asked + 1] = { k, i }
      assert(u:numel() == d, ('directions: u has %d elements, expected %d'):format(u:numel(), d))
      assert(k >= 0 and k < c.steps and i >= 1 and i <= n, ('directions(k = %s, i = %s)'):format(k, i))
      local base = (k * n + (i - 1)) * d
      for j = 1, d do u:set(j, dirs[base + j]) end
    end
  end
  local opt = SPSA(target, cfg)
  local worst, at, lworst, off = 0, 'nowhere', 0, 0
  for t = 1, c.steps do
    local before = state.calls
    if asked then for m = #asked, 1, -1 do asked[m] = nil end end
    local got, info = opt:step(closure)
    local where = ('%s%s step %d'):format(name, cfg.memory == 'materialized' and '' or ' (' .. cfg.memory .. ')', t)
    assert(type(info) == 'table', where .. ': step returned no info table')
    if asked then   -- the directions asked for: k = t - 1, i = 1..n
      assert(#asked >= n, ('%s: %d directions asked for, expected %d'):format(where, #asked, n))
      for _, ki in ipairs(asked) do
        assert(ki[1] == t - 1, ('%s: directions(k = %s), expected k = %d'):format(where, ki[1], t - 1))
      end
    end
    -- evaluations
    local calls = state.calls - before
    assert(calls == c.passes[t], ('%s: %d closure calls, the reference evaluates %d'):format(where, calls, c.passes[t]))
    assert(info.passes == calls, ('%s: info.passes %s, closure calls %d'):format(where, tostring(info.passes), calls))
    assert(not info.skipped, where .. ': info.skipped')
    -- gains
    assert(type(info.a) == 'number' and rel(info.a, gain_a[t]) <= GAIN_TOL,
           ('%s: info.a %s, expected a_k %.17g'):format(where, tostring(info.a), gain_a[t]))
    assert(type(info.c) == 'number' and rel(info.c, gain_c[t]) <= GAIN_TOL,
           ('%s: info.c %s, expected h_k %.17g'):format(where, tostring(info.c), gain_c[t]))
    -- blocking
    if c.config.blocking then
      assert(info.blocked == c.blocked[t], ('%s: info.blocked %s, expected %s'):format(
        where, tostring(info.blocked), tostring(c.blocked[t])))
    else
      assert(not info.blocked, where .. ': info.blocked without blocking')
      -- the returned loss: forward: the nominal L0; central: the mean of the 2n losses
      local e = rel(got, loss[t], 1e-3)
      assert(e <= c.tol, ('%s: returned loss %.17g, expected %.17g (rel %.3g > %.3g)'):format(where, got, loss[t], e, c.tol))
      lworst = math.max(lworst, e)
    end
    -- every loss the reference evaluated is among info.losses
    assert(type(info.losses) == 'table', where .. ': info.losses is ' .. type(info.losses))
    for m = 1, c.nlosses[t] do
      local want, found = losses[off + m], false
      for _, v in ipairs(info.losses) do
        if rel(v, want, 1e-3) <= c.tol then found = true; break end
      end
      assert(found, ('%s: evaluated loss %d of the reference, %.17g, is not in info.losses {%s}'):format(
        where, m, want, table.concat(info.losses, ', ')))
    end
    off = off + c.nlosses[t]
    -- the parameters
    local p = params()
    for j = 1, d do
      local want = after[(t - 1) * d + j]
      local e = rel(p:get(j), want, 1e-3)
      if not (e <= worst) then worst, at = e, ('step %d element %d'):format(t, j) end
      if not (e <= c.tol) then
        error(('%s element %d: %.17g, reference %.17g (rel %.3g > tol %.3g)'):format(where, j, p:get(j), want, e, c.tol))
      end
    end
  end
  local report = ('%-22s %-12s params %.2e at %s, loss %.2e, tol %.1e'):format(
    name, cfg.memory, worst, at, lworst, c.tol)
  if REPORT then io.stderr:write(report, '\n') end
  return report
end

describe('optim.SPSA trajectories against the numpy references', function()
  -- fixed directions, given through `directions`. MeZO's fused update regenerates moonstep's
  -- directions and refuses given ones: the MeZO cases run as update = 'sgd' (the same
  -- arithmetic: w -= lr (g + wd w), wd per group); the fused update is checked against that
  -- path below.
  local fixed = { 'zl_adam', 'zl_sgd', 'mezo_n1', 'mezo_n3', 'seed_gc', 'seed_gc_quirk', 'spall',
                  'spall_trust', 'spall_blocking', 'spall_trust_blocking' }
  for _, name in ipairs(fixed) do
    local over = name:match('^mezo') and { update = 'sgd' } or nil
    it(name .. ': ' .. fx.cases[name].what .. (over and ' (as update = sgd)' or ''), function()
      replay(name, over)
    end)
  end
  -- moonstep's own directions (numpy's Philox re-implementation in the fixture), both modes
  local seeded = { 'spall_seeded', 'seed_gc_seeded', 'zl_adam_seeded' }
  for _, name in ipairs(seeded) do
    for _, memory in ipairs { 'seeded', 'materialized' } do
      it(name .. ' (' .. memory .. '): ' .. fx.cases[name].what, function()
        replay(name, { memory = memory })
      end)
    end
  end
  it('the fixture covers every case it holds', function()
    local n, listed = 0, {}
    for _, o in ipairs(fixed) do listed[o] = true end
    for _, o in ipairs(seeded) do listed[o] = true end
    for name in pairs(fx.cases) do
      n = n + 1
      assert(listed[name], 'case ' .. name .. ' is never replayed')
    end
    assert(n == #fixed + #seeded)
  end)

  -- MeZO's fused update on moonstep's gaussian directions (seeded, in place) against the
  -- update = 'sgd' path checked above, fed the same directions from ms_zo_fill (seed, k,
  -- index i - 1), whose gaussian values were checked against numpy's to 1e-5.
  for _, n in ipairs { 1, 3 } do
    it(('mezo n = %d: the fused seeded update = the checked sgd path on the same directions'):format(n), function()
      local SPSA = spsa_class()
      local fill = zo_fill()
      local SEED = 4242
      local cfg = copy(fx.cases['mezo_n' .. n].config)
      cfg.seed, cfg.memory = SEED, 'seeded'
      local m1, p1, c1 = mlp()
      local o1 = SPSA(m1, cfg)
      local cfg2 = copy(cfg)
      cfg2.update, cfg2.memory, cfg2.seed = 'sgd', 'materialized', nil
      cfg2.directions = function(k, i, u)
        local dir = ffi.new('ms_zo_dir')
        dir.seed, dir.step, dir.index, dir.dist, dir.scale = SEED, k, i - 1, 1, 1
        local f64 = ms.empty(u:numel(), { dtype = 'float64' })
        assert(fill(f64, dir, 0) == 0, ffi.string(ms.C.ms_last_error()))
        u:copy_(f64)
      end
      local m2, p2, c2 = mlp()
      local o2 = SPSA(m2, cfg2)
      local worst = 0
      for t = 1, 5 do
        local l1 = o1:step(c1)
        local l2 = o2:step(c2)
        assert(rel(l1, l2, 1e-3) <= MEZO_TOL, ('step %d: loss %.17g (mezo) vs %.17g (sgd)'):format(t, l1, l2))
        local a, b = p1(), p2()
        for j = 1, a:numel() do
          local e = rel(a:get(j), b:get(j), 1e-3)
          worst = math.max(worst, e)
          assert(e <= MEZO_TOL, ('step %d element %d: %.17g (mezo) vs %.17g (sgd)'):format(t, j, a:get(j), b:get(j)))
        end
      end
      if REPORT then io.stderr:write(('mezo n = %d fused vs sgd: %.2e\n'):format(n, worst)) end
    end)
  end
end)
