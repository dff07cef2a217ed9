-- moonstep.params — the parameter arena: all parameters of a model in one contiguous
-- tensor and all gradients in a second one, so that an optimizer updates everything
-- in one fused pass (one kernel launch on the GPU).
--
--   local set = ms.params{ w, b }     -- plain tensors: w and b now view the arena
--   set:flat_parameters()             -- 1-D tensor [total]
--   set:flat_gradients()              -- 1-D tensor [total], zeroed at build
--   set:slices()                      -- { {name=, offset=, numel=, shape=, kind=}, ... }
--                                     --   offset: 0-based element offset into the arena
--   set.grads[i]                      -- gradient view of the i-th parameter
--
-- Building an arena re-points each parameter tensor (the same Lua object) at its slice,
-- so every reference a script holds keeps working and sees the arena.
local T = require 'moonstep.tensor'
local check = require 'moonstep.check'

local ParamSet = {}
ParamSet.__index = ParamSet
ParamSet.__name = 'params'      -- errors read params.zero_grad: ..., as the user calls them
ParamSet.__var = 'set'
local M = { ParamSet = ParamSet }

-- Make tensor t view what v views (t keeps its identity, v gives up its reference).
local rebind = T.rebind
M.rebind = rebind

-- entries: list of { name = string, param = tensor, kind = 'weight'|'bias'|'norm' }.
-- dtype/device default to the first parameter's. Returns a ParamSet whose
-- params[i] / grads[i] are the entries' tensors (rebound) and their gradients.
function M.build(entries, dtype, device)
  local total = 0
  local seen = {}
  for i, e in ipairs(entries) do
    local p = e.param
    if not T.is_tensor(p) or T.is_freed(p) then
      check.fail('params: entry %s is %s, expected a tensor', tostring(e.name), check.describe(p))
    end
    if p.dtype ~= 'float32' and p.dtype ~= 'float64' then
      check.fail('params: %s has dtype %s, expected float32 or float64', e.name, p.dtype)
    end
    local first = entries[1].param
    if p.dtype ~= first.dtype or p.device ~= first.device then
      check.fail('params: %s is %s on %s but %s is %s on %s, expected one dtype and device',
                 e.name, p.dtype, p.device, entries[1].name, first.dtype, first.device)
    end
    -- The arena re-points each tensor at its own slice: a tensor given twice, or two
    -- overlapping views of one storage, would silently stop sharing memory.
    local key, lo, hi = T.storage_key(p), tonumber(p.offset), tonumber(p.offset)
    for d = 0, p.ndim - 1 do hi = hi + (tonumber(p.sizes[d]) - 1) * tonumber(p.strides[d]) end
    for _, o in ipairs(seen) do
      if o.key == key and p:numel() > 0 and o.numel > 0 and lo <= o.hi and o.lo <= hi then
        check.fail('params: %s and %s overlap in memory, expected distinct tensors', o.name, e.name)
      end
    end
    seen[#seen + 1] = { key = key, lo = lo, hi = hi, name = e.name, numel = p:numel() }
    total = total + p:numel()
  end
  dtype = dtype or (entries[1] and entries[1].param.dtype) or 'float32'
  device = device or (entries[1] and entries[1].param.device) or 'cpu'
  local flat = T.empty(total, { dtype = dtype, device = device })
  local gflat = T.zeros(total, { dtype = dtype, device = device })
  local set = setmetatable({ flat = flat, gflat = gflat, params = {}, grads = {}, entries = {} }, ParamSet)
  local offset = 0
  for i, e in ipairs(entries) do
    local n, shape = e.param:numel(), e.param:shape()
    local view = flat:narrow(1, offset + 1, n):view(shape)
    view:copy_(e.param)
    rebind(e.param, view)
    set.params[i] = e.param
    set.grads[i] = gflat:narrow(1, offset + 1, n):view(shape)
    set.entries[i] = { name = e.name, offset = offset, numel = n, shape = shape, kind = e.kind or 'weight' }
    offset = offset + n
  end
  return set
end

function ParamSet:flat_parameters() return self.flat end
function ParamSet:flat_gradients() return self.gflat end
-- _zero_grad(fn): fn is the public function to name in an error (a module's zero_grad).
function ParamSet:_zero_grad(fn)
  check.tensor(fn, 'the gradient arena (flat_gradients())', self.gflat):zero_()
  self:_grads_changed()
  return self
end
-- The gradients changed other than by a bucketed backward (zeroed; ms.autograd's): a
-- data-parallel round (optim/dist_buckets.lua) no longer stands for them.
function ParamSet:_grads_changed()
  local plan = rawget(self, '_dist_plan')
  if plan then plan:stale() end
end
function ParamSet:zero_grad() return self:_zero_grad('params.zero_grad') end
function ParamSet:numel() return self.flat:numel() end

function ParamSet:slices()
  local out = {}
  for i, e in ipairs(self.entries) do
    out[i] = { name = e.name, offset = e.offset, numel = e.numel, shape = { unpack(e.shape) }, kind = e.kind }
  end
  return out
end

-- Move (or convert) the whole arena: one new allocation for params, one for grads;
-- every parameter and gradient view is re-pointed. Gradients are kept.
function ParamSet:to(dtype, device)
  local flat = self.flat:to(dtype, device)
  local gflat = self.gflat:to(dtype, device)
  if flat == self.flat then return self end
  for i, e in ipairs(self.entries) do
    rebind(self.params[i], flat:narrow(1, e.offset + 1, e.numel):view(e.shape))
    rebind(self.grads[i], gflat:narrow(1, e.offset + 1, e.numel):view(e.shape))
  end
  self.flat, self.gflat = flat, gflat
  return self
end

-- ms.params{t1, t2, ...} or ms.params{name1 = t1, ...}: an arena over plain tensors.
function M.params(list)
  if type(list) ~= 'table' or T.is_tensor(list) then
    check.fail('params: argument is %s, expected a table of tensors', check.describe(list))
  end
  local entries = {}
  for i, t in ipairs(list) do entries[#entries + 1] = { name = tostring(i), param = t } end
  local names = {}
  for k in pairs(list) do
    if type(k) == 'string' then
      names[#names + 1] = k
    elseif not (type(k) == 'number' and k >= 1 and k <= #list and k == math.floor(k)) then
      check.fail('params: key %s is neither a name nor a position 1..%d in the list', check.describe(k), #list)
    end
  end
  table.sort(names)
  for _, k in ipairs(names) do entries[#entries + 1] = { name = k, param = list[k] } end
  if #entries == 0 then check.fail('params: the table holds no tensors') end
  return M.build(entries)
end

-- params: 2 tensors, 7 elements (float32, cpu): [3], [2x2]
function ParamSet.__tostring(self)
  local flat, entries = rawget(self, 'flat'), rawget(self, 'entries')
  if check.is_tensor(flat) and check.is_freed(flat) then return 'params (freed)' end
  local ok, text = pcall(function()
    local shapes = {}
    for i, e in ipairs(entries) do
      if i > 8 then shapes[#shapes + 1] = '...'; break end
      shapes[i] = '[' .. table.concat(rawget(e, 'shape'), 'x') .. ']'
    end
    return ('params: %d tensor%s, %d elements (%s, %s): %s'):format(#entries,
      #entries == 1 and '' or 's', flat:numel(), flat.dtype, flat.device,
      table.concat(shapes, ', '))
  end)
  if ok then return text end
  return ('params (not usable: flat is %s, entries is %s)'):format(check.describe(flat), check.describe(entries))
end

check.methods(ParamSet)   -- errors below its methods name them (ParamSet.__name)

return M
