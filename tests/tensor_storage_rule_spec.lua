-- The storage rule (lua/moonstep/tensor_base.lua): only that file touches a tensor's
-- `storage` field. A released tensor's storage pointer is NULL and LuaJIT does not
-- check it, so one stray `t.storage.device` is a segfault on a freed tensor; every
-- other file goes through T.device_id / T.data / T.storage_key / T.rebind / t.device,
-- which raise "<fn>: tensor was freed". This spec fails when a new file reads it.
local home = os.getenv('MOONSTEP_HOME') or '.'

-- Files allowed to break the rule while they move to the accessors (none now);
-- remove an entry once its file is clean (a clean entry shows as pending below).
local PENDING = {}

local function lua_files()
  local list = {}
  local p = io.popen('cd ' .. home .. ' && find lua scripts -name "*.lua" | sort')
  for line in p:lines() do list[#list + 1] = line end
  p:close()
  return list
end

-- Lines (comments stripped) that name the storage field.
local function offending(path, full)
  local hits = {}
  local n = 0
  for line in io.lines(full or (home .. '/' .. path)) do
    n = n + 1
    local code = line:gsub('%-%-.*$', '')
    if code:find('[%.:]%s*storage%f[^%w_]') or code:find('%[%s*[\'"]storage[\'"]%s*%]') then
      hits[#hits + 1] = path .. ':' .. n .. ': ' .. line
    end
  end
  return hits
end

describe('the storage rule', function()
  it('no Lua file but tensor_base.lua touches t.storage', function()
    local bad = {}
    for _, path in ipairs(lua_files()) do
      if path ~= 'lua/moonstep/tensor_base.lua' and not PENDING[path] then
        for _, h in ipairs(offending(path)) do bad[#bad + 1] = h end
      end
    end
    assert(#bad == 0, 'read the storage through lua/moonstep/tensor_base.lua accessors:\n' ..
           table.concat(bad, '\n'))
  end)

  it('the pending list names only files that still need the change', function()
    for path in pairs(PENDING) do
      local f = io.open(home .. '/' .. path)
      if f then
        f:close()
        if #offending(path) == 0 then
          pending(path .. ' is clean now: remove it from PENDING')
        end
      end
    end
  end)

  it('the scanner sees a violation (self-test)', function()
    local tmp = os.tmpname()
    local f = assert(io.open(tmp, 'w'))
    f:write('local d = t.storage.device\nlocal ok = x -- t.storage in a comment\n')
    f:close()
    local hits = offending('tmp', tmp)
    os.remove(tmp)
    assert.equal(1, #hits)
  end)
end)
