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
local check = require 'moonstep.check'
local A = require 'moonstep.autograd.tape'
local T = require 'moonstep.tensor'

local reason = check.reason

local Module = {}
Module.__index = Module
Module.__name = 'Module'
Module.__var = 'm'                      -- an instance in messages: m:forward(...)

-- Module:extend('Linear') -> a subclass; calling the class constructs an instance.
function Module:extend(name)
  local cls = setmetatable({}, { __index = self, __call = function(c, ...) return c.new(...) end })
  cls.__index = cls
  cls.__name = name
  cls.__tostring = Module.__tostring
  cls.__call = Module.__call            -- an instance called like a function: an error
  cls.new = function(...)
    local obj = setmetatable({}, cls)
    obj:__init(...)
    return obj
  end
  return check.methods(cls)             -- its methods, assigned later, are guarded and named
end

function Module:__init() Module.init(self) end

-- m(x): PyTorch's spelling of forward; moonstep keeps the Torch7 protocol explicit.
function Module.__call(self)
  check.fail('%s: a module is not callable; use m:forward(input) (then m:backward(input, gradOutput))',
             self.__name)
end

function Module.init(self)
  self._params = {}     -- { {name=, param=, grad=, kind=} } of this module only
  self._buffers = {}    -- { {name=, tensor=} }
  self.modules = {}     -- children, in order
  self.training = true
end

