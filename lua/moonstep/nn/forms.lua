-- moonstep.nn.forms — the functional forms of the layers (ms.nn.functional.linear,
-- conv2d, max_pool2d, ...): plain functions of tensors, PyTorch's names and argument
-- order, moonstep's conventions (1-based dims and class targets; options tables whose
-- unknown keys are errors). Outside ms.autograd each returns a fresh output and keeps
-- nothing; on its tape each is one recorded op whose gradient rule is in
-- autograd/rules_nn.lua (the activations' rules are the tensor methods':
-- rules_elementwise.lua). The kernels are the layers' own (one GEMM with the bias in
-- beta for linear, im2col + GEMM for conv2d, the window kernels for pooling, the one-pass
-- cross-entropy); what the forms add is a fresh output per call (the Modules reuse
-- their buffers). Temporaries no one can see (Y, the cols) are freed at once.
--
-- The forms are added to the table of moonstep.nn.functional (the layers' kernels) and
-- the whole table is then put behind the tape (autograd/install.lua), named
-- 'nn.functional.<form>' in errors. F._tape holds the taped forwards: the same
-- computations returning (output, what the backward needs).
local T = require 'moonstep.tensor'
local check = require 'moonstep.check'
local F = require 'moonstep.nn.functional'
local W = require 'moonstep.nn.window'
local type, select = type, select

local P = {}                -- the taped forwards (for rules_nn.lua)
F._tape = P

-- float_arg(fn, name, v [, like]): v a live float tensor, of like's dtype and device when
-- like is given; given(v): an optional argument is there (not nil; a NULL pointer is).
local float_arg, given = check.float_tensor, check.given
local shape_of = T.shape_of

-- An optional bias (nil when not given): a float tensor [n] like x; weight for messages.
local function bias_arg(fn, bias, n, weight, x)
  if not given(bias) then return nil end
  float_arg(fn, 'bias', bias, x)
  if bias:dim() ~= 1 or bias:size(1) ~= n then
    check.fail('%s: bias has shape %s, expected [%d] (weight is %s)', fn, shape_of(bias), n, shape_of(weight))
  end
  return bias
end

-- The plain form of a taped forward f (returning y and a state): y, with the state's
-- `key` tensor (kept only for the recorded backward) freed at once.
function P.untaped(f, key)
  return function(...)
    local y, st = f(...)
    local t = st[key]
    if t then t:free() end
    return y
  end
end

---------------------------------------------------------------------------------------
-- linear(x, weight [, bias]): x [..., in], weight [out, in], bias [out] -> [..., out]
---------------------------------------------------------------------------------------
local function linear(x, weight, bias)
  local fn = 'nn.functional.linear'
  float_arg(fn, 'input', x)
  float_arg(fn, 'weight', weight, x)
  if weight:dim() ~= 2 then
    check.fail('%s: weight has shape %s, expected [out_features, in_features]', fn, shape_of(weight))
  end
  local nout, nin = weight:size(1), weight:size(2)
  local d = x:dim()
  if d < 1 or x:size(d) ~= nin then
    check.fail('%s: input has shape %s, expected [..., %d] (weight is %s)', fn, shape_of(x), nin, shape_of(weight))
  end
  bias = bias_arg(fn, bias, nout, weight, x)
  local x2 = d == 2 and x or x:reshape(-1, nin)
  local y = W.new_tensor(fn, { x2:size(1), nout }, x.dtype, x.device)
  if bias then                               -- y = b (broadcast rows), y += x W^T (beta = 1)
    y:copy_(bias)
    T.matmul(x2, weight, { transpose_b = true, out = y, beta = 1 })
  else
    T.matmul(x2, weight, { transpose_b = true, out = y })
  end
  if d ~= 2 then
    local shape = x:shape()
    shape[d] = nout
    y = y:view(shape)
  end
  return y
end
F.linear = linear

---------------------------------------------------------------------------------------
-- conv2d(x, weight [, bias] [, stride, padding, dilation, groups] [, opts])
---------------------------------------------------------------------------------------
local CONV_NAMES = { 'stride', 'padding', 'dilation', 'groups', 'padding_mode' }
local CONV_USAGE = 'conv2d(input, weight [, bias] [, stride, padding, dilation, groups] [, {options}])'

local function conv_geom(fn, weight, a)
  local g = { kh = weight:size(3), kw = weight:size(4) }
  g.sh, g.sw = W.pair(fn, 'stride', a.stride == nil and 1 or a.stride, 1)
  g.dh, g.dw = W.pair(fn, 'dilation', a.dilation == nil and 1 or a.dilation, 1)
  if a.padding_mode ~= nil and a.padding_mode ~= 'zeros' then
    check.fail("%s: padding_mode is %s, expected 'zeros' (other modes: nn.Conv2d)", fn, check.describe(a.padding_mode))
  end
  return W.conv_padding(fn, g, a.padding == nil and 0 or a.padding)
end

-- Returns y and the state of the backward: the batch x4, the window, the cols (unless
-- the 1x1 direct path made none), the sizes.
function P.conv2d(x, weight, bias, ...)
  local fn = 'nn.functional.conv2d'
  local a
  if type(bias) == 'table' and not T.is_tensor(bias) and select('#', ...) == 0 then
    a, bias = W.gather_args(fn, CONV_NAMES, CONV_USAGE, bias), nil       -- conv2d(x, w, {opts})
  else
    a = W.gather_args(fn, CONV_NAMES, CONV_USAGE, ...)
  end
  float_arg(fn, 'input', x)
  float_arg(fn, 'weight', weight, x)
  if weight:dim() ~= 4 then
    check.fail('%s: weight has shape %s, expected [out_channels, in_channels/groups, kh, kw]', fn, shape_of(weight))
  end
  local groups = check.integer(fn, 'groups', a.groups == nil and 1 or a.groups, 1)
  local O = weight:size(1)
  if O % groups ~= 0 then
    check.fail('%s: weight has %d output channels, not divisible by groups %d', fn, O, groups)
  end
  bias = bias_arg(fn, bias, O, weight, x)
  local g = conv_geom(fn, weight, a)
  local cin = weight:size(2) * groups
  local x4 = W.as_batch(fn, x, cin)
  local n = x4:size(1)
  local win, oh, ow = W.window(fn, g, x4:size(3), x4:size(4))
  local K, L = cin * g.kh * g.kw, oh * ow
  if K * n * L > 2 ^ 53 or O * n * L > 2 ^ 53 then
    check.fail('%s: input %s gives an output of %dx%d: too many elements', fn, shape_of(x), oh, ow)
  end
  local st = { x4 = x4, win = win, n = n, L = L, K = K, O = O, groups = groups, bias = bias }
  if n == 0 then
    st.empty = true
    return W.new_tensor(fn, { 0, O, oh, ow }, x.dtype, x.device), st
  end
  local Wt = weight:contiguous()
  st.Wt = Wt
  local y
  if g.kh == 1 and g.kw == 1 and g.sh == 1 and g.sw == 1 and g.pt == 0 and g.pb == 0 and g.pl == 0 and
     g.pr == 0 and groups == 1 and x4.device == 'cpu' then             -- 1x1: each image its own cols
    st.direct = true
    y = T.matmul(Wt:view(1, O, K), x4:view(n, K, L))
    if bias then y:add_(bias:reshape(1, O, 1)) end
  else
    local cols = W.im2col(fn, x4, win, W.alloc(fn, { K, n * L }, x4))
    st.cols = cols
    local Y
    if groups == 1 then
      Y = T.matmul(Wt:view(O, K), cols)
    else
      local og, kg = O / groups, K / groups
      Y = T.matmul(Wt:view(groups, og, kg), cols:view(groups, kg, n * L)):view(O, n * L)
    end
    y = W.conv_output(fn, W.alloc(fn, { n, O, L }, x4), Y, bias)
    Y:free()                                 -- dead: its memory back at once (not at the next GC)
  end
  if x:dim() == 3 then return y:view(O, oh, ow), st end
  return y:view(n, O, oh, ow), st
end
F.conv2d = P.untaped(P.conv2d, 'cols')     -- only the recorded form keeps the cols

---------------------------------------------------------------------------------------
-- max_pool2d / avg_pool2d(x, kernel_size [, ...] [, opts])
---------------------------------------------------------------------------------------
-- x -> the batch x4 [N, C, H, W], the window, a fresh output [N, C, OH, OW].
local function pool_setup(fn, x, kernel, a)
  float_arg(fn, 'input', x)
  local g = W.pool_geom(fn, kernel, a)   -- as nn.MaxPool2d / nn.AvgPool2d
  local x4 = W.as_batch(fn, x, nil)
  local win, oh, ow = W.window(fn, g, x4:size(3), x4:size(4))
  return x4, win, W.alloc(fn, { x4:size(1), x4:size(2), oh, ow }, x4)
end

local function as_input(t, x) return x:dim() == 3 and t:view(t:size(2), t:size(3), t:size(4)) or t end

local MAX_NAMES = { 'stride', 'padding', 'dilation', 'ceil_mode', 'return_indices' }
local MAX_USAGE = 'max_pool2d(input, kernel_size [, stride, padding, dilation, ceil_mode, return_indices] [, {options}])'
function P.max_pool2d(x, kernel, ...)
  local fn = 'nn.functional.max_pool2d'
  local a = W.gather_args(fn, MAX_NAMES, MAX_USAGE, ...)
  local ri = a.return_indices
  if ri ~= nil then check.boolean(fn, 'return_indices', ri) end
  local x4, win, out = pool_setup(fn, x, kernel, a)
  local argmax = W.new_tensor(fn, out:shape(), 'int64', x.device)
  W.maxpool2d(fn, x4, win, out, argmax)
  local st = { x4shape = x4:shape(), argmax = argmax }
  if ri then                                         -- 1-based positions in each plane
    return as_input(out, x), as_input(argmax:to('float64'):add(1):to('int64'), x), st
  end
  return as_input(out, x), nil, st
end
function F.max_pool2d(...)
  local out, idx = P.max_pool2d(...)
  if idx then return out, idx end
  return out
end

local AVG_NAMES = { 'stride', 'padding', 'ceil_mode', 'count_include_pad', 'divisor_override' }
local AVG_USAGE = 'avg_pool2d(input, kernel_size [, stride, padding, ceil_mode, count_include_pad, ' ..
                  'divisor_override] [, {options}])'
function P.avg_pool2d(x, kernel, ...)
  local fn = 'nn.functional.avg_pool2d'
  local a = W.gather_args(fn, AVG_NAMES, AVG_USAGE, ...)
  local cip = a.count_include_pad
  if cip == nil then cip = true end
  check.boolean(fn, 'count_include_pad', cip)
  local d = a.divisor_override
  if d ~= nil then
    check.integer(fn, 'divisor_override', d, -W.MAX, W.MAX)
    if d == 0 then check.fail('%s: divisor_override is 0, expected a non-zero integer (or nil)', fn) end
  end
  local x4, win, out = pool_setup(fn, x, kernel, a)
  W.avgpool2d(fn, x4, win, cip, d, out)
  return as_input(out, x), { x4shape = x4:shape(), win = win, cip = cip, divisor = d }
end
function F.avg_pool2d(...) return (P.avg_pool2d(...)) end

-- The window ops' backward pass (rules_nn.lua), max (st.argmax) or average: gin of the
-- batch's shape.
function P.pool2d_backward(fn, g, st)
  local s = st.x4shape
  local gc = W.pool_grad(g, s)
  local gin = W.alloc(fn, s, gc)
  if st.argmax then return W.maxpool2d_backward(fn, gc, st.argmax, gin) end
  return W.avgpool2d_backward(fn, gc, st.win, st.cip, st.divisor, gin)
end

---------------------------------------------------------------------------------------
-- activations: the tensor methods (their rules: rules_elementwise.lua, same arguments)
---------------------------------------------------------------------------------------
function F.relu(x) return float_arg('nn.functional.relu', 'input', x):relu() end
function F.tanh(x) return float_arg('nn.functional.tanh', 'input', x):tanh() end
function F.sigmoid(x) return float_arg('nn.functional.sigmoid', 'input', x):sigmoid() end
function F.gelu(x, approximate)
  local fn = 'nn.functional.gelu'
  float_arg(fn, 'input', x)
  if approximate ~= nil then check.oneof(fn, 'approximate', approximate, { 'none', 'tanh' }) end
  return x:gelu(approximate)
end
function F.leaky_relu(x, negative_slope)
  local fn = 'nn.functional.leaky_relu'
  float_arg(fn, 'input', x)
  if negative_slope ~= nil then check.number(fn, 'negative_slope', negative_slope) end
  return x:leaky_relu(negative_slope)
end
local function dim_arg(fn, x, dim)
  if dim == nil then return end
  check.integer(fn, 'dim', dim, -8, 8)
  local n = x:dim()
  local d = dim < 0 and n + 1 + dim or dim
  if dim == 0 or d < 1 or d > n then
    check.fail('%s: dim %d is out of range for input of shape %s (1-based; -1 is the last)', fn, dim, shape_of(x))
  end
end
-- softmax(x [, dim]) / log_softmax: the tensor method `name` over dim (default the last).
local function softmax_form(name)
  local fn = 'nn.functional.' .. name
  return function(x, dim)
    float_arg(fn, 'input', x)
    dim_arg(fn, x, dim)
    return x[name](x, dim)
  end
end
F.softmax, F.log_softmax = softmax_form('softmax'), softmax_form('log_softmax')

---------------------------------------------------------------------------------------
-- dropout(x [, p = 0.5, training = true]): as nn.Dropout (a Philox Bernoulli mask from
-- the global generator, one stream per call), the mask kept for the backward.
---------------------------------------------------------------------------------------
function P.dropout(x, p, training)
  local fn = 'nn.functional.dropout'
  float_arg(fn, 'input', x)
  if p == nil then p = 0.5 end
  check.number(fn, 'p', p, 0, 1)
  if training == nil then training = true end
  check.boolean(fn, 'training', training)
  if not training or p == 0 then return x end
  local mask
  if p == 1 then
    mask = T.zeros_like(x)
  else
    local gen = require('moonstep.random').take_stream()
    mask = T.empty_like(x):bernoulli_(1 - p, gen):mul_(1 / (1 - p))
  end
  return x:mul(mask), mask
end
function F.dropout(...) return (P.dropout(...)) end

require 'moonstep.nn.forms_loss'       -- cross_entropy, nll_loss, mse_loss, ... into F
-- Behind the tape (each form's rule by its bare name), and strict: F.lineer is an error
-- naming the nearest names.
return check.strict(require('moonstep.autograd.install').install(F, 'nn.functional.'), 'ms.nn.functional')
