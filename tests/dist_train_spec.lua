-- Data parallelism for training: ds:shard (every rank's share of an epoch, the remainder,
-- the shared shuffle) in one process and on 2 ranks, and scripts/train.lua --distributed
-- under mpirun: the same trajectory as one process, rank 0 alone printing, checkpoints
-- resumed on another number of ranks (2 -> 1, 1 -> 2), a world of one without mpirun.
local ms = require 'moonstep'
local H = require 'helper'
local D = require 'dist_helper'

local dit = H.gate(it, pending, D.available, D.why)
local fit = H.gate(it, pending, D.available and H.have_fashion_mnist,
                   D.available and 'needs dataset-fashion-mnist' or D.why)

-- A dataset of n examples whose labels are 1..n, so a batch's y names its examples.
local function labelled(n)
  return ms.data.Dataset(ms.arange(1, n + 1):to('float64'):view(n, 1), ms.arange(1, n + 1):to('int64'))
end

-- The labels of every batch of ds:batches(size, opts), as a list of lists.
local function batches(ds, size, opts)
  local out = {}
  for x, y in ds:batches(size, opts) do
    assert.are.same(x:view(-1):totable(), y:to('float64'):totable())   -- x and y stay paired
    out[#out + 1] = y:totable()
  end
  return out
end

local function sorted(t) local s = { unpack(t) }; table.sort(s); return s end

describe('Dataset:shard', function()
  it('deals out the epoch order strided: rank r takes positions r, r + world, ...', function()
    assert.are.same({ { 1, 4 }, { 7, 10 } }, batches(labelled(10):shard(0, 3, { remainder = 'none' }), 2))
    assert.are.same({ { 2, 5 }, { 8 } }, batches(labelled(10):shard(1, 3, { remainder = 'none' }), 2))
    assert.are.same({ { 3, 6 }, { 9 } }, batches(labelled(10):shard(2, 3, { remainder = 'none' }), 2))
  end)

  it('pads (the default) or drops so every rank has the same examples, hence batches; none covers each once', function()
    for n = 1, 11 do
      for world = 1, 4 do
        local seen, counts = {}, {}
        for _, rem in ipairs { 'pad', 'drop', 'none' } do
          counts[rem], seen[rem] = {}, {}
          for r = 0, world - 1 do
            local ok, ds = pcall(function() return labelled(n):shard(r, world, { remainder = rem }) end)
            if ok then
              counts[rem][r + 1] = ds:size()
              local nb = 0
              for _, b in ipairs(batches(ds, 3)) do
                nb = nb + 1
                for _, v in ipairs(b) do seen[rem][#seen[rem] + 1] = v end
              end
              assert.are.equal(math.ceil(ds:size() / 3), nb)
            else
              -- only a rank whose share would be empty is refused
              assert.truthy(tostring(ds):find('leave', 1, true), ds)
              assert.truthy(rem ~= 'pad' and n < world, ('n %d world %d %s'):format(n, world, rem))
            end
          end
        end
        for r = 1, world do
          assert.are.equal(math.ceil(n / world), counts.pad[r])
          if n >= world then assert.are.equal(math.floor(n / world), counts.drop[r]) end
        end
        -- 'none': every example exactly once; 'pad': all of them, the first ones again
        local want = {}
        for i = 1, n do want[i] = i end
        assert.are.same(want, sorted(seen.none))
        local pad = sorted(seen.pad)
        assert.are.equal(world * math.ceil(n / world), #pad)
        for i = 1, n do assert.truthy(seen.pad[i] ~= nil) end
        for _, v in ipairs(want) do
          local found = false
          for _, p in ipairs(pad) do found = found or p == v end
          assert.truthy(found, ('n %d world %d: example %d missing from the padded shards'):format(n, world, v))
        end
      end
    end
  end)

  it('shuffles with one permutation for all ranks: their k-th batches make one process\'s k-th batch', function()
    local n, b, world = 23, 3, 3
    for epoch = 1, 3 do
      local whole = labelled(n)
      local shards = {}
      for r = 0, world - 1 do shards[r + 1] = labelled(n):shard(r, world, { remainder = 'drop' }) end
      for _ = 1, epoch - 1 do                      -- advance the epoch counters alike
        whole:batches(b * world, { shuffle = true, seed = 9 })
        for _, s in ipairs(shards) do s:batches(b, { shuffle = true, seed = 9 }) end
      end
      local one = batches(whole, b * world, { shuffle = true, seed = 9 })
      local per = {}
      for r = 1, world do per[r] = batches(shards[r], b, { shuffle = true, seed = 9 }) end
      for k = 1, #per[1] do
        local union = {}
        for r = 1, world do
          assert.are.equal(#per[1], #per[r])                       -- the same number of steps
          for _, v in ipairs(per[r][k]) do union[#union + 1] = v end
        end
        -- drop: the last n % world of the order are skipped (here from the last batch)
        local want = sorted(one[k])
        if #union < #want then
          want = {}
          for i = 1, #union do want[i] = one[k][i] end
          want = sorted(want)
        end
        assert.are.same(want, sorted(union), ('epoch %d batch %d'):format(epoch, k))
      end
    end
    -- the epochs differ
    local s = labelled(n):shard(0, world)
    assert.are_not.same(batches(s, n, { shuffle = true, seed = 9 }), batches(s, n, { shuffle = true, seed = 9 }))
  end)

  it('keeps the whole data as a view, moves with to(), describes itself', function()
    local whole = labelled(7)
    local s = whole:shard(1, 2)
    assert.are.equal(whole.x, s.x)                                 -- no copy
    assert.are.equal(4, s:size())
    assert.are.same({ { 2, 4, 6, 1 } }, batches(s:to('cpu'), 4))
    assert.truthy(tostring(s):find('the shard of rank 1 of 2, 4 of 7 examples (strided, remainder "pad")', 1, true),
                  tostring(s))
    assert.are.same({ { 1, 2, 3, 4, 5, 6, 7 } }, batches(whole:shard(0, 1), 7))   -- a world of one: the whole
    assert.are.equal(7, #batches(whole:shard(0, 1), 1, { shuffle = true }))         -- no seed needed there
  end)

  it('refuses bad arguments and what would act on the whole data', function()
    local ds = labelled(7)
    H.assert_error(function() ds:shard(2, 2) end, 'Dataset.shard: rank is 2, expected an integer in [0, 1]')
    H.assert_error(function() ds:shard(-1, 2) end, 'Dataset.shard: rank is -1')
    H.assert_error(function() ds:shard(0, 0) end, 'Dataset.shard: world is 0, expected an integer >= 1')
    H.assert_error(function() ds:shard(0.5, 2) end, 'Dataset.shard: rank is 0.5')
    H.assert_error(function() ds:shard('0', 2) end, 'Dataset.shard: rank is "0"')
    H.assert_error(function() ds:shard(0, 2, { remainder = 'wrap' }) end,
                   'Dataset.shard: remainder is "wrap", expected "pad" or "drop" or "none"')
    H.assert_error(function() ds:shard(0, 2, { remaindr = 'pad' }) end, 'remaindr')
    H.assert_error(function() ds:shard(0, 8, { remainder = 'drop' }) end,
                   'Dataset.shard: 7 examples over 8 ranks leave rank 0 none (remainder "drop")')
    H.assert_error(function() ds:shard(7, 8, { remainder = 'none' }) end, 'leave rank 7 none')
    H.assert_error(function() ds.shard(0, 2) end, 'Dataset.shard: called on')
    local s = ds:shard(0, 2)
    H.assert_error(function() s:shard(0, 2) end, 'Dataset.shard: ds is already the shard of rank 0 of 2')
    H.assert_error(function() s:batches(2, { shuffle = true }) end,
                   'Dataset.batches: ds is the shard of rank 0 of 2: shuffling needs a seed (the same on every rank)')
    for _, m in ipairs { 'normalize', 'mean_std', 'subset', 'split' } do
      H.assert_error(function() s[m](s, 0.5, 1) end,
                     ('Dataset.%s: ds is the shard of rank 0 of 2 (a view of the whole dataset)'):format(m))
    end
    s.x = ms.zeros(3, 1)
    s.y = ms.zeros({ 3 }, 'int64')
    H.assert_error(function() s:size() end, 'Dataset.size: ds is a shard of 7 examples but ds.x now has 3')
  end)

  dit('on 2 ranks (mpirun): the ranks draw one permutation per epoch and share it out', function()
    local rc, out = D.run(2, 'tests/dist/train_shard.lua')
    assert.are.equal(0, rc, out)
    local whole = labelled(10)
    for e = 1, 2 do
      local one = batches(whole, 4, { shuffle = true, seed = 5 })
      for k = 1, 3 do
        local union = {}
        for r = 0, 1 do
          local line = out:match(('rank %d epoch %d batch %d: ([%%d,]+)'):format(r, e, k))
          assert.truthy(line, out)
          for v in line:gmatch('%d+') do union[#union + 1] = tonumber(v) end
        end
        assert.are.same(sorted(one[k]), sorted(union), ('epoch %d batch %d\n%s'):format(e, k, out))
      end
    end
  end)
end)

---------------------------------------------------------------------------------------
-- scripts/train.lua --distributed
---------------------------------------------------------------------------------------
local TRAIN = '--limit 1000 --batch 100 --threads 1'

local function dtrain(np, args) return D.run(np, 'scripts/train.lua', TRAIN .. ' --distributed ' .. args) end

-- The epoch losses of an output as numbers, and how many epoch lines it has.
local function losses(out)
  local l, lines = {}, 0
  for e, loss in out:gmatch('epoch (%d+)  loss (%S+)') do l[tonumber(e)] = tonumber(loss); lines = lines + 1 end
  return l, lines
end

-- tol: relative (1e-6: float32 sums in another order; SPSA's differences of losses over
-- its c = 1e-3 magnify that rounding a thousandfold)
local function assert_close_losses(want, got, out, tol)
  for e, v in pairs(want) do
    assert.truthy(got[e], ('epoch %d missing:\n%s'):format(e, out))
    assert.truthy(math.abs(got[e] - v) <= (tol or 1e-6) * math.abs(v),
                  ('epoch %d: loss %.10f, expected %.10f\n%s'):format(e, got[e], v, out))
  end
end

describe('train.lua --distributed', function()
  local one            -- one process, 3 epochs, no --distributed
  local function reference()
    if not one then
      local out = H.train(TRAIN .. ' --epochs 3')
      assert.truthy(out:find('rc=0', 1, true), out)
      one = { out = out, losses = losses(out) }
    end
    return one
  end

  local fmit = H.gate(it, pending, H.have_fashion_mnist, 'needs dataset-fashion-mnist')
  fmit('without mpirun is a world of one: the same run as without the flag', function()
    local out = H.train(TRAIN .. ' --epochs 3 --distributed')
    assert.truthy(out:find('rc=0', 1, true), out)
    assert.are.same(reference().losses, (losses(out)))
    assert.falsy(out:find('ranks', 1, true), out)
  end)

  fit('on 2 ranks follows one process with the whole batch (Adam, SGD, ACME, SPSA); rank 0 alone prints', function()
    for _, optim in ipairs { 'adam', 'sgd', 'acme', 'spsa' } do
      local rc, out = dtrain(2, '--epochs 3 --optim ' .. optim .. (optim == 'spsa' and ' --batch 50' or ''))
      assert.are.equal(0, rc, out)
      local got, lines = losses(out)
      assert.are.equal(3, lines, out)                          -- one line per epoch: rank 0's
      assert.truthy(out:find(optim == 'spsa' and '2 ranks (batch 25 each)' or '2 ranks (batch 50 each)', 1, true), out)
      local ref = optim == 'adam' and reference().out or
                  H.train(TRAIN .. ' --epochs 3 --optim ' .. optim .. (optim == 'spsa' and ' --batch 50' or ''))
      assert_close_losses(losses(ref), got, out, optim == 'spsa' and 1e-4 or nil)
      -- the accuracy: each rank scored its half of the test set, the counts summed
      local function accuracies(o)
        local a = {}
        for v in o:gmatch('test_accuracy (%S+)') do a[#a + 1] = tonumber(v) end
        return a
      end
      local want, acc = accuracies(ref), accuracies(out)
      assert.are.equal(3, #acc, out)
      for e = 1, 3 do   -- the same models score the same (SPSA's: within an image or two)
        assert.truthy(math.abs(acc[e] - want[e]) <= (optim == 'spsa' and 2e-4 or 0), out)
      end
    end
  end)

  fit('resumes a checkpoint on another number of ranks (2 -> 1 and 1 -> 2)', function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute('mkdir -p ' .. H.quote(dir)) == 0)
    local want = reference().losses
    -- 2 ranks write epoch 1 (rank 0 alone), 1 process continues for epochs 2 and 3
    local rc, out = dtrain(2, '--epochs 1 --save ' .. dir .. '/a.ck')
    assert.are.equal(0, rc, out)
    local out2 = H.train(TRAIN .. ' --epochs 3 --resume ' .. dir .. '/a.ck')
    assert.truthy(out2:find('rc=0', 1, true), out2)
    assert.truthy(out2:find('resumed from .- after epoch 1'), out2)
    assert_close_losses({ [2] = want[2], [3] = want[3] }, losses(out2), out2)
    -- 1 process writes epoch 1, 2 ranks continue
    out = H.train(TRAIN .. ' --epochs 1 --save ' .. dir .. '/b.ck')
    assert.truthy(out:find('rc=0', 1, true), out)
    rc, out2 = dtrain(2, '--epochs 3 --resume ' .. dir .. '/b.ck')
    assert.are.equal(0, rc, out2)
    local _, resumed = out2:gsub('resumed from', '')
    assert.are.equal(1, resumed, out2)                        -- said once, by rank 0
    assert_close_losses({ [2] = want[2], [3] = want[3] }, losses(out2), out2)
    os.execute('rm -rf ' .. H.quote(dir))
  end)

  fit('SAM perturbs on each rank (sync = final): another trajectory, the ranks still agree', function()
    local rc, out = dtrain(2, '--epochs 2 --optim sam')
    assert.are.equal(0, rc, out)
    local _, lines = losses(out)
    assert.are.equal(2, lines, out)      -- the per-epoch check found the ranks' parameters equal
  end)

  fit('refuses a global batch the ranks do not divide, on every rank', function()
    local rc, out = D.run(2, 'scripts/train.lua', '--limit 1000 --batch 101 --distributed')
    assert.are_not.equal(0, rc, out)
    for r = 0, 1 do
      assert.truthy(out:find(('train.lua: rank %d of 2: --batch 101 is the global batch: it must be a multiple ' ..
                              'of the 2 ranks'):format(r), 1, true), out)
    end
  end)
end)
