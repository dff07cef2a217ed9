-- moonstep.tensor_print — tostring(t): the values (one number format for the whole
-- tensor, chosen from its magnitudes), then [ms.Tensor dtype of shape AxB on device].
-- Tensors of more than 1000 elements show 3 entries at each end of every dim; n-d
-- tensors print one labelled matrix per leading index, as Torch7 did.
local ffi = require 'ffi'
local floor, huge, fmt, concat = math.floor, math.huge, string.format, table.concat
local DTYPE_NAMES = { [0] = 'float32', 'float64', 'int64', 'uint8' }
local DEVICE_NAMES = { [0] = 'cpu', 'cuda' }
local ffi_cast = ffi.cast

local EDGE, LIMIT = 3, 1000   -- shown at each end of a long dim; elements before truncating

local function format_values(t)
  local vals = t:to('cpu'):to('float64')
  local p = ffi_cast('double*', vals.storage.data)
  local is_int = t.dtype_id >= 2
  -- One number format for the whole tensor, chosen from its magnitude range.
  local maxabs, allint = 0, true
  local n = tonumber(vals.count)
  for i = 0, math.min(n, 100000) - 1 do
    local v = p[vals.offset + i]
    if v == v and v ~= huge and v ~= -huge then
      if math.abs(v) > maxabs then maxabs = math.abs(v) end
      if v ~= floor(v) then allint = false end
    end
  end
  local numfmt
  if is_int or (allint and maxabs < 1e9) then numfmt = '%.0f'
  elseif maxabs ~= 0 and (maxabs >= 1e5 or maxabs < 1e-4) then numfmt = '%.4e'
  else numfmt = '%.4f' end
  return vals, p, numfmt
end

return function(t)
  if t.storage == nil then return '[ms.Tensor (freed)]' end
  local dims = {}
  for d = 1, t.ndim do dims[d] = tostring(tonumber(t.sizes[d - 1])) end
  local footer = fmt('[ms.Tensor %s of shape %s on %s]', DTYPE_NAMES[t.dtype_id],
                     t.ndim == 0 and 'scalar' or concat(dims, 'x'), DEVICE_NAMES[t.storage.device])
  if t.count == 0 then return footer end
  local vals, p, numfmt = format_values(t)
  local truncate = tonumber(t.count) > LIMIT
  local strides = vals:stride()
  local function cell(off)
    local v = p[off]
    if v ~= v then return 'nan' elseif v == huge then return 'inf' elseif v == -huge then return '-inf' end
    return fmt(numfmt, v)
  end
  -- indices of a dim of given size to show (0 marks the ellipsis)
  local function shown(size)
    if not truncate or size <= 2 * EDGE then
      local r = {}
      for i = 1, size do r[i] = i end
      return r
    end
    local r = {}
    for i = 1, EDGE do r[#r + 1] = i end
    r[#r + 1] = 0
    for i = size - EDGE + 1, size do r[#r + 1] = i end
    return r
  end
  local lines = {}
  local function matrix(off)
    local nd = vals.ndim
    local rows = nd >= 2 and tonumber(vals.sizes[nd - 2]) or 1
    local cols = tonumber(vals.sizes[nd - 1])
    local cells, width = {}, 0
    for ri, r in ipairs(shown(rows)) do
      cells[ri] = {}
      for ci, c in ipairs(shown(cols)) do
        local s = '...'
        if r ~= 0 and c ~= 0 then
          s = cell(off + (r - 1) * (nd >= 2 and strides[nd - 1] or 0) + (c - 1) * strides[nd])
        elseif r == 0 then s = c == 0 and '' or '...' end
        cells[ri][ci] = s
        if #s > width then width = #s end
      end
    end
    for _, row in ipairs(cells) do
      local parts = {}
      for ci, s in ipairs(row) do parts[ci] = (' '):rep(width - #s) .. s end
      lines[#lines + 1] = ' ' .. concat(parts, ' ')
    end
  end
  if vals.ndim <= 2 then
    matrix(vals.offset)
  else
    -- iterate over the leading dims, one matrix each, labelled (i,j,.,.)
    local lead = {}
    local function rec(d, off)
      if d > vals.ndim - 2 then
        local label = {}
        for k = 1, #lead do label[k] = lead[k] == 0 and '...' or tostring(lead[k]) end
        lines[#lines + 1] = '(' .. concat(label, ',') .. ',.,.) ='
        matrix(off)
        lines[#lines + 1] = ''
        return
      end
      for _, i in ipairs(shown(tonumber(vals.sizes[d - 1]))) do
        lead[d] = i
        if i == 0 then
          lines[#lines + 1] = '...'
        else
          rec(d + 1, off + (i - 1) * strides[d])
        end
      end
      lead[d] = nil
    end
    rec(1, vals.offset)
  end
  lines[#lines + 1] = footer
  return concat(lines, '\n')
end
