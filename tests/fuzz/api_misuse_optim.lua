-- tests/fuzz/api_misuse_optim.lua — the API-misuse fuzzer's optimizer targets: optim.X
-- constructors with mutated options, and optimizer methods (step, evaluate, state,
-- load_state, get, bind, ...) on valid configurations (VALID_CONFIG, per class) with
-- odd closures, states and hyper-parameters written behind the optimizer's back.
-- (api_misuse_targets.lua picks the targets; chain calls reuse VALID_CONFIG.)
local G = require 'api_misuse_gen'
local concat = table.concat
local pick, chance, any_src, bind = G.pick, G.chance, G.any_src, G.bind

local O = {}
function O.ctor_call(api, cls)
  local setup = { 'local m = ms.nn.Linear(3, 2);' }
  local target = chance(0.8) and 'm' or pick { '{}', 'ms.rand(3)', '{ms.rand(3)}', 'ms.params({ms.rand(3)})',
                                                '{m}', any_src() }
  local config = chance(0.85) and G.opts_src('optim') or any_src()
  local args = bind(chance(0.1) and { target } or { target, config }, setup)
  return { name = 'optim.' .. cls, accept = { cls, 'optim.' .. cls }, area = 'optim',
           setup = concat(setup, ' '), call = 'ms.optim.' .. cls .. '(' .. args .. ')' }
end

local CLOSURES = {
  'function() local o = m:forward(x) local l = crit:forward(o, y) m:backward(x, crit:backward(o, y)) return l end',
  'function() return 0/0 end', 'function() return 1 end', "function() return 'x' end", 'function() end',
  'function() m:flat_gradients():fill_(0/0) return 1 end', 'function() m:flat_gradients():fill_(1/0) return 1 end',
  'function() m:flat_parameters():free() return 1 end', 'function() return 1/0 end', 'function() return ms.rand(1) end',
  'function() m:flat_gradients():free() return 1 end', 'function() m.weight:free() return 1 end',
  'function() opt:step(function() return 1 end) return 1 end',
}
local STATES = { 'opt:state()', '{}', '{t = 1}', '{t = 1, buffers = {exp_avg = ms.rand(2)}}',
                 "{t = 0/0, hyper = {lr = 'x'}}", '{t = -1}', 'ms.optim.SGD(ms.nn.Linear(5, 5), {momentum = 0.9}):state()',
                 "(function(s) for k, b in pairs(s.buffers) do s.buffers[k] = b:to('int64') end return s end)(opt:state())",
                 '(function(s) for k, b in pairs(s.buffers) do b:free() end return s end)(opt:state())' }
