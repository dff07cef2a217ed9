-- tests/fixture_decode.lua — the arrays of the generated fixtures (scripts/fixtures/*.py):
-- base64 of little-endian IEEE 754 values (float64: 8 bytes, float32: 4), exact.
--   local decode = require 'fixture_decode'
--   decode(s, 'float64' | 'float32') -> a Lua list of the values
local ffi = require 'ffi'

assert(ffi.abi('le'), 'the fixture decoder assumes a little-endian machine')
local B64 = {}
do
  local alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  for i = 1, 64 do B64[alphabet:byte(i)] = i - 1 end
end

return function(s, dtype)
  local bytes = ffi.new('uint8_t[?]', #s)
  local o = 0
  for i = 1, #s, 4 do
    local a, b, c, d = s:byte(i, i + 3)
    local x = B64[a] * 262144 + B64[b] * 4096 + (B64[c] or 0) * 64 + (B64[d] or 0)
    bytes[o] = math.floor(x / 65536)
    bytes[o + 1] = math.floor(x / 256) % 256
    bytes[o + 2] = x % 256
    o = o + (d ~= 61 and 3 or c ~= 61 and 2 or 1)   -- 61: '=' padding
  end
  local size = dtype == 'float64' and 8 or 4
  local p = ffi.cast(dtype == 'float64' and 'double *' or 'float *', bytes)
  local out = {}
  for i = 0, o / size - 1 do out[i + 1] = tonumber(p[i]) end
  return out
end
