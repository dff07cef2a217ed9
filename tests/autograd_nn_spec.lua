-- The functional forms of the layers (ms.nn.functional.linear, conv2d, pooling, the
-- activations, dropout and the losses): gradients against finite differences in
-- float64; forward and gradients equal to the matching Module's forward and hand-written
-- backward; a short MLP trained with the forms under ms.autograd equal to the Module
-- protocol; fresh outputs outside ms.autograd; errors naming the form; CUDA against CPU
-- where a GPU is present.
local ms = require 'moonstep'
local H = require 'helper'
local AG = require 'autograd_helper'
local nn, F = ms.nn, ms.nn.functional

local f64 = { dtype = 'float64' }
local function randn(...) return ms.randn({ ... }, f64) end
local function ints(list) return ms.tensor(list, { dtype = 'int64' }) end

local function close(a, b, tol, what)
  assert(ms.is_tensor(a) and ms.is_tensor(b), (what or '') .. ': missing tensor')
  assert(a:numel() == b:numel(), ('%s: %d elements, expected %d'):format(what or '', a:numel(), b:numel()))
  if a:numel() == 0 then return end
  local d = (a:to('cpu', 'float64'):reshape(-1) - b:to('cpu', 'float64'):reshape(-1)):abs():max()
  local scale = math.max(1, b:abs():max())
  assert(d <= (tol or 1e-12) * scale, ('%s: max difference %g'):format(what or '', d))
end

