-- harness.lua (bench) — what the benchmarks that drive other processes share (autograd.lua,
-- train.lua): their command line, shell quoting, "result k=v ..." lines, whether PyTorch is
-- there, a child process's result line, PyTorch's step server, and a Module training step.
--   local harness = dofile(home .. '/scripts/bench/harness.lua')
local M = {}

-- s quoted for a POSIX shell.
function M.quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- A "result k=v ..." line as a table (numbers converted); nil for any other line.
function M.parse_result(line)
  if not line:match('^result ') then return nil end
  local r = {}
  for k, v in line:gmatch('([%w_]+)=(%S+)') do r[k] = tonumber(v) or v end
  return r
end

-- Whether PyTorch can run (/usr/bin/python3 imports torch); false when not wanted.
function M.have_torch(wanted)
  return wanted and os.execute('/usr/bin/python3 -c "import torch" >/dev/null 2>&1') == 0
end

local function fail(msg)
  io.stderr:write(msg .. '\n')
  os.exit(2)
end

local function list(s, conv)
  local t = {}
  for v in s:gmatch('[^,]+') do
    local x = conv(v)
    if x == nil then return nil end
    t[#t + 1] = x
  end
  return t
end

-- The command line argv of script `name` read into opts (its defaults filled in). Every
-- benchmark takes --quick (opts.quick), --no-torch (opts.torch = false), --cases a,b
-- (opts.cases, each one of the default list), --rounds N, --block N and --threads: N, or
-- a list a,b where the default is a list. extra[flag]: a script's own flags, 'number' (a
-- number into opts[the flag's name without its dashes, '-' as '_']) or a function(argv,
-- i, opts) that reads argv[i + 1], ... and returns how many it took. Anything else: a
-- line on stderr and exit status 2.
function M.options(name, argv, opts, extra)
  extra = extra or {}
  local valid = opts.cases
  local i = 1
  while argv[i] do
    local a, v = argv[i], argv[i + 1]
    local key = a:sub(3):gsub('%-', '_')
    local kind = extra[a]
    local took
    if a == '--quick' then opts.quick, took = true, 0
    elseif a == '--no-torch' then opts.torch, took = false, 0
    elseif a == '--cases' and v then opts.cases, took = list(v, tostring), 1
    elseif a == '--threads' and v and type(opts.threads) == 'table' then
      opts.threads = list(v, tonumber); took = opts.threads and 1
    elseif (a == '--threads' or a == '--rounds' or a == '--block' or kind == 'number') and tonumber(v) then
      opts[key], took = tonumber(v), 1
    elseif type(kind) == 'function' then took = kind(argv, i, opts)
    end
    if not took then fail(('%s: unknown argument %s'):format(name, a)) end
    i = i + 1 + took
  end
  for _, c in ipairs(opts.cases) do
    local known = false
    for _, k in ipairs(valid) do known = known or c == k end
    if not known then fail(('%s: unknown case %s (%s)'):format(name, c, table.concat(valid, ', '))) end
  end
  return opts
end

-- The last lines of a list of output lines, for a failure's message.
local function tail(lines) return table.concat(lines, '\n', math.max(1, #lines - 5)) end

-- Runs the shell command cmd (stderr with stdout); returns its "result ..." line parsed, or
-- nil and the tail of its output.
function M.run_for_result(cmd)
  local p = io.popen(cmd .. ' 2>&1')
  local out, res = {}, nil
  for line in p:lines() do
    out[#out + 1] = line
    res = res or M.parse_result(line)
  end
  p:close()
  if res then return res end
  return nil, tail(out)
end

-- A PyTorch step server (/usr/bin/python3 script ARGS...): it sets its case up and prints
-- "ready", then answers "run K" with "times T1 ... TK" (seconds per step) and "end" with
-- its "result ..." line. Its stdin is a pipe from here, its stdout a FIFO read here, so
-- that its step blocks alternate with the caller's. Returns { run = function(k) -> k step
-- times, finish = function() -> result table } (both raise on a bad answer), or nil and
-- the tail of its output when it does not start.
function M.step_server(script, ...)
  local args = { ... }
  for i, v in ipairs(args) do args[i] = M.quote(tostring(v)) end
  local fifo = os.tmpname()
  os.remove(fifo)
  if os.execute('mkfifo ' .. M.quote(fifo)) ~= 0 then return nil, 'mkfifo failed' end
  local w = io.popen(('/usr/bin/python3 %s %s > %s 2>&1'):format(M.quote(script), table.concat(args, ' '),
                                                                  M.quote(fifo)), 'w')
  local r = io.open(fifo, 'r')                    -- (blocks until the server's end is open)
  os.remove(fifo)
  local first = r:read('*l')
  if first ~= 'ready' then
    local out = { first }
    for line in r:lines() do out[#out + 1] = line end
    w:close(); r:close()
    return nil, tail(out)
  end
  local S = {}
  local function ask(cmd, pattern)
    w:write(cmd .. '\n')
    w:flush()
    local line = r:read('*l')
    if not (line and line:match(pattern)) then
      local out = { tostring(line) }
      for l in r:lines() do out[#out + 1] = l end
      error('PyTorch: ' .. tail(out), 0)
    end
    return line
  end
  function S.run(k)
    local ts = {}
    for v in ask(('run %d'):format(k), '^times '):sub(7):gmatch('%S+') do ts[#ts + 1] = tonumber(v) end
    return ts
  end
  function S.finish()
    local res = M.parse_result(ask('end', '^result '))
    w:close(); r:close()
    return res
  end
  return S
end

-- One training step of a Module as a user writes it: forward, loss, backward inside the
-- optimizer's closure.
function M.module_step(model, opt, crit, x, y)
  opt:step(function()
    local out = model:forward(x)
    local loss = crit:forward(out, y)
    model:backward(x, crit:backward(out, y))
    return loss
  end)
end

return M
