-- experiment.logger — Torch7's optim.Logger for scripts that do not use the runner.
--
--   local log = ms.experiment.Logger(path [, {names = {'epoch', 'loss'}}])
--   log:names{'epoch', 'loss'}       the columns (alias log:setNames); once, before rows
--   log:add{1, 0.5}                  a row by position, or log:add{loss = 0.5, epoch = 1}
--                                    by name (a missing column is empty: not measured)
--   log:plot{x = 'epoch', y = 'loss' | {'loss', 'acc'}, out = 'loss.png', title =, logy =}
--                                    ms.plot.lines, one line per y column (x default: the
--                                    row number); returns out, or nil and a reason
--   log:close()                      closes the file (rows are flushed as they come)
--   log.rows                         the columns in memory ({columns =, n =, <name> = {...}})
--   tostring(log)                    'Logger(path): N rows of a, b'
-- The file is CSV (a header line, then one line per add), truncated when the Logger is
-- made; values are numbers (nil: empty). Without names, the first add names the columns:
-- by position '1', '2', ...; by name the sorted names. ms.experiment.read_csv(path) reads
-- it back.
local check = require 'moonstep.check'
local record = require 'moonstep.experiment.record'

local M = {}

local Logger = {}
Logger.__index = Logger
Logger.__name, Logger.__var = 'Logger', 'log'
M.Logger = Logger

local set_names   -- below

function M.new(path, opts)
  local who = 'Logger'
  check.path(who, path)
  opts = check.options(who, opts, { 'names' })
  local f, err = io.open(path, 'w')
  if not f then check.fail('%s: cannot write %s: %s', who, path, record.io_error(path, err)) end
  local self = setmetatable({ path = path, f = f, rows = { columns = {}, n = 0 } }, Logger)
  if opts.names ~= nil then set_names(self, who, opts.names) end
  return self
end

set_names = function(self, who, names)
  if type(names) ~= 'table' or getmetatable(names) ~= nil or #names == 0 then
    check.fail('%s: names is %s, expected a list of column names', who, check.describe(names))
  end
  if #self.rows.columns > 0 then
    check.fail('%s: the columns are already named (%s); names are set once, before the first row',
               who, table.concat(self.rows.columns, ', '))
  end
  local seen = {}
  for i, n in ipairs(names) do
    if type(n) ~= 'string' or n == '' or n:find('[,"\n\r]') then
      check.fail('%s: names[%d] is %s, expected a non-empty name without commas, quotes or newlines', who, i, check.describe(n))
    end
    if seen[n] then check.fail('%s: names[%d] %s appears twice', who, i, check.describe(n)) end
    if n == 'n' or n == 'columns' then
      check.fail('%s: names[%d] is %s, which log.rows reserves (rows.n, rows.columns), expected another name', who, i,
                 check.describe(n))
    end
    seen[n] = true
  end
  local cols = {}
  for i, n in ipairs(names) do cols[i] = n; self.rows[n] = {} end
  self.rows.columns = cols
  self.index = {}
  for i, n in ipairs(cols) do self.index[n] = i end
  self:_write(table.concat(cols, ',') .. '\n')
  return self
end

function Logger:_write(s)
  if not self.f then check.fail('the logger of %s is closed (log:close() was called)', self.path) end
  local ok, err = self.f:write(s)
  if not ok then check.fail('cannot write %s: %s', self.path, tostring(err)) end
  self.f:flush()
end

function Logger:names(names) return set_names(self, 'Logger.names', names) end
function Logger:setNames(names) return set_names(self, 'Logger.setNames', names) end

