-- moonstep.random — Philox4x32-10 fills and the global generator.
--
-- The generator state is (seed, stream). Every fill from it consumes one stream, and
-- element i of that fill depends only on (seed, stream, i): the same on CPU and GPU,
-- for any thread count. rng_state() returns a plain table a script may save and pass
-- back to set_rng_state() to replay draws; a fill may also name its own
-- {seed=, stream=} and leave the global state alone.
local core = require 'moonstep.core'
local T = require 'moonstep.tensor'
local B = require 'moonstep.tensor_base'
local check = require 'moonstep.check'
local ffi, C = core.ffi, core.C
local Tensor = T.Tensor

local M = {}
local u64 = ffi.new('uint64_t[2]')

local function check_seed(fn, v, what)
  return check.integer(fn, what, v, 0, 2 ^ 53 - 1)
end

function M.manual_seed(seed)
  check_seed('manual_seed', seed, 'seed')
  C.ms_manual_seed(seed)
end

function M.rng_state()
  C.ms_rng_get_state(u64, u64 + 1)
  return { seed = tonumber(u64[0]), stream = tonumber(u64[1]) }
end

function M.set_rng_state(s)
  if type(s) ~= 'table' then
    check.fail('set_rng_state: state is %s, expected the table rng_state() returned', check.describe(s))
  end
  check.options('set_rng_state', s, { 'seed', 'stream' })
  check_seed('set_rng_state', s.seed, 'seed')
  check_seed('set_rng_state', s.stream, 'stream')
  C.ms_rng_set_state(s.seed, s.stream)
end

-- The next stream of the global generator as a generator {seed=, stream=}, the global
-- state moved on by one stream, as a fill from it would: a draw made with it can be
-- made again (nn.Dropout's replay, ms.nn.functional.dropout's mask). Internal.
function M.take_stream()
  local s = M.rng_state()
  M.set_rng_state { seed = s.seed, stream = s.stream + 1 }
  return s
end

-- A generator argument (nil or {seed=, stream=}) checked for fn; returns it.
local function check_gen(fn, gen)
  if gen ~= nil then
    if type(gen) ~= 'table' or B.is_tensor(gen) then
      check.fail('%s: generator is %s, expected a table {seed=, stream=}', fn, check.describe(gen))
    end
    check.options(fn, gen, { 'seed', 'stream' })
    check_seed(fn, gen.seed, 'seed')
    check_seed(fn, gen.stream or 0, 'stream')
  end
  return gen
end

-- Fill t from dist; gen = {seed=, stream=} for an explicit draw, else the global one.
local function fill(t, fn, dist, a, b, gen)
  B.live(fn, t)
  if check_gen(fn, gen) ~= nil then
    if C.ms_rng_fill(t, dist, gen.seed, gen.stream or 0, a, b) ~= 0 then B.fail(fn) end
  elseif C.ms_random_fill(t, dist, a, b) ~= 0 then
    B.fail(fn)
  end
  return t
end

function Tensor.uniform_(t, a, b, gen)
  a = a == nil and 0 or check.number('uniform_', 'from', a)
  b = b == nil and 1 or check.number('uniform_', 'to', b)
  if a > b then
    check.fail('uniform_: from %s is greater than to %s, expected from <= to', check.describe(a), check.describe(b))
  end
  return fill(t, 'uniform_', C.MS_UNIFORM, a, b, gen)
end
function Tensor.normal_(t, mean, std, gen)
  mean = mean == nil and 0 or check.number('normal_', 'mean', mean)
  std = std == nil and 1 or check.number('normal_', 'std', std, 0)
  return fill(t, 'normal_', C.MS_NORMAL, mean, std, gen)
end
function Tensor.rademacher_(t, gen) return fill(t, 'rademacher_', C.MS_RADEMACHER, 0, 0, gen) end
function Tensor.bernoulli_(t, p, gen)
  p = p == nil and 0.5 or check.number('bernoulli_', 'p', p, 0, 1)
  return fill(t, 'bernoulli_', C.MS_BERNOULLI, p, 0, gen)
