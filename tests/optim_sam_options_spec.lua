-- The options every SAM-family wrapper takes (lua/moonstep/optim/sharpness.lua; the
-- semantics of ../shared/reference/sam_family.md §9): gradient accumulation (m-sharpness:
-- each micro-batch its own perturbation, the base applies the mean), loss scaling (each
-- pass unscaled before any norm), Keras clipping of the final direction, the EMA of the
-- weights, rho per parameter group, and every combination of accumulation x loss scaling
-- x BatchNorm policy x groups resuming bit-exactly from state().
local ms = require 'moonstep'
local nn, optim = ms.nn, ms.optim
local H = require 'helper'

local same = H.same_bits

-- An MLP on one of two fixed batches; closure(batch, scale) back-propagates scale * loss.
local function mlp(opts)
  opts = opts or {}
  ms.manual_seed(opts.seed or 21)
  local layers = { nn.Linear(5, 6) }
  if opts.bn then layers[#layers + 1] = nn.BatchNorm1d(6) end
  layers[#layers + 1] = nn.Tanh()
  if opts.dropout then layers[#layers + 1] = nn.Dropout(0.25) end
  layers[#layers + 1] = nn.Linear(6, 3)
  local model = nn.Sequential(unpack(layers))
  model:to(opts.dtype or 'float64')
  local xs = { H.random_tensor({ 8, 5 }, 31):to(opts.dtype or 'float64'),
               H.random_tensor({ 8, 5 }, 32):to(opts.dtype or 'float64') }
  local ys = { ms.tensor({ 1, 2, 3, 1, 2, 3, 1, 2 }, { dtype = 'int64' }),
               ms.tensor({ 3, 3, 2, 1, 1, 2, 3, 1 }, { dtype = 'int64' }) }
  local crit = nn.CrossEntropyLoss()
  local function closure_for(batch, scale)
    return function()
      local out = model:forward(xs[batch])
      local loss = crit:forward(out, ys[batch])
      local g = crit:backward(out, ys[batch])
      if scale and scale ~= 1 then g = g * scale end
      model:backward(xs[batch], g)
      return loss
    end
  end
  return model, closure_for
end

describe('gradient accumulation', function()
  -- (FriendlySAM is not here: its average m moves with every micro-batch's gradient, so
  -- the second micro-batch is perturbed along another direction)
  it('A micro-batches of the same batch = one step; the base and the wrapper count one update', function()
    for _, name in ipairs { 'SAM', 'GSAM', 'WSAM', 'LookSAM' } do
      local m1, c1 = mlp()
      local m2, c2 = mlp()
      local extra = { k = name == 'LookSAM' and 2 or nil }
      if name == 'WSAM' then extra.decouple = false end
      local a = optim[name](m1, { base = optim.SGD { lr = 0.1, momentum = 0.9 }, k = extra.k, decouple = extra.decouple })
      local b = optim[name](m2, { base = optim.SGD { lr = 0.1, momentum = 0.9 }, gradient_accumulation_steps = 2,
                                   k = extra.k, decouple = extra.decouple })
      for _ = 1, 3 do
        a:step(c1(1))
        local _, i1 = b:step(c2(1))
        assert.is_false(i1.updated)
        local _, i2 = b:step(c2(1))
        assert.is_true(i2.updated)
      end
      same(m1:flat_parameters(), m2:flat_parameters(), name .. ' accumulated')
      assert.equal(3, b.t); assert.equal(3, b.base.t)
    end
  end)

  it('m-sharpness: each micro-batch is perturbed from its own gradient, the base gets the mean', function()
    local function direction(batch)
      local m, c = mlp()
      local w0 = m:flat_parameters():clone()
      optim.SAM(m, { base = optim.SGD { lr = 1 } }):step(c(batch))
      return w0 - m:flat_parameters()
    end
    local m, c = mlp()
    local w0 = m:flat_parameters():clone()
    local opt = optim.SAM(m, { base = optim.SGD { lr = 1 }, gradient_accumulation_steps = 2 })
    opt:step(c(1)); opt:step(c(2))
    H.assert_close(m:flat_parameters(), w0 - (direction(1) + direction(2)) * 0.5, 1e-12, 'mean of the two')
  end)
end)

describe('loss scaling', function()
  it('each pass is unscaled: S = 1024 gives the unscaled trajectory bit for bit', function()
    for _, name in ipairs { 'SAM', 'GSAM', 'WSAM', 'LookSAM', 'FriendlySAM' } do
      local m1, c1 = mlp()
      local m2, c2 = mlp()
      local a = optim[name](m1, { base = optim.Adam { lr = 0.01 } })
      local b = optim[name](m2, { base = optim.Adam { lr = 0.01 }, loss_scale_factor = 1024 })
      for i = 1, 4 do
        local l1 = a:step(c1(i % 2 + 1))
        local l2 = b:step(c2(i % 2 + 1, 1024))
        assert.equal(l1, l2)
      end
      same(m1:flat_parameters(), m2:flat_parameters(), name .. ' scaled')
    end
  end)

  it('an overflowing scaled pass is skipped and counted; the weights stay', function()
    local m, c = mlp { dtype = 'float32' }
    local before = m:flat_parameters():clone()
    local opt = optim.SAM(m, { base = optim.SGD { lr = 0.1 }, loss_scale_factor = 2 ^ 127 })
    local _, info = opt:step(c(1, 2 ^ 127 * 1e10))
    assert.is_true(info.skipped)
    assert.equal(1, opt.skipped)
    same(before, m:flat_parameters(), 'after the overflow')
  end)
end)

describe('Keras clipping of the final direction, and the EMA', function()
  -- rho = 0: the direction is the gradient; base SGD lr 1: w1 = w0 - clip(g)
  local function clipped(opts)
    local m, c = mlp()
    local g = m:flat_gradients()
    m:zero_grad(); c(1)()
    local grad = g:clone()
    local w0 = m:flat_parameters():clone()
    opts.base, opts.rho = optim.SGD { lr = 1 }, 0
    optim.SAM(m, opts):step(c(1))
    return w0 - m:flat_parameters(), grad, m
  end

  it('clipvalue, clipnorm (per tensor) and global_clipnorm as Keras computes them', function()
    local d, g = clipped { clipvalue = 0.05 }
    H.assert_close(d, g:clamp(-0.05, 0.05), 1e-14, 'clipvalue')
    local d2, g2, m = clipped { clipnorm = 0.1 }
    local want = g2:clone()
    for _, e in ipairs(m:flat_parameters() and require('moonstep.optim.Optimizer').arena_of(m).entries) do
      local part = want:narrow(1, e.offset + 1, e.numel)
      local n = math.sqrt((part * part):sum())
      part:mul_(0.1 / math.max(n, 0.1))
    end
    H.assert_close(d2, want, 1e-14, 'clipnorm')
    local d3, g3 = clipped { global_clipnorm = 0.1 }
    local n = math.sqrt((g3 * g3):sum())
    H.assert_close(d3, g3 * (0.1 * math.min(1 / n, 1 / 0.1)), 1e-14, 'global_clipnorm')
    -- the engine's torch-style clip_norm acts on the final direction as well
    local d4, g4 = clipped { clip_norm = 0.1 }
    H.assert_close(d4, g4 * math.min(1, 0.1 / (math.sqrt((g4 * g4):sum()) + 1e-6)), 1e-14, 'clip_norm')
    local d5, g5 = clipped { clip_value = 0.02 }
    H.assert_close(d5, g5:clamp(-0.02, 0.02), 1e-14, 'clip_value')
  end)

  it('use_ema averages the updated (never the perturbed) weights; overwrite and finalize', function()
    local m, c = mlp()
    local opt = optim.SAM(m, { base = optim.SGD { lr = 0.1 }, use_ema = true, ema_momentum = 0.9 })
    opt:step(c(1))
    local ema = m:flat_parameters():clone()
    same(ema, opt.buffers.ema, 'the first update starts the average at w')
    opt:step(c(2))
    ema = ema * 0.9 + m:flat_parameters() * 0.1
    H.assert_close(opt.buffers.ema, ema, 1e-14, 'ema after two')
    opt:finalize()
    same(opt.buffers.ema, m:flat_parameters(), 'finalize')
    local m2, c2 = mlp()
    local o2 = optim.SAM(m2, { base = optim.SGD { lr = 0.1 }, use_ema = true, ema_overwrite_frequency = 2 })
    o2:step(c2(1))
    assert.is_true((o2.buffers.ema - m2:flat_parameters()):abs():max() == 0)
    o2:step(c2(2))
    same(o2.buffers.ema, m2:flat_parameters(), 'overwritten at the 2nd update')
  end)
end)

describe('parameter groups', function()
  it('rho per group; the norm stays global', function()
    local m, c = mlp()
    local g = m:flat_gradients()
    m:zero_grad(); c(1)()
    local g1 = g:clone()
    local w0 = m:flat_parameters():clone()
    local at2
    local opt = optim.SAM(m, { base = optim.SGD { lr = 0.1 }, rho = 0.05,
                                groups = { { match = '^3%.', rho = 0 } } })   -- the last Linear
    opt:step(function(pass)
      if pass == 2 then at2 = m:flat_parameters():clone() end
      return c(1)()
    end)
    local n = math.sqrt((g1 * g1):sum())
    local e = g1 * (0.05 / (n + 1e-12))
    local entries = require('moonstep.optim.Optimizer').arena_of(m).entries
    for _, en in ipairs(entries) do
      if en.name:match('^3%.') then e:narrow(1, en.offset + 1, en.numel):zero_() end
    end
    H.assert_close(at2, w0 + e, 1e-15, 'the perturbed point')
  end)
end)

describe('every combination resumes bit-exactly', function()
  for _, A in ipairs { 1, 2 } do
    for _, S in ipairs { 1, 256 } do
      for _, bn in ipairs { 'first', 'both', 'none' } do
        for _, grouped in ipairs { false, true } do
          local label = ('A = %d, S = %d, bn = %s, groups %s'):format(A, S, bn, tostring(grouped))
          it(label, function()
            local function build()
              local m, c = mlp { bn = true, dropout = true, seed = 41 }
              local opt = optim.SAM(m, { base = optim.Adam { lr = 0.01, groups = grouped and { { kind = 'bias', lr_scale = 0.5 } } or nil },
                                         gradient_accumulation_steps = A, loss_scale_factor = S, bn = bn,
                                         groups = grouped and { { match = '^1%.', rho = 0.1 } } or nil })
              return m, c, opt
            end
            local function snapshot(m)
              local bnm = m.modules[2]
              return { w = m:flat_parameters():clone(), mean = bnm.running_mean:clone(), var = bnm.running_var:clone(),
                       rng = ms.rng_state() }
            end
            local m, c, opt = build()
            for i = 1, 5 do opt:step(c(i % 2 + 1, S)) end   -- 5: mid-accumulation when A = 2
            local snap, saved = snapshot(m), opt:state()
            for i = 6, 9 do opt:step(c(i % 2 + 1, S)) end
            local m2, c2, o2 = build()
            m2:flat_parameters():copy_(snap.w)
            m2.modules[2].running_mean:copy_(snap.mean)
            m2.modules[2].running_var:copy_(snap.var)
            o2:load_state(saved)
            ms.set_rng_state(snap.rng)
            for i = 6, 9 do o2:step(c2(i % 2 + 1, S)) end
            same(m:flat_parameters(), m2:flat_parameters(), label .. ': weights')
            same(m.modules[2].running_mean, m2.modules[2].running_mean, label .. ': running mean')
            assert.equal(opt.t, o2.t); assert.equal(opt.base.t, o2.base.t); assert.equal(opt.passes, o2.passes)
            if S ~= 1 then   -- and the same as unscaled
              local m3, c3 = mlp { bn = true, dropout = true, seed = 41 }
              local o3 = optim.SAM(m3, { base = optim.Adam { lr = 0.01, groups = grouped and { { kind = 'bias', lr_scale = 0.5 } } or nil },
                                         gradient_accumulation_steps = A, bn = bn,
                                         groups = grouped and { { match = '^1%.', rho = 0.1 } } or nil })
              ms.manual_seed(41)
              for i = 1, 9 do o3:step(c3(i % 2 + 1)) end
              local m4, c4, o4 = build()
              ms.manual_seed(41)
              for i = 1, 9 do o4:step(c4(i % 2 + 1, S)) end
              same(m3:flat_parameters(), m4:flat_parameters(), label .. ': scaled = unscaled')
            end
          end)
        end
      end
    end
  end
end)
