-- ms.autograd's rules for views, copies, conversions, indexing and matrix products
-- (lua/moonstep/autograd/rules_shape.lua) against float64 central differences
-- (tests/autograd_helper.lua): random shapes, non-contiguous inputs, negative dims,
-- repeated indices, every matmul form and option, view chains whose gradient adds to
-- another use of the same tensor; float32 against float64; CUDA against CPU when a GPU
-- is present.
local ms = require 'moonstep'
local H = require 'helper'
local AG = require 'autograd_helper'
local ag = ms.autograd

local f64 = { dtype = 'float64' }
local randn, transposed, narrowed = AG.randn, AG.transposed, AG.narrowed   -- (float64)
local function idx(v) return ms.tensor(v, { dtype = 'int64' }) end
local check = AG.check_op
local function same(got, want, tol) H.assert_close(got, want, tol or 1e-12) end

describe('ms.autograd views', function()
  before_each(function() ms.manual_seed(31) end)

  it('view, reshape, flatten', function()
    check(function(x) return x:view(4, 3) end, { randn(3, 4) })
    check(function(x) return x:view({ 2, -1, 2 }) end, { randn(3, 4) })
    check(function(x) return x:reshape(12) end, { transposed(3, 4) })
    check(function(x) return x:flatten() end, { narrowed(2, 3) })
  end)

  it('narrow and select, negative dims and indices', function()
    check(function(x) return x:narrow(2, 2, 2) end, { randn(3, 4) })
    check(function(x) return x:narrow(-2, 1, 3) end, { transposed(3, 4) })
    check(function(x) return x:narrow(1, 1, 3) end, { randn(3, 4) })
    check(function(x) return x:select(1, 2) end, { randn(3, 4) })
    check(function(x) return x:select(-1, -1) end, { narrowed(3, 4) })
    check(function(x) return x:select(2, 3) end, { randn(2, 3, 4) })
  end)

  it('transpose, t, permute (numbers or a table, negative dims)', function()
    check(function(x) return x:transpose() end, { randn(3, 4) })
    check(function(x) return x:transpose(1, -1) end, { randn(2, 3, 4) })
    check(function(x) return x:t() end, { narrowed(3, 2) })
    check(function(x) return x:permute(3, 1, 2) end, { randn(2, 3, 4) })
    check(function(x) return x:permute({ -1, -3, 2 }) end, { randn(2, 3, 4) })
  end)

  it('unsqueeze, squeeze with and without dim', function()
    check(function(x) return x:unsqueeze(1) end, { randn(3, 4) })
    check(function(x) return x:unsqueeze(-1) end, { transposed(3, 4) })
    check(function(x) return x:unsqueeze(2) end, { randn(3) })
    check(function(x) return x:squeeze() end, { randn(1, 3, 1, 4, 1) })
    check(function(x) return x:squeeze(-2) end, { randn(3, 1, 4):narrow(3, 2, 1) })
    check(function(x) return x:squeeze(1) end, { randn(3, 4) })   -- nothing to squeeze
  end)

  it('expand and expand_as (new leading dims, size-1 dims)', function()
    check(function(x) return x:expand(2, 3, 4) end, { randn(3, 1) })
    check(function(x) return x:expand(-1, 5) end, { randn(4, 1) })
    check(function(x, y) return x:expand_as(y) end, { randn(1, 4), randn(3, 4) }, { wrt = { 1 } })
  end)

  it('a view chain adds its gradient to another use of the same tensor', function()
    AG.check(function(x)
      return (x:t():narrow(1, 2, 2):reshape(6) * ms.arange(1, 7, f64)):sum() + (x * x):sum()
    end, randn(3, 4))
    AG.check(function(x)
      local y = x:permute(2, 1, 3):unsqueeze(1):expand(2, 3, 2, 4)
      return (y * y):sum() + x:select(1, 1):sum() * 3
    end, randn(2, 3, 4))
  end)

  it('slicing t[{...}] goes through select and narrow; one element is a 0-d tensor on the tape', function()
    check(function(x) return x[{ 2, { 2, 3 } }] end, { randn(3, 4) })
    check(function(x) return x[{ {}, { 2 } }] end, { transposed(3, 4) })
    check(function(x) return x[{ -1 }] end, { randn(2, 3, 4) })
    local seen
    local g = ag.grad(function(x)
      seen = x[{ 2, 3 }]
      return seen * 5 + x[{ { 1, 2 }, -1 }]:sum()
    end)(randn(3, 4))
    assert.is_true(ms.is_tensor(seen))
    assert.are.equal(0, seen:dim())
    same(g, { { 0, 0, 0, 1 }, { 0, 0, 5, 1 }, { 0, 0, 0, 0 } })
    assert.are.equal('number', type(randn(3, 4)[{ 1, 1 }]))   -- off the tape: a number
  end)
end)

