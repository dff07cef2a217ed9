-- moonstep.tensor_slice — Torch7's slicing with a table key, t[{ ... }], as views.
--
--   t[{ s1, s2, ... }]   one spec per leading dim (the dims after the last spec whole):
--     i        (an integer) that index, the dim removed; negative counts from the end
--              (-1 the last)
--     { a, b } indices a .. b inclusive (Torch7's convention; negative from the end)
--     { a }    a .. a, the dim kept
--     { }      the whole dim
--   Every dim picked by an integer: the element as a Lua number (as Torch7).
--   t[{ ... }] = v        v a number: fill_; a tensor: copy_ (broadcast) into the view.
-- A view shares t's memory (as t:narrow / t:select). Plain t[i] stays an error (its
-- meaning differs between Torch7 and PyTorch): t:select(1, i) or t[{ i }].
local check = require 'moonstep.check'
local type, floor = type, math.floor

local M = {}

local function index_of(fn, v, size, d, what)
  if type(v) ~= 'number' or v ~= floor(v) then
    check.fail('%s: %s of dim %d is %s, expected an integer', fn, what, d, check.describe(v))
  end
  local i = v < 0 and size + 1 + v or v
  if i < 1 or i > size then
    check.fail('%s: %s %d of dim %d is out of range, expected 1..%d or -%d..-1', fn, what, v,
               d, size, size)
  end
  return i
end

-- The view t[{ spec }] and whether every dim was picked by an integer.
function M.view(t, spec, fn)
  local n = #spec
  for k in pairs(spec) do
    if type(k) ~= 'number' or k ~= floor(k) or k < 1 or k > n then
      check.fail('%s: the slice has a key %s, expected a list { s1, s2, ... }', fn, check.describe(k))
    end
  end
  if n > t:dim() then
    check.fail('%s: %d specs for a tensor of %d dims', fn, n, t:dim())
  end
  local v, d, picked = t, 1, 0
  for k = 1, n do
    local s, size = spec[k], v:size(d)
    if type(s) == 'number' then
      v = v:select(d, index_of(fn, s, size, k, 'index'))
      picked = picked + 1
    elseif type(s) == 'table' and not require('moonstep.tensor_base').is_tensor(s) then
      if #s > 2 or next(s, #s > 0 and #s or nil) ~= nil then
        check.fail('%s: spec %d is %s, expected {}, {a} or {a, b}', fn, k, check.describe(s))
      end
      local a = s[1] and index_of(fn, s[1], size, k, 'start') or 1
      local b = s[2] and index_of(fn, s[2], size, k, 'end') or (s[1] and a or size)
      if b < a then
        check.fail('%s: spec %d is {%d, %d}, an empty range (end before start)', fn, k, s[1], s[2])
      end
      v = v:narrow(d, a, b - a + 1)
      d = d + 1
    else
      check.fail('%s: spec %d is %s, expected an integer, {}, {a} or {a, b}', fn, k, check.describe(s))
    end
  end
  return v, picked == t:dim()
end

function M.get(t, spec)
  local v, scalar = M.view(t, spec, 'Tensor slice t[{...}]')
  if scalar then return v:item() end
  return v
end

function M.set(t, spec, value)
  local fn = 'Tensor slice assignment t[{...}] = v'
  local v = M.view(t, spec, fn)
  if type(value) == 'number' then
    v:fill_(value)
  elseif require('moonstep.tensor_base').is_tensor(value) then
    v:copy_(value)
  else
    check.fail('%s: v is %s, expected a number or a tensor', fn, check.describe(value))
  end
end

return M
