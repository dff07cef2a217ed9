-- scripts/train.lua on a terminal and under Ctrl-C: the progress bar leaves no stale
-- characters, and SIGINT stops the run with one clean line, writing with --save a
-- checkpoint from which --resume reproduces the losses of an uninterrupted run.
local H = require 'helper'
local have = H.have_fashion_mnist
local have_script = os.execute('command -v script >/dev/null 2>&1') == 0

local sh = H.sh_rc

local losses = H.epoch_losses

-- Starts train.lua with args in the background, waits for `ready` (a pattern) in its
-- output, sleeps `delay` seconds, sends SIGINT; returns the output and the exit status.
local function interrupt(args, ready, delay)
  local out = os.tmpname()
  local cmd = ('bin/moonstep scripts/train.lua %s > %s 2>&1 & pid=$!; '
               .. 'for i in $(seq 600); do grep -q %q %s && break; sleep 0.1; done; '
               .. 'sleep %s; kill -INT $pid; wait $pid; echo "rc=$?" >> %s; cat %s; rm -f %s')
              :format(args, out, ready, out, delay, out, out, out)
  return sh(cmd)
end

describe('scripts/train.lua interactive use', function()
  if not have then
    pending('dataset-fashion-mnist is not installed')
    return
  end

  it('Ctrl-C prints one clean line and exits 130', function()
    local out = interrupt('--limit 3000 --batch 50 --epochs 100', '^model', 0.5)
    assert.truthy(out:find('rc=130', 1, true), out)
    assert.falsy(out:find('traceback', 1, true), out)
    local _, lines = out:gsub('interrupted', '')
    assert.equal(1, lines, out)
    assert.truthy(out:find('\ntrain%.lua: interrupted %(Ctrl%-C%) in epoch %d+ after %d+ steps\n'), out)
  end)

  it('Ctrl-C with --save writes a checkpoint that resumes exactly', function()
    local ck = os.tmpname()
    local args = '--limit 2000 --batch 100 --save ' .. ck
    local out = interrupt(args .. ' --epochs 100', '^epoch 1 ', 0.3)
    assert.truthy(out:find('rc=130', 1, true), out)
    local epoch = tonumber(out:match('interrupted %(Ctrl%-C%) in epoch (%d+) after %d+ steps; saved '))
    assert.truthy(epoch, out)
    local rest = sh(('bin/moonstep scripts/train.lua %s --epochs %d --resume %s'):format(args, epoch, ck))
    assert.truthy(rest:find('rc=0', 1, true), rest)
    assert.truthy(rest:find('resumed from', 1, true), rest)
    local full = sh(('bin/moonstep scripts/train.lua --limit 2000 --batch 100 --epochs %d'):format(epoch))
    local a, b, r = losses(out), losses(full), losses(rest)
    for e = 1, epoch do
      assert.equal(b[e], a[e] or r[e], 'epoch ' .. e)   -- every digit printed
    end
    os.remove(ck)
  end)

  it('the progress bar on a terminal redraws over the whole previous line', function()
    if not have_script then pending('util-linux script(1) is not installed'); return end
    local out = sh('script -qec "bin/moonstep scripts/train.lua --limit 3000 --batch 25 --epochs 1" /dev/null')
    assert.truthy(out:find('epoch 1 ', 1, true), out)
    out = out:gsub('\r\n', '\n')
    local redraws = 0
    for line in out:gmatch('[^\n]*') do
      local widest = 0
      for seg in line:gmatch('\r([^\r]*)') do
        if seg ~= '' then
          redraws = redraws + 1
          -- each redraw covers the widest one before it (no stale characters)
          assert(#seg >= widest, ('a redraw of %d characters over %d: %q'):format(#seg, widest, line))
          widest = #seg
        end
      end
    end
    assert.is_true(redraws >= 3, out)
  end)
end)