describe('ms.autograd copies and conversions', function()
  before_each(function() ms.manual_seed(32) end)

  it('clone and contiguous', function()
    check(function(x) return x:clone() end, { transposed(3, 4) })
    check(function(x) return x:contiguous() end, { transposed(3, 4) })
    check(function(x) return x:contiguous() * 2 end, { randn(3, 4) })
  end)

  it('dtype conversions send the gradient back in the input\'s dtype', function()
    local x = ms.randn(3, 4)
    local g = ag.grad(function(p) return (p:double() * p:double()):sum() end)(x)
    assert.are.equal('float32', g.dtype)
    H.assert_close(g, x * 2, 1e-6)
    local y = randn(2, 3)
    local gy = ag.grad(function(p) return (p:float() * 3):sum() + p:to('float32'):sum() end)(y)
    assert.are.equal('float64', gy.dtype)
    same(gy, ms.full({ 2, 3 }, 4, f64))
    check(function(p) return p:to('cpu', 'float64') * p end, { randn(3) })
  end)

  it('long and byte give integer results that carry no gradient', function()
    local g = ag.grad(function(p) return p:sum() + p:long():double():sum() end)(randn(2, 2):mul(3))
    same(g, { { 1, 1 }, { 1, 1 } })
  end)
end)

describe('ms.autograd indexing', function()
  before_each(function() ms.manual_seed(33) end)

  it('index_select with repeated indices (tensor or table), negative dims', function()
    check(function(x) return x:index_select(1, idx { 3, 1, 3, 3 }) end, { randn(4, 3) })
    check(function(x) return ms.index_select(x, -1, { 2, 2, 1 }) end, { transposed(3, 4) })
    check(function(x) return x:index_select(2, idx { 1, 3 }) end, { randn(2, 3, 4) })
    local g = ag.grad(function(x) return x:index_select(1, { 2, 2, 2 }):sum() end)(randn(3))
    same(g, { 0, 3, 0 })
  end)

  it('gather with repeated indices along any dim', function()
    check(function(x) return x:gather(2, idx { { 1, 1, 3 }, { 2, 2, 2 } }) end, { randn(2, 4) })
    check(function(x) return ms.gather(x, 1, idx { { 3, 1 }, { 3, 3 } }) end, { transposed(3, 4) })
    check(function(x) return x:gather(-1, idx { { { 2, 2 } }, { { 1, 4 } } }) end, { randn(2, 3, 4) })
    local g = ag.grad(function(x) return x:gather(1, { 1, 1, 2 }):sum() end)(randn(3))
    same(g, { 2, 1, 0 })
  end)

  it('cat narrows the gradient per input (the same tensor twice adds)', function()
    check(function(a, b) return ms.cat({ a, b }) end, { randn(2, 3), randn(4, 3) })
    check(function(a, b) return ms.cat({ a, b, a }, -1) end, { transposed(3, 2), randn(3, 1) })
    check(function(a, b) return ms.cat({ a, b }, 2) end, { randn(2, 3, 2), randn(2, 1, 2) })
    -- an untracked input in the list
    local c = randn(2, 3)
    check(function(a) return ms.cat({ c, a }, 1) end, { randn(1, 3) })
  end)
end)

