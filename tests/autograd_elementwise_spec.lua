-- ms.autograd's rules of the elementwise ops (autograd/rules_elementwise.lua): every op
-- against central finite differences in float64 (tests/autograd_helper.lua) on random
-- shapes, broadcasting, non-contiguous views and numbers mixed with tensors; the
-- metamethods; PyTorch's values at the special points (constants below, each with the
-- torch expression that gave it: /usr/bin/python3, torch 2.x, float64); float32 against
-- float64; CUDA against CPU when a GPU is present.
local ms = require 'moonstep'
local H = require 'helper'
local AG = require 'autograd_helper'
local A = require 'moonstep.autograd.tape'
local ag = ms.autograd

local f64 = { dtype = 'float64' }
local function randn(shape) return ms.randn(shape, f64) end
-- values in [lo, lo + 1.5): away from a kink or a pole at 0
local function pos(shape, lo) return ms.rand(shape, f64):mul(1.5):add(lo or 0.5) end
-- the gradient of sum(f(x)) at x (a table of numbers), as a flat list
local function grad_at(f, ...)
  local xs = {}
  for i, v in ipairs { ... } do xs[i] = ms.tensor(v, f64) end
  local g = ag.grad(function(p) return f(unpack(p)):sum() end)(xs)
  local out = {}
  for i = 1, #xs do out[i] = g[i]:totable() end
  return out
