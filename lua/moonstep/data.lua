-- moonstep.data — datasets for training loops.
--
--   ms.data.read_idx(path [, {max_bytes = 256 MiB}])   an IDX file (gzip or raw) as a
--       uint8 tensor. The data may not exceed max_bytes (an explicit bound on what a
--       header can make moonstep allocate); gzip streams must end with a correct trailer.
--   ms.data.fashion_mnist(split, opts)     'train' (60000) or 'test' (10000) from Debian's
--       dataset-fashion-mnist: x float32 in [0, 1], [N, 784] (opts.shape = 'image' gives
--       [N, 1, 28, 28]; 'flat' is the default); y int64 class indices 1..10 (the file's
--       0..9 plus one); opts.dir overrides the directory
--   ms.data.read_csv(path, opts)           numeric CSV (UTF-8, an optional BOM; fields may
--       be "quoted", not across lines): opts.label = column name or number (default: the
--       last), opts.classes = true for int64 labels (integers >= 1), opts.sep (default
--       ',', taken literally), opts.header = true/false (default: the first row is a
--       header when its first field is not a number). Returns the Dataset and the header.
--   ms.data.Dataset(x, y)                  wraps two tensors with the same first dim
--
--   for x, y in ds:batches(128, {shuffle = true, seed = 1, drop_last = false}) do ... end
--       x and y are buffers reused from batch to batch (clone to keep one). Shuffling
--       draws a Philox permutation: from {seed, epoch} when a seed is given (epoch counts
--       the calls to batches), else from the global generator (so ms.manual_seed fixes it).
--   ds:size(), ds:subset(first [, count]) or ds:subset(indices), ds:split(fraction [, seed]),
--   ds:to(device), ds:normalize(mean, std), ds:mean_std()
--   ds:shard(rank, world [, {remainder = 'pad' | 'drop' | 'none'}])   a rank's strided
--       share of each epoch's order, for data parallelism (moonstep.dataset explains)
local ffi = require 'ffi'
local ms = require 'moonstep'
local core = require 'moonstep.core'
local T = require 'moonstep.tensor'
local check = require 'moonstep.check'
local C = core.C

local M = {}
M.MAX_BYTES = 256 * 1024 * 1024      -- read_idx's default bound on the data

local function c_error() return ffi.string(C.ms_last_error()) end
local function shape_text(shape) return '[' .. table.concat(shape, ',') .. ']' end

