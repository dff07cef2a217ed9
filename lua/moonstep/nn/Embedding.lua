-- nn.Embedding(num_embeddings, embedding_dim [, padding_idx]) — rows of a table by
-- 1-based int64 indices. Options may also come as a table:
-- Embedding(num, dim, { padding_idx = }).
--   idx [...] int64 -> y [..., dim];  W [num, dim] ~ N(0, 1)
--   padding_idx: a row index in the same 1-based terms as the indices (negative counts
--       from the end: -1 is row num). As PyTorch: that row starts as zeros, is looked up
--       like any other, and its gradient stays zero (it is never trained).
--   backward: grad_weight:index_add(1, idx, g) (repeated indices sum); no gradInput
--   PyTorch's max_norm, scale_grad_by_freq = true and sparse = true are not supported
--   (refused); norm_type only matters with max_norm.
local ms = require 'moonstep'
local Module = require 'moonstep.nn.Module'
local F = require 'moonstep.nn.functional'
local check = require 'moonstep.check'

local Embedding = Module:extend('Embedding')

local NAMES = { 'padding_idx', 'max_norm', 'norm_type', 'scale_grad_by_freq', 'sparse' }
local USAGE = 'Embedding(num_embeddings, embedding_dim [, padding_idx]) or Embedding(num, dim, {options})'

function Embedding:__init(num, dim, ...)
  Module.init(self)
  local n = select('#', ...)
  Module._check_arity('Embedding', 2 + n, 7, USAGE)
  if dim == nil then check.fail('Embedding: embedding_dim is missing, expected %s', USAGE) end
  check.integer('Embedding', 'num_embeddings', num, 1)
  check.integer('Embedding', 'embedding_dim', dim, 1)
  local o = {}
  local first = ...
  if type(first) == 'table' then
    if n > 1 then check.fail('Embedding: an options table must be the last argument') end
    o = check.options('Embedding', first, NAMES)
  else
    for i = 1, n do o[NAMES[i]] = select(i, ...) end
  end
  if o.max_norm ~= nil then
    check.fail('Embedding: max_norm is %s, but max_norm is not supported (expected nil)', check.describe(o.max_norm))
  end
  if o.norm_type ~= nil then check.number('Embedding', 'norm_type', o.norm_type) end
  for _, k in ipairs { 'scale_grad_by_freq', 'sparse' } do
    if o[k] ~= nil and o[k] ~= false then
      check.fail('Embedding: %s is %s, but only false is supported', k, check.describe(o[k]))
    end
  end
  local p = o.padding_idx
  if p ~= nil then
    check.integer('Embedding', 'padding_idx', p, -num, num)
    if p == 0 then
      check.fail('Embedding: padding_idx is 0, expected a 1-based row in 1..%d (or -%d..-1 from the end)', num, num)
    end
    if p < 0 then p = num + p + 1 end
  end
  self.num, self.dim, self.padding_idx = num, dim, p
  local w = Module._alloc('Embedding', ms.randn, num, dim)
  if p then w:narrow(1, p, 1):zero_() end
  self:register_parameter('weight', w, 'weight')
end

function Embedding:extra_repr()
  return ('%d, %d%s'):format(self.num, self.dim, self.padding_idx and (', padding_idx=%d'):format(self.padding_idx) or '')
end


function Embedding:forward(idx)
  self:_begin_forward(idx, 'any')
  if idx.dtype ~= 'int64' then
    check.fail('Embedding.forward: input is %s, expected an int64 tensor of 1-based indices', check.describe(idx))
  end
  if idx.device ~= self.weight.device then
    check.fail('Embedding.forward: input is on %s, expected %s (the layer\'s)', idx.device, self.weight.device)
  end
  local flat = idx:reshape(idx:numel())
  local shape = idx:shape()
  shape[#shape + 1] = self.dim
  local ok, rows = pcall(self.weight.index_select, self.weight, 1, flat)
  if not ok then
    local why = check.reason(rows)
    if not why:find('expected', 1, true) then why = why .. (' (indices are 1-based rows in 1..%d)'):format(self.num) end
    check.fail('Embedding.forward: %s', why)
  end
  self.output = rows:view(shape)
  self:record_input(idx)
  return self.output
end

function Embedding:backward(idx, g)
  self:_begin_backward(idx, g)
  self:_ensure_arena(self.__name .. '.backward')
  local gw, p = self.grad_weight, self.padding_idx
  local keep = p and gw:narrow(1, p, 1):clone()       -- the padding row's gradient stays
  F.index_add_(gw, 1, idx:reshape(idx:numel()), g:reshape(idx:numel(), self.dim):contiguous())
  if keep then gw:narrow(1, p, 1):copy_(keep) end
  self.gradInput = nil
  return nil
end

return Embedding
