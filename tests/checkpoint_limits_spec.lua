-- Checkpoints: what ms.save refuses (too deep, cycles, objects, unsupported values) and
-- what ms.load refuses (hostile files, non-files), each with a message naming the public
-- function, the path and, for values, the key path.
local ffi = require 'ffi'
local ms = require 'moonstep'
local H = require 'helper'

local q = H.quote
local write = H.write_file
local function u64(v)
  local out = {}
  for i = 1, 8 do out[i] = string.char(v % 256); v = math.floor(v / 256) end
  return table.concat(out)
end
-- A checkpoint file around a payload, with a correct length and CRC.
local function checkpoint(payload)
  local buf = ffi.new('uint8_t[?]', #payload + 1)
  ffi.copy(buf, payload, #payload)
  local crc = tonumber(ms.C.ms_crc32(0, buf, #payload))
  return 'MSCKPT\r\n' .. u64(1):sub(1, 4) .. u64(0):sub(1, 4) .. u64(#payload) .. u64(crc):sub(1, 4) .. u64(0):sub(1, 4)
         .. payload
end
local function nest(n, leaf)           -- n tables, one inside the other, leaf innermost
  local t = leaf
  for _ = 1, n do t = { t } end
  return t
end
local function no_raw_ffi(err)
  for _, bad in ipairs { 'attempt to', 'bad argument', "'ms_", 'cdata<' } do
    assert(not err:find(bad, 1, true), 'raw message: ' .. err)
  end
end

describe('ms.save refuses', function()
  local path = os.tmpname()

  it('tables nested deeper than ms.load accepts (the same limit on both sides)', function()
    local limit = ms.C.MS_CKPT_MAX_DEPTH
    assert.equal(64, limit)
    ms.save(path, nest(limit, 'leaf'))
    local back = ms.load(path)
    for _ = 1, limit do back = back[1] end
    assert.equal('leaf', back)
    ms.save(path, 'previous')
    local err = H.assert_error(function() ms.save(path, nest(limit + 1, 'leaf')) end,
                               'ms.save', 'root[1][1]', 'nested 65 tables deep', 'more than the 64 that ms.load accepts')
    assert.is_true(#err < 600)
    assert.equal('previous', ms.load(path))
    -- and ms.load refuses the same file built by hand
    local payload = ('\5' .. u64(1) .. '\3' .. u64(0):sub(1, 7) .. '\0'):rep(limit + 1) .. '\0'
    write(path .. '.deep', checkpoint(payload))
    H.assert_error(function() ms.load(path .. '.deep') end, 'ms.load', path .. '.deep', 'nested deeper than 64')
    os.remove(path .. '.deep')
  end)

  it('cycles, naming both key paths', function()
    local t = { a = { b = {} } }
    t.a.b.c = t.a
    H.assert_error(function() ms.save(path, t) end, 'ms.save', 'root.a.b.c is the table at root.a again', 'cycle')
    -- a table reached twice without a cycle is saved twice
    local shared = { 1, 2 }
    ms.save(path, { x = shared, y = shared })
    assert.same({ x = { 1, 2 }, y = { 1, 2 } }, ms.load(path))
  end)

  it('values and keys that cannot be saved, naming the key path', function()
    ms.save(path, 'previous')
    H.assert_error(function() ms.save(path, { opt = { lr = print } }) end, 'ms.save', 'root.opt.lr', 'a function')
    H.assert_error(function() ms.save(path, { [3] = { x = coroutine.create(print) } }) end, 'root[3].x', 'a thread')
    H.assert_error(function() ms.save(path, { ['a b'] = io.stdout }) end, 'root["a b"]', 'a userdata')
    H.assert_error(function() ms.save(path, { n = 1LL }) end, 'root.n', 'a cdata')
    H.assert_error(function() ms.save(path, { sub = { [{}] = 1 } }) end, 'a key of the table at root.sub', 'a table',
                   'keys must be numbers, strings or booleans')
    local t = ms.ones(3)
    t:free()
    H.assert_error(function() ms.save(path, { w = t }) end, 'ms.save', 'root.w', 'freed')
    assert.equal('previous', ms.load(path))
  end)

  it('modules, optimizers and other objects, saying what to save instead', function()
    local model = ms.nn.Sequential(ms.nn.Linear(3, 2), ms.nn.ReLU())
    ms.save(path, 'previous')
    H.assert_error(function() ms.save(path, model) end, 'ms.save', 'root', 'Sequential', 'model:state_dict()')
    H.assert_error(function() ms.save(path, { net = ms.nn.Linear(2, 2) }) end, 'root.net', 'Linear', 'state_dict()')
    local opt = ms.optim.SGD(model, { lr = 0.1 })
    H.assert_error(function() ms.save(path, { opt = opt }) end, 'root.opt', 'SGD', 'opt:state()')
    H.assert_error(function() ms.save(path, ms.data.Dataset(ms.zeros(2, 1), ms.zeros(2))) end, 'metatable')
    H.assert_error(function() ms.save(path, setmetatable({}, {})) end, 'ms.save', 'metatable', 'not plain data')
    assert.equal('previous', ms.load(path))
    -- what the messages recommend works
    ms.save(path, { model = model:state_dict(), opt = opt:state() })
    local back = ms.load(path)
    local copy = ms.nn.Sequential(ms.nn.Linear(3, 2), ms.nn.ReLU())
    copy:load_state_dict(back.model)
    local x = ms.randn(4, 3)
    assert.same(model:forward(x):totable(), copy:forward(x):totable())
  end)
end)

describe('ms.load refuses', function()
  local dir = os.tmpname()
  os.remove(dir)
  os.execute('mkdir -p ' .. q(dir))

  it('directories, FIFOs, devices, missing and empty files, naming ms.load and the path', function()
    local cases = {
      { dir, 'is a directory' },
      { '/dev/null', 'character device' },
      { dir .. '/missing', 'No such file or directory' },
    }
    write(dir .. '/empty', '')
    cases[#cases + 1] = { dir .. '/empty', 'the file is empty' }
    for _, c in ipairs(cases) do
      no_raw_ffi(H.assert_error(function() ms.load(c[1]) end, 'ms.load: ', c[1], c[2]))
    end
    -- a FIFO with no writer: an error at once, not a hang (checked in a child with a timeout)
    os.execute('mkfifo ' .. q(dir .. '/fifo'))
    local p = io.popen(('timeout 20 bin/moonstep -e %s 2>&1'):format(q(
      ('local ok, err = pcall(ms.load, %q) print(ok, err)'):format(dir .. '/fifo'))))
    local out = p:read('*a')
    p:close()
    assert.truthy(out:find('false\tms.load: ' .. dir .. '/fifo is a pipe (FIFO), expected a regular file', 1, true), out)
  end)

  it('bad arguments and options', function()
    ms.save(dir .. '/ok', { 1 })
    H.assert_error(function() ms.load(5) end, 'ms.load', 'path is 5')
    H.assert_error(function() ms.load(dir .. '/ok', { devcie = 'cpu' }) end, 'ms.load', 'unknown option "devcie"', 'device')
    H.assert_error(function() ms.load(dir .. '/ok', { device = 'tpu' }) end, 'ms.load', 'device is "tpu"')
    H.assert_error(function() ms.load(dir .. '/ok', 'cpu') end, 'ms.load', 'options is "cpu"')
  end)

  it('hostile sizes: every allocation is bounded by the file size', function()
    -- 8 MB: one table claiming 4M entries of one-byte values. The loader used to list a
    -- 104-byte node per byte of file (~840 MB) before building anything.
    local n = 4 * 1024 * 1024 - 8
    local path = dir .. '/wide'
    write(path, checkpoint('\5' .. u64(n) .. ('\2\0'):rep(n)))
    local p = io.popen(('bin/moonstep -e %s 2>&1'):format(q(([[
      local function peak() return tonumber(io.open('/proc/self/status'):read('*a'):match('VmHWM:%%s*(%%d+)')) end
      local before = peak()
      local ok, v = pcall(ms.load, %q)
      print(ok, type(v), next(v) == nil, peak() - before)]]):format(path))))
    local out = p:read('*a')
    p:close()
    local ok, kind, empty, grew = out:match('^(%S+)\t(%S+)\t(%S+)\t(%d+)')
    assert.same({ 'true', 'table', 'true' }, { ok, kind, empty }, out)
    assert.is_true(tonumber(grew) < 64 * 1024, ('peak memory grew by %s kB'):format(grew))  -- file: 8 MB
    -- tensors: sizes whose product overflows, data that is not there, too many dims
    local function tensor(dtype, sizes, data)
      local s = '\6' .. string.char(dtype, #sizes)
      for _, v in ipairs(sizes) do s = s .. v end
      return s .. (data or '')
    end
    local big = '\0\0\0\0\0\0\0\64'       -- 2^62
    local cases = {
      { tensor(0, { u64(0), big, big }), 'multiply to more than 2^59' },
      { tensor(0, { u64(0), '\255\255\255\255\255\255\255\255' }), 'multiply to more than 2^59' },
      { tensor(0, { u64(1000) }, ('\0'):rep(3996)), 'needs 4000 data bytes, 3996 remain' },
      { tensor(9, { u64(1) }, '\0'), 'dtype 9' },
      { tensor(0, { u64(1), u64(1), u64(1), u64(1), u64(1), u64(1), u64(1), u64(1), u64(1) }), '9 dims' },
      { '\4' .. '\0\0\0\0\0\0\0\128' .. 'abc', 'string at byte offset 32 claims' },
      { '\5' .. u64(3) .. '\2\0\2\0', 'claims 3 entries' },
      { '\5' .. u64(2) .. '\2\3' .. u64(0) .. '\2\0', 'the key true appears twice' },
      { '\5' .. u64(1) .. '\0\2', 'a table key is nil' },
      { '\5' .. u64(1) .. '\5' .. u64(0) .. '\2', 'a table key is a table' },
      { '\7', 'unknown value tag 7' },
    }
    for i, c in ipairs(cases) do
      local p2 = ('%s/case%d'):format(dir, i)
      write(p2, checkpoint(c[1]))
      no_raw_ffi(H.assert_error(function() ms.load(p2) end, 'ms.load: ' .. p2 .. ': ', c[2]))
    end
  end)
end)
