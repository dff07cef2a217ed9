-- ms.dist — data parallelism over Open MPI: one process per rank, started by mpirun.
--
--   mpirun -np 4 bin/moonstep train.lua
--   ms.dist.init([{timeout = seconds, check = true}])  -> rank, world_size (also done by
--                                            any call below; call it again to set the options again)
--   ms.dist.rank(), ms.dist.world_size()     0-based rank (MPI's: rank 0 is the root)
--   ms.dist.is_distributed()                 more than one rank
--   ms.dist.barrier()
--   ms.dist.all_reduce(t [, op])             in place, op 'sum' (default), 'mean', 'max', 'min'
--   ms.dist.broadcast(t [, root = 0])        in place: every rank gets root's values
--   ms.dist.all_gather(t)                    a new tensor [world_size, ...t's shape]
--   ms.dist.alone(fn, ...)                   fn(...) as a world of one rank (rank 0 of 1,
--                                            every collective a no-op): work that is this
--                                            rank's own (one run of a spread grid)
--
-- A process no MPI launcher started is a world of one rank: every call is then a no-op
-- (all_reduce 'mean' included), so scripts run unchanged, and MPI is never loaded. The
-- collectives run in the plugin libmoonstep_mpi.so (runtime/mpi/dist_mpi.c, built when
-- Open MPI is installed) on CPU tensors; all_reduce and broadcast of a contiguous CUDA
-- tensor go through NCCL when libmoonstep_nccl.so was built (CUDA=1 with NCCL; its unique
-- id sent over MPI; MOONSTEP_DIST_NCCL=0 turns it off), otherwise through a host copy.
-- One GPU per rank: init gives local rank i the GPU i (CUDA_VISIBLE_DEVICES, unless set),
-- so call it before any GPU use. Every
-- collective first checks that all ranks passed the same number of elements (a clear
-- error on every rank, not garbage), and waits at most `timeout` seconds (default 300, or
-- MOONSTEP_DIST_TIMEOUT): a rank that died or stopped calling is an error on the others.
-- That check is one more small all-reduce per collective (a round trip: ~1 us on one
-- host, more across hosts): check = false (or MOONSTEP_DIST_CHECK=0) leaves it out, and
-- mismatched calls are then MPI's undefined behaviour (garbage, or the timeout).
local core = require 'moonstep.core'
local T = require 'moonstep.tensor'
local check = require 'moonstep.check'
local ffi = core.ffi

local M = {}

local st = { ready = false, rank = 0, size = 1, lib = nil, alone = false, nccl = nil, timeout = 300, check = true }

-- Was this process started by an MPI launcher (Open MPI's, or a PMI/PMIx one)?
local function launched()
  return os.getenv('OMPI_COMM_WORLD_SIZE') ~= nil or os.getenv('PMIX_RANK') ~= nil or
         os.getenv('PMI_SIZE') ~= nil
end

local function plugin(fn)
  if st.lib then return st.lib end
  ffi.cdef(core.read_header('moonstep_dist.h'))
  local path = core.libpath:gsub('[^/]*$', '') .. 'libmoonstep_mpi.so'
  local ok, lib = pcall(ffi.load, path, true)   -- global: Open MPI's components need libmpi's symbols
  if not ok then
    check.fail('%s: this process was started by an MPI launcher but %s cannot be loaded (%s); ' ..
               'install Open MPI (openmpi-bin, libopenmpi-dev) and rebuild with `make`', fn, path, tostring(lib))
  end
  if lib.ms_dist_abi_version() ~= lib.MS_DIST_ABI_VERSION then
    check.fail('%s: %s is stale (ABI %d, expected %d); rebuild with `make`', fn, path,
               lib.ms_dist_abi_version(), lib.MS_DIST_ABI_VERSION)
  end
  st.lib = lib
  return lib
end

-- The NCCL plugin's path when it was built and is not turned off (MOONSTEP_DIST_NCCL=0).
local nccl_path
local function nccl_built()
  if nccl_path == nil then
    local path = core.libpath:gsub('[^/]*$', '') .. 'libmoonstep_nccl.so'
    local f = io.open(path, 'rb')
    if f then f:close() end
    nccl_path = (f and os.getenv('MOONSTEP_DIST_NCCL') ~= '0') and path or false
  end
  return nccl_path
end

-- The NCCL plugin, loaded and its communicator made on the first CUDA collective (every
-- rank reaches it together: the agreement check, with a code of its own for the NCCL
-- path, runs first); nil when it was not built or is turned off.
local function nccl(fn)
  if st.nccl ~= nil then return st.nccl or nil end
  st.nccl = false
  local path = nccl_built()
  if not path then return nil end
  ffi.cdef(core.read_header('moonstep_nccl.h'))
  local lib = ffi.load(path)
  if lib.ms_nccl_abi_version() ~= lib.MS_NCCL_ABI_VERSION then
    check.fail('dist.%s: %s is stale (ABI %d, expected %d); rebuild with `make CUDA=1`', fn, path,
               lib.ms_nccl_abi_version(), lib.MS_NCCL_ABI_VERSION)
  end
  local id = ffi.new('uint8_t[?]', lib.MS_NCCL_ID_BYTES)
  if st.rank == 0 and lib.ms_nccl_unique_id(id) ~= 0 then
    check.fail('dist.%s: %s', fn, ffi.string(lib.ms_nccl_error()))
  end
  if st.lib.ms_dist_broadcast(id, lib.MS_NCCL_ID_BYTES, 0) ~= 0 then
    check.fail('dist.%s: %s', fn, ffi.string(st.lib.ms_dist_error()))
  end
  if lib.ms_nccl_init(id, st.rank, st.size, st.timeout) ~= 0 then
    check.fail('dist.%s: %s', fn, ffi.string(lib.ms_nccl_error()))
  end
  st.nccl = lib
  return lib
end

local function lib_fail(fn)
  check.fail('%s', ffi.string(st.lib.ms_dist_error()):gsub('^[%w_]+:', 'dist.' .. fn .. ':', 1))
end

function M.init(opts)
  opts = check.options('dist.init', opts, { 'timeout', 'check' })
  local agree = opts.check            -- (omitted: the environment's, else true; as timeout)
  if agree == nil then
    local env = os.getenv('MOONSTEP_DIST_CHECK')
    if env ~= nil and env ~= '0' and env ~= '1' then
      check.fail('dist.init: MOONSTEP_DIST_CHECK is %s, expected 0 (no agreement check) or 1', check.describe(env))
    end
    agree = env ~= '0'
  end
  st.check = check.boolean('dist.init', 'check', agree)
  local timeout = opts.timeout
  if timeout == nil then
    local env = os.getenv('MOONSTEP_DIST_TIMEOUT')
    timeout = env == nil and 300 or tonumber(env)
    if timeout == nil or not (timeout >= 1e-3 and timeout < math.huge) then
      check.fail('dist.init: MOONSTEP_DIST_TIMEOUT is %s, expected seconds >= 0.001', check.describe(env))
    end
  end
  check.number('dist.init', 'timeout', timeout, 1e-3)
  if not launched() then
    st.ready, st.rank, st.size = true, 0, 1
    return 0, 1
  end
  st.timeout = timeout
  local local_rank = os.getenv('OMPI_COMM_WORLD_LOCAL_RANK')
  if local_rank and os.getenv('CUDA_VISIBLE_DEVICES') == nil then   -- one GPU per rank
    ffi.C.setenv('CUDA_VISIBLE_DEVICES', local_rank, 1)
  end
  local lib = plugin('dist.init')
  local r, n = ffi.new('int[1]'), ffi.new('int[1]')
  if lib.ms_dist_init(timeout, r, n) ~= 0 then lib_fail('init') end
  st.ready, st.rank, st.size = true, r[0], n[0]
  return st.rank, st.size
end

local function ready() if not st.ready then M.init() end end

-- The world this code sees: the job's, or one rank inside M.alone.
local function size() ready(); return st.alone and 1 or st.size end

function M.rank() ready(); return st.alone and 0 or st.rank end
function M.world_size() return size() end
function M.is_distributed() return size() > 1 end

local function pack(...) return { n = select('#', ...), ... } end

function M.alone(fn, ...)
  if type(fn) ~= 'function' then check.fail('dist.alone: fn is %s, expected a function', check.describe(fn)) end
  local prev = st.alone
  st.alone = true
  local res = pack(pcall(fn, ...))
  st.alone = prev
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

function M.barrier()
  if size() > 1 and st.lib.ms_dist_barrier() ~= 0 then lib_fail('barrier') end
end

local DTYPE = { float32 = 0, float64 = 1, int64 = 2 }
local OPS = { sum = 0, mean = 0, max = 1, min = 2 }

-- All ranks must pass the same element count (and dtype): checked with one small
-- all_reduce (max and min of the pair), so every rank sees a mismatch and names it.
local shape_buf = ffi.new('int64_t[6]')
local KIND = { all_reduce = 0, broadcast = 1, all_gather = 2 }
local function same_everywhere(fn, count, code, arg)
  if not st.check then return end
  local what = KIND[fn] * 64 + (arg or 0)       -- the collective and its root / op
  shape_buf[0], shape_buf[1], shape_buf[2], shape_buf[3] = count, -count, code, -code
  shape_buf[4], shape_buf[5] = what, -what
  if st.lib.ms_dist_all_reduce(shape_buf, 6, 2, 1) ~= 0 then lib_fail(fn) end
  if shape_buf[4] ~= what or -shape_buf[5] ~= what then
    check.fail('dist.%s: the ranks called different collectives, or with a different root or op ' ..
               '(this rank %d: %s); every rank must make the same calls in the same order', fn, st.rank, fn)
  end
  if shape_buf[0] ~= count or -shape_buf[1] ~= count or shape_buf[2] ~= code or -shape_buf[3] ~= code then
    check.fail('dist.%s: the ranks passed different tensors: this rank (%d) %d elements of dtype code %d, ' ..
               'others between %d and %d elements (dtype codes %d to %d); every rank must pass the same shape and dtype',
               fn, st.rank, tonumber(count), tonumber(code), tonumber(-shape_buf[1]), tonumber(shape_buf[0]),
               tonumber(-shape_buf[3]), tonumber(shape_buf[2]))
  end
end

-- t on the host, contiguous: itself, or a copy to write back (CUDA or strided tensors).
local function host(fn, t)
  T.live('dist.' .. fn, t)
  if t.device == 'cpu' and t:is_contiguous() then return t, false end
  return t:to('cpu'):contiguous(), true
end

function M.all_reduce(t, op)
  op = op == nil and 'sum' or check.oneof('dist.all_reduce', 'op', op, { 'sum', 'mean', 'max', 'min' })
  T.live('dist.all_reduce', t)
  if op == 'mean' and t.dtype == 'int64' then
    check.fail("dist.all_reduce: op is 'mean' but tensor is %s: 'mean' needs a float tensor", check.describe(t))
  end
  if DTYPE[t.dtype] == nil then
    check.fail('dist.all_reduce: tensor is %s, expected float32, float64 or int64', check.describe(t))
  end
  if size() == 1 then return t end
  local opcode = ({ sum = 0, mean = 1, max = 2, min = 3 })[op]
  if t.device ~= 'cpu' and t:is_contiguous() and nccl_built() then   -- every rank agrees first
    same_everywhere('all_reduce', t:numel(), DTYPE[t.dtype] + 32, opcode)
  end
  local gpu = t.device ~= 'cpu' and t:is_contiguous() and nccl('all_reduce')
  if gpu then
    if gpu.ms_nccl_all_reduce(T.address(t, 'dist.all_reduce'), t:numel(), DTYPE[t.dtype], OPS[op]) ~= 0 then
      check.fail('dist.all_reduce: %s', ffi.string(gpu.ms_nccl_error()))
    end
    if op == 'mean' then t:mul_(1 / st.size) end
    return t
  end
  local h, copied = host('all_reduce', t)
  same_everywhere('all_reduce', h:numel(), DTYPE[t.dtype] + (t.device ~= 'cpu' and 16 or 0), opcode)
  if st.lib.ms_dist_all_reduce(T.address(h, 'dist.all_reduce'), h:numel(), DTYPE[t.dtype], OPS[op]) ~= 0 then
    lib_fail('all_reduce')
  end
  if op == 'mean' then
    if t.dtype == 'int64' then check.fail("dist.all_reduce: op 'mean' needs a float tensor") end
    h:mul_(1 / st.size)
  end
  if copied then t:copy_(h) end
  return t
end

function M.broadcast(t, root)
  root = root == nil and 0 or check.integer('dist.broadcast', 'root', root, 0)
  T.live('dist.broadcast', t)
  if root >= size() then
    check.fail('dist.broadcast: root is %d, expected a rank in 0..%d', root, size() - 1)
  end
  if size() == 1 then return t end
  local nbytes = t:numel() * core.C.ms_dtype_size(t.dtype_id)
  if t.device ~= 'cpu' and t:is_contiguous() and nccl_built() then   -- every rank agrees first
    same_everywhere('broadcast', t:numel(), t.dtype_id + 40, root)
  end
  local gpu = t.device ~= 'cpu' and t:is_contiguous() and nccl('broadcast')
  if gpu then
    if gpu.ms_nccl_broadcast(T.address(t, 'dist.broadcast'), nbytes, root) ~= 0 then
      check.fail('dist.broadcast: %s', ffi.string(gpu.ms_nccl_error()))
    end
    return t
  end
  local h, copied = host('broadcast', t)
  same_everywhere('broadcast', h:numel(), h.dtype_id + 8 + (t.device ~= 'cpu' and 16 or 0), root)
  if st.lib.ms_dist_broadcast(T.address(h, 'dist.broadcast'), nbytes, root) ~= 0 then lib_fail('broadcast') end
  if copied then t:copy_(h) end
  return t
end

function M.all_gather(t)
  T.live('dist.all_gather', t)
  if t.ndim >= 8 then
    check.fail('dist.all_gather: tensor is %s; the result adds a dimension and tensors have at most 8 ' ..
               '(give it at most 7)', check.describe(t))
  end
  local shape = t:shape()
  table.insert(shape, 1, size())
  if size() == 1 then return t:reshape(shape):clone() end
  local h = host('all_gather', t)
  same_everywhere('all_gather', h:numel(), h.dtype_id + 8)
  local out = T.empty(shape, { dtype = t.dtype })
  local nbytes = h:numel() * core.C.ms_dtype_size(h.dtype_id)
  if st.lib.ms_dist_all_gather(T.address(h, 'dist.all_gather'), T.address(out, 'dist.all_gather'), nbytes) ~= 0 then
    lib_fail('all_gather')
  end
  return t.device == 'cpu' and out or out:to(t.device)
end

-- The started all-reduce (sum, in place) of the bucketed gradient exchange
-- (optim/dist_buckets.lua), for a world of more than one: no agreement check (the caller
-- agreed on its plan once); t a contiguous CPU float tensor of fewer than 2^30 elements,
-- left untouched until M._wait(handle). M._progress() lets MPI move those in flight.
local handle_buf = ffi.new('int[1]')
function M._start_all_reduce(t)
  local p = T.address(t, 'dist.all_reduce')
  if st.lib.ms_dist_start_all_reduce(p, t:numel(), DTYPE[t.dtype], 0, handle_buf) ~= 0 then lib_fail('all_reduce') end
  return handle_buf[0]
end
function M._progress() if st.lib.ms_dist_progress() ~= 0 then lib_fail('all_reduce') end end
-- ... and the blocking one (sum, no agreement check), for the last bucket.
function M._all_reduce_unchecked(t)
  if st.lib.ms_dist_all_reduce(T.address(t, 'dist.all_reduce'), t:numel(), DTYPE[t.dtype], 0) ~= 0 then
    lib_fail('all_reduce')
  end
end
function M._wait(handle) if st.lib.ms_dist_wait(handle) ~= 0 then lib_fail('all_reduce') end end

-- bin/moonstep joins the job before the script runs when an MPI launcher started it, so
-- that every rank is in MPI even if the script uses ms.dist on some ranks only (a rank
-- outside MPI would leave the others waiting in MPI_Init, beyond any timeout).
function M._join_if_launched()
  if launched() and not st.ready then M.init() end
end

-- After an uncaught error (bin/moonstep): MPI_Abort ends every rank at once, instead of
-- this rank waiting in MPI_Finalize until the others time out.
function M._abort(code)
  if st.lib and st.size > 1 then st.lib.ms_dist_abort(code) end
end

return check.strict(M, 'ms.dist')