local VALID_CONFIG = {   -- per class: valid constructor options (source text)
  SGD = { '{lr = 0.1}', '{lr = 0.1, momentum = 0.9}', '{lr = 0.1, momentum = 0.9, nesterov = true}',
          '{lr = 0.1, weight_decay = 0.1, momentum = 0.5, dampening = 0.5}',
          "{lr = 0.1, momentum = 0.9, groups = {{match = 'bias', weight_decay = 0, momentum = 0}}, clip_norm = 1}" },
  Adam = { '{lr = 0.1}', '{lr = 0.01, weight_decay = 0.1}', '{}',
           "{amsgrad = true, groups = {{kind = 'bias', lr_scale = 0.5}}, clip_tensor_norm = 1, skip_nonfinite = true}" },
  AdamW = { '{lr = 0.1}', '{lr = 0.01, weight_decay = 0.1}', '{}' },
  NAdam = { '{lr = 0.01}', '{lr = 0.01, weight_decay = 0.1, decoupled_weight_decay = true}', '{}' },
  RMSprop = { '{lr = 0.01}', '{lr = 0.01, centered = true, momentum = 0.9}', '{}' },
  Adagrad = { '{lr = 0.1}', '{lr = 0.1, lr_decay = 0.01, initial_accumulator_value = 0.1}', '{}' },
  BSAM = { '{num_data = 100}', '{num_data = 1000, lr = 0.1, rho = 0.01, weight_decay = 0}', "{num_data = 50, bn = 'both', seed = 3}" },
  ACME = { '{}', '{lr = 0.1, asam = true, nesterov = true}', '{adam = false, bias_correction = false, weight_decay = 1e-4}' },
  LBFGS = { '{}', "{lr = 0.5, history_size = 3, line_search_fn = 'strong_wolfe'}", '{max_iter = 2, max_eval = 3}' },
  AutoSGM = { '{lr_init = 0.01}', '{lr_init = 0.01, num_lrc = 3}', '{num_lrc = 2, per_layer = false}',
              '{lr_cfg = {true, 1e-3, 3}, rc_cfg = {1, 0, 0, 2, 1, 100, 1, 1, 0}}', '{}' },
  SAM = { '{base = ms.optim.SGD{lr = 0.1}}', "{base = ms.optim.Adam, rho = 0.5, adaptive = 'asam', eta = 0.01}",
          '{base = ms.optim.SGD{lr = 0.1, momentum = 0.9}, gradient_accumulation_steps = 2, loss_scale_factor = 8, use_ema = true}',
          "{base = ms.optim.SGD{lr = 0.1}, use_gc = true, clipnorm = 1, bn = 'both', replay_rng = false}" },
  GSAM = { '{base = ms.optim.SGD{lr = 0.1}}', '{base = ms.optim.Adam{lr = 0.01}, rho_min = 0.01, rho_max = 0.1, alpha = 0.2}' },
  WSAM = { '{base = ms.optim.SGD{lr = 0.1, momentum = 0.9}}', '{base = ms.optim.Adam, decouple = false, max_norm = 1}' },
  LookSAM = { '{base = ms.optim.SGD{lr = 0.1}, k = 2}', "{base = ms.optim.Adam, k = 3, scope = 'global', global_clipnorm = 1}" },
  FriendlySAM = { '{base = ms.optim.SGD{lr = 0.1}}', '{base = ms.optim.Adam, sigma = 0.5, lmbda = 0.5, adaptive = true}' },
  SPSA = { '{seed = 1}', "{memory = 'materialized', n = 3, update = 'adam', diff = 'forward'}",
           "{memory = 'virtual', dist = 'gaussian', update = 'mezo', weight_decay = 0.1}",
           "{dist = 'segmented_uniform', n = 2, update = 'spsa_gc', average_from = 2, trust_region = true}",
           "{memory = 'materialized', second_order = true, blocking = true, calibrate = true}",
           "{criterion = ms.nn.CrossEntropyLoss(), memory = 'materialized', n = 4, diff = 'forward'}",
           "ms.optim.SPSA.preset('mezo', {restore = 'subtract'})", "ms.optim.SPSA.preset('seed', {steps_per_epoch = 2})" },
}
function O.method_call(api, cls)
  local setup = { "local m = ms.nn.Linear(3, 2); local x = ms.rand(4, 3); local y = ms.tensor({1, 2, 1, 2}, 'int64');",
                  'local crit = ms.nn.CrossEntropyLoss();',
                  ('local opt = ms.optim.%s(m, %s);'):format(cls, pick(VALID_CONFIG[cls] or { '{}' })) }
  if chance(0.3) then setup[#setup + 1] = 'opt:step(' .. CLOSURES[1] .. ');' end
  if chance(0.1) then
    setup[#setup + 1] = pick { 'm:flat_gradients():free();', 'm.weight:free();', 'opt.t = 0/0;', 'opt.t = -1;',
                               'for k, b in pairs(opt.buffers or {}) do b:free() end;', 'opt.t = 2^63;' }
  end
  if chance(0.2) then
    setup[#setup + 1] = ('opt.%s = %s;'):format(pick { 'lr', 'momentum', 'weight_decay', 'eps', 'beta1', 'betas' },
      pick { '-1', '0/0', "'x'", 'function() return 0/0 end', '1e308', '{}' })
  end
  local method = chance(0.35) and 'step' or chance(0.2) and 'evaluate' or pick(api.optmethods[cls])
  local args
  if method == 'step' then args = { chance(0.85) and pick(CLOSURES) or any_src() }
  elseif method == 'load_state' then args = { chance(0.8) and pick(STATES) or any_src() }
  elseif method == 'get' then
    args = { chance(0.7) and pick { "'lr'", "'eps'", "'x'", "'t'", "'betas'" } or any_src() }
    if chance(0.3) then args[2] = pick { '1', '2', '0', '1.5', "'x'" } end
  elseif method == 'evaluate' then
    args = { chance(0.85) and pick(CLOSURES) or any_src() }
    if chance(0.6) then
      args[2] = pick { "{bn = 'freeze'}", "{rng = 'replay'}", "{rng = 'record', pass = 2}", "{pass = 0}",
                       "{bn = 'x'}", "{passes = 2}", '{zero_grad = false}', any_src() }
    end
  elseif method == 'bind' then
    args = { pick { 'm', 'ms.nn.Linear(2, 2)', 'ms.params({ms.rand(3)})', '{}', 'ms.rand(3)', any_src() } }
  else args = G.args_for(nil) end
  local call = 'opt' .. (chance(0.04) and '.' or ':') .. method .. '(' .. bind(args, setup) .. ')'
  -- (a closure may call opt:step itself: its errors name step)
  return { name = cls .. ':' .. method, accept = { cls .. '.' .. method, cls .. ':' .. method, method, cls .. '.step' },
           area = 'optim', setup = concat(setup, ' '), call = call }
end
O.VALID_CONFIG = VALID_CONFIG

return O
