-- tests/fuzz/api_misuse_lab_methods.lua — the API-misuse fuzzer's calls of the methods of
-- the lab's objects: Result, ResultSet, Summary, Logger, Progress and the objectives
-- (obj:grid and the plain function fields obj.f, obj.grad, obj.f_tensor), on a valid object
-- (made from the fixture runs) with mutated arguments, a dot for a colon, or a wrong self
-- (another lab object, or anything). Installed into api_misuse_lab.lua's table:
--   L.discover(ms, api, methods_of)   api.labmethods: class -> method names (sample objects)
--   L.method_call(api)                one call (nil when the class has no methods)
--   L.printable(v)                    whether v is a lab object that tostring() must handle
local G = require 'api_misuse_gen'
local V = require 'api_misuse_lab_values'
local random, concat = math.random, table.concat
local pick, chance, any_src, bind = G.pick, G.chance, G.any_src, G.bind

return function(L)
local maybe, options, summary_opts, plot_opts = L.h.maybe, L.h.options, L.h.summary_opts, L.h.plot_opts
-- class -> {variable, setup sources (one is drawn)}
local OBJECTS = {
  Result = { 'res', { "local res = ms.experiment.load('runs')[1];", "local res = ms.experiment.load(" .. "'runs')[3];" } },
  ResultSet = { 'set', { "local set = ms.experiment.load('runs');", 'local set = ms.experiment.ResultSet({});',
    "local set = ms.experiment.load('runs'):filter(function(r) return r:get('seed') == 1 end);",
    "local set = ms.experiment.ResultSet({ms.experiment.load('runs')[2]});" } },
  Summary = { 's', { "local s = ms.experiment.load('runs'):summary();", "local s = ms.experiment.load('runs'):summary{by = {'name', 'seed'}};",
    "local s = ms.experiment.load('runs'):summary{metrics = {'steps', 'time'}};" } },
  Logger = { 'log', { "local log = ms.experiment.Logger('lab.log', {names = {'epoch', 'loss'}});",
    "local log = ms.experiment.Logger('lab.log');", "local log = ms.experiment.Logger('lab.log', {names = {'epoch', 'loss'}}); log:add{1, 0.5}; log:add{2, 0.25};",
    "local log = ms.experiment.Logger('lab.log', {names = {'epoch', 'loss'}}); log:add{1, 0.5}; log:close();" } },
  Progress = { 'bar', { 'local bar = ms.progress(10, {quiet = true});', "local bar = ms.progress(nil, {label = 'p'});",
    'local bar = ms.progress(0);', 'local bar = ms.progress(3); bar:update(2); bar:finish();' } },
  objective = { 'obj', { 'local obj = ms.objectives.rosenbrock();', 'local obj = ms.objectives.rastrigin();',
    'local obj = ms.objectives.beale();' } },
}
local CLASSES = { 'Result', 'ResultSet', 'Summary', 'Logger', 'Progress', 'objective' }
local OBJECT_FIELDS = { 'f', 'grad', 'f_tensor' }   -- an objective's plain function fields (obj.f(x, y))
local NUMS = { '1', '0.5', '-2', '0/0', '1/0', '1e308', "'x'", 'nil', '2^53' }

