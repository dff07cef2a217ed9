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
