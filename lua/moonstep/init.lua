-- moonstep — a Lua-scriptable optimization runtime over a C/CUDA core.
--
--   local ms = require 'moonstep'
--   ms.manual_seed(0)
--   local x = ms.randn(128, 784)
--   local w = ms.zeros(784, 10)
--   local y = ms.matmul(x, w)
local core = require 'moonstep.core'
local tensor = require 'moonstep.tensor'
local random = require 'moonstep.random'
-- The autograd tape goes in front of the tensor functions before ms copies them.
require('moonstep.autograd.install').tensor(tensor, require 'moonstep.tensor_base',
                                            require 'moonstep.tensor_slice')

local ms = {
  C = core.C,
  Tensor = tensor.Tensor,
  is_tensor = tensor.is_tensor,
  cuda = require 'moonstep.cuda',
  schedule = require 'moonstep.schedule',   -- lr schedules (pure Lua, no runtime calls)
  version = '0.1.0',
}

local check = require 'moonstep.check'

for _, name in ipairs { 'empty', 'zeros', 'ones', 'full', 'arange', 'range', 'linspace', 'tensor', 'eye',
                        'empty_like', 'zeros_like', 'ones_like',
                        'where', 'dot', 'matmul', 'bmm', 'cat', 'index_select', 'gather',
                        'sort', 'topk', 'cumsum' } do
  ms[name] = tensor[name]
end
for _, name in ipairs { 'manual_seed', 'rng_state', 'set_rng_state', 'rand', 'randn', 'randperm',
                        'randint', 'philox' } do
  ms[name] = random[name]
end

-- Elementwise functions as free functions too: ms.exp(t), ms.add(a, b), ...
for _, name in ipairs { 'neg', 'abs', 'exp', 'log', 'sqrt', 'rsqrt', 'tanh', 'sigmoid', 'relu',
                        'sign', 'square', 'reciprocal', 'clamp', 'add', 'sub', 'mul', 'div',
                        'pow', 'maximum', 'minimum', 'eq', 'ne', 'lt', 'le', 'gt', 'ge',
                        'sum', 'mean', 'max', 'min', 'argmax', 'argmin', 'norm', 'var', 'std',
                        'addcmul', 'addcdiv', 'lerp', 'gelu', 'leaky_relu', 'softmax',
                        'log_softmax', 'erf' } do
  local method = tensor.Tensor[name]
  ms[name] = function(t, ...)
    tensor.live(name, t)
    return method(t, ...)
  end
end

-- Wall-clock seconds from a monotonic clock (os.clock is CPU time summed over threads).
core.ffi.cdef [[
struct ms_timespec { long tv_sec; long tv_nsec; };
int clock_gettime(int clk_id, struct ms_timespec *tp);
]]
local ts = core.ffi.new('struct ms_timespec')
function ms.clock()
  core.ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

function ms.num_threads() return core.C.ms_num_threads() end
function ms.set_num_threads(n)
  core.C.ms_set_num_threads(check.integer('set_num_threads', 'count', n, 1, 1024))
end
-- ms.thread_status() -> { threads, active, serial_episodes, late_regions, guard }: the
-- threads asked for, those in use now (1 while the guard against a loaded machine holds
-- moonstep's loops and OpenBLAS on the calling thread), how often it did so, the late
-- parallel regions seen, and whether the guard is on (MOONSTEP_THREAD_GUARD=0 turns it
-- off). The guard changes speed, never float32 results.
function ms.thread_status(...)
  if select('#', ...) > 0 then check.fail('thread_status: got %d arguments, expected none', select('#', ...)) end
  local s = core.ffi.new('int64_t[5]')
  core.C.ms_thread_guard_stats(s)
  return { threads = tonumber(s[0]), active = tonumber(s[1]), serial_episodes = tonumber(s[2]),
           late_regions = tonumber(s[3]), guard = s[4] ~= 0 }
end

ms.params = require('moonstep.params').params
-- ms.no_grad(fn, ...): fn(...) with nothing recorded by ms.autograd (its results are constants).
function ms.no_grad(fn, ...) return require('moonstep.autograd').no_grad(fn, ...) end
function ms.save(path, value) return require('moonstep.checkpoint').save(path, value) end
function ms.load(path, opts) return require('moonstep.checkpoint').load(path, opts) end

-- ms's functions behind the autograd tape too (ms.where, ms.matmul, ms.exp, ...).
require('moonstep.autograd.install').install(ms)

-- Submodules that need `ms` itself load lazily: ms.nn, ms.optim, ms.data, ...
-- Anything else is an error naming the key (rawget(ms, k) probes without one).
setmetatable(ms, { __index = function(t, k)
  -- generic probes (ms[1] from ipairs, __name from describe) read nil
  if type(k) ~= 'string' or k:sub(1, 2) == '__' then return nil end
  if not k:match('^[%a_][%w_]*$') then check.fail('ms: no function or module %s', check.describe(k)) end
  local ok, mod = pcall(require, 'moonstep.' .. k)
  if ok then rawset(t, k, mod); return mod end
  if not tostring(mod):find("module 'moonstep." .. k .. "' not found", 1, true) then error(mod, 2) end
  check.fail('ms: no function or module %s', check.describe(k))
end })

return ms
