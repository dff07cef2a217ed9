-- scripts/train.lua end to end on a slice of Fashion-MNIST: it learns, and resuming
-- from a checkpoint reproduces the losses of an uninterrupted run exactly.
local H = require 'helper'
local have = H.have_fashion_mnist

local run = H.train

local losses = H.epoch_losses

describe('scripts/train.lua', function()
  if not have then
    pending('dataset-fashion-mnist is not installed')
    return
  end
  local ck = os.tmpname()

  it('trains an MLP and resumes exactly', function()
    local full = run('--limit 3000 --epochs 3 --batch 100')
    assert.truthy(full:find('rc=0', 1, true), full)
    local l = losses(full)
    assert.is_true(tonumber(l[3]) < tonumber(l[1]), full)
    local part = run('--limit 3000 --epochs 1 --batch 100 --save ' .. ck)
    assert.equal(l[1], losses(part)[1])
    local rest = run('--limit 3000 --epochs 3 --batch 100 --resume ' .. ck)
    assert.truthy(rest:find('resumed from', 1, true), rest)
    local r = losses(rest)
    assert.is_nil(r[1])
    assert.equal(l[2], r[2])   -- the printed losses agree to every digit
    assert.equal(l[3], r[3])
  end)

  it('runs the CNN, with SGD', function()
    local out = run('--model cnn --optim sgd --limit 512 --epochs 1 --batch 64')
    assert.truthy(out:find('epoch 1', 1, true), out)
    assert.truthy(out:find('rc=0', 1, true), out)
  end)

  it('rejects bad options and mismatched checkpoints', function()
    assert.truthy(run('--model resnet --epochs 1'):find('--model is "resnet", expected mlp or cnn', 1, true))
    assert.truthy(run('--model cnn --limit 200 --epochs 1 --resume ' .. ck):find('holds a mlp model', 1, true))
    os.remove(ck)
  end)
end)