function Logger:add(row)
  local who = 'Logger.add'
  if type(row) ~= 'table' or getmetatable(row) ~= nil then
    check.fail('%s: row is %s, expected a table of values by position or by name', who, check.describe(row))
  end
  local by_name = next(row) ~= nil and rawget(row, 1) == nil
  if #self.rows.columns == 0 then
    local names = {}
    if by_name then
      for k in pairs(row) do names[#names + 1] = tostring(k) end
      table.sort(names)
    else
      for i = 1, #row do names[i] = tostring(i) end
    end
    if #names == 0 then check.fail('%s: row is empty and no column names were set', who) end
    set_names(self, who, names)
  end
  local cols, values = self.rows.columns, {}
  for k, v in pairs(row) do
    local i = by_name and self.index[k] or (type(k) == 'number' and k >= 1 and k <= #cols and k % 1 == 0 and k)
    if not i then
      check.fail('%s: row has the key %s, expected %s', who, check.describe(k),
                 by_name and ('a column name (' .. table.concat(cols, ', ') .. ')') or ('positions 1..' .. #cols))
    end
    if type(v) ~= 'number' then
      check.fail('%s: %s is %s, expected a number', who, by_name and k or ('row[' .. k .. ']'), check.describe(v))
    end
    values[i] = v
  end
  local n = self.rows.n + 1
  local fields = {}
  for i, c in ipairs(cols) do
    self.rows[c][n] = values[i]
    fields[i] = record.number(values[i])
  end
  self.rows.n = n
  self:_write(table.concat(fields, ',') .. '\n')
  return self
end

function Logger:close()
  if self.f then self.f:close(); self.f = nil end
end

function Logger:plot(opts)
  local who = 'Logger.plot'
  opts = check.options(who, opts, { 'x', 'y', 'out', 'title', 'xlabel', 'ylabel', 'logx', 'logy', 'size' })
  local rows, cols = self.rows, self.rows.columns
  if rows.n == 0 then check.fail('%s: the logger has no rows', who) end
  local function column(name, what)
    if type(name) ~= 'string' or not rows[name] then
      check.fail('%s: %s is %s, expected a column name (%s)', who, what, check.describe(name), table.concat(cols, ', '))
    end
    return rows[name]
  end
  local xs = opts.x ~= nil and column(opts.x, 'x') or nil
  local ys = opts.y
  if ys == nil then
    ys = {}
    for _, c in ipairs(cols) do if c ~= opts.x then ys[#ys + 1] = c end end
  elseif type(ys) == 'string' then ys = { ys } end
  if type(ys) ~= 'table' then check.fail('%s: y is %s, expected a column name or a list of them', who, check.describe(ys)) end
  if opts.out == nil then check.fail('%s: out is nil, expected the image path (.png or .svg)', who) end
  check.path(who, opts.out)
  local series = {}
  for _, name in ipairs(ys) do
    local col = column(name, 'y')
    local s = { label = name, x = {}, y = {} }
    for i = 1, rows.n do
      local xv = xs and xs[i] or i
      if col[i] ~= nil and xv ~= nil then s.x[#s.x + 1], s.y[#s.y + 1] = xv, col[i] end
    end
    if #s.x > 0 then series[#series + 1] = s end            -- a column never filled is left out
  end
  if #series == 0 then
    check.fail('%s: y is %s, expected one or more columns with values (%s)', who,
               #ys == 0 and 'an empty list' or table.concat(ys, ', ') .. ' (no values)', table.concat(cols, ', '))
  end
  local ok, lines = pcall(function() return require('moonstep.plot').lines end)
  if not ok or type(lines) ~= 'function' then return nil, 'ms.plot is not available (lua/moonstep/plot)' end
  return check.protect(who, lines, { out = opts.out, title = opts.title, xlabel = opts.xlabel or opts.x or 'row',
                                     ylabel = opts.ylabel, logx = opts.logx, logy = opts.logy, size = opts.size,
                                     series = series })
end

Logger.__tostring = function(self)
  local cols = self.rows.columns
  return ('Logger(%s): %d rows%s'):format(self.path, self.rows.n,
                                          #cols > 0 and (' of ' .. table.concat(cols, ', ')) or '')
end

check.methods(Logger)

return M
