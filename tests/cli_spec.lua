-- bin/moonstep as a command: scripts with arguments, -e, -i, exit status.
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
end)
