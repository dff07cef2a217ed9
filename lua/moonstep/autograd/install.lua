-- moonstep.autograd.install — puts the tape in front of the public tensor functions.
--
-- Each public function of a table (Tensor's methods, ms's functions, ms.nn.functional,
-- ms.linalg) is replaced, once, by a wrapper that reads A.current and, when no tape is
-- recording, calls the original at once (the whole cost outside autograd; measured by
-- scripts/bench/autograd.lua). While one records:
--   an op with a rule (A.rules[name])   records a node when an argument is tracked;
--   an in-place op (name_ , copy_, set, free, ...)
--                                       is refused on a tracked tensor, on a tensor
--                                       whose memory the reverse pass needs (also
--                                       inside ms.no_grad), and with a tracked source;
--   an op marked non-differentiable     runs; its output is not tracked;
--   any other op                        runs, and is refused when it took a tracked
--                                       tensor and returned a float tensor the tape
--                                       does not know: an op without a gradient rule
--                                       is an error naming it, never a silent zero. (A
--                                       Lua composite of recorded ops returns a tracked
--                                       tensor and passes.)
-- Inspection methods (size, dim, shape, ...) are left unwrapped. moonstep/init.lua puts
-- it in front of Tensor's methods (M.tensor) before ms copies them, and of ms's
-- functions once ms is built; nn.functional and linalg install it on their tables.
local A = require 'moonstep.autograd.tape'
local T = require 'moonstep.tensor'
local check = require 'moonstep.check'
local is_tensor, storage_id, float = T.is_tensor, T.storage_id, A.is_float
local select, type, unpack = select, type, unpack

local M = {}

