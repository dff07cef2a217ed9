-- Run by tests/dist_spec.lua on a GPU machine: all_reduce and broadcast of CUDA tensors
-- (NCCL when built, else host copies) give the CPU collectives' values.
local ms = require 'moonstep'
local r, n = ms.dist.init { timeout = 60 }
local cpu = ms.full({ 1000 }, r + 1, 'float32')
local gpu = cpu:cuda()
ms.dist.all_reduce(cpu, 'mean'); ms.dist.all_reduce(gpu, 'mean')
local b = ms.full({ 7 }, r * 3 + 1, 'float64'):cuda(); ms.dist.broadcast(b, n - 1)
print(('rank %d: gpu==cpu %s bcast %s'):format(r, tostring((gpu:cpu() - cpu):abs():max() == 0), b:cpu():get(1)))
