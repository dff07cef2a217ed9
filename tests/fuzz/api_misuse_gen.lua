-- tests/fuzz/api_misuse_gen.lua — the call generator of the API-misuse fuzzer
-- (tests/fuzz/api_misuse.lua runs the calls).
--
-- The public API is discovered by walking the tables (ms, ms.Tensor, ms.nn, ms.optim,
-- ms.data, ... and the methods of sample instances), so a function added later is fuzzed
-- without touching this file. SIG holds the known signatures, used to make plausible but
-- wrong calls; anything not in it gets random arguments.
--
-- A call is Lua source: `setup` binds every argument (local a1 = ...; ...) and `call` is the
-- one expression or statement under test, so that an error raised while building an
-- argument is never blamed on the function, and `setup .. call` is a reproducer:
--   bin/moonstep -e "<setup> <call>"
-- Every value is generated as source text (only single-quoted strings, no $ or "), so a
-- call reads and replays as typed. Each call has its own random stream (seed, index): any
-- call replays alone.
local G = {}

local random, fmt, concat = math.random, string.format, table.concat
local function pick(list) return list[random(#list)] end
local function chance(p) return random() < p end

---------------------------------------------------------------------------------------
-- values, as source text
---------------------------------------------------------------------------------------
local BAD_NUMS = { '0', '-1', '-2', '2^31', '-2^31', '2^32', '2^40', '2^53', '2^63', '-2^63', '2^64',
                   '1e308', '-1e308', '0.5', '2.5', '-0.5', '1e-300', '0/0', '1/0', '-1/0', '-0.0', '9',
                   -- FFI numbers, as a script using the FFI has them at hand
                   '2LL', '-1LL', '0x7fffffffffffffffLL', '3ULL', "require('ffi').new('double', 1.5)",
                   "require('ffi').new('int32_t', 2)" }
local STRINGS = { "''", "'x'", "'float32'", "'float64'", "'int64'", "'uint8'", "'cpu'", "'cuda'", "'cuda:1'",
                  "'mean'", "'sum'", "'none'", "'same'", "'valid'", "'tanh'", "'reflect'", "'%'", "'['",
                  "'\\0'", "('a'):rep(1000)", "'1'", "'nan'", "'train'", "'test'", "'image'" }
local TABLES = { '{}', '{1, 2}', '{{1, 2}, {3}}', '{1, {2}}', '{0/0, 1/0}', '{true, false}', "{'a'}",
                 '(function() local t = {} t[1] = t return t end)()',
                 '(function() local t = {} t.x = t return t end)()',
                 '{{{{{{{{{{{{1}}}}}}}}}}}}', '{n = 1}', '{-1, 2}', '{2^40, 2^40}', '{1.5}',
                 '{1, 1, 1, 1, 1, 1, 1, 1, 1}', '{bogus_key = 1}', "{dtype = 'float64'}",
                 "{device = 'cuda'}", '{[0] = 1}', '{[1] = 1, [3] = 3}', '{2^63}', '{-2^63}' }
local MISC = { 'nil', 'true', 'false', 'function() end', 'function() return 1 end',
               'function() return 0/0 end', "function() return 'x' end", 'io.stdout', 'function(...) return ... end',
               'coroutine.create(function() end)', 'ms', 'ms.nn.ReLU()', 'ms.nn.Linear', 'ms.Tensor',
               "require('ffi').cast('void *', 0)", "require('ffi').new('int64_t[3]')", 'newproxy(true)',
               "require('ffi').new('ms_tensor')" }
-- Tensors that are legal but unusual: 0-d, size 0, views, freed, 8-d, other dtypes.
local ODD_TENSORS = {
  'ms.tensor(2.5)', 'ms.empty(0)', 'ms.empty(0, 3)', 'ms.empty(3, 0, 2)', 'ms.rand(3, 4):t()',
  'ms.ones(1, 3):expand(4, 3)', "ms.zeros(1, 'float64'):expand(100000)", 'ms.rand(5, 4):narrow(1, 2, 2)',
  'ms.rand(4, 5):select(2, 1)', 'ms.rand(2, 3, 4):transpose(1, 3)', 'ms.rand(1, 2, 4, 4):transpose(3, 4)',
  '(function(t) t:free() return t end)(ms.rand(2, 3))',
  '(function(t) t:free() return t end)(ms.rand(1, 2, 4, 4))',
  'ms.ones(1, 1, 1, 1, 1, 1, 1, 1)', "ms.ones(2, 3, 'int64')", "ms.ones(2, 3, 'uint8')",
  "ms.rand(2, 3, 'float64')", "ms.tensor({-2^63, 2^62}, 'int64')", "ms.tensor({0, 7}, 'int64')",
  'ms.full({2, 3}, 0/0)', 'ms.full({2, 3}, 1/0)', "ms.full({2}, 1e308, 'float64')",
  "ms.rand(1, 2, 4, 4, 'float64')", 'ms.rand(2, 3, 4, 5)', 'ms.rand(1, 1, 1, 1, 1)',
}
G.cuda = false   -- set by the driver: cuda tensors only where a GPU exists

local function small_shape(rank)
  local s = {}
  for d = 1, rank do s[d] = chance(0.05) and 0 or random(1, 4) end
  return s
end
local function rand_tensor(shape, dtype)
  local args = concat(shape, ', ')
  if dtype then args = (#shape > 0 and args .. ', ' or '') .. "'" .. dtype .. "'" end
  if #shape == 0 then return 'ms.tensor(' .. fmt('%.2f', random()) .. (dtype and ", '" .. dtype .. "'" or '') .. ')' end
  return 'ms.rand(' .. args .. ')'
end

local function tensor_src()
  local r = random()
  if r < 0.45 then return rand_tensor(small_shape(random(1, 3))) end
  if r < 0.55 then return rand_tensor(small_shape(random(1, 4)), pick { 'float64', 'float32' }) end
  if r < 0.6 and G.cuda then return rand_tensor(small_shape(random(1, 3))) .. ':cuda()' end
  if r < 0.65 then return "ms.tensor({" .. random(1, 3) .. ', ' .. random(1, 3) .. "}, 'int64')" end
  return pick(ODD_TENSORS)
end

-- Anything at all: the misuse pool.
local function any_src()
  local r = random()
  if r < 0.25 then return pick(BAD_NUMS) end
  if r < 0.33 then return tostring(random(1, 4)) end
  if r < 0.43 then return pick(STRINGS) end
  if r < 0.58 then return pick(TABLES) end
  if r < 0.68 then return pick(MISC) end
  return tensor_src()
end
G.any_src = any_src

-- Option keys used across the API; an options table draws some of them (values from the
-- misuse pool) and now and then an unknown key.
local OPTION_KEYS = {
  tensor = { 'dtype', 'device' }, matmul = { 'out', 'alpha', 'beta', 'transpose_a', 'transpose_b' },
  conv = { 'stride', 'padding', 'bias', 'dilation', 'groups', 'padding_mode' },
  pool = { 'stride', 'padding', 'dilation', 'ceil_mode', 'count_include_pad' },
  bn = { 'eps', 'momentum', 'affine', 'track_running_stats' },
  ln = { 'eps', 'elementwise_affine', 'bias' }, emb = { 'padding_idx' }, gelu = { 'approximate' },
  loss = { 'reduction', 'weight', 'ignore_index', 'label_smoothing', 'pos_weight' },
  optim = { 'lr', 'momentum', 'dampening', 'nesterov', 'weight_decay', 'betas', 'beta1', 'beta2', 'eps',
            'on_nonfinite', 'amsgrad', 'maximize', 'groups', 'clip_norm', 'clip_value', 'clip_tensor_norm',
            'skip_nonfinite' },
  batches = { 'shuffle', 'seed', 'drop_last' }, csv = { 'label', 'classes', 'sep', 'header' },
  idx = { 'max_bytes' }, load = { 'device' }, metrics = { 'batch' }, fmnist = { 'shape', 'dir' },
  linear = { 'bias' }, rand = { 'dtype', 'device', 'gen' },
}
local PLAUSIBLE_OPT = { '1', '2', '0', '0.5', '0.1', '1e-3', 'true', 'false', "'mean'", "'sum'", "'none'",
                        "'same'", "'zeros'", "'tanh'", "'skip'", '{2, 2}', '{0.9, 0.999}', "'cpu'",
                        "'float64'", "ms.tensor({1, 2, 3}, 'int64')", 'ms.rand(3)', '-1', '1e9' }
-- Per-key plausible values where the generic ones would rarely hit the interesting cases
-- (out aliasing an input, huge conv geometry, ...).
local KEY_VALUES = {
  out = { 't', 'a1', 'a2', 'ms.rand(2, 2)', 'ms.empty(0)', 'ms.ones(1, 3):expand(4, 3)' },
  stride = { '1', '2', '{1, 2}', '2^31', '2^62', '0', '{2^40, 1}' },
  padding = { '0', '1', "'same'", "'valid'", '{1, 0}', '2^31', '2^62', '-1' },
  dilation = { '1', '2', '{2, 1}', '2^31', '2^62', '0' },
  groups = { '1', '2', '3', '0', '2^40' },
  max_bytes = { '1', '100', '2^40', '0', '-1' },
  padding_idx = { '1', '5', '0', '-1', '6', '2^63' },
  ignore_index = { '1', '3', '-100', '0', '2^63' },
  gen = { '{seed = 1}', '{seed = 2, stream = 3}', '{seed = -1}', '{stream = 1}', '3', '{seed = 1, x = 1}' },
}
local function opts_src(group)
  local keys = OPTION_KEYS[group] or OPTION_KEYS[pick { 'conv', 'optim', 'loss', 'tensor' }]
  local parts = {}
  for _ = 1, random(0, 3) do
    local k = pick(keys)
    local v = chance(0.6) and pick(KEY_VALUES[k] or PLAUSIBLE_OPT) or any_src()
    parts[#parts + 1] = k .. ' = ' .. v
  end
  if chance(0.15) then parts[#parts + 1] = pick { 'bogus_key', 'Stride', 'lr_', 'dim' } .. ' = 1' end
  return '{' .. concat(parts, ', ') .. '}'
end

-- Paths: reads see fixture files of the fuzz directory (the child's working directory,
-- written by the driver) and a few system paths; writes stay inside that directory.
local READ_PATHS = { "'ok.ck'", "'bad.ck'", "'trunc.ck'", "'empty'", "'ok.csv'", "'bom.csv'", "'one_col.csv'",
                     "'frac.csv'", "'text.csv'", "'ok.idx'", "'bad.idx'", "'trunc.idx.gz'", "'big.idx'",
                     "'ok.idx.gz'", "'.'", "'missing'", "'/dev/null'", "'/dev/stdin'", "''", "'dir/'",
                     "'bomb.idx.gz'", "'dims.idx'", "'type.idx'", "'module.ck'", "'sep.csv'" }
local WRITE_PATHS = { "'out.ck'", "'out2.ck'", "'dir'", "'missing/sub/x.ck'", "''", "'.'", "'ok.ck'" }

-- Plausible values for a signature slot.
local SLOT = {
  t = tensor_src,
  -- matrices for matmul/dot/bmm, now and then with a dimension of 2^31 that costs no memory
  -- (a stride-0 view): BLAS sizes and leading dimensions past int32
  mt = function()
    if chance(0.15) then
      -- (not 1-D: a dot over 2^31 elements is legal and takes tens of seconds, a false hang)
      return pick { 'ms.zeros(1, 1):expand(1, 2^31)', 'ms.zeros(1, 1):expand(2^31, 1)',
                    'ms.zeros(1, 1):expand(2, 2^31):t()' }
    end
    return pick { 'ms.rand(2, 3)', 'ms.rand(3, 2)', 'ms.rand(3)', 'ms.rand(2, 3, 4)', 'ms.rand(2, 4, 3)',
                  'ms.rand(3, 3):t()', "ms.rand(3, 3, 'float64')", 'ms.empty(0, 3)', 'ms.rand(4, 3):narrow(1, 2, 2)' }
  end,
  op = function() return pick { '0', '1', '3', '7', '20', '-1', '2^31', '1000', 'ms.C.MS_ADD', 'ms.C.MS_EXP' } end,
  module = function() return pick { 'ms.nn.ReLU()', 'ms.nn.Linear(3, 3)', 'ms.nn.Sequential()' } end,
  t4 = function() return pick { 'ms.rand(1, 2, 4, 4)', 'ms.rand(2, 2, 5, 5)', 'ms.rand(1, 1, 3, 3)' } end,
  pint = function() return tostring(random(1, 4)) end,
  int = function() return tostring(random(-2, 4)) end,
  dim = function() return tostring(pick { 1, 2, 3, -1, -2, 1, 2 }) end,
  size = function() return tostring(pick { 0, 1, 2, 3, 4, 6, -1 }) end,
  num = function() return pick { '0', '1', '2', '0.5', '-1', '3.5', '0.25', '-2' } end,
  p01 = function() return pick { '0', '0.25', '0.5', '1' } end,
  bool = function() return pick { 'true', 'false' } end,
  dtype = function() return pick { "'float32'", "'float64'", "'int64'", "'uint8'" } end,
  device = function() return pick { "'cpu'", "'cuda'" } end,
  idx = function() return pick { "ms.tensor({1, 2}, 'int64')", '{1, 2}', "ms.tensor({2, 1, 1}, 'int64')",
                                 "ms.tensor({{1, 2}, {2, 1}}, 'int64')", '{1}', "ms.tensor({-2^63}, 'int64')",
                                 "ms.tensor({2^62, 1}, 'int64')", '{-2^63}', '{2^53}', '{0}', '{1.9}',
                                 "ms.tensor({1, 2}, 'int64'):expand(2, 2)", "ms.tensor({0, -1}, 'int64')" } end,
  shape = function() return pick { '{2, 3}', '{3}', '{}', '{1, 2, 2}', '{6}', '{3, 2}' } end,
  list = function() return pick { '{ms.rand(2, 3), ms.rand(1, 3)}', '{ms.rand(2)}', '{ms.rand(2, 2), ms.rand(2, 2)}',
    '(function(t) return {t, t} end)(ms.rand(2))', '{ms.rand(3, 2):t(), ms.rand(2, 2)}', "{ms.rand(2), ms.ones(2, 'int64')}",
    '{(function(t) t:free() return t end)(ms.rand(2)), ms.rand(2)}', '{ms.zeros(1):expand(3), ms.rand(1)}',
    '(function(t) return {t, t:narrow(1, 1, 1)} end)(ms.rand(2))', '{ms.rand(2, 3), ms.rand(1, 3, 1)}' } end,
  data = function() return pick { '{1, 2, 3}', '{{1, 2}, {3, 4}}', '2.5', '{}', '{{1}, {2}}' } end,
  gen = function() return pick { '{seed = 1, stream = 0}', '{seed = 1}', '{seed = 2, stream = 3}' } end,
  fn = function() return pick { 'function() return 1 end', 'function(m) end' } end,
  str = function() return pick(STRINGS) end,
  rpath = function() return pick(READ_PATHS) end,
  wpath = function() return pick(WRITE_PATHS) end,
  model = function() return pick { 'ms.nn.Sequential(ms.nn.Linear(4, 3))', 'ms.nn.Linear(4, 3)',
                                   'ms.nn.Sequential(ms.nn.Flatten(), ms.nn.Linear(4, 3))' } end,
  ds = function() return pick { "ms.data.Dataset(ms.rand(6, 4), ms.tensor({1, 2, 3, 1, 2, 3}, 'int64'))",
                                'ms.data.Dataset(ms.rand(5, 4), ms.rand(5, 3))',
                                "ms.data.Dataset(ms.rand(0, 4), ms.tensor({}, 'int64'))" } end,
  crit = function() return pick { 'ms.nn.CrossEntropyLoss()', 'ms.nn.MSELoss()' } end,
  value = function() return pick { 'ms.rand(2, 3)', "{a = ms.rand(2), b = {1, 'x', true}}", '{1, 2, 3}', "'s'",
    '1.5', 'ms.nn.Linear(2, 2)', 'ms.nn.Linear(2, 2):state_dict()', '{[true] = 1, [2.5] = 2}',
    "ms.empty(0, 3, 'int64')", '(function() local t = {} for i = 1, 300 do t = {t} end return t end)()',
    '(function() local t = {} for i = 1, 100000 do t = {t} end return t end)()', '{f = print}',
    'ms.zeros(1):expand(1000)', 'ms.rand(4, 3):t()', '(function(t) t:free() return t end)(ms.rand(2))',
    "{[ms.rand(1)] = 1}", "{[{}] = 1}", "('x'):rep(100000)", '{0/0, 1/0, -1/0, 2^63}',
    '(function() local t = {} t[1] = t return t end)()', 'ms.optim.SGD(ms.nn.Linear(2, 2)):state()' } end,
  split = function() return pick { "'train'", "'test'" } end,
  any = any_src,
}

-- Known signatures: slot names separated by spaces; a|b is either; x* repeats 0 to 10
-- times (so more than 8 sizes happen); opts:group is an options table.
local SIG = {
  -- constructors and free functions
  empty = 'size* opts:tensor', zeros = 'size* opts:tensor', ones = 'size* opts:tensor',
  rand = 'size* opts:tensor', randn = 'size* opts:tensor', full = 'shape num opts:tensor',
  arange = 'num num num opts:tensor', linspace = 'num num size opts:tensor', tensor = 'data opts:tensor|dtype',
  empty_like = 't dtype', zeros_like = 't dtype', where = 't t|num t|num', cat = 'list dim',
  manual_seed = 'pint', set_rng_state = 'gen', philox = 'shape shape', params = 'list',
  save = 'wpath value', load = 'rpath opts:load', set_num_threads = 'pint',
  read_csv = 'rpath opts:csv', read_idx = 'rpath opts:idx', fashion_mnist = 'split opts:fmnist',
  permutation = 'size gen', eye = 'size size opts:tensor', range = 'num num num opts:tensor',
  randperm = 'size opts:rand', randint = 'int int shape opts:rand', Dataset = 't t', accuracy = 'model ds opts:metrics',
  evaluate = 'model ds crit opts:metrics',
  -- tensor methods (free-function twins take the tensor first)
  view = 'size*', reshape = 'size*', expand = 'size*', permute = 'dim*', narrow = 'dim int size',
  select = 'dim int', transpose = 'dim dim', unsqueeze = 'dim', squeeze = 'dim', flatten = '',
  index_select = 'dim idx', gather = 'dim idx', sum = 'dim bool', mean = 'dim bool', max = 'dim bool',
  min = 'dim bool', argmax = 'dim bool', argmin = 'dim bool', norm = 'num dim bool', var = 'dim bool bool',
  std = 'dim bool bool', clamp = 'num num', clamp_ = 'num num', leaky_relu = 'num', to = 'dtype|device dtype|device',
  fill_ = 'num', copy_ = 't', lerp = 't t|num', lerp_ = 't t|num', addcmul = 'num t t', addcdiv = 'num t t',
  addcmul_ = 'num t t', addcdiv_ = 'num t t', matmul = 'mt opts:matmul', bmm = 'mt opts:matmul', dot = 'mt',
  get = 'int*', set = 'int* num', uniform_ = 'num num gen', normal_ = 'num num gen', bernoulli_ = 'p01 gen',
  rademacher_ = 'gen', stride = 'dim', size = 'dim', axpy_ = 'num t', expand_as = 't', index_add_ = 'dim idx t',
  softmax = 'dim', log_softmax = 'dim', item = '', totable = '', free = '',
  sort = 'dim bool', topk = 'size dim', cumsum = 'dim',
  -- ms.autograd (grad(f) returns a function: the fuzzer checks the argument checks)
  grad = 'fn', value_and_grad = 'fn', hvp = 'fn', jvp = 'fn', no_grad = 'fn any', detach = '',
  is_tracked = 't', Function = 'fn value',
  -- ms.dist (a world of one under the fuzzer: no launcher)
  all_reduce = 't str', broadcast = 't int', all_gather = 't', alone = 'fn any', shard = 'int int',
  -- nn.functional (public through ms.nn.functional)
  relu_backward = 't t', leaky_relu_backward = 't t num', tanh_backward = 't t', sigmoid_backward = 't t',
  gelu_backward = 't t', unary_into = 't t op num', binary_into = 't t t op num', one_hot = 't pint t',
  alloc = 'str shape dtype device', buffer = 'module str shape t str',
}
for _, op in ipairs { 'add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'eq', 'ne', 'lt', 'le', 'gt', 'ge' } do
  SIG[op] = 't|num num'; SIG[op .. '_'] = 't|num num'
end
G.SIG = SIG

-- A list of argument sources for signature `sig` (or random ones), mutated: each slot is
-- plausible with probability `plausible` (0.7), else anything; below 0.9, sometimes an
-- argument is dropped or added.
local function args_for(sig, plausible)
  plausible = plausible or 0.7
  local args = {}
  if sig == nil then
    for i = 1, random(0, 4) do args[i] = chance(0.4) and SLOT[pick { 't', 'int', 'dim', 'num' }]() or any_src() end
    return args
  end
  for slot in sig:gmatch('%S+') do
    local rep = slot:sub(-1) == '*'
    if rep then slot = slot:sub(1, -2) end
    local n = rep and pick { 0, 1, 2, 2, 3, 4, 9, 10, 12, 16 } or 1
    if rep and n >= 9 and chance(0.5) and (slot == 'size' or slot == 'int') then
      -- many dims that all fit (1, ..., 1, -1): rank checks, not size checks, must stop them
      for _ = 1, n - 1 do args[#args + 1] = '1' end
      args[#args + 1] = chance(0.5) and '-1' or '1'
      n = 0
    end
    for _ = 1, n do
      local alt = {}
      for a in slot:gmatch('[^|]+') do alt[#alt + 1] = a end
      local s = pick(alt)
      local v
      if not chance(plausible) then v = any_src()
      elseif s:match('^opts:') then v = opts_src(s:sub(6))
      else v = (SLOT[s] or any_src)() end
      args[#args + 1] = v
    end
  end
  if plausible < 0.9 then
    if #args > 0 and chance(0.1) then args[#args] = nil end
    if chance(0.1) then args[#args + 1] = any_src() end
  end
  return args
end
G.args_for = args_for

---------------------------------------------------------------------------------------
-- nn: a valid constructor and input per known class (others: Class() on rand(2, 3))
---------------------------------------------------------------------------------------
local NN = {
  Linear = { { '4', '3' }, 'ms.rand(2, 4)', 'linear' },
  Conv2d = { { '2', '3', '3' }, 'ms.rand(1, 2, 5, 5)', 'conv' },
  MaxPool2d = { { '2' }, 'ms.rand(1, 2, 4, 4)', 'pool' }, AvgPool2d = { { '2' }, 'ms.rand(1, 2, 4, 4)', 'pool' },
  BatchNorm1d = { { '3' }, 'ms.rand(4, 3)', 'bn' }, BatchNorm2d = { { '2' }, 'ms.rand(2, 2, 3, 3)', 'bn' },
  LayerNorm = { { '3' }, 'ms.rand(2, 3)', 'ln' }, Embedding = { { '5', '3' }, "ms.tensor({1, 5, 2}, 'int64')", 'emb' },
  Dropout = { { '0.5' }, 'ms.rand(2, 3)' }, Flatten = { {}, 'ms.rand(2, 3, 2)' },
  Softmax = { { '2' }, 'ms.rand(2, 3)' }, LogSoftmax = { { '2' }, 'ms.rand(2, 3)' },
  LeakyReLU = { { '0.1' }, 'ms.rand(2, 3)' }, GELU = { {}, 'ms.rand(2, 3)', 'gelu' },
  Sequential = { { 'ms.nn.Linear(4, 3)', 'ms.nn.ReLU()' }, 'ms.rand(2, 4)' },
  Function = { { 'function(x, p) return ms.nn.functional.linear(x, p.w, p.b):tanh() end',
                 '{ w = ms.rand(3, 4), b = ms.zeros(3) }' }, 'ms.rand(2, 4)' },
  MSELoss = { {}, 'ms.rand(2, 3)', 'loss', 'ms.rand(2, 3)' },
  CrossEntropyLoss = { {}, 'ms.rand(2, 3)', 'loss', "ms.tensor({1, 3}, 'int64')" },
  NLLLoss = { {}, 'ms.rand(2, 3):log_softmax()', 'loss', "ms.tensor({1, 3}, 'int64')" },
  BCEWithLogitsLoss = { {}, 'ms.rand(2, 3)', 'loss', 'ms.rand(2, 3)' },
}
G.NN = NN
-- Inputs (and loss targets) that are wrong for one class in particular.
G.NN_ODD = {
  Embedding = { "ms.tensor({-2^63}, 'int64')", "ms.tensor({6}, 'int64')", "ms.tensor({0}, 'int64')",
                "ms.tensor({{1, 2}, {3, 4}}, 'int64')", "ms.tensor({1.5}, 'float64')", "ms.tensor({2^62}, 'int64')",
                "ms.tensor({1, 2}, 'int64'):expand(3, 2)", "ms.empty(0, 'int64')" },
  Conv2d = { 'ms.rand(1, 2, 2, 2)', 'ms.rand(0, 2, 5, 5)', "ms.rand(1, 2, 5, 5, 'float64')", 'ms.rand(1, 2, 1, 3000)',
             'ms.rand(1, 3, 5, 5)', 'ms.rand(2, 5, 5)', 'ms.rand(1, 2, 5, 5):transpose(3, 4)', 'ms.rand(1, 2, 0, 5)' },
  MaxPool2d = { 'ms.rand(1, 2, 1, 1)', 'ms.rand(0, 2, 4, 4)', 'ms.rand(1, 2, 4, 4):transpose(1, 4)', 'ms.rand(2, 4, 4)',
                'ms.full({1, 1, 2, 2}, 0/0)', 'ms.rand(1, 0, 4, 4)' },
  AvgPool2d = { 'ms.rand(1, 2, 1, 1)', 'ms.rand(0, 2, 4, 4)', 'ms.rand(1, 2, 4, 4):transpose(1, 4)', 'ms.rand(2, 4, 4)' },
  BatchNorm1d = { 'ms.rand(1, 3)', 'ms.rand(0, 3)', 'ms.rand(4, 3, 2)', 'ms.rand(4, 2)', 'ms.full({4, 3}, 0/0)' },
  BatchNorm2d = { 'ms.rand(1, 2, 1, 1)', 'ms.rand(0, 2, 3, 3)', 'ms.rand(2, 3, 3, 3)', 'ms.rand(2, 2, 3)' },
  LayerNorm = { 'ms.rand(2, 4)', 'ms.rand(3)', 'ms.rand(0, 3)', 'ms.tensor(1.5)' },
  CrossEntropyLoss = { "ms.tensor({0, 4}, 'int64')", "ms.tensor({-2^63, 1}, 'int64')", "ms.tensor({1, 3, 2}, 'int64')",
                       'ms.rand(2, 3)', "ms.tensor({{1}, {2}}, 'int64')", "ms.tensor({2^62, 1}, 'int64')" },
  NLLLoss = { "ms.tensor({0, 4}, 'int64')", "ms.tensor({-2^63, 1}, 'int64')", "ms.tensor({1, 3, 2}, 'int64')" },
  BCEWithLogitsLoss = { 'ms.rand(2, 2)', 'ms.full({2, 3}, 0/0)', "ms.ones(2, 3, 'int64')" },
  MSELoss = { 'ms.rand(2, 1)', 'ms.rand(3, 2)', "ms.rand(2, 3, 'float64')" },
}
local CONV_POOL = { Conv2d = true, MaxPool2d = true, AvgPool2d = true, im2col = true, col2im = true,
                    maxpool2d = true, maxpool2d_backward = true, conv_out = true }
G.CONV_POOL = CONV_POOL

-- Constructor arguments: the valid ones, mutated, sometimes with extra positional
-- integers (stride, padding ...) and an options table.
local function ctor_args(cls)
  local info, args = NN[cls] or { {} }, {}
  for i, a in ipairs(info[1]) do args[i] = chance(0.75) and a or any_src() end
  if chance(0.2) then for _ = 1, random(1, 3) do args[#args + 1] = SLOT.int() end end
  if chance(0.5) then args[#args + 1] = opts_src(info[3]) end
  if chance(0.1) then args = { any_src(), any_src() } end
  return args
end
G.ctor_args = ctor_args

-- Bind each argument source to a local of the setup (local a1 = ...;): returns 'a1, a2, ...'.
function G.bind(args, setup)
  local names = {}
  for i, a in ipairs(args) do
    names[i] = 'a' .. i
    setup[#setup + 1] = fmt('local a%d = %s;', i, a)
  end
  return concat(names, ', ')
end
G.SLOT, G.opts_src, G.pick, G.chance, G.tensor_src = SLOT, opts_src, pick, chance, tensor_src

function G.sorted_keys(t)
  local ks = {}
  for k in pairs(t) do if type(k) == 'string' then ks[#ks + 1] = k end end
  table.sort(ks)
  return ks
end

-- Static helpers of base classes, not instance methods. (Names starting with '_' are
-- private by convention and not fuzzed.)
local STATIC = { new = true, extend = true, define = true, arena_of = true }

-- The public methods of obj: the functions along its metatables' __index chain.
function G.methods_of(obj)
  local names, seen = {}, {}
  local mt = getmetatable(obj)
  local idx = mt and mt.__index
  for _ = 1, 8 do
    if type(idx) ~= 'table' then break end
    for _, k in ipairs(G.sorted_keys(idx)) do
      if type(rawget(idx, k)) == 'function' and not k:match('^_') and not seen[k] and not STATIC[k] then
        seen[k] = true; names[#names + 1] = k
      end
    end
    local m2 = getmetatable(idx)
    idx = m2 and m2.__index
  end
  table.sort(names)
  return names
end

-- A valid constructor call of an nn class (Class() for classes not in NN).
function G.nn_ctor(cls)
  return 'ms.nn.' .. cls .. '(' .. concat((NN[cls] or { {} })[1], ', ') .. ')'
end

return G
