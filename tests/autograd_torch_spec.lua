-- ms.autograd against PyTorch: a few hundred random programs (compositions of 2-6
-- differentiable ops over small float64 inputs, some non-contiguous) generated with their
-- loss and torch's gradients by scripts/fixtures/autograd_fixtures.py
-- (tests/fixtures/autograd_fixtures.lua; its header describes the encoding). Each is
-- replayed under ms.autograd.grad: the loss and every parameter's gradient must agree
-- to 1e-10 relative to the tensor's largest magnitude; the same program outside the tape
-- must give the same loss. The last 40 programs have tied inputs (the conventions where
-- a choice exists: ties of max/min/maximum/minimum/clamp, abs/relu at 0, norm/std at 0).
local ms = require 'moonstep'
local F = ms.nn.functional
local decode = require 'fixture_decode'
local programs = require 'fixtures.autograd_fixtures'

local D = { dtype = 'float64' }
local I64 = { dtype = 'int64' }

local function weights(shape)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  local w = {}
  for i = 0, n - 1 do w[i + 1] = ((37 * i) % 11 - 5) / 4 end
  return ms.tensor(w, D):view(#shape > 0 and shape or {})
end

-- The inputs: parameters (in order) and constants, as the fixture describes them.
local function make_input(spec)
  local base = ms.tensor(spec.v, D)
  if #spec.v == 1 and #(spec.base or spec.shape) == 0 then base = base:view({}) else base = base:view(spec.base or spec.shape) end
  if spec.nc == 't' then return base:transpose(base:dim() - 1, base:dim()) end
  if spec.nc == 'n' then return base:narrow(1, 2, spec.shape[1]) end
  return base
end

local BIN_OP = {
  add = function(a, b) return a + b end, sub = function(a, b) return a - b end,
  mul = function(a, b) return a * b end, div = function(a, b) return a / b end,
  pow = function(a, b) return a ^ b end,
}
local UN = {
  gelu_tanh = function(x) return x:gelu('tanh') end,
  leaky_relu = function(x) return x:leaky_relu(0.2) end,
}

local function idx_tensor(list, shape)
  return ms.tensor(list, I64):view(shape)
end

local function exec(op, R, inputs)
  local k = op.op
  local x = op.x and R[op.x]
  if k == 'input' then return inputs[op.k] end
  if k == 'un' then return UN[op.f] and UN[op.f](x) or x[op.f](x) end
  if k == 'bin' then
    local a, b = R[op.a], R[op.b]
    if op.alpha then return a[op.f](a, b, op.alpha) end
    if op.form == 'o' then return BIN_OP[op.f](a, b) end
    if op.form == 'f' then return ms[op.f](a, b) end
    return a[op.f](a, b)
  end
  if k == 'scal' then
    local c = op.c
    if op.left then return BIN_OP[op.f](c, x) end
    if op.form == 'o' and BIN_OP[op.f] then return BIN_OP[op.f](x, c) end
    return x[op.f](x, c)
  end
  if k == 'clamp' then return x:clamp(op.lo, op.hi) end
  if k == 'where' then
    local cond = R[op.c]:gt(op.thr)
    local y = op.num or R[op.y]
    if op.swap then return ms.where(cond, y, x) end
    return ms.where(cond, x, y)
  end
  if k == 'softmax' or k == 'log_softmax' then
    if op.form == 'F' then return F[k](x, op.dim) end
    return x[k](x, op.dim)
  end
  if k == 'red' then
    if op.dim == nil then return x[op.f](x) end
    return (x[op.f](x, op.dim, op.keepdim))
  end
  if k == 'norm' then return x:norm(op.p, op.dim, op.keepdim) end
  if k == 'var' or k == 'std' then return x[k](x, op.dim, op.unbiased, op.keepdim) end
  if k == 'reshape' then
    if op.form == 'view' and x:is_contiguous() then return x:view(op.shape) end
    return x:reshape(op.shape)
  end
  if k == 't' then return x:t() end
  if k == 'transpose' then return x:transpose(op.d1, op.d2) end
  if k == 'permute' then
    if op.table then return x:permute(op.order) end
    return x:permute(unpack(op.order))
  end
  if k == 'narrow' then return x:narrow(op.dim, op.start, op.len) end
  if k == 'select' then return x:select(op.dim, op.i) end
  if k == 'unsqueeze' then return x:unsqueeze(op.dim) end
  if k == 'squeeze' then return x:squeeze(op.dim) end
  if k == 'expand' then return x:expand(unpack(op.sizes)) end
  if k == 'slice' then return x[op.spec] end
  if k == 'index_select' then
    return x:index_select(op.dim, op.table and op.idx or ms.tensor(op.idx, I64))
  end
  if k == 'gather' then return x:gather(op.dim, idx_tensor(op.idx, op.ishape)) end
  if k == 'cat' then
    local list = {}
    for i, r in ipairs(op.xs) do list[i] = R[r] end
    return ms.cat(list, op.dim)
  end
  if k == 'dot' then return ms.dot(R[op.a], R[op.b]) end
  if k == 'matmul' or k == 'bmm' then
    local o = (op.ta or op.tb or op.alpha) and { transpose_a = op.ta, transpose_b = op.tb, alpha = op.alpha } or nil
    return ms[k](R[op.a], R[op.b], o)
  end
  if k == 'cumsum' then return x:cumsum(op.dim) end
  if k == 'sort' then
    if op.dim == nil then return (x:sort({ descending = op.desc })) end
    return (x:sort(op.dim, { descending = op.desc }))
  end
  if k == 'topk' then return (x:topk(op.k, op.dim, { largest = op.largest })) end
  if k == 'linear' then return F.linear(x, R[op.w], op.b and R[op.b]) end
  if k == 'conv2d' then
    if op.positional then
      return F.conv2d(x, R[op.w], op.b and R[op.b], op.stride, op.padding, op.dilation, op.groups)
    end
    local o = { stride = op.stride, padding = op.padding, dilation = op.dilation, groups = op.groups }
    if op.b then return F.conv2d(x, R[op.w], R[op.b], o) end
    return F.conv2d(x, R[op.w], o)
  end
  if k == 'max_pool2d' then
    return F.max_pool2d(x, op.k, { stride = op.stride, padding = op.padding, ceil_mode = op.ceil })
  end
  if k == 'avg_pool2d' then
    return F.avg_pool2d(x, op.k, { stride = op.stride, padding = op.padding, ceil_mode = op.ceil,
                                   count_include_pad = op.cip, divisor_override = op.div })
  end
  if k == 'mse' then return F.mse_loss(x, R[op.y], { reduction = op.red }) end
  if k == 'bce' then
    return F.binary_cross_entropy_with_logits(x, R[op.y], { reduction = op.red, weight = op.w and R[op.w],
                                                            pos_weight = op.pw and R[op.pw] })
  end
  if k == 'ce' or k == 'nll' then
    local t = idx_tensor(op.t, op.tshape)
    local o = { reduction = op.red, weight = op.w and R[op.w], ignore_index = op.ig, label_smoothing = op.ls }
    if k == 'ce' then return F.cross_entropy(x, t, o) end
    return F.nll_loss(x, t, o)
  end
  error('autograd_torch_spec: unknown op ' .. tostring(k))
end

-- The program as a function of its parameter list.
local function program_fn(prog)
  return function(params, consts)
    local inputs, pi, ci = {}, 0, 0
    for k, spec in ipairs(prog.inputs) do
      if spec.const then ci = ci + 1; inputs[k] = consts[ci] else pi = pi + 1; inputs[k] = params[pi] end
    end
    local R = {}
    for i, op in ipairs(prog.ops) do R[i] = exec(op, R, inputs) end
    local out = R[#R]
    if type(out) == 'number' then return out end                    -- (off the tape)
    if out:dim() == 0 then return out end
    return (out * weights(out:shape())):sum()
  end
end

local function close(a, b, tol)
  return math.abs(a - b) <= tol
end

describe('ms.autograd against PyTorch (random programs, tests/fixtures/autograd_fixtures.lua)', function()
  it('has a few hundred programs covering every op kind', function()
    assert.is_true(#programs >= 200)
    local kinds = {}
    for _, p in ipairs(programs) do for _, op in ipairs(p.ops) do kinds[op.op] = true end end
    for _, k in ipairs { 'un', 'bin', 'scal', 'clamp', 'where', 'softmax', 'log_softmax', 'red', 'norm',
                         'var', 'std', 'reshape', 'transpose', 'permute', 'narrow', 'select', 'unsqueeze',
                         'squeeze', 'expand', 'slice', 'index_select', 'gather', 'cat', 'matmul', 'bmm',
                         'dot', 'cumsum', 'sort', 'topk', 'linear', 'conv2d', 'max_pool2d', 'avg_pool2d',
                         'ce', 'nll', 'mse', 'bce' } do
      assert(kinds[k], 'no program uses ' .. k)
    end
  end)

  it('every program: the loss and the gradients equal torch\'s (1e-10 relative)', function()
    local failures = {}
    for pi, prog in ipairs(programs) do
      local params, consts = {}, {}
      for _, spec in ipairs(prog.inputs) do
        local t = make_input(spec)
        if spec.const then consts[#consts + 1] = t else params[#params + 1] = t end
      end
      local f = program_fn(prog)
      local want_loss = decode(prog.loss, 'float64')[1]
      local ok, grads, loss = pcall(ms.autograd.grad(f), params, consts)
      if not ok then
        failures[#failures + 1] = ('program %d: %s'):format(pi, tostring(grads))
      else
        local bad = nil
        if not close(loss, want_loss, 1e-10 * math.max(1, math.abs(want_loss))) then
          bad = ('loss %.17g, torch %.17g'):format(loss, want_loss)
        end
        -- off the tape (a full reduction there is a Lua number: the programs where one
        -- feeds another op are skipped)
        local pok, plain = pcall(ms.no_grad, f, params, consts)
        if pok and type(plain) ~= 'number' then plain = plain:item() end
        if pok and not bad and not close(plain, want_loss, 1e-10 * math.max(1, math.abs(want_loss))) then
          bad = ('loss off the tape %.17g, torch %.17g'):format(plain, want_loss)
        end
        for j = 1, #params do
          if bad then break end
          local want = decode(prog.grads[j], 'float64')
          local got = grads[j]:contiguous():reshape(-1)
          if got:numel() ~= #want then bad = ('parameter %d: %d gradient elements, torch %d'):format(j, got:numel(), #want) break end
          local scale = 0
          for i = 1, #want do scale = math.max(scale, math.abs(want[i])) end
          for i = 1, #want do
            local gi = got:get(i)
            if not close(gi, want[i], 1e-10 * math.max(scale, 1e-3)) then
              bad = ('parameter %d element %d: ms.autograd %.17g, torch %.17g'):format(j, i, gi, want[i])
              break
            end
          end
        end
        if bad then
          local names = {}
          for _, op in ipairs(prog.ops) do if op.op ~= 'input' then names[#names + 1] = op.op .. (op.f and ('.' .. op.f) or '') end end
          failures[#failures + 1] = ('program %d (%s): %s'):format(pi, table.concat(names, ' '), bad)
        end
      end
    end
    assert(#failures == 0, #failures .. ' of ' .. #programs .. ' programs disagree with torch:\n' ..
           table.concat(failures, '\n'))
  end)
end)
