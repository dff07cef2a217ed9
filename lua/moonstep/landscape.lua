-- ms.landscape — loss-landscape slices: the loss along one or two directions through the
-- weights (Li, Xu, Taylor, Studer, Goldstein 2018, "Visualizing the Loss Landscape of
-- Neural Nets").
--
--   ms.landscape.directions(model [, {direction = 'random', count = 1, normalize = 'filter',
--                                     seed = 0, closure =}]) -> { d1, ... }
--   ms.landscape.slice1d(model, loss_fn [, {direction = 'random', range = {-1, 1}, points = 21,
--                                           normalize = 'filter', seed = 0, closure =}])
--     -> { alpha = {...}, loss = {...}, direction = d }       loss[i] = L(w + alpha[i] d)
--   ms.landscape.slice2d(model, loss_fn [, {directions = {'random', 'random'}, range = {-1, 1},
--                                           points = 21, normalize = 'filter', seed = 0, closure =}])
--     -> { x = {...}, y = {...}, loss = {{...}}, directions = {d1, d2} }
--        loss[i][j] = L(w + x[i] d1 + y[j] d2)  (the layout ms.plot.contour takes as z)
--
-- model: an nn module or an ms.params set (anything with an arena); w its flat parameters.
-- loss_fn(): evaluates the loss at the model's current weights and returns it (a number or a
-- one-element tensor); it is called exactly once per point (points, or nx * ny), nothing
-- else is evaluated, except one call of the closure for a 'gradient' direction. Put the
-- model in evaluation mode first if it has dropout or batch statistics.
-- range = {lo, hi} (slice2d: also {{xlo, xhi}, {ylo, yhi}}); points = n (slice2d: also {nx, ny}).
-- The weights are restored bit for bit afterwards (and after an error): they are saved
-- once and every point is set as copy(saved) + a d1 (+ b d2), never by subtracting a step;
-- a term with coefficient 0 is left out, and a grid point within 1e-6 of a step of 0 is 0
-- exactly, so the centre point is the weights themselves (its loss is L(w) exactly).
--
-- Directions (each a flat tensor of the arena's dtype and device):
--   'random'    Gaussian N(0, 1) per element, drawn from the explicit generator {seed =
--               seed, stream = k - 1} for the k-th direction (slice2d's d1 is slice1d's d
--               for the same seed): the same seed gives the same slice, and the global
--               generator is left alone.
--   'gradient'  g / ||g||, g the gradient the closure (default: loss_fn) leaves in the
--               arena's gradient after the gradients are zeroed: the closure must run
--               backward. Sign convention: d points uphill, so the loss decreases for small
--               NEGATIVE alpha (alpha < 0 is a gradient-descent step of size |alpha|).
--               The gradient arena keeps that gradient afterwards.
--   a tensor    any tensor with as many elements as the arena (copied; it is not changed).
-- normalize = 'filter' (default; Li et al. section 4): for each parameter of kind 'weight'
--   with two or more dimensions, every filter (a row along dimension 1: an output unit of a
--   Linear, an output channel of a Conv2d) of d is rescaled to the norm of the same filter
--   of w; a 'weight' of one dimension is one filter. Biases and normalisation parameters
--   (kinds 'bias' and 'norm', all 1-D) get d = 0: OUR CHOICE follows the paper's released
--   code (ignore = 'biasbn'), which leaves them unperturbed. A parameter set built with
--   ms.params{...} has only 'weight' parameters. normalize = 'none' uses the direction as
--   drawn or given (the gradient direction is still g / ||g||).
local check = require 'moonstep.check'

local M = {}
local NORMS = { 'filter', 'none' }

-- The parameter set behind model: its flat parameters, flat gradients and slices.
local function arena_of(fn, model)
  local params = require 'moonstep.params'
  if type(model) == 'table' and getmetatable(model) == params.ParamSet then return model end
  local Module = require 'moonstep.nn.Module'
  if Module.is_module(model) then return model:arena() end
  check.fail('%s: model is %s, expected an nn module or an ms.params set', fn, check.describe(model))
end

local function check_fn(fn, name, f)
  if not check.is_callable(f) then
    check.fail('%s: %s is %s, expected a function that returns the loss', fn, name, check.describe(f))
  end
  return f
end

-- loss_fn's value as a number.
local function loss_of(fn, name, v)
  if check.is_tensor(v) then
    if v:numel() ~= 1 then
      check.fail('%s: %s returned %s, expected a number or a one-element tensor', fn, name, check.describe(v))
    end
    v = v:item()
  end
  if type(v) ~= 'number' then
    check.fail('%s: %s returned %s, expected a number (the loss)', fn, name, check.describe(v))
  end
  return v
end

-- Filter normalisation of d (flat) against the weights w (flat), per the set's slices.
local function filter_normalize(set, d, w)
  for _, e in ipairs(set:slices()) do
    if e.numel > 0 then
      local dv = d:narrow(1, e.offset + 1, e.numel)
      if e.kind ~= 'weight' then
        dv:zero_()
      else
        local wv = w:narrow(1, e.offset + 1, e.numel)
        local rows = #e.shape >= 2 and e.shape[1] or 1
        local d2, w2 = dv:view(rows, e.numel / rows), wv:view(rows, e.numel / rows)
        local dn, wn = d2:norm(2, 2, true), w2:norm(2, 2, true)
        d2:mul_(wn:div(dn:add(1e-10)))
      end
    end
  end
  return d
end

-- One direction: kind = 'random' | 'gradient' | tensor; k its index (the random stream).
local function direction(fn, set, kind, k, o)
  local w = set:flat_parameters()
  local n = w:numel()
  local d
  if check.is_tensor(kind) then
    check.tensor(fn, 'direction', kind)
    if kind:numel() ~= n then
      check.fail('%s: direction is %s, expected a tensor of %d elements (as many as the parameters)',
                 fn, check.describe(kind), n)
    end
    d = kind:contiguous():view(n):to(w.dtype, w.device):clone()
  elseif kind == 'random' then
    local ms = require 'moonstep'
    d = ms.empty(n, { dtype = w.dtype, device = w.device }):normal_(0, 1, { seed = o.seed, stream = k - 1 })
  elseif kind == 'gradient' then
    local closure = check_fn(fn, 'closure', o.closure)
    local g = set:flat_gradients()
    g:zero_()
    loss_of(fn, 'closure', closure())
    local norm = g:norm()
    if norm == 0 or norm ~= norm or norm == math.huge then
      check.fail('%s: the closure left a gradient of norm %s, expected a closure that runs backward (a finite, non-zero gradient)',
                 fn, check.describe(norm))
    end
    d = g:clone():div_(norm)
  else
    check.fail('%s: direction is %s, expected "random", "gradient" or a tensor', fn, check.describe(kind))
  end
  if o.normalize == 'filter' then filter_normalize(set, d, w) end
  return d
end

local function common_opts(fn, o)
  o.normalize = o.normalize == nil and 'filter' or check.oneof(fn, 'normalize', o.normalize, NORMS)
  o.seed = check.integer(fn, 'seed', o.seed == nil and 0 or o.seed, 0, 2 ^ 53 - 1)
  if o.closure ~= nil then check_fn(fn, 'closure', o.closure) end
  return o
end

function M.directions(model, opts)
  local fn = 'landscape.directions'
  local set = arena_of(fn, model)
  local o = check.options(fn, opts, { 'direction', 'count', 'normalize', 'seed', 'closure' })
  o = common_opts(fn, { normalize = o.normalize, seed = o.seed, closure = o.closure,
                        direction = o.direction, count = o.count })
  local count = check.integer(fn, 'count', o.count == nil and 1 or o.count, 1, 64)
  local out = {}
  for k = 1, count do out[k] = direction(fn, set, o.direction == nil and 'random' or o.direction, k, o) end
  return out
end

local function range_of(fn, name, v)
  if type(v) ~= 'table' or check.is_tensor(v) or #v ~= 2 then
    check.fail('%s: %s is %s, expected {lo, hi}', fn, name, check.describe(v))
  end
  local lo, hi = check.number(fn, name .. '[1]', v[1]), check.number(fn, name .. '[2]', v[2])
  if not (lo < hi) then
    check.fail('%s: %s is {%s, %s}, expected lo < hi', fn, name, check.describe(lo), check.describe(hi))
  end
  return lo, hi
end

-- n points from lo to hi. A point within a millionth of a step of 0 is 0 itself: rounding
-- (-0.1 + 0.3 * 1/3 = 1.4e-17) must not move the centre point off the weights.
local function grid(lo, hi, n)
  local t, step = {}, (hi - lo) / (n - 1)
  for i = 1, n do
    local v = i == n and hi or lo + (hi - lo) * (i - 1) / (n - 1)
    if math.abs(v) < 1e-6 * step then v = 0 end
    t[i] = v
  end
  return t
end

-- w = saved + a d (+ b e): a term whose coefficient is 0 is left out, so that alpha = 0 is
-- the weights bit for bit (-0 kept, a nan or inf in the direction ignored).
local function set_point(w, saved, a, d, b, e)
  w:copy_(saved)
  if a ~= 0 then w:axpy_(a, d) end
  if b and b ~= 0 then w:axpy_(b, e) end
end

-- Runs body(set, w, saved) and restores w from saved afterwards, also after an error.
local function with_restore(fn, model, set, body)
  local w = set:flat_parameters()
  local saved = w:clone()
  local ok, res = pcall(body, w, saved)
  -- loss_fn may have freed or moved the arena (model:to(...)): then there is nothing
  -- left to restore into, and returning as if restored would be a silent lie
  local ok_now, now = pcall(arena_of, fn, model)
  if not ok_now or now ~= set or not rawequal(now:flat_parameters(), w) or check.is_freed(w) then
    check.fail('%s: loss_fn freed or moved the model\'s parameters during the slice; the weights could not be restored', fn)
  end
  w:copy_(saved)
  if not ok then   -- re-raised at the user's line, under fn's name
    local msg = tostring(res):gsub('^[^:\n]*:%d+: ', '')
    check.raise(msg:sub(1, #fn + 1) == fn .. ':' and msg or fn .. ': ' .. msg)
  end
  return res
end

function M.slice1d(model, loss_fn, opts)
  local fn = 'landscape.slice1d'
  local set = arena_of(fn, model)
  check_fn(fn, 'loss_fn', loss_fn)
  local o = check.options(fn, opts, { 'direction', 'range', 'points', 'normalize', 'seed', 'closure' })
  o = common_opts(fn, { normalize = o.normalize, seed = o.seed, closure = o.closure or loss_fn,
                        direction = o.direction, range = o.range, points = o.points })
  local lo, hi = range_of(fn, 'range', o.range == nil and { -1, 1 } or o.range)
  local n = check.integer(fn, 'points', o.points == nil and 21 or o.points, 2, 100001)
  local alpha = grid(lo, hi, n)
  return with_restore(fn, model, set, function(w, saved)
    local d = direction(fn, set, o.direction == nil and 'random' or o.direction, 1, o)
    local loss = {}
    for i = 1, n do
      set_point(w, saved, alpha[i], d)
      loss[i] = loss_of(fn, 'loss_fn', loss_fn())
    end
    return { alpha = alpha, loss = loss, direction = d }
  end)
end

function M.slice2d(model, loss_fn, opts)
  local fn = 'landscape.slice2d'
  local set = arena_of(fn, model)
  check_fn(fn, 'loss_fn', loss_fn)
  local o = check.options(fn, opts, { 'directions', 'range', 'points', 'normalize', 'seed', 'closure' })
  o = common_opts(fn, { normalize = o.normalize, seed = o.seed, closure = o.closure or loss_fn,
                        directions = o.directions, range = o.range, points = o.points })
  local dirs = o.directions == nil and { 'random', 'random' } or o.directions
  if type(dirs) ~= 'table' or check.is_tensor(dirs) or #dirs ~= 2 then
    check.fail('%s: directions is %s, expected a list of two ("random", "gradient" or a tensor each)',
               fn, check.describe(dirs))
  end
  local range = o.range == nil and { -1, 1 } or o.range
  local xlo, xhi, ylo, yhi
  if type(range) == 'table' and type(range[1]) == 'table' then
    xlo, xhi = range_of(fn, 'range[1]', range[1])
    ylo, yhi = range_of(fn, 'range[2]', range[2])
  else
    xlo, xhi = range_of(fn, 'range', range)
    ylo, yhi = xlo, xhi
  end
  local points = o.points == nil and 21 or o.points
  local nx, ny
  if type(points) == 'table' and not check.is_tensor(points) then
    nx = check.integer(fn, 'points[1]', points[1], 2, 2001)
    ny = check.integer(fn, 'points[2]', points[2], 2, 2001)
  else
    nx = check.integer(fn, 'points', points, 2, 2001)
    ny = nx
  end
  local x, y = grid(xlo, xhi, nx), grid(ylo, yhi, ny)
  return with_restore(fn, model, set, function(w, saved)
    local d1 = direction(fn, set, dirs[1], 1, o)
    local d2 = direction(fn, set, dirs[2], 2, o)
    local loss = {}
    for i = 1, nx do
      local row = {}
      for j = 1, ny do
        set_point(w, saved, x[i], d1, y[j], d2)
        row[j] = loss_of(fn, 'loss_fn', loss_fn())
      end
      loss[i] = row
    end
    return { x = x, y = y, loss = loss, directions = { d1, d2 } }
  end)
end

return check.strict(M, 'ms.landscape')
