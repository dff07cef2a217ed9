-- bin/moonstep as a command: scripts with arguments, -e, -i, exit status, and the
-- `replay` subcommand (ms.experiment.replay: 0 when identical, 1 otherwise).
local function run(args, stdin)
  local cmd = 'bin/moonstep ' .. args .. ' 2>&1'
  if stdin then cmd = 'printf %s ' .. ("%q"):format(stdin) .. ' | ' .. cmd end
  local p = io.popen(cmd .. '; echo "rc=$?"')
  local out = p:read('*a')
  p:close()
  return out
end

-- run with environment assignments in front (env: 'NAME=value ...')
local function run_env(env, args)
  local p = io.popen(env .. ' bin/moonstep ' .. args .. ' 2>&1; echo "rc=$?"')
  local out = p:read('*a')
  p:close()
  return out
end

describe('bin/moonstep', function()
  local script = os.tmpname() .. '.lua'
  setup(function()
    local f = assert(io.open(script, 'w'))
    f:write("local ms = require 'moonstep'\nprint(arg[0] ~= nil, ...)\nprint(ms.ones(2):sum())\n")
    f:close()
  end)
  teardown(function() os.remove(script) end)

  it('runs a script with arguments', function()
    local out = run(script .. ' a b')
    assert.truthy(out:find('true\ta\tb', 1, true))
    assert.truthy(out:find('\n2\n', 1, true))
    assert.truthy(out:find('rc=0', 1, true))
  end)

  it('runs -e chunks with ms preloaded', function()
    local out = run("-e 'print(ms.arange(3):sum())'")
    assert.truthy(out:find('^3\n'))
  end)

  it('exits non-zero with the message on an error', function()
    local out = run("-e 'x = ms.zeros(2) + ms.zeros(3)'")
    assert.truthy(out:find('add: shapes [2] and [3] cannot be broadcast', 1, true))
    assert.truthy(out:find('rc=1', 1, true))
    assert.truthy(run('/nonexistent.lua'):find('rc=1', 1, true))
  end)

  it('-i enters the REPL after a chunk (reading stdin)', function()
    local out = run("-e 'x = 5' -i", 'x * 2\n')
    assert.truthy(out:find('10', 1, true))
    assert.truthy(out:find('rc=0', 1, true))
  end)

  it('the REPL on stdin: a stray token is an error at once, os.exit ends it with its status', function()
    local input = os.tmpname()
    local f = assert(io.open(input, 'w'))
    f:write('x = 1 end\nprint(5 * 7)\n=ms.nn.Linaer\nos.exit(4)\nprint("not reached")\n')
    f:close()
    local out = run('< ' .. input)
    os.remove(input)
    assert.truthy(out:find("error: stdin:1: '<eof>' expected near 'end'\n", 1, true), out)
    assert.truthy(out:find('> 35\n', 1, true), out)
    assert.truthy(out:find('error: stdin:1: ms.nn: no function or class "Linaer"', 1, true), out)
    assert.falsy(out:find('not reached', 1, true), out)
    assert.truthy(out:find('rc=4\n$'), out)
  end)

  it('--help prints the usage and exits 0; bad options are usage errors', function()
    local out = run('--help')
    assert.truthy(out:find('usage: moonstep', 1, true), out)
    assert.truthy(out:find('rc=0', 1, true), out)
    out = run('--frobnicate')
    assert.truthy(out:find('unknown option --frobnicate', 1, true), out)
    assert.truthy(out:find('rc=1', 1, true), out)
    out = run('-e')
    assert.truthy(out:find('-e needs an argument', 1, true), out)
    assert.truthy(out:find('rc=1', 1, true), out)
    assert.truthy(run('-l'):find('-l needs an argument', 1, true))
  end)

  it('a library that cannot load is one line and status 1, never a luajit traceback', function()
    local out = run_env('MOONSTEP_LIB=/nonexistent/libmoonstep.so', "-e 1")
    assert.truthy(out:find('^moonstep: cannot load /nonexistent/libmoonstep.so'), out)
    assert.equal(2, select(2, out:gsub('\n', '')), out)          -- the message line and rc=
    assert.falsy(out:find('traceback', 1, true), out)
    assert.truthy(out:find('\nrc=1\n$'), out)
  end)

  it('-l of a missing module is one line; errors carry only the user\'s frames', function()
    local out = run('-l no_such_module_xyz -e 1')
    assert.equal('moonstep: -l no_such_module_xyz: module "no_such_module_xyz" not found (searched package.path and package.cpath)\nrc=1\n', out)
    out = run("-e 'x = ms.zeros(2) + ms.zeros(3)'")
    assert.truthy(out:find('(command line):1: in main chunk', 1, true), out)
    assert.falsy(out:find('check.lua', 1, true) or out:find('cli.lua', 1, true) or out:find('xpcall', 1, true), out)
    -- error objects: a table, nil, one whose __tostring raises
    out = run("-e 'error(setmetatable({}, {__tostring = function() error(\"no\") end}))'")
    assert.truthy(out:find('^moonstep: %(an error object of type table whose __tostring failed%)'), out)
    assert.truthy(out:find('rc=1\n$'), out)
    out = run("-e 'error()'")
    assert.truthy(out:find('^moonstep: nil %(an error without a message%)'), out)
    assert.truthy(out:find('rc=1\n$'), out)
    -- os.exit's status passes through; -- ends the options
    assert.truthy(run("-e 'os.exit(3)'"):find('^rc=3\n$'))
    assert.truthy(run('-- -e'):find('cannot open -e', 1, true))
    out = run('replay -- /nonexistent/run2')
    assert.truthy(out:find('moonstep replay: .*/nonexistent/run2'), out)
    assert.truthy(out:find('rc=1\n$'), out)
  end)

  it('Ctrl-C in a script prints one line, no traceback, and exits 130', function()
    local out = os.tmpname()
    local p = io.popen(("bin/moonstep -e \"jit.off(); print('go'); io.stdout:flush(); "
      .. "local x = 0; while true do x = x + 1 end\" > %s 2>&1 & pid=$!; "
      .. "for i in $(seq 100); do grep -q go %s && break; sleep 0.1; done; "
      .. "kill -INT $pid; wait $pid; echo \"rc=$?\" >> %s; cat %s; rm -f %s"):format(out, out, out, out, out))
    local text = p:read('*a')
    p:close()
    assert.equal('go\nmoonstep: interrupted (Ctrl-C)\nrc=130\n', text)
  end)

  it('replay: usage errors, and a missing path is a clear error with status 1', function()
    local out = run('replay')
    assert.truthy(out:find('moonstep replay: PATH is missing', 1, true), out)
    assert.truthy(out:find('usage: moonstep replay PATH', 1, true), out)
    assert.truthy(out:find('rc=1', 1, true), out)
    out = run('replay a b')
    assert.truthy(out:find('one PATH expected, got a and b', 1, true), out)
    out = run('replay --frob x')
    assert.truthy(out:find('moonstep replay: unknown option --frob', 1, true), out)
    out = run('replay /nonexistent/run')
    assert.truthy(out:find('moonstep replay: ', 1, true), out)
    assert.truthy(out:find('/nonexistent/run', 1, true), out)
    assert.falsy(out:find('traceback', 1, true), out)
    assert.truthy(out:find('rc=1\n$'), out)
    assert.truthy(run('--help'):find('usage: moonstep replay', 1, true))
    -- a script named replay still runs as ./replay
    local dir = os.tmpname(); os.remove(dir); os.execute('mkdir -p ' .. dir)
    local f = assert(io.open(dir .. '/replay', 'w')); f:write('print("the script ran")\n'); f:close()
    out = run(dir .. '/replay')
    assert.truthy(out:find('the script ran', 1, true), out)
    os.execute('rm -rf ' .. dir)
  end)

  it('replay reruns a recorded run: status 0 when identical, 1 when the record differs', function()
    local ok, E = pcall(require, 'moonstep.experiment')
    local data_ok = ok and pcall(function() return require('moonstep').data.fashion_mnist('test') end)
    if not data_ok then
      pending('ms.experiment or the Fashion-MNIST data is not available')
      return
    end
    local dir = os.tmpname(); os.remove(dir)
    local r = E.run({ name = 'cli', model = { 'mlp', sizes = { 784, 8, 10 } }, data = { 'fashion_mnist', train = 128, test = 64 },
                      optimizer = { 'SGD', lr = 0.1 }, epochs = 1, batch_size = 64, seed = 3 }, { out = dir, quiet = true })
    local run_dir = r.dir or r.path
    if type(run_dir) ~= 'string' then
      local p = io.popen('ls -d ' .. dir .. '/*/'); run_dir = p:read('*l'); p:close()
    end
    local out = run('replay --quiet ' .. run_dir)
    assert.truthy(out:find('identical', 1, true), out)
    assert.truthy(out:find('rc=0\n$'), out)
    -- change a recorded loss: the replay differs
    local path = run_dir:gsub('/$', '') .. '/steps.csv'
    local f = assert(io.open(path)); local text = f:read('*a'); f:close()
    local lines = {}
    for line in text:gmatch('[^\n]+') do lines[#lines + 1] = line end
    lines[2] = lines[2]:gsub('^(%d+,%d+,)[^,]*', '%11.2345')
    f = assert(io.open(path, 'w')); f:write(table.concat(lines, '\n'), '\n'); f:close()
    out = run('replay --quiet ' .. run_dir .. '/config.json')
    assert.truthy(out:find('differences', 1, true), out)
    assert.truthy(out:find('loss 1.2345', 1, true), out)
    assert.truthy(out:find('rc=1\n$'), out)
    os.execute('rm -rf ' .. dir)
  end)
end)

describe('bin/moonstep --help and --version', function()
  it('prints the usage on stdout when asked (it pipes), on stderr after a usage error', function()
    local H = require 'helper'
    local root = os.getenv('MOONSTEP_HOME') or '.'
    local out = H.sh(('cd %s && bin/moonstep --help 2>/dev/null; echo "rc=$?"'):format(H.quote(root)))
    assert.truthy(out:find('^usage: moonstep') and out:find('rc=0', 1, true), out)
    out = H.sh(('cd %s && bin/moonstep --bogus 2>/dev/null; echo "rc=$?"'):format(H.quote(root)))
    assert.equal('rc=1\n', out)
    out = H.sh(('cd %s && bin/moonstep --version'):format(H.quote(root)))
    assert.truthy(out:find('^moonstep %d'), out)
  end)
end)