function Module:register_parameter(name, tensor, kind)
  if type(name) ~= 'string' then check.fail('%s.register_parameter: name is %s, expected a string', self.__name, check.describe(name)) end
  Module._check_float(self.__name .. '.register_parameter', 'tensor', tensor)
  self._params[#self._params + 1] = { name = name, param = tensor, kind = kind or 'weight' }
  self[name] = tensor
  self._arena = nil
end

function Module:register_buffer(name, tensor)
  if type(name) ~= 'string' then check.fail('%s.register_buffer: name is %s, expected a string', self.__name, check.describe(name)) end
  check.tensor(self.__name .. '.register_buffer', 'tensor', tensor)
  self._buffers[#self._buffers + 1] = { name = name, tensor = tensor }
  self[name] = tensor
end

-- The Torch7 protocol pairs backward(x, g) with the forward(x) just before it. Every
-- forward calls self:record_input(x) and every backward self:check_input(x): backward
-- with another input (or none yet) is an error, never a silent re-run of forward
-- (which would update BatchNorm statistics and draw new dropout masks).
-- The layers of moonstep.nn call self:_begin_forward(x) first (x checked, the previous
-- input forgotten, so that a forward that fails leaves nothing for backward to pair
-- with), record_input(x) once their output is computed, and self:_begin_backward(x, g)
-- first in backward. (Underscored: helpers of the layers, not API for their users.)
-- The parameters' dtype and device are recorded too: a backward after m:to(...)
-- would mix the forward's tensors with converted parameters.
-- dtype and device of a live tensor as one number (cheap to record and compare).
local function type_key(t)
  if not check.is_tensor(t) or check.is_freed(t) then return nil end
  return t.dtype_id * 2 + (t.device == 'cpu' and 0 or 1)
end

function Module:record_input(x)
  self._input = x
  local p = self._params[1]
  self._input_param_type = p and type_key(p.param)
end

function Module:check_input(x)
  if self._input == nil then
    check.fail('%s.backward: no forward pass to differentiate; call forward(input) first', self.__name)
  end
  if not rawequal(self._input, x) then
    check.fail('%s.backward: input is not the one of the last forward(input) (%s), ' ..
               'expected backward(input, gradOutput) with that same input', self.__name, check.describe(x))
  end
  check.tensor(self.__name .. '.backward', 'input', x)
end

-- fn's argument `name` must be a live float tensor; with `like`, of like's dtype and
-- device too (a layer's parameters or its output).
function Module._check_float(fn, name, x, like)
  return check.float_tensor(fn, name, x, like, "(the layer's); convert with :to()")
end

-- The module's own parameters and buffers must be live for fn.
function Module:_check_alive(fn)
  for _, p in ipairs(self._params) do
    if check.is_freed(p.param) then check.fail('%s: parameter %s was freed (used after :free())', fn, p.name) end
  end
  for _, b in ipairs(self._buffers) do
    if check.is_freed(b.tensor) then check.fail('%s: buffer %s was freed (used after :free())', fn, b.name) end
  end
end

-- Inside a function ms.autograd differentiates, a module's forward on a tracked input (or
-- with a tracked parameter) would hand back an output the tape cannot follow: the
-- module's hand-written backward is not on it. Refused; a module on untracked data runs.
function Module:_refuse_tape(fn, ...)
  local tracked = A.current.tracked
  for i = 1, select('#', ...) do
    if tracked[(select(i, ...))] == true then
      check.fail('%s: argument %d is a tensor ms.autograd tracks; a module\'s hand-written backward ' ..
                 'does not join the tape: use its functional form (ms.nn.functional.*, e.g. ' ..
                 'linear(x, m.weight, m.bias)) or wrap the computation in nn.Function', fn, i)
    end
  end
  for _, p in ipairs(self._params) do
    if tracked[p.param] == true then
      check.fail('%s: its parameter %s is tracked by ms.autograd; a module\'s hand-written backward ' ..
                 'does not join the tape: use its functional form (ms.nn.functional.*, e.g. ' ..
                 'linear(x, m.weight, m.bias)) or wrap the computation in nn.Function', fn, p.name)
    end
  end
end

-- 'Linear.forward' / 'Linear.backward', built once per class name.
local fwd_names = setmetatable({}, { __index = function(t, k) local v = k .. '.forward'; t[k] = v; return v end })
local bwd_names = setmetatable({}, { __index = function(t, k) local v = k .. '.backward'; t[k] = v; return v end })

-- Forward starts: x checked (a live float tensor unless kind == 'any'), the last
-- input forgotten.
function Module:_begin_forward(x, kind)
  self._input = nil
  local fn = fwd_names[self.__name]
  self:_check_alive(fn)
  if A.current ~= nil and not self._joins_tape then self:_refuse_tape(fn, x) end
  if kind == 'any' then check.tensor(fn, 'input', x) else Module._check_float(fn, 'input', x) end
  return x
end

-- Backward starts: x is the input of the last forward, g a live tensor of the shape,
-- dtype and device of `out` (the forward's output by default).
function Module:_begin_backward(x, g, out)
  self:check_input(x)
  local fn = bwd_names[self.__name]
  self:_check_alive(fn)
  out = out or self.output
  local p = self._params[1]
  if self._input_param_type and type_key(p.param) ~= self._input_param_type then
    check.fail('%s: the parameters are %s on %s but the last forward ran with them in another dtype ' ..
               'or device; call forward again after :to()', fn, p.param.dtype, p.param.device)
  end
  if p and out and not check.is_freed(out) and (p.param.dtype ~= out.dtype or p.param.device ~= out.device) then
    check.fail('%s: the parameters are %s on %s but the last forward ran in %s on %s; call forward again ' ..
               'after :to()', fn, p.param.dtype, p.param.device, out.dtype, out.device)
  end
  Module._check_float(fn, 'gradOutput', g, out)
  if out ~= nil and not T.same_shape(g, out) then
    check.fail('%s: gradOutput has shape %s, expected %s (the output\'s)', fn, T.shape_of(g), T.shape_of(out))
  end
  return g
end

-- f(...) for a constructor: an allocation that fails (out of memory) names fn.
function Module._alloc(fn, f, ...)
  local ok, v = pcall(f, ...)
  if not ok then check.fail('%s: %s', fn, reason(v)) end
  return v
end

-- The number of arguments a constructor got beyond `max`: an error naming them.
function Module._check_arity(fn, n, max, usage)
  if n > max then
    check.fail('%s: %d arguments, expected at most %d: %s', fn, n, max, usage)
  end
end

-- Whether v is a module, probed without running any __index function (check.field):
-- asking the `ms` table or a tensor must not raise their own errors.
function Module.is_module(v)
  local f = check.field
  return type(v) == 'table' and getmetatable(v) ~= nil and type(f(v, 'forward')) == 'function'
     and type(f(v, 'backward')) == 'function' and type(rawget(v, '_params')) == 'table'
     and type(rawget(v, 'modules')) == 'table'
end

-- Whether module `inner` is `outer` or one of its descendants.
local function contains(outer, inner)
  if rawequal(outer, inner) then return true end
  for _, child in ipairs(outer.modules) do
    if contains(child, inner) then return true end
  end
  return false
end

-- Children form a tree: a module that is already in this model (the model itself
-- included: forward would recurse forever) is refused, as is a model holding this one.
function Module:add(m)
  local fn = self.__name .. '.add'
  if not Module.is_module(m) then
    check.fail('%s: module is %s, expected a module', fn, check.describe(m))
  end
  if contains(m, self) then
    check.fail('%s: module is %s, which is this model or contains it; a model cannot contain itself',
               fn, check.describe(m))
  end
  if contains(self, m) then
    check.fail('%s: module is %s, which is already part of this model; ' ..
               'a module can appear once (its input is kept for backward)', fn, check.describe(m))
  end
  -- An arena built already (nn.Sequential(...) builds it at once) no longer covers the
  -- tree: rebuilt on next use, the values kept. Not under an optimizer that holds it (it
  -- would never train the new ones), nor inside a model whose arena is built.
  if self._arena then
    local holder = rawget(self._arena, '_bound_by')
    holder = holder and holder[1]
    if holder then
      check.fail('%s: the model\'s arena is held by an optimizer (optim.%s); add every module before ' ..
                 'building the optimizer (it would not train the new ones)', fn, holder.__name)
    end
    self:_forget_arena()
  elseif self._in_arena then
    check.fail('%s: this module is inside a model whose arena is built; add modules to it before adding it ' ..
               'to the model', fn)
  end
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
-- fn: the public function to name in an error (these helpers are local; layers reach
-- them as self:_ensure_arena(fn) and self:_get_arena(fn), not through the public
-- build_arena(), arena() and ensure_arena(), which name themselves).
local function build_arena(self, fn)
  local found = collect(self, '', {})
  local entries = {}
  for i, f in ipairs(found) do
    if not check.is_tensor(f.entry.param) or check.is_freed(f.entry.param) then
      check.fail('%s: parameter %s is %s, expected a live tensor', fn, f.name, check.describe(f.entry.param))
    end
    entries[i] = { name = f.name, param = f.entry.param, kind = f.entry.kind }
  end
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
-- The tree's arena dropped: rebuilt on next use (the parameters keep their values).
function Module:_forget_arena() self:apply(function(x) x._arena, x._in_arena = nil, nil end) end

local function get_arena(self, fn)
  if self._arena then return self._arena end
  if self._in_arena then
    check.fail('%s: this module is part of a larger model; ask the model (the root) ' ..
               'for its flat parameters', fn)
  end
  return build_arena(self, fn)
end
function Module:flat_parameters() return get_arena(self, self.__name .. '.flat_parameters'):flat_parameters() end
function Module:flat_gradients() return get_arena(self, self.__name .. '.flat_gradients'):flat_gradients() end
function Module:slices() return get_arena(self, self.__name .. '.slices'):slices() end

-- Gradients exist once some arena holds this module.
local function ensure_arena(self, fn)
  if not self._arena and not self._in_arena then build_arena(self, fn) end
end

function Module:build_arena() return build_arena(self, self.__name .. '.build_arena') end
function Module:arena() return get_arena(self, self.__name .. '.arena') end
function Module:ensure_arena() return ensure_arena(self, self.__name .. '.ensure_arena') end
Module._get_arena, Module._ensure_arena, Module._build_arena = get_arena, ensure_arena, build_arena

-- The parameter tensors of this module and its children (the same views every call).
function Module:parameters()
  ensure_arena(self, self.__name .. '.parameters')
  local out = {}
  for i, f in ipairs(collect(self, '', {})) do out[i] = f.entry.param end
  return out
end

-- fn (private callers): the public function to name in an error.
local function named_parameters(self, fn)
  ensure_arena(self, fn)
  local out = {}
  for i, f in ipairs(collect(self, '', {})) do
    out[i] = { name = f.name, param = f.entry.param, grad = f.entry.grad, kind = f.entry.kind }
  end
  return out
end
function Module:named_parameters() return named_parameters(self, self.__name .. '.named_parameters') end

function Module:zero_grad()
  local fn = self.__name .. '.zero_grad'
  if self._arena then self._arena:_zero_grad(fn); return self end
  ensure_arena(self, fn)
  for _, f in ipairs(collect(self, '', {})) do
    check.tensor(fn, 'the gradient of ' .. f.name .. ' (in the model\'s gradient arena)', f.entry.grad):zero_()
  end
  return self
end

-- Apply f to this module and every descendant.
function Module:apply(f)
  if type(f) ~= 'function' then
    check.fail('%s.apply: f is %s, expected a function(module)', self.__name, check.describe(f))
  end
  f(self)
  for _, m in ipairs(self.modules) do m:apply(f) end
  return self
end

function Module:train(on)
  if on ~= nil then check.boolean(self.__name .. '.train', 'mode', on) end
  local mode = on ~= false
  return self:apply(function(m) m.training = mode end)
end
function Module:evaluate() return self:train(false) end

-- Two-pass optimizers turn batch-statistics updates off for their extra passes.
function Module:set_update_stats(on)
  check.boolean(self.__name .. '.set_update_stats', 'on', on)
  return self:apply(function(m) if m.update_stats ~= nil then m.update_stats = on end end)
end

-- to('cuda'), to('cpu'), to('float64'), to('cuda', 'float32'): parameters and
-- gradients move as one arena; buffers move one by one.
local TARGETS = { cpu = true, cuda = true, float32 = true, float64 = true }

local function move(self, fn, a, b)
  for i, v in ipairs { a, b } do
    if v ~= nil and not TARGETS[v] then
      check.fail("%s: argument %d is %s, expected a device ('cpu', 'cuda') or a float dtype ('float32', 'float64')",
                 fn, i, check.describe(v))
    end
  end
  local ok, err = pcall(function()
    get_arena(self, fn):to(a, b)   -- only a root moves: its arena holds every parameter
    self:apply(function(m)
      for _, buf in ipairs(m._buffers) do
        local moved = buf.tensor:to(a, b)
        if moved ~= buf.tensor then params.rebind(buf.tensor, moved) end
      end
    end)
  end)
  if not ok then check.fail('%s: %s', fn, reason(err)) end
  return self
end

function Module:to(a, b) return move(self, self.__name .. '.to', a, b) end
function Module:cuda() return move(self, self.__name .. '.cuda', 'cuda') end
function Module:cpu() return move(self, self.__name .. '.cpu', 'cpu') end
function Module:double() return move(self, self.__name .. '.double', 'float64') end
function Module:float() return move(self, self.__name .. '.float', 'float32') end

-- name -> CPU copy, for parameters ('1.weight') and buffers ('2.running_mean').
function Module:state_dict()
  local fn = self.__name .. '.state_dict'
  local sd = {}
  for _, p in ipairs(named_parameters(self, fn)) do
    sd[p.name] = check.tensor(fn, 'parameter ' .. p.name, p.param):to('cpu'):clone()
  end
  local function walk(m, prefix)
    for _, buf in ipairs(m._buffers) do
      sd[prefix .. buf.name] = check.tensor(fn, 'buffer ' .. prefix .. buf.name, buf.tensor):to('cpu'):clone()
    end
    for i, child in ipairs(m.modules) do walk(child, prefix .. i .. '.') end
  end
  walk(self, '')
  return sd
end

-- Copies values in (strict: every name present, every shape equal, nothing unknown).
-- Everything is checked before the first value is copied: a refused state dict leaves
-- the module as it was.
function Module:load_state_dict(sd)
  local fn = self.__name .. '.load_state_dict'
  if type(sd) ~= 'table' or ms.is_tensor(sd) then
    check.fail('%s: state_dict is %s, expected a table name -> tensor (from state_dict())', fn, check.describe(sd))
  end
  local targets = {}
  for _, p in ipairs(named_parameters(self, fn)) do targets[p.name] = p.param end
  local function walk(m, prefix)
    for _, buf in ipairs(m._buffers) do targets[prefix .. buf.name] = buf.tensor end
    for i, child in ipairs(m.modules) do walk(child, prefix .. i .. '.') end
  end
  walk(self, '')
  local names = {}
  for name in pairs(targets) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local t, v = targets[name], rawget(sd, name)
    check.tensor(fn, ('this model\'s %q'):format(name), t)
    if not ms.is_tensor(v) then
      check.fail('%s: entry %q is %s, expected a tensor of shape [%s]', fn, name, check.describe(v),
                 table.concat(t:shape(), ','))
    end
    check.tensor(fn, ('entry %q'):format(name), v)
    if table.concat(v:shape(), ',') ~= table.concat(t:shape(), ',') then
      check.fail('%s: %q has shape [%s], expected [%s]', fn, name, table.concat(v:shape(), ','),
                 table.concat(t:shape(), ','))
    end
  end
  for name in pairs(sd) do
    if not targets[name] then
      check.fail('%s: unexpected entry %s (this model has: %s)', fn, check.describe(name), table.concat(names, ', '))
    end
  end
  for _, name in ipairs(names) do targets[name]:copy_(rawget(sd, name)) end
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

require('moonstep.nn.summary')(Module)   -- model:summary(input_shape): layers, shapes, parameter counts

-- Errors raised below a public method of Module are named after it (check.methods).
check.methods(Module)

return Module
