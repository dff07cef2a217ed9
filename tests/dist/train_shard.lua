-- Run by tests/dist_train_spec.lua under mpirun: each rank shards one dataset of 10
-- examples (y = 1..10) and prints the labels of its batches of 2 for two shuffled epochs,
-- one line per batch: "rank R epoch E batch K: y1,y2".
local ms = require 'moonstep'
local r, n = ms.dist.init { timeout = 20 }
local ds = ms.data.Dataset(ms.zeros({ 10, 1 }), ms.arange(1, 11):to('int64')):shard(r, n)
for e = 1, 2 do
  for _, y, k in ds:batches(2, { shuffle = true, seed = 5 }) do
    print(('rank %d epoch %d batch %d: %s'):format(r, e, k, table.concat(y:totable(), ',')))
  end
end
