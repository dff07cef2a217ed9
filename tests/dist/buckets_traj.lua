-- Run by tests/dist_buckets_spec.lua under mpirun: `buckets_traj.lua MODES STEPS OUT` runs
-- each mode of tests/dist/buckets_common.lua (comma-separated) on this rank's share; rank r
-- writes a line per mode to OUT.r: losses, final parameters and the bucket plan's counters.
local ms = require 'moonstep'
local P = dofile('tests/dist/buckets_common.lua')
local modes, steps, out = arg[1], tonumber(arg[2]), arg[3]
local r, n = ms.dist.init { timeout = 60 }
local f = assert(io.open(out .. '.' .. r, 'w'))
for mode in modes:gmatch('[^,]+') do
  local losses, params, c = P.run(mode, r, n, steps)
  f:write(('%s losses=%s params=%s counters=%s\n'):format(mode, P.format(losses), P.format(params), P.format(c)))
end
f:close()
