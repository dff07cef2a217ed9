-- moonstep.core — loads libmoonstep.so and declares its C ABI to the FFI.
--
-- The declarations are read from runtime/include/moonstep.h and moonstep_optim.h (between
-- their MS_CDEF markers) and the elementwise op enums from the op list moonstep.h includes
-- (runtime/include/moonstep_elementwise.h), so the headers stay the single source of
-- truth. Where the headers and the library are found, first match wins:
--   MOONSTEP_HOME set       that source tree: <home>/runtime/include, <home>/build/libmoonstep.so
--   a source tree           this file is <tree>/lua/moonstep/core.lua: the same, from <tree>
--   an installed copy       `make install` (or `luarocks make`) wrote moonstep/config.lua
--                           beside this file: { include = dir, lib = path }; where those are
--                           missing (a staged DESTDIR, a LuaRocks tree), the places relative to
--                           <prefix>/share/lua/5.1/moonstep/: <prefix>/include/moonstep, and
--                           <prefix>/lib/moonstep, <prefix>/lib, <prefix>/lib/lua/5.1, package.cpath
-- MOONSTEP_LIB overrides the library path in every case (the sanitizer build uses it).
-- M.home is the source tree (nil when installed), M.include the headers' directory,
-- M.libpath the library loaded, M.installed whether this is an installed copy.
local ffi = require 'ffi'

local here = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$') or '.'

local function readable(path)
  local f = path and io.open(path, 'r')
  if f then f:close() end
  return f ~= nil
end

-- The first readable path of list[1..n] (n = table.maxn: an absent entry, say cfg.lib
-- without a config.lua, is skipped, never the end of the list).
local function first_readable(list)
  for i = 1, table.maxn(list) do if readable(list[i]) then return list[i] end end
  return nil
end

local home, include, libdefault, installed
if os.getenv('MOONSTEP_HOME') or readable(here .. '/../../runtime/include/moonstep.h') then
  home = os.getenv('MOONSTEP_HOME') or (here .. '/../..')
  include, libdefault = home .. '/runtime/include', home .. '/build/libmoonstep.so'
else
  installed = true
  local prefix = here .. '/../../../..'
  local cfg = {}
  local chunk = loadfile(here .. '/config.lua')
  if chunk then
    local ok, t = pcall(chunk)
    if ok and type(t) == 'table' then cfg = t end
  end
  include = (cfg.include and readable(cfg.include .. '/moonstep.h') and cfg.include)
    or (readable(prefix .. '/include/moonstep/moonstep.h') and prefix .. '/include/moonstep')
  libdefault = first_readable { cfg.lib, prefix .. '/lib/moonstep/libmoonstep.so', prefix .. '/lib/libmoonstep.so',
                                prefix .. '/lib/lua/5.1/libmoonstep.so', package.searchpath('libmoonstep', package.cpath) }
    or cfg.lib or (prefix .. '/lib/moonstep/libmoonstep.so')
  if not include then
    error(('moonstep: cannot find the C headers (moonstep.h) of the installed package at %s: ' ..
           'reinstall with `make install`, or set MOONSTEP_HOME to a moonstep source tree')
          :format(cfg.include or (prefix .. '/include/moonstep')), 0)
  end
end

local function read_header(name)
  local path = include .. '/' .. name
  local f = io.open(path, 'r')
  if not f then
    error('moonstep: cannot read the C header ' .. path ..
          (installed and ' (reinstall with `make install`)' or ' (set MOONSTEP_HOME to the moonstep source tree)'), 0)
  end
  local text = f:read('*a')
  f:close()
  local body = text:match('/%* MS_CDEF_BEGIN %*/(.-)/%* MS_CDEF_END %*/')
  assert(body, 'moonstep: ' .. path .. ' has no MS_CDEF_BEGIN/END markers')
  return body
end

-- The ABI's two halves, in order (the optimizers' uses moonstep.h's types).
ffi.cdef(read_header('moonstep.h'))
ffi.cdef(read_header('moonstep_optim.h'))

