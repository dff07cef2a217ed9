-- moonstep.repl_complete — tab completion for the REPL (Torch7's trepl had it).
--
--   complete(word, env) -> list     the completions of `word`, the text before the cursor
--                                   back to a break character: `ms.ma`, `opt:`, `pri`
--   attach(rl, env)                 binds it to GNU readline (rl: the library, through the FFI)
--
-- What completes: globals, the session's variables (top-level locals included) and Lua
-- keywords; after `a.b.` the fields of a table, following the __index chains of
-- metatables (class methods: `opt:` lists Optimizer's, `m:` Module's); after a tensor the
-- Tensor methods; after a string the string functions. `ms.` lists the submodules not yet
-- loaded too (from the files in lua/moonstep/). `:` lists methods (functions) only; a
-- function completes with a `(`.
-- Nothing is evaluated: the path is walked by raw reads and __index *tables*; the only
-- code run is require of a moonstep module when the path goes into one (`ms.optim.`).
-- Inside a string literal readline's file-name completion applies instead.
local ffi = require 'ffi'
local T = require 'moonstep.tensor'

local M = {}

M.KEYWORDS = { 'and', 'break', 'do', 'else', 'elseif', 'end', 'false', 'for', 'function', 'goto',
               'if', 'in', 'local', 'nil', 'not', 'or', 'repeat', 'return', 'then', 'true',
               'until', 'while' }

local function ident(k) return type(k) == 'string' and #k <= 200 and k:match('^[%a_][%w_]*$') ~= nil end

-- Completion runs inside readline's callback, at each Tab: it must stay fast on any
-- table. At most SCAN fields are read per completion (a table of millions of keys lists
-- the first ones found), at most RESULTS names are offered.
M.SCAN, M.RESULTS = 50000, 2000

-- The real metatable (a __metatable field must not show fields that are not there).
local getmt = debug.getmetatable

-- The package directory (…/lua/moonstep/), from this file's own path.
local PKG_DIR = debug.getinfo(1, 'S').source:match('^@(.*[/\\])[^/\\]*$') or './'

-- Modules `ms.<name>` would load: lua/moonstep/<name>.lua and <name>/init.lua, listed
-- once. Scripts (cli) and the REPL's own and tensor's split files are not `ms.` API.
local HIDDEN = { cli = true, init = true, repl = true }
local submodules
function M.submodules()
  if submodules then return submodules end
  submodules = {}
  local p = io.popen("ls -1 '" .. PKG_DIR:gsub("'", "'\\''") .. "' 2>/dev/null")
  local listing = p and p:read('*a') or ''
  if p then p:close() end
  local seen = {}
  for name in listing:gmatch('[^\n]+') do
    local mod = name:match('^([%a_][%w_]*)%.lua$')
    if not mod and name:match('^[%a_][%w_]*$') then
      local f = io.open(PKG_DIR .. name .. '/init.lua')
      if f then f:close(); mod = name end
    end
    if mod and not HIDDEN[mod] and not mod:match('^repl_') and not mod:match('^tensor_')
       and not seen[mod] then
      seen[mod] = true
      submodules[#submodules + 1] = mod
    end
  end
  table.sort(submodules)
  return submodules
end

local function is_submodule(k)
  for _, s in ipairs(M.submodules()) do if s == k then return true end end
  return false
end

local function the_ms() return package.loaded['moonstep'] end

-- v[k] read without side effects: raw reads along the chain of __index tables; an
-- __index function is never called, except ms's for a known submodule (a require).
function M.field(v, k)
  if T.is_tensor(v) then return rawget(T.Tensor, k) end
  if type(v) == 'string' then return rawget(string, k) end
  if type(v) ~= 'table' then return nil end
  local cur = v
  for _ = 1, 16 do
    local r = rawget(cur, k)
    if r ~= nil then return r end
    local mt = getmt(cur)
    if type(mt) ~= 'table' then return nil end
    local idx = rawget(mt, '__index')
    if type(idx) == 'table' then
      cur = idx
    else
      if rawequal(cur, the_ms()) and is_submodule(k) then
        local ok, mod = pcall(require, 'moonstep.' .. k)
        return ok and mod or nil
      end
      return nil
    end
  end
  return nil
end

-- The names under v: its fields along the __index chain (with their values), the Tensor
-- methods for a tensor, string's for a string.
local function fields(v)
  local out, seen, budget = {}, {}, M.SCAN
  local function add(k, x)
    if ident(k) and not seen[k] then seen[k] = true; out[#out + 1] = { k, x } end
  end
  local function add_table(t)
    local k, x = next(t)
    while k ~= nil and budget > 0 do
      budget = budget - 1
      add(k, x)
      k, x = next(t, k)
    end
  end
  if T.is_tensor(v) then
    add_table(T.Tensor)
    add('dtype', 'float32'); add('device', 'cpu')
  elseif type(v) == 'string' then
    add_table(string)
  elseif type(v) == 'table' then
    local cur = v
    for _ = 1, 16 do
      add_table(cur)
      local mt = getmt(cur)
      local idx = type(mt) == 'table' and rawget(mt, '__index')
      if type(idx) ~= 'table' then break end
      cur = idx
    end
    if rawequal(v, the_ms()) then
      for _, s in ipairs(M.submodules()) do add(s, true) end
    end
  end
  return out
end

-- Session variable or global: the environment's own fields first, then _G (raw reads).
local function lookup_root(env, k)
  local v = rawget(env, k)
  if v == nil then v = rawget(_G, k) end
  return v
end

-- What `obj:name(` may call: a function whose first parameter is `self` (a method, not
-- a class's static helper such as Optimizer.define), or a C function (string.upper).
local function method(x)
  if type(x) ~= 'function' then return false end
  local info = debug.getinfo(x, 'S')
  return info.what == 'C' or debug.getlocal(x, 1) == 'self'
end

-- The completions of word (the text before the cursor, back to a break character).
function M.complete(word, env)
  env = type(env) == 'table' and env or _G
  if type(word) ~= 'string' then return {} end
  local path, sep, partial = word:match('^(.-)([%.:])([%w_]*)$')
  local candidates, tensor_or_string = {}, false
  if not path then
    if not word:match('^[%a_]?[%w_]*$') then return {} end
    partial = word
    local seen = {}
    local function add(k, x)
      if ident(k) and not seen[k] then seen[k] = true; candidates[#candidates + 1] = { k, x } end
    end
    for _, kw in ipairs(M.KEYWORDS) do add(kw, 'keyword') end
    local budget = M.SCAN
    for _, t in ipairs { env, _G } do
      local k, x = next(t)
      while k ~= nil and budget > 0 do budget = budget - 1; add(k, x); k, x = next(t, k) end
    end
  else
    -- the path: names joined by '.' (a method call's object is a plain path too)
    if not path:match('^[%a_][%w_]*$') and not path:match('^[%a_][%w_]*[%.%w_]*[%w_]$') then return {} end
    local v
    for name in (path .. '.'):gmatch('([^%.]*)%.') do
      if name == '' then return {} end
      if v == nil then v = lookup_root(env, name) else v = M.field(v, name) end
      if v == nil then return {} end
    end
    candidates = fields(v)
    tensor_or_string = T.is_tensor(v) or type(v) == 'string'
  end
  local out = {}
  local private = partial:sub(1, 1) == '_'
  for _, c in ipairs(candidates) do
    local k, x = c[1], c[2]
    if k:sub(1, #partial) == partial and (private or k:sub(1, 1) ~= '_')
       and (sep ~= ':' or (tensor_or_string and type(x) == 'function') or method(x)) then
      local suffix = (type(x) == 'function') and '(' or ''
      out[#out + 1] = (path and (path .. sep) or '') .. k .. suffix
      if #out >= M.RESULTS then break end
    end
  end
  table.sort(out)
  return out
end

---------------------------------------------------------------------------------------
-- readline binding
---------------------------------------------------------------------------------------
ffi.cdef [[
typedef char *rl_compentry_func_t(const char *, int);
typedef char **rl_completion_func_t(const char *, int, int);
extern rl_completion_func_t *rl_attempted_completion_function;
char **rl_completion_matches(const char *text, rl_compentry_func_t *entry_func);
extern const char *rl_completer_word_break_characters;
extern const char *rl_basic_word_break_characters;
extern const char *rl_completer_quote_characters;
extern int rl_completion_append_character;
extern int rl_attempted_completion_over;
extern char *rl_line_buffer;
extern int rl_point;
typedef char *rl_cpvfunc_t(void);
extern rl_cpvfunc_t *rl_completion_word_break_hook;
extern const char *rl_readline_name;
char *strdup(const char *s);
]]

-- Where words break: not at '.' or ':' (so `ms.ma` and `opt:` are one word), nor at '_'.
M.BREAK = " \t\n\"\\'`@$><=;|&{}()[],+-*/%^#~"
M.FILE_BREAK = " \t\n\"'"

-- Whether the cursor (after prefix) is inside a string literal: an odd number of
-- unescaped quotes of one kind before it.
local function in_string(prefix)
  local quote, i, n = nil, 1, #prefix
  while i <= n do
    local c = prefix:sub(i, i)
    if quote then
      if c == '\\' then i = i + 1 elseif c == quote then quote = nil end
    elseif c == '"' or c == "'" then
      quote = c
    elseif c == '-' and prefix:sub(i + 1, i + 1) == '-' then
      return false                      -- a comment: nothing to complete either way
    end
    i = i + 1
  end
  return quote ~= nil
end
M.in_string = in_string

-- Kept alive for the whole process: readline holds the pointers.
local keep = {}

function M.attach(rl, env)
  keep.breaks = ffi.new('char[?]', #M.BREAK + 1, M.BREAK)
  keep.name = ffi.new('char[?]', 9, 'moonstep')
  keep.quotes = ffi.new('char[?]', 3, '"\'')
  keep.file_breaks = ffi.new('char[?]', #M.FILE_BREAK + 1, M.FILE_BREAK)
  rl.rl_completer_quote_characters = keep.quotes
  rl.rl_completer_word_break_characters = keep.breaks
  rl.rl_basic_word_break_characters = keep.breaks
  rl.rl_readline_name = keep.name
  local list, at = {}, 0
  local function entry(text, state)
    if state == 0 then
      local ok, r = pcall(M.complete, ffi.string(text), env)
      list, at = ok and r or {}, 0
    end
    at = at + 1
    local s = list[at]
    if s == nil then return nil end
    return ffi.C.strdup(s)              -- readline frees it
  end
  local function attempt(text, start)
    rl.rl_completion_append_character = 0
    local ok, inside = pcall(in_string, ffi.string(rl.rl_line_buffer, start))
    if ok and inside then return nil end   -- file names, readline's default
    rl.rl_attempted_completion_over = 1
    return rl.rl_completion_matches(text, keep.entry)
  end
  -- inside a string literal a file name is being typed: '/' and '.' belong to the word
  local function breaks()
    local ok, inside = pcall(in_string, ffi.string(rl.rl_line_buffer, rl.rl_point))
    return ok and inside and keep.file_breaks or keep.breaks
  end
  -- C calls back into Lua here: these must never run as compiled traces
  jit.off(entry); jit.off(attempt); jit.off(breaks)
  keep.breaks_hook = ffi.cast('rl_cpvfunc_t *', breaks)
  rl.rl_completion_word_break_hook = keep.breaks_hook
  keep.entry = ffi.cast('rl_compentry_func_t *', entry)
  keep.attempt = ffi.cast('rl_completion_func_t *', attempt)
  rl.rl_attempted_completion_function = keep.attempt
end

return M
