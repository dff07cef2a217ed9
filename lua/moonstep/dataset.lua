-- moonstep.dataset — ms.data.Dataset(x, y) and ms.data.permutation(n [, gen]) (see
-- moonstep.data for the API summary): two tensors with one first dimension, iterated in
-- (optionally shuffled) batches through reused buffers. Every method checks that x and
-- y are still live and consistent (they are plain fields a user may free or replace).
-- ds:shard(rank, world) is one rank's share for data parallelism (ms.dist): see below.
local ms = require 'moonstep'
local core = require 'moonstep.core'
local T = require 'moonstep.tensor'
local check = require 'moonstep.check'
local random = require 'moonstep.random'
local ffi = require 'ffi'
local C = core.C

local M = {}

local function shape_text(shape) return '[' .. table.concat(shape, ',') .. ']' end

local Dataset = {}
Dataset.__index = Dataset
Dataset.__name = 'Dataset'
Dataset.__var = 'ds'
-- ds(...) is a mistake (the class is callable, an instance is not)
Dataset.__call = function()
  check.fail('Dataset: a dataset is not callable; use ds:batches(n) to iterate, ds.x and ds.y for the data')
end
M.Dataset = setmetatable(Dataset, { __call = function(_, x, y) return Dataset.new(x, y) end })

-- Every method starts here: self must be a Dataset whose x and y (plain fields a user
-- may have freed or replaced) are still live tensors with one first dimension.
local function check_self(self, method)
  if getmetatable(self) ~= Dataset then
    check.fail('Dataset.%s: called on %s, expected a Dataset (use ds:%s(...) with a colon)',
               method, check.describe(self), method)
  end
  local who = 'Dataset.' .. method
  local x, y = rawget(self, 'x'), rawget(self, 'y')
  check.tensor(who, 'the dataset\'s x (ds.x)', x)
  check.tensor(who, 'the dataset\'s y (ds.y)', y)
  if x:dim() < 1 or y:dim() < 1 or x:size(1) ~= y:size(1) or x.device ~= y.device then
    check.fail('%s: the dataset\'s x is %s and y %s, expected tensors with the same first dimension on one device',
               who, check.describe(x), check.describe(y))
  end
  if not x:is_contiguous() or not y:is_contiguous() then
    check.fail('%s: the dataset\'s x is %s and y %s, expected contiguous tensors (assign ds.x = t:contiguous())',
               who, check.describe(x), check.describe(y))
  end
end

function Dataset.new(x, y)
  check.tensor('Dataset', 'x', x)
  check.tensor('Dataset', 'y', y)
  if x:dim() < 1 or y:dim() < 1 or x:size(1) ~= y:size(1) then
    check.fail('Dataset: x has shape %s and y %s, expected the same first dimension',
               shape_text(x:shape()), shape_text(y:shape()))
  end
  if x.device ~= y.device then
    check.fail('Dataset: x is on %s and y on %s, expected one device', x.device, y.device)
  end
  return setmetatable({ x = x:contiguous(), y = y:contiguous(), epoch = 0 }, Dataset)
end

