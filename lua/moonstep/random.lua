-- moonstep.random — Philox4x32-10 fills and the global generator.
--
-- The generator state is (seed, stream). Every fill from it consumes one stream, and
-- element i of that fill depends only on (seed, stream, i): the same on CPU and GPU,
-- for any thread count. rng_state() returns a plain table a script may save and pass
-- back to set_rng_state() to replay draws; a fill may also name its own
-- {seed=, stream=} and leave the global state alone.
local core = require 'moonstep.core'
local T = require 'moonstep.tensor'
local ffi, C, fail = core.ffi, core.C, core.fail
local Tensor, fmt = T.Tensor, string.format

local M = {}
local u64 = ffi.new('uint64_t[2]')

local function check_seed(fn, v, what)
  if type(v) ~= 'number' or v < 0 or v ~= math.floor(v) or v >= 2^53 then
    error(fmt('%s: %s is %s, expected an integer in 0..2^53-1', fn, what, tostring(v)), 3)
  end
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
  if type(s) ~= 'table' then error('set_rng_state: expected the table rng_state() returned', 2) end
  check_seed('set_rng_state', s.seed, 'seed')
  check_seed('set_rng_state', s.stream, 'stream')
  C.ms_rng_set_state(s.seed, s.stream)
end

-- Fill t from dist; gen = {seed=, stream=} for an explicit draw, else the global one.
local function fill(t, fn, dist, a, b, gen)
  if gen ~= nil then
    if type(gen) ~= 'table' then error(fmt('%s: generator must be a table {seed=, stream=}', fn), 3) end
    check_seed(fn, gen.seed, 'seed')
    check_seed(fn, gen.stream or 0, 'stream')
    if C.ms_rng_fill(t, dist, gen.seed, gen.stream or 0, a, b) ~= 0 then fail(3) end
  elseif C.ms_random_fill(t, dist, a, b) ~= 0 then
    fail(3)
  end
  return t
end

function Tensor.uniform_(t, a, b, gen) return fill(t, 'uniform_', C.MS_UNIFORM, a or 0, b or 1, gen) end
function Tensor.normal_(t, mean, std, gen) return fill(t, 'normal_', C.MS_NORMAL, mean or 0, std or 1, gen) end
function Tensor.rademacher_(t, gen) return fill(t, 'rademacher_', C.MS_RADEMACHER, 0, 0, gen) end
function Tensor.bernoulli_(t, p, gen) return fill(t, 'bernoulli_', C.MS_BERNOULLI, p or 0.5, 0, gen) end

function M.rand(...) return T.empty(...):uniform_() end
function M.randn(...) return T.empty(...):normal_() end

-- The raw generator, for known-answer tests: four counter words and two key words
-- (Lua numbers < 2^32) to four output words.
function M.philox(counter, key)
  local c, k, o = ffi.new('uint32_t[4]', counter), ffi.new('uint32_t[2]', key), ffi.new('uint32_t[4]')
  C.ms_philox4x32_10(c, k, o)
  return { tonumber(o[0]), tonumber(o[1]), tonumber(o[2]), tonumber(o[3]) }
end

return M
