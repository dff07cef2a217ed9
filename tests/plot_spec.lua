-- ms.plot: lines and contour through gnuplot (files, script content, PNG / SVG signatures),
-- the shared runner (its error message, schedule.plot on it), gnuplot missing (PATH
-- emptied in a child process) and the argument errors.
local ms = require 'moonstep'
local H = require 'helper'
local gp = require 'moonstep.plot.gnuplot'

local have = gp.available()
local pit = H.gate(it, pending, have, 'gnuplot is not installed')
local read = H.try_read

local function curves(n)
  local x, a, lo, hi, b = {}, {}, {}, {}, {}
  for i = 1, n do
    x[i] = i
    a[i] = 2 * math.exp(-i / 10) + 0.1
    lo[i], hi[i] = a[i] * 0.8, a[i] * 1.25
    b[i] = 1 / i + 0.05
  end
  return x, a, lo, hi, b
end

local function rosen_grid(n)
  local x, y, z = {}, {}, {}
  for i = 1, n do x[i] = -2 + 4 * (i - 1) / (n - 1); y[i] = -1 + 4 * (i - 1) / (n - 1) end
  for i = 1, n do
    z[i] = {}
    for j = 1, n do z[i][j] = (1 - x[i]) ^ 2 + 100 * (y[j] - x[i] ^ 2) ^ 2 end
  end
  return x, y, z
end

