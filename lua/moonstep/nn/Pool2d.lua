-- nn.MaxPool2d(kernel, {stride=kernel, padding=0}) and nn.AvgPool2d(kernel, {...}):
--   x [N, C, H, W] -> y [N, C, OH, OW], OH = (H + 2 pad - k) / stride + 1.
--   Max: a dedicated kernel keeps the position of each window's first maximum (padding
--   never wins) and routes the gradient there. Avg: the mean of each window with
--   padding counted as zeros (PyTorch's default count_include_pad), through im2col
--   on the planes ([k*k, N*C*L]), the gradient spread evenly by col2im.
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

  local function check(x)
    if x:dim() ~= 4 then
      error(('%s.forward: input has shape [%s], expected [N, C, H, W]'):format(name, table.concat(x:shape(), ',')), 3)
    end
  end

  if is_max then
    function Pool:forward(x)
      check(x)
      self.output, self.argmax = F.maxpool2d(x:contiguous(), self.k, self.stride, self.pad)
      return self.output
    end
    function Pool:backward(x, g)
      if not self.argmax then self:forward(x) end
      self.gradInput = F.maxpool2d_backward(g:contiguous(), self.argmax, x:shape())
      return self.gradInput
    end
  else
    function Pool:forward(x)
      check(x)
      local n, c, h, w = x:size(1), x:size(2), x:size(3), x:size(4)
      local cols, oh, ow = F.im2col(x:contiguous():view(n * c, 1, h, w), self.k, self.k,
                                    self.stride, self.stride, self.pad, self.pad, 0)
      self.output = cols:mean(1):view(n, c, oh, ow)
      return self.output
    end
    function Pool:backward(x, g)
      local n, c, h, w = x:size(1), x:size(2), x:size(3), x:size(4)
      local kk = self.k * self.k
      local gcols = (g:contiguous():view(1, -1) / kk):expand(kk, g:numel()):contiguous()
      local gx = F.col2im(gcols, { n * c, 1, h, w }, self.k, self.k, self.stride, self.stride, self.pad, self.pad)
      self.gradInput = gx:view(n, c, h, w)
      return self.gradInput
    end
  end

  return Pool
end

return { MaxPool2d = make('MaxPool2d', true), AvgPool2d = make('AvgPool2d', false) }
