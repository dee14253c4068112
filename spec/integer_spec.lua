-- Integer arithmetic wraps around as two's complement at the edges of
-- int32, int64 and uint8, with the exact values PyTorch gives, and never
-- through undefined behaviour: `make asan` runs this under UBSan, which halts
-- on signed overflow. The same cases run on the emulated CUDA device in
-- spec/cuda_emulation_spec.lua.
local binpack = require("helpers.binpack")
local compat = require("tricycle.compat")
local tc = require("tricycle")
local edges = require("helpers.integer_edges")
local wide = require("helpers.wide")

describe("integer arithmetic at the range edges", function()
  -- The references compute int64's wrap-around in Lua integers, which 5.1, LuaJIT and 5.2 lack (their
  -- refusal of integers past 2^53 is checked in tensor_spec and the catalogue).
  local exact_it = compat.has_integers and it
    or function(name) pending(name .. " (needs Lua 5.3+'s 64-bit integers for its references)") end
  exact_it("wraps around in add, sub, mul, neg, abs, square and sums; divides and raises to powers as float32",
    function()
      edges.check("cpu")
    end)

  exact_it("gives the documented literal values", function()
    local i32 = edges.tensor("int32", { 2147483647, -2147483648 }, "cpu")
    assert.are.same({ -2147483648, 2147483647 }, (i32 + tc.from_bytes(binpack.pack("<i4i4", 1, -1), "int32", { 2 }))
      :totable())
    assert.are.same({ -2147483647, -2147483648 }, i32:neg():totable())
    assert.are.same({ 2147483647, -2147483648 }, i32:abs():totable())
    local i64 = edges.tensor("int64", { math.mininteger }, "cpu")
    assert.are.same({ math.mininteger }, i64:neg():totable())
    assert.are.same({ math.mininteger }, i64:abs():totable())
    assert.are.same({ compat.max_integer }, (i64 - 1):totable())
    assert.are.same({ 0 }, (i64 * 2):totable())
    local u8 = tc.tensor({ 0, 255 }, { dtype = "uint8" })
    assert.are.same({ 255, 254 }, (u8 + 255):totable())
    assert.are.same({ 255, 254 }, (u8 - 1):totable())
    assert.are.same({ 0, 1 }, (u8 * 255):totable())
  end)

  exact_it("reads and takes int64 values past 2^53 exactly (item, and numbers in arithmetic)", function()
    -- before: item() went through a double (2^63 - 1 came back as 2^63, converted out of range),
    -- and a Lua integer operand was rounded to a double (0 + (2^53 + 1) gave 2^53)
    local max = edges.tensor("int64", { compat.max_integer }, "cpu")
    assert.are.equal(compat.max_integer, max:item())
    assert.are.equal(compat.max_integer, max:sum():item())
    local zero = edges.tensor("int64", { 0 }, "cpu")
    local odd = (9007199254740992) + 1
    assert.are.equal(odd, (zero + odd):item())
    assert.are.equal(odd, (odd + zero):item())
    assert.are.equal(-odd, (zero - odd):item())
    assert.are.equal(odd * 3, (zero + odd):mul(3):item())
    assert.is_false(zero:eq(odd):item())
    assert.is_true((zero + odd):eq(odd):item())
    assert.are.equal(compat.max_integer - 1, (max - 1):item())
    assert.are.equal(odd, zero:clone():fill_(odd):item())
    assert.are.equal(math.mininteger, zero:clone():fill_(math.mininteger):item())
    assert.are.same({ odd, 0 }, edges.tensor("int64", { 0, 0 }, "cpu"):masked_fill(tc.tensor({ true, false }), odd)
      :totable())
    local ok, message = pcall(zero.masked_fill, zero, tc.tensor({ 1.0 }), odd)
    assert.is_false(ok)
    assert.truthy(message:find("masked_fill: the mask must be bool or uint8", 1, true), message)
  end)

  it("makes int64 tensors from Lua lists exactly: past 2^53, math.maxinteger, item and sum", function()
    if not compat.has_integers then
      pending("needs 64-bit Lua integers (5.3, 5.4)")
      return
    end
    local odd = wide(53) + 1
    local t = tc.tensor({ odd, compat.max_integer, math.mininteger }, { dtype = "int64" })
    assert.are.same({ odd, compat.max_integer, math.mininteger }, t:totable())
    assert.are.equal(odd, t[1]:item())
    assert.are.equal(compat.max_integer, tc.tensor({ compat.max_integer }, { dtype = "int64" }):item())
    assert.are.equal(odd + 2, tc.tensor({ odd, 2 }, { dtype = "int64" }):sum():item())
    assert.are.equal(compat.max_integer, tc.tensor({ compat.max_integer - 1, 1 }, { dtype = "int64" }):sum():item())
    assert.are.equal(compat.max_integer, tc.tensor({ { compat.max_integer } }, { dtype = "int64" }):sum(2):item())
    -- a Lua float is refused when int64 cannot hold it exactly
    local ok, message = pcall(tc.tensor, { 2 ^ 63 }, { dtype = "int64" })
    assert.is_false(ok)
    assert.truthy(message:find("out of its range", 1, true), message)
  end)

  it("keeps bool arithmetic logical: + is or, * is and", function()
    local a, b = tc.tensor({ true, true, false, false }), tc.tensor({ true, false, true, false })
    assert.are.same({ true, true, true, false }, (a + b):totable())
    assert.are.same({ true, false, false, false }, (a * b):totable())
    assert.are.same({ true, true, true, false }, a:maximum(b):totable())
    assert.are.same({ true, false, false, false }, a:minimum(b):totable())
    -- before: true + true held a 2, which no longer compared equal to true
    assert.are.same({ true, true, false, false }, (a + a):eq(true):totable())
    assert.are.equal(2, (a + a):sum():item())
  end)

  it("clamps integers with bounds they hold, as float32 with fractional bounds, and refuses the rest", function()
    local x = tc.tensor({ -5, 0, 5 }, { dtype = "int32" })
    assert.are.same({ -2, 0, 2 }, x:clamp(-2, 2):totable())
    assert.are.same({ -5, 0, 2 }, x:clamp(-math.huge, 2):totable())
    local half = x:clamp(-1.5, 1.5)
    assert.are.equal("float32", half.dtype)
    assert.are.same({ -1.5, 0, 1.5 }, half:totable())
    local ok, message = pcall(x.clamp, x, -1e30, 1e30)
    assert.is_false(ok)
    assert.truthy(message:find("clamp: the scalar -1e+30 is out of the range of int32", 1, true), message)
    ok, message = pcall(x.clamp, x, 0, 0 / 0)
    assert.is_false(ok)
    assert.truthy(message:find("clamp: max is NaN", 1, true), message)
    ok, message = pcall(tc.tensor({ true }).clamp, tc.tensor({ true }), 0, 2)
    assert.is_false(ok)
    assert.truthy(message:find("clamp: a bool tensor", 1, true), message)
  end)
end)