describe('nn.functional forms: gradients against finite differences (float64)', function()
  before_each(function() ms.manual_seed(11) end)

  it('linear: 2-D, 3-D and 1-D inputs, no bias, non-contiguous operands', function()
    AG.check_op(F.linear, { randn(5, 4), randn(3, 4), randn(3) })
    AG.check_op(F.linear, { randn(2, 3, 4), randn(3, 4), randn(3) })
    AG.check_op(F.linear, { randn(4), randn(3, 4) })
    AG.check_op(F.linear, { randn(4, 5):t(), randn(4, 3):t(), randn(6):narrow(1, 2, 3) })
    -- only the tracked arguments: the weight alone
    AG.check_op(F.linear, { randn(5, 4), randn(3, 4), randn(3) }, { wrt = { 2 } })
  end)

  it('linear: the gradient of a plain sum (an expanded gradOutput)', function()
    local x, w, b = randn(3, 4), randn(2, 4), randn(2)
    AG.check(function(p) return F.linear(p.x, p.w, p.b):sum() end, { x = x, w = w, b = b })
  end)

  it('conv2d: stride, padding, dilation, groups, same, 1x1, [C, H, W], no bias', function()
    local cases = {
      { randn(2, 3, 6, 5), randn(4, 3, 3, 3), randn(4) },
      { randn(2, 3, 7, 6), randn(4, 3, 3, 2), randn(4), { stride = 2, padding = 1 } },
      { randn(1, 2, 8, 7), randn(3, 2, 2, 3), nil, { dilation = 2, padding = { 1, 2 } } },
      { randn(2, 4, 5, 5), randn(6, 2, 3, 3), randn(6), { groups = 2, stride = { 2, 1 } } },
      { randn(2, 3, 5, 4), randn(2, 3, 2, 2), randn(2), { padding = 'same' } },
      { randn(2, 3, 4, 5), randn(5, 3, 1, 1), randn(5) },                    -- the 1x1 direct path
      { randn(3, 6, 5), randn(2, 3, 3, 3), randn(2), 1, 1 },                  -- positional, [C, H, W]
      { randn(2, 3, 6, 5):transpose(3, 4), randn(4, 3, 3, 3), randn(4), { stride = 2 } },
    }
    for i, c in ipairs(cases) do
      local n = c[5] and 5 or (c[4] and 4 or 3)
      AG.check_op(F.conv2d, c, { nargs = n, samples = 20, what = 'conv2d case ' .. i })
    end
  end)

  it('conv2d: only some arguments tracked; an empty batch; max_pool2d with return_indices', function()
    AG.check_op(F.conv2d, { randn(2, 3, 4, 5), randn(5, 3, 1, 1), randn(5) }, { wrt = { 1 } })
    AG.check_op(F.conv2d, { randn(2, 3, 4, 5), randn(5, 3, 1, 1), randn(5) }, { wrt = { 2 } })
    AG.check_op(F.conv2d, { randn(2, 4, 5, 5), randn(6, 2, 3, 3), randn(6), { groups = 2 } }, { wrt = { 3 } })
    local g = ms.autograd.grad(function(p) return F.conv2d(p.x, p.w, p.b):sum() end)
      { x = randn(0, 2, 4, 4), w = randn(3, 2, 3, 3), b = randn(3) }
    assert.are.equal(0, g.w:abs():max())
    assert.are.equal(0, g.b:abs():max())
    AG.check(function(x)
      local out, idx = F.max_pool2d(x, 2, { return_indices = true })
      assert.are.equal('int64', idx.dtype)
      return (out * out):sum()
    end, randn(1, 2, 4, 6))
  end)

  it('max_pool2d: stride, padding, dilation, ceil_mode', function()
    AG.check_op(F.max_pool2d, { randn(2, 3, 6, 5), 2 })
    AG.check_op(F.max_pool2d, { randn(2, 2, 7, 6), 3, { stride = 2, padding = 1, ceil_mode = true } })
    AG.check_op(F.max_pool2d, { randn(1, 2, 9, 8), { 2, 3 }, { stride = 1, dilation = 2 } })
    AG.check_op(F.max_pool2d, { randn(2, 5, 6), 2, 1 })
  end)

  it('avg_pool2d: padding, ceil_mode, count_include_pad, divisor_override', function()
    AG.check_op(F.avg_pool2d, { randn(2, 3, 6, 5), 2 })
    AG.check_op(F.avg_pool2d, { randn(2, 2, 7, 6), 3, { stride = 2, padding = 1, ceil_mode = true,
                                                         count_include_pad = false } })
    AG.check_op(F.avg_pool2d, { randn(1, 2, 5, 6), { 3, 2 }, { stride = 1, padding = 1, divisor_override = 4 } })
    AG.check_op(F.avg_pool2d, { randn(3, 5, 6), 2, 1, 1 })
  end)

  it('the activations, softmax and log_softmax', function()
    AG.check_op(F.relu, { randn(4, 5) })
    AG.check_op(F.tanh, { randn(4, 5) })
    AG.check_op(F.sigmoid, { randn(4, 5) })
    AG.check_op(F.gelu, { randn(4, 5) })
    AG.check_op(F.gelu, { randn(4, 5), 'tanh' })
    AG.check_op(F.leaky_relu, { randn(4, 5), 0.2 })
    AG.check_op(F.softmax, { randn(4, 5), 1 })
    AG.check_op(F.log_softmax, { randn(3, 4, 5), -1 })
    AG.check_op(F.log_softmax, { randn(3, 4, 5), 2 })
  end)

  it('dropout (the same mask on every evaluation: the seed fixed)', function()
    local x = randn(6, 7)
    local function f(p) ms.manual_seed(3); return (F.dropout(p, 0.4) * F.dropout(p, 0.3, true)):sum() end
    AG.check(f, x)
    AG.check(function(p) return F.dropout(p, 0.5, false):sum() end, x)
    AG.check(function(p) return (F.dropout(p, 1) + p):sum() end, x)
  end)

  it('cross_entropy: reductions, [N, C], [N, C, d1, d2] and [C] inputs', function()
    local t = ints { 1, 3, 2, 3, 4 }
    for _, r in ipairs { 'mean', 'sum', 'none' } do
      AG.check_op(F.cross_entropy, { randn(5, 4), t, { reduction = r } }, { what = r })
    end
    AG.check_op(F.cross_entropy, { randn(2, 3, 4, 2), ints { { { 1, 2 }, { 3, 3 }, { 2, 1 }, { 1, 1 } },
                                                             { { 3, 2 }, { 1, 2 }, { 2, 2 }, { 3, 1 } } } })
    AG.check_op(F.cross_entropy, { randn(6), ms.tensor(4, { dtype = 'int64' }) })
    AG.check_op(F.cross_entropy, { randn(4, 5):t(), ints { 1, 4, 4, 2, 3 }, 'sum' })  -- non-contiguous
  end)

  it('cross_entropy: weights, ignore_index, label smoothing and their combinations', function()
    local x, t = randn(6, 4), ints { 1, 3, 2, 3, 4, 2 }
    local w = ms.tensor({ 0.5, 2, 1, 1.5 }, f64)
    local opts = {
      { weight = w }, { ignore_index = 3 }, { label_smoothing = 0.2 },
      { weight = w, ignore_index = 2, label_smoothing = 0.1 },
      { weight = w, reduction = 'sum' }, { ignore_index = 3, reduction = 'none' },
      { label_smoothing = 0.3, reduction = 'none', weight = w },
      { label_smoothing = 0.25, reduction = 'sum' },
    }
    for i, o in ipairs(opts) do AG.check_op(F.cross_entropy, { x, t, o }, { what = 'case ' .. i }) end
  end)

  it('nll_loss, mse_loss (both arguments) and binary_cross_entropy_with_logits (both arguments)', function()
    local t = ints { 2, 1, 3, 3 }
    AG.check_op(F.nll_loss, { randn(4, 3):log_softmax(), t })
    AG.check_op(F.nll_loss, { randn(4, 3), t, { weight = ms.tensor({ 1, 2, 0.5 }, f64), ignore_index = 1 } })
    AG.check_op(F.nll_loss, { randn(4, 3), t, 'none' })
    for _, r in ipairs { 'mean', 'sum', 'none' } do
      AG.check_op(F.mse_loss, { randn(3, 4), randn(3, 4), r }, { what = r })
      AG.check_op(F.binary_cross_entropy_with_logits, { randn(3, 4), ms.rand({ 3, 4 }, f64), r }, { what = r })
    end
    AG.check_op(F.binary_cross_entropy_with_logits, { randn(3, 4), ms.rand({ 3, 4 }, f64),
      { weight = ms.rand({ 4 }, f64), pos_weight = ms.tensor({ 2, 0.5, 1, 3 }, f64) } })
  end)

  it('a composition: conv2d, relu, max_pool2d, linear, cross_entropy', function()
    local p = { w1 = randn(3, 2, 3, 3) * 0.5, b1 = randn(3), w2 = randn(4, 12) * 0.3, b2 = randn(4) }
    local x, t = randn(2, 2, 6, 6), ints { 2, 4 }
    AG.check(function(q)
      local h = F.max_pool2d(F.relu(F.conv2d(x, q.w1, q.b1, { padding = 1 })), 3)
      return F.cross_entropy(F.linear(h:reshape(2, 12), q.w2, q.b2), t, { label_smoothing = 0.1 })
    end, p, { samples = 15 })
  end)
end)

