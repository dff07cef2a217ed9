-- tests/fuzz/api_misuse_targets.lua — what the API-misuse fuzzer calls.
--
-- discover(ms) walks the public API: every function reachable from `ms` (sub-packages
-- included: any lua/moonstep/<name>.lua that `ms.<name>` loads), every Tensor method,
-- every callable class (nn layers and losses, optimizers, Dataset), and the methods of
-- sample instances through their metatable chains (Module and Optimizer methods
-- included). make_call(target) turns one into a call: { name, accept = {names an error
-- may give}, area, setup = 'local a1 = ...;', call = '...', timeout = seconds or nil }
-- (see api_misuse_gen.lua). Optimizer targets: api_misuse_optim.lua; the lab modules'
-- (ms.experiment, ms.plot, ms.landscape, ms.objectives, ms.progress): api_misuse_lab.lua.
local G = require 'api_misuse_gen'
local O = require 'api_misuse_optim'
local VALID_CONFIG = O.VALID_CONFIG
local L = require 'api_misuse_lab'
local random, concat, fmt = math.random, table.concat, string.format
local pick, chance, SLOT, any_src = G.pick, G.chance, G.SLOT, G.any_src

local T = {}

-- Not public, or fuzzed another way (Tensor methods through instances, base classes
-- through their subclasses' instances, raw C through everything).
local DENY = { ['ms.C'] = true, ['ms.Tensor'] = true, ['ms.nn.Module'] = true, ['ms.optim.Optimizer'] = true }
local SUBPACKAGES = { 'nn', 'autograd', 'dist', 'optim', 'data', 'metrics', 'cuda', 'linalg' }
for _, n in ipairs(L.SUBPACKAGES) do SUBPACKAGES[#SUBPACKAGES + 1] = n end   -- the lab (api_misuse_lab.lua)
local INTERNAL = { core = true, cli = true, repl = true, tensor_print = true, check = true,
                   checkpoint = true, random = true, init = true }
local sorted_keys, methods_of = G.sorted_keys, G.methods_of

local SUB = {}
for _, n in ipairs(SUBPACKAGES) do SUB[n] = true end

function T.discover(ms)
  -- the public sub-packages load lazily (ms.nn, ...): load them; anything else that a
  -- script has loaded into ms is walked too, but internal modules are not public API
  for _, name in ipairs(SUBPACKAGES) do pcall(function() return ms[name] end) end
  local api = { fn = {}, nnclass = {}, optclass = {}, tmethod = {}, other = {} }
  local seen = {}
  local function walk(tbl, path, depth)
    for _, k in ipairs(sorted_keys(tbl)) do
      local v, pth = rawget(tbl, k), path .. '.' .. k
      if not DENY[pth] and not (type(k) == 'string' and k:match('^_')) then   -- _x: private
        local mt = type(v) == 'table' and getmetatable(v)
        if type(v) == 'function' then
          api.fn[#api.fn + 1] = { path = pth, name = k }
        elseif mt and mt.__call then
          if path == 'ms.nn' then api.nnclass[#api.nnclass + 1] = k
          elseif path == 'ms.optim' then api.optclass[#api.optclass + 1] = k
          else api.fn[#api.fn + 1] = { path = pth, name = k, class = v } end
        elseif type(v) == 'table' and depth < 3 and not seen[v] and not (depth == 1 and INTERNAL[k])
               and not (path == 'ms' and package.loaded['moonstep.' .. k] == v and not SUB[k]) then
          seen[v] = true
          walk(v, pth, depth + 1)
        end
      end
    end
  end
  walk(ms, 'ms', 1)
  api.labfn = {}   -- the lab's functions get their own group (templates, a time budget)
  for i = #api.fn, 1, -1 do
    if L.is_lab(api.fn[i].path) then table.insert(api.labfn, 1, table.remove(api.fn, i)) end
  end
  L.discover(ms, api, methods_of)
  api.aliases = {}   -- t:nelement() is t:numel(): an error may give either name
  for _, k in ipairs(sorted_keys(ms.Tensor)) do
    local f = ms.Tensor[k]
    if type(f) == 'function' then
      api.tmethod[#api.tmethod + 1] = k
      api.aliases[f] = api.aliases[f] or {}
      table.insert(api.aliases[f], k)
    end
  end
  -- instance methods, from sample instances
  api.nnmethods = {}
  for _, cls in ipairs(api.nnclass) do
    local ok, m = pcall(loadstring('return ' .. G.nn_ctor(cls)))
    api.nnmethods[cls] = ok and methods_of(m) or { 'forward', 'backward' }
  end
  api.optmethods = {}
  for _, cls in ipairs(api.optclass) do
    local ok, o = pcall(function() return ms.optim[cls](ms.nn.Linear(3, 2), { base = ms.optim.SGD { lr = 0.1 } }) end)
    if not ok then ok, o = pcall(function() return ms.optim[cls](ms.nn.Linear(3, 2)) end) end
    api.optmethods[cls] = ok and methods_of(o) or { 'step', 'state', 'load_state' }
  end
  local ok, ds = pcall(function() return ms.data.Dataset(ms.rand(4, 2), ms.rand(4)) end)
  api.dsmethods = ok and methods_of(ds) or {}
  local ok2, ps = pcall(function() return ms.params({ ms.rand(2) }) end)
  api.psmethods = ok2 and methods_of(ps) or {}
  return api
end

---------------------------------------------------------------------------------------
-- building calls
---------------------------------------------------------------------------------------
local bind = G.bind

local function area_of(path, name)
  if L.is_lab(path) then return 'lab' end
  if G.CONV_POOL[name] then return 'conv-pool' end
  if path:match('^ms%.nn') then return 'other nn' end
  if path:match('^ms%.optim') or name == 'params' then return 'optim' end
  if path:match('^ms%.data') or path:match('^ms%.metrics') or name == 'save' or name == 'load' then
    return 'checkpoint-data'
  end
  return 'tensor core'
end

local function base(name) return (name:gsub('_$', '')) end

-- free functions: ms.x, ms.nn.functional.x, ms.data.x, ...
local function fn_call(api, f, ms)
  local sig = G.SIG[f.name]
  if sig and f.path == 'ms.' .. f.name and ms.Tensor[f.name] then                        -- ms.add(t, ...)
    sig = (sig:match('^mt') and 'mt ' or 't ') .. sig
  end
  local setup = {}
  local args = bind(G.args_for(sig), setup)
  local short = f.path:gsub('^ms%.', '')
  return { name = short, accept = { f.name, short, base(f.name) }, area = area_of(f.path, f.name),
           setup = concat(setup, ' '), call = f.path .. '(' .. args .. ')' }
end

-- t:method(...), and now and then t.method(...) (a dot for a colon: a common slip)
local function tmethod_call(api, k, ms)
  local sig = G.SIG[k]
  local setup = { 'local t = ' .. (sig and sig:match('^mt') and G.SLOT.mt() or G.tensor_src()) .. ';' }
  local args = bind(G.args_for(sig), setup)
  local call = 't:' .. k .. '(' .. args .. ')'
  local r = random()
  if r < 0.04 then call = 't.' .. k .. '(' .. args .. ')'                    -- t.view(2, 3)
  elseif r < 0.07 then                                                        -- self not a tensor
    setup[#setup + 1] = 'local s = ' .. any_src() .. ';'
    call = 'ms.Tensor.' .. k .. '(s' .. (#args > 0 and ', ' or '') .. args .. ')'
  end
  local accept = { k, base(k), 'Tensor.' .. k }
  for _, alias in ipairs(api.aliases[ms.Tensor[k]] or {}) do accept[#accept + 1] = alias end
  return { name = 'Tensor:' .. k, accept = accept, area = G.CONV_POOL[k] and 'conv-pool' or 'tensor core',
           setup = concat(setup, ' '), call = call }
end

local OPS = { { 'a + b', 'add' }, { 'a - b', 'sub' }, { 'a * b', 'mul' }, { 'a / b', 'div' }, { 'a ^ b', 'pow' },
              { '-a', 'neg' }, { '#a', 'len' }, { 'tostring(a)', 'tostring' },
              -- what a PyTorch or plain-Lua habit types: indexing, comparing, calling, fields
              { 'a[1]', 'index' }, { 'a[1] = b', 'newindex', true }, { 'a < b', 'lt' }, { 'a <= b', 'le' },
              { 'a == b', 'eq' }, { "'x' .. a", 'concat' }, { 'a()', 'call' }, { 'a(b)', 'call' },
              { 'a.foo = 1', 'newindex', true }, { 'a.foo', 'index' }, { 'a.shape', 'index' } }
local function op_call()
  local op = pick(OPS)
  local a, b = G.tensor_src(), chance(0.5) and G.tensor_src() or any_src()
  if chance(0.3) and op[1]:find('b') then a, b = b, a end   -- 2 - t: the tensor on the right
  if op[1]:match('^a[%[%.(]') or op[1] == "'x' .. a" then a = G.tensor_src() end   -- the tensor is a
  return { name = 'op:' .. op[2], accept = { op[2], '__' .. op[2], 'print', 'Tensor' }, area = 'tensor core',
           setup = ('local a = %s; local b = %s;'):format(a, b), call = op[1], stmt = op[3] }
end

-- Calling an instance as a function, as PyTorch users do: model(x), criterion(out, y),
-- optimizer(closure), dataset(i); and misspelt names (ms.nn.Linaer).
local function instance_call(api)
  local r = random()
  if r < 0.6 or #api.optclass == 0 then
    local cls = pick(api.nnclass)
    local info = G.NN[cls] or { {}, 'ms.rand(2, 3)' }
    local setup = 'local m = ' .. G.nn_ctor(cls) .. '; local x = ' .. info[2] .. ';' ..
                  (info[4] and (' local y = ' .. info[4] .. ';') or '')
    return { name = cls .. '()', accept = { cls, cls .. '.forward', 'forward', '__call', 'call' },
             area = area_of('ms.nn', cls), setup = setup, call = info[4] and 'm(x, y)' or 'm(x)' }
  elseif r < 0.8 then
    local cls = pick(api.optclass)
    local config = ''   -- what the class requires: a wrapper its base, BSAM num_data
    for _, k in ipairs(ms.optim[cls].accepted or {}) do
      if k == 'base' then config = ', {base = ms.optim.SGD{lr = 0.1}}' elseif k == 'num_data' then config = ', {num_data = 10}' end
    end
    return { name = cls .. '()', accept = { cls, cls .. '.step', 'step', '__call', 'call' }, area = 'optim',
             setup = 'local opt = ms.optim.' .. cls .. '(ms.nn.Linear(2, 2)' .. config .. ');',
             call = 'opt(function() return 1 end)' }
  end
  if r < 0.9 then   -- a misspelt name: a clear "no such function" beats "attempt to call a nil value"
    local typo = pick { { 'ms.nn.Linaer(3, 2)', 'nn', 'other nn' }, { 'ms.optim.sgd(ms.nn.Linear(2, 2))', 'optim', 'optim' },
                        { "ms.data.read_CSV('ok.csv')", 'data', 'checkpoint-data' }, { 'ms.Zeros(2)', 'ms', 'tensor core' },
                        { 'ms.metrics.acc()', 'metrics', 'checkpoint-data' }, { 'ms.rand(2):Sum()', 'Tensor', 'tensor core' },
                        { 'ms.cuda.available()', 'cuda', 'tensor core' } }
    local name = typo[1]:match('([%a_]+)%(') or typo[2]
    return { name = 'typo:' .. typo[2], accept = { typo[2], name, 'ms.' .. typo[2] }, area = typo[3], setup = '',
             call = typo[1] }
  end
  return { name = 'Dataset()', accept = { 'Dataset', '__call', 'call', 'Dataset.batches' }, area = 'checkpoint-data',
           setup = 'local ds = ' .. SLOT.ds() .. ';', call = pick { 'ds(1)', 'ds()', 'ds[1]', '#ds' } }
end

-- nn.X(args), and half the time a forward (and backward) of the result on a valid
-- input: odd geometry (huge stride, padding, dilation) only shows in the kernels.
local function nn_ctor_call(api, cls)
  local info = G.NN[cls] or { {}, 'ms.rand(2, 3)' }
  local setup = {}
  local args = bind(G.ctor_args(cls), setup)
  local call, stmt = 'ms.nn.' .. cls .. '(' .. args .. ')', false
  if chance(0.5) then
    setup[#setup + 1] = 'local x = ' .. info[2] .. ';'
    if info[3] == 'loss' then
      setup[#setup + 1] = 'local y = ' .. (chance(0.8) and info[4] or pick(G.NN_ODD[cls] or { info[4] })) .. ';'
      call = 'local m = ' .. call .. ' local l = m:forward(x, y) m:backward(x, y)'
    else
      call = 'local m = ' .. call .. ' local o = m:forward(x)'
      if chance(0.5) then call = call .. ' m:backward(x, o:clone())' end
      if chance(0.2) then call = call .. ' m:evaluate() m:forward(x)' end
    end
    stmt = true
  end
  local accept = { cls, 'nn.' .. cls, cls .. '.forward', cls .. '.backward' }
  for form in (G.NN[cls] and G.nn_ctor(cls) or ''):gmatch('ms%.nn%.functional%.(%w+)%(') do   -- nn.Function's f
    accept[#accept + 1] = 'nn.functional.' .. form
  end
  return { name = 'nn.' .. cls, accept = accept,
           area = area_of('ms.nn', cls), setup = concat(setup, ' '), call = call, stmt = stmt }
end

-- Module methods' argument slots, beyond forward/backward.
local MSIG = { to = 'dtype|device dtype|device', load_state_dict = 'sd', train = 'bool', apply = 'fn',
               add = 'module', register_parameter = 'str t str', register_buffer = 'str t',
               set_update_stats = 'bool', record_input = 't', check_input = 't' }
SLOT.sd = function() return pick { 'm:state_dict()', '{}', 'ms.nn.Linear(2, 2):state_dict()',
  '(function(sd) for k in pairs(sd) do sd[k] = ms.rand(1) end return sd end)(m:state_dict())',
  "(function(sd) for k, v in pairs(sd) do sd[k] = v:to('int64') end return sd end)(m:state_dict())",
  '(function(sd) for k, v in pairs(sd) do v:free() end return sd end)(m:state_dict())' } end
SLOT.module = function() return pick { 'ms.nn.ReLU()', 'm', 'ms.nn.Linear(3, 3)' } end

local function nn_method_call(api, cls)
  local info = G.NN[cls] or { {}, 'ms.rand(2, 3)' }
  local is_loss = info[3] == 'loss'
  local methods = api.nnmethods[cls]
  local method = chance(0.6) and pick { 'forward', 'backward' } or pick(methods)
  local setup = { 'local m = ' .. G.nn_ctor(cls) .. ';', 'local x = ' .. info[2] .. ';' }
  if is_loss then setup[#setup + 1] = 'local y = ' .. info[4] .. ';' end
  local forwarded = chance(0.6)
  if forwarded then setup[#setup + 1] = is_loss and 'local o = m:forward(x, y);' or 'local o = m:forward(x); local g = o:clone();' end
  if chance(0.1) then setup[#setup + 1] = pick { 'm:evaluate();', "m:to('float64');", 'm.input_grad = false;' } end
  if chance(0.12) then   -- something the module holds is freed behind its back
    setup[#setup + 1] = pick { 'x:free();', 'm:flat_parameters():free();', 'm:flat_gradients():free();',
                               'if m.weight then m.weight:free() end;', 'if m.output then m.output:free() end;',
                               'if ms.is_tensor(o) then o:free() end;',
                               'if m.running_mean then m.running_mean:free() end;' }
  end
  local args
  local odd = G.NN_ODD[cls]
  local function v(plausible, p)
    if chance(p or 0.7) then return plausible end
    if odd and chance(0.5) then return pick(odd) end
    return chance(0.5) and G.tensor_src() or any_src()
  end
  if method == 'forward' then
    args = is_loss and { v('x', 0.8), v('y', 0.5) } or { v('x', 0.5) }
  elseif method == 'backward' then
    local g = forwarded and not is_loss and 'g' or 'ms.rand(2, 3)'
    args = is_loss and { v('x', 0.8), v('y', 0.8) } or { v('x', 0.8), v(g) }
    if is_loss and chance(0.3) then args[3] = v('1') end
  else
    args = G.args_for(MSIG[method])
  end
  local call = 'm' .. (chance(0.04) and '.' or ':') .. method .. '(' .. bind(args, setup) .. ')'   -- m.forward(x): a slip
  local accept = { cls .. '.' .. method, cls .. ':' .. method, method }
  if method == 'check_input' or method == 'record_input' then   -- protocol helpers of forward/backward
    accept[#accept + 1] = cls .. '.backward'; accept[#accept + 1] = cls .. '.forward'
  end
  for child in G.nn_ctor(cls):gmatch('ms%.nn%.(%w+)%(') do accept[#accept + 1] = child .. '.' .. method end
  -- nn.Function runs the user's f: an error inside f names the op that raised it, at f's line
  for form in G.nn_ctor(cls):gmatch('ms%.nn%.functional%.(%w+)%(') do accept[#accept + 1] = 'nn.functional.' .. form end
  return { name = cls .. ':' .. method, accept = accept, area = area_of('ms.nn', cls),
           setup = concat(setup, ' '), call = call }
end


local DSIG = { to = 'device', subset = 'int int|idx', split = 'p01 num', normalize = 'num|t num|t',
               batches = 'pint opts:batches' }
local function ds_method_call(api)
  local method = pick(api.dsmethods)
  local setup = { 'local ds = ' .. SLOT.ds() .. ';' }
  local args = bind(G.args_for(DSIG[method]), setup)
  local call = 'ds' .. (chance(0.04) and '.' or ':') .. method .. '(' .. args .. ')'
  local stmt = method == 'batches' and chance(0.7)
  if stmt then
    call = 'for a, b in ' .. call .. pick { ' do end', ' do end', ' do ds.x:free() end', ' do a:free() end',
                                             ' do ds.y = ms.rand(1) end' }
  end
  if chance(0.05) then setup[#setup + 1] = pick { 'ds.x:free();', 'ds.y:free();' } end
  return { name = 'Dataset:' .. method, accept = { 'Dataset.' .. method, 'Dataset:' .. method, method },
           area = 'checkpoint-data', setup = concat(setup, ' '), call = call, stmt = stmt }
end

local function ps_method_call(api)
  local method = pick(api.psmethods)
  local setup = { 'local p = ms.params({ms.rand(2, 3), ms.rand(4)});' }
  local args = bind(G.args_for(method == 'to' and 'dtype|device dtype|device' or nil), setup)
  return { name = 'params:' .. method, accept = { method, 'params.' .. method, 'params:' .. method }, area = 'optim',
           setup = concat(setup, ' '), call = 'p' .. (chance(0.04) and '.' or ':') .. method .. '(' .. args .. ')' }
end

-- Sequences a single call does not reach: a checkpoint round trip of an odd value, a
-- container changed after it was built, an optimizer over a moved or odd params set.
local SEQUENCES = {
  { 'ms.save', 'checkpoint-data', { 'save', 'load' }, function(setup)
      setup[#setup + 1] = 'local v = ' .. SLOT.value() .. ';'
      return "ms.save('rt.ck', v) local r = ms.load('rt.ck', " .. (chance(0.8) and '{}' or G.opts_src('load')) .. ')' end },
  { 'Sequential:add', 'other nn', { 'add', 'Sequential.add', 'Sequential.forward', 'Sequential.backward',
      'Linear.forward', 'ReLU.forward', 'Linear.backward', 'ReLU.backward', 'Sequential', 'Sequential.to',
      'flat_parameters' }, function(setup)
      setup[#setup + 1] = 'local m = ms.nn.Sequential(ms.nn.Linear(4, 4), ms.nn.ReLU()); local x = ms.rand(2, 4);'
      setup[#setup + 1] = 'local c = ' .. pick { 'm', 'ms.nn.Linear(4, 4)', 'ms.nn.Linear(5, 5)', 'ms.nn.ReLU()',
                                                  'm.modules[1]', 'ms.nn.Sequential(m)', any_src() } .. ';'
      return pick { 'm:add(c) local o = m:forward(x) m:backward(x, o:clone())',
                    'local s = ms.nn.Sequential(c, c) local o = s:forward(x)',
                    'm:add(c) local p = m:flat_parameters() m:to(' .. SLOT.dtype() .. ')' } end },
  { 'params+optim', 'optim', { 'params', 'SGD', 'Adam', 'AdamW', 'step', 'to' }, function(setup)
      setup[#setup + 1] = 'local l = ' .. SLOT.list() .. ';'
      return 'local p = ms.params(l) ' .. pick { "local opt = ms.optim.Adam(p, {lr = 0.1}) p:to('float64') opt:step(function() return 1 end)",
                    'local opt = ms.optim.SGD(p, {lr = 0.1, momentum = 0.9}) opt:step(function() p:flat_gradients():fill_(1) return 1 end)',
                    "local opt = ms.optim.SGD(p, {lr = 0.1}) p:to('cuda') opt:step(function() return 1 end)",
                    'local opt = ms.optim.AdamW(p) opt:load_state(opt:state()) opt:step(function() return 1 end)' } end },
}
local function sequence_call()
  local seq = pick(SEQUENCES)
  local setup = {}
  local call = seq[4](setup)
  return { name = seq[1], accept = seq[3], area = seq[2], setup = concat(setup, ' '), call = call, stmt = true }
end

-- A chain: 2 to 5 steps on the same objects (tensors t and u, a module m on its input x,
-- an optimizer over m), so that state one step leaves behind (a freed or moved tensor, a
-- module moved to float64, a view of a view) meets the next step. An error may name any
-- function of the chain.
local VIEW_METHODS = { 'narrow', 'transpose', 'expand', 'select', 'view', 'reshape', 'permute', 'unsqueeze',
                       'squeeze', 't', 'contiguous', 'clone', 'to', 'flatten' }
local HAS_PARAMS = { Linear = true, Conv2d = true, BatchNorm1d = true, BatchNorm2d = true, LayerNorm = true,
                     Embedding = true, Sequential = true, Function = true }
local function chain_call(api, ms)
  local classes = {}
  for _, c in ipairs(api.nnclass) do if G.NN[c] and G.NN[c][3] ~= 'loss' then classes[#classes + 1] = c end end
  local cls = pick(classes)
  local setup = { 'local t = ' .. G.tensor_src() .. ';', 'local u = ' .. G.tensor_src() .. ';',
                  'local m = ' .. G.nn_ctor(cls) .. ';', 'local x = ' .. G.NN[cls][2] .. ';', 'local o;' }
  if HAS_PARAMS[cls] then
    local oc = pick(api.optclass)   -- a valid configuration of that optimizer, without groups
    local configs = {}              -- (a group that matches none of this module's parameters is refused)
    for _, c in ipairs(VALID_CONFIG[oc] or { '{}' }) do
      if not c:find('groups', 1, true) then configs[#configs + 1] = c end
    end
    setup[#setup + 1] = 'local opt = ms.optim.' .. oc .. '(m, ' .. pick(configs) .. ');'
  end
  local steps, accept = {}, { cls, cls .. '.forward', cls .. '.backward', 'Linear.forward', 'Linear.backward',
                               'ReLU.forward', 'ReLU.backward', 'save', 'load', 'ms.save', 'ms.load' }
  -- nn.Function runs the user's f: an error inside f names the op that raised it
  for form in G.nn_ctor(cls):gmatch('ms%.nn%.functional%.(%w+)%(') do accept[#accept + 1] = 'nn.functional.' .. form end
  local function args(k, n)
    local list = G.args_for(G.SIG[k], 0.92)   -- mostly valid: the chain should get far
    for i = 1, #list do   -- now and then the other tensor of the chain as an argument
      if list[i]:match('^ms%.') and chance(0.3) then list[i] = pick { 't', 'u' } end
    end
    local names = {}
    for i, a in ipairs(list) do
      setup[#setup + 1] = ('local s%d_%d = %s;'):format(n, i, a)
      names[i] = ('s%d_%d'):format(n, i)
    end
    return concat(names, ', ')
  end
  for n = 1, random(2, 5) do
    local r, step = random(), nil
    if r < 0.3 then
      local k = pick(api.tmethod)
      step = ('%s:%s(%s)'):format(pick { 't', 'u' }, k, args(k, n))
      accept[#accept + 1] = k; accept[#accept + 1] = base(k)
    elseif r < 0.45 then
      local k = pick(VIEW_METHODS)
      step = ('t = t:%s(%s)'):format(k, args(k, n))
      accept[#accept + 1] = k
    elseif r < 0.5 then
      step = pick { 't:free()', 'u:free()', 'x:free()', 'm:flat_parameters():free()', 'if o then o:free() end' }
      accept[#accept + 1] = 'free'
    elseif r < 0.8 then
      local k = pick { 'forward', 'forward', 'backward', 'backward', 'to', 'zero_grad', 'evaluate', 'train',
                       'load_state_dict', 'state_dict', 'flat_parameters', 'parameters' }
      step = ({ forward = 'o = m:forward(x)', backward = 'm:backward(x, o)',
                to = 'm:to(' .. pick { "'float64'", "'float32'", "'cuda'" } .. ')',
                load_state_dict = 'm:load_state_dict(m:state_dict())' })[k] or ('m:' .. k .. '()')
      accept[#accept + 1] = k; accept[#accept + 1] = cls .. '.' .. k
      if k == 'to' and chance(0.5) then step = step .. " x = x:to('float64')" end
    elseif r < 0.9 and HAS_PARAMS[cls] then
      step = pick { 'opt:step(function() o = m:forward(x) m:backward(x, o) return 1 end)',
                    'opt:load_state(opt:state())', 'opt:step(function() return 0/0 end)' }
      for _, k in ipairs { 'step', 'state', 'load_state', 'forward', 'backward' } do accept[#accept + 1] = k end
    else
      step = pick { "ms.save('chain.ck', {t = t, sd = m:state_dict()}) local v = ms.load('chain.ck')",
                    "ms.save('chain.ck', t) t = ms.load('chain.ck')", 'print(t, u)', 'u:copy_(t)',
                    'local c = ms.cat({t, u})' }
      for _, k in ipairs { 'copy_', 'cat', 'print', 'tostring', 'state_dict', 'numel' } do accept[#accept + 1] = k end
    end
    steps[#steps + 1] = step
  end
  return { name = 'chain:' .. cls, accept = accept, area = area_of('ms.nn', cls), setup = concat(setup, ' '),
           call = concat(steps, ' '), stmt = true }
end

-- One call: a group by weight, then a target in it.
local GROUPS = {
  { 0.25, 'tmethod' }, { 0.22, 'fn' }, { 0.08, 'nnclass' }, { 0.25, 'nnmethod' }, { 0.04, 'optclass' },
  { 0.07, 'optmethod' }, { 0.04, 'dsmethod' }, { 0.02, 'psmethod' }, { 0.03, 'op' }, { 0.03, 'sequence' },
  { 0.08, 'chain' }, { 0.01, 'instance' }, { 0.045, 'lab' }, { 0.03, 'labmethod' },
}
function T.make_call(api, ms)
  while true do
    local total = 0
    for _, e in ipairs(GROUPS) do total = total + e[1] end
    local r, g = random() * total, nil
    for _, e in ipairs(GROUPS) do
      if r < e[1] then g = e[2]; break end
      r = r - e[1]
    end
    g = g or 'tmethod'
    if g == 'tmethod' and #api.tmethod > 0 then return tmethod_call(api, pick(api.tmethod), ms) end
    if g == 'fn' and #api.fn > 0 then return fn_call(api, pick(api.fn), ms) end
    if g == 'nnclass' and #api.nnclass > 0 then return nn_ctor_call(api, pick(api.nnclass)) end
    if g == 'nnmethod' and #api.nnclass > 0 then return nn_method_call(api, pick(api.nnclass)) end
    if g == 'optclass' and #api.optclass > 0 then return O.ctor_call(api, pick(api.optclass)) end
    if g == 'optmethod' and #api.optclass > 0 then return O.method_call(api, pick(api.optclass)) end
    if g == 'dsmethod' and #api.dsmethods > 0 then return ds_method_call(api) end
    if g == 'psmethod' and #api.psmethods > 0 then return ps_method_call(api) end
    if g == 'op' then return op_call() end
    if g == 'sequence' then return sequence_call() end
    if g == 'chain' then return chain_call(api, ms) end
    if g == 'instance' then return instance_call(api) end
    if g == 'lab' or g == 'labmethod' then   -- (random arguments through fn_call, now and then)
      local call = L.make_call(api, g, function(f) return fn_call(api, f, ms) end)
      if call then return call end
    end
  end
end

return T
