-- moonstep.optim.transforms — composable gradient transforms (optax-style).
--
--   local tx = optim.chain(optim.clip_global_norm(1), optim.scale_by_adam{b1 = 0.9},
--                          optim.add_decayed_weights(1e-4), optim.scale_by_learning_rate(1e-3))
--   tx:bind(model); tx:step(closure)          -- the chain is an optimizer like any other
--
-- A transform t rewrites an update, over flat tensors (an arena's gradient and its params):
--   state   = t.init(params [, ctx])                 a plain table of tensors (or of tables)
--   updates = t.update(updates, state, params, step [, ctx])   step: the 1-based step taken
-- Hyper-parameters are fields of t (t.b1 = 0.95 takes effect at the next update); each is
-- checked at every update. A transform never writes the tensor it is given unless it is
-- the context's work buffer (ctx:work()): the user's gradient arena is left alone. What it
-- returns is the work buffer or a tensor of its state, to be read (not written) before the
-- next update. ctx (optim/transforms_context.lua) carries the arena's slices (for per-tensor
-- norms and masks) and the work buffers; standalone calls get one per params tensor.
--
-- Applying an update is p <- p + u: scale by a negative learning rate last
-- (scale_by_learning_rate(lr) = scale(-lr)).
local ms = require 'moonstep'
local check = require 'moonstep.check'
local K = require 'moonstep.optim.transforms_base'
local C = ms.C

local M = {}
local new, callable, value_at, ok = K.new, K.callable, K.value_at, K.ok
local scal, adds, axpy = K.scal, K.adds, K.axpy

