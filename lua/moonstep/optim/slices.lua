-- optim.slices — the slice table an optimizer hands the fused kernels, and parameter
-- groups.
--
--   slices.assign(who, entries, groups, hyper_keys) -> group index (1-based) per entry
--   slices.table(arena, group_of, ngroups)          -> a SliceTable
--   st.ct                                           -> ms_slice_table * for the C ABI
--   st.nslices, st.ngroups, st.entries              -> one slice per parameter tensor
--
-- A group is a table { match = 'bias|norm', kind = 'bias', <hyper-parameter> = value,
-- lr_scale = s }: `match` is one or more Lua patterns separated by '|', each tested
-- against the parameter's name (e.g. '1.weight', 'fc.bias') and its kind ('weight',
-- 'bias', 'norm'); `kind` restricts to a kind (or a list of kinds). A parameter joins
-- the first group that matches; the others form the default group (group 1, the
-- optimizer's own values). A group that matches no parameter is an error (a typo).
local ffi = require 'ffi'
local ms = require 'moonstep'
local check = require 'moonstep.check'

local M = {}

local KIND = { weight = 0, bias = 1, norm = 2 }

local function kinds_of(who, i, kind)
  if kind == nil then return nil end
  local list = type(kind) == 'table' and kind or { kind }
  local set = {}
  for _, k in ipairs(list) do
    if KIND[k] == nil then
      check.fail("%s: groups[%d].kind is %s, expected 'weight', 'bias', 'norm' or a list of them",
                 who, i, check.describe(k))
    end
    set[k] = true
  end
  return set
end

local function alternatives(who, i, match)
  if match == nil then return nil end
  if type(match) ~= 'string' or match == '' then
    check.fail("%s: groups[%d].match is %s, expected a name pattern such as 'bias|norm'",
               who, i, check.describe(match))
  end
  local alts = {}
  for alt in (match .. '|'):gmatch('([^|]*)|') do
    if alt == '' then check.fail("%s: groups[%d].match %q has an empty alternative", who, i, match) end
    local ok, err = pcall(string.find, '', alt)
    if not ok then
      check.fail('%s: groups[%d].match %q is not a valid Lua pattern (%s)', who, i, match,
                 tostring(err):gsub('^.-: ', ''))
    end
    alts[#alts + 1] = alt
  end
  return alts
end

-- Which group (1 = default, 1 + i = groups[i]) each entry joins. hyper_keys: the
-- hyper-parameters a group may set (the optimizer's), besides match, kind, lr_scale.
function M.assign(who, entries, groups, hyper_keys)
  local accepted = { 'match', 'kind', 'lr_scale' }
  for k in pairs(hyper_keys) do accepted[#accepted + 1] = k end
  local tests = {}
  for i, g in ipairs(groups) do
    check.options(('%s: groups[%d]'):format(who, i), g, accepted)
    if g.match == nil and g.kind == nil then
      check.fail('%s: groups[%d] has neither match nor kind, expected one of them to say which parameters it holds',
                 who, i)
    end
    tests[i] = { alts = alternatives(who, i, g.match), kinds = kinds_of(who, i, g.kind) }
  end
  local group_of, used = {}, {}
  for e, entry in ipairs(entries) do
    group_of[e] = 1
    for i, t in ipairs(tests) do
      local ok = not t.kinds or t.kinds[entry.kind or 'weight']
      if ok and t.alts then
        ok = false
        for _, alt in ipairs(t.alts) do
          if entry.name:find(alt) or (entry.kind or 'weight') == alt then ok = true; break end
        end
      end
      if ok then group_of[e], used[i] = i + 1, true; break end
    end
  end
  for i, g in ipairs(groups) do
    if not used[i] then
      local names = {}
      for e = 1, math.min(#entries, 6) do names[e] = entries[e].name end
      check.fail('%s: groups[%d] (match = %s, kind = %s) matches no parameter that an earlier group has not taken (the parameters are %s%s)',
                 who, i, check.describe(g.match), check.describe(g.kind), table.concat(names, ', '),
                 #entries > 6 and ', ...' or '')
    end
  end
  return group_of
end

local SliceTable = {}
SliceTable.__index = SliceTable

-- One slice per parameter tensor of the arena (a ParamSet), in arena order.
function M.table(arena, group_of, ngroups)
  local entries = arena.entries
  local n = #entries
  if n == 0 then   -- an arena without entries: one empty slice
    entries = { { name = 'arena', offset = 0, numel = arena.flat:numel(), kind = 'weight' } }
    n = 1
  end
  local slices = ffi.new('ms_slice[?]', n)
  for i, e in ipairs(entries) do
    local s = slices[i - 1]
    s.offset, s.count = e.offset, e.numel
    s.group, s.kind = (group_of[i] or 1) - 1, KIND[e.kind or 'weight'] or 0
  end
  local st = setmetatable({ slices = slices, nslices = n, ngroups = ngroups, entries = entries,
                            ct = ffi.new('ms_slice_table[1]') }, SliceTable)
  st.ct[0].slices, st.ct[0].nslices, st.ct[0].ngroups = slices, n, ngroups
  st:to_device(arena.flat.device)
  return st
end

-- GPU arenas need the table in device memory: offsets[n + 1], then groups[n].
function SliceTable:to_device(device)
  if device == self.device then return self end
  self.device, self.device_copy = device, nil
  self.ct[0].device = nil
  if device == 'cuda' then
    local list = {}
    for i = 0, self.nslices - 1 do list[#list + 1] = tonumber(self.slices[i].offset) end
    local last = self.slices[self.nslices - 1]
    list[#list + 1] = tonumber(last.offset + last.count)
    for i = 0, self.nslices - 1 do list[#list + 1] = self.slices[i].group end
    self.device_copy = ms.tensor(list, { dtype = 'int64' }):to('cuda')
    self.ct[0].device = ffi.cast('const int64_t *', require('moonstep.tensor').address(self.device_copy, 'optimizer'))
  end
  return self
end

M.SliceTable = SliceTable
return M
