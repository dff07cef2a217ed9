-- The REPL's tab completion as a function (repl_complete.complete(word, env)); the
-- readline binding is driven through tmux in repl_spec.lua.
local ms = require 'moonstep'
local repl = require 'moonstep.repl'
local complete = require 'moonstep.repl_complete'

local function has(list, item)
  for _, v in ipairs(list) do if v == item then return true end end
  return false
end

describe('repl completion', function()
  local env
  before_each(function() env = repl.new_env() end)

  it('completes fields of ms, with a ( after functions', function()
    assert.same({ 'ms.manual_seed(' }, complete.complete('ms.manu', env))
    local ma = complete.complete('ms.ma', env)
    assert.truthy(has(ma, 'ms.matmul(') and has(ma, 'ms.max(') and has(ma, 'ms.manual_seed('))
  end)

  it("lists ms's lazy submodules without loading them, and never the scripts", function()
    local all = complete.complete('ms.', env)
    for _, name in ipairs(complete.submodules()) do
      assert.truthy(has(all, 'ms.' .. name) or has(all, 'ms.' .. name .. '('), name)   -- (ms.params is a function)
    end
    assert.truthy(has(all, 'ms.optim') and has(all, 'ms.nn') and has(all, 'ms.schedule'))
    assert.falsy(has(all, 'ms.cli'))          -- requiring it would run the command line
    assert.falsy(has(all, 'ms.init'))
    -- a submodule ms has not loaded yet completes, and listing did not load it
    local unloaded
    for _, name in ipairs(complete.submodules()) do
      if rawget(ms, name) == nil and package.loaded['moonstep.' .. name] == nil then unloaded = name; break end
    end
    if unloaded then
      assert.truthy(has(complete.complete('ms.' .. unloaded:sub(1, 3), env), 'ms.' .. unloaded))
      assert.is_nil(package.loaded['moonstep.' .. unloaded])
    end
  end)

  it('goes into a submodule (requiring it) and completes its classes', function()
    local r = complete.complete('ms.optim.Ad', env)
    assert.truthy(has(r, 'ms.optim.Adam') and has(r, 'ms.optim.AdamW') and has(r, 'ms.optim.Adagrad'))
    assert.same({ 'ms.nn.Linear' }, complete.complete('ms.nn.Linea', env))
    -- an unknown name is no error and no completion (ms's __index would raise)
    assert.same({}, complete.complete('ms.no_such_module.', env))
    assert.same({}, complete.complete('ms.nn.NoSuchLayer.', env))
  end)

  it('completes methods after a colon through the class chain', function()
    env.opt = ms.optim.SGD { lr = 0.1 }
    local r = complete.complete('opt:', env)
    for _, m in ipairs { 'opt:step(', 'opt:evaluate(', 'opt:apply(', 'opt:get(', 'opt:state(', 'opt:load_state(', 'opt:bind(' } do
      assert.truthy(has(r, m), m)
    end
    -- static helpers of the class (no self) and private ones are not methods to call
    assert.falsy(has(r, 'opt:new(') or has(r, 'opt:define(') or has(r, 'opt:arena_of('))
    assert.falsy(has(r, 'opt:_bind('))
    env.m = ms.nn.Linear(2, 3)
    assert.same({ 'm:zero_grad(' }, complete.complete('m:zero', env))
    assert.truthy(has(complete.complete('m:', env), 'm:forward('))
    -- fields with a dot: the instance's own and the class's
    assert.truthy(has(complete.complete('m.', env), 'm.weight'))
    assert.truthy(has(complete.complete('m.in_', env), 'm.in_features'))
    assert.falsy(has(complete.complete('m.', env), 'm._params'))
    assert.truthy(has(complete.complete('m._', env), 'm._params'))
  end)

  it('completes Tensor methods on a tensor (cdata), and string methods on a string', function()
    env.x = ms.ones(2)
    assert.same({ 'x:reshape(' }, complete.complete('x:resh', env))
    assert.same({ 'x.dtype' }, complete.complete('x.dty', env))
    env.s = 'abc'
    assert.same({ 's:upper(' }, complete.complete('s:upp', env))
  end)

  it('completes globals, session variables and keywords', function()
    env.my_variable = 1
    assert.same({ 'my_variable' }, complete.complete('my_vari', env))
    assert.truthy(has(complete.complete('pri', env), 'print('))
    assert.same({ 'while' }, complete.complete('whil', env))
    assert.truthy(has(complete.complete('fun', env), 'function'))
  end)

  it('never calls an __index function or evaluates anything', function()
    local called = 0
    env.t = setmetatable({ a1 = 1 }, { __index = function() called = called + 1 end })
    assert.same({ 't.a1' }, complete.complete('t.a', env))
    assert.same({}, complete.complete('t.zz.', env))
    assert.equal(0, called)
    -- a path through a call or an index expression is not walked
    env.f = function() called = called + 1; return { x = 1 } end
    assert.same({}, complete.complete('f().', env))
    assert.same({}, complete.complete('t[1].', env))
    assert.equal(0, called)
    -- classes chained by __index tables are followed
    local Base = { hello = function(self) end }
    Base.__index = Base
    local Cls = setmetatable({ own = function(self) end }, { __index = Base })
    Cls.__index = Cls
    env.obj = setmetatable({}, Cls)
    assert.same({ 'obj:hello(', 'obj:own(' }, complete.complete('obj:', env))
    -- nonsense gives nothing, never an error
    for _, w in ipairs { '', '.', ':', '1.5', 'a..b', 'x:y:z', '#$%', 'nil.', 'ms.:', string.rep('a.', 300) } do
      assert.is_table(complete.complete(w, env))
    end
    assert.same({}, complete.complete(nil, env))
  end)

  it('stays fast on a huge table, and shows only the fields really there', function()
    local huge = {}
    for i = 1, 300000 do huge['k' .. i] = i end
    env.huge = huge
    local t0 = os.clock()
    local all = complete.complete('huge.', env)
    local some = complete.complete('huge.k1', env)
    complete.complete('hu', env)
    assert.truthy(os.clock() - t0 < 1, os.clock() - t0)
    assert.truthy(#all > 0 and #all <= complete.RESULTS, #all)
    assert.truthy(#some <= complete.RESULTS)
    -- a __metatable field hides the real metatable; completion reads the real one
    env.locked = setmetatable({ x = 1 }, { __metatable = { __index = { fake = 1 } } })
    assert.same({ 'locked.x' }, complete.complete('locked.', env))
    -- loops of __index tables, cdata, numbers, booleans, non-ASCII names: nothing, no error
    local mt = {}
    mt.__index = setmetatable({}, mt)
    env.loop = setmetatable({}, mt)
    env.cd = require('ffi').new('int[2]')
    env.uni = { ['h\195\169llo'] = 1, hello = 2 }
    for _, w in ipairs { 'loop.', 'loop:', 'cd.', 'cd:', 'huge:', 'uni.h\195\169', 'uni.', '\195\169', 'true:' } do
      assert.is_table(complete.complete(w, env))
    end
    assert.same({ 'uni.hello' }, complete.complete('uni.', env))
  end)

  it('knows when the cursor is inside a string (file names complete there)', function()
    assert.is_true(complete.in_string('io.open("/tm'))
    assert.is_true(complete.in_string("x = 'a\\'b"))
    assert.is_false(complete.in_string('x = "a" .. ms.ma'))
    assert.is_false(complete.in_string('-- "comment'))
  end)
end)
