-- Checkpoints: round trips, atomic replacement, and every kind of bad file giving a
-- clear error (including each input in tests/fuzz/corpus, from fuzzing the loader).
local ms = require 'moonstep'
local H = require 'helper'

local read = H.read_file
local write = H.write_file

describe('checkpoints', function()
  local path = os.tmpname()

  it('round-trip nested tables of numbers, strings, booleans and tensors of every dtype', function()
    local value = {
      step = 12, name = 'run-1', done = false, [7] = true,
      lr = { 0.1, 0.01, 1e-300, -0.0, math.huge },
      tensors = { a = ms.randn(3, 4), b = ms.arange(5, 'int64'), c = ms.tensor({ 0, 255 }, 'uint8'),
                  d = ms.randn(2, 'float64'), e = ms.zeros(0, 3), view = ms.arange(12):view(3, 4):t(),
                  scalar = ms.tensor(2.5), expanded = ms.ones(1, 'float64'):expand(5),
                  wide = ms.zeros(0, 2 ^ 30, 2 ^ 20) },
    }
    ms.save(path, value)
    local back = ms.load(path)
    assert.same({ back.step, back.name, back.done, back[7] }, { 12, 'run-1', false, true })
    assert.same(value.lr, back.lr)
    for k, t in pairs(value.tensors) do
      assert.equal(t.dtype, back.tensors[k].dtype)
      assert.same(t:shape(), back.tensors[k]:shape())
      assert.same(t:totable(), back.tensors[k]:totable())
    end
  end)

  it('writes identical bytes for identical values (sorted keys)', function()
    ms.save(path, { b = 1, a = 2, [1] = 'x' })
    local first = read(path)
    ms.save(path, { [1] = 'x', a = 2, b = 1 })
    assert.equal(first, read(path))
  end)

  it('a failed save leaves the previous checkpoint intact and no temporary file', function()
    ms.save(path, { version = 1 })
    H.assert_error(function() ms.save(path, { version = 2, bad = print }) end, 'ms.save: ' .. path .. ': ', 'root.bad', 'function')
    assert.equal(1, ms.load(path).version)
    local dir, base = path:match('^(.*)/([^/]*)$')
    local p = io.popen(('ls -a %q'):format(dir))
    for name in p:lines() do assert.is_nil(name:find(base .. '.tmp', 1, true), name) end
    p:close()
    local cyc = {}
    cyc.self = cyc
    H.assert_error(function() ms.save(path, cyc) end, 'ms.save', 'root.self', 'cycle')
    H.assert_error(function() ms.save('/nonexistent/dir/x.ck', 1) end, 'ms.save', '/nonexistent/dir/x.ck',
                   'No such file or directory')
  end)

  it('rejects truncated, corrupted, wrong-version and foreign files', function()
    ms.save(path, { w = ms.ones(10) })
    local good = read(path)
    local bad = path .. '.bad'
    write(bad, good:sub(1, -5))
    H.assert_error(function() ms.load(bad) end, 'truncated', 'byte offset 16')
    write(bad, good:sub(1, 40) .. string.char((good:byte(41) + 1) % 256) .. good:sub(42))
    H.assert_error(function() ms.load(bad) end, 'CRC-32')
    write(bad, good:sub(1, 8) .. '\2' .. good:sub(10))
    H.assert_error(function() ms.load(bad) end, 'version 2', 'reads version 1')
    write(bad, 'PK\3\4 not a checkpoint at all, just some bytes........')
    H.assert_error(function() ms.load(bad) end, 'not a moonstep checkpoint')
    write(bad, 'short')
    H.assert_error(function() ms.load(bad) end, 'shorter than the 32-byte header')
    H.assert_error(function() ms.load(path .. '.missing') end, 'ms.load', path .. '.missing', 'cannot open',
                   'No such file')
    os.remove(bad)
  end)

  it('rejects hostile sizes whose CRC is correct', function()
    local ffi = require 'ffi'
    -- payload: a tensor claiming 2^62 float32 elements, then nothing
    local payload = '\6\0\1' .. '\0\0\0\0\0\0\0\64'
    local buf = ffi.new('uint8_t[?]', #payload)
    ffi.copy(buf, payload, #payload)
    local crc = ms.C.ms_crc32(0, buf, #payload)
    local function u32(v) return string.char(v % 256, math.floor(v / 256) % 256, math.floor(v / 65536) % 256, math.floor(v / 16777216) % 256) end
    local header = 'MSCKPT\r\n' .. u32(1) .. u32(0) .. u32(#payload) .. u32(0) .. u32(tonumber(crc)) .. u32(0)
    local bad = path .. '.hostile'
    write(bad, header .. payload)
    H.assert_error(function() ms.load(bad) end, 'ms.load', bad, 'multiply to more than 2^59')
    os.remove(bad)
  end)

  it('every input of the fuzzing corpus loads or fails with a clear error', function()
    local p = io.popen('ls tests/fuzz/corpus')
    local n = 0
    for name in p:lines() do
      local ok, err = pcall(ms.load, 'tests/fuzz/corpus/' .. name)
      assert(ok or tostring(err):find('ms.load: tests/fuzz/corpus/' .. name, 1, true), name .. ': ' .. tostring(err))
      n = n + 1
    end
    p:close()
    assert.is_true(n >= 4)
  end)

  it('restores tensors to the device asked for', function()
    ms.save(path, { t = ms.ones(2) })
    if not ms.cuda.is_available() then
      H.assert_error(function() ms.load(path, { device = 'cuda' }) end, 'CUDA is not available')
      return
    end
    assert.equal('cuda', ms.load(path, { device = 'cuda' }).t.device)
  end)
end)
