-- tricycle.compat: the few things the library needs that Lua 5.1, LuaJIT 2.1, 5.2, 5.3 and 5.4 spell
-- differently. The library is written in the subset they share and calls these instead of `//`, the
-- bitwise operators, math.type, math.tointeger, table.pack/unpack, utf8.len and utf8.char.
--
-- Integers: on 5.3/5.4 they are exact 64-bit values and these keep 5.4's semantics (is_integer(3.0) is
-- false there). On 5.1, LuaJIT and 5.2 every number is a double: an integer is an integral number
-- within 2^53 (max_integer), the largest range a double holds exactly.
local M = {}

-- Whether this Lua has a separate 64-bit integer type (5.3, 5.4).
M.has_integers = math.type ~= nil

-- Chunks that only 5.3+ can compile are loaded from strings, so this file compiles everywhere.
local function native(source)
  return assert((loadstring or load)(source))()
end

if M.has_integers then
  M.max_integer = math.maxinteger
  M.min_integer = math.mininteger
  function M.is_integer(value)
    return math.type(value) == "integer"
  end
  function M.is_float(value)
    return math.type(value) == "float"
  end
  M.tointeger = math.tointeger
  M.idiv = native("return function(a, b) return a // b end")
  M.band = native("return function(a, b) return a & b end")
  M.bor = native("return function(a, b) return a | b end")
  M.bxor = native("return function(a, b) return a ~ b end")
  M.lshift = native("return function(a, n) return a << n end")
  M.rshift = native("return function(a, n) return a >> n end")
else
  local floor = math.floor
  local limit = 2 ^ 53
  M.max_integer = limit
  M.min_integer = -limit
  function M.is_integer(value)
    return type(value) == "number" and value == floor(value) and value >= -limit and value <= limit
  end
  function M.is_float(value)
    return type(value) == "number" and not M.is_integer(value)
  end
  function M.tointeger(value)
    if M.is_integer(value) then return value end
    return nil
  end
  function M.idiv(a, b)
    return floor(a / b)
  end
  -- Bitwise operations on non-negative integers below 2^32 (LuaJIT's bit and 5.2's bit32 work on
  -- signed or unsigned 32-bit values; results are normalised to unsigned).
  local bits = rawget(_G, "bit32") or rawget(_G, "bit")
  if not bits then
    local ok, loaded = pcall(require, "bit")
    bits = ok and loaded or nil
  end
  local function unsigned(value)
    return value % 4294967296
  end
  if bits then
    function M.band(a, b) return unsigned(bits.band(a, b)) end
    function M.bor(a, b) return unsigned(bits.bor(a, b)) end
    function M.bxor(a, b) return unsigned(bits.bxor(a, b)) end
  else
    -- Plain Lua 5.1: one bit at a time.
    local function combine(a, b, keep)
      local result, place = 0, 1
      a, b = unsigned(a), unsigned(b)
      for _ = 1, 32 do
        local x, y = a % 2, b % 2
        if keep(x, y) then result = result + place end
        a, b, place = (a - x) / 2, (b - y) / 2, place * 2
      end
      return result
    end
    function M.band(a, b) return combine(a, b, function(x, y) return x == 1 and y == 1 end) end
    function M.bor(a, b) return combine(a, b, function(x, y) return x == 1 or y == 1 end) end
    function M.bxor(a, b) return combine(a, b, function(x, y) return x ~= y end) end
  end
  -- Shifts by multiplication: exact for results within 2^53.
  function M.lshift(a, n) return a * 2 ^ n end
  function M.rshift(a, n) return floor(a / 2 ^ n) end
end

M.unpack = table.unpack or unpack

function M.pack(...)
  return { n = select("#", ...), ... }
end

-- The number of UTF-8 characters in s, or nil when s is not valid UTF-8 (utf8.len where it exists).
if rawget(_G, "utf8") then
  M.utf8_len = function(s) return (utf8.len(s)) end
else
  function M.utf8_len(s)
    local count, at, n = 0, 1, #s
    while at <= n do
      local byte = s:byte(at)
      local extra = byte < 0x80 and 0 or byte >= 0xC2 and byte < 0xE0 and 1 or byte >= 0xE0 and byte < 0xF0 and 2
        or byte >= 0xF0 and byte < 0xF5 and 3 or nil
      if not extra or at + extra > n then return nil end
      for k = at + 1, at + extra do
        local continuation = s:byte(k)
        if continuation < 0x80 or continuation > 0xBF then return nil end
      end
      count, at = count + 1, at + extra + 1
    end
    return count
  end
end

-- os.execute(command) as true when the command exited 0 (else false) and its exit status: 5.1 and
-- LuaJIT return the raw wait status, 5.2+ true or nil, "exit" or "signal", and the code.
function M.execute(command)
  local first, how, code = os.execute(command)
  if type(first) == "number" then
    local status = first >= 256 and math.floor(first / 256) or first
    return status == 0, status
  end
  if how == "signal" then
    return false, 128 + code
  end
  return first == true, code
end

-- The standard output of a shell command and its exit status (5.1's pipe:close gives no status, so
-- the shell writes it after the output); nil and a reason when the command cannot be started.
function M.popen_read(command)
  local pipe = io.popen(command .. '; printf "\n%d" "$?"', "r")
  if not pipe then
    return nil, "cannot run " .. command
  end
  local output = pipe:read("*a")
  pipe:close()
  local body, status = output:match("^(.*)\n(%d+)$")
  if not body then
    return nil, "no exit status from " .. command
  end
  return body, tonumber(status)
end

-- The UTF-8 encoding of the code points given (utf8.char where it exists), for code points below 2^31.
if rawget(_G, "utf8") then
  M.utf8_char = utf8.char
else
  local char, floor = string.char, math.floor
  local function encode(code)
    if code < 0x80 then return char(code) end
    -- continuation bytes from the lowest up, until what is left fits the lead byte beside them
    local tail, lead_limit, lead = {}, 0x40, 0x80
    while code >= lead_limit do
      tail[#tail + 1] = char(0x80 + code % 64)
      code = floor(code / 64)
      lead_limit, lead = lead_limit / 2, lead / 2 + 0x80
    end
    local out = { char(lead + code) }
    for k = #tail, 1, -1 do out[#out + 1] = tail[k] end
    return table.concat(out)
  end
  function M.utf8_char(...)
    local parts = {}
    for k = 1, select("#", ...) do
      local code = select(k, ...)
      if type(code) ~= "number" or code ~= floor(code) or code < 0 or code >= 2 ^ 31 then
        error(("utf8_char: bad argument #%d (a code point from 0 to 2^31 - 1, got %s)"):format(k, tostring(code)), 2)
      end
      parts[k] = encode(code)
    end
    return table.concat(parts)
  end
end

return M
