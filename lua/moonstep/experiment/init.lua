-- moonstep.experiment (ms.experiment) — experiments as data: run, resume, summarise, plot.
--
--   local E = ms.experiment
--   local list = E.grid({ optimizer = {'SGD', 'Adam'}, lr = {0.1, 0.01}, seed = {1, 2, 3} },
--                       { epochs = 2, data = {train = 10000} })
--   local set = E.run_all(list, { out = 'results/x' })     -- resumes: finished runs skipped
--   print(set)                                              -- the runs, one line each
--   print(set:summary{ by = 'name' })                       -- mean ± std over seeds
--   set:plot{ y = 'loss', x = 'passes', out = 'results/x/loss.png', smooth = 25 }
--
--   E.run(exp [, {out =, quiet =, resume = true, on_step =}])  -> Result (experiment/run.lua;
--                                                  on_step(row): after each logged step, the
--                                                  steps.csv values in order, a reused table)
--   E.run_all(list [, opts])                       -> ResultSet
--   E.grid(axes [, base])                          -> list of experiments (experiment/grid.lua)
--   E.normalize(exp)                               -> the canonical experiment (spec.lua)
--   E.id(exp)                                      -> '<name>-s<seed>-<8 hex>' (its directory)
--   E.load(dir)                                    -> Result (a run dir) or ResultSet (a dir of runs)
--   E.replay(path [, {out =, quiet =}])            -> Replay report (experiment/replay.lua)
--   E.summary(results [, {by =, metrics =, format =}]) -> Summary (experiment/summary.lua;
--                                                  numbers shown per metric kind: format.lua)
--   set:plot{y =, x =, by =, out =, bands =, smooth =, logx =, logy =, ...} (experiment/plot.lua)
--   E.Logger(path [, {names =}])                   -> Logger (Torch7's optim.Logger)
--   E.read_csv(path)                               -> columns {columns =, n =, <name> = {...}}
--   E.ResultSet(list)                              -> a ResultSet of Results
-- An experiment (a plain table: no functions, so it can be saved as JSON and replayed):
--   { name =, model = {'mlp', sizes = {784, 256, 10}, activation = 'relu'} | {'cnn'},
--     data = {'fashion_mnist', train = N, test = M, normalize = true},
--     optimizer = 'Adam' | {'SAM', base = {'SGD', lr = 0.05, momentum = 0.9}, rho = 0.05}
--                 | {'SPSA', preset = 'zeroth_learn'} (options: experiment/optimizer.lua);
--                 schedules as data: lr = {schedule = 'cosine', init = 0.1, T_max = 1000} or
--                 {'warmup', steps = 100, schedule = {schedule = 'cosine', ...}},
--     lr =, epochs = 1, batch_size = 128, device = 'auto', seed = 0, threads =, log_every = 1 }
-- On disk: <out>/<id>/config.json, steps.csv, epochs.csv, result.json (written last,
-- atomically: its presence marks the run finished). Columns: experiment/train.lua.
local check = require 'moonstep.check'
local spec = require 'moonstep.experiment.spec'
local record = require 'moonstep.experiment.record'
local run = require 'moonstep.experiment.run'
local result = require 'moonstep.experiment.result'
local logger = require 'moonstep.experiment.logger'

local M = {}

M.run = run.run
M.run_all = run.run_all
M.grid = function(axes, base) return require('moonstep.experiment.grid').grid(axes, base) end
M.load = result.load
M.replay = function(path, opts) return require('moonstep.experiment.replay').replay(path, opts) end
M.Logger = logger.new

function M.normalize(exp) return spec.normalize('experiment.normalize', exp) end
function M.id(exp) return record.id(spec.normalize('experiment.id', exp)) end

function M.summary(results, opts)
  if type(results) ~= 'table' then
    check.fail('experiment.summary: results is %s, expected a ResultSet or a list of Results', check.describe(results))
  end
  if not result.is_set(results) then results = result.ResultSet.new(results, 'experiment.summary') end
  return results:summary(opts)
end

function M.ResultSet(list)
  if type(list) ~= 'table' or getmetatable(list) ~= nil then
    check.fail('experiment.ResultSet: list is %s, expected a list of Results', check.describe(list))
  end
  return result.ResultSet.new(list, 'experiment.ResultSet')
end

function M.read_csv(path)
  check.path('experiment.read_csv', path)
  return record.read_csv('experiment.read_csv', path)
end

return check.strict(M, 'ms.experiment')
