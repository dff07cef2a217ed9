-- The contract every optimizer of ms.optim keeps, present and future: the spec finds
-- them by enumerating ms.optim (every class built by Optimizer.define), so a new
-- optimizer is checked without being listed here. What it holds each to:
--   reduces a quadratic; unbound + bind = bound; evaluate + apply = step = step() after
--   the caller's backward (a multi-pass optimizer, cls.multipass: step() without a closure
--   is an error instead; cls.single_group: groups are refused, no lr_scale test); a wrapper (option base) gets optim.SGD{lr = 0.05}; a resumed run (state/load_state) is bit-identical to an
--   uninterrupted one, in float32 and float64; unknown options and bad hyper-parameters
--   are refused, naming them; a non-finite gradient is an error, or a counted skip that
--   leaves the parameters alone; a group with lr_scale = 0 is left unchanged (the slice
--   table reaches the kernel); CPU = GPU when a GPU is present. A zeroth-order class
--   (cls.loss_only: its closure only evaluates the loss) is held to a non-finite loss instead.
local ms = require 'moonstep'
local optim = ms.optim
local Optimizer = require 'moonstep.optim.Optimizer'
local H = require 'helper'

-- Configurations under which each converges on the quadratic below (the defaults
-- otherwise, with lr = 0.05 where the optimizer has an lr).
local CONFIG = {
  SGD = { lr = 0.05, momentum = 0.5 },
  AutoSGM = { lr_init = 0.05 },
  LBFGS = { lr = 0.5 },
  BSAM = { num_data = 10000, lr = 0.05 },
  SPSA = { seed = 1, n = 4, a = 0.05 },   -- a fixed seed: unbound + bind draws the same directions
}

