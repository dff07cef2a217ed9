-- nn.MaxPool2d(kernel, {stride=kernel, padding=0}) and nn.AvgPool2d(kernel, {...}):
--   x [N, C, H, W] -> y [N, C, OH, OW]. Both lower each plane to windows with im2col:
--   [N*C, k*k, OH*OW]; max takes the max of each window (padding counts as -inf) and
--   routes the gradient to its first maximum; avg takes the mean (padding counts as
--   zeros, count_include_pad as PyTorch's default) and spreads the gradient evenly.
local ms = require 'moonstep'
local Module = require 'moonstep.nn.Module'
local F = require 'moonstep.nn.functional'

local function make(name, is_max)
  local Pool = Module:extend(name)

  function Pool:__init(kernel, opts)
    Module.init(self)
    opts = opts or {}
    if type(kernel) ~= 'number' or kernel < 1 then error(name .. ': expected a kernel size >= 1', 3) end
    self.k, self.stride, self.pad = kernel, opts.stride or kernel, opts.padding or 0
    if self.pad * 2 > self.k then error(name .. ': padding must be at most half the kernel', 3) end
  end

  function Pool:extra_repr() return ('%d, stride %d, padding %d'):format(self.k, self.stride, self.pad) end

  function Pool:forward(x)
    if x:dim() ~= 4 then
      error(('%s.forward: input has shape [%s], expected [N, C, H, W]'):format(name, table.concat(x:shape(), ',')), 2)
    end
    local n, c, h, w = x:size(1), x:size(2), x:size(3), x:size(4)
    local planes = x:contiguous():view(n * c, 1, h, w)
    local cols, oh, ow = F.im2col(planes, self.k, self.k, self.stride, self.stride, self.pad, self.pad,
                                  is_max and -math.huge or 0)
    local y
    if is_max then
      y, self.argmax = cols:max(2, true)                        -- [N*C, 1, L], 1-based
    else
      y = cols:mean(2, true)
    end
    self.out_hw = { oh, ow }
    self.output = y:view(n, c, oh, ow)
    return self.output
  end

  function Pool:backward(x, g)
    if not self.out_hw then self:forward(x) end
    local n, c, h, w = x:size(1), x:size(2), x:size(3), x:size(4)
    local kk, L = self.k * self.k, self.out_hw[1] * self.out_hw[2]
    local g3 = g:contiguous():view(n * c, 1, L)
    local gcols
    if is_max then
      local ids = ms.arange(1, kk + 1, { dtype = g.dtype, device = g.device }):view(1, kk, 1)
      gcols = self.argmax:to(g.dtype):eq(ids):mul_(g3)            -- [N*C, k*k, L]
    else
      gcols = (g3 / kk):expand(n * c, kk, L):contiguous()
    end
    local gx = F.col2im(gcols, { n * c, 1, h, w }, self.k, self.k, self.stride, self.stride, self.pad, self.pad)
    self.gradInput = gx:view(n, c, h, w)
    return self.gradInput
  end

  return Pool
end

return { MaxPool2d = make('MaxPool2d', true), AvgPool2d = make('AvgPool2d', false) }
