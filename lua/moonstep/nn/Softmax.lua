-- nn.Softmax() and nn.LogSoftmax() over the last dim (the class dim of [N, C]).
--   softmax:     gx = y * (g - sum(g * y))        log-softmax: gx = g - exp(y) * sum(g)
local Module = require 'moonstep.nn.Module'

local M = {}

local function check_dim(name, dim)
  if dim ~= nil and dim ~= -1 and dim ~= 2 then
    error(('%s: dim %s is not supported; moonstep normalises over the last dim (-1)'):format(name, tostring(dim)), 4)
  end
end

M.Softmax = Module:extend('Softmax')
function M.Softmax:__init(dim) Module.init(self); check_dim('Softmax', dim) end
function M.Softmax:forward(x) self.output = x:softmax(); return self.output end
function M.Softmax:backward(x, g)
  local y = self.output or self:forward(x)
  local s = (g * y):sum(-1, true)
  self.gradInput = y * (g - s)
  return self.gradInput
end

M.LogSoftmax = Module:extend('LogSoftmax')
function M.LogSoftmax:__init(dim) Module.init(self); check_dim('LogSoftmax', dim) end
function M.LogSoftmax:forward(x) self.output = x:log_softmax(); return self.output end
function M.LogSoftmax:backward(x, g)
  local y = self.output or self:forward(x)
  self.gradInput = g - y:exp():mul_(g:sum(-1, true))
  return self.gradInput
end

return M
