-- moonstep.optim.transforms_base — what the transforms (optim/transforms.lua) share: the
-- transform class, hyper-parameter checks, and the elementwise steps they are built of
-- (the runtime's ms_unary / ms_binary / ms_ternary, written into a given output so that
-- no step allocates).
local ms = require 'moonstep'
local check = require 'moonstep.check'
local core = require 'moonstep.core'
local C = ms.C

local M = {}

-- A transform: a table with init / update functions and its hyper-parameters as fields.
local Transform = { __name = 'transform' }
M.Transform = Transform

function M.is_transform(v) return type(v) == 'table' and getmetatable(v) == Transform end

-- The update (and factor) functions a constructor assigns are wrapped so that every update first re-checks the
-- hyper-parameters (a script may have written t.b1 = 2).
Transform.__tostring = function(t) return 'transform ' .. rawget(t, 'name') end
Transform.__newindex = function(t, k, v)
  if k == 'update' and type(v) == 'function' then
    local f = v
    v = function(u, state, params, step, ctx, ...)
      local who = rawget(t, 'name') .. '.update'
      M.validate(t, rawget(t, 'name'))
      check.tensor(who, 'updates', u)
      check.tensor(who, 'params', params)
      check.integer(who, 'step', step, 1)
      if u:numel() ~= params:numel() then
        check.fail('%s: updates has %d elements but params %d, expected the same', who, u:numel(), params:numel())
      end
      if type(state) ~= 'table' then
        check.fail('%s: state is %s, expected the table init(params) returned', who, check.describe(state))
      end
      return f(u, state, params, step, require('moonstep.optim.transforms_context').of(params, ctx), ...)
    end
  elseif k == 'factor' and type(v) == 'function' then
    local f = v
    v = function(...)
      M.validate(t, rawget(t, 'name'))
      return f(...)
    end
  end
  rawset(t, k, v)
end

-- Every hyper-parameter of t that has a rule, checked (who: the public name).
function M.validate(t, who)
  for k, rule in pairs(rawget(t, 'rules')) do rule(who, k, rawget(t, k)) end
end

-- new(name, fields, rules): a transform named `name` with hyper-parameter fields (each
-- checked by rules[k](who, k, v)); init defaults to a stateless one. Constructors set
-- t.update (and t.init when there is state).
function M.new(name, fields, rules)
  local t = setmetatable({ name = name, rules = rules }, Transform)
  for k, v in pairs(fields) do rawset(t, k, v) end
  rawset(t, 'hyper', {})                 -- the numeric hyper-parameters (saved in state())
  for k in pairs(rules) do t.hyper[#t.hyper + 1] = k end
  table.sort(t.hyper)
  M.validate(t, name)
  rawset(t, 'init', function() return {} end)
  return t
end

-- A callable: a function, or a table with a __call metamethod (a schedule object).
M.is_callable = check.is_callable

function M.callable(who, name, v)
  if not M.is_callable(v) then
    check.fail('%s: %s is %s, expected a function of the step (or a schedule)', who, name,
               check.describe(v))
  end
  return v
end

-- A rule accepting a callable (checked when called) or a number under rule.
function M.number_or_callable(rule)
  return function(who, name, v)
    if not M.is_callable(v) then rule(who, name, v) end
  end
end

-- The value of hyper-parameter v (a number or a callable of the step), checked by rule.
function M.value_at(who, v, name, step, rule)
  if M.is_callable(v) then
    local ok, r = pcall(v, step)
    if not ok then check.fail('%s: %s raised at step %d: %s', who, name, step, check.reason(r)) end
    name, v = ('%s (its value at step %d)'):format(name, step), r
  end
  rule(who, name, v)
  return v
end

-- A mask: a name pattern or a function of a slice (optional_mask: or nil).
function M.mask_spec(who, _, mask)
  if type(mask) ~= 'string' and not M.is_callable(mask) then
    check.fail("%s: mask is %s, expected a name pattern ('bias|norm') or a function(slice) -> boolean",
               who, check.describe(mask))
  end
  if type(mask) == 'string' then
    for alt in (mask .. '|'):gmatch('([^|]*)|') do
      local ok, err = pcall(string.find, '', alt)
      if alt == '' or not ok then
        check.fail('%s: mask %q has %s, expected Lua patterns separated by |', who, mask,
                   alt == '' and 'an empty alternative' or 'an invalid pattern (' .. check.reason(err) .. ')')
      end
    end
  end
  return mask
end
function M.optional_mask(who, name, mask)
  if mask ~= nil then M.mask_spec(who, name, mask) end
end

-- A transform argument: a transform, or a chain optimizer (its composed transform).
function M.as_transform(who, name, v)
  if M.is_transform(v) then return v end
  if type(v) == 'table' and M.is_transform(rawget(v, 'tx')) then return rawget(v, 'tx') end
  check.fail('%s: %s is %s, expected a transform (optim.scale(-0.1), optim.scale_by_adam{}, ...) or a chain',
             who, name, check.describe(v))
end

-- The state tensors st[k] of a transform's update, checked (a state from another
-- transform, or a freed buffer, is an error naming it).
function M.state_tensors(who, st, u, ...)
  local out = {}
  for i, k in ipairs { ... } do
    out[i] = check.tensor(who .. '.update', 'state.' .. k, st[k])
    if out[i]:numel() ~= u:numel() then
      check.fail('%s.update: state.%s has %d elements but the updates %d (a state from init of other params?)',
                 who, k, out[i]:numel(), u:numel())
    end
  end
  return unpack(out)
end

-- Elementwise steps into out (which may be an input: same layout, elementwise).
function M.ok(who, rc)
  if rc ~= 0 then core.fail(who) end
end
function M.scal(who, out, x, s)          -- out <- s x
  M.ok(who, C.ms_unary(out, x, C.MS_MUL_SCALAR, s, 0))
  return out
end
function M.adds(who, out, x, s)          -- out <- x + s
  M.ok(who, C.ms_unary(out, x, C.MS_ADD_SCALAR, s, 0))
  return out
end
function M.axpy(who, out, a, alpha, b)   -- out <- a + alpha b
  M.ok(who, C.ms_binary(out, a, b, C.MS_ADD, alpha))
  return out
end

return M
