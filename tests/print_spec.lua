-- Readable printing of what a user holds: datasets, optimizers (instances and classes),
-- schedules, and the REPL's printer using them.
local ms = require 'moonstep'
local repl = require 'moonstep.repl'
local optim, nn = ms.optim, ms.nn

local function model()
  ms.manual_seed(0)
  return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))   -- 15 + 8 = 23 parameters
end

local function closure(m)
  local x, y = ms.rand(5, 4), ms.tensor({ 1, 2, 1, 2, 1 }, 'int64')
  local crit = nn.CrossEntropyLoss()
  return function()
    local out = m:forward(x)
    local loss = crit:forward(out, y)
    m:backward(x, crit:backward(out, y))
    return loss
  end
end

local function find(text, ...)
  for _, frag in ipairs { ... } do
    assert(text:find(frag, 1, true), ('%q not in:\n%s'):format(frag, text))
  end
end

describe('tostring(dataset)', function()
  it('gives size, device, shapes, dtypes, statistics and whether x is normalized', function()
    local ds = ms.data.Dataset(ms.tensor({ { 1, 2, 3 }, { 4, 5, 6 }, { 7, 8, 9 }, { 1, 1, 1 } }),
                               ms.tensor({ 1, 2, 3, 10 }, 'int64'))
    local s = tostring(ds)
    find(s, 'Dataset: 4 examples on cpu', 'x  float32 [4,3]', 'mean 4, std', '(not normalized)', 'y  int64 [4]', 'labels 1..10')
    ds:normalize(ds:mean_std())
    find(tostring(ds), '(normalized)')
    assert.equal(s:match('^[^\n]*'), repl.show({ d = ds }):match('d = ([^\n]*)'))   -- inside a table: the first line
  end)

  it('describes an unusable dataset instead of raising', function()
    local ds = ms.data.Dataset(ms.zeros(2, 2), ms.zeros(2))
    ds.x:free()
    find(tostring(ds), 'Dataset (x is a freed float32 tensor [2,2]', 'not usable')
    ds.y = 'nonsense'
    find(tostring(ds), 'y is "nonsense"')
    find(tostring(ms.data.Dataset(ms.zeros(0, 3), ms.zeros(0))), 'Dataset: 0 examples', 'x  float32 [0,3]')
    find(tostring(ms.data.Dataset(ms.zeros(1, 3), ms.zeros(1))), 'Dataset: 1 example on cpu')
  end)
end)

describe('tostring(optimizer)', function()
  it('shows the class, step, passes, binding and the hyper-parameters in force', function()
    local opt = optim.SGD { lr = 0.1, momentum = 0.9 }
    local s = tostring(opt)
    find(s, 'optim.SGD  step 0, unbound', '\n  lr = 0.1, momentum = 0.9\n',
         'at defaults: dampening = 0, maximize = false, nesterov = false, weight_decay = 0')
    local m = model()
    opt = optim.Adam(m, { lr = 0.01, weight_decay = 1e-4, clip_norm = 1,
                          groups = { { match = 'bias', weight_decay = 0 } } })
    opt:step(closure(m))
    opt:step(closure(m))
    s = tostring(opt)
    find(s, 'optim.Adam  step 2, 2 passes, bound to 23 parameters (float32, cpu), 2 groups',
         'lr = 0.01, weight_decay = 0.0001', 'betas = {0.9, 0.999}', 'clip_norm = 1',
         'group 2: match = "bias", weight_decay = 0')
    assert.equal(s, repl.show(opt))
  end)

  it('evaluates a schedule at the current step, and names a plain function', function()
    local m = model()
    local opt = optim.SGD(m, { lr = ms.schedule.step { init = 0.1, step_size = 1, gamma = 0.5 } })
    find(tostring(opt), 'lr = schedule.step{init = 0.1, step_size = 1, gamma = 0.5} (0.1 at step 1)')
    opt:step(closure(m)); opt:step(closure(m)); opt:step(closure(m))
    find(tostring(opt), '(0.025 at step 3)')
    opt.lr = function(t) error('tostring must not call user functions') end
    find(tostring(opt), 'lr = a function of the step')
  end)

  it('nests the base of a wrapper, and shows skipped steps', function()
    local m = model()
    local opt = optim.SAM(m, { base = optim.SGD { lr = 0.05, momentum = 0.9 }, rho = 0.1 })
    opt:step(closure(m))
    local s = tostring(opt)
    find(s, 'optim.SAM  step 1, 2 passes, bound to 23 parameters', '\n  rho = 0.1\n',
         '\n  base: optim.SGD  step 1, bound to 23 parameters', '\n    lr = 0.05, momentum = 0.9\n')
    opt.skipped = 3
    find(tostring(opt), 'step 1 (3 skipped)')
  end)

  it('shows a chain\'s transforms and SPSA\'s options and gains', function()
    local c = optim.chain(optim.clip_global_norm(1), optim.scale_by_adam { b2 = 0.99 }, optim.scale_by_learning_rate(1e-3))
    find(tostring(c), 'optim.chain  step 0, unbound', 'transforms: clip_global_norm{max_norm = 1},',
         'scale_by_adam{b1 = 0.9, b2 = 0.99, eps = 1e-08, eps_root = 0}')
    local spsa = optim.SPSA(model(), optim.SPSA.preset('zeroth_learn', {}))
    find(tostring(spsa), 'optim.SPSA  step 0', 'options: ', 'n = 50', 'update = "adam"', 'gains: ', 'base: optim.Adam')
  end)

  it('describes every optimizer class, and never raises on a damaged optimizer', function()
    for name, cls in pairs(optim) do
      if type(cls) == 'table' and rawget(cls, 'defaults') and name ~= 'Optimizer' then
        local s = tostring(cls)
        find(s, ('optim.%s (an optimizer class'):format(cls.__name))
        if next(cls.defaults) then find(s, 'defaults: ') end
      end
    end
    local opt = optim.Adam(model(), {})
    opt.groups, opt.t, opt.arena = 'x', 'y', { flat = 'z' }
    local s = tostring(opt)
    find(s, 'optim.Adam  step "y"', 'not usable')
    opt.base = { t = 'garbage' }      -- not a real base: described as far as it goes
    assert.is_string(tostring(opt))
  end)
end)

