-- The guard against a loaded machine (runtime/threads.c): with busy processes on every
-- core, moonstep's parallel loops go serial instead of waiting for descheduled threads,
-- and the results are the same bits as on one thread; MOONSTEP_THREAD_GUARD=0 turns it off.
local H = require 'tests.helper'
local ms = require 'moonstep'

-- The script a subprocess runs: many small parallel regions on 2 threads (the loops of
-- an optimizer step on a 256K-element tensor), then the status and a checksum.
-- A product with an inner dimension of 784 every 100 steps (OpenBLAS blocks K = 784
-- differently on 1 and 2 threads unless blas.c hands it over as a multiple of 64 plus a tail).
local SCRIPT = [[
ms.set_num_threads(tonumber(arg[1]))
ms.manual_seed(3)
local x, y = ms.randn(262144), ms.randn(262144)
local a, w, acc = ms.randn(64, 784), ms.randn(128, 784), ms.zeros(64, 128)
local function step(i)
  x:mul_(0.999):add_(y, 1e-3):clamp_(-3, 3)
  if i % 100 == 0 then ms.matmul(a, w, { transpose_b = true, out = acc, beta = 1 }) end
end
local t0 = ms.clock()
local i = 0
while i < 4000 and (i < 200 or ms.clock() - t0 < 4) do i = i + 1; step(i) end
for j = i + 1, 4000 do step(j) end
local s = ms.thread_status()
print(('episodes %d guard %s sum %.17g max %.17g acc %.17g'):format(s.serial_episodes,
  tostring(s.guard), x:sum(), x:abs():max(), acc:sum()))
]]

local function run(threads, env)
  local path = os.tmpname()
  H.write_file(path, SCRIPT)
  local out = H.sh(('%s bin/moonstep %s %d 2>&1'):format(env or '', path, threads))
  os.remove(path)
  local ep, guard, bits = out:match('episodes (%d+) guard (%a+) (sum .*)$')
  assert(ep, out)
  return tonumber(ep), guard == 'true', bits
end

-- n busy processes for `secs` seconds; returns a function that stops them.
local function load(n, secs)
  local pids = {}
  for i = 1, n do
    local p = io.popen(("timeout %d sh -c 'while :; do :; done' >/dev/null 2>&1 & echo $!"):format(secs))
    pids[i] = p:read('*l')
    p:close()
  end
  return function()
    for _, pid in ipairs(pids) do os.execute('kill ' .. pid .. ' 2>/dev/null') end
  end
end

describe('ms.thread_status', function()
  it('reports the threads asked for and in use, and the guard', function()
    local before = ms.num_threads()
    ms.set_num_threads(2)
    local s = ms.thread_status()
    assert.equal(2, s.threads)
    assert.is_true(s.active == 1 or s.active == 2)
    assert.is_true(s.serial_episodes >= 0 and s.late_regions >= 0)
    assert.is_boolean(s.guard)
    ms.set_num_threads(before)
  end)

  it('takes no arguments', function()
    H.assert_error(function() ms.thread_status(2) end, 'thread_status: got 1 arguments, expected none')
  end)
end)

