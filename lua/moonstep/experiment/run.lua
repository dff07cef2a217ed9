-- experiment.run — run experiments into directories, skipping finished ones.
--
--   res = run.run(exp [, {out =, quiet =, resume = true}])          -> Result
--   set = run.run_all(list [, {out =, quiet =, resume = true}])     -> ResultSet
--     out: the results directory; each run goes to <out>/<id>/ (record.id). Without out
--     nothing is written (and nothing can be resumed). A run whose result.json exists is
--     finished: with resume (the default) it is not run again but loaded. A run directory
--     without result.json (a run stopped by Ctrl-C, kill -9 or an error) is started again
--     from scratch: its files are overwritten. resume = false reruns finished runs too.
--     quiet: no progress bar (also MOONSTEP_QUIET=1, or stderr not a terminal).
--     A run directory has one writer: <dir>/.lock holds its pid while it runs; another
--     process reaching the same run is an error (a lock whose process died is taken over).
--     on_step: a function(row) called after each logged step row (train.STEP_COLUMNS order).
--     Every experiment of the list is checked before the first run starts.
--     On several ranks (mpirun, ms.dist) run_all spreads the runs: rank r runs the runs
--     r+1, r+1+n, ... of the list (n ranks), into out (required), then every rank waits
--     for the others and returns the whole ResultSet, read back from out; a run that
--     failed on one rank is an error on every rank. spread = false: every rank runs all.
--   run.run_dir(who, cfg, dir, opts)   one run into exactly dir (replay uses it)
-- Ctrl-C: the runtime's interrupt flag is installed (ms_sigint_install) and checked after
-- every step; the run in progress stops, its directory is left unfinished, and the call
-- raises one line: "<fn>: interrupted (Ctrl-C) in run <id> (epoch E, step S of N); ...".
-- Calling run_all again resumes: the finished runs are skipped.
local ms = require 'moonstep'
local check = require 'moonstep.check'
local json = require 'moonstep.json'
local spec = require 'moonstep.experiment.spec'
local record = require 'moonstep.experiment.record'
local train = require 'moonstep.experiment.train'
local result = require 'moonstep.experiment.result'

local M = {}
local OPTIONS = { 'out', 'quiet', 'resume', 'on_step', 'spread' }
local C = ms.C

local function is_interrupt(e)
  return e == train.INTERRUPTED or (type(e) == 'string'
    and (e:find('interrupted (Ctrl-C)', 1, true) or e:find('interrupted!', 1, true)) ~= nil)
end
M.is_interrupt = is_interrupt

local function options(who, opts)
  opts = check.options(who, opts, OPTIONS)
  if opts.out ~= nil and (type(opts.out) ~= 'string' or opts.out == '') then
    check.fail('%s: out is %s, expected a directory path (a non-empty string)', who, check.describe(opts.out))
  end
  if opts.quiet ~= nil then check.boolean(who, 'quiet', opts.quiet) end
  if opts.resume ~= nil then check.boolean(who, 'resume', opts.resume) end
  if opts.spread ~= nil then check.boolean(who, 'spread', opts.spread) end
  if opts.on_step ~= nil and type(opts.on_step) ~= 'function' then
    check.fail('%s: on_step is %s, expected a function(row)', who, check.describe(opts.on_step))
  end
  return opts
end

-- config.json's table: the experiment and the environment it ran in (not hashed).
local function config_record(cfg, threads)
  local t = {}
  for k, v in pairs(cfg) do t[k] = v end
  t.moonstep = { version = ms.version, threads = threads }
  return t
end
M.config_record = config_record

-- One run into dir (created and locked: record.lock; stale temporaries removed). Returns a Result.
function M.run_dir(who, cfg, id, dir, opts)
  local unlock
  if dir then
    record.mkdir(who, dir)
    unlock = record.lock(who, dir)
    for _, name in ipairs(record.list(who, dir)) do
      if name:match('%.tmp%-%d+%-%d+$') then os.remove(dir .. '/' .. name) end
    end
    os.remove(dir .. '/result.json')          -- resume = false: the run is no longer finished
    json.write(dir .. '/config.json', config_record(cfg, opts.threads or cfg.threads or ms.num_threads()),
               { indent = true })
  end
  local ok, out = pcall(train.run, who, cfg, dir, { quiet = opts.quiet, label = opts.label,
                                                   threads = opts.threads, on_step = opts.on_step })
  local err = out
  if ok and dir then ok, err = pcall(json.write, dir .. '/result.json', out.metrics, { indent = true }) end
  if unlock then unlock() end
  if not ok then error(err, 0) end
  return result.Result.new { id = id, dir = dir, config = cfg, metrics = out.metrics, steps = out.steps,
                             epochs = out.epochs }
end

