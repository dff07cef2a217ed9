-- experiment.replay — rerun a recorded run and compare.
--
--   rep = replay.replay(path [, {out =, quiet =}])
--     path: a run directory or its config.json. The experiment is run again from
--     config.json alone (with its thread count when the experiment did not fix one) into
--     out (default: <run dir>/replay-N, the first N not taken; a given out that already
--     holds a run, or is a file, is refused: a replay never overwrites a record), then
--     compared with the
--     recorded run when its result.json and steps.csv are there:
--   rep.identical   true when every recorded step loss and the final metrics (test_accuracy,
--                   test_loss, train_loss, train_accuracy, forward, backward, steps,
--                   skipped) are the same numbers (time is not compared); nil when there
--                   was nothing to compare with
--   rep.differences a list of strings ('step 17: loss 0.51234 vs 0.51236', ...; at most 20)
--   rep.result      the new Result; rep.recorded: the old one (nil if unfinished)
--   tostring(rep)   one line, then the differences
-- On CPU, moonstep's results are the same bits for the same thread count.
local ms = require 'moonstep'
local check = require 'moonstep.check'
local spec = require 'moonstep.experiment.spec'
local record = require 'moonstep.experiment.record'
local result = require 'moonstep.experiment.result'

local M = {}

local Replay = {}
Replay.__index = Replay
Replay.__name, Replay.__var = 'Replay', 'rep'

local COMPARED = { 'test_accuracy', 'test_loss', 'train_loss', 'train_accuracy', 'forward', 'backward', 'steps',
                   'skipped' }
local MAX_DIFFERENCES = 20

local function same(a, b) return a == b or (a ~= a and b ~= b) end

local function show(v) return v == nil and 'nothing' or record.number(v) end

function M.replay(path, opts)
  local who = 'experiment.replay'
  check.path(who, path)
  opts = check.options(who, opts, { 'out', 'quiet' })
  if opts.out ~= nil and (type(opts.out) ~= 'string' or opts.out == '') then
    check.fail('%s: out is %s, expected a directory path (a non-empty string)', who, check.describe(opts.out))
  end
  if opts.quiet ~= nil then check.boolean(who, 'quiet', opts.quiet) end
  local dir, cfg_path
  if record.isdir(path) then
    dir = path:gsub('(.)/+$', '%1')
    cfg_path = dir .. '/config.json'
  else
    cfg_path = path
    dir = path:match('^(.*)/[^/]*$') or '.'
  end
  if not record.exists(cfg_path) then check.fail('%s: %s not found (expected a run directory or its config.json)', who, cfg_path) end
  local raw = result.object(who, cfg_path)
  local env = raw.moonstep
  raw.moonstep = nil
  local cfg = spec.normalize(who, raw)
  local out = opts.out
  if out == nil then
    local n = 1
    while record.exists(('%s/replay-%d/config.json'):format(dir, n)) or record.isdir(('%s/replay-%d'):format(dir, n)) do
      n = n + 1
    end
    out = ('%s/replay-%d'):format(dir, n)
  end
  if record.exists(out .. '/config.json') or (not record.isdir(out) and record.exists(out)) then
    check.fail('%s: out %s %s, expected a new or empty directory (the replay must not overwrite a record)', who, out,
               record.isdir(out) and 'already holds a run (config.json)' or 'is a file')
  end
  local threads = (not cfg.threads and type(env) == 'table') and env.threads or nil
  if type(threads) ~= 'number' or threads < 1 or threads ~= math.floor(threads) then threads = nil end
  local id = record.id(cfg)
  local run = require 'moonstep.experiment.run'
  ms.C.ms_sigint_install()
  local ok, res = pcall(run.run_dir, who, cfg, id, out, { quiet = opts.quiet, threads = threads, label = 'replay ' .. id })
  if not ok then
    if run.is_interrupt(res) then
      ms.C.ms_interrupt_clear()
      check.fail('%s: interrupted (Ctrl-C) while replaying %s into %s (left unfinished)', who, cfg_path, out)
    end
    check.fail('%s: replaying %s: %s', who, cfg_path, check.reason(res))
  end
  local rep = setmetatable({ path = cfg_path, out = out, result = res, differences = {} }, Replay)
  if record.exists(dir .. '/result.json') and record.exists(dir .. '/steps.csv') and record.exists(dir .. '/epochs.csv') then
    local old = result.load_run(who, dir)
    rep.recorded = old
    local diffs = rep.differences
    local function diff(s)
      if #diffs < MAX_DIFFERENCES then diffs[#diffs + 1] = s end
      rep.ndiff = (rep.ndiff or 0) + 1
    end
    local a, b = old.steps, res.steps
    if a.n ~= b.n then diff(('%d step rows recorded, %d replayed'):format(a.n, b.n)) end
    for i = 1, math.min(a.n, b.n) do
      if a.step[i] ~= b.step[i] then
        diff(('row %d: step %s vs %s'):format(i, show(a.step[i]), show(b.step[i])))
      elseif not same(a.loss[i], b.loss[i]) then
        diff(('step %d: loss %s vs %s'):format(a.step[i], show(a.loss[i]), show(b.loss[i])))
      end
    end
    for _, k in ipairs(COMPARED) do
      local x, y = old.metrics[k], res.metrics[k]
      if not same(x, y) then diff(('%s: %s vs %s'):format(k, show(x), show(y))) end
    end
    rep.identical = (rep.ndiff or 0) == 0
  end
  return rep
end

Replay.__tostring = function(self)
  local head
  if self.identical == nil then
    head = ('replay of %s into %s: nothing recorded to compare with'):format(self.path, self.out)
  elseif self.identical then
    head = ('replay of %s into %s: identical (%d step losses and the final metrics)'):format(
      self.path, self.out, self.result.steps.n)
  else
    head = ('replay of %s into %s: %d differences (recorded vs replayed)'):format(self.path, self.out, self.ndiff)
  end
  local lines = { head }
  for _, d in ipairs(self.differences) do lines[#lines + 1] = '  ' .. d end
  if (self.ndiff or 0) > #self.differences then
    lines[#lines + 1] = ('  ... and %d more'):format(self.ndiff - #self.differences)
  end
  return table.concat(lines, '\n')
end

M.Replay = Replay

return M
