-- ms.objectives — 2-D test functions of the optimization literature, and optimizer
-- trajectories on them (the pictures papers and libraries show).
--
--   local obj = ms.objectives.rosenbrock{a = 1, b = 100}   -- also rastrigin{A = 10}, beale()
--   obj.f(x, y) -> number            obj.grad(x, y) -> dfdx, dfdy   (analytic, float64)
--   obj.f_tensor(p) -> number        f at a tensor of 2 elements (p[1], p[2])
--   obj.domain  = {xmin =, xmax =, ymin =, ymax =}   a window suited to plots
--   obj.minimum = {x =, y =}         the global minimum (f = 0 for all three)
--   obj.start   = {x =, y =}         a standard start point
--   obj.name, obj.logz               the label; whether its map reads better on a log scale
--   obj.kind                         'Rosenbrock', 'Rastrigin' or 'Beale' (name may be relabelled)
--   obj:grid(n) -> x, y, z           an n x n grid over the domain (z[i][j] = f(x[i], y[j]))
--
--   ms.objectives.trajectory(obj, make_opt [, {start = {x, y} or {x =, y =}, steps = 100}])
--     -> {x = {...}, y = {...}, loss = {...}}   steps + 1 entries, the start included (fewer
--        when x, y or f(x, y) stops being finite: that point is the last one)
--   p, a float64 tensor of 2 elements, is the only parameter of an ms.params arena;
--   opt = make_opt(params) must return a moonstep optimizer bound to it (SGD, Adam, the SAM
--   family, ACME, LBFGS, SPSA, ...). Each step is opt:step(closure): the closure writes f
--   at p and, unless the optimizer is loss-only (SPSA: opt.loss_only), the analytic
--   gradient into the arena's gradient, and returns f. A point that leaves the finite
--   numbers ends the trajectory there (it is recorded).
--
--   ms.objectives.standard_runs(obj [, steps]) -> { {label =, make_opt =}, ... }
--     SGD-momentum, Adam, SAM, ACME, SPSA (spall) with learning rates suited to obj
--
--   ms.objectives.plot_trajectories{ objective = obj, runs = { {label =, make_opt =}, ... },
--                                    steps = 100, out = 'rosenbrock.png' [, start =, n = 121,
--                                    title =] }
--     -> out, trajectories (the list trajectory() returned, one per run); without gnuplot:
--        nil, message, trajectories
--   runs each make_opt from the same start and draws the paths on obj's contour map
--   (ms.plot.contour: log colours for Rosenbrock and Beale, the minimum marked).
-- Rosenbrock: (a - x)^2 + b (y - x^2)^2, minimum (a, a^2), start (-1.5, 2).
-- Rastrigin: 2A + sum over x, y of (v^2 - A cos(2 pi v)), minimum (0, 0), start (-2, 3.5)
--   (many local minima on the integer lattice: a first-order method stops in one).
-- Beale: (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2, minimum (3, 0.5),
--   start (1, 1.5).
local check = require 'moonstep.check'

local M = {}
local cos, sin, pi, huge = math.cos, math.sin, math.pi, math.huge

local Objective = {}
Objective.__index = Objective
Objective.__name = 'objective'

local function is_objective(v) return getmetatable(v) == Objective end

function Objective.__tostring(o)
  return ('%s (minimum f(%g, %g) = 0, start (%g, %g))'):format(o.name, o.minimum.x, o.minimum.y,
                                                               o.start.x, o.start.y)
end

-- An n x n grid over the domain: x, y lists and z[i][j] = f(x[i], y[j]).
function Objective.grid(o, n)
  if not is_objective(o) then
    check.fail('objective.grid: called on %s, expected an objective (use obj:grid(n) with a colon)',
               check.describe(o))
  end
  n = check.integer('objective.grid', 'n', n == nil and 121 or n, 2, 2001)
  local d, x, y, z = o.domain, {}, {}, {}
  for i = 1, n do
    x[i] = d.xmin + (d.xmax - d.xmin) * (i - 1) / (n - 1)
    y[i] = d.ymin + (d.ymax - d.ymin) * (i - 1) / (n - 1)
  end
  for i = 1, n do
    local row = {}
    for j = 1, n do row[j] = o._f(x[i], y[j]) end
    z[i] = row
  end
  return x, y, z
end

-- fields.f / fields.grad are the raw functions (trajectory() and grid() call them as
-- _f / _grad); the public o.f / o.grad check their arguments first.
local function make(fields)
  local o = setmetatable(fields, Objective)
  local f, grad = o.f, o.grad
  o._f, o._grad = f, grad
  local fname, gname = o.name .. '.f', o.name .. '.grad'
  o.f = function(x, y)
    return f(check.number(fname, 'x', x), check.number(fname, 'y', y))
  end
  o.grad = function(x, y)
    return grad(check.number(gname, 'x', x), check.number(gname, 'y', y))
  end
  o.f_tensor = function(p)
    check.tensor(o.name .. '.f_tensor', 'p', p)
    if p:numel() ~= 2 then
      check.fail('%s.f_tensor: p is %s, expected a tensor of 2 elements', o.name, check.describe(p))
    end
    local v = p:contiguous():view(2)
    return f(v:get(1), v:get(2))
  end
  return o
end

local function numbers_of(fn, opts, names)
  opts = check.options(fn, opts, names)
  return opts
end

-- rosenbrock{a = 1, b = 100}
function M.rosenbrock(opts)
  local fn = 'objectives.rosenbrock'
  opts = numbers_of(fn, opts, { 'a', 'b' })
  local a = opts.a == nil and 1 or check.number(fn, 'a', opts.a)
  local b = opts.b == nil and 100 or check.number(fn, 'b', opts.b, 0)
  return make {
    name = 'Rosenbrock', kind = 'Rosenbrock', a = a, b = b, logz = true,
    f = function(x, y) local u, v = a - x, y - x * x; return u * u + b * v * v end,
    grad = function(x, y)
      local v = y - x * x
      return -2 * (a - x) - 4 * b * x * v, 2 * b * v
    end,
    -- the usual window, widened to hold the minimum (a, a^2) when a is not near 1
    domain = { xmin = math.min(-2, a - 1), xmax = math.max(2, a + 1), ymin = -1,
               ymax = math.max(3, a * a + 1) },
    minimum = { x = a, y = a * a },
    start = { x = -1.5, y = 2 },
  }
end

-- rastrigin{A = 10}
function M.rastrigin(opts)
  local fn = 'objectives.rastrigin'
  opts = numbers_of(fn, opts, { 'A' })
  local A = opts.A == nil and 10 or check.number(fn, 'A', opts.A, 0)
  local w = 2 * pi
  return make {
    name = 'Rastrigin', kind = 'Rastrigin', A = A, logz = false,
    f = function(x, y) return 2 * A + x * x - A * cos(w * x) + y * y - A * cos(w * y) end,
    grad = function(x, y) return 2 * x + A * w * sin(w * x), 2 * y + A * w * sin(w * y) end,
    domain = { xmin = -4.5, xmax = 4.5, ymin = -4.5, ymax = 4.5 },
    minimum = { x = 0, y = 0 },
    start = { x = -2, y = 3.5 },
  }
end

-- beale()
function M.beale(opts)
  numbers_of('objectives.beale', opts, {})
  return make {
    name = 'Beale', kind = 'Beale', logz = true,
    f = function(x, y)
      local y2 = y * y
      local t1, t2, t3 = 1.5 - x + x * y, 2.25 - x + x * y2, 2.625 - x + x * y2 * y
      return t1 * t1 + t2 * t2 + t3 * t3
    end,
    grad = function(x, y)
      local y2 = y * y
      local y3 = y2 * y
      local t1, t2, t3 = 1.5 - x + x * y, 2.25 - x + x * y2, 2.625 - x + x * y3
      return 2 * (t1 * (y - 1) + t2 * (y2 - 1) + t3 * (y3 - 1)),
             2 * x * (t1 + 2 * y * t2 + 3 * y2 * t3)
    end,
    domain = { xmin = -1, xmax = 4.5, ymin = -2, ymax = 2.5 },
    minimum = { x = 3, y = 0.5 },
    start = { x = 1, y = 1.5 },
  }
end

-- A point given as {x, y} or {x =, y =}.
local function point(fn, name, v)
  if type(v) ~= 'table' or check.is_tensor(v) then
    check.fail('%s: %s is %s, expected {x, y} or {x =, y =}', fn, name, check.describe(v))
  end
  local x, y = rawget(v, 'x'), rawget(v, 'y')   -- (raw: a module table's __index may raise)
  if x == nil and y == nil then x, y = rawget(v, 1), rawget(v, 2) end
  return check.number(fn, name .. '.x', x), check.number(fn, name .. '.y', y)
end

local function check_objective(fn, obj)
  if not is_objective(obj) then
    check.fail('%s: objective is %s, expected one of ms.objectives.rosenbrock{}, rastrigin{}, beale{}',
               fn, check.describe(obj))
  end
  return obj
end

local function finite(v) return v == v and v < huge and v > -huge end

-- f(...), an error in it re-raised at the user's line under fn's name, with what was
-- being done: 'objectives.trajectory: step 3: SGD.step: the loss is inf ...'.
local function call(fn, what, f, ...)
  local res = { pcall(f, ...) }
  if not res[1] then
    local msg = tostring(res[2]):gsub('^[^:\n]*:%d+: ', '')
    check.raise(('%s: %s: %s'):format(fn, what, msg))
  end
  return unpack(res, 2, table.maxn(res))
end

local function trajectory(fn, obj, make_opt, opts)
  check_objective(fn, obj)
  if not check.is_callable(make_opt) then
    check.fail('%s: make_opt is %s, expected a function(params) returning an optimizer bound to params',
               fn, check.describe(make_opt))
  end
  opts = check.options(fn, opts, { 'start', 'steps' })
  local x0, y0 = point(fn, 'start', opts.start == nil and obj.start or opts.start)
  local steps = check.integer(fn, 'steps', opts.steps == nil and 100 or opts.steps, 0, 1e6)
  local ms = require 'moonstep'
  local p = ms.tensor({ x0, y0 }, { dtype = 'float64' })
  local set = ms.params { p }
  local opt = call(fn, 'make_opt', make_opt, set)
  if type(opt) ~= 'table' or type(check.field(opt, 'step')) ~= 'function' then
    check.fail('%s: make_opt returned %s, expected an optimizer (an object with :step(closure))',
               fn, check.describe(opt))
  end
  local bound = check.field(opt, 'arena')   -- a moonstep optimizer's parameters (nil: any object)
  if bound ~= nil and not rawequal(bound, set) then
    check.fail('%s: make_opt returned an optimizer bound to other parameters, expected one bound to '
               .. 'the params it is given (make_opt = function(params) return optim.Adam(params) end)', fn)
  end
  local g = set.grads[1]
  local loss_only = check.field(opt, 'loss_only') == true
  local f, grad = obj._f, obj._grad
  local function closure()
    local x, y = p:get(1), p:get(2)
    if not loss_only then
      local gx, gy = grad(x, y)
      g:set(1, gx); g:set(2, gy)
    end
    return f(x, y)
  end
  local out = { x = { x0 }, y = { y0 }, loss = { f(x0, y0) } }
  for k = 1, steps do
    call(fn, 'step ' .. k, opt.step, opt, closure)
    local x, y = call(fn, 'step ' .. k, function() return p:get(1), p:get(2) end)
    local v = f(x, y)
    out.x[k + 1], out.y[k + 1], out.loss[k + 1] = x, y, v
    -- diverged: x or y or f(x, y) (which overflows first) is no longer finite
    if not (finite(x) and finite(y) and finite(v)) then break end
  end
  return out
end

function M.trajectory(obj, make_opt, opts)
  return trajectory('objectives.trajectory', obj, make_opt, opts)
end

-- Learning rates per objective for standard_runs (picked so that 300 steps show each
-- method's character: SGD-momentum and SAM at the stable edge, Adam and ACME with their
-- usual sign-like steps, SPSA's a for Spall's gains).
local TUNED = {
  Rosenbrock = { sgd = 1e-3, adam = 0.1, acme = 0.03, spsa = 0.01 },
  Rastrigin = { sgd = 3e-3, adam = 0.1, acme = 0.1, spsa = 0.01 },
  Beale = { sgd = 3e-3, adam = 0.1, acme = 0.03, spsa = 0.03 },
}

-- standard_runs(obj [, steps = 300]) -> { {label =, make_opt =}, ... }: SGD-momentum,
-- Adam, SAM(SGD-momentum), ACME and SPSA (spall preset, seed 1) with learning rates
-- suited to obj, ready for plot_trajectories (scripts/landscape.lua, the demo).
function M.standard_runs(obj, steps)
  local fn = 'objectives.standard_runs'
  check_objective(fn, obj)
  steps = check.integer(fn, 'steps', steps == nil and 300 or steps, 1, 1e6)
  local lr = TUNED[rawget(obj, 'kind')] or TUNED.Rosenbrock
  local optim = require('moonstep').optim
  return {
    { label = ('SGD-momentum (lr %g)'):format(lr.sgd),
      make_opt = function(p) return optim.SGD(p, { lr = lr.sgd, momentum = 0.9 }) end },
    { label = ('Adam (lr %g)'):format(lr.adam),
      make_opt = function(p) return optim.Adam(p, { lr = lr.adam }) end },
    { label = ('SAM(SGD-m, rho 0.05)'),
      make_opt = function(p)
        return optim.SAM(p, { base = optim.SGD { lr = lr.sgd, momentum = 0.9 }, rho = 0.05 })
      end },
    { label = ('ACME (lr %g)'):format(lr.acme),
      make_opt = function(p) return optim.ACME(p, { lr = lr.acme }) end },
    { label = ('SPSA (spall, a %g)'):format(lr.spsa),
      make_opt = function(p)
        -- Spall's gains depend on maxiter (A = maxiter / 10): at least 300, so a short run
        -- is the start of the long one, not a larger first step (which diverges on Rosenbrock)
        return optim.SPSA(p, optim.SPSA.preset('spall', { maxiter = math.max(steps, 300), a = lr.spsa,
                                                          seed = 1 }))
      end },
  }
end

function M.plot_trajectories(o)
  local fn = 'objectives.plot_trajectories'
  if type(o) ~= 'table' or check.is_tensor(o) then
    check.fail('%s: options is %s, expected a table {objective =, runs =, steps =, out =}', fn, check.describe(o))
  end
  check.options(fn, o, { 'objective', 'runs', 'steps', 'out', 'start', 'n', 'title' })
  local obj = check_objective(fn, o.objective)
  local runs = o.runs
  if type(runs) ~= 'table' or check.is_tensor(runs) or #runs == 0 then
    check.fail('%s: runs is %s, expected a list of {label =, make_opt =}', fn, check.describe(runs))
  end
  require('moonstep.plot.gnuplot').target(fn, o.out)   -- a bad path fails before any run
  local n = check.integer(fn, 'n', o.n == nil and 121 or o.n, 2, 2001)
  if o.title ~= nil and type(o.title) ~= 'string' then
    check.fail('%s: title is %s, expected a string', fn, check.describe(o.title))
  end
  if o.steps ~= nil then check.integer(fn, 'steps', o.steps, 0, 1e6) end
  local paths, trajectories = {}, {}
  for i, r in ipairs(runs) do
    if type(r) ~= 'table' or check.is_tensor(r) then
      check.fail('%s: runs[%d] is %s, expected {label =, make_opt =}', fn, i, check.describe(r))
    end
    check.options(('%s runs[%d]'):format(fn, i), r, { 'label', 'make_opt' })
    if type(r.label) ~= 'string' then
      check.fail('%s: runs[%d].label is %s, expected a string', fn, i, check.describe(r.label))
    end
    local t = trajectory(fn, obj, r.make_opt, { start = o.start, steps = o.steps })
    trajectories[i] = t
    paths[i] = { label = r.label, x = t.x, y = t.y }
  end
  local x, y, z = obj:grid(n)
  local title = o.title
  if title == nil then
    title = ('%s: %d steps from (%g, %g)'):format(obj.name, #trajectories[1].x - 1, trajectories[1].x[1],
                                                  trajectories[1].y[1])
  end
  local out, msg = check.protect(fn, require('moonstep.plot').contour, {
    out = o.out, x = x, y = y, z = z, logz = obj.logz, paths = paths, minimum = obj.minimum,
    title = title, zlabel = 'f(x, y)',
  })
  if out then return out, trajectories end
  return nil, msg, trajectories
end

return check.strict(M, 'ms.objectives')
