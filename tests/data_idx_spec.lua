-- read_idx: gzip streams must end with a correct trailer, sizes are bounded by max_bytes
-- and by what the file can hold before anything is allocated, and paths that are not
-- regular files are refused without hanging.
local ms = require 'moonstep'
local H = require 'helper'

local q = H.quote
local write = H.write_file
local read = H.read_file
local function be32(v)
  return string.char(math.floor(v / 2 ^ 24) % 256, math.floor(v / 2 ^ 16) % 256, math.floor(v / 256) % 256, v % 256)
end

describe('read_idx', function()
  local dir = os.tmpname()
  os.remove(dir)
  os.execute('mkdir -p ' .. q(dir))
  local header = '\0\0\8\2' .. be32(2) .. be32(3)
  write(dir .. '/ok.idx', header .. '\1\2\3\4\5\6')
  os.execute('gzip -f -k ' .. q(dir .. '/ok.idx'))
  local gz = read(dir .. '/ok.idx.gz')

  it('refuses a gzip file whose trailer is cut short or wrong', function()
    assert.same({ { 1, 2, 3 }, { 4, 5, 6 } }, ms.data.read_idx(dir .. '/ok.idx.gz'):totable())
    for _, cut in ipairs { 1, 4, 7, 8 } do
      local p = ('%s/cut%d.idx.gz'):format(dir, cut)
      write(p, gz:sub(1, -1 - cut))
      H.assert_error(function() ms.data.read_idx(p) end, 'read_idx: ', p, 'truncated gzip file', 'trailer')
    end
    -- CRC-32 (bytes -8..-5) and length (bytes -4..-1) are checked
    local function flip(s, i) return s:sub(1, i - 1) .. string.char((s:byte(i) + 1) % 256) .. s:sub(i + 1) end
    write(dir .. '/crc.idx.gz', flip(gz, #gz - 6))
    H.assert_error(function() ms.data.read_idx(dir .. '/crc.idx.gz') end, 'crc.idx.gz is a corrupt gzip file', 'check')
    write(dir .. '/len.idx.gz', flip(gz, #gz - 1))
    H.assert_error(function() ms.data.read_idx(dir .. '/len.idx.gz') end, 'len.idx.gz is a corrupt gzip file', 'check')
  end)

  it('bounds the data by max_bytes (default 256 MiB), naming the option', function()
    H.assert_error(function() ms.data.read_idx(dir .. '/ok.idx', { max_bytes = 5 }) end,
                   'describe 6 bytes, more than max_bytes = 5;', 'pass {max_bytes = ...}')
    assert.equal(6, ms.data.read_idx(dir .. '/ok.idx', { max_bytes = 6 }):numel())
    assert.equal(256 * 1024 * 1024, ms.data.MAX_BYTES)
    -- 1 GiB declared: refused by the default, before allocating anything
    write(dir .. '/gib.idx', '\0\0\8\3' .. be32(1024) .. be32(1024) .. be32(1024) .. ('\0'):rep(1000))
    os.execute('gzip -f -k ' .. q(dir .. '/gib.idx'))
    for _, p in ipairs { dir .. '/gib.idx', dir .. '/gib.idx.gz' } do
      H.assert_error(function() ms.data.read_idx(p) end, 'sizes [1024,1024,1024] at byte offset 4 describe 1073741824 bytes',
                     'more than max_bytes = 268435456 (the default, 256 MiB)')
    end
    -- with a larger max_bytes, the file itself bounds it: the raw file is short, and a
    -- small gzip cannot hold 1 GiB (deflate expands at most ~1032:1)
    H.assert_error(function() ms.data.read_idx(dir .. '/gib.idx', { max_bytes = 2 ^ 31 }) end,
                   'gib.idx is truncated', 'need 1073741824 data bytes from byte offset 16', 'ends after 1000')
    H.assert_error(function() ms.data.read_idx(dir .. '/gib.idx.gz', { max_bytes = 2 ^ 31 }) end,
                   'describe 1073741824 bytes, more than a', 'gzip file can hold')
    -- sizes whose product overflows any integer type
    write(dir .. '/huge.idx', '\0\0\8\4' .. ('\255\255\255\255'):rep(4))
    H.assert_error(function() ms.data.read_idx(dir .. '/huge.idx', { max_bytes = 2 ^ 50 }) end,
                   'sizes [4294967295,4294967295,4294967295,4294967295]', 'more than max_bytes')
    for _, bad in ipairs { 0, -1, 1.5, 'big', 2 ^ 60 } do
      H.assert_error(function() ms.data.read_idx(dir .. '/ok.idx', { max_bytes = bad }) end, 'read_idx: max_bytes is')
    end
    H.assert_error(function() ms.data.read_idx(dir .. '/ok.idx', { maxbytes = 1 }) end,
                   'read_idx: unknown option "maxbytes"', 'max_bytes')
  end)

  it('refuses directories, FIFOs and devices without hanging', function()
    H.assert_error(function() ms.data.read_idx(dir) end, 'read_idx: ', dir, 'is a directory')
    H.assert_error(function() ms.data.read_idx('/dev/zero') end, 'read_idx: /dev/zero is a character device')
    H.assert_error(function() ms.data.read_idx(42) end, 'read_idx: path is 42')
    os.execute('mkfifo ' .. q(dir .. '/fifo'))
    local p = io.popen(('timeout 20 bin/moonstep -e %s 2>&1'):format(q(
      ('print(pcall(ms.data.read_idx, %q))'):format(dir .. '/fifo'))))
    local out = p:read('*a')
    p:close()
    assert.truthy(out:find('false\tread_idx: ' .. dir .. '/fifo is a pipe (FIFO), expected a regular file', 1, true), out)
  end)
end)
