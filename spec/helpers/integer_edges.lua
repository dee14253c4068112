--- Integer arithmetic at the edges of int32, int64 and uint8, on one device:
-- every op that keeps an integer dtype must wrap around as two's complement
-- (PyTorch's rule) without undefined behaviour, which `make asan` (UBSan,
-- halting on the first report) and `make test-cuda` (the emulated device
-- under UBSan) would stop. The expected values come from Lua's own integer
-- arithmetic, which wraps at 64 bits, narrowed to the dtype's width.
-- Tensors are made from packed bytes and read back with totable, so int64
-- values never pass through a double.
local binpack = require("helpers.binpack")
local compat = require("tricycle.compat")
local wide = require("helpers.wide")
local tc = require("tricycle")
local assert = require("luassert")

local M = {}

local formats = { int32 = "<i4", int64 = "<i8", uint8 = "<I1" }

M.dtypes = {
  int32 = { min = -2147483648, max = 2147483647 },
  int64 = { min = math.mininteger, max = compat.max_integer },
  uint8 = { min = 0, max = 255 },
}

--- v reduced to the dtype's width, as two's complement.
function M.wrap(dtype, v)
  if dtype == "int32" then
    return compat.band(v + 2147483648, 0xFFFFFFFF) - 2147483648
  elseif dtype == "uint8" then
    return v % 256
  end
  return v
end

