-- spsa_rosenbrock.lua — SPSA on a plain Lua function: the 2-D Rosenbrock function,
-- f(x, y) = (1 - x)^2 + 100 (y - x^2)^2, minimum 0 at (1, 1), from the classic start (-1.2, 1).
--
--   bin/moonstep scripts/examples/spsa_rosenbrock.lua [--steps N] [--quick] [--help]
--
-- Nothing here is a neural network: the two coordinates live in a float64 tensor made an
-- optimizer's parameters with ms.params, and the closure computes f in Lua from the
-- tensor's values (x:get(i)). SPSA needs nothing else: no gradient, just f at two points
-- per step. The settings are Spall's canonical ones (optim.SPSA.preset('spall'): gains
-- a_k = a / (A + k + 1)^0.602, c_k = c / (k + 1)^0.101, A = 10% of the iterations) with
-- two overrides for this badly scaled valley: trust_region = true (the estimate is scaled
-- to norm 1 when larger, Qiskit's safeguard; without it the first steps overshoot to 1e15)
-- and a smaller perturbation c = 0.02. Near the minimum the iterate keeps jittering (a_k
-- decays slowly); the Polyak average of the second half of the iterates (average_from,
-- opt:averaged()) lands closer to (1, 1).
local ms = require 'moonstep'
local optim = ms.optim
local flags = require 'moonstep.flags'

local args = flags.parse('examples/spsa_rosenbrock.lua', {
  { 'steps', 'integer', 3000, 'SPSA iterations', min = 1 },
  { 'quick', 'flag', false, 'a shorter run (1000 iterations): the tests use it' },
}, arg or {})
if args.quick then args.steps = 1000 end

local function rosenbrock(x, y) return (1 - x) ^ 2 + 100 * (y - x * x) ^ 2 end

local p = ms.tensor({ -1.2, 1 }, 'float64')   -- the iterate (x, y)
local set = ms.params { p }                   -- p now views the parameter arena

-- the preset gives a plain config table; maxiter sets Spall's A, the rest are overrides
local config = optim.SPSA.preset('spall', { maxiter = args.steps, trust_region = true, c = 0.02,
                                            average_from = math.floor(args.steps / 2) + 1 })
config.seed = 1                               -- reproducible directions
local opt = optim.SPSA(set, config)

local function f() return rosenbrock(p:get(1), p:get(2)) end
print(('%6s  %10s  %10s  %12s  %10s'):format('step', 'x', 'y', 'f(x, y)', '|(x,y)-(1,1)|'))
local function report(k)
  local x, y = p:get(1), p:get(2)
  print(('%6d  %10.5f  %10.5f  %12.6g  %10.5f'):format(k, x, y, f(), math.sqrt((x - 1) ^ 2 + (y - 1) ^ 2)))
end
report(0)
for k = 1, args.steps do
  opt:step(f)   -- the closure: f at the parameters SPSA has set (perturbed), a number
  if k % math.max(1, math.floor(args.steps / 10)) == 0 then report(k) end
end
local avg = opt:averaged()                     -- a tensor like the arena: (x, y) averaged
local ax, ay = avg:get(1), avg:get(2)
print(('average of steps %d..%d: (%.5f, %.5f)  f %.6g  |(x,y)-(1,1)| %.5f'):format(config.average_from,
  args.steps, ax, ay, rosenbrock(ax, ay), math.sqrt((ax - 1) ^ 2 + (ay - 1) ^ 2)))
print(('%d evaluations of f (%d per step)'):format(opt.passes, opt.passes / args.steps))
