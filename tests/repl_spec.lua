-- The REPL: unit checks of its evaluation rules, then the real thing driven through
-- tmux (a pty): printing, ';', locals across lines, continuation, errors, Ctrl-C
-- during a computation and at the prompt, and history.
local H = require 'helper'
local repl = require 'moonstep.repl'

-- An output sink that records what eval writes.
local function sink()
  local buf = {}
  return { write = function(self, ...) for _, s in ipairs { ... } do buf[#buf + 1] = s end end,
           text = function() return table.concat(buf) end }
end

describe('repl evaluation', function()
  it('prints expression values and suppresses them after ;', function()
    local env, out = repl.new_env(), sink()
    repl.eval('1 + 2', env, out)
    repl.eval('40 + 2;', env, out)
    assert.equal('3\n', out.text())
    assert.equal(42, env._)
  end)

  it('keeps top-level locals, not inner ones', function()
    local env, out = repl.new_env(), sink()
    repl.eval('local k, j = 20, 1', env, out)
    repl.eval('local function twice(x) local y = x; return 2 * y end', env, out)
    repl.eval('local z', env, out)
    repl.eval('for i = 1, 2 do local inner = i end', env, out)
    repl.eval('twice(k) + j', env, out)
    assert.equal('41\n', out.text())
    assert.is_nil(rawget(env, 'inner'))
    assert.is_nil(rawget(env, 'y'))
    assert.equal(20, env.k)
  end)

  it('rewrites only depth-0 locals, ignoring strings and comments', function()
    assert.equal('a = 1', repl.globalize_locals('local a = 1'))
    assert.equal('x = nil', repl.globalize_locals('local x'))
    assert.equal('s = "local q = 1" -- local r', repl.globalize_locals('local s = "local q = 1" -- local r'))
    assert.equal('if c then local d = 1 end', repl.globalize_locals('if c then local d = 1 end'))
  end)

  it('runs a failing chunk exactly once and reports the error', function()
    local env, out = repl.new_env(), sink()
    repl.eval('count = 0', env, out)
    repl.eval('count = count + 1; error("boom")', env, out)
    repl.eval('count + 1 + nil', env, out)
    assert.equal(1, env.count)
    assert.truthy(out.text():find('error: .*boom'))
    assert.truthy(out.text():find('arithmetic'))
  end)

  it('knows when a chunk is incomplete', function()
    local env = repl.new_env()
    local f, err = repl.compile('for i = 1, 3 do', env)
    assert.is_nil(f); assert.equal('incomplete', err)
    local g, err2 = repl.compile('x = = 1', env)
    assert.is_nil(g); assert.truthy(err2:find('unexpected'))
  end)

  it('prints tensors in full at the top level and as summaries inside tables', function()
    local env, out = repl.new_env(), sink()
    repl.eval('ms.ones(2)', env, out)
    repl.eval('{ w = ms.zeros(3, 4) }', env, out)
    assert.truthy(out.text():find('[ms.Tensor float32 of shape 2 on cpu]', 1, true))
    assert.truthy(out.text():find('w = ms.Tensor float32 3x4 cpu', 1, true))
  end)
end)

-- Driving bin/moonstep in a tmux pane.
local sh = H.sh

local has_tmux = os.execute('command -v tmux >/dev/null 2>&1') == 0

describe('repl in a terminal', function()
  if not has_tmux then
    pending('tmux is not installed')
    return
  end
  local sock = 'moonstep-test-' .. tostring(os.time()) .. '-' .. math.random(1e6)
  local hist = os.tmpname()
  local function tmux(args) return sh('tmux -L ' .. sock .. ' ' .. args) end
  local function screen() return tmux('capture-pane -p -t repl') end
  -- wait until the screen contains pattern (plain text) or time runs out
  local function wait_for(text, seconds)
    local deadline = os.time() + (seconds or 10)
    repeat
      local s = screen()
      if s:find(text, 1, true) then return s end
      os.execute('sleep 0.1')
    until os.time() > deadline
    error('timed out waiting for ' .. text .. ' on screen:\n' .. screen())
  end
  local function send(keys) tmux("send-keys -t repl " .. keys) end

  setup(function()
    os.remove(hist)
    tmux(("new-session -d -s repl -x 150 -y 50 'MOONSTEP_HISTORY=%s bin/moonstep; sleep 5'"):format(hist))
    wait_for('Ctrl-D quits')
  end)
  teardown(function() tmux('kill-server') end)

  it('evaluates, keeps locals and continues incomplete input', function()
    send("'local k = 21' Enter"); send("'k * 2' Enter")
    wait_for('\n42')
    send("'for i = 1, 2 do' Enter"); wait_for('>>')
    send("'print(\"row\" .. i) end' Enter")
    wait_for('row2')
    send("'ms.ones(2, 2) * 3' Enter")
    wait_for('[ms.Tensor float32 of shape 2x2 on cpu]')
  end)

  it('Ctrl-C interrupts a running computation and the session goes on', function()
    send("'y = ms.zeros(1000, 1000); for i = 1, 1e8 do y:add_(1) end' Enter")
    os.execute('sleep 0.5')
    send('C-c')
    wait_for('interrupted (Ctrl-C)')
    send("'y:get(1, 1) > 0' Enter")
    wait_for('\ntrue')
  end)

  it('Ctrl-C at the prompt drops the line', function()
    local function errors(text) return select(2, text:gsub('error', '')) end
    local before = errors(screen())
    send("'this is not lua' C-c")
    send("'1 + 1' Enter")
    local s = wait_for('\n2')
    assert.equal(before, errors(s))   -- the dropped line was never compiled
  end)

  it('writes the history file as it goes', function()
    local f = assert(io.open(hist))
    local text = f:read('*a')
    f:close()
    assert.truthy(text:find('k * 2', 1, true))
    send('C-d')
  end)
end)
