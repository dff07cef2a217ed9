-- schedule.plot — draw a schedule's curve with gnuplot (Debian gnuplot-nox).
--
--   schedule.plot(s, path [, {steps = N, title = 'lr'}])   s: a schedule or a function of t
--   s:plot(path [, opts])                                  the same, as a method
-- Plots s(t) for t = 1 .. steps (default: the schedule's natural length, e.g. T_max + 1,
-- total_steps, tau spe; 100 for a plain function). The format follows the extension:
-- .png (pngcairo, or gd's png) or .svg. The data and the gnuplot script go to temporary
-- files; gnuplot runs through moonstep.plot.gnuplot (the runner ms.plot shares) with the
-- path single-quoted for the shell and escaped for gnuplot, so no path or title is ever
-- interpreted. Returns path.
-- Errors: gnuplot not installed (scripts/install-deps.sh installs it), a bad option, a
-- non-finite value of s, gnuplot failing (its message is included).
local check = require 'moonstep.check'
local Schedule = require 'moonstep.schedule.base'
local gp = require 'moonstep.plot.gnuplot'   -- the runner ms.plot shares

local M = {}
local OPTS = { 'steps', 'title' }

local gp_quote = gp.quote

function M.have_gnuplot() return gp.available() end

function M.plot(s, path, opts, fn)
  fn = fn or 'schedule.plot'
  Schedule.callable(fn, 'schedule', s)
  check.path(fn, path)
  if path:find('%c') then
    check.fail('%s: path %s contains a control character, expected a plain file path', fn, check.describe(path))
  end
  local ext = path:lower():match('%.(%w+)$')
  if ext ~= 'png' and ext ~= 'svg' then
    check.fail('%s: path %s, expected a .png or .svg file name', fn, check.describe(path))
  end
  opts = check.options(fn, opts, OPTS)
  local steps = opts.steps
  if steps == nil then steps = Schedule.is(s) and s:_span() or 100 end
  steps = check.integer(fn, 'steps', steps, 1, 1e7)
  local title = opts.title
  if title == nil then title = Schedule.is(s) and s.__name or 'schedule' end
  if type(title) ~= 'string' then
    check.fail('%s: title is %s, expected a string', fn, check.describe(title))
  end
  title = title:gsub('[%c]', ' ')
  if not gp.available() then
    check.fail('%s: gnuplot is not installed (%s)', fn, gp.INSTALL_HINT)
  end

  local lines = {}
  for t = 1, steps do
    local v = s(t)
    if type(v) ~= 'number' or v ~= v or v == math.huge or v == -math.huge then
      check.fail('%s: the schedule\'s value at t = %d is %s, expected a finite number',
                 fn, t, check.describe(v))
    end
    lines[t] = string.format('%d %.17g\n', t, v)
  end
  local term = gp.terminal(ext, 800, 480)

  local data, script = os.tmpname(), os.tmpname()
  local function write(name, text)
    local fd = io.open(name, 'w')
    if not fd then return false end
    local ok = fd:write(text)
    fd:close()
    return ok ~= nil
  end
  local ok = write(data, table.concat(lines))
    and write(script, table.concat({ term, '\n',
      'set output ', gp_quote(path), '\n',
      'set title ', gp_quote(title), ' noenhanced\n',
      'set xlabel "step t"\nset ylabel "value"\nset grid\nunset key\n',
      'plot ', gp_quote(data), ' using 1:2 with lines linewidth 2\n',
      'unset output\n' }))
  local gp_ok, out = false, 'could not write its temporary files'
  if ok then gp_ok, out = gp.run(script) end
  os.remove(data); os.remove(script)
  if gp_ok then             -- gnuplot reports some failures only on stderr
    local fd = io.open(path, 'rb')
    local size = fd and fd:seek('end') or 0
    if fd then fd:close() end
    if size == 0 then gp_ok = false end
  end
  if not gp_ok then
    check.fail('%s: gnuplot failed writing %s: %s', fn, check.describe(path),
               out:match('%S') and (out:gsub('%s+$', '')) or 'no output file')
  end
  return path
end

return M