---------------------------------------------------------------------------------------
-- Shards (data parallelism): ds:shard(rank, world [, {remainder = 'pad'}])
--
-- A shard is a view of the whole dataset (ds.x, ds.y are the same tensors, not copies)
-- that iterates only rank's share of each epoch's order. The share is strided: rank r
-- takes positions r, r + world, r + 2 world, ... (0-based) of the epoch's order, as
-- PyTorch's DistributedSampler. So with a per-rank batch b, the union of the ranks' k-th
-- batches is exactly the k-th batch of size world * b of one process over the whole
-- order: W ranks averaging their gradients follow one process's trajectory (contiguous
-- blocks would give rank 0 the first half of every epoch instead).
--
-- Shuffling: every rank draws the SAME permutation of all n examples for an epoch, from
-- the shared {seed, epoch}, and then takes its share of it (shuffle, then shard). Not
-- shard-then-shuffle-locally: that keeps each rank on the same examples forever, changes
-- the data order whenever the rank count changes (a resume on other ranks), and is not
-- one process's order. Nothing is communicated: each rank regenerates the permutation.
-- A shard of world > 1 therefore refuses to shuffle without an explicit seed (the global
-- generator may have drifted apart on the ranks).
--
-- The remainder when world does not divide n:
--   'pad'  (default) every rank takes ceil(n / world) examples: the order is wrapped
--          around (its first examples repeat), DistributedSampler's default;
--   'drop' every rank takes floor(n / world): the order's last n % world are skipped;
--   'none' rank r takes exactly positions r, r + world, ... < n: every example once,
--          ranks may differ by one example (evaluation, where no collective runs per batch).
-- With 'pad' and 'drop' every rank has the same number of examples, hence the same
-- number of batches and batch sizes: ranks that took different numbers of steps would
-- wait on each other's collectives. With 'none' the batch counts may differ by one.
---------------------------------------------------------------------------------------
local REMAINDERS = { 'pad', 'drop', 'none' }

-- How many examples rank takes of n.
local function share_count(n, rank, world, remainder)
  if remainder == 'pad' then return math.ceil(n / world)
  elseif remainder == 'drop' then return math.floor(n / world) end
  return n > rank and math.floor((n - rank - 1) / world) + 1 or 0
end

-- The shard's positions in an epoch's order, 1-based (an int64 tensor, on the device).
local function share_positions(sh, device)
  local pos = ms.empty({ sh.count }, 'int64')
  local p = ffi.cast('int64_t*', T.data(pos, 'Dataset.shard'))
  for j = 0, sh.count - 1 do p[j] = (sh.rank + j * sh.world) % sh.n + 1 end
  return pos:to(device)
end

function Dataset:shard(rank, world, opts)
  check_self(self, 'shard')
  local who = 'Dataset.shard'
  if rawget(self, '_shard') then
    local sh = self._shard
    check.fail('%s: ds is already the shard of rank %d of %d; shard the whole dataset', who, sh.rank, sh.world)
  end
  check.integer(who, 'world', world, 1)
  check.integer(who, 'rank', rank, 0, world - 1)
  opts = check.options(who, opts, { 'remainder' })
  local remainder = opts.remainder == nil and 'pad' or check.oneof(who, 'remainder', opts.remainder, REMAINDERS)
  local n = self:size()
  local count = share_count(n, rank, world, remainder)
  if count == 0 then
    check.fail('%s: %d example%s over %d ranks leave%s rank %d none (remainder %q)', who, n, n == 1 and '' or 's',
               world, n == 1 and 's' or '', rank, remainder)
  end
  local ds = setmetatable({ x = self.x, y = self.y, epoch = 0 }, Dataset)
  ds._shard = { rank = rank, world = world, remainder = remainder, n = n, count = count }
  ds._shard.positions = share_positions(ds._shard, self.x.device)
  return ds
end

-- For the methods a shard refuses (they would act on, or build from, the whole data).
local function not_on_shard(self, method)
  local sh = rawget(self, '_shard')
  if sh then
    check.fail('Dataset.%s: ds is the shard of rank %d of %d (a view of the whole dataset); call %s on the ' ..
               'whole dataset, before ds:shard', method, sh.rank, sh.world, method)
  end
end

-- A shard whose ds.x was replaced by one of another length no longer matches its plan.
local function check_shard(self, method)
  local sh = rawget(self, '_shard')
  if sh and self.x:size(1) ~= sh.n then
    check.fail('Dataset.%s: ds is a shard of %d examples but ds.x now has %d; shard the new dataset instead',
               method, sh.n, self.x:size(1))
  end
  return sh
end

function Dataset:size()
  check_self(self, 'size')
  local sh = check_shard(self, 'size')
  return sh and sh.count or self.x:size(1)
end

