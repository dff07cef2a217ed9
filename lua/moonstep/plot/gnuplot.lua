-- moonstep.plot.gnuplot — the one gnuplot runner every plot shares (ms.plot.lines,
-- ms.plot.contour, schedule:plot, the experiment plots).
--
--   local gp = require 'moonstep.plot.gnuplot'
--   gp.find()                      -> the gnuplot program's path, or nil (looked up on PATH;
--                                     remembered per PATH value)
--   gp.available()                 -> boolean
--   gp.quote(s)                    s as a gnuplot string expression: single-quoted pieces
--                                  (no escapes, no `command` or @macro substitution inside)
--                                  joined by "\047" where s has a quote; control characters
--                                  become spaces (a newline would end the command)
--   gp.shell_quote(s)              a /bin/sh single-quoted word
--   gp.terminal(ext, w, h)         the `set terminal` line for 'png' (pngcairo when this
--                                  gnuplot has it, else gd's png; decided by gnuplot itself
--                                  when the script runs, so a saved .gp stays portable) or 'svg'
--   gp.target(fn, out [, name])    checks an output path (non-empty string, no control
--                                  character, .png or .svg, not a directory) -> {out, dir, base,
--                                  ext, stem}
--   gp.run(script_path [, dir])    runs gnuplot on a script file (inside dir when given),
--                                  stdin from /dev/null -> ok, output (stdout + stderr)
--   gp.render(fn, out, script, data [, opts])
--       writes <stem>.dat (data) and <stem>.gp (script) beside out, runs gnuplot in out's
--       directory (so the .gp reads `<base>.dat` and writes `<base>.png`: `cd DIR &&
--       gnuplot NAME.gp` redraws it after an edit) and returns out. The script refers to
--       the data file and the image through the gnuplot variables named gp.DATA and gp.OUT,
--       which render defines on the script's first lines (never by substituting text: a
--       title that contains a placeholder's name stays a title).
--       gnuplot missing: returns nil, 'gnuplot not found ...' (the .dat and .gp are still
--       written); gnuplot failing (or writing nothing): an error naming fn with gnuplot's
--       own message. opts.mkdir = true creates out's directory first.
local check = require 'moonstep.check'

local M = {}

M.INSTALL_HINT = 'Debian: apt-get install gnuplot-nox, or scripts/install-deps.sh'
M.DATA, M.OUT = 'MS_DATA', 'MS_OUT'   -- gnuplot variables: the .dat file's and the image's names

