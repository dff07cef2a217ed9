-- ms.autograd's API: parameter structures, the loss, errors (ops without a rule, in-place
-- writes, modules on the tape, nesting), no_grad/detach, nn.Function, the optimizer
-- closure, hvp/jvp against known Hessians. The gradients of the ops themselves are
-- checked op by op in autograd_{elementwise,reduce,shape,nn}_spec.lua.
local ms = require 'moonstep'
local H = require 'helper'
local AG = require 'autograd_helper'
local nn, F = ms.nn, ms.nn.functional
local ag = ms.autograd

local f64 = { dtype = 'float64' }
local function randn(...)
  local shape = { ... }
  return ms.randn(shape, f64)
end
local function close(a, b, tol)
  local d = (a - b):abs():max()
  assert(d <= (tol or 1e-12), ('max difference %g'):format(d))
end

describe('ms.autograd.grad', function()
  before_each(function() ms.manual_seed(12) end)

  it('differentiates a function of one tensor and returns the value', function()
    local x = ms.tensor({ 1, -2, 3 }, f64)
    local g, v = ag.grad(function(p) return (p * p * 3):sum() end)(x)
    assert.are.same({ 6, -12, 18 }, g:totable())
    assert.are.equal(42, v)
    local v2, g2, extra = ag.value_and_grad(function(p) return (p * 2):sum(), 'aux' end)(x)
    assert.are.equal(4, v2)
    assert.are.same({ 2, 2, 2 }, g2:totable())
    assert.are.equal('aux', extra)
  end)

  it('returns gradients in the structure of a nested table, zeros for unused entries', function()
    local P = { a = randn(2, 3), inner = { b = randn(3), c = randn(2) }, list = { randn(1) } }
    local g = ag.grad(function(p) return (p.a * p.inner.b):sum() + p.list[1]:sum() * 2 end)(P)
    close(g.a, P.inner.b:view(1, 3):expand(2, 3))
    close(g.inner.b, P.a:sum(1))
    assert.are.same({ 0, 0 }, g.inner.c:totable())
    assert.are.same({ 2 }, g.list[1]:totable())
    assert.is_nil(rawget(g, 'x'))
  end)

  it('adds into the gradient arena of an ms.params set and of a Module', function()
    local w, b = randn(4), randn(4)
    local set = ms.params { w = w, b = b }
    set:zero_grad()
    local x = randn(4)
    local grads = ag.grad(function() return (w * x + b):sum() end)(set)
    close(grads[1], set.grads[1])
    ag.grad(function() return (w * x + b):sum() end)(set)          -- accumulates
    close(set.grads[1], (b * 0 + 1) * 2, 0)                          -- set order: b, w
    close(set.grads[2], x * 2)
    local m = nn.Linear(3, 2):double()
    m:zero_grad()
    local xin = randn(5, 3)
    ag.grad(function(model) return F.linear(xin, model.weight, model.bias):sum() end)(m)
    close(m.grad_bias, ms.full({ 2 }, 5, f64))
    close(m.grad_weight, xin:sum(1):view(1, 3):expand(2, 3))
  end)

  it('agrees with finite differences on a composite function', function()
    local P = { a = randn(3, 4), b = randn(4) }
    AG.check(function(p) return ((p.a - p.b) * p.a + 2 * p.b - 1):sum() end, P)
  end)

  it('keeps one-element slices and whole reductions of tracked tensors as 0-d tensors', function()
    local rosen = function(p)
      local x, y = p[{ 1 }], p[{ 2 }]
      assert.is_true(ms.is_tensor(x) and x:dim() == 0)
      return (1 - x) ^ 2 + 100 * (y - x ^ 2) ^ 2
    end
    local p = ms.tensor({ -1.5, 2 }, f64)
    local g, v = ag.grad(rosen)(p)
    local x, y = -1.5, 2
    assert.are.equal((1 - x) ^ 2 + 100 * (y - x ^ 2) ^ 2, v)
    close(g, ms.tensor({ -2 * (1 - x) - 400 * x * (y - x ^ 2), 200 * (y - x ^ 2) }, f64), 1e-9)
    assert.are.equal(-1.5, p[{ 1 }])                                -- a number off the tape
  end)

  it('hands back live gradients after freeing the spent ones (large tensors, views)', function()
    local p = randn(128, 128)                                    -- 128 KiB: released sizes
    local g = ag.grad(function(q) return (q + 1):mul(2):sum() end)(p)
    assert.are.equal(2, g:min()); assert.are.equal(2, g:max())
    g = ag.grad(function(q) return q:view(-1):mul(2):sum() end)(p)
    assert.are.equal(2, g:min()); assert.are.equal(2, g:max())
    local P = { a = randn(128, 128), b = randn(128, 128) }
    local gs = ag.grad(function(q) return (q.a + q.b):mul(3):sum() end)(P)
    assert.are.equal(3, gs.a:min()); assert.are.equal(3, gs.b:max())
    gs.a:mul_(2)                                                 -- each its own tensor
    assert.are.equal(3, gs.b:max())
  end)

  it('returns as many results as the op does, on the tape as off it', function()
    local x = ms.tensor({ 1, 2 }, f64)
    assert.are.equal(2, select('#', ag.grad(function(p) return p:sum() end)(x)))
    ag.grad(function(p)
      assert.are.equal(1, select('#', p:sum()))
      assert.are.equal(1, select('#', p * 2))
      assert.are.equal(2, select('#', p:view(1, 2):max(2)))
      return p:sum()
    end)(x)
  end)

  it('gives zero gradients when the loss does not depend on the parameters', function()
    local x = randn(3)
    local g, v = ag.grad(function() return ms.ones({}, f64) end)(x)
    assert.are.same({ 0, 0, 0 }, g:totable())
    assert.are.equal(1, v)
  end)
end)

