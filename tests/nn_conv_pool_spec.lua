-- Conv2d, MaxPool2d and AvgPool2d: every PyTorch option against PyTorch (fixtures by
-- scripts/fixtures/conv_pool.py, float64 and float32), finite-difference gradients for
-- the options, and the errors of bad arguments, bad geometry and misuse.
local ms = require 'moonstep'
local nn = ms.nn
local H = require 'helper'
local G = require 'gradcheck'
local fx = dofile('tests/fixtures/torch_conv_pool.lua')

local function build(ctor)
  local f = assert(loadstring('local nn = ...; return nn.' .. ctor))
  return f(nn)
end

local function names(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- Run case c with dtype (on device): forward, backward, compare all PyTorch recorded.
local function check_case(c, dtype, tol, device)
  local m = build(c.ctor):to(dtype)
  if device then m:to(device) end
  local function t(v) return ms.tensor(v, { dtype = dtype, device = device or 'cpu' }) end
  for _, p in ipairs { 'weight', 'bias' } do
    if c[p] then m[p]:copy_(t(c[p])) end
  end
  m:zero_grad()
  local x = t(c.input)
  local y, idx = m:forward(x)
  H.assert_close(y, c.output, tol, c.ctor .. ': output')
  if c.indices then
    assert.are.equal('int64', idx.dtype)
    H.assert_close(idx, c.indices, 0, c.ctor .. ': indices')
  end
  local gx = m:backward(x, t(c.grad_output))
  H.assert_close(gx, c.grad_input, tol, c.ctor .. ': grad_input')
  for _, p in ipairs { 'weight', 'bias' } do
    if c['grad_' .. p] then H.assert_close(m['grad_' .. p], c['grad_' .. p], tol, c.ctor .. ': grad_' .. p) end
  end
end

describe('Conv2d and pooling against PyTorch', function()
  for _, name in ipairs(names(fx)) do
    local c = fx[name]
    it(name .. ': ' .. c.ctor .. ' (float64)', function() check_case(c, 'float64', 1e-12) end)
    it(name .. ': ' .. c.ctor .. ' (float32)', function() check_case(c, 'float32', 2e-5) end)
  end

  it('a second forward with another input size reuses nothing stale', function()
    local m = build(fx.reflect.ctor):double()
    m:forward(ms.randn(1, 2, 7, 8, 'float64'))
    check_case(fx.reflect, 'float64', 1e-12)
  end)
end)

local gpu = ms.cuda.is_available()
describe('Conv2d and pooling on CUDA against PyTorch (float32)', function()
  for _, name in ipairs(names(fx)) do
    local c = fx[name]
    if gpu then
      it(name .. ': ' .. c.ctor, function() check_case(c, 'float32', 1e-4, 'cuda') end)
    else
      pending(name .. ' (no usable GPU)')
    end
  end
end)

describe('Conv2d and pooling: finite differences (float64)', function()
  local function input(shape) return ms.randn(shape, { dtype = 'float64' }) end
  local function conv(...) return nn.Conv2d(...):double() end
  it('dilation, groups and tuple sizes', function()
    G.check_module(conv(4, 6, { 3, 2 }, { dilation = { 2, 1 }, groups = 2, padding = 1 }), input { 2, 4, 6, 5 })
    G.check_module(conv(3, 3, 3, 2, 1, 1, 3), input { 1, 3, 6, 7 })
  end)
  it("padding 'same' with even kernels", function()
    G.check_module(conv(2, 3, { 4, 2 }, { padding = 'same', dilation = { 1, 3 } }), input { 1, 2, 5, 7 })
  end)
  for _, mode in ipairs { 'reflect', 'replicate', 'circular' } do
    it('padding_mode ' .. mode, function()
      G.check_module(conv(2, 2, 3, { padding = { 2, 1 }, padding_mode = mode, stride = { 1, 2 } }), input { 2, 2, 4, 5 })
      G.check_module(conv(2, 2, 4, { padding = 'same', padding_mode = mode }), input { 1, 2, 5, 4 })
    end)
  end
  it('max pooling with dilation and ceil_mode', function()
    G.check_module(nn.MaxPool2d(3, { stride = 2, padding = 1, dilation = 2, ceil_mode = true }), input { 2, 2, 7, 6 })
  end)
  it('average pooling with ceil_mode, count_include_pad and divisor_override', function()
    G.check_module(nn.AvgPool2d(3, 2, 1, true, false), input { 1, 2, 6, 7 })
    G.check_module(nn.AvgPool2d(3, 2, 1, true, true), input { 1, 2, 6, 7 })
    G.check_module(nn.AvgPool2d({ 2, 3 }, { padding = { 1, 1 }, divisor_override = 5, ceil_mode = true }), input { 1, 2, 5, 5 })
  end)
  it('unbatched [C, H, W] inputs', function()
    G.check_module(conv(2, 3, 3, 1, 1), input { 2, 4, 5 })
    G.check_module(nn.MaxPool2d(2, 1), input { 2, 4, 5 })
    G.check_module(nn.AvgPool2d(2, 1, 1), input { 2, 4, 5 })
  end)
end)

describe('Conv2d and pooling: arguments', function()
  it('PyTorch positional order, options table, both (not twice)', function()
    local m = nn.Conv2d(1, 8, 3, 1, 1)
    assert.are.same({ 1, 8, 5, 5 }, m:forward(ms.zeros(1, 1, 5, 5)):shape())
    m = nn.Conv2d(4, 8, 3, 2, { groups = 2, bias = false })
    assert.are.same({ 8, 2, 3, 3 }, m.weight:shape())
    assert.is_nil(m.bias)
    H.assert_error(function() nn.Conv2d(4, 8, 3, 2, { stride = 1 }) end, 'Conv2d', 'stride', 'both')
    H.assert_error(function() nn.Conv2d(1, 1, 3, 1, 0, 1, 1, true, 'zeros', 7) end, 'Conv2d', 'at most 6')
    H.assert_error(function() nn.MaxPool2d(2, 2, 0, 1, false, false, 9) end, 'MaxPool2d', 'at most 5')
  end)

  it('init as PyTorch: bound 1/sqrt(C/groups*kh*kw)', function()
    local m = nn.Conv2d(8, 4, 3, { groups = 4 })
    local bound = 1 / math.sqrt(2 * 9)
    assert.is_true(m.weight:abs():max() <= bound)
    assert.is_true(m.weight:abs():max() > bound * 0.5)
  end)

  it('unknown options and invalid choices are refused, naming the accepted ones', function()
    H.assert_error(function() nn.Conv2d(1, 1, 3, { strides = 2 }) end, 'Conv2d', 'strides', 'padding_mode')
    H.assert_error(function() nn.AvgPool2d(2, { dilation = 2 }) end, 'AvgPool2d', 'dilation', 'divisor_override')
    H.assert_error(function() nn.MaxPool2d(2, { count_include_pad = false }) end, 'MaxPool2d', 'count_include_pad')
    H.assert_error(function() nn.Conv2d(1, 1, 3, { padding_mode = 'mirror' }) end, 'Conv2d', 'padding_mode', 'reflect')
    H.assert_error(function() nn.Conv2d(1, 1, 3, { padding = 'full' }) end, 'Conv2d', 'padding', "'same'")
  end)

  it("PyTorch's constraints: groups, 'same' with stride, pool padding", function()
    H.assert_error(function() nn.Conv2d(3, 4, 3, { groups = 2 }) end, 'Conv2d', 'in_channels 3', 'groups 2')
    H.assert_error(function() nn.Conv2d(4, 3, 3, { groups = 2 }) end, 'Conv2d', 'out_channels 3', 'groups 2')
    H.assert_error(function() nn.Conv2d(4, 4, 3, { groups = 0 }) end, 'Conv2d', 'groups')
    H.assert_error(function() nn.Conv2d(1, 1, 3, 2, 'same') end, 'Conv2d', "'same'", 'strided')
    H.assert_error(function() nn.MaxPool2d(3, 1, 2) end, 'MaxPool2d', 'padding 2', 'half the kernel')
    H.assert_error(function() nn.AvgPool2d({ 2, 4 }, 1, { 1, 3 }) end, 'AvgPool2d', 'half the kernel')
    H.assert_error(function() nn.AvgPool2d(2, { divisor_override = 0 }) end, 'AvgPool2d', 'divisor_override')
    H.assert_error(function() nn.MaxPool2d(2, { ceil_mode = 1 }) end, 'MaxPool2d', 'ceil_mode', 'true or false')
  end)

  it('bad sizes are errors naming the argument, never UB', function()
    -- ({} is an empty options table after the kernel size; {1, 0} a valid padding)
    local bad = { 0, -1, 1.5, 2 ^ 31, 2 ^ 40, 2 ^ 62, 2 ^ 63, -2 ^ 63, 0 / 0, math.huge, 'a', { 1, 2, 3 }, { 1, 0 } }
    for _, v in ipairs(bad) do
      H.assert_error(function() nn.Conv2d(1, 1, v) end, 'Conv2d', 'kernel_size')
      H.assert_error(function() nn.Conv2d(1, 1, 3, v) end, 'Conv2d', 'stride')
      H.assert_error(function() nn.Conv2d(1, 1, 3, { dilation = v }) end, 'Conv2d', 'dilation')
      H.assert_error(function() nn.MaxPool2d(v) end, 'MaxPool2d', 'kernel_size')
      H.assert_error(function() nn.AvgPool2d(2, v) end, 'AvgPool2d', 'stride')
      if v ~= 0 and type(v) ~= 'table' then
        H.assert_error(function() nn.Conv2d(1, 1, 3, 1, v) end, 'Conv2d', 'padding')
      end
    end
    H.assert_error(function() nn.Conv2d(1, 1, 3, 1, 1.5) end, 'Conv2d', 'padding')
    H.assert_error(function() nn.Conv2d(1, 1, {}) end, 'Conv2d', 'kernel_size')
    H.assert_error(function() nn.Conv2d(1, 1, 3, 1, { 1, 2, 3 }) end, 'Conv2d', 'padding')
    H.assert_error(function() nn.Conv2d(0, 1, 3) end, 'Conv2d', 'in_channels')
    H.assert_error(function() nn.Conv2d(1, 2.5, 3) end, 'Conv2d', 'out_channels')
    H.assert_error(function() nn.Conv2d(1, 1) end, 'Conv2d', 'kernel_size is missing')
    H.assert_error(function() nn.Conv2d(2 ^ 20, 2 ^ 20, 2 ^ 20) end, 'Conv2d')
  end)

  it('huge but valid geometry fails cleanly at forward, naming the input size', function()
    local x = ms.zeros(1, 1, 3, 3)
    H.assert_error(function() nn.Conv2d(1, 1, 3, { padding = 2 ^ 31 - 1 }):forward(x) end, 'Conv2d.forward')
    H.assert_error(function() nn.Conv2d(1, 1, 3, { dilation = 2 ^ 31 - 1 }):forward(x) end, 'Conv2d.forward',
                   'larger than the padded input 3x3')
    H.assert_error(function() nn.MaxPool2d(2 ^ 31 - 1):forward(x) end, 'MaxPool2d.forward', 'input 3x3')
    H.assert_error(function() nn.MaxPool2d(2, { dilation = 2 ^ 31 - 1 }):forward(x) end, 'MaxPool2d.forward')
    local y = nn.AvgPool2d(2 ^ 31 - 1, { padding = 2 ^ 30 - 1 }):forward(ms.ones(1, 1, 3, 3))
    assert.are.same({ 1, 1, 1, 1 }, y:shape())
    H.assert_error(function() nn.Conv2d(1, 1, 5):forward(x) end, 'Conv2d.forward', 'larger than the padded input',
                   'input 3x3')
    H.assert_error(function() nn.Conv2d(1, 1, 3, { padding = 3, padding_mode = 'reflect' }):forward(x) end,
                   'Conv2d.forward', 'reflect', 'input of 3x3')
    H.assert_error(function() nn.Conv2d(1, 1, 3, { padding = 4, padding_mode = 'circular' }):forward(x) end,
                   'Conv2d.forward', 'circular')
    -- reflect up to size - 1 and circular up to size are PyTorch's limits, and fine
    nn.Conv2d(1, 1, 3, { padding = 2, padding_mode = 'reflect' }):forward(x)
    nn.Conv2d(1, 1, 3, { padding = 3, padding_mode = 'circular' }):forward(x)
  end)

  it('the C geometry check itself refuses overflowing windows', function()
    local C, ffi = ms.C or require('moonstep.core').C, require('ffi')
    local win = ffi.new('ms_window2d')
    win.kh, win.kw, win.sh, win.sw, win.dh, win.dw = 3, 3, 1, 1, 2 ^ 62, 1
    win.pt, win.pb, win.pl, win.pr = 0, 0, 0, 0
    assert.are.equal(-1, C.ms_window2d_out(win, 5, 5))
    win.dh, win.pt, win.pb = 1, 2 ^ 62, 2 ^ 62
    assert.are.equal(-1, C.ms_window2d_out(win, 5, 5))
    assert.truthy(ffi.string(C.ms_last_error()):find('overflows', 1, true))
    win.pt, win.pb, win.sh = 1, 1, 0
    assert.are.equal(-1, C.ms_window2d_out(win, 5, 5))
    win.sh = 2
    assert.are.equal(0, C.ms_window2d_out(win, 5, 5))
    assert.are.equal(3, tonumber(win.oh))
  end)
end)

describe('Conv2d and pooling: misuse', function()
  local layers = {
    Conv2d = function() return nn.Conv2d(2, 3, 3, 1, 1) end,
    MaxPool2d = function() return nn.MaxPool2d(2) end,
    AvgPool2d = function() return nn.AvgPool2d(2) end,
  }
  for name, make in pairs(layers) do
    it(name .. ': forward of a non-tensor, wrong rank, freed input', function()
      for _, v in ipairs { 5, 'x', {}, true } do
        H.assert_error(function() make():forward(v) end, name .. '.forward', 'input')
      end
      H.assert_error(function() make():forward(ms.zeros(4, 4)) end, name .. '.forward', 'shape')
      H.assert_error(function() make():forward(ms.zeros(1, 1, 2, 4, 4)) end, name .. '.forward', 'shape')
      local m, x = make(), ms.randn(1, 2, 4, 4)
      m:forward(x)
      x:free()
      H.assert_error(function() m:forward(x) end, name .. '.forward', 'freed')
    end)

    it(name .. ': backward without forward, with another input, bad gradOutput', function()
      local m, x = make(), ms.randn(1, 2, 4, 4)
      H.assert_error(function() m:backward(x, ms.zeros(1, 3, 4, 4)) end, name .. '.backward', 'forward')
      local y = m:forward(x)
      H.assert_error(function() m:backward(ms.randn(1, 2, 4, 4), y) end, name .. '.backward')
      H.assert_error(function() m:backward(x, ms.zeros(1, 1, 1, 1)) end, name .. '.backward', 'shape')
      H.assert_error(function() m:backward(x, 5) end, name .. '.backward', 'gradOutput')
      local g = ms.randn(y:shape())
      g:free()
      H.assert_error(function() m:backward(x, g) end, name .. '.backward', 'freed')
      assert.are.same(x:shape(), m:backward(x, ms.randn(y:shape())):shape())
    end)

    it(name .. ': a freed output buffer is replaced, not reused', function()
      local m, x = make(), ms.randn(1, 2, 4, 4)
      local y = m:forward(x)
      local want = y:clone()
      for _, k in ipairs { '_cols', '_Y', '_out', 'output' } do
        if m[k] ~= nil then m[k]:free() end
      end
      H.assert_close(m:forward(x), want, 1e-6)
      m:backward(x, ms.randn(want:shape()))
    end)

    it(name .. ': a float64 input to a float32 layer', function()
      if name == 'Conv2d' then
        H.assert_error(function() make():forward(ms.zeros(1, 2, 4, 4, 'float64')) end, 'Conv2d.forward', 'float64')
      else
        assert.are.equal('float64', make():forward(ms.zeros(1, 2, 4, 4, 'float64')).dtype)
      end
      H.assert_error(function() make():forward(ms.zeros({ 1, 2, 4, 4 }, 'int64')) end, name .. '.forward')
    end)
  end

  it('Conv2d: a freed weight is an error naming forward/backward', function()
    local m, x = nn.Conv2d(1, 1, 3), ms.randn(1, 1, 4, 4)
    local y = m:forward(x)
    m.weight:free()
    H.assert_error(function() m:backward(x, ms.randn(y:shape())) end, 'Conv2d.backward', 'weight', 'freed')
    H.assert_error(function() m:forward(x) end, 'Conv2d.forward', 'weight', 'freed')
  end)

  it('Conv2d: wrong channel count names the expected shape', function()
    H.assert_error(function() nn.Conv2d(3, 2, 3):forward(ms.zeros(1, 2, 8, 8)) end, 'Conv2d.forward', '[N, 3, H, W]')
  end)

  it('max pooling: a window over padding only gives -inf and no gradient', function()
    local m = nn.MaxPool2d(2, { padding = 1, dilation = 3 })
    local x = ms.randn(1, 1, 2, 2, 'float64')
    local y = m:forward(x)
    assert.are.equal(-math.huge, y:view(-1):get(1))
    H.assert_close(m:backward(x, ms.ones(y:shape(), 'float64')), { 0, 0, 0, 0 }, 0)
  end)

  it('extra_repr shows the non-default options', function()
    local s = tostring(nn.Conv2d(4, 8, { 3, 2 }, { dilation = 2, groups = 2, padding = 'same', padding_mode = 'reflect', bias = false }))
    for _, frag in ipairs { '3x2', 'padding same', 'dilation 2', 'groups 2', 'reflect', 'no bias' } do
      assert.truthy(s:find(frag, 1, true), s)
    end
    assert.truthy(tostring(nn.MaxPool2d(3, 2, 1, 2, true, true)):find('dilation 2, ceil_mode, return_indices', 1, true))
    assert.truthy(tostring(nn.AvgPool2d(3, 2, 1, false, false, 7)):find('count_include_pad false, divisor 7', 1, true))
  end)
end)

describe('Conv2d and pooling: random geometry (seeded)', function()
  it('every construction, forward and backward works or raises an error naming the layer', function()
    local good = { 0, 1, 1, 2, 2, 3, { 1, 2 }, { 2, 1 } }
    local bad = { 5, -1, 1.5, 2 ^ 31 - 1, 2 ^ 31, 2 ^ 40, 2 ^ 62, 0 / 0, 'same', 'valid', { 2, 0 }, true }
    local seed = 12345
    local function rnd(n) seed = seed * 16807 % 2147483647; return seed % n + 1 end
    local function pick()
      if rnd(10) <= 8 then return good[rnd(#good)] end
      return bad[rnd(#bad)]
    end
    local made, ran = 0, 0
    for _ = 1, 400 do
      local kind = ({ 'Conv2d', 'MaxPool2d', 'AvgPool2d' })[rnd(3)]
      local ok, m = pcall(function()
        if kind == 'Conv2d' then
          return nn.Conv2d(2, 2, pick(), { stride = pick(), padding = pick(), dilation = pick(),
                                           padding_mode = ({ 'zeros', 'reflect', 'replicate', 'circular' })[rnd(4)] })
        elseif kind == 'MaxPool2d' then
          return nn.MaxPool2d(pick(), pick(), pick(), pick(), false, rnd(2) == 1)
        end
        return nn.AvgPool2d(pick(), pick(), pick(), rnd(2) == 1, rnd(2) == 1, rnd(3) == 1 and pick() or nil)
      end)
      if not ok then
        assert.truthy(tostring(m):find(kind .. ': ', 1, true), tostring(m))
      else
        made = made + 1
        local x = ms.randn(1, 2, rnd(6) - 1, rnd(6) - 1)
        local ok2, err = pcall(function()
          local y = m:forward(x)
          m:backward(x, ms.randn(y:shape()))
        end)
        if ok2 then ran = ran + 1
        else assert.truthy(tostring(err):find(kind .. '.forward: ', 1, true), tostring(err)) end
      end
    end
    assert.is_true(made > 20 and ran > 10, ('made %d, ran %d'):format(made, ran))
  end)
end)

describe('Conv2d and pooling: empty batches', function()
  it('N = 0 gives an empty output and gradient, as PyTorch', function()
    for _, m in ipairs { nn.Conv2d(2, 3, 3, 1, 1), nn.Conv2d(2, 4, 3, { groups = 2, padding = 1, padding_mode = 'reflect' }),
                         nn.MaxPool2d(2), nn.AvgPool2d(2, 1, 1) } do
      local x = ms.zeros(0, 2, 4, 4)
      local y = m:forward(x)
      assert.are.equal(0, y:size(1))
      assert.are.same(x:shape(), m:backward(x, ms.zeros(y:shape())):shape())
    end
  end)
end)
