-- nn.ReLU(), nn.LeakyReLU(negative_slope = 0.01), nn.Tanh(), nn.Sigmoid(),
-- nn.GELU(approximate = 'none') with approximate 'none' (the exact erf form) or 'tanh'
-- (0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as PyTorch); GELU{approximate=}
-- and GELU('tanh') both work. Elementwise, any shape, float input; one C/CUDA pass each
-- way (the gradients are fused ops, nn.functional), into the layer's output / gradInput
-- buffers (reused by the next call: no allocation per step). PyTorch's inplace = true is
-- refused (moonstep's layers keep their input for backward).
local Module = require 'moonstep.nn.Module'
local F = require 'moonstep.nn.functional'
local W = require 'moonstep.nn.window'
local check = require 'moonstep.check'
local C = require('moonstep.core').C

local M = {}

-- inplace (PyTorch's flag) may be given as false only.
local function no_inplace(name, v)
  if v ~= nil and v ~= false then
    check.fail('%s: inplace is %s, expected false (in-place activations are not supported)',
               name, check.describe(v))
  end
end

-- An activation whose gradient is computed from its input (from_output = false) or
-- from its output.
local function activation(name, forward, backward, from_output)
  local cls = Module:extend(name)
  function cls:__init(inplace, ...)
    Module.init(self)
    Module._check_arity(name, 1 + select('#', ...), 1, name .. '()')
    no_inplace(name, inplace)
  end
  function cls:forward(x)
    self:_begin_forward(x)
    self.output = forward(self, x)
    self:record_input(x)
    return self.output
  end
  function cls:backward(x, gy)
    self:_begin_backward(x, gy)
    if from_output then
      if check.is_freed(self.output) then
        check.fail('%s.backward: the output of the last forward was freed; it is needed for the gradient', name)
      end
      self.gradInput = backward(self, self.output, gy)
    else
      self.gradInput = backward(self, x, gy)
    end
    return self.gradInput
  end
  M[name] = cls
  return cls
end

-- The layer's output / gradInput buffer for x (name: the method, for errors).
local function out_buf(self, x, name) return W.buffer(self, '_out', x:shape(), x, name) end
local function gin_buf(self, x, name) return W.buffer(self, '_gin', x:shape(), x, name) end

activation('ReLU', function(self, x) return F.unary_into(out_buf(self, x, 'ReLU.forward'), x, C.MS_RELU) end,
           function(self, x, g) return F.relu_backward(x, g, 0, gin_buf(self, x, 'ReLU.backward')) end)
activation('Tanh', function(self, x) return F.unary_into(out_buf(self, x, 'Tanh.forward'), x, C.MS_TANH) end,
           function(self, y, g) return F.tanh_backward(y, g, 0, gin_buf(self, y, 'Tanh.backward')) end, true)
activation('Sigmoid', function(self, x) return F.unary_into(out_buf(self, x, 'Sigmoid.forward'), x, C.MS_SIGMOID) end,
           function(self, y, g) return F.sigmoid_backward(y, g, 0, gin_buf(self, y, 'Sigmoid.backward')) end, true)

-- LeakyReLU --------------------------------------------------------------------------
local Leaky = activation('LeakyReLU',
  function(self, x) return F.unary_into(out_buf(self, x, 'LeakyReLU.forward'), x, C.MS_LEAKY_RELU, self.slope) end,
  function(self, x, g) return F.leaky_relu_backward(x, g, self.slope, gin_buf(self, x, 'LeakyReLU.backward')) end)
function Leaky:__init(slope, inplace, ...)
  Module.init(self)
  Module._check_arity('LeakyReLU', 2 + select('#', ...), 2, 'LeakyReLU([negative_slope = 0.01])')
  if type(slope) == 'table' then
    local o = check.options('LeakyReLU', slope, { 'negative_slope', 'inplace' })
    slope, inplace = o.negative_slope, o.inplace
  end
  self.slope = check.number('LeakyReLU', 'negative_slope', slope == nil and 0.01 or slope)
  no_inplace('LeakyReLU', inplace)
end
function Leaky:extra_repr() return ('negative_slope=%g'):format(self.slope) end

-- GELU ---------------------------------------------------------------------------------
-- Both forms: fused elementwise ops of the runtime (x -> y, and (x, g) -> gx).
local GELU = activation('GELU',
  function(self, x)
    return F.unary_into(out_buf(self, x, 'GELU.forward'), x,
                        self.approximate == 'tanh' and C.MS_GELU_TANH or C.MS_GELU)
  end,
  function(self, x, g)
    local out = gin_buf(self, x, 'GELU.backward')
    if self.approximate == 'tanh' then return F.binary_into(out, x, g, C.MS_GELU_TANH_BACKWARD, 0) end
    return F.gelu_backward(x, g, 0, out)
  end)
function GELU:__init(approximate, ...)
  Module.init(self)
  Module._check_arity('GELU', 1 + select('#', ...), 1, "GELU([approximate = 'none'])")
  if type(approximate) == 'table' then
    approximate = check.options('GELU', approximate, { 'approximate' }).approximate
  end
  self.approximate = check.oneof('GELU', 'approximate', approximate or 'none', { 'none', 'tanh' })
end
function GELU:extra_repr() return self.approximate == 'tanh' and "approximate='tanh'" or '' end

return M
