-- experiment.record — what a run leaves on disk: directories, CSV files, ids.
--
--   record.id(cfg)                 '<name>-s<seed>-<8 hex>': the CRC-32 of the canonical
--                                  JSON of the normalised experiment (characters outside
--                                  [%w_.-] of the name replaced by '_')
--   record.mkdir(who, path)        mkdir -p (an error names who and the path)
--   record.exists(path), record.isdir(path)
--   record.list(who, dir)          the names in a directory (sorted, without . and ..)
--   record.number(v)               a CSV field: '' for nil (not measured), else the
--                                  shortest text that reads back as the same double
--   w = record.csv_writer(who, path, columns)   w:row{v1, v2, ...} (by position),
--                                  w:flush(), w:close()
--   t = record.read_csv(who, path) {columns = {...}, n = rows, <column> = {values}}:
--                                  numbers (nil where a field is empty); a header with an
--                                  empty, repeated or reserved name ('columns', 'n') is an
--                                  error naming who and the file
--   v = record.read_json(who, path) json.read with errors under who ('<who>: <path> is not
--                                  valid JSON: ...', 'cannot open', 'is a directory')
--   record.io_error(path, err)     io.open's message without the path it repeats
local ffi = require 'ffi'
local ms = require 'moonstep'
local check = require 'moonstep.check'
local json = require 'moonstep.json'

local M = {}

pcall(ffi.cdef, [[
int mkdir(const char *path, unsigned int mode);
typedef struct ms_exp_dir ms_exp_dir;
ms_exp_dir *opendir(const char *name);
int closedir(ms_exp_dir *d);
]])
-- readdir's struct dirent (glibc, 64-bit Linux): the name at a fixed offset
pcall(ffi.cdef, [[
struct ms_exp_dirent { uint64_t d_ino; int64_t d_off; unsigned short d_reclen;
                       unsigned char d_type; char d_name[256]; };
struct ms_exp_dirent *readdir(ms_exp_dir *d);
]])

pcall(ffi.cdef, [[
int open(const char *path, int flags, ...);
int close(int fd);
long write(int fd, const void *buf, unsigned long n);
int kill(int pid, int sig);
int getpid(void);
]])
local O_WRONLY, O_CREAT, O_EXCL = 1, 64, 128   -- Linux

-- lock(who, dir) -> unlock(): <dir>/.lock holds the pid of the one process writing the run
-- (created with O_EXCL, so two processes cannot both take it). A lock whose process is
-- gone (kill -9) is taken over; a live one is an error naming it: two run_all calls on the
-- same out would otherwise interleave their CSV rows and corrupt the record.
function M.lock(who, dir)
  local path = dir .. '/.lock'
  local me = ffi.C.getpid()
  for _ = 1, 2 do
    local fd = ffi.C.open(path, O_WRONLY + O_CREAT + O_EXCL, ffi.cast('int', 420))
    if fd >= 0 then
      local text = tostring(me)
      ffi.C.write(fd, text, #text)
      ffi.C.close(fd)
      return function() os.remove(path) end
    end
    local f = io.open(path, 'r')
    local pid = f and tonumber(f:read('*l') or '')
    if f then f:close() end
    if pid and pid ~= me and pid > 0 and ffi.C.kill(pid, 0) == 0 then
      check.fail('%s: %s is being written by process %d (another run on the same out?); wait for it, or use another out',
                 who, dir, pid)
    end
    os.remove(path)                               -- stale: its process is gone
  end
  check.fail('%s: cannot create %s (the run directory\'s lock)', who, path)
end

function M.id(cfg)
  local text = json.encode(cfg)
  local crc = ms.C.ms_crc32(0, text, #text)
  local name = cfg.name:gsub('[^%w_.-]', '_')
  return ('%s-s%d-%08x'):format(name, cfg.seed, tonumber(crc))
end

function M.exists(path)
  local f = io.open(path, 'rb')
  if f then f:close(); return true end
  return false
end

function M.isdir(path)
  local d = ffi.C.opendir(path)
  if d == nil then return false end
  ffi.C.closedir(d)
  return true
end

function M.mkdir(who, path)
  check.path(who, path)
  if M.isdir(path) then return path end
  local prefix = path:sub(1, 1) == '/' and '/' or ''
  for part in path:gmatch('[^/]+') do
    prefix = prefix .. part
    if not M.isdir(prefix) and ffi.C.mkdir(prefix, tonumber('755', 8)) ~= 0 and not M.isdir(prefix) then
      check.fail('%s: cannot create the directory %s (%s)', who, prefix,
                 M.exists(prefix) and 'a file of that name exists' or 'permission denied or no such parent')
    end
    prefix = prefix .. '/'
  end
  return path
end

function M.list(who, dir)
  local d = ffi.C.opendir(dir)
  if d == nil then check.fail('%s: cannot read the directory %s', who, dir) end
  local names = {}
  while true do
    local e = ffi.C.readdir(d)
    if e == nil then break end
    local name = ffi.string(e.d_name)
    if name ~= '.' and name ~= '..' then names[#names + 1] = name end
  end
  ffi.C.closedir(d)
  table.sort(names)
  return names
end

local number_text = json._number_text
function M.number(v)
  if v == nil then return '' end
  if v ~= v then return 'nan' end
  if v == math.huge then return 'inf' end
  if v == -math.huge then return '-inf' end
  return number_text(v)
end

function M.io_error(path, err)
  err = tostring(err)
  if err:sub(1, #path + 2) == path .. ': ' then err = err:sub(#path + 3) end
  return err
end

function M.read_json(who, path)
  if M.isdir(path) then check.fail('%s: %s is a directory, expected a JSON file', who, path) end
  local ok, v = pcall(json.read, path)
  if not ok then check.raise(check.rename(who, (tostring(v):gsub('^[^:\n]*:%d+: ', '')))) end
  return v
end

local Writer = {}
Writer.__index = Writer

function M.csv_writer(who, path, columns)
  local f, err = io.open(path, 'w')
  if not f then check.fail('%s: cannot write %s: %s', who, path, M.io_error(path, err)) end
  f:write(table.concat(columns, ','), '\n')
  return setmetatable({ f = f, n = #columns, path = path, who = who, buf = {} }, Writer)
end

function Writer:row(values)
  local buf, number = self.buf, M.number
  for i = 1, self.n do
    local v = values[i]
    buf[i] = type(v) == 'string' and v or number(v)
  end
  local ok, err = self.f:write(table.concat(buf, ',', 1, self.n), '\n')
  if not ok then check.fail('%s: cannot write %s: %s', self.who, self.path, tostring(err)) end
end

function Writer:flush() self.f:flush() end
function Writer:close()
  if self.f then self.f:close(); self.f = nil end
end

local function field(s)
  if s == '' then return nil end
  if s == 'nan' then return 0 / 0 end
  if s == 'inf' then return math.huge end
  if s == '-inf' then return -math.huge end
  return tonumber(s)
end

function M.read_csv(who, path)
  if M.isdir(path) then check.fail('%s: %s is a directory, expected a CSV file', who, path) end
  local f, err = io.open(path, 'rb')
  if not f then check.fail('%s: cannot open %s: %s', who, path, M.io_error(path, err)) end
  local header = f:read('*l')
  if not header or header == '' then
    f:close()
    check.fail('%s: %s is empty, expected a CSV header line', who, path)
  end
  local t = { columns = {}, n = 0 }
  header = header:gsub('\r$', '')
  for name in (header .. ','):gmatch('([^,]*),') do
    local why = (name == '' and 'an empty column name') or ((name == 'columns' or name == 'n') and
      ('the column name %q, which read_csv\'s table reserves (t.columns, t.n)'):format(name))
      or (t[name] and ('the column %q twice'):format(name))
    if why then
      f:close()
      check.fail('%s: %s has %s in its header line, expected distinct names', who, path, why)
    end
    t.columns[#t.columns + 1] = name
    t[name] = {}
  end
  local cols, nc = t.columns, #t.columns
  local line_no = 1
  for line in f:lines() do
    line_no = line_no + 1
    if line ~= '' then
      local i = 0
      local r = t.n + 1
      for s in (line .. ','):gmatch('([^,]*),') do
        i = i + 1
        if i > nc then break end
        local v = field(s)
        if v == nil and s ~= '' then
          f:close()
          check.fail('%s: %s line %d: field %s is %s, expected a number or nothing', who, path, line_no,
                     cols[i], check.describe(s))
        end
        t[cols[i]][r] = v
      end
      if i ~= nc then
        f:close()
        check.fail('%s: %s line %d has %d fields, expected %d', who, path, line_no, i, nc)
      end
      t.n = r
    end
  end
  f:close()
  return t
end

return M