-- The elementwise ops, from their one list (runtime/include/moonstep_elementwise.h,
-- X-macros the FFI cannot expand): { unary = { {id = 'NEG', value = 0, name = 'neg',
-- method = true}, ... }, binary = {...}, ternary = {...} }, value = the position in its
-- list = the C enum value. The same enums are declared to the FFI (C.MS_NEG, ...).
local function read_elementwise()
  local path = include .. '/moonstep_elementwise.h'
  local f = assert(io.open(path, 'r'), 'moonstep: cannot read ' .. path)
  local text = f:read('*a')
  f:close()
  local lists, decls = {}, {}
  for _, arity in ipairs({ 'unary', 'binary', 'ternary' }) do
    local ARITY = arity:upper()
    -- the macro's lines: up to the first that does not end with a backslash
    local body = text:match('#define MS_' .. ARITY .. '_OPS%(X%)[^\n]*\\\n(.-[^\\])\n')
    assert(body, 'moonstep: ' .. path .. ' has no MS_' .. ARITY .. '_OPS(X) list')
    body = body:gsub('/%*.-%*/', ' ')
    local list, enum = {}, {}
    for args in body:gmatch('X%(([^)]*)%)') do
      local id, name, lua = args:match('^%s*([%u%d_]+)%s*,%s*"([%l%d_]+)"%s*,?%s*(%u*)%s*$')
      local lua_ok = lua == ''  -- the LUA column: unary entries only
      if arity == 'unary' then lua_ok = lua == 'METHOD' or lua == 'CUSTOM' end
      assert(id and lua_ok, 'moonstep: ' .. path .. ': cannot read the entry X(' .. args .. ')')
      local value = #list  -- 0-based: the position in the list
      list[value + 1] = { id = id, value = value, name = name, method = lua == 'METHOD' }
      enum[value + 1] = ('MS_%s = %d'):format(id, value)
    end
    enum[#enum + 1] = ('MS_%s_COUNT = %d'):format(ARITY, #list)
    decls[#decls + 1] = ('enum ms_%s_op { %s };'):format(arity, table.concat(enum, ', '))
    lists[arity] = list
  end
  return lists, table.concat(decls, '\n')
end
local elementwise, elementwise_cdef = read_elementwise()
ffi.cdef(elementwise_cdef)

-- OpenMP threads (ours and OpenBLAS's: one pool, see the Makefile) spin a while after
-- each parallel region before sleeping, so back-to-back ops in a step do not pay a
-- wake-up each; 100000 turns (a few ms) bridge the gaps inside a training step, and then
-- the threads sleep, so an idle REPL or a loaded machine is not kept busy (libgomp's own
-- default spins 3x longer; 10^7, used before, spun for about a second and made 2 threads
-- collapse beside another busy process). The guard in runtime/threads.c handles a loaded
-- machine. libgomp reads this when loaded; a GOMP_SPINCOUNT or OMP_WAIT_POLICY of the
-- user's wins (libgomp lets GOMP_SPINCOUNT override OMP_WAIT_POLICY, so none is set then).
ffi.cdef [[
int setenv(const char *name, const char *value, int overwrite);
int unsetenv(const char *name);
]]
local spin_set = os.getenv('GOMP_SPINCOUNT') == nil and os.getenv('OMP_WAIT_POLICY') == nil
if spin_set then ffi.C.setenv('GOMP_SPINCOUNT', '100000', 1) end

local libpath = os.getenv('MOONSTEP_LIB')
if libpath == '' then libpath = nil end   -- an empty override is no override
libpath = libpath or libdefault
local ok, C = pcall(ffi.load, libpath)
if not ok then
  if installed then
    error(('moonstep: cannot load %s (%s).\nReinstall moonstep (`make install`), or set ' ..
           'MOONSTEP_LIB to the library path.'):format(libpath, tostring(C)), 0)
  end
  error(('moonstep: cannot load %s (%s).\nBuild it first with `make` in %s, or set ' ..
         'MOONSTEP_LIB to the library path.'):format(libpath, tostring(C), home), 0)
end
-- libgomp has read it; child processes (benchmark competitors, shells) must not inherit it
if spin_set then ffi.C.unsetenv('GOMP_SPINCOUNT') end
if C.ms_abi_version() ~= C.MS_ABI_VERSION then
  error(('moonstep: %s has ABI version %d but the header says %d; rebuild with `make`')
        :format(libpath, C.ms_abi_version(), C.MS_ABI_VERSION), 0)
end

local M = { C = C, ffi = ffi, home = home, include = include, libpath = libpath,
            installed = installed or false, elementwise = elementwise,
            read_header = read_header }   -- (the plugins' headers: moonstep_dist.h)

-- The first of several names of a system library that ffi.load accepts, or nil and the
-- last loader error (zlib for data, readline for the REPL).
function M.load_first(names)
  local err
  for _, name in ipairs(names) do
    local ok, lib = pcall(ffi.load, name)
    if ok then return lib end
    err = lib
  end
  return nil, err
end

-- Raise the runtime's last error as a Lua error at the user's line (the first stack
-- frame outside the moonstep package, as check.fail). fail(fn) with a string also
-- replaces the message's leading function name by fn, the public function the user
-- called ("copy_: ..." from clone reads "clone: ..."); a number (an old stack level)
-- is ignored: the user's line is found on the stack.
function M.fail(fn)
  local check = require 'moonstep.check'
  local msg = ffi.string(C.ms_last_error())
  check.raise(type(fn) == 'string' and check.rename(fn, msg) or msg)
end

return M