-- The error to raise for a failure of run id: Ctrl-C gets the one line.
local function failure(who, err, id, dir)
  if is_interrupt(err) then
    local w = train.where
    local left = dir and ('%s is left unfinished; run again to resume (finished runs are skipped)'):format(dir)
                 or 'nothing was written'
    local at = (w.epoch and w.epoch > 0) and ('epoch %d, step %d of %d'):format(w.epoch, w.step or 0, w.steps or 0)
               or 'before its first step'
    return ('%s: interrupted (Ctrl-C) in run %s (%s); %s'):format(who, id, at, left)
  end
  return ('%s: run %s: %s'):format(who, id, check.reason(err))
end

-- Run each (cfg, id) in turn (mine(i) false: not this rank's, skipped); returns the Results.
local function run_list(who, cfgs, opts, mine)
  C.ms_sigint_install()
  local results = {}
  local n = #cfgs
  for i, cfg in ipairs(cfgs) do
    if mine and not mine(i) then goto next end
    if C.ms_interrupt_pending() ~= 0 then
      C.ms_interrupt_clear()
      check.fail('%s: interrupted (Ctrl-C) before run %s; run again to resume', who, record.id(cfg))
    end
    local id = record.id(cfg)
    local dir = opts.out and (opts.out .. '/' .. id)
    if dir and opts.resume ~= false and record.exists(dir .. '/result.json') then
      local ok, res = pcall(result.load_run, who, dir)
      if not ok then
        check.fail('%s: %s; this finished record is damaged: delete %s (or run with resume = false) to run it again',
                   who, check.reason(res), dir)
      end
      results[i] = res
      results[i].resumed = true
    else
      local short = ('%s s%d'):format(cfg.name:sub(1, 24), cfg.seed)
      local label = n > 1 and ('[%d/%d] %s'):format(i, n, short) or short
      train.where = {}                       -- (a failure before the loop: no stale position)
      local ok, res = pcall(M.run_dir, who, cfg, id, dir, { quiet = opts.quiet, label = label,
                                                            on_step = opts.on_step })
      if not ok then
        if is_interrupt(res) then C.ms_interrupt_clear() end
        check.raise(failure(who, res, id, dir))
      end
      results[i] = res
    end
    ::next::
  end
  return results
end

-- run_list over the ranks of an ms.dist job: this rank's share, then everyone's results
-- from out once every rank is done (a failure anywhere is an error everywhere).
local function run_spread(who, cfgs, opts)
  local rank, size = ms.dist.rank(), ms.dist.world_size()
  if not opts.out then
    check.fail('%s: on %d ranks each runs its share of the runs and reads the others\' results from ' ..
               'out, expected an out directory (or spread = false)', who, size)
  end
  local quiet = opts.quiet
  if rank > 0 then quiet = true end                  -- one progress bar: rank 0's
  local ok, err = pcall(ms.dist.alone, run_list, who, cfgs,          -- each run is this rank's alone
                        { out = opts.out, resume = opts.resume, quiet = quiet, on_step = opts.on_step },
                        function(i) return (i - 1) % size == rank end)
  local failed = ms.tensor({ ok and 0 or 1 }, 'int64')
  ms.dist.all_reduce(failed, 'sum')
  if not ok then error(err, 0) end
  if failed:get(1) > 0 then
    check.fail('%s: %d rank(s) failed a run (their messages say which); this rank\'s runs finished',
               who, failed:get(1))
  end
  local results = {}
  for i, cfg in ipairs(cfgs) do
    results[i] = result.load_run(who, opts.out .. '/' .. record.id(cfg))
    results[i].resumed = (i - 1) % size ~= rank or nil
  end
  return results
end

function M.run(exp, opts)
  local who = 'experiment.run'
  opts = options(who, opts)
  local cfg = spec.normalize(who, exp)
  return run_list(who, { cfg }, opts)[1]
end

function M.run_all(list, opts)
  local who = 'experiment.run_all'
  opts = options(who, opts)
  if type(list) ~= 'table' or check.is_tensor(list) or getmetatable(list) ~= nil then
    check.fail('%s: experiments is %s, expected a list of experiment tables (ms.experiment.grid makes one)',
               who, check.describe(list))
  end
  local cfgs = {}
  for i, exp in ipairs(list) do cfgs[i] = spec.normalize(who, exp, ('experiment %d: '):format(i)) end
  local count = 0
  for _ in pairs(list) do count = count + 1 end
  if #cfgs == 0 or #cfgs ~= count then
    check.fail('%s: experiments is %s, expected a non-empty list 1..n of experiment tables', who,
               #cfgs == 0 and 'an empty table' or 'a table with keys outside 1..n')
  end
  if opts.spread ~= false and ms.dist.is_distributed() then
    return result.ResultSet.new(run_spread(who, cfgs, opts))
  end
  return result.ResultSet.new(run_list(who, cfgs, opts))
end

return M
