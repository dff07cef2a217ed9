-- optim.spsa_sample — SPSA's evaluations and estimate (optim/SPSA.lua's step, in pieces):
--   S.dir(opt, step, index, scale [, dist])   a direction table (optim/zo_ops.lua)
--   S.eval(opt, who, closure, terms, info)    one loss evaluation at w + sum of terms
--   S.calibrate(opt, who, closure, info)      Qiskit's gain calibration (first step)
--   S.calibrated(opt, total, info)            its gains from the sum of |(y+ - y-) / (2 c)|
--   S.fill_directions(opt, who, dirs, k)      the stored directions (batched, your own)
--   s, L0 = S.sample(opt, who, closure, info, h, dirs)   the projected gradients s_i (nil
--                                             when a loss was non-finite); the model is left
--                                             at its last perturbation (points.home restores)
--   S.estimate(opt, who, dirs, coefs)         g = sum_i coef_i W(u_i) into the gradient arena
--   rows = S.direction_rows(opt, who, dirs)   D1, D2 as [n, d] tensors (2-SPSA)
local ms = require 'moonstep'
local passes = require 'moonstep.optim.passes'
local points = require 'moonstep.optim.spsa_points'
local zo = require 'moonstep.optim.zo_ops'
local check = require 'moonstep.check'

local M = {}

M.CALIBRATION_STEP = 2 ^ 32 - 1   -- the direction key of Qiskit's calibration draws
local CALIBRATION_STEP = M.CALIBRATION_STEP

-- One loss evaluation at w + sum of terms (nil: w).
function M.eval(self, who, closure, terms, info)
  points.at(self, who, terms)
  info.passes = info.passes + 1
  local flat = self.arena.flat
  local dtype, device = flat.dtype, flat.device
  local loss = self:_evaluate(who, closure, passes.policy(self, who, info.passes, true), true)
  local now = self.arena.flat
  if now ~= flat or now.dtype ~= dtype or now.device ~= device then
    check.fail('%s: the closure moved the model\'s parameters (to %s on %s) while they held a perturbation; move the model between steps, not inside an evaluation',
               who, now.dtype, now.device)
  end
  if terms then points.check(self, who) end
  info.losses[#info.losses + 1] = loss
  return loss, self._bad
end

function M.dir(self, step, index, scale, dist)
  return { seed = self.seed, step = step, index = index, dist = dist or self._zo.dist, scale = scale }
end

-- Qiskit's calibration: a = target / mean |(y(w + c D) - y(w - c D)) / (2 c)|.
function M.calibrate(self, who, closure, info)
  local c = self._zo.calibrate
  local total = 0
  for s = 0, c.steps - 1 do
    local yp = M.eval(self, who, closure, { M.dir(self, CALIBRATION_STEP, s, c.c, 'rademacher') }, info)
    if self._bad then points.home(self, who); return false end
    local ym = M.eval(self, who, closure, { M.dir(self, CALIBRATION_STEP, s, -c.c, 'rademacher') }, info)
    if self._bad then points.home(self, who); return false end
    total = total + math.abs((yp - ym) / (2 * c.c))
  end
  points.home(self, who)
  return M.calibrated(self, total, info)
end

-- The gains from the calibration's total of |(y+ - y-) / (2 c)| (also spsa_dist's).
function M.calibrated(self, total, info)
  local c = self._zo.calibrate
  local avg = total / c.steps
  local a = c.target / avg
  if not (a >= 1e-10) or a == math.huge then a = c.target end   -- Qiskit's fallback
  self.a, self.A, self.alpha, self.c, self.gamma = a, c.A, c.alpha, c.c, c.gamma
  self.calibrated = true
  info.calibration = { a = a, A = c.A, alpha = c.alpha, c = c.c, gamma = c.gamma, mean_magnitude = avg }
  return true
end

