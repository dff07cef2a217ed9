-- optim.passes — the closure protocol every multi-pass optimizer shares (the SAM family,
-- ACME, BSAM; DESIGN: "the optimizer owns the passes").
--
--   loss, info = opt:step(closure)   closure(pass) runs forward + backward on the SAME
--                                    mini-batch each time and returns the loss (a number)
-- Before every call the optimizer zeroes the gradients. Pass 1 records the generator
-- state; every later pass of the step replays it (replay_rng = true, the default), so
-- dropout draws the same masks in every pass. BatchNorm running statistics:
--   bn = 'first'   updated by pass 1 only (the default; official SAM keeps pass 1's state)
--   bn = 'both'    updated by every pass (as a plain closure would; bSAM's official code)
--   bn = 'none'    updated by no pass (the statistics stay as they are)
-- A non-finite loss or gradient in any pass skips the whole update (opt.skipped counts it;
-- the weights are left exactly as before the step) unless skip_nonfinite = false, which
-- raises instead (after restoring the weights). opt.passes counts closure calls.
--
--   passes.DEFAULTS / passes.RULES      the two options, merged into a class's hyper-parameters
--   passes.policy(opt, who, k [, keep_grads])   the pass policy (optim/policy.lua) of pass k
--                                       (keep_grads: the gradients are not zeroed, for a
--                                       closure that only evaluates the loss: SPSA)
--   loss = passes.run(opt, who, closure, k [, own_scan])   pass k; opt._bad says whether it was
--                                       non-finite (own_scan: the caller scans the gradients itself)
--   ... = passes.step(opt, who, closure, body, undo)   a multi-pass class's step: checks the
--                                       closure, then runs body(opt, who, closure) guarded:
--   ... = passes.guard(opt, who, body, undo, ...)   one step: body(...) under pcall; on any
--                                       error (the closure's, Ctrl-C) undo(opt) puts the weights
--                                       back before the error goes on. A step on parameters
--                                       that are already being stepped (opt:step called from
--                                       its own closure) is refused.
local check = require 'moonstep.check'

local M = {}

M.DEFAULTS = { bn = 'first', replay_rng = true }
M.RULES = {
  bn = function(who, name, v) check.oneof(who, name, v, { 'first', 'both', 'none' }) end,
  replay_rng = 'boolean',
}

-- Merge the protocol's options into a class's defaults and rules (returns both).
function M.merge(defaults, rules)
  for k, v in pairs(M.DEFAULTS) do defaults[k] = v end
  for k, v in pairs(M.RULES) do rules[k] = v end
  return defaults, rules
end

local policy = require 'moonstep.optim.policy'
local made = {}   -- the policy tables, made once each (checked here, trusted by policy.check)

function M.policy(opt, who, k, keep_grads)
  local t = opt.t + 1
  local bn = opt:_hyper(who, 'bn', t, 1)
  local update = bn == 'both' or (bn == 'first' and k == 1)
  local rng = k == 1 and 'record' or (opt:_hyper(who, 'replay_rng', t, 1) and 'replay' or 'none')
  local key = k * 12 + (keep_grads and 6 or 0) + (update and 3 or 0) + (rng == 'record' and 0 or rng == 'replay' and 1 or 2)
  local p = made[key]
  if not p then
    p = { pass = k, bn = update and 'update' or 'freeze', rng = rng, zero_grad = not keep_grads }
    made[key] = p
    policy.trusted[p] = true
  end
  return p
end

local stepping = setmetatable({}, { __mode = 'k' })   -- arena -> the optimizer stepping it

function M.guard(opt, who, body, undo, ...)
  local key = opt.arena
  local busy = stepping[key]
  if busy then
    check.fail('%s: called while optim.%s is taking a step on the same parameters (from its closure?); a step cannot start inside another',
               who, busy)
  end
  stepping[key] = opt.__name
  local res = { pcall(body, ...) }
  stepping[key] = nil
  if not res[1] then
    if undo then undo(opt) end
    error(res[2], 0)
  end
  return unpack(res, 2, table.maxn(res))
end

-- The entry of every multi-pass step: bound, a closure (the message says how often the
-- class calls it: cls.passes_doc), then body(opt, who, closure) under the guard.
function M.step(opt, who, closure, body, undo)
  opt:_bound(who)
  if type(closure) ~= 'function' then
    check.fail('%s: closure is %s, expected a function(pass) that runs forward and backward on the same mini-batch and returns the loss; a closure is required (%s calls it %s)',
               who, check.describe(closure), opt.__name, opt.passes_doc or 'more than once a step')
  end
  return M.guard(opt, who, body, undo, opt, who, closure)
end

function M.run(opt, who, closure, k, own_scan)
  return opt:_evaluate(who, closure, M.policy(opt, who, k), own_scan)
end

return M
