-- moonstep.autograd.rules_linalg — gradient rules of ms.linalg (see autograd/tape.lua for
-- the rule protocol). eigh has none (an error on a tracked tensor).
local A = require 'moonstep.autograd.tape'

-- x = solve(a, b): gb = a^-T g (solve(a^T, g)), ga = -gb x^T.
A.rule('solve', function(n, g, tp)
  local a, b, x = n.args[1], n.args[2], n.out
  local linalg = require 'moonstep.linalg'
  local gb = linalg.solve(a:t():contiguous(), g)
  tp:acc(b, gb)
  if tp:need(a) then
    if gb:dim() == 1 then
      tp:acc(a, gb:view(-1, 1):mul(x:view(1, -1)):neg())
    else
      tp:acc(a, gb:matmul(x, { transpose_b = true }):neg())
    end
  end
end)
