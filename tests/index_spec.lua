-- index_select, gather and cat.
local ms = require 'moonstep'

describe('indexing', function()
  local x = ms.arange(12):view(3, 4)

  it('index_select picks rows or columns (1-based), any dtype', function()
    assert.same({ { 8, 9, 10, 11 }, { 0, 1, 2, 3 } }, x:index_select(1, { 3, 1 }):totable())
    assert.same({ { 1, 1 }, { 5, 5 }, { 9, 9 } }, x:index_select(2, ms.tensor({ 2, 2 }, 'int64')):totable())
    local labels = ms.tensor({ 7, 8, 9 }, 'int64')
    assert.same({ 9, 7 }, labels:index_select(1, { 3, 1 }):totable())
    local bytes = ms.tensor({ 1, 2, 3 }, 'uint8')
    assert.same({ 3 }, bytes:index_select(1, { 3 }):totable())
    -- a strided source is read correctly
    assert.same({ { 3, 1 }, { 7, 5 }, { 11, 9 } }, x:t():index_select(1, { 4, 2 }):t():totable())
  end)

  it('gather follows torch.gather', function()
    local idx = ms.tensor({ { 1, 1 }, { 4, 2 }, { 3, 3 } }, 'int64')
    assert.same({ { 0, 0 }, { 7, 5 }, { 10, 10 } }, x:gather(2, idx):totable())
    local rows = ms.tensor({ { 3, 1, 2, 1 } }, 'int64')
    assert.same({ { 8, 1, 6, 3 } }, x:gather(1, rows):totable())
  end)

  it('cat joins along a dim', function()
    local a, b = ms.ones(2, 2), ms.zeros(2, 1)
    assert.same({ { 1, 1, 0 }, { 1, 1, 0 } }, ms.cat({ a, b }, 2):totable())
    assert.same({ 4, 2 }, ms.cat({ a, a }):shape())
    assert.same({ 3, 2 }, ms.cat({ a, ms.zeros(0, 2), ms.ones(1, 2) }, 1):shape())
  end)
end)

describe('cat of empty tensors', function()
  it('concatenates tensors with a zero-size dim into an empty result (fuzzer finding)', function()
    local ms = require 'moonstep'
    local c = ms.cat({ ms.empty(3, 0, 2), ms.empty(3, 0, 2) })
    assert.same({ 6, 0, 2 }, c:shape())
    assert.same({ 3, 0, 4 }, ms.cat({ ms.empty(3, 0, 2), ms.empty(3, 0, 2) }, 3):shape())
  end)
end)
