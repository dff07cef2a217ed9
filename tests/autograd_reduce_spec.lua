-- ms.autograd's reduction rules (lua/moonstep/autograd/rules_reduce.lua): sum, mean,
-- max, min, norm, var, std, dot, cumsum, sort, topk against float64 central differences
-- (tests/autograd_helper.lua) on random shapes, non-contiguous inputs, negative dims and
-- keepdim; PyTorch's gradients at the special points (ties, norm at 0, std at 0) as
-- constants from /usr/bin/python3 (torch 1.13, float64; each quotes its expression;
-- moonstep's dims and indices are 1-based where torch's are 0-based); float32 against
-- float64; CUDA against CPU when a GPU is present.
local ms = require 'moonstep'
local H = require 'helper'
local AG = require 'autograd_helper'
local ag = ms.autograd

local f64 = { dtype = 'float64' }
local randn, transposed, narrowed = AG.randn, AG.transposed, AG.narrowed   -- (float64)
local function t64(v) return ms.tensor(v, f64) end

-- op's result as a tensor off the tape too (a full reduction is a Lua number there), so
-- that AG.check_op can weight it.
local function tensor_result(op)
  return function(...)
    local v = op(...)
    if type(v) == 'number' then return ms.full({}, v, f64) end
    return v
  end
end
local function check(op, args, opts) return AG.check_op(tensor_result(op), args, opts) end

-- d sum(op(x) * w) / dx, w = 1, 2, 3, ... in op(x)'s shape (the weights the torch
-- expressions below use: (y * torch.arange(1, y.numel() + 1).reshape(y.shape)).sum()).
local function weighted_grad(op, x)
  return ag.grad(function(p)
    local y = op(p)
    local w = ms.arange(1, y:numel() + 1, f64):reshape(y:shape())
    return (y * w):sum()
  end)(x)
end
local function same(got, want, tol) H.assert_close(got, want, tol or 1e-12) end

describe('ms.autograd reductions: sum and mean', function()
  before_each(function() ms.manual_seed(21) end)

  it('sum over all elements is a 0-d tensor on the tape and a number off it', function()
    local x = randn(3, 4)
    assert.are.equal('number', type(x:sum()))
    local seen
    local g = ag.grad(function(p)
      local s = p:sum()
      seen = s
      return s * 3
    end)(x)
    assert.is_true(ms.is_tensor(seen))
    assert.are.equal(0, seen:dim())
    same(g, ms.full({ 3, 4 }, 3, f64))
    assert.is_true(AG.check(function(p) return ms.sum(p) * p:mean() end, randn(2, 5)) < 1e-6)
  end)

  for _, name in ipairs { 'sum', 'mean' } do
    it(name .. ' over dims: negative dims, keepdim, non-contiguous inputs', function()
      for _, case in ipairs {
        { randn(3, 4), 1 }, { randn(3, 4), -1, true }, { randn(2, 3, 4), 2 },
        { randn(2, 3, 4), -3, true }, { transposed(3, 5), 1 }, { narrowed(4, 3), 2, true },
        { randn(5), 1 }, { randn(2, 3, 4), nil },
      } do
        local x, dim, keepdim = case[1], case[2], case[3]
        check(function(p) return p[name](p, dim, keepdim) end, { x })
      end
    end)
  end

  it('mean of a view chain adds to another use of the same tensor', function()
    local x = randn(4, 3)
    AG.check(function(p) return p:t():narrow(2, 2, 3):mean() + (p * p):sum(2):sum() end, x)
  end)
end)

