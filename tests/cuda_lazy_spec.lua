-- The CUDA plugin, loaded on first GPU use (runtime/cuda_loader.c, docs/cuda.md): a process
-- that never touches CUDA maps no CUDA library; ms.cuda.why() says why no GPU is usable;
-- without an NVIDIA driver the plugin is not even loaded; with one (a fake libcuda.so.1
-- here) the plugin loads and every device op fails naming the call; a missing or foreign
-- plugin is refused with the reason; the trampolines forward every argument of every entry
-- point (a fake plugin records them); the plugin calls back only ms_fail, ms_dtype_size and
-- ms_zo_log_reserve. Each case runs in a fresh process (bin/moonstep, MOONSTEP_LIB as the
-- suite's). The CUDA build's cases are pending on a CPU-only build.
local ms = require 'moonstep'
local H = require 'helper'
local q = H.quote

local root = os.getenv('MOONSTEP_HOME') or '.'
local suite_lib = os.getenv('MOONSTEP_LIB') or (root .. '/build/libmoonstep.so')
if suite_lib:sub(1, 1) ~= '/' then suite_lib = root .. '/' .. suite_lib end
local build = suite_lib:match('^(.*)/[^/]*$') or '.'
local plugin = build .. '/libmoonstep_cuda.so'
local have_plugin = io.open(plugin) ~= nil
local cuda_build = ms.cuda.compiled()

-- Runs chunk in a fresh moonstep with env (a shell prefix); returns its output + "rc=N".
local function run(chunk, env)
  return H.sh_rc('cd ' .. q(root) .. ' && ' .. (env or '') .. ' MOONSTEP_LIB=' .. q(suite_lib) ..
                 ' bin/moonstep -e ' .. q(chunk))
end
-- Lua source: prints each CUDA library this process maps (and the plugin that
-- MOONSTEP_CUDA_PLUGIN names), as "mapped <file>".
local PRINT_MAPS = [[
  local seen, named = {}, os.getenv('MOONSTEP_CUDA_PLUGIN')
  for l in io.lines('/proc/self/maps') do
    local f = l:match('(/%S+)$')
    if f and not seen[f] and (f:find('/libcuda[^/]*$') or f:find('/libcublas[^/]*$')
                             or f:find('/libcudart[^/]*$') or f:find('/libmoonstep_cuda[^/]*$')
                             or f == named) then
      seen[f] = true; print('mapped ' .. f)
    end
  end
]]

local tmp
setup(function()
  tmp = (H.sh('mktemp -d'):gsub('%s+$', ''))
  -- a stand-in NVIDIA driver: loadable, and nothing in it (the CUDA runtime finds no entry
  -- points: "driver version is insufficient"); LD_LIBRARY_PATH=tmp finds it first
  H.write_file(tmp .. '/driver.c', 'int ms_fake_driver;\n')
  H.sh('cc -shared -fPIC -o ' .. q(tmp .. '/libcuda.so.1') .. ' ' .. q(tmp .. '/driver.c'))
end)
teardown(function() if tmp then H.sh('rm -rf ' .. q(tmp)) end end)
local function fake_driver() return 'LD_LIBRARY_PATH=' .. q(tmp) end

describe('a process that does not use CUDA', function()
  it('maps no CUDA library, CPU work included', function()
    local out = run([[
      local m, x = ms.nn.Linear(4, 3), ms.randn(2, 4)
      local opt = ms.optim.Adam(m, { lr = 0.1 })
      opt:step(function()
        local y = m:forward(x)
        m:backward(x, ms.ones(2, 3))
        return y:sum()
      end)
      print(m:forward(x):sum() ~= nil)
      print(ms.cuda.compiled())
    ]] .. PRINT_MAPS)
    assert.truthy(out:find('^true\n'), out)
    assert.falsy(out:find('mapped', 1, true), out)
    assert.truthy(out:find('rc=0', 1, true), out)
  end)
end)

describe('libmoonstep.so', function()
  it('defines every ms_* function it calls (each CUDA entry point is a stub or a trampoline)', function()
    -- an entry point called from runtime/ but missing from the lists would be an undefined
    -- symbol: the library would not load at all
    local undef = H.sh('nm -D -u ' .. q(suite_lib) .. " | awk '{print $2}' | grep '^ms_' | tr '\\n' ' '")
    assert.equal('', undef)
  end)
end)

describe('ms.cuda.why', function()
  it('is nil exactly when a GPU is usable, else a reason', function()
    if ms.cuda.is_available() then
      assert.is_nil(ms.cuda.why())
    else
      assert.equal('string', type(ms.cuda.why()))
      assert.truthy(#ms.cuda.why() > 10, ms.cuda.why())
    end
  end)

  it('says a CPU-only build was built without CUDA', function()
    if cuda_build then return pending('a CUDA build') end
    assert.truthy(ms.cuda.why():find('built without CUDA', 1, true), ms.cuda.why())
  end)
end)

describe('a CUDA build', function()
  if not cuda_build then
    pending('this library was built without CUDA (make CUDA=1)')
    return
  end

  it('has its plugin beside the library', function()
    assert.truthy(have_plugin, plugin .. ' is missing')
  end)

  it('without an NVIDIA driver: no GPU, and the plugin is not loaded', function()
    if H.sh_rc([[luajit -e 'require("ffi").load("libcuda.so.1")']]):find('rc=0', 1, true) then
      return pending('this machine has an NVIDIA driver (libcuda.so.1 loads)')
    end
    local out = run('print(ms.cuda.is_available(), ms.cuda.device_count()); print(ms.cuda.why()); ' ..
                    'print(pcall(ms.zeros, 2, { device = "cuda" }))' .. PRINT_MAPS)
    assert.truthy(out:find('\nno NVIDIA driver on this machine (', 1, true), out)
    assert.truthy(out:find('^false\t0\n'), out)
    assert.truthy(out:find('false\tzeros: CUDA is not available: no NVIDIA driver', 1, true), out)
    assert.falsy(out:find('mapped', 1, true), out)
    assert.truthy(out:find('rc=0', 1, true), out)
  end)

  it('with a driver but no GPU: the plugin loads, each device op fails naming the call', function()
    if not have_plugin then return pending(plugin .. ' is missing') end
    local out = run([[
      print(ms.cuda.is_available(), ms.cuda.device_count(), ms.cuda.compiled())
      print('why', ms.cuda.why())
      print(pcall(ms.zeros, 2, { device = 'cuda' }))
      print(pcall(function() return ms.ones(3):cuda() end))
      print(pcall(ms.cuda.synchronize))
      print(ms.ones(3):sum())
    ]] .. PRINT_MAPS, fake_driver())
    assert.truthy(out:find('^false\t0\ttrue\n'), out)
    assert.truthy(out:find('why\tno usable GPU (cudaGetDeviceCount: ', 1, true), out)
    assert.truthy(out:find('false\tzeros: CUDA is not available: ', 1, true), out)
    assert.truthy(out:find('false\tcuda: CUDA is not available: ', 1, true), out)
    assert.truthy(out:find('false\tcuda.synchronize: CUDA is not available: ', 1, true), out)
    assert.truthy(out:find('\n3\n', 1, true), out)   -- the CPU still works
    assert.truthy(out:find('mapped %S*/libmoonstep_cuda%.so\n'), out)
    assert.truthy(out:find('mapped %S*libcublas'), out)
    assert.truthy(out:find('rc=0', 1, true), out)
  end)

  it('refuses a missing plugin with the reason, and fails each device op naming the call', function()
    local out = run('print(ms.cuda.is_available()); print(ms.cuda.why()); ' ..
                    'print(pcall(ms.cuda.synchronize)); print(pcall(ms.rand, 2, { device = "cuda" }))',
                    fake_driver() .. ' MOONSTEP_CUDA_PLUGIN=' .. q(tmp .. '/nowhere.so'))
    assert.truthy(out:find('^false\ncannot load the CUDA plugin ' .. tmp:gsub('%p', '%%%0') .. '/nowhere%.so: '), out)
    assert.truthy(out:find('false\tcuda.synchronize: CUDA is not available: cannot load the CUDA plugin', 1, true), out)
    assert.truthy(out:find('false\trand: CUDA is not available: cannot load the CUDA plugin', 1, true), out)
    assert.truthy(out:find('rc=0', 1, true), out)
  end)

  it('calls back into libmoonstep.so only for ms_fail, ms_dtype_size and ms_zo_log_reserve', function()
    if not have_plugin then return pending(plugin .. ' is missing') end
    local undef = H.sh('nm -D -u ' .. q(plugin) .. " | awk '{print $2}' | grep '^ms_' | sort | tr '\\n' ' '")
    assert.equal('ms_dtype_size ms_fail ms_zo_log_reserve ', undef)
    local defined = H.sh('nm -D --defined-only ' .. q(suite_lib) .. " | awk '{print $3}'")
    for name in undef:gmatch('%S+') do
      assert.truthy(defined:find('\n' .. name .. '\n', 1, true), name .. ' is not exported by ' .. suite_lib)
    end
    -- its calls between its own ms_cuda_* functions are bound inside it (-Bsymbolic), never
    -- to the runtime's trampolines of the same names: relocations only for the three
    local relocs = H.sh('readelf -rW ' .. q(plugin) .. " | awk '{print $5}' | grep '^ms_' | sort | tr '\\n' ' '")
    assert.equal('ms_dtype_size ms_fail ms_zo_log_reserve ', relocs)
    -- and the runtime maps no CUDA library at load time
    assert.falsy(H.sh('ldd ' .. q(suite_lib)):find('libcu', 1, true))
  end)

  describe('with a fake plugin', function()
    local args_h = build .. '/cuda_args.h'
    local built
    local have_cxx = H.sh('command -v g++'):find('%S') ~= nil
    setup(function()
      if not (io.open(args_h) and have_cxx) then return end
      local cxx = 'g++ -std=c++17 -O1 -Wall -Wextra -Werror -I' .. q(build) .. ' -I' .. q(root .. '/runtime') ..
                  ' -I' .. q(root .. '/runtime/include') .. ' -I' .. q(root .. '/tests/cuda_lazy') .. ' '
      built = H.sh_rc(cxx .. '-fPIC -shared -o ' .. q(tmp .. '/fake.so') .. ' ' .. q(root .. '/tests/cuda_lazy/fake_plugin.cpp') ..
                      ' && ' .. cxx .. '-o ' .. q(tmp .. '/call_all') .. ' ' .. q(root .. '/tests/cuda_lazy/call_all.cpp') ..
                      ' ' .. q(suite_lib) .. ' -Wl,-rpath,' .. q(build) .. ' -ldl')
    end)
    local function fake(env)
      return fake_driver() .. ' MOONSTEP_CUDA_PLUGIN=' .. q(tmp .. '/fake.so') .. ' ' .. (env or '')
    end

    it('gets every argument of every entry point, in order, and its return value back', function()
      if not built then return pending(have_cxx and args_h .. ' is missing (not a CUDA build directory)' or 'no g++') end
      assert.truthy(built:find('rc=0', 1, true), built)
      local out = H.sh_rc(fake() .. ' ' .. q(tmp .. '/call_all'))
      assert.truthy(out:find('^ok %d+ calls\n'), out)
      assert.is_true(tonumber(out:match('^ok (%d+)')) >= 40, out)
      assert.truthy(out:find('rc=0', 1, true), out)
    end)

    it('is what ms.cuda sees', function()
      if not built then return pending(have_cxx and args_h .. ' is missing (not a CUDA build directory)' or 'no g++') end
      local out = run('print(ms.cuda.is_available(), ms.cuda.device_count(), ms.cuda.why())' .. PRINT_MAPS, fake())
      assert.truthy(out:find('^true\t3\tnil\n'), out)
      assert.truthy(out:find('mapped ' .. tmp .. '/fake.so', 1, true), out)
    end)

    it('is refused when built from other sources (its entry points differ)', function()
      if not built then return pending(have_cxx and args_h .. ' is missing (not a CUDA build directory)' or 'no g++') end
      local out = run('print(ms.cuda.is_available()); print(ms.cuda.why()); print(pcall(ms.cuda.synchronize))',
                      fake('FAKE_OTHER_SOURCES=1'))
      assert.truthy(out:find('^false\nthe CUDA plugin %S+fake%.so was built from other sources than this libmoonstep%.so'), out)
      assert.truthy(out:find('false\tcuda.synchronize: CUDA is not available: the CUDA plugin', 1, true), out)
    end)
  end)
end)
