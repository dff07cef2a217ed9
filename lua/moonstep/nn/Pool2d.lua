-- nn.MaxPool2d(kernel_size, stride = kernel_size, padding = 0, dilation = 1,
--              return_indices = false, ceil_mode = false)
-- nn.AvgPool2d(kernel_size, stride = kernel_size, padding = 0, ceil_mode = false,
--              count_include_pad = true, divisor_override = nil)
--   PyTorch's signatures, positionally and/or with a trailing options table; sizes are a
--   number or {h, w}. x [N, C, H, W] (or [C, H, W]) -> y [N, C, OH, OW],
--   OH = floor((H + 2 pad - dilation*(k-1) - 1) / stride) + 1, or the ceiling with
--   ceil_mode, less one if the last window would start past the input and its top
--   padding (PyTorch's rule). padding <= kernel_size / 2 (rounded down), as PyTorch.
--   Max: each window's first maximum (padding never wins; NaN does), the gradient
--   routed there; return_indices = true makes forward return (output, indices), the
--   indices 1-based positions h*W + w + 1 in each input plane (int64).
--   Avg: each window's sum over divisor_override if given, else over its size cut at
--   the end of the padding (count_include_pad) or over its input elements only.
local Module = require 'moonstep.nn.Module'
local W = require 'moonstep.nn.window'
local check = require 'moonstep.check'

local hw, pool_geom = W.hw, W.pool_geom

local function make(name, names, usage, init, run, back, repr)
  local Pool = Module:extend(name)

  function Pool:__init(kernel, ...)
    Module.init(self)
    if kernel == nil then check.fail('%s: kernel_size is missing, expected %s', name, usage) end
    local a = W.gather_args(name, names, usage, ...)
    self._geom = pool_geom(name, kernel, a)
    local g = self._geom
    self.kernel_size, self.stride, self.padding = hw(g.kh, g.kw), hw(g.sh, g.sw), hw(g.pt, g.pl)
    self.k, self.pad = g.kh, g.pt   -- older names
    self.ceil_mode = g.ceil
    init(self, a)
  end

  function Pool:extra_repr()
    local g = self._geom
    local s = ('%s, stride %s, padding %s'):format(hw(g.kh, g.kw), hw(g.sh, g.sw), hw(g.pt, g.pl))
    if g.dh ~= 1 or g.dw ~= 1 then s = s .. ', dilation ' .. hw(g.dh, g.dw) end
    if g.ceil then s = s .. ', ceil_mode' end
    return s .. repr(self)
  end

  function Pool:forward(x)
    local fn = name .. '.forward'
    self:_begin_forward(x)
    local x4 = W.as_batch(fn, x, nil)
    local win, oh, ow = W.window(fn, self._geom, x4:size(3), x4:size(4))
    local n, c = x4:size(1), x4:size(2)
    local out, extra = run(self, fn, x4, win, W.buffer(self, '_out', { n, c, oh, ow }, x4, fn))
    self._win = win
    if x:dim() == 3 then
      out = out:view(c, oh, ow)
      if extra then extra = extra:view(c, oh, ow) end
    end
    self.output = out
    self:record_input(x)
    if extra then return out, extra end
    return out
  end

  function Pool:backward(x, g)
    local fn = name .. '.backward'
    self:_begin_backward(x, g)
    local x4shape = x:dim() == 3 and { 1, x:size(1), x:size(2), x:size(3) } or x:shape()
    local gc = W.pool_grad(g, x4shape)
    local gin = back(self, fn, gc, self._win, W.buffer(self, '_gin', x4shape, gc, fn))
    self.gradInput = gin:view(x:shape())
    return self.gradInput
  end

  return Pool
end

local MAX_NAMES = { 'stride', 'padding', 'dilation', 'return_indices', 'ceil_mode' }
local MaxPool2d = make('MaxPool2d', MAX_NAMES,
  'MaxPool2d(kernel_size [, stride, padding, dilation, return_indices, ceil_mode] [, {options}])',
  function(self, a)
    local ri = a.return_indices
    if ri == nil then ri = false end
    self.return_indices = check.boolean('MaxPool2d', 'return_indices', ri)
  end,
  function(self, fn, x, win, out)
    local argmax = W.buffer(self, '_argmax', out:shape(), { dtype = 'int64', device = x.device }, fn)
    W.maxpool2d(fn, x, win, out, argmax)
    self.argmax = argmax
    if self.return_indices then return out, argmax:to('float64'):add(1):to('int64') end
    return out
  end,
  function(self, fn, g, win, gin)
    return W.maxpool2d_backward(fn, g, self.argmax, gin)
  end,
  function(self) return self.return_indices and ', return_indices' or '' end)

local AVG_NAMES = { 'stride', 'padding', 'ceil_mode', 'count_include_pad', 'divisor_override' }
local AvgPool2d = make('AvgPool2d', AVG_NAMES,
  'AvgPool2d(kernel_size [, stride, padding, ceil_mode, count_include_pad, divisor_override] [, {options}])',
  function(self, a)
    local cip = a.count_include_pad
    if cip == nil then cip = true end
    self.count_include_pad = check.boolean('AvgPool2d', 'count_include_pad', cip)
    local d = a.divisor_override
    if d ~= nil then
      check.integer('AvgPool2d', 'divisor_override', d, -W.MAX, W.MAX)
      if d == 0 then check.fail('AvgPool2d: divisor_override is 0, expected a non-zero integer (or nil)') end
    end
    self.divisor_override = d
  end,
  function(self, fn, x, win, out)
    return W.avgpool2d(fn, x, win, self.count_include_pad, self.divisor_override, out)
  end,
  function(self, fn, g, win, gin)
    return W.avgpool2d_backward(fn, g, win, self.count_include_pad, self.divisor_override, gin)
  end,
  function(self)
    local s = self.count_include_pad and '' or ', count_include_pad false'
    if self.divisor_override then s = s .. ', divisor ' .. self.divisor_override end
    return s
  end)

return { MaxPool2d = MaxPool2d, AvgPool2d = AvgPool2d }
