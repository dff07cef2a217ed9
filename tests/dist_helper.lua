-- tests/dist_helper.lua — run a Lua script on N ranks under Open MPI's mpirun (loopback,
-- oversubscribed: the machine may have fewer cores than ranks; as root when the tests
-- run as root, with the variables Open MPI asks for). D.run(np, script, args, opts) ->
-- rc, output (stdout and stderr of every rank, mpirun's own messages included).
-- opts.timeout: seconds before the whole job is killed (default 120); opts.env: variable
-- assignments for every rank ('NAME=value ...'). D.available: mpirun
-- and the MPI plugin exist (specs gate on it with H.gate).
local H = require 'helper'

local D = {}

local lib = os.getenv('MOONSTEP_LIB') or 'build/libmoonstep.so'
local plugin = lib:gsub('[^/]*$', '') .. 'libmoonstep_mpi.so'
D.available = H.sh_rc('command -v mpirun >/dev/null 2>&1'):match('rc=0') ~= nil and H.exists(plugin)
D.why = D.available and '' or ('needs mpirun and ' .. plugin .. ' (apt-get install openmpi-bin libopenmpi-dev; make)')

function D.run(np, script, args, opts)
  opts = opts or {}
  local cmd = ('%sOMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 ' ..
               'timeout -k 5 %d mpirun -np %d --oversubscribe bin/moonstep %s %s')
              :format(opts.env and opts.env .. ' ' or '', opts.timeout or 120, np, script, args or '')
  local out = H.sh_rc(cmd)
  local rc = tonumber(out:match('rc=(%d+)%s*$'))
  return rc, (out:gsub('rc=%d+%s*$', ''))
end

-- The lines "[rank] loss ..." / "[rank] param ..." one rank of a run printed, in order (the
-- trajectory tests/dist/spsa_run.lua and its specs compare).
function D.trajectory(out, rank)
  local t = {}
  for line in out:gmatch('[^\n]+') do
    local r, rest = line:match('^%[(%d+)%] (.*)$')
    if r and tonumber(r) == rank and (rest:match('^loss ') or rest:match('^param ')) then t[#t + 1] = rest end
  end
  return t
end

-- got and want (lists of numbers) equal to tol relative (absolute below 1); what names
-- them in the error.
function D.agree(got, want, tol, what)
  if #got ~= #want then error(('%s: %d numbers, expected %d'):format(what, #got, #want), 2) end
  for i = 1, #want do
    local g, w = got[i], want[i]
    if not (math.abs(g - w) <= tol * math.max(1, math.abs(w))) then
      error(('%s: element %d is %.17g, expected %.17g (tolerance %g)'):format(what, i, g, w, tol), 2)
    end
  end
end

return D
