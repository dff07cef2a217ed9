-- nn.Sequential(m1, m2, ...) — applies its children in order; builds the model's
-- parameter arena once, when composed.
--   forward(x):      x -> m1 -> m2 -> ...        (each child's input is kept for backward)
--   backward(x, gy): gradients flow back through the children in reverse order
--   m.input_grad = false: no gradient w.r.t. x itself (the first child skips it, as
--       PyTorch does for data that does not require grad); backward then returns nil
local Module = require 'moonstep.nn.Module'

local Sequential = Module:extend('Sequential')

function Sequential:__init(...)
  Module.init(self)
  for i = 1, select('#', ...) do
    local m = select(i, ...)
    if type(m) ~= 'table' or not m.forward then
      error(('Sequential: argument %d is a %s, expected a module'):format(i, type(m)), 3)
    end
    self:add(m)
  end
  self:build_arena()
end

function Sequential:forward(x)
  self.inputs = { x }
  for i, m in ipairs(self.modules) do
    x = m:forward(x)
    self.inputs[i + 1] = x
  end
  self.output = x
  return x
end

function Sequential:backward(x, gy)
  if not self.inputs or self.inputs[1] ~= x then self:forward(x) end
  local first = self.modules[1]
  if first then first.input_grad = self.input_grad end
  for i = #self.modules, 1, -1 do
    gy = self.modules[i]:backward(self.inputs[i], gy)
    if gy == nil and i > 1 then
      error(('Sequential: module %d (%s) returned no gradInput'):format(i, self.modules[i].__name), 2)
    end
  end
  self.gradInput = gy
  return gy
end

return Sequential
