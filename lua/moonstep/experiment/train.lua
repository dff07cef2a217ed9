-- experiment.train — the training loop of one run (experiment/run.lua drives it).
--
--   out = train.run(who, cfg, dir, opts)
--     cfg: a normalised experiment (experiment/spec.lua); dir: where the files go (nil: none
--     written); opts: {quiet =, label = (progress bar), threads = (used when cfg.threads is
--     nil: replay), on_step = function(row) (after each logged row; tests use it)}
--     out = {metrics = result.json's table, steps = columns, epochs = columns}
--   train.STEP_COLUMNS, train.EPOCH_COLUMNS
--   train.INTERRUPTED   the error value of Ctrl-C; train.where: {epoch =, step =, steps =}
--                       of the run in progress (for the message)
--
-- Per step (a row every cfg.log_every steps, and at each epoch's last step):
--   loss       the value the step returned (pass 1's loss for multi-pass optimizers)
--   accuracy   the mini-batch accuracy from pass 1's output (empty for loss-only
--              optimizers: SPSA evaluates the model itself)
--   lr         the step size in force: info.a (SPSA), info.lr (ACME's adapted one),
--              opt:get('lr'), else its base's; empty when it has none (AutoSGM)
--   grad_norm  ||gradient arena|| after the step (the direction applied), computed on
--              logged steps only (SPSA: info.ghat_norm)
--   time       cumulative seconds of training (evaluation excluded)
--   forward, backward   cumulative passes over a mini-batch: one of each per closure call;
--              loss-only optimizers: the change of opt.passes forward, none backward
-- Per epoch: the means over its steps (weighted by batch size) and ms.metrics.evaluate on
-- the test split. Files: config.json is written by the caller; steps.csv and epochs.csv
-- here (flushed at each epoch's end); result.json (atomic) by the caller, last.
local ms = require 'moonstep'
local check = require 'moonstep.check'
local spec = require 'moonstep.experiment.spec'
local optimizer = require 'moonstep.experiment.optimizer'
local record = require 'moonstep.experiment.record'
local reduce = require 'moonstep.optim.reduce'

local M = {}

M.STEP_COLUMNS = { 'step', 'epoch', 'loss', 'accuracy', 'lr', 'grad_norm', 'time', 'forward', 'backward' }
M.EPOCH_COLUMNS = { 'epoch', 'step', 'train_loss', 'train_accuracy', 'test_loss', 'test_accuracy', 'time',
                    'forward', 'backward' }
M.INTERRUPTED = setmetatable({}, { __tostring = function() return 'interrupted (Ctrl-C)' end })
M.where = {}

local C = ms.C

-- In-memory columns, filled alongside the CSV files.
local function columns(names)
  local t = { columns = names, n = 0 }
  for _, k in ipairs(names) do t[k] = {} end
  return t
end

local function append(t, row)
  local r = t.n + 1
  for i, k in ipairs(t.columns) do t[k][r] = row[i] end
  t.n = r
end

-- The step size in force after a step.
local function lr_of(opt, info, loss_only)
  if type(info) == 'table' then
    if loss_only and type(info.a) == 'number' then return info.a end
    if type(info.lr) == 'number' then return info.lr end
  end
  if loss_only then return nil end
  if opt.defaults.lr ~= nil then return opt:get('lr') end
  local base = rawget(opt, 'base')
  if type(base) == 'table' and base.defaults and base.defaults.lr ~= nil then return base:get('lr') end
  return nil
end

-- Fraction of rows of out [N, C] whose argmax is y (int64 class indices).
local function accuracy(out, y)
  return out:argmax(2):to('float32'):eq(y:to('float32')):sum() / y:size(1)
end

function M.run(who, cfg, dir, opts)
  opts = opts or {}
  local where = { epoch = 0, step = 0, steps = 0 }
  M.where = where
  local threads = cfg.threads or opts.threads
  local prev_threads = ms.num_threads()
  if threads then ms.set_num_threads(threads) end
  local ok, res = pcall(M._run, who, cfg, dir, opts, where)
  if threads then ms.set_num_threads(prev_threads) end
  if not ok then error(res, 0) end
  return res
end

function M._run(who, cfg, dir, opts, where)
  local nthreads = ms.num_threads()
  ms.manual_seed(cfg.seed)
  local train, test = spec.data(cfg)
  local model = spec.model(cfg)
  local bs = cfg.batch_size
  local nb = math.ceil(train:size() / bs)
  local opt = optimizer.build(cfg, model, { num_data = train:size(), steps_per_epoch = nb })
  local crit = ms.nn.CrossEntropyLoss()
  local loss_only = opt.loss_only and true or false
  local total = nb * cfg.epochs
  where.steps = total

  local steps, epochs = columns(M.STEP_COLUMNS), columns(M.EPOCH_COLUMNS)
  local sw, ew
  if dir then
    sw = record.csv_writer(who, dir .. '/steps.csv', M.STEP_COLUMNS)
    ew = record.csv_writer(who, dir .. '/epochs.csv', M.EPOCH_COLUMNS)
  end
  local bar = ms.progress(total, { label = opts.label, quiet = opts.quiet })

  -- the closure: one forward and one backward per call; pass 1's output gives the accuracy
  local xb, yb, calls, acc
  local function closure()
    calls = calls + 1
    local out = model:forward(xb)
    local l = crit:forward(out, yb)
    if calls == 1 then acc = accuracy(out, yb) end
    model:backward(xb, crit:backward(out, yb))
    return l
  end

  -- The gradient norm without an extra pass where possible: a plain first-order optimizer
  -- that scans its gradients for nan/inf anyway (check_finite, the default; no clipping)
  -- is asked for their sums of squares instead (Optimizer._check_grads' _want_sq path, the
  -- one the SAM family uses: the same single read, one sum per parameter tensor).
  local cls = getmetatable(opt)
  local free_norm = not loss_only and not rawget(cls, 'multipass') and not rawget(cls, 'wraps')
    and opt.check_finite == true and not opt.clip_norm and not opt.clip_value and not opt.clip_tensor_norm
    and rawget(opt, '_want_sq') == nil
  local function grad_norm()
    local per = free_norm and rawget(opt, '_sq_per')
    if type(per) == 'table' then
      local sq = 0
      for i = 1, #per do sq = sq + per[i] end
      return math.sqrt(sq)
    end
    return math.sqrt(reduce.sumsq(who, opt.arena.gflat))
  end

  local step, fwd, bwd, trained = 0, 0, 0, 0
  local row = {}
  local log_every = cfg.log_every
  local on_step = opts.on_step
  local ok, err = pcall(function()
    for epoch = 1, cfg.epochs do
      where.epoch = epoch
      model:train()
      local t0 = ms.clock()
      local sum_loss, sum_acc, seen, seen_acc = 0, 0, 0, 0
      for x, y, b in train:batches(bs, { shuffle = true, seed = cfg.seed }) do
        local loss, info
        local m = x:size(1)
        if loss_only then
          local before = opt.passes
          acc = nil
          loss, info = opt:step(x, y)
          fwd = fwd + (opt.passes - before)
        else
          xb, yb, calls, acc = x, y, 0, nil
          if free_norm then opt._want_sq, opt._sq_per = true, nil end
          loss, info = opt:step(closure)
          fwd, bwd = fwd + calls, bwd + calls
        end
        step = step + 1
        where.step = step
        if type(loss) ~= 'number' then
          check.fail('%s: optim.%s.step returned %s, expected the loss (a number)', who, opt.__name, check.describe(loss))
        end
        sum_loss, seen = sum_loss + loss * m, seen + m
        if acc then sum_acc, seen_acc = sum_acc + acc * m, seen_acc + m end
        if step % log_every == 0 or b == nb then
          local gn
          if loss_only then gn = type(info) == 'table' and info.ghat_norm or nil
          else gn = grad_norm() end
          row[1], row[2], row[3], row[4], row[5] = step, epoch, loss, acc, lr_of(opt, info, loss_only)
          row[6], row[7], row[8], row[9] = gn, trained + (ms.clock() - t0), fwd, bwd
          append(steps, row)
          if sw then sw:row(row) end
          if on_step then on_step(row) end
        end
        if not bar.quiet then bar:update(step, ('loss %.4f  epoch %d/%d'):format(sum_loss / seen, epoch, cfg.epochs)) end
        if C.ms_interrupt_pending() ~= 0 then error(M.INTERRUPTED, 0) end
      end
      if cfg.device ~= 'cpu' then ms.cuda.synchronize() end
      trained = trained + (ms.clock() - t0)
      local ev = ms.metrics.evaluate(model, test, crit)
      if C.ms_interrupt_pending() ~= 0 then error(M.INTERRUPTED, 0) end
      local erow = { epoch, step, sum_loss / seen, seen_acc > 0 and sum_acc / seen_acc or nil,
                     ev.loss, ev.accuracy, trained, fwd, bwd }
      append(epochs, erow)
      if ew then ew:row(erow); ew:flush(); sw:flush() end
    end
  end)
  bar:finish()
  if free_norm then opt._want_sq, opt._sq_per = nil, nil end
  if sw then sw:close(); ew:close() end
  if not ok then error(err, 0) end
  local last = epochs.n
  local metrics = {
    test_accuracy = epochs.test_accuracy[last], test_loss = epochs.test_loss[last],
    train_loss = epochs.train_loss[last], train_accuracy = epochs.train_accuracy[last],
    time = trained, forward = fwd, backward = bwd, steps = step, skipped = opt.skipped,
    epochs = cfg.epochs, threads = nthreads, device = cfg.device,
  }
  return { metrics = metrics, steps = steps, epochs = epochs }
end

return M
