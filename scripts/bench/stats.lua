-- stats.lua (bench) — what the benchmarks share: the median of a list of samples (every
-- figure they print is one; the machine is shared and noisy).
--   local stats = dofile(home .. '/scripts/bench/stats.lua'); stats.median(xs)
local M = {}

function M.median(xs)
  local s = { unpack(xs) }
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  return n % 2 == 1 and s[(n + 1) / 2] or (s[n / 2] + s[n / 2 + 1]) / 2
end

return M