end

-- rand(sizes... [, opts]) / randn: float tensors from the global generator.
local function sized(fn, dist, a, b, ...)
  local shape, dt, dev = B.parse_sizes(fn, ...)
  if dt >= 2 then
    check.fail('%s: dtype %s, expected float32 or float64', fn, B.DTYPE_NAMES[dt])
  end
  return fill(B.empty(fn, shape, dt, dev), fn, dist, a, b)
end
function M.rand(...) return sized('rand', C.MS_UNIFORM, 0, 1, ...) end
function M.randn(...) return sized('randn', C.MS_NORMAL, 0, 1, ...) end

-- A random permutation of 1..n as an int64 CPU tensor, named fn in errors: Fisher-Yates
-- on one Philox float64 uniform fill (one stream of the global generator, or gen's).
-- Shared by ms.randperm and ms.data.permutation / Dataset (same draws for the same state).
function M.permutation(fn, n, gen)
  check.integer(fn, 'n', n, 0, 2 ^ 31 - 1)
  check_gen(fn, gen)
  local u = B.empty(fn, { n }, B.DTYPES.float64, 0)
  fill(u, fn, C.MS_UNIFORM, 0, 1, gen)
  local up = ffi.cast('double*', B.data(u, fn))
  local perm = B.empty(fn, { n }, B.DTYPES.int64, 0)
  local p = ffi.cast('int64_t*', B.data(perm, fn))
  for i = 0, n - 1 do p[i] = i + 1 end
  for i = n - 1, 1, -1 do
    local j = math.floor(up[i] * (i + 1))
    p[i], p[j] = p[j], p[i]
  end
  return perm
end

-- Options {dtype=, device=, gen=} (or a dtype/device string) of randperm/randint:
-- dtype id (int64 by default), device id, generator.
local RAND_OPTS = { 'dtype', 'device', 'gen' }
local function int_options(fn, opts)
  if opts == nil then return B.DTYPES.int64, 0, nil end
  if type(opts) == 'string' then
    if B.DEVICES[opts] then return B.DTYPES.int64, B.DEVICES[opts], nil end
    return B.dtype_id(fn, opts), 0, nil
  end
  if type(opts) ~= 'table' or B.is_tensor(opts) then
    check.fail('%s: options are %s, expected a dtype string or a table {dtype=, device=, gen=}', fn,
               check.describe(opts))
  end
  check.options(fn, opts, RAND_OPTS)
  local dt = opts.dtype == nil and B.DTYPES.int64 or B.dtype_id(fn, opts.dtype)
  return dt, B.device_id_of(fn, opts.device), check_gen(fn, opts.gen)
end

-- Largest integer every value up to which a dtype holds exactly.
local EXACT = { [0] = 2 ^ 24, 2 ^ 53, 2 ^ 53, 255 }

-- randperm(n [, opts]): a random permutation of 1..n (1-based, as moonstep's indices).
function M.randperm(n, opts, ...)
  if select('#', ...) > 0 then
    check.fail('randperm: argument 3 is %s, expected nothing after the options', check.describe((...)))
  end
  check.integer('randperm', 'n', n, 0, 2 ^ 31 - 1)
  local dt, dev, gen = int_options('randperm', opts)
  if n > EXACT[dt] then
    check.fail('randperm: n = %d does not fit dtype %s exactly (at most %d)', n, B.DTYPE_NAMES[dt], EXACT[dt])
  end
  if dt == B.DTYPES.int64 and dev == 0 then return M.permutation('randperm', n, gen) end
  local out = B.empty('randperm', { n }, dt, dev)  -- before drawing: a refused device draws nothing
  if C.ms_copy(out, M.permutation('randperm', n, gen)) ~= 0 then B.fail('randperm') end
  return out
end

-- randint(low, high, shape [, opts]) / randint(high, shape [, opts]): integers uniform in
-- [low, high) (PyTorch's half-open range), drawn as floor of a Philox float64 uniform fill
-- of [0, high - low) on t's device, so CPU and GPU give the same values.
function M.randint(...)
  local nargs, a1, a2, a3, a4 = select('#', ...), ...
  local low, high, shape, opts, last
  if type(a2) == 'table' and not B.is_tensor(a2) then
    low, high, shape, opts, last = 0, a1, a2, a3, 3
  else
    low, high, shape, opts, last = a1, a2, a3, a4, 4
  end
  if nargs > last then
    check.fail('randint: argument %d is %s, expected nothing after the options', last + 1,
               check.describe((select(last + 1, ...))))
  end
  check.integer('randint', 'low', low, -2 ^ 53, 2 ^ 53)
  check.integer('randint', 'high', high, -2 ^ 53, 2 ^ 53)
  if low >= high then
    check.fail('randint: low %s >= high %s, expected low < high (values are drawn from [low, high))',
               check.describe(low), check.describe(high))
  end
  if high - low > 2 ^ 53 then
    check.fail('randint: high - low = %s, expected at most 2^53', check.describe(high - low))
  end
  if type(shape) ~= 'table' or B.is_tensor(shape) then
    check.fail('randint: shape is %s, expected a table of sizes, as randint(0, 10, {2, 3})', check.describe(shape))
  end
  if shape[1] == nil and next(shape) ~= nil then  -- parse_sizes would read it as options
    check.fail('randint: shape has the key %s, expected a list of sizes', check.describe((next(shape))))
  end
  local dt, dev, gen = int_options('randint', opts)
  local sizes = B.parse_sizes('randint', shape)
  if dt == B.DTYPES.uint8 and (low < 0 or high > 256) then
    check.fail('randint: [%s, %s) does not fit dtype uint8 (0..255)', check.describe(low), check.describe(high))
  end
  local n = high - low
  local u = B.empty('randint', sizes, B.DTYPES.float64, dev)
  fill(u, 'randint', C.MS_UNIFORM, 0, n, gen)
  -- u in [0, n) up to rounding: clamp below n, floor (a truncating copy through int64:
  -- u >= 0), shift by low in float64 (exact: |values| <= 2^53), convert to the dtype.
  u:clamp_(0, n - 1)
  local k = B.empty('randint', sizes, B.DTYPES.int64, dev)
  if C.ms_copy(k, u) ~= 0 then B.fail('randint') end
  if dt == B.DTYPES.int64 and low == 0 then return k end
  if C.ms_copy(u, k) ~= 0 then B.fail('randint') end
  if low ~= 0 then u:add_(low) end
  if dt == B.DTYPES.float64 then return u end
  local out = dt == B.DTYPES.int64 and k or B.empty('randint', sizes, dt, dev)
  if C.ms_copy(out, u) ~= 0 then B.fail('randint') end
  return out
end

-- The raw generator, for known-answer tests: four counter words and two key words
-- (Lua numbers < 2^32) to four output words.
function M.philox(counter, key)
  for _, a in ipairs { { 'counter', counter, 4 }, { 'key', key, 2 } } do
    local name, v, n = a[1], a[2], a[3]
    if type(v) ~= 'table' or #v ~= n then
      check.fail('philox: %s is %s, expected a table of %d integers in 0..2^32-1', name, check.describe(v), n)
    end
    for i = 1, n do check.integer('philox', name .. '[' .. i .. ']', v[i], 0, 2 ^ 32 - 1) end
  end
  local c, k, o = ffi.new('uint32_t[4]', counter), ffi.new('uint32_t[2]', key), ffi.new('uint32_t[4]')
  C.ms_philox4x32_10(c, k, o)
  return { tonumber(o[0]), tonumber(o[1]), tonumber(o[2]), tonumber(o[3]) }
end

return M
