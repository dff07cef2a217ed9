-- experiment.result — the Result of one run and a ResultSet of several.
--
--   res.id, res.dir (nil when nothing was written), res.config (the normalised experiment),
--   res.metrics (result.json: test_accuracy, test_loss, train_loss, train_accuracy, time,
--   forward, backward, steps, skipped, epochs, threads, device), res.steps / res.epochs
--   (columns: {columns = {...}, n = rows, loss = {...}, ...}; nil where not measured),
--   res.resumed (true when loaded from a finished run instead of run)
--   res:get(path)              a field of the config or metrics by dotted path
--                              ('name', 'optimizer.rho', 'test_accuracy')
--   tostring(res)              one line
--
--   set = ResultSet.new(list)  set[i], #set; set:summary{...} (experiment/summary.lua),
--   set:plot{...} and set:series{...} (experiment/plot.lua), set:filter(f) -> ResultSet, tostring(set)
--   result.load_run(who, dir)  a finished run directory read back
--   result.load(dir)           a run directory -> Result; a directory of runs -> ResultSet
--                              of its finished runs (unfinished ones are left out)
local check = require 'moonstep.check'
local json = require 'moonstep.json'
local record = require 'moonstep.experiment.record'

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

local function num(v, f)
  if type(v) ~= 'number' then return '-' end
  return (f or '%.4g'):format(v)
end

Result.__tostring = function(self)
  local m = self.metrics or {}
  return ('Result %s: test_accuracy %s  test_loss %s  train_loss %s  %s epochs  %s steps  %s s  passes %s+%s%s'):format(
    self.id, num(m.test_accuracy), num(m.test_loss), num(m.train_loss), num(m.epochs, '%d'), num(m.steps, '%d'),
    num(m.time, '%.2f'), num(m.forward, '%d'), num(m.backward, '%d'), self.dir and ('  [' .. self.dir .. ']') or '')
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
  for _, r in ipairs(self) do if f(r) then out[#out + 1] = r end end
  return ResultSet.new(out)
end

function ResultSet:summary(opts) return require('moonstep.experiment.summary').summary(self, opts) end
function ResultSet:plot(opts) return require('moonstep.experiment.plot').plot(self, opts) end
function ResultSet:series(opts) return require('moonstep.experiment.plot').series(self, opts) end

ResultSet.__tostring = function(self)
  local lines = { ('ResultSet: %d runs'):format(#self) }
  for _, r in ipairs(self) do lines[#lines + 1] = '  ' .. tostring(r) end
  return table.concat(lines, '\n')
end

check.methods(Result)
check.methods(ResultSet)

-- A finished run directory (config.json, result.json, steps.csv, epochs.csv).
function M.load_run(who, dir)
  local cfg = json.read(dir .. '/config.json')
  local metrics = json.read(dir .. '/result.json')
  if type(cfg) ~= 'table' or type(metrics) ~= 'table' then
    check.fail('%s: %s holds a config.json or result.json that is not a JSON object', who, dir)
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
