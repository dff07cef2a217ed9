-- scripts/zo_mnist.lua end to end on a slice of Fashion-MNIST (--limit: a few training
-- batches, 1000 test images): it writes the CSV, the Markdown table and the plot, and
-- every accuracy is a percentage.
local H = require 'helper'

local function run(args) return H.sh_rc('bin/moonstep scripts/zo_mnist.lua ' .. args) end

local function have_gnuplot() return H.sh('command -v gnuplot'):match('%S') ~= nil end

local function csv_rows(text)
  local lines = {}
  for line in text:gmatch('[^\n]+') do lines[#lines + 1] = line end
  local header, rows = {}, {}
  for f in (lines[1] .. ','):gmatch('([^,]*),') do header[#header + 1] = f end
  for i = 2, #lines do
    local row, j = {}, 0
    for f in (lines[i] .. ','):gmatch('([^,]*),') do j = j + 1; row[header[j]] = f end
    rows[#rows + 1] = row
  end
  return header, rows
end

describe('scripts/zo_mnist.lua', function()
  it('rejects unknown flags and values with exit status 2', function()
    local out = run('--frobnicate 1')
    assert.truthy(out:find('unknown flag --frobnicate', 1, true), out)
    assert.truthy(out:find('rc=2', 1, true), out)
    out = run('--models Linear,XXL')
    assert.truthy(out:find('--models: unknown "XXL"', 1, true), out)
    assert.truthy(out:find('rc=2', 1, true), out)
    out = run('--limit 1 --out /proc/zo_mnist_no_such_dir')   -- before loading any data
    assert.truthy(out:find('cannot write /proc/zo_mnist_no_such_dir/zo_mnist.csv', 1, true), out)
    assert.truthy(out:find('rc=1', 1, true), out)
  end)

  if not H.have_fashion_mnist then
    pending('dataset-fashion-mnist is not installed')
    return
  end

  it('runs a slice of the grid and writes the CSV, the Markdown table and the plot', function()
    local dir = os.tmpname()
    os.remove(dir)
    local out = run(('--limit 4 --models Linear,XS --T 4,8 --optims adam,sgd,backprop --sgd-lr 0.002 --threads 2 --out %s')
      :format(H.quote(dir .. '/sub')))
    assert.truthy(out:find('rc=0', 1, true), out)
    local base = dir .. '/sub/zo_mnist'
    local header, rows = csv_rows(H.read_file(base .. '.csv'))
    assert.same({ 'model', 'optimizer', 'T', 'lr', 'test_accuracy', 'train_loss', 'seconds',
                  'forward_passes', 'steps', 'skipped' }, header)
    -- 2 models x (backprop + 2 optimizers x 2 T)
    assert.equal(10, #rows)
    local seen = {}
    for _, r in ipairs(rows) do
      local acc = tonumber(r.test_accuracy)
      assert.is_number(acc, r.test_accuracy)
      assert.is_true(acc >= 0 and acc <= 100, r.test_accuracy)
      assert.equal(4, tonumber(r.steps))
      local T = tonumber(r.T)
      assert.equal(({ backprop = 0.001, ['zo-adam'] = 0.001, ['zo-sgd'] = 0.002 })[r.optimizer], tonumber(r.lr))
      if r.optimizer == 'backprop' then
        assert.equal('', r.T)
        assert.equal(4, tonumber(r.forward_passes))
      else
        -- forward differences: T perturbed models + the nominal one per step
        assert.equal(4 * (T + 1), tonumber(r.forward_passes))
      end
      seen[r.model .. ' ' .. r.optimizer .. ' ' .. r.T] = true
    end
    for _, k in ipairs { 'Linear backprop ', 'Linear zo-adam 4', 'Linear zo-sgd 8', 'XS zo-adam 8', 'XS zo-sgd 4' } do
      assert.is_true(seen[k], k)
    end
    local md = H.read_file(base .. '.md')
    assert.truthy(md:find('| model | optimizer | T |', 1, true), md)
    assert.truthy(md:find('| XS | zo-adam | 8 |', 1, true), md)
    assert.truthy(md:find('81.04 / 85.70 / 88.35', 1, true), md)   -- Zeroth-Learn's anchors
    assert.truthy(out:find('| Linear | backprop |', 1, true), out)  -- printed too
    if have_gnuplot() then
      local png = H.read_file(base .. '.png')
      assert.equal('\137PNG', png:sub(1, 4))
      assert.truthy(#png > 1000)
    else
      assert.truthy(out:find('no plot', 1, true), out)
    end
    H.sh('rm -rf ' .. H.quote(dir))
  end)
end)
