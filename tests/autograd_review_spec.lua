-- ms.autograd: regressions found by the review of issue 12 (adversarial probing of the
-- tape and the functional forms). The parity of the rules with PyTorch on random
-- programs is tests/autograd_torch_spec.lua.
local ms = require 'moonstep'
local F = ms.nn.functional

local D = { dtype = 'float64' }

local function fails(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, 'expected an error matching ' .. pattern)
  assert.is_truthy(tostring(err):find(pattern), 'error was: ' .. tostring(err))
end

describe('ms.autograd review: tracked loss weights', function()
  local x = ms.tensor({ { 0.5, -1, 2 }, { 1.5, 0.25, -0.5 } }, D)
  local t = ms.tensor({ 1, 3 }, { dtype = 'int64' })

  -- Before 7272a2f (the tape now scans options tables): with the input untracked the form
  -- ran off the tape, and the loss Module's handling of its weight tripped the tape's
  -- in-place check ("an in-place operation on a tensor ms.autograd tracks"), a message
  -- about something the user did not do.
  it('cross_entropy / nll_loss: a tracked class weight is refused by name, input untracked', function()
    fails('nn%.functional%.cross_entropy: weight carries no gradient', function()
      return ms.autograd.grad(function(w) return F.cross_entropy(x, t, { weight = w }) end)(ms.ones(3, D))
    end)
    fails('nn%.functional%.nll_loss: weight carries no gradient', function()
      return ms.autograd.grad(function(w) return F.nll_loss(x, t, { weight = w }) end)(ms.ones(3, D))
    end)
  end)

  -- Before 7272a2f: binary_cross_entropy_with_logits with only its weight / pos_weight
  -- tracked ran off the tape (the options table's tensors were not scanned) and returned
  -- a silent zero gradient.
  it('binary_cross_entropy_with_logits: a tracked weight or pos_weight is refused (was a silent zero)', function()
    local y = x:sigmoid()
    fails('pos_weight carries no gradient', function()
      return ms.autograd.grad(function(pw)
        return F.binary_cross_entropy_with_logits(x, y, { pos_weight = pw })
      end)(ms.ones(3, D))
    end)
    fails('weight carries no gradient', function()
      return ms.autograd.grad(function(w)
        return F.binary_cross_entropy_with_logits(x, y, { weight = w:mul(2) })
      end)(ms.ones(2, 3, D))
    end)
  end)

  it('a detached weight is accepted (the stop-gradient the message suggests)', function()
    local w0 = ms.tensor({ 1, 2, 3 }, D)
    local g = ms.autograd.grad(function(P)
      local ce = F.cross_entropy(P.x, t, { weight = P.w:detach() })
      local bce = F.binary_cross_entropy_with_logits(P.x, x:sigmoid(), { pos_weight = P.w:detach() })
      return ce + bce + P.w:sum()
    end)({ x = x:clone(), w = w0 })
    assert.are.same({ 1, 1, 1 }, g.w:totable())
    -- the input's gradient equals the one with an untracked weight
    local g2 = ms.autograd.grad(function(xx)
      return F.cross_entropy(xx, t, { weight = w0 }) + F.binary_cross_entropy_with_logits(xx, x:sigmoid(), { pos_weight = w0 })
    end)(x:clone())
    assert.is_true((g.x - g2):abs():max() == 0)
  end)

  it('with the input tracked the weight is still refused (in the backward pass)', function()
    fails('weight carries no gradient', function()
      return ms.autograd.grad(function(w) return F.cross_entropy(x * w:sum(), t, { weight = w }) end)(ms.ones(3, D))
    end)
  end)
end)
