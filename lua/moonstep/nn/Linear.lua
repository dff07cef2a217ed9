-- nn.Linear(in_features, out_features, bias = true) — y = x W^T + b.
--   x [N, in] (or [..., in]), W [out, in], b [out], y [N, out]
--   init as PyTorch: W, b ~ U(-1/sqrt(in), 1/sqrt(in)) (Kaiming-uniform with a = sqrt(5))
--   m.input_grad = false skips gx (a layer fed by data needs no gradient w.r.t. it)
local ms = require 'moonstep'
local Module = require 'moonstep.nn.Module'
local F = require 'moonstep.nn.functional'

local Linear = Module:extend('Linear')

function Linear:__init(nin, nout, bias)
  Module.init(self)
  for _, v in ipairs { nin, nout } do
    if type(v) ~= 'number' or v < 1 or v ~= math.floor(v) then
      error('Linear: expected (in_features, out_features) as positive integers', 3)
    end
  end
  self.in_features, self.out_features = nin, nout
  local bound = 1 / math.sqrt(nin)
  self:register_parameter('weight', ms.empty(nout, nin):uniform_(-bound, bound), 'weight')
  if bias ~= false then
    self:register_parameter('bias', ms.empty(nout):uniform_(-bound, bound), 'bias')
  end
end

function Linear:extra_repr()
  return ('%d -> %d%s'):format(self.in_features, self.out_features, self.bias and '' or ', no bias')
end

-- [..., in] -> [M, in] (a view when possible)
local function as_matrix(self, x, fn)
  local d = x:dim()
  if d < 1 or x:size(d) ~= self.in_features then
    error(('Linear.%s: input has shape [%s], expected [..., %d]'):format(fn,
      table.concat(x:shape(), ','), self.in_features), 3)
  end
  return d == 2 and x or x:reshape(-1, self.in_features)
end

function Linear:forward(x)
  local x2 = as_matrix(self, x, 'forward')
  local y = F.buffer(self, '_out', { x2:size(1), self.out_features }, x2)
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
  return y
end

function Linear:backward(x, gy)
  self:ensure_arena()
  local x2 = as_matrix(self, x, 'backward')
  local g2 = gy:dim() == 2 and gy or gy:reshape(-1, self.out_features)
  ms.matmul(g2, x2, { transpose_a = true, out = self.grad_weight, beta = 1 })  -- gW += g^T x
  if self.bias then self.grad_bias:add_(g2:sum(1)) end
  if self.input_grad == false then
    self.gradInput = nil
    return nil
  end
  local gx = F.buffer(self, '_gin', { g2:size(1), self.in_features }, g2)
  ms.matmul(g2, self.weight, { out = gx })                                   -- gx = g W
  self.gradInput = x:dim() == 2 and gx or gx:view(x:shape())
  return self.gradInput
end

return Linear
