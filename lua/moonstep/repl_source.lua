-- moonstep.repl_source — what the REPL does to the text of a chunk (no evaluation here):
--   tokens(src)                 Lua tokens {kind, text, first, last}, comments skipped
--   globalize_locals(src)       `local x = 1` at depth 0 -> `x = 1` (top-level locals
--                               survive into later lines as session variables)
--   one_line(src)               a multi-line chunk as one history entry that runs the same
--                               when recalled: newlines -> spaces, `--` comments dropped
--                               (a newline inside a long string [[...]] is kept)
local M = {}

-- Yields the tokens of Lua source as {kind, text, start, stop}; kind is 'name',
-- 'string', 'number' or 'op'. Comments are skipped.
function M.tokens(src)
  local out, i, n = {}, 1, #src
  while i <= n do
    local c = src:sub(i, i)
    if c:match('%s') then
      i = i + 1
    elseif src:sub(i, i + 1) == '--' then
      local eq = src:match('^%[(=*)%[', i + 2)
      if eq then
        local _, e = src:find(']' .. eq .. ']', i, true)
        i = (e or n) + 1
      else
        local e = src:find('\n', i, true)
        i = (e or n) + 1
      end
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= n and src:sub(j, j) ~= c do
        if src:sub(j, j) == '\\' then j = j + 1 end
        j = j + 1
      end
      out[#out + 1] = { 'string', src:sub(i, j), i, j }
      i = j + 1
    elseif c == '[' and src:match('^%[=*%[', i) then
      local eq = src:match('^%[(=*)%[', i)
      local _, e = src:find(']' .. eq .. ']', i, true)
      out[#out + 1] = { 'string', src:sub(i, e or n), i, e or n }
      i = (e or n) + 1
    elseif c:match('[%a_]') then
      local s, e = src:find('^[%w_]+', i)
      out[#out + 1] = { 'name', src:sub(s, e), s, e }
      i = e + 1
    elseif c:match('%d') then
      local s, e = src:find('^[%w_%.]+', i)
      out[#out + 1] = { 'number', src:sub(s, e), s, e }
      i = e + 1
    else
      out[#out + 1] = { 'op', c, i, i }
      i = i + 1
    end
  end
  return out
end

local OPEN = { ['function'] = true, ['do'] = true, ['if'] = true, ['repeat'] = true }
local CLOSE = { ['end'] = true, ['until'] = true }

-- Rewrite `local` declarations at block depth 0: `local a, b = e` -> `a, b = e`,
-- `local a` -> `a = nil`, `local function f` -> `function f`. Inner locals stay.
-- Edits are {first, after, text}: src[first, after) becomes text.
function M.globalize_locals(src)
  local toks = M.tokens(src)
  local edits, depth = {}, 0
  local function drop_local(t)  -- 'local' and the blank after it
    local after = t[4] + 1
    while src:sub(after, after):match('%s') do after = after + 1 end
    edits[#edits + 1] = { t[3], after, '' }
  end
  for k, t in ipairs(toks) do
    if t[1] == 'name' then
      if OPEN[t[2]] then depth = depth + 1
      elseif CLOSE[t[2]] then depth = depth - 1
      elseif t[2] == 'local' and depth == 0 then
        local nxt = toks[k + 1]
        if nxt and nxt[2] == 'function' then
          drop_local(t)
        else
          -- skip the name list
          local j = k + 1
          while toks[j] and toks[j][1] == 'name' and toks[j + 1] and toks[j + 1][2] == ',' do j = j + 2 end
          local after = toks[j + 1]
          if after and after[2] == '=' then
            drop_local(t)
          elseif toks[j] then
            drop_local(t)
            edits[#edits + 1] = { toks[j][4] + 1, toks[j][4] + 1, ' = nil' }
          end
        end
      end
    end
  end
  for e = #edits, 1, -1 do
    local s, stop, text = edits[e][1], edits[e][2], edits[e][3]
    src = src:sub(1, s - 1) .. text .. src:sub(stop)
  end
  return src
end

-- The chunk as one line for the history: a recalled entry must compile and run as the
-- chunk did. Newlines between tokens become spaces; a `--` comment is dropped (it would
-- swallow the rest of the line); a short string's backslash-newline becomes \n; a long
-- string keeps its newlines (its value depends on them).
function M.one_line(src)
  local out, i, n = {}, 1, #src
  while i <= n do
    local c = src:sub(i, i)
    if c == '-' and src:sub(i + 1, i + 1) == '-' then
      local eq = src:match('^%[(=*)%[', i + 2)
      local e
      if eq then
        local _
        _, e = src:find(']' .. eq .. ']', i + 2, true)
      else
        e = (src:find('\n', i, true) or n + 1) - 1
      end
      out[#out + 1] = ' '
      i = (e or n) + 1
    elseif c == '"' or c == "'" then
      local j = i + 1
      local parts = { c }
      while j <= n and src:sub(j, j) ~= c do
        local d = src:sub(j, j)
        if d == '\\' then
          local nx = src:sub(j + 1, j + 1)
          parts[#parts + 1] = nx == '\n' and '\\n' or ('\\' .. nx)
          j = j + 2
        else
          parts[#parts + 1] = d
          j = j + 1
        end
      end
      parts[#parts + 1] = src:sub(j, j)
      out[#out + 1] = table.concat(parts)
      i = j + 1
    elseif c == '[' and src:match('^%[=*%[', i) then
      local eq = src:match('^%[(=*)%[', i)
      local _, e = src:find(']' .. eq .. ']', i, true)
      out[#out + 1] = src:sub(i, e or n)
      i = (e or n) + 1
    elseif c == '\n' or c == '\r' then
      out[#out + 1] = ' '
      i = i + 1
    else
      local s, e = src:find('^[^%-\'"%[\n\r]+', i)
      if s then
        out[#out + 1] = src:sub(s, e)
        i = e + 1
      else
        out[#out + 1] = c
        i = i + 1
      end
    end
  end
  -- collapse the runs of blanks the joins and dropped comments leave (outside strings
  -- they are insignificant; strings were copied as whole pieces)
  local merged, code = {}, {}
  local function flush()
    if #code > 0 then merged[#merged + 1] = (table.concat(code):gsub('[ \t]+', ' ')); code = {} end
  end
  for _, piece in ipairs(out) do
    if piece:match('^["\'%[]') and #piece > 1 then flush(); merged[#merged + 1] = piece
    else code[#code + 1] = piece end
  end
  flush()
  local line = table.concat(merged):gsub('^%s+', ''):gsub('%s+$', '')
  return line
end

return M
