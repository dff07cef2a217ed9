-- ms.plot.contour — a function of two variables as a filled map with contour lines, with
-- optimizer paths over it (loss landscapes, trajectories on test functions).
--
--   ms.plot.contour{ out = 'rosenbrock.png',          -- .png or .svg (required)
--                    x = {...}, y = {...},            -- grid coordinates, increasing and
--                                                     -- equally spaced (linspace), >= 2 each
--                    z = {{...}, ...},                -- z[i][j] at (x[i], y[j]); nan: no value
--                                                     -- (or a 2-D tensor of #x rows, #y columns)
--                    logz = false,                    -- colours and levels on a log scale
--                    levels = 12,                     -- contour lines: about N levels, a list
--                                                     -- of values, or 0 / false for none
--                    paths = { { label = 'Adam', x = {...}, y = {...} }, ... },
--                    minimum = {x, y},                -- or {x =, y =}: marked with a star;
--                                                     -- label = 'minimum' its legend entry
--                    title =, xlabel =, ylabel =, zlabel =,   -- zlabel: the colour bar's
--                    size = {800, 640} }
--   -> out, or nil and a message when gnuplot is not installed (never an error then).
-- Paths are drawn as lines with small points, each in its own colour, its start marked
-- with a square and its end with a filled circle (one legend entry per path, plus
-- 'start', 'end' and 'minimum'); points outside the grid are clipped, nan and +-inf are
-- gaps. logz: the map is coloured by z on a log10 colour bar and the automatic levels are
-- spaced evenly in log10(z) (Rosenbrock's 0 .. 2500 range); when z has values <= 0 the
-- map shows z - min(z) + d instead, d the smallest positive z - min(z) of the grid (the
-- colour bar says so). Beside out: <stem>.dat (block 0: the grid as x y z shown; then one
-- block per path; then the minimum) and <stem>.gp, which recomputes the contour lines
-- with gnuplot's own contouring (`cd DIR && gnuplot NAME.gp` redraws).
-- Argument errors name 'plot.contour', the field, what was given and what was expected.
local check = require 'moonstep.check'
local gp = require 'moonstep.plot.gnuplot'
local common = require 'moonstep.plot.common'

local FN = 'plot.contour'
local OPTS = { 'out', 'x', 'y', 'z', 'title', 'xlabel', 'ylabel', 'zlabel', 'logz', 'levels',
               'paths', 'minimum', 'size' }
local PATH = { 'label', 'x', 'y' }
-- Path colours that read on the viridis map (dark low values, yellow high ones).
-- (not white: a white sample would vanish from the legend)
local PATH_COLORS = { '#ff2020', '#00e5ff', '#ff9900', '#ff4fd8', '#7cfc00', '#ffd700', '#a0a0ff',
                      '#8b4513' }
local huge, fmt, log10 = math.huge, string.format, math.log10

-- Increasing and equally spaced (what gnuplot's `with image` assumes).
local function grid_axis(name, v)
  v = common.numbers(FN, name, v, 2)
  local step = (v[#v] - v[1]) / (#v - 1)
  for i = 2, #v do
    if not (v[i] > v[i - 1]) then
      check.fail('%s: %s[%d] is %s after %s, expected increasing values', FN, name, i,
                 check.describe(v[i]), check.describe(v[i - 1]))
    end
  end
  for i = 2, #v do
    if math.abs(v[i] - v[i - 1] - step) > 1e-6 * math.abs(step) + 1e-12 * math.abs(v[i]) then
      check.fail('%s: %s is not equally spaced at [%d] (step %s, expected %s), expected a grid such as linspace',
                 FN, name, i, check.describe(v[i] - v[i - 1]), check.describe(step))
    end
  end
  return v
end

local function point(name, v)
  common.table(FN, name, v)
  local px, py = rawget(v, 'x'), rawget(v, 'y')   -- (raw: a module table's __index may raise)
  if px == nil and py == nil then px, py = rawget(v, 1), rawget(v, 2) end
  return check.number(FN, name .. '.x', px), check.number(FN, name .. '.y', py),
         common.text(FN, name .. '.label', rawget(v, 'label'))
end

local function check_path(i, p)
  local where = ('paths[%d]'):format(i)
  local label, x, y = common.xy(FN, where, p, PATH, 'path ' .. i)
  local first, last
  for k = 1, #x do
    if x[k] == x[k] and y[k] == y[k] and math.abs(x[k]) < huge and math.abs(y[k]) < huge then
      first = first or k
      last = k
    end
  end
  return { label = label, x = x, y = y, first = first, last = last }
end

-- levels: nil -> 12, 0 / false -> none, an integer count, or a list of values.
local function check_levels(v)
  if v == nil then return 12 end
  if v == false or v == 0 then return nil end
  if type(v) == 'number' then return check.integer(FN, 'levels', v, 0, 1000) end
  if type(v) == 'table' and not check.is_tensor(v) then return common.numbers(FN, 'levels', v, 1) end
  check.fail('%s: levels is %s, expected a count, a list of values, or false', FN, check.describe(v))
end

local function contour(o)
  common.table(FN, 'options', o)
  check.options(FN, o, OPTS)
  local t = gp.target(FN, o.out)
  local x, y = grid_axis('x', o.x), grid_axis('y', o.y)
  local z = o.z
  if check.is_tensor(z) and z:dim() == 2 then z = z:to('float64', 'cpu'):totable() end   -- [#x, #y]
  z = common.table(FN, 'z', z)
  if #z ~= #x then
    check.fail('%s: z has %d rows, expected %d (z[i][j] at x[i], y[j])', FN, #z, #x)
  end
  local zmin, zmax = huge, -huge
  for i = 1, #x do
    local row = common.numbers(FN, ('z[%d]'):format(i), z[i], 1, true)
    if #row ~= #y then
      check.fail('%s: z[%d] has %d values, expected %d (one per y)', FN, i, #row, #y)
    end
    for j = 1, #y do
      local v = row[j]
      if v == v and math.abs(v) < huge then
        if v < zmin then zmin = v end
        if v > zmax then zmax = v end
      end
    end
  end
  if zmin == huge then check.fail('%s: z has no finite value, expected at least one', FN) end
  local opts = {
    title = common.text(FN, 'title', o.title), xlabel = common.text(FN, 'xlabel', o.xlabel) or 'x',
    ylabel = common.text(FN, 'ylabel', o.ylabel) or 'y',
  }
  local zlabel = common.text(FN, 'zlabel', o.zlabel) or 'z'
  local logz = common.flag(FN, 'logz', o.logz)
  local levels = check_levels(o.levels)
  local w, h = common.size(FN, o.size, 800, 640)
  local paths = {}
  if o.paths ~= nil then
    common.table(FN, 'paths', o.paths)
    for i = 1, #o.paths do paths[i] = check_path(i, o.paths[i]) end
    if next(o.paths) ~= nil and #o.paths == 0 then
      check.fail('%s: paths is a table without a list part, expected a list of {label =, x =, y =}', FN)
    end
  end
  local mx, my, mlabel
  if o.minimum ~= nil then mx, my, mlabel = point('minimum', o.minimum) end

  -- logz with values <= 0: show z - zmin + d, d the smallest positive z - zmin
  local shift = 0
  if logz and zmin <= 0 then
    local d = huge
    for i = 1, #x do
      for j = 1, #y do
        local e = z[i][j] - zmin
        if e > 0 and e < d then d = e end
      end
    end
    if d == huge then d = 1 end
    shift = d - zmin
    zlabel = zlabel .. fmt(' - min + %.3g', d)
  end

  -- the data: block 0 the grid (one scan line per y), then the paths, then the minimum
  local data = { fmt('# grid: x y z shown (z%s)\n', shift ~= 0 and fmt(' + %.17g', shift) or '') }
  for j = 1, #y do
    for i = 1, #x do
      data[#data + 1] = fmt('%s %s %s\n', common.num(x[i]), common.num(y[j]), common.num(z[i][j] + shift))
    end
    data[#data + 1] = '\n'
  end
  data[#data + 1] = '\n'
  for i, p in ipairs(paths) do
    data[#data + 1] = fmt('# path %d: %s\n', i, p.label)
    for k = 1, #p.x do data[#data + 1] = fmt('%s %s\n', common.num(p.x[k]), common.num(p.y[k])) end
    data[#data + 1] = '\n\n'
  end
  local min_index = #paths + 1
  data[#data + 1] = '# minimum\n' .. (mx and fmt('%s %s\n', common.num(mx), common.num(my)) or 'NaN NaN\n')

  local s = common.header(t, w, h, opts)
  s[#s + 1] = fmt('set xrange [%s:%s] noextend', common.num(x[1]), common.num(x[#x]))
  s[#s + 1] = fmt('set yrange [%s:%s] noextend', common.num(y[1]), common.num(y[#y]))
  s[#s + 1] = 'set palette defined (0 "#440154", 1 "#3b528b", 2 "#21918c", 3 "#5ec962", 4 "#fde725")'
  s[#s + 1] = 'set cblabel ' .. gp.quote(zlabel)
  if logz then s[#s + 1] = 'set logscale cb 10' end
  s[#s + 1] = 'set key below horizontal samplen 2'
  s[#s + 1] = 'set rmargin at screen 0.80'   -- room for the colour bar's label
  s[#s + 1] = 'set tics out'
  if levels then   -- contour lines into a datablock, with gnuplot's contouring
    local zexpr = logz and '(log10($3))' or '3'
    local lv
    if type(levels) == 'table' then
      local vals = {}
      for i, v in ipairs(levels) do
        local shown = v + shift
        if logz then shown = shown > 0 and log10(shown) or nil end
        if shown then vals[#vals + 1] = common.num(shown) end
      end
      lv = #vals > 0 and ('discrete ' .. table.concat(vals, ',')) or nil
    else
      lv = 'auto ' .. levels
    end
    if lv then
      s[#s + 1] = 'set contour base'
      s[#s + 1] = 'set cntrparam levels ' .. lv
      s[#s + 1] = 'unset surface'
      s[#s + 1] = 'set table $CONTOURS'
      s[#s + 1] = fmt('splot %s index 0 using 1:2:%s', gp.DATA, zexpr)
      s[#s + 1] = 'unset table'
      s[#s + 1] = 'unset contour'
      s[#s + 1] = 'set surface'
    end
    levels = lv
  end
  local parts = { fmt('%s index 0 using 1:2:3 with image notitle', gp.DATA) }
  if levels then parts[#parts + 1] = '$CONTOURS using 1:2 with lines lw 1 lc rgb "#60ffffff" notitle' end
  for i, p in ipairs(paths) do
    local c = PATH_COLORS[(i - 1) % #PATH_COLORS + 1]
    local src = fmt('%s index %d', gp.DATA, i)
    parts[#parts + 1] = fmt('%s using 1:2 with linespoints lw 2 pt 7 ps 0.35 lc rgb "%s" title %s',
                            src, c, gp.quote(p.label))
    if p.first then
      parts[#parts + 1] = fmt('%s every ::%d::%d using 1:2 with points pt 5 ps 1.6 lc rgb "%s" notitle',
                              src, p.first - 1, p.first - 1, c)
      parts[#parts + 1] = fmt('%s every ::%d::%d using 1:2 with points pt 7 ps 1.8 lc rgb "%s" notitle',
                              src, p.last - 1, p.last - 1, c)
    end
  end
  if #paths > 0 then   -- what the markers mean, once
    parts[#parts + 1] = 'NaN with points pt 4 ps 1.4 lc rgb "black" title "start"'
    parts[#parts + 1] = 'NaN with points pt 6 ps 1.4 lc rgb "black" title "end"'
  end
  if mx then
    -- a black star under a white one: seen on dark and light colours, and in the legend
    parts[#parts + 1] = fmt('%s index %d using 1:2 with points pt 3 ps 3 lw 5 lc rgb "black" title %s',
                            gp.DATA, min_index, gp.quote(mlabel or 'minimum'))
    parts[#parts + 1] = fmt('%s index %d using 1:2 with points pt 3 ps 3 lw 2 lc rgb "#ffffff" notitle',
                            gp.DATA, min_index)
  end
  s[#s + 1] = 'plot ' .. table.concat(parts, ', \\\n     ')
  s[#s + 1] = 'unset output'
  return gp.render(FN, t, table.concat(s, '\n') .. '\n', table.concat(data), { mkdir = true })
end

return contour