local function optimizers()
  local list = {}
  for name, cls in pairs(optim) do
    if type(cls) == 'table' and rawget(cls, 'defaults') and rawget(cls, 'new')
       and getmetatable(cls) and getmetatable(cls).__index == Optimizer then
      list[#list + 1] = name
    end
  end
  table.sort(list)
  return list
end

local function config_for(name, extra)
  local cls, c = optim[name], {}
  if CONFIG[name] then
    for k, v in pairs(CONFIG[name]) do c[k] = v end
  elseif cls.defaults.lr ~= nil then
    c.lr = 0.05
  end
  for _, k in ipairs(cls.accepted) do
    if k == 'base' and c.base == nil and cls.wraps then c.base = optim.SGD { lr = 0.05 } end
  end
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

-- f(w) = 0.5 sum_i a_i (w_i - c_i)^2 over two tensors (a weight and a bias, so groups
-- by kind have something to hold); gradient a (w - c).
local function problem(dtype, device)
  local opts = { dtype = dtype or 'float32', device = device or 'cpu' }
  local w = ms.tensor({ { 1.0, -2.0, 0.5 }, { 0.25, 3.0, -1.0 } }, opts)
  local b = ms.tensor({ 0.3, -0.7 }, opts)
  local set = require('moonstep.params').build({ { name = 'fc.weight', param = w, kind = 'weight' },
                                                 { name = 'fc.bias', param = b, kind = 'bias' } })
  local a = ms.tensor({ 1, 2, 0.5, 1.5, 1, 3, 0.8, 1.2 }, opts)
  local c = ms.tensor({ 0.1, 0.2, -0.3, 0.4, -0.5, 0.6, 0.7, -0.8 }, opts)
  local flat = set:flat_parameters()
  local function loss_of() return 0.5 * ((flat - c):square() * a):sum() end
  local function backward() set:flat_gradients():copy_((flat - c) * a) end
  local function closure()
    backward()
    return loss_of()
  end
  return set, closure, loss_of, backward
end

local function bits(t)
  local out = {}
  local c = t:to('float64', 'cpu')
  for i = 1, c:numel() do out[i] = c:get(i) end
  return out
end

local function assert_same_bits(a, b, what)
  local x, y = bits(a), bits(b)
  assert.equal(#x, #y, what)
  for i = 1, #x do
    if x[i] ~= y[i] then
      error(('%s: element %d differs: %.17g vs %.17g'):format(what, i, x[i], y[i]), 2)
    end
  end
end

local names = optimizers()

describe('the optimizer contract', function()
  it('finds the optimizers of ms.optim', function()
    for _, n in ipairs { 'SGD', 'Adam', 'AdamW' } do
      assert.truthy(optim[n] and rawget(optim[n], 'defaults'), n)
    end
    assert.truthy(#names >= 3)
  end)

  for _, name in ipairs(names) do
    describe(name, function()
      local cls = optim[name]

      it('reduces a quadratic', function()
        local set, closure, loss_of = problem()
        local opt = cls(set, config_for(name))
        local first = loss_of()
        for _ = 1, 200 do opt:step(closure) end
        local last = loss_of()
        assert.is_true(last < 0.5 * first, ('%s: loss %.6g -> %.6g'):format(name, first, last))
      end)

      it('unbound then bound = bound; evaluate + apply = step = step() after backward', function()
        local s1, c1 = problem()
        local s2, c2 = problem()
        local s3, _, _, back3 = problem()
        local a = cls(s1, config_for(name))
        local b = cls(config_for(name))
        H.assert_error(function() b:step(c2) end, name .. '.step', 'not bound')
        b:bind(s2)
        H.assert_error(function() b:bind(s1) end, name .. '.bind', 'already bound')
        local c = cls(s3, config_for(name))
        if cls.multipass then
          for _ = 1, 5 do a:step(c1); b:step(c2) end
          assert_same_bits(s1:flat_parameters(), s2:flat_parameters(), name .. ' unbound+bind')
          H.assert_error(function() c:step() end, name .. '.step', 'closure')
          return
        end
        for _ = 1, 5 do
          a:step(c1)
          b:evaluate(c2)
          b:apply()
          s3:zero_grad()
          back3()
          c:step()
        end
        assert_same_bits(s1:flat_parameters(), s2:flat_parameters(), name .. ' unbound+bind')
        assert_same_bits(s1:flat_parameters(), s3:flat_parameters(), name .. ' step()')
      end)

      for _, dtype in ipairs { 'float32', 'float64' } do
        it('resumes bit-exactly from state() (' .. dtype .. ')', function()
          local s1, c1 = problem(dtype)
          local a = cls(s1, config_for(name))
          for _ = 1, 4 do a:step(c1) end
          local saved, params = a:state(), s1:flat_parameters():clone()
          for _ = 1, 4 do a:step(c1) end
          local s2, c2 = problem(dtype)
          s2:flat_parameters():copy_(params)
          local b = cls(s2, config_for(name))
          b:load_state(saved)
          assert.equal(4, b.t)
          for _ = 1, 4 do b:step(c2) end
          assert_same_bits(s1:flat_parameters(), s2:flat_parameters(), name .. ' resumed')
          local sa, sb = a:state(), b:state()
          for k, buf in pairs(sa.buffers) do assert_same_bits(buf, sb.buffers[k], name .. ' buffer ' .. k) end
        end)
      end

      it('a base optimizer replaced or removed (opt.base) is a clear error, not a crash', function()
        local set, closure = problem()
        local opt = cls(set, config_for(name))
        if rawget(opt, 'base') == nil then return end   -- (no base)
        for _, bad in ipairs { false, optim.SGD { lr = 0.1 } } do
          opt.base = bad or nil
          H.assert_error(function() opt:step(closure) end, name .. '.step', 'opt.base')
        end
      end)

      it('on one process, distributed = false and no_sync change no bit; a bad distributed is refused', function()
        local s1, c1 = problem()
        local s2, c2 = problem()
        local s3, c3 = problem()
        local a = cls(s1, config_for(name))
        local b = cls(s2, config_for(name, { distributed = false }))
        local c = cls(s3, config_for(name))
        for _ = 1, 5 do
          a:step(c1)
          b:step(c2)
          assert.are.equal(7, select(2, c:no_sync(function(x) c:step(c3); return 6, x end, 7)))
        end
        assert_same_bits(s1:flat_parameters(), s2:flat_parameters(), name .. ' distributed = false')
        assert_same_bits(s1:flat_parameters(), s3:flat_parameters(), name .. ' no_sync')
        H.assert_error(function() cls(problem(), config_for(name, { distributed = 'yes' })) end, name, 'distributed')
      end)

      it('on one process, bucket_mb changes no bit where it is taken, and is refused by name elsewhere', function()
        local s1, c1 = problem()
        local s2, c2 = problem()
        local a = cls(s1, config_for(name))
        local ok, b = pcall(cls, s2, config_for(name, { bucket_mb = 0.5 }))
        -- refused by SPSA (no gradient all-reduce) and the SAM family (sync = 'final' by default)
        local refuses = rawget(cls, 'loss_only') or rawget(cls, '_sync_passes')
        assert.are.equal(not refuses, ok, name .. ': ' .. tostring(b))
        if not ok then
          assert.matches(name .. ': bucket_mb is 0.5 but', tostring(b), 1, true)
        else
          for _ = 1, 5 do a:step(c1); b:step(c2) end
          assert_same_bits(s1:flat_parameters(), s2:flat_parameters(), name .. ' bucket_mb')
        end
        H.assert_error(function() cls(problem(), config_for(name, { bucket_mb = -1 })) end, name, 'bucket_mb is -1')
      end)

      it('refuses an unknown option and bad hyper-parameters, naming them', function()
        local set = problem()
        H.assert_error(function() cls(set, { no_such_option = 1 }) end, name, 'unknown option "no_such_option"')
        for k, v in pairs(cls.defaults) do
          if type(v) == 'number' then
            H.assert_error(function() cls(set, config_for(name, { [k] = 0 / 0 })) end, name, k)
            H.assert_error(function() cls(set, config_for(name, { [k] = 'x' })) end, name, k)
          elseif type(v) == 'boolean' then
            H.assert_error(function() cls(set, config_for(name, { [k] = {} })) end, name, k)
          end
        end
        H.assert_error(function() cls(set, config_for(name, { skip_nonfinite = 'yes' })) end, name, 'skip_nonfinite')
        H.assert_error(function() cls(set, config_for(name, { groups = { { match = 'nothing_matches' } } })) end,
                       name, 'groups[1]', 'matches no parameter')
      end)

      it('a non-finite gradient is an error, or a counted skip that leaves the parameters alone', function()
        local set = problem()
        if cls.loss_only then   -- zeroth-order: the closure's loss is all it reads
          local before = set:flat_parameters():clone()
          local opt = cls(set, config_for(name, { skip_nonfinite = false }))
          H.assert_error(function() opt:step(function() return 0 / 0 end) end, name .. '.step', 'nan')
          assert_same_bits(before, set:flat_parameters(), name .. ' after the refused step')
          local skip = cls(set, config_for(name))
          skip:step(function() return math.huge end)
          assert.equal(1, skip.skipped)
          assert_same_bits(before, set:flat_parameters(), name .. ' after the skipped step')
          return
        end
        local before = set:flat_parameters():clone()
        local opt = cls(set, config_for(name, { skip_nonfinite = false }))
        H.assert_error(function()
          opt:step(function() set:flat_gradients():fill_(0 / 0); return 1 end)
        end, name .. '.step', 'non-finite', 'unchanged')
        assert_same_bits(before, set:flat_parameters(), name .. ' after the refused step')
        local skip = cls(set, config_for(name, { skip_nonfinite = true }))
        skip:step(function() set:flat_gradients():fill_(math.huge); return 1 end)
        assert.equal(1, skip.skipped)
        assert.equal(0, skip.t)
        assert_same_bits(before, set:flat_parameters(), name .. ' after the skipped step')
      end)

      if cls.defaults.lr ~= nil and not cls.single_group then
        it('a group with lr_scale = 0 stays put (the slice table reaches the kernel)', function()
          local set, closure = problem()
          local opt = cls(set, config_for(name, { groups = { { kind = 'bias', lr_scale = 0 } } }))
          local bias = set.params[2]:clone()
          local weight = set.params[1]:clone()
          for _ = 1, 3 do opt:step(closure) end
          assert_same_bits(bias, set.params[2], name .. ' frozen bias')
          assert.is_true((weight - set.params[1]):abs():max() > 0, name .. ': the weight did not move')
        end)
      end

      it('CPU = GPU', function()
        if not (ms.cuda and ms.cuda.is_available()) then
          pending('no usable GPU')
          return
        end
        local s1, c1 = problem('float32', 'cpu')
        local s2, c2 = problem('float32', 'cuda')
        local a, b = cls(s1, config_for(name)), cls(s2, config_for(name))
        for _ = 1, 10 do a:step(c1); b:step(c2) end
        H.assert_close(s2:flat_parameters():to('cpu'), s1:flat_parameters(), 1e-5, name .. ' GPU vs CPU')
      end)
    end)
  end
end)
