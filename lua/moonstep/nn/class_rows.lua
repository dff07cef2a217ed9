-- moonstep.nn.class_rows — the row layout of class scores that nn.CrossEntropyLoss,
-- nn.NLLLoss (losses.lua) and their functional forms (forms_loss.lua) share: scores
-- x [N, C], [N, C, d1, ...] or [C] against int64 class targets [N], [N, d1, ...] or []
-- (1-based) as rows x2 [M, C], t1 [M], and a [M, C] gradient back to x's layout.
local T = require 'moonstep.tensor'
local check = require 'moonstep.check'
local shape_of, same_shape = T.shape_of, T.same_shape

local R = {}

-- Checks the targets t against x (fn: the public function, for errors) and returns x2,
-- t1 and C. Float targets of x's shape (class probabilities) are refused by name.
function R.rows(fn, x, t)
  T.live(fn, t, 'target')
  if t.device ~= x.device then
    check.fail('%s: target is on %s but input on %s, expected one device', fn, t.device, x.device)
  end
  if t.dtype ~= 'int64' then
    if same_shape(x, t) then
      check.fail('%s: target is %s: class-probability targets are not supported, expected int64 ' ..
                 'class indices (1-based)', fn, check.describe(t))
    end
    check.fail('%s: target is %s, expected int64 class indices (1-based)', fn, check.describe(t))
  end
  local n = x:dim()
  if n == 0 then check.fail('%s: input is %s, expected [N, C], [N, C, d1, ...] or [C] scores', fn, check.describe(x)) end
  local want = x:shape()
  local c = n == 1 and want[1] or want[2]
  table.remove(want, n == 1 and 1 or 2)
  local ok = t:dim() == #want
  for d = 1, #want do ok = ok and t:size(d) == want[d] end
  if not ok then
    check.fail('%s: target has shape %s, expected int64 class indices of shape [%s] (1-based) for input %s',
               fn, shape_of(t), table.concat(want, ','), shape_of(x))
  end
  if c < 1 then check.fail('%s: input %s has no classes in its class dim', fn, shape_of(x)) end
  local m = t:numel()
  if n <= 2 then return x:reshape(m, c), t:reshape(m), c end
  local order = { 1 }                                      -- [N, C, d...] -> [N, d..., C]
  for d = 3, n do order[#order + 1] = d end
  order[#order + 1] = 2
  return x:permute(order):reshape(m, c), t:reshape(m), c
end

-- A [M, C] gradient back to the layout of x.
function R.back(g2, x)
  local n = x:dim()
  if n <= 2 then return g2:view(x:shape()) end
  local s = { x:size(1) }
  for d = 3, n do s[#s + 1] = x:size(d) end
  s[#s + 1] = x:size(2)
  local back = { 1, n }                                    -- [N, d..., C] -> [N, C, d...]
  for d = 2, n - 1 do back[#back + 1] = d end
  return g2:view(s):permute(back):contiguous()
end

return R
