-- nn.Linear(in_features, out_features, bias = true) — y = x W^T + b.
--   x [N, in] (or [..., in]), W [out, in], b [out], y [N, out]
--   bias: true/false, or an options table { bias = false }
--   init as PyTorch: W, b ~ U(-1/sqrt(in), 1/sqrt(in)) (Kaiming-uniform with a = sqrt(5))
--   m.input_grad = false skips gx (a layer fed by data needs no gradient w.r.t. it)
local ms = require 'moonstep'
local Module = require 'moonstep.nn.Module'
local F = require 'moonstep.nn.functional'
local W = require 'moonstep.nn.window'
local check = require 'moonstep.check'
local core = require 'moonstep.core'
local C = core.C

local Linear = Module:extend('Linear')

local USAGE = 'Linear(in_features, out_features [, bias = true])'

function Linear:__init(nin, nout, bias, ...)
  Module.init(self)
  Module._check_arity('Linear', 3 + select('#', ...), 3, USAGE)
  if nout == nil then
    check.fail('Linear: out_features is missing, expected %s', USAGE)
  end
  check.integer('Linear', 'in_features', nin, 1)
  check.integer('Linear', 'out_features', nout, 1)
  if type(bias) == 'table' and not ms.is_tensor(bias) then
    bias = check.options('Linear', bias, { 'bias' }).bias
  end
  if bias == nil then bias = true end
  check.boolean('Linear', 'bias', bias)
  self.in_features, self.out_features = nin, nout
  local bound = 1 / math.sqrt(nin)
  self:register_parameter('weight', Module._alloc('Linear', ms.empty, nout, nin):uniform_(-bound, bound), 'weight')
  if bias then
    self:register_parameter('bias', Module._alloc('Linear', ms.empty, nout):uniform_(-bound, bound), 'bias')
  end
end

function Linear:extra_repr()
  return ('%d -> %d%s'):format(self.in_features, self.out_features, self.bias and '' or ', no bias')
end

-- [..., in] -> [M, in] (a view when possible)
local function as_matrix(self, x, fn)
  local d = x:dim()
  if d < 1 or x:size(d) ~= self.in_features then
    check.fail('Linear.%s: input has shape [%s], expected [..., %d]', fn,
               table.concat(x:shape(), ','), self.in_features)
  end
  return d == 2 and x or x:reshape(-1, self.in_features)
end

function Linear:forward(x)
  self:_begin_forward(x)
  Module._check_float('Linear.forward', 'input', x, self.weight)
  local x2 = as_matrix(self, x, 'forward')
  local y = W.buffer(self, '_out', { x2:size(1), self.out_features }, x2, 'Linear.forward')
  if self.bias then
    -- y = b (broadcast rows), then y += x W^T inside the GEMM (beta = 1)
    y:copy_(self.bias)
    ms.matmul(x2, self.weight, { transpose_b = true, out = y, beta = 1 })
  else
    ms.matmul(x2, self.weight, { transpose_b = true, out = y })
  end
  if x:dim() ~= 2 then
    local shape = x:shape()
    shape[#shape] = self.out_features
    y = y:view(shape)
  end
  self.output = y
  self:record_input(x)
  return y
end

function Linear:backward(x, gy)
  self:_begin_backward(x, gy)
  self:_ensure_arena(self.__name .. '.backward')
  local x2 = as_matrix(self, x, 'backward')
  local g2 = gy:dim() == 2 and gy or gy:reshape(-1, self.out_features)
  ms.matmul(g2, x2, { transpose_a = true, out = self.grad_weight, beta = 1 })  -- gW += g^T x
  if self.bias then                                                          -- gb += sum of g's rows
    if C.ms_bias_grad(self.grad_bias, g2, 1) ~= 0 then core.fail('Linear.backward') end
  end
  if self.input_grad == false then
    self.gradInput = nil
    return nil
  end
  local gx = W.buffer(self, '_gin', { g2:size(1), self.in_features }, g2, 'Linear.backward')
  ms.matmul(g2, self.weight, { out = gx })                                   -- gx = g W
  self.gradInput = x:dim() == 2 and gx or gx:view(x:shape())
  return self.gradInput
end

return Linear
