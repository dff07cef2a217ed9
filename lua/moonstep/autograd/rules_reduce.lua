-- moonstep.autograd.rules_reduce — gradient rules of the reductions (see autograd/tape.lua
-- for the rule protocol). On the tape a reduction over all elements returns a 0-d tensor
-- (its forward), never a Lua number: the number would leave the tape.
local A = require 'moonstep.autograd.tape'
local rule = A.rule

-- A reduction's gradient g (dims removed unless keepdim) back to the input's shape.
local function expand_back(g, x, dim, keepdim)
  if dim == nil then return g:reshape(1):expand(x:shape()) end
  local d = dim < 0 and x:dim() + 1 + dim or dim
  if not keepdim then g = g:unsqueeze(d) end
  return g:expand(x:shape())
end
A.expand_back = expand_back

-- Over all elements: raw over the flattened tensor's one dim gives a 0-d tensor.
local function whole(raw, t, dim, ...)
  if dim == nil then return raw(t:reshape(-1), 1, ...) end
  return raw(t, dim, ...)
end
A.whole_reduction = whole

rule('sum', function(n, g, tp)
  local x = n.args[1]
  tp:acc(x, expand_back(g, x, n.args[2], n.args[3]))
end, { forward = whole })
