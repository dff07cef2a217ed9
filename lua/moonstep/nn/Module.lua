-- nn.Module — the base of every layer and container (the Torch7 protocol).
--
--   y = m:forward(x)                  computes and keeps m.output
--   gx = m:backward(x, gy)            returns gradInput, ADDS parameter gradients
--   m:zero_grad()                     zeroes them (optimizers do this before each call)
--   m:train() / m:evaluate()          training mode (dropout, batch statistics) or not
--   m:parameters()                    the parameter tensors (the same views every call)
--   m:named_parameters()              { {name = '1.weight', param = t, grad = g}, ... }
--   m:flat_parameters() / m:flat_gradients() / m:slices()   the arena (moonstep.params)
--   m:to(device_or_dtype)             moves the arena as a whole (and buffers)
--   m:state_dict() / m:load_state_dict(sd)                  name -> tensor copies
--
-- A subclass calls Module.init(self), registers its parameters with
-- self:register_parameter(name, tensor, kind) and buffers with register_buffer, and
-- implements forward(input) and backward(input, gradOutput). Containers add children
-- with self:add(module) and call self:build_arena() once composed. A layer used on its
-- own builds its arena the first time one is asked for.
local ms = require 'moonstep'
local params = require 'moonstep.params'

local Module = {}
Module.__index = Module
Module.__name = 'Module'

-- Module:extend('Linear') -> a subclass; calling the class constructs an instance.
function Module:extend(name)
  local cls = setmetatable({}, { __index = self, __call = function(c, ...) return c.new(...) end })
  cls.__index = cls
  cls.__name = name
  cls.__tostring = Module.__tostring
  cls.new = function(...)
    local obj = setmetatable({}, cls)
    obj:__init(...)
    return obj
  end
  return cls
end

function Module:__init() Module.init(self) end

function Module.init(self)
  self._params = {}     -- { {name=, param=, grad=, kind=} } of this module only
  self._buffers = {}    -- { {name=, tensor=} }
  self.modules = {}     -- children, in order
  self.training = true
end

