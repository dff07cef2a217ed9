-- Bad input: every case is a Lua error naming the function, the argument, what was
-- given and what was expected; nothing crashes.
local ms = require 'moonstep'
local H = require 'helper'

describe('bad input', function()
  it('shape mismatch in binary ops and matmul', function()
    H.assert_error(function() return ms.zeros(2, 3) + ms.zeros(4) end, 'add', '[2,3]', '[4]', 'broadcast')
    H.assert_error(function() return ms.zeros(2, 3):mul_(ms.zeros(3, 3)) end, 'mul', "'other'", '[3,3]', '[2,3]')
    H.assert_error(function() return ms.matmul(ms.zeros(2, 3), ms.zeros(4, 5)) end,
                   'matmul', 'inner dimensions', '[2,3]', 'k=3', '[4,5]', 'k=4', 'expected equal')
    H.assert_error(function() return ms.matmul(ms.zeros(2, 2, 2, 2), ms.zeros(2, 2)) end, 'matmul', '1-3 dims')
    H.assert_error(function() return ms.dot(ms.zeros(3), ms.zeros(4)) end, 'dot', '3 elements', '4', 'expected equal')
    H.assert_error(function() ms.zeros(2, 2):copy_(ms.zeros(3)) end, 'copy_', "'src'", '[3]', '[2,2]')
  end)

  it('wrong dtype', function()
    H.assert_error(function() return ms.zeros(2, 'int64'):exp() end, 'exp', "'self'", 'int64', 'expected float32 or float64')
    H.assert_error(function() return ms.zeros(2) + ms.zeros(2, 'float64') end, 'add', 'float64', 'float32', 'same dtype')
    H.assert_error(function() return ms.zeros(3):index_select(1, ms.tensor { 1 }) end,
                   'index_select', "'index'", 'float32', 'expected int64')
    H.assert_error(function() return ms.zeros(2, 'complex') end, 'zeros', 'complex', 'expected float32')
    H.assert_error(function() return ms.zeros(2, 'int64'):matmul(ms.zeros(2, 'int64')) end, 'matmul', 'int64')
  end)

  it('wrong device', function()
    H.assert_error(function() return ms.zeros(2, { device = 'tpu' }) end, 'zeros', 'tpu', "expected 'cpu' or 'cuda'")
    H.assert_error(function() return ms.zeros(2):to('gpu') end, 'to', 'gpu', 'neither a device')
  end)

  it('index out of range: 0, negative, too big', function()
    local t = ms.zeros(3, 4)
    H.assert_error(function() return t:get(0, 1) end, 'get', 'index 0', 'dimension 1 of size 3', 'expected 1..3')
    H.assert_error(function() return t:get(1, -1) end, 'get', 'index -1', 'expected 1..4')
    H.assert_error(function() return t:set(4, 1, 1) end, 'set', 'index 4', 'expected 1..3')
    H.assert_error(function() return t:get(1) end, 'get', '1 indices', 'expected 2')
    H.assert_error(function() return t:narrow(1, 0, 1) end, 'narrow', 'start 0', 'expected 1..3')
    H.assert_error(function() return t:narrow(2, 3, 5) end, 'narrow', 'length 5', 'expected 0..2')
    H.assert_error(function() return t:select(3, 1) end, 'select', 'dim 3', 'expected 1..2')
    H.assert_error(function() return t:select(1, 9) end, 'select', 'index 9', 'expected 1..3')
    H.assert_error(function() return t:index_select(1, { 0 }) end, 'index_select', 'index 0', 'expected 1..3')
    H.assert_error(function() return t:index_select(1, { 4 }) end, 'index_select', 'index 4', 'size 3')
    H.assert_error(function() return t:gather(2, ms.tensor({ { 5 } }, 'int64')) end, 'gather', 'index 5', 'expected 1..4')
    H.assert_error(function() return t:sum(3) end, 'sum', 'dim 3', 'expected 1..2')
    H.assert_error(function() return t:view(5, 5) end, 'view', '25 elements', 'expected 12')
  end)

  it('non-contiguous where contiguous is required', function()
    local t = ms.zeros(3, 4):t()
    H.assert_error(function() return t:view(12) end, 'view', 'not contiguous', 'reshape')
    assert.same({ 12 }, t:reshape(12):shape())   -- reshape handles it by copying
    H.assert_error(function() ms.zeros(3):expand(2, 3):fill_(1) end, 'fill_', 'expanded view', 'clone')
  end)

  it('absurd sizes are an error, not a crash', function()
    H.assert_error(function() return ms.zeros(2 ^ 40, 2 ^ 40) end, 'zeros', 'too large')
    H.assert_error(function() return ms.empty(2 ^ 45) end, 'out of memory', 'bytes')
    H.assert_error(function() return ms.zeros(-1) end, 'zeros', 'non-negative integer')
    H.assert_error(function() return ms.zeros(1, 1, 1, 1, 1, 1, 1, 1, 1) end, 'at most 8')
  end)

  it('CUDA functions without a GPU say so', function()
    if ms.cuda.is_available() then return pending('a GPU is present') end
    assert.is_false(ms.cuda.is_available())
    assert.equal(0, ms.cuda.device_count())
    H.assert_error(function() return ms.zeros(2, { device = 'cuda' }) end, 'CUDA is not available')
    H.assert_error(function() return ms.zeros(2):cuda() end, 'CUDA is not available')
    H.assert_error(function() ms.cuda.synchronize() end, 'CUDA')
  end)

  it('use after explicit free', function()
    local t = ms.ones(4)
    local v = t:narrow(1, 1, 2)
    t:free()
    H.assert_error(function() return t:sum() end, 'sum', 'freed')
    H.assert_error(function() return t + 1 end, 'freed')
    H.assert_error(function() return t:get(1) end, 'get', 'freed')
    H.assert_error(function() return ms.zeros(4):copy_(t) end, 'copy_', 'src', 'freed')
    assert.equal('[ms.Tensor (freed)]', tostring(t))
    assert.equal(2, v:sum())  -- a view taken before the free keeps its storage
    t:free()                   -- freeing twice is harmless
  end)

  it('wrong argument types', function()
    H.assert_error(function() return ms.zeros(2):add('x') end, 'add', '"x"', 'expected a tensor or a number')
    H.assert_error(function() return ms.zeros(2):fill_(nil) end, 'fill_', 'expected a number')
    H.assert_error(function() return ms.tensor { 1, { 2 } } end, 'tensor')
    H.assert_error(function() return ms.tensor { { 1, 2 }, { 3 } } end, 'tensor', 'ragged')
    H.assert_error(function() return ms.exp(3) end, 'exp', 'is 3', 'expected a tensor')
    H.assert_error(function() ms.manual_seed(-1) end, 'manual_seed', 'seed')
    H.assert_error(function() ms.empty(3):bernoulli_(2) end, 'bernoulli_', 'p is 2')
  end)
end)
