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
