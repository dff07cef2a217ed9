-- moonstep.core — loads libmoonstep.so and declares its C ABI to the FFI.
--
-- The declarations are read from runtime/include/moonstep.h (between the MS_CDEF
-- markers), so the header stays the single source of truth. MOONSTEP_LIB overrides
-- the library path (the sanitizer build uses it), MOONSTEP_HOME the source tree.
local ffi = require 'ffi'

local here = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$') or '.'
local home = os.getenv('MOONSTEP_HOME') or (here .. '/../..')

local function read_header()
  local path = home .. '/runtime/include/moonstep.h'
  local f = io.open(path, 'r')
  if not f then
    error('moonstep: cannot read the C header ' .. path ..
          ' (set MOONSTEP_HOME to the moonstep source tree)', 0)
  end
  local text = f:read('*a')
  f:close()
  local body = text:match('/%* MS_CDEF_BEGIN %*/(.-)/%* MS_CDEF_END %*/')
  assert(body, 'moonstep: ' .. path .. ' has no MS_CDEF_BEGIN/END markers')
  return body
end

ffi.cdef(read_header())

-- OpenMP threads that spin after a parallel region steal the cores OpenBLAS's own
-- threads need for the next GEMM (5x slower training on 2 cores, measured); libgomp
-- reads this when it is loaded, so set it first unless the user chose otherwise.
ffi.cdef 'int setenv(const char *name, const char *value, int overwrite);'
ffi.C.setenv('OMP_WAIT_POLICY', 'PASSIVE', 0)

local libpath = os.getenv('MOONSTEP_LIB') or (home .. '/build/libmoonstep.so')
local ok, C = pcall(ffi.load, libpath)
if not ok then
  error(('moonstep: cannot load %s (%s).\nBuild it first with `make` in %s, or set ' ..
         'MOONSTEP_LIB to the library path.'):format(libpath, tostring(C), home), 0)
end
if C.ms_abi_version() ~= C.MS_ABI_VERSION then
  error(('moonstep: %s has ABI version %d but the header says %d; rebuild with `make`')
        :format(libpath, C.ms_abi_version(), C.MS_ABI_VERSION), 0)
end

local M = { C = C, ffi = ffi, home = home }

-- Raise the runtime's last error as a Lua error at the caller's caller (level 3 by
-- default: the user code that called the method that called fail).
function M.fail(level)
  error(ffi.string(C.ms_last_error()), level or 3)
end

return M
