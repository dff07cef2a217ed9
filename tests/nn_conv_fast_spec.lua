-- The fast paths of the window kernels (runtime/pool.c, runtime/conv.c) and of Conv2d's
-- output/gradient passes, each against a plain Lua loop of the rule in runtime/window.h
-- on random geometries: odd sizes, padding, stride != kernel, dilation, ceil_mode,
-- float32 (the SSE2 rows) and float64, ties, NaN and infinities for the argmax.
local ms = require 'moonstep'
local nn = ms.nn
local H = require 'helper'

local INF = math.huge

-- A deterministic generator of integers in [lo, hi].
local function rng(seed)
  local r = H.lcg(seed)
  return function(lo, hi) return lo + math.floor((r() + 1) / 2 * (hi - lo + 1) - 1e-9) end
end

-- A tensor of shape with the given flat values (a Lua list), and the list.
local function tensor_of(shape, vals, dtype)
  local t = ms.empty(shape, { dtype = dtype })
  local flat = t:view(#vals)
  for i = 1, #vals do flat:set(i, vals[i]) end
  return t, H.flatten(t:totable())
end

-- n values: small integers (many ties), with NaN and infinities sprinkled in when wild.
local function values(n, ri, wild)
  local v = {}
  for i = 1, n do
    local k = ri(0, 40)
    if wild and k == 0 then v[i] = 0 / 0
    elseif wild and k == 1 then v[i] = INF
    elseif wild and k == 2 then v[i] = -INF
    else v[i] = ri(-3, 3) + (k % 2) * 0.5 end
  end
  return v
end

-- A random valid pooling geometry (PyTorch's rule: padding <= kernel / 2).
local function pool_geom(ri, max)
  while true do
    local g = { kh = ri(1, 4), kw = ri(1, 4), dh = max and ri(1, 3) or 1, dw = max and ri(1, 3) or 1 }
    g.sh, g.sw = ri(1, 4), ri(1, 3)
    if ri(0, 2) == 0 then g.sw = 2 end
    g.ph, g.pw = ri(0, math.floor(g.kh / 2)), ri(0, math.floor(g.kw / 2))
    g.ceil = ri(0, 1) == 1
    g.n, g.c, g.h, g.w = ri(1, 2), ri(1, 3), ri(1, 13), ri(1, 23)
    if g.h + 2 * g.ph - g.dh * (g.kh - 1) - 1 >= 0 and g.w + 2 * g.pw - g.dw * (g.kw - 1) - 1 >= 0 then
      return g
    end
  end
end

local function ctor_opts(g)
  return { stride = { g.sh, g.sw }, padding = { g.ph, g.pw }, ceil_mode = g.ceil }
end

local function geom_name(g, dtype)
  return ('%s [%d,%d,%d,%d] k %dx%d s %dx%d p %dx%d d %dx%d%s'):format(dtype, g.n, g.c, g.h, g.w,
    g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.ceil and ' ceil' or '')
end

-- window.h's ms_maxpool_at on the flat plane list: the first maximum, NaN wins.
local function ref_maxpool(xf, g, OH, OW)
  local out, at = {}, {}
  for p = 0, g.n * g.c - 1 do
    for oy = 0, OH - 1 do
      for ox = 0, OW - 1 do
        local best, where = -INF, -1
        for i = 0, g.kh - 1 do
          local y = oy * g.sh - g.ph + i * g.dh
          if y >= 0 and y < g.h then
            for j = 0, g.kw - 1 do
              local x = ox * g.sw - g.pw + j * g.dw
              if x >= 0 and x < g.w then
                local v = xf[p * g.h * g.w + y * g.w + x + 1]
                if where < 0 or (best == best and not (v <= best)) then best, where = v, y * g.w + x end
              end
            end
          end
        end
        out[#out + 1], at[#at + 1] = best, where
      end
    end
  end
  return out, at
end

local function same_list(got, want, what, tol)
  assert(#got == #want, ('%s: %d values, expected %d'):format(what, #got, #want))
  for i = 1, #got do
    local a, b = got[i], want[i]
    local ok = a == b or (a ~= a and b ~= b) or (tol and math.abs(a - b) <= tol * math.max(1, math.abs(b)))
    if not ok then error(('%s: element %d is %.9g, expected %.9g'):format(what, i, a, b), 2) end
  end
end

describe('max pooling fast paths', function()
  for _, dtype in ipairs { 'float32', 'float64' } do
    it('random geometries against the window rule, forward and backward (' .. dtype .. ')', function()
      local ri = rng(dtype == 'float32' and 11 or 12)
      for case = 1, 60 do
        local g = pool_geom(ri, true)
        local what = geom_name(g, dtype) .. ' (case ' .. case .. ')'
        local x, xf = tensor_of({ g.n, g.c, g.h, g.w }, values(g.n * g.c * g.h * g.w, ri, case % 3 ~= 0), dtype)
        local opts = ctor_opts(g)
        opts.dilation, opts.return_indices = { g.dh, g.dw }, true
        local m = nn.MaxPool2d({ g.kh, g.kw }, opts)
        local y, idx = m:forward(x)
        local OH, OW = y:size(3), y:size(4)
        local want, at = ref_maxpool(xf, g, OH, OW)
        same_list(H.flatten(y:totable()), want, what .. ': output')
        local wi = {}
        for i = 1, #at do wi[i] = at[i] + 1 end
        same_list(H.flatten(idx:totable()), wi, what .. ': indices')
        local gy, gf = tensor_of(y:shape(), values(y:numel(), ri, false), dtype)
        local gin = {}
        for i = 1, g.n * g.c * g.h * g.w do gin[i] = 0 end
        local ohw = OH * OW
        for o = 1, #at do
          if at[o] >= 0 then
            local p = math.floor((o - 1) / ohw)
            local k = p * g.h * g.w + at[o] + 1
            gin[k] = gin[k] + gf[o]
          end
        end
        same_list(H.flatten(m:backward(x, gy):totable()), gin, what .. ': grad_input',
                  dtype == 'float32' and 1e-6 or nil)
      end
    end)
  end

  it('the SSE2 rows: ties keep the first tap, NaN wins, -inf and +inf', function()
    -- one row of 2x2 windows, stride 2 and 1, enough outputs for 4-wide blocks + a tail
    for _, s in ipairs { 1, 2 } do
      local w = 22
      local rows = {}
      for i = 1, 2 * w do rows[i] = 1 end                  -- all ties: tap (0, 0) wins
      rows[2 * 2 + 1] = 0 / 0                              -- a NaN in window 2 (stride 2)
      rows[w + 7] = 0 / 0; rows[w + 8] = 5                 -- NaN then a larger value: NaN stays
      rows[11] = INF; rows[w + 13] = -INF; rows[15] = 2; rows[w + 15] = 2
      for _, dtype in ipairs { 'float32', 'float64' } do
        local x, xf = tensor_of({ 1, 1, 2, w }, rows, dtype)
        local g = { n = 1, c = 1, h = 2, w = w, kh = 2, kw = 2, sh = 1, sw = s, ph = 0, pw = 0, dh = 1, dw = 1 }
        local m = nn.MaxPool2d(2, { stride = { 1, s }, return_indices = true })
        local y, idx = m:forward(x)
        local want, at = ref_maxpool(xf, g, y:size(3), y:size(4))
        same_list(H.flatten(y:totable()), want, dtype .. ' stride ' .. s .. ': output')
        for i = 1, #at do at[i] = at[i] + 1 end
        same_list(H.flatten(idx:totable()), at, dtype .. ' stride ' .. s .. ': indices')
      end
    end
  end)

  it('backward refuses an argmax outside the plane, naming the layer', function()
    local m = nn.MaxPool2d(2)
    local x = ms.randn { 2, 3, 8, 8 }
    m:forward(x)
    m.argmax:view(-1):set(17, 64)                           -- a plane has 64 elements
    H.assert_error(function() m:backward(x, ms.ones { 2, 3, 4, 4 }) end,
                   'MaxPool2d.backward', "argument 'argmax' holds 64, expected -1 or 0..63")
    m:forward(x)
    m.argmax:view(-1):set(96, -2)
    H.assert_error(function() m:backward(x, ms.ones { 2, 3, 4, 4 }) end, "argument 'argmax' holds -2")
  end)
end)

-- A direct convolution in Lua: y[n, o, oy, ox] = b[o] + sum over the group's channels
-- and taps of w[o, c, i, j] x[n, c, y, x] (zero outside), and its adjoints.
local function ref_conv(xf, wf, bf, g)
  local cg, og = g.c / g.groups, g.o / g.groups
  local y, gw, gb, gx = {}, {}, {}, {}
  local function xi(n, c, yy, xx) return ((n * g.c + c) * g.h + yy) * g.w + xx + 1 end
  local function wi(o, c, i, j) return ((o * cg + c) * g.kh + i) * g.kw + j + 1 end
  local function yi(n, o, oy, ox) return ((n * g.o + o) * g.oh + oy) * g.ow + ox + 1 end
  for k = 1, #wf do gw[k] = 0 end
  for k = 1, #xf do gx[k] = 0 end
  for o = 0, g.o - 1 do gb[o + 1] = 0 end
  local taps = function(n, o, oy, ox, f)
    local grp = math.floor(o / og)
    for c = 0, cg - 1 do
      for i = 0, g.kh - 1 do
        local yy = oy * g.sh - g.pt + i * g.dh
        if yy >= 0 and yy < g.h then
          for j = 0, g.kw - 1 do
            local xx = ox * g.sw - g.pl + j * g.dw
            if xx >= 0 and xx < g.w then f(xi(n, grp * cg + c, yy, xx), wi(o, c, i, j)) end
          end
        end
      end
    end
  end
  for n = 0, g.n - 1 do
    for o = 0, g.o - 1 do
      for oy = 0, g.oh - 1 do
        for ox = 0, g.ow - 1 do
          local s = bf and bf[o + 1] or 0
          taps(n, o, oy, ox, function(a, b) s = s + xf[a] * wf[b] end)
          y[yi(n, o, oy, ox)] = s
          local gy = g.gy[yi(n, o, oy, ox)]
          gb[o + 1] = gb[o + 1] + gy
          taps(n, o, oy, ox, function(a, b) gw[b] = gw[b] + gy * xf[a]; gx[a] = gx[a] + gy * wf[b] end)
        end
      end
    end
  end
  return y, gw, gb, gx
end

-- Conv2d with geometry g against ref_conv: forward, then backward twice (the reused
-- buffers give the same gradients, accumulated in grad_weight/grad_bias).
local function conv_case(ri, g, dtype, case, bias)
  g.oh = math.floor((g.h + 2 * g.pt - g.dh * (g.kh - 1) - 1) / g.sh) + 1
  g.ow = math.floor((g.w + 2 * g.pl - g.dw * (g.kw - 1) - 1) / g.sw) + 1
  if g.oh < 1 or g.ow < 1 then return end
  local m = nn.Conv2d(g.c, g.o, { g.kh, g.kw }, { stride = { g.sh, g.sw }, padding = { g.pt, g.pl },
                      dilation = { g.dh, g.dw }, groups = g.groups, bias = bias }):to(dtype)
  m.input_grad = true
  local x, xf = tensor_of({ g.n, g.c, g.h, g.w }, values(g.n * g.c * g.h * g.w, ri, false), dtype)
  local w, wf = tensor_of(m.weight:shape(), values(m.weight:numel(), ri, false), dtype)
  m.weight:copy_(w)
  local bf
  if bias then
    local b
    b, bf = tensor_of({ g.o }, values(g.o, ri, false), dtype)
    m.bias:copy_(b)
  end
  local gy
  gy, g.gy = tensor_of({ g.n, g.o, g.oh, g.ow }, values(g.n * g.o * g.oh * g.ow, ri, false), dtype)
  local y, gw, gb, gx = ref_conv(xf, wf, bf, g)
  local what = ('%s [%d,%d,%d,%d] -> %d, k %dx%d s %dx%d p %dx%d d %dx%d groups %d (case %d)'):format(
    dtype, g.n, g.c, g.h, g.w, g.o, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl, g.dh, g.dw, g.groups, case)
  local tol = dtype == 'float32' and 1e-5 or 1e-12
  m:zero_grad()
  same_list(H.flatten(m:forward(x):totable()), y, what .. ': output', tol)
  for round = 1, 2 do
    local gin = m:backward(x, gy)
    same_list(H.flatten(gin:totable()), gx, what .. ': grad_input', tol)
    local want = {}
    for k = 1, #gw do want[k] = gw[k] * round end
    same_list(H.flatten(m.grad_weight:totable()), want, what .. ': grad_weight', tol)
    if bias then
      want = {}
      for k = 1, #gb do want[k] = gb[k] * round end
      same_list(H.flatten(m.grad_bias:totable()), want, what .. ': grad_bias', tol)
    end
  end
end

describe('Conv2d fast passes', function()
  it('random geometries against a direct convolution, forward and backward (float64, float32)', function()
    local ri = rng(21)
    for case = 1, 40 do
      local dtype = case % 2 == 0 and 'float32' or 'float64'
      local g = { groups = ri(1, 2) }
      g.c, g.o = g.groups * ri(1, 3), g.groups * ri(1, 3)
      g.kh, g.kw, g.sh, g.sw, g.dh, g.dw = ri(1, 3), ri(1, 3), ri(1, 3), ri(1, 3), ri(1, 2), ri(1, 2)
      g.pt, g.pl = ri(0, 2), ri(0, 2)
      g.n, g.h, g.w = ri(1, 3), ri(1, 9), ri(1, 11)
      conv_case(ri, g, dtype, case, ri(0, 3) > 0)
    end
  end)

  it('1x1 convolutions (the direct batched GEMM) against a direct convolution', function()
    local ri = rng(22)
    for case = 1, 16 do
      local dtype = case % 2 == 0 and 'float32' or 'float64'
      local g = { groups = 1, c = ri(1, 5), o = ri(1, 5), kh = 1, kw = 1, sh = 1, sw = 1, dh = ri(1, 2),
                  dw = 1, pt = 0, pl = 0, n = ri(1, 3), h = ri(1, 6), w = ri(1, 7) }
      conv_case(ri, g, dtype, case, case % 4 ~= 0)
    end
  end)

  it('the one-pass layout kernels equal copy_ + add_ / sum (odd sizes, no bias, float64)', function()
    local W = require 'moonstep.nn.window'
    local ri = rng(31)
    for case = 1, 30 do
      local dtype = case % 2 == 0 and 'float32' or 'float64'
      local n, O, L = ri(1, 4), ri(1, 9), ri(1, 37)
      local Y = ms.randn({ O, n * L }, { dtype = dtype })
      local b = case % 3 ~= 0 and ms.randn({ O }, { dtype = dtype }) or nil
      local y = W.conv_output('t', ms.empty({ n, O, L }, { dtype = dtype }), Y, b)
      local want = Y:view(O, n, L):transpose(1, 2):contiguous()
      if b then want:add_(b:view(1, O, 1)) end
      H.same_bits(y, want, 'conv_output case ' .. case)
      local g = ms.randn({ n, O, L }, { dtype = dtype })
      local gb0 = b and ms.randn({ O }, { dtype = dtype }) or nil
      local gb = gb0 and gb0:clone() or nil
      local G = W.conv_grad_output('t', ms.empty({ O, n * L }, { dtype = dtype }), gb, g)
      H.same_bits(G, g:transpose(1, 2):contiguous():view(O, n * L), 'conv_grad_output case ' .. case)
      if gb then
        H.assert_close(gb, gb0:add(g:transpose(1, 2):contiguous():view(O, n * L):sum(2)),
                       dtype == 'float32' and 1e-5 or 1e-12, 'grad_bias case ' .. case)
      end
    end
  end)

  it('a bias of another layout takes the tensor-op path, with the same values', function()
    local W = require 'moonstep.nn.window'
    local n, O, L = 3, 5, 11
    local Y, g = ms.randn { O, n * L }, ms.randn { n, O, L }
    local wide = ms.randn { O, 2 }
    local b = wide:select(2, 1)                             -- a strided view: not contiguous
    assert.is_false(b:is_contiguous())
    H.same_bits(W.conv_output('t', ms.empty { n, O, L }, Y, b),
                W.conv_output('t', ms.empty { n, O, L }, Y, b:contiguous()), 'conv_output')
    local gb1 = ms.zeros { O }
    local gw = ms.zeros { O, 2 }
    local gb2 = gw:select(2, 2)
    local G1 = W.conv_grad_output('t', ms.empty { O, n * L }, gb1, g)
    local G2 = W.conv_grad_output('t', ms.empty { O, n * L }, gb2, g)
    H.same_bits(G1, G2, 'conv_grad_output')
    H.assert_close(gb2, gb1, 1e-6, 'grad_bias')
  end)

  it('the layout kernels refuse wrong shapes and overlapping buffers, naming the caller', function()
    local W = require 'moonstep.nn.window'
    local Y = ms.randn { 3, 8 }
    H.assert_error(function() W.conv_output('Conv2d.forward', ms.empty { 2, 3, 5 }, Y, nil) end,
                   'Conv2d.forward', "'Y'")
    H.assert_error(function() W.conv_output('Conv2d.forward', ms.empty { 2, 3, 4 }, Y, ms.empty { 4 }) end,
                   'Conv2d.forward', "'bias'")
    local buf = ms.empty { 24 }
    H.assert_error(function() W.conv_grad_output('Conv2d.backward', buf:view(3, 8), nil, buf:view(2, 3, 4)) end,
                   'Conv2d.backward', 'shares memory')
  end)
end)

describe('im2col and col2im', function()
  local core = require 'moonstep.core'
  local C, ffi = core.C, core.ffi
  -- window.h's ms_im2col_source: the plane offset cols[k, n*L + l] reads, or -1
  local function source(g, k, l)
    local i, j = math.floor(k / g.kw) % g.kh, k % g.kw
    local y = math.floor(l / g.ow) * g.sh - g.pt + i * g.dh
    local x = (l % g.ow) * g.sw - g.pl + j * g.dw
    if y >= 0 and y < g.h and x >= 0 and x < g.w then return y * g.w + x end
    return -1
  end

  it('random geometries, half of them stride 1 with OW == W (the shifted runs), against the rule', function()
    local ri = rng(41)
    local shifted = 0
    for case = 1, 120 do
      local dtype = case % 3 == 0 and 'float64' or 'float32'
      local g = { kh = ri(1, 4), kw = ri(1, 4), dh = ri(1, 2), dw = ri(1, 2), n = ri(1, 3), c = ri(1, 3),
                  h = ri(1, 9), w = ri(1, 13) }
      if case % 4 == 1 then g.w = ri(1, 4) end   -- runs whose tails cross masked columns
      if case % 2 == 1 then                   -- 'same': total padding d*(k-1), odd extra at the end
        g.sh, g.sw = 1, 1
        local th, tw = g.dh * (g.kh - 1), g.dw * (g.kw - 1)
        g.pt, g.pl = math.floor(th / 2), math.floor(tw / 2)
        g.pb, g.pr = th - g.pt, tw - g.pl
        if ri(0, 3) == 0 then g.pt, g.pb = g.pt + 1, g.pb - 1 end   -- rows shifted the other way
      else
        g.sh, g.sw = ri(1, 3), ri(1, 3)
        g.pt, g.pb, g.pl, g.pr = ri(0, 2), ri(0, 2), ri(0, 2), ri(0, 2)
      end
      local win = ffi.new('ms_window2d')
      win.kh, win.kw, win.sh, win.sw, win.dh, win.dw = g.kh, g.kw, g.sh, g.sw, g.dh, g.dw
      win.pt, win.pb, win.pl, win.pr = g.pt, g.pb, g.pl, g.pr
      if g.pb >= 0 and C.ms_window2d_out(win, g.h, g.w) == 0 then
        g.oh, g.ow = tonumber(win.oh), tonumber(win.ow)
        if g.sh == 1 and g.sw == 1 and g.ow == g.w then shifted = shifted + 1 end
        local L, K = g.oh * g.ow, g.c * g.kh * g.kw
        local what = ('%s [%d,%d,%d,%d] k %dx%d s %dx%d d %dx%d pad %d/%d x %d/%d (case %d)'):format(dtype,
          g.n, g.c, g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pt, g.pb, g.pl, g.pr, case)
        local x, xf = tensor_of({ g.n, g.c, g.h, g.w }, values(g.n * g.c * g.h * g.w, ri, true), dtype)
        local cols = ms.empty({ K, g.n * L }, { dtype = dtype })
        assert(C.ms_im2col(cols, x, win, -7) == 0, what)
        local want, gx = {}, {}
        for e = 1, #xf do gx[e] = 0 end
        local cv, cf = tensor_of({ K, g.n * L }, values(K * g.n * L, ri, false), dtype)
        for k = 0, K - 1 do
          local c = math.floor(k / (g.kh * g.kw))
          for n = 0, g.n - 1 do
            for l = 0, L - 1 do
              local at = source(g, k, l)
              local plane = (n * g.c + c) * g.h * g.w
              want[#want + 1] = at >= 0 and xf[plane + at + 1] or -7
              if at >= 0 then
                local e = plane + at + 1
                gx[e] = gx[e] + cf[k * g.n * L + n * L + l + 1]
              end
            end
          end
        end
        same_list(H.flatten(cols:totable()), want, what .. ': im2col')
        -- col2im sums in tap order (k, then l): the same order as this loop
        assert(C.ms_col2im(x, cv, win) == 0, what)
        same_list(H.flatten(x:totable()), gx, what .. ': col2im', dtype == 'float32' and 1e-6 or 1e-15)
      end
    end
    assert(shifted >= 40, 'only ' .. shifted .. ' geometries took the shifted runs')
  end)
end)

-- window.h's ms_avg_window: the window cut at the end of the padding, its rows/columns
-- inside the input, and the divisor.
local function avg_window(g, oy, ox)
  local ys, xs = oy * g.sh - g.ph, ox * g.sw - g.pw
  local ye, xe = math.min(ys + g.kh, g.h + g.ph), math.min(xs + g.kw, g.w + g.pw)
  local padded = (ye - ys) * (xe - xs)
  local y0, x0, y1, x1 = math.max(ys, 0), math.max(xs, 0), math.min(ye, g.h), math.min(xe, g.w)
  y1, x1 = math.max(y1, y0), math.max(x1, x0)
  local div = g.divisor or (g.cip and padded or (y1 - y0) * (x1 - x0))
  return y0, y1, x0, x1, div
end

describe('average pooling fast paths', function()
  for _, dtype in ipairs { 'float32', 'float64' } do
    it('random geometries against the window rule, forward and backward (' .. dtype .. ')', function()
      local ri = rng(dtype == 'float32' and 51 or 52)
      for case = 1, 60 do
        local g = pool_geom(ri, false)
        if case % 3 == 0 then g.sh, g.sw = 1, 1 end          -- overlapping windows
        g.cip = ri(0, 1) == 1
        if ri(0, 4) == 0 then g.divisor = ri(-3, 7); if g.divisor == 0 then g.divisor = 5 end end
        local what = geom_name(g, dtype) .. (g.cip and ' cip' or '') .. ' div ' .. tostring(g.divisor) ..
                     ' (case ' .. case .. ')'
        local opts = ctor_opts(g)
        opts.count_include_pad, opts.divisor_override = g.cip, g.divisor
        local m = nn.AvgPool2d({ g.kh, g.kw }, opts)
        local x, xf = tensor_of({ g.n, g.c, g.h, g.w }, values(g.n * g.c * g.h * g.w, ri, false), dtype)
        local y = m:forward(x)
        local OH, OW = y:size(3), y:size(4)
        local gy, gf = tensor_of(y:shape(), values(y:numel(), ri, false), dtype)
        local want, gin = {}, {}
        for e = 1, #xf do gin[e] = 0 end
        for p = 0, g.n * g.c - 1 do
          for oy = 0, OH - 1 do
            for ox = 0, OW - 1 do
              local y0, y1, x0, x1, div = avg_window(g, oy, ox)
              local s = 0
              for yy = y0, y1 - 1 do
                for xx = x0, x1 - 1 do s = s + xf[p * g.h * g.w + yy * g.w + xx + 1] end
              end
              want[#want + 1] = div ~= 0 and s / div or 0
              local o = (p * OH + oy) * OW + ox + 1
              if div ~= 0 then
                local v = gf[o] / div
                for yy = y0, y1 - 1 do
                  for xx = x0, x1 - 1 do
                    local e = p * g.h * g.w + yy * g.w + xx + 1
                    gin[e] = gin[e] + v
                  end
                end
              end
            end
          end
        end
        local tol = dtype == 'float32' and 1e-6 or nil
        same_list(H.flatten(y:totable()), want, what .. ': output', tol)
        same_list(H.flatten(m:backward(x, gy):totable()), gin, what .. ': grad_input', tol)
      end
    end)
  end
end)
