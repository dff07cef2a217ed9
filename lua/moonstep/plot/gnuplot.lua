-- moonstep.plot.gnuplot — the one gnuplot runner every plot shares (ms.plot.lines,
-- ms.plot.contour, schedule:plot, the experiment plots).
--
--   local gp = require 'moonstep.plot.gnuplot'
--   gp.find()                      -> the gnuplot program's path, or nil (looked up on PATH;
--                                     remembered per PATH value)
--   gp.available()                 -> boolean
--   gp.quote(s)                    a gnuplot single-quoted string ('' stands for ')
--   gp.shell_quote(s)              a /bin/sh single-quoted word
--   gp.terminal(ext, w, h)         the `set terminal` line for 'png' (pngcairo when this
--                                  gnuplot has it, else gd's png; decided by gnuplot itself
--                                  when the script runs, so a saved .gp stays portable) or 'svg'
--   gp.target(fn, out [, name])    checks an output path (non-empty string, no line break
--                                  or NUL, .png or .svg) -> {out, dir, base, ext, stem}
--   gp.run(script_path [, dir])    runs gnuplot on a script file (inside dir when given),
--                                  stdin from /dev/null -> ok, output (stdout + stderr)
--   gp.render(fn, out, script, data [, opts])
--       writes <stem>.dat (data) and <stem>.gp (script) beside out, runs gnuplot in out's
--       directory (so the .gp reads `<base>.dat` and writes `<base>.png`: `cd DIR &&
--       gnuplot NAME.gp` redraws it after an edit) and returns out. The script refers to
--       the data file and the image through gp.DATA and gp.OUT placeholders.
--       gnuplot missing: returns nil, 'gnuplot not found ...' (the .dat and .gp are still
--       written); gnuplot failing (or writing nothing): an error naming fn with gnuplot's
--       own message. opts.mkdir = true creates out's directory first.
local check = require 'moonstep.check'

local M = {}

M.INSTALL_HINT = 'Debian: apt-get install gnuplot-nox, or scripts/install-deps.sh'
M.DATA, M.OUT = '@DATA@', '@OUT@'

function M.shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
function M.quote(s) return "'" .. s:gsub("'", "''") .. "'" end

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
  if out:find('[\n\r%z]') then
    check.fail('%s: %s %s contains a line break or NUL, expected a plain file path', fn, name, check.describe(out))
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
  return { out = out, dir = dir, base = base, ext = ext, stem = out:sub(1, #out - #ext - 1),
           base_stem = base:sub(1, #base - #ext - 1) }
end

function M.run(script_path, dir)
  local cmd = M.shell_quote(M.find() or 'gnuplot') .. ' ' .. M.shell_quote(script_path) .. ' < /dev/null'
  if dir then cmd = 'cd ' .. M.shell_quote(dir) .. ' && ' .. cmd end
  return sh(cmd)
end

local function write(name, text)
  local fd = io.open(name, 'wb')
  if not fd then return false end
  local ok = fd:write(text)
  return fd:close() and ok ~= nil
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
  if opts.mkdir and t.dir ~= '.' then sh('mkdir -p ' .. M.shell_quote(t.dir)) end
  local dat, gp = t.stem .. '.dat', t.stem .. '.gp'
  local text = script:gsub('@DATA@', function() return M.quote(t.base_stem .. '.dat') end)
                     :gsub('@OUT@', function() return M.quote(t.base) end)
  if not (write(dat, data) and write(gp, text)) then
    check.fail('%s: could not write %s and %s (does the directory exist and is it writable?)',
               fn, check.describe(dat), check.describe(gp))
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
