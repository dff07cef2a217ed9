-- The API-misuse fuzzer (tests/fuzz/api_misuse.lua) as part of the suite: seeded random
-- misuse calls over the whole public Lua API, the lab modules included (ms.experiment,
-- ms.plot, ms.landscape, ms.objectives, ms.progress: tiny runs on a fixture Fashion-MNIST,
-- every file inside the fuzzer's temporary directory), in a child process that inherits
-- this one's environment (under `make test-asan`: the sanitizer build, LD_PRELOAD and
-- ASAN_OPTIONS, so every call is sanitized). No call may kill the process (signal,
-- sanitizer report, hang, a broken lab contract), every tensor and lab object a call returns
-- must print, nothing may be written outside the fuzzer's directory, and the share of errors
-- that do not name the function called at the caller's line stays under UNCLEAR_MAX
-- (goal 0; long runs: make fuzz-api N=100000 SEED=s).
-- 3,500 calls since the lab joined (about 200 of them lab calls, which train, draw and write
-- files): the spec takes what 4,000 calls took before (about 5.5 s on 2 idle cores).
local SEED, CALLS = 1, 3500
-- Measured at 13:20 UTC on 2026-11-30: 0 unclear of 2,321 errors (0.0%) on both builds, down from
-- 53% before issue 6: none is allowed, so a new function that lets a raw message out fails here
-- (with its reproducer) rather than in a user's hands.
local UNCLEAR_MAX = 0

describe('API misuse fuzzer', function()
  local limit = UNCLEAR_MAX == 0 and 'no unclear error' or ('unclear errors under %g%%'):format(UNCLEAR_MAX * 100)
  it(('%d random misuse calls: no process death, %s'):format(CALLS, limit), function()
    local summary = os.tmpname()
    local cmd = ('bin/moonstep tests/fuzz/api_misuse.lua --seed %d --calls %d --top 10 --max-deaths 10 --summary %s 2>&1')
      :format(SEED, CALLS, summary)
    local p = io.popen(cmd)
    local out = p:read('*a')
    p:close()
    local chunk = loadfile(summary)
    os.remove(summary)
    assert(chunk, 'the fuzzer wrote no summary:\n' .. out)
    local s = chunk()
    print('\n' .. out)
    assert(s.deaths == 0, ('%d calls killed the process (the run stops after 10):\n  %s')
      :format(s.deaths, table.concat(s.death_list, '\n  ')))
    assert(s.calls >= CALLS, ('only %d of %d calls ran:\n%s'):format(s.calls, CALLS, out))
    -- the API is found by walking ms: a walk that finds little fuzzes little
    assert(s.api.functions >= 50 and s.api.tensor_methods >= 80 and s.api.nn_classes >= 15 and s.api.optimizers >= 3,
      'the fuzzer found too little of the API to call:\n' .. out)
    -- the lab: its functions and the methods of the objects it returns, a share of the calls
    assert(s.api.lab_functions >= 20 and s.api.lab_methods >= 12 and s.areas.lab >= CALLS * 0.03,
      'the fuzzer found too little of the lab (ms.experiment, ms.plot, ...) to call:\n' .. out)
    assert(s.setup_errors < CALLS * 0.05,
      ('%d calls failed while building their arguments (the fuzzer is out of date with the API):\n%s')
        :format(s.setup_errors, out))
    assert(s.unprintable == 0, ('%d tensors returned by calls fail to print:\n%s'):format(s.unprintable, out))
    -- the fuzzer runs in a temporary directory: nothing it writes may land here (the repository)
    for _, name in ipairs { 'lab.log', 'lab_runs', 'lab_p.png', 'lab_replay', 'runs', 'runs_bad', 'pwned', 'ok.ck',
                            'out.ck', 'cfg_ok.json', 'fmnist' } do
      local f = io.open(name, 'r')
      if f then f:close() end
      assert(f == nil, name .. ' appeared in the working directory: the fuzzer wrote outside its directory')
    end
    local share = s.errors > 0 and s.unclear / s.errors or 0
    assert(share <= UNCLEAR_MAX, ('%.2f%% of %d errors are unclear (at most %g%% allowed):\n%s')
      :format(100 * share, s.errors, 100 * UNCLEAR_MAX, out))
  end)
end)
