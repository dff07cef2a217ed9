-- tests/helper.lua — shared assertions for the specs.
local ms = require 'moonstep'
local H = {}

-- Flatten a nested Lua table of numbers (row-major).
function H.flatten(t, out)
  out = out or {}
  if type(t) == 'number' then out[#out + 1] = t; return out end
  for _, v in ipairs(t) do H.flatten(v, out) end
  return out
end

-- Assert that tensor t matches the expected values (nested table or flat list or
-- tensor) within rel/abs tolerance; reports the first mismatch.
function H.assert_close(t, expected, tol, msg)
  tol = tol or 1e-6
  local got = H.flatten(t:totable())
  local want = ms.is_tensor(expected) and H.flatten(expected:totable()) or H.flatten(expected)
  assert(#got == #want, ('%s: %d values, expected %d'):format(msg or 'assert_close', #got, #want))
  for i = 1, #got do
    local g, w = got[i], want[i]
    local ok = (g == w) or (g ~= g and w ~= w) or math.abs(g - w) <= tol * math.max(1, math.abs(w))
    assert(ok, ('%s: element %d is %.9g, expected %.9g (tol %g)'):format(msg or 'assert_close', i, g, w, tol))
  end
end

-- Assert that tensors a and b hold the same values bit for bit (any dtype or device; a NaN
-- differs from everything); names the first element that differs.
function H.same_bits(a, b, what)
  local x, y = a:to('float64', 'cpu'):contiguous():view(-1), b:to('float64', 'cpu'):contiguous():view(-1)
  assert(a:numel() == b:numel(), ('%s: %d elements, expected %d'):format(what or 'same_bits', a:numel(), b:numel()))
  for i = 1, x:numel() do
    if x:get(i) ~= y:get(i) then
      error(('%s: element %d differs: %.17g vs %.17g'):format(what or 'same_bits', i, x:get(i), y:get(i)), 2)
    end
  end
end

-- Assert that f raises an error whose message contains every given fragment.
function H.assert_error(f, ...)
  local ok, err = pcall(f)
  assert(not ok, 'expected an error, but the call succeeded')
  err = tostring(err)
  for _, frag in ipairs { ... } do
    assert(err:find(frag, 1, true), ('error message %q does not mention %q'):format(err, frag))
  end
  return err
end

-- Deterministic pseudo-random numbers in Lua (independent of the runtime's RNG).
function H.lcg(seed)
  local s = seed
  return function()
    s = (1103515245 * s + 12345) % 2147483648
    return s / 2147483648 * 2 - 1
  end
end

-- k distinct positions of 1..n drawn with H.lcg(seed); all of them, in order, when n <= k.
-- (The coordinates a finite-difference check visits: tests/gradcheck.lua, tests/autograd_helper.lua.)
function H.sample(n, k, seed)
  if n <= k then local all = {}; for i = 1, n do all[i] = i end; return all end
  local r, picked, seen = H.lcg(seed), {}, {}
  while #picked < k do
    local i = math.floor((r() + 1) / 2 * n) + 1
    if i >= 1 and i <= n and not seen[i] then seen[i] = true; picked[#picked + 1] = i end
  end
  return picked
end

-- The central difference quotient of f() in one coordinate: get() reads it, set(v) writes
-- it; the coordinate is moved by +-h and restored.
function H.central_difference(f, get, set, h)
  local v = get()
  set(v + h); local fp = f()
  set(v - h); local fm = f()
  set(v)
  return (fp - fm) / (2 * h)
end

-- Asserts that the analytic derivative a (what `who` gives) matches the difference quotient
-- num: their relative error, with an absolute floor for tiny derivatives (the quotient
-- carries rounding noise), is below tol; `where` names the coordinate. Returns the error.
function H.assert_derivative(a, num, tol, floor, who, where)
  local err = math.abs(a - num) / math.max(floor, math.abs(a) + math.abs(num))
  assert(err < tol, ('%s: %s gives %.12g, finite differences %.12g'):format(where, who, a, num))
  return err
end

-- A float32 tensor of the given shape with independent pseudo-random values, and
-- the same values as a flat Lua list.
function H.random_tensor(shape, seed, opts)
  local r = H.lcg(seed or 1)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  local vals = {}
  for i = 1, n do vals[i] = r() end
  local t = ms.empty(shape, opts)
  local flat = t:view(n)
  for i = 1, n do flat:set(i, vals[i]) end
  return t, H.flatten(t:totable())
end

-- Files and shells for the specs that drive files and child processes.
function H.read_file(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('*a')
  f:close()
  return s
end

-- The bytes of path, or nil when it cannot be read; whether it can be opened.
function H.try_read(path)
  local f = io.open(path, 'rb')
  if not f then return nil end
  local s = f:read('*a')
  f:close()
  return s
end
function H.exists(path) return H.try_read(path) ~= nil end

-- it() that runs only when cond holds, else a pending case saying why. busted's it and
-- pending live in the spec's environment, so the spec passes them:
--   local git = H.gate(it, pending, ms.cuda.is_available(), ms.cuda.why())
function H.gate(it, pending, cond, why)
  return function(name, f)
    if cond then it(name, f) else pending(name .. ' (' .. tostring(why) .. ')') end
  end
end

function H.write_file(path, bytes)
  local f = assert(io.open(path, 'wb'))
  f:write(bytes)
  f:close()
end

-- s quoted for a POSIX shell.
function H.quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- The output (stdout and stderr) of a shell command; sh_rc appends "rc=<exit status>".
function H.sh(cmd)
  local p = io.popen('( ' .. cmd .. ' ) 2>&1')
  local out = p:read('*a')
  p:close()
  return out
end
function H.sh_rc(cmd) return H.sh(cmd .. '; echo "rc=$?"') end

-- scripts/train.lua with args, and the per-epoch losses it printed (strings, by epoch).
function H.train(args) return H.sh_rc('bin/moonstep scripts/train.lua ' .. args) end
function H.epoch_losses(out)
  local l = {}
  for e, loss in out:gmatch('epoch (%d+)  loss (%S+)') do l[tonumber(e)] = loss end
  return l
end
H.have_fashion_mnist = io.open('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz') ~= nil

return H
