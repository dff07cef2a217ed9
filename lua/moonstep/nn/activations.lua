-- nn.ReLU, nn.LeakyReLU(slope = 0.01), nn.Tanh, nn.Sigmoid, nn.GELU (exact, erf form):
-- elementwise, any shape; the gradients are fused C/CUDA ops (nn.functional).
local Module = require 'moonstep.nn.Module'
local F = require 'moonstep.nn.functional'
local C = require('moonstep.core').C

local M = {}

-- An activation whose gradient is computed from its input (from_output = false) or
-- from its output.
local function activation(name, forward, backward, from_output)
  local cls = Module:extend(name)
  function cls:forward(x)
    self.output = forward(self, x)
    return self.output
  end
  function cls:backward(x, gy)
    if from_output then
      if not self.output then self:forward(x) end
      self.gradInput = backward(self, self.output, gy)
    else
      self.gradInput = backward(self, x, gy)
    end
    return self.gradInput
  end
  M[name] = cls
  return cls
end

activation('ReLU', function(self, x) return F.unary_into(F.buffer(self, '_out', x:shape(), x), x, C.MS_RELU) end,
           function(self, x, g) return F.relu_backward(x, g, 0, F.buffer(self, '_gin', x:shape(), x)) end)
activation('GELU', function(_, x) return x:gelu() end,
           function(_, x, g) return F.gelu_backward(x, g) end)
activation('Tanh', function(_, x) return x:tanh() end,
           function(_, y, g) return F.tanh_backward(y, g) end, true)
activation('Sigmoid', function(_, x) return x:sigmoid() end,
           function(_, y, g) return F.sigmoid_backward(y, g) end, true)
local Leaky = activation('LeakyReLU', function(self, x) return x:leaky_relu(self.slope) end,
                         function(self, x, g) return F.leaky_relu_backward(x, g, self.slope) end)
function Leaky:__init(slope)
  Module.init(self)
  self.slope = slope or 0.01
end
function Leaky:extra_repr() return tostring(self.slope) end

return M
