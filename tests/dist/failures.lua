-- Run by tests/dist_spec.lua under mpirun: arg[1] picks the failure.
--   mismatch: rank 1 passes a tensor of another size; every rank must report it.
--   stuck:    rank 1 stops calling collectives (sleeps); rank 0 must time out with an error.
--   killed:   rank 1 dies (SIGKILL) before the collective; rank 0 must not hang.
--   luaerror: rank 1 raises a Lua error mid-way; the job must end at once (MPI_Abort).
--   kinds:    rank 0 broadcasts where rank 1 all-gathers, then different roots and ops.
local ms = require 'moonstep'
local ffi = require 'ffi'
local case = arg[1]
local r = ms.dist.init { timeout = case == 'luaerror' and 30 or 3 }
if case == 'mismatch' then
  local ok, err = pcall(ms.dist.all_reduce, ms.zeros(r == 1 and 5 or 4, 'float64'))
  print(('rank %d: %s'):format(r, ok and 'no error' or err))
elseif case == 'stuck' then
  if r == 1 then
    ffi.cdef 'unsigned int sleep(unsigned int s);'
    ffi.C.sleep(8)
    print('rank 1: woke up')
  else
    local t0 = ms.clock()
    local ok, err = pcall(ms.dist.all_reduce, ms.zeros(4, 'float64'))
    print(('rank 0: after %.1f s: %s'):format(ms.clock() - t0, ok and 'no error' or err))
  end
elseif case == 'luaerror' then
  for step = 1, 10 do
    if r == 1 and step == 3 then error('boom on rank 1') end
    ms.dist.all_reduce(ms.ones(4, 'float64'))
  end
elseif case == 'kinds' then
  local t = ms.zeros(4, 'float64')
  local want = 'the ranks called different collectives, or with a different root or op'
  local function refused(f, ...)
    local ok, err = pcall(f, ...)
    return not ok and tostring(err):find(want, 1, true) ~= nil
  end
  local kinds = refused(function() if r == 0 then ms.dist.broadcast(t) else ms.dist.all_gather(t) end end)
  local roots = refused(ms.dist.broadcast, t, r)
  local ops = refused(ms.dist.all_reduce, t, r == 0 and 'max' or 'sum')
  print(('rank %d refused: kinds %s roots %s ops %s'):format(r, tostring(kinds), tostring(roots), tostring(ops)))
elseif case == 'killed' then
  if r == 1 then
    ffi.cdef 'int raise(int sig);'
    ffi.C.raise(9)
  end
  local ok, err = pcall(ms.dist.all_reduce, ms.zeros(4, 'float64'))
  print(('rank %d: %s'):format(r, ok and 'no error' or err))
  os.exit(ok and 0 or 1)
end
