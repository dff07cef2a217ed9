-- moonstep.autograd.tape — the record of one ms.autograd evaluation and its reverse pass.
--
-- While A.current is a tape, every wrapped tensor op (autograd/install.lua) whose
-- arguments include a tracked tensor appends a node { name, rule, args, nargs, out,
-- out2, state } and tracks its output; A.current is nil otherwise, so an op outside autograd
-- pays one table read. Tensors are tracked by identity (the cdata object): the leaves
-- (the parameters grad() differentiates) and every output of a recorded op.
--
-- Rules (A.rules[name], one per public op name; the rule files register them):
--   backward(n, g, tp)   g: the gradient of n.out (n.out's shape, dtype, device).
--                        For each tensor argument t with tp:need(t), call
--                        tp:acc(t, dt) with dt of n.out's broadcast shape or t's own
--                        (acc sums a broadcast gradient back to t's shape).
--   forward(raw, ...)    optional: what runs instead of raw(...) while recording (a
--                        full reduction returns a 0-d tensor there, not a Lua number);
--                        it returns (out, out2, state): state is kept as n.state for
--                        the backward (conv2d's cols, cross_entropy's softmax).
-- A backward may free or overwrite what n.state holds only when tp.keep is false (the
-- nodes then run once; nn.Function's repeatable backward sets tp.keep).
-- A.nondiff[name]: an op whose float output carries no gradient (comparisons, sign,
-- the *_like constructors): its output stays untracked.
--
-- Gradients are accumulated out of place (a rule may hand the same tensor to two
-- inputs); a node's output gradient is dropped once the node has run.
local T = require 'moonstep.tensor'
local check = require 'moonstep.check'
local storage_id, is_tensor = T.storage_id, T.is_tensor
local select, type, unpack = select, type, unpack

-- One A per Lua state, even when a test runner reloads the package: tensors keep the
-- methods (and so the wrappers) of the first load, which must read the same A.current.
local REGISTRY_KEY = 'moonstep.autograd.tape'
local A = debug.getregistry()[REGISTRY_KEY]
if A == nil then
  A = { current = nil, rules = {}, nondiff = {} }
  debug.getregistry()[REGISTRY_KEY] = A
end

-- Register the backward rule of op `name` (opts.forward: see above).
function A.rule(name, backward, opts)
  A.rules[name] = { backward = backward, forward = opts and opts.forward or nil, saved_by = 'saved by ' .. name }
end

function A.mark_nondiff(...)
  for i = 1, select('#', ...) do A.nondiff[(select(i, ...))] = true end
end

local Tape = {}
Tape.__index = Tape

local function pack(...) return { n = select('#', ...), ... } end

-- f(...) while tape tp records, in a coroutine of its own: when f yields (a generator, a
-- scheduler's task) the tape is put aside until f is resumed — no other coroutine's ops
-- are recorded on it, and an abandoned f leaves nothing behind — and the yield is passed
-- on to the caller (which must then run in a coroutine itself). Returns pcall-style
-- results { ok, ... , n = }; A.current is nil afterwards. fn names the caller in errors.
local co_create, co_resume, co_status, co_yield, co_running =
  coroutine.create, coroutine.resume, coroutine.status, coroutine.yield, coroutine.running
function A.run(fn, tp, f, ...)
  local co = co_create(type(f) == 'function' and f or function(...) return f(...) end)
  A.current = tp
  local res = pack(co_resume(co, ...))
  while res[1] and co_status(co) == 'suspended' do
    A.current = nil                                   -- the tape sleeps while f does
    if co_running() == nil then
      check.fail('%s: f yielded (coroutine.yield) but %s was not called from a coroutine', fn, fn)
    end
    local back = pack(co_yield(unpack(res, 2, res.n)))
    if A.current ~= nil then
      check.fail('%s: f was resumed while another ms.autograd function records', fn)
    end
    A.current = tp
    res = pack(co_resume(co, unpack(back, 1, back.n)))
  end
  res.leaked = A.current ~= tp                        -- an op failed under f's own pcall
  A.current = nil
  return res
end

function A.new_tape()
  return setmetatable({ tracked = {}, saved = {}, grads = {}, nodes = {}, n = 0 }, Tape)
end

-- Empty the tape for another evaluation, keeping its tables' allocated sizes (a
-- differentiated function reuses one tape: no table growth per call).
local clear = require 'table.clear'
function Tape:reset()
  clear(self.tracked); clear(self.saved); clear(self.grads); clear(self.nodes)
  if self.spent then clear(self.spent) end
  self.n, self.sinks, self.keep = 0, nil, false
  return self
end

-- A leaf (a parameter grad() differentiates, nn.Function's input): tracked, its memory
-- saved (an in-place write to it, through any alias, is refused while the tape records);
-- why names it in that error.
function Tape:track(t, why)
  self.tracked[t] = true
  local k = storage_id(t)
  if k then self.saved[k] = why or 'a parameter' end
end
function Tape:need(t) return self.tracked[t] == true end
-- The gradient accumulator of leaf t when the caller supplies one (grad() over an
-- ms.params set or a Module: t's view of the gradient arena), or nil. A rule may add
-- t's gradient into it in place (a GEMM with beta = 1, as the Modules' backward does)
-- instead of tp:acc(t, ...); both kinds of contribution add up.
function Tape:sink(t) local s = self.sinks; return s and s[t] end

local function float(t) return is_tensor(t) and t.dtype_id < 2 end
A.is_float = float

-- g summed back to `shape` (the NumPy broadcast rules run backwards): leading dims
-- summed away, dims of size 1 in shape summed with keepdim.
function A.sum_to(g, shape)
  local nd, ng = #shape, g:dim()
  if ng == nd then
    local same = true
    for d = 1, nd do same = same and g:size(d) == shape[d] end
    if same then return g end
  end
  if nd == 0 then return g:reshape(-1):sum(1) end
  for _ = 1, ng - nd do g = g:sum(1) end
  for d = 1, nd do
    if shape[d] == 1 and g:size(d) ~= 1 then g = g:sum(d, true) end
  end
  return g
end

-- Add dt to the gradient of t (a no-op when t is not tracked). The common case, dt of
-- t's shape, dtype and device, is checked on the struct fields (no shape tables).
local same_shape, device_id = T.same_shape, T.device_id
function Tape:acc(t, dt)
  if self.tracked[t] ~= true then return end
  if dt.dtype_id ~= t.dtype_id or not same_shape(dt, t) or device_id(dt) ~= device_id(t) then
    dt = A.sum_to(dt, t:shape())
    if dt.dtype ~= t.dtype or dt.device ~= t.device then dt = dt:to(t.device, t.dtype) end
  end
  local old = self.grads[t]
  self.grads[t] = old == nil and dt or old:add(dt)
end

-- Is any argument tracked — or a tensor in a table argument: a list (cat's) or an
-- options table (a class weight)? Also the options table's `out` among them, if any.
local function scan(tracked, args, n)
  local hit, out = false, nil
  for i = 1, n do
    local v = args[i]
    if tracked[v] == true then hit = true
    elseif type(v) == 'table' then
      for _, e in pairs(v) do if tracked[e] == true then hit = true end end
      out = out or rawget(v, 'out')
    end
  end
  return hit, out
end
function A.any_tracked(tracked, args, n) return (scan(tracked, args, n)) end

-- The memory of every untracked tensor argument is saved for the reverse pass (a tracked
-- tensor's was saved when it was made or became a parameter): an in-place write to it
-- before then is refused (install.lua). False when r1 is one of the arguments (an op
-- that returned its argument: contiguous() of a contiguous tensor; nothing to record).
local function save_args(tracked, saved, args, n, r1, why)
  for i = 1, n do
    local v = args[i]
    if rawequal(v, r1) then return false end
    if tracked[v] ~= true then
      if is_tensor(v) then
        local k = storage_id(v)
        if k then saved[k] = why end
      elseif type(v) == 'table' then
        for _, e in pairs(v) do
          if is_tensor(e) and tracked[e] ~= true then
            local k = storage_id(e)
            if k then saved[k] = why end
          end
        end
      end
    end
  end
  return true
end

-- An options-table argument's `out` tensor is written in place: refused with a tracked
-- argument (the tape keeps fresh outputs), and when the backward pass needs its memory.
local function check_out(tp, name, out, tracked)
  if tracked then
    check.fail('%s: out= is not supported on the ms.autograd tape (the op writes a fresh ' ..
               'output that the tape keeps)', name)
  end
  local k = is_tensor(out) and storage_id(out)
  if k and tp.saved[k] then
    check.fail('%s: out= writes to memory ms.autograd\'s backward pass needs (%s); write to a ' ..
               'fresh tensor', name, tp.saved[k])
  end
end

-- f(pre, a[1], ..., a[n]) (pre == nil: f(a[1], ..., a[n])), exactly n arguments (a
-- function may count them), without a vararg list in the common cases: LuaJIT compiles
-- these calls, not a call that forwards `...` from a frame outside the trace.
local function invoke(f, pre, a, n)
  if pre ~= nil then
    if n == 1 then return f(pre, a[1]) elseif n == 2 then return f(pre, a[1], a[2])
    elseif n == 3 then return f(pre, a[1], a[2], a[3]) elseif n == 4 then return f(pre, a[1], a[2], a[3], a[4])
    elseif n == 0 then return f(pre) end
    return f(pre, unpack(a, 1, n))
  end
  if n == 1 then return f(a[1]) elseif n == 2 then return f(a[1], a[2])
  elseif n == 3 then return f(a[1], a[2], a[3]) elseif n == 4 then return f(a[1], a[2], a[3], a[4])
  elseif n == 5 then return f(a[1], a[2], a[3], a[4], a[5])
  elseif n == 6 then return f(a[1], a[2], a[3], a[4], a[5], a[6]) elseif n == 0 then return f() end
  return f(unpack(a, 1, n))
end
A.invoke = invoke

-- Run op `name` (its rule, its raw function) on the tape with the n arguments in array
-- `args` (install.lua's wrappers collect them): untracked arguments run it plainly;
-- tracked ones record a node. The op's own tensor calls are not recorded (A.current is
-- nil while it runs; an error leaves it nil, which grad() detects).
function Tape:record(name, rule, raw, n, args)
  local tracked = self.tracked
  local hit, out = scan(tracked, args, n)
  if out ~= nil then check_out(self, name, out, hit) end
  if not hit then return invoke(raw, nil, args, n) end
  A.current = nil
  local r1, r2, r3
  if rule.forward then r1, r2, r3 = invoke(rule.forward, raw, args, n) else r1, r2 = invoke(raw, nil, args, n) end
  A.current = self
  if not float(r1) or not save_args(tracked, self.saved, args, n, r1, rule.saved_by) then
    if r2 == nil then return r1 end            -- (as many results as the op gives)
    return r1, r2                              -- an integer result, or the op returned its
  end                                          -- argument: nothing to record
  local k = storage_id(r1)
  if k then self.saved[k] = rule.saved_by end
  local c = self.n + 1
  self.n = c
  self.nodes[c] = { name = name, rule = rule, args = args, nargs = n, out = r1, out2 = r2, state = r3 }
  tracked[r1] = true
  if r2 == nil then return r1 end
  return r1, r2
end

-- The gradients a pass is done with: self.spent, when the caller asks for it, lists the
-- node output gradients of at least 64 KiB (the blocks the runtime's storage cache keeps)
-- for it to release once it has read the leaves' (release_spent): a dead tensor's
-- memory would otherwise wait for the collector, and a fresh block costs page faults.
local nbytes, SPENT_BYTES = T.storage_nbytes, 64 * 1024

-- Free the spent gradients, except those in keep (a set of tensors handed out). A
-- gradient another one views keeps its memory through that view's reference.
function Tape:release_spent(keep)
  local spent = self.spent
  if spent == nil then return end
  for i = 1, #spent do
    local g = spent[i]
    if not (keep and keep[g]) then g:free() end
    spent[i] = nil
  end
end

-- The reverse pass from `out` (a scalar loss, seed 1; or any tensor with seed g of its
-- shape): the leaves' gradients end in self.grads. keep: the nodes stay for another
-- pass (nn.Function's backward may run twice), self.grads starts afresh each time;
-- otherwise each node is dropped once run.
function Tape:backward(out, seed, keep)
  if keep then self.grads = {} end
  self.keep = keep or false
  if self.tracked[out] ~= true then return end
  local outer = A.current                       -- the rules' own ops are never recorded
  A.current = nil
  self.grads[out] = seed or T.ones_like(out)
  local grads, nodes, spent = self.grads, self.nodes, self.spent
  for i = self.n, 1, -1 do
    local node = nodes[i]
    local g = grads[node.out]
    if g ~= nil then
      grads[node.out] = nil
      node.rule.backward(node, g, self)
      if spent and nbytes(g) >= SPENT_BYTES then spent[#spent + 1] = g end
    end
    if not keep then nodes[i] = nil end
  end
  if not keep then self.n = 0 end
  A.current = outer
end

return A
