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

-- Fill t from dist; gen = {seed=, stream=} for an explicit draw, else the global one.
local function fill(t, fn, dist, a, b, gen)
  B.live(fn, t)
  if gen ~= nil then
    if type(gen) ~= 'table' or B.is_tensor(gen) then
      check.fail('%s: generator is %s, expected a table {seed=, stream=}', fn, check.describe(gen))
    end
    check.options(fn, gen, { 'seed', 'stream' })
    check_seed(fn, gen.seed, 'seed')
    check_seed(fn, gen.stream or 0, 'stream')
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
