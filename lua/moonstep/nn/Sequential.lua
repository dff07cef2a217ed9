-- nn.Sequential(m1, m2, ...) — applies its children in order; builds the model's
-- parameter arena once, when composed.
--   forward(x):      x -> m1 -> m2 -> ...        (each child's input is kept for backward)
--   backward(x, gy): gradients flow back through the children in reverse order; x must
--       be the input of the last forward (an error otherwise: backward never re-runs
--       forward, which would update BatchNorm statistics and draw new dropout masks)
--   m.input_grad: whether backward computes the gradient w.r.t. x itself. A model (a
--       Sequential that no container feeds) does not by default, as PyTorch does not for
--       data that does not require grad: its first child skips that product (a third GEMM
--       on the widest layer of an MLP) and backward returns nil. Set m.input_grad = true to
--       get it (a gradient-based attack, a saliency map); a Sequential inside another
--       container computes it whenever that container needs it.
--   Under mpirun, with a distributed optimizer bound to this model, backward is a
--       collective: the gradient all-reduce runs in buckets as children finish
--       (optim/dist_buckets.lua); run it on every rank, or inside opt:no_sync / ms.dist.alone.
local Module = require 'moonstep.nn.Module'
local check = require 'moonstep.check'

local Sequential = Module:extend('Sequential')

local is_module = Module.is_module

Sequential._joins_tape = true   -- on an ms.autograd tape its layers check the tape themselves
Sequential._backward_in_buckets = true   -- its backward tells the bucket plan (optim/dist_buckets.lua)

function Sequential:__init(...)
  Module.init(self)
  for i = 1, select('#', ...) do
    local m = select(i, ...)
    if not is_module(m) then
      check.fail('Sequential: argument %d is %s, expected a module (nn.Linear(...), nn.ReLU(), ...)',
                 i, check.describe(m))
    end
    for j = 1, i - 1 do
      if rawequal(select(j, ...), m) then
        check.fail('Sequential: argument %d is the same module as argument %d; ' ..
                   'a module can appear once (its input is kept for backward)', i, j)
      end
    end
    self:add(m)
  end
  self:_build_arena('Sequential')
end

function Sequential:forward(x)
  self:_begin_forward(x, 'any')
  local inputs = { x }
  for i, m in ipairs(self.modules) do
    x = m:forward(x)
    inputs[i + 1] = x
  end
  self.inputs = inputs
  self.output = x
  self:record_input(inputs[1])
  return x
end

-- The children's backward, last to first; after each, plan:child_done(i) (when bucketed).
local function backward_children(self, gy, plan)
  for i = #self.modules, 1, -1 do
    local m = self.modules[i]
    if i > 1 and m.input_grad == nil then m._fed = true end
    gy = m:backward(self.inputs[i], gy)
    if gy == nil and i > 1 then
      check.fail('Sequential.backward: module %d (%s) returned no gradInput', i, self.modules[i].__name)
    end
    if plan then plan:child_done(i) end
  end
  return gy
end

function Sequential:backward(x, gy)
  self:check_input(x)
  check.tensor('Sequential.backward', 'gradOutput', gy)
  -- this container's own need: asked for, or (unset) whether a parent container feeds
  -- it (_fed, set by the parent before each backward); a model's default is no
  local need = self.input_grad
  if need == nil then need = self._fed == true end
  local first = self.modules[1]
  if first then first.input_grad, first._fed = need, nil end
  -- data parallelism: the gradient all-reduce in buckets, each started once the children
  -- that fill it are done (optim/dist_buckets.lua; nil when this backward is not bucketed).
  -- A child that raises: the buckets in flight are waited for before the error goes on
  -- (MPI writes into the arena until then).
  local plan = rawget(self, '_dist_buckets')
  plan = plan and plan:begin()
  if plan then
    local ok, res = pcall(backward_children, self, gy, plan)
    if not ok then
      pcall(plan.abandon, plan)   -- (its own failure, after a timeout, would hide this one)
      error(res, 0)
    end
    gy = res
    plan:finish()
  else
    gy = backward_children(self, gy)
  end
  self.gradInput = gy
  return gy
end

return Sequential