--- A 1-D tensor of exact integer values on device.
function M.tensor(dtype, values, device)
  local parts = {}
  for i, v in ipairs(values) do
    parts[i] = binpack.pack(formats[dtype], dtype == "uint8" and v % 256 or v)
  end
  local t = tc.from_bytes(table.concat(parts), dtype, { #values })
  if device ~= "cpu" then
    t = t:to(device)
  end
  return t
end

local function read(t)
  return t:to("cpu"):totable()
end

--- The cases: name, then a function of (dtype, device) returning the
-- tensor computed and the list of values expected (and their dtype).
local function cases(dtype, device)
  local edge = M.dtypes[dtype]
  local min, max = edge.min, edge.max
  local function t(values) return M.tensor(dtype, values, device) end
  local function w(v) return M.wrap(dtype, v) end
  local values = { min, min + 1, -1, 0, 1, max - 1, max }
  if dtype == "uint8" then
    values = { 0, 1, 2, 127, 128, 254, 255 }
  end
  local x = t(values)
  local function each(f)
    local result = {}
    for i, v in ipairs(values) do
      result[i] = f(v)
    end
    return result
  end
  local sum_dtype = "int64"
  local low, high = min + 1, max - 1
  if dtype == "int64" then
    low, high = -(wide(62)), wide(62)
  end
  local list = {
    { "x + 1", function() return x + 1 end, each(function(v) return w(v + 1) end) },
    { "1 + x", function() return 1 + x end, each(function(v) return w(v + 1) end) },
    { "x + x", function() return x + x end, each(function(v) return w(v + v) end) },
    { "x - 1", function() return x - 1 end, each(function(v) return w(v - 1) end) },
    { "0 - x", function() return 0 - x end, each(function(v) return w(-v) end) },
    { "x - max", function() return x - t({ max, max, max, max, max, max, max }) end,
      each(function(v) return w(v - max) end) },
    { "x * 2", function() return x * 2 end, each(function(v) return w(v * 2) end) },
    { "x * x", function() return x * x end, each(function(v) return w(v * v) end) },
    { "x * max", function() return x * t({ max, max, max, max, max, max, max }) end,
      each(function(v) return w(v * max) end) },
    { "-x", function() return -x end, each(function(v) return w(-v) end) },
    { "x:neg()", function() return x:neg() end, each(function(v) return w(-v) end) },
    { "x:abs()", function() return x:abs() end, each(function(v) return w(v < 0 and -v or v) end) },
    { "x:square()", function() return x:square() end, each(function(v) return w(v * v) end) },
    { "x:relu()", function() return x:relu() end, each(function(v) return v > 0 and v or 0 end) },
    { "x:sign()", function() return x:sign() end, each(function(v) return v > 0 and 1 or v < 0 and w(-1) or 0 end) },
    { "x:maximum(0)", function() return x:maximum(t({ 0, 0, 0, 0, 0, 0, 0 })) end,
      each(function(v) return math.max(v, 0) end) },
    { "x:minimum(max)", function() return x:minimum(t({ max, max, max, max, max, max, max })) end, values },
    -- (bounds pass through a double: int64's are kept exact)
    { "x:clamp(low, high)", function() return x:clamp(low, high) end,
      each(function(v) return math.min(math.max(v, low), high) end) },
    { "x:max()", function() return x:max():reshape({ 1 }) end, { max } },
    { "x:min()", function() return x:min():reshape({ 1 }) end, { min } },
    { "x:argmax()", function() return x:argmax():reshape({ 1 }) end, { 6 }, "int64" },
  }
  -- Sums are int64 for every integer dtype: exact for int32 and uint8, wrapped
  -- around for int64. A run of 300 goes to the device's one-block-per-row
  -- kernel; the column and the keepdim forms to the one-thread-per-row one.
  local many = {}
  for i = 1, 300 do
    many[i] = max
  end
  local function int64_sum(list_of_values, count)
    local total = 0
    for i = 1, count or #list_of_values do
      total = total + list_of_values[i]
    end
    return total
  end
  list[#list + 1] = { "x:sum()", function() return x:sum():reshape({ 1 }) end, { int64_sum(values) }, sum_dtype }
  list[#list + 1] = { "sum of max, 1", function() return t({ max, 1 }):sum():reshape({ 1 }) end, { max + 1 },
    sum_dtype }
  list[#list + 1] = { "sum of min, -1", function() return t({ min, w(-1) }):sum():reshape({ 1 }) end,
    { min + w(-1) }, sum_dtype }
  list[#list + 1] = { "sum of 300 max", function() return t(many):sum():reshape({ 1 }) end, { max * 300 }, sum_dtype }
  list[#list + 1] = { "sum over dim 2 of {2, 300}", function()
    return tc.stack({ t(many), t(many) }):sum(2)
  end, { max * 300, max * 300 }, sum_dtype }
  list[#list + 1] = { "sum over dim 1 of {300, 2}", function()
    return tc.stack({ t(many), t(many) }):transpose(1, 2):contiguous():sum(1)
  end, { max * 300, max * 300 }, sum_dtype }
  return list
end

local function float32(v)
  return (binpack.unpack("<f", binpack.pack("<f", v)))
end

-- Division and powers of integers are float32 ops (true division, as
-- PyTorch's `/`): never a trap, by zero an infinity or NaN.
local function check_float_results(dtype, device)
  local edge = M.dtypes[dtype]
  local values = dtype == "uint8" and { 0, 1, 255 } or { edge.min, -1, 0, 1, edge.max }
  local x = M.tensor(dtype, values, device)
  local what = ("on %s %s"):format(dtype, device)
  local quotients = read(x / 0)
  assert.are.equal("float32", (x / 0).dtype, "x / 0 " .. what)
  for i, v in ipairs(values) do
    local q = quotients[i]
    if v == 0 then
      assert.is_true(q ~= q, ("0 / 0 %s is %s, not NaN"):format(what, tostring(q)))
    else
      assert.are.equal(v > 0 and math.huge or -math.huge, q, ("%d / 0 %s"):format(v, what))
    end
  end
  local negated = read(x / M.tensor(dtype, { M.wrap(dtype, -1) }, device))
  for i, v in ipairs(values) do
    local divisor = M.wrap(dtype, -1) + 0.0
    assert.are.equal(float32(v / divisor), negated[i], ("%d / %d %s"):format(v, M.wrap(dtype, -1), what))
  end
  local squares = read(x ^ 2)
  for i, v in ipairs(values) do
    assert.are.equal(float32((v + 0.0) * (v + 0.0)), squares[i], ("%d ^ 2 %s"):format(v, what))
  end
end

--- Runs every case on device with busted's assert.
function M.check(device)
  for _, dtype in ipairs({ "int32", "int64", "uint8" }) do
    for _, case in ipairs(cases(dtype, device)) do
      local name, fn, expected, expected_dtype = case[1], case[2], case[3], case[4] or dtype
      local result = fn()
      local what = ("%s on %s %s"):format(name, dtype, device)
      assert.are.equal(expected_dtype, result.dtype, what .. ": dtype")
      assert.are.same(expected, read(result), what)
    end
    check_float_results(dtype, device)
  end
end

return M
