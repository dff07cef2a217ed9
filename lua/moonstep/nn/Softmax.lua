-- nn.Softmax(dim = -1) and nn.LogSoftmax(dim = -1): normalise over one dim of any
-- input. Dims are 1-based as everywhere in moonstep (nn.Softmax(2) on [N, C, L] is
-- PyTorch's nn.Softmax(dim=1)); negative dims count from the end (-1 = the last).
-- Without a dim moonstep takes the last one (PyTorch's implicit-dim rule is
-- deprecated there; pass dim explicitly to port code).
--   softmax:     gx = y * (g - sum_d(g * y))        log-softmax: gx = g - exp(y) * sum_d(g)
local Module = require 'moonstep.nn.Module'
local check = require 'moonstep.check'

local M = {}

local function make(name, log_)
  local cls = Module:extend(name)

  function cls:__init(dim, ...)
    Module.init(self)
    Module._check_arity(name, 1 + select('#', ...), 1, name .. '([dim = -1])')
    if type(dim) == 'table' then dim = check.options(name, dim, { 'dim' }).dim end
    if dim == nil then dim = -1 end
    check.integer(name, 'dim', dim, -8, 8)
    if dim == 0 then
      check.fail('%s: dim is 0, expected a 1-based dim (1 is the first, -1 the last)', name)
    end
    self.dim = dim
  end

  function cls:extra_repr() return ('dim=%d'):format(self.dim) end

  -- The dim of x to normalise (1-based), or an error naming the input's shape.
  local function resolve(self, x, fn)
    local n = x:dim()
    local d = self.dim < 0 and math.max(n, 1) + self.dim + 1 or self.dim
    if d < 1 or d > math.max(n, 1) then
      check.fail('%s: dim %d is out of range for input of shape [%s] (%d dims)', fn, self.dim,
                 table.concat(x:shape(), ','), n)
    end
    return d, n
  end

  function cls:forward(x)
    self:_begin_forward(x)
    local d, n = resolve(self, x, name .. '.forward')
    local y
    if x:numel() == 0 then
      y = x:clone()                                             -- nothing to normalise
    elseif n == 0 then
      y = x:view(1)
      y = (log_ == 1 and y:log_softmax() or y:softmax()):view(x:shape())
    elseif d == n then
      y = log_ == 1 and x:log_softmax() or x:softmax()          -- the kernel's own layout
    else
      local xt = x:transpose(d, n)                              -- dim d last, then back
      y = (log_ == 1 and xt:log_softmax() or xt:softmax()):transpose(d, n):contiguous()
    end
    self.d = d
    self.output = y
    self:record_input(x)
    return y
  end

  function cls:backward(x, g)
    self:_begin_backward(x, g)
    local y, d = self.output, self.d
    if check.is_freed(y) then
      check.fail('%s.backward: the output of the last forward was freed; it is needed for the gradient', name)
    end
    if x:dim() == 0 or x:numel() == 0 then
      self.gradInput = g:mul(0)                                 -- a constant output (or none)
    elseif log_ == 1 then
      self.gradInput = g - y:exp():mul_(g:sum(d, true))
    else
      self.gradInput = y * (g - (g * y):sum(d, true))
    end
    return self.gradInput
  end

  M[name] = cls
end

make('Softmax', 0)
make('LogSoftmax', 1)

return M