-- wrapper -> the function it wraps (for the benchmark of the tape's cost, and tests)
M.originals = setmetatable({}, { __mode = 'k' })

-- Left as they are: inspection (no tensor results), and ms's functions of no tensor
-- (no_grad pauses the tape itself).
local UNWRAPPED = { dim = true, ndimension = true, numel = true, nelement = true, shape = true,
                    size = true, stride = true, is_contiguous = true, get = true, item = true,
                    totable = true, is_tensor = true, clock = true, num_threads = true,
                    set_num_threads = true, thread_status = true, manual_seed = true,
                    rng_state = true, set_rng_state = true, save = true, load = true,
                    params = true, philox = true, no_grad = true }
local INPLACE = { set = true, free = true }   -- besides the names ending in _

local function inplace_name(name) return INPLACE[name] or name:sub(-1) == '_' end

local function refuse_write(tp, name, t)
  if not is_tensor(t) then return end
  if tp.tracked[t] == true then
    check.fail('%s: an in-place operation on a tensor ms.autograd tracks (a parameter or a result ' ..
               'computed from one); use the out-of-place form', name)
  end
  local k = storage_id(t)
  if k and tp.saved[k] then
    check.fail('%s: writes to memory ms.autograd\'s backward pass needs (%s); write to a copy ' ..
               '(t:clone())', name, tp.saved[k])
  end
end

-- An in-place op whose other arguments include a tracked tensor writes a value that
-- depends on the parameters into a tensor the tape does not follow: its gradient would
-- be lost (a silent zero). Refused.
local function refuse_source(tp, name, ...)
  local n = select('#', ...)
  if n > 0 and A.any_tracked(tp.tracked, { ... }, n) then
    check.fail('%s: writes a tensor ms.autograd tracks into another tensor in place, which would ' ..
               'carry no gradient; build the result out of place (ms.cat, ms.where, t:clone() ...)', name)
  end
end

-- A float result the tape does not know (in a result or a list result)?
local function unknown_float(tracked, v)
  if float(v) then return tracked[v] ~= true end
  if type(v) == 'table' and not is_tensor(v) then
    for i = 1, #v do if float(v[i]) and tracked[v[i]] ~= true then return true end end
  end
  return false
end

local function pack(...) return { n = select('#', ...), ... } end

local function guarded(tp, name, raw, ...)
  local res = pack(raw(...))
  if A.any_tracked(tp.tracked, { ... }, select('#', ...)) then
    for i = 1, res.n do
      if unknown_float(tp.tracked, res[i]) then
        check.fail('%s: no gradient rule (ms.autograd); it took a tensor ms.autograd tracks and ' ..
                   'its result would carry no gradient. Compute it outside the function, or ' ..
                   'from differentiable ops', name)
      end
    end
  end
  return unpack(res, 1, res.n)
end

-- The wrapper of function `raw`, public name `name`, rule key `key` (default: name).
function M.wrap(name, raw, key)
  key = key or name
  local rule = A.rules[key]
  if rule then
    return function(...)
      local tp = A.current
      if tp == nil then return raw(...) end
      local n = select('#', ...)
      if n > 6 then return tp:record(name, rule, raw, n, { ... }) end
      local a1, a2, a3, a4, a5, a6 = ...
      return tp:record(name, rule, raw, n, { a1, a2, a3, a4, a5, a6 })
    end
  elseif inplace_name(key) then
    return function(t, ...)
      local tp = A.current
      if tp ~= nil then refuse_write(tp, name, t); refuse_source(tp, name, ...)
      elseif A.paused ~= nil then refuse_write(A.paused, name, t) end   -- (inside ms.no_grad)
      return raw(t, ...)
    end
  elseif A.nondiff[key] then
    return raw
  end
  return function(...)
    local tp = A.current
    if tp == nil then return raw(...) end
    return guarded(tp, name, raw, ...)
  end
end

-- The rule files register their rules before anything is wrapped.
for _, f in ipairs { 'rules_elementwise', 'rules_reduce', 'rules_shape', 'rules_nn', 'rules_linalg' } do
  require('moonstep.autograd.' .. f)
end

local done = setmetatable({}, { __mode = 'k' })

-- Wrap every function field of table `owner` (once per table); prefix names them
-- in errors ('' for Tensor methods and ms's functions).
function M.install(owner, prefix)
  if done[owner] then return owner end
  done[owner] = true
  local names = {}
  for k, v in pairs(owner) do
    if type(k) == 'string' and type(v) == 'function' and not UNWRAPPED[k] and k:sub(1, 1) ~= '_' then
      names[#names + 1] = k
    end
  end
  for _, k in ipairs(names) do
    local raw = owner[k]
    local w = M.wrap((prefix or '') .. k, raw, k)
    if w ~= raw then M.originals[w] = raw end
    rawset(owner, k, w)
  end
  return owner
end

-- The tensor library: Tensor's methods (before init.lua copies them into ms), the arithmetic metamethods' scalar-left forms (1 - t: rsub,
-- 2 / t: rdiv, 2 ^ t: rpow, 2 + t, 2 * t), slicing to one element, which stays a 0-d
-- tensor on the tape when the tensor is tracked (a Lua number would leave it), slice
-- assignment (an in-place write under its own name), and t:detach().
function M.tensor(tensor, B, slice)
  M.install(tensor.Tensor)
  local binop = B.binop
  local left = {}
  for name, key in pairs { add = 'radd', sub = 'rsub', mul = 'rmul', div = 'rdiv', pow = 'rpow' } do
    local rule = A.rules[key]
    left[name] = function(a, b) return A.current:record(name, rule, binop, 3, { name, a, b }) end
  end
  B.binop = function(name, a, b)
    if A.current ~= nil and type(a) == 'number' and left[name] then return left[name](a, b) end
    return binop(name, a, b)
  end
  -- t:detach(): a view of t's memory the tape does not follow (PyTorch's detach).
  function tensor.Tensor.detach(t)
    T.live('detach', t)
    local stride = {}
    for d = 1, t.ndim do stride[d] = tonumber(t.strides[d - 1]) end
    return B.view_of('detach', t, t:shape(), stride, tonumber(t.offset))   -- (never recorded)
  end
  local set = slice.set
  slice.set = function(t, spec, v)
    local tp, fn = A.current, 'Tensor slice assignment t[{...}] = v'
    if tp ~= nil then refuse_write(tp, fn, t); refuse_source(tp, fn, v)
    elseif A.paused ~= nil then refuse_write(A.paused, fn, t) end
    return set(t, spec, v)
  end
  local get = slice.get
  slice.get = function(t, spec)
    local tp = A.current
    if tp ~= nil and tp.tracked[t] == true then return (slice.view(t, spec, 'Tensor slice t[{...}]')) end
    return get(t, spec)
  end
end

return M
