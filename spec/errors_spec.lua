-- Bad inputs give clear Lua errors (the function's name, and the shapes where
-- shapes are involved) and leave the process and the state usable.
local tc = require("tricycle")
local compat = require("tricycle.compat")

local function int64(values) return tc.tensor(values, { dtype = "int64" }) end

-- {name, function that must fail, patterns the message must contain (plain text)}
local cases = {
  { "add with shapes that do not broadcast", function() return tc.zeros({ 2, 3 }) + tc.zeros({ 4 }) end,
    { "add", "{2, 3}", "{4}" } },
  { "mul with shapes that do not broadcast", function() return tc.zeros({ 2, 3 }):mul(tc.zeros({ 3, 2 })) end,
    { "mul", "{2, 3}", "{3, 2}" } },
  { "matmul with shapes that do not align", function() return tc.zeros({ 2, 3 }):matmul(tc.zeros({ 4, 5 })) end,
    { "matmul", "{2, 3}", "{4, 5}" } },
  { "requires_grad on an int64 tensor",
    function() return tc.zeros({ 2 }, { dtype = "int64", requires_grad = true }) end,
    { "int64" } },
  { "setting requires_grad on an int64 tensor", function() int64({ 1 }).requires_grad = true end, { "int64" } },
  { "where with a float condition", function() return tc.where(tc.zeros({ 2 }), tc.ones({ 2 }), tc.zeros({ 2 })) end,
    { "where", "float32" } },
  { "add with a string", function() return tc.zeros({ 2 }):add("x") end, { "add", "string" } },
  { "cat with numbers", function() return tc.cat({ 1, 2 }) end, { "cat", "number" } },
  { "cat with shapes that differ", function() return tc.cat({ tc.zeros({ 2, 3 }), tc.zeros({ 2, 4 }) }, 1) end,
    { "cat", "{2, 3}", "{2, 4}" } },
  { "stack with shapes that differ", function() return tc.stack({ tc.zeros({ 2 }), tc.zeros({ 3 }) }) end,
    { "stack", "{2}", "{3}" } },
  { "sum over dim 5 of a 2-D tensor", function() return tc.zeros({ 2, 3 }):sum(5) end, { "sum", "5" } },
  { "transpose with dim 9", function() return tc.zeros({ 2, 3 }):transpose(1, 9) end, { "transpose", "1 and 9" } },
  { "dim 0 (dims are 1-based)", function() return tc.zeros({ 2, 3 }):sum(0) end, { "sum", "0", "1-based" } },
  { "softmax over dim 3 of a 2-D tensor", function() return tc.zeros({ 2, 3 }):softmax(3) end, { "softmax", "3" } },
  { "backward on a non-scalar without a gradient",
    function() (tc.zeros({ 2 }, { requires_grad = true }) * 2):backward() end,
    { "backward", "{2}" } },
  { "backward on a tensor that does not require grad", function() tc.zeros({}):backward() end, { "backward" } },
  { "use after t:free() (the plain form of <close>)", function()
    local t = tc.zeros({ 2 })
    t:free()
    return t:exp()
  end, { "exp", "closed" } },
  { "gather with an index out of range",
    function() return tc.zeros({ 2, 3 }):gather(2, int64({ { 0, 3 }, { 1, 1 } })) end,
    { "gather", "3" } },
  { "gather with a float index", function() return tc.zeros({ 2, 3 }):gather(2, tc.zeros({ 2, 1 })) end,
    { "gather", "float32" } },
  { "embedding with an id out of range", function() return tc.embedding(tc.zeros({ 5, 3 }), int64({ 1, 5 })) end,
    { "embedding", "5" } },
  { "embedding with a negative id", function() return tc.embedding(tc.zeros({ 5, 3 }), int64({ -1 })) end,
    { "embedding", "-1" } },
  { "index_select with an index out of range", function() return tc.zeros({ 4, 3 }):index_select(1, int64({ 4 })) end,
    { "index_select", "4" } },
  { "reshape to a wrong size", function() return tc.zeros({ 2, 3 }):reshape(4, 2) end,
    { "reshape", "{4, 2}", "{2, 3}" } },
  { "view of a non-contiguous tensor", function() return tc.zeros({ 2, 3 }):transpose(1, 2):view(6) end, { "view" } },
  { "narrow past the end", function() return tc.zeros({ 2, 5 }):narrow(2, 4, 3) end,
    { "narrow", "start 4", "dim 2", "5" } },
  { "select past the end", function() return tc.zeros({ 2, 5 }):select(1, 3) end, { "select", "3" } },
  { "t[i] past the end", function() return tc.zeros({ 2, 5 })[7] end, { "7" } },
  { "expand of a size that is not 1", function() return tc.zeros({ 2, 3 }):expand(4, 3) end, { "expand", "{2, 3}" } },
  { "permute with a repeated dim", function() return tc.zeros({ 2, 3 }):permute(1, 1) end, { "permute" } },
  { "an unknown dtype", function() return tc.zeros({ 2 }, { dtype = "float16x" }) end, { "zeros", "float16x" } },
  { "a ragged nested table", function() return tc.tensor({ { 1, 2 }, { 3 } }) end, { "tensor", "ragged" } },
  { "a string in the data", function() return tc.tensor({ 1, "a" }) end, { "tensor", "string" } },
  { "300 in a uint8 tensor", function() return tc.tensor({ 1, 300 }, { dtype = "uint8" }) end,
    { "tensor", "entry [2]", "300", "uint8", "range" } },
  { "-1 in a uint8 tensor", function() return tc.tensor({ { 0, 1 }, { -1, 2 } }, { dtype = "uint8" }) end,
    { "tensor", "entry [2][1]", "uint8" } },
  { "2^31 in an int32 tensor", function() return tc.tensor({ 2 ^ 31 }, { dtype = "int32" }) end,
    { "tensor", "entry [1]", "int32", "range" } },
  { "2^63 in an int64 tensor", function() return tc.tensor({ 2 ^ 63 }, { dtype = "int64" }) end,
    { "tensor", "int64", "range" } },
  { "NaN in an int64 tensor", function() return tc.tensor({ 0 / 0 }, { dtype = "int64" }) end,
    { "tensor", "int64", "not an integer" } },
  { "a fraction in an int64 tensor", function() return tc.tensor({ 1, 2.5 }, { dtype = "int64" }) end,
    { "tensor", "entry [2]", "2.5", "not an integer" } },
  { "a negative size", function() return tc.zeros({ 2, -1 }) end, { "zeros", "negative" } },
  { "item of a tensor with several elements", function() return tc.zeros({ 2, 2 }):item() end, { "item" } },
  { "copy_ from a shape that does not broadcast", function() return tc.zeros({ 2, 3 }):copy_(tc.zeros({ 4 })) end,
    { "copy_", "{4}" } },
  { "einsum with a wrong operand count", function() return tc.einsum("ij,jk->ik", tc.zeros({ 2, 3 })) end,
    { "einsum" } },
  { "einsum with sizes that disagree",
    function() return tc.einsum("ij,jk->ik", tc.zeros({ 2, 3 }), tc.zeros({ 4, 5 })) end,
    { "einsum" } },
  { "dropout with p outside [0, 1)", function() return tc.zeros({ 2 }):dropout(1.5) end, { "dropout", "1.5" } },
  { "gelu with an unknown approximation", function() return tc.zeros({ 2 }):gelu("fast") end, { "gelu", "fast" } },
  { "an unknown target for to()", function() return tc.zeros({ 2 }):to("tpu") end, { "to", "tpu" } },
  { "assigning an unknown field", function() tc.zeros({ 2 }).shape = { 1 } end, { "shape" } },
  { "a grad of the wrong shape", function() tc.zeros({ 2 }, { requires_grad = true }).grad = tc.zeros({ 3 }) end,
    { "grad", "{3}" } },
}

