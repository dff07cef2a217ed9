-- schedule.window — the AutoSGM lr windows (rc_cfg, acme_autosgm.md §2.7) as a schedule.
--
--   w = schedule.window{rcm = 1, inseq = 0, x = 0, n = 2, m = 1, tau = 1000, spe = 1,
--                       cfact = 1, e = 0, compat = false}
--   w = schedule.window{1, 0, 0, 2, 1, 1000, 1, 1, 0}   -- the seed's rc_cfg tuple, same order
--                                                       (compat = ... may be added by name)
--   w(t) -> F_t, the window value at the 1-based ITERATION t (the optimizer's step count);
--           AutoSGM's update is w <- w - F_t a_t v.
--   w:epoch(t) -> k, the epoch of iteration t;  w:length() -> N and its unit
--
-- Defaults are the reference's rc_cfg (0, 0, 0, 2, 1, 1000, 1, 1, 0); rcm 0 gives F = 1.
--   rcm   0 off, 1 raised cosine, 2 polynomial, 3 beta-exponential, 4 simple polynomial,
--         5 logistic (mid), 6 logistic (late, not normalized: F(1) = 1.058 at n = 4)
--   inseq 0 ordered (rectangular) input, 1 Kronecker (quasi-random abscissae, sorted)
--   x     the floor, in [0, 1]: F in [x, 1]       n  the shape constant (rcm 3: in (0, 1))
--   m     1 half window (anneal only), 0 full (warm-up then anneal)
--   tau, spe  epochs and iterations per epoch (integers >= 1)
--   cfact 1: window length N = tau spe iterations; 2: N = spe (restarts every epoch);
--         0: N = tau EPOCHS (F changes once per epoch); > 2: N = tau spe, a staircase of
--         cfact sub-shapes (not for rcm 2)
--   e     flat-top fraction in [0, 1]: F = 1 while the fraction f < e (e = 1: always 1)
-- Windows are periodic: after N units a new identical frame starts. N must be >= 2.
--
-- Exactly, for inseq = 0: u = t (or the epoch k for cfact 0), f = ((u - 1) mod N) / N;
-- full window: f = |2 f - 1|; if f < e or e = 1: F = 1, else f = (f - e) / (1 - e) and
-- F = shape(f) (window_shapes.lua). For inseq = 1: the frame's values are shape() at
-- kronecker(0 .. G - 1), sorted ascending, then C ones (flat top), and for a full window
-- all of those again sorted descending; the step at position p = (u - 1) mod N of the frame takes the
-- list's element #list - p (the reference pops the last element each step).
-- (b = 2 full, 1 half; C = floor(e N / b), G = floor(N / b - C), C + 1 if b (G + C) < N;
-- rcm 2 takes G = N points, as the reference does.)
--
-- Epochs: k = ceil(t / spe). compat = true reproduces the reference (07b5e79) exactly,
-- quirks included: its epoch counter steps when t mod TAU == 1 (it reads tau where spe
-- was meant: k = ceil(t / tau), or 0 when tau = 1), and its ordered-input frame state
-- (past the end of an epoch-unit frame, f = (q - 1) / N with q the next frame's start;
-- a step that returns early through the flat top does not start the next frame). Those
-- differ from the default only for cfact 0, or e close to 1. compat evaluates by replaying
-- the reference's state from t = 1 (cached, O(1) per call for increasing t).
local check = require 'moonstep.check'
local Schedule = require 'moonstep.schedule.base'
local shapes = require 'moonstep.schedule.window_shapes'
local ceil, floor, abs, fmt = math.ceil, math.floor, math.abs, string.format
local shape = shapes.shape

local Window = Schedule.class('window')
local FIELDS = { 'rcm', 'inseq', 'x', 'n', 'm', 'tau', 'spe', 'cfact', 'e', 'compat' }
local POSITIONAL = { 'rcm', 'inseq', 'x', 'n', 'm', 'tau', 'spe', 'cfact', 'e' }
local DEFAULTS = { rcm = 0, inseq = 0, x = 0, n = 2, m = 1, tau = 1000, spe = 1, cfact = 1, e = 0,
                   compat = false }
Window.DEFAULTS, Window.POSITIONAL = DEFAULTS, POSITIONAL

-- N, the frame length, and its unit.
function Window:length()
  local c = self.cfact
  if c == 2 then return self.spe, 'iterations' end
  if c == 0 then return self.tau, 'epochs' end
  return self.tau * self.spe, 'iterations'
end

-- The epoch k (1-based) of iteration t.
function Window:epoch(t)
  Schedule.check_t('schedule.window.epoch', t)
  if self.compat then return self.tau == 1 and 0 or ceil(t / self.tau) end
  return ceil(t / self.spe)
end

local function staircase(self) return self.cfact > 2 and self.cfact or 1 end

local function key_of(self)
  return fmt('%d|%d|%.17g|%.17g|%d|%d|%d|%d|%.17g|%s', self.rcm, self.inseq, self.x, self.n, self.m,
             self.tau, self.spe, self.cfact, self.e, tostring(self.compat))
end

-- The Kronecker frame list (cached per configuration).
local function kron_list(self, N)
  local key = key_of(self)
  local c = rawget(self, '_kron')
  if c and c.key == key then return c.list end
  local full = self.m == 0
  local b = full and 2 or 1
  local taue = N / b
  local cove = floor(self.e * taue)
  local genpts = floor(taue - cove)
  if b * (genpts + cove) < N then cove = cove + 1 end
  local pts = self.rcm == 2 and N or genpts
  local Ms, list = staircase(self), {}
  for j = 0, pts - 1 do list[j + 1] = shape(self.rcm, shapes.kronecker(j), self.n, Ms, self.x) end
  table.sort(list)
  for _ = 1, cove do list[#list + 1] = 1 end
  if full then   -- then the same values in descending order (not the reversed list:
                 -- with rcm 6's values above 1 the flat-top ones sit out of order)
    local desc = {}
    for i, v in ipairs(list) do desc[i] = v end
    table.sort(desc, function(a, b) return a > b end)
    for _, v in ipairs(desc) do list[#list + 1] = v end
  end
  rawset(self, '_kron', { key = key, list = list })
  return list
end

-- The reference's ordered-input step with its frame start q (compat mode).
local function rect_reference(self, sm, t, N)
  local u = self.cfact == 0 and self:epoch(t) or t
  local tc = u - 1 - sm.q
  local f = tc / N
  if f < 0 then f = (sm.q - 1) / N end
  if self.m == 0 then f = 2 * f - 1 end
  f = abs(f)
  local e = self.e
  if f < e or e == 1 then return 1 end
  f = (f - e) / (1 - e)
  local y = shape(self.rcm, f, self.n, staircase(self), self.x)
  if tc == N - 1 then sm.q = sm.q + N end
  return y
end

function Window:_at(t)
  if self.rcm == 0 then return 1 end
  local N = self:length()
  if self.inseq == 0 and self.compat then
    local key, sm = key_of(self), rawget(self, '_sm')
    if not sm or sm.key ~= key or t < sm.t then
      sm = { key = key, t = 0, q = 0, y = 1 }
      rawset(self, '_sm', sm)
    end
    while sm.t < t do
      sm.t = sm.t + 1
      sm.y = rect_reference(self, sm, sm.t, N)
    end
    return sm.y
  end
  local u = self.cfact == 0 and self:epoch(t) or t
  local p = (u - 1) % N
  if self.inseq == 1 then
    local list = kron_list(self, N)
    return list[#list - p]
  end
  local f = p / N
  if self.m == 0 then f = abs(2 * f - 1) end
  local e = self.e
  if f < e or e == 1 then return 1 end
  return shape(self.rcm, (f - e) / (1 - e), self.n, staircase(self), self.x)
end

function Window:_span() return self.tau * self.spe end

return function(opts)
  local fn = 'schedule.window'
  if type(opts) == 'table' and not check.is_tensor(opts) and rawget(opts, 1) ~= nil then
    -- the rc_cfg tuple: positions 1..9, and no name but compat
    local named = {}
    for k, v in pairs(opts) do
      if k == 'compat' then
        named.compat = v
      elseif type(k) ~= 'number' or k ~= floor(k) or k < 1 or k > #POSITIONAL then
        check.fail('%s: a tuple rc_cfg has up to %d positional entries (%s) and no names but '
                   .. 'compat; got key %s', fn, #POSITIONAL, table.concat(POSITIONAL, ', '), check.describe(k))
      else
        named[POSITIONAL[k]] = v
      end
    end
    opts = named
  end
  opts = check.options(fn, opts, FIELDS)
  local v = {}
  for _, k in ipairs(FIELDS) do
    if opts[k] == nil then v[k] = DEFAULTS[k] else v[k] = opts[k] end
  end
  check.integer(fn, 'rcm', v.rcm, 0, 6)
  check.integer(fn, 'inseq', v.inseq, 0, 1)
  check.number(fn, 'x', v.x, 0, 1)
  check.integer(fn, 'm', v.m, 0, 1)
  check.integer(fn, 'tau', v.tau, 1)
  check.integer(fn, 'spe', v.spe, 1)
  check.integer(fn, 'cfact', v.cfact, 0)
  check.number(fn, 'e', v.e, 0, 1)
  check.boolean(fn, 'compat', v.compat)
  if v.rcm == 3 then
    if type(v.n) ~= 'number' or not (v.n > 0 and v.n < 1) then
      check.fail('%s: n is %s, expected the base b of rcm 3 (beta-exponential) in (0, 1)', fn,
                 check.describe(v.n))
    end
  else
    Schedule.positive(fn, 'n', v.n)
  end
  local w = Schedule.new(Window, FIELDS, v)
  local N, unit = w:length()
  if N < 2 then
    check.fail('%s: the window length is %d %s (tau = %d, spe = %d, cfact = %d), expected >= 2',
               fn, N, unit, v.tau, v.spe, v.cfact)
  end
  return w
end
