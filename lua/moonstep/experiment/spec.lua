-- experiment.spec — an experiment table normalised (defaults filled, every field checked)
-- and turned into the objects a run needs.
--
--   cfg = spec.normalize(who, exp [, where])   the canonical experiment: a plain table
--       (what config.json holds and the id hashes); `where` ('experiment 3: ') prefixes
--       the field names in errors for lists. Positional names become fields:
--       model = {'mlp', ...} -> {type = 'mlp', ...}; data = {'fashion_mnist', ...} ->
--       {type = 'fashion_mnist', ...}; optimizer = {'SAM', ...} or 'SAM' -> {class = 'SAM', ...}.
--       device = 'auto' is resolved ('cuda' when available, else 'cpu').
--   model = spec.model(cfg)             the nn model (weights from the global generator:
--                                       seed it first), model.input_grad = false
--   train, test = spec.data(cfg)        Fashion-MNIST, the first cfg.data.train / test
--                                       images, normalised by the training images' mean and
--                                       std (two numbers) when cfg.data.normalize; on the
--                                       device. The files are read once per process.
--
-- The canonical experiment (every field present except threads when not given, and lr):
--   { name =, model = {type = 'mlp', sizes = {...}, activation =} | {type = 'cnn'},
--     data = {type = 'fashion_mnist', train = N, test = M, normalize = bool},
--     optimizer = {class = 'X', ...} (experiment/optimizer.lua), lr = number (optional),
--     epochs =, batch_size =, device = 'cpu' | 'cuda', seed =, threads =, log_every = }
local ms = require 'moonstep'
local check = require 'moonstep.check'
local optimizer = require 'moonstep.experiment.optimizer'

local M = {}

M.FIELDS = { 'name', 'model', 'data', 'optimizer', 'lr', 'epochs', 'batch_size', 'device', 'seed',
             'threads', 'log_every' }
M.SIZES = { train = 60000, test = 10000 }        -- Fashion-MNIST
M.ACTIVATIONS = { 'relu', 'tanh', 'sigmoid', 'gelu', 'leaky_relu' }
local MLP_FIELDS = { 'type', 'sizes', 'activation' }
local CNN_FIELDS = { 'type' }
local DATA_FIELDS = { 'type', 'train', 'test', 'normalize' }

-- A table of fields, with a positional [1] moved to `name` (a string alone is {[name] = s});
-- without either, the default's [1].
local function named(who, path, v, name, default)
  if v == nil then v = default end
  if type(v) == 'string' then return { [name] = v } end
  if type(v) ~= 'table' or check.is_tensor(v) or getmetatable(v) ~= nil then
    check.fail('%s: %s is %s, expected a string or a table', who, path, check.describe(v))
  end
  local t = {}
  for k, x in pairs(v) do t[k] = x end
  if t[1] ~= nil then
    if t[name] ~= nil and t[name] ~= t[1] then
      check.fail('%s: %s has both [1] = %s and %s = %s, expected one of them', who, path,
                 check.describe(t[1]), name, check.describe(t[name]))
    end
    t[name], t[1] = t[1], nil
  end
  if t[name] == nil and type(default) == 'table' then t[name] = default[1] end
  return t
end
M.named = named

-- Options with field names in errors: "<who>: <path> has an unknown field ..."
local function fields(who, path, t, accepted)
  local set = {}
  for _, k in ipairs(accepted) do set[k] = true end
  for k in pairs(t) do
    if not set[k] then
      local names = { unpack(accepted) }
      table.sort(names)
      check.fail('%s: %s has an unknown field %s, expected one of: %s', who, path, check.describe(k),
                 table.concat(names, ', '))
    end
  end
end
M.fields = fields

