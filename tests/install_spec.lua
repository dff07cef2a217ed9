-- `make install` / `make uninstall` and the LuaRocks rockspec: an installed moonstep runs
-- scripts from any directory with no source tree (no MOONSTEP_HOME, no LUA_PATH), finds its
-- headers and library (moonstep/config.lua, or relative to the package when staged with
-- DESTDIR or moved by LuaRocks), fails clearly when a part is missing, and uninstall removes
-- every file install wrote. The library installed is the one the suite runs with (the
-- directory of MOONSTEP_LIB, else build/): nothing is rebuilt.
local H = require 'helper'
local q, sh = H.quote, H.sh

local root = os.getenv('MOONSTEP_HOME') or '.'
local suite_lib = os.getenv('MOONSTEP_LIB') or (root .. '/build/libmoonstep.so')
if suite_lib:sub(1, 1) ~= '/' then suite_lib = root .. '/' .. suite_lib end
local build = suite_lib:match('^(.*)/[^/]*$') or '.'
local have_lib = io.open(build .. '/libmoonstep.so') ~= nil

-- A clean environment: nothing pointing at the source tree.
local CLEAN = 'env -u MOONSTEP_HOME -u MOONSTEP_LIB -u LUA_PATH -u LUA_CPATH '

local function make(args)
  return H.sh_rc(('cd %s && make --no-print-directory -s %s BUILD=%s'):format(q(root), args, q(build)))
