-- Data: the IDX reader (including corrupt and truncated files), Fashion-MNIST,
-- Dataset batching and splitting, CSV, metrics.
local ms = require 'moonstep'
local H = require 'helper'

local write = H.write_file

local function gzip(path) os.execute('gzip -f -k ' .. path) end

describe('IDX files', function()
  local dir = os.tmpname()
  os.remove(dir)
  os.execute('mkdir -p ' .. dir)
  local header = '\0\0\8\2\0\0\0\2\0\0\0\3'       -- uint8, 2 dims: 2 x 3

  it('reads raw and gzip files', function()
    write(dir .. '/ok.idx', header .. '\1\2\3\4\5\255')
    gzip(dir .. '/ok.idx')
    for _, p in ipairs { dir .. '/ok.idx', dir .. '/ok.idx.gz' } do
      local t = ms.data.read_idx(p)
      assert.equal('uint8', t.dtype)
      assert.same({ { 1, 2, 3 }, { 4, 5, 255 } }, t:totable())
    end
  end)

  it('names the byte offset of what is wrong', function()
    write(dir .. '/magic.idx', '\1\0\8\2\0\0\0\2\0\0\0\3' .. '123456')
    H.assert_error(function() ms.data.read_idx(dir .. '/magic.idx') end, 'not an IDX file', 'bytes 0-1')
    write(dir .. '/type.idx', '\0\0\13\2\0\0\0\2\0\0\0\3' .. '123456')
    H.assert_error(function() ms.data.read_idx(dir .. '/type.idx') end, 'byte 2', '0x0d', '0x08')
    write(dir .. '/short.idx', header .. '\1\2\3')
    H.assert_error(function() ms.data.read_idx(dir .. '/short.idx') end, 'short.idx is truncated', 'need 6 data bytes from byte offset 12', 'ends after 3')
    write(dir .. '/hdr.idx', '\0\0\8')
    H.assert_error(function() ms.data.read_idx(dir .. '/hdr.idx') end, 'truncated at byte offset 3')
    write(dir .. '/long.idx', header .. '\1\2\3\4\5\6\7')
    H.assert_error(function() ms.data.read_idx(dir .. '/long.idx') end, 'has 1 bytes past byte offset 18')
    write(dir .. '/huge.idx', '\0\0\8\3\255\255\255\255\255\255\255\255\0\0\0\9')
    H.assert_error(function() ms.data.read_idx(dir .. '/huge.idx') end, 'more than max_bytes = 268435456 (the default, 256 MiB)')
    H.assert_error(function() ms.data.read_idx(dir .. '/none.idx') end, 'read_idx: cannot open', 'none.idx', 'No such file')
  end)

  it('reports a corrupt gzip stream', function()
    write(dir .. '/ok2.idx', header .. '\1\2\3\4\5\6')
    gzip(dir .. '/ok2.idx')
    local f = assert(io.open(dir .. '/ok2.idx.gz', 'rb'))
    local bytes = f:read('*a')
    f:close()
    write(dir .. '/bad.idx.gz', bytes:sub(1, 12) .. ('\255'):rep(#bytes - 12))
    H.assert_error(function() ms.data.read_idx(dir .. '/bad.idx.gz') end, 'read_idx', 'bad.idx.gz')
  end)
end)

describe('Fashion-MNIST', function()
  local have = io.open(ms.data.FASHION_MNIST_DIR .. '/t10k-labels-idx1-ubyte.gz') ~= nil
  if not have then
    pending('dataset-fashion-mnist is not installed')
    return
  end
  it('loads the test split: 10000 images in [0, 1], labels 1..10, balanced', function()
    local ds = ms.data.fashion_mnist('test')
    assert.equal(10000, ds:size())
    assert.same({ 10000, 784 }, ds.x:shape())
    assert.is_true(ds.x:min() >= 0 and ds.x:max() <= 1)
    local y = ds.y:to('float32')
    assert.same({ 1, 10 }, { y:min(), y:max() })
    assert.equal(1000, y:eq(3):sum())
    assert.same({ 10000, 1, 28, 28 }, ms.data.fashion_mnist('test', { shape = 'image' }).x:shape())
  end)
  it('explains a missing package', function()
    H.assert_error(function() ms.data.fashion_mnist('train', { dir = '/nonexistent' }) end,
                   'dataset-fashion-mnist', 'apt-get install')
    H.assert_error(function() ms.data.fashion_mnist('validation') end, 'split is "validation"', '"train" or "test"')
  end)
end)

describe('Dataset', function()
  local x = ms.arange(20):view(10, 2)
  local y = ms.arange(1, 11, 'int64')

  it('batches in order, with the last partial batch unless drop_last', function()
    local ds = ms.data.Dataset(x, y)
    local sizes, seen = {}, {}
    for bx, by in ds:batches(4) do
      sizes[#sizes + 1] = bx:size(1)
      for i = 1, by:size(1) do seen[#seen + 1] = by:get(i) end
      assert.equal(bx:get(1, 1), 2 * (by:get(1) - 1))
    end
    assert.same({ 4, 4, 2 }, sizes)
    assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, seen)
    local n = 0
    for _ in ds:batches(4, { drop_last = true }) do n = n + 1 end
    assert.equal(2, n)
  end)

  it('shuffles reproducibly: a permutation, different each epoch, fixed by the seed', function()
    local function epoch_order(ds, opts)
      local order = {}
      for _, by in ds:batches(3, opts) do for i = 1, by:size(1) do order[#order + 1] = by:get(i) end end
      return order
    end
    local a, b = ms.data.Dataset(x, y), ms.data.Dataset(x, y)
    local a1, a2 = epoch_order(a, { shuffle = true, seed = 7 }), epoch_order(a, { shuffle = true, seed = 7 })
    local b1 = epoch_order(b, { shuffle = true, seed = 7 })
    assert.same(a1, b1)
    assert.are_not.same(a1, a2)
    local sorted = { unpack(a1) }
    table.sort(sorted)
    assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, sorted)
    ms.manual_seed(1); local g1 = epoch_order(ms.data.Dataset(x, y), { shuffle = true })
    ms.manual_seed(1); local g2 = epoch_order(ms.data.Dataset(x, y), { shuffle = true })
    assert.same(g1, g2)
  end)

  it('subset, split, normalize, mean_std', function()
    local ds = ms.data.Dataset(x:clone(), y)
    assert.equal(3, ds:subset(2, 3):size())
    assert.same({ 3, 1 }, ds:subset({ 3, 1 }).y:totable())
    local a, b = ds:split(0.7, 1)
    assert.same({ 7, 3 }, { a:size(), b:size() })
    local mean, std = ds:mean_std()
    ds:normalize(mean, std)
    local m2, s2 = ds:mean_std()
    assert.is_true(m2:abs():max() < 1e-5 and (s2 - 1):abs():max() < 1e-5)
    H.assert_error(function() ms.data.Dataset(ms.zeros(3, 2), ms.zeros(4)) end, 'same first dimension')
  end)
end)

describe('CSV', function()
  it('reads numeric columns with a header and a named label', function()
    local path = os.tmpname()
    write(path, 'a,b,label\n1,2,1\n3,4,2\n5,6.5,1\n')
    local ds, header = ms.data.read_csv(path, { label = 'label', classes = true })
    assert.same({ 'a', 'b', 'label' }, header)
    assert.same({ { 1, 2 }, { 3, 4 }, { 5, 6.5 } }, ds.x:totable())
    assert.same({ 1, 2, 1 }, ds.y:totable())
    assert.equal('int64', ds.y.dtype)
    write(path, 'a,b\n1,2\n3,x\n')
    H.assert_error(function() ms.data.read_csv(path) end, 'line 3', 'column 2', '"x" is not a number')
    write(path, '1,2\n3\n')
    H.assert_error(function() ms.data.read_csv(path) end, 'line 2 has 1 columns, expected 2')
    os.remove(path)
  end)
end)

describe('metrics', function()
  it('accuracy and evaluate count argmax hits, in evaluation mode', function()
    local model = ms.nn.Sequential(ms.nn.Linear(2, 2), ms.nn.Dropout(0.5))
    model.modules[1].weight:copy_(ms.tensor { { 1, 0 }, { 0, 1 } })
    model.modules[1].bias:zero_()
    local xs = ms.tensor { { 1, 0 }, { 0, 1 }, { 2, 1 }, { 0, 3 } }
    local ys = ms.tensor({ 1, 2, 2, 2 }, 'int64')
    local ds = ms.data.Dataset(xs, ys)
    assert.equal(0.75, ms.metrics.accuracy(model, ds))
    local r = ms.metrics.evaluate(model, ds, ms.nn.CrossEntropyLoss(), { batch = 3 })
    assert.equal(0.75, r.accuracy)
    assert.is_true(r.loss > 0)
    assert.is_true(model.training)
  end)
end)
