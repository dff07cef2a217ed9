-- optim.spsa_points — where SPSA evaluates the loss: the model moved to w + sum_j s_j u_j
-- and back, in each memory mode, the weights bit for bit as before afterwards.
--
--   points.at(opt, who, terms)   terms: a list of directions {seed, step, index, dist, scale}
--                                (optim/zo_ops.lua; scale = s_j), or nil for w itself; the
--                                model then holds the perturbed weights until the next call
--   points.home(opt, who)        back to w (exactly)
--   points.undo(opt)             the same, safe after any error (the step's undo)
--
--   seeded        in place: one fused pass per move, w -> w + d1 -> w - d1 -> ... -> w
--                 (runtime ms_zo_move). restore = 'exact': the elements whose perturbation
--                 subtraction cannot undo are logged and put back (a few % of the elements;
--                 opt.zo_log_entries, opt.zo_log_bytes: the largest seen, both logs of a
--                 move). 'subtract': MeZO's plain subtraction, no log, w drifts.
--   materialized  w + d is written into a scratch copy that trades memory with the arena
--                 (Optimizer:_trade: O(1), w never written); own directions from opt._U
--   virtual       the weights are never written nor copied: each layer's forward reads its
--                 parameters perturbed into a scratch the size of that layer only (filled
--                 just before the layer runs). Needs a model of moonstep layers.
local ms = require 'moonstep'
local check = require 'moonstep.check'
local zo = require 'moonstep.optim.zo_ops'

local M = {}

-- seeded ---------------------------------------------------------------------------------

-- A move from one perturbation to the next is one pass that reads the first one's log and
-- writes the next one's: two logs are alive during it (each ~2 bytes per logged element,
-- 4% of float32 parameter bytes at 8% logged), one at any other time.
local function seeded_move(opt, who, to)
  local s = opt._zo_seeded
  if not s then
    local exact = opt._zo.restore == 'exact'
    s = { log = exact and zo.log() or nil, spare = exact and zo.log() or nil, cur = nil }
    opt._zo_seeded = s
  end
  local cur = s.cur
  if cur == nil and to == nil then return end
  zo.move(who, opt.arena.flat, cur, cur and s.log, to, to and s.spare)
  s.cur = to
  if to and s.spare then
    s.log, s.spare = s.spare, s.log
    opt.zo_log_entries = math.max(opt.zo_log_entries or 0, s.log:count())
    opt.zo_log_bytes = math.max(opt.zo_log_bytes or 0, s.log:bytes() + s.spare:bytes())
  end
end

