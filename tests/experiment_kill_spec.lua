-- ms.experiment.run_all in a separate process, stopped in the middle of a grid by kill -9
-- or Ctrl-C (SIGINT): at most the run in progress is lost, the next run_all skips the
-- finished runs and completes the set.
local H = require 'helper'

local SCRIPT = [[
local E = ms.experiment
local list = E.grid({ seed = { 1, 2, 3, 4 } }, { data = { train = 512, test = 256 }, optimizer = 'SGD',
  model = { 'mlp', sizes = { 784, 128, 10 } }, batch_size = 32, epochs = 25, device = 'cpu', threads = 1 })
local set = E.run_all(list, { out = arg[1], quiet = true })
for i, r in ipairs(set) do print(('run %d %s %s'):format(i, r.id, r.resumed and 'resumed' or 'ran')) end
]]

local function finished(out)
  return tonumber(H.sh(('ls %s/*/result.json 2>/dev/null | wc -l'):format(out)):match('%d+'))
end

-- Start the grid in the background, wait for its first finished run, send sig; the
-- output and exit status.
local function stop_with(sig, script, out)
  return H.sh(('bin/moonstep %s %s > %s.log 2>&1 & pid=$!; '
               .. 'for i in $(seq 3000); do ls %s/*/result.json >/dev/null 2>&1 && break; sleep 0.02; done; '
               .. 'kill -%s $pid; wait $pid; echo "rc=$?"; cat %s.log'):format(script, out, out, out, sig, out))
end

describe('experiment.run_all stopped mid-grid', function()
  if not H.have_fashion_mnist then
    pending('dataset-fashion-mnist is not installed')
    return
  end
  local script = os.tmpname() .. '.lua'
  local f = assert(io.open(script, 'w'))
  f:write(SCRIPT)
  f:close()

  for _, case in ipairs { { 'KILL', 137 }, { 'INT', 130 } } do
    local sig, rc = case[1], case[2]
    it(('by SIGKILL/SIGINT (%s) loses at most the run in progress'):format(sig), function()
      local out = os.tmpname()
      os.remove(out)
      local log = stop_with(sig, script, out)
      assert.truthy(log:find('rc=' .. rc, 1, true), log)
      local done = finished(out)
      assert.truthy(done >= 1 and done < 4, ('%d runs finished before the %s: %s'):format(done, sig, log))
      if sig == 'INT' then
        -- one clean line, no traceback
        assert.falsy(log:find('traceback', 1, true), log)
        local _, lines = log:gsub('interrupted', '')
        assert.equal(1, lines, log)
      end
      local again = H.sh_rc(('bin/moonstep %s %s'):format(script, out))
      assert.truthy(again:find('rc=0', 1, true), again)
      local _, resumed = again:gsub(' resumed\n', '')
      local _, ran = again:gsub(' ran\n', '')
      assert.equal(done, resumed, again)                  -- every finished run skipped
      assert.equal(4 - done, ran, again)
      assert.equal(4, finished(out))
      -- and every run is whole: all its steps and epochs on disk
      local set = H.sh_rc(('bin/moonstep -e "for _, r in ipairs(ms.experiment.load(\'%s\')) do '
                           .. 'print(r.steps.n, r.epochs.n, r.metrics.steps) end"'):format(out))
      local _, whole = set:gsub('400\t25\t400\n', '')
      assert.equal(4, whole, set)
      os.execute('rm -rf ' .. out .. ' ' .. out .. '.log')
    end)
  end

  teardown(function() os.remove(script) end)
end)
