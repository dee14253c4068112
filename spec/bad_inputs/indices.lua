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
  -- t[{}] is Torch7's whole tensor now; a table entry that is not a position or a range is refused
  { "t[{\"a\"}]", function() return tc.zeros({ 3 })[{ "a" }] end, { "[]", "entry 1", "string" } },
  { "t[1] of a 0-dim tensor", function() return tc.tensor(1)[1] end, { "[]", "0-dim" } },
  -- t[1] = value assigns in place now (Torch7's way); a string value is refused
  { "t[1] = a string", function() local t = tc.zeros({ 3 }); t[1] = "2" end,
    { "[]=", "number or a tensor", "string" } },
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
  -- Torch7 ranges and masks (lua/tricycle/selection.lua); before: every table or tensor key was refused
  { "t[{4}] of 3 rows", function() return tc.zeros({ 3, 2 })[{ 4 }] end, { "[]", "index 4", "size 3", "{3, 2}" } },
  { "t[{1, 3}] past dim 2", function() return tc.zeros({ 3, 2 })[{ 1, 3 }] end,
    { "[]", "index 3", "dim 2", "size 2" } },
  { "t[{{2, 5}}] past the end", function() return tc.zeros({ 3, 2 })[{ { 2, 5 } }] end,
    { "[]", "range {2, 5}", "dim 1", "size 3" } },
  { "t[{{3, 2}}] ends before it starts", function() return tc.zeros({ 3, 2 })[{ { 3, 2 } }] end,
    { "[]", "{3, 2}", "ends before it starts" } },
  { "t[{{0, 2}}]", function() return tc.zeros({ 3 })[{ { 0, 2 } }] end, { "[]", "range {0, 2}", "1 to 3" } },
  { "t[{{1, 2, 3}}]", function() return tc.zeros({ 3 })[{ { 1, 2, 3 } }] end, { "[]", "entry 1", "3 values" } },
  { "t[{1, 1, 1}] of a 2-D tensor", function() return tc.zeros({ 3, 2 })[{ 1, 1, 1 }] end,
    { "[]", "3 indices", "{3, 2}" } },
  { "t[{1.5}]", function() return tc.zeros({ 3 })[{ 1.5 }] end, { "[]", "1.5", "size 3" } },
  { "t[{x = 1}]", function() return tc.zeros({ 3 })[{ x = 1 }] end, { "[]", "key \"x\"" } },
  { "t[{nil, 1}]", function() return tc.zeros({ 3, 2 })[{ nil, 1 }] end, { "[]", "entry 1", "nil" } },
  { "t[int64 tensor]", function() return tc.zeros({ 3 })[int64({ 1 })] end, { "[]", "bool mask", "int64" } },
  { "t[mask] of another shape", function() return tc.zeros({ 3 })[tc.ones({ 2 }):gt(0)] end,
    { "[]", "mask of shape {2}", "{3}" } },
  { "t[{4}] = 1 past the end", function() local t = tc.zeros({ 3 }); t[{ 4 }] = 1 end, { "[]=", "index 4", "size 3" } },
  { "t[{{1, 2}}] = a tensor of the wrong shape", function()
    local t = tc.zeros({ 3, 2 })
    t[{ { 1, 2 } }] = tc.ones({ 3 })
  end, { "[]=", "{3}", "{2, 2}" } },
  { "t[1] = 2.5 into int64", function() local t = tc.zeros({ 3 }, { dtype = "int64" }); t[1] = 2.5 end,
    { "[]=", "2.5", "int64" } },
  { "t[2] = value into a leaf that requires grad", function()
    local t = tc.zeros({ 3 }):requires_grad_(true)
    t[2] = 1
  end, { "[]=", "leaf", "requires grad", "tc.no_grad" } },
  { "t[mask] = value into a leaf that requires grad", function()
    local t = tc.zeros({ 3 }):requires_grad_(true)
    t[t:ge(0)] = 1
  end, { "[]=", "leaf", "requires grad" } },
  { "t[mask] = value into the result of an op that requires grad", function()
    local t = tc.zeros({ 3 }):requires_grad_(true) * 2
    t[t:ge(0)] = 1
  end, { "[]=", "result of 'mul'", "requires grad" } },
  { "t[mask] = a tensor of the wrong count", function()
    local t = tc.zeros({ 4 })
    t[tc.tensor({ 1, 0, 1, 0 }):gt(0)] = tc.ones({ 3 })
  end, { "[]=", "{3}", "(2)" } },
  { "t[mask] = a mask that does not fit", function()
    local t = tc.zeros({ 4 })
    t[tc.ones({ 2, 4 }):gt(0)] = 1
  end, { "[]=", "mask of shape {2, 4}", "{4}" } },
  { "t[float mask] = 1", function() local t = tc.zeros({ 2 }); t[tc.ones({ 2 })] = 1 end,
    { "[]=", "bool mask", "float32" } },
  { "masked_select with a float mask", function() return tc.zeros({ 2 }):masked_select(tc.ones({ 2 })) end,
    { "masked_select", "bool", "float32" } },
  { "masked_select with a mask that does not broadcast", function()
    return tc.zeros({ 2, 3 }):masked_select(tc.ones({ 2 }):gt(0))
  end, { "masked_select", "{2}", "{2, 3}" } },
  -- scatter_add, index_add and scatter: engine ops checking every id before any kernel runs
  { "scatter_add with an index past the end", function()
    return tc.zeros({ 2, 3 }):scatter_add(2, int64({ { 0, 3 } }), tc.ones({ 1, 2 }))
  end, { "scatter_add", "index 3", "dim 2", "size 3" } },
  { "scatter_add with a negative index", function()
    return tc.zeros({ 2, 3 }):scatter_add(1, int64({ { -1 } }), tc.ones({ 1, 1 }))
  end, { "scatter_add", "index -1", "size 2" } },
  { "scatter_add with the largest int64", function()
    return tc.zeros({ 2, 3 }):scatter_add(1, int64_tensor({ { (wide(63) - 1) } }), tc.ones({ 1, 1 }))
  end, { "scatter_add", "9223372036854775807" } },
  { "scatter_add with the smallest int32", function()
    return tc.zeros({ 2, 3 }):scatter_add(1, int32({ { -2 ^ 31 } }), tc.ones({ 1, 1 }))
  end, { "scatter_add", "-2147483648" } },
  { "scatter_add with a float index", function()
    return tc.zeros({ 2, 3 }):scatter_add(1, tc.zeros({ 1, 1 }), tc.ones({ 1, 1 }))
  end, { "scatter_add", "index", "float32" } },
  { "scatter_add with src of another shape than the index", function()
    return tc.zeros({ 2, 3 }):scatter_add(1, int64({ { 0, 1 } }), tc.ones({ 1, 3 }))
  end, { "scatter_add", "{1, 2}", "{1, 3}" } },
  { "scatter_add with an index wider than x", function()
    return tc.zeros({ 2, 3 }):scatter_add(1, int64({ { 0, 1, 0, 1 } }), tc.ones({ 1, 4 }))
  end, { "scatter_add", "{1, 4}", "{2, 3}", "dim 2" } },
  { "scatter_add into int64", function()
    return tc.zeros({ 3 }, { dtype = "int64" }):scatter_add(1, int64({ 0 }), tc.ones({ 1 }, { dtype = "int64" }))
  end, { "scatter_add", "float32, float64, bfloat16 or float16", "int64" } },
  { "scatter_add with src of another dtype", function()
    return tc.zeros({ 3 }):scatter_add(1, int64({ 0 }), tc.ones({ 1 }, { dtype = "float64" }))
  end, { "scatter_add", "src", "float64" } },
  { "scatter_add along dim 3 of a 2-D tensor", function()
    return tc.zeros({ 2, 2 }):scatter_add(3, int64({ { 0 } }), tc.ones({ 1, 1 }))
  end, { "scatter_add", "dim 3", "{2, 2}" } },
  { "index_add with an id past the end", function()
    return tc.zeros({ 3, 2 }):index_add(1, int64({ 0, 3 }), tc.ones({ 2, 2 }))
  end, { "index_add", "index 3", "element 2", "size 3" } },
  { "index_add with a 2-D index", function()
    return tc.zeros({ 3, 2 }):index_add(1, int64({ { 0 } }), tc.ones({ 1, 2 }))
  end, { "index_add", "1-D", "{1, 1}" } },
  { "index_add with src of the wrong shape", function()
    return tc.zeros({ 3, 2 }):index_add(1, int64({ 0, 1 }), tc.ones({ 3, 2 }))
  end, { "index_add", "{3, 2}", "size 2" } },
  { "index_add with an unknown option", function()
    return tc.zeros({ 3 }):index_add(1, int64({ 0 }), tc.ones({ 1 }), { scale = 2 })
  end, { "index_add", "scale", "alpha" } },
  { "index_add with alpha a string", function()
    return tc.zeros({ 3 }):index_add(1, int64({ 0 }), tc.ones({ 1 }), { alpha = "2" })
  end, { "index_add", "alpha", "\"2\"" } },
  { "scatter with an index past the end", function()
    return tc.zeros({ 2, 3 }):scatter(2, int64({ { 5 } }), tc.ones({ 1, 1 }))
  end, { "scatter", "index 5", "size 3" } },
  -- before: scatter did not exist; a sum of the writes would be a silent wrong answer
  { "scatter naming a position twice", function()
    return tc.zeros({ 3 }):scatter(1, int64({ 1, 1 }), tc.ones({ 2 }))
  end, { "scatter", "2 times", "element 2", "scatter_add" } },
  { "scatter of a string src", function() return tc.zeros({ 3 }):scatter(1, int64({ 1 }), "x") end,
    { "scatter", "src", "string" } },
  -- sort, argsort, topk
  { "topk with k past the dim", function() return tc.zeros({ 2, 3 }):topk(4) end,
    { "topk", "k 4", "size 3", "0 to 3" } },
  { "topk with a negative k", function() return tc.zeros({ 2, 3 }):topk(-1, 1) end, { "topk", "k -1", "size 2" } },
  { "topk with k = 1.5", function() return tc.zeros({ 3 }):topk(1.5) end, { "topk", "k 1.5" } },
  { "topk with an unknown option", function() return tc.zeros({ 3 }):topk(1, 1, { biggest = true }) end,
    { "topk", "biggest", "largest", "sorted" } },
  { "topk with largest a string", function() return tc.zeros({ 3 }):topk(1, 1, { largest = "yes" }) end,
    { "topk", "largest", "boolean" } },
  { "sort along dim 3 of a 2-D tensor", function() return tc.zeros({ 2, 2 }):sort(3) end,
    { "sort", "dim 3", "{2, 2}" } },
  { "sort with an unknown option", function() return tc.zeros({ 3 }):sort(1, { reverse = true }) end,
    { "sort", "reverse", "descending", "stable" } },
  { "sort with descending a number", function() return tc.zeros({ 3 }):sort(1, { descending = 1 }) end,
    { "sort", "descending", "boolean" } },
  { "argsort along dim 0", function() return tc.zeros({ 3 }):argsort(0) end, { "argsort", "dim 0" } },
  { "sort of a number", function() return tc.sort(3) end, { "sort", "tensor", "number" } },
  { "topk with k past the size of a 0-D tensor", function() return tc.tensor(2):topk(2) end,
    { "topk", "k 2", "size 1" } },
  { "topk with k = 2^40", function() return tc.zeros({ 4, 3 }):topk(2 ^ 40, 1) end,
    { "topk", "k 1099511627776", "size 4" } },
  { "topk along dim -3 of a 2-D tensor", function() return tc.zeros({ 2, 5 }):topk(1, -3) end,
    { "topk", "dim -3", "{2, 5}" } },
  { "argsort with an options string", function() return tc.zeros({ 3 }):argsort(1, "descending") end,
    { "argsort", "options", "string" } },
  { "sort of a tensor by a tensor dim", function() return tc.zeros({ 3 }):sort(tc.zeros({ 1 })) end,
    { "sort", "dim" } },
  { "cumprod along dim 3 of a 2-D tensor", function() return tc.zeros({ 2, 2 }):cumprod(3) end,
    { "cumprod", "dim 3" } },
  { "cumprod without a dim", function() return tc.zeros({ 2, 2 }):cumprod() end, { "cumprod", "dim is required" } },
}
