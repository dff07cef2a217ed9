-- tests/fuzz/api_misuse.lua — seeded random misuse of the whole public Lua API.
--
--   bin/moonstep tests/fuzz/api_misuse.lua [--seed S] [--calls N] [--from I] [--summary FILE] [--top K]
--                                          [--max-deaths D] [--call-timeout SEC] [--slow SEC] [--keep 1]
--                                          [--fixtures DIR]
--   make fuzz-api N=100000 SEED=1          (make fuzz-api-asan: the sanitizer build)
--
-- Calls (made by api_misuse_targets.lua / api_misuse_gen.lua) run in a child process
-- that writes each call to a log and flushes BEFORE running it, so when the child dies
-- (signal, sanitizer report, out of memory, or a call that does not return within
-- --call-timeout seconds: alarm()) the parent names the call and restarts the child
-- after it; every call has its own random stream, so the rest of the run is unchanged.
-- The child inherits the environment (LD_PRELOAD/ASAN_OPTIONS of a sanitizer run) and
-- runs with its memory bounded (ulimit -v, or ASan's allocation/RSS limits); under ASan,
-- LeakSanitizer checks at the child's exit that no call lost memory.
-- The child works in a fresh mktemp -d directory (fixtures written there first: a 256-image
-- Fashion-MNIST, checkpoints, CSVs, the lab's runs); calls write relative paths only. Lab
-- calls (api_misuse_lab.lua) are tiny, quiet (MOONSTEP_QUIET=1) and time-budgeted; a broken
-- lab contract ends the child with a PROPERTY VIOLATED line, reported as a death.
--
-- Every error a call raises is classified: it is UNCLEAR when it is a raw LuaJIT/FFI
-- message ("attempt to", "bad argument #", "ms_"...), gnuplot refusing a script ms.plot
-- wrote from checked arguments, names another function, does not
-- name the function called, or is not positioned at the caller's line (the call's chunk
-- is named "call"; a position inside lua/moonstep/ or none at all is wrong).
-- Output: calls, errors, deaths with reproducers, the unclear share and the top unclear
-- messages by function. Exit status 1 when a call killed the process.
local fmt, concat = string.format, table.concat
local script_dir = (arg and arg[0] or ''):match('^(.*)/[^/]*$') or '.'
package.path = script_dir .. '/?.lua;' .. package.path

local opt = { seed = 1, calls = 2000, top = 25, from = 1, call_timeout = nil, max_deaths = 100, slow = 2 }
do
  local i = 1
  while arg and arg[i] do
    local a, v = arg[i], arg[i + 1]
    local key = a:match('^%-%-(.+)$')
    if key == 'child' then opt.child = true; i = i + 1
    elseif key then opt[key:gsub('%-', '_')] = tonumber(v) or v; i = i + 2
    else error('api_misuse: unexpected argument ' .. a) end
  end
end

local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function reproducer(setup, call, stmt)
  local body = stmt and call or ('local r = ' .. call)
  return 'bin/moonstep -e "' .. setup .. ' ' .. body .. '"'
end
local function unescape(s) return (s:gsub('\\n', '\n')) end

---------------------------------------------------------------------------------------
-- error classification (in the child: it knows the names a call may give)
---------------------------------------------------------------------------------------
local RAW = { 'attempt to ', 'bad argument #', 'ms_', 'cannot convert', 'cdata<', 'invalid C type',
              'not enough memory', 'stack overflow', 'malformed pattern', 'table index is',
              'no integer representation', 'unfinished capture', 'invalid capture', 'missing declaration',
              'table overflow', 'invalid key to', 'loop in gettable', 'C stack' }

local function has_token(msg, name)
  local init = 1
  while true do
    local s, e = msg:find(name, init, true)
    if not s then return false end
    local before, after = msg:sub(s - 1, s - 1), msg:sub(e + 1, e + 1)
    if not before:match('[%w_]') and not after:match('[%w_]') then return true end
    init = s + 1
  end
end

local function accepted_prefix(prefix, accept)
  local last = prefix:match('([%w_]+)$')
  for _, a in ipairs(accept) do
    if prefix == a or last == a then return true end
  end
  return false
end

-- 'clear' or 'unclear', and the reason.
local function classify(err, call)
  if type(err) ~= 'string' then return 'unclear', 'error value is ' .. type(err) end
  local pos, msg = err:match('^(.-):%d+: (.*)$')
  if not pos or pos:find('\n') then pos, msg = nil, err end
  for _, raw in ipairs(RAW) do
    if msg:find(raw, 1, true) then return 'unclear', 'raw message "' .. raw:gsub('%s$', '') .. '"' end
  end
  -- arguments that passed moonstep's checks must make a script gnuplot accepts (ms.plot)
  if msg:find('gnuplot failed', 1, true) then return 'unclear', 'gnuplot rejected the script moonstep wrote' end
  if msg:find('-9223372036854775808', 1, true) and not (call.setup .. call.call):find('-2^63', 1, true) then
    return 'unclear', 'prints an overflowed integer'
  end
  local prefix = msg:match('^([%w_%.:]+):%s')
  if prefix and not accepted_prefix(prefix, call.accept) then return 'unclear', 'names another function' end
  if not prefix then
    local named = false
    for _, a in ipairs(call.accept) do if has_token(msg, a) then named = true; break end end
    if not named then return 'unclear', 'does not name the function' end
  end
  if pos == nil then return 'unclear', 'no position (not the caller\'s line)' end
  if pos:find('lua/moonstep/', 1, true) then
    return 'unclear', 'raised inside ' .. (pos:match('(lua/moonstep/.*)$') or pos)
  end
  if pos ~= 'call' then return 'unclear', 'raised at ' .. pos end
  return 'clear'
end

---------------------------------------------------------------------------------------
-- child: run calls from..calls, logging each before it runs
---------------------------------------------------------------------------------------
local function write_file(path, data)
  local f = assert(io.open(path, 'wb')); f:write(data); f:close()
end

local function be32(n) return string.char(math.floor(n / 2^24) % 256, math.floor(n / 2^16) % 256, math.floor(n / 256) % 256, n % 256) end

-- Fixture files in the working directory (the run's temporary directory).
local function write_fixtures(ms)
  pcall(ms.save, 'ok.ck', { a = ms.rand(2, 3), b = { 1, 'x', true }, c = ms.tensor({ 1, 2 }, 'int64') })
  local f = io.open('ok.ck', 'rb'); local ck = f and f:read('*a') or 'MSCK'; if f then f:close() end
  write_file('bad.ck', 'not a checkpoint at all, just text')
  write_file('trunc.ck', ck:sub(1, math.floor(#ck / 2)))
  write_file('empty', '')
  write_file('ok.csv', 'a,b,label\n1,2,1\n3,4,2\n5,6,1\n')
  write_file('bom.csv', '\239\187\191a,b,label\n1,2,1\n3,4,2\n')
  write_file('one_col.csv', 'label\n1\n2\n')
  write_file('frac.csv', 'x,label\n1,0.5\n2,-1\n3,0\n')
  write_file('text.csv', 'x,y\n1,abc\n')
  write_file('ok.idx', '\0\0\8\1' .. be32(3) .. '\1\2\3')
  write_file('big.idx', '\0\0\8\2' .. be32(2^30) .. be32(2^30) .. 'tiny')
  write_file('bad.idx', 'garbage')
  os.execute('gzip -c ok.idx > ok.idx.gz 2>/dev/null')
  f = io.open('ok.idx.gz', 'rb'); local gz = f and f:read('*a') or ''; if f then f:close() end
  write_file('trunc.idx.gz', gz:sub(1, #gz - 4))
  write_file('bomb.idx', '\0\0\8\1' .. be32(2^30) .. ('\0'):rep(2^21))   -- declares 1 GiB, gzips to 2 KiB
  os.execute('gzip -c bomb.idx > bomb.idx.gz 2>/dev/null; rm -f bomb.idx')
  write_file('dims.idx', '\0\0\8\255' .. be32(1):rep(255))
  write_file('type.idx', '\0\0\13\1' .. be32(2) .. '\0\0\0\0\0\0\0\0')
  write_file('sep.csv', 'a%b%label\n1%2%1\n3%4%2\n')
  pcall(ms.save, 'module.ck', ms.nn.Linear(2, 2))
  os.execute('mkdir -p dir fmnist')
  -- a 256 + 128-image Fashion-MNIST (gzread reads plain files) for the lab's experiments
  for p, n in pairs { train = 256, t10k = 128 } do
    local px, lb = {}, {}
    for i = 1, n do
      px[i] = string.char(i * 37 % 256):rep(392) .. string.char(i * 11 % 256):rep(392)
      lb[i] = string.char(i * 7 % 10)
    end
    write_file('fmnist/' .. p .. '-images-idx3-ubyte.gz', '\0\0\8\3' .. be32(n) .. be32(28) .. be32(28) .. table.concat(px))
    write_file('fmnist/' .. p .. '-labels-idx1-ubyte.gz', '\0\0\8\1' .. be32(n) .. table.concat(lb))
  end
  require('api_misuse_lab').write_fixtures(ms, write_file)   -- runs/, runs_bad/, cfg_*.json
end

-- Resident memory of this process in KiB (Linux).
local function rss_kb()
  local f = io.open('/proc/self/statm', 'r')
  if not f then return 0 end
  local pages = tonumber((f:read('*l') or ''):match('^%d+%s+(%d+)')) or 0
  f:close()
  return pages * 4
end

local function run_child()
  local ffi = require 'ffi'
  ffi.cdef 'unsigned int alarm(unsigned int seconds);'
  local G = require 'api_misuse_gen'
  local T = require 'api_misuse_targets'
  local L = require 'api_misuse_lab'
  G.cuda = ms.cuda.is_available()
  write_fixtures(ms)
  local api = T.discover(ms)
  local log = assert(io.open(opt.log, 'a'))
  local nthreads = ms.num_threads()
  local timeout = tonumber(opt.call_timeout) or 20
  local nlab = 0
  for _, m in pairs(api.labmethods) do nlab = nlab + #m end
  log:write(fmt('A %d functions, %d Tensor methods, %d nn classes, %d optimizers, %d lab functions, %d lab methods\n',
                #api.fn, #api.tmethod, #api.nnclass, #api.optclass, #api.labfn, nlab))
  for i = opt.from, opt.calls do
    math.randomseed(opt.seed * 1000003 + i)
    local call = T.make_call(api, ms)
    -- one log line per record: no tab, newline or other control byte (a NUL ends a line for io.lines)
    local esc = function(s)
      return (s:gsub('%c', function(c) return c == '\n' and '\\n' or c == '\t' and ' ' or ('\\%d'):format(c:byte()) end))
    end
    log:write(fmt('C %d %s\t%s%s\t%s\t%s\n', i, call.name, call.stmt and 's' or 'e', call.area == 'lab' and 'L' or '',
                  esc(call.setup), esc(call.call)))
    log:flush()
    ffi.C.alarm(math.min(call.timeout or timeout, timeout))   -- the call's time budget
    local t0 = ms.clock()
    -- `local r = f()`, not `return f()`: a tail call would drop the caller's frame
    local body = call.stmt and call.call or ('local r = ' .. call.call .. ' return r')
    local chunk, perr = loadstring(call.setup .. ' return function() ' .. body .. ' end', '=call')
    local ok, fn = false, perr
    if chunk then ok, fn = pcall(chunk) end
    if not ok then
      log:write(fmt('S %d %s\n', i, esc(tostring(fn))))
    else
      local ok2, err = pcall(fn)
      if not ok2 then
        local verdict, reason = classify(err, call)
        log:write(fmt('E %d %s\t%s\t%s\t%s\n', i, verdict, reason or '', call.area, esc(tostring(err))))
      elseif ms.is_tensor(err) and pcall(function() return err:numel() end) or L.printable(err) then
        -- a live tensor a call returned must print (summarised when large) like any other;
        -- so must the lab's objects (Result, ResultSet, Summary, Logger, ...)
        local okp, perr = pcall(tostring, err)
        if not okp then log:write(fmt('P %d %s\n', i, esc(tostring(perr)))) end
      end
    end
    if call.area == 'lab' and io.open('pwned') then   -- a title or label ran a gnuplot or shell command
      io.stderr:write('PROPERTY VIOLATED: a plot text or path ran a command (the file pwned exists)\n')
      os.remove('pwned')
      os.exit(3, true)   -- (closing the state: its tensors are freed, no false leak report)
    end
    fn = nil
    -- one full cycle: the finalizers of what the call left unreachable run now, under its
    -- name (their cdata is freed by the next call's cycle); a second cycle per call doubled
    -- the driver's time once the lab modules grew the heap
    collectgarbage()
    if ms.num_threads() ~= nthreads then pcall(ms.set_num_threads, nthreads) end
    ffi.C.alarm(0)
    local dt = ms.clock() - t0
    if dt > opt.slow then log:write(fmt('T %d %.3f\n', i, dt)) end   -- slow: close to looking like a hang
    if (i - opt.from) % 2000 == 0 then log:write(fmt('M %d %d\n', i, rss_kb())) end   -- leak watch
  end
  log:write('D\n')
  log:close()
end

---------------------------------------------------------------------------------------
-- parent: spawn children until every call ran, then report
---------------------------------------------------------------------------------------
local SIGNALS = { [134] = 'SIGABRT', [136] = 'SIGFPE', [135] = 'SIGBUS', [137] = 'SIGKILL (timeout or out of memory)',
                  [139] = 'SIGSEGV', [142] = 'hang: the call did not return (alarm)' }

local function read_all(path)
  local f = io.open(path, 'rb'); if not f then return '' end
  local s = f:read('*a'); f:close(); return s
end

local function death_kind(status, stderr)
  local prop = stderr:match('PROPERTY VIOLATED: ([^\n]*)')   -- a lab contract a call broke (api_misuse_lab.lua)
  if prop then return 'property violated: ' .. prop end
  if stderr:find('LeakSanitizer', 1, true) then
    return 'memory leaked by some call of the run (LeakSanitizer at exit; bisect with --from/--calls): ' ..
           (stderr:match('(SUMMARY: [^\n]*)') or '')
  end
  local san = stderr:match('(ERROR: AddressSanitizer[^\n]*)') or stderr:match('([^\n]*runtime error:[^\n]*)')
           or stderr:match('(ERROR: [%w]*Sanitizer[^\n]*)') or stderr:match('([^\n]*hard rss limit[^\n]*)')
  if san then return 'sanitizer: ' .. san end
  if SIGNALS[status] then return SIGNALS[status] end
  if stderr:find('api_misuse', 1, true) then   -- a Lua error in the driver, not the library
    return 'the fuzzer itself failed (fix tests/fuzz/api_misuse*.lua): ' .. (stderr:match('moonstep: ([^\n]*)') or '')
  end
  local last = stderr:match('([^\n]+)\n?$') or ''
  return fmt('exit status %d %s', status, last)
end

local function run_parent()
  local root = os.getenv('MOONSTEP_HOME') or (script_dir .. '/../..')
  local cwd = io.popen('pwd'):read('*l')
  local function abs(p) return p:sub(1, 1) == '/' and p or (cwd .. '/' .. p) end
  root = abs(root)
  local lib = os.getenv('MOONSTEP_LIB')
  local preload = os.getenv('LD_PRELOAD') or ''
  local asan = preload:find('asan', 1, true) ~= nil
  local tmp = io.popen('mktemp -d /tmp/ms-fuzz-api.XXXXXX'):read('*l')
  -- Two threads and two malloc arenas whatever the machine: on many cores the per-thread
  -- reservations alone would crowd the address-space limit below.
  local env = 'MOONSTEP_HOME=' .. shell_quote(root) .. ' MOONSTEP_FASHION_MNIST=' .. shell_quote(tmp .. '/fmnist') ..
              ' OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 MALLOC_ARENA_MAX=2 MOONSTEP_QUIET=1'
  if lib then env = env .. ' MOONSTEP_LIB=' .. shell_quote(abs(lib)) end
  local limit = 'ulimit -v 4000000;'      -- KiB: 4 GB of address space, so a 1 GB+ request fails
  if asan then                             -- ASan reserves terabytes of shadow: bound it its own way
    limit = ''
    -- detect_leaks: the child exits cleanly (LuaJIT finalises every tensor at exit), so what
    -- LeakSanitizer reports then is memory the library lost, e.g. on an error path
    env = env .. ' ASAN_OPTIONS=' .. shell_quote((os.getenv('ASAN_OPTIONS') or '') ..
      ':allocator_may_return_null=1:max_allocation_size_mb=1024:hard_rss_limit_mb=4096:detect_leaks=1')
  end
  local call_timeout = opt.call_timeout or 20   -- no legal call here takes 2 s, even sanitized
  local total_timeout = 120 + opt.calls * (asan and 2 or 1)
  local t0 = os.time()
  local calls, errors, unclear, setup_errors, api_line, lab_calls = 0, 0, 0, 0, '', 0
  local deaths, groups, srcs, areas, setup_msgs, slow, rss, unprintable = {}, {}, {}, {}, {}, {}, {}, {}
  local from, run_no = opt.from, 0
  while from <= opt.calls do
    run_no = run_no + 1
    local log, errf, statf = fmt('%s/log.%d', tmp, run_no), tmp .. '/stderr', tmp .. '/status'
    -- { } 2>/dev/null: the shell's own "Segmentation fault" line stays out of the output
    local cmd = fmt('{ (cd %s && %s exec env %s timeout -s KILL %d %s/bin/moonstep %s --child --seed %d ' ..
                    '--from %d --calls %d --call-timeout %d --slow %g --log %s) </dev/null >/dev/null 2>%s; echo $? > %s; } 2>/dev/null',
                    shell_quote(tmp), limit, env, total_timeout, shell_quote(root),
                    shell_quote(abs(arg[0])), opt.seed, from, opt.calls, call_timeout, opt.slow, shell_quote(log),
                    shell_quote(errf), shell_quote(statf))
    os.execute(cmd)
    local status = tonumber(read_all(statf):match('%d+')) or -1
    local stderr = read_all(errf)
    local last, done = nil, false
    local logf = io.open(log, 'r')
    for line in (logf and logf:lines() or function() end) do
      local tag = line:sub(1, 1)
      if tag == 'C' then
        local i, name, kind, setup, call = line:match('^C (%d+) ([^\t]+)\t(%a+)\t([^\t]*)\t(.*)$')
        last = tonumber(i); calls = calls + 1
        srcs[last] = { name = name, setup = setup, call = call, stmt = kind:sub(1, 1) == 's' }
        if kind:sub(2) == 'L' then lab_calls = lab_calls + 1 end
      elseif tag == 'E' then
        local i, verdict, reason, area, msg = line:match('^E (%d+) (%S+)\t([^\t]*)\t([^\t]*)\t(.*)$')
        errors = errors + 1
        if verdict == 'unclear' then
          unclear = unclear + 1
          local s = srcs[tonumber(i)]
          local g = groups[s.name] or { n = 0, area = area, reasons = {} }
          groups[s.name] = g
          g.n = g.n + 1
          local r = g.reasons[reason] or { n = 0, msg = unescape(msg), repro = reproducer(s.setup, s.call, s.stmt) }
          g.reasons[reason] = r
          r.n = r.n + 1
          areas[area] = (areas[area] or 0) + 1
        end
      elseif tag == 'S' then
        setup_errors = setup_errors + 1
        local i, msg = line:match('^S (%d+) (.*)$')
        local key = msg:gsub('0x%x+', '0x?')
        if not setup_msgs[key] then
          setup_msgs[key] = reproducer(srcs[tonumber(i)].setup, srcs[tonumber(i)].call, srcs[tonumber(i)].stmt)
          setup_msgs[#setup_msgs + 1] = key
        end
      elseif tag == 'T' then
        local i, dt = line:match('^T (%d+) (%S+)$')
        local src = srcs[tonumber(i)]
        slow[#slow + 1] = { dt = tonumber(dt), name = src.name, repro = reproducer(src.setup, src.call, src.stmt) }
      elseif tag == 'P' then
        local i, msg = line:match('^P (%d+) (.*)$')
        local src = srcs[tonumber(i)]
        unprintable[#unprintable + 1] = { name = src.name, msg = msg, repro = reproducer(src.setup, src.call, src.stmt) }
      elseif tag == 'M' then
        local i, kb = line:match('^M (%d+) (%d+)$')
        rss[#rss + 1] = { tonumber(i), tonumber(kb) }
      elseif tag == 'A' then api_line = line:sub(3)
      elseif tag == 'D' then done = true end
    end
    if logf then logf:close() end
    -- a sanitizer report (its allocation-failure WARNINGs are expected: allocator_may_return_null)
    local san = stderr:find('ERROR: %w*Sanitizer') or stderr:find('runtime error:', 1, true)
    if done and status == 0 and not san then break end
    if not last then
      io.stderr:write('api_misuse: the child failed to start (status ', status, '):\n', stderr, '\n')
      os.exit(2)
    end
    local s = srcs[last]
    local leak = stderr:find('LeakSanitizer', 1, true) and not stderr:find('PROPERTY VIOLATED', 1, true)
    deaths[#deaths + 1] = { index = last, name = leak and 'calls ' .. from .. '..' .. last or s.name,
                            kind = death_kind(status, stderr), at_exit = done,
                            repro = leak and fmt('bisect: %s --seed %d --from A --calls B (calls A..B)', arg[0], opt.seed)
                                         or reproducer(s.setup, s.call, s.stmt),
                            stderr = stderr:sub(stderr:find('ERROR: ', 1, true) or math.max(1, #stderr - 1500)):sub(1, 4000) }
    if done or #deaths >= opt.max_deaths then break end
    from = last + 1
  end
  if opt.keep then print('kept ' .. tmp) else os.execute('rm -rf ' .. shell_quote(tmp)) end

  -- report
  local names = {}
  for name in pairs(groups) do names[#names + 1] = name end
  table.sort(names, function(a, b) return groups[a].n > groups[b].n or (groups[a].n == groups[b].n and a < b) end)
  local share = errors > 0 and unclear / errors or 0
  print(fmt('api-misuse fuzz: seed %d, %d calls (%s), %s build, %d s', opt.seed, calls, api_line,
            asan and 'sanitizer' or 'normal', os.time() - t0))
  print(fmt('  %d errors raised, %d deaths, unclear errors %d (%.1f%%), %d calls with a failing setup (driver), %d lab calls',
            errors, #deaths, unclear, 100 * share, setup_errors, lab_calls))
  if #deaths > 0 or #names > 0 then
    print('  (reproducers run from the repository root; for calls on files, first write the fixtures with' ..
          ' bin/moonstep tests/fuzz/api_misuse.lua --fixtures DIR and run the reproducer inside DIR)')
  end
  for k = 1, math.min(5, #setup_msgs) do   -- the driver's own failures: a call it cannot build
    print(fmt('  setup failed: %s\n    %s', setup_msgs[k]:sub(1, 200), setup_msgs[setup_msgs[k]]:sub(1, 300)))
  end
  if #rss >= 3 then   -- resident memory over the run (a steady climb is a leak; the first sample is a warm-up)
    local parts = {}
    for k = 1, #rss, math.max(1, math.floor(#rss / 8)) do parts[#parts + 1] = fmt('%d: %d MB', rss[k][1], rss[k][2] / 1024) end
    parts[#parts + 1] = fmt('%d: %d MB', rss[#rss][1], rss[#rss][2] / 1024)
    print('  resident memory by call: ' .. concat(parts, ', '))
  end
  for k = 1, math.min(5, #unprintable) do
    local u = unprintable[k]
    print(fmt('  RESULT DOES NOT PRINT (%d in all) %s: %s\n    %s', #unprintable, u.name, u.msg:sub(1, 200), u.repro:sub(1, 300)))
  end
  table.sort(slow, function(a, b) return a.dt > b.dt end)
  for k = 1, math.min(3, #slow) do
    print(fmt('  slow call (%.1f s of the %d s allowed): %s\n    %s', slow[k].dt, call_timeout, slow[k].name, slow[k].repro:sub(1, 300)))
  end
  for _, d in ipairs(deaths) do
    print(fmt('DEATH at call %d%s %s: %s\n  repro: %s', d.index, d.at_exit and ' (at exit)' or '', d.name, d.kind, d.repro))
    local shown = 0      -- where it died: the report's frames (sanitizer) or last words
    for line in d.stderr:gmatch('[^\n]+') do
      if shown < 8 and (line:match('^%s*#%d') or line:match('SUMMARY') or line:match('runtime error')) then
        print('    | ' .. line:sub(1, 200)); shown = shown + 1
      end
    end
  end
  if #names > 0 then
    local by_area = {}
    for a, n in pairs(areas) do by_area[#by_area + 1] = a .. ' ' .. n end
    table.sort(by_area)
    print('unclear errors by area: ' .. concat(by_area, ', '))
    print(fmt('top unclear errors by function (%d of %d functions):', math.min(opt.top, #names), #names))
  end
  for k = 1, math.min(opt.top, #names) do
    local g = groups[names[k]]
    print(fmt('  %-28s %4d  [%s]', names[k], g.n, g.area))
    local rs = {}
    for reason, r in pairs(g.reasons) do rs[#rs + 1] = { reason, r } end
    table.sort(rs, function(a, b) return a[2].n > b[2].n end)
    for j = 1, math.min(3, #rs) do
      local r = rs[j][2]
      print(fmt('      %d x %s: %s\n        %s', r.n, rs[j][1], r.msg:sub(1, 160):gsub('\n.*', ''), r.repro:sub(1, 300)))
    end
  end
  if opt.summary then
    local f = assert(io.open(opt.summary, 'w'))
    local nf, nt, nn, no, lf, lm = api_line:match(
      '^(%d+) functions, (%d+) Tensor methods, (%d+) nn classes, (%d+) optimizers, (%d+) lab functions, (%d+) lab methods')
    f:write(fmt('return { calls = %d, errors = %d, unclear = %d, deaths = %d, setup_errors = %d, unprintable = %d, ' ..
                'api = { functions = %s, tensor_methods = %s, nn_classes = %s, optimizers = %s, lab_functions = %s, ' ..
                'lab_methods = %s }, areas = { lab = %d }, death_list = {',
                calls, errors, unclear, #deaths, setup_errors, #unprintable, nf or 0, nt or 0, nn or 0, no or 0,
                lf or 0, lm or 0, lab_calls))
    for _, d in ipairs(deaths) do f:write(fmt('%q, ', d.name .. ': ' .. d.kind .. ' -- ' .. d.repro)) end
    f:write('} }\n')
    f:close()
  end
  return #deaths == 0
end

if opt.fixtures then         -- --fixtures DIR: write the files that file-reading calls use
  os.execute('mkdir -p ' .. shell_quote(opt.fixtures))
  require 'api_misuse_lab'   -- (found through the relative package.path: before the chdir)
  local ffi = require 'ffi'
  ffi.cdef 'int chdir(const char *path);'
  ffi.C.chdir(opt.fixtures)
  write_fixtures(ms)
  print('fixtures written to ' .. opt.fixtures .. '; run reproducers of file calls there, with ' ..
        'MOONSTEP_FASHION_MNIST=' .. opt.fixtures .. '/fmnist MOONSTEP_QUIET=1 for lab calls')
elseif opt.child then
  run_child()
else
  local ok = run_parent()
  os.exit(ok and 0 or 1)
end