-- The form's gradients through ms.autograd.grad of sum(form(...) * r) against the
-- Module's backward(x, r): gradInput and every parameter gradient.
local function against_module(m, form, x, tol)
  local y_ref = m:forward(x):clone()
  local params = { x = x }
  for _, e in ipairs(m:named_parameters()) do params[e.name] = e.param end
  local y = form(x, params)
  close(y, y_ref, tol or 0, 'forward')
  local r = ms.empty(y:shape(), { dtype = y.dtype }):normal_(0, 1, { seed = 9 })
  local g = ms.autograd.grad(function(p) return (form(p.x, p) * r):sum() end)(params)
  if #m:named_parameters() > 0 then m:zero_grad() end
  m.input_grad = true
  local gx = m:backward(x, r)
  close(g.x, gx, tol or 0, 'gradInput')
  for _, e in ipairs(m:named_parameters()) do close(g[e.name], e.grad, tol or 0, 'grad ' .. e.name) end
end

describe('nn.functional forms equal the Modules (forward and backward)', function()
  before_each(function() ms.manual_seed(5) end)

  it('linear = nn.Linear, bit for bit', function()
    against_module(nn.Linear(5, 3):double(), function(x, p) return F.linear(x, p.weight, p.bias) end, randn(4, 5))
    against_module(nn.Linear(5, 3, false):double(), function(x, p) return F.linear(x, p.weight) end, randn(2, 4, 5))
    against_module(nn.Linear(6, 4), function(x, p) return F.linear(x, p.weight, p.bias) end, ms.randn(7, 6))
  end)

  it('conv2d = nn.Conv2d (im2col and 1x1 paths, groups, dilation)', function()
    local cases = {
      { nn.Conv2d(4, 6, 3, { stride = 2, padding = 1, groups = 2 }), { stride = 2, padding = 1, groups = 2 }, { 2, 4, 7, 6 } },
      { nn.Conv2d(3, 2, 1), {}, { 2, 3, 4, 5 } },
      { nn.Conv2d(2, 3, { 2, 3 }, { dilation = 2, bias = false }), { dilation = 2 }, { 1, 2, 8, 9 } },
      { nn.Conv2d(2, 3, 3, { padding = 'same' }), { padding = 'same' }, { 2, 6, 5 } },
    }
    for _, c in ipairs(cases) do
      local o = c[2]
      against_module(c[1]:double(), function(x, p) return F.conv2d(x, p.weight, p.bias, o) end, randn(unpack(c[3])))
    end
    against_module(nn.Conv2d(3, 4, 3, { padding = 1 }), function(x, p) return F.conv2d(x, p.weight, p.bias, 1, 1) end,
                   ms.randn(2, 3, 5, 5))
  end)

  it('max_pool2d / avg_pool2d = nn.MaxPool2d / nn.AvgPool2d', function()
    against_module(nn.MaxPool2d(3, { stride = 2, padding = 1, ceil_mode = true }),
                   function(x) return F.max_pool2d(x, 3, { stride = 2, padding = 1, ceil_mode = true }) end, randn(2, 3, 7, 8))
    against_module(nn.MaxPool2d(2, 1, 0, 2), function(x) return F.max_pool2d(x, 2, 1, 0, 2) end, randn(2, 6, 7))
    against_module(nn.AvgPool2d(2, { stride = 1, padding = 1, count_include_pad = false }),
                   function(x) return F.avg_pool2d(x, 2, { stride = 1, padding = 1, count_include_pad = false }) end,
                   randn(2, 2, 5, 4))
    against_module(nn.AvgPool2d(3, { stride = 2, ceil_mode = true, divisor_override = 5 }),
                   function(x) return F.avg_pool2d(x, 3, { stride = 2, ceil_mode = true, divisor_override = 5 }) end,
                   randn(1, 2, 6, 7))
    local out, idx = F.max_pool2d(randn(1, 1, 4, 4), 2, { return_indices = true })
    local mout, midx = nn.MaxPool2d(2, { return_indices = true }):forward(randn(1, 1, 4, 4))
    assert.are.same(midx:shape(), idx:shape())
    assert.are.equal('int64', idx.dtype)
    assert.are.same(mout:shape(), out:shape())
  end)

  it('the activations = the activation Modules', function()
    local x = randn(4, 6)
    against_module(nn.ReLU(), function(v) return F.relu(v) end, x)
    against_module(nn.Tanh(), function(v) return F.tanh(v) end, x, 1e-14)
    against_module(nn.Sigmoid(), function(v) return F.sigmoid(v) end, x, 1e-14)
    against_module(nn.GELU(), function(v) return F.gelu(v) end, x, 1e-12)
    against_module(nn.GELU('tanh'), function(v) return F.gelu(v, 'tanh') end, x, 1e-12)
    against_module(nn.LeakyReLU(0.2), function(v) return F.leaky_relu(v, 0.2) end, x)
    against_module(nn.Softmax(1), function(v) return F.softmax(v, 1) end, x, 1e-12)
    against_module(nn.LogSoftmax(), function(v) return F.log_softmax(v) end, randn(2, 3, 4), 1e-12)
  end)

  it('dropout = nn.Dropout (the same mask from the same generator state)', function()
    local x = randn(5, 6)
    local m = nn.Dropout(0.3)
    ms.manual_seed(8)
    local y_ref = m:forward(x):clone()
    local gx = m:backward(x, x):clone()
    ms.manual_seed(8)
    local g, _, y = ms.autograd.grad(function(p)
      local out = F.dropout(p, 0.3)
      return (out * x):sum(), out
    end)(x:clone())
    H.same_bits(y, y_ref, 'forward')
    H.same_bits(g, gx, 'gradient')
    assert.are.equal(0, (F.dropout(x, 0.3, false) - x):abs():max())
  end)

  -- a loss Module's forward (a number or a tensor) and backward(x, t, gradOutput)
  local function loss_against(crit, form, x, t, tol, t_grad)
    local v = crit:forward(x, t)
    local l = form(x, t)
    assert.is_true(ms.is_tensor(l))
    if type(v) == 'number' then
      assert.are.equal(0, l:dim())
      assert(math.abs(l:item() - v) <= (tol or 0) * math.max(1, math.abs(v)), ('loss %.17g vs %.17g'):format(l:item(), v))
    else
      close(l, v, tol, 'losses')
    end
    local r = type(v) == 'number' and 1.7 or ms.empty(v:shape(), f64):normal_(0, 1, { seed = 4 })
    local gref = crit:backward(x, t, r)
    local p = t_grad and { x = x, t = t } or { x = x }
    local g = ms.autograd.grad(function(q) return (form(q.x, q.t or t) * r):sum() end)(p)
    close(g.x, gref, tol, 'gradient')
    return g
  end

  it('cross_entropy = nn.CrossEntropyLoss (plain one-pass case and the general path)', function()
    local x, t = randn(6, 4), ints { 1, 3, 2, 3, 4, 2 }
    local w = ms.tensor({ 0.5, 2, 1, 1.5 }, f64)
    local all = {
      {}, { reduction = 'sum' }, { reduction = 'none' }, { label_smoothing = 0.2 },
      { weight = w }, { ignore_index = 3 }, { weight = w, ignore_index = 2, label_smoothing = 0.1, reduction = 'sum' },
      { ignore_index = 3, reduction = 'none', label_smoothing = 0.3 },
    }
    for _, o in ipairs(all) do
      loss_against(nn.CrossEntropyLoss(o), function(a, b) return F.cross_entropy(a, b, o) end, x, t, 1e-15)
    end
    local x4 = randn(2, 3, 2, 2)
    local t4 = ints { { { 1, 2 }, { 3, 3 } }, { { 2, 1 }, { 1, 3 } } }
    loss_against(nn.CrossEntropyLoss(), function(a, b) return F.cross_entropy(a, b) end, x4, t4, 1e-15)
    loss_against(nn.CrossEntropyLoss('none'), function(a, b) return F.cross_entropy(a, b, 'none') end, x4, t4, 1e-15)
    -- float32, the benchmark's case
    local x32, t32 = ms.randn(8, 10), ms.randint(1, 11, { 8 })
    local v = nn.CrossEntropyLoss():forward(x32, t32)
    assert.are.equal(ms.full({}, v):item(), F.cross_entropy(x32, t32):item())
  end)

  it('nll_loss, mse_loss, binary_cross_entropy_with_logits = their Modules', function()
    local t = ints { 2, 1, 3, 3 }
    local lp = randn(4, 3):log_softmax()
    for _, o in ipairs { {}, { reduction = 'sum' }, { weight = ms.tensor({ 1, 2, 0.5 }, f64), ignore_index = 1 } } do
      loss_against(nn.NLLLoss(o), function(a, b) return F.nll_loss(a, b, o) end, lp, t, 1e-15)
    end
    for _, r in ipairs { 'mean', 'sum', 'none' } do
      local x, y = randn(3, 4), randn(3, 4)
      local g = loss_against(nn.MSELoss(r), function(a, b) return F.mse_loss(a, b, r) end, x, y, 0, true)
      close(g.t, g.x:neg(), 0, 'target gradient')
      local o = { reduction = r, weight = ms.rand({ 4 }, f64), pos_weight = ms.tensor({ 2, 0.5, 1, 3 }, f64) }
      loss_against(nn.BCEWithLogitsLoss(o), function(a, b) return F.binary_cross_entropy_with_logits(a, b, o) end,
                   x, ms.rand({ 3, 4 }, f64), 1e-15)
    end
  end)
end)

