-- optim.reduce — deterministic reductions and per-slice scaling over an arena
-- (runtime/arena.c): the same bits whatever the thread count, on CPU and GPU (fixed
-- chunks summed in float64 in a fixed order). What clipping, SAM, ACME and AutoSGM use.
--
--   reduce.sumsq(who, a [, st])     -> ||a||^2 [, {per slice}]
--   reduce.dot(who, a, b [, st])    -> <a, b> [, {per slice}]
--   reduce.sum(who, a [, st])       -> sum(a) [, {per slice}]
--   reduce.absmax(who, a [, st])    -> max |a| (nan if any) [, {per slice}]
--   reduce.finite(who, a)           -> true when a holds no nan or inf
--   reduce.sqprod(who, a, b [, st]) -> sum a^2 b^2 [, {per slice}]
--   reduce.absprod(who, a, b [, st])-> sum a^2 |b| [, {per slice}]
--   reduce.scale(who, a, st, s)     a[slice i] *= s[i] (s: a Lua list, one per slice)
--   reduce.scale_by_norm(who, a, st, f)   a[slice i] *= f(||a[slice i]||)
--   reduce.axpby(who, y, a, x, b [, st])   y = a y + b x (a, b numbers, or lists per slice
--                                   with st); x nil: y = a y
--   reduce.perturb(who, w, g, out, st, per)   out = w + (t^power g) scale, t = |w| + eta,
--                                   per slice: per[i] = {scale =, eta =, power = 0|1|2}
--   reduce.swap(who, a, b)          exchange two whole arenas' contents in O(1)
--   reduce.untrade(who, a)          a's memory back to it if a swap left it traded (true)
-- who: the public function to name in an error; st: a SliceTable (optim/slices.lua).
local ffi = require 'ffi'
local ms = require 'moonstep'
local fail = require('moonstep.core').fail
local C = ms.C

local M = {}

-- Scratch arrays handed to the runtime (which reads or fills them before returning), grown
-- when a larger slice table comes: nothing allocated per call on the optimizer's hot path.
-- M.array(key, ctype, n): the array kept under key (other modules prefix their keys).
local arrays = {}
local function array(key, ctype, n)
  local a = arrays[key]
  if not a or a.n < n then
    a = { n = math.max(n, 8), p = ffi.new(ctype .. '[?]', math.max(n, 8)) }
    arrays[key] = a
  end
  return a.p
end
M.array = array

local function run(who, op, a, b, st)
  local out = array('out', 'double', st and st.nslices + 1 or 1)
  if C.ms_arena_reduce(op, a, b, st and st.ct or nil, out) ~= 0 then fail(who) end
  if not st then return out[0] end
  local per = {}
  for i = 1, st.nslices do per[i] = out[i] end
  return out[0], per
end

function M.sumsq(who, a, st) return run(who, C.MS_ARENA_SUMSQ, a, nil, st) end
function M.dot(who, a, b, st) return run(who, C.MS_ARENA_DOT, a, b, st) end
function M.sum(who, a, st) return run(who, C.MS_ARENA_SUM, a, nil, st) end
function M.sqprod(who, a, b, st) return run(who, C.MS_ARENA_SQPROD, a, b, st) end
function M.absprod(who, a, b, st) return run(who, C.MS_ARENA_ABSPROD, a, b, st) end
function M.absmax(who, a, st) return run(who, C.MS_ARENA_ABSMAX, a, nil, st) end
-- true when every element of a is finite (one cheap read-only pass)
function M.finite(who, a) local v = run(who, C.MS_ARENA_NONFINITE, a, nil, nil); return v == 0 end

-- Per-slice clipping: each slice of a multiplied by factor(its L2 norm) (skipped when
-- every factor is 1). Torch's clip per tensor and Keras's clipnorm are two factors.
function M.scale_by_norm(who, a, st, factor)
  local _, per = M.sumsq(who, a, st)
  local scales, any = {}, false
  for i, sq in ipairs(per) do
    scales[i] = factor(math.sqrt(sq))
    any = any or scales[i] ~= 1
  end
  if any then M.scale(who, a, st, scales) end
end

function M.scale(who, a, st, scales)
  local s = array('scale', 'double', st.nslices)
  for i = 1, st.nslices do s[i - 1] = scales[i] end
  if C.ms_arena_scale(a, st.ct, s) ~= 0 then fail(who) end
  return a
end

local function coefficients(key, v, st)
  local n = st and st.nslices or 1
  local c = array(key, 'double', n)
  for i = 1, n do c[i - 1] = type(v) == 'table' and v[i] or v end
  return c
end

function M.axpby(who, y, a, x, b, st)
  if C.ms_arena_axpby(y, coefficients('a', a, st), x, x and coefficients('b', b, st) or nil, st and st.ct or nil) ~= 0 then
    fail(who)
  end
  return y
end

function M.perturb(who, w, g, out, st, per)
  local c = array('perturb', 'ms_perturb_slice', st.nslices)
  for i = 1, st.nslices do
    local p = per[i]
    c[i - 1].scale, c[i - 1].eta, c[i - 1].power = p.scale, p.eta, p.power
  end
  if C.ms_arena_perturb(w, g, out, st.ct, c) ~= 0 then fail(who) end
  return out
end

function M.swap(who, a, b)
  if C.ms_arena_swap(a, b) ~= 0 then fail(who) end
end

function M.untrade(who, a)
  local rc = C.ms_arena_untrade(a)
  if rc < 0 then fail(who) end
  return rc == 1
end

return M
