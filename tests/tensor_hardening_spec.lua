-- Issue 6, the tensor core: every bad input is a clear Lua error naming the public
-- function, at the caller's line; never a crash, a hang or a silently wrong result.
local ms = require 'moonstep'
local H = require 'helper'
local ffi = require 'ffi'

local function freed(...)
  local t = ms.ones(...)
  t:free()
  return t
end

describe('freed tensors', function()
  it('every path raises "<fn>: ... freed", naming the public function', function()
    local cases = {
      { 'empty_like', function(t) return ms.empty_like(t) end },
      { 'zeros_like', function(t) return ms.zeros_like(t) end },
      { 'cat', function(t) return ms.cat({ ms.ones(2), t }) end },
      { 'where', function(t) return ms.where(t, 1, 0) end },
      { 'where', function(t) return ms.where(ms.ones(2), t, 0) end },
      { 't.device', function(t) return t.device end },
      { 'clone', function(t) return t:clone() end },
      { 'view', function(t) return t:view(2) end },
      { 'expand', function(t) return t:expand(2, 2) end },
      { 'matmul', function(t) return ms.matmul(t, ms.ones(2, 2)) end },
      { 'matmul', function(t) return ms.matmul(ms.ones(2, 2), ms.ones(2, 2), { out = t }) end },
      { 'index_select', function(t) return ms.ones(2):index_select(1, t) end },
      { 'lerp', function(t) return ms.ones(2):lerp(ms.ones(2), t) end },
      { 'add', function(t) return ms.ones(2) + t end },
      { 'mul', function(t) return 2 * t end },
      { 'totable', function(t) return t:totable() end },
      { 'shape', function(t) return t:shape() end },
      { 'uniform_', function(t) return t:uniform_() end },
      { 'softmax', function(t) return t:softmax() end },
      { 'dot', function(t) return ms.dot(t, t) end },
      { 'to', function(t) return t:to('float64') end },
      { 'copy_', function(t) return ms.ones(2):copy_(t) end },
    }
    for _, c in ipairs(cases) do
      H.assert_error(function() return c[2](freed(2)) end, c[1], 'freed')
    end
    assert.equal('[ms.Tensor (freed)]', tostring(freed(2)))
  end)
end)

describe('more than 8 dimensions', function()
  it('view, reshape, expand, unsqueeze and constructors refuse before writing', function()
    local ones12 = {}
    for i = 1, 12 do ones12[i] = 1 end
    H.assert_error(function() return ms.ones(1):view(unpack(ones12)) end, 'view', '12', 'at most 8')
    H.assert_error(function() return ms.ones(1):reshape(ones12) end, 'reshape', 'at most 8')
    H.assert_error(function() return ms.ones(1):expand(unpack(ones12)) end, 'expand', 'at most 8')
    H.assert_error(function() return ms.ones(1, 1, 1, 1, 1, 1, 1, 1):unsqueeze(1) end, 'unsqueeze', 'at most 8')
    H.assert_error(function() return ms.ones(ones12) end, 'ones', 'at most 8')
    H.assert_error(function() return ms.ones(1):permute(unpack(ones12)) end, 'permute', 'at most 8')
    local deep = 1
    for _ = 1, 9 do deep = { deep } end
    H.assert_error(function() return ms.tensor(deep) end, 'tensor', 'at most 8')
    assert.same({ 1, 1, 1, 1, 1, 1, 1, 1 }, ms.ones(1):view(1, 1, 1, 1, 1, 1, 1, 1):shape())
  end)
end)

describe('printing', function()
  it('reads only the elements shown, through the view', function()
    local s = tostring(ms.zeros(1, 'float64'):expand(100000))
    assert.truthy(s:find('shape 100000', 1, true))
    assert.truthy(s:find('...', 1, true))
    local e = ms.arange(6):view(2, 3):t()           -- non-contiguous
    assert.truthy(tostring(e):find(' 0 3\n 1 4\n 2 5', 1, true))
    local big = ms.zeros(1, 1, 1, 1, 1, 1, 1, 1):expand(5, 5, 5, 5, 5, 5, 5, 5)
    local lines = select(2, tostring(big):gsub('\n', ''))
    assert.is_true(lines < 1000, 'a summary, not ' .. lines .. ' lines')
  end)
  it('0-d tensors, int64 exactly, empty and freed tensors', function()
    assert.equal('2.5000\n[ms.Tensor float32 of shape scalar on cpu]', tostring(ms.tensor(2.5)))
    assert.truthy(tostring(ms.tensor({ 2 ^ 62 }, 'int64')):find('4611686018427387904', 1, true))
    assert.equal('[ms.Tensor float32 of shape 0x3 on cpu]', tostring(ms.zeros(0, 3)))
  end)
end)