describe('nn.functional forms: training', function()
  it('3 Adam steps of an MLP with the forms under ms.autograd = nn.Sequential + CrossEntropyLoss', function()
    for _, dtype in ipairs { 'float64', 'float32' } do
      ms.manual_seed(21)
      local model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)):to(dtype)
      local crit = nn.CrossEntropyLoss()
      local P = { W1 = model.modules[1].weight:clone(), b1 = model.modules[1].bias:clone(),
                  W2 = model.modules[3].weight:clone(), b2 = model.modules[3].bias:clone() }
      local set = ms.params(P)
      local x = ms.randn({ 8, 6 }, { dtype = dtype })
      local y = ms.randint(1, 4, { 8 })
      local function loss(_, xb, yb)
        local h = F.relu(F.linear(xb, P.W1, P.b1))
        return F.cross_entropy(F.linear(h, P.W2, P.b2), yb)
      end
      local vg = ms.autograd.value_and_grad(loss)
      local opt_a = ms.optim.Adam(set, { lr = 0.05 })
      local opt_m = ms.optim.Adam(model, { lr = 0.05 })
      for step = 1, 3 do
        local la = opt_a:step(function() return (vg(set, x, y)) end)
        local lm = opt_m:step(function()
          local out = model:forward(x)
          local l = crit:forward(out, y)
          model:backward(x, crit:backward(out, y))
          return l
        end)
        local tol = dtype == 'float64' and 1e-13 or 1e-6
        assert(math.abs(la - lm) <= tol, ('step %d (%s): loss %.17g vs %.17g'):format(step, dtype, la, lm))
      end
      local tol = dtype == 'float64' and 1e-13 or 1e-6
      close(P.W1, model.modules[1].weight, tol, dtype .. ' W1')
      close(P.b1, model.modules[1].bias, tol, dtype .. ' b1')
      close(P.W2, model.modules[3].weight, tol, dtype .. ' W2')
      close(P.b2, model.modules[3].bias, tol, dtype .. ' b2')
    end
  end)
