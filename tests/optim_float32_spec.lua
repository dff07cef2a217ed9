-- Float32 optimizers are faithful: derived constants (1 - beta, bias corrections, step
-- size) are computed in double and the per-element rule rounds like torch.optim's, so a
-- float32 run reproduces PyTorch's float32 trajectory bit for bit (fixtures written by
-- scripts/gen_optim_fixtures.py).
local ms = require 'moonstep'
local optim = ms.optim
local fx = require 'fixtures.optim_float32'

local gpu = ms.cuda.is_available()

-- Runs fixture case `c` on `device`; returns {step -> parameters as a Lua list}.
local function trajectory(c, device)
  local w = ms.tensor(fx.params, 'float32')
  if device ~= 'cpu' then w = w:to(device) end
  local set = ms.params { w }
  local opt = optim[c.optim](set, c.config)
  local got = {}
  for t, g in ipairs(fx.grads) do
    local gt = ms.tensor(g, 'float32'):to(device)
    opt:step(function() set.grads[1]:copy_(gt); return 0 end)
    if c.after[t] then got[t] = w:to('cpu'):to('float64') end
  end
  return got
end

-- Largest difference in units of the last place (float32) between got and want.
local function max_ulps(got, want)
  local worst = 0
  for i, y in ipairs(want) do
    local x = got:get(i)
    local ulp = math.max(math.abs(y), 2 ^ -126) * 2 ^ -23
    worst = math.max(worst, math.abs(x - y) / ulp)
  end
  return worst
end

describe('float32 optimizers', function()
  it('Adam with lr 1 and gradient 1 takes steps of exactly 1 (-3 after 3 steps)', function()
    -- Each step is lr m_hat / (sqrt(v_hat) + eps) = 1 / (1 + 1e-8): 1 in float32.
    for _, dtype in ipairs { 'float32', 'float64' } do
      for _, name in ipairs { 'Adam', 'AdamW' } do
        local w = ms.zeros(1, { dtype = dtype })
        local set = ms.params { w }
        local opt = optim[name](set, { lr = 1, weight_decay = 0 })
        for _ = 1, 3 do opt:step(function() set.grads[1]:fill_(1); return 0 end) end
        local want = dtype == 'float32' and -3 or -3 / (1 + 1e-8)
        assert(math.abs(w:get(1) - want) <= 1e-14, ('%s %s: %.17g'):format(name, dtype, w:get(1)))
      end
    end
  end)

  for name, c in pairs(fx.cases) do
    it(('%s reproduces torch.optim.%s in float32 bit for bit'):format(name, c.optim), function()
      local got = trajectory(c, 'cpu')
      for _, t in ipairs(fx.record) do
        local u = max_ulps(got[t], c.after[t])
        assert(u == 0, ('%s step %d: %g ulps from PyTorch'):format(name, t, u))
      end
    end)
  end

  for name, c in pairs(fx.cases) do
    local title = ('%s on the GPU stays within a few ulps of PyTorch'):format(name)
    if gpu then
      it(title, function()
        local got = trajectory(c, 'cuda')
        for _, t in ipairs(fx.record) do
          local u = max_ulps(got[t], c.after[t])
          assert(u <= 64, ('%s step %d: %g ulps from PyTorch'):format(name, t, u))
        end
      end)
    else
      pending(title .. ' (no usable GPU)')
    end
  end
end)
