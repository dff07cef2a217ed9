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
end)
