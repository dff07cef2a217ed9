-- optim.NAdam(params, {lr = 2e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0,
--                      momentum_decay = 4e-3, decoupled_weight_decay = false})
-- torch.optim.NAdam with PyTorch >= 2.0 semantics (not 1.13's single-tensor step, which
-- counted mu_t twice in the momentum term's bias correction), one fused pass per step
-- (runtime/optim/nadam.h):
--   mu_t = beta1 (1 - 0.5 0.96^(t momentum_decay)), mu_product = mu_1 ... mu_t
--   g += weight_decay p   (decoupled_weight_decay: p *= 1 - lr weight_decay instead, NAdamW)
--   m = lerp(m, g, 1 - beta1), v = beta2 v + (1 - beta2) g^2
--   p -= lr ((1 - mu_t) / (1 - mu_product) g + mu_{t+1} / (1 - mu_product mu_{t+1}) m)
--        / (sqrt(v / (1 - beta2^t)) + eps)
-- lr, eps, weight_decay, momentum_decay >= 0; betas each in [0, 1).
-- State: buffers.exp_avg, buffers.exp_avg_sq (flat, like the arena); extra.mu_product, one
-- per group (1 = the default group): the running product, kept in the arena's dtype as
-- PyTorch keeps it in its default dtype (a float32 arena rounds it at every step like a
-- float32 run of PyTorch; a float64 one matches PyTorch run with default dtype float64).
local ffi = require 'ffi'
local ms = require 'moonstep'
local Optimizer = require 'moonstep.optim.Optimizer'
local check = require 'moonstep.check'
local C = ms.C

local NAdam = Optimizer.define('NAdam',
  { lr = 2e-3, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = 0, momentum_decay = 4e-3,
    decoupled_weight_decay = false },
  { lr = 'nonnegative', betas = 'betas', eps = 'nonnegative', weight_decay = 'nonnegative',
    momentum_decay = 'nonnegative', decoupled_weight_decay = 'boolean' })
NAdam.hyper_ctype = 'ms_nadam_hyper'

local f32 = ffi.new('float[1]')
local function round32(x) f32[0] = x; return f32[0] end

function NAdam:_init()
  self.buffers = { exp_avg = ms.zeros_like(self.arena.flat), exp_avg_sq = ms.zeros_like(self.arena.flat) }
  self.mu_product = {}
  for g = 1, #self.groups + 1 do self.mu_product[g] = 1 end
end

function NAdam._fill(h, v)
  h.lr, h.beta1, h.beta2, h.eps = v.lr, v.betas[1], v.betas[2], v.eps
  h.weight_decay, h.momentum_decay = v.weight_decay, v.momentum_decay
  h.decoupled = v.decoupled_weight_decay and 1 or 0
end

-- mu_product *= mu_t, as PyTorch does on its 0-dim tensor (float32: both factors rounded,
-- then the product); committed only when the step succeeds.
function NAdam:_update(hs, t)
  local single = self.arena.flat.dtype == 'float32'
  local next = {}
  for g = 1, #self.groups + 1 do
    local h = hs[g - 1]
    local mu = h.beta1 * (1 - 0.5 * 0.96 ^ (t * h.momentum_decay))
    local mp = self.mu_product[g]
    next[g] = single and round32(round32(mp) * round32(mu)) or mp * mu
    h.mu_product = next[g]
  end
  local rc = self:_run(C.ms_nadam_step, hs, t, { self.buffers.exp_avg, self.buffers.exp_avg_sq })
  if rc == 0 then self.mu_product = next end
  return rc
end

function NAdam:_save_extra()
  return { mu_product = { unpack(self.mu_product, 1, #self.groups + 1) } }
end

function NAdam:_load_extra(who, extra)
  local n = #self.groups + 1
  if type(extra) ~= 'table' or type(extra.mu_product) ~= 'table' or #extra.mu_product ~= n then
    check.fail('%s: state.extra is %s, expected {mu_product = {one number per group (%d)}}', who,
               check.describe(extra), n)
  end
  local mp = {}
  for g = 1, n do
    mp[g] = check.number(who, ('state.extra.mu_product[%d]'):format(g), extra.mu_product[g], 0, 1)
  end
  self.mu_product = mp
end

return NAdam