describe('tostring(optimizer) on hostile states', function()
  it('never runs a user function inside a schedule, and evaluates moonstep\'s own', function()
    local S, calls = ms.schedule, 0
    local opt = optim.SGD(model(), { lr = S.join { schedules = { S.constant(0.1), function() calls = calls + 1; return 0.01 end },
                                                   boundaries = { 10 } } })
    opt.t = 20
    local s = tostring(opt)
    find(s, 'lr = schedule.join{schedules = {schedule.constant{value = 0.1}, a function}, boundaries = {10}}')
    assert.falsy(s:find(' at step ', 1, true), s)
    assert.equal(0, calls)
    opt.lr = S.cosine { T_max = 10 }
    opt.t = 5
    find(tostring(opt), '(0.6545084971874737 at step 5)')
  end)

  it('describes cycles, bad groups and a garbage base part by part, never raising', function()
    local opt = optim.SGD(model(), { lr = 0.1, momentum = 0.9 })
    local t = {}; t[1] = t
    opt.momentum = t
    opt.groups = { setmetatable({ lr = 1 }, { __index = function() error('no reads here') end }), 5 }
    opt.base = 'garbage'
    local s = tostring(opt)
    find(s, 'momentum = {{{...}}}', 'group 2: lr = 1', 'group 3: 5', 'base: "garbage" (not an optimizer)')
    assert.falsy(s:find('could not', 1, true), s)
    opt.base = opt
    find(tostring(opt), 'base: (the optimizer itself or one above it: a cycle)')
    local w = optim.SAM(model(), { base = optim.SGD { lr = 0.1 } })
    w.base = setmetatable({}, { __index = function() error('boom') end })
    find(tostring(w), 'optim.SAM  step 0', 'base: a table (not an optimizer)')
    -- a long list is cut; every line stays short
    opt.base, opt.momentum = nil, {}
    for i = 1, 1000 do opt.momentum[i] = i end
    s = tostring(opt)
    find(s, 'momentum = {1, 2, 3, 4, 5, 6, 7, 8, ... (1000 items)}')
    for line in s:gmatch('[^\n]+') do assert.truthy(#line <= 100, line) end
    -- a long schedule is cut, its value at the step kept
    local S, parts, bounds = ms.schedule, {}, {}
    for i = 1, 30 do parts[i] = S.cosine { T_max = i }; bounds[i] = i < 30 and i * 10 or nil end
    opt.lr, opt.t = S.join { schedules = parts, boundaries = bounds }, 1
    s = tostring(opt)
    find(s, '... (1 at step 1)')
    for line in s:gmatch('[^\n]+') do assert.truthy(#line <= 170, line) end
  end)
end)

describe('tostring(schedule)', function()
  it('prints its parameters, nested parts and a stateful schedule\'s state', function()
    local S = ms.schedule
    assert.equal('schedule.cosine{init = 1, T_max = 3, eta_min = 0}', tostring(S.cosine { T_max = 3 }))
    assert.equal('schedule.join{schedules = {schedule.constant{value = 1}, a function}, boundaries = {10}}',
                 tostring(S.join { schedules = { S.constant(1), function(t) return t end }, boundaries = { 10 } }))
    local p = S.reduce_on_plateau { init = 0.1, patience = 0 }
    p:observe(1); p:observe(2); p:observe(3)
    local s = tostring(p)
    find(s, 'schedule.reduce_on_plateau{init = 0.1,', '; state: ', 'current = 0.001', 'epochs = 3')
    assert.equal('}', s:sub(-1))
    find(tostring(S.warmup { steps = 2, schedule = p }), 'num_bad_epochs = 0}, steps = 2, init = 0}')
  end)
end)

describe('tostring(params)', function()
  it('counts the tensors and elements and shows the shapes; a freed arena still prints', function()
    local p = ms.params { ms.zeros(3), ms.zeros(2, 2, { dtype = 'float32' }) }
    assert.equal('params: 2 tensors, 7 elements (float32, cpu): [3], [2x2]', tostring(p))
    p.flat:free()
    assert.equal('params (freed)', tostring(p))
    -- damaged, not freed: said as it is
    local q = ms.params { ms.zeros(2) }
    q.entries = 5
    assert.equal('params (not usable: flat is a float32 tensor [2], entries is 5)', tostring(q))
  end)
end)
