-- moonstep.autograd.rules_nn — gradient rules of the nn functional forms
-- (ms.nn.functional.linear, conv2d, pooling, cross_entropy, mse_loss; see
-- autograd/tape.lua for the rule protocol).
local A = require 'moonstep.autograd.tape'
local rule = A.rule

return A
