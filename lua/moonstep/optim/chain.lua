-- optim.chain(t1, t2, ...) — an optimizer scripted from gradient transforms (optax's chain).
--
--   local opt = optim.chain(optim.clip_global_norm(1), optim.scale_by_adam{b2 = 0.99},
--                           optim.add_decayed_weights(1e-4), optim.scale_by_learning_rate(1e-3))
--   opt:bind(model)                 -- unbound until then; optim.chain(model, t1, ...) binds at once
--   opt:step(closure)               -- like every optimizer: evaluate/apply/step, state()
--
-- Each step: u = the gradient arena, passed through t1, t2, ... in order (each an init/update
-- pair over flat tensors, optim/transforms.lua), then p <- p + u. Trailing pure scalings
-- (scale, scale_by_schedule, scale_by_learning_rate) are folded into that axpy. The
-- transforms never write the gradient arena (the engine's clip_* options do, as documented
-- in Optimizer.lua). A last argument that is a plain table is the optimizer's options:
-- clip_norm, clip_tensor_norm, clip_value, skip_nonfinite (groups: use masks instead).
--   opt.transforms     the list; their fields are the hyper-parameters (opt.transforms[2].b1)
--   opt.tx             the composed transform (chains nest: optim.chain(opt1, optim.clip(1)))
-- State: the transforms' tensors are the optimizer's buffers, named <position>.<field>
-- ('2.mu', '2.nu', '3.inner.1.trace'); their numeric hyper-parameters go in state.extra.
-- A state from a chain of other transforms is refused.
local ms = require 'moonstep'
local Optimizer = require 'moonstep.optim.Optimizer'
local check = require 'moonstep.check'
local T = require 'moonstep.optim.transforms'
local B = require 'moonstep.optim.transforms_base'
local context = require 'moonstep.optim.transforms_context'

local Chain = Optimizer.define('chain', {}, {})

-- The transforms' state (nested tables) as a flat map 'a.b.c' -> tensor, and for each key
-- the table and field holding it (to re-point them at the buffers the driver keeps).
local function flatten(prefix, st, out, where)
  for k, v in pairs(st) do
    local key = prefix .. tostring(k)
    if ms.is_tensor(v) then out[key], where[key] = v, { st, k }
    elseif type(v) == 'table' then flatten(key .. '.', v, out, where)
    else error(('chain: state entry %s is a %s; transforms keep tensors only'):format(key, type(v))) end
  end
end

-- How many leading transforms update() runs: the trailing ones with a factor() (pure
-- scalings) fold into p <- p + factor u.
local function unfolded(list)
  local n = #list
  while n > 0 and rawget(list[n], 'factor') do n = n - 1 end
  return n
end

function Chain:_init()
  local a = self.arena
  self.ctx = context.new(a.flat, self.table)
  self.tstate = self.tx.init(a.flat, self.ctx)
  self.buffers, self.where = {}, {}
  flatten('', self.tstate, self.buffers, self.where)
end

function Chain:_update(_, t)
  local a, list = self.arena, self.transforms
  -- the driver may have moved a buffer (model:to) or restored one: the transforms' state
  -- tables follow the buffers
  for k, w in pairs(self.where) do w[1][w[2]] = self.buffers[k] end
  self.ctx:rebase(a.flat)
  local n = unfolded(list)
  local u = self.tx.update(a.gflat, self.tstate, a.flat, t, self.ctx, n)
  local f = 1
  for i = n + 1, #list do f = f * list[i].factor(t) end
  if f ~= 0 then B.axpy(self.__name .. '.step', a.flat, a.flat, f, u) end
  return 0
end

-- state.extra: the transforms' names and numeric hyper-parameters.
local function hypers(list)
  local names, values = {}, {}
  for i, x in ipairs(list) do
    names[i], values[i] = x.name, {}
    for _, k in ipairs(x.hyper) do
      local v = x[k]
      if type(v) == 'number' or type(v) == 'boolean' or type(v) == 'string' then values[i][k] = v end
    end
  end
  return names, values
end

function Chain:_save_extra()
  local names, values = hypers(self.transforms)
  return { transforms = names, hyper = values }
end

function Chain:_load_extra(who, extra)
  local mine = hypers(self.transforms)
  local names = type(extra) == 'table' and extra.transforms
  local same = type(names) == 'table' and #names == #mine
  for i = 1, same and #mine or 0 do same = same and names[i] == mine[i] end
  if not same then
    check.fail('%s: the state is from chain(%s), expected one from chain(%s)', who,
               type(names) == 'table' and table.concat(names, ', ') or check.describe(names),
               table.concat(mine, ', '))
  end
  local hyper = type(extra.hyper) == 'table' and extra.hyper or {}
  for i, x in ipairs(self.transforms) do          -- all checked before any is written
    if hyper[i] ~= nil and type(hyper[i]) ~= 'table' then
      check.fail('%s: state.extra.hyper[%d] is %s, expected a table', who, i, check.describe(hyper[i]))
    end
    for k, v in pairs(hyper[i] or {}) do
      if x.rules[k] == nil then
        check.fail('%s: the state holds %s.%s, which %s does not have', who, x.name, tostring(k), x.name)
      end
      x.rules[k](who, ('state.extra.hyper[%d].%s'):format(i, k), v)
    end
  end
  for i, x in ipairs(self.transforms) do
    for k, v in pairs(hyper[i] or {}) do x[k] = v end
  end
end

-- A plain options table (not a transform, a chain or something to bind to).
local function is_options(v)
  return type(v) == 'table' and getmetatable(v) == nil and not ms.is_tensor(v[1])
end
local function is_transform_like(v)
  return B.is_transform(v) or (type(v) == 'table' and B.is_transform(rawget(v, 'tx')))
end

-- optim.chain([target,] t1, t2, ... [, options])
local function chain(...)
  local args, n = { ... }, select('#', ...)
  local first, last, target, config = 1, n, nil, nil
  if n >= 1 and not is_transform_like(args[1]) and not (n == 1 and is_options(args[1])) then
    target, first = args[1], 2
  end
  if last >= first and is_options(args[last]) then config, last = args[last], last - 1 end
  if config and config.groups ~= nil then
    check.fail('chain: groups is not an option of chain, expected masks instead (add_decayed_weights(wd, mask), masked(t, mask))')
  end
  local list = {}
  for i = first, last do list[#list + 1] = B.as_transform('chain', ('argument %d'):format(i), args[i]) end
  local opt = Chain.new(nil, config or {})
  opt.transforms, opt.tx = list, T.compose(list)
  if target ~= nil then opt:_bind(target, 'chain') end
  return opt
end

-- register(optim): optim.chain, every transform constructor flat (optim.scale_by_adam, ...)
-- and optim.transforms, their names. These are functions, not optimizer classes (only
-- classes made by Optimizer.define are optimizers; the chain class is not exported).
local function register(optim)
  optim.chain = chain
  local names = {}
  for i, name in ipairs(T.names) do
    optim[name], names[i] = T[name], name
  end
  optim.transforms = names
  return optim
end

return { chain = chain, Chain = Chain, register = register }
