-- optim.acme_state — what ACME keeps besides its buffers (optim/ACME.lua): the plain
-- option compat, the per-group states (adapted lr, the lr value they were adapted from,
-- step, line-model code counts) saved in state().extra and checked on load, and the
-- accessors opt:step_size(group), opt:code_counts(group).
local check = require 'moonstep.check'

local M = {}

-- Defines them on the class.
function M.install(ACME)
  local function compat_of(who, c)
    local out = { periodic_schedule = false }
    if c == nil then return out end
    c = check.options(who .. ' compat', c, { 'periodic_schedule' })
    for k, v in pairs(c) do out[k] = check.boolean(who, 'compat.' .. k, v) end
    return out
  end

  -- The plain option compat (not a hyper-parameter): checked, with its defaults filled in.
  function ACME:_configure(who, config)
    rawset(self, 'compat', compat_of(who, config.compat))
  end

  -- The adapted step size of group g (1 = the default group); nil before the first step.
  function ACME:step_size(group)
    local g = group == nil and 1 or check.integer('ACME.step_size', 'group', group, 1, self.ngroups or 1)
    local gs = rawget(self, 'gs')
    return gs and gs[g] and gs[g].lr or nil
  end

  ---------------------------------------------------------------------------------------
  -- state
  ---------------------------------------------------------------------------------------

  function ACME:_save_extra()
    local extra = { compat = { periodic_schedule = rawget(self, 'compat').periodic_schedule } }
    local gs = rawget(self, 'gs')
    if gs then
      extra.groups = {}
      for g, s in ipairs(gs) do
        local codes = {}
        for c = -1, 7 do codes[c + 2] = s.codes[c] or 0 end
        extra.groups[g] = { lr = s.lr, seen = s.seen, step = s.step, codes = codes }
      end
    end
    return extra
  end

  function ACME:_load_extra(who, extra)
    if extra ~= nil and (type(extra) ~= 'table' or getmetatable(extra) ~= nil) then
      check.fail('%s: state.extra is %s, expected a table {compat =, groups =}', who, check.describe(extra))
    end
    extra = extra or {}
    local compat = compat_of(who .. ' (state.extra)', extra.compat)
    local gs
    if extra.groups ~= nil then
      if type(extra.groups) ~= 'table' or #extra.groups ~= self.ngroups then
        check.fail('%s: state.extra.groups is %s, expected %d group states', who, check.describe(extra.groups), self.ngroups)
      end
      gs = {}
      for g, s in ipairs(extra.groups) do
        local where = ('state.extra.groups[%d]'):format(g)
        if type(s) ~= 'table' then check.fail('%s: %s is %s, expected a table', who, where, check.describe(s)) end
        check.number(who, where .. '.lr', s.lr, 0)
        check.number(who, where .. '.seen', s.seen, 0)
        check.integer(who, where .. '.step', s.step, 1)
        local codes = {}
        if type(s.codes) ~= 'table' or #s.codes ~= 9 then
          check.fail('%s: %s.codes is %s, expected 9 counts (codes -1 to 7)', who, where, check.describe(s.codes))
        end
        for c = -1, 7 do codes[c] = check.integer(who, where .. '.codes', s.codes[c + 2], 0) end
        gs[g] = { lr = s.lr, seen = s.seen, step = s.step, codes = codes }
      end
    end
    rawset(self, 'compat', compat)
    rawset(self, 'gs', gs)
  end

  -- The counts of each line-model code of group g (codes -1 .. 7), a table code -> count.
  function ACME:code_counts(group)
    local g = group == nil and 1 or check.integer('ACME.code_counts', 'group', group, 1, self.ngroups or 1)
    local out, gs = {}, rawget(self, 'gs')
    for c = -1, 7 do out[c] = gs and gs[g] and gs[g].codes[c] or 0 end
    return out
  end
end

return M
