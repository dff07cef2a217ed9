-- twopass_split.lua (bench helper of twopass.lua) — where the time of an optimizer's
-- step goes.
--
-- M.anatomy: every method of the optimizer (and of its base), passes.run, the
-- optim.sharpness and optim.reduce functions, the arena's zero_grad and the closure are
-- wrapped with timers that keep inclusive and exclusive (self) time; steps run in chunks
-- and the figures are those of the fastest chunk (the least disturbed on a shared
-- machine), in seconds per step. Everything is unwrapped afterwards.
--
--   local split = dofile('scripts/bench/twopass_split.lua')
--   local a = split.anatomy(c, steps, chunks, sync)
--     c: {opt =, row =, step = function() ... end}; c.timed is set to the wrapper while
--        it runs (the bench's closure times its forward + backward through it as 'closure')
--     a.total, a.closure, a.calls_closure, a.zero, a.scan, a.ascent, a.restore, a.descent,
--     a.apply, a.other (seconds per step); a.self[name], a.incl[name], a.calls[name];
--     a.top = {{name, self seconds, calls}, ...} biggest first
--
-- M.arithmetic(cs, rounds, sync, sample): the SAM family's arithmetic between the passes
--   alone, each variant's own hooks in a loop (below); -> {{name =, row =, t =, share =}}
--   with share the median of t over a SAM step sampled around it (sample(cs.SAM))
local ms = require 'moonstep'
local passes = require 'moonstep.optim.passes'
local sharpness = require 'moonstep.optim.sharpness'
local reduce = require 'moonstep.optim.reduce'
local clock = ms.clock

local M = {}

local median = dofile(require('moonstep.core').home .. '/scripts/bench/stats.lua').median

local function instrument()
  local P = { incl = {}, self = {}, calls = {} }
  local depth, child = 0, {}
  local function finish(name, t0, ...)
    local dt = clock() - t0
    local d = depth
    P.incl[name] = (P.incl[name] or 0) + dt
    P.self[name] = (P.self[name] or 0) + dt - child[d]
    P.calls[name] = (P.calls[name] or 0) + 1
    depth = d - 1
    if depth > 0 then child[depth] = child[depth] + dt end
    return ...
  end
  function P.wrap(name, f)
    return function(...)
      depth = depth + 1
      child[depth] = 0
      return finish(name, clock(), f(...))
    end
  end
  function P.reset() P.incl, P.self, P.calls, depth = {}, {}, {}, 0 end
  return P
end

-- The function-valued fields of an instance's class chain (methods), by name.
local function methods_of(obj)
  local names, seen = {}, {}
  local cls = getmetatable(obj)
  for _ = 1, 8 do
    if type(cls) ~= 'table' then break end
    for k, v in pairs(cls) do
      if type(k) == 'string' and type(v) == 'function' and not k:match('^__') and not seen[k]
         and k ~= 'new' and k ~= 'define' and k ~= 'bind' then
        seen[k] = true
        names[#names + 1] = k
      end
    end
    local mt = getmetatable(cls)
    cls = type(mt) == 'table' and rawget(mt, '__index') or nil
  end
  return names
end

function M.anatomy(c, steps, chunks, sync)
  local P = instrument()
  local undo = {}
  local function patch(t, k, name)
    local f = t[k]
    if type(f) ~= 'function' then return end
    undo[#undo + 1] = { t, k, rawget(t, k) }
    t[k] = P.wrap(name, f)
  end
  local opt = c.opt
  local objs = { { opt, opt.__name } }
  if rawget(opt, 'base') then objs[2] = { opt.base, 'base ' .. opt.base.__name } end
  for _, o in ipairs(objs) do
    for _, k in ipairs(methods_of(o[1])) do patch(o[1], k, o[2] .. ':' .. k) end
  end
  patch(passes, 'run', 'passes.run')
  for k in pairs(sharpness) do patch(sharpness, k, 'sharpness.' .. k) end
  for k in pairs(reduce) do patch(reduce, k, 'reduce.' .. k) end
  patch(opt.arena, 'zero_grad', 'zero_grad')
  local ok, err = pcall(function()
    local runs = {}
    c.step()   -- the wrapped code compiled once before counting
    for _ = 1, chunks do
      P.reset()
      c.timed = P.wrap
      sync()
      local t0 = clock()
      for _ = 1, steps do c.step() end
      sync()
      local total = clock() - t0
      c.timed = nil
      runs[#runs + 1] = { total = total, incl = P.incl, self = P.self, calls = P.calls }
    end
    return runs
  end)
  c.timed = nil
  for i = #undo, 1, -1 do
    local u = undo[i]
    u[1][u[2]] = u[3]
  end
  if not ok then error(err, 0) end
  -- the least disturbed chunk (the machine is shared): its figures add up to its total
  local best = err[1]
  for _, r in ipairs(err) do if r.total < best.total then best = r end end
  local a = { self = {}, incl = {}, calls = {}, total = best.total / steps }
  for k, v in pairs(best.self) do
    a.self[k], a.incl[k], a.calls[k] = v / steps, best.incl[k] / steps, best.calls[k] / steps
  end
  local function I(k) return a.incl[k] or 0 end
  local on = opt.__name .. ':'
  a.closure, a.calls_closure = I('closure'), a.calls['closure'] or 0
  a.zero = I('zero_grad')
  a.scan = I(on .. '_check_grads')   -- the passes' scans (a base's own scan is in apply)
  if c.row.sam then
    a.ascent, a.restore, a.descent = I(on .. '_ascent'), I('sharpness.restore'), I(on .. '_descent')
    a.apply = I(on .. '_apply_direction')
  else
    a.ascent, a.restore, a.descent = 0, 0, 0
    a.apply = c.row.role == 'base' and I(on .. '_apply') or 0
  end
  a.other = a.total - a.closure - a.zero - a.scan - a.ascent - a.restore - a.descent - a.apply
  -- the biggest exclusive times
  local top = {}
  for k, v in pairs(a.self) do top[#top + 1] = { k, v, a.calls[k] } end
  table.sort(top, function(x, y) return x[2] > y[2] end)
  a.top = top
  return a
end

-- ---- the perturb / restore / decompose arithmetic, timed directly on the arenas ---------------
-- A variant's own hooks, as its step runs them between the passes: _ascent (the norm, the
-- saved weights, the perturbation; GSAM/WSAM also keep g1), the restore, _descent (GSAM's
-- decomposition, WSAM's combination). The gradient arena is put back before each call
-- (untimed), so every call sees the same gradients.
local function hooks_time(c, sync)
  local opt = c.opt
  local who = opt.__name .. '.step'
  local t = opt.t + 1
  local vs = sharpness.values(opt, who, t)
  local g = opt.arena.gflat
  local gsave = g:clone()
  local total, n = 0, 0
  local function once()
    g:copy_(gsave)
    sync()
    local t0 = clock()
    local info = {}
    local second = opt:_ascent(who, t, info, vs)
    if second then sharpness.restore(opt) end
    opt:_descent(who, t, info, second, vs)
    sync()
    return clock() - t0
  end
  once()
  repeat
    total, n = total + once(), n + 1
  until total > 0.01 and n >= 10
  g:copy_(gsave)
  return total / n
end

function M.arithmetic(cs, rounds, sync, sample)
  local out, cases = {}, {}
  for _, name in ipairs { 'SAM', 'ASAM (adaptive)', 'GSAM', 'WSAM', 'FriendlySAM' } do
    if cs[name] then cases[#cases + 1] = { name .. ': ascent + restore + descent', cs[name] } end
  end
  -- each round: a SAM step sample, the loops, another SAM step sample; the share is the
  -- loop's time over the mean of the two SAM samples around it (paired, like the steps)
  local sam = cs['SAM']
  local ts, shares = {}, {}
  for i = 1, #cases do ts[i], shares[i] = {}, {} end
  for _ = 1, rounds do
    local before = sam and sample(sam)
    local now = {}
    for i, case in ipairs(cases) do now[i] = hooks_time(case[2], sync) end
    local after = sam and sample(sam)
    for i = 1, #cases do
      ts[i][#ts[i] + 1] = now[i]
      if sam then shares[i][#shares[i] + 1] = now[i] / ((before + after) / 2) end
    end
  end
  for i, case in ipairs(cases) do
    out[#out + 1] = { name = case[1], row = case[2].row.name, t = median(ts[i]), share = median(shares[i]) }
  end
  return out
end

return M
