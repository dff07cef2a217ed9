-- stats.lua (bench) — what the benchmarks share: the median of a list of samples (every
-- figure they print is one; the machine is shared and noisy), A/B measurement in
-- alternation, and the process's peak memory.
--   local stats = dofile(home .. '/scripts/bench/stats.lua'); stats.median(xs)
local M = {}

function M.median(xs)
  local s = { unpack(xs) }
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  return n % 2 == 1 and s[(n + 1) / 2] or (s[n / 2] + s[n / 2 + 1]) / 2
end

-- Times the functions fs[1], fs[2], ... in alternation: `rounds` rounds, each calling
-- every f `reps` times in a row (seconds per call, wall clock), so that all see the same
-- machine as it drifts. Returns the samples, samples[i][round].
function M.alternate_samples(fs, rounds, reps, clock)
  reps = reps or 1
  local samples = {}
  for i = 1, #fs do samples[i] = {} end
  for _ = 1, rounds do
    for i, f in ipairs(fs) do
      local t0 = clock()
      for _ = 1, reps do f() end
      samples[i][#samples[i] + 1] = (clock() - t0) / reps
    end
  end
  return samples
end

-- This process's peak resident set (VmHWM of /proc/self/status) in kB, or nil.
function M.peak_kb()
  local f = io.open('/proc/self/status')
  if not f then return nil end
  local s = f:read('*a')
  f:close()
  return tonumber(s:match('VmHWM:%s*(%d+)'))
end

return M