describe('results on any thread count', function()
  it('reductions over all elements give the same bits on 1 and 2 threads', function()
    local before = ms.num_threads()
    ms.manual_seed(2)
    local x, f = ms.randn(1000003, { dtype = 'float64' }), ms.randn(300001)
    local got = {}
    for _, th in ipairs { 1, 2 } do
      ms.set_num_threads(th)
      got[th] = ('%.17g %.17g %.17g %d %d %.17g %.17g'):format(x:sum(), x:norm(), x:var(),
        x:argmax(), x:argmin(), f:mean(), f:norm(3))
    end
    ms.set_num_threads(before)
    assert.equal(got[1], got[2])
  end)

  it('matrix products and dot products give the same bits on 1 and 2 threads', function()
    local before = ms.num_threads()
    for _, dt in ipairs { 'float32', 'float64' } do
      for _, k in ipairs { 100, 456, 784, 1000, 3000 } do
        ms.manual_seed(k)
        local a, b = ms.randn(128, k, { dtype = dt }), ms.randn(256, k, { dtype = dt })
        local c = {}
        for th = 1, 2 do
          ms.set_num_threads(th)
          c[th] = ms.matmul(a, b, { transpose_b = true })
        end
        H.same_bits(c[1], c[2], ('%s matmul with k = %d'):format(dt, k))
      end
      local u, v = ms.randn(300007, { dtype = dt }), ms.randn(300007, { dtype = dt })
      ms.set_num_threads(1)
      local d1 = ms.dot(u, v)
      ms.set_num_threads(2)
      assert.equal(d1, ms.dot(u, v))
    end
    ms.set_num_threads(before)
  end)

  it('training an MLP and a CNN gives the same weights on 1 and 2 threads', function()
    local before = ms.num_threads()
    local nn, optim = ms.nn, ms.optim
    local function train(th, cnn)
      ms.set_num_threads(th)
      ms.manual_seed(7)
      local model = cnn and nn.Sequential(nn.Conv2d(1, 8, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
                                          nn.Conv2d(8, 16, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
                                          nn.Flatten(), nn.Linear(16 * 7 * 7, 10))
                        or nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
      local x = ms.randn(64, 784)
      if cnn then x = x:view(64, 1, 28, 28) end
      local labels = {}
      for i = 1, 64 do labels[i] = (i * 7) % 10 + 1 end
      local y = ms.tensor(labels, { dtype = 'int64' })
      local opt, crit = optim.Adam(model, { lr = 1e-2 }), nn.CrossEntropyLoss()
      for _ = 1, 5 do
        opt:step(function()
          local out = model:forward(x)
          local loss = crit:forward(out, y)
          model:backward(x, crit:backward(out, y))
          return loss
        end)
      end
      return model:flat_parameters():clone()
    end
    for _, cnn in ipairs { false, true } do
      H.same_bits(train(1, cnn), train(2, cnn), cnn and 'CNN weights' or 'MLP weights')
    end
    ms.set_num_threads(before)
  end)
end)

describe('a smaller OpenMP team than asked for', function()
  it('still covers all the work (OMP_THREAD_LIMIT=1, OMP_DYNAMIC=true)', function()
    local script = os.tmpname()
    H.write_file(script, [[
ms.set_num_threads(2)
local x = ms.ones(1000, 1000)
print(('relu %.17g double %.17g sum %.17g dot %.17g'):format(x:relu():sum(), (x * 2):sum(),
  ms.ones(1000000):sum(), ms.dot(ms.ones(300000), ms.ones(300000))))
]])
    for _, env in ipairs { 'OMP_THREAD_LIMIT=1', 'OMP_DYNAMIC=true' } do
      local out = H.sh(('%s bin/moonstep %s 2>&1'):format(env, script))
      assert.equal('relu 1000000 double 2000000 sum 1000000 dot 300000\n', out, env)
    end
    os.remove(script)
  end)
end)

describe('the guard against a loaded machine', function()
  local cores = tonumber(H.sh('nproc'):match('%d+')) or 2

  it('goes serial beside busy processes, with the same bits as one thread', function()
    local _, _, serial = run(1)
    local stop = load(cores, 30)
    local ok, ep, guard, loaded = pcall(run, 2)
    stop()
    assert(ok, ep)
    assert.is_true(guard)
    assert.is_true(ep >= 1, 'the guard never engaged on a loaded machine')
    assert.equal(serial, loaded)
  end)

  it('is off with MOONSTEP_THREAD_GUARD=0, and the bits stay those of one thread', function()
    local _, _, serial = run(1)
    local ep, guard, bits = run(2, 'MOONSTEP_THREAD_GUARD=0')
    assert.is_false(guard)
    assert.equal(0, ep)
    assert.equal(serial, bits)
  end)
end)
