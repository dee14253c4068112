-- Tensor basics: creation, dtypes, randomness, views and storage, indexing,
-- conversion to Lua values, printing, <close>.
local lua54 = require("helpers.lua54")
local compat = require("tricycle.compat")
local number_type = require("helpers.number_type")
local tc = require("tricycle")

describe("tensor creation", function()
  it("builds from nested tables with shape and default float32", function()
    local t = tc.tensor({ { 1, 2, 3 }, { 4, 5, 6 } })
    assert.are.same({ 2, 3 }, t.shape)
    assert.are.equal("float32", t.dtype)
    assert.are.equal(2, t:dim())
    assert.are.equal(6, t:numel())
    assert.are.same({ { 1, 2, 3 }, { 4, 5, 6 } }, t:totable())
    assert.are.equal("cpu", t.device)
  end)

  it("takes a dtype option", function()
    for _, dtype in ipairs({ "float32", "float64", "int32", "int64", "uint8" }) do
      local t = tc.tensor({ 1, 2, 3 }, { dtype = dtype })
      assert.are.equal(dtype, t.dtype)
      assert.are.same({ 1, 2, 3 }, t:totable())
    end
    local b = tc.tensor({ true, false })
    assert.are.equal("bool", b.dtype)
    assert.are.same({ true, false }, b:totable())
    assert.are.same({ true, false, true }, tc.tensor({ 2, 0, 1 }, { dtype = "bool" }):totable())
  end)

  it("keeps float64 precision and rounds float32", function()
    assert.are.equal(0.1, tc.tensor({ 0.1 }, { dtype = "float64" }):totable()[1])
    assert.are_not.equal(0.1, tc.tensor({ 0.1 }):totable()[1])
    assert.is_true(math.abs(tc.tensor({ 0.1 }):totable()[1] - 0.1) < 1e-8)
  end)

  it("gives integers for integer dtypes", function()
    local v = tc.tensor({ 7 }, { dtype = "int64" }):totable()[1]
    assert.are.equal("integer", number_type(v))
    local big = tc.tensor({ 2 ^ 40 }, { dtype = "int64" }):item()
    assert.are.equal("integer", number_type(big))
    assert.are.equal(1099511627776, big)
    if compat.has_integers then -- (7.0 is a float only where integers are a type of their own)
      assert.are.equal("float", number_type(tc.tensor({ 7 }):totable()[1]))
    end
  end)

  it("converts floats into integers by truncation, saturating at the range, NaN as 0", function()
    local x = tc.tensor({ 0 / 0, 1 / 0, -1 / 0, 1e10, -1e10, 300, -1.5, 2.7, -2.7, 255.9 }, { dtype = "float64" })
    assert.are.same({ 0, 2147483647, -2147483648, 2147483647, -2147483648, 300, -1, 2, -2, 255 },
      x:to("int32"):totable())
    if compat.has_integers then
      assert.are.same({ 0, compat.max_integer, math.mininteger, 10000000000, -10000000000, 300, -1, 2, -2, 255 },
        x:to("int64"):totable())
    else -- (2^63 - 1 and -2^63 are past 2^53 there: totable refuses them, float64 holds them rounded)
      local ok, message = pcall(x:to("int64").totable, x:to("int64"))
      assert.is_false(ok)
      assert.truthy(message:find("totable: the integer 9223372036854775808 is past 2^53", 1, true), message)
      assert.are.same({ 0, 2 ^ 63, -2 ^ 63, 10000000000, -10000000000, 300, -1, 2, -2, 255 },
        x:to("int64"):to("float64"):totable())
    end
    assert.are.same({ 0, 255, 0, 255, 0, 255, 0, 2, 0, 255 }, x:to("uint8"):totable())
    assert.are.same({ 0, 255, 0, 255, 0, 255, 0, 2, 0, 255 }, x:to("float32"):to("uint8"):totable())
    -- integer into integer wraps, as C defines it
    assert.are.same({ 255, 0, 44 }, tc.tensor({ -1, 256, 300 }, { dtype = "int64" }):to("uint8"):totable())
  end)

  it("makes 0-dim tensors from numbers", function()
    local t = tc.tensor(3.5)
    assert.are.same({}, t.shape)
    assert.are.equal(3.5, t:item())
    assert.are.equal(3.5, t:totable())
  end)

  it("makes zeros, ones, full, arange", function()
    assert.are.same({ { 0, 0 }, { 0, 0 } }, tc.zeros({ 2, 2 }):totable())
    assert.are.same({ 1, 1, 1 }, tc.ones(3):totable())
    assert.are.same({ { 7, 7 } }, tc.full({ 1, 2 }, 7):totable())
    assert.are.equal("int32", tc.zeros({ 2 }, { dtype = "int32" }).dtype)
    assert.are.same({ 0, 1, 2, 3 }, tc.arange(4):totable())
    assert.are.equal("int64", tc.arange(4).dtype)
    assert.are.same({ 2, 4, 6 }, tc.arange(2, 8, 2):totable())
    assert.are.same({ 5, 4, 3 }, tc.arange(5, 2, -1):totable())
    local f = tc.arange(0, 1, 0.25)
    assert.are.equal("float32", f.dtype)
    assert.are.same({ 0, 0.25, 0.5, 0.75 }, f:totable())
    assert.are.equal("float64", tc.arange(3, { dtype = "float64" }).dtype)
  end)

  it("makes requires_grad tensors from options", function()
    local t = tc.zeros({ 2 }, { requires_grad = true })
    assert.is_true(t.requires_grad)
    assert.is_false(tc.zeros({ 2 }).requires_grad)
  end)
end)