describe('ms.autograd errors', function()
  local x
  before_each(function() x = ms.tensor({ 1, 2, 3 }, f64) end)

  it('refuses a loss that is a number, not a scalar, or not a tensor', function()
    H.assert_error(function() ag.grad(function(p) return p:sum():item() end)(x) end,
                   'grad: f returned a Lua number')
    H.assert_error(function() ag.grad(function(p) return p * 2 end)(x) end,
                   'expected a float tensor of one element')
    H.assert_error(function() ag.value_and_grad(function() return 'x' end)(x) end, 'value_and_grad: f returned')
    H.assert_error(function() ag.grad(42) end, 'grad: f is 42, expected a function')
  end)

  it('refuses bad parameters', function()
    H.assert_error(function() ag.grad(function(p) return p:sum() end)(ms.tensor({ 1, 2 }, { dtype = 'int64' })) end,
                   'parameter 1 has dtype int64')
    H.assert_error(function() ag.grad(function() return x:sum() end)({ a = 1 }) end, 'params["a"] is 1')
    H.assert_error(function() ag.grad(function() return x:sum() end)('w') end, 'params is "w"')
    local freed = ms.zeros(2, f64); freed:free()
    H.assert_error(function() ag.grad(function(p) return p:sum() end)(freed) end, 'grad')
  end)

  it('names an op without a gradient rule instead of returning a silent zero', function()
    local A = require 'moonstep.autograd.tape'
    local install = require 'moonstep.autograd.install'
    local lib = install.install({ opaque = function(t) return t:detach():clone() end }, 'lib.')
    H.assert_error(function() ag.grad(function(p) return lib.opaque(p):sum() end)(x) end,
                   'lib.opaque: no gradient rule')
    assert.is_nil(A.current)
    -- a Lua composite of recorded ops passes
    local lib2 = install.install({ twice = function(t) return t + t end }, 'lib.')
    local g = ag.grad(function(p) return lib2.twice(p):sum() end)(x)
    assert.are.same({ 2, 2, 2 }, g:totable())
  end)

  it('refuses in-place writes to tracked tensors and to memory the tape saved', function()
    H.assert_error(function() ag.grad(function(p) p:add_(1); return p:sum() end)(x) end,
                   'add_: an in-place operation on a tensor ms.autograd tracks')
    H.assert_error(function() ag.grad(function(p) local y = p * 2; y:mul_(3); return y:sum() end)(x) end,
                   'mul_: an in-place operation')
    H.assert_error(function() ag.grad(function(p) p[{ { 1, 2 } }] = 0; return p:sum() end)(x) end,
                   'Tensor slice assignment t[{...}] = v: an in-place operation on a tensor ms.autograd tracks')
    local z = ms.tensor({ 4, 5, 6 }, f64)
    H.assert_error(function() ag.grad(function(p) local y = p * z; z:add_(1); return y:sum() end)(x) end,
                   'add_: writes to memory ms.autograd\'s backward pass needs (saved by mul)')
    assert.are.same({ 4, 5, 6 }, z:totable())
    -- untracked scratch that no op saved may be written
    local g = ag.grad(function(p) local s = ms.zeros(3, f64); s:fill_(2); return (p * 1):sum() end)(x)
    assert.are.same({ 1, 1, 1 }, g:totable())
  end)

  it('refuses writing a tracked tensor into another in place, and in-place writes inside no_grad', function()
    H.assert_error(function() ag.grad(function(p) local q = ms.zeros(3, f64); q:copy_(p); return (q * p):sum() end)(x) end,
                   'copy_: writes a tensor ms.autograd tracks into another tensor in place')
    H.assert_error(function() ag.grad(function(p) local q = ms.zeros(3, f64); q[{ { 1, 2 } }] = p[{ { 1, 2 } }]; return q:sum() end)(x) end,
                   'Tensor slice assignment t[{...}] = v: writes a tensor ms.autograd tracks')
    H.assert_error(function()
      ag.grad(function(p) local y = (p * p):sum(); ms.no_grad(function() p:mul_(10) end); return y end)(x)
    end, 'mul_: an in-place operation on a tensor ms.autograd tracks')
    assert.are.same({ 1, 2, 3 }, x:totable())
    local c = ms.tensor({ 4, 5, 6 }, f64)
    H.assert_error(function()
      ag.grad(function(p) local y = (p * c):sum(); ms.no_grad(function() c:mul_(10) end); return y end)(x)
    end, 'mul_: writes to memory ms.autograd\'s backward pass needs (saved by mul)')
    -- scratch that the tape does not need may still be written inside no_grad
    local g = ag.grad(function(p) ms.no_grad(function() ms.zeros(3, f64):add_(1) end); return (p * 2):sum() end)(x)
    assert.are.same({ 2, 2, 2 }, g:totable())
  end)

  it('puts the tape aside while f is suspended in a coroutine', function()
    local df = ag.grad(function(p) local y = p * 3; coroutine.yield('paused'); return y:sum() end)
    local co = coroutine.create(function() return df(x) end)
    local ok, v = coroutine.resume(co)
    assert.is_true(ok); assert.are.equal('paused', v)
    assert.is_false(ag.is_recording())
    local g2 = ag.grad(function(p) return (p * p):sum() end)(x)          -- another one meanwhile
    assert.are.same({ 2, 4, 6 }, g2:totable())
    local ok2, g = coroutine.resume(co)
    assert.is_true(ok2, tostring(g))
    assert.are.same({ 3, 3, 3 }, g:totable())
    -- an abandoned one leaves nothing behind
    coroutine.resume(coroutine.create(function() df(x) end))
    assert.is_false(ag.is_recording())
    assert.are.same({ 2, 4, 6 }, ag.grad(function(p) return (p * p):sum() end)(x):totable())
    H.assert_error(function() df(x) end, 'grad: f yielded (coroutine.yield) but grad was not called from a coroutine')
  end)

  it('refuses a Module on a tracked tensor, runs one on untracked data', function()
    local lin = nn.Linear(3, 2):double()
    H.assert_error(function() ag.grad(function(p) return lin:forward(p:view(1, 3)):sum() end)(x) end,
                   'Linear.forward: argument 1 is a tensor ms.autograd tracks')
    local crit = nn.MSELoss()
    H.assert_error(function() ag.grad(function(p) return ms.tensor(crit:forward(p, p:detach())) end)(x) end,
                   'MSELoss.forward: argument 1 is a tensor ms.autograd tracks')
    local data = randn(4, 3)
    local g = ag.grad(function(p) return (lin:forward(data):sum(1) * p:narrow(1, 1, 2)):sum() end)(x)
    close(g:narrow(1, 1, 2), lin:forward(data):sum(1))
    H.assert_error(function() ag.grad(function(w) return lin:forward(data):sum() + w:sum() end)(lin.weight) end,
                   'Linear.forward: its parameter weight is tracked by ms.autograd')
  end)

  it('refuses gradients of gradients and a tape left incomplete by pcall', function()
    H.assert_error(function()
      ag.grad(function(p) local g = ag.grad(function(q) return (q * q):sum() end)(p); return g:sum() end)(x)
    end, 'grad: called while another ms.autograd function records')
    H.assert_error(function()
      ag.grad(function(p) pcall(function() return p:view(7) end); return p:sum() end)(x)
    end, 'an op inside f failed and f went on')
    local A = require 'moonstep.autograd.tape'
    assert.is_nil(A.current)
    -- an error inside f reaches the caller unchanged, and the tape is gone
    H.assert_error(function() ag.grad(function(p) error('boom') end)(x) end, 'boom')
    assert.is_nil(A.current)
    assert.is_false(ag.is_recording())
  end)

  it('sees a tracked tensor inside an options table (never a silent zero)', function()
    local xx, yy = randn(4, 3), ms.rand({ 4, 3 }, f64)
    H.assert_error(function()
      ag.grad(function(q) return F.binary_cross_entropy_with_logits(xx, yy, { pos_weight = q }) end)(ms.ones(3, f64))
    end, 'pos_weight carries no gradient')
    local lib = require('moonstep.autograd.install').install({
      scaled = function(t, opts) return t * opts.by:detach() end }, 'lib.')
    H.assert_error(function() ag.grad(function(q) return lib.scaled(xx, { by = q }):sum() end)(ms.ones(3, f64)) end,
                   'lib.scaled: no gradient rule')
  end)

  it('refuses out= on the tape', function()
    local out = ms.empty(3, 3, f64)
    local m = randn(3, 3)
    H.assert_error(function()
      ag.grad(function(p) return ms.matmul(p:view(3, 1), p:view(1, 3), { out = out }):sum() end)(x)
    end, 'out= is not supported on the ms.autograd tape')
    local _ = m
  end)
end)