end
local function files_under(dir)
  local list = {}
  for line in sh('cd ' .. q(dir) .. ' && find . -type f | sort'):gmatch('[^\n]+') do list[#list + 1] = line end
  return list
end
local function mktemp() return (sh('mktemp -d'):gsub('%s+$', '')) end

describe('make install', function()
  if not have_lib then
    pending('no library at ' .. build .. '/libmoonstep.so: build first (make, or MOONSTEP_LIB)')
    return
  end
  local prefix, work
  setup(function()
    prefix, work = mktemp(), mktemp()
    local out = make('install PREFIX=' .. q(prefix))
    assert(out:find('rc=0', 1, true), out)
  end)
  teardown(function()
    sh('rm -rf ' .. q(prefix) .. ' ' .. q(work))
  end)

  it('puts the library, the headers, the Lua package, its config and bin/moonstep in PREFIX', function()
    for _, f in ipairs { 'bin/moonstep', 'lib/moonstep/libmoonstep.so', 'include/moonstep/moonstep.h',
                         'include/moonstep/moonstep_optim.h', 'include/moonstep/moonstep_elementwise.h',
                         'share/lua/5.1/moonstep/init.lua', 'share/lua/5.1/moonstep/core.lua',
                         'share/lua/5.1/moonstep/cli.lua', 'share/lua/5.1/moonstep/config.lua',
                         'share/lua/5.1/moonstep/nn/Linear.lua', 'share/lua/5.1/moonstep/optim/Adam.lua' } do
      assert.truthy(io.open(prefix .. '/' .. f), f .. ' was not installed')
    end
    -- every Lua file of the package (the same count: nothing left behind)
    local src = tonumber(sh('cd ' .. q(root .. '/lua') .. " && find moonstep -name '*.lua' | wc -l"))
    local dst = tonumber(sh('cd ' .. q(prefix .. '/share/lua/5.1') .. " && find moonstep -name '*.lua' ! -path moonstep/config.lua | wc -l"))
    assert.are.equal(src, dst)
    assert.truthy(sh('test -x ' .. q(prefix .. '/bin/moonstep') .. ' && echo exec'):find('exec', 1, true))
    local cfg = dofile(prefix .. '/share/lua/5.1/moonstep/config.lua')
    assert.are.equal(prefix .. '/include/moonstep', cfg.include)
    assert.are.equal(prefix .. '/lib/moonstep/libmoonstep.so', cfg.lib)
  end)

  it('runs a chunk from another directory with no source tree', function()
    local out = H.sh_rc('cd /tmp && ' .. CLEAN .. q(prefix .. '/bin/moonstep') .. ' -e ' .. q(
      'print(ms.ones(2):sum()); local c = require "moonstep.core"; ' ..
      'print(c.installed, c.home, c.include, c.libpath); ' ..
      'print(package.searchpath("moonstep.nn.Linear", package.path))'))
    assert.truthy(out:find('^2\n'), out)
    assert.truthy(out:find(('true\tnil\t%s/include/moonstep\t%s/lib/moonstep/libmoonstep.so\n'):format(prefix, prefix), 1, true), out)
    assert.truthy(out:find(prefix .. '/share/lua/5.1/moonstep/nn/Linear.lua\n', 1, true), out)
    assert.truthy(out:find('rc=0', 1, true), out)
  end)

  it('runs a script that trains a tiny MLP, from another directory', function()
    H.write_file(work .. '/tiny.lua', [[
local ms = require 'moonstep'
ms.manual_seed(0)
local x = ms.randn(64, 8)
local y = ms.tensor((function() local t = {} for i = 1, 64 do t[i] = i % 3 + 1 end return t end)(), 'int64')
local model = ms.nn.Sequential(ms.nn.Linear(8, 16), ms.nn.ReLU(), ms.nn.Linear(16, 3))
local crit = ms.nn.CrossEntropyLoss()
local opt = ms.optim.Adam(model, { lr = 1e-2 })
local first, last
for step = 1, 30 do
  last = opt:step(function()
    local out = model:forward(x)
    local loss = crit:forward(out, y)
    model:backward(x, crit:backward(out, y))
    return loss
  end)
  first = first or last
end
print(('first %.4f last %.4f args %s'):format(first, last, table.concat(arg, ',')))
]])
    local out = H.sh_rc('cd ' .. q(work) .. ' && ' .. CLEAN .. q(prefix .. '/bin/moonstep') .. ' tiny.lua a b')
    local first, last = out:match('first (%S+) last (%S+) args a,b\n')
    assert.truthy(first, out)
    assert.is_true(tonumber(last) < tonumber(first) * 0.9, out)
    assert.truthy(out:find('rc=0', 1, true), out)
  end)

  it('still lets MOONSTEP_LIB choose the library', function()
    local out = sh('cd /tmp && env -u MOONSTEP_HOME -u LUA_PATH MOONSTEP_LIB=' .. q(suite_lib) .. ' '
      .. q(prefix .. '/bin/moonstep') .. ' -e ' .. q('print(require("moonstep.core").libpath)'))
    assert.truthy(out:find(suite_lib .. '\n', 1, true), out)
  end)

  it('fails clearly when the installed headers or library are missing', function()
    local copy = mktemp()   -- a second install, to break
    assert(make('install PREFIX=' .. q(copy)):find('rc=0', 1, true))
    sh('rm -f ' .. q(copy .. '/share/lua/5.1/moonstep/config.lua') .. ' ' .. q(copy .. '/lib/moonstep/libmoonstep.so'))
    local out = H.sh_rc('cd /tmp && ' .. CLEAN .. q(copy .. '/bin/moonstep') .. ' -e "print(1)"')
    assert.truthy(out:find('moonstep: cannot load ', 1, true), out)
    assert.truthy(out:find('Reinstall moonstep', 1, true), out)
    assert.falsy(out:find('rc=0', 1, true), out)
    sh('rm -rf ' .. q(copy .. '/include'))
    out = H.sh_rc('cd /tmp && ' .. CLEAN .. q(copy .. '/bin/moonstep') .. ' -e "print(1)"')
    assert.truthy(out:find('moonstep: cannot find the C headers (moonstep.h) of the installed package at '
      .. copy .. '/share/lua/5.1/moonstep/../../../../include/moonstep', 1, true), out)
    assert.falsy(out:find('rc=0', 1, true), out)
    sh('rm -rf ' .. q(copy .. '/share'))
    out = H.sh_rc('cd /tmp && ' .. CLEAN .. q(copy .. '/bin/moonstep') .. ' -e "print(1)"')
    assert.truthy(out:find('moonstep: cannot find the Lua package (moonstep/cli.lua)', 1, true), out)
    assert.truthy(out:find('rc=1', 1, true), out)
    sh('rm -rf ' .. q(copy))
  end)

  it('without config.lua, finds the library in the prefix\'s lib/lua/5.1 (a LuaRocks tree)', function()
    local copy = mktemp()
    assert(make('install PREFIX=' .. q(copy)):find('rc=0', 1, true))
    sh('rm -f ' .. q(copy .. '/share/lua/5.1/moonstep/config.lua'))
    sh('mkdir -p ' .. q(copy .. '/lib/lua/5.1') .. ' && mv ' .. q(copy .. '/lib/moonstep/libmoonstep.so') .. ' '
       .. q(copy .. '/lib/lua/5.1/libmoonstep.so'))
    local out = H.sh_rc('cd /tmp && ' .. CLEAN .. q(copy .. '/bin/moonstep') .. ' -e ' .. q(
      'print(ms.ones(2):sum(), require("moonstep.core").libpath)'))
    assert.truthy(out:find('^2\t[^\n]*/lib/lua/5%.1/libmoonstep%.so\nrc=0'), out)
    sh('rm -rf ' .. q(copy))
  end)

  it('puts a CUDA build\'s plugin beside the library, where the installed library finds it', function()
    local plugin = prefix .. '/lib/moonstep/libmoonstep_cuda.so'
    if not require('moonstep').cuda.compiled() then
      assert.falsy(io.open(plugin), 'a CPU-only build installed ' .. plugin)
      return
    end
    assert.truthy(io.open(plugin), plugin .. ' was not installed')
    -- a stand-in NVIDIA driver (nothing in it) makes ms.cuda.why() load the plugin
    H.write_file(work .. '/driver.c', 'int ms_fake_driver;\n')
    sh('cc -shared -fPIC -o ' .. q(work .. '/libcuda.so.1') .. ' ' .. q(work .. '/driver.c'))
    local out = H.sh_rc('cd /tmp && ' .. CLEAN .. 'LD_LIBRARY_PATH=' .. q(work) .. ' ' .. q(prefix .. '/bin/moonstep') ..
      ' -e ' .. q('print(ms.cuda.why()); for l in io.lines("/proc/self/maps") do ' ..
                  'if l:find("libmoonstep_cuda", 1, true) then print(l:match("%S+$")) break end end'))
    assert.truthy(out:find('no usable GPU (cudaGetDeviceCount', 1, true), out)
    assert.truthy(out:find('\n' .. plugin .. '\nrc=0', 1, true), out)
  end)

  it('uninstall removes every file install wrote', function()
    local out = make('uninstall PREFIX=' .. q(prefix))
    assert.truthy(out:find('rc=0', 1, true), out)
    assert.are.same({}, files_under(prefix))
    for _, d in ipairs { 'include/moonstep', 'lib/moonstep', 'share/lua/5.1/moonstep' } do
      assert.falsy(io.open(prefix .. '/' .. d), d .. ' is left')
    end
  end)
end)

describe('make install DESTDIR=... and custom directories', function()
  if not have_lib then
    pending('no library at ' .. build .. '/libmoonstep.so')
    return
  end

  it('stages under DESTDIR with the final paths in config.lua and bin/moonstep, and the staged copy runs', function()
    local dest = mktemp()
    local out = make('install DESTDIR=' .. q(dest) .. ' PREFIX=/opt/moonstep-test')
    assert.truthy(out:find('rc=0', 1, true), out)
    local cfg = dofile(dest .. '/opt/moonstep-test/share/lua/5.1/moonstep/config.lua')
    assert.are.equal('/opt/moonstep-test/include/moonstep', cfg.include)
    assert.are.equal('/opt/moonstep-test/lib/moonstep/libmoonstep.so', cfg.lib)
    local bin = H.read_file(dest .. '/opt/moonstep-test/bin/moonstep')
    assert.truthy(bin:find("\ninstalled_luadir='/opt/moonstep-test/share/lua/5.1'", 1, true))
    -- the final paths do not exist here: the staged copy falls back to its own tree
    out = H.sh_rc('cd /tmp && ' .. CLEAN .. q(dest .. '/opt/moonstep-test/bin/moonstep') .. ' -e ' .. q('print(ms.ones(3):sum())'))
    assert.truthy(out:find('^3\nrc=0'), out)
    out = make('uninstall DESTDIR=' .. q(dest) .. ' PREFIX=/opt/moonstep-test')
    assert.truthy(out:find('rc=0', 1, true), out)
    assert.are.same({}, files_under(dest))
    sh('rm -rf ' .. q(dest))
  end)

  it('honours LUADIR, LIBDIR and BINDIR (as LuaRocks passes them)', function()
    local p = mktemp()
    local dirs = ('PREFIX=%s LUADIR=%s LIBDIR=%s BINDIR=%s'):format(q(p), q(p .. '/rock/lua'), q(p .. '/rock/lib'), q(p .. '/rock/bin'))
    local out = make('install ' .. dirs)
    assert.truthy(out:find('rc=0', 1, true), out)
    out = H.sh_rc('cd /tmp && ' .. CLEAN .. q(p .. '/rock/bin/moonstep') .. ' -e ' .. q(
      'print(ms.ones(4):sum(), require("moonstep.core").libpath)'))
    assert.truthy(out:find('4\t' .. p .. '/rock/lib/libmoonstep.so\nrc=0', 1, true), out)
    out = make('uninstall ' .. dirs)
    assert.truthy(out:find('rc=0', 1, true), out)
    assert.are.same({}, files_under(p))
    sh('rm -rf ' .. q(p))
  end)
end)

describe('make install with an awkward PREFIX, and uninstall next to files of others', function()
  if not have_lib then
    pending('no library at ' .. build .. '/libmoonstep.so')
    return
  end

  it('installs into a PREFIX with spaces, a quote, & and parentheses, runs from there, and uninstalls all of it', function()
    local base = mktemp()
    local prefix = base .. "/my prefix & it's (v2)"   -- make itself expands a $
    local out = make('install PREFIX=' .. q(prefix))
    assert.truthy(out:find('rc=0', 1, true), out)
    local cfg = dofile(prefix .. '/share/lua/5.1/moonstep/config.lua')
    assert.are.equal(prefix .. '/include/moonstep', cfg.include)
    assert.are.equal(prefix .. '/lib/moonstep/libmoonstep.so', cfg.lib)
    out = H.sh_rc('cd /tmp && ' .. CLEAN .. q(prefix .. '/bin/moonstep') .. ' -e ' .. q(
      'print(ms.ones(3):sum(), require("moonstep.core").libpath)'))
    assert.truthy(out:find('3\t' .. prefix .. '/lib/moonstep/libmoonstep.so\nrc=0', 1, true), out)
    -- the installed bin/moonstep looks for its package at exactly that LUADIR
    local bin = H.read_file(prefix .. '/bin/moonstep')
    assert.truthy(bin:find("\ninstalled_luadir='" .. (prefix .. '/share/lua/5.1'):gsub("'", "'\\''") .. "'", 1, true), bin:sub(1, 1200))
    out = make('uninstall PREFIX=' .. q(prefix))
    assert.truthy(out:find('rc=0', 1, true), out)
    assert.are.same({}, files_under(base))
    for _, d in ipairs { 'include/moonstep', 'lib/moonstep', 'share/lua/5.1/moonstep' } do
      assert.falsy(io.open(prefix .. '/' .. d), d .. ' is left')
    end
    sh('rm -rf ' .. q(base))
  end)

  it('uninstall removes only what install wrote: files of others stay, in its directories too', function()
    local p = mktemp()
    local out = make('install PREFIX=' .. q(p))
    assert.truthy(out:find('rc=0', 1, true), out)
    local others = { 'share/lua/5.1/moonstep/plugins/mine.lua', 'share/lua/5.1/moonstep/notes.txt',
                     'share/lua/5.1/other.lua', 'include/moonstep/extra.h', 'include/other.h',
                     'lib/moonstep/libplugin.so', 'lib/libother.so', 'bin/other' }
    for _, f in ipairs(others) do
      sh(('mkdir -p %s && echo keep > %s'):format(q((p .. '/' .. f):match('^(.*)/')), q(p .. '/' .. f)))
    end
    out = make('uninstall PREFIX=' .. q(p))
    assert.truthy(out:find('rc=0', 1, true), out)
    local left = files_under(p)
    local want = {}
    for i, f in ipairs(others) do want[i] = './' .. f end
    table.sort(want)
    assert.are.same(want, left)
    -- a relative or empty directory is refused before anything is written or removed
    for _, args in ipairs { 'install PREFIX=relative/dir', 'uninstall PREFIX=relative/dir', 'uninstall LUADIR= PREFIX=' .. q(p) } do
      out = make(args)
      assert.truthy(out:find('is not an absolute directory', 1, true), out)
      assert.truthy(out:find('rc=2', 1, true), out)
    end
    assert.is_nil(io.open(root .. '/relative'))
    -- a second uninstall is harmless
    out = make('uninstall PREFIX=' .. q(p))
    assert.truthy(out:find('rc=0', 1, true), out)
    assert.are.same(want, files_under(p))
    sh('rm -rf ' .. q(p))
  end)
end)

describe('the source tree', function()
  it('keeps running from its own lua/ and build (not an installed copy)', function()
    local out = sh('cd ' .. q(root) .. ' && bin/moonstep -e ' .. q(
      'local c = require "moonstep.core"; print(c.installed, c.include)'))
    assert.truthy(out:find('false\t' .. root .. '/runtime/include\n', 1, true), out)
  end)
end)

describe('moonstep-scm-1.rockspec', function()
  local path = root .. '/moonstep-scm-1.rockspec'

  it('is a make build passing PREFIX, LUADIR, LIBDIR and BINDIR to make install', function()
    local env = {}
    local chunk = assert(loadfile(path))
    setfenv(chunk, env)
    chunk()
    assert.are.equal('moonstep', env.package)
    assert.are.equal('scm-1', env.version)
    assert.are.equal('make', env.build.type)
    for _, k in ipairs { 'PREFIX', 'LUADIR', 'LIBDIR', 'BINDIR' } do
      assert.are.equal('$(' .. k .. ')', env.build.install_variables[k])
    end
    assert.truthy(env.external_dependencies.OPENBLAS and env.external_dependencies.ZLIB)
  end)

  local luarocks = sh('command -v luarocks'):match('%S')
  if luarocks then
    it('passes luarocks lint', function()
      local out = H.sh_rc('cd ' .. q(root) .. ' && luarocks --lua-version 5.1 lint moonstep-scm-1.rockspec')
      assert.truthy(out:find('rc=0', 1, true), out)
    end)
  else
    pending('luarocks lint (luarocks is not installed: apt-get install luarocks)')
  end
end)