describe('ms.autograd reductions: max and min', function()
  before_each(function() ms.manual_seed(22) end)

  it('over all elements and along dims (random, distinct values)', function()
    for _, name in ipairs { 'max', 'min' } do
      check(function(p) return p[name](p) end, { randn(3, 4) })
      check(function(p) return p[name](p) end, { transposed(3, 4) })
      for _, case in ipairs { { 1 }, { -1 }, { 2, true }, { -2, true } } do
        check(function(p) return (p[name](p, case[1], case[2])) end, { randn(3, 4) })
        check(function(p) return (p[name](p, case[1], case[2])) end, { narrowed(3, 4) })
      end
      check(function(p) return (ms[name](p, 3)) end, { randn(2, 3, 4) })
    end
  end)

  it('return values and int64 indices with dim on the tape, one 0-d value without', function()
    ag.grad(function(p)
      local v, i = p:max(2)
      assert.are.same({ 3 }, v:shape())
      assert.are.equal('int64', i.dtype)
      local m, second = p:min()
      assert.is_nil(second)
      assert.are.equal(0, m:dim())
      assert.are.equal(0, p:min():dim())
      return v:sum()
    end)(randn(3, 4))
  end)

  it('share the gradient evenly among ties over all elements, as torch', function()
    -- torch: x = tensor([1., 3., 3., 2.]); x.max() -> grad [0, 0.5, 0.5, 0]
    same(weighted_grad(function(p) return p:max() end, t64 { 1, 3, 3, 2 }), { 0, 0.5, 0.5, 0 })
    -- torch: x = tensor([[1., 3.], [1., 1.]]); x.min() -> grad [[1/3, 0], [1/3, 1/3]]
    same(weighted_grad(function(p) return p:min() end, t64 { { 1, 3 }, { 1, 1 } }),
         { { 1 / 3, 0 }, { 1 / 3, 1 / 3 } })
    -- torch: x = tensor([1., nan, 3., nan]); x.max() -> grad [0, 0.5, 0, 0.5]
    local nan = 0 / 0
    same(weighted_grad(function(p) return p:max() end, t64 { 1, nan, 3, nan }), { 0, 0.5, 0, 0.5 })
  end)

  it('send the gradient to the returned index along a dim (ties: the first), as torch', function()
    -- torch: x = tensor([[1., 3., 3.], [2., 2., 0.]]); (x.max(1)[0] * [1, 2]).sum()
    --   -> grad [[0, 1, 0], [2, 0, 0]] (indices [1, 0])
    same(weighted_grad(function(p) return (p:max(2)) end, t64 { { 1, 3, 3 }, { 2, 2, 0 } }),
         { { 0, 1, 0 }, { 2, 0, 0 } })
    -- torch: x = tensor([[1., 3., 3.], [1., 2., 3.]]); (x.min(0)[0] * [1, 2, 3]).sum()
    --   -> grad [[1, 0, 3], [0, 2, 0]]
    same(weighted_grad(function(p) return (p:min(1)) end, t64 { { 1, 3, 3 }, { 1, 2, 3 } }),
         { { 1, 0, 3 }, { 0, 2, 0 } })
  end)
end)