local MARGS = {
  ['Result.get'] = function()
    return { maybe({ "'name'", "'optimizer.class'", "'test_accuracy'", "'seed'", "'a.b.c.d'", "'config'", "'name.x'" },
                   { "''", "'.'", "'..'", '1', "'optimizer..class'" }, 0.6) }
  end,
  ['ResultSet.filter'] = function()
    return { maybe({ "function(r) return r:get('seed') == 1 end", 'function(r) return true end', 'function() end',
                     'function(r) return r end', 'function(r) return 0 end' }, nil, 0.85) }
  end,
  ['ResultSet.summary'] = function() return { summary_opts() } end,
  ['ResultSet.plot'] = function() return { plot_opts(true) } end,
  ['ResultSet.series'] = function() return { plot_opts(false) } end,
  ['Summary.write'] = function() return { maybe(V.WRITE_PATHS, nil, 0.85) } end,
  ['Logger.names'] = function()
    return { maybe({ "{'epoch', 'loss'}", "{'a'}" }, { '{}', "{'a', 'a'}", "{'a,b'}", "'x'", '{1}', "{''}", "{'a\\nb'}" }, 0.5) }
  end,
  ['Logger.add'] = function()
    return { maybe({ '{1, 0.5}', '{epoch = 1, loss = 0.5}', '{loss = 2}', '{1}' },
                   { '{1, 2, 3}', "{epoch = 'x'}", '{}', '{0/0, 1/0}', '{[1.5] = 1}', '{nope = 1}', '{[{}] = 1}',
                     '{1, loss = 2}', '{[0] = 1}', '{2^63, -2^63}' }, 0.5) }
  end,
  ['Logger.plot'] = function()
    return { options { { 'x', { "'epoch'", "'nope'", '1' } }, { 'y', { "'loss'", "{'loss', 'epoch'}", '1', '{}', "{'nope'}" } },
                       { 'out', V.IMAGE_PATHS, 0.85 }, { 'title', V.TEXTS, 0.2 }, { 'logy', { 'true', '1' }, 0.2 },
                       { 'size', { '{800, 500}', '{1, 1}' }, 0.1 } } }
  end,
  ['Progress.update'] = function()
    local args = { pick { '5', '11', '-1', '0', '2.5', '2^53', '10', "'3'" } }
    if chance(0.6) then args[2] = pick { '{loss = 0.5}', "'x'", '{[{}] = 1}', '{a = {}}', '1', 'nil', "{loss = 'x'}" } end
    return args
  end,
  ['objective.grid'] = function() return { pick { '5', '2', '1', '0', '2.5', 'nil', '2002', "'5'" } } end,
  ['objective.f'] = function() return { pick(NUMS), pick(NUMS) } end,
  ['objective.grad'] = function() return { pick(NUMS), pick(NUMS) } end,
  ['objective.f_tensor'] = function()
    return { pick { "ms.tensor({1, 2}, 'float64')", 'ms.rand(2)', 'ms.rand(3)', 'ms.rand(1, 2)', "ms.tensor({1, 2}, 'int64')",
                    '(function(t) t:free() return t end)(ms.rand(2))', 'ms.rand(2, 2)', 'ms.zeros(1):expand(2)', '{1, 2}', any_src() } }
  end,
}

-- api.labmethods: class -> its public methods (from sample objects, through the fixtures)
function L.discover(ms, api, methods_of)
  api.labmethods = {}
  for _, cls in ipairs(CLASSES) do
    local ok, obj = pcall(function()
      local env = setmetatable({ ms = ms }, { __index = _G })
      local chunk = assert(loadstring(OBJECTS[cls][2][1] .. ' return ' .. OBJECTS[cls][1]))
      return setfenv(chunk, env)()
    end)
    local names = ok and methods_of(obj) or {}
    if cls == 'objective' then for _, k in ipairs(OBJECT_FIELDS) do names[#names + 1] = k end end
    api.labmethods[cls] = names
  end
end

function L.method_call(api)
  local cls = pick(CLASSES)
  local var, setups = OBJECTS[cls][1], OBJECTS[cls][2]
  local methods = api.labmethods[cls]
  if #methods == 0 then return nil end
  local method = pick(methods)
  local setup = { pick(setups) }
  local gen = MARGS[cls .. '.' .. method]
  local valid = chance(0.35)
  L.h.set_valid(valid)
  local args = gen and (valid or chance(0.9)) and gen() or G.args_for(nil)
  local field = cls == 'objective' and (method == 'f' or method == 'grad' or method == 'f_tensor')
  local sep = field and '.' or ':'
  local r = valid and 1 or random()
  if r < 0.06 then sep = field and ':' or '.'                       -- obj.get(...) for obj:get(...), and the reverse
  elseif r < 0.12 and not field then                                 -- self is something else: another lab object, or anything
    local other = pick(CLASSES)
    setup[#setup + 1] = other == cls and ('local o = ' .. any_src() .. ';')
                        or (OBJECTS[other][2][1]:gsub('^local (%w+) =', 'local o =', 1))
    table.insert(args, 1, 'o')
    sep = '.'
  end
  local call = var .. sep .. method .. '(' .. bind(args, setup) .. ')'
  local accept = { cls .. '.' .. method, cls .. ':' .. method, method }
  if cls == 'objective' then
    for _, n in ipairs { 'Rosenbrock', 'Rastrigin', 'Beale' } do accept[#accept + 1] = n .. '.' .. method end
  end
  return { name = cls .. ':' .. method, accept = accept, area = 'lab', setup = concat(setup, ' '), call = call,
           timeout = L.TIMEOUT }
end

-- Objects tostring() must handle (a failure is reported like a tensor that does not print).
local PRINTED = { Result = true, ResultSet = true, Summary = true, Logger = true, Progress = true, Replay = true,
                  objective = true }
function L.printable(v)
  local mt = type(v) == 'table' and getmetatable(v)
  return type(mt) == 'table' and PRINTED[rawget(mt, '__name')] == true
end

end
