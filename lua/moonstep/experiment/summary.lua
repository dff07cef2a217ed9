-- experiment.summary — mean ± std of final metrics over the runs of each group.
--
--   s = summary.summary(set [, {by = 'name', metrics = {'test_accuracy', 'time', 'forward',
--                               'backward'}}])
--     by: a field path of the config or metrics ('name', 'lr', 'optimizer.rho'), a list of
--     them (the group is their values joined by ' '), or a function(result) -> label.
--     Groups keep the order in which they first appear in the set.
--     std is the sample standard deviation (n - 1); 0 for a group of one run. Runs where a
--     metric is missing (not measured, or a nan written as null) are left out of that
--     metric's mean (its own count is s.rows[i].count[metric]).
--   s.rows = { {group =, n =, mean = {metric = v}, std = {...}, count = {...}}, ... }
--   s.by, s.metrics
--   tostring(s)        the terminal table (columns aligned)
--   s:markdown()       the Markdown table
--   s:write(path)      .md: Markdown; .csv: group,n,<m>_mean,<m>_std,...; else the text table
local check = require 'moonstep.check'
local json = require 'moonstep.json'

local M = {}

local Summary = {}
Summary.__index = Summary
Summary.__name, Summary.__var = 'Summary', 's'
M.Summary = Summary

local DEFAULT_METRICS = { 'test_accuracy', 'time', 'forward', 'backward' }

local function label_of(by, r)
  if type(by) == 'function' then return tostring(by(r)) end
  if type(by) == 'string' then
    local v = r:get(by)
    return v == nil and '-' or (type(v) == 'number' and json._number_text(v) or tostring(v))
  end
  local parts = {}
  for i, k in ipairs(by) do parts[i] = label_of(k, r) end
  return table.concat(parts, ' ')
end

local function by_name(by)
  if type(by) == 'string' then return by end
  if type(by) == 'table' then return table.concat(by, ' ') end
  return 'group'
end

function M.summary(set, opts)
  local who = 'ResultSet.summary'
  opts = check.options(who, opts, { 'by', 'metrics' })
  local by = opts.by == nil and 'name' or opts.by
  local ok_by = type(by) == 'string' or type(by) == 'function'
  if type(by) == 'table' and getmetatable(by) == nil and #by > 0 then
    ok_by = true
    for _, k in ipairs(by) do if type(k) ~= 'string' then ok_by = false end end
  end
  if not ok_by then
    check.fail('%s: by is %s, expected a field name, a list of them or a function(result)', who, check.describe(by))
  end
  local metrics = opts.metrics == nil and DEFAULT_METRICS or opts.metrics
  if type(metrics) == 'string' then metrics = { metrics } end
  if type(metrics) ~= 'table' or #metrics == 0 then
    check.fail('%s: metrics is %s, expected a list of metric names such as {\'test_accuracy\', \'time\'}',
               who, check.describe(metrics))
  end
  for i, m in ipairs(metrics) do
    if type(m) ~= 'string' then check.fail('%s: metrics[%d] is %s, expected a name', who, i, check.describe(m)) end
  end
  local rows, index = {}, {}
  for _, r in ipairs(set) do
    local g = label_of(by, r)
    local row = index[g]
    if not row then
      row = { group = g, n = 0, values = {} }
      for _, m in ipairs(metrics) do row.values[m] = {} end
      rows[#rows + 1], index[g] = row, row
    end
    row.n = row.n + 1
    for _, m in ipairs(metrics) do
      local v = r:get(m)
      if type(v) == 'number' and v == v then table.insert(row.values[m], v) end
    end
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
  return setmetatable({ rows = rows, by = by_name(by), metrics = { unpack(metrics) } }, Summary)
end

-- A number for a table cell: integers whole, large ones with one decimal, else 4 digits.
local function cell_number(v)
  if v == math.floor(v) and math.abs(v) < 1e15 then return ('%d'):format(v) end
  if math.abs(v) >= 100 then return ('%.1f'):format(v) end
  return ('%.4g'):format(v)
end

-- The table as rows of strings: header first.
function Summary:_cells()
  local out = { { self.by, 'n' } }
  for _, m in ipairs(self.metrics) do out[1][#out[1] + 1] = m end
  for _, row in ipairs(self.rows) do
    local r = { row.group, tostring(row.n) }
    for _, m in ipairs(self.metrics) do
      local mean = row.mean[m]
      r[#r + 1] = mean == nil and '-' or (cell_number(mean) .. ' ± ' .. cell_number(row.std[m]))
    end
    out[#out + 1] = r
  end
  return out
end

-- Display width (± is two bytes in UTF-8, one column).
local function width(s) return #s - select(2, s:gsub('[\128-\191]', '')) end

Summary.__tostring = function(self)
  local cells = self:_cells()
  local w = {}
  for _, r in ipairs(cells) do
    for j, c in ipairs(r) do w[j] = math.max(w[j] or 0, width(c)) end
  end
  local lines = {}
  for i, r in ipairs(cells) do
    local parts = {}
    for j, c in ipairs(r) do
      local pad = (' '):rep(w[j] - width(c))
      parts[j] = j == 1 and (c .. pad) or (pad .. c)     -- labels left, numbers right
    end
    lines[#lines + 1] = table.concat(parts, '  ')
    if i == 1 then
      local rule = {}
      for j = 1, #r do rule[j] = ('-'):rep(w[j]) end
      lines[#lines + 1] = table.concat(rule, '  ')
    end
  end
  return table.concat(lines, '\n')
end

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

function Summary:_csv()
  local head = { 'group', 'n' }
  for _, m in ipairs(self.metrics) do head[#head + 1] = m .. '_mean'; head[#head + 1] = m .. '_std' end
  local lines = { table.concat(head, ',') }
  for _, row in ipairs(self.rows) do
    local r = { '"' .. row.group:gsub('"', '""') .. '"', tostring(row.n) }
    for _, m in ipairs(self.metrics) do
      r[#r + 1] = row.mean[m] and json._number_text(row.mean[m]) or ''
      r[#r + 1] = row.std[m] and json._number_text(row.std[m]) or ''
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
