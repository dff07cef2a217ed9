-- ms.autograd — reverse-mode automatic differentiation over tensor ops.
--
--   local df = ms.autograd.grad(f)            f(params, ...) returns a loss: a tensor of
--   local grads, loss = df(params, ...)       one element (more results pass through)
--   local vg = ms.autograd.value_and_grad(f)
--   local loss, grads = vg(params, ...)
--   local hv, grads, loss = ms.autograd.hvp(f)(params, v, ...)   Hessian-vector product
--   local out, jv = ms.autograd.jvp(f)(params, v, ...)           Jacobian-vector product
--   ms.no_grad(fn, ...)                       fn(...) with nothing recorded
--   t:detach()                                a view of t that the tape does not follow
--
-- params: a tensor, a table of tensors (nested tables allowed), an ms.params set or a
-- Module. For a tensor or a table the gradients are fresh tensors in the same
-- structure; for a set or a Module they are added into its gradient arena (as a
-- module's backward does: opt:step(closure) zeroes it first) and its gradient views
-- are returned. Parameters f does not use get zero gradients.
--
-- While f runs, every op on a tracked tensor (a parameter or a result computed from one)
-- is recorded; the reverse pass then runs the ops' rules (autograd/rules_*.lua). On the
-- tape a reduction to one value (t:sum(), t[{i}] of a tracked 1-D tensor) is a 0-d
-- tensor, not a Lua number. An op without a rule, an in-place write to a tracked or
-- saved tensor, and a Module's forward on a tracked input are errors naming the op.
-- hvp and jvp are central differences (of gradients, of f) with a step scaled to the
-- parameters: exact for quadratics up to rounding, O(h^2) otherwise.
local A = require 'moonstep.autograd.tape'
local T = require 'moonstep.tensor'
local check = require 'moonstep.check'
local is_tensor = T.is_tensor
local select, type, pcall, unpack = select, type, pcall, unpack

local M = {}

local function pack(...) return { n = select('#', ...), ... } end

local function callable(fn, name, f)
  if not check.is_callable(f) then
    check.fail('%s: %s is %s, expected a function', fn, name, check.describe(f))
  end
  return f
end

local function is_set(v) return type(v) == 'table' and rawget(v, 'gflat') ~= nil and rawget(v, 'grads') ~= nil end

local sorted_keys = check.sorted_keys   -- (numbers, then strings: a fixed order)

-- The tensors of a (nested) plain table, appended to list in key order.
local function walk(fn, v, path, list, seen)
  if seen[v] then check.fail('%s: params%s contains itself', fn, path) end
  seen[v] = true
  for _, k in ipairs(sorted_keys(v)) do
    local e, p = v[k], path .. '[' .. check.describe(k) .. ']'
    if is_tensor(e) then list[#list + 1] = e
    elseif type(e) == 'table' and getmetatable(e) == nil then walk(fn, e, p, list, seen)
    else check.fail('%s: params%s is %s, expected a tensor or a table of tensors', fn, p, check.describe(e)) end
  end
  seen[v] = nil
  return list
end

local BAD_PARAMS = '%s: params is %s, expected a tensor, a table of tensors, an ms.params set or a Module'

-- The tensors of params (the leaves, in a fixed order), its kind ('tensor', 'arena' for
-- an ms.params set or a Module, 'table') and the set.
local function leaves_of(fn, params)
  if is_tensor(params) then return { params }, 'tensor' end
  if type(params) ~= 'table' then check.fail(BAD_PARAMS, fn, check.describe(params)) end
  local set = is_set(params) and params or nil
  if not set and check.field(params, 'forward') and check.field(params, 'arena') then
    set = params:arena()
  end
  if set then return set.params, 'arena', set end
  if getmetatable(params) ~= nil then check.fail(BAD_PARAMS, fn, check.describe(params)) end
  return walk(fn, params, '', {}, {}), 'table'
end

-- The leaves' gradients gs in params' structure; a set's (a Module's) are added into
-- its gradient arena and its gradient views returned.
local function rebuild(v, gs, pos)
  local out = {}
  for _, k in ipairs(sorted_keys(v)) do
    if is_tensor(v[k]) then pos[1] = pos[1] + 1; out[k] = gs[pos[1]] else out[k] = rebuild(v[k], gs, pos) end
  end
  return out
end
local function build(kind, params, set, gs)
  if kind == 'tensor' then return gs[1] end
  if kind == 'arena' then
    if set._grads_changed then set:_grads_changed() end   -- (data parallelism: optim/dist_buckets.lua)
    for i, g in ipairs(gs) do set.grads[i]:add_(g) end
    return set.grads
  end
  return rebuild(params, gs, { 0 })
end

local function check_leaves(fn, leaves)
  for i, t in ipairs(leaves) do
    T.live(fn, t, 'parameter ' .. i)
    if not A.is_float(t) then
      check.fail('%s: parameter %d has dtype %s, expected float32 or float64', fn, i, t.dtype)
    end
  end
end

-- f(params, ...) on a fresh tape; returns the tape, the loss tensor, f's results.
local function run_taped(fn, f, tp, leaves, params, ...)
  if A.current ~= nil then
    check.fail('%s: called while another ms.autograd function records (gradients of gradients are ' ..
               'not supported; ms.autograd.hvp gives Hessian-vector products)', fn)
  end
  for _, t in ipairs(leaves) do tp:track(t) end
  local res = A.run(fn, tp, f, params, ...)
  if not res[1] then error(res[2], 0) end
  if res.leaked then
    check.fail('%s: an op inside f failed and f went on (under pcall): the tape is incomplete', fn)
  end
  local loss = res[2]
  if type(loss) == 'number' then
    check.fail('%s: f returned a Lua number, expected a tensor of one element (on the tape, ' ..
               't:sum() of a tracked tensor is a 0-d tensor; t:item() leaves the tape)', fn)
  end
  if not A.is_float(loss) or loss:numel() ~= 1 then
    check.fail('%s: f returned %s, expected a float tensor of one element (the loss)', fn,
               is_tensor(loss) and ('a ' .. loss.dtype .. ' tensor of shape ' .. T.shape_of(loss))
               or check.describe(loss))
  end
  return tp, loss, res
end

-- The gradients of the leaves after the reverse pass (zeros for unused ones), each a
-- tensor of its own: a rule's gradient may be an expanded view, or one tensor handed to
-- two leaves (a + b).
local function leaf_grads(tp, leaves)
  local gs, seen = {}, {}
  for i, t in ipairs(leaves) do
    local g = tp.grads[t]
    if g == nil then
      g = T.zeros_like(t)
    else
      local k = T.storage_id(g)
      if not g:is_contiguous() or (k and seen[k]) then g = g:clone(); k = T.storage_id(g) end
      if k then seen[k] = true end
    end
    gs[i] = g
  end
  return gs
end

local function differentiate(fn, tp, f, params, ...)
  local leaves, kind, set = leaves_of(fn, params)
  check_leaves(fn, leaves)
  local _, loss, res = run_taped(fn, f, tp, leaves, params, ...)
  tp.spent = tp.spent or {}
  if kind ~= 'arena' then
    tp:backward(loss)
    local gs = leaf_grads(tp, leaves)
    local keep = {}
    for _, g in ipairs(gs) do keep[g] = true end
    tp:release_spent(keep)
    return build(kind, params, set, gs), loss:item(), res
  end
  local sinks = {}                  -- the rules may add straight into the arena's views
  for i, t in ipairs(leaves) do sinks[t] = set.grads[i] end
  if set._grads_changed then set:_grads_changed() end   -- (data parallelism: optim/dist_buckets.lua)
  tp.sinks = sinks
  tp:backward(loss)
  for i, t in ipairs(leaves) do     -- what they handed to tp:acc instead
    local g = tp.grads[t]
    if g ~= nil then set.grads[i]:add_(g) end
  end
  tp:release_spent()
  return set.grads, loss:item(), res
end

-- A differentiated function: df(params, ...) -> grads, loss, f's other results. It
-- reuses one tape between calls (a call that failed leaves it; the next makes another).
local function differentiated(fn, f)
  callable(fn, 'f', f)
  local spare = A.new_tape()
  return function(params, ...)
    local tp = spare or A.new_tape()
    spare = nil
    local grads, loss, res = differentiate(fn, tp, f, params, ...)
    spare = tp:reset()
    return grads, loss, res
  end
end

function M.value_and_grad(f)
  local df = differentiated('value_and_grad', f)
  return function(params, ...)
    local grads, loss, res = df(params, ...)
    return loss, grads, unpack(res, 3, res.n)
  end
end

function M.grad(f)
  local df = differentiated('grad', f)
  return function(params, ...)
    local grads, loss, res = df(params, ...)
    return grads, loss, unpack(res, 3, res.n)
  end
end

-- fn(...) with the tape paused: its results are constants to any recording.
function M.no_grad(fn, ...)
  callable('no_grad', 'fn', fn)
  local tp, paused = A.current, A.paused
  A.current = nil
  if tp ~= nil then A.paused = tp end    -- in-place writes to what it needs stay refused
  local res = pack(pcall(fn, ...))
  A.current, A.paused = tp, paused
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

function M.is_recording() return A.current ~= nil end
function M.is_tracked(t) return A.current ~= nil and A.current.tracked[t] == true end

---------------------------------------------------------------------------------------
-- second order by central differences
---------------------------------------------------------------------------------------
-- v: tensors in the structure of params (a tensor, or a table / list matching leaves).
local function directions(fn, leaves, params, v)
  local vs = is_tensor(v) and { v } or nil
  if not vs then
    if type(v) ~= 'table' then check.fail('%s: v is %s, expected tensors shaped as params', fn, check.describe(v)) end
    vs = (is_set(params) or getmetatable(params) ~= nil) and v or (leaves_of(fn, v))
  end
  if #vs ~= #leaves then
    check.fail('%s: v holds %d tensors, expected %d (one per parameter)', fn, #vs, #leaves)
  end
  for i, t in ipairs(leaves) do
    T.live(fn, vs[i], 'v ' .. i)
    if vs[i].dtype ~= t.dtype or vs[i].device ~= t.device then
      check.fail('%s: v %d is %s on %s, expected %s on %s (as parameter %d)', fn, i, vs[i].dtype,
                 vs[i].device, t.dtype, t.device, i)
    end
    if not T.same_shape(vs[i], t) then
      check.fail('%s: v %d has shape %s, expected %s (parameter %d)', fn, i, T.shape_of(vs[i]), T.shape_of(t), i)
    end
  end
  return vs
end

-- The step h: (machine epsilon)^(1/3) scaled by the parameters and the direction.
local function fd_step(fn, leaves, vs)
  local pmax, vmax, eps = 0, 0, 2 ^ -52
  for i, t in ipairs(leaves) do
    if t.dtype == 'float32' then eps = 2 ^ -23 end
    if t:numel() > 0 then
      local pm, vm = t:abs():max(), vs[i]:abs():max()
      if pm ~= pm or pm == math.huge then
        check.fail('%s: parameter %d holds NaN or inf: no finite-difference step', fn, i)
      end
      if vm ~= vm or vm == math.huge then check.fail('%s: v %d holds NaN or inf, expected finite values', fn, i) end
      pmax, vmax = math.max(pmax, pm), math.max(vmax, vm)
    end
  end
  if vmax == 0 then return nil end
  return eps ^ (1 / 3) * (1 + pmax) / vmax
end

-- Each leaf moved by s * h * v in place, then restored (bit-exactly: from a copy).
local function with_shift(leaves, vs, h, s, fn)
  local keep = {}
  for i, t in ipairs(leaves) do keep[i] = t:clone(); t:add_(vs[i], s * h) end
  local ok, a, b = pcall(fn)
  for i, t in ipairs(leaves) do t:copy_(keep[i]) end
  if not ok then error(a, 0) end
  return a, b
end

function M.hvp(f)
  callable('hvp', 'f', f)
  return function(params, v, ...)
    local fn = 'hvp'
    local leaves, kind, set = leaves_of(fn, params)
    check_leaves(fn, leaves)
    local vs = directions(fn, leaves, params, v)
    local args = pack(...)
    local function grads_at()
      local tp, loss = run_taped(fn, f, A.new_tape(), leaves, params, unpack(args, 1, args.n))
      tp:backward(loss)
      return leaf_grads(tp, leaves), loss:item()
    end
    local g0, loss = grads_at()
    local h = fd_step(fn, leaves, vs)
    local hv = {}
    if h == nil then
      for i, t in ipairs(leaves) do hv[i] = T.zeros_like(t) end
    else
      local gp = with_shift(leaves, vs, h, 1, grads_at)
      local gm = with_shift(leaves, vs, h, -1, grads_at)
      for i = 1, #leaves do hv[i] = gp[i]:sub(gm[i]):div(2 * h) end
    end
    local grads = build(kind, params, set, g0)    -- (a set's or a Module's: added into its arena)
    return kind == 'arena' and hv or build(kind, params, set, hv), grads, loss
  end
end

function M.jvp(f)
  callable('jvp', 'f', f)
  return function(params, v, ...)
    local fn = 'jvp'
    if A.current ~= nil then
      check.fail('%s: called while another ms.autograd function records (its value would leave the ' ..
                 'tape: derivatives of jvp are not supported)', fn)
    end
    local leaves = leaves_of(fn, params)
    check_leaves(fn, leaves)
    local vs = directions(fn, leaves, params, v)
    local args = pack(...)
    local function value()
      local out = M.no_grad(f, params, unpack(args, 1, args.n))
      if type(out) == 'number' then return out end
      if not A.is_float(out) then
        check.fail('%s: f returned %s, expected a float tensor or a number', fn, check.describe(out))
      end
      return out:clone()
    end
    local out = value()
    local h = fd_step(fn, leaves, vs)
    local fp = h and with_shift(leaves, vs, h, 1, value)
    local fm = h and with_shift(leaves, vs, h, -1, value)
    if type(out) == 'number' then return out, h and (fp - fm) / (2 * h) or 0 end
    if h == nil then return out, T.zeros_like(out) end
    return out, fp:sub(fm):div(2 * h)
  end
end

return check.strict(M, 'ms.autograd')