end
local function same(want, got, what)
  assert(#want == #got, what .. ': length')
  for i = 1, #want do
    local w, v = want[i], got[i]
    assert(w == v or (w ~= w and v ~= v), ('%s: element %d is %s, torch gives %s'):format(what, i, v, w))
  end
end

-- The views a unary op is checked on: contiguous, transposed, narrowed, 0-d.
local function views(make)
  return {
    contiguous = make({ 3, 4 }),
    transposed = make({ 4, 3 }):t(),
    narrowed = make({ 3, 7 }):narrow(2, 2, 4),
    ['0-d'] = make({}),
  }
end

local INF = math.huge
local UNARY = {   -- name, f(x), input maker
  { 'neg', function(x) return x:neg() end, randn },
  { 'abs', function(x) return x:abs() end, randn },
  { 'exp', function(x) return x:exp() end, randn },
  { 'log', function(x) return x:log() end, pos },
  { 'sqrt', function(x) return x:sqrt() end, pos },
  { 'rsqrt', function(x) return x:rsqrt() end, pos },
  { 'tanh', function(x) return x:tanh() end, randn },
  { 'sigmoid', function(x) return x:sigmoid() end, randn },
  { 'relu', function(x) return x:relu() end, randn },
  { 'square', function(x) return x:square() end, randn },
  { 'reciprocal', function(x) return x:reciprocal() end, pos },
  { 'erf', function(x) return x:erf() end, randn },
  { 'gelu', function(x) return x:gelu() end, randn },
  { "gelu 'tanh'", function(x) return x:gelu('tanh') end, randn },
  { 'leaky_relu', function(x) return x:leaky_relu() end, randn },
  { 'leaky_relu(0.2)', function(x) return x:leaky_relu(0.2) end, randn },
  { 'clamp(-0.5, 0.5)', function(x) return x:clamp(-0.5, 0.5) end, randn },
  { 'clamp(nil, 0.3)', function(x) return x:clamp(nil, 0.3) end, randn },
  { 'clamp(-0.3)', function(x) return x:clamp(-0.3) end, randn },
  { 'pow 2', function(x) return x:pow(2) end, randn },
  { 'pow 3', function(x) return x:pow(3) end, randn },
  { 'pow 1', function(x) return x:pow(1) end, randn },
  { 'pow 0', function(x) return x:pow(0) end, randn },
  { 'pow 0.5', function(x) return x:pow(0.5) end, pos },
  { 'pow -1.5', function(x) return x:pow(-1.5) end, pos },
  { 'maximum 0.1', function(x) return x:maximum(0.1) end, randn },
  { 'minimum 0.1', function(x) return x:minimum(0.1) end, randn },
  { 'add 2', function(x) return x:add(2) end, randn },
  { 'sub 2 alpha 3', function(x) return x:sub(2, 3) end, randn },
  { 'mul 3', function(x) return x:mul(3) end, randn },
  { 'div 3', function(x) return x:div(3) end, randn },
  { 'lerp(x^2, 0.3)', function(x) return x:lerp(x:square(), 0.3) end, randn },
}

describe('ms.autograd elementwise rules: unary ops against finite differences', function()
  before_each(function() ms.manual_seed(21) end)
  for _, case in ipairs(UNARY) do
    it(case[1] .. ' on contiguous, transposed, narrowed and 0-d inputs', function()
      for what, x in pairs(views(case[3])) do
        AG.check_op(case[2], { x }, { what = case[1] .. ' ' .. what })
      end
    end)
  end

  it('the free functions ms.name(t, ...) share the rules', function()
    local x = randn({ 2, 5 })
    for _, f in ipairs { ms.exp, ms.tanh, ms.sigmoid, ms.relu, ms.erf, ms.square, ms.neg, ms.abs } do
      AG.check_op(f, { x })
    end
    AG.check_op(ms.gelu, { x, 'tanh' })
    AG.check_op(ms.leaky_relu, { x, 0.3 })
    AG.check_op(ms.clamp, { x, -0.4, 0.4 })
    AG.check_op(ms.sqrt, { pos({ 2, 5 }) })
    AG.check_op(ms.log_softmax, { x, 1 })
  end)
end)

describe('ms.autograd elementwise rules: softmax and log_softmax', function()
  before_each(function() ms.manual_seed(22) end)
  for _, name in ipairs { 'softmax', 'log_softmax' } do
    it(name .. ' over every dim, negative dims, the default (last) dim, views', function()
      local x = randn({ 2, 3, 4 })
      for _, d in ipairs { 1, 2, 3, -1, -2, -3 } do
        AG.check_op(function(t) return t[name](t, d) end, { x }, { what = name .. ' dim ' .. d })
      end
      AG.check_op(function(t) return t[name](t) end, { x })
      AG.check_op(function(t) return t[name](t, 1) end, { randn({ 5, 3 }):t() })
      AG.check_op(function(t) return t[name](t) end, { randn({ 3, 9 }):narrow(2, 3, 5) })
      AG.check_op(function(t) return t[name](t) end, { randn({ 6 }) })
    end)
  end
end)

-- a, b pairs of shapes: same, broadcast both ways, 0-d with a matrix, a number
local PAIRS = {
  { 'same shape', { 3, 4 }, { 3, 4 } },
  { '[3,1,4] with [5,4]', { 3, 1, 4 }, { 5, 4 } },
  { '[5,4] with [3,1,4]', { 5, 4 }, { 3, 1, 4 } },
  { '0-d with [2,3]', {}, { 2, 3 } },
  { '[2,3] with 0-d', { 2, 3 }, {} },
  { '[4,1] with [1,3]', { 4, 1 }, { 1, 3 } },
}
local BINARY = {   -- name, f(a, b), maker of a, maker of b
  { 'add', function(a, b) return a:add(b) end, randn, randn },
  { 'add alpha', function(a, b) return a:add(b, -2.5) end, randn, randn },
  { 'sub', function(a, b) return a:sub(b) end, randn, randn },
  { 'sub alpha', function(a, b) return a:sub(b, 0.5) end, randn, randn },
  { 'mul', function(a, b) return a:mul(b) end, randn, randn },
  { 'div', function(a, b) return a:div(b) end, randn, pos },
  { 'pow', function(a, b) return a:pow(b) end, pos, randn },
  { 'maximum', function(a, b) return a:maximum(b) end, randn, randn },
  { 'minimum', function(a, b) return a:minimum(b) end, randn, randn },
}

describe('ms.autograd elementwise rules: binary ops with broadcasting', function()
  before_each(function() ms.manual_seed(23) end)
  for _, case in ipairs(BINARY) do
    it(case[1] .. ': shapes broadcast both ways, 0-d, views, one side untracked', function()
      for _, p in ipairs(PAIRS) do
        AG.check_op(case[2], { case[3](p[2]), case[4](p[3]) }, { what = case[1] .. ' ' .. p[1] })
      end
      -- non-contiguous operands
      local a, b = case[3]({ 4, 3 }):t(), case[4]({ 3, 6 }):narrow(2, 2, 4)
      AG.check_op(case[2], { a, b }, { what = case[1] .. ' views' })
      -- only one argument differentiated (the other a constant tensor)
      AG.check_op(case[2], { case[3]({ 2, 3 }), case[4]({ 3 }) }, { wrt = { 1 } })
      AG.check_op(case[2], { case[3]({ 2, 3 }), case[4]({ 3 }) }, { wrt = { 2 } })
    end)
  end

  it('the same tensor on both sides accumulates both gradients (maximum(x, x): halves)', function()
    local x = randn({ 3, 2 })
    for _, c in ipairs(BINARY) do
      if c[1] ~= 'pow' and c[1] ~= 'div' then AG.check_op(function(t) return c[2](t, t) end, { x }) end
    end
    local g = ag.grad(function(p) return p:maximum(p):sum() end)(x)
    assert.are.same({ { 1, 1 }, { 1, 1 }, { 1, 1 } }, g:totable())
  end)
end)

describe('ms.autograd elementwise rules: fused ternary ops and where', function()
  before_each(function() ms.manual_seed(24) end)

  it('addcmul and addcdiv, with and without value, broadcasting', function()
    local function addcmul(t, a, b) return t:addcmul(a, b) end
    local function addcmul_v(t, a, b) return t:addcmul(-0.7, a, b) end
    local function addcmul_ms(t, a, b) return ms.addcmul(t, 2, a, b) end
    local function addcdiv(t, a, b) return t:addcdiv(a, b) end
    local function addcdiv_v(t, a, b) return t:addcdiv(1.5, a, b) end
    local function addcdiv_ms(t, a, b) return ms.addcdiv(t, -2, a, b) end
    AG.check_op(addcmul, { randn({ 3, 4 }), randn({ 3, 4 }), randn({ 3, 4 }) })
    AG.check_op(addcmul_v, { randn({ 4 }), randn({ 3, 1 }), randn({ 3, 4 }) })
    AG.check_op(addcmul_ms, { randn({}), randn({ 4, 3 }):t(), randn({ 4 }) })
    AG.check_op(addcdiv, { randn({ 3, 4 }), randn({ 3, 4 }), pos({ 3, 4 }) })
    AG.check_op(addcdiv_v, { randn({ 2, 1, 4 }), randn({ 3, 1 }), pos({ 4 }) })
    AG.check_op(addcdiv_ms, { randn({ 3, 4 }), randn({ 3, 4 }), pos({ 3, 4 }) }, { wrt = { 3 } })
  end)

  it('lerp with a number weight and a tensor weight, broadcasting', function()
    local function lerp(t, e, w) return t:lerp(e, w) end
    AG.check_op(lerp, { randn({ 3, 4 }), randn({ 3, 4 }), 0.3 })
    AG.check_op(lerp, { randn({ 3, 1 }), randn({ 4 }), -1.25 })
    AG.check_op(lerp, { randn({ 3, 4 }), randn({ 3, 4 }), randn({ 3, 4 }) })
    AG.check_op(ms.lerp, { randn({ 4 }), randn({ 2, 1 }), randn({ 4, 3 }):t():narrow(1, 1, 2) })
    AG.check_op(lerp, { randn({ 3, 4 }), randn({ 3, 4 }), randn({}) }, { wrt = { 3 } })
  end)

  it('where(cond, x, y): tensors, numbers, broadcasting; cond carries no gradient', function()
    local cond = randn({ 3, 4 }):gt(0)
    AG.check_op(ms.where, { cond, randn({ 3, 4 }), randn({ 3, 4 }) }, { wrt = { 2, 3 } })
    AG.check_op(ms.where, { cond, randn({ 4 }), randn({ 3, 1 }) }, { wrt = { 2, 3 } })
    AG.check_op(ms.where, { cond, randn({ 3, 4 }), 2.5 }, { wrt = { 2 } })
    AG.check_op(ms.where, { cond, -1, randn({}) }, { wrt = { 3 } })
    -- a condition of other values than 0/1 (nonzero is true), and negative values
    local c2 = ms.tensor({ { -2, 0, 3 } }, f64)
    local g = ag.grad(function(p) return ms.where(c2, p[1], p[2]):sum() end)
    g = g({ randn({ 2, 3 }), randn({ 2, 3 }) })
    assert.are.same({ { 1, 0, 1 }, { 1, 0, 1 } }, g[1]:totable())
    assert.are.same({ { 0, 1, 0 }, { 0, 1, 0 } }, g[2]:totable())
  end)
end)

describe('ms.autograd elementwise rules: the metamethods', function()
  before_each(function() ms.manual_seed(25) end)

  it('t + t, t - t, t * t, t / t with broadcasting', function()
    local P = { a = randn({ 3, 4 }), b = pos({ 4 }) }
    AG.check(function(p) return ((p.a + p.b) * (p.a - p.b) / p.b):sum() end, P)
    AG.check(function(p) return (p.a * p.a * p.b):sum() end, P)
  end)

  it('numbers on the left: 2 + t, 2 - t, 2 * t, 2 / t, 2 ^ t, 0 ^ t', function()
    local x = pos({ 3, 4 })
    AG.check_op(function(t) return 2 + t end, { x })
    AG.check_op(function(t) return 2 - t end, { x })
    AG.check_op(function(t) return 2 * t end, { x })
    AG.check_op(function(t) return 2 / t end, { x })
    AG.check_op(function(t) return 2 ^ t end, { randn({ 3, 4 }) })
    AG.check_op(function(t) return 0.3 ^ t end, { randn({ 4, 3 }):t() })
    AG.check_op(function(t) return 0 ^ t end, { pos({ 3 }) })
    AG.check_op(function(t) return -1.5 / t end, { pos({ 2, 3 }):narrow(2, 2, 2) })
  end)

  it('numbers on the right and unary minus: t + 1, t - 3, t * 2, t / 3, t ^ 2, t ^ 0.5, -t', function()
    local x = pos({ 3, 4 })
    for _, f in ipairs {
      function(t) return t + 1 end, function(t) return t - 3 end, function(t) return t * 2 end,
      function(t) return t / 3 end, function(t) return t ^ 2 end, function(t) return t ^ 0.5 end,
      function(t) return -t end, function(t) return (-t) ^ 3 end,
    } do
      AG.check_op(f, { x })
    end
  end)

  it('a composite: a Rosenbrock function', function()
    local xy = ms.tensor({ -1.2, 1 }, f64)
    local function rosen(p)
      local x, y = p:narrow(1, 1, 1), p:narrow(1, 2, 1)
      return ((1 - x) ^ 2 + 100 * (y - x ^ 2) ^ 2):sum()
    end
    AG.check(rosen, xy)
    local g = ag.grad(rosen)(xy)
    -- d/dx = -2 (1 - x) - 400 x (y - x^2), d/dy = 200 (y - x^2)
    H.assert_close(g, { -2 * 2.2 - 400 * -1.2 * (1 - 1.44), 200 * (1 - 1.44) }, 1e-12)
  end)
end)

describe('ms.autograd elementwise rules: PyTorch values at the special points', function()
  it('relu, abs, leaky_relu at 0', function()
    -- torch.relu(x).sum().backward(), x = [-1., 0., 1.]: x.grad = [0, 0, 1]
    same({ 0, 0, 1 }, grad_at(function(x) return x:relu() end, { -1, 0, 1 })[1], 'relu')
    -- torch.abs(x): [-1, 0, 1]
    same({ -1, 0, 1 }, grad_at(function(x) return x:abs() end, { -1, 0, 1 })[1], 'abs')
    -- F.leaky_relu(x, 0.01): [0.01, 0.01, 1]
    same({ 0.01, 0.01, 1 }, grad_at(function(x) return x:leaky_relu(0.01) end, { -1, 0, 1 })[1],
         'leaky_relu')
    -- sign: no gradient (torch gives zeros; moonstep marks it non-differentiable)
    same({ 0, 0, 0 }, grad_at(function(x) return x:sign():add(x:mul(0)) end, { -1, 0, 1 })[1], 'sign')
  end)

  it('clamp at its bounds (inclusive)', function()
    local x = { -2, -1, 0, 1, 2 }
    -- torch.clamp(x, -1., 1.), x = [-2., -1., 0., 1., 2.]: [0, 1, 1, 1, 0]
    same({ 0, 1, 1, 1, 0 }, grad_at(function(t) return t:clamp(-1, 1) end, x)[1], 'clamp')
    -- torch.clamp(x, min=-1.): [0, 1, 1, 1, 1]
    same({ 0, 1, 1, 1, 1 }, grad_at(function(t) return t:clamp(-1) end, x)[1], 'clamp min')
    -- torch.clamp(x, max=1.): [1, 1, 1, 1, 0]
    same({ 1, 1, 1, 1, 0 }, grad_at(function(t) return t:clamp(nil, 1) end, x)[1], 'clamp max')
    -- torch.clamp(x, 0.5, 0.5), x = [0., 0.5, 1.]: [0, 1, 0]
    same({ 0, 1, 0 }, grad_at(function(t) return t:clamp(0.5, 0.5) end, { 0, 0.5, 1 })[1],
         'clamp min == max')
  end)

  it('maximum and minimum split ties half and half', function()
    -- torch.maximum(a, b), a = [1., 2., 3.], b = [1., 1., 4.]: a.grad [0.5, 1, 0], b.grad [0.5, 0, 1]
    local g = grad_at(function(a, b) return a:maximum(b) end, { 1, 2, 3 }, { 1, 1, 4 })
    same({ 0.5, 1, 0 }, g[1], 'maximum a'); same({ 0.5, 0, 1 }, g[2], 'maximum b')
    -- torch.minimum(a, b): a.grad [0.5, 0, 1], b.grad [0.5, 1, 0]
    g = grad_at(function(a, b) return a:minimum(b) end, { 1, 2, 3 }, { 1, 1, 4 })
    same({ 0.5, 0, 1 }, g[1], 'minimum a'); same({ 0.5, 1, 0 }, g[2], 'minimum b')
    -- torch.maximum(a, torch.tensor(0.)), a = [-1., 0., 1.]: [0, 0.5, 1]; torch.minimum: [1, 0.5, 0]
    same({ 0, 0.5, 1 }, grad_at(function(a) return a:maximum(0) end, { -1, 0, 1 })[1], 'maximum 0')
    same({ 1, 0.5, 0 }, grad_at(function(a) return a:minimum(0) end, { -1, 0, 1 })[1], 'minimum 0')
    same({ 0, 0.5, 1 }, grad_at(function(a) return a:maximum(ms.zeros({}, f64)) end, { -1, 0, 1 })[1],
         'maximum 0-d')
    -- torch.maximum(a, b), a = [inf], b = [inf]: a.grad [0.5], b.grad [0.5]
    g = grad_at(function(a, b) return a:maximum(b) end, { INF }, { INF })
    same({ 0.5 }, g[1], 'maximum inf a'); same({ 0.5 }, g[2], 'maximum inf b')
  end)

  it('sqrt, rsqrt, log, reciprocal at 0', function()
    -- torch.sqrt(x), x = [0., 4.]: [inf, 0.25]
    same({ INF, 0.25 }, grad_at(function(x) return x:sqrt() end, { 0, 4 })[1], 'sqrt')
    -- torch.rsqrt(x): [-inf, -0.0625]
    same({ -INF, -0.0625 }, grad_at(function(x) return x:rsqrt() end, { 0, 4 })[1], 'rsqrt')
    -- torch.log(x): [inf, 0.25]
    same({ INF, 0.25 }, grad_at(function(x) return x:log() end, { 0, 4 })[1], 'log')
    -- torch.reciprocal(x): [-inf, -0.0625]; 2. / x: [-inf, -0.5]
    same({ -INF, -0.0625 }, grad_at(function(x) return x:reciprocal() end, { 0, 4 })[1], 'reciprocal')
    same({ -INF, -0.5 }, grad_at(function(x) return 2 / x end, { 0, 2 })[1], '2 / x')
  end)

  it('pow with a zero (and a negative) base', function()
    local x = { 0, 2, -2 }
    local NAN = 0 / 0
    -- torch.pow(x, e), x = [0., 2., -2.]:
    --   e = 2: [0, 4, -4]; 0.5: [inf, 0.35355339059327373, nan]; 0: [0, 0, 0];
    --   -1: [-inf, -0.25, -0.25]; 1: [1, 1, 1]; 3: [0, 12, 12]
    for _, c in ipairs {
      { 2, { 0, 4, -4 } }, { 0.5, { INF, 0.35355339059327373, NAN } }, { 0, { 0, 0, 0 } },
      { -1, { -INF, -0.25, -0.25 } }, { 1, { 1, 1, 1 } }, { 3, { 0, 12, 12 } },
    } do
      local got = grad_at(function(t) return t:pow(c[1]) end, x)[1]
      for i = 1, 3 do   -- (to 1 ulp: a^(b-1) is computed by pow)
        local w, v = c[2][i], got[i]
        assert(w == v or (w ~= w and v ~= v) or math.abs(w - v) <= 1e-15 * math.abs(w),
               ('pow %s: element %d is %s, torch gives %s'):format(c[1], i, v, w))
      end
    end
    -- torch.pow(a, b), a = [0., 0., 0., 2., 0., -2.], b = [2., 0., -1., 0., 0.5, 3.]:
    --   a.grad [0, 0, -inf, 0, inf, 12], b.grad [0, 0, -inf, 0.6931471805599453, 0, nan]
    local g = grad_at(function(a, b) return a:pow(b) end, { 0, 0, 0, 2, 0, -2 }, { 2, 0, -1, 0, 0.5, 3 })
    same({ 0, 0, -INF, 0, INF, 12 }, g[1], 'pow a')
    same({ 0, 0, -INF, 0.6931471805599453, 0, NAN }, g[2], 'pow b')
    -- 0. ** b, b = [2., 0., -1.]: [0, 0, -inf];
    -- 2. ** b: [2.772588722239781, 0.6931471805599453, 0.34657359027997264]
    same({ 0, 0, -INF }, grad_at(function(b) return 0 ^ b end, { 2, 0, -1 })[1], '0 ^ b')
    H.assert_close(ms.tensor(grad_at(function(b) return 2 ^ b end, { 2, 0, -1 })[1], f64),
                   { 2.772588722239781, 0.6931471805599453, 0.34657359027997264 }, 1e-15, '2 ^ b')
  end)
end)

-- Every op of the list, as f(p) of a table of tensors, for the float32 and CUDA cases.
local function all_ops()
  local OPS = {}
  for _, c in ipairs(UNARY) do
    OPS[#OPS + 1] = { c[1], function(p) return c[2](p[1]) end, { c[3]({ 3, 5 }) } }
  end
  for _, c in ipairs(BINARY) do
    local args = { c[3]({ 3, 1, 5 }), c[4]({ 4, 5 }) }
    OPS[#OPS + 1] = { c[1], function(p) return c[2](p[1], p[2]) end, args }
  end
  for _, name in ipairs { 'softmax', 'log_softmax' } do
    OPS[#OPS + 1] = { name, function(p) return p[1][name](p[1], 1) end, { randn({ 3, 5 }) } }
  end
  local cond = randn({ 3, 5 }):gt(0)
  local function r35() return randn({ 3, 5 }) end
  local more = {
    { 'addcmul', function(p) return p[1]:addcmul(0.5, p[2], p[3]) end, { r35(), randn({ 5 }), r35() } },
    { 'addcdiv', function(p) return p[1]:addcdiv(0.5, p[2], p[3]) end, { r35(), randn({ 5 }), pos({ 3, 5 }) } },
    { 'lerp', function(p) return p[1]:lerp(p[2], p[3]) end, { r35(), randn({ 5 }), r35() } },
    { 'where', function(p) return ms.where(p[4], p[1], p[2]) end, { r35(), randn({ 5 }), nil, cond } },
    { '2 - t, 2 / t, 2 ^ t', function(p) return (2 - p[1]) * (2 / p[1]) * (2 ^ p[1]) end, { pos({ 3, 5 }) } },
  }
  for _, c in ipairs(more) do OPS[#OPS + 1] = c end
  return OPS
end

-- Every op's gradients of sum(f(p) * r), r random in the output's shape, across dtypes or
-- devices (AG.agree_across: across = 'float32' or 'cuda'); the float64 CPU values of p
-- are the same on both sides (p[4], where's condition, and r are converted alike but not
-- differentiated).
local function every_op_agrees(tol, across)
  for _, case in ipairs(all_ops()) do
    local out = ag.no_grad(case[2], case[3])
    local r = ms.randn(out:shape(), f64)
    local leaves = {}
    for i = 1, 3 do if case[3][i] then leaves[#leaves + 1] = case[3][i] end end
    AG.agree_across(function(q, c) return (case[2]({ q[1], q[2], q[3], c[2] }) * c[1]):sum() end, leaves, tol,
                    { across = across, const = { r, case[3][4] }, what = case[1] })
  end
end

describe('ms.autograd elementwise rules: float32 and devices', function()
  before_each(function() ms.manual_seed(26) end)

  it('float32 gradients are close to float64 ones for every op', function()
    every_op_agrees(2e-5)
  end)

  AG.cuda_it(it, pending)('every op\'s gradient on CUDA equals the CPU one (float32)', function()
    every_op_agrees(1e-5, 'cuda')
  end)
end)

describe('ms.autograd elementwise rules: coverage', function()
  it('every elementwise op has a rule; comparisons and sign are non-differentiable', function()
    for _, name in ipairs { 'add', 'sub', 'mul', 'div', 'pow', 'neg', 'abs', 'exp', 'log', 'sqrt',
                            'rsqrt', 'tanh', 'sigmoid', 'relu', 'square', 'reciprocal', 'erf',
                            'gelu', 'leaky_relu', 'clamp', 'maximum', 'minimum', 'addcmul',
                            'addcdiv', 'lerp', 'where', 'softmax', 'log_softmax', 'radd', 'rsub',
                            'rmul', 'rdiv', 'rpow' } do
      assert(A.rules[name], 'no rule for ' .. name)
    end
    for _, name in ipairs { 'eq', 'ne', 'lt', 'le', 'gt', 'ge', 'sign' } do
      assert(A.nondiff[name], name .. ' is not marked non-differentiable')
    end
    -- a comparison of a tracked tensor is a constant
    local g = ag.grad(function(p) return (p:gt(0) * p):sum() end)(ms.tensor({ -1, 2 }, f64))
    assert.are.same({ 0, 1 }, g:totable())
  end)
end)
