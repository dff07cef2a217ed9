-- The REPL: unit checks of its evaluation rules, then the real thing driven through
-- tmux (a pty): printing, ';', =expr, locals across lines, continuation, errors (one
-- line; :trace for the traceback), Ctrl-C during a computation and at the prompt (the
-- hint), tab completion, and history (a multi-line chunk is one entry).
-- Completion as a function: repl_complete_spec.lua.
local H = require 'helper'
local repl = require 'moonstep.repl'
local repl_source = require 'moonstep.repl_source'

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

  it('=expr prints expr (Lua 5.1 convention), even with a trailing ;', function()
    local env, out = repl.new_env(), sink()
    repl.eval('=1 + 2', env, out)
    repl.eval('= "a", nil, 3;', env, out)
    assert.equal('a', env._)
    repl.eval('=nil', env, out)
    assert.equal('3\na\tnil\t3\nnil\n', out.text())
    local f, err = repl.compile('=x +', env)
    assert.is_nil(f); assert.equal('incomplete', err)
    out = sink()
    repl.eval('= = 1', env, out)
    assert.truthy(out.text():find('^error: stdin:1: '))
  end)

  it('prints an error as one line at the user\'s line; :trace gives the traceback', function()
    local env, out = repl.new_env(), sink()
    repl.eval(':trace', env, out)
    assert.equal('no error yet\n', out.text())
    out = sink()
    repl.eval('function f()\n  error("boom")\nend\nf()', env, out)
    assert.equal('error: stdin:2: boom\n', out.text())
    -- an error raised inside moonstep, from an expression (a tail call) and a statement
    out = sink()
    repl.eval('ms.nn.Linear(2, "a")', env, out)
    repl.eval('local l = ms.nn.Linear(2, "a")', env, out)
    local text = out.text()
    assert.equal(2, select(2, text:gsub('error: stdin:1: Linear: out_features is "a"', '')), text)
    assert.falsy(text:find('traceback', 1, true))
    assert.falsy(text:find('check.lua', 1, true))
    out = sink()
    repl.eval(':trace', env, out)
    assert.truthy(out.text():find('stack traceback', 1, true))
    assert.truthy(out.text():find('Linear.lua', 1, true))   -- where it was raised
    assert.falsy(out.text():find("function 'xpcall'", 1, true))  -- the REPL's own frames are cut
  end)

  it(':help lists the commands; an unknown command says so', function()
    local env, out = repl.new_env(), sink()
    assert.is_true(repl.eval(':help', env, out))
    for _, c in ipairs { ':trace', ':quit', '=expr', 'Tab' } do assert.truthy(out.text():find(c, 1, true), c) end
    out = sink()
    repl.eval(':frob', env, out)
    assert.equal('error: unknown command :frob (:help lists them)\n', out.text())
    assert.same({ true, 'quit' }, { repl.eval(':quit', env, sink()) })
    -- a goto label is Lua, not a command
    out = sink()
    repl.eval('::top:: x = 1', env, out)
    assert.equal('', out.text())
  end)

  it('stores a multi-line chunk as one line that runs the same', function()
    local src = table.concat({ 'local s = 0  -- the sum', 'for i = 1, 3 do --[[ long', ' comment ]] s = s + i',
                               'end', 'local t = "a\\', 'b" .. [[x', 'y]]', 'return s, t' }, '\n')
    local line = repl_source.one_line(src)
    assert.equal(1, select(2, line:gsub('\n', '')))   -- only the long string's own newline
    assert.falsy(line:find('--', 1, true))
    local a1, a2 = assert(loadstring(src))()
    local b1, b2 = assert(loadstring(line))()
    assert.equal(a1, b1); assert.equal(a2, b2)
    assert.equal('for i = 1, 2 do print(i) end', repl_source.one_line('for i = 1, 2 do\n  print(i)\nend'))
    assert.equal('x = "--not a comment"', repl_source.one_line('x = "--not a comment"'))
  end)

  it('prints objects through their tostring; model:summary() is printed once', function()
    local env, out = repl.new_env(), sink()
    repl.eval('opt = ms.optim.SGD{lr = 0.5}', env, out)
    repl.eval('opt', env, out)
    assert.equal(tostring(env.opt) .. '\n', out.text())
    local printed, real = {}, _G.print
    _G.print = function(s) printed[#printed + 1] = s end
    out = sink()
    local ok, err = pcall(function()
      repl.eval('m = ms.nn.Linear(2, 3)', env, out)
      repl.eval('m:summary()', env, out)         -- it printed itself: no echo
      repl.eval('r = m:summary()', env, out)
      repl.eval('r', env, out)                   -- a later chunk shows it
    end)
    _G.print = real
    assert(ok, err)
    assert.equal(2, #printed)
    assert.equal(printed[1] .. '\n', out.text())
    assert.truthy(out.text():find('Linear(2 -> 3)', 1, true))
  end)

  it('a stray token is a syntax error at once, not a chunk waiting for more lines', function()
    local env = repl.new_env()
    for _, src in ipairs { 'x = 1 end', 'end', 'until x', 'return 1 end', '=x = 1', 'f() )' } do
      local f, err = repl.compile(src, env)
      assert.is_nil(f)
      assert.are_not.equal('incomplete', err, src)
      assert.truthy(err:find('^stdin:1: '), err)
    end
    for _, src in ipairs { 'if x then', 'f(', 'x = [[', '--[[', '= 1 +', 'local t = {' } do
      assert.equal('incomplete', select(2, repl.compile(src, env)), src)
    end
    local out = sink()
    repl.eval('=1;;', env, out)
    assert.equal('1\n', out.text())
  end)

  it('never raises while printing: failing __tostring of userdata, cdata, tables, errors', function()
    local env, out = repl.new_env(), sink()
    local function eval(src)
      local ok, a = pcall(repl.eval, src, env, out)
      assert(ok, a)
      return a
    end
    assert.is_true(eval('u = newproxy(true); getmetatable(u).__tostring = function() error("uts") end; return u'))
    assert.truthy(out.text():find('<userdata: tostring failed: stdin:1: uts>', 1, true), out.text())
    eval('ffi = require "ffi"; ffi.cdef "typedef struct { int a; } repl_spec_pt;"; '
         .. 'ffi.metatype("repl_spec_pt", {__tostring = function() error("cts") end}); return ffi.new("repl_spec_pt")')
    assert.truthy(out.text():find('<cdata: tostring failed: stdin:1: cts>', 1, true), out.text())
    eval('setmetatable({}, {__metatable = false, __tostring = function() return nil end})')
    assert.truthy(out.text():find('<table: tostring failed: it returned nil>', 1, true), out.text())
    out = sink()
    eval('error(setmetatable({}, {__tostring = function() error("no") end}))')
    eval('error()')
    assert.equal('error: stdin:1: (an error object of type table whose __tostring failed)\n'
                 .. 'error: stdin:1: nil (an error without a message)\n', out.text())
    -- long strings inside a table are cut; a big table lists its first fields and the count
    out = sink()
    eval('{ s = string.rep("x", 1000) }')
    assert.truthy(out.text():find('"... (1000 bytes)', 1, true), out.text())
    assert.truthy(#out.text() < 400)
    out = sink()
    eval('big = {}; for i = 1, 20000 do big["k" .. i] = i end; return big')
    assert.truthy(out.text():find('... (20000 entries)', 1, true), out.text():sub(-200))
    out = sink()
    eval('unpack({}, 1, 5000)')
    assert.equal('\tnil\t... (5000 values)\n', out.text():sub(-23))
    assert.equal(100, select(2, out.text():gsub('nil', '')))
    -- `...` at the top level is empty (no internal function leaks out)
    out = sink()
    eval('select("#", ...)')
    eval('n = select("#", ...); return n')
    assert.equal('0\n0\n', out.text())
  end)

  it('an error raised in a metamethod of an expression is at the expression\'s line', function()
    local env, out = repl.new_env(), sink()
    repl.eval('ms.nn.Linaer', env, out)
    repl.eval('ms.zeros(2)[5] -- a comment', env, out)
    repl.eval('1 +\n  ms.nn.Linaer', env, out)
    local text = out.text()
    assert.truthy(text:find('^error: stdin:1: ms.nn: no function or class "Linaer"'), text)
    assert.truthy(text:find('\nerror: stdin:1: Tensor: t%[5%]'), text)
    assert.truthy(text:find('\nerror: stdin:2: ms.nn'), text)
  end)

  it('commands with extra text say so and do nothing', function()
    local env, out = repl.new_env(), sink()
    assert.same({ true }, { repl.eval(':quit now', env, out) })
    repl.eval(':trace all', env, out)
    repl.eval(':helpme', env, out)
    assert.equal('error: :quit takes no argument, got "now" (:help lists the commands)\n'
                 .. 'error: :trace takes no argument, got "all" (:help lists the commands)\n'
                 .. 'error: unknown command :helpme (:help lists them)\n', out.text())
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

-- A tmux server of its own (sock) with a pane 'repl': tmux(args), screen(), wait_for(text
-- [, seconds]) (until the screen shows text, plain), send(keys).
local function terminal(sock)
  local T = {}
  function T.tmux(args) return sh('tmux -L ' .. sock .. ' ' .. args) end
  function T.screen() return T.tmux('capture-pane -p -t repl') end
  function T.wait_for(text, seconds)
    local deadline = os.time() + (seconds or 10)
    repeat
      local s = T.screen()
      if s:find(text, 1, true) then return s end
      os.execute('sleep 0.1')
    until os.time() > deadline
    error('timed out waiting for ' .. text .. ' on screen:\n' .. T.screen())
  end
  function T.send(keys) T.tmux('send-keys -t repl ' .. keys) end
  return T
end

describe('repl in a terminal', function()
  if not has_tmux then
    pending('tmux is not installed')
    return
  end
  local hist = os.tmpname()
  local term = terminal('moonstep-test-' .. tostring(os.time()) .. '-' .. math.random(1e6))
  local tmux, screen, wait_for, send = term.tmux, term.screen, term.wait_for, term.send

  setup(function()
    os.remove(hist)
    tmux(("new-session -d -s repl -x 150 -y 50 'MOONSTEP_HISTORY=%s bin/moonstep; echo repl-exited=$?; sleep 5'"):format(hist))
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

  it('the first Ctrl-C printed the hint; presses at the prompt never add up to three', function()
    local s = screen()
    assert.truthy(s:find('hint: Ctrl-C stops moonstep ops', 1, true), s)
    assert.equal(1, select(2, s:gsub('hint: Ctrl%-C', '')))   -- once per session
    send('C-c'); send('C-c'); send('C-c'); send('C-c')
    send("'1000 + 7' Enter")
    wait_for('\n1007')
  end)

  it('=expr prints; an error is one line; :trace shows the traceback', function()
    send("'=6 * 7 + 1000' Enter")
    wait_for('\n1042')
    send("'local function g() error(\"kaboom\") end; g()' Enter")
    local s = wait_for('kaboom')
    assert.truthy(s:find('error: stdin:1: kaboom', 1, true), s)
    assert.falsy(s:find('stack traceback', 1, true), s)
    send("':trace' Enter")
    s = wait_for('stack traceback')
    assert.truthy(s:find("in function 'g'", 1, true) or s:find('in upvalue', 1, true) or s:find('stdin:1', 1, true), s)
  end)

  it('Tab completes names, fields and methods', function()
    send("C-l")
    send("'ms.manu' Tab")
    wait_for('> ms.manual_seed(')
    send("C-u 'ms.ma' Tab Tab")               -- ambiguous: the second Tab lists them
    local s = wait_for('ms.matmul(')
    assert.truthy(s:find('ms.maximum(', 1, true), s)
    send("C-u 'opt = ms.optim.SGD{lr = 0.1}' Enter")
    send("'opt:load_s' Tab")
    wait_for('> opt:load_state(')
    send("C-u 'ms.optim.Ada' Tab Tab")
    wait_for('ms.optim.AdamW')
    send("C-u 'tcomp = ms.ones(2)' Enter")   -- completion reads values, never evaluates the line
    send("'tcomp:resh' Tab")
    wait_for('tcomp:reshape(')
    send("C-u")
  end)

  it('stores a multi-line chunk as one history entry that reruns when recalled', function()
    send("C-l")
    send("'for i = 1, 2 do' Enter"); wait_for('>>')
    send("'print(\"hist\" .. i * 100) end' Enter")
    wait_for('hist200')
    send('Up'); wait_for('> for i = 1, 2 do print("hist" .. i * 100) end')
    send('Enter')
    local deadline = os.time() + 10
    repeat
      local _, n = screen():gsub('hist200', '')
      if n >= 2 then break end
      os.execute('sleep 0.1')
    until os.time() > deadline
    assert.equal(2, select(2, screen():gsub('hist200', '')), screen())
  end)

  it('writes the history file as it goes', function()
    local f = assert(io.open(hist))
    local text = f:read('*a')
    f:close()
    assert.truthy(text:find('k * 2', 1, true))
    assert.truthy(text:find('\nfor i = 1, 2 do print("hist" .. i * 100) end\n', 1, true), text)
    assert.falsy(text:find('\nprint("hist"', 1, true), text)   -- not line by line
    send("':quit' Enter")
    wait_for('repl-exited=0')
  end)
end)

-- A JIT-compiled loop of pure Lua never reaches a hook or an op: the hint must come from
-- the C signal handler itself, at the first press, while the loop still runs; the third
-- press ends the process.
describe('repl stuck in a compiled pure-Lua loop', function()
  if not has_tmux then
    pending('tmux is not installed')
    return
  end
  local term = terminal('moonstep-test-jit-' .. tostring(os.time()) .. '-' .. math.random(1e6))
  local tmux, wait_for, send = term.tmux, term.wait_for, term.send
  teardown(function() tmux('kill-server') end)

  it('prints the hint at the first Ctrl-C while the loop runs, and three presses end it', function()
    -- (the shell ignores SIGINT: a shell whose child died of SIGINT ends itself otherwise,
    -- before it can print the exit status; moonstep installs its own handler)
    tmux(("new-session -d -s repl -x 150 -y 50 'trap \"\" INT; MOONSTEP_HISTORY=%s bin/moonstep; echo repl-exited=$?; sleep 5'")
         :format(os.tmpname()))
    wait_for('Ctrl-D quits')
    send("'local n = 0; while true do n = n + 1 end' Enter")
    os.execute('sleep 0.5')
    send('C-c')
    local s = wait_for('hint: Ctrl-C stops moonstep ops', 5)
    assert.falsy(s:find('repl-exited', 1, true), s)   -- still running: only the hint
    send('C-c'); send('C-c')
    wait_for('repl-exited=130', 10)
  end)
end)
