-- moonstep.nn.batched_scales — which perturbed models nn.batched evaluates and how it reads
-- their directions (batched.lua's argument half):
--   rows, vals, m = S.parse(scales)   the scales list checked: rows and scale values (row 0:
--                                     the nominal model, scale 0), Lua arrays of m numbers
--   U = S.check_U(U, flat, rows)      the directions [n, d] in the arena's dtype and device
--   L = S.layout(rows, m)             p nominal entries first, then the distinct rows: a
--                                     regular grid read through strided views (L.fast), or not
--   v = S.grid_view(L, u, rs, off, len)   that grid as a view [A, Bb, len] of u
--   S.type_text(t), S.shape_text(shape)   for messages
local B = require 'moonstep.tensor_base'
local check = require 'moonstep.check'
local floor, describe, fail = math.floor, check.describe, check.fail
local view_of = B.view_of

local M = {}
local FN = 'batched.evaluate'

---------------------------------------------------------------------------------------
-- argument checks
---------------------------------------------------------------------------------------
function M.type_text(t) return ('%s on %s'):format(t.dtype, t.device) end

-- The scales: rows and scale values (row 0: scale 0), both Lua arrays of m numbers.
function M.parse(scales)
  if type(scales) ~= 'table' or check.is_tensor(scales) or getmetatable(scales) ~= nil then
    fail('%s: scales is %s, expected a Lua array of {row = i, scale = s} entries', FN, describe(scales))
  end
  local m = #scales
  if m == 0 then fail('%s: scales is empty, expected at least one {row = i, scale = s} entry', FN) end
  for key in pairs(scales) do
    if type(key) ~= 'number' or key ~= floor(key) or key < 1 or key > m then
      fail('%s: scales has the key %s, expected an array (keys 1..%d)', FN, describe(key), m)
    end
  end
  local rows, vals = {}, {}
  for t = 1, m do
    local e = scales[t]
    if type(e) ~= 'table' or check.is_tensor(e) then
      fail('%s: scales[%d] is %s, expected a table {row = i, scale = s}', FN, t, describe(e))
    end
    for key in pairs(e) do
      if key ~= 'row' and key ~= 'scale' then
        fail('%s: scales[%d] has the unknown key %s, expected row and scale', FN, t, describe(key))
      end
    end
    local r, s = e.row, e.scale
    if type(r) ~= 'number' or r ~= floor(r) or r < 0 or r > 2 ^ 31 then
      fail('%s: scales[%d].row is %s, expected an integer >= 0 (a row of U, or 0 for the nominal model)',
           FN, t, describe(r))
    end
    if r == 0 then
      if s ~= nil then check.number(FN, ('scales[%d].scale'):format(t), s) end
      s = 0
    else
      check.number(FN, ('scales[%d].scale'):format(t), s)
    end
    rows[t], vals[t] = r, s
  end
  return rows, vals, m
end

-- U [n, d] in the arena's dtype and device, rows with unit inner stride (a copy otherwise).
function M.check_U(U, flat, rows)
  local d, maxrow = flat:numel(), 0
  for _, r in ipairs(rows) do if r > maxrow then maxrow = r end end
  if U == nil then
    if maxrow == 0 then return nil end
    fail('%s: U is nil, expected the directions, a %s tensor [n, %d] (n >= %d: scales use row %d)',
         FN, M.type_text(flat), d, maxrow, maxrow)
  end
  check.tensor(FN, 'U', U)
  if U:dim() ~= 2 or U:size(2) ~= d then
    fail('%s: U is %s, expected [n, %d] (one direction per row over the model\'s %d parameters)',
         FN, describe(U), d, d)
  end
  if U.dtype ~= flat.dtype or U.device ~= flat.device then
    fail('%s: U is %s on %s, expected %s (the model\'s parameters)', FN, describe(U), U.device,
         M.type_text(flat))
  end
  for t, r in ipairs(rows) do
    if r > U:size(1) then
      fail('%s: scales[%d].row is %d, expected 0..%d (U has %d rows)', FN, t, r, U:size(1), U:size(1))
    end
  end
  if U:stride(2) ~= 1 then U = U:contiguous() end
  return U
end

function M.shape_text(shape) return '[' .. table.concat(shape, ',') .. ']' end

---------------------------------------------------------------------------------------
-- the layout of the models: which row of U (and which product P_j) each one uses
---------------------------------------------------------------------------------------
-- fast: p nominal entries first, then the distinct rows lo..lo+k-1 in an [A, Bb] grid,
-- grouped (j = the grid's row: A = k, Bb = g) or tiled (j = its column: A = g, Bb = k).
function M.layout(rows, m)
  local p = 0
  while p < m and rows[p + 1] == 0 do p = p + 1 end
  local order, index = {}, {}
  for t = 1, m do
    local r = rows[t]
    if r > 0 and not index[r] then order[#order + 1] = r; index[r] = #order end
  end
  local k = #order
  local L = { p = p, k = k, order = order, index = index, m = m }
  if k == 0 then L.fast, L.A, L.Bb = true, 0, 0; return L end
  local lo = order[1]
  local ok = (m - p) % k == 0
  for j = 1, k do ok = ok and order[j] == lo + j - 1 end
  for t = p + 1, m do ok = ok and rows[t] > 0 end
  if ok then
    local g = (m - p) / k
    local grouped, tiled = true, true
    for t = p + 1, m do
      local q = t - p - 1                               -- 0-based position in the grid
      grouped = grouped and index[rows[t]] == floor(q / g) + 1
      tiled = tiled and index[rows[t]] == q % k + 1
    end
    if grouped or tiled then
      L.fast, L.lo, L.grouped = true, lo, grouped
      if grouped then L.A, L.Bb = k, g else L.A, L.Bb = g, k end
    end
  end
  return L
end

-- A view [A, Bb, len] of rows lo.. of U (or of P [k, ...] when u is P) at column off,
-- each cell the row of its product j.
function M.grid_view(L, u, rs, off, len)
  local strides = L.grouped and { rs, 0, 1 } or { 0, rs, 1 }
  return view_of(FN, u, { L.A, L.Bb, len }, strides, off)
end

return M
