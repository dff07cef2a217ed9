-- experiment.summary — mean ± std of final metrics over the runs of each group.
--
--   s = summary.summary(set [, {by = 'name', metrics = {'test_accuracy', 'time', 'forward',
--                               'backward'}, format = {metric = '%.3f' | function(v)}}])
--     by: a field path of the config or metrics ('name', 'lr', 'optimizer.rho'), a list of
--     them (the group is their values joined by ' '), or a function(result) -> label.
--     Groups keep the order in which they first appear in the set.
--     std is the sample standard deviation (n - 1); 0 for a group of one run. Runs where a
--     metric is missing (not measured, or a nan written as null) are left out of that
--     metric's mean (its own count is s.rows[i].count[metric]); a metric that no run has
--     and that is no result.json or config field is an error (a typo).
--     format: per metric, how its mean and std are shown in the tables (tostring, markdown):
--     a string.format pattern or a function(v) -> string given the raw value (a fraction
--     for accuracies); without one, experiment/format.lua's rule for the metric's kind:
--     accuracies as percentages with 2 decimals (the header says '(%)'), losses 4
--     significant digits, seconds 1 decimal (2 significant digits below 1 s; header '(s)'),
--     pass counts whole (1 decimal when a mean is fractional).
--   s.rows = { {group =, n =, mean = {metric = v}, std = {...}, count = {...}}, ... }
--   s.by, s.metrics
--   tostring(s)        the terminal table: numbers right-aligned, 'mean ± std' where the
--                      metric has more than one value in the group, else the value alone;
--                      '-' where it has none. The n column is always there.
--   s:markdown()       the same table in Markdown (a header row, numbers right-aligned)
--   s:write(path)      .md: Markdown; .csv: raw numbers in full precision,
--                      group,n,<m>_mean,<m>_std,... (std 0 for one run); else the text table
local check = require 'moonstep.check'
local json = require 'moonstep.json'
local format = require 'moonstep.experiment.format'
local result = require 'moonstep.experiment.result'

local M = {}

local Summary = {}
Summary.__index = Summary
Summary.__name, Summary.__var = 'Summary', 's'
M.Summary = Summary

local DEFAULT_METRICS = { 'test_accuracy', 'time', 'forward', 'backward' }
local KNOWN_CONFIG = { 'name', 'model', 'data', 'optimizer', 'lr', 'epochs', 'batch_size', 'device', 'seed', 'threads',
                       'log_every' }       -- spec.FIELDS (not required here: spec loads the runtime)

