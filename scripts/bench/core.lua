-- core.lua — the core benchmark: moonstep against the competitor measured in the same
-- run, with the ratio (goal in brackets). Speed targets live here, not in tests.
--
--   elementwise add/mul/axpy over 32M floats  vs a plain C loop, same flags   [>= 0.8x]
--   matmul 128x784x256, 512^3, 1024^3          vs direct cblas_sgemm           [>= 0.9x]
--   a tiny op called from Lua                  vs PyTorch, when installed      [<= 0.5 us]
--   GPU elementwise bandwidth                  vs cudaMemcpy device-to-device  [>= 0.8x]
--
-- Run: make bench (builds build/libbaseline.so), or bin/moonstep scripts/bench/core.lua
local ms = require 'moonstep'
local ffi = require 'ffi'
local T = require 'moonstep.tensor'

ffi.cdef [[
void bl_add(float *o, const float *a, const float *b, int64_t n, int nth);
void bl_mul(float *o, const float *a, const float *b, int64_t n, int nth);
void bl_axpy(float *y, float alpha, const float *x, int64_t n, int nth);
void cblas_sgemm(int order, int transa, int transb, int m, int n, int k, float alpha,
                 const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
]]
local home = require('moonstep.core').home
local BL = ffi.load(home .. '/build/libbaseline.so')
-- the OpenBLAS moonstep links (the OpenMP build), else the system default
local blas = select(2, pcall(ffi.load, '/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0'))
if type(blas) ~= 'userdata' then blas = ffi.load('openblas') end
local clock = ms.clock

-- Best of `runs` timings of `reps` calls, in seconds per call.
local function best(f, reps, runs)
  local t = math.huge
  for _ = 1, runs or 5 do
    local t0 = clock()
    for _ = 1, reps do f() end
    t = math.min(t, (clock() - t0) / reps)
  end
  return t
end

-- Best times of f and g measured alternately, so that both see the same machine
-- (memory bandwidth here varies from run to run).
local function best_pair(f, g, reps, runs)
  local tf, tg = math.huge, math.huge
  for _ = 1, runs or 7 do
    tf = math.min(tf, best(f, reps, 1))
    tg = math.min(tg, best(g, reps, 1))
  end
  return tf, tg
end

local function ptr(t) return ffi.cast('float*', T.data(t, 'bench')) + t.offset end

-- ours and theirs are rates (higher is better); ratio = ours / theirs.
local function row(name, ours, theirs, goal)
  print(('  %-28s %10.1f %10.1f %8.2fx   %s'):format(name, ours, theirs, ours / theirs, goal))
end

local maxth = ms.num_threads()
local n = 32 * 1024 * 1024
local a, b, o = ms.rand(n), ms.rand(n), ms.empty(n):zero_()
local pa, pb, po = ptr(a), ptr(b), ptr(o)
local gb = 12 * n / 1e9   -- bytes moved per add/mul/axpy: two reads and a write

print(('moonstep core benchmark, %d threads available'):format(maxth))
-- MOONSTEP_GPU_ONLY=1 (make gpu-check): the GPU section alone.
if os.getenv('MOONSTEP_GPU_ONLY') ~= '1' then
  print('\nelementwise over 32M floats: GB/s (12 bytes per element)')
  print(('  %-28s %10s %10s %9s   %s'):format('', 'moonstep', 'plain C', 'ratio', 'goal'))
  for _, nth in ipairs(maxth > 1 and { 1, maxth } or { 1 }) do
    ms.set_num_threads(nth)
    local cases = {
      { 'add', function() ms.C.ms_binary(o, a, b, ms.C.MS_ADD, 1) end,
        function() BL.bl_add(po, pa, pb, n, nth) end },
      { 'mul', function() ms.C.ms_binary(o, a, b, ms.C.MS_MUL, 1) end,
        function() BL.bl_mul(po, pa, pb, n, nth) end },
      { 'axpy_ (y += 0.5 x)', function() o:axpy_(0.5, a) end,
        function() BL.bl_axpy(po, 0.5, pa, n, nth) end },
    }
    for _, c in ipairs(cases) do
      local ours, theirs = best_pair(c[2], c[3], 2)
      row(('%s, %d thread%s'):format(c[1], nth, nth > 1 and 's' or ''), gb / ours, gb / theirs, '>= 0.8x')
    end
  end
  ms.set_num_threads(maxth)
  a, b, o = nil, nil, nil
  collectgarbage()

  print('\nmatmul (float32): GFLOP/s, all threads')
  print(('  %-28s %10s %10s %9s   %s'):format('', 'moonstep', 'cblas', 'ratio', 'goal'))
  for _, s in ipairs { { 128, 784, 256 }, { 512, 512, 512 }, { 1024, 1024, 1024 } } do
    local m, k, nn = s[1], s[2], s[3]
    local A, B, Cm = ms.randn(m, k), ms.randn(k, nn), ms.empty(m, nn)
    local pA, pB, pC = ptr(A), ptr(B), ptr(Cm)
    local flops = 2 * m * k * nn / 1e9
    local reps = m * k * nn < 1e8 and 50 or 5
    local opts = { out = Cm }
    local ours, theirs = best_pair(function() ms.matmul(A, B, opts) end,
      function() blas.cblas_sgemm(101, 111, 111, m, nn, k, 1, pA, k, pB, nn, 0, pC, nn) end, reps, 3)
    row(('%dx%dx%d'):format(m, k, nn), flops / ours, flops / theirs, '>= 0.9x')
  end

  print('\nper-op overhead from Lua: microseconds per call (lower is better; ratio = PyTorch / moonstep)')
  local x1, y1 = ms.ones(1), ms.ones(1)
  local tiny_inplace = best(function() x1:add_(y1) end, 100000) * 1e6
  local tiny_alloc = best(function() local _ = x1 + y1 end, 100000) * 1e6
  local torch = {}
  local py = io.popen(('/usr/bin/python3 %s/scripts/bench/torch_ops.py %d 2>/dev/null'):format(home, maxth))
  if py then
    for line in py:lines() do
      local name, sec = line:match('^(%S+) (%S+)$')
      if name then torch[name] = tonumber(sec) end
    end
    py:close()
  end
  print(('  %-28s %10s %10s %9s   %s'):format('', 'moonstep', 'PyTorch', 'ratio', 'goal'))
  local function vs_torch(name, ours, key)
    local t = torch[key]
    if t then
      print(('  %-28s %10.3f %10.3f %8.2fx   <= 0.5 us, below PyTorch'):format(name, ours, t * 1e6, t * 1e6 / ours))
    else
      print(('  %-28s %10.3f %10s %9s   <= 0.5 us (python3-torch not installed)'):format(name, ours, '-', '-'))
    end
  end
  vs_torch('t:add_(u), 1 element', tiny_inplace, 'tiny_add_')
  vs_torch('t + u (allocates), 1 element', tiny_alloc, 'tiny_add')
  if torch.add_32M then
    local p, q = ms.rand(n), ms.rand(n)
    local r = ms.empty(n)
    local ours = best(function() ms.C.ms_binary(r, p, q, ms.C.MS_ADD, 1) end, 3)
    print(('  %-28s %10.1f %10.1f %8.2fx   (GB/s, higher is better)'):format(
      'add 32M floats, all threads', gb / ours, gb / torch.add_32M, torch.add_32M / ours))
  end
end -- CPU sections

print('\nGPU')
if not ms.cuda.is_available() then
  print('  skipped: ' .. (ms.cuda.compiled() and 'no usable GPU on this machine' or 'built without CUDA'))
else
  local g1, g2, g3 = ms.rand(n):cuda(), ms.rand(n):cuda(), ms.empty(n, { device = 'cuda' })
  local function timed(f)
    ms.cuda.synchronize()
    return best(function() f() end, 20, 3)
  end
  local function sync_after(f) return function() f(); ms.cuda.synchronize() end end
  local add = timed(sync_after(function() ms.C.ms_binary(g3, g1, g2, ms.C.MS_ADD, 1) end))
  local copy = timed(sync_after(function() g3:copy_(g1) end))   -- cudaMemcpy D2D
  print(('  %-28s %10s %10s %9s   %s'):format('', 'moonstep', 'memcpy', 'ratio', 'goal'))
  print(('  %-28s %10.0f %10.0f %8.2fx   >= 0.8x (GB/s; add moves 12 B, copy 8 B per element)'):format(
    'add 32M floats', gb / add, 8 * n / 1e9 / copy, (gb / add) / (8 * n / 1e9 / copy)))
  for _, s in ipairs { { 512, 512, 512 }, { 4096, 4096, 4096 } } do
    local A, B = ms.randn(s[1], s[2]):cuda(), ms.randn(s[2], s[3]):cuda()
    local Cg = ms.empty(s[1], s[3], { device = 'cuda' })
    local t = timed(sync_after(function() ms.matmul(A, B, { out = Cg }) end))
    print(('  matmul %dx%dx%d: %.1f TFLOP/s (cuBLAS sgemm)'):format(s[1], s[2], s[3], 2 * s[1] * s[2] * s[3] / t / 1e12))
  end
end
