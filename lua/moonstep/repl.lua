-- moonstep.repl — the interactive REPL (Torch7's `th`, minus its known failures).
--
--   > x = ms.randn(2, 3)        expressions print their value (tensors pretty-printed;
--                               datasets, optimizers, schedules, models readably)
--   > =x:sum()                  `=expr` prints expr (Lua 5.1's REPL convention)
--   > x:sum();                  a trailing ';' suppresses printing; `_` is the last value
--                               (a value that printed itself while the chunk ran, as
--                               model:summary()'s result does, is not echoed again)
--   > local k = 2               top-level locals survive into later lines
--   > for i = 1, 2 do           incomplete input continues on '>>' lines
--   >>   print(i) end
--   > ms.ma<Tab>  opt:<Tab>     completes names, fields and methods (repl_complete.lua)
--   > :help                     the REPL's commands; :trace prints the full traceback of
--                               the last error (errors print one line: the message at
--                               the user's line, `stdin:N: ...`); :quit leaves
--   Ctrl-C interrupts a running computation (back to the prompt) or clears the line; the
--   first one prints a hint: a JIT-compiled loop of pure Lua (no moonstep op inside)
--   cannot see it, and three presses end the process. Ctrl-D on an empty line quits.
--   History is kept in $MOONSTEP_HISTORY or ~/.moonstep_history, one entry per chunk
--   (a multi-line chunk is stored as one line that runs the same when recalled).
--   A chunk is compiled before it runs and runs exactly once.
--
-- Line editing and history come from GNU readline, bound through the FFI; without a
-- terminal (or without libreadline) plain io.read is used.
local ffi = require 'ffi'
local core = require 'moonstep.core'
local source = require 'moonstep.repl_source'
local complete = require 'moonstep.repl_complete'
local C = core.C

local M = {}
M.globalize_locals = source.globalize_locals

---------------------------------------------------------------------------------------
-- input: readline when stdin is a terminal
---------------------------------------------------------------------------------------
ffi.cdef [[
char *readline(const char *prompt);
void add_history(const char *line);
int read_history(const char *file);
int append_history(int n, const char *file);
int history_truncate_file(const char *file, int lines);
void rl_replace_line(const char *text, int clear_undo);
int rl_crlf(void);
int rl_on_new_line(void);
int rl_set_prompt(const char *prompt);
void rl_redisplay(void);
extern int (*rl_signal_event_hook)(void);
void free(void *p);
int isatty(int fd);
int getpid(void);
]]

M.HINT = 'hint: Ctrl-C stops moonstep ops and interpreted Lua, but a JIT-compiled loop of pure Lua ' ..
         '(one that calls no moonstep op) cannot see it: press Ctrl-C 3 times to end the process, ' ..
         'or run `kill -9 %d` from another terminal'

local hinted = false
-- The Ctrl-C hint, once per session (out: a file or nil for stdout).
local function hint(out)
  if hinted then return end
  hinted = true
  local ok, pid = pcall(function() return ffi.C.getpid() end)
  out = out or io.stdout
  out:write(M.HINT:format(ok and pid or 0), '\n')
  if out.flush then out:flush() end
end

local function open_readline()
  if os.getenv('MOONSTEP_NO_READLINE') or ffi.C.isatty(0) == 0 then return nil end
  return (core.load_first { 'readline', 'libreadline.so.8', 'libreadline.so.7' })
end

local function history_path()
  return os.getenv('MOONSTEP_HISTORY') or ((os.getenv('HOME') or '.') .. '/.moonstep_history')
end

-- Returns a reader {read(prompt) -> line or nil at end of input, remember(chunk),
-- close(), interrupted()}: interrupted() says (once) whether Ctrl-C was pressed while
-- editing since the last call.
local function make_reader(env)
  local rl = open_readline()
  if not rl then
    return {
      read = function(prompt)
        io.write(prompt); io.flush()
        return io.read('*l')
      end,
      remember = function() end, close = function() end, interrupted = function() return false end,
    }
  end
  local hist = history_path()
  local f = io.open(hist, 'a'); if f then f:close() end  -- append_history needs the file
  rl.read_history(hist)
  complete.attach(rl, env)
  -- Ctrl-C while editing: our SIGINT handler (installed for the whole session) sets the
  -- flag, readline then calls this hook, which clears the line and starts a fresh
  -- '> ' prompt, as a shell does, and tells the REPL to drop a pending chunk. The flag
  -- is cleared at once: presses at the prompt never add up to the third that ends the
  -- process.
  local pressed = false
  local on_signal = ffi.cast('int (*)(void)', function()
    if C.ms_interrupt_pending() ~= 0 then
      C.ms_interrupt_clear()
      pressed = true
      rl.rl_replace_line('', 0)
      rl.rl_crlf()
      hint()
      rl.rl_set_prompt('> ')
      rl.rl_on_new_line()
      rl.rl_redisplay()
    end
    return 0
  end)
  rl.rl_signal_event_hook = on_signal
  local reader = { _hook = on_signal }
  function reader.read(prompt)
    local p = rl.readline(prompt)
    if p == nil then return nil end
    local line = ffi.string(p)
    ffi.C.free(p)
    return line
  end
  jit.off(reader.read)  -- the hook re-enters Lua from C: the FFI call must not be compiled
  function reader.remember(chunk)
    local entry = source.one_line(chunk)
    if entry:match('%S') then
      rl.add_history(entry)
      rl.append_history(1, hist)  -- at once: a killed session keeps its history
    end
  end
  function reader.interrupted()
    local was = pressed
    pressed = false
    return was
  end
  function reader.close() rl.history_truncate_file(hist, 2000) end
  return reader
end

---------------------------------------------------------------------------------------
-- printing values
---------------------------------------------------------------------------------------
M.show = require('moonstep.repl_show').show
local show = M.show

---------------------------------------------------------------------------------------
-- evaluation
---------------------------------------------------------------------------------------
-- `=expr` (the Lua 5.1 REPL's print shortcut) -> the expression's source, else nil.
local function print_form(src)
  local rest = src:match('^%s*=(.*)$')
  return rest
end

-- Compile a chunk: first as an expression list (to print it), then as statements.
-- Returns fn, nil, is_expression when complete; nil, 'incomplete' when more input is
-- needed; nil, message on a syntax error. An expression's fn takes a pack function and
-- returns pack(values): its calls are then no tail calls, so the chunk's frame (and the
-- user's line in an error) stays on the stack. A statement chunk's fn takes nothing.
function M.compile(src, env)
  local expr = print_form(src)
  local f, err, is_expr
  local body = (expr or src):gsub('[;%s]*$', '')
  if loadstring('return ' .. body, '=stdin') then
    -- an inner vararg function: `...` in the expression is no internal value
    -- (the closing parenthesis on the expression's own line: an error raised in a
    -- metamethod is reported at the line of the call; a newline only ends a comment)
    -- (a trailing comment is cut at the last token: it would swallow the parenthesis)
    local toks = source.tokens(body)
    local last = toks[#toks]
    local expr_src = last and body:sub(1, last[4]) or ''
    f, err = loadstring('return function(__repl_pack, ...) return __repl_pack(' .. expr_src .. ') end', '=stdin')
    if not f then
      f, err = loadstring('return function(__repl_pack, ...) return __repl_pack(' .. body .. '\n) end', '=stdin')
    end
    is_expr = f ~= nil
  end
  if not f then
    if expr then
      f, err = loadstring('return ' .. expr, '=stdin')
    else
      f, err = loadstring(source.globalize_locals(src), '=stdin')
    end
  end
  if not f then
    -- more input can complete it only when the parser stopped at the end ("... near
    -- '<eof>'"), not at a stray token ("'<eof>' expected near 'end'": a syntax error)
    if err:sub(-7) == "'<eof>'" then return nil, 'incomplete' end
    return nil, err
  end
  setfenv(f, env)
  if is_expr then f = f() end          -- the inner function (see above)
  return f, nil, is_expr
end

local function pack(...) return { n = select('#', ...), ... } end

local PKG_DIR = debug.getinfo(1, 'S').source:match('^@(.*[/\\])[^/\\]*$')

-- The error handler: {msg = one line at the user's line, trace = the full traceback,
-- interrupted = true for Ctrl-C}.
local function on_error(e)
  local ok, msg = pcall(tostring, e)
  msg = ok and type(msg) == 'string' and msg or ('(an error object of type ' .. type(e) .. ' whose __tostring failed)')
  if e == nil then msg = 'nil (an error without a message)' end
  local interrupted = msg:find('interrupted', 1, true) ~= nil and msg:find('Ctrl-C', 1, true) ~= nil
  -- the traceback down to the chunk; the REPL's own frames are noise
  local tb = debug.traceback(msg, 2)
  tb = tb:gsub('\n%s*%[C%]: in function \'xpcall\'.*$', ''):gsub('\n%s*%[builtin#%d+%][^\n]*', '')
  tb = tb:gsub('\nstack traceback:$', '')
  if PKG_DIR then msg = msg:gsub(PKG_DIR:gsub('%p', '%%%0'), 'moonstep/') end
  if not msg:match('^stdin:%d+:') then
    -- the user's line: the innermost frame of the chunk
    for level = 2, 250 do
      local info = debug.getinfo(level, 'Sl')
      if not info then break end
      if info.source == '=stdin' and (info.currentline or 0) > 0 then
        msg = ('stdin:%d: %s'):format(info.currentline, msg)
        break
      end
    end
  end
  return { msg = msg, trace = tb, interrupted = interrupted }
end

-- Run f once under the interrupt hook; returns ok, results-table-or-error-table.
local function execute(f, ...)
  C.ms_interrupt_clear()
  -- interpreted Lua sees Ctrl-C through this hook; moonstep ops check the flag in C
  debug.sethook(function()
    if C.ms_interrupt_pending() ~= 0 then
      C.ms_interrupt_clear()
      error('interrupted (Ctrl-C)', 2)
    end
  end, '', 1000)
  -- the hint must also appear while a compiled pure-Lua loop runs, when no Lua code can
  -- print it: the C handler writes it at the first press (once per session)
  if not hinted then
    local ok, pid = pcall(function() return ffi.C.getpid() end)
    C.ms_sigint_hint(M.HINT:format(ok and pid or 0))
  end
  local r = pack(xpcall(f, on_error, ...))
  debug.sethook()
  if C.ms_sigint_hint(nil) ~= 0 then hinted = true end
  C.ms_interrupt_clear()
  if not r[1] and type(r[2]) ~= 'table' then   -- the handler itself failed
    r[2] = { msg = tostring(r[2]), trace = tostring(r[2]) }
  end
  return r[1], r
end

-- The last error's traceback, per session environment.
local traces = setmetatable({}, { __mode = 'k' })

M.HELP = [[
moonstep REPL
  expr              prints its value (tensors in full, tables to depth 3); a trailing ';' does not
  =expr             prints expr (Lua 5.1's convention); `_` holds the last value printed
  local x = ...     top-level locals stay defined in later lines
  Tab               completes globals, fields and methods: ms.ma<Tab>, opt:<Tab>, x:resh<Tab>
  :help             this text
  :trace            the full traceback of the last error (errors print one line)
  :quit             leaves (as Ctrl-D on an empty line)
  Ctrl-C            interrupts a computation, or drops the line being typed; three presses end
                    the process (a JIT-compiled pure-Lua loop cannot be interrupted otherwise)
  model:summary(shape)   layers, output shapes and parameter counts of a model
History: $MOONSTEP_HISTORY or ~/.moonstep_history; a multi-line chunk is one entry.]]

-- A REPL command (`:help`, `:trace`, `:quit`): handled -> true (and 'quit'), else nil.
local COMMANDS = { help = 'help', h = 'help', trace = 'trace', t = 'trace', quit = 'quit', q = 'quit', exit = 'quit' }
function M.command(line, env, out)
  local name, rest = line:match('^%s*:(%a+)(.-)%s*$')
  if not name then return nil end
  if not COMMANDS[name] or not (rest == '' or rest:match('^%s')) then
    out:write('error: unknown command ', (line:match('^%s*(%S+)')), ' (:help lists them)\n')
    return true
  end
  if rest ~= '' then
    out:write(('error: :%s takes no argument, got %q (:help lists the commands)\n'):format(name, (rest:gsub('^%s+', ''))))
    return true
  end
  if name == 'help' or name == 'h' then
    out:write(M.HELP, '\n')
  elseif name == 'trace' or name == 't' then
    out:write(traces[env] or 'no error yet', '\n')
  elseif name == 'quit' or name == 'q' or name == 'exit' then
    return true, 'quit'
  else
    out:write('error: unknown command :', name, ' (:help lists them)\n')
  end
  return true
end

-- Evaluate one complete source chunk (or command) in env and print what it returns;
-- used by run() and by tests. Returns true when it ran without error (and 'quit' for
-- :quit).
function M.eval(src, env, out)
  out = out or io.stdout
  local handled, what = M.command(src, env, out)
  if handled then return true, what end
  local forced = print_form(src) ~= nil
  local silent = not forced and src:match(';%s*$') ~= nil
  local f, err, is_expr = M.compile(src, env)
  if not f then
    out:write(err == 'incomplete' and 'error: incomplete input' or ('error: ' .. err), '\n')
    return false
  end
  M.chunk = (M.chunk or 0) + 1          -- (a value may note the chunk it printed itself in)
  local ok, r
  if is_expr then ok, r = execute(f, pack) else ok, r = execute(f) end
  if not ok then
    local e = r[2]
    traces[env] = e.trace
    if e.interrupted then
      out:write('interrupted (Ctrl-C)\n')
      hint(out)
    else
      out:write('error: ', e.msg, '\n')
    end
    return false
  end
  local values = is_expr and r[2] or { n = r.n - 1, unpack(r, 2, r.n) }
  if values.n > 0 then env._ = values[1] end
  -- a value that printed itself while this chunk ran (model:summary's result) is not echoed
  if values.n == 1 and type(values[1]) == 'table' and rawget(values[1], '_repl_chunk') == M.chunk then
    silent = true
  end
  if not silent and values.n > 0 then
    -- printing runs a value's __tostring: under the Ctrl-C hook, and never raising
    local okp, rp = execute(function()
      local parts = {}
      for k = 1, math.min(values.n, 100) do parts[#parts + 1] = show(values[k]) end
      if values.n > 100 then parts[#parts + 1] = ('... (%d values)'):format(values.n) end
      return table.concat(parts, '\t')
    end)
    if okp then out:write(rp[2], '\n')
    elseif rp[2].interrupted then out:write('interrupted (Ctrl-C) while printing the value\n')
    else out:write('error: could not print the value: ', rp[2].msg, '\n') end
  end
  return true
end

function M.new_env()
  local env = setmetatable({}, { __index = _G })
  env.ms = env.ms or rawget(_G, 'ms') or require 'moonstep'
  return env
end

function M.run()
  local env = M.new_env()
  local reader = make_reader(env)
  C.ms_sigint_install()
  io.write(('moonstep %s (LuaJIT) -- `ms` is loaded; Ctrl-D quits, Ctrl-C interrupts, :help for more\n')
           :format(require('moonstep').version))
  while true do
    C.ms_interrupt_clear()
    reader.interrupted()
    local line = reader.read('> ')
    if line == nil then io.write('\n'); break end
    local src = line
    -- continue until the chunk is complete; Ctrl-C drops the pending lines (the line
    -- typed after it starts a new chunk), Ctrl-D drops the chunk
    while src:match('%S') and not src:match('^%s*:%a') do
      local f, err = M.compile(src, env)
      if f or err ~= 'incomplete' then break end
      C.ms_interrupt_clear()
      reader.interrupted()
      local more = reader.read('>> ')
      if more == nil then src = ''; io.write('\n'); break end
      if reader.interrupted() then
        src = more
      else
        src = src .. '\n' .. more
      end
    end
    if src:match('%S') then
      reader.remember(src)
      local _, what = M.eval(src, env)
      io.stdout:flush()
      if what == 'quit' then break end
    end
  end
  reader.close()
  C.ms_sigint_uninstall()
end

return M
