-- The training benchmarks run (--quick, one thread, without PyTorch): their tables come
-- out, the GEMM floor matches the GEMMs of a real step, and every plain C competitor
-- computes what moonstep computes. Speed is never asserted here (scripts/bench/ measures it).
local H = require 'tests.helper'

describe('benchmarks (smoke)', function()
  it('train.lua --quick prints the three cases against their GEMM floor', function()
    if not H.have_fashion_mnist then pending('dataset-fashion-mnist is not installed') return end
    local out = H.sh_rc('bin/moonstep scripts/bench/train.lua --quick --no-torch --threads 1 2>&1')
    assert.truthy(out:find('rc=0', 1, true), out)
    for _, name in ipairs { '784-256-10', '784-512-512-10', 'CNN' } do
      assert.truthy(out:find('\n  ' .. name:gsub('%-', '%%-') .. ' +[%d.]+ +[%d.]+ +[%d.]+x'), name .. ' row missing:\n' .. out)
    end
    assert.truthy(out:find('checked against the ms.matmul calls of one real step', 1, true), out)
    assert.falsy(out:find('differs from the GEMMs', 1, true), out)
  end)

  it('autograd.lua --quick prints the tape cost, Rosenbrock and the MLP against the Module protocol', function()
    local cases = H.have_fashion_mnist and '' or ' --cases tape,rosen'   -- the MLP needs the dataset
    local out = H.sh_rc('bin/moonstep scripts/bench/autograd.lua --quick --no-torch' .. cases .. ' 2>&1')
    assert.truthy(out:find('rc=0', 1, true), out)
    assert.falsy(out:find('not measured', 1, true), out)
    for _, op in ipairs { 'x:add%(1%)', 't %+ u', 'x:add_%(1%)' } do
      assert.truthy(out:find('\n  ' .. op .. ' +[%d.]+ +[%d.]+ +[-+][%d.]+ +[-+][%d.]+'), op .. ' row missing:\n' .. out)
    end
    -- Adam (lr 1e-2, betas 0.9/0.999, eps 1e-8) on Rosenbrock from (-1.5, 2), 1000 steps:
    -- torch.optim.Adam with loss.backward() ends at (0.0673690744, 0.0039540167)
    local x, y = out:match('\n  moonstep ms%.autograd +[%d.]+ +%(([-%d.]+), ([-%d.]+)%)')
    assert.truthy(x, 'Rosenbrock row missing:\n' .. out)
    assert.near(0.0673690744, tonumber(x), 1e-6)
    assert.near(0.0039540167, tonumber(y), 1e-6)
    if not H.have_fashion_mnist then return end
    for _, row in ipairs { '%(a%) ms%.autograd', '%(b%) Module protocol' } do
      assert.truthy(out:find('\n  ' .. row .. ' +[%d.]+ +%d+ +[%d.]+ +0%.%d+'), row .. ' missing:\n' .. out)
    end
    -- the same start and batches: the two models train alike
    local acc_a = tonumber(out:match('\n  %(a%) ms%.autograd +[%d.]+ +%d+ +[%d.]+ +(0%.%d+)'))
    local acc_b = tonumber(out:match('\n  %(b%) Module protocol +[%d.]+ +%d+ +[%d.]+ +(0%.%d+)'))
    assert.near(acc_b, acc_a, 0.01)
    assert.truthy(out:find('autograd / Module: [%d.]+x per step'), out)
    assert.truthy(out:find('allocations per step: autograd %d+ tensors'), out)
  end)

  it('dist.lua --quick counts the bytes of 1 and 2 ranks (the 2-rank rows skip without mpirun)', function()
    local D = require 'dist_helper'
    local out = H.sh_rc('bin/moonstep scripts/bench/dist.lua --quick --cases first,spsa 2>&1')
    assert.truthy(out:find('rc=0', 1, true), out)
    assert.truthy(out:find('\n +1 +1 %- +[%d.]+ +0%.000 +0 +0 +1%.00x +yes'), out)
    if not D.available then
      assert.truthy(out:find('skipped (no mpirun)', 1, true), out)
      return
    end
    -- first-order: the float32 arena of 784-256-10 (203530, in one bucket: no size check),
    -- the loss and its size check, exactly once per step (a second sync would double it)
    assert.truthy(out:find('\n +2 +1 gradients +[%d.]+ +[%d.]+ +814160 +814160 +[%d.]+x +yes'), out)
    -- SPSA: only scalars (<= 16 T bytes per rank and step), when its data-parallel mode runs
    for mode in out:gmatch('\n +2 +1 (%a+) +[%d.]+ +[%d.]+ +%d+ +%d+ +[%d.]+x +yes') do
      if mode ~= 'gradients' and mode ~= 'flat' then   -- (the first-order rows)
        local bytes = tonumber(out:match('\n +2 +1 ' .. mode .. ' +[%d.]+ +[%d.]+ +(%d+)'))
        assert.truthy(bytes <= 800, out)
      end
    end
  end)

  it('kernels.lua --quick checks every competitor against moonstep', function()
    local out = H.sh_rc('bin/moonstep scripts/bench/kernels.lua --quick --threads 1 2>&1')
    assert.truthy(out:find('rc=0', 1, true), out)
    assert.truthy(out:find("competitor check: the C loops' outputs equal moonstep's", 1, true), out)
    assert.falsy(out:find('FAILED', 1, true), out)
    for _, row in ipairs { 'MaxPool2d%(2%) forward', 'col2im', 'CrossEntropyLoss forward', 'Adam step' } do
      assert.truthy(out:find(row), row .. ' missing:\n' .. out)
    end
  end)
end)
