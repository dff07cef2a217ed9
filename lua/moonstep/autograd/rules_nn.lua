-- moonstep.autograd.rules_nn — gradient rules of the nn functional forms
-- (ms.nn.functional.linear, conv2d, max_pool2d, avg_pool2d, dropout, cross_entropy,
-- nll_loss, mse_loss, binary_cross_entropy_with_logits; see autograd/tape.lua for the
-- rule protocol; the forms themselves: nn/forms.lua, nn/forms_loss.lua). The activation
-- forms (relu, softmax, ...) record the tensor methods' rules (rules_elementwise.lua).
--
-- A form whose backward needs what its forward made (conv2d's cols, max_pool2d's argmax,
-- cross_entropy's softmax, dropout's mask) records through a forward that returns it as
-- the node's state (n.state). The backward passes are the layers' own kernels (Linear's,
-- Conv2d's, the window ops', CrossEntropyLoss's one C pass); they free or overwrite the
-- state only when the node runs once (not tp.keep).
--
-- This file loads while the tensor library loads (install.lua): moonstep.nn is
-- required lazily, on the first recorded form.
local A = require 'moonstep.autograd.tape'
local check = require 'moonstep.check'
local rule, given = A.rule, check.given
local type = type

local P, T, W, C, core          -- loaded on first use
local function load()
  if not P then
    P = require('moonstep.nn.forms')._tape
    T = require 'moonstep.tensor'
    W = require 'moonstep.nn.window'
    core = require 'moonstep.core'
    C = core.C
  end
end

-- The recording forward of form `name`: P[name](...) returns (out, out2, state) when
-- has_out2 (max_pool2d's indices), (out, state) otherwise; the tape keeps the state as
-- n.state.
local function keeping(name, has_out2)
  return function(_, ...)
    load()
    local out, out2, st = P[name](...)
    if not has_out2 then st, out2 = out2, nil end
    return out, out2, st
  end
end

-- Where the tape offers one (tp:sink(t): a parameter's own gradient in the arena of the
-- set or Module being differentiated, which its gradient is added into), linear and conv2d
-- add their weight and bias gradients straight into it, as the Modules' backward does
-- (GEMM with beta = 1, the bias sums added in their pass): no fresh gradient, no second
-- pass. The sink must be contiguous, of t's dtype and device.
local function sink_of(tp, t)
  local s = tp:sink(t)
  if s and s:is_contiguous() and s.dtype == t.dtype and s.device == t.device then return s end
  return nil
end

-- Refuse a tracked tensor that the form gives no gradient (a class weight): the tape sees
-- the tensors of an options table, so such a weight records the node even when the input
-- is untracked, and this runs first in its backward (never a silent zero gradient).
local function no_grad_for(tp, fn, what, v)
  if given(v) and tp:need(v) then
    check.fail('%s: %s carries no gradient (as in PyTorch); detach it (t:detach())', fn, what)
  end
end

-- linear: y = x W^T + b. gW = g^T x, gb = the row sums of g, gx = g W.
rule('linear', function(n, g, tp)
  load()
  local x, w, b = n.args[1], n.args[2], n.args[3]
  local nout, nin = w:size(1), w:size(2)
  local g2 = g:dim() == 2 and g or g:reshape(-1, nout)
  if tp:need(w) then
    local x2 = x:dim() == 2 and x or x:reshape(-1, nin)
    local sink = sink_of(tp, w)
    if sink then T.matmul(g2, x2, { transpose_a = true, out = sink, beta = 1 })   -- gW += g^T x
    else tp:acc(w, T.matmul(g2, x2, { transpose_a = true })) end
  end
  if given(b) and tp:need(b) then
    local sink = sink_of(tp, b)
    local gb = sink or T.zeros({ nout }, { dtype = g.dtype, device = g.device })
    if C.ms_bias_grad(gb, g2, 1) ~= 0 then core.fail('nn.functional.linear') end   -- gb += row sums
    if not sink then tp:acc(b, gb) end
  end
  if tp:need(x) then
    local gx = T.matmul(g2, w)
    tp:acc(x, x:dim() == 2 and gx or gx:view(x:shape()))
  end
end)

-- conv2d: as nn.Conv2d's backward. gmat = g as [O, N*L] (gb = its row sums, one pass);
-- gW = gmat cols^T; gx = col2im(W^T gmat), or W^T g[n] per image on the 1x1 direct path;
-- with groups, each a batched GEMM over the groups.
rule('conv2d', function(n, g, tp)
  local st = n.state
  if st.empty then return end
  local fn = 'nn.functional.conv2d'
  local x, w, b = n.args[1], n.args[2], st.bias
  local O, groups, nb, L, K = st.O, st.groups, st.n, st.L, st.K
  local gc = g:contiguous()
  local needb = given(b) and tp:need(b)
  local bsink = needb and sink_of(tp, b)
  local gb = needb and (bsink or T.zeros({ O }, { dtype = gc.dtype, device = gc.device })) or nil
  local gmat = W.conv_grad_output(fn, W.alloc(fn, { O, nb * L }, gc), gb, gc:view(nb, O, L))
  if needb and not bsink then tp:acc(b, gb) end
  if tp:need(w) then
    st.cols = st.cols or W.im2col(fn, st.x4, st.win, W.alloc(fn, { K, nb * L }, gc))
    local cols = st.cols
    local sink = sink_of(tp, w)
    local o = sink and { transpose_b = true, beta = 1 } or { transpose_b = true }
    local gw
    if groups == 1 then
      if sink then o.out = sink:view(O, K) end
      gw = T.matmul(gmat, cols, o)
    else
      local og, kg = O / groups, K / groups
      if sink then o.out = sink:view(groups, og, kg) end
      gw = T.matmul(gmat:view(groups, og, nb * L), cols:view(groups, kg, nb * L), o)
    end
    if not sink then tp:acc(w, gw:view(w:shape())) end
  end
  if tp:need(x) then
    local Wt, gx = st.Wt, nil
    if st.direct then
      gx = T.matmul(Wt:view(1, O, K), gc:view(nb, O, L), { transpose_a = true })
    else
      local gcols
      if groups == 1 then
        gcols = T.matmul(Wt:view(O, K), gmat, { transpose_a = true })
      else
        local og, kg = O / groups, K / groups
        gcols = T.matmul(Wt:view(groups, og, kg), gmat:view(groups, og, nb * L), { transpose_a = true })
      end
      gx = W.col2im(fn, gcols:view(K, nb * L), W.alloc(fn, st.x4:shape(), gc), st.win)
      gcols:free()                          -- (made here: nothing else holds it)
    end
    tp:acc(x, gx:view(x:shape()))
  end
  gmat:free()                               -- the dead temporaries' memory back at once
  if st.cols and not tp.keep then st.cols:free(); st.cols = nil end
end, { forward = keeping('conv2d') })

-- pooling: the window kernels' backward (max: each gradient to its window's argmax).
local function pool_backward(n, g, tp)
  local x = n.args[1]
  tp:acc(x, P.pool2d_backward('nn.functional.' .. n.name, g, n.state):view(x:shape()))
end
rule('max_pool2d', pool_backward, { forward = keeping('max_pool2d', true) })
rule('avg_pool2d', pool_backward, { forward = keeping('avg_pool2d') })

-- dropout: g times the kept (scaled) mask.
rule('dropout', function(n, g, tp)
  tp:acc(n.args[1], g:mul(n.state))
end, { forward = keeping('dropout') })

-- The losses: the input's gradient (targets are constants, class weights refused).
local function opt_field(opts, k) return type(opts) == 'table' and rawget(opts, k) or nil end

rule('cross_entropy', function(n, g, tp)
  local fn = 'nn.functional.cross_entropy'
  local x, t = n.args[1], n.args[2]
  no_grad_for(tp, fn, 'weight', opt_field(n.args[3], 'weight'))
  if not tp:need(x) then return end
  local st = n.state
  if st.mod then tp:acc(x, P.module_backward(fn, st, g, x, t))
  else tp:acc(x, P.cross_entropy_backward(fn, st, g, x, tp.keep)) end
end, { forward = keeping('cross_entropy') })

rule('nll_loss', function(n, g, tp)
  local fn = 'nn.functional.nll_loss'
  local x, t = n.args[1], n.args[2]
  no_grad_for(tp, fn, 'weight', opt_field(n.args[3], 'weight'))
  if tp:need(x) then tp:acc(x, P.module_backward(fn, n.state, g, x, t)) end
end, { forward = keeping('nll_loss') })

rule('mse_loss', function(n, g, tp)
  local x, y = n.args[1], n.args[2]
  local gx = P.mse_loss_backward(n.state, g, x, y)
  tp:acc(x, gx)
  if tp:need(y) then tp:acc(y, gx:neg()) end
end, { forward = keeping('mse_loss') })

rule('binary_cross_entropy_with_logits', function(n, g, tp)
  local fn = 'nn.functional.binary_cross_entropy_with_logits'
  local x, y = n.args[1], n.args[2]
  no_grad_for(tp, fn, 'weight', opt_field(n.args[3], 'weight'))
  no_grad_for(tp, fn, 'pos_weight', opt_field(n.args[3], 'pos_weight'))
  local st = n.state
  if tp:need(y) then tp:acc(y, P.bce_target_grad(st, g, x)) end
  if tp:need(x) then tp:acc(x, P.module_backward(fn, st, g, x, y)) end
end, { forward = keeping('binary_cross_entropy_with_logits') })

return A
