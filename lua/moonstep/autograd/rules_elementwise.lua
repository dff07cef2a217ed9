-- moonstep.autograd.rules_elementwise — gradient rules of the elementwise ops (see
-- autograd/tape.lua for the rule protocol). n.args are the op's arguments as called;
-- a gradient of the broadcast output shape is summed back by tp:acc.
local A = require 'moonstep.autograd.tape'
local rule = A.rule

-- a + alpha * b, a - alpha * b (b a tensor or a number)
rule('add', function(n, g, tp)
  local a, b, alpha = n.args[1], n.args[2], n.args[3] or 1
  tp:acc(a, g)
  if tp:need(b) then tp:acc(b, alpha == 1 and g or g:mul(alpha)) end
end)
rule('sub', function(n, g, tp)
  local a, b, alpha = n.args[1], n.args[2], n.args[3] or 1
  tp:acc(a, g)
  if tp:need(b) then tp:acc(b, g:mul(-alpha)) end
end)
rule('mul', function(n, g, tp)
  local a, b = n.args[1], n.args[2]
  if tp:need(a) then tp:acc(a, g:mul(b)) end
  if tp:need(b) then tp:acc(b, g:mul(a)) end
end)

-- The metamethods' scalar-left forms: args (name, number a, tensor b).
rule('radd', function(n, g, tp) tp:acc(n.args[3], g) end)
rule('rsub', function(n, g, tp) tp:acc(n.args[3], g:neg()) end)
rule('rmul', function(n, g, tp) tp:acc(n.args[3], g:mul(n.args[2])) end)

A.mark_nondiff('eq', 'ne', 'lt', 'le', 'gt', 'ge', 'sign')
