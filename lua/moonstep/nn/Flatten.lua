-- nn.Flatten(start_dim = 2, end_dim = -1) — merges dims start_dim..end_dim (1-based,
-- negative from the end; PyTorch's default start_dim=1 is moonstep's 2):
-- [N, d1, d2, ...] -> [N, d1*d2*...] by default (a view when contiguous).
local Module = require 'moonstep.nn.Module'
local check = require 'moonstep.check'

local Flatten = Module:extend('Flatten')

function Flatten:__init(start_dim, end_dim, ...)
  Module.init(self)
  Module._check_arity('Flatten', 2 + select('#', ...), 2, 'Flatten([start_dim = 2, end_dim = -1])')
  if type(start_dim) == 'table' then
    if end_dim ~= nil then check.fail('Flatten: an options table must be the last argument') end
    local o = check.options('Flatten', start_dim, { 'start_dim', 'end_dim' })
    start_dim, end_dim = o.start_dim, o.end_dim
  end
  self.start_dim = check.integer('Flatten', 'start_dim', start_dim == nil and 2 or start_dim, -8, 8)
  self.end_dim = check.integer('Flatten', 'end_dim', end_dim == nil and -1 or end_dim, -8, 8)
  for _, k in ipairs { 'start_dim', 'end_dim' } do
    if self[k] == 0 then check.fail('Flatten: %s is 0, expected a 1-based dim (-1 is the last)', k) end
  end
  if (self.start_dim > 0) == (self.end_dim > 0) and self.start_dim > self.end_dim then
    check.fail('Flatten: start_dim %d comes after end_dim %d', self.start_dim, self.end_dim)
  end
end

function Flatten:extra_repr()
  if self.start_dim == 2 and self.end_dim == -1 then return '' end
  return ('start_dim=%d, end_dim=%d'):format(self.start_dim, self.end_dim)
end

function Flatten:forward(x)
  self:_begin_forward(x, 'any')
  local shape, n = x:shape(), x:dim()
  local nd = math.max(n, 1)
  local s = self.start_dim < 0 and nd + self.start_dim + 1 or self.start_dim
  local e = self.end_dim < 0 and nd + self.end_dim + 1 or self.end_dim
  if s < 1 or s > nd or e < 1 or e > nd or s > e then
    check.fail('Flatten.forward: dims %d..%d do not fit input of shape [%s] (%d dims)',
               self.start_dim, self.end_dim, table.concat(shape, ','), n)
  end
  local out = {}
  for d = 1, s - 1 do out[#out + 1] = shape[d] end
  local p = 1
  for d = s, math.min(e, n) do p = p * shape[d] end
  out[#out + 1] = p
  for d = e + 1, n do out[#out + 1] = shape[d] end
  self.output = x:reshape(out)
  self:record_input(x)
  return self.output
end

function Flatten:backward(x, g)
  self:_begin_backward(x, g)
  self.gradInput = g:reshape(x:shape())
  return self.gradInput
end

return Flatten