function Dataset:to(device)
  check_self(self, 'to')
  check.oneof('Dataset.to', 'device', device, { 'cpu', 'cuda' })
  local sh = check_shard(self, 'to')
  local ds = Dataset.new(self.x:to(device), self.y:to(device))
  if sh then ds = ds:shard(sh.rank, sh.world, { remainder = sh.remainder }) end
  return ds
end

-- subset(first [, count]) or subset(indices): a table or int64 tensor of 1-based indices
function Dataset:subset(a, b)
  check_self(self, 'subset')
  not_on_shard(self, 'subset')
  local n = self:size()
  if type(a) == 'number' then
    check.integer('Dataset.subset', 'first', a, 1, n + 1)
    b = b == nil and n - a + 1 or check.integer('Dataset.subset', 'count', b, 0, n - a + 1)
    return Dataset.new(self.x:narrow(1, a, b):clone(), self.y:narrow(1, a, b):clone())
  end
  local idx
  if type(a) == 'table' and not ms.is_tensor(a) then
    for k in pairs(a) do
      if type(k) ~= 'number' or k < 1 or k > #a or k ~= math.floor(k) then
        check.fail('Dataset.subset: indices has key %s, expected a list of indices without holes', check.describe(k))
      end
    end
    for i, v in ipairs(a) do check.integer('Dataset.subset', ('indices[%d]'):format(i), v, 1, n) end
    if #a == 0 then check.fail('Dataset.subset: indices is an empty table, expected at least one index') end
    idx = ms.tensor(a, 'int64')
  elseif ms.is_tensor(a) and not T.is_freed(a) then
    if a.dtype ~= 'int64' or a:dim() ~= 1 then
      check.fail('Dataset.subset: indices is %s, expected a 1-d int64 tensor', check.describe(a))
    end
    local f = a:numel() > 0 and a:to('float64')
    if f and (f:min() < 1 or f:max() > n) then
      check.fail('Dataset.subset: indices hold values in [%s, %s], expected 1 to %d', check.describe(f:min()),
                 check.describe(f:max()), n)
    end
    idx = a
  else
    check.fail('Dataset.subset: expected (first [, count]) or a list or int64 tensor of indices, got %s',
               check.describe(a))
  end
  idx = idx:to(self.x.device)
  return Dataset.new(self.x:index_select(1, idx), self.y:index_select(1, idx))
end

-- A random permutation of 1..n as an int64 tensor: the one implementation ms.randperm
-- uses too (moonstep.random). gen: nil (the global generator) or {seed=, stream=}.
local function permutation(n, gen, who)
  return random.permutation(who or 'data.permutation', n, gen)
end
M.permutation = function(n, gen) return permutation(n, gen, 'data.permutation') end

-- split(fraction [, seed]): a random split into two datasets of fraction and the rest.
function Dataset:split(fraction, seed)
  check_self(self, 'split')
  not_on_shard(self, 'split')
  if type(fraction) ~= 'number' or not (fraction > 0 and fraction < 1) then
    check.fail('Dataset.split: fraction is %s, expected a number strictly between 0 and 1', check.describe(fraction))
  end
  seed = seed == nil and 0 or check.integer('Dataset.split', 'seed', seed, 0)
  local n = self:size()
  local k = math.floor(n * fraction + 0.5)
  if k < 1 or k > n - 1 then
    check.fail('Dataset.split: fraction %s of %d examples leaves one part empty', check.describe(fraction), n)
  end
  local perm = permutation(n, { seed = seed, stream = 0 }, 'Dataset.split')
  return self:subset(perm:narrow(1, 1, k)), self:subset(perm:narrow(1, k + 1, n - k))
end

-- Per-feature mean and std over the dataset (as tensors shaped like one example).
function Dataset:mean_std()
  check_self(self, 'mean_std')
  not_on_shard(self, 'mean_std')
  if self:size() == 0 then check.fail('Dataset.mean_std: the dataset is empty') end
  local flat = self.x:view(self:size(), -1)
  local mean = flat:mean(1)
  local std = flat:var(1, false):sqrt_()
  local shape = self.x:shape()
  table.remove(shape, 1)
  return mean:view(shape), std:view(shape)
