-- docs/ is the API reference; this spec keeps it in sync with the package.
--
-- THE PUBLIC API (walked at test time, never listed by hand):
--   * ms.<k>: every field of `ms` (rawget, after forcing the lazy submodules below with
--     pcall: a module that does not exist yet is skipped) whose value is a function or a
--     callable table; k does not start with '_'.
--   * ms.<s>.<k>: the same over each submodule table ms.<s> (nn, optim, data, metrics,
--     cuda, linalg, schedule, experiment, plot, landscape, objectives, progress, and any
--     other table field `ms` itself sets that is not a class). Other packages the lazy
--     loader may have loaded by the time this runs (ms.repl, ms.json: internal) are
--     skipped, so the walk does not depend on what other specs touched.
--   * one level further, inside a table ms.<s>.<V> (a class such as ms.optim.SPSA or
--     ms.experiment.Logger, a namespace such as ms.nn.functional): its own public
--     functions. A function whose first parameter is `self` is a method, entry `V:k`;
--     any other is a static function, entry `ms.<s>.<V>.<k>` (or `V.k`). A class's `new`
--     is its constructor (the class is called) and is not listed; a method the class
--     inherits from its base (nn.Module, optim.Optimizer, schedule.Schedule, data.Dataset)
--     is documented once, on the base.
--   * the methods of the base classes: Tensor (ms.Tensor), Module (ms.nn.Module),
--     Optimizer (ms.optim.Optimizer), Dataset (ms.data.Dataset), Schedule
--     (ms.schedule.Schedule): every own public function, entry `Class:k`, `Class.k` or
--     `var:k` with the instance name the docs use (t, m, opt, ds, s).
--   Names starting with '_' are private, as are metamethods; values that are not
--   functions (constants, option lists) are not required.
--
-- THE MATCHING RULE: a name is documented when it is the leading token ([%w_.:]+) of an
-- inline code span in the HEAD of an entry line of a docs/*.md file (fenced code blocks
-- excluded). Entry lines and their heads:
--   heading    `### ...`      the whole heading (a heading without code spans: its first word)
--   table row  `| ... | ...`  the first cell
--   list item  `- ...`        the text before the first ' —' (em dash), else its first code span
-- So `ms.nn.Linear(in, out [, opts])` documents ms.nn.Linear and `Tensor:narrow(dim, start,
-- len)` documents Tensor:narrow; a mention inside a description does not count.
-- The C ABI: every ms_* function declared in runtime/include/moonstep.h and
-- moonstep_optim.h (between the MS_CDEF markers) must appear as a whole word in a code
-- span of an entry head in docs/c_api.md.
-- Each test reports every missing name in one failure message.
local ms = require 'moonstep'
local check = require 'moonstep.check'
local H = require 'helper'

local root = os.getenv('MOONSTEP_HOME') or '.'
local docs_dir = root .. '/docs'

local SUBMODULES = { 'nn', 'autograd', 'dist', 'optim', 'data', 'metrics', 'cuda', 'linalg', 'schedule',
                     'experiment', 'plot', 'landscape', 'objectives', 'progress' }
-- base classes: path in ms, the class name and instance name the docs use
local BASES = {
  { path = { 'Tensor' }, name = 'Tensor', var = 't' },
  { path = { 'nn', 'Module' }, name = 'Module', var = 'm' },
  { path = { 'optim', 'Optimizer' }, name = 'Optimizer', var = 'opt' },
  { path = { 'data', 'Dataset' }, name = 'Dataset', var = 'ds' },
  { path = { 'schedule', 'Schedule' }, name = 'Schedule', var = 's' },
}
local PAGES = { 'README', 'tensor', 'autograd', 'dist', 'nn', 'optim', 'schedule', 'data', 'linalg', 'cuda', 'repl',
                'experiment', 'plot', 'c_api' }

local read = H.try_read

local function sorted_keys(t)
  local r = {}
  for k in pairs(t) do if type(k) == 'string' then r[#r + 1] = k end end
  table.sort(r)
  return r
end

local function public(k) return type(k) == 'string' and not k:match('^_') end
local function callable(v) return check.is_callable(v) end
local function first_param(f)
  return type(f) == 'function' and debug.getlocal(f, 1) or nil
end

-- rawget along a path from ms
local function at(path)
  local v = ms
  for _, k in ipairs(path) do
    if type(v) ~= 'table' then return nil end
    v = rawget(v, k)
  end
  return v
end

-- The required names: list of { name = canonical, spellings = { ... } }.
local function public_api()
  for _, s in ipairs(SUBMODULES) do pcall(function() return ms[s] end) end
  local out, seen = {}, {}
  local function add(name, spellings)
    if seen[name] then return end
    seen[name] = true
    local sp = { name }
    for _, x in ipairs(spellings or {}) do sp[#sp + 1] = x end
    out[#out + 1] = { name = name, spellings = sp }
  end
  local base_tables = {}
  for _, b in ipairs(BASES) do
    local cls = at(b.path)
    if type(cls) == 'table' then base_tables[cls] = b end
  end
  -- the base class v descends from (its metatables' __index chain reaches it), or nil
  local function base_of(v)
    local c = v
    for _ = 1, 16 do
      local mt = type(c) == 'table' and getmetatable(c)
      c = type(mt) == 'table' and rawget(mt, '__index') or nil
      if type(c) ~= 'table' then return nil end
      if base_tables[c] then return c end
    end
  end
  -- members of a table V found at ms.<s>.<vname>
  local function walk_class(prefix, vname, v)
    local base = base_of(v)
    for _, k in ipairs(sorted_keys(v)) do
      local f = rawget(v, k)
      if public(k) and type(f) == 'function' and not (k == 'new' and callable(v)) then
        if first_param(f) == 'self' then
          if not (base and check.field(base, k) ~= nil) then
            -- a protocol method every subclass overrides (forward, backward) may be
            -- documented once on the base: m:forward
            local alt = base and { base_tables[base].var .. ':' .. k } or {}
            alt[#alt + 1] = prefix .. ':' .. k
            add(vname .. ':' .. k, alt)
          end
        else
          add(prefix .. '.' .. k, { vname .. '.' .. k })
        end
      end
    end
  end
  local function walk_module(prefix, mod)
    for _, k in ipairs(sorted_keys(mod)) do
      local v = rawget(mod, k)
      if public(k) then
        if callable(v) then add(prefix .. '.' .. k) end
        if type(v) == 'table' and not base_tables[v] and not check.is_tensor(v) then
          walk_class(prefix .. '.' .. k, k, v)
        end
      end
    end
  end
  local listed = {}
  for _, s in ipairs(SUBMODULES) do listed[s] = true end
  for _, k in ipairs(sorted_keys(ms)) do
    local v = rawget(ms, k)
    -- a lazily loaded package that is not a listed submodule (ms.repl, ms.json: loaded
    -- only if something touched them) is internal: skipping it keeps the walk the same
    -- whatever other specs of the run have loaded
    local lazy = v ~= nil and package.loaded['moonstep.' .. k] == v and not listed[k]
    if public(k) and not lazy then
      if callable(v) then add('ms.' .. k) end
      if type(v) == 'table' and not base_tables[v] then walk_module('ms.' .. k, v) end
    end
  end
  for cls, b in pairs(base_tables) do
    for _, k in ipairs(sorted_keys(cls)) do
      if public(k) and type(rawget(cls, k)) == 'function' and not (k == 'new' and callable(cls)) then
        add(b.name .. ':' .. k, { b.name .. '.' .. k, b.var .. ':' .. k })
      end
    end
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

-- Entry heads of a Markdown text: list of strings (fenced blocks skipped).
local function entry_heads(text)
  local heads, fenced = {}, false
  for line in (text .. '\n'):gmatch('([^\n]*)\n') do
    if line:match('^%s*```') or line:match('^%s*~~~') then
      fenced = not fenced
    elseif not fenced then
      local h = line:match('^#+%s+(.*)$')
      if h then
        if not h:find('`', 1, true) then h = '`' .. (h:match('^(%S+)') or '') .. '`' end
        heads[#heads + 1] = h
      elseif line:match('^%s*|') then
        local cell = line:match('^%s*|([^|]*)')
        -- a code span may hold '|' ( `a | b` ): take the cell up to the first '|' outside spans
        local i, inside, buf = 1, false, {}
        local rest = line:match('^%s*|(.*)$')
        while i <= #rest do
          local c = rest:sub(i, i)
          if c == '`' then inside = not inside end
          if c == '|' and not inside then break end
          buf[#buf + 1] = c
          i = i + 1
        end
        cell = table.concat(buf)
        heads[#heads + 1] = cell
      else
        local item = line:match('^%s*[-*+]%s+(.*)$') or line:match('^%s*%d+%.%s+(.*)$')
        if item then
          local dash = item:find(' —', 1, true)
          if dash then heads[#heads + 1] = item:sub(1, dash - 1)
          else heads[#heads + 1] = item:match('^[^`]*(`[^`]+`)') or '' end
        end
      end
    end
  end
  return heads
end

local function spans(head)
  local r = {}
  for s in head:gmatch('`([^`]+)`') do r[#r + 1] = s end
  return r
end

-- documented tokens over every page
local function documented()
  local set = {}
  for _, page in ipairs(PAGES) do
    local text = read(docs_dir .. '/' .. page .. '.md')
    if text then
      for _, head in ipairs(entry_heads(text)) do
        for _, s in ipairs(spans(head)) do
          local tok = s:match('^[%w_.:]+')
          if tok then set[tok] = true end
        end
      end
    end
  end
  return set
end

-- ms_* function names declared in a header's MS_CDEF section
local function c_functions(path)
  local text = assert(read(path), 'cannot read ' .. path)
  local body = text:match('/%* MS_CDEF_BEGIN %*/(.-)/%* MS_CDEF_END %*/') or text
  body = body:gsub('/%*.-%*/', ' '):gsub('//[^\n]*', ' ')
  local names, seen = {}, {}
  -- a declaration: a name followed by '(' that is not a function pointer "(*name)"
  for name in body:gmatch('(ms_[%w_]+)%s*%(') do
    if not seen[name] then seen[name] = true; names[#names + 1] = name end
  end
  -- drop function-pointer typedef names: "(*ms_x)("
  local out = {}
  for _, n in ipairs(names) do
    if not body:find('%(%s*%*%s*' .. n .. '%s*%)') then out[#out + 1] = n end
  end
  return out
end

local function fail_list(what, missing)
  assert.is_true(#missing == 0,
    ('%d %s:\n  %s'):format(#missing, what, table.concat(missing, '\n  ')))
end

describe('docs', function()
  it('has every page, and the index links each one', function()
    local index = read(docs_dir .. '/README.md') or ''
    local missing = {}
    for _, p in ipairs(PAGES) do
      if not read(docs_dir .. '/' .. p .. '.md') then missing[#missing + 1] = 'docs/' .. p .. '.md (missing)'
      elseif p ~= 'README' and not index:find('(' .. p .. '.md)', 1, true) then
        missing[#missing + 1] = 'docs/README.md does not link ' .. p .. '.md'
      end
    end
    fail_list('page problems', missing)
  end)

  it('documents every public Lua function', function()
    local api, doc = public_api(), documented()
    assert.is_true(#api > 300, 'the walk found only ' .. #api .. ' public names')
    local missing = {}
    for _, e in ipairs(api) do
      local ok = false
      for _, s in ipairs(e.spellings) do if doc[s] then ok = true; break end end
      if not ok then missing[#missing + 1] = e.name end
    end
    fail_list('public names without a docs entry (see the matching rule in tests/docs_spec.lua)', missing)
  end)

  it('documents no ms.* name that does not exist', function()
    for _, s in ipairs(SUBMODULES) do pcall(function() return ms[s] end) end
    local stale = {}
    for tok in pairs(documented()) do
      if tok:match('^ms%.[%w_.]+$') then
        local v = ms
        for part in tok:sub(4):gmatch('[^.]+') do
          v = type(v) == 'table' and check.field(v, part) or nil
        end
        if v == nil then stale[#stale + 1] = tok end
      end
    end
    table.sort(stale)
    fail_list('documented names that the package does not have', stale)
  end)

  it('documents every optimizer option (and no other)', function()
    local text = read(docs_dir .. '/optim.md') or ''
    local problems = {}
    for _, name in ipairs(sorted_keys(ms.optim)) do
      local cls = rawget(ms.optim, name)
      local accepted = type(cls) == 'table' and rawget(cls, 'accepted')
      if accepted then
        -- the section: from the heading naming ms.optim.<name> to the next heading of its level
        local section
        local lines, start, level = {}, nil, nil
        for line in (text .. '\n'):gmatch('([^\n]*)\n') do lines[#lines + 1] = line end
        for i, line in ipairs(lines) do
          local hashes, h = line:match('^(#+)%s+(.*)$')
          if start == nil and h and h:find('`ms.optim.' .. name .. '[(`{ ]') then
            start, level = i, #hashes
          elseif start and hashes and #hashes <= level then
            section = table.concat(lines, '\n', start, i - 1)
            break
          end
        end
        if start and not section then section = table.concat(lines, '\n', start) end
        if not section then
          problems[#problems + 1] = 'ms.optim.' .. name .. ': no section'
        else
          local set = {}
          for _, k in ipairs(accepted) do set[k] = true end
          local spans_in = {}
          for s in section:gmatch('`([^`]+)`') do spans_in[s:match('^[%w_]+') or ''] = true end
          for _, k in ipairs(accepted) do
            if not spans_in[k] then problems[#problems + 1] = 'ms.optim.' .. name .. ': option ' .. k .. ' undocumented' end
          end
          -- rows of its options tables (| `key` | default | ...) must be accepted keys
          for row in section:gmatch('\n|%s*`([%w_]+)`%s*|') do
            if not set[row] then problems[#problems + 1] = 'ms.optim.' .. name .. ': documents option ' .. row .. ', which it does not accept' end
          end
        end
      end
    end
    fail_list('optimizer option problems', problems)
  end)

  it('documents every function of the C ABI', function()
    local text = read(docs_dir .. '/c_api.md') or ''
    local words = {}
    for _, head in ipairs(entry_heads(text)) do
      for _, s in ipairs(spans(head)) do
        for w in s:gmatch('ms_[%w_]+') do words[w] = true end
      end
    end
    local missing, declared = {}, {}
    for _, h in ipairs { 'moonstep.h', 'moonstep_optim.h' } do
      for _, n in ipairs(c_functions(root .. '/runtime/include/' .. h)) do
        declared[n] = true
        if not words[n] then missing[#missing + 1] = n .. ' (' .. h .. ')' end
      end
    end
    assert.is_true(next(declared) ~= nil, 'no ms_* declarations parsed')
    fail_list('C functions without an entry in docs/c_api.md', missing)
  end)
end)
