-- tests/fuzz/api_misuse_lab.lua — the API-misuse fuzzer's targets in the lab modules:
-- ms.experiment, ms.plot, ms.landscape, ms.objectives and ms.progress, and the objects
-- they return (Result, ResultSet, Summary, Logger, Progress, objectives).
--
--   L.SUBPACKAGES                 the lab modules (api_misuse_targets.lua walks them too)
--   L.is_lab(path)                whether an API path ('ms.experiment.run') is one of them
--   L.write_fixtures(ms, write)   the files lab calls read: finished runs under runs/ (four
--                                 tiny runs), broken run directories under runs_bad/,
--                                 config files cfg_*.json (in the child's directory)
--   L.discover(ms, api)           api.labmethods: class -> method names, from sample objects
--   L.fn_call(f)                  a call of lab function f built from a valid template
--                                 (api_misuse_lab_values.lua), mutated; nil: let the caller
--                                 use random arguments instead
--   L.method_call(api)            a method of a lab object: on a valid object with mutated
--                                 arguments, or with a wrong self (obj.method(x))
--   L.printable(v)                whether v is a lab object that tostring() must handle
-- Lab calls carry a time budget (call.timeout, seconds): the child's alarm for them.
local G = require 'api_misuse_gen'
local V = require 'api_misuse_lab_values'
local random, concat, fmt = math.random, table.concat, string.format
local pick, chance, any_src, bind = G.pick, G.chance, G.any_src, G.bind

local L = {}
-- A third of the calls are valid as written (every template and option its first, valid
-- value): they reach the deep paths (training, gnuplot, files) that misuse stops early.
local valid = false
L.SUBPACKAGES = { 'experiment', 'plot', 'landscape', 'objectives', 'progress' }
L.TIMEOUT = 15     -- the largest legal lab call here takes well under a second
L.RUN_DIRS = { "'runs/SGD-s1'" }   -- replaced by the fixture runs' directories

function L.is_lab(path)
  local top = path:match('^ms%.([%w_]+)')
  for _, n in ipairs(L.SUBPACKAGES) do if top == n then return true end end
  return false
end

---------------------------------------------------------------------------------------
-- fixtures
---------------------------------------------------------------------------------------
function L.write_fixtures(ms, write)
  local ok, err = pcall(function()
    local E = ms.experiment
    local set = E.run_all(E.grid({ optimizer = { 'SGD', 'Adam' }, seed = { 1, 2 } },
                                 { model = { 'mlp', sizes = { 784, 8, 10 } }, data = { train = 64, test = 32 },
                                   epochs = 2, batch_size = 16 }), { out = 'runs', quiet = true })
    L.RUN_DIRS = {}
    for i, r in ipairs(set) do L.RUN_DIRS[i] = "'" .. r.dir .. "'" end
    local src = set[1].dir
    os.execute(("mkdir -p runs_bad/unfinished runs_bad/corrupt runs_bad/csv runs_bad/empty && " ..
                "cp %s/config.json runs_bad/unfinished/ && cp %s/* runs_bad/corrupt/ && cp %s/* runs_bad/csv/ && " ..
                "cp %s/config.json cfg_ok.json"):format(src, src, src, src))
    write('runs_bad/corrupt/result.json', '[1, 2')
    write('runs_bad/csv/steps.csv', 'step,epoch,loss\n1,1,abc\n2,1\n')
    local f = io.open(src .. '/config.json', 'rb'); local cfg = f:read('*a'); f:close()
    write('cfg_threads.json', (cfg:gsub('"threads": *%d+', '"threads": 100000')))
    write('cfg_cuda.json', (cfg:gsub('"device": *"cpu"', '"device": "cuda"')))
    write('cfg_fields.json', (cfg:gsub('^{', '{"bogus": 1, "optimizer": {"class": "Nope"}, ')))
    write('cfg_big.json', (cfg:gsub('"train": *%d+', '"train": 60000')))
  end)
  if not ok then io.stderr:write('api_misuse_lab: fixture runs failed: ', tostring(err), '\n') end
  write('cfg_deep.json', ('['):rep(100000) .. (']'):rep(100000))
  write('cfg_null.json', 'null')
  write('cfg_text.json', '"just a string"')
  write('lab_fixture.csv', 'epoch,loss\n1,0.5\n2,0.25\n')
end

---------------------------------------------------------------------------------------
-- templates, mutated
---------------------------------------------------------------------------------------
local function render(fields)
  local parts = {}
  for _, f in ipairs(fields) do
    local k, v = f[1], f[2]
    if not k then parts[#parts + 1] = v
    elseif k:match('^[%a_][%w_]*$') then parts[#parts + 1] = k .. ' = ' .. v
    else parts[#parts + 1] = "['" .. k .. "'] = " .. v end
  end
  return '{' .. concat(parts, ', ') .. '}'
end

-- template (a list of {key, source}) as a table source: valid with probability 1 - p,
-- else with 1 or 2 mutations: a value replaced (by an odd one for its key, or anything),
-- a field dropped, a known field added, an unknown field added.
local function mutated(template, odd, unknown, p)
  local fields = {}
  for i, kv in ipairs(template) do fields[i] = { kv[1], kv[2] } end
  if valid or chance(1 - (p or 0.5)) then return render(fields) end
  for _ = 1, random(1, 2) do
    local r = random()
    if r < 0.55 and #fields > 0 then
      local kv = pick(fields)
      local alts = odd[kv[1]]
      kv[2] = (alts and chance(0.75)) and pick(alts) or any_src()
    elseif r < 0.7 and #fields > 0 then
      table.remove(fields, random(#fields))
    elseif r < 0.88 then
      local keys = {}
      for k in pairs(odd) do keys[#keys + 1] = k end
      table.sort(keys)
      local k = pick(keys)
      fields[#fields + 1] = { k, pick(odd[k]) }
    else
      fields[#fields + 1] = { pick(unknown), chance(0.5) and '1' or any_src() }
    end
  end
  return render(fields)
end

local function experiment_src(p) return mutated(pick(V.EXPERIMENTS), V.EXPERIMENT_ODD, V.EXPERIMENT_UNKNOWN, p) end
local function maybe(list, odd, p)
  if valid or chance(p or 0.8) then return pick(list) end
  return odd and chance(0.7) and pick(odd) or any_src()
end
local function run_opts() return maybe(V.RUN_OPTS, V.RUN_OPTS_ODD, 0.75) end

-- An options table from a field list: {key, {values: the first valid}, presence}; the
-- fields drawn by their presence (0.5), their values from the list or anything.
local function options(spec, p)
  local fields = {}
  for _, kv in ipairs(spec) do
    if chance(kv[3] or 0.5) then
      fields[#fields + 1] = { kv[1], valid and kv[2][1] or chance(p or 0.85) and pick(kv[2]) or any_src() }
    end
  end
  if not valid and chance(0.07) then fields[#fields + 1] = { pick { 'bogus', 'Out', 'colour' }, '1' } end
  return render(fields)
end

local function list_of(n, f) local t = {} for i = 1, n do t[i] = f() end return '{' .. concat(t, ', ') .. '}' end
local function numbers(n) local t = {} for i = 1, n do t[i] = fmt('%.3g', random() * 4 - 1) end return '{' .. concat(t, ', ') .. '}' end
local function series()
  local n = pick { 1, 2, 3, 5 }
  local s = { { 'label', pick(V.TEXTS) }, { 'x', pick { numbers(n), '{1, 2, 3, 4, 5}', 'ms.rand(' .. n .. ')' } },
              { 'y', numbers(n) } }
  if chance(0.4) then s[#s + 1] = { 'lo', numbers(n) }; s[#s + 1] = { 'hi', numbers(n) } end
  return mutated(s, { x = { '{}', '{0/0, 1/0}', '{1, 2, 3, 4, 5, 6, 7}', 'ms.rand(2, 2)', "{'a'}", '{[2] = 1}',
                            '(function(t) t:free() return t end)(ms.rand(3))', "ms.rand(3, 'float64')" },
                      y = { '{}', '{0/0, 0/0, 0/0}', '{-1, 0, 1}', '{1e308, -1e308, 1}', 'ms.rand(5)' },
                      lo = { '{1}', 'nil', '{0/0}' }, hi = { '{1}', '{}' }, label = V.TEXTS },
                 { 'colour', 'width' }, 0.3)
end

local SLICE = {   -- models for ms.landscape: source, parameter count, and whether forward runs on x
  { 'ms.nn.Linear(3, 2)', 8, true }, { 'ms.nn.Sequential(ms.nn.Linear(3, 4), ms.nn.ReLU(), ms.nn.Linear(4, 2))', 26, true },
  { 'ms.params({ms.rand(3), ms.rand(2, 2)})', 7, false }, { 'ms.nn.Sequential(ms.nn.Linear(3, 2), ms.nn.BatchNorm1d(2))', 12, true },
  { 'ms.nn.ReLU()', 0, false }, { "ms.nn.Linear(3, 2):to('float64')", 8, false },
}
local function loss_fns(forward)
  local l = { 'function() return 1 end', 'function() return 0/0 end', 'function() return ms.rand(2) end',
              'function() return ms.tensor(0.5) end', 'function() end', "function() return 'x' end",
              -- open FINDINGS (lua/moonstep/landscape.lua, with_restore; not hit by the spec's
              -- seed): freeing the weights gets "copy_: tensor was freed" from the restore;
              -- moving the model (m:to) returns with the weights NOT restored (exit 4 here)
              'function() m:flat_parameters():free() return 1 end', "function() m:to('float64') return 1 end",
              'function() m:flat_gradients():fill_(0/0) return 1 end', 'function() m:flat_gradients():fill_(1) return 2 end',
              'ms.nn.ReLU()', 'function() return m:flat_parameters():sum() end' }
  if forward then
    l[#l + 1] = 'function() return crit:forward(m:forward(x), y) end'
    l[#l + 1] = 'function() local o = m:forward(x) local l = crit:forward(o, y) m:backward(x, crit:backward(o, y)) return l end'
    l[#l + 1] = l[#l]
  end
  return l
end
local function direction(n)
  if valid then return "'random'" end
  return pick { "'random'", "'gradient'", "'x'", ('ms.rand(%d)'):format(n), ('ms.rand(%d)'):format(n + 1),
                ("ms.rand(%d, 'float64')"):format(n), ('(function(t) t:free() return t end)(ms.rand(%d))'):format(n),
                ('ms.zeros(%d)'):format(n), ('ms.full({%d}, 0/0)'):format(n), ('ms.rand(1, %d)'):format(n),
                ("ms.tensor({1}, 'int64'):expand(%d)"):format(n), 'ms.empty(0)' }
end

local MAKE_OPTS = {
  'function(p) return ms.optim.SGD(p, {lr = 1e-3}) end', 'function(p) return ms.optim.Adam(p, {lr = 0.1}) end',
  'function(p) return ms.optim.SAM(p, {base = ms.optim.SGD{lr = 1e-3}}) end',
  "function(p) return ms.optim.SPSA(p, ms.optim.SPSA.preset('spall', {maxiter = 10, a = 0.01, seed = 1})) end",
  'function(p) return ms.optim.LBFGS(p, {max_iter = 2}) end', 'function(p) return ms.optim.ACME(p) end',
  'function(p) return ms.optim.SGD(ms.nn.Linear(2, 2)) end', 'function(p) return nil end',
  'function(p) return {step = function() end} end', 'function(p) return p end', 'ms.optim.SGD',
  'function(p) return ms.optim.SGD(p, {lr = 1e308}) end', 'function(p) p:flat_parameters():free() return ms.optim.SGD(p) end',
  "function(p) p:to('float32') return ms.optim.Adam(p) end", 'function(p) return ms.optim.AutoSGM(p) end',
}
local OBJECTIVES = { 'ms.objectives.rosenbrock()', 'ms.objectives.rastrigin()', 'ms.objectives.beale()',
                     'ms.objectives.rosenbrock{a = 2, b = 10}', 'ms.objectives.rastrigin{A = 0}' }
local function objective() return (valid or chance(0.9)) and pick(OBJECTIVES) or any_src() end
local function make_opt() return valid and MAKE_OPTS[random(6)] or chance(0.9) and pick(MAKE_OPTS) or any_src() end
local STEPS = { '5', '0', '1', '20', '-1', '2.5', '2^31' }
local function loss_fn(m)
  if valid then
    return m[3] and 'function() return crit:forward(m:forward(x), y) end' or 'function() return m:flat_parameters():sum() end'
  end
  return chance(0.9) and pick(loss_fns(m[3])) or any_src()
end

local function grid_call(setup)
  return { maybe(V.GRID_AXES, V.GRID_ODD, 0.7), chance(0.7) and experiment_src(0.3) or pick { 'nil', any_src() } }
end
local function summary_opts()
  return options { { 'by', { "'name'", "{'name', 'seed'}", "'optimizer.class'", 'function(r) return r.id end', "'nope'",
                             'function(r) return nil end', '{}', "'optimizer.lr'" } },
                   { 'metrics', { "{'test_accuracy', 'steps'}", "'time'", '{}', "{'nope'}", "{'test_loss', 'time', 'forward'}",
                                  '{1}', "{'test_accuracy', n = 1}" } },
                   { 'format', { "{test_accuracy = '%.3f'}", "{test_accuracy = '%d'}", "{test_accuracy = '%s %s'}",
                                 '{test_accuracy = function(v) return nil end}', "{time = '%'}", "{nope = '%g'}",
                                 "{test_accuracy = '%5.1f%%'}", '{test_accuracy = 1}' }, 0.3 } }
end
local function plot_opts(with_out)
  local spec = { { 'y', { "'loss'", "'test_accuracy'", "'lr'", "'grad_norm'", "'accuracy'", "'train_loss'", "'nope'" }, 0.8 },
                 { 'x', { "'step'", "'epoch'", "'passes'", "'time'", "'nope'" } },
                 { 'by', { "'name'", "{'name', 'seed'}", 'function(r) return r.id end', "'seed'" }, 0.3 },
                 { 'bands', { 'true', 'false', "'std'", "'minmax'", "'x'" }, 0.4 },
                 { 'smooth', { '1', '3', '0', '1e6', '2.5' }, 0.2 }, { 'logy', { 'true', 'false', '1' }, 0.2 },
                 { 'title', V.TEXTS, 0.2 }, { 'legend', { "'below'", "'none'", "'x'" }, 0.1 },
                 { 'size', { '{800, 500}', '{10, 10}', '{800}' }, 0.1 } }
  if with_out then spec[#spec + 1] = { 'out', V.IMAGE_PATHS, 0.9 } end
  return options(spec)
end

-- Lab functions: path -> function(setup) -> list of argument sources (a nil entry ends it).
local FN = {
  ['ms.experiment.run'] = function() return { experiment_src(), run_opts() } end,
  ['ms.experiment.run_all'] = function(setup)
    local list = chance(0.5) and ('ms.experiment.grid(%s, %s)'):format(pick(V.RUN_ALL_AXES), experiment_src(0.2))
                 or list_of(random(1, 2), function() return experiment_src(0.3) end)
    return { chance(0.9) and list or any_src(), run_opts() }
  end,
  ['ms.experiment.grid'] = grid_call,
  ['ms.experiment.normalize'] = function() return { experiment_src(0.7) } end,
  ['ms.experiment.id'] = function() return { experiment_src(0.6) } end,
  ['ms.experiment.load'] = function() return { maybe(V.LOAD_PATHS, L.RUN_DIRS, 0.5) } end,
  ['ms.experiment.replay'] = function()
    return { maybe(L.RUN_DIRS, V.CONFIG_PATHS, 0.3),
             options { { 'out', { "'lab_replay'", "'lab_replay/x'", "'empty/x'", "''" } }, { 'quiet', { 'true', 'false', '1' } } } }
  end,
  ['ms.experiment.summary'] = function()
    return { maybe({ "ms.experiment.load('runs')", "{ms.experiment.load('runs')[1]}", '{}', "ms.experiment.load('runs')[1]" },
                   { '{1}', "{ms.experiment.load('runs')}", 'ms.rand(2)' }, 0.7), summary_opts() }
  end,
  ['ms.experiment.Logger'] = function()
    return { maybe(V.WRITE_PATHS, nil, 0.85),
             options { { 'names', { "{'epoch', 'loss'}", '{}', "{'a', 'a'}", "{'a,b'}", "'x'", '{1}', "{''}" } } } }
  end,
  ['ms.experiment.read_csv'] = function() return { maybe(V.CSV_PATHS, L.RUN_DIRS, 0.9) } end,
  ['ms.experiment.ResultSet'] = function()
    return { maybe({ "{ms.experiment.load('runs')[1], ms.experiment.load('runs')[2]}", '{}' },
                   { '{1}', "ms.experiment.load('runs')", "{ms.experiment.load('runs')}" }, 0.5) }
  end,
  ['ms.plot.available'] = function() return {} end,
  ['ms.plot.lines'] = function()
    return { options { { 'out', V.IMAGE_PATHS, 0.95 }, { 'series', { list_of(random(1, 3), series), '{}', "{{x = {1}}}" }, 0.95 },
                       { 'title', V.TEXTS, 0.3 }, { 'xlabel', V.TEXTS, 0.2 }, { 'ylabel', V.TEXTS, 0.2 },
                       { 'logx', { 'true', 'false' }, 0.2 }, { 'logy', { 'true', 'false' }, 0.2 },
                       { 'size', { '{800, 500}', '{100, 100}', '{10, 10}', '{1e5, 1}', '{800}', "{'a', 'b'}" }, 0.15 },
                       { 'legend', { "'outside'", "'below'", "'inside'", "'none'", "'x'" }, 0.2 } } }
  end,
  ['ms.plot.contour'] = function()
    local nx, ny = pick { 2, 3, 4 }, pick { 2, 3 }
    local xs, ys = ('{%s}'):format(concat({ 0, 1, 2, 3 }, ', ', 1, nx)), ('{%s}'):format(concat({ -1, 0, 1 }, ', ', 1, ny))
    local z = list_of(nx, function() return numbers(ny) end)
    return { options { { 'out', V.IMAGE_PATHS, 0.95 }, { 'x', { xs, '{0, 1, 3}', '{1, 0}', '{0}', '{0, 0/0, 1}' }, 0.95 },
                       { 'y', { ys, '{0, 1}', '{2, 1, 0}' }, 0.95 },
                       { 'z', { z, '{{1, 2}, {3}}', '{{0/0, 0/0}, {0/0, 0/0}}', '{{-1, 0}, {1, 2}}', '{}' }, 0.95 },
                       { 'logz', { 'true', 'false', "'yes'" }, 0.3 },
                       { 'levels', { '0', 'false', '5', '{0.5, 1}', '-1', '1000', '1001', '{}', '2.5' }, 0.3 },
                       { 'paths', { '{{label = \'a\', x = {0, 1}, y = {0, 1}}}', '{{x = {0/0, 5}, y = {1, 1e308}}}', '{{}}',
                                    '{{x = {1}, y = {}}}', '{x = 1}' }, 0.3 },
                       { 'minimum', { '{1, 0}', '{x = 1, y = 0, label = \'min\'}', '{1}', '{0/0, 0}' }, 0.3 },
                       { 'title', V.TEXTS, 0.2 }, { 'zlabel', V.TEXTS, 0.2 }, { 'size', { '{800, 640}', '{99, 100}' }, 0.1 } } }
  end,
  ['ms.landscape.directions'] = function(setup, m)
    return { m[4], options { { 'direction', { direction(m[2]) } }, { 'count', { '1', '2', '0', '65', '64' } },
                             { 'normalize', { "'filter'", "'none'", "'layer'" } }, { 'seed', { '0', '1', '-1', '2^53' } },
                             { 'closure', loss_fns(m[3]), 0.3 } } }
  end,
  ['ms.landscape.slice1d'] = function(setup, m)
    return { m[4], loss_fn(m),
             options { { 'direction', { direction(m[2]) } }, { 'range', { '{-1, 1}', '{1, -1}', '{0, 0}', '{0/0, 1}',
                       '{-1e308, 1e308}', '{1}', "{'a', 'b'}" } }, { 'points', { '2', '3', '5', '1', '0', '2.5', '100002' } },
                       { 'normalize', { "'filter'", "'none'", "'layer'" } }, { 'seed', { '0', '3', '-1' } },
                       { 'closure', loss_fns(m[3]), 0.2 } } }
  end,
  ['ms.landscape.slice2d'] = function(setup, m)
    return { m[4], loss_fn(m),
             options { { 'directions', { "{'random', 'random'}", "{'gradient', 'random'}", '{' .. direction(m[2]) .. ", 'random'}",
                                         "{'random'}", "'random'", "{'random', 'random', 'random'}" } },
                       { 'range', { '{-1, 1}', '{{-1, 1}, {-2, 2}}', '{{1, -1}, {0, 1}}', '{{0, 1}}' } },
                       { 'points', { '2', '3', '{3, 2}', '{2}', '1', '{2001, 0}' } }, { 'normalize', { "'none'", "'x'" } },
                       { 'closure', loss_fns(m[3]), 0.2 } } }
  end,
  ['ms.objectives.rosenbrock'] = function()
    return { options { { 'a', { '1', '0/0', '-1', "'x'" } }, { 'b', { '100', '-1', '0', '1/0' } } } }
  end,
  ['ms.objectives.rastrigin'] = function() return { options { { 'A', { '10', '-1', '0', '0/0' } } } } end,
  ['ms.objectives.beale'] = function() return { chance(0.7) and '{}' or options { { 'x', { '1' } } } } end,
  ['ms.objectives.trajectory'] = function()
    return { objective(), make_opt(),
             options { { 'steps', STEPS }, { 'start', { '{0, 0}', '{x = 1, y = 2}', '{1}', '{0/0, 1}', "{x = 'a'}", '{1e308, 1e308}' } } } }
  end,
  ['ms.objectives.standard_runs'] = function() return { objective(), pick { '10', '0', '1e6', '1e7', 'nil', '2.5' } } end,
  ['ms.objectives.plot_trajectories'] = function()
    return { options { { 'objective', { objective() }, 0.95 },
                       { 'runs', { ('ms.objectives.standard_runs(ms.objectives.beale(), %s)'):format(pick { '5', '1' }),
                                   "{{label = 'a', make_opt = " .. make_opt() .. '}}', '{}', "{{label = 1}}", '{1}' }, 0.95 },
                       { 'steps', { '5', '10', '0', '-1' }, 0.8 }, { 'out', V.IMAGE_PATHS, 0.95 },
                       { 'n', { '21', '2', '1', '2002', '2.5' }, 0.8 }, { 'start', { '{0, 0}', '{1}' }, 0.2 },
                       { 'title', V.TEXTS, 0.2 } } }
  end,
  ['ms.progress'] = function()
    return { pick { '10', '0', '1', 'nil', '-1', '2.5', '2^53', '0/0', "'10'" },
             options { { 'quiet', { 'true', 'false', "'yes'" } }, { 'label', { "'x'", '1', "('l'):rep(500)" } },
                       { 'unit', { "'img'", '{}' } }, { 'interval', { '0', '-1', '0.5', '0/0' } } } }
  end,
}

-- accept: the names an error of path's function may give besides its own
local ACCEPT = { ['ms.experiment.Logger'] = { 'Logger' }, ['ms.progress'] = { 'progress' } }

function L.fn_call(f)
  local gen = FN[f.path]
  valid = chance(0.35)
  if not gen or (not valid and chance(0.15)) then return nil end
  local setup, m, stmt = {}, nil, false
  if f.path:match('^ms%.landscape') then
    m = pick(SLICE)
    setup[#setup + 1] = ("local m = %s; local x = ms.rand(4, 3); local y = ms.tensor({1, 2, 1, 2}, 'int64'); " ..
                         'local crit = ms.nn.CrossEntropyLoss();'):format(m[1])
    m = { m[1], m[2], m[3], chance(0.9) and 'm' or any_src() }
  end
  local call = f.path .. '(' .. bind(gen(setup, m), setup) .. ')'
  if m and m[4] == 'm' and m[2] > 0 and f.name:match('^slice') then
    -- the contract: the weights are restored bit for bit (also after an error); a slice
    -- that returns with other weights or another dtype ends the child (a death, exit 4)
    setup[#setup + 1] = 'local w0 = m:flat_parameters():clone();'
    call = 'local r = ' .. call .. ' local w1 = m:flat_parameters() if w1.dtype ~= w0.dtype or ' ..
           "(w1 - w0:to(w1.dtype)):abs():max() ~= 0 then io.stderr:write('PROPERTY VIOLATED: the slice did not restore the weights\\n') os.exit(4, true) end"
    stmt = true
  end
  local short = f.path:gsub('^ms%.', '')
  local accept = { f.name, short, 'ms.' .. short }
  for _, a in ipairs(ACCEPT[f.path] or {}) do accept[#accept + 1] = a end
  return { name = short, accept = accept, area = 'lab', setup = concat(setup, ' '), call = call, stmt = stmt,
           timeout = L.TIMEOUT }
end

-- A call of group 'lab' (a lab function; random_call(f): one with random arguments) or
-- 'labmethod', with the lab's time budget; nil when there is nothing to call.
function L.make_call(api, group, random_call)
  local call
  if group == 'lab' and #api.labfn > 0 then
    local f = pick(api.labfn)
    call = L.fn_call(f) or random_call(f)
  elseif group == 'labmethod' then
    call = L.method_call(api)
  end
  if call then call.timeout = L.TIMEOUT end
  return call
end

-- What the methods file (api_misuse_lab_methods.lua) shares: the argument helpers.
L.h = { maybe = maybe, options = options, summary_opts = summary_opts, plot_opts = plot_opts, OBJECTIVES = OBJECTIVES,
        set_valid = function(v) valid = v end }
require('api_misuse_lab_methods')(L)   -- L.discover, L.method_call, L.printable

return L
