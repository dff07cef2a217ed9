-- ms.progress: the bar on a terminal (percentage, ETA, rate, fields; throttled redraws
-- that cover the previous line; finish clears it), quiet off a terminal, with
-- MOONSTEP_QUIET=1 or quiet = true; misuse errors.
local ms = require 'moonstep'
local H = require 'helper'
local have_script = os.execute('command -v script >/dev/null 2>&1') == 0

-- Run a chunk under script(1) (stderr is a terminal there); returns what it wrote.
local function on_tty(chunk, env)
  local f = os.tmpname()
  local h = io.open(f, 'w'); h:write(chunk); h:close()
  local out = H.sh(('%s script -qec "bin/moonstep %s" /dev/null'):format(env or '', f))
  os.remove(f)
  return (out:gsub('\r\n', '\n'))
end

describe('ms.progress', function()
  it('is quiet when stderr is not a terminal (as here) and counts anyway', function()
    local bar = ms.progress(10, { label = 'work' })
    assert.is_true(bar.quiet)
    bar:update(4, { loss = 0.5 })
    assert.equal('progress 4/10 (work)', tostring(bar))
    assert.is_number(bar:finish())
    assert.equal('progress 0/?', tostring(ms.progress()))
  end)

  it('draws percentage, count, rate, ETA and fields on a terminal, throttled, and finish clears', function()
    if not have_script then pending('util-linux script(1) is not installed'); return end
    local out = on_tty([[
      local bar = ms.progress(1000, { label = 'job', unit = 'img' })
      for i = 1, 1000 do bar:update(i, { loss = 1 / i, e = 2 }) end
      bar:finish()
      io.stderr:write('END\n')
    ]])
    local segs = {}
    for seg in out:gmatch('\r([^\r]*)') do segs[#segs + 1] = seg end
    -- 1000 updates in well under a second: a redraw each 5% (and the first), not 1000
    assert.truthy(#segs >= 5 and #segs <= 23, ('%d redraws: %q'):format(#segs, out))
    assert.truthy(segs[1]:match('^job %[>%s+%]   0%%  1/1000  [%d.]+ img/s  ETA [%d:]+  e 2  loss 1$'), segs[1])
    assert.equal('END\n', segs[#segs])
    local last = segs[#segs - 2]                                -- before the clearing blanks
    assert.truthy(last:match('^job %[====================%] 100%%  1000/1000  [%d.]+ img/s  e 2  loss 0.001 *$'), last)
    local widest = 0
    for i = 1, #segs - 2 do
      assert.truthy(#segs[i] >= widest, 'a redraw narrower than the line before it')
      widest = math.max(widest, #segs[i])
    end
    -- finish: blanks over the widest line, then the cursor back at the start
    assert.truthy(out:find('\r' .. (' '):rep(widest) .. '\rEND\n', 1, true), out)
  end)

  it('is quiet with MOONSTEP_QUIET=1 or quiet = true, also on a terminal', function()
    if not have_script then pending('util-linux script(1) is not installed'); return end
    local chunk = [[
      local bar = ms.progress(10, { quiet = QUIET })
      for i = 1, 10 do bar:update(i) end
      bar:finish()
      io.stderr:write('END\n')
    ]]
    assert.equal('END\n', on_tty(chunk:gsub('QUIET', 'nil'), 'MOONSTEP_QUIET=1'))
    assert.equal('END\n', on_tty((chunk:gsub('QUIET', 'true'))))
    assert.truthy(on_tty((chunk:gsub('QUIET', 'false'))):find('\r', 1, true))
  end)

  it('refuses misuse, naming the function', function()
    H.assert_error(function() ms.progress(-1) end, 'progress', 'total is -1')
    H.assert_error(function() ms.progress(5, { lable = 'x' }) end, 'progress', 'unknown option "lable"')
    H.assert_error(function() ms.progress(5, { quiet = 1 }) end, 'progress', 'quiet is 1')
    H.assert_error(function() ms.progress(5, { label = 3 }) end, 'progress', 'label is 3')
    local bar = ms.progress(5)
    H.assert_error(function() bar:update('x') end, 'Progress.update', 'done is "x"')
    H.assert_error(function() bar:update(1, 5) end, 'Progress.update', 'fields is 5')
    H.assert_error(function() bar.update(3) end, 'Progress.update', 'called on 3')
  end)
end)