-- The perturbation on the weights and its log (seeded mode), for an update that takes it
-- off in its own pass (MeZO's fused update); forget() once that pass succeeded.
function M.current(opt)
  local s = rawget(opt, '_zo_seeded')
  if not s then return nil, nil end
  return s.cur, s.log
end

function M.forget(opt)
  local s = rawget(opt, '_zo_seeded')
  if s then s.cur = nil end
end

-- materialized ---------------------------------------------------------------------------

local function materialized_at(opt, who, terms)
  local w = opt.arena.flat
  local scratch = opt:_scratch('zo')
  if terms[1].row then   -- directions of the user's (opt._U rows)
    scratch:copy_(w)
    for _, d in ipairs(terms) do scratch:add_(opt._U[d.row], d.scale) end
  else
    zo.perturb(who, scratch, w, terms[1], 0)
    for j = 2, #terms do zo.perturb(who, scratch, scratch, terms[j], 0) end
  end
  opt:_trade(who, scratch)
end

local function materialized_home(opt, who) opt:_trade_back(who, 'zo') end

-- virtual --------------------------------------------------------------------------------

-- The layers that own parameters, each with its parameters' arena offsets, and one
-- scratch as large as the largest layer.
local function layers_of(opt, who)
  local v = rawget(opt, '_zo_virtual')
  local flat = opt.arena.flat
  if v and v.flat == flat then return v end
  local model = opt.model
  if not model then
    check.fail("%s: memory = 'virtual' perturbs inside the layers' forward; it needs a model (optim.SPSA(model, ...)), not a list of tensors", who)
  end
  local offset_of = {}
  local arena = opt.arena
  local off = 0
  for _, p in ipairs(arena.params) do offset_of[p] = off; off = off + p:numel() end
  local layers, biggest = {}, 0
  local function visit(m)
    if #m._params > 0 then
      local L = { module = m, params = {} }
      local size = 0
      for _, e in ipairs(m._params) do
        local p = e.param
        local o = offset_of[p]
        if o == nil then
          check.fail("%s: memory = 'virtual': parameter %s of %s is not in the optimizer's arena", who, e.name, m.__name)
        end
        if m[e.name] ~= p then
          check.fail("%s: memory = 'virtual' needs each layer to read its parameter %s as self.%s; %s does not", who, e.name, e.name, m.__name)
        end
        L.params[#L.params + 1] = { name = e.name, param = p, offset = o, at = size }
        size = size + p:numel()
      end
      L.size = size
      biggest = math.max(biggest, size)
      layers[#layers + 1] = L
    end
    for _, c in ipairs(m.modules or {}) do visit(c) end
  end
  visit(model)
  v = { flat = flat, layers = layers, scratch = ms.empty(math.max(biggest, 1), { dtype = flat.dtype, device = flat.device }) }
  for _, L in ipairs(layers) do
    for _, e in ipairs(L.params) do
      e.view = v.scratch:narrow(1, e.at + 1, e.param:numel()):view(e.param:shape())
    end
  end
  opt._zo_virtual = v
  return v
end

local function virtual_at(opt, who, terms)
  local v = layers_of(opt, who)
  v.patched, v.ran = {}, false
  for _, L in ipairs(v.layers) do
    local m = L.module
    local own = rawget(m, 'forward')
    local forward = own or getmetatable(m).forward
    v.patched[#v.patched + 1] = { m, own }
    rawset(m, 'forward', function(self, ...)
      v.ran = true
      for _, e in ipairs(L.params) do
        local p, sc = e.param, v.scratch
        if check.is_freed(p) or p.dtype ~= sc.dtype or p.device ~= sc.device then
          check.fail("%s: the closure moved or freed the model's parameters (%s) during an evaluation; move the model between steps, not inside an evaluation",
                     who, check.describe(p))
        end
        zo.perturb(who, e.view, e.param, terms[1], e.offset)
        for j = 2, #terms do zo.perturb(who, e.view, e.view, terms[j], e.offset) end
        self[e.name] = e.view
      end
      local res = { pcall(forward, self, ...) }
      for _, e in ipairs(L.params) do self[e.name] = e.param end
      if not res[1] then error(res[2], 0) end
      return unpack(res, 2, table.maxn(res))
    end)
  end
end

-- After an evaluation at a perturbed point: virtual mode only sees layers that ran.
function M.check(opt, who)
  local v = rawget(opt, '_zo_virtual')
  if opt._zo.memory ~= 'virtual' or not v or not v.patched then return end
  if not v.ran then
    check.fail("%s: memory = 'virtual' perturbs the weights inside the layers' forward, but the closure ran none of the model's layers (evaluate the loss through the model, or use memory = 'seeded')", who)
  end
end

local function virtual_home(opt)
  local v = rawget(opt, '_zo_virtual')
  if not (v and v.patched) then return end
  for _, pm in ipairs(v.patched) do rawset(pm[1], 'forward', pm[2]) end
  v.patched = nil
end

-- the modes ------------------------------------------------------------------------------

function M.home(opt, who)
  local mode = opt._zo.memory
  if mode == 'seeded' then seeded_move(opt, who, nil)
  elseif mode == 'materialized' then materialized_home(opt, who)
  else virtual_home(opt) end
end

function M.at(opt, who, terms)
  local mode = opt._zo.memory
  if mode == 'seeded' then
    if terms and #terms > 1 then
      check.fail("%s: memory = 'seeded' moves along one direction at a time", who)
    end
    return seeded_move(opt, who, terms and terms[1])
  end
  M.home(opt, who)
  if terms == nil then return end
  if mode == 'materialized' then materialized_at(opt, who, terms)
  else virtual_at(opt, who, terms) end
end

-- After an error anywhere in a step. A move interrupted inside the runtime left nothing
-- half-done (the runtime checks for Ctrl-C before a pass, never inside one).
function M.undo(opt)
  local who = opt.__name .. '.step'
  local ok, err = pcall(M.home, opt, who)
  if not ok and opt._zo.memory == 'seeded' then
    -- the arena moved or was freed mid-step: nothing more can be restored
    opt._zo_seeded = nil
  end
  return ok, err
end

return M
