-- experiment.format — numbers of experiment metrics as text for people (tables, tostring).
--
--   kind = format.kind(metric)         'percent' | 'loss' | 'seconds' | 'count' | 'number',
--                                      by the metric's name (its last dotted part):
--       *accuracy*                     'percent': a fraction in [0, 1] shown as a percentage
--                                      with 2 decimals (0.85237 -> '85.24')
--       *loss*                         'loss': 4 significant digits (0.048583 -> '0.04858',
--                                      2.29 -> '2.290'; no exponent from 1e-4 to 1e15)
--       time, *_time, seconds          'seconds': 1 decimal from 1 s up (12.34 -> '12.3'), 2
--                                      significant digits below (0.05522 -> '0.055')
--       forward, backward, passes,     'count': whole numbers as integers ('16'); a fractional
--       steps, epochs, skipped         value (a mean over LookSAM's seeds) with 1 decimal
--       anything else                  'number': integers whole, else 4 significant digits
--   unit = format.unit(kind)           '%' for percent, 's' for seconds, else nil
--   s = format.number(kind, v)         v as text by its kind; nan, inf and -inf spelled out
--   s = format.spread(kind, sd, mean)  a standard deviation beside its mean's text `mean`:
--                                      with the mean's decimals (12.7 ± 0.4, 0.4050 ± 0.0071),
--                                      so the two read at one precision; counts by their rule
--   f = format.formatter(who, spec)    a user's format: a string.format pattern ('%.3f') or
--                                      a function(v) -> string; returns function(v) -> string
--                                      whose errors name who (checked once on 0.5 here)
--   text = format.table(cells [, left]) rows of strings (cells[1] the header) as aligned
--                                      text: a rule under the header, columns 2 spaces
--                                      apart, numbers right-aligned; the columns in the set
--                                      `left` (default {[1] = true}) left-aligned
--   w = format.width(s)                display width of UTF-8 text (± is one column)
local check = require 'moonstep.check'

local M = {}

local fmt, floor, abs, huge = string.format, math.floor, math.abs, math.huge

local COUNTS = { forward = true, backward = true, passes = true, steps = true, epochs = true, skipped = true,
                 step = true, epoch = true }

function M.kind(metric)
  local leaf = (type(metric) == 'string' and metric:match('([^.]+)$') or ''):lower()
  if leaf:find('accuracy', 1, true) then return 'percent' end
  if leaf:find('loss', 1, true) then return 'loss' end
  if leaf == 'time' or leaf:match('_time$') or leaf == 'seconds' then return 'seconds' end
  if COUNTS[leaf] then return 'count' end
  return 'number'
end

function M.unit(kind)
  if kind == 'percent' then return '%' end
  if kind == 'seconds' then return 's' end
  return nil
end

-- d significant digits, trailing zeros kept (a column of them lines up: 2.290 above
-- 1.744), without an exponent for magnitudes from 1e-4 below 1e15.
local function significant(v, d)
  if v == 0 then return '0' end
  if abs(v) >= 10 ^ d and abs(v) < 1e15 then return fmt('%.0f', v) end
  return (fmt('%#.' .. d .. 'g', v):gsub('%.$', ''))
end

local function integral(v) return v == floor(v) and abs(v) < 1e15 end

function M.number(kind, v)
  if type(v) ~= 'number' then return '-' end
  if v ~= v then return 'nan' end
  if v == huge then return 'inf' end
  if v == -huge then return '-inf' end
  if kind == 'percent' then return fmt('%.2f', 100 * v) end
  if kind == 'loss' then return significant(v, 4) end
  if kind == 'seconds' then
    if abs(v) >= 1 then return fmt('%.1f', v) end
    return significant(v, 2)
  end
  if kind == 'count' then return integral(v) and fmt('%d', v) or fmt('%.1f', v) end
  return integral(v) and fmt('%d', v) or significant(v, 4)
end

function M.spread(kind, sd, mean)
  if kind == 'count' or type(sd) ~= 'number' or sd ~= sd or sd == huge or type(mean) ~= 'string'
     or mean:find('[eE]') or not mean:find('^%-?%d') then
    return M.number(kind, sd)
  end
  local decimals = #(mean:match('%.(%d*)$') or '')
  return fmt('%.' .. decimals .. 'f', kind == 'percent' and 100 * sd or sd)
end

function M.formatter(who, spec)
  local f
  if type(spec) == 'string' then
    local ok, s = pcall(fmt, spec, 0.5)
    if not ok or type(s) ~= 'string' then
      check.fail('%s is %s, expected a string.format pattern for one number such as \'%%.3f\'', who,
                 check.describe(spec))
    end
    f = function(v) return fmt(spec, v) end
  elseif type(spec) == 'function' then
    f = function(v)
      local ok, s = pcall(spec, v)
      if not ok then check.fail('%s raised an error on %s: %s', who, check.describe(v), check.reason(s)) end
      if type(s) ~= 'string' and type(s) ~= 'number' then
        check.fail('%s returned %s for %s, expected a string', who, check.describe(s), check.describe(v))
      end
      return tostring(s)
    end
    f(0.5)
  else
    check.fail('%s is %s, expected a string.format pattern such as \'%%.3f\' or a function(v) -> string', who,
               check.describe(spec))
  end
  return f
end

function M.width(s) return #s - select(2, s:gsub('[\128-\191]', '')) end

function M.table(cells, left)
  left = left or { [1] = true }
  local w = {}
  for _, r in ipairs(cells) do
    for j, c in ipairs(r) do w[j] = math.max(w[j] or 0, M.width(c)) end
  end
  local lines = {}
  for i, r in ipairs(cells) do
    local parts = {}
    for j, c in ipairs(r) do
      local pad = (' '):rep(w[j] - M.width(c))
      parts[j] = left[j] and (c .. pad) or (pad .. c)
    end
    lines[#lines + 1] = (table.concat(parts, '  '):gsub('%s+$', ''))
    if i == 1 then
      local rule = {}
      for j = 1, #r do rule[j] = ('-'):rep(w[j]) end
      lines[#lines + 1] = table.concat(rule, '  ')
    end
  end
  return table.concat(lines, '\n')
end

return M