describe('ms.autograd matrix products', function()
  before_each(function() ms.manual_seed(34) end)

  it('2-D with every transpose option and alpha, non-contiguous operands', function()
    check(ms.matmul, { randn(3, 4), randn(4, 5) })
    check(ms.matmul, { transposed(3, 4), narrowed(4, 2) })
    for _, ta in ipairs { false, true } do
      for _, tb in ipairs { false, true } do
        local a = ta and randn(4, 3) or randn(3, 4)
        local b = tb and randn(5, 4) or randn(4, 5)
        local opts = { transpose_a = ta, transpose_b = tb, alpha = -1.5 }
        check(function(x, y) return ms.matmul(x, y, opts) end, { a, b })
        check(function(x, y) return x:matmul(y, opts) end, { a:t():contiguous():t(), b })
      end
    end
  end)

  it('1-D operands: vector . vector, vector x matrix, matrix x vector', function()
    check(ms.matmul, { randn(4), randn(4) })
    check(ms.matmul, { randn(4), randn(4, 3) })
    check(ms.matmul, { randn(3, 4), randn(4) })
    check(function(a, b) return ms.matmul(a, b, { transpose_b = true }) end, { randn(4), randn(3, 4) })
    check(function(a, b) return ms.matmul(a, b, { transpose_a = true }) end, { randn(4, 3), randn(4) })
    ag.grad(function(a)
      local d = ms.matmul(a, a)
      assert.are.equal(0, d:dim())
      return d
    end)(randn(3))
  end)

  it('batched and broadcast 3-D, bmm', function()
    check(ms.matmul, { randn(2, 3, 4), randn(2, 4, 5) })
    check(ms.matmul, { randn(2, 3, 4), randn(4, 5) })
    check(function(a, b) return ms.matmul(a, b, { transpose_b = true, alpha = 2 }) end,
          { randn(2, 3, 4), randn(5, 4) })
    check(function(a, b) return ms.matmul(a, b, { transpose_a = true }) end,
          { randn(2, 4, 3), randn(4, 5) })
    check(ms.matmul, { randn(3, 4), randn(2, 4, 5) })
    check(function(a, b) return ms.matmul(a, b, { transpose_a = true, transpose_b = true }) end,
          { randn(4, 3), randn(2, 5, 4) })
    check(ms.matmul, { randn(4), randn(2, 4, 5) })
    check(ms.matmul, { randn(2, 3, 4), randn(4) })
    check(ms.bmm, { randn(2, 3, 4), randn(2, 4, 5) })
    check(function(a, b) return ms.bmm(a, b, { transpose_a = true }) end, { randn(1, 4, 3), randn(3, 4, 5) })
    check(function(a, b) return a:bmm(b, { transpose_b = true }) end, { randn(3, 3, 4), randn(1, 5, 4) })
    check(ms.matmul, { randn(2, 4, 3):transpose(2, 3), randn(4, 2, 5):permute(2, 1, 3) })
  end)

  it('one operand untracked; the same tensor on both sides', function()
    local w = randn(4, 2)
    check(function(x) return ms.matmul(x, w) end, { randn(3, 4) })
    check(function(x) return ms.matmul(x, x, { transpose_a = true }) end, { randn(3, 4) })
  end)

  it('refuses beta without out on the tape (it would scale uninitialised memory)', function()
    H.assert_error(function()
      ag.grad(function(a) return ms.matmul(a, a, { beta = 1 }):sum() end)(randn(2, 2))
    end, 'matmul: beta is 1 without out')
    -- beta = 0 is the default and passes
    ag.grad(function(a) return ms.matmul(a, a, { beta = 0 }):sum() end)(randn(2, 2))
  end)
end)

describe('ms.autograd shapes: dtypes and devices', function()
  before_each(function() ms.manual_seed(35) end)

  local function loss(p)
    local w = ms.arange(1, 13, { dtype = p.dtype }):view(4, 3)
    local y = ms.matmul(p, w, { alpha = 0.5 }):t():index_select(2, { 1, 3, 3 })
    local z = ms.cat({ p:narrow(2, 1, 2), p:t():contiguous():t():select(2, 4):unsqueeze(2) }, 2)
    return (y * y):sum() + (z:gather(1, { { 1, 2, 3 } }) * 3):sum() + p:transpose():reshape(12):sum()
  end

  it('float32 gradients agree with float64 ones', function()
    AG.agree_across(loss, randn(3, 4), 1e-5)
  end)

  AG.cuda_it(it, pending)('CUDA gradients agree with the CPU ones (and to(\'cuda\') sends the gradient back)', function()
    local x = ms.randn(3, 4)
    AG.agree_across(loss, x, 1e-4, { across = 'cuda' })
    local gx = ag.grad(function(p) return (p:cuda() * 2):sum() + ms.bmm(p:view(1, 3, 4):cuda(), p:view(1, 4, 3):cuda()):sum() end)(x)
    assert.are.equal('cpu', gx.device)
    local want = ag.grad(function(p) return (p * 2):sum() + ms.bmm(p:view(1, 3, 4), p:view(1, 4, 3)):sum() end)(x)
    H.assert_close(gx, want, 1e-4)
  end)
end)
