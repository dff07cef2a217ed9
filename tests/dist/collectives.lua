-- Run by tests/dist_spec.lua under mpirun: each rank prints what the collectives gave it.
-- arg[1] = 'nocheck': without the agreement check before each collective.
local ms = require 'moonstep'
local r, n = ms.dist.init { timeout = 20, check = arg[1] ~= 'nocheck' }
local t = ms.full({ 3 }, r + 1, 'float64')
ms.dist.all_reduce(t)
local m = ms.full({ 2 }, r + 1, 'float32'); ms.dist.all_reduce(m, 'mean')
local mx = ms.tensor({ r, -r }, 'int64'); ms.dist.all_reduce(mx, 'max')
local g = ms.dist.all_gather(ms.full({ 2 }, r, 'float32'))
local b = ms.full({ 2 }, r * 10 + 7, 'int64'); ms.dist.broadcast(b, n - 1)
local s = ms.tensor({ { 1, 2 }, { 3, 4 } }, 'float64'):t():mul(r + 1)   -- strided: a host copy
ms.dist.all_reduce(s)
ms.dist.barrier()
print(('rank %d of %d: sum %s mean %s max %s gather %s bcast %s strided %s'):format(r, n,
  table.concat(t:totable(), ','), table.concat(m:totable(), ','), table.concat(mx:totable(), ','),
  table.concat(g:view(-1):totable(), ','), table.concat(b:totable(), ','), table.concat(s:contiguous():view(-1):totable(), ',')))
