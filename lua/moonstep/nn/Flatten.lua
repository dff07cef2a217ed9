-- nn.Flatten() — [N, d1, d2, ...] -> [N, d1*d2*...] (a view when contiguous).
local Module = require 'moonstep.nn.Module'

local Flatten = Module:extend('Flatten')

function Flatten:forward(x)
  self.output = x:reshape(x:size(1), -1)
  return self.output
end

function Flatten:backward(x, g)
  self.gradInput = g:reshape(x:shape())
  return self.gradInput
end

return Flatten
