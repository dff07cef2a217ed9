-- ms.plot against hostile input: titles, labels and paths with quotes, semicolons, gnuplot's
-- @-placeholders, backslashes, '%', newlines, non-ASCII or a leading '-' never break the
-- script nor run a command; an out that is a directory is refused; bands are drawn under
-- every line; a band with lo > hi is refused.
local ms = require 'moonstep'
local H = require 'helper'
local gp = require 'moonstep.plot.gnuplot'

local have = gp.available()
local pit = H.gate(it, pending, have, 'gnuplot is not installed')
local read, exists = H.try_read, H.exists

-- Each writes a marker file if gnuplot ever ran it as a command.
local MARK = os.tmpname()
os.remove(MARK)
local HOSTILE = {
  '"; system "touch ' .. MARK .. '',
  "'; system 'touch " .. MARK .. "'; '",
  "'",
  "''",
  "it's",
  "x' . system('touch " .. MARK .. "') . 'y",
  '`touch ' .. MARK .. '`',
  '@OUT@',
  "@DATA@' ; system('touch " .. MARK .. "'); '",
  '@GPVAL_TERM @ARG0',
  'back\\slash \\n \\047 %d %s %%',
  'new\nline; system "touch ' .. MARK .. '"',
  'tab\tcr\r end',
  'non-ASCII: Adam — η = 10⁻³, ü, 中文',
  '# not a comment ; ; ;',
  '$x ${y} $(touch ' .. MARK .. ')',
}

