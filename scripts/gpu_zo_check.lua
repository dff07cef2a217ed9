-- scripts/gpu_zo_check.lua — the zeroth-order runtime on the GPU against the CPU, bit for bit:
-- every op of runtime/zo.c / zo_move.c (fill, 2-D fill, perturb, move with the exact-restore
-- log, estimate, MeZO's fused update) against its CUDA twin (kernels/zo.cu), on sizes 0, 1,
-- 4095, 4096, 4097, 100003 and 2^20 + 3, offsets past 2^32, hostile arenas (NaN payloads,
-- signalling NaN, +-inf, +-0, subnormals, FLT_MAX, ulp-edge values), then SPSA trajectories in
-- the three memory modes.
--
--   bin/moonstep scripts/gpu_zo_check.lua [--quick]
--
-- Exits 0 after 'skipped: no GPU' where ms.cuda.is_available() is false; otherwise prints one
-- line per check and exits 1 at the end when any failed (the first differing element of each,
-- with both values' bits). Besides the arena's bits it compares the logs: entry counts and,
-- chunk by chunk, the byte streams (through a mirror of struct ms_zo_log, runtime/optim/zo.h:
-- keep the two in step). --quick: sizes up to 100003 only. MOONSTEP_CUDA_EMU=1 (`make
-- emu-zo-check`, scripts/cuda_emu): only the zo kernels exist, the checks that need the
-- engine's or the model's kernels (SGD, GEMMs) are left out.
local ffi = require 'ffi'
local ms = require 'moonstep'
local zo = require 'moonstep.optim.zo_ops'
local T = require 'moonstep.tensor'

if not (ms.cuda and ms.cuda.is_available()) then
  print('skipped: no GPU')
  os.exit(0)
end
local EMU = os.getenv('MOONSTEP_CUDA_EMU') == '1'
local quick = false
for _, a in ipairs(arg or {}) do if a == '--quick' then quick = true end end

ffi.cdef [[
typedef struct zo_check_segment {
  int64_t lo, hi; uint8_t *buf; int64_t len, cap, count; int32_t oom;
} zo_check_segment;
typedef struct zo_check_log {
  int32_t device, dtype; int64_t arena_n, count, nchunks, chunk_cap;
  int64_t *chunk_off; int32_t *chunk_cnt; int32_t nseg, seg_cap; zo_check_segment *seg;
} zo_check_log;
int ms_cuda_memcpy(void *dst, const void *src, int64_t nbytes, int kind);
]]
local C = ms.C
local MS_D2H, CHUNK = 1, 4096

local failures, checks = 0, 0
local function report(ok, what, detail)
  checks = checks + 1
  if ok then
    print('ok    ' .. what)
  else
    failures = failures + 1
    print('FAIL  ' .. what .. (detail and (': ' .. detail) or ''))
  end
end

-- ---- bits ------------------------------------------------------------------------------

local function u32(t)   -- a CPU copy's bits (uint32 *) and the copy (kept alive)
  local c = t:to('cpu'):contiguous()
  return ffi.cast('uint32_t *', T.address(c, 'gpu_zo_check')), c
end

local function isnan_bits(b) return bit.band(b, 0x7fffffff) > 0x7f800000 end

-- nil when a and b (any devices, float32) hold the same bits, else a description of the
-- first difference and how many differ (and whether they are all NaN-vs-NaN payloads).
local function bits_diff(a, b)
  if a:numel() ~= b:numel() then return ('%d vs %d elements'):format(a:numel(), b:numel()) end
  local pa, ka = u32(a)
  local pb, kb = u32(b)
  local n, first, count, nanonly = a:numel(), nil, 0, true
  for i = 0, n - 1 do
    if pa[i] ~= pb[i] then
      count = count + 1
      first = first or i
      if not (isnan_bits(pa[i]) and isnan_bits(pb[i])) then nanonly = false end
    end
  end
  local _ = ka and kb
  if count == 0 then return nil end
  return ('%d of %d elements differ%s; first at %d: 0x%08x vs 0x%08x'):format(count, n,
         nanonly and ' (all NaN payloads)' or '', first, pa[first], pb[first])
end

local function same(a, b, what) local d = bits_diff(a, b); report(d == nil, what, d) end

-- ---- arenas -----------------------------------------------------------------------------

-- Hostile float32 bits first (NaNs of every kind, infinities, zeros, subnormals, FLT_MAX,
-- powers of two and their neighbours), then N(0, 0.02).
local HOSTILE = {
  0x7fc00000, 0xffc00000, 0x7fc00001, 0xffc12345, 0x7f800001, 0xff800001, 0x7fbfffff, 0x7fffffff,
  0x7f800000, 0xff800000, 0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007fffff, 0x807fffff,
  0x00800000, 0x80800000, 0x7f7fffff, 0xff7fffff, 0x3f800000, 0xbf800000, 0x3f7fffff, 0x3f800001,
  0x33800000, 0xb3800000, 0x0b800000, 0x3a83126f, 0xba83126f, 0x4b000000, 0x4b7fffff, 0x5f000000,
}
local function arena(n, seed, hostile)
  ms.manual_seed(seed)
  local t = ms.empty(n)
  if n > 0 then t:normal_(0, 0.02) end
  if hostile and n > 0 then
    local p = ffi.cast('uint32_t *', T.address(t, 'gpu_zo_check'))
    local m = math.min(n, #HOSTILE)
    for i = 1, m do p[i - 1] = HOSTILE[i] end
    -- the same values again at the end (the last, partial chunk) and at a chunk edge
    for i = 1, m do p[n - i] = HOSTILE[i] end
    if n > CHUNK + #HOSTILE then
      for i = 1, #HOSTILE do p[CHUNK - 16 + i - 1] = HOSTILE[i] end
    end
  end
  return t
end

local function dir(dist, scale, step, index, seed)
  return { seed = seed or 0x123456789, step = step or 7, index = index or 0, dist = dist, scale = scale }
end

-- ---- logs: counts and per-chunk byte streams ---------------------------------------------

local function chunk_streams(log)   -- chunk -> byte string, from a CPU or a GPU log
  local L = ffi.cast('zo_check_log *', log.ptr)
  local nch, out = tonumber(L.nchunks), {}
  if L.count == 0 or nch == 0 then return out, tonumber(L.count), nch end
  local off, cnt = ffi.new('int64_t[?]', nch), ffi.new('int32_t[?]', nch)
  if L.device == 1 then
    assert(C.ms_cuda_memcpy(off, L.chunk_off, 8 * nch, MS_D2H) == 0)
    assert(C.ms_cuda_memcpy(cnt, L.chunk_cnt, 4 * nch, MS_D2H) == 0)
  else
    ffi.copy(off, L.chunk_off, 8 * nch)
    ffi.copy(cnt, L.chunk_cnt, 4 * nch)
  end
  local total = 0
  for s = 0, L.nseg - 1 do
    local sg = L.seg[s]
    if sg.hi > sg.lo then
      local len = tonumber(sg.len)
      local buf = ffi.new('uint8_t[?]', math.max(len, 1))
      if len > 0 then
        if L.device == 1 then assert(C.ms_cuda_memcpy(buf, sg.buf, len, MS_D2H) == 0)
        else ffi.copy(buf, sg.buf, len) end
      end
      for c = tonumber(sg.lo), tonumber(sg.hi) - 1 do
        local a = tonumber(off[c])
        local b = c + 1 < tonumber(sg.hi) and tonumber(off[c + 1]) or len
        out[c] = cnt[c] .. ':' .. ffi.string(buf + a, b - a)
        total = total + cnt[c]
      end
    end
  end
  assert(total == tonumber(L.count), 'the mirror of struct ms_zo_log is out of step with optim/zo.h')
  return out, tonumber(L.count), nch
end

local function same_log(lc, lg, what)
  local sc, nc, chc = chunk_streams(lc)
  local sg, ng, chg = chunk_streams(lg)
  if nc ~= ng then return report(false, what, ('%d entries on the CPU, %d on the GPU'):format(nc, ng)) end
  if nc > 0 and chc ~= chg then return report(false, what, ('%d vs %d chunks'):format(chc, chg)) end
  for c = 0, (nc > 0 and chc or 0) - 1 do
    if (sc[c] or '0:') ~= (sg[c] or '0:') then
      return report(false, what, ('chunk %d: %d vs %d bytes (count:stream differ)'):format(c,
                    #(sc[c] or ''), #(sg[c] or '')))
    end
  end
  report(true, what .. (' (%d entries)'):format(nc))
end

-- ---- the ops -----------------------------------------------------------------------------

local DISTS = { 'rademacher', 'gaussian', 'segmented_uniform' }
local SIZES = { 0, 1, 4095, 4096, 4097, 100003, 2 ^ 20 + 3 }
if quick then SIZES = { 0, 1, 4095, 4096, 4097, 100003 } end

local function both(n, seed, hostile)
  local c = arena(n, seed, hostile)
  return c, c:to('cuda')
end

for _, dist in ipairs(DISTS) do
  for _, n in ipairs(SIZES) do
    local tag = ('%s n=%d'):format(dist, n)
    -- fill at offsets 0, 5 (unaligned) and past 2^32 (the counter's high word)
    for _, off in ipairs { 0, 5, 2 ^ 32 + 3 } do
      local c, g = ms.empty(n), ms.empty(n, { device = 'cuda' })
      zo.fill('check', c, dir(dist, 0.37), off)
      zo.fill('check', g, dir(dist, 0.37), off)
      same(c, g, ('fill %s offset %d'):format(tag, off))
    end
    -- many-row fill: row k is direction index 4 + k
    if n <= 100003 then
      local c, g = ms.empty(3, n), ms.empty(3, n, { device = 'cuda' })
      zo.fill('check', c, dir(dist, -1.5, 2, 4), 9)
      zo.fill('check', g, dir(dist, -1.5, 2, 4), 9)
      same(c, g, ('2-D fill [3, n] %s'):format(tag))
    end
    -- perturb: out of place, then in place, on a hostile arena
    do
      local wc, wg = both(n, 11, true)
      local oc, og = ms.empty(n), ms.empty(n, { device = 'cuda' })
      zo.perturb('check', oc, wc, dir(dist, 1e-3), 3)
      zo.perturb('check', og, wg, dir(dist, 1e-3), 3)
      same(oc, og, 'perturb ' .. tag)
      zo.perturb('check', wc, wc, dir(dist, -2.5e-2), 0)
      zo.perturb('check', wg, wg, dir(dist, -2.5e-2), 0)
      same(wc, wg, 'perturb in place ' .. tag)
    end
    -- the seeded cycle: nil -> +h u (log A) -> -h u (log B) -> nil, then across directions
    for _, h in ipairs { 1e-3, 0.75 } do
      local wc, wg = both(n, 13, true)
      local orig = wc:clone()
      local A, B, Ag, Bg = zo.log(), zo.log(), zo.log(), zo.log()
      local p, m, q = dir(dist, h), dir(dist, -h), dir(dist, 0.5 * h, 7, 1)
      local t = ('%s h=%g'):format(tag, h)
      zo.move('check', wc, nil, nil, p, A); zo.move('check', wg, nil, nil, p, Ag)
      same(wc, wg, 'move +h ' .. t); same_log(A, Ag, 'log A ' .. t)
      zo.move('check', wc, p, A, m, B); zo.move('check', wg, p, Ag, m, Bg)
      same(wc, wg, 'move +h -> -h ' .. t); same_log(B, Bg, 'log B ' .. t)
      zo.move('check', wc, m, B, q, A); zo.move('check', wg, m, Bg, q, Ag)
      same(wc, wg, 'move -h -> another direction ' .. t); same_log(A, Ag, 'log A again ' .. t)
      zo.move('check', wc, q, A, nil, nil); zo.move('check', wg, q, Ag, nil, nil)
      same(wc, wg, 'move back ' .. t)
      same(orig, wc, 'CPU round trip exact ' .. t)
      same(orig, wg, 'GPU round trip exact ' .. t)
      -- a log put back without `from` (base = w, entries restored)
      zo.move('check', wc, nil, nil, p, A); zo.move('check', wg, nil, nil, p, Ag)
      zo.move('check', wc, nil, A, nil, nil); zo.move('check', wg, nil, Ag, nil, nil)
      same(wc, wg, 'log put back alone ' .. t)
    end
    -- estimate: overwrite (NaN in g must not leak), accumulate, divide form
    do
      local ds = { dir(dist, 1, 9, 0), dir(dist, 1, 9, 1), dir(dist, 1, 10, 0) }
      local co = { 1.25, -2, 0.5 }
      for _, mode in ipairs { { false, 0 }, { false, 0.9 }, { true, 0.5 } } do
        if not (mode[1] and dist == 'gaussian') then
          local gc, gg = both(n, 17, true)
          zo.estimate('check', gc, ds, co, mode[1], mode[2])
          zo.estimate('check', gg, ds, co, mode[1], mode[2])
          same(gc, gg, ('estimate %s divide=%s beta=%g'):format(tag, tostring(mode[1]), mode[2]))
        end
      end
    end
    -- MeZO's fused update: plain, with `from` (one of dirs, then another) and its log
    do
      local ds = { dir(dist, 1, 9, 0), dir(dist, 1, 9, 1) }
      local co = { 0.3, -0.7 }
      local wc, wg = both(n, 19, true)
      zo.mezo_update('check', wc, nil, nil, ds, co, nil, 1e-2, 0.1)
      zo.mezo_update('check', wg, nil, nil, ds, co, nil, 1e-2, 0.1)
      same(wc, wg, 'mezo ' .. tag)
      for k, from in ipairs { dir(dist, -1e-3, 9, 1), dir(dist, 5e-2, 3, 0) } do
        local hc, hg = both(n, 23, true)
        local A, Ag = zo.log(), zo.log()
        zo.move('check', hc, nil, nil, from, A); zo.move('check', hg, nil, nil, from, Ag)
        zo.mezo_update('check', hc, from, A, ds, co, nil, 1e-2, 0.1)
        zo.mezo_update('check', hg, from, Ag, ds, co, nil, 1e-2, 0.1)
        same(hc, hg, ('mezo with from + log (%s) %s'):format(k == 1 and 'one of dirs' or 'another', tag))
      end
    end
    collectgarbage()
  end
end

-- MeZO per group: a slice table (weights and biases of a model, weight decay on weights only)
do
  local nn = ms.nn
  for _, dist in ipairs(DISTS) do
    local res = {}
    for _, device in ipairs { 'cpu', 'cuda' } do
      ms.manual_seed(3)
      local m = nn.Sequential(nn.Linear(70, 50), nn.Tanh(), nn.Linear(50, 9)):to(device)
      local opt = ms.optim.SPSA(m, { update = 'mezo', a = 1e-2, weight_decay = 0.1, seed = 8, dist = dist,
                                    groups = { { match = 'bias', weight_decay = 0 } } })
      local flat = m:flat_parameters()
      local target = {}
      local r = 1
      for i = 1, flat:numel() do r = (r * 1103515245 + 12345) % 2147483648; target[i] = r / 2147483648 - 0.5 end
      for _ = 1, 4 do
        opt:step(function()   -- the loss from the weights' bits alone: the same on both devices
          local p = m:flat_parameters():to('cpu', 'float64'):contiguous()
          local pp, s = ffi.cast('double *', T.address(p, 'gpu_zo_check')), 0
          for i = 1, p:numel() do local d = pp[i - 1] - target[i]; s = s + d * d end
          return s
        end)
      end
      res[device] = m:flat_parameters():to('cpu')
    end
    same(res.cpu, res.cuda, 'SPSA mezo with groups (slice table) ' .. dist)
  end
end

-- ---- SPSA trajectories in the three memory modes ---------------------------------------------
-- seeded and materialized: a loss computed from the weights' bits on the CPU (identical inputs
-- give identical coefficients), so the trajectories must agree bit for bit. virtual perturbs
-- inside the layers' forward (cuBLAS vs OpenBLAS sums): compared to 1e-5.
do
  local nn = ms.nn
  local function model(device)
    ms.manual_seed(1)
    return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)):to(device)
  end
  ms.manual_seed(7)
  local X = ms.randn({ 8, 6 })
  local Y = ms.tensor({ 1, 2, 3, 1, 2, 3, 1, 2 }, { dtype = 'int64' })
  for _, dist in ipairs(DISTS) do
    for _, update in ipairs(EMU and { 'mezo' } or { 'mezo', 'sgd' }) do
      for _, memory in ipairs { 'seeded', 'materialized' } do
        local res, losses = {}, {}
        for _, device in ipairs { 'cpu', 'cuda' } do
          local m = model(device)
          local opt = ms.optim.SPSA(m, { memory = memory, n = 2, update = update, a = 1e-2, seed = 5, dist = dist })
          local ls = {}
          for _ = 1, 5 do
            local _, info = opt:step(function()
              local p = m:flat_parameters():to('cpu', 'float64'):contiguous()
              local pp, s = ffi.cast('double *', T.address(p, 'gpu_zo_check')), 0
              for i = 1, p:numel() do s = s + (pp[i - 1] - 0.01 * i) ^ 2 end
              return s
            end)
            for _, l in ipairs(info.losses) do ls[#ls + 1] = l end
          end
          res[device], losses[device] = m:flat_parameters():to('cpu'), ls
        end
        if update == 'mezo' then   -- zo ops only: bit for bit
          local lsame = #losses.cpu == #losses.cuda
          for i = 1, #losses.cpu do lsame = lsame and losses.cpu[i] == losses.cuda[i] end
          report(lsame, ('SPSA %s %s %s: every loss evaluated'):format(memory, update, dist))
          same(res.cpu, res.cuda, ('SPSA %s %s %s: parameters after 5 steps'):format(memory, update, dist))
        else                       -- the engine's SGD kernel: a few ulps allowed (optim_float32_spec)
          local worst = (res.cpu:to('float64') - res.cuda:to('float64')):abs():max()
          report(worst <= 1e-6, ('SPSA %s %s %s: max |cpu - gpu| = %.3g (%s)'):format(memory, update, dist,
                 worst, bits_diff(res.cpu, res.cuda) and 'not bitwise' or 'bitwise'))
        end
      end
    end
    for _, memory in ipairs(EMU and {} or { 'seeded', 'materialized', 'virtual' }) do
      local res = {}
      for _, device in ipairs { 'cpu', 'cuda' } do
        local m = model(device)
        local crit = nn.CrossEntropyLoss()
        local x, y = X:to(device), Y:to(device)
        local opt = ms.optim.SPSA(m, { memory = memory, n = 2, update = 'mezo', a = 1e-2, seed = 5, dist = dist })
        for _ = 1, 3 do opt:step(function() return crit:forward(m:forward(x), y) end) end
        res[device] = m:flat_parameters():to('cpu', 'float64')
      end
      local worst = (res.cpu - res.cuda):abs():max()
      report(worst <= 1e-5, ('SPSA %s %s through the model (GEMMs): max |cpu - gpu| = %.3g'):format(memory, dist, worst))
    end
  end
end

print(('%d checks, %d failed'):format(checks, failures))
os.exit(failures == 0 and 0 or 1)
