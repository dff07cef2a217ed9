-- The source layout's single lists (issue 7, "Layout"):
--   - the elementwise ops are listed once, in runtime/include/moonstep_elementwise.h; the
--     C enums, the message names, the CPU and CUDA switches and the Lua constants and
--     plain methods are derived from it (core.lua parses it for the FFI);
--   - the CUDA entry points are listed once, in runtime/cuda_entries.h; internal.h's
--     prototypes and cuda_stub.c's stubs are derived from it.
-- These specs fail when a second copy creeps back, or when the Lua side and the compiled
-- library disagree about the list.
local ms = require 'moonstep'
local ffi = require 'ffi'
local core = require 'moonstep.core'
local C = ms.C
local home = os.getenv('MOONSTEP_HOME') or '.'

local function read(path)
  local f = assert(io.open(home .. '/' .. path, 'r'), 'cannot read ' .. path)
  local text = f:read('*a')
  f:close()
  return text
end

local function files(dir, pattern)
  local list = {}
  local p = assert(io.popen(('find %q -name %q | sort'):format(home .. '/' .. dir, pattern)))
  for line in p:lines() do list[#list + 1] = line:sub(#home + 2) end
  p:close()
  return list
end

local function strip_comments(text)
  return (text:gsub('/%*.-%*/', ' '):gsub('//[^\n]*', ' '))
end

local ARITIES = { 'unary', 'binary', 'ternary' }
local lists = core.elementwise

-- Every op of the list, by id.
local function all_ops()
  local ops = {}
  for _, arity in ipairs(ARITIES) do
    for _, op in ipairs(lists[arity]) do ops[op.id] = { arity = arity, op = op } end
  end
  return ops
end

describe('the elementwise op list', function()
  it('is read by core.lua: ids unique, values 0..n-1, the FFI constants agree', function()
    local seen = {}
    for _, arity in ipairs(ARITIES) do
      local list = lists[arity]
      assert.is_true(#list >= 5, arity .. ': only ' .. #list .. ' ops read')
      for i, op in ipairs(list) do
        assert.is_nil(seen[op.id], 'MS_' .. op.id .. ' is listed twice')
        seen[op.id] = true
        assert.equal(i - 1, op.value)
        assert.equal(op.value, tonumber(C['MS_' .. op.id]), 'C.MS_' .. op.id)
        assert.is_truthy(op.name:match('^[%l%d_]+$'), op.id .. ': name ' .. op.name)
      end
      assert.equal(#list, tonumber(C['MS_' .. arity:upper() .. '_COUNT']))
    end
  end)

  it('agrees with the compiled library: each op id has the list\'s name, one past is unknown', function()
    local x = ms.tensor({ 1, 2 }, 'int64')  -- refused by every op: the message names the op
    local out = ms.zeros(2)
    local call = {
      unary = function(op) return C.ms_unary(out, x, op, 0, 0) end,
      binary = function(op) return C.ms_binary(out, x, x, op, 1) end,
      ternary = function(op) return C.ms_ternary(out, x, x, x, op, 1) end,
    }
    for _, arity in ipairs(ARITIES) do
      for _, op in ipairs(lists[arity]) do
        assert.equal(-1, call[arity](op.value))
        local msg = ffi.string(C.ms_last_error())
        assert.equal(op.name .. ':', msg:match('^[%w_]+:'), arity .. ' MS_' .. op.id .. ': ' .. msg)
      end
      assert.equal(-1, call[arity](#lists[arity]))
      assert.is_truthy(ffi.string(C.ms_last_error()):find('unknown op', 1, true))
    end
  end)

  it('keeps the ids that existed when the list was made (append new ops at the end)', function()
    local pinned = {
      unary = { 'NEG', 'ABS', 'EXP', 'LOG', 'SQRT', 'RSQRT', 'TANH', 'SIGMOID', 'RELU', 'SIGN',
                'SQUARE', 'RECIP', 'CLAMP', 'ADD_SCALAR', 'MUL_SCALAR', 'POW_SCALAR',
                'RSUB_SCALAR', 'RDIV_SCALAR', 'RPOW_SCALAR', 'MAX_SCALAR', 'MIN_SCALAR',
                'EQ_SCALAR', 'NE_SCALAR', 'LT_SCALAR', 'LE_SCALAR', 'GT_SCALAR', 'GE_SCALAR',
                'ERF', 'GELU', 'LEAKY_RELU', 'GELU_TANH' },
      binary = { 'ADD', 'SUB', 'MUL', 'DIV', 'POW', 'MAX', 'MIN', 'EQ', 'NE', 'LT', 'LE', 'GT',
                 'GE', 'RELU_BACKWARD', 'LEAKY_RELU_BACKWARD', 'TANH_BACKWARD',
                 'SIGMOID_BACKWARD', 'GELU_BACKWARD', 'GELU_TANH_BACKWARD' },
      ternary = { 'ADDCMUL', 'ADDCDIV', 'WHERE', 'LERP', 'LERP_WEIGHT' },
    }
    for _, arity in ipairs(ARITIES) do
      for i, id in ipairs(pinned[arity]) do
        assert.equal(id, lists[arity][i] and lists[arity][i].id, arity .. ' op ' .. (i - 1))
      end
    end
  end)

  it('is the only place the ops are named: no enum in moonstep.h, no literal cases', function()
    local cdef = strip_comments(read('runtime/include/moonstep.h'):match('MS_CDEF_BEGIN %*/(.-)/%* MS_CDEF_END')
      .. read('runtime/include/moonstep_optim.h'):match('MS_CDEF_BEGIN %*/(.-)/%* MS_CDEF_END'))
    for id in pairs(all_ops()) do
      assert.is_nil(cdef:find('%f[%w_]MS_' .. id .. '%f[^%w_]'),
                    'moonstep.h declares MS_' .. id .. ' again (the op list is moonstep_elementwise.h)')
    end
    for _, path in ipairs({ 'runtime/elementwise_impl.h', 'kernels/elementwise.cu', 'runtime/elementwise.c' }) do
      local text = strip_comments(read(path))
      assert.is_nil(text:match('case MS_%u[%u%d_]*'), path .. ' has a hand-written case: ' ..
                    tostring(text:match('case MS_%u[%u%d_]*')))
    end
  end)

  it('has one formula per op in elementwise_ops.h, and no formula without an op', function()
    local ops, formulas = all_ops(), {}
    for id in read('runtime/elementwise_ops.h'):gmatch('#define MS_FORMULA_([%u%d_]+)') do
      assert.is_nil(formulas[id], 'MS_FORMULA_' .. id .. ' defined twice')
      formulas[id] = true
      assert.is_truthy(ops[id], 'MS_FORMULA_' .. id .. ' has no op in the list')
    end
    for id in pairs(ops) do assert.is_truthy(formulas[id], 'MS_' .. id .. ' has no formula') end
  end)

  it('matches the Lua side: every C.MS_<op> named in lua/ is listed, every op is used', function()
    local ops = all_ops()
    -- the other constants of the C ABI (dtypes, reductions, ...)
    local declared = {}
    for _, h in ipairs { 'moonstep.h', 'moonstep_optim.h' } do
      for name in read('runtime/include/' .. h):gmatch('%f[%w_]MS_([%u%d_]+)') do declared[name] = true end
    end
    local used = {}
    for _, path in ipairs(files('lua', '*.lua')) do
      for name in read(path):gmatch('C%.MS_([%u%d_]+)') do
        assert.is_truthy(ops[name] or declared[name] or name:match('_COUNT$'),
                         path .. ' names C.MS_' .. name .. ', which is not in the op list')
        used[name] = true
      end
    end
    for id, e in pairs(ops) do
      assert.is_truthy(used[id] or e.op.method,
                       'MS_' .. id .. ' is listed but no Lua code uses it (nor is it a METHOD)')
    end
  end)

  it('gives each METHOD op the methods t:name() and t:name_(), and no others', function()
    local tensor_ops = require 'moonstep.tensor_ops'
    local methods = {}
    for _, op in ipairs(lists.unary) do
      if op.method then
        methods[op.name] = true
        assert.equal(op.value, tensor_ops.unary_methods[op.name])
        local x = ms.tensor({ 0.25, 0.5 })
        local y = x[op.name](x)
        assert.is_true(ms.is_tensor(y), op.name)
        assert.is_true(rawequal(x, x[op.name .. '_'](x)), op.name .. '_')
      end
    end
    for name in pairs(tensor_ops.unary_methods) do assert.is_true(methods[name], name) end
  end)
end)

describe('the CUDA entry point list', function()
  local listed = {}
  for name in strip_comments(read('runtime/cuda_entries.h')):gmatch('X%((ms_cuda_[%w_]+)') do
    listed[name] = true
  end
  -- written by hand in cuda_stub.c (see cuda_entries.h), or the optimizer engine's own
  local function exempt(name)
    return name == 'ms_cuda_compiled' or name == 'ms_cuda_device_count' or name == 'ms_cuda_check'
      or name == 'ms_cuda_free' or name == 'ms_cuda_workspace'
      or name:find('optim') or name:find('sgd') or name:find('adam') or name:find('slice')
      or name:find('arena')
  end

  it('is read', function()
    assert.is_true(listed.ms_cuda_unary and listed.ms_cuda_gemm and listed.ms_cuda_index_add)
  end)

  it('holds every entry point the kernels define, and only those', function()
    local defined = {}
    for _, path in ipairs(files('kernels', '*.cu')) do
      local text = strip_comments(read(path))
      for name in text:gmatch('\n[%w_ "]-int%s+(ms_cuda_[%w_]+)%s*%([^;{]*%)%s*{') do
        defined[name] = path
        -- kernels/optim*.cu: the optimizer engine's (stubs in cuda_stub.c's optimizer block)
        assert.is_truthy(listed[name] or exempt(name) or path:find('^kernels/optim'),
                         path .. ' defines ' .. name .. ', missing from runtime/cuda_entries.h')
      end
    end
    for name in pairs(listed) do
      assert.is_truthy(defined[name], name .. ' is listed but no kernels/*.cu defines it')
    end
  end)

  it('is where cuda_stub.c gets its stubs from (no hand-written listed stub)', function()
    local stub = strip_comments(read('runtime/cuda_stub.c'))
    assert.is_truthy(stub:find('MS_CUDA_ENTRIES(', 1, true))
    for name in pairs(listed) do
      assert.is_nil(stub:find('%f[%w_]' .. name .. '%s*%('), 'cuda_stub.c writes ' .. name .. ' by hand')
    end
  end)

  it('makes a CPU-only build refuse each listed entry point by name', function()
    if C.ms_cuda_compiled() ~= 0 then pending('a CUDA build') return end
    assert.equal(-1, C.ms_cuda_synchronize())
    assert.is_truthy(ffi.string(C.ms_last_error()):find('^cuda%.synchronize: CUDA is not available'))
  end)
end)
