-- train.lua — train an MLP or a small CNN on Fashion-MNIST, and save / resume.
--
--   bin/moonstep scripts/train.lua [--flag value ...]      (--help lists the flags)
--
-- Prints a progress bar on a terminal (loss, samples/s) and, per epoch, one line:
--   epoch E  loss L  test_accuracy A  seconds S  samples_per_s R
-- With --save the checkpoint is written after every epoch. Ctrl-C stops the run with
-- one line on stderr (exit status 130) and, with --save, first writes a checkpoint of
-- the last finished step: --resume continues from it with the same losses as a run
-- that was never stopped.
--
-- Data parallelism: mpirun -np N bin/moonstep scripts/train.lua --distributed
--   (as root: mpirun --allow-run-as-root ...). Each rank trains on its strided share of
--   every epoch's order (ds:shard: one permutation from the shared seed, then shared out)
--   and the gradients are averaged over the ranks every step. --batch is the GLOBAL batch:
--   each rank takes batch / N examples per step, so a run follows the same trajectory on
--   any number of ranks (up to float rounding), and a checkpoint resumes on another N.
--   The optimizers synchronise (optim/dist_sync.lua: parameters broadcast from rank 0 at
--   bind, gradient arena and loss averaged per closure; the SAM family perturbs locally,
--   sync = 'final'; SPSA exchanges only losses, dist_split = 'batch'); the script checks
--   after every epoch that the ranks' parameters agree. Rank 0 alone prints and writes
--   checkpoints (every rank reads --resume: a shared file system); the epoch loss and the
--   test accuracy are reduced over every rank (each rank evaluates its share of the test
--   set: the counts are summed). Without mpirun, --distributed is a world of one and
--   changes nothing. --threads defaults to this host's cores shared out among its ranks.
--   Ctrl-C goes to mpirun, which ends the ranks (Open MPI does not pass SIGINT on): the
--   run continues with --resume from the last epoch's checkpoint, on any number of ranks.
--   (Should a rank itself get SIGINT, rank 0 saves the stopped step's state as above; its
--   partial loss is rank 0's share.)
local ms = require 'moonstep'
local nn, optim, C = ms.nn, ms.optim, ms.C

---------------------------------------------------------------------------------------
-- Flags: one table gives the parser, the checks and --help.
---------------------------------------------------------------------------------------
local FLAGS = {
  { 'model', 'choice', 'mlp', 'mlp: 784-256-10; cnn: 2 x (conv3x3, ReLU, maxpool) + 2 linear',
    choices = { 'mlp', 'cnn' } },
  { 'optim', 'choice', 'adam', 'the optimizer (its lr: adam/adamw/nadam 1e-3, sgd 0.05 with momentum 0.9, rmsprop 1e-3, adagrad 0.01, autosgm lr_init 1e-3; sam/asam/gsam/wsam/looksam/fsam around sgd 0.05 with momentum 0.9, asam with rho 0.5; acme 1e-3 (its first trial step); bsam 0.5 with num_data the training set size; spsa: zeroth-order, the zeroth_learn preset (50 forward-difference directions, Adam 1e-3; the MLP in one batched pass))',
    choices = { 'adam', 'adamw', 'nadam', 'sgd', 'rmsprop', 'adagrad', 'autosgm', 'sam', 'asam', 'gsam', 'wsam',
                'looksam', 'fsam', 'acme', 'bsam', 'spsa' } },
  { 'lr', 'number', nil, 'learning rate (default: per optimizer)', min = 0 },
  { 'epochs', 'integer', 10, 'number of epochs', min = 1 },
  { 'batch', 'integer', 128, 'batch size', min = 1 },
  { 'seed', 'integer', 0, 'seed of the initial weights and of the shuffling', min = 0 },
  { 'device', 'choice', 'cpu', 'cpu or cuda', choices = { 'cpu', 'cuda' } },
  { 'threads', 'integer', nil, 'CPU threads (default: all cores)', min = 1 },
  { 'limit', 'integer', nil, 'train on the first N training images only', min = 1 },
  { 'save', 'string', nil, 'write a checkpoint to PATH after every epoch and on Ctrl-C' },
  { 'resume', 'string', nil, 'continue from the checkpoint at PATH' },
  { 'distributed', 'flag', false, 'data-parallel over the ranks of mpirun (--batch is then the global batch; ' ..
    'the threads default to the cores shared out among the ranks on this host)' },
}

local flags = require 'moonstep.flags'
-- Errors before training: one line on stderr, exit status 2 (usage) or 1.
local function die(code, fmt, ...) flags.die('train.lua', code, fmt, ...) end

local args = flags.parse('train.lua', FLAGS, arg or {})
io.stdout:setvbuf('line')   -- one line per epoch, also when logged to a file

---------------------------------------------------------------------------------------
-- Ctrl-C: from here on the runtime only sets a flag; ops fail with "interrupted" while
-- it is set, and the loop checks it after every step.
---------------------------------------------------------------------------------------
C.ms_sigint_install()
local INTERRUPTED = setmetatable({}, { __tostring = function() return 'interrupted (Ctrl-C)' end })
local function is_interrupt(e)
  return e == INTERRUPTED or (type(e) == 'string'
    and (e:find('interrupted (Ctrl-C)', 1, true) or e:find('interrupted!', 1, true)) ~= nil)
end
local function check_interrupt()
  if C.ms_interrupt_pending() ~= 0 then error(INTERRUPTED, 0) end
end

-- Runs f(...); an error comes back as its message, Ctrl-C (from any op or the
-- check after a step) as INTERRUPTED.
local function guarded(f, ...)
  return xpcall(f, function(e)
    if is_interrupt(e) then return INTERRUPTED end
    return (tostring(e):gsub('^[^:\n]*train%.lua:%d+: ', ''))   -- no position in this script
  end, ...)
end

---------------------------------------------------------------------------------------
-- Setup
---------------------------------------------------------------------------------------
local function build_model(kind)
  if kind == 'mlp' then
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)), 'flat'
  end
  return nn.Sequential(nn.Conv2d(1, 32, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
                       nn.Conv2d(32, 64, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
                       nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
                       nn.Linear(128, 10)), 'image'
end

-- run: everything the training loop and the Ctrl-C handler share. rank, world: ms.dist's
-- (0 and 1 without --distributed); only rank 0 prints and saves.
local run = { epoch = 1, done = 0, sum = 0, seen = 0, rank = 0, world = 1 }
local function say(...) if run.rank == 0 then print(...) end end

---------------------------------------------------------------------------------------
-- Data parallelism (--distributed)
---------------------------------------------------------------------------------------
-- Joins the job; --threads defaults to this host's cores shared out among its ranks.
local function join()
  if not args.distributed then return end
  run.rank, run.world = ms.dist.init()
  local here = tonumber(os.getenv('OMPI_COMM_WORLD_LOCAL_SIZE') or '')
  if not args.threads and here and here > 1 then
    ms.set_num_threads(math.max(1, math.floor(ms.num_threads() / here)))
  end
  if args.batch % run.world ~= 0 then
    error(('--batch %d is the global batch: it must be a multiple of the %d ranks'):format(args.batch, run.world), 0)
  end
end

-- The sum over the ranks of a list of numbers (itself in a world of one).
local function sum_over_ranks(values)
  if run.world == 1 then return values end
  return ms.dist.all_reduce(ms.tensor(values, 'float64')):totable()
end

local function setup()
  if args.threads then ms.set_num_threads(args.threads) end
  join()
  ms.manual_seed(args.seed)
  local model, shape = build_model(args.model)
  model.input_grad = false   -- no gradient w.r.t. the images
  local train = ms.data.fashion_mnist('train', { shape = shape })
  local test = ms.data.fashion_mnist('test', { shape = shape })
  if args.limit then
    if args.limit > train:size() then
      error(('--limit %d is more than the %d training images'):format(args.limit, train:size()), 0)
    end
    train = train:subset(1, args.limit)
  end
  if args.device ~= 'cpu' then
    model:to(args.device)
    train, test = train:to(args.device), test:to(args.device)
  end
  run.train_size = train:size()          -- the whole training set (a shard's size is its share)
  if args.distributed then
    -- training: equal shares (padded), so every rank takes the same number of steps;
    -- evaluation: every test image exactly once (no collective runs per batch there)
    train = train:shard(run.rank, run.world)
    test = test:shard(run.rank, run.world, { remainder = 'none' })
  end
  -- each optimizer with its usual default learning rate (--lr overrides it)
  local OPTIMIZERS = {
    adam = function(lr) return optim.Adam(model, { lr = lr or 1e-3 }) end,
    adamw = function(lr) return optim.AdamW(model, { lr = lr or 1e-3 }) end,
    nadam = function(lr) return optim.NAdam(model, { lr = lr or 1e-3 }) end,
    sgd = function(lr) return optim.SGD(model, { lr = lr or 0.05, momentum = 0.9 }) end,
    rmsprop = function(lr) return optim.RMSprop(model, { lr = lr or 1e-3 }) end,
    adagrad = function(lr) return optim.Adagrad(model, { lr = lr or 0.01 }) end,
    autosgm = function(lr) return optim.AutoSGM(model, { lr_init = lr or 1e-3 }) end,
  }
  -- the SAM family around SGD with momentum
  local function sam(cls, cfg)
    return function(lr)
      cfg.base = optim.SGD { lr = lr or 0.05, momentum = 0.9 }
      return cls(model, cfg)
    end
  end
  OPTIMIZERS.sam, OPTIMIZERS.asam = sam(optim.SAM, {}), sam(optim.SAM, { rho = 0.5, adaptive = true })
  OPTIMIZERS.gsam, OPTIMIZERS.wsam = sam(optim.GSAM, {}), sam(optim.WSAM, {})
  OPTIMIZERS.looksam, OPTIMIZERS.fsam = sam(optim.LookSAM, {}), sam(optim.FriendlySAM, {})
  OPTIMIZERS.acme = function(lr) return optim.ACME(model, { lr = lr or 1e-3 }) end
  OPTIMIZERS.bsam = function(lr) return optim.BSAM(model, { lr = lr or 0.5, num_data = run.train_size }) end
  OPTIMIZERS.spsa = function(lr)
    -- data-parallel: every rank evaluates every direction on its share of the batch and the
    -- losses are averaged (dist_split = 'batch': one process's trajectory, as --batch says)
    return optim.SPSA(model, optim.SPSA.preset('zeroth_learn', { lr = lr or 1e-3, seed = args.seed,
                                                                  criterion = nn.CrossEntropyLoss(),
                                                                  dist_split = args.distributed and 'batch' or nil }))
  end
  local opt = OPTIMIZERS[args.optim](args.lr)
  run.model, run.train, run.test, run.opt = model, train, test, opt
  if args.resume then
    local ck = ms.load(args.resume, { device = args.device })
    if ck.model_kind ~= args.model then
      error(('%s holds a %s model, not %s'):format(args.resume, tostring(ck.model_kind), args.model), 0)
    end
    model:load_state_dict(ck.model)
    opt:load_state(ck.optimizer)
    ms.set_rng_state(ck.rng)
    train.epoch = ck.data_epoch
    run.epoch = ck.epoch + 1
    local p = ck.partial   -- stopped inside epoch ck.epoch + 1 after p.done steps
    if p then run.done, run.sum, run.seen = p.done, p.sum, p.seen end
    -- p.sum, p.seen are rank 0's share of the stopped epoch's loss (rank 0 saved it)
    if p and run.rank ~= 0 then run.sum, run.seen = 0, 0 end
    say(('resumed from %s after epoch %d%s'):format(args.resume, ck.epoch,
      p and (' and %d steps of epoch %d'):format(p.done, run.epoch) or ''))
  end
end

-- The checkpoint of the state after run.done steps of epoch run.epoch (complete: the
-- epoch's end). data_epoch is the dataset's epoch counter before that epoch's batches.
local function save_checkpoint(complete)
  if run.rank ~= 0 then return end
  local partial = not complete and { done = run.done, sum = run.sum, seen = run.seen } or nil
  ms.save(args.save, { model_kind = args.model, model = run.model:state_dict(),
                       optimizer = run.opt:state(), rng = ms.rng_state(),
                       epoch = complete and run.epoch or run.epoch - 1,
                       data_epoch = complete and run.train.epoch or run.data_epoch,
                       partial = partial })
end

---------------------------------------------------------------------------------------
-- Progress bar (ms.progress: stderr, terminals only, redrawn in place): one per epoch.
---------------------------------------------------------------------------------------
local bar   -- the current epoch's
local function clear_line()
  if bar then bar:finish(); bar = nil end
end

---------------------------------------------------------------------------------------
-- Training
---------------------------------------------------------------------------------------
-- The ranks must hold the same parameters after every epoch (the optimizers keep them
-- together: optim/dist_sync.lua, SPSA's spsa_dist.lua); a drift is an error, not a
-- silently wrong run. One all_gather of one number per epoch.
local function check_ranks_agree()
  if run.world == 1 then return end
  local sum = ms.tensor({ run.model:flat_parameters():to('float64'):sum() }, 'float64')
  local all = ms.dist.all_gather(sum):view(-1):totable()
  for r = 2, #all do
    if all[r] ~= all[1] then
      error(('after epoch %d the ranks hold different parameters (sums %.17g on rank 0, %.17g on rank %d): ' ..
             'the optimizer did not synchronise them'):format(run.epoch, all[1], all[r], r - 1), 0)
    end
  end
end

-- The test accuracy: with --distributed each rank scores its share of the test set and
-- the counts of correct answers are summed (the same figure as one process's).
local function test_accuracy()
  local acc = ms.metrics.accuracy(run.model, run.test)
  if not args.distributed then return acc end
  local n = run.test:size()
  local c = sum_over_ranks({ math.floor(acc * n + 0.5), n })
  return c[1] / c[2]
end

local function train_all()
  local model, train, opt = run.model, run.train, run.opt
  local crit = nn.CrossEntropyLoss()
  local batch = args.batch / run.world       -- this rank's share of a step
  say(('model %s (%d parameters), %s, %d training images, batch %d, %s, %d threads%s'):format(
    args.model, model:flat_parameters():numel(), opt.__name, run.train_size, args.batch, args.device,
    ms.num_threads(), run.world > 1 and (', %d ranks (batch %d each)'):format(run.world, batch) or ''))
  local epoch_samples = train:size() * run.world   -- with the padding of the shards
  while run.epoch <= args.epochs do
    model:train()
    local t0 = ms.clock()
    local skip, seen0 = run.done, run.seen       -- steps already taken (a resumed epoch)
    run.data_epoch = train.epoch
    bar = ms.progress(epoch_samples, { unit = 'samples', quiet = run.rank ~= 0 or nil })
    for x, y, b in train:batches(batch, { shuffle = true, seed = args.seed }) do
      if b > skip then
        local loss
        if opt.loss_only then   -- zeroth-order (SPSA): it evaluates the model itself
          loss = opt:step(x, y)
        else
          loss = opt:step(function()
            local out = model:forward(x)
            local l = crit:forward(out, y)
            model:backward(x, crit:backward(out, y))
            return l   -- the optimizer averages the gradients and the loss over the ranks
          end)
        end
        run.done, run.sum, run.seen = b, run.sum + loss * x:size(1), run.seen + x:size(1)
        bar:update(math.min(b * args.batch, epoch_samples), ('loss %.4f'):format(run.sum / run.seen))
      end
      check_interrupt()
    end
    clear_line()
    if args.device ~= 'cpu' then ms.cuda.synchronize() end
    local secs = ms.clock() - t0
    check_ranks_agree()
    local acc = test_accuracy()
    check_interrupt()
    -- the epoch's loss and samples over every rank (this rank's share without --distributed)
    local tot = sum_over_ranks({ run.sum, run.seen, run.seen - seen0 })
    say(('epoch %d  loss %.10f  test_accuracy %.4f  seconds %.2f  samples_per_s %.0f'):format(
      run.epoch, tot[1] / tot[2], acc, secs, tot[3] / secs))
    if args.save then save_checkpoint(true) end
    run.epoch, run.done, run.sum, run.seen = run.epoch + 1, 0, 0, 0
  end
end

local ok, err = guarded(setup)
if ok then ok, err = guarded(train_all) end
clear_line()
if ok then os.exit(0) end
if err ~= INTERRUPTED then
  if run.world > 1 then   -- every rank says what stopped it, in one write (mpirun interleaves the ranks)
    io.stderr:write(('train.lua: rank %d of %d: %s\n'):format(run.rank, run.world, tostring(err)))
    os.exit(1)
  end
  die(1, '%s', err)
end

-- Ctrl-C: one line; with --save (and a model to save) a checkpoint first (by rank 0).
C.ms_interrupt_clear()
local where = run.opt and (' in epoch %d after %d steps'):format(run.epoch, run.done) or ' before training'
local saved = ''
if args.save and run.opt and run.rank == 0 then
  local sok, serr = guarded(save_checkpoint, false)
  if sok then
    saved = ('; saved %s (continue with --resume %s)'):format(args.save, args.save)
  else
    saved = ('; could not save %s: %s'):format(args.save, tostring(serr))
  end
end
io.stdout:flush()
io.stderr:write('train.lua: interrupted (Ctrl-C)', where, saved, '\n')
os.exit(130)