end)

describe('nn.functional forms: gradients added into an arena', function()
  it('grad over a Module (its arena) with the forms adds what its backward adds', function()
    ms.manual_seed(4)
    local model = nn.Sequential(nn.Conv2d(2, 4, 3, { padding = 1, groups = 2 }), nn.ReLU(), nn.Flatten(),
                                nn.Linear(4 * 3 * 3, 3)):double()
    local conv, lin = model.modules[1], model.modules[4]
    local x, t = randn(2, 2, 3, 3), ints { 3, 1 }
    local crit = nn.CrossEntropyLoss()
    model:zero_grad()
    model.input_grad = true
    local out = model:forward(x)
    crit:forward(out, t)
    model:backward(x, crit:backward(out, t))
    local ref = model:flat_gradients():clone()
    model:zero_grad()
    model:flat_gradients():add_(1)                 -- added into, not overwritten
    local function f(m)
      local h = F.relu(F.conv2d(x, conv.weight, conv.bias, { padding = 1, groups = 2 }))
      return F.cross_entropy(F.linear(h:reshape(2, 36), lin.weight, lin.bias), t)
    end
    ms.autograd.grad(f)(model)
    close(model:flat_gradients(), ref + 1, 1e-13, 'arena')
    -- a weight used twice: both uses add up
    local set = ms.params { randn(3, 4), randn(3) }
    local P = set.params
    local xs = randn(5, 4)
    ms.autograd.grad(function() return (F.linear(xs, P[1], P[2]) + F.linear(xs * 2, P[1], P[2])):sum() end)(set)
    local g = ms.autograd.grad(function(q) return (F.linear(xs, q[1], q[2]) + F.linear(xs * 2, q[1], q[2])):sum() end)
    local gw = g({ P[1]:clone(), P[2]:clone() })
    close(set:flat_gradients(), ms.cat({ gw[1]:reshape(-1), gw[2]:reshape(-1) }), 1e-13, 'set arena')
  end)
end)

