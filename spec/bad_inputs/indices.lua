-- Indexing: positions from Lua (1-based) and index tensors (0-based).
local wide = require("helpers.wide")
local int64_tensor = require("helpers.int64_tensor")
local compat = require("tricycle.compat")
local tc = require("tricycle")

local function int64(values) return tc.tensor(values, { dtype = "int64" }) end
local function int32(values) return tc.tensor(values, { dtype = "int32" }) end

return {
  { "t[0]", function() return tc.zeros({ 3 })[0] end, { "[]", "1-based" } },
  { "t[4] of 3 rows", function() return tc.zeros({ 3 })[4] end, { "4", "size 3" } },
  { "t[-4] of 3 rows", function() return tc.zeros({ 3 })[-4] end, { "-4", "size 3" } },
  -- (a double rounds 2^63 - 1 to 2^63)
  { "t[maxinteger]", wide = true, function() return tc.zeros({ 3 })[(wide(63) - 1)] end, { "9223372036854775807" },
    on_doubles = { "cannot index a tensor with a number" } },
  { "t[mininteger]", wide = true, function() return tc.zeros({ 3 })[(-wide(63))] end, { "size 3" },
    on_doubles = { "-9223372036854775808", "past 2^53" } },
  { "t[1.5]", function() return tc.zeros({ 3 })[1.5] end, { "number" } },
  { "t[{}]", function() return tc.zeros({ 3 })[{}] end, { "table" } },
  { "t[1] of a 0-dim tensor", function() return tc.tensor(1)[1] end, { "[]", "0-dim" } },
  { "t[1] = value", function() local t = tc.zeros({ 3 }); t[1] = 2 end, { "tensor" } },
  { "size of dim 3 of a 2-D tensor", function() return tc.zeros({ 2, 2 }):size(3) end, { "size", "3" } },
  { "size of dim 0", function() return tc.zeros({ 2, 2 }):size(0) end, { "size", "1-based" } },
  { "gather with an index past the end",
    function() return tc.zeros({ 2, 3 }):gather(2, int64({ { 0, 3 }, { 1, 1 } })) end,
    { "gather", "3" } },
  { "gather with a negative index", function() return tc.zeros({ 2, 3 }):gather(2, int64({ { -1 }, { 0 } })) end,
    { "gather", "-1" } },
  { "gather with the smallest int64", function()
    return tc.zeros({ 2, 3 }):gather(2, int64_tensor({ { (-wide(63)) }, { 0 } }))
  end, { "gather", "-9223372036854775808" } },
  { "gather with the largest int64", function()
    return tc.zeros({ 2, 3 }):gather(2, int64_tensor({ { (wide(63) - 1) }, { 0 } }))
  end, { "gather", "9223372036854775807" } },
  { "gather with the smallest int32", function()
    return tc.zeros({ 2, 3 }):gather(2, int32({ { -2 ^ 31 }, { 0 } }))
  end, { "gather", "-2147483648" } },
  { "gather with a float index", function() return tc.zeros({ 2, 3 }):gather(2, tc.zeros({ 2, 1 })) end,
    { "gather", "float32" } },
  { "gather with a bool index",
    function() return tc.zeros({ 2, 3 }):gather(2, tc.zeros({ 2, 1 }, { dtype = "bool" })) end,
    { "gather", "bool" } },
  { "gather with an index of another rank", function() return tc.zeros({ 2, 3 }):gather(2, int64({ 0, 1 })) end,
    { "gather", "{2}", "{2, 3}" } },
  { "gather with an index larger than the input", function()
    return tc.zeros({ 2, 3 }):gather(2, int64({ { 0 }, { 0 }, { 0 } }))
  end, { "gather", "{3, 1}" } },
  { "gather over dim 3", function() return tc.zeros({ 2, 3 }):gather(3, int64({ { 0 }, { 0 } })) end,
    { "gather", "3" } },
  { "gather of a 0-dim tensor", function() return tc.tensor(1):gather(1, int64({ 0 })) end, { "gather" } },
  { "index_select past the end", function() return tc.zeros({ 4, 3 }):index_select(1, int64({ 4 })) end,
    { "index_select", "4" } },
  { "index_select with a negative index", function() return tc.zeros({ 4, 3 }):index_select(1, int64({ -5 })) end,
    { "index_select", "-5" } },
  { "index_select with a 2-D index", function() return tc.zeros({ 4, 3 }):index_select(1, int64({ { 0 } })) end,
    { "index_select", "{1, 1}" } },
  { "index_select with a float index", function() return tc.zeros({ 4, 3 }):index_select(1, tc.zeros({ 1 })) end,
    { "index_select", "float32" } },
  { "index_select over dim 3", function() return tc.zeros({ 4, 3 }):index_select(3, int64({ 0 })) end,
    { "index_select", "3" } },
  { "index_select with a number as the index", function() return tc.zeros({ 4, 3 }):index_select(1, 2) end,
    { "index_select", "tensor" } },
  { "embedding with an id past the end", function() return tc.embedding(tc.zeros({ 5, 3 }), int64({ 1, 5 })) end,
    { "embedding", "5" } },
  { "embedding with a negative id", function() return tc.embedding(tc.zeros({ 5, 3 }), int64({ -1 })) end,
    { "embedding", "-1" } },
  { "embedding with the smallest int64", function()
    return tc.embedding(tc.zeros({ 5, 3 }), int64_tensor({ (-wide(63)) }))
  end, { "embedding", "-9223372036854775808" } },
  { "embedding with float ids", function() return tc.embedding(tc.zeros({ 5, 3 }), tc.zeros({ 2 })) end,
    { "embedding", "float32" } },
  { "embedding with a 1-D weight", function() return tc.embedding(tc.zeros({ 5 }), int64({ 1 })) end,
    { "embedding", "{5}" } },
  { "embedding with ids of 8 dims", function()
    return tc.embedding(tc.zeros({ 5, 3 }), tc.zeros({ 1, 1, 1, 1, 1, 1, 1, 1 }, { dtype = "int64" }))
  end, { "embedding", "{1, 1, 1, 1, 1, 1, 1, 1}", "at most 7" } },
  { "masked_fill with a float mask", function() return tc.zeros({ 2 }):masked_fill(tc.zeros({ 2 }), 1) end,
    { "masked_fill", "float32" } },
  { "masked_fill with NaN into int64", function()
    return tc.zeros({ 2 }, { dtype = "int64" }):masked_fill(tc.ones({ 2 }, { dtype = "bool" }), 0 / 0)
  end, { "masked_fill", "int64" } },
  { "where with an int64 condition", function()
    return tc.where(tc.zeros({ 2 }, { dtype = "int64" }), tc.ones({ 2 }), tc.zeros({ 2 }))
  end, { "where", "int64" } },
  { "where with two numbers", function() return tc.where(tc.zeros({ 2 }, { dtype = "bool" }), 1, 2) end, { "where" } },
  { "select with dim 0", function() return tc.zeros({ 2 }):select(0, 1) end, { "select", "1-based" } },
  { "select with index 0", function() return tc.zeros({ 2 }):select(1, 0) end, { "select", "1-based" } },
  { "select with a fractional index", function() return tc.zeros({ 2 }):select(1, 1.5) end, { "select" } },
  { "narrow with a fractional length", function() return tc.zeros({ 2 }):narrow(1, 1, 0.5) end, { "narrow" } },
  { "a dim given as a string", function() return tc.zeros({ 2 }):sum("1") end, { "sum", "string" } },
  { "a dim given as a fraction", function() return tc.zeros({ 2 }):sum(1.5) end, { "sum", "integer" } },
  { "item of an empty tensor", function() return tc.zeros({ 0 }):item() end, { "item", "{0}" } },
  -- before: one_hot did not exist; eq against arange would give an all-zero row for an id out of range
  { "one_hot of an id past num_classes", function() return tc.one_hot(tc.tensor({ 0, 3 }, { dtype = "int64" }), 3) end,
    { "one_hot", "index 3", "3 classes" } },
  { "one_hot of a negative id", function() return tc.one_hot(tc.tensor({ -1, 0 }, { dtype = "int64" })) end,
    { "one_hot", "index -1" } },
  { "one_hot with 0 classes", function() return tc.one_hot(tc.tensor({ 0 }, { dtype = "int64" }), 0) end,
    { "one_hot", "num_classes", "0" } },
  { "one_hot with 2.5 classes", function() return tc.one_hot(tc.tensor({ 0 }, { dtype = "int64" }), 2.5) end,
    { "one_hot", "num_classes", "2.5" } },
  { "one_hot of an empty index without num_classes", function()
    return tc.one_hot(tc.zeros({ 0 }, { dtype = "int64" }))
  end, { "one_hot", "num_classes", "empty", "{0}" } },
  { "one_hot of a number", function() return tc.one_hot(3, 4) end, { "one_hot", "index", "number" } },
}
