-- Checkpoints: atomic replacement under concurrent savers and under kill -9, and what
-- a save does to the file it replaces (permissions, non-files). Child processes run
-- bin/moonstep with the same library (MOONSTEP_LIB, and the sanitizer preload if any).
local ms = require 'moonstep'
local H = require 'helper'

local q = H.quote
local sh = H.sh
local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute('mkdir -p ' .. q(d)) == 0)
  return d
end
local function temporaries(dir)
  local found = {}
  for name in sh('ls -a ' .. q(dir)):gmatch('[^\n]+') do
    if name:find('.tmp-', 1, true) then found[#found + 1] = name end
  end
  return found
end
local function moonstep(chunk) return 'bin/moonstep -e ' .. q(chunk) end

describe('checkpoint saving', function()
  it('concurrent savers to one path: always loadable, ends as one complete save, no temporaries', function()
    local dir = tmpdir()
    local path = dir .. '/ck'
    local writers, saves = 4, 25
    -- Each save is self-consistent (id, i, data and tag agree), so a file mixing two
    -- saves, or a torn one, cannot pass the checks below.
    local value = [[local function value(id, i)
        return { id = id, i = i, data = ms.full({ 20000 + id }, id * 1000 + i),
                 tag = string.rep(string.char(64 + id), 5000 * id + i) } end ]]
    local check_value = [[local function consistent(v)
        return type(v) == 'table' and v.data:numel() == 20000 + v.id
          and v.data:min() == v.id * 1000 + v.i and v.data:max() == v.id * 1000 + v.i
          and v.tag == string.rep(string.char(64 + v.id), 5000 * v.id + v.i) end ]]
    local load_value = assert(loadstring('local ms = require "moonstep" ' .. value .. ' return value'))()
    ms.save(path, load_value(0, 0))
    local cmd = {}
    for id = 1, writers do
      cmd[#cmd + 1] = moonstep(value .. ('for i = 1, %d do ms.save(%q, value(%d, i)) end print("writer %d done")'):format(
        saves, path, id, id)) .. ' &'
    end
    -- a reader loads the file over and over while the writers replace it
    cmd[#cmd + 1] = moonstep(check_value .. ([[local bad, n = 0, 0
      for _ = 1, 300 do
        local ok, v = pcall(ms.load, %q)
        n = n + 1
        if not ok or not consistent(v) then bad = bad + 1; print('BAD', ok, v) end
      end
      print(('reader %%d %%d'):format(n, bad))]]):format(path)) .. ' &'
    local out = sh(table.concat(cmd, ' ') .. ' wait')
    local lines = {}
    for line in out:gmatch('[^\n]+') do lines[#lines + 1] = line end
    table.sort(lines)
    assert.same({ 'reader 300 0', 'writer 1 done', 'writer 2 done', 'writer 3 done', 'writer 4 done' }, lines)
    local v = ms.load(path)
    local consistent = assert(loadstring(check_value .. ' return consistent'))()
    assert.is_true(consistent(v))
    assert.equal(saves, v.i)            -- the last rename is some writer's last save
    assert.same({}, temporaries(dir))
    os.execute('rm -rf ' .. q(dir))
  end)

  it('kill -9 during a save leaves the previous checkpoint loadable', function()
    local dir = tmpdir()
    local path, started = dir .. '/ck', dir .. '/started'
    ms.save(path, { gen = 0, w = ms.full({ 1000 }, 0) })
    for round = 1, 5 do
      -- saves a 16 MB tensor over and over; once one save is complete it says so, and is
      -- killed a moment later, mostly in the middle of a save
      local chunk = ([[local big = ms.full({ 4000000 }, %d)
        ms.save(%q, { gen = %d, w = big })
        io.open(%q, 'w'):close()
        while true do ms.save(%q, { gen = %d, w = big }) end]]):format(round, path, round, started, path, round)
      sh(moonstep(chunk) .. (' & pid=$!; for i in $(seq 600); do [ -e %s ] && break; sleep 0.05; done; ' ..
                             'sleep %.2f; kill -9 $pid; wait $pid; rm -f %s'):format(q(started), 0.05 * round, q(started)))
      local ok, v = pcall(ms.load, path)
      assert(ok, tostring(v))
      assert.equal(round, v.gen)        -- the last complete save, never a torn one
      assert.same({ 4000000, round, round }, { v.w:numel(), v.w:min(), v.w:max() })
    end
    -- the kills did land mid-save: the killed savers' temporaries are still there
    assert.is_true(#temporaries(dir) >= 1)
    os.execute('rm -rf ' .. q(dir))
  end)

  it('keeps the permissions of the file it replaces; new files follow the umask', function()
    local dir = tmpdir()
    local path = dir .. '/ck'
    ms.save(path, 1)
    local umask = tonumber(sh('umask'):match('%d+'), 8)
    assert.equal(('%o'):format(bit.band(tonumber('666', 8), bit.bnot(umask))),
                 sh('stat -c %a ' .. q(path)):match('%d+'))
    os.execute('chmod 600 ' .. q(path))
    ms.save(path, 2)
    assert.equal('600', sh('stat -c %a ' .. q(path)):match('%d+'))
    assert.equal(2, ms.load(path))
    os.execute('rm -rf ' .. q(dir))
  end)

  it('through a symlink, replaces the file it points to and keeps the link', function()
    local dir = tmpdir()
    os.execute(('mkdir %s && ln -s real/ck %s'):format(q(dir .. '/real'), q(dir .. '/link')))
    ms.save(dir .. '/link', { v = 1 })
    ms.save(dir .. '/link', { v = 2 })
    assert.equal('real/ck', sh('readlink ' .. q(dir .. '/link')):match('%S+'))
    assert.equal(2, ms.load(dir .. '/real/ck').v)
    assert.same({}, temporaries(dir))
    assert.same({}, temporaries(dir .. '/real'))
    os.execute('rm -rf ' .. q(dir))
  end)

  it('refuses to replace a directory or a FIFO, and leaves no temporary', function()
    local dir = tmpdir()
    os.execute('mkdir ' .. q(dir .. '/sub') .. '; mkfifo ' .. q(dir .. '/fifo'))
    H.assert_error(function() ms.save(dir .. '/sub', 1) end, 'ms.save', dir .. '/sub', 'is a directory')
    H.assert_error(function() ms.save(dir .. '/fifo', 1) end, 'ms.save', dir .. '/fifo', 'pipe (FIFO)')
    H.assert_error(function() ms.save('', 1) end, 'ms.save', 'path is ""')
    H.assert_error(function() ms.save(nil, 1) end, 'ms.save', 'path is nil')
    assert.same({}, temporaries(dir))
    os.execute('rm -rf ' .. q(dir))
  end)
end)
