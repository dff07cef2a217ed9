-- experiment.result — the Result of one run and a ResultSet of several.
--
--   res.id, res.dir (nil when nothing was written), res.config (the normalised experiment),
--   res.metrics (result.json: test_accuracy, test_loss, train_loss, train_accuracy, time,
--   forward, backward, steps, skipped, epochs, threads, device), res.steps / res.epochs
--   (columns: {columns = {...}, n = rows, loss = {...}, ...}; nil where not measured),
--   res.resumed (true when loaded from a finished run instead of run)
--   res:get(path)              a field of the config or metrics by dotted path
--                              ('name', 'optimizer.rho', 'test_accuracy')
--   tostring(res)              one line: id, name, seed, test accuracy (%), test loss, seconds,
--                              epochs (steps), passes, whether loaded from its record, dir
--
--   set = ResultSet.new(list)  set[i], #set; set:summary{...} (experiment/summary.lua),
--   set:plot{...} and set:series{...} (experiment/plot.lua), set:filter(f) -> ResultSet,
--   tostring(set)              a table of the runs (name, seed, test accuracy %, seconds,
--                              finished), at most 40 listed
--   result.groups(who, set, by) the runs grouped by `by` (summary and plot share it)
--   result.load_run(who, dir)  a finished run directory read back: its four files must be
--                              there, config.json and result.json JSON objects (name a
--                              string, known metrics numbers); errors name who and the file
--   result.object(who, path)   a JSON file that must hold an object (replay uses it)
--   result.METRICS             result.json's numeric fields
--   result.load(dir)           a run directory -> Result; a directory of runs -> ResultSet
--                              of its finished runs (unfinished ones are left out)
local check = require 'moonstep.check'
local json = require 'moonstep.json'
local record = require 'moonstep.experiment.record'
local format = require 'moonstep.experiment.format'

local M = {}

local Result = {}
Result.__index = Result
Result.__name, Result.__var = 'Result', 'res'
M.Result = Result

function Result.new(t) return setmetatable(t, Result) end

-- The value at a dotted path in the config, else in the metrics.
function Result:get(path)
  if type(path) ~= 'string' or path == '' then
    check.fail('Result.get: path is %s, expected a field name such as \'name\' or \'optimizer.rho\'',
               check.describe(path))
  end
  local function walk(t)
    for part in path:gmatch('[^.]+') do
      if type(t) ~= 'table' then return nil end
      t = t[part]
    end
    return t
  end
  local v = walk(self.config)
  if v == nil then v = walk(self.metrics) end
  return v
end

-- A metric by its kind (experiment/format.lua), with its unit.
local function show(m, k)
  local kind = format.kind(k)
  if type(m[k]) ~= 'number' then return '-' end
  local unit = format.unit(kind)
  return format.number(kind, m[k]) .. (unit and (unit == '%' and ' %' or ' ' .. unit) or '')
end

Result.__tostring = function(self)
  local m, c = self.metrics or {}, self.config or {}
  local head = ('Result %s: %s, seed %s'):format(tostring(self.id), tostring(c.name or '?'), tostring(c.seed or '?'))
  if self.metrics == nil then return head .. ', unfinished' .. (self.dir and ('  [' .. self.dir .. ']') or '') end
  return ('%s, test accuracy %s, test loss %s, %s, %s epoch%s (%s steps), passes %s + %s%s%s'):format(
    head, show(m, 'test_accuracy'), show(m, 'test_loss'), show(m, 'time'), show(m, 'epochs'),
    m.epochs == 1 and '' or 's', show(m, 'steps'), show(m, 'forward'), show(m, 'backward'),
    self.resumed and ', loaded from its record' or '', self.dir and ('  [' .. self.dir .. ']') or '')
end

local ResultSet = {}
ResultSet.__index = ResultSet
ResultSet.__name, ResultSet.__var = 'ResultSet', 'set'
M.ResultSet = ResultSet

function ResultSet.new(list, who)
  local t = {}
  for i, r in ipairs(list or {}) do
    if getmetatable(r) ~= Result then
      check.fail('%s: element %d is %s, expected a Result', who or 'ResultSet', i, check.describe(r))
    end
    t[i] = r
  end
  return setmetatable(t, ResultSet)
end

function M.is_set(v) return getmetatable(v) == ResultSet end

