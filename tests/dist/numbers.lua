-- Lists of numbers as one line each way, exactly (%.17g): what the mpirun scripts under
-- tests/dist/ print and their specs read back.
local M = {}

function M.format(list)
  local t = {}
  for i, v in ipairs(list or {}) do t[i] = ('%.17g'):format(v) end
  return table.concat(t, ',')
end

function M.parse(s)
  local t = {}
  for v in s:gmatch('[^,]+') do t[#t + 1] = tonumber(v) end
  return t
end

return M
