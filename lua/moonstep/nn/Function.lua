-- nn.Function(f [, params]) — a layer whose forward is a Lua function of tensors and
-- whose backward is ms.autograd's reverse pass over what f did.
--   f(x, params) returns a float tensor; params: a table of named tensors (or a list),
--   registered as the module's parameters: in its model's arena, trained by any
--   optimizer, saved by state_dict. f sees the same tensor objects (after the arena
--   re-points them).
--     local m = nn.Function(function(x, p) return F.linear(x, p.weight, p.bias):tanh() end,
--                           { weight = ms.randn(20, 10) * 0.1, bias = ms.zeros(20) })
--     nn.Sequential(m, nn.Linear(20, 2))
-- forward(x) records f on its own tape (x and the parameters tracked) and keeps it;
-- backward(x, g) runs the reverse pass from g (repeatable: gradients add, as every
-- module's), adding the parameters' gradients into the arena and returning gradInput
-- (nil for an integer x). Inside a function ms.autograd differentiates,
-- forward simply runs f on that tape, so the layer joins the outer computation.
local Module = require 'moonstep.nn.Module'
local A = require 'moonstep.autograd.tape'
local T = require 'moonstep.tensor'
local check = require 'moonstep.check'

local Function = Module:extend('Function')
Function._joins_tape = true     -- its forward runs on an enclosing tape (Module refuses others)

local USAGE = 'Function(f [, params]): f(x, params) returns a tensor; params a table of tensors'

function Function:__init(f, params, ...)
  Module.init(self)
  Module._check_arity('Function', 2 + select('#', ...), 2, USAGE)
  if not check.is_callable(f) then check.fail('Function: f is %s, expected a function (%s)', check.describe(f), USAGE) end
  self.f = f
  if params ~= nil then
    if type(params) ~= 'table' or T.is_tensor(params) or getmetatable(params) ~= nil then
      check.fail('Function: params is %s, expected a table of tensors (%s)', check.describe(params), USAGE)
    end
    local names = check.sorted_keys(params)
    for _, k in ipairs(names) do
      if type(k) ~= 'string' and type(k) ~= 'number' then
        check.fail('Function: params has a key %s, expected names or positions', check.describe(k))
      end
      if not T.is_tensor(params[k]) then
        check.fail('Function: params[%s] is %s, expected a tensor', check.describe(k), check.describe(params[k]))
      end
    end
    for _, k in ipairs(names) do self:register_parameter(tostring(k), params[k]) end
  end
  self.params = params or {}
end

function Function:extra_repr()
  local info = debug.getinfo(self.f, 'S')
  return info and ('%s:%d'):format(info.short_src, info.linedefined) or ''
end

local function run_f(self, x)
  local out = self.f(x, self.params)
  if not A.is_float(out) then
    check.fail('Function.forward: f returned %s, expected a float tensor', check.describe(out))
  end
  return out
end

function Function:forward(x)
  self:_begin_forward(x, 'any')
  self._tape = nil
  if A.current ~= nil then                      -- inside ms.autograd: join that tape
    self.output = run_f(self, x)
    self:record_input(x)
    return self.output
  end
  local tp = A.new_tape()
  if A.is_float(x) then tp:track(x, 'the input') end
  for _, p in ipairs(self._params) do tp:track(p.param) end
  local res = A.run('Function.forward', tp, run_f, self, x)
  if not res[1] then error(res[2], 0) end
  if res.leaked then check.fail('Function.forward: an op inside f failed and f went on (under pcall): the tape is incomplete') end
  local out = res[2]
  self._tape, self.output = tp, out
  self:record_input(x)
  return out
end

function Function:backward(x, g)
  self:_begin_backward(x, g)
  local tp = self._tape
  if tp == nil then
    check.fail('Function.backward: the last forward ran inside ms.autograd (its tape differentiates it); ' ..
               'call forward outside it first')
  end
  if #self._params > 0 then self:_ensure_arena('Function.backward') end
  tp:backward(self.output, g, true)
  for _, p in ipairs(self._params) do
    local gp = tp.grads[p.param]
    if gp ~= nil then p.grad:add_(gp) end
  end
  if self.input_grad == false or not A.is_float(x) then   -- (an integer input has none)
    self.gradInput = nil
    return nil
  end
  self.gradInput = tp.grads[x] or T.zeros_like(x)
  return self.gradInput
end

return Function
