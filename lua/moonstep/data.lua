-- moonstep.data — datasets for training loops.
--
--   ms.data.read_idx(path)                 an IDX file (gzip or raw) as a uint8 tensor
--   ms.data.fashion_mnist(split, opts)     'train' (60000) or 'test' (10000) from Debian's
--       dataset-fashion-mnist: x float32 in [0, 1], [N, 784] (opts.shape = 'image' gives
--       [N, 1, 28, 28]); y int64 class indices 1..10 (the file's 0..9 plus one)
--   ms.data.read_csv(path, opts)           numeric CSV: opts.label = column name or
--       number (default: the last), opts.classes = true for int64 1-based labels
--   ms.data.Dataset(x, y)                  wraps two tensors with the same first dim
--
--   for x, y in ds:batches(128, {shuffle = true, seed = 1, drop_last = false}) do ... end
--       x and y are buffers reused from batch to batch (clone to keep one). Shuffling
--       draws a Philox permutation: from {seed, epoch} when a seed is given (epoch counts
--       the calls to batches), else from the global generator (so ms.manual_seed fixes it).
--   ds:size(), ds:subset(first, count) or ds:subset(index_tensor), ds:split(fraction, seed),
--   ds:to(device), ds:normalize(mean, std), ds:mean_std()
local ffi = require 'ffi'
local ms = require 'moonstep'
local core = require 'moonstep.core'
local C = core.C

local M = {}

---------------------------------------------------------------------------------------
-- zlib (Debian's zlib1g) for gzip files; raw files go through the same calls, as
-- gzread reads uncompressed files unchanged.
---------------------------------------------------------------------------------------
ffi.cdef [[
typedef struct gzFile_s *gzFile;
gzFile gzopen(const char *path, const char *mode);
int gzread(gzFile file, void *buf, unsigned int len);
int gzclose(gzFile file);
const char *gzerror(gzFile file, int *errnum);
]]
local zlib
local function z()
  if not zlib then
    zlib = core.load_first { 'z', 'libz.so.1' }
    if not zlib then error('moonstep.data: cannot load zlib (install zlib1g)', 3) end
  end
  return zlib
end

local function file_exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() return true end
  return false
end

-- Read exactly n bytes into buf; offset names the position in errors.
local function read_exact(gz, buf, n, path, offset, what)
  local done = 0
  while done < n do
    local chunk = math.min(n - done, 2 ^ 30)
    local got = z().gzread(gz, ffi.cast('uint8_t*', buf) + done, chunk)
    if got < 0 then
      local errnum = ffi.new('int[1]')
      local msg = ffi.string(z().gzerror(gz, errnum))
      error(('read_idx: %s is corrupt at byte offset %d (%s): %s'):format(path, offset + done, what, msg), 0)
    end
    if got == 0 then
      error(('read_idx: %s is truncated at byte offset %d: %s needs %d bytes there, the file ends after %d'):format(
        path, offset + done, what, n, done), 0)
    end
    done = done + got
  end
end

-- IDX: two zero bytes, a type byte (0x08 = unsigned byte), a dimension count, then
-- one big-endian uint32 size per dimension, then the data in row-major order.
function M.read_idx(path)
  if type(path) ~= 'string' then error('read_idx: expected a file path', 2) end
  if not file_exists(path) then error(('read_idx: %s: no such file'):format(path), 2) end
  local gz = z().gzopen(path, 'rb')
  if gz == nil then error(('read_idx: cannot open %s'):format(path), 2) end
  local ok, result = pcall(function()
    local head = ffi.new('uint8_t[4]')
    read_exact(gz, head, 4, path, 0, 'the header')
    if head[0] ~= 0 or head[1] ~= 0 then
      error(('read_idx: %s is not an IDX file: bytes 0-1 are %02x %02x, expected 00 00'):format(path, head[0], head[1]), 0)
    end
    if head[2] ~= 0x08 then
      error(('read_idx: %s: byte 2 is type 0x%02x, expected 0x08 (unsigned bytes, the only type moonstep reads)'):format(path, head[2]), 0)
    end
    local ndim = head[3]
    if ndim < 1 or ndim > 4 then
      error(('read_idx: %s: byte 3 gives %d dimensions, expected 1 to 4'):format(path, ndim), 0)
    end
    local dims = ffi.new('uint8_t[16]')
    read_exact(gz, dims, 4 * ndim, path, 4, 'the sizes')
    local shape, total = {}, 1
    for d = 1, ndim do
      local b = dims + 4 * (d - 1)
      shape[d] = ((b[0] * 256 + b[1]) * 256 + b[2]) * 256 + b[3]
      total = total * shape[d]
    end
    if total > 2 ^ 34 then
      error(('read_idx: %s: sizes [%s] at byte offset 4 describe %d bytes, more than moonstep will read'):format(
        path, table.concat(shape, ','), total), 0)
    end
    local t = ms.empty(shape, 'uint8')
    if total > 0 then read_exact(gz, t.storage.data, total, path, 4 + 4 * ndim, 'the data') end
    local extra = ffi.new('uint8_t[1]')
    if z().gzread(gz, extra, 1) > 0 then
      error(('read_idx: %s has data past byte offset %d, where sizes [%s] end it'):format(
        path, 4 + 4 * ndim + total, table.concat(shape, ',')), 0)
    end
    return t
  end)
  z().gzclose(gz)
  if not ok then error(result, 2) end
  return result
end

---------------------------------------------------------------------------------------
-- Dataset
---------------------------------------------------------------------------------------
local Dataset = {}
Dataset.__index = Dataset
M.Dataset = setmetatable(Dataset, { __call = function(_, x, y) return Dataset.new(x, y) end })

function Dataset.new(x, y)
  if not ms.is_tensor(x) or not ms.is_tensor(y) then error('Dataset: expected (x, y) tensors', 3) end
  if x:dim() < 1 or y:dim() < 1 or x:size(1) ~= y:size(1) then
    error(('Dataset: x has shape [%s] and y [%s], expected the same first dimension'):format(
      table.concat(x:shape(), ','), table.concat(y:shape(), ',')), 3)
  end
  return setmetatable({ x = x:contiguous(), y = y:contiguous(), epoch = 0 }, Dataset)
end

function Dataset:size() return self.x:size(1) end

function Dataset:to(device)
  return Dataset.new(self.x:to(device), self.y:to(device))
end

-- subset(first, count) or subset(int64 index tensor / table, 1-based)
function Dataset:subset(a, b)
  if type(a) == 'number' then
    if b == nil then b = self:size() - a + 1 end
    return Dataset.new(self.x:narrow(1, a, b):clone(), self.y:narrow(1, a, b):clone())
  end
  local idx = ms.is_tensor(a) and a or ms.tensor(a, 'int64')
  idx = idx:to(self.x.device)
  return Dataset.new(self.x:index_select(1, idx), self.y:index_select(1, idx))
end

-- A random permutation of 1..n as an int64 tensor (Fisher-Yates on Philox uniforms).
local function permutation(n, gen)
  local u = ms.empty(n, 'float64')
  if gen then u:uniform_(0, 1, gen) else u:uniform_(0, 1) end
  local up = ffi.cast('double*', u.storage.data)
  local perm = ms.empty(n, 'int64')
  local p = ffi.cast('int64_t*', perm.storage.data)
  for i = 0, n - 1 do p[i] = i + 1 end
  for i = n - 1, 1, -1 do
    local j = math.floor(up[i] * (i + 1))
    p[i], p[j] = p[j], p[i]
  end
  return perm
end
M.permutation = permutation

-- split(fraction, seed): a random split into two datasets of fraction and the rest.
function Dataset:split(fraction, seed)
  if type(fraction) ~= 'number' or fraction <= 0 or fraction >= 1 then
    error('split: expected a fraction strictly between 0 and 1', 2)
  end
  local n = self:size()
  local perm = permutation(n, { seed = seed or 0, stream = 0 })
  local k = math.floor(n * fraction + 0.5)
  return self:subset(perm:narrow(1, 1, k)), self:subset(perm:narrow(1, k + 1, n - k))
end

-- Per-feature mean and std over the dataset (as tensors shaped like one example).
function Dataset:mean_std()
  local flat = self.x:view(self:size(), -1)
  local mean = flat:mean(1)
  local std = flat:var(1, false):sqrt_()
  local shape = self.x:shape()
  table.remove(shape, 1)
  return mean:view(shape), std:view(shape)
end

-- In place: x <- (x - mean) / std; mean and std are numbers or broadcastable tensors.
function Dataset:normalize(mean, std)
  self.x:sub_(mean)
  if type(std) == 'number' then self.x:div_(std) else self.x:div_(std:clamp(1e-12)) end
  return self
end

function Dataset:batches(size, opts)
  opts = opts or {}
  if type(size) ~= 'number' or size < 1 then error('batches: expected a batch size >= 1', 2) end
  local n = self:size()
  self.epoch = self.epoch + 1
  local order
  if opts.shuffle then
    local gen = opts.seed and { seed = opts.seed, stream = self.epoch } or nil
    order = permutation(n, gen):to(self.x.device)
  end
  local xshape, yshape = self.x:shape(), self.y:shape()
  xshape[1], yshape[1] = math.min(size, n), math.min(size, n)
  local xb = ms.empty(xshape, { dtype = self.x.dtype, device = self.x.device })
  local yb = ms.empty(yshape, { dtype = self.y.dtype, device = self.y.device })
  local nbatches = opts.drop_last and math.floor(n / size) or math.ceil(n / size)
  local b = 0
  return function()
    b = b + 1
    if b > nbatches then return nil end
    local first = (b - 1) * size + 1
    local count = math.min(size, n - first + 1)
    local bx, by = xb, yb
    if count < xb:size(1) then bx, by = xb:narrow(1, 1, count), yb:narrow(1, 1, count) end
    if order then
      local idx = order:narrow(1, first, count)
      if C.ms_index_select(bx, self.x, 0, idx, 1) ~= 0 then core.fail(2) end
      if C.ms_index_select(by, self.y, 0, idx, 1) ~= 0 then core.fail(2) end
    else
      bx:copy_(self.x:narrow(1, first, count))
      by:copy_(self.y:narrow(1, first, count))
    end
    return bx, by, b
  end
end

---------------------------------------------------------------------------------------
-- Fashion-MNIST from Debian's dataset-fashion-mnist
---------------------------------------------------------------------------------------
M.FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist'
M.FASHION_MNIST_CLASSES = { 'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
                            'Shirt', 'Sneaker', 'Bag', 'Ankle boot' }

function M.fashion_mnist(split, opts)
  opts = opts or {}
  local prefix = ({ train = 'train', test = 't10k' })[split or 'train']
  if not prefix then
    error(('fashion_mnist: split %q is unknown, expected \'train\' or \'test\''):format(tostring(split)), 2)
  end
  local dir = opts.dir or os.getenv('MOONSTEP_FASHION_MNIST') or M.FASHION_MNIST_DIR
  local img = ('%s/%s-images-idx3-ubyte.gz'):format(dir, prefix)
  local lab = ('%s/%s-labels-idx1-ubyte.gz'):format(dir, prefix)
  for _, f in ipairs { img, lab } do
    if not file_exists(f) then
      error(('fashion_mnist: %s not found: install the Debian package dataset-fashion-mnist ' ..
             '(apt-get install dataset-fashion-mnist; `make` does it via scripts/install-deps.sh)'):format(f), 2)
    end
  end
  local images, labels = M.read_idx(img), M.read_idx(lab)
  if images:dim() ~= 3 or labels:dim() ~= 1 or images:size(1) ~= labels:size(1) then
    error(('fashion_mnist: %s holds [%s] and %s [%s], expected [N, 28, 28] and [N]'):format(
      img, table.concat(images:shape(), ','), lab, table.concat(labels:shape(), ',')), 2)
  end
  local n = images:size(1)
  local x = images:to('float32'):div_(255)
  x = opts.shape == 'image' and x:view(n, 1, 28, 28) or x:view(n, 784)
  local y = labels:to('float32'):add_(1):to('int64')  -- math is float: shift there, exactly
  return Dataset.new(x, y)
end

---------------------------------------------------------------------------------------
-- CSV
---------------------------------------------------------------------------------------
function M.read_csv(path, opts)
  opts = opts or {}
  local f = io.open(path, 'r')
  if not f then error(('read_csv: cannot open %s'):format(tostring(path)), 2) end
  local sep = opts.sep or ','
  local pattern = '([^' .. sep .. ']*)'
  local rows, header, lineno = {}, nil, 0
  for line in f:lines() do
    lineno = lineno + 1
    line = line:gsub('\r$', '')
    if line:match('%S') then
      local fields = {}
      for v in (line .. sep):gmatch(pattern .. sep) do fields[#fields + 1] = v end
      if header == nil and opts.header ~= false and not tonumber(fields[1]) then
        header = fields
      else
        local row = {}
        for i, v in ipairs(fields) do
          row[i] = tonumber(v)
          if row[i] == nil then
            f:close()
            error(('read_csv: %s line %d, column %d: %q is not a number'):format(path, lineno, i, v), 2)
          end
        end
        if #rows > 0 and #row ~= #rows[1] then
          f:close()
          error(('read_csv: %s line %d has %d columns, expected %d'):format(path, lineno, #row, #rows[1]), 2)
        end
        rows[#rows + 1] = row
      end
    end
  end
  f:close()
  if #rows == 0 then error(('read_csv: %s has no data rows'):format(path), 2) end
  local ncol = #rows[1]
  local label = opts.label or ncol
  if type(label) == 'string' then
    local found
    for i, name in ipairs(header or {}) do if name == label then found = i end end
    if not found then error(('read_csv: %s has no column named %q'):format(path, label), 2) end
    label = found
  end
  local feats = {}
  for i = 1, ncol do if i ~= label then feats[#feats + 1] = i end end
  local xs, ys = {}, {}
  for r, row in ipairs(rows) do
    local xr = {}
    for k, i in ipairs(feats) do xr[k] = row[i] end
    xs[r], ys[r] = xr, row[label]
  end
  local y = opts.classes and ms.tensor(ys, 'int64') or ms.tensor(ys)
  return Dataset.new(ms.tensor(xs), y), header
end

return M