describe('nn.functional forms outside ms.autograd, and misuse', function()
  it('return fresh outputs and keep no state', function()
    local x, w, b = ms.randn(3, 4), ms.randn(2, 4), ms.randn(2)
    local y1 = F.linear(x, w, b)
    local keep = y1:clone()
    local y2 = F.linear(x * 2, w, b)
    H.same_bits(y1, keep, 'first output untouched')
    assert.are_not.equal(y1, y2)
    local l = F.cross_entropy(y1, ints { 1, 2, 2 })
    assert.is_true(ms.is_tensor(l))
    assert.are.equal(0, l:dim())
    assert.are.equal('float32', l.dtype)
  end)

  it('the layers\' kernels in the same table still work (and stay refused in place on the tape)', function()
    local x, g = ms.tensor { -1, 2 }, ms.tensor { 3, 4 }
    H.assert_close(F.relu_backward(x, g), { 0, 4 })
    H.assert_close(F.one_hot(ints { 2, 1 }, 3, x), { { 0, 1, 0 }, { 1, 0, 0 } })
    local p = ms.zeros(3)
    H.assert_error(function()
      ms.autograd.grad(function(q) F.index_add_(q, 1, ints { 1 }, ms.ones(1)); return q:sum() end)(p)
    end, 'nn.functional.index_add_')
  end)

  it('errors name the form and the argument', function()
    local x = ms.randn(3, 4)
    H.assert_error(function() F.linear(x, ms.randn(2, 5)) end, 'nn.functional.linear', 'input', '[3,4]')
    H.assert_error(function() F.linear(x, ms.randn(2, 4), ms.randn(3)) end, 'nn.functional.linear', 'bias')
    H.assert_error(function() F.linear(x, ms.randn(2, 4, f64)) end, 'nn.functional.linear', 'weight', 'float64')
    H.assert_error(function() F.linear(x, 'w') end, 'nn.functional.linear', 'weight')
    H.assert_error(function() F.conv2d(ms.randn(1, 3, 5, 5), ms.randn(2, 2, 3, 3)) end,
                   'nn.functional.conv2d', 'input', 'expected [N, 2, H, W]')
    H.assert_error(function() F.conv2d(ms.randn(1, 2, 5, 5), ms.randn(2, 2, 3, 3), nil, { strde = 2 }) end,
                   'nn.functional.conv2d', 'strde')
    H.assert_error(function() F.conv2d(ms.randn(1, 2, 5, 5), ms.randn(2, 2, 3, 3), nil, { padding_mode = 'reflect' }) end,
                   'nn.functional.conv2d', 'padding_mode')
    H.assert_error(function() F.max_pool2d(ms.randn(1, 1, 4, 4), 2, { padding = 2 }) end,
                   'nn.functional.max_pool2d', 'padding')
    H.assert_error(function() F.avg_pool2d(ms.randn(1, 1, 4, 4), 2, { dilation = 2 }) end,
                   'nn.functional.avg_pool2d', 'dilation')
    H.assert_error(function() F.cross_entropy(x, ints { 1, 2, 9 }) end, 'nn.functional.cross_entropy', 'target 9')
    H.assert_error(function() F.cross_entropy(x, ints { 1, 2 }) end, 'nn.functional.cross_entropy', 'target')
    H.assert_error(function() F.cross_entropy(x, ints { 1, 2, 3 }, { reduce = 'sum' }) end,
                   'nn.functional.cross_entropy', 'reduce')
    H.assert_error(function() F.cross_entropy(x, ints { 1, 2, 3 }, { weight = ms.ones(3) }) end,
                   'nn.functional.cross_entropy', 'weight')
    H.assert_error(function() F.mse_loss(x, ms.randn(4, 3)) end, 'nn.functional.mse_loss', 'shape')
    H.assert_error(function() F.softmax(x, 3) end, 'nn.functional.softmax', 'dim 3')
    H.assert_error(function() F.dropout(x, 1.5) end, 'nn.functional.dropout', 'p')
    H.assert_error(function() F.relu(ints { 1 }) end, 'nn.functional.relu', 'int64')
  end)

  it('a tracked class weight is an error, never a silent zero', function()
    local x, w = ms.randn(3, 4, f64), ms.ones(4, f64)
    H.assert_error(function()
      ms.autograd.grad(function(p) return F.cross_entropy(p.x, ints { 1, 2, 3 }, { weight = p.w }) end)({ x = x, w = w })
    end, 'nn.functional.cross_entropy', 'weight')
  end)
end)