describe('ms.no_grad and detach', function()
  it('make constants inside a differentiated function', function()
    local x = ms.tensor({ 1, 2, 3 }, f64)
    local g = ag.grad(function(p)
      local c = ms.no_grad(function() return p * 10 end)
      assert.is_false(ag.is_tracked(c))
      assert.is_true(ag.is_tracked(p))
      return (p * c):sum() + (p:detach() * p):sum()
    end)(x)
    close(g, x * 10 + x)
    assert.are.equal(7, ms.no_grad(function(a, b) return a + b end, 3, 4))
    H.assert_error(function() ms.no_grad(5) end, 'no_grad: fn is 5')
  end)
end)

describe('nn.Function', function()
  before_each(function() ms.manual_seed(3) end)

  local function affine_tanh()
    local W, b = randn(5, 4) * 0.5, randn(5) * 0.1
    return nn.Function(function(x, p) return F.linear(x, p.weight, p.bias):tanh() end,
                       { weight = W, bias = b })
  end

  it('has the gradients of the same function under ms.autograd, added on each backward', function()
    local m = affine_tanh()
    local x, g = randn(3, 4), randn(3, 5)
    local y = m:forward(x)
    m:zero_grad()
    local gx = m:backward(x, g)
    local ref = ag.grad(function(P)
      return (F.linear(P.x, P.w, P.b):tanh() * g):sum()
    end)({ x = x, w = m.weight, b = m.bias })
    close(y, F.linear(x, m.weight, m.bias):tanh())
    close(gx, ref.x, 1e-14)
    close(m.grad_weight, ref.w, 1e-14)
    close(m.grad_bias, ref.b, 1e-14)
    m:backward(x, g)                                     -- a second backward adds
    close(m.grad_bias, ref.b * 2, 1e-14)
  end)

  it('runs its backward again with the same result (forms that keep state: conv2d, pooling, cross-entropy)', function()
    local m = nn.Function(function(x, p)
      local h = F.max_pool2d(F.conv2d(x, p.w, p.b, { padding = 1 }), 2)
      return F.cross_entropy(h:reshape(2, -1), ms.tensor({ 1, 5 }, { dtype = 'int64' }), { reduction = 'none' })
    end, { w = randn(3, 2, 3, 3), b = randn(3) })
    local x = randn(2, 2, 4, 4)
    m:forward(x)
    m:zero_grad()
    local g = randn(2)
    local gx1, gw1 = m:backward(x, g):clone(), m.grad_w:clone()
    local gx2 = m:backward(x, g)
    close(gx2, gx1, 0)
    close(m.grad_w, gw1 * 2, 1e-14)
  end)

  it('sits in a Sequential and trains with an optimizer', function()
    local model = nn.Sequential(affine_tanh(), nn.Linear(5, 2):double())
    local crit = nn.CrossEntropyLoss()
    local x, y = randn(16, 4), ms.randint(1, 3, { 16 })
    local opt = ms.optim.Adam(model, { lr = 0.05 })
    local first, last
    for i = 1, 30 do
      last = opt:step(function()
        local l = crit:forward(model:forward(x), y)
        model:backward(x, crit:backward(model.output, y))
        return l
      end)
      first = first or last
    end
    assert.is_true(last < first * 0.7, ('loss %g -> %g'):format(first, last))
  end)

  it('joins an enclosing tape inside a Sequential too (its other layers still refuse)', function()
    local m = affine_tanh()
    local seq = nn.Sequential(m)
    local x = randn(2, 4)
    local g = ag.grad(function(P) return seq:forward(P.x):sum() end)({ x = x })
    local ref = ag.grad(function(P) return F.linear(P.x, m.weight, m.bias):tanh():sum() end)({ x = x })
    close(g.x, ref.x, 0)
    local seq2 = nn.Sequential(nn.Linear(4, 2):double())
    H.assert_error(function() ag.grad(function(P) return seq2:forward(P.x):sum() end)({ x = x }) end,
                   'Linear.forward: argument 1 is a tensor ms.autograd tracks')
  end)

  it('joins the tape of an enclosing ms.autograd function', function()
    local m = affine_tanh()
    local x = randn(2, 4)
    local g = ag.grad(function(P) return m:forward(P.x):sum() end)({ x = x, w = m.weight })
    local ref = ag.grad(function(P) return F.linear(P.x, P.w, m.bias):tanh():sum() end)({ x = x, w = m.weight })
    close(g.x, ref.x, 1e-14)
    close(g.w, ref.w, 1e-14)
  end)

  it('checks its arguments', function()
    H.assert_error(function() nn.Function(3) end, 'Function: f is 3, expected a function')
    H.assert_error(function() nn.Function(function(x) return x end, { w = 3 }) end, 'Function: params["w"] is 3')
    local m = nn.Function(function() return 'no' end)
    H.assert_error(function() m:forward(randn(2)) end, 'Function.forward: f returned "no"')
    local id = nn.Function(function(x) return x * 1 end)
    H.assert_error(function() id:backward(randn(2), randn(2)) end, 'Function.backward')
  end)
end)