describe("errors", function()
  for _, case in ipairs(cases) do
    local name, fn, patterns = case[1], case[2], case[3]
    it(name .. " raises a clear error", function()
      local ok, message = pcall(fn)
      assert.is_false(ok, name .. " did not raise")
      assert.are.equal("string", type(message))
      for _, pattern in ipairs(patterns) do
        assert.truthy(message:find(pattern, 1, true), ("message %q lacks %q"):format(message, pattern))
      end
      -- the state is still usable afterwards
      assert.are.same({ 2, 4 }, (tc.tensor({ 1, 2 }) * 2):totable())
      assert.is_true(tc.is_grad_enabled())
    end)
  end

  it("a second backward through a freed graph says what to do", function()
    local x = tc.tensor({ 1, 2 }, { requires_grad = true })
    local y = (x * x):sum()
    y:backward()
    local ok, message = pcall(y.backward, y)
    assert.is_false(ok)
    assert.truthy(message:find("backward", 1, true))
    assert.truthy(message:find("retain_graph", 1, true))
  end)

  it("integer tensors take every integer of their range from a table", function()
    assert.are.same({ 0, 255 }, tc.tensor({ 0, 255 }, { dtype = "uint8" }):totable())
    assert.are.same({ -2147483648, 2147483647 }, tc.tensor({ -2 ^ 31, 2 ^ 31 - 1 }, { dtype = "int32" }):totable())
    if compat.has_integers then
      assert.are.same({ math.mininteger, 2 ^ 53 }, tc.tensor({ -2 ^ 63, 2 ^ 53 }, { dtype = "int64" }):totable())
    else -- (2^53 is the largest integer there; -2^63 is refused by name)
      assert.are.same({ -2 ^ 53, 2 ^ 53 }, tc.tensor({ -2 ^ 53, 2 ^ 53 }, { dtype = "int64" }):totable())
      local ok, message = pcall(tc.tensor, { -2 ^ 63 }, { dtype = "int64" })
      assert.is_false(ok)
      assert.truthy(message:find("tensor: the integer -9223372036854775808 is past 2^53", 1, true), message)
    end
    assert.are.same({ 1, 0 }, tc.tensor({ true, false }, { dtype = "int64" }):totable())
  end)

  it("a constructor's argument error names the line that called it", function()
    local nn = require("tricycle.nn")
    local this_file = debug.getinfo(1, "S").short_src
    local constructors = {
      function() local m = nn.Linear(0, 3) return m end,
      function() local m = nn.Dropout(2) return m end,
      function()
        local m = nn.GPT({ vocab_size = 10, context_length = 8, n_layer = 1, n_head = 3, n_embd = 16 })
        return m
      end,
      function() local m = nn.Sequential(nn.Linear(2, 3), nn.Embedding(-1, 2)) return m end,
    }
    for i, construct in ipairs(constructors) do
      local ok, message = pcall(construct)
      assert.is_false(ok)
      assert.are.equal(this_file .. ":", message:sub(1, #this_file + 1), ("constructor %d: %s"):format(i, message))
      assert.is_nil(message:find("module.lua", 1, true), message)
    end
  end)

  it("survives many errors in a row", function()
    for _ = 1, 1000 do
      assert.is_false(pcall(function() return tc.zeros({ 2, 3 }) + tc.zeros({ 4 }) end))
    end
    assert.are.same({ 3 }, (tc.ones({ 1 }) * 3):totable())
  end)

  it("places an error raised inside the library at the caller's line, not at lua/tricycle/...:LINE:", function()
    -- before: "lua/tricycle/tokenizer.lua:114: tokenizer.load: ..." (the wrapper's line)
    local ok, message = pcall(function()
      local tok = tc.tokenizer.load("/nonexistent/tokenizer.txt")
      return tok
    end)
    assert.is_false(ok)
    assert.truthy(message:find("^spec/errors_spec%.lua:%d+: tokenizer%.load: "), message)
    ok, message = pcall(function()
      local layers = tc.nn.Sequential(tc.nn.Linear(2, 2), 5)
      return layers
    end)
    assert.is_false(ok)
    assert.truthy(message:find("^spec/errors_spec%.lua:%d+: Sequential: entry 2 is a number"), message)
    -- a user's own error passing through a library wrapper keeps its location
    local errors = require("tricycle.errors")
    ok, message = pcall(errors.call, function() error("mine") end)
    assert.is_false(ok)
    assert.truthy(message:find("^spec/errors_spec%.lua:%d+: mine$"), message)
  end)
end)
