-- moonstep.tensor_print — tostring(t): the values (one number format for the whole
-- tensor, chosen from the magnitudes shown), then [ms.Tensor dtype of shape AxB on device].
-- Tensors of more than 1000 elements are summarised: 3 entries at each end of the
-- last two dims and 1 at each end of leading dims. n-d tensors print one labelled
-- matrix per leading index, as Torch7 did.
--
-- Elements are read only through the tensor's own sizes and strides (a view the
-- runtime validated to lie inside its storage), and only the elements shown: a
-- stride-0 expansion of one element prints without reading past it, and a huge tensor
-- costs only what is printed.
local B = require 'moonstep.tensor_base'
local floor, huge, fmt, concat = math.floor, math.huge, string.format, table.concat

local EDGE, EDGE_LEAD, LIMIT = 3, 1, 1000

return function(t)
  if not B.is_tensor(t) then return tostring(t) end
  if B.freed(t) then return '[ms.Tensor (freed)]' end
  local nd = t.ndim
  local dims = {}
  for d = 1, nd do dims[d] = tostring(tonumber(t.sizes[d - 1])) end
  local footer = fmt('[ms.Tensor %s of shape %s on %s]', B.DTYPE_NAMES[t.dtype_id],
                     nd == 0 and 'scalar' or concat(dims, 'x'), t.device)
  if t.count == 0 then return footer end
  local src = B.device_id(t, 'tostring') == 0 and t or t:to('cpu')
  local p = B.data(src, 'tostring')
  local is_int = src.dtype_id >= 2
  local truncate = tonumber(src.count) > LIMIT

  -- indices of dim d to show (0 marks the ellipsis)
  local function shown(d)
    local size = tonumber(src.sizes[d - 1])
    local edge = d >= nd - 1 and EDGE or EDGE_LEAD
    local r = {}
    if not truncate or size <= 2 * edge then
      for i = 1, size do r[i] = i end
      return r
    end
    for i = 1, edge do r[#r + 1] = i end
    r[#r + 1] = 0
    for i = size - edge + 1, size do r[#r + 1] = i end
    return r
  end
  local function offset_of(base, d, i)
    return base + (i - 1) * tonumber(src.strides[d - 1])
  end

  -- One pass over the shown elements picks the number format.
  local maxabs, allint = 0, true
  local function scan(d, off)
    if d > nd then
      local v = tonumber(p[off])
      if v == v and v ~= huge and v ~= -huge then
        if math.abs(v) > maxabs then maxabs = math.abs(v) end
        if v ~= floor(v) then allint = false end
      end
      return
    end
    for _, i in ipairs(shown(d)) do
      if i ~= 0 then scan(d + 1, offset_of(off, d, i)) end
    end
  end
  local base = tonumber(src.offset)
  scan(1, base)
  local numfmt
  if is_int or (allint and maxabs < 1e9) then numfmt = '%.0f'
  elseif maxabs ~= 0 and (maxabs >= 1e5 or maxabs < 1e-4) then numfmt = '%.4e'
  else numfmt = '%.4f' end
  local function cell(off)
    if src.dtype_id == 2 then return (tostring(p[off]):gsub('LL$', '')) end  -- exact int64
    local v = tonumber(p[off])
    if v ~= v then return 'nan' elseif v == huge then return 'inf' elseif v == -huge then return '-inf' end
    return fmt(numfmt, v)
  end

  if nd == 0 then return cell(base) .. '\n' .. footer end
  local lines = {}
  local function matrix(off)
    local rows = nd >= 2 and shown(nd - 1) or { 1 }
    local cols = shown(nd)
    local cells, width = {}, 0
    for ri, r in ipairs(rows) do
      cells[ri] = {}
      for ci, c in ipairs(cols) do
        local s
        if r == 0 then s = c == 0 and '' or '...'
        elseif c == 0 then s = '...'
        else
          local o = nd >= 2 and offset_of(off, nd - 1, r) or off
          s = cell(offset_of(o, nd, c))
        end
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
  if nd <= 2 then
    matrix(base)
  else
    -- iterate over the leading dims, one matrix each, labelled (i,j,.,.)
    local lead = {}
    local function rec(d, off)
      if d > nd - 2 then
        local label = {}
        for k = 1, #lead do label[k] = tostring(lead[k]) end
        lines[#lines + 1] = '(' .. concat(label, ',') .. ',.,.) ='
        matrix(off)
        lines[#lines + 1] = ''
        return
      end
      for _, i in ipairs(shown(d)) do
        if i == 0 then
          lines[#lines + 1] = '...'
        else
          lead[d] = i
          rec(d + 1, offset_of(off, d, i))
        end
      end
      lead[d] = nil
    end
    rec(1, base)
  end
  lines[#lines + 1] = footer
  return concat(lines, '\n')
end
