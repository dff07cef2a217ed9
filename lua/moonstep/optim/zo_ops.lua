-- optim.zo_ops — the zeroth-order direction runtime (runtime/zo.c, zo_move.c) for the
-- SPSA optimizer: directions regenerated from (seed, step, index) by Philox, never stored.
--
--   zo.fill(who, out, dir [, offset])        out[j] = scale u(offset + j); a 2-D out [r, d]:
--                                            row k is direction dir.index + k (one pass)
--   zo.perturb(who, out, w, dir [, offset])  out[j] = w[j] + scale u(offset + j) (out may be w)
--   log = zo.log()                           an exact-restore log (freed by the GC);
--                                            log:count(), log:bytes(), log:free()
--   zo.move(who, w, from, log_in, to, log_out)  w: take `from` off (and put log_in's entries
--                                            back), put `to` on, log what subtraction would
--                                            not restore into log_out (from, to, logs: nil ok)
--   zo.estimate(who, g, dirs, coefs [, divide [, beta]])  g = beta g + sum_i coef_i W(u_i)
--   zo.mezo_update(who, w, from, log_in, dirs, coefs, st, lr, wd)  one pass: base = w with
--                                            `from` (and log_in) taken off exactly, as zo.move
--                                            to nil would (from, log_in: nil ok), then
--                                            w = base - lr_s (sum_i coef_i u_i + wd_s base); st: a
--                                            SliceTable, its .ct, or nil; lr, wd: per group
-- A direction is a table { seed =, step =, index =, dist = 'rademacher' | 'gaussian' |
-- 'segmented_uniform', scale = } (scale defaults to 1; index to 0). who: the public
-- function named in errors. The runtime's arrays are reused: no allocation per call.
local ffi = require 'ffi'
local ms = require 'moonstep'
local check = require 'moonstep.check'
local fail = require('moonstep.core').fail
local C = ms.C

local M = {}

M.DIST = { rademacher = 0, gaussian = 1, segmented_uniform = 2 }
local DIST_NAMES = { 'rademacher', 'gaussian', 'segmented_uniform' }
local DIR_KEYS = { 'seed', 'step', 'index', 'dist', 'scale' }
local TWO32 = 4294967296

local uint64_ct, int64_ct = ffi.typeof('uint64_t'), ffi.typeof('int64_t')

local function seed_of(who, name, v)
  if type(v) == 'cdata' and (ffi.istype(uint64_ct, v) or ffi.istype(int64_ct, v)) then
    return ffi.cast(uint64_ct, v)
  end
  check.integer(who, name .. '.seed', v, 0, 2 ^ 53)
  return v
end

-- d (a Lua table) into the C struct dst.
local function set_dir(who, name, d, dst)
  if type(d) ~= 'table' then
    check.fail('%s: %s is %s, expected a direction {seed =, step =, index =, dist =, scale =}',
               who, name, check.describe(d))
  end
  check.options(who, d, DIR_KEYS)
  dst.seed = seed_of(who, name, d.seed)
  dst.step = check.integer(who, name .. '.step', d.step, 0, TWO32 - 1)
  dst.index = check.integer(who, name .. '.index', d.index or 0, 0, TWO32 - 1)
  local dist = M.DIST[d.dist]
  if not dist then check.oneof(who, name .. '.dist', d.dist, DIST_NAMES) end
  dst.dist = dist
  dst.scale = d.scale == nil and 1 or check.number(who, name .. '.scale', d.scale)
  return dst
end