end

-- In place: x <- (x - mean) / std; mean and std are numbers or broadcastable tensors.
function Dataset:normalize(mean, std)
  check_self(self, 'normalize')
  not_on_shard(self, 'normalize')
  local who = 'Dataset.normalize'
  local x = self.x
  for _, a in ipairs { { 'mean', mean }, { 'std', std } } do
    local name, v = a[1], a[2]
    if ms.is_tensor(v) then
      -- checked before anything is written: a failure must leave x untouched
      check.tensor(who, name, v)
      if v.dtype ~= x.dtype then
        check.fail('%s: %s is %s but the dataset\'s x is %s, expected the same dtype', who, name,
                   check.describe(v), check.describe(x))
      end
      if v.device ~= x.device then
        check.fail('%s: %s is on %s and the dataset on %s, expected one device', who, name, v.device, x.device)
      end
      local ok = v:dim() <= x:dim()
      for d = 1, ok and v:dim() or 0 do
        local s, xs = v:size(v:dim() - d + 1), x:size(x:dim() - d + 1)
        if ok and s ~= 1 and s ~= xs then ok = false end
      end
      if not ok then
        check.fail('%s: %s is %s, expected a tensor that broadcasts to the dataset\'s x, %s',
                   who, name, check.describe(v), check.describe(x))
      end
    else
      check.number(who, name, v)
    end
  end
  if type(std) == 'number' and std <= 0 then
    check.fail('Dataset.normalize: std is %s, expected a number > 0', check.describe(std))
  end
  x:sub_(mean)
  if type(std) == 'number' then x:div_(std) else x:div_(std:clamp(1e-12)) end
  return self
end

function Dataset:batches(size, opts)
  check_self(self, 'batches')
  check.integer('Dataset.batches', 'batch size', size, 1)
  opts = check.options('Dataset.batches', opts, { 'shuffle', 'seed', 'drop_last' })
  if opts.shuffle ~= nil then check.boolean('Dataset.batches', 'shuffle', opts.shuffle) end
  if opts.drop_last ~= nil then check.boolean('Dataset.batches', 'drop_last', opts.drop_last) end
  if opts.seed ~= nil then
    check.integer('Dataset.batches', 'seed', opts.seed, 0)
    if not opts.shuffle then check.fail('Dataset.batches: a seed was given without shuffle = true') end
  end
  local sh = check_shard(self, 'batches')
  if sh and sh.world > 1 and opts.shuffle and opts.seed == nil then
    check.fail('Dataset.batches: ds is the shard of rank %d of %d: shuffling needs a seed (the same on every ' ..
               'rank), so that every rank draws the same permutation before taking its share', sh.rank, sh.world)
  end
  self.epoch = self.epoch + 1
  local order   -- the epoch's order: 1-based example indices (nil: 1..n)
  if opts.shuffle then
    local gen = opts.seed and { seed = opts.seed, stream = self.epoch } or nil
    order = permutation(sh and sh.n or self:size(), gen, 'Dataset.batches'):to(self.x.device)
  end
  if sh then   -- the rank's share of the order
    order = order and order:index_select(1, sh.positions) or sh.positions
  end
  local n = self:size()
  local xshape, yshape = self.x:shape(), self.y:shape()
  xshape[1], yshape[1] = math.min(size, n), math.min(size, n)
  local xb = ms.empty(xshape, { dtype = self.x.dtype, device = self.x.device })
  local yb = ms.empty(yshape, { dtype = self.y.dtype, device = self.y.device })
  local nbatches = opts.drop_last and math.floor(n / size) or math.ceil(n / size)
  local b = 0
  local x, y = self.x, self.y
  return function()
    b = b + 1
    if b > nbatches then return nil end
    -- the loop body is user code: it may free a batch or replace the dataset's tensors
    check.tensor('Dataset.batches', 'the batch x (freed in the loop?)', xb)
    check.tensor('Dataset.batches', 'the batch y (freed in the loop?)', yb)
    if rawget(self, 'x') ~= x or rawget(self, 'y') ~= y then
      check.fail('Dataset.batches: ds.x or ds.y was replaced during the iteration, expected them unchanged until the loop ends')
    end
    check.tensor('Dataset.batches', 'the dataset\'s x (ds.x)', x)
    check.tensor('Dataset.batches', 'the dataset\'s y (ds.y)', y)
    local first = (b - 1) * size + 1
    local count = math.min(size, n - first + 1)
    local bx, by = xb, yb
    if count < xb:size(1) then bx, by = xb:narrow(1, 1, count), yb:narrow(1, 1, count) end
    if order then
      local idx = order:narrow(1, first, count)
      if C.ms_index_select(bx, x, 0, idx, 1) ~= 0 then core.fail('Dataset.batches') end
      if C.ms_index_select(by, y, 0, idx, 1) ~= 0 then core.fail('Dataset.batches') end
    else
      bx:copy_(x:narrow(1, first, count))
      by:copy_(y:narrow(1, first, count))
    end
    return bx, by, b
  end