describe('ms.autograd reductions: norm', function()
  before_each(function() ms.manual_seed(23) end)

  it('any p, over all elements and along dims', function()
    for _, p in ipairs { 2, 1, 3, 0.5, 1.5, 4, math.huge } do
      check(function(x) return x:norm(p) end, { randn(3, 4) }, { what = 'norm p=' .. p })
      check(function(x) return ms.norm(x, p, -1) end, { transposed(3, 4) }, { what = 'norm dim p=' .. p })
      check(function(x) return x:norm(p, 1, true) end, { narrowed(3, 4) }, { what = 'norm keepdim p=' .. p })
    end
    check(function(x) return x:norm() end, { randn(5) })
  end)

  it('is 0 at the zero vector and follows torch at zero elements and ties', function()
    for _, p in ipairs { 2, 1, 3, 0.5, 1.5, math.huge, 0 } do
      -- torch: x = zeros(3); torch.norm(x, p=p).backward() -> grad [0, 0, 0]
      -- (p = 0: no gradient at all, i.e. zeros)
      same(weighted_grad(function(x) return x:norm(p) end, ms.zeros({ 3 }, f64)), { 0, 0, 0 })
    end
    -- torch: torch.norm(tensor([3., -3., 1.]), p=inf) -> grad [0.5, -0.5, 0]
    same(weighted_grad(function(x) return x:norm(math.huge) end, t64 { 3, -3, 1 }), { 0.5, -0.5, 0 })
    -- torch: (torch.norm(tensor([[3., -3., 1.], [0, 0, 0]]), p=inf, dim=1) * [1, 2]).sum()
    --   -> grad [[0.5, -0.5, 0], [0, 0, 0]]
    same(weighted_grad(function(x) return x:norm(math.huge, 2) end, t64 { { 3, -3, 1 }, { 0, 0, 0 } }),
         { { 0.5, -0.5, 0 }, { 0, 0, 0 } })
    -- torch: torch.norm(tensor([0., -2., 1.]), p=1) -> grad [0, -1, 1]
    same(weighted_grad(function(x) return x:norm(1) end, t64 { 0, -2, 1 }), { 0, -1, 1 })
    -- torch: (torch.norm(tensor([[0., 0.], [3., 4.]]), dim=1) * [1, 2]).sum() -> [[0, 0], [1.2, 1.6]]
    same(weighted_grad(function(x) return x:norm(2, 2) end, t64 { { 0, 0 }, { 3, 4 } }),
         { { 0, 0 }, { 1.2, 1.6 } })
    -- torch: torch.norm(tensor([0., 4., 1.]), p=0.5) -> grad [0, 1.5, 3]
    same(weighted_grad(function(x) return x:norm(0.5) end, t64 { 0, 4, 1 }), { 0, 1.5, 3 })
    -- torch: torch.norm(tensor([0., -2., 1.]), p=3) -> grad [0, -0.9244816991341795, 0.2311204247835449]
    same(weighted_grad(function(x) return x:norm(3) end, t64 { 0, -2, 1 }),
         { 0, -0.9244816991341795, 0.2311204247835449 }, 1e-14)
  end)
end)

describe('ms.autograd reductions: var and std', function()
  before_each(function() ms.manual_seed(24) end)

  it('over all elements and along dims, unbiased or not, keepdim', function()
    for _, name in ipairs { 'var', 'std' } do
      for _, case in ipairs { { nil }, { nil, false }, { 1 }, { -1, false }, { 2, true, true },
                              { -2, false, true } } do
        check(function(x) return x[name](x, case[1], case[2], case[3]) end, { randn(3, 4) })
        check(function(x) return ms[name](x, case[1], case[2], case[3]) end, { transposed(4, 3) })
      end
    end
  end)

  it('follow torch: std of a constant has gradient 0', function()
    -- torch: tensor([2., 2., 2.]).std() -> grad [0, 0, 0]
    same(weighted_grad(function(x) return x:std() end, t64 { 2, 2, 2 }), { 0, 0, 0 })
    -- torch: (tensor([[2., 2., 2.], [1., 2., 4.]]).std(1) * [1, 2]).sum()
    --   -> [[0, 0, 0], [-0.8728715609439697, -0.2182178902359925, 1.0910894511799618]]
    same(weighted_grad(function(x) return x:std(2) end, t64 { { 2, 2, 2 }, { 1, 2, 4 } }),
         { { 0, 0, 0 }, { -0.8728715609439697, -0.2182178902359925, 1.0910894511799618 } }, 1e-14)
    -- torch: (tensor([[2., 1.], [3., 5.]]).var(0) * [1, 2]).sum() -> [[-1, -8], [1, 8]]
    same(weighted_grad(function(x) return x:var(1) end, t64 { { 2, 1 }, { 3, 5 } }), { { -1, -8 }, { 1, 8 } })
    -- torch: tensor([[2.]]).var(unbiased=False) -> grad [[0]]
    same(weighted_grad(function(x) return x:var(nil, false) end, t64 { { 2 } }), { { 0 } })
  end)
end)

