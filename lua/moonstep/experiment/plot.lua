-- experiment.plot — ResultSet:plot: one line per group, the mean over its runs (seeds)
-- and a band, through ms.plot.lines (gnuplot).
--
--   out, err = set:plot{y = 'loss', x = 'step', by = 'name', out = 'results/loss.png',
--                       bands = true, smooth = 1, logx =, logy =, title =, xlabel =,
--                       ylabel =, size =, legend =}
--     y: a steps.csv column (loss, accuracy, lr, grad_norm) or an epochs.csv column
--        (train_loss, train_accuracy, test_loss, test_accuracy); accuracies as fractions
--     x: 'step' | 'epoch' | 'passes' (forward + backward) | 'time' (training seconds);
--        with a steps column, 'epoch' is fractional (step / steps per epoch)
--     by: a field path ('name', 'optimizer.rho'), a list of them, or a function(result)
--     bands: true or 'minmax' (min..max over the group's runs), 'std' (mean ± sample
--        std), false (none)
--     smooth: k >= 1 (default 1: none): each run's y is first replaced by a CENTRED moving
--        average over k of its logged rows (rows i - floor(k/2) .. i - floor(k/2) + k - 1;
--        within floor(k/2) rows of an end the window narrows symmetrically to i - d .. i + d,
--        d the distance to that end, so the first and last rows keep their own values and
--        a curve's ends are not pulled toward its middle; missing values are skipped), then
--        averaged over the runs: the band is the spread of the smoothed runs. A centred
--        window does not shift a curve to the right as a trailing one would, so curves of
--        optimizers stay comparable at equal x.
--     logx, logy: log10 axes (values <= 0 are left out); title, xlabel, ylabel: default
--        from y and x (x = 'passes': 'forward + backward passes over a mini-batch', 'time':
--        'training seconds (evaluation excluded)'); size = {w, h}; legend: ms.plot.lines'.
--   Alignment: the runs of a group are matched by step (steps columns) or epoch (epochs
--   columns), keeping the steps that every run of the group logged, in order. At each
--   such step the line is the mean of the runs' y, and its x is: the step (or epoch) for
--   x = 'step' / 'epoch'; the MEAN over the runs of their passes (or seconds) at that step
--   for x = 'passes' / 'time', so runs whose clocks differ across seeds give one point per
--   step, at their average x. Steps where no run measured y are left out.
--   Returns what ms.plot.lines returns: out, or nil and a reason (gnuplot missing, or
--   ms.plot not available). Groups with no point are left out of the figure (an error
--   when no group has one). set:series{...} (same options; out, title and labels unused)
--   returns the series list, x and y, without drawing.
local check = require 'moonstep.check'
local result = require 'moonstep.experiment.result'

local M = {}

local STEP_Y = { loss = true, accuracy = true, lr = true, grad_norm = true }
local EPOCH_Y = { train_loss = true, train_accuracy = true, test_loss = true, test_accuracy = true }
local OPTIONS = { 'y', 'x', 'by', 'out', 'bands', 'smooth', 'title', 'xlabel', 'ylabel', 'logx', 'logy', 'size',
                  'legend' }

local YLABEL = {
  loss = 'training loss (mini-batch)', accuracy = 'training accuracy (mini-batch)', lr = 'step size (lr)',
  grad_norm = 'gradient norm (L2)', train_loss = 'training loss (epoch mean)',
  train_accuracy = 'training accuracy (epoch mean)', test_loss = 'test loss', test_accuracy = 'test accuracy',
}
local XLABEL = {
  step = 'step (optimizer updates)', epoch = 'epoch', passes = 'forward + backward passes over a mini-batch',
  time = 'training seconds (evaluation excluded)',
}
local XSHORT = { step = 'steps', epoch = 'epochs', passes = 'passes', time = 'time' }

-- x value of row i of table t (steps or epochs columns).
local function x_of(x, t, i, per_epoch)
  if x == 'step' then return t.step and t.step[i] or i end
  if x == 'epoch' then
    if per_epoch then return t.step and t.step[i] and t.step[i] / per_epoch end
    return t.epoch and t.epoch[i] or i
  end
  if x == 'passes' then
    local f, b = t.forward and t.forward[i], t.backward and t.backward[i]
    return f and (f + (b or 0))
  end
  return t.time and t.time[i]
end

local function finite(v) return type(v) == 'number' and v == v and v ~= math.huge and v ~= -math.huge end

-- The centred moving average over k rows of column col (n rows); k = 1: col itself.
-- A row whose own value is missing stays missing.
local function smoothed(col, n, k)
  if k <= 1 then return col end
  local out, lo_off = {}, math.floor(k / 2)
  for i = 1, n do
    if finite(col[i]) then
      local sum, cnt = 0, 0
      local a, b = i - lo_off, i - lo_off + k - 1
      local d = math.min(i - 1, n - i)           -- near an end: a symmetric, narrower window
      if d < lo_off then a, b = i - d, i + d end
      for j = a, b do
        local v = col[j]
        if finite(v) then sum, cnt = sum + v, cnt + 1 end
      end
      out[i] = sum / cnt
    end
  end
  return out
end

local function options(who, opts)
  opts = check.options(who, opts, OPTIONS)
  local y = opts.y == nil and 'loss' or opts.y
  if not (STEP_Y[y] or EPOCH_Y[y]) then
    check.fail('%s: y is %s, expected a steps column (loss, accuracy, lr, grad_norm) or an epochs column (train_loss, train_accuracy, test_loss, test_accuracy)',
               who, check.describe(y))
  end
  local x = opts.x == nil and 'step' or check.oneof(who, 'x', opts.x, { 'step', 'epoch', 'passes', 'time' })
  local bands = opts.bands
  if bands == nil then bands = true end
  if bands ~= true and bands ~= false and bands ~= 'minmax' and bands ~= 'std' then
    check.fail('%s: bands is %s, expected true, false, \'minmax\' or \'std\'', who, check.describe(bands))
  end
  local smooth = opts.smooth == nil and 1 or check.integer(who, 'smooth', opts.smooth, 1, 1e6)
  for _, k in ipairs { 'logx', 'logy' } do
    if opts[k] ~= nil then check.boolean(who, k, opts[k]) end
  end
  return opts, y, x, bands, smooth
end

function M.series(set, opts, who)
  who = who or 'ResultSet.series'
  local y, x, bands, smooth
  opts, y, x, bands, smooth = options(who, opts)
  local order, groups = result.groups(who, set, opts.by)
  if #order == 0 then check.fail('%s: the ResultSet is empty', who) end
  local key_col = STEP_Y[y] and 'step' or 'epoch'
  local series, most = {}, 0
  for _, g in ipairs(order) do
    local runs = groups[g]
    most = math.max(most, #runs)
    -- per run: its table, smoothed y, and row of each step (epoch)
    local tabs, ys, rows = {}, {}, {}
    for k, r in ipairs(runs) do
      local t = STEP_Y[y] and r.steps or r.epochs
      if type(t) ~= 'table' or type(t[y]) ~= 'table' or type(t.n) ~= 'number' then
        check.fail('%s: run %s has no %s column in its %s data', who, tostring(r.id), y, STEP_Y[y] and 'steps' or 'epochs')
      end
      tabs[k], ys[k], rows[k] = t, smoothed(t[y], t.n, smooth), {}
      for i = 1, t.n do
        local key = t[key_col] and t[key_col][i] or i
        if key ~= nil and rows[k][key] == nil then rows[k][key] = i end
      end
    end
    local per_epoch
    if STEP_Y[y] and x == 'epoch' then
      local m = runs[1].metrics or {}
      per_epoch = (type(m.steps) == 'number' and type(m.epochs) == 'number' and m.epochs > 0) and m.steps / m.epochs or nil
    end
    local s = { label = g, x = {}, y = {}, lo = bands and {} or nil, hi = bands and {} or nil, runs = #runs }
    local first = tabs[1]
    for i1 = 1, first.n do
      local key = first[key_col] and first[key_col][i1] or i1
      local vals, xs, xsum, all = {}, 0, 0, true
      for k, t in ipairs(tabs) do
        local i = rows[k][key]
        if not i then all = false; break end
        local v = ys[k][i]
        if finite(v) then vals[#vals + 1] = v end
        local xv = x_of(x, t, i, per_epoch)
        if finite(xv) then xs, xsum = xs + 1, xsum + xv end
      end
      if all and #vals > 0 and xs > 0 then
        local xv = (x == 'step' or x == 'epoch') and x_of(x, first, i1, per_epoch) or xsum / xs
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
  return series, x, y, { runs = most, smooth = smooth, bands = bands }
end

-- The default title: what is drawn against what, and how it was reduced.
local function title_of(y, x, info)
  local how = {}
  if info.runs > 1 then
    how[#how + 1] = ('mean of %d runs'):format(info.runs)
    if info.bands == 'std' then how[#how + 1] = 'band ± std'
    elseif info.bands then how[#how + 1] = 'band min..max' end
  end
  if info.smooth > 1 then how[#how + 1] = ('centred moving average of %d logged points'):format(info.smooth) end
  local t = ('%s vs %s'):format(YLABEL[y]:gsub(' %(.*%)$', ''), XSHORT[x])
  return #how > 0 and ('%s (%s)'):format(t, table.concat(how, ', ')) or t
end

function M.plot(set, opts)
  local who = 'ResultSet.plot'
  opts = check.options(who, opts, OPTIONS)
  if opts.out == nil then check.fail('%s: out is nil, expected the image path (.png or .svg)', who) end
  check.path(who, opts.out)
  local series, x, y, info = M.series(set, opts, who)
  local drawn = {}
  for _, s in ipairs(series) do
    if #s.x > 0 then drawn[#drawn + 1] = { label = s.label, x = s.x, y = s.y, lo = s.lo, hi = s.hi } end
  end
  if #drawn == 0 then
    check.fail('%s: no run of the set has a measured %s (empty columns: not measured)', who, y)
  end
  local ok, lines = pcall(function() return require('moonstep.plot').lines end)
  if not ok or type(lines) ~= 'function' then return nil, 'ms.plot is not available (lua/moonstep/plot)' end
  return check.protect(who, lines, {
    out = opts.out, title = opts.title or title_of(y, x, info), xlabel = opts.xlabel or XLABEL[x],
    ylabel = opts.ylabel or YLABEL[y], logx = opts.logx, logy = opts.logy, size = opts.size,
    legend = opts.legend, series = drawn })
end

return M