local function model_of(who, p, v)
  local t = named(who, p .. 'model', v, 'type', { 'mlp' })
  check.oneof(who, p .. 'model.type', t.type, { 'mlp', 'cnn' })
  if t.type == 'cnn' then
    fields(who, p .. 'model', t, CNN_FIELDS)
    return t
  end
  fields(who, p .. 'model', t, MLP_FIELDS)
  local sizes = t.sizes == nil and { 784, 256, 10 } or t.sizes
  if type(sizes) ~= 'table' or getmetatable(sizes) ~= nil or #sizes < 2 then
    check.fail('%s: %smodel.sizes is %s, expected a list of at least two layer sizes such as {784, 256, 10}',
               who, p, check.describe(sizes))
  end
  local out = {}
  for k in pairs(sizes) do
    if type(k) ~= 'number' or k < 1 or k > #sizes or k ~= math.floor(k) then
      check.fail('%s: %smodel.sizes has the key %s, expected a list', who, p, check.describe(k))
    end
  end
  for i, n in ipairs(sizes) do out[i] = check.integer(who, ('%smodel.sizes[%d]'):format(p, i), n, 1, 2 ^ 24) end
  if out[1] ~= 784 then
    check.fail('%s: %smodel.sizes[1] is %s, expected 784 (a Fashion-MNIST image, flattened)', who, p, check.describe(out[1]))
  end
  if out[#out] ~= 10 then
    check.fail('%s: %smodel.sizes[%d] is %s, expected 10 (the Fashion-MNIST classes)', who, p, #out, check.describe(out[#out]))
  end
  local act = t.activation == nil and 'relu' or t.activation
  check.oneof(who, p .. 'model.activation', act, M.ACTIVATIONS)
  return { type = 'mlp', sizes = out, activation = act }
end

local function data_of(who, p, v)
  local t = named(who, p .. 'data', v, 'type', { 'fashion_mnist' })
  fields(who, p .. 'data', t, DATA_FIELDS)
  check.oneof(who, p .. 'data.type', t.type, { 'fashion_mnist' })
  local out = { type = t.type }
  for _, split in ipairs { 'train', 'test' } do
    local n = t[split] == nil and M.SIZES[split] or t[split]
    out[split] = check.integer(who, p .. 'data.' .. split, n, 1, M.SIZES[split])
  end
  out.normalize = t.normalize == nil and true or check.boolean(who, p .. 'data.normalize', t.normalize)
  return out
end

-- The canonical experiment (see the header).
function M.normalize(who, exp, where)
  local p = where or ''
  if type(exp) ~= 'table' or check.is_tensor(exp) or getmetatable(exp) ~= nil then
    check.fail('%s: %sexperiment is %s, expected a table such as {optimizer = \'Adam\', epochs = 2}',
               who, p, check.describe(exp))
  end
  fields(who, p == '' and 'the experiment' or p:gsub(': $', ''), exp, M.FIELDS)
  local cfg = {
    model = model_of(who, p, exp.model),
    data = data_of(who, p, exp.data),
    epochs = check.integer(who, p .. 'epochs', exp.epochs == nil and 1 or exp.epochs, 1, 1e6),
    batch_size = check.integer(who, p .. 'batch_size', exp.batch_size == nil and 128 or exp.batch_size, 1, 2 ^ 31),
    seed = check.integer(who, p .. 'seed', exp.seed == nil and 0 or exp.seed, 0, 2 ^ 53 - 1),
    log_every = check.integer(who, p .. 'log_every', exp.log_every == nil and 1 or exp.log_every, 1),
  }
  if exp.threads ~= nil then cfg.threads = check.integer(who, p .. 'threads', exp.threads, 1, 1024) end
  if exp.lr ~= nil then cfg.lr = check.number(who, p .. 'lr', exp.lr, 0) end
  local device = exp.device == nil and 'auto' or exp.device
  check.oneof(who, p .. 'device', device, { 'cpu', 'cuda', 'auto' })
  if device == 'auto' then device = ms.cuda.is_available() and 'cuda' or 'cpu' end
  if device == 'cuda' and not ms.cuda.is_available() then
    check.fail('%s: %sdevice is "cuda" but no usable GPU is here (ms.cuda.is_available() is false); use \'cpu\' or \'auto\'',
               who, p)
  end
  cfg.device = device
  cfg.optimizer = optimizer.normalize(who, p .. 'optimizer', exp.optimizer, cfg.lr)
  local name = exp.name
  if name == nil then name = cfg.optimizer.name or cfg.optimizer.class end
  if type(name) ~= 'string' or name == '' or #name > 200 then
    check.fail('%s: %sname is %s, expected a non-empty string (a label)', who, p, check.describe(name))
  end
  cfg.name = name
  -- the optimizer's values, checked now (before a long grid starts) by building it unbound
  optimizer.validate(who, p .. 'optimizer', cfg)
  return cfg
end

---------------------------------------------------------------------------------------
-- Building
---------------------------------------------------------------------------------------
local ACT = { relu = 'ReLU', tanh = 'Tanh', sigmoid = 'Sigmoid', gelu = 'GELU', leaky_relu = 'LeakyReLU' }

function M.model(cfg)
  local nn = ms.nn
  local m = cfg.model
  local model
  if m.type == 'cnn' then
    -- scripts/train.lua's: 2 x (conv3x3, ReLU, maxpool) + 2 linear
    model = nn.Sequential(nn.Conv2d(1, 32, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
  else
    local layers = {}
    for i = 1, #m.sizes - 1 do
      layers[#layers + 1] = nn.Linear(m.sizes[i], m.sizes[i + 1])
      if i < #m.sizes - 1 then layers[#layers + 1] = nn[ACT[m.activation]]() end
    end
    model = nn.Sequential(unpack(layers))
  end
  model.input_grad = false             -- no gradient w.r.t. the images
  if cfg.device ~= 'cpu' then model:to(cfg.device) end
  return model
end

-- The whole splits, read once per process and shape (the runs take copies).
local cache = {}
local function split(name, shape)
  local key = name .. '/' .. shape
  if not cache[key] then cache[key] = ms.data.fashion_mnist(name, { shape = shape }) end
  return cache[key]
end

function M.data(cfg)
  local shape = cfg.model.type == 'cnn' and 'image' or 'flat'
  local function first(name)
    local ds, n = split(name, shape), cfg.data[name]
    if n > ds:size() then
      check.fail('experiment.run: data.%s is %d but the %s split has %d images', name, n, name, ds:size())
    end
    return ds:subset(1, n)
  end
  local train, test = first('train'), first('test')
  if cfg.data.normalize then
    -- one mean and one std over every pixel of the training images
    local mean, std = train.x:mean(), train.x:std()
    if not (std > 0) then std = 1 end
    train:normalize(mean, std)
    test:normalize(mean, std)
  end
  if cfg.device ~= 'cpu' then train, test = train:to(cfg.device), test:to(cfg.device) end
  return train, test
end

return M
