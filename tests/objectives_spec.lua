-- ms.objectives: the test functions' values at their known minima, analytic gradients
-- against central finite differences (float64), trajectories of moonstep optimizers on
-- them (Adam converges on Rosenbrock, SPSA's spall preset runs loss-only, the SAM family
-- with its closure, LBFGS), plot_trajectories, and the argument errors.
local ms = require 'moonstep'
local H = require 'helper'
local O, optim = ms.objectives, ms.optim

local function fd_grad(f, x, y)
  local h = 1e-6
  return (f(x + h, y) - f(x - h, y)) / (2 * h), (f(x, y + h) - f(x, y - h)) / (2 * h)
end

local function near(got, want, tol, what)
  assert(math.abs(got - want) <= tol * math.max(1, math.abs(want)),
         ('%s: %.17g, expected %.17g (tol %g)'):format(what, got, want, tol))
end

describe('ms.objectives', function()
  it('has the known minima: f = 0 and a zero gradient there', function()
    for _, o in ipairs { O.rosenbrock(), O.rosenbrock { a = 2, b = 10 }, O.rastrigin(), O.beale() } do
      local m = o.minimum
      assert.are.equal(0, o.f(m.x, m.y), o.name)
      local gx, gy = o.grad(m.x, m.y)
      near(gx, 0, 1e-12, o.name .. ' grad x'); near(gy, 0, 1e-12, o.name .. ' grad y')
    end
    assert.are.same({ x = 3, y = 0.5 }, O.beale().minimum)
    assert.are.same({ x = 0, y = 0 }, O.rastrigin().minimum)
    assert.are.same({ x = 2, y = 4 }, O.rosenbrock { a = 2 }.minimum)
    -- values away from the minimum, by hand
    near(O.rosenbrock().f(-1.2, 1), 24.2, 1e-14, 'rosenbrock(-1.2, 1)')  -- 4.84 + 100 * 0.1936
    near(O.rastrigin().f(1, 1), 2, 1e-12, 'rastrigin(1, 1)')           -- 20 + 2 - 20
    near(O.rastrigin { A = 5 }.f(0.5, 0), 10.25, 1e-12, 'rastrigin A = 5')
    assert.are.equal(14.203125, O.beale().f(0, 0))                     -- 2.25 + 5.0625 + 6.890625
  end)

  it('has analytic gradients that match central finite differences', function()
    local rand = H.lcg(7)
    for _, o in ipairs { O.rosenbrock(), O.rosenbrock { a = -0.5, b = 3 }, O.rastrigin(), O.beale() } do
      local d = o.domain
      for _ = 1, 25 do
        local x = d.xmin + (d.xmax - d.xmin) * (rand() + 1) / 2
        local y = d.ymin + (d.ymax - d.ymin) * (rand() + 1) / 2
        local gx, gy = o.grad(x, y)
        local fx, fy = fd_grad(o.f, x, y)
        local scale = math.max(1, math.abs(o.f(x, y)))
        assert(math.abs(gx - fx) <= 1e-6 * scale, ('%s d/dx at (%g, %g): %.12g vs %.12g'):format(o.name, x, y, gx, fx))
        assert(math.abs(gy - fy) <= 1e-6 * scale, ('%s d/dy at (%g, %g): %.12g vs %.12g'):format(o.name, x, y, gy, fy))
      end
    end
  end)

  it('describes itself: domain around the minimum and the start, a tensor form, a grid', function()
    for _, o in ipairs { O.rosenbrock(), O.rastrigin(), O.beale() } do
      local d, m, s = o.domain, o.minimum, o.start
      assert.is_true(d.xmin < m.x and m.x < d.xmax and d.ymin < m.y and m.y < d.ymax, o.name)
      assert.is_true(d.xmin < s.x and s.x < d.xmax and d.ymin < s.y and s.y < d.ymax, o.name)
      assert.is_true(o.f(s.x, s.y) > 1, o.name)
      assert.are.equal(o.f(s.x, s.y), o.f_tensor(ms.tensor({ s.x, s.y }, { dtype = 'float64' })))
      local x, y, z = o:grid(5)
      assert.are.equal(5, #x); assert.are.equal(d.xmin, x[1]); assert.are.equal(d.ymax, y[5])
      assert.are.equal(o.f(x[2], y[4]), z[2][4])
      assert.truthy(tostring(o):find(o.name, 1, true))
    end
    assert.are.same({ x = -1.5, y = 2 }, O.rosenbrock().start)
  end)

  it('runs Adam to Rosenbrock\'s minimum (1, 1)', function()
    local t = O.trajectory(O.rosenbrock(), function(p) return optim.Adam(p, { lr = 0.05 }) end, { steps = 1500 })
    assert.are.equal(1501, #t.x); assert.are.equal(1501, #t.loss)
    assert.are.same({ -1.5, 2, 12.5 }, { t.x[1], t.y[1], t.loss[1] })   -- the start included
    near(t.x[#t.x], 1, 1e-3, 'x'); near(t.y[#t.y], 1, 2e-3, 'y')
    assert.is_true(t.loss[#t.loss] < 1e-6, t.loss[#t.loss])
    -- the same run again: the same path (no hidden state)
    local u = O.trajectory(O.rosenbrock(), function(p) return optim.Adam(p, { lr = 0.05 }) end, { steps = 1500 })
    assert.are.same(t, u)
  end)

  it('runs SGD-momentum, the SAM family, ACME and LBFGS on Beale toward (3, 0.5)', function()
    local runs = {
      function(p) return optim.SGD(p, { lr = 1e-3, momentum = 0.9 }) end,
      function(p) return optim.SAM(p, { base = optim.SGD { lr = 1e-3, momentum = 0.9 }, rho = 0.02 }) end,
      function(p) return optim.ACME(p, { lr = 0.05 }) end,
      function(p) return optim.LBFGS(p, { line_search_fn = 'strong_wolfe', max_iter = 5 }) end,
    }
    for i, make in ipairs(runs) do
      local t = O.trajectory(O.beale(), make, { steps = 400 })
      assert.is_true(t.loss[#t.loss] < 0.02 and t.loss[#t.loss] < t.loss[1], i .. ': ' .. t.loss[#t.loss])
      near(t.x[#t.x], 3, 0.1, i .. ' x')
    end
  end)

  it('runs SPSA (spall preset) with a loss-only closure, seeded', function()
    local function make(p)
      return optim.SPSA(p, optim.SPSA.preset('spall', { maxiter = 300, a = 0.01, seed = 3 }))
    end
    local t = O.trajectory(O.rosenbrock(), make, { steps = 300, start = { -1.2, 1 } })
    assert.are.same({ -1.2, 1 }, { t.x[1], t.y[1] })
    assert.are.equal(301, #t.x)
    assert.is_true(t.loss[#t.loss] < t.loss[1], t.loss[#t.loss])
    assert.are.same(t, O.trajectory(O.rosenbrock(), make, { steps = 300, start = { x = -1.2, y = 1 } }))
  end)

  it('stops a diverging trajectory at its first non-finite point', function()
    -- any object with :step(closure) will do: this one overflows x at its third step
    local function make(set)
      local p, n = set.params[1], 0
      return { step = function(_, closure)
        closure(); n = n + 1
        p:set(1, n == 3 and math.huge or p:get(1) * 2)
      end }
    end
    local t = O.trajectory(O.rosenbrock(), make, { steps = 50 })
    assert.are.equal(4, #t.x)
    assert.are.same({ -1.5, -3, -6, math.huge }, t.x)
    assert.are.equal(math.huge, t.loss[4])
  end)

  it('plots trajectories on the contour map', function()
    if not ms.plot.available() then pending('gnuplot is not installed'); return end
    local dir = os.tmpname(); os.remove(dir)
    local out = dir .. '/beale.png'
    local r, trajs = O.plot_trajectories { objective = O.beale(), steps = 30, out = out, n = 31,
      runs = { { label = 'Adam', make_opt = function(p) return optim.Adam(p, { lr = 0.05 }) end },
               { label = 'SGD', make_opt = function(p) return optim.SGD(p, { lr = 1e-3, momentum = 0.9 }) end } } }
    assert.are.equal(out, r)
    assert.are.equal(2, #trajs); assert.are.equal(31, #trajs[2].x)
    assert.are.equal('\137PNG', H.read_file(out):sub(1, 4))
    local gpt = H.read_file(dir .. '/beale.gp')
    assert.truthy(gpt:find("title 'Adam'", 1, true) and gpt:find("title 'minimum'", 1, true))
    assert.truthy(gpt:find('set logscale cb', 1, true))
    H.sh('rm -rf ' .. H.quote(dir))
  end)

  it('ends a trajectory at its first non-finite loss, before the optimizer refuses the step', function()
    -- SGD at lr 1 on Rosenbrock: x grows like x^3 until f overflows while x is still finite
    local t = O.trajectory(O.rosenbrock(), function(p) return optim.SGD(p, { lr = 1 }) end, { steps = 50 })
    assert.is_true(#t.x < 51, #t.x)
    assert.are.equal(math.huge, t.loss[#t.loss])
    for k = 1, #t.x - 1 do assert.is_true(t.loss[k] < math.huge, k) end
    assert.are.equal(#t.x, #t.y); assert.are.equal(#t.x, #t.loss)
  end)

  it('records each iterate once, after its step, with the loss at it', function()
    local seen = {}
    local t = O.trajectory(O.beale(), function(p)
      local opt = optim.Adam(p, { lr = 0.05 })
      local step = opt.step
      return setmetatable({ step = function(self, c) step(opt, c); seen[#seen + 1] = { p.params[1]:get(1), p.params[1]:get(2) } end },
                          { __index = opt })
    end, { steps = 5 })
    assert.are.equal(6, #t.x)
    assert.are.same({ 1, 1.5 }, { t.x[1], t.y[1] })
    for k = 1, 5 do
      assert.are.same(seen[k], { t.x[k + 1], t.y[k + 1] })
      assert.are.equal(O.beale().f(t.x[k + 1], t.y[k + 1]), t.loss[k + 1])
    end
  end)

  it('refuses an optimizer bound to other parameters than the trajectory\'s point', function()
    local other = ms.params { ms.zeros(2, { dtype = 'float64' }) }
    H.assert_error(function()
      O.trajectory(O.beale(), function() return optim.SGD(other, { lr = 0.1 }) end, { steps = 3 })
    end, 'objectives.trajectory: make_opt returned an optimizer bound to other parameters')
  end)

  it('keeps SPSA\'s gains independent of the number of steps (a short run is a prefix of a long one)', function()
    local rosen = O.rosenbrock()
    local short, long
    for _, steps in ipairs { 40, 300 } do
      local runs = O.standard_runs(rosen, steps)
      local t = O.trajectory(rosen, runs[5].make_opt, { steps = steps })
      if steps == 40 then short = t else long = t end
    end
    for k = 1, 41 do assert.are.equal(long.x[k], short.x[k], k) end
    assert.is_true(short.loss[41] < short.loss[1], short.loss[41])   -- not diverged
    -- every standard run stays finite on every objective, short or long
    for _, name in ipairs { 'rosenbrock', 'rastrigin', 'beale' } do
      local obj = O[name]()
      for _, steps in ipairs { 40, 300 } do
        for _, r in ipairs(O.standard_runs(obj, steps)) do
          local t = O.trajectory(obj, r.make_opt, { steps = steps })
          assert.are.equal(steps + 1, #t.x, name .. ' ' .. r.label)
          assert.is_true(t.loss[#t.loss] < t.loss[1], name .. ' ' .. r.label .. ' ' .. t.loss[#t.loss])
        end
      end
    end
  end)

  it('keeps the minimum and the start inside the domain whatever a is; standard_runs survives a renamed objective', function()
    for _, a in ipairs { -3, 0, 1, 3, 10 } do
      local r = O.rosenbrock { a = a }
      local d = r.domain
      for _, p in ipairs { r.minimum, r.start } do
        assert.is_true(p.x >= d.xmin and p.x <= d.xmax and p.y >= d.ymin and p.y <= d.ymax,
                       ('a = %g: (%g, %g)'):format(a, p.x, p.y))
      end
    end
    local d = O.rosenbrock().domain
    assert.are.same({ xmin = -2, xmax = 2, ymin = -1, ymax = 3 }, d)   -- the usual window for a = 1
    local b = O.beale()
    b.name = 'My Beale'
    assert.are.equal(5, #O.standard_runs(b, 10))
  end)

  it('refuses bad arguments, naming the function', function()
    local adam = function(p) return optim.Adam(p) end
    H.assert_error(function() O.rosenbrock { c = 1 } end, 'objectives.rosenbrock', 'unknown option "c"')
    H.assert_error(function() O.rastrigin { A = 'x' } end, 'objectives.rastrigin: A is "x"')
    H.assert_error(function() O.beale(3) end, 'objectives.beale', 'options is 3')
    H.assert_error(function() O.rosenbrock().f('a', 1) end, 'Rosenbrock.f: x is "a", expected a finite number')
    H.assert_error(function() O.beale().grad(1) end, 'Beale.grad: y is nil')
    H.assert_error(function() O.beale().f_tensor(ms.zeros(3)) end, 'Beale.f_tensor: p is', 'expected a tensor of 2')
    H.assert_error(function() O.trajectory({}, adam) end, 'objectives.trajectory: objective is a table')
    H.assert_error(function() O.trajectory(O.beale(), 3) end, 'objectives.trajectory: make_opt is 3')
    H.assert_error(function() O.trajectory(O.beale(), adam, { steps = -1 }) end, 'objectives.trajectory: steps is -1')
    H.assert_error(function() O.trajectory(O.beale(), adam, { start = { 1 } }) end, 'objectives.trajectory: start.y is nil')
    H.assert_error(function() O.trajectory(O.beale(), function() return 1 end) end,
                   'objectives.trajectory: make_opt returned 1, expected an optimizer')
    H.assert_error(function() O.trajectory(O.beale(), adam, { step = 3 }) end, 'unknown option "step"')
    H.assert_error(function() O.plot_trajectories { objective = O.beale(), runs = {}, out = 'x.png' } end,
                   'objectives.plot_trajectories: runs is')
    H.assert_error(function() O.plot_trajectories { objective = O.beale(), runs = { { label = 'a', make_opt = adam } }, out = 'x.gif' } end,
                   'objectives.plot_trajectories: out is "x.gif"')
    H.assert_error(function() O.plot_trajectories { objective = O.beale(), runs = { { label = 'a', make_opt = adam } }, out = 'x.png', title = 5 } end,
                   'objectives.plot_trajectories: title is 5, expected a string')
    H.assert_error(function() O.plot_trajectories { objective = O.beale(), runs = { { label = 'a', make_opt = adam } }, out = 'x.png', steps = 1e9 } end,
                   'objectives.plot_trajectories: steps is 1000000000')
    H.assert_error(function() O.standard_runs(O.beale(), 1e9) end, 'objectives.standard_runs: steps is 1000000000')
    H.assert_error(function() O.beale():grid(1e9) end, 'objective.grid: n is 1000000000')
    -- what make_opt and the optimizer raise comes back under the function called, at its line
    H.assert_error(function()
      O.trajectory(O.rosenbrock { a = 2, b = 10 }, function(p) p:flat_parameters():free(); return optim.SGD(p) end)
    end, 'objectives.trajectory: make_opt: ', 'freed')
    H.assert_error(function() O.trajectory(O.beale(), function() error('no optimizer today') end) end,
                   'objectives.trajectory: make_opt: ', 'no optimizer today')
    H.assert_error(function()
      O.trajectory(O.rosenbrock(), function(p) return optim.SGD(p, { lr = 0.1 }) end, { start = { 1e200, 1 }, steps = 2 })
    end, 'objectives.trajectory: step 1: SGD.step: ', 'inf')
    H.assert_error(function() return O.himmelblau end, 'ms.objectives', 'himmelblau')
  end)
end)

describe('objectives with hostile points and outputs (fuzzer findings)', function()
  it('reads points raw (a module table is refused, not indexed) and names plot_trajectories', function()
    local ms = require 'moonstep'
    local H = require 'helper'
    local obj = ms.objectives.rosenbrock()
    H.assert_error(function() ms.objectives.trajectory(obj, function(p) return ms.optim.SGD(p, { lr = 1e-3 }) end,
                                                      { start = ms, steps = 2 }) end,
                   'objectives.trajectory', 'start')
    H.assert_error(function() ms.plot.contour { out = os.tmpname() .. '.png', x = { 0, 1 }, y = { 0, 1 },
                                                z = { { 1, 2 }, { 3, 4 } }, minimum = ms } end,
                   'plot.contour', 'minimum')
    if ms.plot.available() then
      local file = os.tmpname()   -- a file where a directory should be
      H.assert_error(function()
        ms.objectives.plot_trajectories { objective = obj, steps = 2, out = file .. '/x.png',
          runs = { { label = 'SGD', make_opt = function(p) return ms.optim.SGD(p, { lr = 1e-3 }) end } } }
      end, 'objectives.plot_trajectories')
      os.remove(file)
    end
  end)
end)