describe('ms.tensor tables', function()
  it('cycles and ragged nesting are clear errors', function()
    local t = {}
    t[1] = t
    H.assert_error(function() return ms.tensor(t) end, 'tensor', 'cycle')
    H.assert_error(function() return ms.tensor { { 1, 2 }, { 3 } } end, 'tensor', 'ragged', 'element 2')
    H.assert_error(function() return ms.tensor { { 1, 2 }, 3 } end, 'tensor', 'ragged')
    H.assert_error(function() return ms.tensor { 1, 'x' } end, 'tensor', 'element 2', '"x"')
    H.assert_error(function() return ms.tensor { 1, nil, 3 } end, 'tensor')
    H.assert_error(function() return ms.tensor { ms.ones(1) } end, 'tensor')
  end)
end)

describe('checked arithmetic', function()
  it('huge sizes, strides and offsets are errors', function()
    H.assert_error(function() return ms.empty(0, 2 ^ 40, 2 ^ 40) end, 'empty', 'too large')
    H.assert_error(function() return ms.zeros(2 ^ 63) end, 'zeros', '9223372036854775808')
    H.assert_error(function() return ms.zeros(1 / 0) end, 'zeros', 'inf')
    H.assert_error(function() return ms.zeros(0 / 0) end, 'zeros', 'nan')
    H.assert_error(function() return ms.ones(1):expand(2 ^ 62, 2 ^ 62) end, 'expand')
    H.assert_error(function() return ms.ones(3):narrow(1, 2 ^ 62, 1) end, 'narrow', 'start')
  end)
  it('index values of -2^63 and 2^63-1 are out of range, not undefined behaviour', function()
    local idx = ms.zeros(2, 'int64')
    ms.C.ms_set(idx, ffi.new('int64_t[1]', 0), -2 ^ 63)
    local t = ms.ones(3)
    H.assert_error(function() return t:index_select(1, idx) end, 'index_select', '-9223372036854775808')
    H.assert_error(function() return t:gather(1, idx) end, 'gather', '-9223372036854775808')
    local out = ms.zeros(3)
    assert.are_not.equal(0, ms.C.ms_index_add(out, 0, idx, ms.ones(2), 1))
    assert.truthy(ffi.string(ms.C.ms_last_error()):find('-9223372036854775808', 1, true))
    -- a base that would overflow v - base
    assert.are_not.equal(0, ms.C.ms_index_select(ms.zeros(2), t, 0, ms.tensor({ 2 ^ 62, 2 ^ 62 }, 'int64'), -2 ^ 62))
  end)
end)

