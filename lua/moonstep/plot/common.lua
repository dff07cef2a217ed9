-- moonstep.plot.common — argument checks and formatting ms.plot.lines and ms.plot.contour
-- share. Every check names the public function (fn), the field, what was given and what
-- was expected.
local check = require 'moonstep.check'
local gp = require 'moonstep.plot.gnuplot'

local M = {}
local huge, fmt = math.huge, string.format

-- Line colours (matplotlib's tab10, which reads on white and on a viridis map alike).
M.COLORS = { '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2',
             '#7f7f7f', '#bcbd22', '#17becf' }

-- A table that is a plain value (not a tensor, not a function).
function M.table(fn, name, v)
  if type(v) ~= 'table' or check.is_tensor(v) then
    check.fail('%s: %s is %s, expected a table', fn, name, check.describe(v))
  end
  return v
end

-- A list of numbers (nan and +-inf allowed when gaps = true: they become missing points).
-- A 1-D tensor is read with totable(). min_len: the fewest elements accepted.
function M.numbers(fn, name, v, min_len, gaps)
  if check.is_tensor(v) then
    if v:dim() ~= 1 then
      check.fail('%s: %s is %s, expected a list of numbers or a 1-D tensor', fn, name, check.describe(v))
    end
    v = v:to('float64', 'cpu'):totable()
  end
  if type(v) ~= 'table' then
    check.fail('%s: %s is %s, expected a list of numbers', fn, name, check.describe(v))
  end
  local n = #v
  if n < (min_len or 1) then
    check.fail('%s: %s has %d values, expected at least %d', fn, name, n, min_len or 1)
  end
  for i = 1, n do
    local x = v[i]
    if type(x) ~= 'number' or (not gaps and (x ~= x or x == huge or x == -huge)) then
      check.fail('%s: %s[%d] is %s, expected a %snumber', fn, name, i, check.describe(x),
                 gaps and '' or 'finite ')
    end
  end
  for k in pairs(v) do
    if type(k) ~= 'number' or k < 1 or k > n or k ~= math.floor(k) then
      check.fail('%s: %s has key %s, expected a list 1..%d', fn, name, check.describe(k), n)
    end
  end
  return v
end

-- An optional one-line text (title, label): control characters become spaces.
-- One labelled line of a plot (a series of lines, a path of contour): the options
-- table checked against `accepted`, its label (default `default_label`) and its x and y
-- lists of equal length (NaN marks a gap). `where` names it in errors ('series[2]').
function M.xy(fn, where, v, accepted, default_label)
  M.table(fn, where, v)
  check.options(fn .. ' ' .. where, v, accepted)
  local label = M.text(fn, where .. '.label', v.label) or default_label
  local x = M.numbers(fn, where .. '.x', v.x, 1, true)
  local y = M.numbers(fn, where .. '.y', v.y, 1, true)
  if #y ~= #x then
    check.fail('%s: %s.y has %d values, expected %d (as many as x)', fn, where, #y, #x)
  end
  return label, x, y
end

function M.text(fn, name, v)
  if v == nil then return nil end
  if type(v) ~= 'string' then
    check.fail('%s: %s is %s, expected a string', fn, name, check.describe(v))
  end
  return (v:gsub('%c', ' '))
end

function M.flag(fn, name, v)
  if v == nil then return false end
  return check.boolean(fn, name, v)
end

-- size = {w, h} in pixels (default {800, 500}).
function M.size(fn, v, w, h)
  if v == nil then return w or 800, h or 500 end
  M.table(fn, 'size', v)
  if #v ~= 2 then
    check.fail('%s: size has %d values, expected {width, height} in pixels', fn, #v)
  end
  return check.integer(fn, 'size[1] (width)', v[1], 100, 10000),
         check.integer(fn, 'size[2] (height)', v[2], 100, 10000)
end

-- A number as gnuplot reads it (missing points as NaN).
function M.num(x)
  if x ~= x or x == huge or x == -huge then return 'NaN' end
  return fmt('%.17g', x)
end

-- The lines every plot starts with: terminal, output, title and axis labels.
function M.header(t, w, h, o)
  -- noenhanced: a label's _ or ^ is printed, never read as a subscript
  local out = { gp.terminal(t.ext, w, h), 'set termoption noenhanced', 'set output ' .. gp.OUT,
                'set encoding utf8' }
  if o.title then out[#out + 1] = 'set title ' .. gp.quote(o.title) end
  if o.xlabel then out[#out + 1] = 'set xlabel ' .. gp.quote(o.xlabel) end
  if o.ylabel then out[#out + 1] = 'set ylabel ' .. gp.quote(o.ylabel) end
  return out
end

return M
