-- The dense path's one-pass kernels (issue 11) against the general path and plain loops:
--   * CrossEntropyLoss in its plain case (no weight, no target ignored) is one C pass each
--     way (ms_cross_entropy / ms_cross_entropy_backward); it must give what the general
--     path gives (forced here with weight = ones: the same loss, mathematically) and what a
--     plain float64 loop gives, for every reduction, label smoothing, float32/float64, odd
--     and N-d shapes; the general cases (weight, ignore_index hits, bad targets) unchanged.
--   * Linear's bias gradient is one pass into grad_bias (ms_bias_grad): bit for bit what
--     g:sum(1) added gives.
-- GPU cases compare the CUDA twins with the CPU (pending without a GPU).
local ms = require 'moonstep'
local H = require 'helper'
local ffi = require 'ffi'
local C = ms.C
local nn = ms.nn

local git = H.gate(it, pending, ms.cuda.is_available(), ms.cuda.why())   -- only with a GPU

-- Logits of a shape, values in [-scale, scale] (Lua's LCG: independent of the runtime).
local function logits(shape, seed, dtype, scale)
  local t = H.random_tensor(shape, seed, { dtype = dtype or 'float32' })
  return scale and t:mul_(scale) or t
end

-- int64 targets of a shape, classes 1..c.
local function targets(shape, c, seed)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  local v, s = {}, seed or 7
  for i = 1, n do
    s = (s * 1103515245 + 12345) % 2147483648
    v[i] = s % c + 1
  end
  return ms.tensor(v, 'int64'):view(#shape > 0 and shape or {})
end

-- x [N, C, d...] / [N, C] / [C] as rows [M, C] (a copy, float64, as Lua tables).
local function rows_of(x)
  local n = x:dim()
  local x2
  if n == 1 then x2 = x:view(1, -1)
  elseif n == 2 then x2 = x
  else
    local order = { 1 }
    for d = 3, n do order[#order + 1] = d end
    order[#order + 1] = 2
    x2 = x:permute(order):contiguous():view(-1, x:size(2))
  end
  return x2:to('float64'):totable()
end

-- The plain float64 loop of PyTorch's rule (no weight): per-row losses, and the gradient
-- of sum_i go_i loss_i as rows. ignore: a class index whose rows count 0.
local function reference(x, t, e, ignore)
  local X = rows_of(x)
  local T = t:reshape(-1):totable()
  if type(T) == 'number' then T = { T } end
  local losses, grads, kept = {}, {}, 0
  for i, row in ipairs(X) do
    local c = #row
    local mx = -math.huge
    for j = 1, c do mx = math.max(mx, row[j]) end
    local s = 0
    for j = 1, c do s = s + math.exp(row[j] - mx) end
    local lse = mx + math.log(s)
    local g = {}
    if T[i] == ignore then
      losses[i] = 0
      for j = 1, c do g[j] = 0 end
    else
      kept = kept + 1
      local all = 0
      for j = 1, c do all = all + (row[j] - lse) end
      losses[i] = -(1 - e) * (row[T[i]] - lse) - e / c * all
      for j = 1, c do g[j] = math.exp(row[j] - lse) - e / c - (j == T[i] and 1 - e or 0) end
    end
    grads[i] = g
  end
  return losses, grads, kept
end

-- The reference's result of forward (reduction) and the gradient rows for gradOutput go.
local function ref_result(x, t, e, reduction, go, ignore)
  local losses, grads, kept = reference(x, t, e, ignore)
  local total = 0
  for _, l in ipairs(losses) do total = total + l end
  local scale = {}
  for i = 1, #losses do
    if reduction == 'none' then scale[i] = go and go:reshape(-1):get(i) or 1
    elseif reduction == 'sum' then scale[i] = go or 1
    else scale[i] = (go or 1) / kept end
  end
  local g = {}
  for i, row in ipairs(grads) do
    for j, v in ipairs(row) do g[#g + 1] = v * scale[i] end
  end
  local r = reduction == 'none' and losses or reduction == 'sum' and total or total / kept
  return r, g
end

-- A gradient in x's layout as the reference's row order (flat list).
local function grad_rows(g, x)
  local n = x:dim()
  if n <= 2 then return H.flatten(g:to('float64'):totable()) end
  return H.flatten(rows_of(g))
end

local function close_list(got, want, tol, what)
  assert.equal(#want, #got, what .. ': length')
  for i = 1, #want do
    local a, b = got[i], want[i]
    local ok = a == b or (a ~= a and b ~= b) or math.abs(a - b) <= tol * math.max(1, math.abs(b))
    assert(ok, ('%s: element %d is %.10g, expected %.10g'):format(what, i, a, b))
  end
end

local function as_list(r)
  if type(r) == 'number' then return { r } end
  if not ms.is_tensor(r) then return r end
  return H.flatten(r:to('float64'):totable())
end

describe('CrossEntropyLoss, plain case in one C pass', function()
  local SHAPES = { { 1, 1 }, { 1, 7 }, { 5, 3 }, { 37, 13 }, { 4, 3, 5 }, { 2, 4, 3, 2 }, { 6 } }

  it('matches a float64 loop and the general path: every reduction, smoothing, dtype, shape', function()
    local cases = 0
    for _, dtype in ipairs { 'float32', 'float64' } do
      local tol = dtype == 'float32' and 3e-6 or 1e-12
      for si, shape in ipairs(SHAPES) do
        local c = #shape == 1 and shape[1] or shape[2]
        local tshape = {}
        for d, s in ipairs(shape) do if d ~= (#shape == 1 and 1 or 2) then tshape[#tshape + 1] = s end end
        local x = logits(shape, 10 + si, dtype, 4)
        local t = targets(tshape, c, si)
        for _, e in ipairs { 0, 0.1, 1 } do
          for _, red in ipairs { 'mean', 'sum', 'none' } do
            local gos = red == 'none' and { false, logits(tshape, 3, dtype) } or { false, 2.5 }
            for _, go in ipairs(gos) do
              go = go or nil
              local fast = nn.CrossEntropyLoss { reduction = red, label_smoothing = e }
              local gen = nn.CrossEntropyLoss { reduction = red, label_smoothing = e,
                                                weight = ms.ones(c, { dtype = dtype }) }
              local what = ('%s %s e=%g %s go=%s'):format(dtype, table.concat(shape, 'x'), e, red, tostring(go))
              local rf, rg = fast:forward(x, t), gen:forward(x, t)
              assert.is_true(fast.cache.fast, what .. ': the fast path was taken')
              assert.is_nil(gen.cache.fast)
              local gf, gg = fast:backward(x, t, go), gen:backward(x, t, go)
              assert.same(x:shape(), gf:shape())
              local want_r, want_g = ref_result(x, t, e, red, go)
              close_list(as_list(rf), as_list(want_r), tol, what .. ' loss vs loop')
              close_list(as_list(rf), as_list(rg), tol, what .. ' loss vs general')
              close_list(grad_rows(gf, x), want_g, tol, what .. ' grad vs loop')
              close_list(H.flatten(gf:to('float64'):totable()), H.flatten(gg:to('float64'):totable()), tol,
                         what .. ' grad vs general')
              if red == 'none' then assert.same(t:shape(), rf:shape()) end
              cases = cases + 1
            end
          end
        end
      end
    end
    assert.equal(2 * #SHAPES * 3 * 3 * 2, cases)
  end)

  it('takes a non-contiguous input (a transposed view) and gives the same as its copy', function()
    local base = logits({ 9, 6 }, 4, 'float32', 3)
    local xt = base:t()                                      -- [6, 9], not contiguous
    local t = targets({ 6 }, 9, 2)
    local xc = xt:contiguous()
    local a, b = nn.CrossEntropyLoss(), nn.CrossEntropyLoss()
    local la, lb = a:forward(xt, t), b:forward(xc, t)
    assert.is_true(a.cache.fast)
    assert.equal(lb, la)
    H.same_bits(a:backward(xt, t), b:backward(xc, t), 'gradient')
  end)

  it('an ignore_index that is no class keeps the fast path; one that is hit takes the general path', function()
    local x = logits({ 8, 5 }, 21, 'float64', 2)
    local t = targets({ 8 }, 5, 3)
    for _, ig in ipairs { 0, 6, -100 } do
      local m = nn.CrossEntropyLoss { ignore_index = ig }
      local l = m:forward(x, t)
      assert.is_true(m.cache.fast)
      close_list({ l }, { (ref_result(x, t, 0, 'mean')) }, 1e-12, 'ignore_index ' .. ig)
    end
    local tv = t:totable()
    tv[2], tv[5] = 3, 3
    local t3 = ms.tensor(tv, 'int64')
    for _, e in ipairs { 0, 0.2 } do
      for _, red in ipairs { 'mean', 'sum', 'none' } do
        local m = nn.CrossEntropyLoss { ignore_index = 3, label_smoothing = e, reduction = red }
        local r = m:forward(x, t3)
        assert.is_nil(m.cache.fast)
        local want_r, want_g = ref_result(x, t3, e, red, nil, 3)
        close_list(as_list(r), as_list(want_r), 1e-12, 'ignored rows ' .. red)
        close_list(grad_rows(m:backward(x, t3), x), want_g, 1e-12, 'ignored rows grad ' .. red)
      end
    end
    -- -100 targets with the default ignore_index: ignored, as before
    local d = nn.CrossEntropyLoss()
    local l = d:forward(x, ms.tensor({ 1, -100, 2, 3, -100, 4, 5, 1 }, 'int64'))
    assert.is_nil(d.cache.fast)
    assert.is_true(l > 0 and l < 10)
  end)

  it('a target that is not a class is the same error as before, naming it', function()
    local ce = nn.CrossEntropyLoss()
    H.assert_error(function() ce:forward(ms.zeros(4, 5), ms.tensor({ 1, 2, 7, 1 }, 'int64')) end,
                   'CrossEntropyLoss.forward', 'target 7', 'position 3', '1..5')
    H.assert_error(function() ce:forward(ms.zeros(4, 5), ms.tensor({ 0, 2, 3, 1 }, 'int64')) end,
                   'CrossEntropyLoss.forward', 'target 0', 'position 1')
    H.assert_error(function() ce:backward(ms.zeros(4, 5), ms.tensor({ 0, 2, 3, 1 }, 'int64')) end,
                   'CrossEntropyLoss.backward', 'no forward')
    -- a fast forward, then a general one: backward follows the last
    local m = nn.CrossEntropyLoss()
    local x = logits({ 3, 4 }, 5, 'float64')
    m:forward(x, ms.tensor({ 1, 3, 4 }, 'int64'))
    assert.is_true(m.cache.fast)
    local t2 = ms.tensor({ 1, -100, 4 }, 'int64')
    m:forward(x, t2)
    assert.is_nil(m.cache.fast)
    local _, want = ref_result(x, t2, 0, 'mean', nil, -100)
    close_list(grad_rows(m:backward(x, t2), x), want, 1e-12, 'general after fast')
  end)

  it('extreme logits: -inf, large spreads and NaN as the general path', function()
    for _, dtype in ipairs { 'float32', 'float64' } do
      for _, e in ipairs { 0, 0.1 } do
        local x = ms.tensor({ { 0, -math.huge, 1, 2 }, { 1e4, -1e4, 0, 3 }, { 0 / 0, 1, 2, 3 }, { 50, 50, 50, 50 } },
                            dtype)
        local t = ms.tensor({ 3, 1, 2, 4 }, 'int64')
        local fast = nn.CrossEntropyLoss { reduction = 'none', label_smoothing = e }
        local gen = nn.CrossEntropyLoss { reduction = 'none', label_smoothing = e, weight = ms.ones(4, { dtype = dtype }) }
        local lf, lg = fast:forward(x, t), gen:forward(x, t)
        assert.is_true(fast.cache.fast)
        close_list(as_list(lf), as_list(lg), 1e-6, dtype .. ' extreme losses e=' .. e)
        close_list(as_list(fast:backward(x, t)), as_list(gen:backward(x, t)), 1e-6, dtype .. ' extreme grads')
        local v = lf:totable()
        assert.is_true(v[3] ~= v[3])                            -- the NaN row stays NaN
        if e == 0 then assert.is_true(v[1] < math.huge and v[2] < math.huge) end
      end
    end
  end)

  it('float32 probabilities within 4 ulp of the float64 exponential, down to exp underflow', function()
    -- logits spread over [-100, 0] with each row's max 0 (so x - max is exact): the
    -- polynomial exp, its clamp below -87 and the tails
    local n, c = 256, 64
    local x = logits({ n, c }, 77, 'float32', 50):sub_(50)
    x:select(2, 1):fill_(0)
    local t = targets({ n }, c, 5)
    local p = ms.empty(n, c)
    assert.equal(0, C.ms_cross_entropy(p, ms.empty(n), x, t, 1, 0, nil, nil))
    local ref = x:to('float64'):softmax()
    local P, R = p:view(-1):totable(), ref:view(-1):totable()
    for i = 1, #R do
      local tol = 2.5e-7 * R[i] + 2e-38                        -- (measured: 2.0 ulp at most)
      assert(math.abs(P[i] - R[i]) <= tol, ('p[%d] = %.9g, expected %.9g'):format(i, P[i], R[i]))
    end
  end)

  it('two threads give the bits of one (rows split across threads)', function()
    local before = ms.num_threads()
    local x = logits({ 3000, 11 }, 8, 'float32', 5)
    local t = targets({ 3000 }, 11, 9)
    local function run(k)
      ms.set_num_threads(k)
      local m = nn.CrossEntropyLoss { label_smoothing = 0.05 }
      local l = m:forward(x, t)
      return l, m:backward(x, t):clone()
    end
    local l1, g1 = run(1)
    local l2, g2 = run(2)
    ms.set_num_threads(before)
    assert.equal(l1, l2)
    H.same_bits(g1, g2, 'gradient')
  end)

  it("'none' losses are fresh tensors; the gradient buffer is reused step to step", function()
    local x = logits({ 5, 4 }, 1, 'float32')
    local t = targets({ 5 }, 4, 1)
    local m = nn.CrossEntropyLoss { reduction = 'none' }
    local l1 = m:forward(x, t)
    local keep = l1:clone()
    local g1 = m:backward(x, t)
    local x2 = logits({ 5, 4 }, 2, 'float32')
    local l2 = m:forward(x2, t)
    H.same_bits(l1, keep, 'first losses untouched by the second forward')
    assert.is_false(rawequal(l1, l2))
    local g2 = m:backward(x2, t)
    assert.is_true(g1.storage == g2.storage)                    -- the layer's buffer, as Linear's
    -- a non-contiguous gradOutput for 'none'
    local go = logits({ 2, 5 }, 3, 'float32'):t():select(2, 1)  -- [5], stride 2
    local _, want = ref_result(x2, t, 0, 'none', go)
    close_list(grad_rows(m:backward(x2, t, go), x2), want, 3e-6, 'strided gradOutput')
  end)

  git('CUDA: the same losses and gradients as the CPU', function()
    for _, e in ipairs { 0, 0.1 } do
      for _, red in ipairs { 'mean', 'none' } do
        local x = logits({ 300, 17 }, 3, 'float32', 4)
        local t = targets({ 300 }, 17, 4)
        local a = nn.CrossEntropyLoss { label_smoothing = e, reduction = red }
        local b = nn.CrossEntropyLoss { label_smoothing = e, reduction = red }
        local la, lb = a:forward(x, t), b:forward(x:cuda(), t:cuda())
        assert.is_true(b.cache.fast)
        close_list(as_list(type(lb) == 'number' and lb or lb:cpu()), as_list(la), 2e-6, 'cuda loss')
        close_list(as_list(b:backward(x:cuda(), t:cuda()):cpu()), as_list(a:backward(x, t)), 2e-6, 'cuda grad')
      end
    end
    local bad = nn.CrossEntropyLoss()
    H.assert_error(function() bad:forward(ms.zeros(3, 4):cuda(), ms.tensor({ 1, 9, 2 }, 'int64'):cuda()) end,
                   'CrossEntropyLoss.forward', 'target 9', 'position 2')
  end)
end)

describe('ms_cross_entropy (C API)', function()
  local total, bad = ffi.new('double[1]'), ffi.new('int64_t[1]')
  local function last() return ffi.string(C.ms_last_error()) end

  it('reports a target that is not a class through bad, or fails naming it', function()
    local x, p, l = ms.zeros(3, 4), ms.empty(3, 4), ms.empty(3)
    assert.equal(0, C.ms_cross_entropy(p, l, x, ms.tensor({ 0, 1, 3 }, 'int64'), 0, 0, total, bad))
    assert.equal(-1, tonumber(bad[0]))
    assert.is_true(math.abs(total[0] - 3 * math.log(4)) < 1e-6)
    assert.equal(0, C.ms_cross_entropy(p, l, x, ms.tensor({ 0, 4, 1 }, 'int64'), 0, 0, total, bad))
    assert.equal(1, tonumber(bad[0]))
    assert.equal(-1, C.ms_cross_entropy(p, l, x, ms.tensor({ 0, 1, -1 }, 'int64'), 0, 0, nil, nil))
    assert.truthy(last():find('cross_entropy: target -1 in row 2', 1, true))
  end)

  it('checks shapes, dtypes, smoothing and overlap', function()
    local x, p, l, t = ms.zeros(3, 4), ms.empty(3, 4), ms.empty(3), ms.tensor({ 1, 2, 3 }, 'int64')
    assert.equal(-1, C.ms_cross_entropy(p, l, x, ms.tensor({ 1, 2 }, 'int64'), 1, 0, nil, nil))
    assert.truthy(last():find("expected [rows, classes]", 1, true))
    assert.equal(-1, C.ms_cross_entropy(p, l, x, ms.zeros(3), 1, 0, nil, nil))
    assert.truthy(last():find("'target' has dtype float32, expected int64", 1, true))
    assert.equal(-1, C.ms_cross_entropy(p, ms.empty(4), x, t, 1, 0, nil, nil))
    assert.truthy(last():find("'losses' has 4 elements, expected 3", 1, true))
    assert.equal(-1, C.ms_cross_entropy(p, l, x, t, 1, 1.5, nil, nil))
    assert.truthy(last():find("argument 'smoothing' is 1.5", 1, true))
    assert.equal(-1, C.ms_cross_entropy(x, l, x, t, 1, 0, nil, nil))
    assert.truthy(last():find('shares memory', 1, true))
    assert.equal(-1, C.ms_cross_entropy(ms.empty(3, 4, { dtype = 'float64' }), l, x, t, 1, 0, nil, nil))
    assert.truthy(last():find("'prob'", 1, true))
  end)

  it('backward in place (out = prob) equals the out-of-place result; partial overlap refused', function()
    local x, t = logits({ 6, 5 }, 9, 'float32', 3), targets({ 6 }, 5, 2)
    local p, l = ms.empty(6, 5), ms.empty(6)
    assert.equal(0, C.ms_cross_entropy(p, l, x, t, 1, 0.1, nil, nil))
    local g = ms.empty(6, 5)
    local rs = logits({ 6 }, 4, 'float32')
    assert.equal(0, C.ms_cross_entropy_backward(g, p, t, 1, 0.1, 0.5, rs))
    assert.equal(0, C.ms_cross_entropy_backward(p, p, t, 1, 0.1, 0.5, rs))
    H.same_bits(p, g, 'in place')
    local big = ms.empty(31)
    assert.equal(-1, C.ms_cross_entropy_backward(big:narrow(1, 2, 30):view(6, 5), big:narrow(1, 1, 30):view(6, 5),
                                                 t, 1, 0, 1, nil))
    assert.truthy(last():find('partly overlaps', 1, true))
    assert.equal(-1, C.ms_cross_entropy_backward(g, p, t, 1, 0, 1, ms.empty(5)))
    assert.truthy(last():find("'row_scale' has 5 elements, expected 6", 1, true))
    assert.equal(-1, C.ms_cross_entropy_backward(g, p, ms.tensor({ 1, 2, 3, 4, 5, 9 }, 'int64'), 1, 0, 1, nil))
    assert.truthy(last():find('target 9 in row 5', 1, true))
  end)
end)

describe('Linear bias gradient in one pass (ms_bias_grad)', function()
  it('is bit for bit g:sum(1) added, accumulating over backward calls (float32, float64)', function()
    for _, dtype in ipairs { 'float32', 'float64' } do
      for _, dims in ipairs { { 7, 5, 3 }, { 128, 784, 300 }, { 1, 4, 1 }, { 33, 9, 513 } } do
        local n, nin, nout = dims[1], dims[2], dims[3]
        local m = nn.Linear(nin, nout):to(dtype)
        m:zero_grad()
        local x = logits({ n, nin }, 3, dtype)
        local g1, g2 = logits({ n, nout }, 4, dtype), logits({ n, nout }, 5, dtype)
        m:forward(x); m:backward(x, g1)
        m:forward(x); m:backward(x, g2)
        local want = ms.zeros(nout, { dtype = dtype }):add_(g1:sum(1)):add_(g2:sum(1))
        H.same_bits(m.grad_bias, want, dtype .. ' ' .. table.concat(dims, 'x'))
      end
    end
  end)

  it('takes a 3-D input and a non-contiguous gradient', function()
    local m = nn.Linear(4, 6):double()
    m:zero_grad()
    local x = logits({ 2, 3, 4 }, 1, 'float64')
    m:forward(x)
    local g = logits({ 6, 2, 3 }, 2, 'float64'):permute { 2, 3, 1 }    -- [2, 3, 6], not contiguous
    m:backward(x, g)
    H.same_bits(m.grad_bias, g:contiguous():view(6, 6):sum(1), 'grad_bias')
  end)

  it('sums over every dim but one, in any position (C API against a loop)', function()
    local g = logits({ 3, 4, 5 }, 6, 'float64')
    local v = g:totable()
    for dim = 0, 2 do
      local size = g:size(dim + 1)
      local out = ms.ones(size, { dtype = 'float64' })
      assert.equal(0, C.ms_bias_grad(out, g, dim))
      for k = 1, size do
        local s = 0
        for a = 1, 3 do for b = 1, 4 do for c = 1, 5 do
          local idx = { a, b, c }
          if idx[dim + 1] == k then s = s + v[a][b][c] end
        end end end
        assert(math.abs(out:get(k) - (1 + s)) < 1e-12, ('dim %d k %d: %.17g vs %.17g'):format(dim, k, out:get(k), 1 + s))
      end
    end
  end)

  it('checks its arguments', function()
    local g = ms.zeros(4, 3)
    local function last() return ffi.string(C.ms_last_error()) end
    assert.equal(-1, C.ms_bias_grad(ms.zeros(4), g, 1))
    assert.truthy(last():find("bias_grad: argument 'out' has 4 elements, expected a contiguous tensor of 3", 1, true))
    assert.equal(-1, C.ms_bias_grad(ms.zeros(3), g, 2))
    assert.truthy(last():find('dim 3 out of range', 1, true))
    assert.equal(-1, C.ms_bias_grad(ms.zeros(3, { dtype = 'float64' }), g, 1))
    assert.truthy(last():find('expected the same dtype', 1, true))
    assert.equal(-1, C.ms_bias_grad(g:select(1, 1), g, 1))
    assert.truthy(last():find('shares memory', 1, true))
    assert.equal(-1, C.ms_bias_grad(ms.zeros(3, 2):select(2, 1), g, 1))
    assert.truthy(last():find('not contiguous', 1, true))
    assert.equal(-1, C.ms_bias_grad(ms.zeros(3, { dtype = 'int64' }), ms.zeros(4, 3, { dtype = 'int64' }), 1))
    assert.truthy(last():find('float32 or float64', 1, true))
  end)

  it('two threads give the bits of one', function()
    local before = ms.num_threads()
    local g = logits({ 64, 3001 }, 12, 'float32')
    local function run(k)
      ms.set_num_threads(k)
      local out = ms.zeros(3001)
      assert.equal(0, C.ms_bias_grad(out, g, 1))
      return out
    end
    local a, b = run(1), run(2)
    ms.set_num_threads(before)
    H.same_bits(a, b, 'bias gradient')
    H.same_bits(a, g:sum(1), 'against sum(1)')
  end)

  git('CUDA: the same bias gradients as the CPU', function()
    for _, shape in ipairs { { 130, 70 }, { 3, 5, 40 } } do
      local g = logits(shape, 2, 'float32')
      local a, b = ms.zeros(shape[2]), ms.zeros(shape[2]):cuda()
      assert.equal(0, C.ms_bias_grad(a, g, 1))
      assert.equal(0, C.ms_bias_grad(b, g:cuda(), 1))
      H.assert_close(b:cpu(), a, 1e-6, 'cuda bias grad')
    end
  end)
end)

describe('activations into their buffers', function()
  local F = nn.functional
  -- layer, the tensor-method forward, its gradient from (x, y, g)
  local CASES = {
    { 'ReLU', function() return nn.ReLU() end, function(x) return x:relu() end,
      function(x, _, g) return F.relu_backward(x, g) end },
    { 'Tanh', function() return nn.Tanh() end, function(x) return x:tanh() end,
      function(_, y, g) return F.tanh_backward(y, g) end },
    { 'Sigmoid', function() return nn.Sigmoid() end, function(x) return x:sigmoid() end,
      function(_, y, g) return F.sigmoid_backward(y, g) end },
    { 'LeakyReLU', function() return nn.LeakyReLU(0.2) end, function(x) return x:leaky_relu(0.2) end,
      function(x, _, g) return F.leaky_relu_backward(x, g, 0.2) end },
    { 'GELU', function() return nn.GELU() end, function(x) return x:gelu() end,
      function(x, _, g) return F.gelu_backward(x, g) end },
    { "GELU('tanh')", function() return nn.GELU('tanh') end, function(x) return x:gelu('tanh') end,
      function(x, _, g) return F.binary_into(ms.empty_like(x), x, g, C.MS_GELU_TANH_BACKWARD, 0) end },
  }

  it('give the bits of the tensor ops, reuse their buffers, take strided inputs', function()
    for _, c in ipairs(CASES) do
      for _, dtype in ipairs { 'float32', 'float64' } do
        local m = c[2]()
        local x = logits({ 7, 5 }, 3, dtype, 3):t()             -- [5, 7], not contiguous
        local g = logits({ 5, 7 }, 4, dtype)
        local y = m:forward(x)
        local what = c[1] .. ' ' .. dtype
        H.same_bits(y, c[3](x), what .. ' forward')
        local gx = m:backward(x, g)
        H.same_bits(gx, c[4](x, c[3](x), g), what .. ' backward')
        local x2 = logits({ 5, 7 }, 5, dtype)
        local y2, gx2 = m:forward(x2), m:backward(x2, g)
        assert.is_true(y.storage == y2.storage, what .. ': output buffer reused')
        assert.is_true(gx.storage == gx2.storage, what .. ': gradInput buffer reused')
        H.same_bits(y2, c[3](x2), what .. ' second forward')
        local z = m:forward(logits({ 3, 2, 2 }, 6, dtype))       -- another shape: a new buffer
        assert.same({ 3, 2, 2 }, z:shape())
      end
    end
  end)
end)