describe('silently wrong results', function()
  it('lerp with a tensor weight', function()
    local fx = dofile((os.getenv('MOONSTEP_HOME') or '.') .. '/tests/fixtures/tensor_ops.lua')
    H.assert_close(ms.full({ 3 }, 2):lerp(ms.ones(3), ms.full({ 3 }, 0.25)), { 1.75, 1.75, 1.75 }, 1e-7)
    H.assert_close(ms.full({ 3 }, 2):lerp(ms.ones(3), ms.tensor { 0.25, 0.5, -1 }), fx.lerp.y, 1e-7)
    H.assert_close(ms.full({ 3 }, 2):lerp(ms.ones(3), 0.25), { 1.75, 1.75, 1.75 }, 1e-7)
    local a = ms.full({ 2, 3 }, 2)
    a:lerp_(ms.ones(3), ms.full({ 2, 1 }, 0.5))
    H.assert_close(a, { 1.5, 1.5, 1.5, 1.5, 1.5, 1.5 }, 1e-7)
  end)
  it('matmul into one of its inputs computes through a temporary', function()
    for _, which in ipairs { 'a', 'b' } do
      local a, b = ms.randn(4, 4, 'float64'), ms.randn(4, 4, 'float64')
      local want = ms.matmul(a, b)
      ms.matmul(a, b, { out = which == 'a' and a or b })
      H.assert_close(which == 'a' and a or b, want, 1e-12, 'out = ' .. which)
    end
    local a, b = ms.randn(3, 3, 'float64'), ms.randn(3, 3, 'float64')
    local want = ms.matmul(a, b) * 2 + a * 0.5
    ms.matmul(a, b, { out = a, alpha = 2, beta = 0.5 })
    H.assert_close(a, want, 1e-12, 'beta')
  end)
  it('in-place ops and copies whose output overlaps an input in another layout', function()
    local a = ms.arange(9, 'float64'):view(3, 3)
    local want = a + a:t()
    a:add_(a:t())
    H.assert_close(a, want, 0, 'a:add_(a:t())')
    local b = ms.arange(9, 'float64'):view(3, 3)
    want = b:t():clone()
    b:copy_(b:t())
    H.assert_close(b, want, 0, 'b:copy_(b:t())')
    local d = ms.arange(6, 'float64')
    d:narrow(1, 2, 5):add_(d:narrow(1, 1, 5))
    H.assert_close(d, { 0, 1, 3, 5, 7, 9 }, 0, 'shifted add_')
    local e = ms.arange(6, 'float64')
    e:narrow(1, 2, 5):copy_(e:narrow(1, 1, 5))
    H.assert_close(e, { 0, 0, 1, 2, 3, 4 }, 0, 'shifted copy_')
    local f = ms.arange(8, 'float64'):view(2, 4)
    f:narrow(2, 2, 3):copy_(f:narrow(2, 1, 3))   -- strided rows, overlapping
    H.assert_close(f, { 0, 0, 1, 2, 4, 4, 5, 6 }, 0, 'strided shifted copy_')
    -- C-only outputs that alias an input are refused
    local x = ms.arange(4, 'float64'):view(2, 2)
    assert.are_not.equal(0, ms.C.ms_index_select(x, x, 0, ms.tensor({ 2, 1 }, 'int64'), 1))
    assert.truthy(ffi.string(ms.C.ms_last_error()):find('shares memory', 1, true))
  end)
  it('BLAS dimensions above 2^31-1 are refused, not truncated', function()
    -- a fake storage that claims 2^40 elements: the check comes before any access
    local st = ffi.new('ms_storage', { data = ffi.new('float[4]'), nbytes = 2 ^ 42, device = 0, refcount = 1000 })
    local raw = ffi.new('uint8_t[?]', ffi.sizeof('ms_tensor'))
    local a = ffi.cast('ms_tensor *', raw)
    a.storage, a.ndim, a.dtype_id, a.count, a.offset = st, 2, 0, 4, 0
    a.sizes[0], a.sizes[1], a.strides[0], a.strides[1] = 2, 2, 2 ^ 31 + 1, 1
    local rc = ms.C.ms_matmul(ms.zeros(2, 2), a, ms.zeros(2, 2), 0, 0, 1, 0)
    assert.are_not.equal(0, rc)
    assert.truthy(ffi.string(ms.C.ms_last_error()):find('2^31-1', 1, true))
  end)
  it('conversions refuse out-of-range and non-integral values', function()
    H.assert_error(function() return ms.tensor({ 300 }, 'uint8') end, 'tensor', '300', '0..255')
    H.assert_error(function() return ms.tensor({ 1.5 }, 'int64') end, 'tensor', '1.5', 'integer')
    H.assert_error(function() return ms.tensor(-1, 'uint8') end, 'tensor', '-1')
    H.assert_error(function() return ms.ones(1):expand(2.5) end, 'expand', '2.5')
    H.assert_error(function() return ms.ones(3):index_select(1, { 1.9 }) end, 'index_select', 'is 1.9,')
    H.assert_error(function() return ms.zeros(2, 'int64'):fill_(0.5) end, 'fill_', '0.5')
    H.assert_error(function() return ms.zeros(2, 'uint8'):fill_(256) end, 'fill_', '256')
    H.assert_error(function() return ms.zeros(2, 'int64'):set(1, 2 ^ 63) end, 'set', 'integer')
    H.assert_error(function() return ms.full({ 2 }, 1.5, 'int64') end, 'full', '1.5')
    H.assert_error(function() return ms.arange(0, 1, 0.5, 'int64') end, 'arange', 'step')
    H.assert_error(function() return ms.zeros(2.5) end, 'zeros', '2.5')
    H.assert_error(function() return ms.ones(3):narrow(1, 1.5, 1) end, 'narrow', '1.5')
    H.assert_error(function() return ms.ones(3):select(1, 1.5) end, 'select', '1.5')
    H.assert_error(function() return ms.ones(3):get(1.5) end, 'get', '1.5')
    H.assert_error(function() return ms.ones(3):sum(1.5) end, 'sum', '1.5')
    H.assert_error(function() return ms.tensor({ 300 }):to('uint8') end, 'to', 'uint8')
    H.assert_error(function() return ms.tensor({ 0 / 0 }):long() end, 'long', 'NaN')
    H.assert_error(function() return ms.tensor({ 1e300 }, 'float64'):to('int64') end, 'to', 'int64')
    H.assert_error(function() return ms.tensor({ 300 }, 'int64'):byte() end, 'byte', 'uint8')
    -- the C entry points refuse the same
    local u = ms.zeros(2, 'uint8')
    assert.are_not.equal(0, ms.C.ms_fill(u, 300))
    assert.are_not.equal(0, ms.C.ms_set(u, ffi.new('int64_t[1]', 0), 0 / 0))
    assert.same({ 1, -2 }, ms.tensor { 1.5, -2.7 }:long():totable())  -- truncation
    assert.same({ 255 }, ms.tensor({ 255 }, 'uint8'):totable())
  end)
end)

