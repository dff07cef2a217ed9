-- moonstep.cli — the command line of bin/moonstep, modelled on luajit's own:
--   moonstep [options] [script [args...]]
--   -e chunk   run a chunk of Lua     -i   enter the REPL after the script or chunks
--   -l name    require a module        -v   print the version       --   stop options
-- `ms` is a global in scripts and in the REPL. Errors exit with status 1 (message and
-- traceback), Ctrl-C with one line and status 130, usage errors with status 1.
local argv = arg
ms = require 'moonstep'

local function usage(code)
  io.stderr:write([==[
usage: moonstep [options] [script [args...]]
  -e chunk   run the Lua chunk
  -l name    require the module 'name'
  -i         enter the interactive REPL after running the script or chunks
  -v         print the version
  --         stop handling options
With no script and no -e, moonstep starts the REPL.
]==])
  os.exit(code)
end

-- Ctrl-C reaches a script as an error: luajit's own "interrupted!" (Lua code running) or
-- the runtime's "interrupted (Ctrl-C)" (an op refused while the flag was set).
local INTERRUPTED = {}
local function on_error(e)
  if type(e) == 'string' and (e:find('interrupted!', 1, true) or e:find('interrupted (Ctrl-C)', 1, true)) then
    return INTERRUPTED
  end
  return debug.traceback(e, 2)
end

-- Run f; on error print the message and a traceback and exit 1, or on Ctrl-C print one
-- line and exit 130 (as a shell reports SIGINT).
local function run_or_exit(f, ...)
  local ok, err = xpcall(f, on_error, ...)
  if ok then return end
  io.stdout:flush()
  if err == INTERRUPTED then
    io.stderr:write('moonstep: interrupted (Ctrl-C)\n')
    os.exit(130)
  end
  io.stderr:write('moonstep: ', tostring(err), '\n')
  os.exit(1)
end

-- The value of option a (argv[i + 1]), or a usage error.
local function value_of(a, i)
  local v = argv[i + 1]
  if v == nil then
    io.stderr:write('moonstep: ', a, ' needs an argument\n')
    usage(1)
  end
  return v
end

local interactive, ran, i = false, false, 1
while i <= #argv do
  local a = argv[i]
  if a == '-e' then
    local chunk = value_of(a, i)
    local f, err = loadstring(chunk, '=(command line)')
    if not f then io.stderr:write('moonstep: ', err, '\n'); os.exit(1) end
    run_or_exit(f)
    ran, i = true, i + 2
  elseif a == '-l' then
    local name = value_of(a, i)
    run_or_exit(function() _G[name] = require(name) end)
    i = i + 2
  elseif a == '-i' then interactive, i = true, i + 1
  elseif a == '-v' then print('moonstep ' .. ms.version); ran, i = true, i + 1
  elseif a == '-h' or a == '--help' then usage(0)
  elseif a == '--' then i = i + 1; break
  elseif a:sub(1, 1) == '-' and a ~= '-' then
    io.stderr:write('moonstep: unknown option ', a, '\n'); usage(1)
  else break end
end

if argv[i] then
  local script = argv[i]
  local args = { [0] = script }
  for k = i + 1, #argv do args[#args + 1] = argv[k] end
  _G.arg = args
  local f, err
  if script == '-' then f, err = loadstring(io.read('*a'), '=stdin')
  else f, err = loadfile(script) end
  if not f then io.stderr:write('moonstep: ', err, '\n'); os.exit(1) end
  run_or_exit(f, unpack(args))
  ran = true
end

if interactive or not ran then
  require('moonstep.repl').run()
end
