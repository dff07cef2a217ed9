-- optim.LBFGS(model_or_params, config) — limited-memory BFGS driven by a closure, with the
-- semantics of torch.optim.LBFGS (what Torch7's optim.lbfgs users expect):
--
--   local opt = optim.LBFGS(model, {lr = 1, max_iter = 20, history_size = 100,
--                                   line_search_fn = 'strong_wolfe'})
--   local loss, info = opt:step(function(pass) ... forward, backward ... return loss end)
--
-- Options (torch's names and defaults):
--   lr = 1                 step length (fixed steps) or first trial step (line search)
--   max_iter = 20          iterations per step() call
--   max_eval               closure calls per step() call (default floor(max_iter * 5 / 4),
--                          fixed at construction as torch does)
--   tolerance_grad = 1e-7  stop when max |gradient| <= tolerance_grad (at the first
--                          evaluation: return without moving)
--   tolerance_change = 1e-9  stop when max |step| or |loss change| falls below it
--   history_size = 100     curvature pairs kept
--   line_search_fn = false (fixed steps) or 'strong_wolfe' (optim/line_search.lua)
--   bn = 'first', replay_rng = true   the closure protocol (optim/passes.lua): BatchNorm
--                          statistics move on the first closure call of a step only, and
--                          every call replays the first one's generator state
--   skip_nonfinite (default true), check_finite: as every optimizer
-- One parameter group only (as torch); the gradient-clipping options are refused (the
-- line search and the curvature pairs need the loss's own gradient).
--
-- step(closure) returns the FIRST loss of the step (as torch) and
--   info = { loss = first, final = the last loss the step computed, passes = closure calls,
--            iterations = iterations made, skipped = false | true }
-- (final is the loss at the returned weights, except after a fixed-step iteration that
-- ended the step at max_iter: torch does not re-evaluate there, final is the loss before
-- that last move; nil for a skipped step). Closure calls per step: 1, then per iteration 1
-- (fixed steps; none after the max_iter-th) or the line search's evaluations (1 to 26).
-- max_eval is checked after each iteration (torch's rule): fixed steps stop exactly at it,
-- a line search may run past it within its last iteration.
-- A step that finds max |g| <= tolerance_grad at its first call makes no iteration.
-- apply() is refused (a step needs the closure); evaluate() runs one pass as every
-- optimizer's does.
--
-- Arithmetic: the two-loop recursion runs over the whole arena (self.arena.flat /
-- gflat) with in-place tensor ops; dot products through optim/reduce.lua (float64,
-- deterministic). torch computes its dots and step scalars in the tensor dtype: float64
-- agrees to rounding, float32 differs in the last bits (the spec states the tolerance).
--
-- State (state()/load_state(), resumed bit-exactly), as torch's: buffers d (the last
-- direction), prev_flat_grad, old_dirs_i / old_stps_i (i = 1 oldest: the gradient
-- differences y and steps s of the kept pairs); extra = { n_iter, func_evals, t, H_diag,
-- ro = {1 / (y.s) per pair}, prev_loss }. Memory: that state, plus scratch: one copy of
-- the weights (the start of the step, restored when a pass fails), one spare pair, and
-- with the line search one more copy of the weights and three gradient copies.
--
-- Non-finite values: when a closure call after the first is non-finite (skip_nonfinite,
-- the default) the weights go back exactly to where the step began, the step counts as
-- skipped (opt.skipped; opt.t does not advance) and the pending direction is dropped
-- (the next step builds its direction from the kept pairs, with no pair from the
-- abandoned point); a non-finite first call skips with nothing changed. A closure that
-- raises (or skip_nonfinite = false) gets the same restore, then the error.
local ms = require 'moonstep'
local Optimizer = require 'moonstep.optim.Optimizer'
local passes = require 'moonstep.optim.passes'
local reduce = require 'moonstep.optim.reduce'
local ls = require 'moonstep.optim.line_search'
local check = require 'moonstep.check'

local abs, floor = math.abs, math.floor
local pmin = ls.pmin

local function int1(who, name, v) check.integer(who, name, v, 1) end

local DEFAULTS, RULES = passes.merge({
  lr = 1, max_iter = 20, max_eval = 25, tolerance_grad = 1e-7, tolerance_change = 1e-9,
  history_size = 100, line_search_fn = false,
}, {
  lr = 'nonnegative', max_iter = int1, max_eval = int1, tolerance_grad = 'nonnegative',
  tolerance_change = 'nonnegative', history_size = int1,
  line_search_fn = function(who, name, v)
    if v ~= false and v ~= 'strong_wolfe' then
      check.fail("%s: %s is %s, expected false (fixed steps) or 'strong_wolfe'", who, name, check.describe(v))
    end
  end,
})

local NO_CLIP = 'the line search and the curvature pairs need the gradient of the loss itself; torch.optim.LBFGS has no clipping'
local LBFGS = Optimizer.define('LBFGS', DEFAULTS, RULES, {
  refuse = { clip_norm = NO_CLIP, clip_tensor_norm = NO_CLIP, clip_value = NO_CLIP },
})
LBFGS.skip_default = true             -- a non-finite pass skips the step (closure protocol)
LBFGS.multipass = true                -- step(closure) only: apply() and step() are refused
LBFGS.single_group = true             -- the groups option is refused

-- The max_eval default: after the common options, before the hyper-parameter checks.
function LBFGS:_configure(who, config)
  if config.max_eval == nil then
    -- torch: max_eval = max_iter * 5 // 4, fixed when the optimizer is built
    local mi = self.max_iter
    if Optimizer.callable(mi) then
      rawset(self, 'max_eval', function(t) return floor(self:_hyper('LBFGS.step', 'max_iter', t, 1) * 5 / 4) end)
    else
      self.rules.max_iter(who, 'max_iter', mi)   -- (checked before it is used)
      rawset(self, 'max_eval', floor(mi * 5 / 4))
    end
  end
end

-- The engine's constructor, then the groups refusal. Not in _configure nor opts.refuse:
-- an empty groups list is accepted, and when binding, a group that matches no parameter is
-- reported first (by the engine's bind, naming the group), as for every optimizer.
local define_new = LBFGS.new
function LBFGS.new(target, config)
  local self = define_new(target, config)
  if #self.groups > 0 then
    check.fail('LBFGS: groups has %d group(s), but L-BFGS takes one parameter group only (as torch.optim.LBFGS): its curvature pairs span the whole arena',
               #self.groups)
  end
  return self
end

function LBFGS:_init()
  self.buffers = {}
  self:_reset_memory(true)
end

-- The curvature memory: everything = true clears the pairs too (a fresh optimizer).
function LBFGS:_reset_memory(everything)
  rawset(self, 'lbfgs', rawget(self, 'lbfgs') or { n_iter = 0, func_evals = 0, ro = {} })
  local s = self.lbfgs
  s.t, s.prev_loss = nil, nil
  self.buffers.d, self.buffers.prev_flat_grad = nil, nil
  if everything then
    for i = 1, #s.ro do
      self.buffers['old_dirs_' .. i], self.buffers['old_stps_' .. i] = nil, nil
    end
    s.ro, s.H_diag = {}, nil
  end
end

-- i when k names the buffer of pair i (old_dirs_i or old_stps_i), else nil.
local function pair_index(k)
  if type(k) ~= 'string' then return nil end
  return tonumber(k:match('^old_dirs_(%d+)$') or k:match('^old_stps_(%d+)$'))
end

function LBFGS:_new_buffer(k)
  if k == 'd' or k == 'prev_flat_grad' or pair_index(k) then
    return ms.zeros_like(self.arena.flat)
  end
end

function LBFGS:apply()
  check.fail('LBFGS.apply: L-BFGS evaluates the closure several times per step (line search, re-evaluation after each move); use opt:step(closure)')
end

-- A marker a pass raises to abandon the step when it was non-finite (skip mode).
local NONFINITE = setmetatable({}, { __tostring = function() return 'LBFGS: non-finite pass' end })

-- The step's next closure call (st.evals counts them). Raises NONFINITE when it was
-- non-finite.
local function next_pass(self, st)
  st.evals = st.evals + 1
  local loss = passes.run(self, st.who, st.closure, st.evals)
  self.lbfgs.func_evals = self.lbfgs.func_evals + 1
  if self._bad then error(NONFINITE, 0) end
  return loss
end

-- The newest curvature pair from the last move: y = g - g_prev, s = t d, kept when
-- y.s > 1e-10.
function LBFGS:_update_pairs(who, g, d, history_size)
  local y, sv = self:_scratch('spare_y'), self:_scratch('spare_s')
  y:copy_(g):sub_(self.buffers.prev_flat_grad)
  sv:copy_(d):mul_(self.lbfgs.t)
  local ys = reduce.dot(who, y, sv)
  if ys > 1e-10 then self:_push_pair(who, y, sv, ys, history_size) end
end

-- (y, s) with y.s = ys becomes the newest pair, the oldest dropped while history_size are
-- kept; H_diag = y.s / y.y. The dropped pair's tensors are the next spares (none dropped:
-- new ones are made when the next pair comes).
function LBFGS:_push_pair(who, y, sv, ys, history_size)
  local b, ro = self.buffers, self.lbfgs.ro
  local m, freed_y, freed_s = #ro, nil, nil
  while m >= history_size do   -- drop the oldest pair (shift the rest down)
    freed_y, freed_s = b.old_dirs_1, b.old_stps_1
    for i = 1, m - 1 do
      b['old_dirs_' .. i], b['old_stps_' .. i] = b['old_dirs_' .. (i + 1)], b['old_stps_' .. (i + 1)]
      ro[i] = ro[i + 1]
    end
    b['old_dirs_' .. m], b['old_stps_' .. m], ro[m] = nil, nil, nil
    m = m - 1
  end
  m = m + 1
  b['old_dirs_' .. m], b['old_stps_' .. m], ro[m] = y, sv, 1 / ys
  self.lbfgs.H_diag = ys / reduce.dot(who, y, y)
  self._scratches.spare_y, self._scratches.spare_s = freed_y, freed_s
end

-- The two-loop recursion: d = -H g, with H the inverse-Hessian approximation of the pairs
-- and H_diag the initial scaling.
function LBFGS:_two_loop(who, d, g)
  local b, ro, al = self.buffers, self.lbfgs.ro, {}
  local m = #ro
  d:copy_(g):neg_()
  for i = m, 1, -1 do
    al[i] = reduce.dot(who, b['old_stps_' .. i], d) * ro[i]
    d:axpy_(-al[i], b['old_dirs_' .. i])
  end
  d:mul_(self.lbfgs.H_diag)
  for i = 1, m do
    local be = reduce.dot(who, b['old_dirs_' .. i], d) * ro[i]
    d:axpy_(al[i] - be, b['old_stps_' .. i])
  end
end

-- The strong-Wolfe line search along d from the current weights x (loss, its gradient
-- pg, the slope gtd, the first trial t); the weights end at x + t d. Returns the loss,
-- the gradient and t there.
function LBFGS:_line_search(st, d, t, loss, pg, gtd)
  local who, flat = st.who, st.flat
  local x = self:_scratch('x_init')
  x:copy_(flat)
  local pool = { self:_scratch('ls_g1'), self:_scratch('ls_g2'), self:_scratch('ls_g3') }
  local f_new, g_new, t_new = ls.strong_wolfe {
    eval = function(at)
      flat:copy_(x):axpy_(at, d)
      return next_pass(self, st)
    end,
    grad = st.gflat, d = d, d_norm = reduce.absmax(who, d), pool = pool,
    dot = function(a, b) return reduce.dot(who, a, b) end,
    t = t, f = loss, g = pg, gtd = gtd,
  }
  flat:copy_(x):axpy_(t_new, d)
  return f_new, g_new, t_new
end

-- The iterations of one step, after its first closure call gave loss (and the gradient
-- in gflat). Returns the last loss and the iterations made. st: the step in progress
-- (who, closure, evals: the closure calls so far; flat, gflat: the arenas, set here).
function LBFGS:_iterate(v, loss, st)
  local who, b, s = st.who, self.buffers, self.lbfgs
  local flat, gflat = self.arena.flat, self.arena.gflat
  st.flat, st.gflat = flat, gflat
  local g = gflat                        -- the gradient at the current weights
  local n, max_iter, tol_change = 0, v.max_iter, v.tolerance_change
  local opt_cond
  while n < max_iter do
    n = n + 1
    s.n_iter = s.n_iter + 1
    local first = b.d == nil and #s.ro == 0
    local d = b.d or ms.empty_like(flat)
    if first then
      d:copy_(g):neg_()
      s.H_diag = 1
    else
      if b.d ~= nil then self:_update_pairs(who, g, d, v.history_size) end
      self:_two_loop(who, d, g)
    end
    b.d = d
    local pg = b.prev_flat_grad or ms.empty_like(flat)
    if pg ~= g then pg:copy_(g) end    -- (the line search may hand back prev_flat_grad)
    b.prev_flat_grad = pg
    s.prev_loss = loss
    -- the step length: the first iteration ever is scaled down by the gradient's size
    local t = first and pmin(1, 1 / reduce.sum(who, g:abs())) * v.lr or v.lr
    s.t = t
    local gtd = reduce.dot(who, g, d)
    if gtd > -tol_change then break end  -- not a descent direction any more
    if v.line_search_fn == 'strong_wolfe' then
      loss, g, t = self:_line_search(st, d, t, loss, pg, gtd)
      s.t = t
      opt_cond = reduce.absmax(who, g) <= v.tolerance_grad
    else
      flat:axpy_(t, d)
      if n ~= max_iter then              -- (no re-evaluation after the last iteration)
        loss = next_pass(self, st)
        g = gflat
        opt_cond = reduce.absmax(who, g) <= v.tolerance_grad
      end
    end
    if n == max_iter or st.evals >= v.max_eval or opt_cond then break end
    if reduce.absmax(who, d) * abs(t) <= tol_change then break end   -- max |t d|
    if abs(loss - s.prev_loss) < tol_change then break end
  end
  return loss, n
end

LBFGS.passes_doc = 'up to max_eval times a step'

function LBFGS:step(closure)
  return passes.step(self, 'LBFGS.step', closure, LBFGS._step_body)
end

-- (its own pcall restores the weights: a nested step is what the guard refuses)
function LBFGS:_step_body(who, closure)
  self:_check_count(who)
  self:_check_live(who)
  local t = self.t + 1
  local v = self:_values(who, t, 1)
  local s = self.lbfgs
  local st = { who = who, closure = closure, evals = 1 }
  local first = passes.run(self, who, closure, 1)
  local info = { loss = first, final = first, passes = 1, iterations = 0, skipped = false }
  s.func_evals = s.func_evals + 1
  if self._bad then                     -- non-finite first pass: nothing moved
    self._bad, self._checked = nil, nil
    self.skipped = self.skipped + 1
    info.skipped = true
    return first, info
  end
  if reduce.absmax(who, self.arena.gflat) <= v.tolerance_grad then   -- optimal already
    self._checked = nil
    self.t = t
    return first, info
  end
  local x0 = self:_scratch('x0')
  x0:copy_(self.arena.flat)
  local ok, last, n = pcall(self._iterate, self, v, first, st)
  self._checked = nil
  info.passes = st.evals
  if not ok then
    -- a failed or non-finite pass: back exactly to the start of the step, and forget the
    -- pending direction (the pairs kept so far stay: each came from finite evaluations)
    self.arena.flat:copy_(x0)
    self:_reset_memory(false)
    self._bad = nil
    if last ~= NONFINITE then error(last, 0) end
    self.skipped = self.skipped + 1
    info.skipped = true
    info.final = nil
    return first, info
  end
  info.final, info.iterations = last, n
  self.t = t
  return first, info
end

-- extra: the scalars of torch's state (the tensors are buffers).
function LBFGS:_save_extra()
  local s = self.lbfgs
  return { n_iter = s.n_iter, func_evals = s.func_evals, t = s.t, H_diag = s.H_diag,
           prev_loss = s.prev_loss, ro = { unpack(s.ro) } }
end

function LBFGS:_load_extra(who, extra, st)
  if type(extra) ~= 'table' or getmetatable(extra) ~= nil then
    check.fail('%s: state.extra is %s, expected the table LBFGS.state() saves {n_iter =, func_evals =, ro =, ...}',
               who, check.describe(extra))
  end
  check.integer(who, 'state.extra.n_iter', extra.n_iter, 0, 2 ^ 53 - 1)
  check.integer(who, 'state.extra.func_evals', extra.func_evals, 0, 2 ^ 53 - 1)
  local ro = extra.ro
  if type(ro) ~= 'table' or getmetatable(ro) ~= nil then
    check.fail('%s: state.extra.ro is %s, expected a list of numbers (one per curvature pair)', who, check.describe(ro))
  end
  local bufs = st and st.buffers or {}
  local m = #ro
  for i = 1, m do
    check.number(who, ('state.extra.ro[%d]'):format(i), ro[i])
    for _, k in ipairs { 'old_dirs_' .. i, 'old_stps_' .. i } do
      if bufs[k] == nil then check.fail('%s: the state has %d curvature pairs but no buffer %s', who, m, k) end
    end
  end
  for k in pairs(bufs) do
    local i = pair_index(k)
    if i and i > m then check.fail('%s: the state has buffer %s but only %d curvature pairs', who, k, m) end
  end
  if m > 0 or bufs.d ~= nil then check.number(who, 'state.extra.H_diag', extra.H_diag) end
  if bufs.d ~= nil then
    if bufs.prev_flat_grad == nil then check.fail('%s: the state has buffer d but no prev_flat_grad', who) end
    check.number(who, 'state.extra.t', extra.t)
    check.number(who, 'state.extra.prev_loss', extra.prev_loss)
  end
  -- checked: replace the memory (state.load installs the buffers after this)
  local s = { n_iter = extra.n_iter, func_evals = extra.func_evals, ro = { unpack(ro, 1, m) },
              H_diag = extra.H_diag, t = bufs.d ~= nil and extra.t or nil,
              prev_loss = bufs.d ~= nil and extra.prev_loss or nil }
  rawset(self, 'lbfgs', s)
end

return LBFGS
