-- experiment.optimizer — an optimizer described as data, and built from it.
--
--   t = optimizer.normalize(who, path, v)   'Adam' or {'SAM', base = {'SGD', lr = 0.05}, rho = 0.05}
--       -> {class = 'SAM', base = {class = 'SGD', lr = 0.05}, rho = 0.05}: [1] becomes class at
--       every level (a nested table with a class is an optimizer, built unbound: a base);
--       a table with `schedule = 'cosine'` is a schedule ({schedule = 'cosine', init =, T_max =},
--       or {'warmup', steps =, schedule = {...}}: the name first), normalised to
--       {schedule = 'cosine', args = {init =, T_max =}} and built as ms.schedule.cosine(args);
--       `name` is a label (not passed on); SPSA's `preset = 'zeroth_learn'` is kept.
--       Class names and option names are checked here (errors name the field path).
--   optimizer.validate(who, path, cfg)      the values checked by building it unbound
--   opt = optimizer.build(cfg, model, ctx)  the optimizer bound to model; ctx = {num_data =,
--       steps_per_epoch =}. Filled in when not given: SPSA's criterion (nn.CrossEntropyLoss)
--       and seed (cfg.seed), any class's `seed` option (BSAM), BSAM's num_data (the training
--       set size), SPSA's steps_per_epoch (gain_unit = 'epoch'). cfg.lr (the shortcut) sets
--       the optimizer's lr (AutoSGM: lr_init; SPSA: lr = a), else its base's.
local ms = require 'moonstep'
local check = require 'moonstep.check'

local M = {}

