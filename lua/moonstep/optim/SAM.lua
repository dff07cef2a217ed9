-- optim.SAM — Sharpness-Aware Minimization (Foret et al., ICLR'21) and ASAM (Kwon et al.,
-- ICML'21) around any base optimizer (../shared/reference/sam_family.md §3).
--
--   opt = optim.SAM(model, {base = optim.SGD{lr = 0.1, momentum = 0.9}, rho = 0.05})
--   loss, info = opt:step(function(pass) ... return loss end)
--
-- Per step, two closure calls: g1 at w; e = rho a g1 / (||a g1|| + perturb_eps) (the forms
-- of `adaptive`, optim/sharpness.lua); g2 at w + e; w restored; the base steps with g2.
--   use_gc = false   gradient centralization of g1 after its norm (spec §2.3)
-- Plus every option of optim/sharpness.lua. State: the base's, nothing of its own;
-- scratch: one copy of the parameters.
local sharpness = require 'moonstep.optim.sharpness'

local SAM = sharpness.define('SAM', { use_gc = false }, { use_gc = 'boolean' })

function SAM:_ascent(who, t, info, vs)
  local norm = sharpness.perturb(self, who, self.arena.gflat, vs, vs[1].use_gc)
  if norm ~= norm or norm == math.huge then return nil end
  return true
end

return SAM