-- Option tables of the {k = v} constructors: defaults filled, unknown keys refused.
local function options(who, opts, defaults)
  local accepted = {}
  for k in pairs(defaults) do accepted[#accepted + 1] = k end
  opts = check.options(who, opts, accepted)
  local out = {}
  for k, v in pairs(defaults) do out[k] = v end
  for k, v in pairs(opts) do out[k] = v end
  return out
end

local function in_unit(who, name, v)   -- [0, 1)
  if type(v) ~= 'number' or not (v >= 0 and v < 1) then
    check.fail('%s: %s is %s, expected a number in [0, 1)', who, name, check.describe(v))
  end
end
local function nonneg(who, name, v) check.number(who, name, v, 0) end
local function positive(who, name, v)
  if type(v) ~= 'number' or not (v > 0 and v < math.huge) then
    check.fail('%s: %s is %s, expected a finite number > 0', who, name, check.describe(v))
  end
end
local function finite(who, name, v) check.number(who, name, v) end

---------------------------------------------------------------------------------------
-- scaling
---------------------------------------------------------------------------------------

-- scale(s): u <- s u.
function M.scale(s)
  local t = new('scale', { s = s }, { s = finite })
  function t.update(u, _, _, step, ctx)
    return scal('scale', ctx:work(), u, t.factor(step))
  end
  function t.factor() return t.s end   -- a pure scale: the chain may fold it into p += s u
  return t
end

-- scale_by_schedule(f): u <- f(step) u; f any callable of the 1-based step (a function,
-- a schedule object).
function M.scale_by_schedule(f)
  local t = new('scale_by_schedule', { f = f }, { f = callable })
  function t.update(u, _, _, step, ctx)
    return scal('scale_by_schedule', ctx:work(), u, t.factor(step))
  end
  function t.factor(step) return value_at('scale_by_schedule', t.f, 'f', step, finite) end
  return t
end

-- scale_by_learning_rate(lr): u <- -lr u; lr a number >= 0 or a callable of the step.
function M.scale_by_learning_rate(lr)
  local t = new('scale_by_learning_rate', { lr = lr }, { lr = K.number_or_callable(nonneg) })
  function t.update(u, _, _, step, ctx)
    return scal('scale_by_learning_rate', ctx:work(), u, t.factor(step))
  end
  function t.factor(step) return -value_at('scale_by_learning_rate', t.lr, 'lr', step, nonneg) end
  return t
end

---------------------------------------------------------------------------------------
-- clipping
---------------------------------------------------------------------------------------

-- clip(max_delta): each element clamped to [-max_delta, max_delta].
function M.clip(max_delta)
  local t = new('clip', { max_delta = max_delta }, { max_delta = nonneg })
  function t.update(u, _, _, _, ctx)
    ok('clip', C.ms_unary(ctx:work(), u, C.MS_CLAMP, -t.max_delta, t.max_delta))
    return ctx:work()
  end
  return t
end

-- clip_global_norm(max_norm): u <- u * max_norm / |u| when |u| > max_norm (the norm over
-- the whole arena, a deterministic reduction); unchanged otherwise. optax's rule: the
-- optimizers' clip_norm option follows torch's max_norm / (|g| + 1e-6) instead.
function M.clip_global_norm(max_norm)
  local t = new('clip_global_norm', { max_norm = max_norm }, { max_norm = positive })
  function t.update(u, _, _, _, ctx)
    local norm = math.sqrt(ctx:sumsq('clip_global_norm', u))
    if norm > t.max_norm then return scal('clip_global_norm', ctx:work(), u, t.max_norm / norm) end
    return u
  end
  return t
end

-- clip_by_tensor_norm(max_norm): the same per slice of the arena (one parameter tensor).
function M.clip_by_tensor_norm(max_norm)
  local t = new('clip_by_tensor_norm', { max_norm = max_norm }, { max_norm = positive })
  function t.update(u, _, _, _, ctx)
    local _, per = ctx:sumsq('clip_by_tensor_norm', u, true)
    local scales, any = {}, false
    for s = 1, #per do
      local norm = math.sqrt(per[s])
      scales[s] = norm > t.max_norm and t.max_norm / norm or 1
      any = any or scales[s] ~= 1
    end
    if not any then return u end
    return ctx:scale_slices('clip_by_tensor_norm', u, scales)
  end
  return t
end

---------------------------------------------------------------------------------------
-- weight decay and momentum
---------------------------------------------------------------------------------------

-- add_decayed_weights(wd [, mask]): u <- u + wd p (L2 when placed before the moments,
-- decoupled after them). wd: a number >= 0 or a callable of the step. mask (which slices
-- decay): a name pattern ('weight', 'bias|norm': Lua patterns separated by |, each
-- matched against a slice's name or equal to its kind) or a function(slice) -> boolean.
function M.add_decayed_weights(wd, mask)
  local t = new('add_decayed_weights', { weight_decay = wd, mask = mask },
                { weight_decay = K.number_or_callable(nonneg), mask = K.optional_mask })
  function t.update(u, _, p, step, ctx)
    local w = value_at('add_decayed_weights', t.weight_decay, 'weight_decay', step, nonneg)
    if w == 0 then return u end
    if t.mask == nil then return axpy('add_decayed_weights', ctx:work(), u, w, p) end
    local m = ctx:mask('add_decayed_weights', t.mask)
    if m == false then return u end
    if m == true then return axpy('add_decayed_weights', ctx:work(), u, w, p) end
    ok('add_decayed_weights', C.ms_ternary(ctx:work(), u, m, p, C.MS_ADDCMUL, w))
    return ctx:work()
  end
  return t
end

-- trace{decay = 0.9, nesterov = false, dampening = 0}: heavy-ball momentum, torch.optim.SGD's
-- buffer: buf <- u at step 1, then decay buf + (1 - dampening) u;
-- u <- nesterov and u + decay buf or buf.
function M.trace(opts)
  local o = options('trace', opts, { decay = 0.9, nesterov = false, dampening = 0 })
  local t = new('trace', o, { decay = nonneg, nesterov = check.boolean, dampening = in_unit })
  function t.init(p) return { trace = ms.zeros_like(p) } end
  function t.update(u, st, _, step, ctx)
    local buf = K.state_tensors('trace', st, u, 'trace')
    if t.dampening == 0 or step == 1 then   -- step 1: the buffer starts as u (torch.optim.SGD)
      ok('trace', C.ms_binary(buf, u, buf, C.MS_ADD, step == 1 and 0 or t.decay))
    else                                  -- decay buf + (1 - dampening) u
      scal('trace', buf, buf, t.decay)
      axpy('trace', buf, buf, 1 - t.dampening, u)
    end
    if not t.nesterov then return buf end
    return axpy('trace', ctx:work(), u, t.decay, buf)
  end
  return t
end

---------------------------------------------------------------------------------------
-- adaptive scalings
---------------------------------------------------------------------------------------

-- scale_by_adam{b1 = 0.9, b2 = 0.999, eps = 1e-8, eps_root = 0}: Adam's direction
-- m <- b1 m + (1 - b1) u, v <- b2 v + (1 - b2) u^2,
-- u <- (m / bc1) / (sqrt(v / bc2 + eps_root) + eps), bc_i = 1 - b_i^step.
function M.scale_by_adam(opts)
  local o = options('scale_by_adam', opts, { b1 = 0.9, b2 = 0.999, eps = 1e-8, eps_root = 0 })
  local t = new('scale_by_adam', o, { b1 = in_unit, b2 = in_unit, eps = nonneg, eps_root = nonneg })
  function t.init(p) return { mu = ms.zeros_like(p), nu = ms.zeros_like(p) } end
  function t.update(u, st, _, step, ctx)
    local who, w = 'scale_by_adam', ctx:work()
    local m, v = K.state_tensors(who, st, u, 'mu', 'nu')
    ok(who, C.ms_ternary(m, m, u, u, C.MS_LERP, 1 - t.b1))
    scal(who, v, v, t.b2)
    ok(who, C.ms_ternary(v, v, u, u, C.MS_ADDCMUL, 1 - t.b2))
    -- u is spent: the denominator goes into the work buffer, 1 / bc1 folded into it
    local bc1, bc2 = 1 - t.b1 ^ step, 1 - t.b2 ^ step
    if t.eps_root == 0 then             -- (sqrt(v) / sqrt(bc2) + eps) bc1, one pass
      ok(who, C.ms_unary(w, v, C.MS_SQRT_AFFINE, bc1 / math.sqrt(bc2), t.eps * bc1))
    else
      scal(who, w, v, 1 / bc2)
      adds(who, w, w, t.eps_root)
      ok(who, C.ms_unary(w, w, C.MS_SQRT_AFFINE, bc1, t.eps * bc1))
    end
    ok(who, C.ms_binary(w, m, w, C.MS_DIV, 1))
    return w
  end
  return t
end

-- The running mean of u^2: nu <- decay nu + (1 - decay) u^2.
local function ema_sq(who, nu, u, decay)
  scal(who, nu, nu, decay)
  ok(who, C.ms_ternary(nu, nu, u, u, C.MS_ADDCMUL, 1 - decay))
end

-- work <- u / (sqrt(x) + eps), through d (a scratch buffer): two passes.
local function over_root(who, ctx, u, x, eps, d)
  ok(who, C.ms_unary(d, x, C.MS_SQRT_AFFINE, 1, eps))
  ok(who, C.ms_binary(ctx:work(), u, d, C.MS_DIV, 1))
  return ctx:work()
end

local rms_defaults = { decay = 0.9, eps = 1e-8, initial_scale = 0 }
local rms_rules = { decay = in_unit, eps = nonneg, initial_scale = nonneg }

-- scale_by_rms{decay = 0.9, eps = 1e-8, initial_scale = 0}: RMSprop's direction
-- nu <- decay nu + (1 - decay) u^2 (nu starts at initial_scale), u <- u / (sqrt(nu) + eps).
function M.scale_by_rms(opts)
  local o = options('scale_by_rms', opts, rms_defaults)
  local t = new('scale_by_rms', o, rms_rules)
  function t.init(p) return { nu = ms.full(p:shape(), t.initial_scale, { dtype = p.dtype, device = p.device }) } end
  function t.update(u, st, _, _, ctx)
    local who, d = 'scale_by_rms', ctx:tmp()
    local nu = K.state_tensors(who, st, u, 'nu')
    ema_sq(who, nu, u, t.decay)
    return over_root(who, ctx, u, nu, t.eps, d)
  end
  return t
end

-- scale_by_stddev{decay = 0.9, eps = 1e-8, initial_scale = 0}: centred RMSprop
-- mu <- decay mu + (1 - decay) u, nu as scale_by_rms, u <- u / (sqrt(nu - mu^2) + eps).
function M.scale_by_stddev(opts)
  local o = options('scale_by_stddev', opts, rms_defaults)
  local t = new('scale_by_stddev', o, rms_rules)
  function t.init(p)
    return { mu = ms.zeros_like(p),
             nu = ms.full(p:shape(), t.initial_scale, { dtype = p.dtype, device = p.device }) }
  end
  function t.update(u, st, _, _, ctx)
    local who, d = 'scale_by_stddev', ctx:tmp()
    local mu, nu = K.state_tensors(who, st, u, 'mu', 'nu')
    ok(who, C.ms_ternary(mu, mu, u, u, C.MS_LERP, 1 - t.decay))
    ema_sq(who, nu, u, t.decay)
    ok(who, C.ms_ternary(d, nu, mu, mu, C.MS_ADDCMUL, -1))
    return over_root(who, ctx, u, d, t.eps, d)
  end
  return t
end

-- scale_by_rss{initial_accumulator_value = 0, eps = 1e-10}: Adagrad's direction
-- sum <- sum + u^2 (sum starts at initial_accumulator_value), u <- u / (sqrt(sum) + eps).
-- torch.optim.Adagrad = chain(add_decayed_weights(wd), scale_by_rss{...},
--                             scale_by_schedule(function(t) return -lr / (1 + (t - 1) lr_decay) end)).
function M.scale_by_rss(opts)
  local o = options('scale_by_rss', opts, { initial_accumulator_value = 0, eps = 1e-10 })
  local t = new('scale_by_rss', o, { initial_accumulator_value = nonneg, eps = nonneg })
  function t.init(p)
    return { sum = ms.full(p:shape(), t.initial_accumulator_value, { dtype = p.dtype, device = p.device }) }
  end
  function t.update(u, st, _, _, ctx)
    local who, d = 'scale_by_rss', ctx:tmp()
    local sum = K.state_tensors(who, st, u, 'sum')
    ok(who, C.ms_ternary(sum, sum, u, u, C.MS_ADDCMUL, 1))
    return over_root(who, ctx, u, sum, t.eps, d)
  end
  return t
end

-- scale_by_nadam{b1 = 0.9, b2 = 0.999, eps = 1e-8, momentum_decay = 4e-3}: NAdam's
-- direction (PyTorch >= 2.0): mu_t = b1 (1 - 0.96^(t psi) / 2), mu_product *= mu_t,
-- m <- lerp(m, u, 1 - b1), v <- b2 v + (1 - b2) u^2,
-- u <- ((1 - mu_t) / (1 - mu_product) u + mu_{t+1} / (1 - mu_product mu_{t+1}) m)
--      / (sqrt(v) / sqrt(1 - b2^t) + eps).
-- torch.optim.NAdam = chain(add_decayed_weights(wd), scale_by_nadam{...}, scale(-lr)).
-- State: mu, nu and mu_product (one element, in the params' dtype as PyTorch keeps it).
function M.scale_by_nadam(opts)
  local o = options('scale_by_nadam', opts, { b1 = 0.9, b2 = 0.999, eps = 1e-8, momentum_decay = 4e-3 })
  local t = new('scale_by_nadam', o, { b1 = in_unit, b2 = in_unit, eps = positive, momentum_decay = nonneg })
  function t.init(p)
    return { mu = ms.zeros_like(p), nu = ms.zeros_like(p),
             mu_product = ms.ones(1, { dtype = p.dtype, device = p.device }) }
  end
  function t.update(u, st, _, step, ctx)
    local who, w, d = 'scale_by_nadam', ctx:work(), ctx:tmp()
    local m, v = K.state_tensors(who, st, u, 'mu', 'nu')
    local mp_t = check.tensor(who .. '.update', 'state.mu_product', st.mu_product)
    local mu = t.b1 * (1 - 0.5 * 0.96 ^ (step * t.momentum_decay))
    local mu_next = t.b1 * (1 - 0.5 * 0.96 ^ ((step + 1) * t.momentum_decay))
    mp_t:mul_(mu)                       -- rounded in the params' dtype, as PyTorch's
    local mp = mp_t:to('float64', 'cpu'):get(1)
    ok(who, C.ms_ternary(m, m, u, u, C.MS_LERP, 1 - t.b1))
    scal(who, v, v, t.b2)
    ok(who, C.ms_ternary(v, v, u, u, C.MS_ADDCMUL, 1 - t.b2))
    local c1, c2 = (1 - mu) / (1 - mp), mu_next / (1 - mp * mu_next)
    -- d = (sqrt(v) / sqrt(bc2) + eps) / c1, then u <- (u + c2 / c1 m) / d
    ok(who, C.ms_unary(d, v, C.MS_SQRT_AFFINE, 1 / (c1 * math.sqrt(1 - t.b2 ^ step)), t.eps / c1))
    ok(who, C.ms_binary(w, u, m, C.MS_ADD, c2 / c1))
    ok(who, C.ms_binary(w, w, d, C.MS_DIV, 1))
    return w
  end
  return t
end

---------------------------------------------------------------------------------------
-- combinators
---------------------------------------------------------------------------------------

-- masked(inner, mask): inner applied to the slices the mask selects (it sees zeros
-- elsewhere, so its norms cover those slices only); the other slices pass unchanged.
function M.masked(inner, mask)
  inner = K.as_transform('masked', 'inner', inner)
  local t = new('masked', { inner = inner, mask = mask }, { mask = K.mask_spec })
  function t.init(p, ctx) return { inner = inner.init(p, ctx and ctx:child(t)) } end
  function t.update(u, st, p, step, ctx)
    local m = ctx:mask('masked', t.mask)
    if m == false then return u end
    local sub = ctx:child(t)
    if m == true then return inner.update(u, st.inner, p, step, sub) end
    ok('masked', C.ms_ternary(sub:work(), m, u, ctx:zero(), C.MS_WHERE, 1))
    local y = inner.update(sub:work(), st.inner, p, step, sub)
    ok('masked', C.ms_ternary(ctx:work(), m, y, u, C.MS_WHERE, 1))
    return ctx:work()
  end
  return t
end

-- apply_every(k): sums the updates of k steps and emits the sum at every k-th step
-- (step % k == 0), zeros at the others (gradient accumulation).
function M.apply_every(k)
  local t = new('apply_every', { k = k }, { k = function(who, name, v) check.integer(who, name, v, 1) end })
  function t.init(p) return { acc = ms.zeros_like(p) } end
  function t.update(u, st, _, step, ctx)
    local acc, w = K.state_tensors('apply_every', st, u, 'acc'), ctx:work()
    axpy('apply_every', acc, acc, 1, u)
    if step % t.k == 0 then
      w:copy_(acc)
      acc:zero_()
    else
      w:zero_()
    end
    return w
  end
  return t
end

-- compose(list): the fold behind optim.chain; itself a transform (chains nest).
function M.compose(list)
  local t = new('chain', { list = list }, {})
  function t.init(p, ctx)
    local states = {}
    for i, x in ipairs(list) do states[i] = x.init(p, ctx) end
    return states
  end
  function t.update(u, states, p, step, ctx, last)
    if type(states) ~= 'table' or #states ~= #list then
      check.fail('chain: the state holds %s entries for %d transforms; call init first',
                 type(states) == 'table' and tostring(#states) or check.describe(states), #list)
    end
    for i = 1, last or #list do u = list[i].update(u, states[i], p, step, ctx) end
    return u
  end
  return t
end

-- Constructors in the order the docs list them (ms.optim.transforms).
M.names = { 'scale', 'scale_by_schedule', 'scale_by_learning_rate', 'clip', 'clip_global_norm',
            'clip_by_tensor_norm', 'add_decayed_weights', 'trace', 'scale_by_adam', 'scale_by_rms', 'scale_by_rss', 'scale_by_nadam',
            'scale_by_stddev', 'masked', 'apply_every' }

return M
