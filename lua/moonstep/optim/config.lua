-- optim.config — what every optimizer's configuration shares: the rules a hyper-parameter
-- value must keep, what counts as a schedule (anything callable), and the options every
-- optimizer takes besides its hyper-parameters (groups, clipping, non-finite handling, distributed, bucket_mb;
-- documented in Optimizer.lua). Used by Optimizer.define.
--   config.rules.<name>(who, key, v)     raises unless v is acceptable
--   config.callable(v)                   a function or an object with __call
--   config.COMMON                        the common option names
--   config.common_options(opt, who, c)   checks them and stores them on opt
--   config.check_config(opt, who)        checks every hyper-parameter that is a value
local ms = require 'moonstep'
local check = require 'moonstep.check'

local M = {}
local huge = math.huge

-- Rules: rule(who, name, v) raises unless v is acceptable for a hyper-parameter.
M.rules = {}
function M.rules.nonnegative(who, name, v) check.number(who, name, v, 0) end
function M.rules.unit(who, name, v) check.number(who, name, v, 0, 1) end
function M.rules.boolean(who, name, v) check.boolean(who, name, v) end
function M.rules.positive(who, name, v)
  if type(v) ~= 'number' or not (v > 0 and v < huge) then
    check.fail('%s: %s is %s, expected a finite number > 0', who, name, check.describe(v))
  end
end
-- A pair {beta1, beta2}, each in [0, 1).
function M.rules.betas(who, name, v)
  if type(v) ~= 'table' or check.is_tensor(v) or #v ~= 2 then
    check.fail('%s: %s is %s, expected a table {beta1, beta2}', who, name, check.describe(v))
  end
  for i = 1, 2 do
    local b = v[i]
    if type(b) ~= 'number' or not (b >= 0 and b < 1) then
      check.fail('%s: %s[%d] is %s, expected a number in [0, 1)', who, name, i, check.describe(b))
    end
  end
end

-- bucket_mb: megabytes > 0, or false (optim/dist_buckets.lua reads it at each sync too).
function M.rules.bucket_mb(who, name, v)
  if v ~= false and (type(v) ~= 'number' or not (v > 0 and v < huge)) then
    check.fail('%s: %s is %s, expected megabytes > 0 (the gradient all-reduce in buckets) or false (one all-reduce after the closure)',
               who, name, check.describe(v))
  end
end

-- Callable: a function or an object with __call (a schedule).
local callable = check.is_callable
M.callable = callable

M.COMMON = { 'groups', 'clip_norm', 'clip_tensor_norm', 'clip_value', 'skip_nonfinite', 'on_nonfinite',
                 'check_finite', 'distributed', 'bucket_mb' }

-- The common options: checked and stored on self.
function M.common_options(self, who, config)
  local skip = config.skip_nonfinite
  if skip ~= nil then check.boolean(who, 'skip_nonfinite', skip) end
  if config.on_nonfinite ~= nil then
    local s = check.oneof(who, 'on_nonfinite', config.on_nonfinite, { 'error', 'skip' }) == 'skip'
    if skip ~= nil and skip ~= s then
      check.fail('%s: skip_nonfinite and on_nonfinite disagree (they are the same option)', who)
    end
    skip = s
  end
  -- a class may default to skipping (the multi-pass optimizers: optim/passes.lua),
  -- unless the scan that finds them is turned off
  if skip == nil then
    skip = rawget(getmetatable(self), 'skip_default') == true and config.check_finite ~= false
  end
  self.skip_nonfinite = skip
  self.check_finite = true
  if config.check_finite ~= nil then
    self.check_finite = check.boolean(who, 'check_finite', config.check_finite)
    if not self.check_finite and self.skip_nonfinite then
      check.fail('%s: skip_nonfinite = true needs check_finite (the gradient scan that finds them)', who)
    end
  end
  -- distributed = false: this optimizer exchanges nothing between ranks (optim/dist_sync.lua);
  -- kept only when off (the default, true, leaves no field)
  if config.distributed ~= nil and not check.boolean(who, 'distributed', config.distributed) then
    self.distributed = false
  end
  -- bucket_mb = 1: megabytes per bucket of the gradient all-reduce that overlaps the
  -- backward pass (optim/dist_buckets.lua); false: one all-reduce after the closure. Kept
  -- only when given; refused where nothing is all-reduced
  local mb = config.bucket_mb
  if mb ~= nil then
    M.rules.bucket_mb(who, 'bucket_mb', mb)
    if self.distributed == false then
      check.fail('%s: bucket_mb is %s but distributed = false (nothing is all-reduced); drop one of them', who, check.describe(mb))
    end
    if rawget(getmetatable(self), 'loss_only') then
      check.fail('%s: bucket_mb is %s but %s exchanges losses, not gradients (no all-reduce to cut in buckets)',
                 who, check.describe(mb), self.__name)
    end
    self.bucket_mb = mb
  end
  for _, k in ipairs { 'clip_norm', 'clip_tensor_norm', 'clip_value' } do
    if config[k] ~= nil then
      local v = config[k]
      if type(v) ~= 'number' or not (v > 0 and v < huge) then
        check.fail('%s: %s is %s, expected a finite number > 0', who, k, check.describe(v))
      end
      self[k] = v
    end
  end
  local groups = config.groups or {}
  if type(groups) ~= 'table' or getmetatable(groups) ~= nil then
    check.fail('%s: groups is %s, expected a list of group tables', who, check.describe(groups))
  end
  local keys = 0
  for k in pairs(groups) do   -- a list: keys 1..n, no names, no holes
    keys = keys + 1
    if type(k) ~= 'number' or k < 1 or k > #groups or k ~= math.floor(k) then
      check.fail('%s: groups has the key %s, expected a list {group1, group2, ...}', who, check.describe(k))
    end
  end
  if keys ~= #groups then
    check.fail('%s: groups has holes (nil entries), expected a list {group1, group2, ...}', who)
  end
  if #groups + 1 > ms.C.MS_OPTIM_MAX_GROUPS then
    check.fail('%s: %d groups, expected at most %d', who, #groups, ms.C.MS_OPTIM_MAX_GROUPS - 1)
  end
  self.groups = {}
  for i, g in ipairs(groups) do
    if type(g) ~= 'table' or getmetatable(g) ~= nil then
      check.fail('%s: groups[%d] is %s, expected a table {match = ..., <hyper-parameter> = ...}',
                 who, i, check.describe(g))
    end
    local copy = {}
    for k, v in pairs(g) do copy[k] = type(v) == 'table' and not callable(v) and { unpack(v) } or v end
    self.groups[i] = copy
    for k, v in pairs(copy) do
      if self.defaults[k] ~= nil and not callable(v) then self.rules[k](who, ('groups[%d].%s'):format(i, k), v) end
    end
    if copy.lr_scale ~= nil then
      check.number(who, ('groups[%d].lr_scale'):format(i), copy.lr_scale, 0)
      if self.defaults.lr == nil and not rawget(getmetatable(self), 'step_size') then
        check.fail('%s: groups[%d].lr_scale is given but %s has no lr', who, i, self.__name)
      end
    end
  end
end

-- Check every hyper-parameter that is a value (callables are checked when read), then
-- the rules that tie several together (cls:_check_values, given the values).
function M.check_config(self, who)
  local values = {}
  for k in pairs(self.defaults) do
    local v = self[k]
    if not callable(v) then self.rules[k](who, k, v) end
    values[k] = v
  end
  if self._check_values then self:_check_values(who, values) end
end

return M