describe('the optimizer closure', function()
  it('takes ms.autograd gradients through a parameter set (Adam, as the hand-written gradient)', function()
    ms.manual_seed(5)
    local A0, b0 = randn(6, 3), randn(6)
    local function run(use_autograd)
      local w = ms.zeros(3, f64)
      local set = ms.params { w = w }
      local opt = ms.optim.Adam(set, { lr = 0.1 })
      local vg = ag.value_and_grad(function() local r = ms.matmul(A0, w) - b0; return (r * r):sum() end)
      for _ = 1, 5 do
        opt:step(function()
          if use_autograd then return (vg(set)) end
          local r = ms.matmul(A0, w) - b0
          set.grads[1]:copy_(ms.matmul(A0, r, { transpose_a = true }) * 2)
          return (r * r):sum()
        end)
      end
      return w
    end
    close(run(true), run(false), 1e-13)
  end)
end)

describe('multi-pass optimizers with an ms.autograd closure', function()
  it('SAM and LBFGS take the same steps as with the hand-written gradient', function()
    ms.manual_seed(6)
    local A0, b0 = randn(7, 3), randn(7)
    for _, make in ipairs {
      function(set) return ms.optim.SAM(set, { base = ms.optim.SGD { lr = 0.05, momentum = 0.9 }, rho = 0.1 }) end,
      function(set) return ms.optim.LBFGS(set, { lr = 1, history_size = 4 }) end,
    } do
      local function run(use_autograd)
        local w = ms.zeros(3, f64)
        local set = ms.params { w = w }
        local opt = make(set)
        local vg = ag.value_and_grad(function() local r = ms.matmul(A0, w) - b0; return (r * r):sum() end)
        for _ = 1, 4 do
          opt:step(function()
            if use_autograd then return (vg(set)) end
            local r = ms.matmul(A0, w) - b0
            set.grads[1]:add_(ms.matmul(A0, r, { transpose_a = true }) * 2)
            return (r * r):sum()
          end)
        end
        return w
      end
      close(run(true), run(false), 1e-12)
    end
  end)
end)

