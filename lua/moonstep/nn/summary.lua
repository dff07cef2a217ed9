-- nn.summary — model:summary(input_shape [, opts]), Keras' model.summary() / torchinfo's
-- summary(): one forward pass on a zero input, then per layer its name, type, output
-- shape and parameter count, and the totals.
--
--   model:summary{784}                 input_shape WITHOUT the batch dim: the input is
--                                      zeros of {1, 784} (opts.batch_size = n: {n, 784})
--   model:summary{1, 28, 28}           a CNN: zeros of {1, 1, 28, 28}
--   model:summary(x)                   a tensor: its shape WITH the batch dim (and its dtype
--                                      and device); its values are not used
--   model:summary()                    the shape inferred from a first Linear (in_features)
--                                      or Embedding ({1}: one index)
--   opts: batch_size (default 1), dtype ('float32' | 'float64'; default the model's;
--         an Embedding first gets int64 ones), print (default true: the text is printed)
--
-- Returns a table: rows = { {name = '2.1', type = 'Linear', depth =, output_shape = {...},
-- params =, buffers =}, ... } (every module, depth first; name '' is the model itself),
-- total_params (= trainable_params: every parameter is trained), buffers (non-trainable
-- elements: BatchNorm's running statistics), param_bytes (the parameter arena; the
-- gradient arena is the same size), activation_bytes (the outputs of every layer for this
-- batch), input_shape, text, printed (true when it was printed: the REPL then does not
-- echo it again as the value of the same chunk); tostring(result) is the text.
-- The pass runs in evaluation mode and leaves the model as it was: each module's mode
-- (train/evaluate) and fields (its last input and output: a backward still pairs with the
-- forward before the summary), BatchNorm's statistics (evaluation mode reads them only)
-- and the global random generator's state are restored, also when the pass fails.
local ms = require 'moonstep'
local check = require 'moonstep.check'

local MAX_ELEMENTS = 2 ^ 27             -- a larger input is refused (a misuse, not a summary)
local SIZE = { float32 = 4, float64 = 8, int64 = 8, uint8 = 1 }

local Module                            -- set by the installer below

