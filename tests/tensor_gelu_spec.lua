-- GELU's tanh approximation (MS_GELU_TANH, MS_GELU_TANH_BACKWARD) against PyTorch
-- (tests/fixtures/tensor_ops.lua, from scripts/gen_tensor_fixtures.py) and against
-- central finite differences of the forward op.
local ms = require 'moonstep'
local H = require 'helper'
local C = ms.C
local fx = dofile((os.getenv('MOONSTEP_HOME') or '.') .. '/tests/fixtures/tensor_ops.lua')

local function backward(x, g)
  local out = ms.empty_like(x)
  assert(C.ms_binary(out, x, g, C.MS_GELU_TANH_BACKWARD, 0) == 0)
  return out
end

describe('gelu tanh approximation', function()
  for _, dtype in ipairs { 'float64', 'float32' } do
    local tol = dtype == 'float64' and 1e-12 or 2e-6
    it('forward matches torch gelu(approximate="tanh") (' .. dtype .. ')', function()
      local x = ms.tensor(fx.gelu_tanh.x, dtype)
      H.assert_close(x:gelu('tanh'), fx.gelu_tanh.y, tol, 'gelu tanh')
      -- a strided input goes through the strided loop
      local xs = ms.tensor({ fx.gelu_tanh.x, fx.gelu_tanh.x }, dtype):t():select(2, 1)
      H.assert_close(xs:gelu('tanh'), fx.gelu_tanh.y, tol, 'gelu tanh strided')
    end)
    it('backward matches torch autograd (' .. dtype .. ')', function()
      local x, g = ms.tensor(fx.gelu_tanh.x, dtype), ms.tensor(fx.gelu_tanh.g, dtype)
      H.assert_close(backward(x, g), fx.gelu_tanh.dx, tol, 'gelu tanh backward')
    end)
  end
  it('backward is the derivative of forward (finite differences, float64)', function()
    local x = ms.linspace(-4, 4, 33, 'float64')
    local h = 1e-6
    local fd = ((x + h):gelu('tanh') - (x - h):gelu('tanh')) / (2 * h)
    H.assert_close(backward(x, ms.ones(33, 'float64')), fd, 1e-8, 'fd')
  end)
  it('differs from the exact (erf) GELU, which stays the default', function()
    local x = ms.tensor({ 1.5 }, 'float64')
    assert.is_true(math.abs(x:gelu():item() - x:gelu('tanh'):item()) > 1e-5)
    assert.are.equal(x:gelu():item(), x:gelu('none'):item())
  end)
  it('rejects an unknown approximation', function()
    H.assert_error(function() ms.ones(2):gelu('sigmoid') end, 'gelu', 'approximate')
  end)
end)
