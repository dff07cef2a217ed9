-- moonstep.optim.transforms_context — what a transform's update works with besides its
-- state: the arena's slice table (one slice per parameter tensor: name, offset, numel,
-- kind), for masks and the engine's deterministic reductions, and work buffers shaped
-- like the params (allocated once, reused every step).
--
--   ctx = context.new(params [, st])   st: the optimizer's slice table (optim/slices.lua)
--   ctx:work()             the buffer a transform writes its output into
--   ctx:tmp()              a second buffer, for a transform's intermediate
--   ctx:child(key)         a context with its own buffers (masked's inner transform)
--   ctx:rebase(params)     follow the params to a new tensor (the arena moved)
--   ctx:mask(who, spec)    false (no slice), true (every slice) or a 0/1 tensor
--   ctx:sumsq(who, u [, per_slice])   sum(u^2) over the arena [and a list per slice]
--   ctx:scale_slices(who, u, scales)  the work buffer <- u with slice s scaled by scales[s]
local ms = require 'moonstep'
local check = require 'moonstep.check'
local slices = require 'moonstep.optim.slices'
local reduce = require 'moonstep.optim.reduce'

local M = {}
local Context = {}
Context.__index = Context

-- params: the flat parameter tensor; st: its slice table (optim/slices.lua: one slice per
-- parameter tensor, st.entries = {name, offset (0-based), numel, kind}); default: the
-- whole tensor as one slice.
function M.new(params, st)
  st = st or slices.table({ entries = { { name = '1', offset = 0, numel = params:numel(), kind = 'weight' } },
                            flat = params }, {}, 1)
  return setmetatable({ params = params, st = st, slices = st.entries, masks = {},
                        children = setmetatable({}, { __mode = 'k' }) }, Context)
end

-- One context per params tensor for standalone calls (t.update(u, st, p, step)).
local standalone = setmetatable({}, { __mode = 'k' })
function M.of(params, ctx)
  if ctx ~= nil then return ctx end
  local c = standalone[params]
  if not c or c.slices[1].numel ~= params:numel() then
    c = M.new(params)
    standalone[params] = c
  end
  return c
end

-- The params moved (model:to(...) gives the arena a new flat tensor): this context and
-- its children follow (buffers are reallocated when next asked for).
function Context:rebase(params)
  if self.params == params then return self end
  self.params = params
  for _, c in pairs(self.children) do c:rebase(params) end
  return self
end

-- A buffer like params, reallocated if params changed dtype, device or size.
local function like(self, key)
  local b, p = self[key], self.params
  if not b or check.is_freed(b) or b:numel() ~= p:numel() or b.dtype ~= p.dtype or b.device ~= p.device then
    b = ms.empty_like(p)
    self[key] = b
  end
  return b
end
function Context:work() return like(self, '_work') end
function Context:tmp() return like(self, '_tmp') end

function Context:child(key)
  local c = self.children[key]
  if not c then
    c = M.new(self.params, self.st)
    self.children[key] = c
  end
  return c
end

-- A 0-d zero of params' dtype and device (the "elsewhere" of a where()).
function Context:zero()
  local z = self._zero
  if not z or z.dtype ~= self.params.dtype or z.device ~= self.params.device then
    z = ms.full({}, 0, { dtype = self.params.dtype, device = self.params.device })
    self._zero = z
  end
  return z
end

-- Whether slice s matches pattern: alternatives separated by |, each a Lua pattern found
-- in the slice's name or equal to its kind.
local function matches(pattern, s)
  for alt in (pattern .. '|'):gmatch('([^|]*)|') do
    if alt ~= '' and (s.kind == alt or tostring(s.name):find(alt) ~= nil) then return true end
  end
  return false
end

-- spec (a pattern or a function of a slice) -> false, true or a 0/1 tensor like params.
function Context:mask(who, spec)
  local key = tostring(self.params.device) .. tostring(self.params.dtype)
  local cached = self.masks[spec]
  if cached ~= nil and cached.key == key then return cached.value end
  local picked, count = {}, 0
  for i, s in ipairs(self.slices) do
    local yes
    if type(spec) == 'string' then
      yes = matches(spec, s)
    else
      local view = { name = s.name, offset = s.offset, numel = s.numel, kind = s.kind,
                     shape = s.shape and { unpack(s.shape) } }
      local ok, r = pcall(spec, view)
      if not ok then check.fail('%s: the mask function raised on slice %s: %s', who, tostring(s.name), check.reason(r)) end
      if type(r) ~= 'boolean' then
        check.fail('%s: the mask function returned %s for slice %s, expected true or false', who,
                   check.describe(r), tostring(s.name))
      end
      yes = r
    end
    picked[i] = yes
    if yes then count = count + 1 end
  end
  local value = count == #self.slices
  if count > 0 and count < #self.slices then
    value = ms.zeros_like(self.params)
    for i, s in ipairs(self.slices) do
      if picked[i] and s.numel > 0 then value:narrow(1, s.offset + 1, s.numel):fill_(1) end
    end
  elseif count == 0 then
    value = false
  end
  self.masks[spec] = { key = key, value = value }
  return value
end

-- sum(u^2) over the arena, and with per_slice a list of it per slice: the engine's
-- deterministic reduction (fixed blocks, float64 partials, fixed order; CPU = GPU).
function Context:sumsq(who, u, per_slice)
  if not per_slice then return reduce.sumsq(who, u) end
  self.st:to_device(u.device)
  return reduce.sumsq(who, u, self.st)
end

-- The work buffer <- u with slice s scaled by scales[s].
function Context:scale_slices(who, u, scales)
  local w = self:work()
  if w ~= u then w:copy_(u) end
  self.st:to_device(w.device)
  return reduce.scale(who, w, self.st, scales)
end

return M
