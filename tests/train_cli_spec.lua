-- scripts/train.lua's command line: --help, and every bad flag is a one-line error with
-- exit status 2 before anything is loaded or trained (no dataset needed).
local H = require 'helper'
local run = H.train

local function refused(args, ...)
  local out = run(args)
  assert.truthy(out:find('rc=2', 1, true), out)
  assert.falsy(out:find('traceback', 1, true), out)
  assert.falsy(out:find('epoch', 1, true) and out:find('loss', 1, true), out)   -- trained nothing
  for _, frag in ipairs { ... } do assert.truthy(out:find(frag, 1, true), out) end
  return out
end

describe('scripts/train.lua flags', function()
  it('--help lists every flag with its default and exits 0', function()
    local out = run('--help')
    assert.truthy(out:find('rc=0', 1, true), out)
    for _, flag in ipairs { '--model', '--optim', '--lr', '--epochs', '--batch', '--seed', '--device',
                            '--threads', '--limit', '--save', '--resume', '--help' } do
      assert.truthy(out:find(flag, 1, true), flag .. ' missing from --help')
    end
    assert.truthy(out:find('(default 10)', 1, true), out)     -- epochs
    assert.truthy(out:find('(default 128)', 1, true), out)    -- batch
    assert.truthy(out:find('(default adam)', 1, true), out)
  end)

  it('refuses unknown flags (--epoch 3 does not train 10 epochs)', function()
    refused('--epoch 3', 'unknown flag --epoch', '--epochs', '--help')
    refused('--learning-rate 0.1', 'unknown flag --learning-rate')
  end)

  it('refuses values of the wrong kind with a clear message', function()
    refused('--epochs ten', '--epochs expects an integer >= 1, got "ten"')
    refused('--epochs=2.5', '--epochs expects an integer >= 1, got "2.5"')
    refused('--lr fast', '--lr expects a number >= 0, got "fast"')
    refused('--lr nan', '--lr expects a number')
    refused('--batch 0', '--batch expects an integer >= 1, got "0"')
    refused('--model resnet', '--model is "resnet", expected mlp or cnn')
    refused('--device tpu', '--device is "tpu", expected cpu or cuda')
    refused('--save ""', '--save expects a path')
  end)

  it('refuses --limit 0 and negative limits instead of training on nothing', function()
    refused('--limit 0', '--limit expects an integer >= 1, got "0"')
    refused('--limit -5', '--limit expects an integer >= 1, got "-5"')
  end)

  it('refuses a flag without a value and stray arguments', function()
    refused('--epochs', '--epochs needs a value')
    refused('5', 'expected a flag (--name value), got "5"')
  end)
end)

describe('train.lua --optim', function()
  it('runs every optimizer it lists, and refuses others by name', function()
    for _, o in ipairs { 'adamw', 'nadam', 'rmsprop', 'adagrad', 'autosgm', 'spsa' } do
      local out = H.train('--optim ' .. o .. ' --epochs 1 --limit 500 --batch 100')
      if H.have_fashion_mnist then
        assert.truthy(out:find('epoch 1', 1, true), out)
        assert.truthy(out:find('rc=0', 1, true), out)
      end
    end
    local out = H.train('--optim lbfgs')
    assert.truthy(out:find('--optim is "lbfgs", expected adam or adamw', 1, true), out)
  end)
end)