-- The losses of the step and the projected gradients s_i (nil when one was non-finite).
function M.sample(self, who, closure, info, h, dirs)
  local o = self._zo
  local n, s, losses = o.n, {}, info.losses
  local L0
  if o.batched and self._data then   -- step(input, target): the model runs batched
    local U = self._U.tensor
    local scales = {}
    if o.diff == 'forward' then scales[1] = { row = 0, scale = 0 } end
    for i = 1, n do
      scales[#scales + 1] = { row = i, scale = h }
      if o.diff == 'central' then scales[#scales + 1] = { row = i, scale = -h } end
    end
    local ok, out, per = pcall(require('moonstep.nn.batched').evaluate, self.model, o.criterion,
      self._data[1], self._data[2], U, scales, { per_example = o.per_example })
    if not ok then check.raise(check.rename(who, check.reason(out))) end
    info.per_example = per
    info.passes = info.passes + #out
    self.passes = self.passes + #out
    for j, l in ipairs(out) do
      losses[#losses + 1] = l
      if l ~= l or l == math.huge or l == -math.huge then
        self._bad = self:_nonfinite(who, ('the loss of perturbed model %d is %s'):format(j, check.describe(l)))
        return nil
      end
    end
    local j = 1
    if o.diff == 'forward' then L0, j = out[1], 2 end
    for i = 1, n do
      if o.diff == 'central' then s[i] = (out[j] - out[j + 1]) / (2 * h); j = j + 2
      else s[i] = (out[j] - L0) / h; j = j + 1 end
    end
    return s, L0
  end
  local function term(i, sign)
    if o.directions then return { row = i, scale = sign * h } end
    return dirs.at[i][sign]
  end
  if o.diff == 'forward' then
    L0 = M.eval(self, who, closure, nil, info)
    if self._bad then return nil end
  end
  local yp, ym = {}, {}
  for i = 1, n do
    yp[i] = M.eval(self, who, closure, { term(i, 1) }, info)
    if self._bad then points.home(self, who); return nil end
    if o.diff == 'central' then
      ym[i] = M.eval(self, who, closure, { term(i, -1) }, info)
      if self._bad then points.home(self, who); return nil end
      s[i] = (yp[i] - ym[i]) / (2 * h)
    else
      s[i] = (yp[i] - L0) / h
    end
  end
  if o.second_order then
    -- Qiskit's 2-SPSA sample per direction i: y(w + h(D1 + D2)) and y(w + h(-D1 + D2)) besides
    -- y(w +- h D1); coef_i = [(y++ - y+) - (y-+ - y-)] / (2 h^2)
    local coefs = {}
    for i = 1, n do
      local d2 = o.directions and { row = n + i, scale = h } or M.dir(self, dirs.step, n + i - 1, h)
      local ypp = M.eval(self, who, closure, { term(i, 1), d2 }, info)
      if self._bad then points.home(self, who); return nil end
      local ymp = M.eval(self, who, closure, { term(i, -1), d2 }, info)
      if self._bad then points.home(self, who); return nil end
      coefs[i] = ((ypp - yp[i]) - (ymp - ym[i])) / (2 * h * h)
    end
    info.hessian_coefs = coefs
  end
  return s, L0
end

-- g = (1/n) sum_i s_i W(u_i) into the gradient arena.
function M.estimate(self, who, dirs, coefs)
  local o, g = self._zo, self.arena.gflat
  if not o.directions then return zo.estimate(who, g, dirs, coefs, o.divide, 0) end
  g:zero_()
  for i = 1, o.n do
    local u = self._U[i]
    if o.divide then g:add_(ms.ones_like(u) / u, coefs[i]) else g:add_(u, coefs[i]) end
  end
end

function M.fill_directions(self, who, dirs, k)
  local o = self._zo
  if not (o.batched or o.directions) then return end
  local d = self.arena.flat:numel()
  local rows = o.n * (o.second_order and 2 or 1)
  local U = rawget(self, '_Ubuf')
  local flat = self.arena.flat
  if not U or check.is_freed(U) or U.device ~= flat.device or U.dtype ~= flat.dtype then
    U = ms.empty({ rows, d }, { dtype = flat.dtype, device = flat.device })
    self._Ubuf = U
    self._U = {}
    for i = 1, rows do self._U[i] = U:select(1, i) end
  end
  if o.directions then
    for i = 1, rows do
      o.directions(k, i, self._U[i])
      check.tensor(who, ('the direction u (step %d, i = %d) the directions function filled'):format(k, i), self._U[i])
    end
  else
    zo.fill(who, U, M.dir(self, dirs.step, 0, 1), 0)   -- row i: direction i - 1, one pass
  end
  self._U.tensor = U
end

-- The directions D1 (rows 1..n) and D2 (rows n+1..2n) as [n, d] tensors (2-SPSA's outer
-- products need them; small d).
function M.direction_rows(self, who, dirs)
  local o, flat = self._zo, self.arena.flat
  local n, d = o.n, flat:numel()
  if o.directions then
    local U = self._U.tensor
    return { U:narrow(1, 1, n), U:narrow(1, n + 1, n) }
  end
  local D = rawget(self, '_drows')
  if not D or D.device ~= flat.device or D.dtype ~= flat.dtype then
    D = ms.empty({ 2 * n, d }, { dtype = flat.dtype, device = flat.device })
    self._drows = D
  end
  zo.fill(who, D, M.dir(self, dirs.step, 0, 1), 0)   -- row r: direction r - 1
  return { D:narrow(1, 1, n), D:narrow(1, n + 1, n) }
end

return M