describe('clear errors', function()
  it('argument types are checked first and the function names itself', function()
    H.assert_error(function() return ms.zeros(2):clamp('a') end, 'clamp', 'min', '"a"')
    H.assert_error(function() return ms.zeros(2):clamp(1, 0) end, 'clamp', 'min 1', 'max 0')
    H.assert_error(function() return ms.zeros(2):view() end, 'view', 'no sizes')
    H.assert_error(function() return ms.rand(0.5) end, 'rand', '0.5')
    H.assert_error(function() return ms.randn(2, 'int64') end, 'randn', 'int64')
    H.assert_error(function() return ms.zeros(2):sum(-3) end, 'sum', 'dim -3')
    H.assert_error(function() return ms.zeros(2):sum(1, 'yes') end, 'sum', 'keepdim', '"yes"')
    H.assert_error(function() return ms.zeros(2):foo() end, 'Tensor', 'foo')
    H.assert_error(function() return ms.zeros(2)[1] end, 'Tensor', 't[1]')
    H.assert_error(function() return ms.zeros(2) < ms.zeros(2) end, 'Tensor', 'lt')
    H.assert_error(function() return 'a' + ms.zeros(2) end, 'add', '"a"')
    H.assert_error(function() return ms.zeros(2):to('float32', 'gpu') end, 'to', '"gpu"')
    H.assert_error(function() return ms.zeros(2):gelu('fast') end, 'gelu', 'approximate')
    H.assert_error(function() return ms.zeros(2):leaky_relu('x') end, 'leaky_relu', 'negative_slope')
    H.assert_error(function() return ms.zeros(2):norm('fro') end, 'norm', 'p')
    H.assert_error(function() return ms.zeros(2):std(1, 'no') end, 'std', 'unbiased')
    H.assert_error(function() return ms.cat(ms.zeros(2)) end, 'cat', 'table of tensors')
    H.assert_error(function() return ms.cat { ms.zeros(2), ms.zeros(2, 'float64') } end, 'cat', 'dtype')
    H.assert_error(function() return ms.zeros(2):index_select(1, 'x') end, 'index_select', 'index')
    H.assert_error(function() return ms.arange('a') end, 'arange', '"a"')
    H.assert_error(function() return ms.linspace(0, 1, 2.5) end, 'linspace', 'count')
    H.assert_error(function() return ms.zeros(2):uniform_(2, 1) end, 'uniform_', 'from 2')
    H.assert_error(function() return ms.zeros(2):normal_(0, -1) end, 'normal_', 'std')
    H.assert_error(function() ms.set_num_threads(0) end, 'set_num_threads', 'count')
    H.assert_error(function() return ms.philox({ 1, 2 }, { 1, 2 }) end, 'philox', 'counter')
    H.assert_error(function() return ms.zeros(2):addcmul(ms.zeros(2)) end, 'addcmul', 'tensor2')
    H.assert_error(function() return ms.zeroes(2) end, 'ms', 'no function or module', 'zeroes')
    H.assert_error(function() return ms.rand(2):gelu(ms) end, 'gelu', 'approximate')
    assert.is_nil(rawget(ms, 'zeroes'))
  end)
  it('sizes of 2^63 and inf are never printed as -9223372036854775808', function()
    for _, f in ipairs {
      function() return ms.zeros(2 ^ 63) end,
      function() return ms.ones(1):expand(2 ^ 63) end,
      function() return ms.ones(1):view(2 ^ 63) end,
      function() return ms.ones(1):view(1 / 0) end,
    } do
      local err = H.assert_error(f)
      assert.falsy(err:find('-9223372036854775808', 1, true), err)
    end
  end)
  it('options tables reject unknown keys', function()
    H.assert_error(function() return ms.zeros(2, { dtyp = 'float64' }) end, 'zeros', 'dtyp', 'dtype')
    H.assert_error(function() return ms.matmul(ms.ones(2, 2), ms.ones(2, 2), { transpose = true }) end,
                   'matmul', 'transpose', 'transpose_a')
    H.assert_error(function() return ms.zeros(2):uniform_(0, 1, { seed = 1, strm = 2 }) end, 'uniform_', 'strm')
    H.assert_error(function() ms.set_rng_state { seed = 1, stream = 0, x = 1 } end, 'set_rng_state', 'x')
    H.assert_error(function() return ms.tensor({ 1 }, { dtype = 'int64', devic = 'cpu' }) end, 'tensor', 'devic')
  end)
  it('errors point at the caller\'s line, also from C and from deep inside', function()
    local function line_of(f)
      local ok, err = pcall(f)
      assert.is_false(ok)
      return tostring(err):match('tensor_hardening_spec%.lua:(%d+):')
    end
    local here = debug.getinfo(1, 'l').currentline
    assert.equal(tostring(here + 1), line_of(function() local x = ms.matmul(ms.zeros(2, 3), ms.zeros(4, 5)); return x end))
    assert.equal(tostring(here + 2), line_of(function() local x = ms.zeros(2) + ms.zeros(3); return x end))
    assert.equal(tostring(here + 3), line_of(function() local x = ms.zeros(2, 'int64'):exp(); return x end))
    assert.equal(tostring(here + 4), line_of(function() local x = ms.zeros(3):view(4); return x end))
  end)
  it('C messages name the public function', function()
    H.assert_error(function() return ms.zeros(2, 'int64'):clone():exp() end, 'exp')
    local err = H.assert_error(function() return ms.tensor({ 0 / 0 }):long() end, 'long')
    assert.falsy(err:find('copy_', 1, true), err)
    H.assert_error(function() return ms.empty(2 ^ 45) end, 'empty', 'out of memory')
    H.assert_error(function() return ms.zeros(2 ^ 45) end, 'zeros', 'out of memory')
  end)
end)

describe('aliases', function()
  it('nelement, ndimension and every method listed are callable', function()
    local t = ms.ones(2, 3)
    assert.equal(6, t:nelement())
    assert.equal(2, t:ndimension())
    for name, f in pairs(ms.Tensor) do
      assert.equal('function', type(f), 'Tensor.' .. name)
    end
  end)
  it('Lua readers refuse a header a script overwrote (no read outside the storage)', function()
    local t = ms.ones(3)
    t.offset = 2 ^ 40
    H.assert_error(function() return t:get(1) end, 'get', 'corrupt header')
    local u = ms.ones(3)
    u.sizes[0] = 100
    H.assert_error(function() return tostring(u) end, 'corrupt header')
    H.assert_error(function() return u:totable() end, 'totable', 'corrupt header')
  end)
end)