function M.shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- gnuplot splits a line into commands at ';' with its own quote tracking, and reads ''
-- at the start of a string as an empty string: doubling a quote inside '...' is not safe
-- ("'; system 'x'; '" would end the title). A quote is spelled "\047" (an octal escape in
-- a double-quoted string, which holds no quote, backquote or @) concatenated with '.'.
function M.quote(s)
  s = tostring(s):gsub('%c', ' ')
  if s == '' then return "''" end
  local parts = {}
  for piece, q in s:gmatch("([^']*)('?)") do
    if piece ~= '' then parts[#parts + 1] = "'" .. piece .. "'" end
    if q ~= '' then parts[#parts + 1] = '"\\047"' end
  end
  return table.concat(parts, ' . ')
end

-- A path the shell and gnuplot cannot take for an option: a relative one gets './'.
local function safe_path(p) return p:sub(1, 1) == '/' and p or './' .. p end

-- cmd's exit status (LuaJIT's popen:close() gives a number or true/false) and its output.
local function sh(cmd)
  local p = io.popen(cmd .. ' 2>&1')
  if not p then return false, 'could not start /bin/sh' end
  local out = p:read('*a') or ''
  local ok, _, code = p:close()
  if type(ok) == 'number' then code = ok; ok = (ok == 0) end
  if ok == true then code = 0 end
  return code == 0, out
end
M.sh = sh

local found = {}   -- PATH value -> program path or false

function M.find()
  local path = os.getenv('PATH') or ''
  if found[path] == nil then
    local ok, out = sh('command -v gnuplot')
    local prog = ok and out:match('^%s*(%S[^\n]*)') or nil
    found[path] = prog or false
  end
  return found[path] or nil
end

function M.available() return M.find() ~= nil end

function M.terminal(ext, w, h)
  w, h = w or 800, h or 500
  if ext == 'svg' then
    return ('set terminal svg size %d,%d dynamic background rgb "white" font "sans,11"'):format(w, h)
  end
  return ('if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) { set terminal pngcairo size %d,%d '
          .. 'font "sans,10" } else { set terminal png size %d,%d }'):format(w, h, w, h)
end

function M.target(fn, out, name)
  name = name or 'out'
  if type(out) ~= 'string' or out == '' then
    check.fail('%s: %s is %s, expected a file path ending in .png or .svg', fn, name, check.describe(out))
  end
  if out:find('%c') then   -- a line break would end a gnuplot command; a tab would not survive gp.quote
    check.fail('%s: %s %s contains a control character (line break, tab, NUL...), expected a plain file path',
               fn, name, check.describe(out))
  end
  local ext = out:lower():match('%.(%w+)$')
  if ext ~= 'png' and ext ~= 'svg' then
    check.fail('%s: %s is %s, expected a .png or .svg file name', fn, name, check.describe(out))
  end
  local dir, base = out:match('^(.*)/([^/]*)$')
  if not dir then dir, base = '.', out elseif dir == '' then dir = '/' end
  if base == '' or base:sub(1, 1) == '.' and #base == #ext + 1 then
    check.fail('%s: %s is %s, expected a file name such as plot.%s', fn, name, check.describe(out), ext)
  end
  local fd = io.open(out .. '/', 'rb')   -- opens only when out is a directory
  if fd then
    fd:close()
    check.fail('%s: %s %s is a directory, expected the path of an image file to write', fn, name,
               check.describe(out))
  end
  return { out = out, dir = dir, base = base, ext = ext, stem = out:sub(1, #out - #ext - 1),
           base_stem = base:sub(1, #base - #ext - 1) }
end

function M.run(script_path, dir)
  local cmd = M.shell_quote(M.find() or 'gnuplot') .. ' ' .. M.shell_quote(safe_path(script_path))
              .. ' < /dev/null'
  if dir then cmd = 'cd ' .. M.shell_quote(safe_path(dir)) .. ' && ' .. cmd end
  return sh(cmd)
end

-- true, or false and the system's reason (no such directory, permission, name too long...).
local function write(name, text)
  local fd, err = io.open(name, 'wb')
  if not fd then return false, (tostring(err):gsub('^.-: ([^:]+)$', '%1')) end
  local ok, werr = fd:write(text)
  local closed, cerr = fd:close()
  if ok == nil or not closed then return false, tostring(werr or cerr) end
  return true
end

-- The size of the file at path (0 when absent).
local function file_size(path)
  local fd = io.open(path, 'rb')
  if not fd then return 0 end
  local size = fd:seek('end') or 0
  fd:close()
  return size
end

-- gnuplot's message without its echo of the script line: the lines that say what failed.
local function message(out)
  out = (out or ''):gsub('%s+$', '')
  if out == '' then return 'no output file' end
  local lines = {}
  for line in out:gmatch('[^\n]+') do
    if line:match('%S') and not line:match('^%s*%^%s*$') then lines[#lines + 1] = line end
  end
  if #lines > 6 then lines = { unpack(lines, #lines - 5) } end
  return table.concat(lines, ' | ')
end

function M.render(fn, out, script, data, opts)
  local t = type(out) == 'table' and out or M.target(fn, out)
  opts = opts or {}
  if opts.mkdir and t.dir ~= '.' then
    local ok, msg = sh('mkdir -p ' .. M.shell_quote(safe_path(t.dir)))
    if not ok then
      check.fail('%s: could not create the directory %s for %s: %s', fn, check.describe(t.dir),
                 check.describe(t.out), (msg:gsub('%s+$', ''):gsub('^mkdir: ', '')))
    end
  end
  local dat, gp = t.stem .. '.dat', t.stem .. '.gp'
  local text = ('# a moonstep figure; redraw: cd to this directory, then gnuplot %s\n%s = %s\n%s = %s\n')
    :format(t.base_stem .. '.gp', M.DATA, M.quote(t.base_stem .. '.dat'), M.OUT, M.quote(t.base))
    .. script
  for _, f in ipairs { { dat, data }, { gp, text } } do
    local ok, why = write(f[1], f[2])
    if not ok then
      check.fail('%s: could not write %s beside %s: %s (does the directory exist and is it writable?)',
                 fn, check.describe(f[1]), check.describe(t.out), why)
    end
  end
  if not M.available() then
    return nil, ('gnuplot not found (%s); the data and the script are in %s and %s')
      :format(M.INSTALL_HINT, dat, gp)
  end
  os.remove(t.out)
  local ok, output = M.run(t.base_stem .. '.gp', t.dir)
  if ok and file_size(t.out) == 0 then ok = false end   -- some failures only print a warning
  if not ok then
    check.fail('%s: gnuplot failed writing %s: %s', fn, check.describe(t.out), message(output))
  end
  return t.out
end

return M