end

-- tostring(ds): size, device, x's and y's dtype and shape, x's mean and std (whether it
-- looks normalized: |mean| < 0.1 and |std - 1| < 0.1 over all of x), the label range
-- of int64 y. Never raises: a freed or replaced x or y is described as it is.
local STATS_MAX = 2 ^ 27                -- beyond this many elements, no statistics
local function fmt_num(v) return ('%.4g'):format(v) end

local function describe_x(x)
  local s = ('%s %s'):format(x.dtype, shape_text(x:shape()))
  local n = x:numel()
  if n == 0 or n > STATS_MAX or (x.dtype ~= 'float32' and x.dtype ~= 'float64') then return s end
  local ok, mean, std = pcall(function() return x:mean(), x:std() end)
  if not ok or mean ~= mean or std ~= std then return s end
  local normed = math.abs(mean) < 0.1 and math.abs(std - 1) < 0.1
  return ('%s  mean %s, std %s (%s)'):format(s, fmt_num(mean), fmt_num(std), normed and 'normalized' or 'not normalized')
end

local function describe_y(y)
  local s = ('%s %s'):format(y.dtype, shape_text(y:shape()))
  if y.dtype ~= 'int64' or y:numel() == 0 or y:numel() > STATS_MAX then return s end
  local ok, lo, hi = pcall(function()
    local f = y:to('float64')
    return f:min(), f:max()
  end)
  if not ok then return s end
  return ('%s  labels %s..%s'):format(s, fmt_num(lo), fmt_num(hi))
end

function Dataset.__tostring(self)
  local x, y = rawget(self, 'x'), rawget(self, 'y')
  local live = function(t) return ms.is_tensor(t) and not T.is_freed(t) end
  if not (live(x) and live(y)) then
    return ('Dataset (x is %s, y is %s: not usable)'):format(check.describe(x), check.describe(y))
  end
  local n = x:dim() > 0 and x:size(1) or 0
  local lines = { ('Dataset: %d example%s on %s%s'):format(n, n == 1 and '' or 's', x.device,
                  x.device ~= y.device and (' (y on ' .. y.device .. ')') or '') }
  local sh = rawget(self, '_shard')
  if type(sh) == 'table' then
    lines[1] = ('Dataset: the shard of rank %d of %d, %d of %d examples (strided, remainder %q), on %s'):format(
      sh.rank, sh.world, sh.count, n, sh.remainder, x.device)
  end
  lines[2] = '  x  ' .. describe_x(x)
  lines[3] = '  y  ' .. describe_y(y)
  return table.concat(lines, '\n')
end

-- Errors raised below a Dataset method are named after it (check.methods).
check.methods(Dataset)

return M
