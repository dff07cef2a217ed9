-- optim.FriendlySAM — F-SAM (Li et al., CVPR'24; the official nblt/F-SAM code;
-- ../shared/reference/sam_family.md §8) around any base optimizer: the ascent direction
-- without its full-batch component, estimated by an average m of past gradients.
--
--   opt = optim.FriendlySAM(model, {base = optim.SGD{lr = 0.1}, rho = 0.05, sigma = 1, lmbda = 0.9})
--
-- Per step, two closure calls: g at w; the first step d = g and m = g, later d = g - sigma
-- m_prev and m = lmbda m_prev + (1 - lmbda) g (the raw g: kozistr's m follows d, a known
-- bug); e = rho a d / (||a d|| + perturb_eps); g2 at w + e; w restored; the base steps
-- with g2. Plus every option of optim/sharpness.lua. State: m (one copy of the
-- parameters); scratch: the copy of w. A step skipped because pass 2 was non-finite keeps
-- pass 1's (finite) gradient in m: undoing it would take one more copy of the parameters.
local sharpness = require 'moonstep.optim.sharpness'
local reduce = require 'moonstep.optim.reduce'

local FriendlySAM = sharpness.define('FriendlySAM', { sigma = 1, lmbda = 0.9 },
  { sigma = 'nonnegative', lmbda = 'unit' })
FriendlySAM.state_buffers = { 'm' }

function FriendlySAM:_ascent(who, t, info, vs)
  local v, g = vs[1], self.arena.gflat
  local m = self.buffers and self.buffers.m
  if not m then
    self:_buffer('m'):copy_(g)
  else
    -- d = g - sigma m; m = lmbda m + (1 - lmbda) g = (lmbda + (1 - lmbda) sigma) m + (1 - lmbda) d
    self._sq_per = nil   -- (pass 1's squares are not d's)
    reduce.axpby(who, g, 1, m, -v.sigma)
    reduce.axpby(who, m, v.lmbda + (1 - v.lmbda) * v.sigma, g, 1 - v.lmbda)
  end
  local norm = sharpness.perturb(self, who, g, vs)
  if norm ~= norm or norm == math.huge then return nil end
  return true
end

return FriendlySAM