describe('ms.autograd reductions: dot and cumsum', function()
  before_each(function() ms.manual_seed(25) end)

  it('dot is a 0-d tensor of the operands\' dtype on the tape; both gradients', function()
    check(function(a, b) return ms.dot(a, b) end, { randn(6), randn(6) })
    check(function(a, b) return a:dot(b) end, { randn(8):narrow(1, 2, 5), randn(5) })
    ag.grad(function(p)
      local d = ms.dot(p, p)
      assert.is_true(ms.is_tensor(d))
      assert.are.equal(0, d:dim())
      assert.are.equal('float32', d.dtype)
      return d
    end)(ms.randn(4))
  end)

  it('cumsum along any dim, non-contiguous, with a dtype option', function()
    check(function(x) return x:cumsum(1) end, { randn(4, 3) })
    check(function(x) return ms.cumsum(x, -1) end, { transposed(3, 5) })
    check(function(x) return x:cumsum(2) end, { randn(2, 3, 4) })
    check(function(x) return x:cumsum(1) end, { randn(7) })
    -- float32 input summed in float64: the gradient comes back as float32
    local x = ms.randn(3, 4)
    local g = ag.grad(function(p) return (p:cumsum(2, { dtype = 'float64' }) * 2):sum() end)(x)
    assert.are.equal('float32', g.dtype)
    same(g, { { 8, 6, 4, 2 }, { 8, 6, 4, 2 }, { 8, 6, 4, 2 } })
  end)
end)

describe('ms.autograd reductions: sort and topk', function()
  before_each(function() ms.manual_seed(26) end)

  it('scatter the values\' gradient back through the indices', function()
    check(function(x) return (x:sort()) end, { randn(3, 5) })
    check(function(x) return (x:sort(1, { descending = true })) end, { transposed(4, 3) })
    check(function(x) return (ms.sort(x, -2, true)) end, { randn(2, 4, 3) })
    check(function(x) return (x:topk(2)) end, { randn(3, 5) })
    check(function(x) return (x:topk(3, 1, { largest = false })) end, { narrowed(4, 3) })
    check(function(x) return (ms.topk(x, 1, -2)) end, { randn(2, 4, 3) })
  end)

  it('follow the returned indices at ties, as torch', function()
    -- torch: (torch.sort(tensor([2., 1., 2., 1.]), stable=True)[0] * [1, 2, 3, 4]).sum()
    --   -> grad [3, 1, 4, 2]
    same(weighted_grad(function(x) return (x:sort()) end, t64 { 2, 1, 2, 1 }), { 3, 1, 4, 2 })
    -- torch: (torch.sort(tensor([2., 1., 2., 1.]), descending=True, stable=True)[0] * w).sum()
    --   -> grad [1, 3, 2, 4]
    same(weighted_grad(function(x) return (x:sort(1, true)) end, t64 { 2, 1, 2, 1 }), { 1, 3, 2, 4 })
    -- torch.topk(tensor([2., 1., 2., 3.]), 2) gives indices [3, 2] there (its tie order is
    -- unspecified) and the gradient [0, 0, 2, 1]; moonstep's tie comes lowest index first
    -- (indices 4, 1), and the gradient follows its indices: [2, 0, 0, 1]
    local x = t64 { 2, 1, 2, 3 }
    local _, i = x:topk(2)
    assert.are.same({ 4, 1 }, i:totable())
    same(weighted_grad(function(p) return (p:topk(2)) end, x), { 2, 0, 0, 1 })
  end)
end)

describe('ms.autograd reductions: dtypes and devices', function()
  before_each(function() ms.manual_seed(27) end)

  local function loss(p)
    return p:sum(1):max() + p:mean(2, true):norm() + p:var(1):sum() + (p:max(2)):sum()
           + p:std() + (p:sort(2)):narrow(2, 1, 2):sum() + p:cumsum(1):sum() + ms.dot(p:select(1, 1), p:select(1, 2))
  end

  it('float32 gradients agree with float64 ones', function()
    AG.agree_across(loss, randn(4, 5), 1e-4)
  end)

  -- the CUDA case's loss: no sort or cumsum, a 1-norm and min instead
  local function on_gpu(p)
    return p:sum(1):max() + p:mean(2, true):norm() + p:var(1):sum() + (p:max(2)):sum() + p:std()
           + ms.dot(p:select(1, 1), p:select(1, 2)) + p:norm(1, -1):sum() + p:min()
  end
  AG.cuda_it(it, pending)('CUDA gradients agree with the CPU ones', function()
    AG.agree_across(on_gpu, ms.randn(4, 5), 1e-4, { across = 'cuda' })
  end)
end)
