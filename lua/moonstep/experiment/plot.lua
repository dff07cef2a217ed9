-- experiment.plot — ResultSet:plot: one line per group, the mean over its runs (seeds)
-- and a band, through ms.plot.lines (gnuplot).
--
--   out, err = set:plot{y = 'loss', x = 'step', by = 'name', out = 'results/loss.png',
--                       bands = true, title =, xlabel =, ylabel =, logx =, logy =, size =}
--     y: a steps.csv column (loss, accuracy, lr, grad_norm) or an epochs.csv column
--        (train_loss, train_accuracy, test_loss, test_accuracy)
--     x: 'step' | 'epoch' | 'passes' (forward + backward) | 'time'; with a steps column,
--        'epoch' is fractional (step / steps per epoch)
--     bands: true or 'minmax' (min..max over the group's runs), 'std' (mean ± std), false
--   Runs of a group are aligned by row (the same steps across seeds; the shortest run
--   sets the length); x = step/epoch is the first run's, x = passes/time the mean over the
--   runs at each row. Rows where y was not measured are left out.
--   Returns what ms.plot.lines returns: out, or nil and a reason (gnuplot missing, or
--   ms.plot not available). set:series{...} (same options, no out) returns the series.
local check = require 'moonstep.check'

local M = {}

local STEP_Y = { loss = true, accuracy = true, lr = true, grad_norm = true }
local EPOCH_Y = { train_loss = true, train_accuracy = true, test_loss = true, test_accuracy = true }
local OPTIONS = { 'y', 'x', 'by', 'out', 'bands', 'title', 'xlabel', 'ylabel', 'logx', 'logy', 'size' }

local function label_of(by, r)
  if type(by) == 'function' then return tostring(by(r)) end
  if type(by) == 'table' then
    local parts = {}
    for i, k in ipairs(by) do parts[i] = label_of(k, r) end
    return table.concat(parts, ' ')
  end
  local v = r:get(by)
  return v == nil and '-' or tostring(v)
end

-- x value of row i of table t (steps or epochs columns) of result r.
local function x_of(x, t, i, r, per_epoch)
  if x == 'step' then return t.step[i] end
  if x == 'epoch' then
    if per_epoch then return t.step[i] / per_epoch end
    return t.epoch[i]
  end
  if x == 'passes' then
    local f, b = t.forward[i], t.backward[i]
    return f and (f + (b or 0))
  end
  return t.time[i]
end

function M.series(set, opts, who)
  who = who or 'ResultSet.series'
  opts = check.options(who, opts, OPTIONS)
  local y = opts.y == nil and 'loss' or opts.y
  if not (STEP_Y[y] or EPOCH_Y[y]) then
    check.fail('%s: y is %s, expected a steps column (loss, accuracy, lr, grad_norm) or an epochs column (train_loss, train_accuracy, test_loss, test_accuracy)',
               who, check.describe(y))
  end
  local x = opts.x == nil and 'step' or check.oneof(who, 'x', opts.x, { 'step', 'epoch', 'passes', 'time' })
  local by = opts.by == nil and 'name' or opts.by
  if type(by) ~= 'string' and type(by) ~= 'function' and type(by) ~= 'table' then
    check.fail('%s: by is %s, expected a field name, a list of them or a function(result)', who, check.describe(by))
  end
  local bands = opts.bands
  if bands == nil then bands = true end
  if bands ~= true and bands ~= false and bands ~= 'minmax' and bands ~= 'std' then
    check.fail('%s: bands is %s, expected true, false, \'minmax\' or \'std\'', who, check.describe(bands))
  end
  if #set == 0 then check.fail('%s: the ResultSet is empty', who) end
  local groups, order = {}, {}
  for _, r in ipairs(set) do
    local g = label_of(by, r)
    if not groups[g] then groups[g] = {}; order[#order + 1] = g end
    table.insert(groups[g], r)
  end
  local series = {}
  for _, g in ipairs(order) do
    local runs = groups[g]
    local tabs, len = {}, math.huge
    for i, r in ipairs(runs) do
      tabs[i] = STEP_Y[y] and r.steps or r.epochs
      if type(tabs[i]) ~= 'table' or not tabs[i][y] then
        check.fail('%s: run %s has no %s data', who, tostring(r.id), STEP_Y[y] and 'steps' or 'epochs')
      end
      len = math.min(len, tabs[i].n)
    end
    local per_epoch
    if STEP_Y[y] and x == 'epoch' then
      local m = runs[1].metrics or {}
      per_epoch = (m.steps and m.epochs and m.epochs > 0) and m.steps / m.epochs or nil
    end
    local s = { label = g, x = {}, y = {}, lo = bands and {} or nil, hi = bands and {} or nil }
    for i = 1, len do
      local vals, xs, xsum = {}, 0, 0
      for k, t in ipairs(tabs) do
        local v = t[y][i]
        if v ~= nil and v == v then vals[#vals + 1] = v end
        local xv = x_of(x, t, i, runs[k], per_epoch)
        if xv ~= nil then xs, xsum = xs + 1, xsum + xv end
      end
      if #vals > 0 and xs > 0 then
        local xv = (x == 'step' or x == 'epoch') and x_of(x, tabs[1], i, runs[1], per_epoch) or xsum / xs
        local sum, lo, hi = 0, math.huge, -math.huge
        for _, v in ipairs(vals) do sum = sum + v; lo = math.min(lo, v); hi = math.max(hi, v) end
        local mean = sum / #vals
        local n = #s.x + 1
        s.x[n], s.y[n] = xv, mean
        if bands == 'std' then
          local ss = 0
          for _, v in ipairs(vals) do ss = ss + (v - mean) ^ 2 end
          local sd = #vals > 1 and math.sqrt(ss / (#vals - 1)) or 0
          s.lo[n], s.hi[n] = mean - sd, mean + sd
        elseif bands then
          s.lo[n], s.hi[n] = lo, hi
        end
      end
    end
    series[#series + 1] = s
  end
  return series, x, y
end

local XLABEL = { step = 'step', epoch = 'epoch', passes = 'passes (forward + backward)', time = 'seconds' }

function M.plot(set, opts)
  local who = 'ResultSet.plot'
  opts = check.options(who, opts, OPTIONS)
  local series, x, y = M.series(set, opts, who)
  if opts.out == nil then check.fail('%s: out is nil, expected the image path (.png or .svg)', who) end
  check.path(who, opts.out)
  local ok, plot = pcall(require, 'moonstep.plot')
  if not ok or type(plot) ~= 'table' or type(plot.lines) ~= 'function' then
    return nil, 'ms.plot is not available (lua/moonstep/plot)'
  end
  return plot.lines { out = opts.out, title = opts.title or (y .. ' vs ' .. x),
                      xlabel = opts.xlabel or XLABEL[x], ylabel = opts.ylabel or y,
                      logx = opts.logx, logy = opts.logy, size = opts.size, series = series }
end

return M