function M.summary(set, opts)
  local who = 'ResultSet.summary'
  opts = check.options(who, opts, { 'by', 'metrics', 'format' })
  local metrics = opts.metrics == nil and DEFAULT_METRICS or opts.metrics
  if type(metrics) == 'string' then metrics = { metrics } end
  if type(metrics) ~= 'table' or #metrics == 0 then
    check.fail('%s: metrics is %s, expected a list of metric names such as {\'test_accuracy\', \'time\'}',
               who, check.describe(metrics))
  end
  local count = 0
  for _ in pairs(metrics) do count = count + 1 end
  if getmetatable(metrics) ~= nil or count ~= #metrics then
    check.fail('%s: metrics is %s, expected a list 1..n of metric names', who, check.describe(metrics))
  end
  for i, m in ipairs(metrics) do
    if type(m) ~= 'string' or m == '' then
      check.fail('%s: metrics[%d] is %s, expected a metric name such as \'test_accuracy\'', who, i, check.describe(m))
    end
  end
  local formats = {}
  if opts.format ~= nil then
    if type(opts.format) ~= 'table' or getmetatable(opts.format) ~= nil then
      check.fail('%s: format is %s, expected a table metric -> \'%%.3f\' or function(v) -> string', who,
                 check.describe(opts.format))
    end
    local known = {}
    for _, m in ipairs(metrics) do known[m] = true end
    for k, f in pairs(opts.format) do
      if not known[k] then
        check.fail('%s: format has the key %s, expected one of the metrics (%s)', who, check.describe(k),
                   table.concat(metrics, ', '))
      end
      formats[k] = format.formatter(('%s: format.%s'):format(who, k), f)
    end
  end
  -- a name that no run has and that is no known field is a typo, not a missing value
  local known = {}
  for _, k in ipairs(result.METRICS) do known[k] = true end
  for _, k in ipairs(KNOWN_CONFIG) do known[k] = true end
  for _, m in ipairs(metrics) do
    local found = known[m:match('^[^.]+')]
    for _, r in ipairs(set) do found = found or r:get(m) ~= nil end
    if not found then
      check.fail('%s: no run has a metric %s, expected a result.json field (%s) or a config field', who,
                 check.describe(m), table.concat(result.METRICS, ', '))
    end
  end
  local order, groups, by_text = result.groups(who, set, opts.by)
  local rows = {}
  for _, g in ipairs(order) do
    local row = { group = g, n = #groups[g], values = {} }
    for _, m in ipairs(metrics) do
      row.values[m] = {}
      for _, r in ipairs(groups[g]) do
        local v = r:get(m)
        if type(v) == 'number' and v == v then table.insert(row.values[m], v) end
      end
    end
    rows[#rows + 1] = row
  end
  for _, row in ipairs(rows) do
    row.mean, row.std, row.count = {}, {}, {}
    for _, m in ipairs(metrics) do
      local vs = row.values[m]
      local n, sum = #vs, 0
      for _, v in ipairs(vs) do sum = sum + v end
      row.count[m] = n
      if n > 0 then
        local mean = sum / n
        local ss = 0
        for _, v in ipairs(vs) do ss = ss + (v - mean) ^ 2 end
        row.mean[m] = mean
        row.std[m] = n > 1 and math.sqrt(ss / (n - 1)) or 0
      end
    end
    row.values = nil
  end
  local s = setmetatable({ rows = rows, by = by_text, metrics = { unpack(metrics) }, _formats = formats }, Summary)
  s:_cells()                -- a user's format that fails does so here, under this call
  return s
end

-- The header of metric m's column, the function that shows its mean and the one that
-- shows its std (given the mean's text).
function Summary:_column(m)
  local f = self._formats and self._formats[m]
  if f then return m, f, f end
  local kind = format.kind(m)
  local unit = format.unit(kind)
  return unit and ('%s (%s)'):format(m, unit) or m, function(v) return format.number(kind, v) end,
         function(sd, mean_text) return format.spread(kind, sd, mean_text) end
end

-- The table as rows of strings: header first.
function Summary:_cells()
  local out = { { self.by, 'n' } }
  local shows, spreads = {}, {}
  for i, m in ipairs(self.metrics) do out[1][#out[1] + 1], shows[i], spreads[i] = self:_column(m) end
  for _, row in ipairs(self.rows) do
    local r = { (tostring(row.group):gsub('%c', ' ')), tostring(row.n) }     -- one line per row
    for i, m in ipairs(self.metrics) do
      local mean, count = row.mean[m], row.count and row.count[m] or row.n
      local cell = '-'
      if mean ~= nil then
        cell = shows[i](mean)
        if (count or 0) > 1 and row.std[m] ~= nil then cell = cell .. ' ± ' .. spreads[i](row.std[m], cell) end
      end
      r[#r + 1] = cell
    end
    out[#out + 1] = r
  end
  return out
end

Summary.__tostring = function(self) return format.table(self:_cells()) end

function Summary:markdown()
  local cells = self:_cells()
  local lines = {}
  for i, r in ipairs(cells) do
    local esc = {}
    for j, c in ipairs(r) do esc[j] = (c:gsub('|', '\\|')) end
    lines[#lines + 1] = '| ' .. table.concat(esc, ' | ') .. ' |'
    if i == 1 then
      local rule = { '---' }
      for j = 2, #r do rule[j] = '---:' end
      lines[#lines + 1] = '| ' .. table.concat(rule, ' | ') .. ' |'
    end
  end
  return table.concat(lines, '\n') .. '\n'
end

-- A CSV field: '' for nothing, nan/inf spelled as the run CSVs spell them, else the
-- shortest text that reads back as the same double.
local function record_number(v)
  if v == nil then return '' end
  if v ~= v then return 'nan' end
  if v == math.huge then return 'inf' end
  if v == -math.huge then return '-inf' end
  return json._number_text(v)
end

function Summary:_csv()
  local head = { 'group', 'n' }
  for _, m in ipairs(self.metrics) do head[#head + 1] = m .. '_mean'; head[#head + 1] = m .. '_std' end
  local lines = { table.concat(head, ',') }
  for _, row in ipairs(self.rows) do
    local r = { '"' .. tostring(row.group):gsub('"', '""') .. '"', tostring(row.n) }
    for _, m in ipairs(self.metrics) do
      r[#r + 1] = record_number(row.mean[m])
      r[#r + 1] = record_number(row.std[m])
    end
    lines[#lines + 1] = table.concat(r, ',')
  end
  return table.concat(lines, '\n') .. '\n'
end

function Summary:write(path)
  check.path('Summary.write', path)
  local text
  if path:match('%.md$') then text = self:markdown()
  elseif path:match('%.csv$') then text = self:_csv()
  else text = tostring(self) .. '\n' end
  json._write_text('Summary.write', path, text)
  return path
end

check.methods(Summary)

return M
