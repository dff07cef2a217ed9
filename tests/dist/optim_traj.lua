-- Run by tests/dist_optim_spec.lua under mpirun: `optim_traj.lua WHICH STEPS [INIT [OUT]]` trains
-- (WHICH: one name or several, comma-separated, each a run of its own; OUT: a path prefix,
-- rank r writes its lines to OUT.r instead of stdout, so that the ranks' long lines never
-- interleave)
-- the problem of tests/dist/optim_common.lua on this rank's share of the batch and prints
-- the losses and the final parameters. INIT = 'rank': each rank starts from other
-- parameters (seed 1 + rank), which the bind broadcast must replace with rank 0's.
local ms = require 'moonstep'
local P = dofile('tests/dist/optim_common.lua')
local which, steps, init, out = arg[1], tonumber(arg[2]), arg[3], arg[4]
local r, n = ms.dist.init { timeout = 60 }
local f = out and assert(io.open(out .. '.' .. r, 'w')) or io.stdout
for w in which:gmatch('[^,]+') do
  local t0 = os.clock()
  local losses, params = P.run(w, r, n, steps, { init_seed = init == 'rank' and 1 + r or 1 })
  f:write(('rank %d of %d %s losses=%s params=%s cpu=%.3f\n'):format(r, n, w, P.format(losses),
                                                                      P.format(params), os.clock() - t0))
end
if out then f:close() end
