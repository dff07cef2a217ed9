-- moonstep.cli — the command line of bin/moonstep, modelled on luajit's own:
--   moonstep [options] [script [args...]]
--   -e chunk   run a chunk of Lua     -i   enter the REPL after the script or chunks
--   -l name    require a module        -v   print the version       --   stop options
--   moonstep replay PATH [--out DIR] [--quiet]
--              reruns a recorded experiment (a run directory or its config.json) with
--              ms.experiment.replay and prints the comparison: status 0 when the replay is
--              identical to the record, 1 otherwise (differences, nothing recorded to
--              compare with, or an error). A script named `replay` runs as ./replay.
-- `ms` is a global in scripts and in the REPL. Errors exit with status 1 (message and
-- traceback), Ctrl-C with one line and status 130, usage errors with status 1.
local argv = arg

-- tostring that never raises (an error object's __tostring may itself fail).
local function text_of(e)
  if type(e) == 'string' then return e end
  if e == nil then return 'nil (an error without a message)' end
  local ok, s = pcall(tostring, e)
  if ok and type(s) == 'string' then return s end
  return ('(an error object of type %s whose __tostring failed)'):format(type(e))
end

-- The package itself: when it cannot load (no library, no headers), one clear line.
do
  local ok, lib = pcall(require, 'moonstep')
  if not ok then
    local msg = text_of(lib):gsub('^[^\n]-:%d+: ', ''):gsub('^moonstep: ', ''):gsub('%s*\n%s*', ' ')
    io.stderr:write('moonstep: ', msg, '\n')
    os.exit(1)
  end
  ms = lib
end

-- The moonstep package's directory: its frames at the top of a traceback are noise (the
-- message already names the public function and the user's line).
local PKG = debug.getinfo(1, 'S').source:match('^@(.*[/\\])[^/\\]*$')

local function usage(code)
  -- asked for (--help): on stdout, so that it pipes; after a usage error: on stderr
  local out = code == 0 and io.stdout or io.stderr
  out:write([==[
usage: moonstep [options] [script [args...]]
  -e chunk   run the Lua chunk
  -l name    require the module 'name'
  -i         enter the interactive REPL after running the script or chunks
  -v         print the version (also --version)
  --         stop handling options
With no script and no -e, moonstep starts the REPL.

usage: moonstep replay PATH [--out DIR] [--quiet]
  reruns the experiment recorded in PATH (a run directory or its config.json) into DIR
  (default PATH/replay-N) and compares; exits 0 when identical, 1 otherwise
]==])
  os.exit(code)
end

-- Ctrl-C reaches a script as an error: luajit's own "interrupted!" (Lua code running) or
-- the runtime's "interrupted (Ctrl-C)" (an op refused while the flag was set).
-- A message that says more than that (the experiment runner names the run it left
-- unfinished) is kept, without its source position.
local INTERRUPTED = {}
local interrupt_note
local function on_error(e)
  if type(e) == 'string' and (e:find('interrupted!', 1, true) or e:find('interrupted (Ctrl-C)', 1, true)) then
    local note = e:gsub('^[^\n]-:%d+: ', '')
    interrupt_note = (note ~= 'interrupted!' and note ~= 'interrupted (Ctrl-C)') and note or nil
    return INTERRUPTED
  end
  local tb = debug.traceback(text_of(e), 2)
  -- the command line's own frames (below the xpcall) and moonstep's frames above the
  -- user's first one are cut
  tb = tb:gsub('\n%s*%[C%]: in function \'xpcall\'.*$', '')
  if PKG then
    local head, frames = tb:match('^(.-\nstack traceback:)(.*)$')
    if head then
      local prefix = '\n\t' .. PKG
      while frames:sub(1, #prefix) == prefix or frames:match('^\n\t%[C%]: in function \'error\'')
            or frames:match('^\n\t%[C%]: at 0x%x+\n') or frames:match('^\n\t%[C%]: at 0x%x+$') do
        local nxt = frames:find('\n', 2, true)
        if not nxt then frames = ''; break end
        frames = frames:sub(nxt)
      end
      -- at the bottom: the command line's function that ran the chunk or required (-l)
      local cli = '\n\t' .. PKG .. 'cli.lua:'
      repeat
        local before = frames
        local last = frames:match('(\n[^\n]*)$') or ''
        if last:sub(1, #cli) == cli or last:match("^\n\t%[C%]: in function 'require'$") then
          frames = frames:sub(1, #frames - #last)
        end
      until frames == before
      tb = frames == '' and head:gsub('\nstack traceback:$', '') or (head .. frames)
    end
  end
  return tb
end

-- Run f; on error print the message and a traceback and exit 1, or on Ctrl-C print one
-- line and exit 130 (as a shell reports SIGINT).
local function run_or_exit(f, ...)
  local ok, err = xpcall(f, on_error, ...)
  if ok then return end
  io.stdout:flush()
  local dist = package.loaded['moonstep.dist']   -- several ranks: end the whole job now
  if err == INTERRUPTED then
    io.stderr:write('moonstep: ', interrupt_note or 'interrupted (Ctrl-C)', '\n')
    io.stderr:flush()
    if dist then dist._abort(130) end
    os.exit(130)
  end
  io.stderr:write('moonstep: ', text_of(err), '\n')
  io.stderr:flush()
  if dist then dist._abort(1) end
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

-- `moonstep replay PATH [--out DIR] [--quiet]`: ms.experiment.replay(PATH), status 0
-- when the replay is identical to the record, 1 otherwise.
local function replay(args)
  local path, opts = nil, {}
  local k = 1
  while k <= #args do
    local a = args[k]
    if a == '--out' then
      opts.out = args[k + 1]
      if opts.out == nil then io.stderr:write('moonstep replay: --out needs a directory\n'); usage(1) end
      k = k + 2
    elseif a == '--quiet' or a == '-q' then opts.quiet, k = true, k + 1
    elseif a == '-h' or a == '--help' then usage(0)
    elseif a == '--' and not path and args[k + 1] ~= nil then path, k = args[k + 1], k + 2
    elseif a:sub(1, 1) == '-' and a ~= '-' then
      io.stderr:write('moonstep replay: unknown option ', a, '\n'); usage(1)
    elseif path then
      io.stderr:write('moonstep replay: one PATH expected, got ', path, ' and ', a, '\n'); usage(1)
    else path, k = a, k + 1 end
  end
  if not path then io.stderr:write('moonstep replay: PATH is missing\n'); usage(1) end
  local ok, rep = xpcall(function()
    local found, E = pcall(require, 'moonstep.experiment')
    if not found then error('the experiment module is not available: ' .. tostring(E), 0) end
    return E.replay(path, opts)
  end, function(e)
    if type(e) == 'string' and e:find('interrupted', 1, true) and e:find('Ctrl-C', 1, true) then return INTERRUPTED end
    return (text_of(e):gsub('^[^:\n]*:%d+: ', ''))
  end)
  io.stdout:flush()
  if not ok then
    if rep == INTERRUPTED then io.stderr:write('moonstep: interrupted (Ctrl-C)\n'); os.exit(130) end
    io.stderr:write('moonstep replay: ', tostring(rep), '\n')
    os.exit(1)
  end
  print(tostring(rep))
  os.exit(rep.identical == true and 0 or 1)
end

if argv[1] == 'replay' then replay({ select(2, unpack(argv)) }) end

-- Under an MPI launcher every rank joins the job now (ms.dist), whatever the script does.
if os.getenv('OMPI_COMM_WORLD_SIZE') or os.getenv('PMIX_RANK') or os.getenv('PMI_SIZE') then
  run_or_exit(function() ms.dist._join_if_launched() end)
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
    -- a module that is not there: one line (the searched paths are luajit's business);
    -- an error inside the module is an ordinary error
    local found = package.loaded[name] ~= nil or package.preload[name] ~= nil
    if not found then
      for _, searcher in ipairs(package.loaders) do
        local ok, loader = pcall(searcher, name)
        if not ok or type(loader) == 'function' then found = true; break end   -- (a broken file: require says why)
      end
    end
    if not found then
      io.stderr:write(('moonstep: -l %s: module %q not found (searched package.path and package.cpath)\n')
                      :format(name, name))
      os.exit(1)
    end
    run_or_exit(function() _G[name] = require(name) end)
    i = i + 2
  elseif a == '-i' then interactive, i = true, i + 1
  elseif a == '-v' or a == '--version' then print('moonstep ' .. ms.version); ran, i = true, i + 1
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