-- Every module of the tree, depth first: {module, name, depth}; anything else in the
-- tree (a script may have written m.modules[2] = 5) is an error naming who.
local MAX_DEPTH = 200
local function walk(who, m, name, depth, out, path)
  path = path or {}
  local what = name == '' and 'the model' or ('module ' .. name)
  if depth > MAX_DEPTH then
    check.fail('%s: the model is nested deeper than %d levels (at module %s), expected a tree of modules', who, MAX_DEPTH, name)
  end
  if type(m) == 'table' and path[m] then
    check.fail('%s: %s is %s, which contains it (a cycle), expected a tree of modules', who, what,
               path[m] == '' and 'the model itself' or ('module ' .. path[m]))
  end
  if not Module.is_module(m) then
    if type(m) == 'table' and type(check.field(m, 'forward')) == 'function' then
      check.fail('%s: %s (%s) has no _params or modules table (overwritten?), expected a module as built',
                 who, what, check.describe(m))
    end
    check.fail('%s: %s is %s, expected a module', who, what, check.describe(m))
  end
  -- a module met a second time (shared): listed, its parameters counted once
  out.first = out.first or {}
  out[#out + 1] = { m, name, depth, shared = out.first[m] }
  if out.first[m] == nil then out.first[m] = name end
  path[m] = name
  for i, c in ipairs(rawget(m, 'modules')) do
    walk(who, c, name == '' and tostring(i) or (name .. '.' .. i), depth + 1, out, path)
  end
  path[m] = nil
  return out
end

local function first_leaf(m)
  local children = rawget(m, 'modules')
  if type(children) == 'table' and children[1] then return first_leaf(children[1]) end
  return m
end

local function own_count(m, list)
  local n = 0
  local entries = rawget(m, list)
  for _, e in ipairs(type(entries) == 'table' and entries or {}) do
    local t = type(e) == 'table' and (rawget(e, 'param') or rawget(e, 'tensor'))
    if check.is_tensor(t) and not check.is_freed(t) then n = n + t:numel() end
  end
  return n
end

-- 1234567 -> '1,234,567'
local function commas(n)
  local s = ('%d'):format(n)
  local out = s:reverse():gsub('(%d%d%d)', '%1,'):reverse()
  return (out:gsub('^,', ''))
end

-- The first live parameter of the tree (its dtype and device are the model's), read
-- without building an arena.
local function first_param(mods)
  for _, e in ipairs(mods) do
    local ps = rawget(e[1], '_params')
    for _, entry in ipairs(type(ps) == 'table' and ps or {}) do
      local t = type(entry) == 'table' and rawget(entry, 'param')
      if check.is_tensor(t) and not check.is_freed(t) then return t end
    end
  end
end

local function shape_text(shape)
  if type(shape) ~= 'table' then return tostring(shape) end
  return '[' .. table.concat(shape, ', ') .. ']'
end

-- The input: zeros (ones of int64 for an Embedding) of the resolved shape.
local function make_input(self, who, input_shape, opts, p)
  local leaf = first_leaf(self)
  local dtype = opts.dtype or (p and p.dtype) or 'float32'
  local device = p and p.device or 'cpu'
  local int_input = leaf.__name == 'Embedding'
  if check.is_tensor(input_shape) then
    check.tensor(who, 'input_shape', input_shape)
    local x = input_shape
    local make = (x.dtype == 'int64' or x.dtype == 'uint8') and ms.ones or ms.zeros   -- (indices are 1-based)
    return check.protect(who, make, x:shape(), { dtype = x.dtype, device = x.device })
  end
  if input_shape == nil then
    if leaf.__name == 'Linear' then input_shape = { leaf.in_features }
    elseif int_input then input_shape = { 1 }
    else
      check.fail('%s: input_shape is missing and cannot be inferred (the first layer is %s), expected the shape of one example, e.g. model:summary{1, 28, 28}',
                 who, tostring(leaf.__name))
    end
  end
  if type(input_shape) == 'number' then input_shape = { input_shape } end
  if type(input_shape) ~= 'table' or getmetatable(input_shape) ~= nil or #input_shape == 0 or #input_shape > 7 then
    check.fail('%s: input_shape is %s, expected the shape of one example without the batch dimension (a list of 1 to 7 sizes such as {784} or {1, 28, 28}) or a tensor',
               who, check.describe(input_shape))
  end
  for k in pairs(input_shape) do
    if type(k) ~= 'number' or k < 1 or k > #input_shape or k ~= math.floor(k) then
      check.fail('%s: input_shape has key %s, expected a list of sizes', who, check.describe(k))
    end
  end
  local shape, n = { opts.batch_size or 1 }, opts.batch_size or 1
  for i, s in ipairs(input_shape) do
    shape[i + 1] = check.integer(who, ('input_shape[%d]'):format(i), s, 1, MAX_ELEMENTS)
    n = n * s
  end
  if n > MAX_ELEMENTS then
    check.fail('%s: the input %s has %.0f elements, expected at most %d', who, shape_text(shape), n, MAX_ELEMENTS)
  end
  if int_input then return check.protect(who, ms.ones, shape, { dtype = 'int64', device = device }) end
  return check.protect(who, ms.zeros, shape, { dtype = dtype, device = device })
end

-- Shallow copies of every module's fields (restored after the pass).
local function snapshot(mods)
  local saved = {}
  for i, e in ipairs(mods) do
    local copy = {}
    for k, v in next, e[1] do copy[k] = v end
    saved[i] = copy
  end
  return saved
end

local function restore(mods, saved)
  for i, e in ipairs(mods) do
    local m, copy = e[1], saved[i]
    local extra = {}
    -- (an arena built meanwhile stays: the parameters were re-pointed into it)
    for k in next, m do
      if copy[k] == nil and k ~= '_arena' and k ~= '_in_arena' and not (type(k) == 'string' and k:match('^grad_')) then
        extra[#extra + 1] = k
      end
    end
    for _, k in ipairs(extra) do rawset(m, k, nil) end
    for k, v in next, copy do rawset(m, k, v) end
  end
end

local function render(r)
  local rows = { { 'Layer (type)', 'Output shape', 'Param #' } }
  for _, row in ipairs(r.rows) do
    -- (indentation capped: the dotted name already shows the depth)
    local label = ('  '):rep(math.min(row.depth, 8)) .. (row.name ~= '' and (row.name .. '  ') or '') .. row.type
    rows[#rows + 1] = { label, row.output_shape and shape_text(row.output_shape) or '(not run)',
                        row.container and '' or commas(row.params) }
  end
  local w = { 0, 0, 0 }
  for _, row in ipairs(rows) do
    for c = 1, 3 do w[c] = math.max(w[c], #row[c]) end
  end
  local width = w[1] + w[2] + w[3] + 6
  local lines = {}
  -- padded by hand: string.format refuses widths over 99
  local function add(row)
    lines[#lines + 1] = row[1] .. (' '):rep(w[1] - #row[1] + 3) .. row[2] .. (' '):rep(w[2] - #row[2] + 3)
                        .. (' '):rep(w[3] - #row[3]) .. row[3]
    lines[#lines] = lines[#lines]:gsub('%s+$', '')
  end
  add(rows[1])
  lines[#lines + 1] = ('='):rep(width)
  for i = 2, #rows do add(rows[i]) end
  lines[#lines + 1] = ('='):rep(width)
  lines[#lines + 1] = ('Total parameters: %s (trainable: %s)%s'):format(commas(r.total_params), commas(r.trainable_params),
    r.buffers > 0 and (('; buffers (non-trainable): %s'):format(commas(r.buffers))) or '')
  lines[#lines + 1] = ('Parameter arena: %s bytes (%s, %s); the gradient arena is the same size'):format(
    commas(r.param_bytes), r.dtype, r.device)
  lines[#lines + 1] = ('Input %s; layer outputs: %s bytes'):format(shape_text(r.input_shape), commas(r.activation_bytes))
  return table.concat(lines, '\n')
end

local Result = { __name = 'summary' }
Result.__index = Result
Result.__tostring = function(r) return r.text end

local function summary(self, input_shape, opts)
  local who = tostring(self.__name) .. '.summary'
  opts = check.options(who, opts, { 'batch_size', 'dtype', 'print' })
  if opts.batch_size ~= nil then check.integer(who, 'batch_size', opts.batch_size, 1, MAX_ELEMENTS) end
  if opts.dtype ~= nil then check.oneof(who, 'dtype', opts.dtype, { 'float32', 'float64' }) end
  if opts.print ~= nil then check.boolean(who, 'print', opts.print) end
  local mods = walk(who, self, '', 0, {})
  for _, e in ipairs(mods) do e[1]:_check_alive(who) end
  local p = first_param(mods)
  local x = make_input(self, who, input_shape, opts, p)
  local saved = snapshot(mods)
  local rng = ms.rng_state()
  for _, e in ipairs(mods) do rawset(e[1], 'output', nil); rawset(e[1], 'training', false) end
  local ok, err = pcall(self.forward, self, x)
  local outputs = {}
  for i, e in ipairs(mods) do outputs[i] = rawget(e[1], 'output') end
  restore(mods, saved)
  ms.set_rng_state(rng)
  if not ok then
    -- the layer that failed: the first one (in order) that left no output
    local at = ''
    for i, e in ipairs(mods) do
      local children = rawget(e[1], 'modules')
      if not (type(children) == 'table' and #children > 0) and not check.is_tensor(outputs[i]) then
        local okn, n = pcall(function() return tostring(e[1].__name) end)
        if e[2] ~= '' then at = (' at layer %s (%s)'):format(e[2], okn and n or '?') end
        break
      end
    end
    local okm, msg = pcall(tostring, err)
    check.fail('%s: the forward pass on a zero input of shape %s failed%s: %s', who, shape_text(x:shape()), at,
               ((okm and type(msg) == 'string' and msg or 'an error object'):gsub('^[^:\n]*:%d+: ', '')))
  end
  local r = setmetatable({ rows = {}, input_shape = x:shape(), total_params = 0, buffers = 0, activation_bytes = 0 }, Result)
  for i, e in ipairs(mods) do
    local m, out = e[1], outputs[i]
    local extra = ''
    local okr, s = pcall(m.extra_repr, m)
    if okr and type(s) == 'string' and s ~= '' then extra = '(' .. s .. ')' end
    local children = rawget(m, 'modules')
    local row = { name = e[2], type = tostring(m.__name) .. extra, depth = e[3],
                  params = e.shared and 0 or own_count(m, '_params'), buffers = e.shared and 0 or own_count(m, '_buffers'),
                  container = type(children) == 'table' and #children > 0 or nil, shared = e.shared }
    if e.shared then row.type = row.type .. (' (shared: counted at %s)'):format(e.shared == '' and 'the model' or e.shared) end
    if check.is_tensor(out) and not check.is_freed(out) then
      row.output_shape = out:shape()
      if not row.container then r.activation_bytes = r.activation_bytes + out:numel() * (SIZE[out.dtype] or 4) end
    end
    r.total_params = r.total_params + row.params
    r.buffers = r.buffers + row.buffers
    r.rows[i] = row
  end
  r.trainable_params = r.total_params
  r.dtype, r.device = p and p.dtype or x.dtype, p and p.device or x.device
  r.param_bytes = r.total_params * (SIZE[r.dtype] or 4)
  r.text = render(r)
  if opts.print ~= false then
    print(r.text)
    r.printed = true
    -- the REPL does not echo it a second time when it is the chunk's value
    local repl = package.loaded['moonstep.repl']
    r._repl_chunk = type(repl) == 'table' and rawget(repl, 'chunk') or nil
  end
  return r
end

-- Installs Module:summary (nn/Module.lua calls this with the Module class).
return function(cls)
  Module = cls
  function Module:summary(input_shape, opts) return summary(self, input_shape, opts) end
end
