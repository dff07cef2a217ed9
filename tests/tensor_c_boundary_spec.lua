-- Every C entry point that takes a tensor checks it (ms_check_tensor) before use: a
-- freed tensor, or a header that is corrupt (rank > 8, a count that is not the product
-- of the sizes, a view reaching outside its storage), is an error, never a crash.
-- The entry points are read from runtime/include/moonstep.h and moonstep_optim.h, so a new one is covered
-- the day it is declared.
local ms = require 'moonstep'
local ffi, C = require 'ffi', ms.C
local home = os.getenv('MOONSTEP_HOME') or '.'

-- { name =, params = { type strings } } of every int-returning function with a tensor.
local function entry_points()
  local text = ''
  for _, name in ipairs { 'moonstep.h', 'moonstep_optim.h' } do   -- the ABI's two halves
    local f = assert(io.open(home .. '/runtime/include/' .. name))
    text = text .. f:read('*a'):match('MS_CDEF_BEGIN %*/(.-)/%* MS_CDEF_END')
    f:close()
  end
  text = text:gsub('/%*.-%*/', ' ')
  local list = {}
  for name, params in text:gmatch('\nint%s+(ms_[%w_]+)%s*%(([^)]*)%)%s*;') do
    if params:find('ms_tensor') and name ~= 'ms_tensor_empty' and name ~= 'ms_tensor_is_contiguous' then
      local ps = {}
      for p in params:gmatch('[^,]+') do ps[#ps + 1] = p end
      list[#list + 1] = { name = name, params = ps }
    end
  end
  return list
end

local keep = {}  -- buffers alive for the duration of a call
-- Arguments for a call: tensors from make_tensor(i), pointers to scratch, scalars 0.
local function args_for(ep, make_tensor)
  local args = {}
  for i, p in ipairs(ep.params) do
    if p:find('ms_tensor') then
      args[i] = make_tensor(i)
    elseif p:find('%*') then
      local base = p:gsub('const', ''):gsub('%*.*$', ''):gsub('^%s+', ''):gsub('%s+$', '')
      local ok, buf = pcall(ffi.new, base .. '[16]')   -- an opaque type (ms_zo_log): NULL
      if ok then keep[#keep + 1] = buf else buf = nil end
      args[i] = buf
    else
      args[i] = 0
    end
  end
  return args
end

local function freed()
  local t = ms.zeros(2, 2)
  t:free()
  return t
end

local function call(ep, args)
  return C[ep.name](unpack(args, 1, #ep.params))
end

describe('C entry points', function()
  local eps = entry_points()
  it('are found in the header', function()
    assert.is_true(#eps >= 15, 'only ' .. #eps .. ' entry points parsed')
  end)

  for _, ep in ipairs(eps) do
    it(ep.name .. ' refuses freed tensors', function()
      assert.are_not.equal(0, call(ep, args_for(ep, freed)))
      local msg = ffi.string(C.ms_last_error())
      assert(msg:find('freed') or msg:find('NULL') or msg:find('unknown'), ep.name .. ': ' .. msg)
      -- one freed tensor among live ones: an error too (or a no-op), never a crash
      for i, p in ipairs(ep.params) do
        if p:find('ms_tensor') then
          call(ep, args_for(ep, function(j) return j == i and freed() or ms.zeros(2, 2) end))
        end
      end
    end)

    it(ep.name .. ' refuses corrupt headers', function()
      local corrupt = {
        function(t) t.ndim = 9 end,
        function(t) t.count = 5 end,
        function(t) t.offset = 3 end,                       -- reaches element 6 of 4
        function(t) t.strides[0] = 2 ^ 62 end,               -- overflows
        function(t) t.sizes[0] = -1 end,
        function(t) t.dtype_id = 7 end,
      }
      for k, spoil in ipairs(corrupt) do
        local rc = call(ep, args_for(ep, function()
          local t = ms.zeros(2, 2)
          -- a raw header sharing t's storage, in plain bytes (no finaliser)
          local raw = ffi.new('uint8_t[?]', ffi.sizeof('ms_tensor'))
          local c = ffi.cast('ms_tensor *', raw)
          ffi.copy(c, t, ffi.sizeof('ms_tensor'))
          keep[#keep + 1] = t
          keep[#keep + 1] = raw
          spoil(c)
          return c
        end))
        assert.are_not.equal(0, rc, ep.name .. ': corrupt header ' .. k .. ' accepted')
      end
    end)
  end
end)
