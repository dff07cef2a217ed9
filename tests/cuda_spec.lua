-- GPU against CPU for every op, and bit-equal random numbers. Without a GPU every
-- case is reported as pending (skipped), with the reason.
local ms = require 'moonstep'
local H = require 'helper'

local git = H.gate(it, pending, ms.cuda.is_available(), ms.cuda.why())   -- only with a GPU

describe('cuda', function()
  git('moves tensors of every dtype to the GPU and back', function()
    for _, dt in ipairs { 'float32', 'int64', 'uint8' } do
      local t = ms.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, dt)
      local g = t:cuda()
      assert.equal('cuda', g.device)
      assert.same(t:totable(), g:cpu():totable())
      assert.equal(5, g:get(2, 2))
    end
    local g = ms.zeros(3, 4, { device = 'cuda' })
    g:set(2, 3, 7)
    assert.equal(7, g:cpu():get(2, 3))
    assert.same(ms.arange(6):view(2, 3):t():totable(), ms.arange(6):view(2, 3):cuda():t():cpu():totable())
  end)

  git('elementwise ops match the CPU (contiguous, strided, broadcast)', function()
    local x = H.random_tensor({ 33, 17 }, 1)
    local y = H.random_tensor({ 17 }, 2)
    local gx, gy = x:cuda(), y:cuda()
    for _, name in ipairs { 'neg', 'abs', 'exp', 'tanh', 'sigmoid', 'relu', 'sign', 'square' } do
      H.assert_close(gx[name](gx):cpu(), x[name](x), 1e-6, name)
      H.assert_close(gx:t()[name](gx:t()):cpu(), x:t()[name](x:t()), 1e-6, name .. ' strided')
    end
    local ax = x:abs():add(0.1)
    for _, name in ipairs { 'log', 'sqrt', 'rsqrt', 'reciprocal' } do
      H.assert_close(ax:cuda()[name](ax:cuda()):cpu(), ax[name](ax), 1e-5, name)
    end
    for _, name in ipairs { 'add', 'sub', 'mul', 'maximum', 'minimum', 'lt', 'ge', 'eq' } do
      H.assert_close(gx[name](gx, gy):cpu(), x[name](x, y), 1e-6, name)
      H.assert_close(gx[name](gx, 0.5):cpu(), x[name](x, 0.5), 1e-6, name .. ' scalar')
    end
    H.assert_close(gx:div(gy:abs():add(1)):cpu(), x:div(y:abs():add(1)), 1e-6, 'div')
    H.assert_close(gx:clamp(-0.5, 0.5):cpu(), x:clamp(-0.5, 0.5), 0, 'clamp')
    H.assert_close(gx:addcmul(0.5, gx, gy):cpu(), x:addcmul(0.5, x, y), 1e-6, 'addcmul')
    H.assert_close(gx:addcdiv(0.5, gx, gy:abs():add(1)):cpu(), x:addcdiv(0.5, x, y:abs():add(1)), 1e-6, 'addcdiv')
    H.assert_close(gx:lerp(gy:expand(33, 17), 0.3):cpu(), x:lerp(y:expand(33, 17), 0.3), 1e-6, 'lerp')
    H.assert_close(ms.where(gx:gt(0), gx, gy):cpu(), ms.where(x:gt(0), x, y), 0, 'where')
    local acc = x:clone(); acc:axpy_(2, x)
    local gacc = gx:clone(); gacc:axpy_(2, gx)
    H.assert_close(gacc:cpu(), acc, 1e-6, 'axpy_')
  end)

  git('reductions match the CPU', function()
    local x = H.random_tensor({ 64, 33 }, 3)
    local g = x:cuda()
    for _, name in ipairs { 'sum', 'mean', 'max', 'min', 'argmax', 'argmin', 'norm', 'var' } do
      assert.is_true(math.abs(g[name](g) - x[name](x)) < 1e-5, name)
      for dim = 1, 2 do
        H.assert_close(g[name](g, dim):cpu(), x[name](x, dim), 1e-5, name .. ' dim ' .. dim)
      end
    end
    local big = ms.empty(3e6):uniform_(0, 1, { seed = 1 })
    assert.is_true(math.abs(big:cuda():sum() - big:sum()) < 1e-6 * 3e6)
    assert.equal(x:norm(math.huge), g:norm(math.huge))
  end)

  git('matmul, bmm and dot match the CPU', function()
    for _, f in ipairs { { false, false }, { true, false }, { false, true }, { true, true } } do
      local a = H.random_tensor(f[1] and { 65, 33 } or { 33, 65 }, 4)
      local b = H.random_tensor(f[2] and { 17, 65 } or { 65, 17 }, 5)
      local o = { transpose_a = f[1], transpose_b = f[2] }
      H.assert_close(ms.matmul(a:cuda(), b:cuda(), o):cpu(), ms.matmul(a, b, o), 1e-4)
    end
    local a, b = H.random_tensor({ 4, 7, 5 }, 6), H.random_tensor({ 4, 5, 3 }, 7)
    H.assert_close(ms.bmm(a:cuda(), b:cuda()):cpu(), ms.bmm(a, b), 1e-5)
    H.assert_close(ms.matmul(a:cuda(), b:select(1, 1):cuda()):cpu(), ms.matmul(a, b:select(1, 1)), 1e-5)
    local u, v = H.random_tensor({ 1000 }, 8), H.random_tensor({ 1000 }, 9)
    assert.is_true(math.abs(ms.dot(u:cuda(), v:cuda()) - ms.dot(u, v)) < 1e-4)
  end)

  git('indexing and cat match the CPU', function()
    local x = H.random_tensor({ 5, 6 }, 10)
    local g = x:cuda()
    local idx = ms.tensor({ 5, 1, 3 }, 'int64')
    H.assert_close(g:index_select(1, idx:cuda()):cpu(), x:index_select(1, idx), 0)
    H.assert_close(g:index_select(2, idx:cuda()):cpu(), x:index_select(2, idx), 0)
    local gi = ms.tensor({ { 1, 6 }, { 2, 2 } }, 'int64')
    H.assert_close(g:gather(2, gi:cuda()):cpu(), x:gather(2, gi), 0)
    H.assert_close(ms.cat({ g, g }, 2):cpu(), ms.cat({ x, x }, 2), 0)
    H.assert_error(function() return g:index_select(1, ms.tensor({ 9 }, 'int64'):cuda()) end, 'index 9')
  end)

  git('random numbers: the same bits on CPU and GPU', function()
    local n = 100003
    local cu = ms.empty(n):uniform_(-1, 2, { seed = 5, stream = 3 })
    local gu = ms.empty(n, { device = 'cuda' }):uniform_(-1, 2, { seed = 5, stream = 3 })
    assert.equal(0, (gu:cpu() - cu):abs():max())
    local cr = ms.empty(n):rademacher_({ seed = 6 })
    local gr = ms.empty(n, { device = 'cuda' }):rademacher_({ seed = 6 })
    assert.equal(0, (gr:cpu() - cr):abs():max())
    local cb = ms.empty(n):bernoulli_(0.3, { seed = 7 })
    local gb = ms.empty(n, { device = 'cuda' }):bernoulli_(0.3, { seed = 7 })
    assert.equal(0, (gb:cpu() - cb):abs():max())
    -- normal goes through log/sin/cos: equal to a few ulp
    local cn = ms.empty(n):normal_(0, 1, { seed = 8 })
    local gn = ms.empty(n, { device = 'cuda' }):normal_(0, 1, { seed = 8 })
    assert.is_true((gn:cpu() - cn):abs():max() < 1e-5)
  end)

  git('layers, losses and optimizer steps match the CPU', function()
    local nn = ms.nn
    local function pair(make, x)
      ms.manual_seed(3)
      local cpu = make()
      ms.manual_seed(3)
      local gpu = make():cuda()
      local xg = x:cuda()
      local y, gy = cpu:forward(x), gpu:forward(xg)
      H.assert_close(gy:cpu(), y, 1e-4, cpu.__name .. ' forward')
      local g = ms.empty(y:shape()):normal_(0, 1, { seed = 4 })
      cpu:zero_grad(); gpu:zero_grad()
      local gx, ggx = cpu:backward(x, g), gpu:backward(xg, g:cuda())
      if gx then H.assert_close(ggx:cpu(), gx, 1e-4, cpu.__name .. ' gradInput') end
      if #cpu:parameters() > 0 then
        H.assert_close(gpu:flat_gradients():cpu(), cpu:flat_gradients(), 1e-3, cpu.__name .. ' gradients')
      end
    end
    local img = ms.empty(4, 3, 9, 9):normal_(0, 1, { seed = 5 })
    local vec = ms.empty(6, 10):normal_(0, 1, { seed = 6 })
    pair(function() return nn.Linear(10, 7) end, vec)
    pair(function() return nn.Conv2d(3, 5, 3, { stride = 2, padding = 1 }) end, img)
    pair(function() return nn.MaxPool2d(3, { stride = 2, padding = 1 }) end, img)
    pair(function() return nn.AvgPool2d(2) end, img)
    pair(function() return nn.BatchNorm2d(3) end, img)
    pair(function() return nn.LayerNorm(10) end, vec)
    for _, name in ipairs { 'ReLU', 'GELU', 'Tanh', 'Sigmoid', 'Softmax', 'LogSoftmax' } do
      pair(function() return nn[name]() end, vec)
    end
    local t = ms.tensor({ 1, 3, 2, 7, 5, 1 }, 'int64')
    local ce = nn.CrossEntropyLoss { label_smoothing = 0.1 }
    local vg, tg = vec:cuda(), t:cuda()
    local lg = ce:forward(vg, tg)
    local gg = ce:backward(vg, tg):cpu()
    assert.is_true(math.abs(lg - ce:forward(vec, t)) < 1e-5)
    H.assert_close(gg, ce:backward(vec, t), 1e-5, 'cross-entropy')
    for _, make in ipairs { function(s) return ms.optim.SGD(s, { lr = 0.1, momentum = 0.9, nesterov = true }) end,
                            function(s) return ms.optim.AdamW(s, { lr = 0.01 }) end } do
      local a, b = ms.randn(100), nil
      b = a:cuda()
      local sa, sb = ms.params { a }, ms.params { b }
      local oa, ob = make(sa), make(sb)
      for k = 1, 3 do
        local g = ms.empty(100):normal_(0, 1, { seed = k })
        oa:step(function() sa.grads[1]:copy_(g); return 0 end)
        ob:step(function() sb.grads[1]:copy_(g); return 0 end)
      end
      H.assert_close(b:cpu(), a, 1e-5, 'optimizer')
    end
  end)

  git('a checkpoint saved from the GPU loads on the CPU and back', function()
    local path = os.tmpname()
    local t = ms.randn(3, 4):cuda()
    ms.save(path, { t = t })
    assert.equal('cpu', ms.load(path).t.device)
    H.assert_close(ms.load(path, { device = 'cuda' }).t:cpu(), t:cpu(), 0)
    os.remove(path)
  end)

  git('mixing devices in one op names both', function()
    H.assert_error(function() return ms.zeros(2):cuda() + ms.zeros(2) end, 'cuda', 'cpu')
    H.assert_error(function() return ms.matmul(ms.zeros(2, 2):cuda(), ms.zeros(2, 2)) end, 'cuda', 'cpu')
    H.assert_error(function() return ms.zeros(2, 'float64'):cuda():exp() end, 'float64', 'CPU-only')
  end)
end)