-- Arrays handed to the runtime, grown when more directions or groups come (reduce's).
local reduce_array = require('moonstep.optim.reduce').array
local function array(key, ctype, n) return reduce_array('zo.' .. key, ctype, n) end
local dir_from, dir_to = ffi.new('ms_zo_dir[1]'), ffi.new('ms_zo_dir[1]')

local function offset_of(who, offset)
  return check.integer(who, 'offset', offset == nil and 0 or offset, 0, 2 ^ 53)
end

function M.fill(who, out, dir, offset)
  check.tensor(who, 'out', out)
  set_dir(who, 'dir', dir, dir_to[0])
  if C.ms_zo_fill(out, dir_to, offset_of(who, offset)) ~= 0 then fail(who) end
  return out
end

function M.perturb(who, out, w, dir, offset)
  check.tensor(who, 'out', out)
  check.tensor(who, 'w', w)
  set_dir(who, 'dir', dir, dir_to[0])
  if C.ms_zo_perturb(out, w, dir_to, offset_of(who, offset)) ~= 0 then fail(who) end
  return out
end

-- ---- logs ---------------------------------------------------------------------------------

local Log = { __name = 'zo log' }
Log.__index = Log

function M.log()
  local p = C.ms_zo_log_new()
  if p == nil then fail('zo log') end
  return setmetatable({ ptr = ffi.gc(p, C.ms_zo_log_free) }, Log)
end

local function log_ptr(who, name, log)
  if log == nil then return nil end
  if getmetatable(log) ~= Log then
    check.fail('%s: %s is %s, expected a log made by zo_ops.log()', who, name, check.describe(log))
  end
  if log.ptr == nil then check.fail('%s: %s was freed, expected a live log', who, name) end
  return log.ptr
end

function Log:count() return tonumber(C.ms_zo_log_count(self.ptr)) end
function Log:bytes() return tonumber(C.ms_zo_log_bytes(self.ptr)) end
function Log:free()
  if self.ptr ~= nil then
    local p = self.ptr
    self.ptr = nil
    C.ms_zo_log_free(ffi.gc(p, nil))
  end
end
M.is_log = function(v) return getmetatable(v) == Log end

function M.move(who, w, from, log_in, to, log_out)
  check.tensor(who, 'w', w)
  local f = from ~= nil and set_dir(who, 'from', from, dir_from[0]) and dir_from or nil
  local t = to ~= nil and set_dir(who, 'to', to, dir_to[0]) and dir_to or nil
  local li, lo = log_ptr(who, 'log_in', log_in), log_ptr(who, 'log_out', log_out)
  if C.ms_zo_move(w, f, li, t, lo) ~= 0 then fail(who) end
  return w
end

-- ---- estimate and MeZO's update -----------------------------------------------------------

-- dirs and coefs (Lua arrays of one length) into the reused arrays; returns their count.
local function directions(who, dirs, coefs)
  if type(dirs) ~= 'table' or #dirs < 1 then
    check.fail('%s: dirs is %s, expected a non-empty list of directions', who, check.describe(dirs))
  end
  local n = #dirs
  if type(coefs) ~= 'table' or #coefs ~= n then
    check.fail('%s: coefs is %s, expected a list of %d numbers (one per direction)', who,
               type(coefs) == 'table' and ('a list of ' .. #coefs) or check.describe(coefs), n)
  end
  local d, c = array('dirs', 'ms_zo_dir', n), array('coef', 'double', n)
  for i = 1, n do
    set_dir(who, ('dirs[%d]'):format(i), dirs[i], d[i - 1])
    c[i - 1] = check.number(who, ('coefs[%d]'):format(i), coefs[i])
  end
  return d, c, n
end

function M.estimate(who, g, dirs, coefs, divide, beta)
  check.tensor(who, 'g', g)
  local d, c, n = directions(who, dirs, coefs)
  if divide ~= nil then check.boolean(who, 'divide', divide) end
  beta = beta == nil and 0 or check.number(who, 'beta', beta)
  if C.ms_zo_estimate(g, d, c, n, divide and 1 or 0, beta) ~= 0 then fail(who) end
  return g
end

-- per-group values: a number (one group), a Lua list, or a double array (cdata)
local function per_group(who, key, name, v, ngroups)
  if type(v) == 'cdata' then return v end
  local a = array(key, 'double', ngroups)
  if type(v) == 'number' then
    for i = 0, ngroups - 1 do a[i] = check.number(who, name, v) end
  elseif type(v) == 'table' and #v >= ngroups then
    for i = 1, ngroups do a[i - 1] = check.number(who, ('%s[%d]'):format(name, i), v[i]) end
  else
    check.fail('%s: %s is %s, expected a number or a list of %d numbers (one per group)', who,
               name, check.describe(v), ngroups)
  end
  return a
end

function M.mezo_update(who, w, from, log_in, dirs, coefs, table_ct, lr, wd)
  check.tensor(who, 'w', w)
  local f = from ~= nil and set_dir(who, 'from', from, dir_from[0]) and dir_from or nil
  local li = log_ptr(who, 'log_in', log_in)
  local d, c, n = directions(who, dirs, coefs)
  if type(table_ct) == 'table' then table_ct = table_ct.ct end   -- a SliceTable (optim/slices.lua)
  local ngroups = table_ct ~= nil and table_ct[0].ngroups or 1
  if ngroups < 1 or ngroups > 32 then
    check.fail('%s: the slice table has %d groups, expected 1 to 32', who, ngroups)
  end
  local lra = per_group(who, 'lr', 'lr', lr, ngroups)
  local wda = per_group(who, 'wd', 'wd', wd == nil and 0 or wd, ngroups)
  if C.ms_zo_mezo_update(w, f, li, d, c, n, table_ct, lra, wda) ~= 0 then fail(who) end
  return w
end

return M