function Module:register_parameter(name, tensor, kind)
  self._params[#self._params + 1] = { name = name, param = tensor, kind = kind or 'weight' }
  self[name] = tensor
  self._arena = nil
end

function Module:register_buffer(name, tensor)
  self._buffers[#self._buffers + 1] = { name = name, tensor = tensor }
  self[name] = tensor
end

-- The Torch7 protocol pairs backward(x, g) with the forward(x) just before it. Every
-- forward calls self:record_input(x) first and every backward self:check_input(x):
-- backward with another input (or none yet) is an error, never a silent re-run of
-- forward (which would update BatchNorm statistics and draw new dropout masks).
function Module:record_input(x)
  self._input = x
end

function Module:check_input(x)
  local check = require 'moonstep.check'
  if self._input == nil then
    check.fail('%s.backward: no forward pass to differentiate; call forward(input) first', self.__name)
  end
  if not rawequal(self._input, x) then
    check.fail('%s.backward: input is not the one of the last forward(input) (%s), ' ..
               'expected backward(input, gradOutput) with that same input', self.__name, check.describe(x))
  end
  check.tensor(self.__name .. '.backward', 'input', x)
end

function Module:add(m)
  self.modules[#self.modules + 1] = m
  return self
end

-- Every parameter of the tree with its dotted name, depth first.
local function collect(m, prefix, out)
  for _, p in ipairs(m._params) do
    out[#out + 1] = { name = prefix .. p.name, entry = p, owner = m }
  end
  for i, child in ipairs(m.modules) do collect(child, prefix .. i .. '.', out) end
  return out
end

-- One arena for the whole tree: the root owns it; each module finds its gradients
-- as self.grad_<name> (grad_weight, grad_bias, ...). Descendants are marked, so that
-- none of them builds an arena of its own later.
function Module:build_arena()
  local found = collect(self, '', {})
  local entries = {}
  for i, f in ipairs(found) do entries[i] = { name = f.name, param = f.entry.param, kind = f.entry.kind } end
  local set = params.build(entries)
  for i, f in ipairs(found) do
    f.entry.grad = set.grads[i]
    f.owner['grad_' .. f.entry.name] = set.grads[i]
  end
  self:apply(function(m) m._arena, m._in_arena = nil, true end)
  self._arena = set
  return set
end

-- The arena of a root module (built on first use); a module inside a larger model
-- refers to the model's.
function Module:arena()
  if self._arena then return self._arena end
  if self._in_arena then
    error(self.__name .. ': this module is part of a larger model; ask the model (the root) ' ..
          'for its flat parameters', 3)
  end
  return self:build_arena()
end
function Module:flat_parameters() return self:arena():flat_parameters() end
function Module:flat_gradients() return self:arena():flat_gradients() end
function Module:slices() return self:arena():slices() end

-- Gradients exist once some arena holds this module.
function Module:ensure_arena()
  if not self._arena and not self._in_arena then self:build_arena() end
end

-- The parameter tensors of this module and its children (the same views every call).
function Module:parameters()
  self:ensure_arena()
  local out = {}
  for i, f in ipairs(collect(self, '', {})) do out[i] = f.entry.param end
  return out
end

function Module:named_parameters()
  self:ensure_arena()
  local out = {}
  for i, f in ipairs(collect(self, '', {})) do
    out[i] = { name = f.name, param = f.entry.param, grad = f.entry.grad, kind = f.entry.kind }
  end
  return out
end

function Module:zero_grad()
  if self._arena then self._arena:zero_grad(); return self end
  self:ensure_arena()
  for _, f in ipairs(collect(self, '', {})) do f.entry.grad:zero_() end
  return self
end

-- Apply f to this module and every descendant.
function Module:apply(f)
  f(self)
  for _, m in ipairs(self.modules) do m:apply(f) end
  return self
end

function Module:train(on)
  local mode = on ~= false
  return self:apply(function(m) m.training = mode end)
end
function Module:evaluate() return self:train(false) end

-- Two-pass optimizers turn batch-statistics updates off for their extra passes.
function Module:set_update_stats(on)
  return self:apply(function(m) if m.update_stats ~= nil then m.update_stats = on end end)
end

-- to('cuda'), to('cpu'), to('float64'), to('cuda', 'float32'): parameters and
-- gradients move as one arena; buffers move one by one.
function Module:to(a, b)
  self:arena():to(a, b)   -- only a root moves: its arena holds every parameter
  self:apply(function(m)
    for _, buf in ipairs(m._buffers) do
      local moved = buf.tensor:to(a, b)
      if moved ~= buf.tensor then params.rebind(buf.tensor, moved) end
    end
  end)
  return self
end
function Module:cuda() return self:to('cuda') end
function Module:cpu() return self:to('cpu') end
function Module:double() return self:to('float64') end
function Module:float() return self:to('float32') end

-- name -> CPU copy, for parameters ('1.weight') and buffers ('2.running_mean').
function Module:state_dict()
  local sd = {}
  for _, p in ipairs(self:named_parameters()) do sd[p.name] = p.param:to('cpu'):clone() end
  local function walk(m, prefix)
    for _, buf in ipairs(m._buffers) do sd[prefix .. buf.name] = buf.tensor:to('cpu'):clone() end
    for i, child in ipairs(m.modules) do walk(child, prefix .. i .. '.') end
  end
  walk(self, '')
  return sd
end

-- Copies values in (strict: every name present, every shape equal).
function Module:load_state_dict(sd)
  if type(sd) ~= 'table' then error('load_state_dict: expected a table name -> tensor', 2) end
  local targets = {}
  for _, p in ipairs(self:named_parameters()) do targets[p.name] = p.param end
  local function walk(m, prefix)
    for _, buf in ipairs(m._buffers) do targets[prefix .. buf.name] = buf.tensor end
    for i, child in ipairs(m.modules) do walk(child, prefix .. i .. '.') end
  end
  walk(self, '')
  for name, t in pairs(targets) do
    local v = sd[name]
    if not ms.is_tensor(v) then
      error(('load_state_dict: missing entry %q (a tensor of shape [%s])'):format(name, table.concat(t:shape(), ',')), 2)
    end
    if table.concat(v:shape(), ',') ~= table.concat(t:shape(), ',') then
      error(('load_state_dict: %q has shape [%s], expected [%s]'):format(name,
        table.concat(v:shape(), ','), table.concat(t:shape(), ',')), 2)
    end
    t:copy_(v)
  end
  for name in pairs(sd) do
    if not targets[name] then error(('load_state_dict: unexpected entry %q'):format(name), 2) end
  end
  return self
end

-- One line per module: name, arguments, parameter count.
function Module:extra_repr() return '' end

function Module.__tostring(self)
  local lines = {}
  local function count(m)
    local n = 0
    for _, p in ipairs(m._params) do n = n + p.param:numel() end
    return n
  end
  local function walk(m, indent, label)
    local n = count(m)
    local args = m:extra_repr()
    lines[#lines + 1] = ('%s%s%s(%s)%s'):format(indent, label, m.__name, args,
                                               n > 0 and ('  -- %d parameters'):format(n) or '')
    for i, child in ipairs(m.modules) do walk(child, indent .. '  ', '(' .. i .. ') ') end
  end
  walk(self, '', '')
  local total = 0
  self:apply(function(m) total = total + count(m) end)
  if #self.modules > 0 then lines[#lines + 1] = ('total: %d parameters'):format(total) end
  return table.concat(lines, '\n')
end

return Module
