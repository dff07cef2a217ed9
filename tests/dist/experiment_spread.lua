-- Run by tests/experiment_dist_spec.lua: a grid of 4 small runs into arg[1], spread over
-- the ranks; each rank prints which runs it ran and what it got back.
local ms = require 'moonstep'
local E = ms.experiment
local list = E.grid({ seed = { 1, 2 }, optimizer = { 'SGD', 'Adam' } },
  { data = { train = 256, test = 128 }, model = { 'mlp', sizes = { 784, 8, 10 } }, device = 'cpu', threads = 1 })
local set = E.run_all(list, { out = arg[1], quiet = true })
local ran, losses = {}, {}
for i = 1, #set do
  local r = set[i]
  if not r.resumed then ran[#ran + 1] = i end
  losses[#losses + 1] = ('%.10g'):format(r.metrics.test_loss)
end
print(('rank %d ran %s; results %d: %s'):format(ms.dist.rank(), table.concat(ran, ','), #losses, table.concat(losses, ' ')))
