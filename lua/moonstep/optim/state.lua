-- optim.state — an optimizer's state as a plain table, and its checked restore.
--
--   s = state.save(opt, who)   { optimizer = 'Adam', numel = n, t =, skipped =, passes =,
--                                hyper = {k = number|boolean|table}, groups = {{...}},
--                                buffers = {k = tensor (a copy)}, extra = {...},
--                                base = <the wrapped optimizer's state> }
--   state.load(opt, who, s)    restores onto the optimizer's current device and dtype;
--                              refuses a state from another optimizer, another arena
--                              size or with a malformed entry, before changing anything.
-- Hyper-parameters that are functions or schedules are not saved (the script that
-- resumes gives them again); a schedule with state (reduce_on_plateau) has it saved in
-- s.schedules and restored into the schedule the resumed optimizer was given. A class may add opt:_save_extra() -> table and
-- opt:_load_extra(who, extra, s) (s: the whole state being loaded; called after the
-- checks; it must check its extra before it changes anything).
local ms = require 'moonstep'
local check = require 'moonstep.check'

local M = {}

local function plain(v) return type(v) == 'table' and getmetatable(v) == nil end

local function copy_value(v)
  if type(v) == 'table' then return { unpack(v) } end
  return v
end

local function callable(v) return require('moonstep.optim.Optimizer').callable(v) end

function M.save(opt, who)
  opt:_bound(who)
  opt:_check_live(who)
  opt:_check_count(who)
  local s = { optimizer = opt.__name, numel = opt.arena.flat:numel(), t = opt.t,
              skipped = opt.skipped, passes = opt.passes, hyper = {}, groups = {}, buffers = {} }
  for k in pairs(opt.defaults) do
    if not callable(opt[k]) then s.hyper[k] = copy_value(opt[k]) end
  end
  -- Stateful schedules (reduce_on_plateau) among the hyper-parameters: their state nests.
  local function schedule_state(v)
    if type(v) == 'table' and callable(v) and type(v.state) == 'function' then return v:state() end
  end
  for k in pairs(opt.defaults) do
    local ss = schedule_state(opt[k])
    if ss ~= nil then s.schedules = s.schedules or {}; s.schedules[k] = ss end
  end
  for i, g in ipairs(opt.groups) do
    local gs = {}
    for k, v in pairs(g) do
      if (opt.defaults[k] ~= nil or k == 'lr_scale') and not callable(v) then gs[k] = copy_value(v) end
    end
    s.groups[i] = gs
  end
  for k, b in pairs(opt.buffers or {}) do
    s.buffers[k] = check.tensor(who, 'state buffer ' .. k, b):clone()
  end
  if opt._save_extra then s.extra = opt:_save_extra() end
  if rawget(opt, 'base') then s.base = opt.base:state() end
  return s
end

local function check_hyper(opt, who, where, k, v)
  if type(k) ~= 'string' or (opt.defaults[k] == nil and not (where ~= 'state.hyper' and k == 'lr_scale')) then
    check.fail('%s: the state holds hyper-parameter %s, which %s does not have (a state from another optimizer?)',
               who, check.describe(k), opt.__name)
  end
  if k == 'lr_scale' then check.number(who, where .. '.lr_scale', v, 0)
  else opt.rules[k](who, where .. '.' .. k, v) end
end

function M.load(opt, who, s)
  opt:_bound(who)
  opt:_check_live(who)
  if not plain(s) or type(rawget(s, 't')) ~= 'number' then
    check.fail('%s: state is %s, expected a table from state()', who, check.describe(s))
  end
  if s.optimizer ~= nil and s.optimizer ~= opt.__name then
    check.fail('%s: the state is from optim.%s, expected one from optim.%s', who,
               tostring(s.optimizer), opt.__name)
  end
  local n = opt.arena.flat:numel()
  if s.numel ~= nil and s.numel ~= n then
    check.fail('%s: the state is for an arena of %s parameters, expected %d (another model?)', who,
               check.describe(s.numel), n)
  end
  check.integer(who, 'state.t', s.t, 0, 2 ^ 53 - 1)
  if s.skipped ~= nil then check.integer(who, 'state.skipped', s.skipped, 0, 2 ^ 53 - 1) end
  if s.passes ~= nil then check.integer(who, 'state.passes', s.passes, 0, 2 ^ 53 - 1) end
  for _, f in ipairs { 'hyper', 'buffers', 'groups' } do
    if s[f] ~= nil and not plain(s[f]) then
      check.fail('%s: state.%s is %s, expected a table', who, f, check.describe(s[f]))
    end
  end
  for k, v in pairs(s.hyper or {}) do check_hyper(opt, who, 'state.hyper', k, v) end
  if s.groups then
    if #s.groups ~= #opt.groups then
      check.fail('%s: the state has %d parameter groups, expected %d', who, #s.groups, #opt.groups)
    end
    for i, g in ipairs(s.groups) do
      if not plain(g) then check.fail('%s: state.groups[%d] is %s, expected a table', who, i, check.describe(g)) end
      for k, v in pairs(g) do check_hyper(opt, who, ('state.groups[%d]'):format(i), k, v) end
    end
  end
  if opt._check_values then
    local values = {}
    for k in pairs(opt.defaults) do values[k] = opt[k] end
    for k, v in pairs(s.hyper or {}) do values[k] = v end
    opt:_check_values(who, values)
  end
  -- Buffers: each must match one of ours in size and shape (created here when the
  -- optimizer makes it lazily, opt:_new_buffer(k), but kept only once the whole state is
  -- valid); the ones bind made must all be there.
  local targets = {}
  for k, b in pairs(s.buffers or {}) do
    local mine = opt.buffers and opt.buffers[k]
    if mine == nil and type(k) == 'string' and opt._new_buffer then mine = opt:_new_buffer(k) end
    if mine == nil then
      check.fail('%s: the state holds buffer %s, which %s does not have (a state from another optimizer or configuration?)',
                 who, check.describe(k), opt.__name)
    end
    check.tensor(who, 'state buffer ' .. tostring(k) .. ' of the optimizer', mine)
    if not ms.is_tensor(b) or check.is_freed(b) or (b.dtype ~= 'float32' and b.dtype ~= 'float64')
       or not require('moonstep.tensor').same_shape(b, mine) then
      check.fail('%s: buffer %s is %s, expected a live float tensor of shape [%s]', who, check.describe(k),
                 check.describe(b), table.concat(mine:shape(), ','))
    end
    targets[k] = mine
  end
  for k in pairs(opt._required or {}) do
    if s.buffers == nil or s.buffers[k] == nil then
      check.fail('%s: the state has no buffer %s, which %s keeps (expected a table from state())', who,
                 check.describe(k), opt.__name)
    end
  end
  if s.base ~= nil and not rawget(opt, 'base') then
    check.fail('%s: the state wraps a base optimizer but %s has none', who, opt.__name)
  end
  if s.schedules ~= nil then
    if not plain(s.schedules) then check.fail('%s: state.schedules is %s, expected a table', who, check.describe(s.schedules)) end
    for k in pairs(s.schedules) do
      local v = opt.defaults[k] ~= nil and opt[k]
      if not (type(v) == 'table' and callable(v) and type(v.load_state) == 'function') then
        check.fail('%s: the state holds the schedule of %s, but the optimizer\'s %s is %s (give the same schedule before load_state)',
                   who, check.describe(k), tostring(k), check.describe(v))
      end
    end
  end
  -- Every check passed. The class's extra (which checks before it writes) and the base
  -- (atomic itself) may still refuse: the extra is put back if the base does.
  for k, ss in pairs(s.schedules or {}) do opt[k]:load_state(ss) end   -- each checks, then writes
  local extra_before = opt._save_extra and opt:_save_extra()
  if opt._load_extra then opt:_load_extra(who, s.extra, s) end
  if s.base ~= nil then
    local ok, err = pcall(M.load, opt.base, ('%s: state.base (its base, optim.%s)'):format(who, opt.base.__name), s.base)
    if not ok then
      if opt._load_extra then opt:_load_extra(who, extra_before, { buffers = opt.buffers or {} }) end
      error(err, 0)
    end
  end
  opt.t, opt.skipped, opt.passes = s.t, s.skipped or 0, s.passes or 0
  for k, v in pairs(s.hyper or {}) do opt[k] = copy_value(v) end
  for i, g in ipairs(s.groups or {}) do
    for k, v in pairs(g) do opt.groups[i][k] = copy_value(v) end
  end
  opt.buffers = opt.buffers or {}
  for k in pairs(opt.buffers) do   -- lazily made buffers the state does not have: not yet made
    if targets[k] == nil then opt.buffers[k] = nil end
  end
  for k, b in pairs(s.buffers or {}) do
    targets[k]:copy_(b)
    opt.buffers[k] = targets[k]
  end
  opt._bad, opt._checked = nil, nil
  return opt
end

return M