-- Fields the runner sets itself (a user's value could not be written as data anyway).
local RESERVED = { criterion = 'the runner gives SPSA nn.CrossEntropyLoss()' }

local function optim() return ms.optim end

-- Is name a class of ms.optim?
local function class_of(name)
  if type(name) ~= 'string' then return nil end
  local cls = rawget(optim(), name)
  if type(cls) == 'table' and rawget(cls, 'defaults') and rawget(cls, 'accepted') then return cls end
end

local function class_names()
  local names = {}
  for k in pairs(optim()) do
    if type(k) == 'string' and k ~= 'Optimizer' and class_of(k) then names[#names + 1] = k end
  end
  table.sort(names)
  return names
end

local function plain(v)
  return type(v) == 'table' and not check.is_tensor(v) and getmetatable(v) == nil
end

local normalize_value

-- An optimizer table at path (v a string or a table with [1] or class).
local function normalize_opt(who, path, v)
  local t
  if type(v) == 'string' then t = { class = v }
  else
    t = {}
    for k, x in pairs(v) do t[k] = x end
    if t[1] ~= nil then
      if t.class ~= nil and t.class ~= t[1] then
        check.fail('%s: %s has both [1] = %s and class = %s, expected one of them', who, path,
                   check.describe(t[1]), check.describe(t.class))
      end
      t.class, t[1] = t[1], nil
    end
  end
  local cls = class_of(t.class)
  if not cls then
    check.fail('%s: %s.class is %s, expected the name of an optimizer class of ms.optim (%s)', who, path,
               check.describe(t.class), table.concat(class_names(), ', '))
  end
  local accepted = { class = true, name = true }
  for _, k in ipairs(cls.accepted) do accepted[k] = true end
  if t.class == 'SPSA' then accepted.preset = true end
  local out = {}
  for k, x in pairs(t) do
    if RESERVED[k] then
      check.fail('%s: %s.%s is set by the runner (%s), expected no such field', who, path, k, RESERVED[k])
    end
    if not accepted[k] then
      local names = {}
      for a in pairs(accepted) do names[#names + 1] = a end
      table.sort(names)
      check.fail('%s: %s has an unknown field %s for optim.%s, expected one of: %s', who, path,
                 check.describe(k), t.class, table.concat(names, ', '))
    end
    if k == 'class' or k == 'name' or k == 'preset' then
      if type(x) ~= 'string' then
        check.fail('%s: %s.%s is %s, expected a string', who, path, k, check.describe(x))
      end
      out[k] = x
    else
      out[k] = normalize_value(who, path .. '.' .. k, x, k == 'base')
    end
  end
  if out.preset ~= nil then
    local names = {}
    for n in pairs(optim().SPSA.PRESETS) do names[#names + 1] = n end
    table.sort(names)
    check.oneof(who, path .. '.preset', out.preset, names)
  end
  return out
end

-- Is name a schedule constructor that takes data (an options table)?
local NOT_DATA = { plot = true, value = true, is_schedule = true, lambda = true }
local function schedule_name(s)
  return type(s) == 'string' and not s:match('^_') and not NOT_DATA[s] and type(rawget(ms.schedule, s)) == 'function'
end

-- A schedule table: {schedule = 'cosine', init =, T_max =}, or with the name first:
-- {'warmup', steps = 500, schedule = {...}} (warmup's own option `schedule` is its inner
-- schedule). Normalised: {schedule = name, args = {options}} (what config.json holds).
local function normalize_schedule(who, path, v)
  local name, key = v.schedule, 'schedule'
  if type(v[1]) == 'string' then name, key = v[1], 1 end
  if not schedule_name(name) then
    check.fail('%s: %s.schedule is %s, expected the name of an ms.schedule constructor such as \'cosine\'',
               who, path, check.describe(name))
  end
  local opts = {}
  local normalised = key == 'schedule' and type(v.args) == 'table'
  for k, x in pairs(v) do
    if k ~= key then
      if normalised and k ~= 'args' then
        check.fail('%s: %s has args and %s, expected {schedule = name, args = {...}} or the options beside the name',
                   who, path, check.describe(k))
      end
      if not normalised then opts[k] = x end
    end
  end
  if normalised then opts = v.args end
  local args = {}
  for k, x in pairs(opts) do
    if type(k) ~= 'string' then
      check.fail('%s: %s has the key %s, expected option names', who, path, check.describe(k))
    end
    args[k] = normalize_value(who, path .. '.' .. k, x)
  end
  return { schedule = name, args = args }
end

-- Any value inside an optimizer table: numbers, strings, booleans, lists, schedule
-- tables, nested optimizers (base: a string names a class).
normalize_value = function(who, path, v, is_base)
  local tv = type(v)
  -- the path grows by one part per level: a table that contains itself ends here
  if tv == 'table' and select(2, path:gsub('[%.%[]', '')) > 32 then
    check.fail('%s: %s is nested more than 32 levels deep (a table that contains itself?)', who,
               #path > 80 and path:sub(1, 77) .. '...' or path)
  end
  if tv == 'number' or tv == 'boolean' then return v end
  if tv == 'string' then
    if is_base then return normalize_opt(who, path, v) end
    return v
  end
  if not plain(v) then
    check.fail('%s: %s is %s, expected data (a number, string, boolean or plain table)', who, path, check.describe(v))
  end
  if is_base or v.class ~= nil or (type(v[1]) == 'string' and class_of(v[1])) then
    return normalize_opt(who, path, v)
  end
  if v.schedule ~= nil or (type(v[1]) == 'string' and schedule_name(v[1])) then
    return normalize_schedule(who, path, v)
  end
  local out = {}
  for k, x in pairs(v) do
    if type(k) ~= 'string' and type(k) ~= 'number' then
      check.fail('%s: %s has the key %s, expected names or a list', who, path, check.describe(k))
    end
    out[k] = normalize_value(who, type(k) == 'number' and ('%s[%d]'):format(path, k) or path .. '.' .. k, x)
  end
  return out
end

-- Where the lr shortcut goes in t: the table and the key, or nil.
local function lr_slot(t)
  local cls = class_of(t.class)
  if cls.defaults.lr ~= nil or t.class == 'SPSA' then return t, 'lr' end
  if cls.defaults.lr_init ~= nil then return t, 'lr_init' end
  if type(t.base) == 'table' then return lr_slot(t.base) end
end

function M.normalize(who, path, v, lr)
  if v == nil then v = 'Adam' end
  if type(v) ~= 'string' and not plain(v) then
    check.fail('%s: %s is %s, expected a class name such as \'Adam\' or a table such as {\'SGD\', lr = 0.1}',
               who, path, check.describe(v))
  end
  local t = normalize_opt(who, path, v)
  if lr ~= nil and not lr_slot(t) then
    check.fail('%s: lr is given but optim.%s has no lr (nor a base with one)', who, t.class)
  end
  return t
end

---------------------------------------------------------------------------------------
-- Building
---------------------------------------------------------------------------------------
local realize

local function realize_value(v, ctx)
  if type(v) ~= 'table' then return v end
  if v.class ~= nil then return realize(v, nil, ctx) end
  if type(v.schedule) == 'string' and type(v.args) == 'table' then
    return ms.schedule[v.schedule](realize_value(v.args, ctx))
  end
  local out = {}
  for k, x in pairs(v) do out[k] = realize_value(x, ctx) end
  return out
end

-- The optimizer described by t, bound to model (nil: unbound, a base).
realize = function(t, model, ctx)
  local cls = class_of(t.class)
  local conf = {}
  for k, x in pairs(t) do
    if k ~= 'class' and k ~= 'name' and k ~= 'preset' then conf[k] = realize_value(x, ctx) end
  end
  local accepts = {}
  for _, k in ipairs(cls.accepted) do accepts[k] = true end
  if t.class == 'SPSA' then
    conf.criterion = ms.nn.CrossEntropyLoss()
    if t.preset then conf = optim().SPSA.preset(t.preset, conf) end
    if (conf.gain_unit == 'epoch' or conf.gc_reset == 'first_epoch') and conf.steps_per_epoch == nil then
      conf.steps_per_epoch = ctx.steps_per_epoch
    end
  end
  if accepts.seed and conf.seed == nil then conf.seed = ctx.seed end
  if t.class == 'BSAM' and conf.num_data == nil then conf.num_data = ctx.num_data end
  if model then return cls(model, conf) end
  return cls(conf)
end

-- A copy of cfg.optimizer with the lr shortcut applied.
local function with_lr(cfg)
  local function copy(v)
    if type(v) ~= 'table' then return v end
    local out = {}
    for k, x in pairs(v) do out[k] = copy(x) end
    return out
  end
  local t = copy(cfg.optimizer)
  if cfg.lr ~= nil then
    local slot, key = lr_slot(t)
    slot[key] = cfg.lr
  end
  return t
end

function M.build(cfg, model, ctx)
  ctx = ctx or {}
  ctx.seed = cfg.seed
  return realize(with_lr(cfg), model, ctx)
end

-- Build it unbound (with stand-ins for what only the data gives): errors come out under
-- who, naming the optimizer's field path.
function M.validate(who, path, cfg)
  local ok, err = pcall(realize, with_lr(cfg), nil,
                        { seed = cfg.seed, num_data = cfg.data.train,
                          steps_per_epoch = math.ceil(cfg.data.train / cfg.batch_size) })
  if not ok then
    check.fail('%s: %s: %s', who, path, tostring(err):gsub('^[^:\n]*:%d+: ', ''))
  end
end

return M