describe('ms.plot with hostile text', function()
  local dir
  before_each(function()
    dir = os.tmpname(); os.remove(dir)
    H.sh('mkdir -p ' .. H.quote(dir))
    os.remove(MARK)
  end)
  after_each(function()
    H.sh('rm -rf ' .. H.quote(dir))
    os.remove(MARK)
  end)

  pit('gp.quote gives back every string as gnuplot reads it (control characters as spaces)', function()
    local lines = {}
    for i, s in ipairs(HOSTILE) do lines[i] = 'print ' .. gp.quote(s) end
    local script = dir .. '/q.gp'
    local fd = assert(io.open(script, 'wb'))
    fd:write(table.concat(lines, '\n'), '\n')
    fd:close()
    local ok, out = gp.run(script)
    assert.is_true(ok, out)
    local got = {}
    for line in (out .. '\n'):gmatch('([^\n]*)\n') do got[#got + 1] = line end
    for i, s in ipairs(HOSTILE) do assert.are.equal((s:gsub('%c', ' ')), got[i]) end
    assert.is_false(exists(MARK))
  end)

  pit('plot.lines: every hostile title, axis label and series label is drawn, no command runs', function()
    for i, s in ipairs(HOSTILE) do
      local out = ('%s/l%d.svg'):format(dir, i)
      local r = ms.plot.lines { out = out, title = s, xlabel = s, ylabel = s,
                                series = { { label = s, x = { 1, 2, 3 }, y = { 3, 1, 2 }, lo = { 2, 0, 1 }, hi = { 4, 2, 3 } },
                                           { label = s .. ' 2', x = { 1, 2 }, y = { 1, 1 } } } }
      assert.are.equal(out, r, s)
      assert.truthy(read(out):find('<svg', 1, true), s)
      assert.is_false(exists(MARK), s)
    end
    -- the text itself reaches the figure (XML-escaped in the SVG)
    ms.plot.lines { out = dir .. '/t.svg', title = 'Adam — η = 10⁻³ 100%',
                    series = { { label = 'lr 1e-3', x = { 1, 2 }, y = { 1, 2 } } } }
    assert.truthy(read(dir .. '/t.svg'):find('Adam — η = 10⁻³ 100%', 1, true))
  end)

  pit('plot.contour: hostile title, labels, path labels and minimum label, no command runs', function()
    for i, s in ipairs(HOSTILE) do
      local out = ('%s/c%d.png'):format(dir, i)
      local r = ms.plot.contour { out = out, title = s, xlabel = s, ylabel = s, zlabel = s,
                                  x = { 0, 1, 2 }, y = { 0, 1 }, z = { { 1, 2 }, { 3, 4 }, { 5, 6 } },
                                  paths = { { label = s, x = { 0, 1 }, y = { 0, 1 } } },
                                  minimum = { 0, 0, label = s } }
      assert.are.equal(out, r, s)
      assert.are.equal('\137PNG', read(out):sub(1, 4))
      assert.is_false(exists(MARK), s)
    end
  end)

  pit('takes out paths with quotes, spaces, $, % and a leading - (relative ones too)', function()
    for _, name in ipairs { '-e.png', "-it's $(x) %d.svg", '--help.png', 'a b/-v.png' } do
      local out = dir .. '/' .. name
      assert.are.equal(out, ms.plot.lines { out = out, series = { { x = { 1, 2 }, y = { 1, 2 } } } }, name)
      assert.truthy(#read(out) > 100, name)
    end
    local cwd = H.sh('pwd'):gsub('%s+$', '')
    assert.truthy(cwd ~= '')
    -- a relative out: through a child so that its working directory is ours to choose
    local lib = os.getenv('MOONSTEP_LIB') or 'build/libmoonstep.so'
    if lib:sub(1, 1) ~= '/' then lib = cwd .. '/' .. lib end
    local res = H.sh_rc(('cd %s && MOONSTEP_HOME=%s MOONSTEP_LIB=%s LUA_PATH=%s luajit -e %s'):format(
      H.quote(dir), H.quote(cwd), H.quote(lib), H.quote(cwd .. '/lua/?.lua;' .. cwd .. '/lua/?/init.lua;;'),
      H.quote("print(require('moonstep').plot.lines{ out = '-x.png', series = {{ x = {1, 2}, y = {1, 2} }} })")))
    assert.truthy(res:find('-x.png\nrc=0', 1, true), res)
    assert.truthy(exists(dir .. '/-x.png'))
  end)

  pit('schedule:plot (on the shared runner) takes the same hostile titles and paths', function()
    local sch = ms.schedule.cosine { T_max = 20 }
    for i, s in ipairs(HOSTILE) do
      local out = ('%s/-%d %s.png'):format(dir, i, "it's")
      assert.are.equal(out, sch:plot(out, { title = s, steps = 20 }), s)
      assert.are.equal('\137PNG', read(out):sub(1, 4))
      assert.is_false(exists(MARK), s)
    end
  end)

  it('refuses an out with a control character (a tab too: gnuplot would be told another name)', function()
    for _, name in ipairs { 'a\tb.png', 'a\nb.png', 'a\0b.png', 'a\27[31mb.svg' } do
      local ok, err = pcall(ms.plot.lines, { out = dir .. '/' .. name, series = { { x = { 1 }, y = { 1 } } } })
      assert.is_false(ok)
      assert.truthy(tostring(err):find('plot.lines: out ', 1, true), err)
      assert.truthy(tostring(err):find('control character', 1, true), err)
    end
    assert.are.same('', (H.sh('ls -A ' .. H.quote(dir)):gsub('%s+$', '')))
  end)

  it('refuses an out that is a directory, leaving it alone', function()
    H.sh('mkdir -p ' .. H.quote(dir .. '/fig.png'))
    local ok, err = pcall(ms.plot.lines, { out = dir .. '/fig.png', series = { { x = { 1 }, y = { 1 } } } })
    assert.is_false(ok)
    assert.truthy(tostring(err):find('plot.lines: out ', 1, true), err)
    assert.truthy(tostring(err):find('is a directory', 1, true), err)
    assert.truthy(H.sh('test -d ' .. H.quote(dir .. '/fig.png') .. ' && echo dir'):find('dir'))
  end)

  it('says clearly when out\'s directory cannot be created or written', function()
    local ok, err = pcall(ms.plot.lines, { out = '/proc/no/such/x.png', series = { { x = { 1 }, y = { 1 } } } })
    assert.is_false(ok)
    assert.truthy(tostring(err):find('^[^\n]*plot.lines: ', 1, false), err)
    assert.truthy(tostring(err):find('/proc/no/such', 1, true), err)
  end)

  pit('draws every band before any line (no band covers another series\' line)', function()
    local s = {}
    for i = 1, 3 do s[i] = { label = 'r' .. i, x = { 1, 2, 3 }, y = { i, i, i }, lo = { i - 1, i - 1, i - 1 }, hi = { i + 1, i + 1, i + 1 } } end
    ms.plot.lines { out = dir .. '/b.png', series = s }
    local gpt = read(dir .. '/b.gp')
    local last_band, first_line = 0, math.huge
    local pos = 1
    for part in gpt:match('plot (.*)'):gmatch('[^\n]+') do
      if part:find('filledcurves', 1, true) then last_band = pos end
      if part:find('with lines', 1, true) and pos < first_line then first_line = pos end
      pos = pos + 1
    end
    assert.is_true(last_band > 0 and last_band < first_line, gpt)
  end)

  pit('contour takes z as a 2-D tensor (rows along x) as well as a table of rows', function()
    local z = ms.tensor({ { 1, 2 }, { 3, 4 }, { 5, 0 / 0 } }, { dtype = 'float64' })
    assert.are.equal(dir .. '/z.png', ms.plot.contour { out = dir .. '/z.png', x = { 0, 1, 2 }, y = { 0, 1 }, z = z })
    assert.truthy(read(dir .. '/z.dat'):find('\n2 1 NaN\n', 1, true))
    local ok, err = pcall(ms.plot.contour, { out = dir .. '/z.png', x = { 0, 1 }, y = { 0, 1 }, z = z })
    assert.is_false(ok)
    assert.truthy(tostring(err):find('plot.contour: z has 3 rows, expected 2', 1, true), err)
  end)

  it('refuses a band with lo > hi, naming the series and the index', function()
    local ok, err = pcall(ms.plot.lines, { out = dir .. '/x.png',
      series = { { x = { 1, 2 }, y = { 1, 2 }, lo = { 0, 3 }, hi = { 2, 2.5 } } } })
    assert.is_false(ok)
    assert.truthy(tostring(err):find('plot.lines: series[1].lo[2] is 3', 1, true), err)
    assert.is_nil(read(dir .. '/x.gp'))
    -- nan in a band is a gap, not an error
    if have then
      assert.are.equal(dir .. '/y.png', ms.plot.lines { out = dir .. '/y.png',
        series = { { x = { 1, 2 }, y = { 1, 2 }, lo = { 0 / 0, 1 }, hi = { 2, 0 / 0 } } } })
    end
  end)
end)