describe('ms.autograd.hvp and jvp', function()
  before_each(function() ms.manual_seed(8) end)

  it('give A v for the quadratic 1/2 x^T A x + b^T x', function()
    local M = randn(5, 5)
    local A = ms.matmul(M, M, { transpose_a = true })               -- symmetric
    local b, x, v = randn(5), randn(5), randn(5)
    local function q(p) return ms.dot(p, ms.matmul(A, p:view(5, 1)):view(5)) * 0.5 + ms.dot(b, p) end
    local hv, g, loss = ag.hvp(q)(x, v)
    close(hv, ms.matmul(A, v:view(5, 1)):view(5), 1e-7)
    close(g, ms.matmul(A, x:view(5, 1)):view(5) + b, 1e-12)
    assert.is_number(loss)
    local keep = x:clone()
    ag.hvp(q)(x, v)
    H.same_bits(x, keep)                           -- restored exactly
    local out, jv = ag.jvp(function(p) return ms.matmul(A, p:view(5, 1)):view(5) end)(x, v)
    close(out, ms.matmul(A, x:view(5, 1)):view(5))
    close(jv, ms.matmul(A, v:view(5, 1)):view(5), 1e-7)
  end)

  it('take directions in the structure of the parameters', function()
    local P = { a = randn(3), b = randn(2) }
    local V = { a = randn(3), b = randn(2) }
    local hv = ag.hvp(function(p) return (p.a * p.a):sum() * 1.5 + (p.a:sum() * p.b:sum()) end)(P, V)
    -- H = [[3 I, 1 1^T], [1 1^T, 0]]
    close(hv.a, V.a * 3 + V.b:sum(), 1e-7)
    close(hv.b, ms.full({ 2 }, V.a:sum(), f64), 1e-7)
    H.assert_error(function() ag.hvp(function(p) return p.a:sum() end)(P, { a = V.a }) end,
                   'hvp: v holds 1 tensors, expected 2')
    H.assert_error(function() ag.hvp(function(p) return p:sum() end)(randn(3), randn(4)) end,
                   'hvp: v 1 has shape [4], expected [3]')
    H.assert_error(function() ag.hvp(function(p) return p:sum() end)(randn(3), ms.randn(3)) end,
                   'hvp: v 1 is float32 on cpu, expected float64 on cpu')
    H.assert_error(function() ag.hvp(function(p) return p:sum() end)(randn(3), ms.full({ 3 }, 0 / 0, f64)) end,
                   'hvp: v 1 holds NaN or inf')
    H.assert_error(function() ag.jvp(function(p) return p * 2 end)(ms.full({ 2 }, math.huge, f64), randn(2)) end,
                   'jvp: parameter 1 holds NaN or inf')
    H.assert_error(function()
      ag.grad(function(p) local _, jv = ag.jvp(function(q) return q * 2 end)(p, p); return jv:sum() end)(randn(2))
    end, 'jvp: called while another ms.autograd function records')
  end)
end)

