-- ms.plot.lines — line plots with optional bands (loss or accuracy curves, one line per
-- optimizer, a band over seeds).
--
--   ms.plot.lines{ out = 'results/loss.png',        -- .png or .svg (required)
--                  series = { { label = 'Adam', x = {...}, y = {...},
--                               lo = {...}, hi = {...} }, ... },   -- lo/hi: optional band
--                  title =, xlabel =, ylabel =,     -- optional text
--                  logx = false, logy = false,      -- log10 axes
--                  size = {800, 500},               -- pixels
--                  legend = 'outside' }             -- 'outside' (right of the plot, never
--                                                   -- over the data), 'below', 'inside', 'none'
--   -> out, or nil and a message when gnuplot is not installed (never an error then).
-- Each series is one line in its own colour; lo..hi is filled, translucent, in the same
-- colour under its line (series whose lo and hi are absent get no band). x, y, lo and hi
-- are lists of numbers (or 1-D tensors) of one length; nan and +-inf are missing points
-- (a gap in the line), and so are values <= 0 on a log axis; lo > hi is an error. Bands are
-- drawn first, lines over them. Beside out the plot leaves
-- <out-without-extension>.dat (one block per series: x y lo hi) and .gp (the gnuplot
-- script, which reads the .dat from its own directory: `cd DIR && gnuplot NAME.gp`).
-- Argument errors name 'plot.lines', the field, what was given and what was expected.
local check = require 'moonstep.check'
local gp = require 'moonstep.plot.gnuplot'
local common = require 'moonstep.plot.common'

local FN = 'plot.lines'
local OPTS = { 'out', 'series', 'title', 'xlabel', 'ylabel', 'logx', 'logy', 'size', 'legend' }
local SERIES = { 'label', 'x', 'y', 'lo', 'hi' }
local LEGEND = {
  outside = 'set key outside right top vertical Left reverse samplen 2 width 2',
  below = 'set key below horizontal',
  inside = 'set key inside top right opaque box',
  none = 'unset key',
}

local function check_series(i, s)
  local where = ('series[%d]'):format(i)
  local label, x, y = common.xy(FN, where, s, SERIES, 'series ' .. i)
  local lo, hi
  if s.lo ~= nil or s.hi ~= nil then
    if s.lo == nil or s.hi == nil then
      check.fail('%s: %s has %s but not %s, expected both (the band lo..hi) or neither', FN, where,
                 s.lo ~= nil and 'lo' or 'hi', s.lo ~= nil and 'hi' or 'lo')
    end
    lo = common.numbers(FN, where .. '.lo', s.lo, 1, true)
    hi = common.numbers(FN, where .. '.hi', s.hi, 1, true)
    for name, v in pairs { lo = lo, hi = hi } do
      if #v ~= #x then
        check.fail('%s: %s.%s has %d values, expected %d (as many as x)', FN, where, name, #v, #x)
      end
    end
    for k = 1, #x do   -- nan is a gap; a reversed band is a caller's mistake (lo, hi swapped)
      if lo[k] > hi[k] then
        check.fail('%s: %s.lo[%d] is %s, above %s.hi[%d] = %s, expected lo <= hi', FN, where, k,
                   check.describe(lo[k]), where, k, check.describe(hi[k]))
      end
    end
  end
  return { label = label, x = x, y = y, lo = lo, hi = hi }
end

-- A value for the .dat file: missing when not finite, or not positive on a log axis.
local function value(v, log)
  if log and not (v > 0) then return 'NaN' end
  return common.num(v)
end

local function lines(o)
  common.table(FN, 'options', o)
  check.options(FN, o, OPTS)
  local t = gp.target(FN, o.out)
  local series = common.table(FN, 'series', o.series)
  if #series == 0 then
    check.fail('%s: series is %s, expected a list of one or more {label =, x =, y =} tables', FN,
               next(series) == nil and 'an empty table' or 'a table without a list part')
  end
  local opts = {
    title = common.text(FN, 'title', o.title), xlabel = common.text(FN, 'xlabel', o.xlabel),
    ylabel = common.text(FN, 'ylabel', o.ylabel),
  }
  local logx, logy = common.flag(FN, 'logx', o.logx), common.flag(FN, 'logy', o.logy)
  local w, h = common.size(FN, o.size, 800, 500)
  local legend = o.legend == nil and 'outside' or check.oneof(FN, 'legend', o.legend,
                                                              { 'outside', 'below', 'inside', 'none' })
  local list = {}
  for i = 1, #series do list[i] = check_series(i, series[i]) end

  -- the data: one block (gnuplot's `index`) per series
  local data, drawn = {}, 0
  for i, s in ipairs(list) do
    data[#data + 1] = ('# series %d: %s\n# x y lo hi\n'):format(i, s.label)
    local finite = 0
    for k = 1, #s.x do
      local xv, yv = value(s.x[k], logx), value(s.y[k], logy)
      if xv ~= 'NaN' and yv ~= 'NaN' then finite = finite + 1 end
      data[#data + 1] = ('%s %s %s %s\n'):format(xv, yv, s.lo and value(s.lo[k], logy) or 'NaN',
                                                  s.hi and value(s.hi[k], logy) or 'NaN')
    end
    data[#data + 1] = '\n\n'
    s.finite = finite
    drawn = drawn + finite
  end
  if drawn == 0 then
    check.fail('%s: no series has a point with finite x and y%s, expected at least one to draw', FN,
               (logx or logy) and ' (> 0 on the log axes)' or '')
  end

  local script = common.header(t, w, h, opts)
  script[#script + 1] = 'set grid lc rgb "#dddddd"'
  script[#script + 1] = LEGEND[legend]
  if logx then script[#script + 1] = 'set logscale x 10' end
  if logy then script[#script + 1] = 'set logscale y 10' end
  script[#script + 1] = 'set style fill transparent solid 0.2 noborder'
  -- every band first, then every line: no band is painted over another series' line
  local parts = {}
  for i, s in ipairs(list) do
    local color = common.COLORS[(i - 1) % #common.COLORS + 1]
    local src = ('%s index %d'):format(gp.DATA, i - 1)
    if s.lo then
      parts[#parts + 1] = ('%s using 1:3:4 with filledcurves lc rgb "%s" notitle'):format(src, color)
    end
  end
  for i, s in ipairs(list) do
    local color = common.COLORS[(i - 1) % #common.COLORS + 1]
    local src = ('%s index %d'):format(gp.DATA, i - 1)
    if s.finite > 0 then
      local style = s.finite > 1 and 'lines lw 2' or 'points pt 7 ps 1'
      parts[#parts + 1] = ('%s using 1:2 with %s lc rgb "%s" title %s'):format(src, style, color,
                                                                               gp.quote(s.label))
    end
  end
  script[#script + 1] = 'plot ' .. table.concat(parts, ', \\\n     ')
  script[#script + 1] = 'unset output'
  return gp.render(FN, t, table.concat(script, '\n') .. '\n', table.concat(data), { mkdir = true })
end

return lines
