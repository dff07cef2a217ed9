-- moonstep.repl — the interactive REPL (Torch7's `th`, minus its known failures).
--
--   > x = ms.randn(2, 3)        expressions print their value (tensors pretty-printed)
--   > x:sum();                  a trailing ';' suppresses printing
--   > local k = 2               top-level locals survive into later lines
--   > for i = 1, 2 do           incomplete input continues on '>>' lines
--   >>   print(i) end
--   Ctrl-C interrupts a running computation (back to the prompt) or clears the line;
--   Ctrl-D on an empty line quits. History is kept in $MOONSTEP_HISTORY or
--   ~/.moonstep_history. A chunk is compiled before it runs and runs exactly once.
--
-- Line editing and history come from GNU readline, bound through the FFI; without a
-- terminal (or without libreadline) plain io.read is used.
local ffi = require 'ffi'
local core = require 'moonstep.core'
local T = require 'moonstep.tensor'
local C = core.C

local M = {}

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
]]

local function open_readline()
  if os.getenv('MOONSTEP_NO_READLINE') or ffi.C.isatty(0) == 0 then return nil end
  return (core.load_first { 'readline', 'libreadline.so.8', 'libreadline.so.7' })
end

local function history_path()
  return os.getenv('MOONSTEP_HISTORY') or ((os.getenv('HOME') or '.') .. '/.moonstep_history')
end

-- Returns read(prompt) -> line or nil at end of input, and a close() that saves history.
local function make_reader()
  local rl = open_readline()
  if not rl then
    return function(prompt)
      io.write(prompt); io.flush()
      return io.read('*l')
    end, function() end
  end
  local hist = history_path()
  local f = io.open(hist, 'a'); if f then f:close() end  -- append_history needs the file
  rl.read_history(hist)
  -- Ctrl-C while editing: our SIGINT handler (installed for the whole session) sets the
  -- flag, readline then calls this hook, which clears the line and starts a fresh
  -- '> ' prompt, as a shell does; the flag tells the REPL to drop a pending chunk.
  local on_signal = ffi.cast('int (*)(void)', function()
    if C.ms_interrupt_pending() ~= 0 then
      rl.rl_replace_line('', 0)
      rl.rl_crlf()
      rl.rl_set_prompt('> ')
      rl.rl_on_new_line()
      rl.rl_redisplay()
    end
    return 0
  end)
  rl.rl_signal_event_hook = on_signal
  local function read(prompt)
    local p = rl.readline(prompt)
    if p == nil then return nil end
    local line = ffi.string(p)
    ffi.C.free(p)
    if line:match('%S') then
      rl.add_history(line)
      rl.append_history(1, hist)  -- at once: a killed session keeps its history
    end
    return line
  end
  jit.off(read)  -- the hook re-enters Lua from C: the FFI call must not be compiled
  return read, function() rl.history_truncate_file(hist, 2000) end
end

