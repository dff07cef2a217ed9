-- moonstep.flags — command-line flags for the scripts (scripts/train.lua, scripts/zo_mnist.lua).
--
--   local flags = require 'moonstep.flags'
--   local FLAGS = {
--     { 'epochs', 'integer', 10, 'number of epochs', min = 1 },
--     { 'optim', 'choice', 'adam', 'the optimizer', choices = { 'adam', 'sgd' } },
--     { 'lr', 'number', nil, 'learning rate', min = 0 },       -- positive = true: > min
--     { 'save', 'string', nil, 'write a checkpoint to PATH' },  -- metavar = 'PATH' (default)
--     { 'quick', 'flag', false, 'a short run' },                -- no value: true when given
--   }
--   local args = flags.parse('train.lua', FLAGS, arg or {} [, footer])
--   flags.die('train.lua', code, fmt, ...)   one line on stderr, exit status code (2: usage)
-- Values come as --epochs 3 or --epochs=3; --help (-h) prints the flags with their defaults
-- and exits 0; an unknown flag, a missing or malformed value is one line and exit status 2.
local M = {}

function M.die(script, code, fmt, ...)
  io.stderr:write(script, ': ', fmt:format(...), '\n')
  if code == 2 then io.stderr:write('run with --help to list the flags\n') end
  os.exit(code)
end

function M.usage(script, FLAGS, footer)
  local lines = { ('usage: bin/moonstep scripts/%s [--flag value ...]'):format(script), '' }
  for _, f in ipairs(FLAGS) do
    local kind = f[2]
    local value = kind == 'choice' and table.concat(f.choices, '|')
      or ({ integer = 'N', number = 'X', string = f.metavar or 'PATH', flag = '' })[kind]
    local default = (f[3] ~= nil and kind ~= 'flag') and ('  (default ' .. tostring(f[3]) .. ')') or ''
    lines[#lines + 1] = ('  --%-8s %-9s %s%s'):format(f[1], value, f[4], default)
  end
  lines[#lines + 1] = ('  --%-8s %-9s %s'):format('help', '', 'print this and exit')
  lines[#lines + 1] = ''
  lines[#lines + 1] = footer or 'Flags take a value, as --epochs 3 or --epochs=3.'
  return table.concat(lines, '\n') .. '\n'
end

local function value_of(script, f, text)
  local name, kind = f[1], f[2]
  if kind == 'string' then
    if text == '' then M.die(script, 2, '--%s expects a path, got an empty string', name) end
    return text
  elseif kind == 'choice' then
    for _, c in ipairs(f.choices) do if text == c then return text end end
    M.die(script, 2, '--%s is %q, expected %s', name, text, table.concat(f.choices, ' or '))
  end
  local v = tonumber(text)
  local want = kind == 'integer' and 'an integer' or 'a number'
  if not v or v ~= v or v == math.huge or v == -math.huge or (kind == 'integer' and v ~= math.floor(v))
     or (f.min and v < f.min) or (f.positive and v <= f.min) then
    M.die(script, 2, '--%s expects %s%s, got %q', name, want,
          f.min and ((f.positive and ' > ' or ' >= ') .. f.min) or '', text)
  end
  return v
end

function M.parse(script, FLAGS, argv, footer)
  local by_name, args = {}, {}
  for _, f in ipairs(FLAGS) do by_name[f[1]], args[f[1]] = f, f[3] end
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == '--help' or a == '-h' then io.stdout:write(M.usage(script, FLAGS, footer)); os.exit(0) end
    local name, value = a:match('^%-%-([^=]+)=(.*)$')
    name = name or a:match('^%-%-(.+)$')
    if not name then M.die(script, 2, 'expected a flag (--name value), got %q', a) end
    local f = by_name[name]
    if not f then
      local near = {}
      for _, g in ipairs(FLAGS) do
        if g[1]:sub(1, 3) == name:sub(1, 3) then near[#near + 1] = '--' .. g[1] end
      end
      M.die(script, 2, 'unknown flag --%s%s', name, #near > 0 and (' (did you mean ' .. table.concat(near, ' or ') .. '?)') or '')
    end
    if f[2] == 'flag' then
      if value then M.die(script, 2, '--%s takes no value', name) end
      args[name] = true
    else
      if not value then
        value = argv[i + 1]
        if value == nil then M.die(script, 2, '--%s needs a value', name) end
        i = i + 1
      end
      args[name] = value_of(script, f, value)
    end
    i = i + 1
  end
  return args
end

return M