describe('ms.linalg.solve on the tape', function()
  it('agrees with finite differences in a and b', function()
    ms.manual_seed(21)
    local a = randn(4, 4) + ms.eye(4, 4, f64) * 4
    AG.check_op(function(m, v) return ms.linalg.solve(m, v) end, { a, randn(4) })
    AG.check_op(function(m, v) return ms.linalg.solve(m, v) end, { a, randn(4, 2) })
    local s = a:clone()
    H.assert_error(function() ag.grad(function(m) return ms.linalg.eigh(m):sum() end)(s) end,
                   'linalg.eigh: no gradient rule')
  end)
end)

describe('ms.autograd on the GPU', function()
  local git = H.gate(it, pending, ms.cuda.is_available(), ms.cuda.why())
  git('gives the CPU gradients of a small MLP loss', function()
    ms.manual_seed(4)
    local P = { W1 = randn(8, 6) * 0.3, b1 = randn(8) * 0.1, W2 = randn(3, 8) * 0.3, b2 = randn(3) * 0.1 }
    local x, y = randn(5, 6), ms.randint(1, 4, { 5 })
    local function loss(p, xx, yy)
      return F.cross_entropy(F.linear(F.linear(xx, p.W1, p.b1):relu(), p.W2, p.b2), yy) + (p.W1 * p.W1):sum() * 1e-3
    end
    local g = ag.grad(loss)(P, x, y)
    local Pg = {}
    for k, v in pairs(P) do Pg[k] = v:cuda() end
    local gg = ag.grad(loss)(Pg, x:cuda(), y:cuda())
    for k in pairs(P) do close(gg[k]:cpu(), g[k], 1e-12) end
  end)
end)