---------------------------------------------------------------------------------------
-- IDX through zlib (Debian's zlib1g): gzread reads uncompressed files unchanged.
-- runtime/checkpoint.c opens the file (regular files only: a FIFO must not hang).
---------------------------------------------------------------------------------------
ffi.cdef [[
typedef struct gzFile_s *gzFile;
int gzread(gzFile file, void *buf, unsigned int len);
int gzclose(gzFile file);
int gzdirect(gzFile file);
const char *gzerror(gzFile file, int *errnum);
]]
local Z_BUF_ERROR = -5
local zlib
local function z()
  if not zlib then
    zlib = core.load_first { 'z', 'libz.so.1' }
    if not zlib then check.fail('read_idx: cannot load zlib (install zlib1g)') end
  end
  return zlib
end

local function fail(...) error(string.format(...), 0) end

-- zlib's error for gz, or nil; Z_BUF_ERROR means the gzip stream ended early.
local function gz_error(gz, path)
  local errnum = ffi.new('int[1]')
  local msg = ffi.string(z().gzerror(gz, errnum))
  if errnum[0] == Z_BUF_ERROR then
    return ('%s is a truncated gzip file: the compressed stream ends before its end marker ' ..
            'and CRC-32/length trailer'):format(path)
  elseif errnum[0] ~= 0 then
    return ('%s is a corrupt gzip file: %s'):format(path, msg)
  end
end

-- Read exactly n bytes into buf; offset names the position in errors.
local function read_exact(gz, buf, n, path, offset, what)
  local done = 0
  while done < n do
    local got = z().gzread(gz, ffi.cast('uint8_t*', buf) + done, math.min(n - done, 2 ^ 30))
    if got <= 0 then
      local err = gz_error(gz, path)
      if err then fail('read_idx: %s (reading %s at byte offset %d)', err, what, offset + done) end
      fail('read_idx: %s is truncated at byte offset %d: %s needs %d bytes there, the file ends after %d',
           path, offset + done, what, n, done)
    end
    done = done + got
  end
end

-- IDX: two zero bytes, a type byte (0x08 = unsigned byte), a dimension count, then
-- one big-endian uint32 size per dimension, then the data in row-major order.
local function read_idx_open(gz, path, file_bytes, max_bytes, max_is_default)
  local head = ffi.new('uint8_t[4]')
  read_exact(gz, head, 4, path, 0, 'the header')
  if head[0] ~= 0 or head[1] ~= 0 then
    fail('read_idx: %s is not an IDX file: bytes 0-1 are %02x %02x, expected 00 00', path, head[0], head[1])
  end
  if head[2] ~= 0x08 then
    fail('read_idx: %s: byte 2 is type 0x%02x, expected 0x08 (unsigned bytes, the only type moonstep reads)', path, head[2])
  end
  local ndim = head[3]
  if ndim < 1 or ndim > 4 then fail('read_idx: %s: byte 3 gives %d dimensions, expected 1 to 4', path, ndim) end
  local dims = ffi.new('uint8_t[16]')
  read_exact(gz, dims, 4 * ndim, path, 4, 'the sizes')
  local shape, total = {}, 1
  for d = 1, ndim do
    local b = dims + 4 * (d - 1)
    shape[d] = ((b[0] * 256 + b[1]) * 256 + b[2]) * 256 + b[3]
    total = total * shape[d]             -- < 2^128: exact enough to compare (doubles)
  end
  local data_at = 4 + 4 * ndim
  if total > max_bytes then
    fail('read_idx: %s: sizes %s at byte offset 4 describe %.0f bytes, more than max_bytes = %d%s; ' ..
         'pass {max_bytes = ...} to read a file this large', path, shape_text(shape), total, max_bytes,
         max_is_default and ' (the default, 256 MiB)' or '')
  end
  if z().gzdirect(gz) == 1 then          -- raw: the file size says whether the data is there
    if data_at + total > file_bytes then
      fail('read_idx: %s is truncated: sizes %s at byte offset 4 need %d data bytes from byte offset %d, ' ..
           'the file ends after %d', path, shape_text(shape), total, data_at, math.max(file_bytes - data_at, 0))
    elseif data_at + total < file_bytes then
      fail('read_idx: %s has %d bytes past byte offset %d, where sizes %s end it', path,
           file_bytes - data_at - total, data_at + total, shape_text(shape))
    end
  elseif total > file_bytes * 1032 + 4096 then   -- deflate expands at most ~1032:1
    fail('read_idx: %s: sizes %s at byte offset 4 describe %d bytes, more than a %d-byte gzip ' ..
         'file can hold', path, shape_text(shape), total, file_bytes)
  end
  local t = ms.empty(shape, 'uint8')
  if total > 0 then read_exact(gz, T.data(t, 'read_idx'), total, path, data_at, 'the data') end
  -- read on: past the data there must be nothing, and a gzip stream must end cleanly
  -- (its trailer's CRC-32 and length are checked by zlib when it gets there)
  local extra = ffi.new('uint8_t[1]')
  local got = z().gzread(gz, extra, 1)
  if got > 0 then
    fail('read_idx: %s has data past byte offset %d, where sizes %s end it', path, data_at + total, shape_text(shape))
  end
  local err = gz_error(gz, path)
  if err then fail('read_idx: %s', err) end
  return t
end

function M.read_idx(path, opts)
  check.path('read_idx', path)
  opts = check.options('read_idx', opts, { 'max_bytes' })
  local max_bytes = opts.max_bytes == nil and M.MAX_BYTES
                    or check.integer('read_idx', 'max_bytes', opts.max_bytes, 1, 2 ^ 50)
  z()
  local size = ffi.new('int64_t[1]')
  local gz = C.ms_gzopen_regular(path, size)
  if gz == nil then check.fail('read_idx: %s', c_error()) end
  gz = ffi.cast('gzFile', gz)
  local ok, result = pcall(read_idx_open, gz, path, tonumber(size[0]), max_bytes, opts.max_bytes == nil)
  local closed = z().gzclose(gz)
  if not ok then check.raise(tostring(result)) end
  if closed ~= 0 then check.fail('read_idx: %s: closing the gzip stream failed (zlib error %d)', path, closed) end
  return result
end

---------------------------------------------------------------------------------------
-- Dataset and permutation: moonstep.dataset
---------------------------------------------------------------------------------------
local dataset = require 'moonstep.dataset'
local Dataset = dataset.Dataset
M.Dataset, M.permutation = dataset.Dataset, dataset.permutation

---------------------------------------------------------------------------------------
-- Fashion-MNIST from Debian's dataset-fashion-mnist
---------------------------------------------------------------------------------------
M.FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist'
M.FASHION_MNIST_CLASSES = { 'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
                            'Shirt', 'Sneaker', 'Bag', 'Ankle boot' }

function M.fashion_mnist(split, opts)
  split = split == nil and 'train' or check.oneof('fashion_mnist', 'split', split, { 'train', 'test' })
  opts = check.options('fashion_mnist', opts, { 'dir', 'shape' })
  local shape = opts.shape == nil and 'flat' or check.oneof('fashion_mnist', 'shape', opts.shape, { 'flat', 'image' })
  if opts.dir ~= nil and type(opts.dir) ~= 'string' then
    check.fail('fashion_mnist: dir is %s, expected a directory path', check.describe(opts.dir))
  end
  local prefix = split == 'train' and 'train' or 't10k'
  local dir = opts.dir or os.getenv('MOONSTEP_FASHION_MNIST') or M.FASHION_MNIST_DIR
  local img = ('%s/%s-images-idx3-ubyte.gz'):format(dir, prefix)
  local lab = ('%s/%s-labels-idx1-ubyte.gz'):format(dir, prefix)
  for _, f in ipairs { img, lab } do
    local h = io.open(f, 'rb')
    if not h then
      check.fail('fashion_mnist: %s not found: install the Debian package dataset-fashion-mnist ' ..
                 '(apt-get install dataset-fashion-mnist; `make` does it via scripts/install-deps.sh)', f)
    end
    h:close()
  end
  local images, labels = M.read_idx(img), M.read_idx(lab)
  if images:dim() ~= 3 or labels:dim() ~= 1 or images:size(1) ~= labels:size(1)
     or images:size(2) ~= 28 or images:size(3) ~= 28 then
    check.fail('fashion_mnist: %s holds %s and %s %s, expected [N,28,28] and [N]',
               img, shape_text(images:shape()), lab, shape_text(labels:shape()))
  end
  local n = images:size(1)
  local x = images:to('float32'):div_(255)
  x = shape == 'image' and x:view(n, 1, 28, 28) or x:view(n, 784)
  local y = labels:to('float32'):add_(1):to('int64')  -- math is float: shift there, exactly
  return Dataset.new(x, y)
end

---------------------------------------------------------------------------------------
-- CSV
---------------------------------------------------------------------------------------
-- The fields of one line; sep is literal; "quoted" fields may hold sep and "" (a quote).
local function split_line(line, sep, where)
  local fields, pos, n = {}, 1, #line
  while true do
    if line:sub(pos, pos) == '"' then
      local parts, i = {}, pos + 1
      while true do
        local j = line:find('"', i, true)
        if not j then fail('read_csv: %s, column %d: a quote that is not closed on its line', where, #fields + 1) end
        parts[#parts + 1] = line:sub(i, j - 1)
        if line:sub(j + 1, j + 1) ~= '"' then pos = j + 1; break end
        parts[#parts + 1] = '"'
        i = j + 2
      end
      fields[#fields + 1] = table.concat(parts)
      if pos > n then return fields end
      if line:sub(pos, pos + #sep - 1) ~= sep then
        fail('read_csv: %s, column %d: text after the closing quote, expected the separator %q', where, #fields, sep)
      end
      pos = pos + #sep
    else
      local j = line:find(sep, pos, true)
      if not j then fields[#fields + 1] = line:sub(pos); return fields end
      fields[#fields + 1] = line:sub(pos, j - 1)
      pos = j + #sep
    end
  end
end

local function parse_csv(text, path, opts)
  local sep = opts.sep
  if text:sub(1, 3) == '\239\187\191' then text = text:sub(4) end   -- UTF-8 byte order mark
  local header, ncol, nrows, lineno = nil, nil, 0, 0
  local values, lines = {}, {}                -- row-major, every column; line of each row
  for line in (text .. '\n'):gmatch('([^\n]*)\n') do
    lineno = lineno + 1
    line = line:gsub('\r$', '')
    if line:find('%S') then
      local where = ('%s line %d'):format(path, lineno)
      local fields = split_line(line, sep, where)
      if ncol == nil then
        ncol = #fields
        local is_header = opts.header
        if is_header == nil then is_header = tonumber(fields[1]) == nil end
        if is_header then header = fields end
      elseif #fields ~= ncol then
        fail('read_csv: %s has %d columns, expected %d as on the first line (column %d is %s)', where, #fields,
             ncol, math.min(#fields, ncol) + 1, #fields < ncol and 'missing' or 'extra')
      end
      if not (header == fields) then
        for i, v in ipairs(fields) do
          local x = tonumber(v)
          if x == nil or x ~= x or x == math.huge or x == -math.huge then
            fail('read_csv: %s, column %d: %s is not a %snumber', where, i, check.describe(v),
                 x == nil and '' or 'finite ')
          end
          values[#values + 1] = x
        end
        nrows = nrows + 1
        lines[nrows] = lineno
      end
    end
  end
  if nrows == 0 then fail('read_csv: %s has no data rows', path) end
  return header, ncol, nrows, values, lines
end

function M.read_csv(path, opts)
  check.path('read_csv', path)
  opts = check.options('read_csv', opts, { 'label', 'classes', 'sep', 'header' })
  local o = { sep = opts.sep == nil and ',' or opts.sep, header = opts.header }
  if type(o.sep) ~= 'string' or o.sep == '' or o.sep:find('["\r\n]') then
    check.fail('read_csv: sep is %s, expected a non-empty string without quotes or line breaks', check.describe(o.sep))
  end
  if o.header ~= nil then check.boolean('read_csv', 'header', o.header) end
  if opts.classes ~= nil then check.boolean('read_csv', 'classes', opts.classes) end
  local label = opts.label
  if label ~= nil and type(label) ~= 'string' then check.integer('read_csv', 'label', label, 1) end
  local bufp, lenp = ffi.new('uint8_t*[1]'), ffi.new('int64_t[1]')
  if C.ms_read_file(path, -1, bufp, lenp) ~= 0 then check.fail('read_csv: %s', c_error()) end
  local text = ffi.string(bufp[0], lenp[0])
  C.ms_free_file(bufp[0])
  local ok, header, ncol, nrows, values, lines = pcall(parse_csv, text, path, o)
  if not ok then check.raise(tostring(header)) end
  if type(label) == 'string' then
    if not header then check.fail('read_csv: label %q names a column, but %s has no header row', label, path) end
    local found
    for i, name in ipairs(header) do
      if name == label then
        if found then check.fail('read_csv: %s has two columns named %q (%d and %d)', path, label, found, i) end
        found = i
      end
    end
    if not found then
      check.fail('read_csv: %s has no column named %q (columns: %s)', path, label, table.concat(header, ', '))
    end
    label = found
  elseif label == nil then
    label = ncol
  elseif label > ncol then
    check.fail('read_csv: label is %d, but %s has %d columns', label, path, ncol)
  end
  if ncol < 2 then
    check.fail('read_csv: %s has 1 column, the label: no feature columns are left', path)
  end
  local x = ms.empty({ nrows, ncol - 1 }, 'float32')
  local y = ms.empty({ nrows }, opts.classes and 'int64' or 'float32')
  local xp = ffi.cast('float*', T.data(x, 'read_csv'))
  local yp = ffi.cast(opts.classes and 'int64_t*' or 'float*', T.data(y, 'read_csv'))
  local k = 0
  for r = 0, nrows - 1 do
    for c = 1, ncol do
      local v = values[r * ncol + c]
      if c == label then
        if opts.classes and (v < 1 or v ~= math.floor(v) or v > 2 ^ 53) then
          check.fail('read_csv: %s line %d, column %d: label %s is not a class index: classes = true ' ..
                     'expects integers >= 1', path, lines[r + 1], c, check.describe(v))
        end
        yp[r] = v
      else
        xp[k] = v
        k = k + 1
      end
    end
  end
  return Dataset.new(x, y), header
end

return check.strict(M, 'ms.data')
