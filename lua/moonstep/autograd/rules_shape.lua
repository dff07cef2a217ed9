-- moonstep.autograd.rules_shape — gradient rules of views, copies, conversions and
-- indexing (see autograd/tape.lua for the rule protocol). A view's gradient is the
-- gradient of the base in the view's layout, made with out-of-place ops.
local A = require 'moonstep.autograd.tape'
local rule = A.rule

-- view(...) / reshape(...): the gradient reshaped back.
local function reshape_back(n, g, tp)
  local x = n.args[1]
  tp:acc(x, g:reshape(x:shape()))
end
rule('view', reshape_back)
rule('reshape', reshape_back)

A.mark_nondiff('zeros_like', 'ones_like', 'empty_like', 'argmax', 'argmin')