function ResultSet:filter(f)
  if type(f) ~= 'function' then
    check.fail('ResultSet.filter: f is %s, expected a function(result) -> boolean', check.describe(f))
  end
  local out = {}
  for _, r in ipairs(self) do
    local ok, keep = pcall(f, r)
    if not ok then check.fail('ResultSet.filter: f raised an error for run %s: %s', tostring(r.id), check.reason(keep)) end
    if keep then out[#out + 1] = r end
  end
  return ResultSet.new(out)
end

function ResultSet:summary(opts) return require('moonstep.experiment.summary').summary(self, opts) end
function ResultSet:plot(opts) return require('moonstep.experiment.plot').plot(self, opts) end
function ResultSet:series(opts) return require('moonstep.experiment.plot').series(self, opts) end

-- The runs, one line each (at most MAX_LISTED, then a count).
local MAX_LISTED = 40
ResultSet.__tostring = function(self)
  local loaded, dirs = 0, {}
  for _, r in ipairs(self) do
    if r.resumed then loaded = loaded + 1 end
    if r.dir then dirs[r.dir:match('^(.*)/[^/]+$') or '.'] = true end
  end
  local parent = next(dirs)
  if parent and next(dirs, parent) then parent = nil end
  local head = ('ResultSet: %d run%s%s%s'):format(#self, #self == 1 and '' or 's',
    parent and (' in ' .. parent) or '', loaded > 0 and (' (%d loaded from finished records)'):format(loaded) or '')
  if #self == 0 then return head end
  local cells = { { 'name', 'seed', 'test_accuracy (%)', 'time (s)', 'finished' } }
  for i, r in ipairs(self) do
    if i > MAX_LISTED then break end
    local c, m = r.config or {}, r.metrics or {}
    cells[#cells + 1] = { (tostring(c.name or r.id or '?'):gsub('%c', ' ')), c.seed ~= nil and tostring(c.seed) or '-',
                          format.number('percent', m.test_accuracy), format.number('seconds', m.time),
                          r.metrics and 'yes' or 'no' }
  end
  local text = format.table(cells, { [1] = true, [5] = true }):gsub('[^\n]+', '  %0')
  if #self > MAX_LISTED then
    text = text .. ('\n  ... and %d more (set[i] is run i)'):format(#self - MAX_LISTED)
  end
  return head .. '\n' .. text
end

-- The groups of a set by `by` (nil: 'name'; a field path, a list of them, or a
-- function(result) -> label): order (labels in order of first appearance), groups
-- (label -> list of Results) and by's text for a table header. Errors name who.
function M.groups(who, set, by)
  if by == nil then by = 'name' end
  local ok = (type(by) == 'string' and by ~= '') or type(by) == 'function'
  if type(by) == 'table' and getmetatable(by) == nil and #by > 0 then
    ok = true
    for _, k in ipairs(by) do if type(k) ~= 'string' or k == '' then ok = false end end
  end
  if not ok then
    check.fail('%s: by is %s, expected a field name, a list of them or a function(result)', who, check.describe(by))
  end
  local function label_of(b, r)
    if type(b) == 'function' then
      local fok, v = pcall(b, r)
      if not fok then check.fail('%s: by(result) raised an error for run %s: %s', who, tostring(r.id), check.reason(v)) end
      return tostring(v)
    end
    if type(b) == 'string' then
      local v = r:get(b)
      if v == nil then return '-' end
      return type(v) == 'number' and json._number_text(v) or tostring(v)
    end
    local parts = {}
    for i, k in ipairs(b) do parts[i] = label_of(k, r) end
    return table.concat(parts, ' ')
  end
  local order, groups = {}, {}
  for _, r in ipairs(set) do
    local g = label_of(by, r)
    if not groups[g] then groups[g] = {}; order[#order + 1] = g end
    table.insert(groups[g], r)
  end
  local text = type(by) == 'string' and by or type(by) == 'table' and table.concat(by, ' ') or 'group'
  return order, groups, text
end

check.methods(Result)
check.methods(ResultSet)

-- A JSON object (not a list, not a scalar) from path, else an error naming who and path.
local function object(who, path)
  local v = record.read_json(who, path)
  if type(v) ~= 'table' or (next(v) ~= nil and #v > 0) then
    check.fail('%s: %s holds %s, expected a JSON object', who, path, type(v) == 'table' and 'a list' or v == nil and 'null' or check.describe(v))
  end
  return v
end
M.object = object

-- result.json's fields that are numbers when present; config fields a Result relies on.
local NUMBERS = { 'test_accuracy', 'test_loss', 'train_loss', 'train_accuracy', 'time', 'forward', 'backward',
                  'steps', 'skipped', 'epochs', 'threads' }
M.METRICS = NUMBERS

-- A finished run directory (config.json, result.json, steps.csv, epochs.csv).
function M.load_run(who, dir)
  for _, f in ipairs { 'config.json', 'result.json', 'steps.csv', 'epochs.csv' } do
    if not record.exists(dir .. '/' .. f) then
      check.fail('%s: %s has no %s (a run directory holds config.json, steps.csv, epochs.csv and result.json)',
                 who, dir, f)
    end
  end
  local cfg = object(who, dir .. '/config.json')
  local metrics = object(who, dir .. '/result.json')
  for _, k in ipairs(NUMBERS) do
    if metrics[k] ~= nil and type(metrics[k]) ~= 'number' then
      check.fail('%s: %s/result.json: %s is %s, expected a number', who, dir, k, check.describe(metrics[k]))
    end
  end
  if type(cfg.name) ~= 'string' then
    check.fail('%s: %s/config.json: name is %s, expected a string', who, dir, check.describe(cfg.name))
  end
  if cfg.seed ~= nil and type(cfg.seed) ~= 'number' then
    check.fail('%s: %s/config.json: seed is %s, expected a number', who, dir, check.describe(cfg.seed))
  end
  local env = cfg.moonstep
  cfg.moonstep = nil
  local steps = record.read_csv(who, dir .. '/steps.csv')
  local epochs = record.read_csv(who, dir .. '/epochs.csv')
  return Result.new { id = dir:match('([^/]+)/*$'), dir = dir, config = cfg, metrics = metrics, steps = steps,
                      epochs = epochs, env = env }
end

function M.load(dir)
  local who = 'experiment.load'
  check.path(who, dir)
  dir = dir:gsub('(.)/+$', '%1')
  if not record.isdir(dir) then check.fail('%s: %s is not a directory', who, dir) end
  if record.exists(dir .. '/result.json') then return M.load_run(who, dir) end
  if record.exists(dir .. '/config.json') then
    check.fail('%s: %s is an unfinished run (no result.json): run it again to finish it', who, dir)
  end
  local list = {}
  for _, name in ipairs(record.list(who, dir)) do
    local sub = dir .. '/' .. name
    if record.exists(sub .. '/result.json') then list[#list + 1] = M.load_run(who, sub) end
  end
  if #list == 0 then check.fail('%s: %s holds no finished run (no <run>/result.json)', who, dir) end
  return ResultSet.new(list)
end

return M