describe('ms.plot', function()
  local dir
  before_each(function()
    dir = os.tmpname(); os.remove(dir)
    H.sh('mkdir -p ' .. H.quote(dir))
  end)
  after_each(function() H.sh('rm -rf ' .. H.quote(dir)) end)

  it('says whether gnuplot is there', function()
    assert.are.equal(have, ms.plot.available())
    assert.are.equal('boolean', type(ms.plot.available()))
  end)

  pit('draws lines with bands into a PNG, leaving the .dat and .gp beside it', function()
    local x, a, lo, hi, b = curves(40)
    local out = dir .. "/it's a dir/loss $(x).png"    -- created; quotes and $ are not interpreted
    local r = ms.plot.lines { out = out, title = "loss_vs 'step'", xlabel = 'step', ylabel = 'loss',
                              logy = true, size = { 640, 400 },
                              series = { { label = 'Adam', x = x, y = a, lo = lo, hi = hi },
                                         { label = 'SGD_m', x = x, y = b } } }
    assert.are.equal(out, r)
    local png = read(out)
    assert.are.equal('\137PNG\r\n\26\n', png:sub(1, 8))
    assert.is_true(#png > 2000, #png)
    local stem = dir .. "/it's a dir/loss $(x)"
    local gpt, dat = read(stem .. '.gp'), read(stem .. '.dat')
    assert.truthy(gpt and dat)
    -- the files' names are gnuplot variables set on the first lines (never substituted text)
    assert.truthy(gpt:find("\nMS_DATA = 'loss $(x).dat'\n", 1, true), gpt)
    assert.truthy(gpt:find("\nMS_OUT = 'loss $(x).png'\n", 1, true), gpt)
    assert.truthy(gpt:find("set output MS_OUT", 1, true), gpt)
    assert.truthy(gpt:find("MS_DATA index 0 using 1:3:4 with filledcurves", 1, true), gpt)
    assert.truthy(gpt:find("title 'Adam'", 1, true))
    assert.truthy(gpt:find("title 'SGD_m'", 1, true))
    assert.truthy(gpt:find([[set title 'loss_vs ' . "\047" . 'step' . "\047"]], 1, true), gpt)   -- a quote: \047
    assert.truthy(gpt:find('set logscale y 10', 1, true))
    assert.falsy(gpt:find('set logscale x', 1, true))
    assert.truthy(gpt:find('transparent solid', 1, true))
    assert.truthy(gpt:find('size 640,400', 1, true))
    -- one block per series: x y lo hi, the band of series 1, NaN for series 2's
    local blocks = 0
    for _ in dat:gmatch('# series %d') do blocks = blocks + 1 end
    assert.are.equal(2, blocks)
    local row1 = ('\n1 %.17g %.17g %.17g\n'):format(a[1], lo[1], hi[1])
    assert.truthy(dat:find(row1, 1, true), dat:sub(1, 200))
    assert.truthy(dat:find('\n1 1.05 NaN NaN\n', 1, true))
    -- the .gp reruns from its own directory
    os.remove(out)
    local ok = gp.run('loss $(x).gp', dir .. "/it's a dir")
    assert.is_true(ok)
    assert.are.equal('\137PNG', read(out):sub(1, 4))
  end)

  pit('writes SVG by the extension, and gaps for nan and for values <= 0 on a log axis', function()
    local out = dir .. '/l.svg'
    assert.are.equal(out, ms.plot.lines { out = out, logx = true,
      series = { { x = { 0, 1, 2, 3 }, y = { 1, 0 / 0, 2, 3 } } } })
    local svg = read(out)
    assert.truthy(svg:sub(1, 5) == '<?xml' or svg:sub(1, 4) == '<svg', svg:sub(1, 40))
    assert.truthy(svg:find('<svg', 1, true))
    local dat = read(dir .. '/l.dat')
    assert.truthy(dat:find('\nNaN 1 NaN NaN\n', 1, true), dat)      -- x = 0 on a log axis
    assert.truthy(dat:find('\n1 NaN NaN NaN\n', 1, true), dat)      -- y = nan
    assert.truthy(read(dir .. '/l.gp'):find("title 'series 1'", 1, true))
  end)

  pit('draws a contour map with paths, start / end markers and the minimum (PNG and SVG)', function()
    local x, y, z = rosen_grid(41)
    local out = dir .. '/sub/rosen.png'
    assert.are.equal(out, ms.plot.contour { out = out, x = x, y = y, z = z, logz = true, title = 'Rosenbrock',
      minimum = { 1, 1 }, levels = 8,
      paths = { { label = 'Adam', x = { -1.5, -1, 0, 0.5 }, y = { 2, 1.5, 0.5, 0.3 } },
                { label = 'SGD', x = { -1.5, 0 / 0, 1 }, y = { 2, 1, 1 } } } })
    assert.are.equal('\137PNG', read(out):sub(1, 4))
    local gpt = read(dir .. '/sub/rosen.gp')
    assert.truthy(gpt:find("MS_DATA index 0 using 1:2:3 with image", 1, true), gpt)
    assert.truthy(gpt:find('set logscale cb', 1, true))
    assert.truthy(gpt:find('set cntrparam levels auto 8', 1, true))
    assert.truthy(gpt:find('(log10($3))', 1, true))               -- levels even in log z
    assert.truthy(gpt:find("MS_DATA index 1 using 1:2 with linespoints", 1, true))
    assert.truthy(gpt:find("index 1 every ::3::3", 1, true))       -- Adam's end: its 4th point
    assert.truthy(gpt:find("index 2 every ::2::2", 1, true))       -- SGD's end
    assert.truthy(gpt:find("title 'minimum'", 1, true))
    assert.truthy(gpt:find("title 'Adam'", 1, true) and gpt:find("title 'SGD'", 1, true))
    -- z = 0 at (1, 1) on this grid: the map shows z - min + d on the log colour bar
    assert.truthy(gpt:find("set cblabel 'z - min + ", 1, true), gpt)
    local dat = read(dir .. '/sub/rosen.dat')
    assert.truthy(dat:find('# minimum\n1 1\n', 1, true))
    local svg = dir .. '/rosen.svg'
    assert.are.equal(svg, ms.plot.contour { out = svg, x = x, y = y, z = z, levels = { 1, 10, 100 } })
    local s = read(svg)
    assert.truthy(s:sub(1, 5) == '<?xml' or s:sub(1, 4) == '<svg')
    assert.truthy(read(dir .. '/rosen.gp'):find('levels discrete 1,10,100', 1, true))
    assert.falsy(read(dir .. '/rosen.gp'):find('logscale', 1, true))
    ms.plot.contour { out = dir .. '/plain.png', x = x, y = y, z = z, levels = false,
                      minimum = { x = 0, y = 0, label = 'trained weights' } }
    assert.falsy(read(dir .. '/plain.gp'):find('contour', 1, true))
    assert.truthy(read(dir .. '/plain.gp'):find("title 'trained weights'", 1, true))
  end)

  pit('raises gnuplot\'s own message when gnuplot fails', function()
    local err = H.assert_error(function()
      gp.render('plot.lines', dir .. '/bad.png', 'set output ' .. gp.OUT .. '\nplot sin(x) with nosuchstyle\n', '')
    end, 'plot.lines: gnuplot failed writing', 'bad.png', 'unrecognized plot type')
    assert.falsy(err:find('\n', 1, true))
  end)

  it('returns nil and a message when gnuplot is missing (PATH emptied), still writing .dat and .gp', function()
    local luajit = H.sh('command -v luajit'):gsub('%s+$', '')
    local out = dir .. '/none.png'
    local res = H.sh('cd ' .. H.quote(os.getenv('MOONSTEP_HOME') or '.') .. ' && PATH= MOONSTEP_LIB='
      .. H.quote(os.getenv('MOONSTEP_LIB') or '') .. ' ' .. H.quote(luajit)
      .. ' -e "package.path=\'lua/?.lua;lua/?/init.lua;\'..package.path '
      .. 'local ms = require(\'moonstep\') print(ms.plot.available()) '
      .. 'print(ms.plot.lines{out = \'' .. out .. '\', series = {{x = {1, 2}, y = {3, 4}}}}) '
      .. 'print(ms.plot.contour{out = \'' .. dir .. '/c.svg\', x = {0, 1}, y = {0, 1}, z = {{1, 2}, {3, 4}}})"')
    assert.truthy(res:find('^false\n'), res)
    assert.truthy(res:find('nil\tgnuplot not found (Debian: apt-get install gnuplot-nox', 1, true), res)
    assert.truthy(res:find(dir .. '/none.gp', 1, true), res)
    assert.is_nil(read(out))
    assert.truthy(read(dir .. '/none.dat'):find('1 3 NaN NaN', 1, true))
    assert.truthy(read(dir .. '/none.gp'):find('plot ', 1, true))
    assert.truthy(read(dir .. '/c.gp'):find('with image', 1, true))
  end)

  it('refuses bad arguments to plot.lines, naming the field, the value and what it expects', function()
    local s = { { label = 'a', x = { 1, 2 }, y = { 1, 2 } } }
    local L = ms.plot.lines
    H.assert_error(function() L() end, 'plot.lines', 'options is nil', 'expected a table')
    H.assert_error(function() L { series = s } end, 'plot.lines: out is nil', '.png or .svg')
    H.assert_error(function() L { out = dir .. '/x.jpg', series = s } end, 'plot.lines: out is', 'x.jpg', '.png or .svg')
    H.assert_error(function() L { out = dir .. '/x\n.png', series = s } end, 'plot.lines', 'line break')
    H.assert_error(function() L { out = dir .. '/x.png', series = {} } end, 'plot.lines: series is an empty table')
    H.assert_error(function() L { out = dir .. '/x.png', series = s, colour = 1 } end,
                   'plot.lines', 'unknown option "colour"', 'logy')
    H.assert_error(function() L { out = dir .. '/x.png', series = { { x = { 1, 2 }, y = { 1 } } } } end,
                   'plot.lines: series[1].y has 1 values, expected 2')
    H.assert_error(function() L { out = dir .. '/x.png', series = { s[1], { x = { 1, 'a' }, y = { 1, 2 } } } } end,
                   'plot.lines: series[2].x[2] is "a", expected a number')
    H.assert_error(function() L { out = dir .. '/x.png', series = { { x = { 1 }, y = { 1 }, lo = { 0 } } } } end,
                   'plot.lines: series[1] has lo but not hi')
    H.assert_error(function() L { out = dir .. '/x.png', series = { { x = { 1 }, y = { 1 }, z = { 0 } } } } end,
                   'plot.lines series[1]', 'unknown option "z"')
    H.assert_error(function() L { out = dir .. '/x.png', series = s, logy = 1 } end,
                   'plot.lines: logy is 1, expected true or false')
    H.assert_error(function() L { out = dir .. '/x.png', series = s, size = { 10, 400 } } end,
                   'plot.lines: size[1] (width) is 10')
    H.assert_error(function() L { out = dir .. '/x.png', series = s, title = {} } end,
                   'plot.lines: title is a table, expected a string')
    H.assert_error(function() L { out = dir .. '/x.png', series = s, legend = 'left' } end,
                   'plot.lines: legend is "left"', '"outside"')
    H.assert_error(function() L { out = dir .. '/x.png', series = { { x = { 1 }, y = { 0 / 0 } } } } end,
                   'plot.lines: no series has a point with finite x and y')
    assert.is_nil(read(dir .. '/x.png'))
    assert.is_nil(read(dir .. '/x.gp'))          -- nothing written before the checks pass
  end)

  it('refuses bad arguments to plot.contour', function()
    local C = ms.plot.contour
    local x, y, z = { 0, 1, 2 }, { 0, 1 }, { { 1, 2 }, { 3, 4 }, { 5, 6 } }
    local o = dir .. '/c.png'
    H.assert_error(function() C { out = o, x = x, y = y } end, 'plot.contour: z is nil, expected a table')
    H.assert_error(function() C { out = o, x = { 0, 2, 1 }, y = y, z = z } end,
                   'plot.contour: x[3] is 1 after 2, expected increasing values')
    H.assert_error(function() C { out = o, x = { 0, 1, 3 }, y = y, z = z } end,
                   'plot.contour: x is not equally spaced')
    H.assert_error(function() C { out = o, x = { 0 }, y = y, z = z } end, 'plot.contour: x has 1 values, expected at least 2')
    H.assert_error(function() C { out = o, x = x, y = y, z = { { 1, 2 }, { 3, 4 } } } end,
                   'plot.contour: z has 2 rows, expected 3')
    H.assert_error(function() C { out = o, x = x, y = y, z = { { 1, 2 }, { 3 }, { 5, 6 } } } end,
                   'plot.contour: z[2] has 1 values, expected 2')
    H.assert_error(function() C { out = o, x = x, y = y, z = z, levels = 'many' } end,
                   'plot.contour: levels is "many", expected a count')
    H.assert_error(function() C { out = o, x = x, y = y, z = z, paths = { { x = { 1 }, y = { 1, 2 } } } } end,
                   'plot.contour: paths[1].y has 2 values, expected 1')
    H.assert_error(function() C { out = o, x = x, y = y, z = z, paths = 3 } end,
                   'plot.contour: paths is 3, expected a table')
    H.assert_error(function() C { out = o, x = x, y = y, z = z, minimum = { 1 } } end,
                   'plot.contour: minimum.y is nil, expected a finite number')
    H.assert_error(function() C { out = o, x = x, y = y, z = { { 0 / 0, 0 / 0 }, { 0 / 0, 0 / 0 }, { 0 / 0, 0 / 0 } } } end,
                   'plot.contour: z has no finite value')
    H.assert_error(function() C { out = o, x = x, y = y, z = z, logx = true } end,
                   'plot.contour: unknown option "logx"')
    H.assert_error(function() C { out = 'c.pdf', x = x, y = y, z = z } end, 'plot.contour: out is "c.pdf"')
  end)
end)

describe('schedule:plot on the shared runner', function()
  it('uses moonstep.plot.gnuplot', function()
    local src = read((os.getenv('MOONSTEP_HOME') or '.') .. '/lua/moonstep/schedule/plot.lua')
    assert.truthy(src:find("require 'moonstep.plot.gnuplot'", 1, true))
    assert.falsy(src:find('io.popen', 1, true))
  end)
end)