---------------------------------------------------------------------------------------
-- top-level locals: `local x = 1` becomes `x = 1` in the session environment
---------------------------------------------------------------------------------------
-- Yields the tokens of Lua source as {kind, text, start, stop}; kind is 'name',
-- 'string', 'number' or 'op'. Comments are skipped.
local function tokens(src)
  local out, i, n = {}, 1, #src
  while i <= n do
    local c = src:sub(i, i)
    if c:match('%s') then
      i = i + 1
    elseif src:sub(i, i + 1) == '--' then
      local eq = src:match('^%[(=*)%[', i + 2)
      if eq then
        local _, e = src:find(']' .. eq .. ']', i, true)
        i = (e or n) + 1
      else
        local e = src:find('\n', i, true)
        i = (e or n) + 1
      end
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= n and src:sub(j, j) ~= c do
        if src:sub(j, j) == '\\' then j = j + 1 end
        j = j + 1
      end
      out[#out + 1] = { 'string', src:sub(i, j), i, j }
      i = j + 1
    elseif c == '[' and src:match('^%[=*%[', i) then
      local eq = src:match('^%[(=*)%[', i)
      local _, e = src:find(']' .. eq .. ']', i, true)
      out[#out + 1] = { 'string', src:sub(i, e or n), i, e or n }
      i = (e or n) + 1
    elseif c:match('[%a_]') then
      local s, e = src:find('^[%w_]+', i)
      out[#out + 1] = { 'name', src:sub(s, e), s, e }
      i = e + 1
    elseif c:match('%d') then
      local s, e = src:find('^[%w_%.]+', i)
      out[#out + 1] = { 'number', src:sub(s, e), s, e }
      i = e + 1
    else
      out[#out + 1] = { 'op', c, i, i }
      i = i + 1
    end
  end
  return out
end

local OPEN = { ['function'] = true, ['do'] = true, ['if'] = true, ['repeat'] = true }
local CLOSE = { ['end'] = true, ['until'] = true }

-- Rewrite `local` declarations at block depth 0: `local a, b = e` -> `a, b = e`,
-- `local a` -> `a = nil`, `local function f` -> `function f`. Inner locals stay.
-- Edits are {first, after, text}: src[first, after) becomes text.
function M.globalize_locals(src)
  local toks = tokens(src)
  local edits, depth = {}, 0
  local function drop_local(t)  -- 'local' and the blank after it
    local after = t[4] + 1
    while src:sub(after, after):match('%s') do after = after + 1 end
    edits[#edits + 1] = { t[3], after, '' }
  end
  for k, t in ipairs(toks) do
    if t[1] == 'name' then
      if OPEN[t[2]] then depth = depth + 1
      elseif CLOSE[t[2]] then depth = depth - 1
      elseif t[2] == 'local' and depth == 0 then
        local nxt = toks[k + 1]
        if nxt and nxt[2] == 'function' then
          drop_local(t)
        else
          -- skip the name list
          local j = k + 1
          while toks[j] and toks[j][1] == 'name' and toks[j + 1] and toks[j + 1][2] == ',' do j = j + 2 end
          local after = toks[j + 1]
          if after and after[2] == '=' then
            drop_local(t)
          elseif toks[j] then
            drop_local(t)
            edits[#edits + 1] = { toks[j][4] + 1, toks[j][4] + 1, ' = nil' }
          end
        end
      end
    end
  end
  for e = #edits, 1, -1 do
    local s, stop, text = edits[e][1], edits[e][2], edits[e][3]
    src = src:sub(1, s - 1) .. text .. src:sub(stop)
  end
  return src
end

---------------------------------------------------------------------------------------
-- printing values
---------------------------------------------------------------------------------------
local function summary(t)
  if T.is_freed(t) then return 'ms.Tensor (freed)' end
  local dims = table.concat(t:shape(), 'x')
  return ('ms.Tensor %s %s %s'):format(t.dtype, dims == '' and 'scalar' or dims, t.device)
end

local function show(v, depth, seen)
  depth, seen = depth or 0, seen or {}
  if T.is_tensor(v) then return depth == 0 and tostring(v) or summary(v) end
  if type(v) == 'string' then return depth == 0 and v or ('%q'):format(v) end
  if type(v) ~= 'table' or getmetatable(v) and getmetatable(v).__tostring then return tostring(v) end
  if seen[v] then return '<cycle>' end
  if depth >= 3 then return tostring(v) end
  seen[v] = true
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == 'number' or type(a) == 'string') then return a < b end
    return type(a) < type(b)
  end)
  local parts, pad = {}, ('  '):rep(depth + 1)
  for n, k in ipairs(keys) do
    if n > 50 then parts[#parts + 1] = pad .. '...'; break end
    local key = type(k) == 'string' and k:match('^[%a_][%w_]*$') and k or ('[' .. show(k, depth + 1, seen) .. ']')
    parts[#parts + 1] = pad .. key .. ' = ' .. show(v[k], depth + 1, seen)
  end
  seen[v] = nil
  if #parts == 0 then return '{}' end
  return '{\n' .. table.concat(parts, ',\n') .. '\n' .. ('  '):rep(depth) .. '}'
end
M.show = show

---------------------------------------------------------------------------------------
-- evaluation
---------------------------------------------------------------------------------------
-- Compile a chunk: first as an expression list (to print it), then as statements.
-- Returns fn, nil when complete; nil, 'incomplete' when more input is needed;
-- nil, message on a syntax error.
function M.compile(src, env)
  local f = loadstring('return ' .. src, '=stdin')
  if not f then
    local err
    f, err = loadstring(M.globalize_locals(src), '=stdin')
    if not f then
      if err:match("<eof>") then return nil, 'incomplete' end
      return nil, err
    end
  end
  setfenv(f, env)
  return f
end

local function pack(...) return { n = select('#', ...), ... } end

-- Run f once under the interrupt hook; returns ok, results-table-or-message.
local function execute(f)
  C.ms_interrupt_clear()
  -- interpreted Lua sees Ctrl-C through this hook; moonstep ops check the flag in C
  debug.sethook(function()
    if C.ms_interrupt_pending() ~= 0 then
      C.ms_interrupt_clear()
      error('interrupted (Ctrl-C)', 2)
    end
  end, '', 1000)
  local r = pack(xpcall(f, function(e)
    if type(e) == 'string' and e:match('interrupted') then return e end
    -- the traceback down to the chunk; the REPL's own frames are noise
    local tb = debug.traceback(tostring(e), 2)
    tb = tb:gsub('\n%s*%[C%]: in function \'xpcall\'.*$', ''):gsub('\n%s*%[builtin#%d+%][^\n]*', '')
    return (tb:gsub('\nstack traceback:$', ''))
  end))
  debug.sethook()
  C.ms_interrupt_clear()
  return r[1], r
end

-- Evaluate one complete source chunk in env and print what it returns; used by run()
-- and by tests. Returns true when it ran without error.
function M.eval(src, env, out)
  out = out or io.stdout
  local silent = src:match(';%s*$') ~= nil
  local f, err = M.compile(src, env)
  if not f then
    out:write(err == 'incomplete' and 'error: incomplete input' or ('error: ' .. err), '\n')
    return false
  end
  local ok, r = execute(f)
  if not ok then
    out:write('error: ', tostring(r[2]), '\n')
    return false
  end
  if r.n > 1 then env._ = r[2] end
  if not silent and r.n > 1 then
    local parts = {}
    for k = 2, r.n do parts[#parts + 1] = show(r[k]) end
    out:write(table.concat(parts, '\t'), '\n')
  end
  return true
end

function M.new_env()
  local env = setmetatable({}, { __index = _G })
  env.ms = env.ms or rawget(_G, 'ms') or require 'moonstep'
  return env
end

function M.run()
  local read, close = make_reader()
  local env = M.new_env()
  C.ms_sigint_install()
  io.write(('moonstep %s (LuaJIT) -- `ms` is loaded; Ctrl-D quits, Ctrl-C interrupts\n')
           :format(require('moonstep').version))
  while true do
    C.ms_interrupt_clear()
    local line = read('> ')
    if line == nil then io.write('\n'); break end
    local src = line
    -- continue until the chunk is complete; Ctrl-C drops the pending lines (the line
    -- typed after it starts a new chunk), Ctrl-D drops the chunk
    while src:match('%S') do
      local f, err = M.compile(src, env)
      if f or err ~= 'incomplete' then break end
      C.ms_interrupt_clear()
      local more = read('>> ')
      if more == nil then src = ''; io.write('\n'); break end
      if C.ms_interrupt_pending() ~= 0 then
        C.ms_interrupt_clear()
        src = more
      else
        src = src .. '\n' .. more
      end
    end
    if src:match('%S') then M.eval(src, env) end
  end
  close()
  C.ms_sigint_uninstall()
end

return M