describe('nn.functional forms on CUDA', function()
  local gpu = H.gate(it, pending, ms.cuda.is_available(), ms.cuda.why())
  gpu('forward and gradients equal the CPU (float32)', function()
    ms.manual_seed(2)
    local x = ms.randn(4, 3, 8, 8)
    local p = { w1 = ms.randn(5, 3, 3, 3) * 0.3, b1 = ms.randn(5), w2 = ms.randn(6, 20) * 0.3, b2 = ms.randn(6) }
    local t = ms.randint(1, 7, { 4 })
    local function f(q, xb, tb)
      local h = F.avg_pool2d(F.relu(F.conv2d(xb, q.w1, q.b1, { stride = 2, padding = 1 })), 2)
      h = F.max_pool2d(h, 1)
      return F.cross_entropy(F.linear(h:reshape(4, 20), q.w2, q.b2), tb, { label_smoothing = 0.1 })
    end
    local gc, lc = ms.autograd.grad(f)(p, x, t)
    local pg = {}
    for k, v in pairs(p) do pg[k] = v:cuda() end
    local gg, lg = ms.autograd.grad(f)(pg, x:cuda(), t:cuda())
    assert(math.abs(lc - lg) <= 1e-5 * math.max(1, math.abs(lc)), ('loss %g vs %g'):format(lc, lg))
    for k in pairs(p) do close(gg[k], gc[k], 1e-4, k) end
  end)
end)
