-- Shared by the zeroth-order runtime specs (zo_runtime_spec.lua, zo_log_spec.lua):
--   Z.dir(dist [, scale, step, index, seed])   a direction table (optim/zo_ops.lua)
--   Z.bits_equal(a, b, what)                   bitwise equality (+0 and -0 differ)
--   Z.hostile(dtype, n)                         an arena of hostile values, then N(0, 0.02)
--   Z.slice_table(spec, ngroups)                a hand-made ms_slice_table from {{count, group}, ...}
--   Z.rel(x, y [, floor])                       |x - y| / max(|y|, floor)
--   Z.copy(t)                                   a deep copy of a plain table
local ffi = require 'ffi'
local ms = require 'moonstep'
local T = require 'moonstep.tensor'
local H = require 'helper'

local Z = {}

function Z.dir(dist, scale, step, index, seed)
  return { seed = seed or 12345, step = step or 3, index = index or 0, dist = dist, scale = scale or 1 }
end

-- Bitwise equality of two CPU tensors of one dtype (+0 and -0 differ, as NaN payloads do).
function Z.bits_equal(a, b, what)
  assert(a.dtype_id == b.dtype_id and a:numel() == b:numel(), what .. ': dtype or size differs')
  local ct = a.dtype_id == 0 and 'uint32_t *' or 'uint64_t *'
  local pa, pb = ffi.cast(ct, T.address(a:contiguous(), 'test')), ffi.cast(ct, T.address(b:contiguous(), 'test'))
  for i = 0, a:numel() - 1 do
    if pa[i] ~= pb[i] then
      error(('%s: element %d differs: %.17g vs %.17g'):format(what, i + 1, a:view(-1):get(i + 1),
            b:view(-1):get(i + 1)), 2)
    end
  end
end

-- An arena of hostile values then normal(0, 0.02) weights.
function Z.hostile(dtype, n)
  local v = { 0, -0.0, 1e-30, -1e-30, 1e-38, -1e-38, 1e30, -1e30, 3e38, -3e38, 1, -1, 0.5, -2,
              0 / 0, -(0 / 0) }   -- NaNs (their bits must come back too)
  if dtype == 'float32' then
    for _, s in ipairs { 1e-40, -1e-41, 2 ^ -149, -(2 ^ -149), 1e-45 } do v[#v + 1] = s end
  else
    for _, s in ipairs { 5e-324, -1e-310, 2 ^ -1074, 1e300, -1e300, 1e-300 } do v[#v + 1] = s end
  end
  local bits = dtype == 'float32' and 24 or 53
  for k = -30, 30 do
    local p = 2 ^ k
    for _, x in ipairs { p, -p, p - p * 2 ^ -bits, -(p - p * 2 ^ -bits), p + p * 2 ^ (1 - bits) } do
      v[#v + 1] = x
    end
  end
  local r = H.lcg(7)
  for i = #v + 1, 1200 do v[i] = r() * 10 ^ math.floor(r() * 8 - 6) end   -- mixtures
  ms.manual_seed(n)
  local t = ms.empty(n, { dtype = dtype })
  t:normal_(0, 0.02)
  t:narrow(1, 1, #v):copy_(ms.tensor(v, { dtype = dtype }))
  return t
end

-- A hand-made slice table: { {count, group}, ... } (groups 0-based). Returns the table and
-- the slices array (keep both alive while the runtime reads them).
function Z.slice_table(spec, ngroups)
  local sl = ffi.new('ms_slice[?]', #spec)
  local off = 0
  for i, s in ipairs(spec) do
    sl[i - 1].offset, sl[i - 1].count, sl[i - 1].group, sl[i - 1].kind = off, s[1], s[2], 0
    off = off + s[1]
  end
  local ct = ffi.new('ms_slice_table[1]')
  ct[0].slices, ct[0].nslices, ct[0].ngroups = sl, #spec, ngroups
  return ct, sl
end

function Z.rel(x, y, floor)
  return math.abs(x - y) / math.max(math.abs(y), floor or 0)
end

function Z.copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = type(v) == 'table' and Z.copy(v) or v end
  return c
end

return Z
