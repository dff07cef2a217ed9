-- optim.policy — the pass policy under which an optimizer runs a closure.
--
--   policy.prepare(opt, who, pass)       records or replays the generator state
--   policy.run(opt, closure, pass)       -> the closure's results
--     pass.pass   the number handed to the closure (1 = the first evaluation of a step)
--     pass.bn     'update' (BatchNorm running statistics updated, the default) or
--                 'freeze' (not updated: the extra passes of SAM, ACME...); needs the
--                 optimizer to hold a model (built from one), a no-op otherwise
--     pass.rng    'record' (the default: the generator state before the closure is
--                 kept), 'replay' (the generator is reset to the recorded state, so
--                 dropout draws the same masks as the recorded pass) or 'none'
-- The BatchNorm flags are restored afterwards, also when the closure raises.
local ms = require 'moonstep'
local check = require 'moonstep.check'
local buckets = require 'moonstep.optim.dist_buckets'

local M = {}

M.OPTIONS = { 'pass', 'bn', 'rng', 'zero_grad' }

-- Policies built by moonstep itself (optim/passes.lua), already checked: M.trusted[p].
M.trusted = setmetatable({}, { __mode = 'k' })

function M.check(who, pass)
  if pass == nil then return { pass = 1, bn = 'update', rng = 'record', zero_grad = true } end
  if M.trusted[pass] then return pass end
  if type(pass) ~= 'table' or check.is_tensor(pass) then
    check.fail('%s: pass is %s, expected a table {pass =, bn =, rng =, zero_grad =}', who, check.describe(pass))
  end
  pass = check.options(who, pass, M.OPTIONS)
  local p = {}
  p.pass = pass.pass == nil and 1 or check.integer(who, 'pass.pass', pass.pass, 1)
  p.bn = check.oneof(who, 'pass.bn', pass.bn or 'update', { 'update', 'freeze' })
  p.rng = check.oneof(who, 'pass.rng', pass.rng or 'record', { 'record', 'replay', 'none' })
  p.zero_grad = pass.zero_grad == nil and true or check.boolean(who, 'pass.zero_grad', pass.zero_grad)
  return p
end

-- BatchNorm-like modules (those with an update_stats flag) of the model, with their flags.
local function stat_modules(model)
  local list = {}
  model:apply(function(m)
    if rawget(m, 'update_stats') ~= nil then list[#list + 1] = { m = m, on = m.update_stats } end
  end)
  return list
end

-- The generator: recorded or replayed (before the closure runs, outside any pcall, so
-- that an error names the caller's line).
function M.prepare(opt, who, p)
  if p.rng == 'record' then
    opt._rng = ms.rng_state()
  elseif p.rng == 'replay' then
    if not opt._rng then
      check.fail("%s: pass.rng = 'replay' but no pass recorded the generator state yet (run a pass with rng = 'record' first)", who)
    end
    ms.set_rng_state(opt._rng)
  end
end

-- Runs the closure; during it opt._taking is the step being taken (opt:get reads it), and
-- optim/dist_buckets.lua knows whose closure runs (closure_begins / closure_ends).
-- The BatchNorm flags and opt._taking are restored afterwards, also when it raises.
function M.run(opt, closure, p)
  local frozen
  if p.bn == 'freeze' and opt.model then
    frozen = stat_modules(opt.model)
    for _, f in ipairs(frozen) do f.m.update_stats = false end
  end
  opt._taking = opt.t + 1
  local outer = buckets.closure_begins(opt)   -- (data parallelism: whose closure runs)
  local res = { pcall(closure, p.pass) }
  buckets.closure_ends(outer)
  opt._taking = nil
  if frozen then
    for _, f in ipairs(frozen) do f.m.update_stats = f.on end
  end
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2)
end

return M
