-- schedule.window_shapes — the AutoSGM window shapes (acme_autosgm.md §2.7, reference
-- v2 = somefunAgba/autosgm 07b5e79), as functions of the window fraction f.
--
--   shape(rcm, f, n, Ms, x) -> F     f in [0, 1] (0 = start of the anneal), n the shape
--                                    constant, Ms the staircase count (1 = plain), x the floor
--   kronecker(j) -> frac(j (sqrt(5) - 1) / 2)   the quasi-random abscissae of inseq = 1
--
-- With z the normalized shape (z(0) = 1, decreasing), F = x + (1 - x) z, and for Ms > 1 the
-- staircase: i = max(1, ceil(f Ms)), f' = Ms f - i + 1, F = x + (1 - x) (Ms - i + z(f')) / Ms.
--   rcm 1 raised cosine     z = cos(pi f / 2) ^ n
--   rcm 2 polynomial        z = (1 - f) ^ n               (never a staircase, as in the reference)
--   rcm 3 beta-exponential  z = (b ^ f - b) / (1 - b), b = n in (0, 1)
--   rcm 4 simple polynomial z = (1 - f ^ n) ^ 2
--   rcm 5 logistic, mid     z = (s(f) - s(1)) / (s(0) - s(1)), s(f) = 1 / (1 + 2 ^ (2 n (f - 1/2)));
--                           the staircase is a sum of Ms terms centred at (j + 1/2) / Ms,
--                           s_j(f) = 1 / (1 + 2 ^ (2 Ms n (f - c_j))), normalized by its values at 0, 1
--   rcm 6 logistic, late    z = (s6(f) - ymin) / (ymax - ymin), s6(f) = 1 / (1 + 2 ^ (2 n (f - 0.875))),
--                           ymax = 1 / (1 + 2 ^ -n), ymin = 1 / (1 + 2 ^ n): NOT normalized to
--                           [0, 1] (the reference's quirk, kept): at n = 4, z(0) = 1.058, z(1) = 0.311
local cos, pi, ceil, max = math.cos, math.pi, math.ceil, math.max

local M = {}

local ALPHA = 0.5 * (-1 + math.sqrt(5))
function M.kronecker(j) return math.fmod(ALPHA * j, 1) end

-- The normalized single shape z(f) for rcm 1, 3, 4, 6 (rcm 2 and 5 are handled apart).
local function z(rcm, f, n)
  if rcm == 1 then return cos(0.5 * pi * f) ^ n
  elseif rcm == 3 then return (n ^ f - n) / (1 - n)
  elseif rcm == 4 then return (1 - f ^ n) ^ 2
  elseif rcm == 6 then
    local ymax, ymin = 1 / (1 + 2 ^ (-n)), 1 / (1 + 2 ^ n)
    return (1 / (1 + 2 ^ (2 * n * (f - 0.875))) - ymin) / (ymax - ymin)
  end
  error('window shape: rcm ' .. tostring(rcm))
end

-- rcm 5: a sum of Ms logistic terms (Ms = 1: the plain logistic), normalized to [0, 1].
local function logistic_sum(f, n, Ms)
  local alpha, fs = 2 * Ms * n, 1 / Ms
  local y, ymin, ymax = 0, 0, 0
  for i = 0, Ms - 1 do
    local d = fs * (i + 0.5)
    ymax = ymax + 1 / (1 + 2 ^ (alpha * (-d)))
    ymin = ymin + 1 / (1 + 2 ^ (alpha * (1 - d)))
    y = y + 1 / (1 + 2 ^ (alpha * (f - d)))
  end
  ymin, ymax = ymin * fs, ymax * fs
  local dy = ymax - ymin
  return y * (fs / dy) - ymin / dy     -- the reference's order of operations
end

function M.shape(rcm, f, n, Ms, x)
  local dy, y = 1 - x, nil
  if rcm == 2 then
    y = (1 - f) ^ n
  elseif rcm == 5 then
    y = logistic_sum(f, n, Ms)
  else
    local i = max(1, ceil(f * Ms))
    y = (Ms - i + z(rcm, Ms * f - i + 1, n)) / Ms
  end
  return y * dy + x
end

return M
