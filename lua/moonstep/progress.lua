-- moonstep.progress — a progress bar on stderr (ms.progress is callable).
--
--   local bar = ms.progress(total [, {label =, quiet =, unit = 'it', interval = 0.1}])
--   bar:update(done [, fields])   done of total (an integer); fields: a table of
--       name -> value shown after the bar (names sorted; numbers as %.4g), or a string
--   bar:finish()                  clears the bar's line (call it before printing, and on
--                                 Ctrl-C: the next line starts clean); returns the seconds
--                                 since the bar was made
--   tostring(bar)                 'progress 45/100 (label)'
-- The line: "label [=========>         ]  45%  45/100  12.3 it/s  ETA 0:04  loss 0.512",
-- redrawn in place (each redraw pads over the previous one), at most every `interval`
-- seconds, at each 5% and at the end; cut to the terminal's width. Quiet (nothing is
-- written) when opts.quiet is true, MOONSTEP_QUIET=1, or stderr is not a terminal.
-- total may be nil (unknown): then no bar, percentage nor ETA.
local ffi = require 'ffi'
local check = require 'moonstep.check'

pcall(ffi.cdef, [[
int isatty(int fd);
struct ms_progress_winsize { unsigned short row, col, xpixel, ypixel; };
int ioctl(int fd, unsigned long request, ...);
]])

local M = {}
local Progress = {}
Progress.__index = Progress
Progress.__name, Progress.__var = 'Progress', 'bar'

local OPTIONS = { 'label', 'quiet', 'unit', 'interval' }
local fmt, floor = string.format, math.floor

-- Wall-clock seconds (ms.clock, loaded late: moonstep requires this lazily).
local function clock() return require('moonstep').clock() end

local function term_width()
  local ws = ffi.new('struct ms_progress_winsize')
  if ffi.C.ioctl(2, 0x5413, ws) == 0 and ws.col > 0 then return ws.col end   -- TIOCGWINSZ
  return tonumber(os.getenv('COLUMNS')) or 80
end

function M.new(total, opts)
  local who = 'progress'
  opts = check.options(who, opts, OPTIONS)
  if total ~= nil then check.integer(who, 'total', total, 0) end
  local label = opts.label
  if label ~= nil and type(label) ~= 'string' then
    check.fail('%s: label is %s, expected a string', who, check.describe(label))
  end
  local unit = opts.unit == nil and 'it' or opts.unit
  if type(unit) ~= 'string' then check.fail('%s: unit is %s, expected a string', who, check.describe(unit)) end
  local interval = opts.interval == nil and 0.1 or check.number(who, 'interval', opts.interval, 0)
  local quiet = opts.quiet
  if quiet ~= nil then check.boolean(who, 'quiet', quiet) end
  quiet = quiet or os.getenv('MOONSTEP_QUIET') == '1' or ffi.C.isatty(2) ~= 1
  local now = clock()
  return setmetatable({ total = total, label = label, unit = unit, interval = interval, quiet = quiet,
                        done = 0, start = now, last = -math.huge, last_tick = -1, drawn = 0,
                        width = not quiet and term_width() or 80 }, Progress)
end

local function duration(s)
  if s ~= s or s == math.huge then return '?' end
  s = floor(s + 0.5)
  if s >= 3600 then return fmt('%d:%02d:%02d', floor(s / 3600), floor(s / 60) % 60, s % 60) end
  return fmt('%d:%02d', floor(s / 60), s % 60)
end

local function field_text(fields)
  if fields == nil then return '' end
  if type(fields) == 'string' then return '  ' .. fields end
  local names = {}
  for k in pairs(fields) do names[#names + 1] = tostring(k) end
  table.sort(names)
  local parts = {}
  for i, k in ipairs(names) do
    local v = fields[k]
    parts[i] = k .. ' ' .. (type(v) == 'number' and fmt('%.4g', v) or tostring(v))
  end
  return '  ' .. table.concat(parts, '  ')
end

function Progress:_line(now)
  local done, total = self.done, self.total
  local elapsed = now - self.start
  local rate = elapsed > 0 and done / elapsed or 0
  local parts = {}
  if self.label then parts[#parts + 1] = self.label .. ' ' end
  if total and total > 0 then
    local frac = math.min(done / total, 1)
    local w = 20
    local full = floor(frac * w)
    parts[#parts + 1] = fmt('[%s%s%s] %3d%%  %d/%d', ('='):rep(full), full < w and '>' or '',
                            (' '):rep(math.max(w - full - 1, 0)), floor(frac * 100), done, total)
  else
    parts[#parts + 1] = fmt('%d', done)
  end
  parts[#parts + 1] = fmt('  %s %s/s', rate >= 100 and fmt('%.0f', rate) or fmt('%.1f', rate), self.unit)
  if total and total > 0 and done < total then
    parts[#parts + 1] = '  ETA ' .. duration(rate > 0 and (total - done) / rate or math.huge)
  end
  parts[#parts + 1] = field_text(self.fields)
  local line = table.concat(parts)
  local max = math.max(self.width - 1, 20)
  if #line > max then line = line:sub(1, max) end
  return line
end

function Progress:update(done, fields)
  check.integer('Progress.update', 'done', done, 0)
  if fields ~= nil and type(fields) ~= 'table' and type(fields) ~= 'string' then
    check.fail('Progress.update: fields is %s, expected a table of name -> value or a string', check.describe(fields))
  end
  self.done, self.fields = done, fields
  if self.quiet then return self end
  local now = clock()
  local tick = self.total and self.total > 0 and floor(20 * done / self.total) or -1
  if now - self.last < self.interval and tick == self.last_tick and done ~= self.total then return self end
  self.last, self.last_tick = now, tick
  local line = self:_line(now)
  io.stderr:write('\r', line, (' '):rep(self.drawn - #line))
  self.drawn = math.max(self.drawn, #line)
  io.stderr:flush()
  return self
end

function Progress:finish()
  if not self.quiet and self.drawn > 0 then
    io.stderr:write('\r', (' '):rep(self.drawn), '\r')
    io.stderr:flush()
    self.drawn = 0
  end
  return clock() - self.start
end

Progress.__tostring = function(self)
  return ('progress %d/%s%s'):format(self.done, self.total and tostring(self.total) or '?',
                                     self.label and (' (' .. self.label .. ')') or '')
end

check.methods(Progress)
M.Progress = Progress

return setmetatable(M, { __call = function(_, total, opts) return M.new(total, opts) end })