describe("random tensors", function()
  it("repeat with the same seed and differ with another", function()
    tc.manual_seed(1234)
    local a = tc.randn({ 50 }):totable()
    local u = tc.rand({ 50 }):totable()
    tc.manual_seed(1234)
    assert.are.same(a, tc.randn({ 50 }):totable())
    assert.are.same(u, tc.rand({ 50 }):totable())
    tc.manual_seed(1235)
    assert.are_not.same(a, tc.randn({ 50 }):totable())
  end)

  it("draws fresh numbers on each call", function()
    tc.manual_seed(9)
    assert.are_not.same(tc.rand({ 10 }):totable(), tc.rand({ 10 }):totable())
  end)

  it("rand is uniform in [0, 1)", function()
    tc.manual_seed(7)
    local values = tc.rand({ 100000 }, { dtype = "float64" }):totable()
    local sum, low, high = 0, math.huge, -math.huge
    local below_half = 0
    for _, v in ipairs(values) do
      sum = sum + v
      low, high = math.min(low, v), math.max(high, v)
      if v < 0.5 then below_half = below_half + 1 end
    end
    assert.is_true(low >= 0 and high < 1, ("range [%g, %g]"):format(low, high))
    assert.is_true(math.abs(sum / #values - 0.5) < 0.01)
    assert.is_true(math.abs(below_half / #values - 0.5) < 0.01)
  end)

  it("randn has mean about 0 and std about 1 over 100k samples", function()
    tc.manual_seed(11)
    local values = tc.randn({ 100000 }):totable()
    local n, sum, squares = #values, 0, 0
    for _, v in ipairs(values) do sum = sum + v end
    local mean = sum / n
    for _, v in ipairs(values) do squares = squares + (v - mean) ^ 2 end
    local std = math.sqrt(squares / (n - 1))
    assert.is_true(math.abs(mean) < 0.02, "mean " .. mean)
    assert.is_true(math.abs(std - 1) < 0.02, "std " .. std)
  end)
end)

describe("views and storage", function()
  it("share storage: writes through a view show in the base", function()
    local base = tc.zeros({ 3, 4 })
    base:narrow(2, 2, 2):fill_(5)
    assert.are.same({ { 0, 5, 5, 0 }, { 0, 5, 5, 0 }, { 0, 5, 5, 0 } }, base:totable())
    base:transpose(1, 2)[1]:copy_(tc.tensor({ 1, 2, 3 }))
    assert.are.same({ { 1, 5, 5, 0 }, { 2, 5, 5, 0 }, { 3, 5, 5, 0 } }, base:totable())
    base:select(1, 3):fill_(9)
    assert.are.same({ 9, 9, 9, 9 }, base[3]:totable())
    local flat = base:view(12)
    flat:fill_(1)
    assert.are.same({ 1, 1, 1, 1 }, base[2]:totable())
  end)

  it("copy_ broadcasts and converts", function()
    local t = tc.zeros({ 2, 3 }, { dtype = "float64" })
    t:copy_(tc.tensor({ 1, 2, 3 }, { dtype = "int64" }))
    assert.are.same({ { 1, 2, 3 }, { 1, 2, 3 } }, t:totable())
  end)

  it("reshape of a non-contiguous tensor copies; view refuses", function()
    local base = tc.tensor({ { 1, 2, 3 }, { 4, 5, 6 } })
    local t = base:transpose(1, 2)
    assert.is_false(t:is_contiguous())
    local r = t:reshape(6)
    assert.are.same({ 1, 4, 2, 5, 3, 6 }, r:totable())
    r:fill_(0)
    assert.are.same({ { 1, 2, 3 }, { 4, 5, 6 } }, base:totable())
    assert.is_false(pcall(function() return t:view(6) end))
    -- a reshape that can be a view shares storage
    base:reshape(3, 2):fill_(2)
    assert.are.same({ { 2, 2, 2 }, { 2, 2, 2 } }, base:totable())
  end)

  it("reports strides and contiguity", function()
    local t = tc.zeros({ 2, 3 })
    assert.are.same({ 3, 1 }, t:stride())
    assert.are.same({ 1, 3 }, t:transpose(1, 2):stride())
    assert.is_true(t:is_contiguous())
  end)
end)

describe("indexing and metadata", function()
  it("t[i] selects along the first dim, 1-based, negative from the end", function()
    local t = tc.tensor({ { 1, 2 }, { 3, 4 }, { 5, 6 } })
    assert.are.same({ 3, 4 }, t[2]:totable())
    assert.are.same({ 5, 6 }, t[-1]:totable())
    assert.are.equal(4, t[2][2]:item())
  end)

  it("#t is the size of the first dim", function()
    assert.are.equal(3, #tc.zeros({ 3, 5 }))
    assert.are.equal(5, #tc.zeros({ 5 }))
  end)

  it("t.shape is a fresh table each time", function()
    local t = tc.zeros({ 2, 3 })
    local shape = t.shape
    shape[1] = 99
    assert.are.same({ 2, 3 }, t.shape)
    assert.are_not.equal(t.shape, t.shape)
    assert.are.same({ 2, 3 }, t:size())
    assert.are.equal(3, t:size(2))
    assert.are.equal(3, t:size(-1))
  end)

  it("item reads one-element tensors and refuses others", function()
    assert.are.equal(4, tc.tensor({ { 4 } }):item())
    assert.is_false(pcall(function() return tc.tensor({ 1, 2 }):item() end))
  end)

  it("totable follows views", function()
    local t = tc.arange(6):reshape(2, 3)
    assert.are.same({ { 0, 3 }, { 1, 4 }, { 2, 5 } }, t:transpose(1, 2):totable())
    assert.are.same({ { 1, 2 }, { 4, 5 } }, t:narrow(2, 2, 2):totable())
  end)
end)

describe("printing", function()
  it("looks like PyTorch for a small float tensor", function()
    assert.are.equal("tensor([[1., 2.],\n        [3., 4.]])", tostring(tc.tensor({ { 1, 2 }, { 3, 4 } })))
  end)

  it("prints fractions with four decimals and aligns", function()
    assert.are.equal("tensor([ 0.5000, -1.2500])", tostring(tc.tensor({ 0.5, -1.25 })))
  end)

  it("prints integer tensors, dtypes and grad state", function()
    assert.are.equal("tensor([1, 2, 3])", tostring(tc.tensor({ 1, 2, 3 }, { dtype = "int64" })))
    assert.are.equal("tensor([1., 2.], dtype=float64)", tostring(tc.tensor({ 1, 2 }, { dtype = "float64" })))
    assert.are.equal("tensor([1., 2.], requires_grad=true)", tostring(tc.tensor({ 1, 2 }, { requires_grad = true })))
    assert.are.equal("tensor(3.5000)", tostring(tc.tensor(3.5)))
  end)

  it("elides large tensors with ...", function()
    local text = tostring(tc.arange(2000))
    assert.are.equal("tensor([   0,    1,    2, ..., 1997, 1998, 1999])", text)
    local big = tostring(tc.zeros({ 100, 100 }))
    assert.truthy(big:find("...", 1, true))
    assert.is_true(#big < 2000)
    local lines = 0
    for _ in big:gmatch("\n") do lines = lines + 1 end
    assert.are.equal(6, lines) -- 3 rows, the elision row, 3 rows
  end)
end)

describe("t:free() and <close>", function()
  it("t:free() frees the tensor now; a later use is a clear error; a second free does nothing", function()
    local t = tc.ones({ 4 })
    assert.are.equal(4, t:sum():item())
    t:free()
    t:free()
    local ok, message = pcall(function() return t:sum() end)
    assert.is_false(ok)
    assert.matches("sum: argument 1 is a tensor that was closed", message)
    assert.is_false(pcall(function() return t + 1 end))
    assert.are.equal("tensor(closed)", tostring(t))
  end)

  it("frees the tensor at scope end and errors clearly on later use (Lua 5.4)", function()
    local escaped = {}
    if not lua54([[
      local tc, escaped, assert = ...
      do
        local t <close> = tc.ones({ 4 })
        escaped[1] = t
        assert.are.equal(4, t:sum():item())
      end
    ]], tc, escaped, assert) then
      pending("a <close> variable needs Lua 5.4; t:free() is the plain form")
      return
    end
    escaped = escaped[1]
    local ok, message = pcall(function() return escaped:sum() end)
    assert.is_false(ok)
    assert.matches("closed", message)
    assert.is_false(pcall(function() return escaped + 1 end))
    assert.is_false(pcall(function() return escaped.shape end))
    assert.are.equal("tensor(closed)", tostring(escaped))
  end)

  it("is idempotent", function()
    local t = tc.ones({ 2 })
    local close = getmetatable(t).__close
    close(t)
    close(t)
    assert.is_false(pcall(function() return t:totable() end))
  end)

  it("leaves views of a closed tensor usable", function()
    local t = tc.tensor({ 1, 2, 3 })
    local view = t:narrow(1, 2, 2)
    t:free()
    assert.are.same({ 2, 3 }, view:totable())
  end)
end)

describe("int64 data", function()
  it("keeps integers past 2^53 exact from a table, a number, item and totable", function()
    if not compat.has_integers then
      -- Luas without 64-bit integers refuse them by name, in either direction
      local function refuses(fn, name, value)
        local ok, message = pcall(fn)
        assert.is_false(ok, name)
        assert.truthy(message:find(name .. ": the integer " .. value .. " is past 2^53", 1, true), message)
      end
      refuses(function() return tc.tensor({ 3, 2 ^ 60 }, { dtype = "int64" }) end, "tensor", "1152921504606846976")
      refuses(function() return tc.tensor(2 ^ 60, { dtype = "int64" }) end, "tensor", "1152921504606846976")
      refuses(function() return tc.full({ 2 }, -2 ^ 60, { dtype = "int64" }) end, "full", "-1152921504606846976")
      local wide = tc.tensor({ 2 ^ 60, 3 }, { dtype = "float64" }):to("int64")
      refuses(function() return wide[1]:item() end, "item", "1152921504606846976")
      refuses(function() return wide:totable() end, "totable", "1152921504606846976")
      assert.are.equal(3, wide[2]:item())
      return
    end
    local values = { compat.max_integer, math.mininteger, (9007199254740992) + 1, -(9007199254740992) - 1, 3.0 }
    local t = tc.tensor(values, { dtype = "int64" })
    assert.are.same({ compat.max_integer, math.mininteger, (9007199254740992) + 1, -(9007199254740992) - 1, 3 },
      t:totable())
    assert.are.equal(compat.max_integer, t[1]:item())
    assert.are.equal((9007199254740992) + 1, tc.tensor((9007199254740992) + 1, { dtype = "int64" }):item())
    assert.truthy(tostring(t):find("9007199254740993", 1, true))
    local full = tc.full({ 2 }, compat.max_integer, { dtype = "int64" })
    assert.are.same({ compat.max_integer, compat.max_integer }, full:totable())
  end)
end)

describe("empty tensors", function()
  it("are contiguous whatever their strides, and move between dtypes as one piece", function()
    assert.is_true(tc.zeros({ 3, 0 }):is_contiguous())
    assert.is_true(tc.zeros({ 3, 4 }):narrow(2, 1, 0):is_contiguous())
    assert.are.same({ 3, 0 }, tc.zeros({ 3, 0 }):to("float64").shape)
  end)
end)
