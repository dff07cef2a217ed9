-- nn.Embedding(num_embeddings, dim) — rows of a table by 1-based int64 indices.
--   idx [N] or [N, L] int64 -> y [N, dim] or [N, L, dim];  W [num, dim] ~ N(0, 1)
--   backward: grad_weight:index_add(1, idx, g) (repeated indices sum); no gradInput
local ms = require 'moonstep'
local Module = require 'moonstep.nn.Module'
local F = require 'moonstep.nn.functional'

local Embedding = Module:extend('Embedding')

function Embedding:__init(num, dim)
  Module.init(self)
  if type(num) ~= 'number' or type(dim) ~= 'number' then
    error('Embedding: expected (num_embeddings, embedding_dim)', 3)
  end
  self.num, self.dim = num, dim
  self:register_parameter('weight', ms.randn(num, dim), 'weight')
end

function Embedding:extra_repr() return ('%d, %d'):format(self.num, self.dim) end

function Embedding:forward(idx)
  if not ms.is_tensor(idx) or idx.dtype ~= 'int64' then
    error('Embedding.forward: expected an int64 tensor of 1-based indices', 2)
  end
  local flat = idx:reshape(-1)
  local shape = idx:shape()
  shape[#shape + 1] = self.dim
  self.output = self.weight:index_select(1, flat):view(shape)
  return self.output
end

function Embedding:backward(idx, g)
  self:ensure_arena()
  F.index_add_(self.grad_weight, 1, idx:reshape(-1), g:reshape(-1, self.dim):contiguous())
  self.gradInput = nil
  return nil
end

return Embedding
