-- Making tensors: sizes, dtypes, data and options.
local compat = require("tricycle.compat")
local wide = require("helpers.wide")
local tc = require("tricycle")

local big = wide(62)
local huge = { 4294967296, 4294967296 } -- 2^64 elements: the count wraps int64 to 0

return {
  -- before: the byte count wrapped size_t, a tiny block was allocated and the fill wrote past it
  { "zeros of 2^62 elements", wide = true, function() return tc.zeros({ big }) end,
    { "zeros", "{4611686018427387904}", "too large" } },
  { "ones of 2^62 elements", wide = true, function() return tc.ones({ big }) end, { "ones", "too large" } },
  { "full of 2^62 elements", wide = true, function() return tc.full({ big }, 1) end, { "full", "too large" } },
  { "rand of 2^62 elements", wide = true, function() return tc.rand({ big }) end, { "rand", "too large" } },
  { "randn of 2^62 elements", wide = true, function() return tc.randn({ big }) end, { "randn", "too large" } },
  -- before: numel was 0, shapes were accepted and t[2]:sum() read out of bounds
  { "empty of 2^32 x 2^32", function() local t = tc.empty(huge); return t[2]:sum() end,
    { "empty", "{4294967296, 4294967296}", "too large" } },
  -- before: numel() returned 0
  { "zeros of 2^32 x 2^32", function() return tc.zeros(huge):numel() end, { "zeros", "{4294967296, 4294967296}" } },
  -- before: storage_bytes() returned -8
  { "float64 of 2^61 - 1 elements", wide = true, function()
    return tc.empty({ (wide(61)) - 1 }, { dtype = "float64" }):storage_bytes()
  end, { "empty", "float64", "too large" } },
  { "int64 of 2^60 elements", wide = true,
    function() return tc.zeros({ wide(60) }, { dtype = "int64" }) end, { "zeros", "int64" } },
  -- (where numbers are doubles, 2^63 - 1 is 2^63, past int64: not an integer)
  { "maxinteger as a size", wide = true, function() return tc.zeros({ (wide(63) - 1) }) end, { "zeros", "too large" },
    on_doubles = { "zeros", "shape entry 1 must be an integer" } },
  { "2^62 with a zero size beside it (float32)", wide = true, function() return tc.ones({ big, 0 }) end,
    { "ones", "{4611686018427387904, 0}" } },
  { "three sizes of 2^21 and one of 2^22", function() return tc.empty({ 2097152, 2097152, 2097152, 4194304 }) end,
    { "empty", "too large" } },
  { "sizes as numbers past 2^63",
    function() return tc.zeros(2147483648, 2147483648, 2147483648) end, { "zeros", "too large" } },
  -- before: a 2^64-element shape passed the length check and read past the string
  { "from_bytes with a wrapping shape", function() return tc.from_bytes("", "float32", huge) end,
    { "from_bytes", "{4294967296, 4294967296}" } },
  { "from_bytes with too few bytes", function() return tc.from_bytes("abc", "float32", { 1 }) end,
    { "from_bytes", "3 bytes", "1 elements" } },
  { "from_bytes with too many bytes", function() return tc.from_bytes("abcdefgh", "float32", { 1 }) end,
    { "from_bytes", "8 bytes" } },
  { "from_bytes with a negative size", function() return tc.from_bytes("", "float32", { -1 }) end,
    { "from_bytes", "negative" } },
  { "from_bytes with an unknown dtype", function() return tc.from_bytes("", "float8", { 0 }) end, { "unknown dtype" } },
  { "from_bytes with a fractional size", function() return tc.from_bytes("", "float32", { 0.5 }) end,
    { "from_bytes", "integer" } },
  { "a negative size", function() return tc.zeros({ 2, -3 }) end, { "zeros", "negative", "-3" } },
  { "the smallest integer as a size", wide = true, function() return tc.empty({ (-wide(63)) }) end,
    { "empty", "negative", tostring((-wide(63))) } },
  { "a fractional size", function() return tc.zeros({ 2.5 }) end, { "zeros", "integer" } },
  { "a string as a size", function() return tc.zeros({ "2" }) end, { "zeros", "integer", "string" } },
  { "NaN as a size", function() return tc.ones({ 0 / 0 }) end, { "ones", "integer" } },
  { "nine dims", function() return tc.zeros({ 1, 1, 1, 1, 1, 1, 1, 1, 1 }) end, { "zeros", "8 dims" } },
  { "nine sizes as numbers", function() return tc.zeros(1, 1, 1, 1, 1, 1, 1, 1, 1) end, { "zeros", "8 dims" } },
  { "an unknown dtype", function() return tc.zeros({ 2 }, { dtype = "complex64" }) end, { "zeros", "complex64" } },
  { "a dtype that is not a string", function() return tc.ones({ 2 }, { dtype = 4 }) end,
    { "ones", "dtype", "number" } },
  { "an unknown option", function() return tc.zeros({ 2 }, { dtypes = "float64" }) end,
    { "zeros", "dtypes", "valid: dtype, requires_grad" } },
  { "an option with a number key", function() return tc.full({ 2 }, 1, { "float64" }) end,
    { "full", "unknown option" } },
  { "requires_grad on an int32 tensor", function() return tc.ones({ 2 }, { dtype = "int32", requires_grad = true }) end,
    { "requires_grad", "int32" } },
  { "full with NaN in an int64 tensor", function() return tc.full({ 2 }, 0 / 0, { dtype = "int64" }) end,
    { "full", "NaN" } },
  { "full with 2^63 in an int64 tensor", function() return tc.full({ 2 }, 2 ^ 63, { dtype = "int64" }) end,
    { "full", "int64" } },
  { "full with 256 in a uint8 tensor", function() return tc.full({ 2 }, 256, { dtype = "uint8" }) end,
    { "full", "256", "uint8" } },
  { "full without a value", function() return tc.full({ 2 }) end, { "full", "number" } },
  { "arange with step 0", function() return tc.arange(0, 10, 0) end, { "arange", "step" } },
  { "arange with NaN", function() return tc.arange(0, 0 / 0) end, { "arange", "finite" } },
  { "arange with infinity", function() return tc.arange(0, math.huge) end, { "arange", "finite" } },
  { "arange of 2^62 elements", function() return tc.arange(0, 2 ^ 62) end, { "arange", "too many" } },
  { "arange without bounds", function() return tc.arange() end, { "arange" } },
  -- before: the steps were truncated to 0, 0, 1, 1, ...
  { "arange of int64 with a fractional step", function() return tc.arange(0, 5, 0.5, { dtype = "int64" }) end,
    { "arange", "0.5", "int64" } },
  -- before: values past int32's range were converted with undefined behaviour
  { "arange of int32 past its range", function() return tc.arange(0, 2 ^ 32, 2 ^ 31, { dtype = "int32" }) end,
    { "arange", "int32" } },
  { "arange of uint8 from -1", function() return tc.arange(-1, 3, { dtype = "uint8" }) end, { "arange", "uint8" } },
  -- before: the message said "-nan"
  { "full with NaN in an int32 tensor", function() return tc.full({ 2 }, 0 / 0, { dtype = "int32" }) end,
    { "full", "NaN", "int32" } },
  { "arange with a string", function() return tc.arange("x") end, { "arange", "number" } },
  { "arange with an unknown option", function() return tc.arange(3, { dtyp = "int32" }) end,
    { "arange", "dtyp", "valid" } },
  { "rand of int64", function() return tc.rand({ 2 }, { dtype = "int64" }) end, { "rand", "int64" } },
  { "randn of bool", function() return tc.randn({ 2 }, { dtype = "bool" }) end, { "randn", "bool" } },
  -- before: four levels of 2^16 entries that repeat one table claimed 2^64 values; the buffer for them wrapped
  { "nested data claiming 2^64 entries", function()
    local level = { 1 }
    for _ = 1, 4 do
      local outer = {}
      for i = 1, 65536 do outer[i] = level end
      level = outer
    end
    return tc.tensor(level)
  end, { "tensor", "too large" } },
  { "nested data deeper than 8 levels", function()
    return tc.tensor({ { { { { { { { { 1 } } } } } } } } })
  end, { "tensor", "8" } },
  { "ragged data", function() return tc.tensor({ { 1, 2 }, { 3 } }) end, { "tensor", "ragged" } },
  { "a table where a number is expected", function() return tc.tensor({ 1, { 2 } }) end, { "tensor", "table" } },
  { "a number where a list is expected", function() return tc.tensor({ { 1 }, 2 }) end, { "tensor", "ragged" } },
  -- before (LuaJIT, where #{1, nil, 3} is 1): a tensor of the entries before the nil, the rest dropped
  { "nil in the data", function() return tc.tensor({ 1, nil, 3 }) end, { "tensor", "entry 2 at depth 1 is a nil" } },
  { "nil in a nested row", function() return tc.tensor({ { 1, 2 }, { 3, nil, 5 } }) end,
    { "tensor", "ragged data", "3 entries where 2" } },
  -- before (LuaJIT): zeros({2, nil, 3}) made a tensor of shape {2}
  { "nil in a shape", function() return tc.zeros({ 2, nil, 3 }) end, { "zeros", "shape entry 2", "nil" } },
  { "a function as data", function() return tc.tensor(print) end, { "tensor", "function" } },
  { "300 in a uint8 tensor", function() return tc.tensor({ 300 }, { dtype = "uint8" }) end,
    { "tensor", "300", "uint8" } },
  { "-2^31 - 1 in an int32 tensor", function() return tc.tensor({ -2 ^ 31 - 1 }, { dtype = "int32" }) end,
    { "tensor", "int32", "range" } },
  { "infinity in an int64 tensor", function() return tc.tensor({ math.huge }, { dtype = "int64" }) end,
    { "tensor", "int64" } },
  { "an unknown option of tensor", function() return tc.tensor({ 1 }, { device = "cpu", dtype = "float32" }) end,
    { "tensor", "device", "valid" } },
  -- the composed creation functions (tricycle/composed.lua)
  { "linspace with a fractional count", function() return tc.linspace(0, 1, 2.5) end, { "linspace", "steps", "2.5" } },
  { "linspace with an infinite end", function() return tc.linspace(0, math.huge, 3) end,
    { "linspace", "stop", "inf" } },
  { "linspace of int64", function() return tc.linspace(0, 1, 3, { dtype = "int64" }) end,
    { "linspace", "dtype", "int64" } },
  { "linspace with a misspelt option", function() return tc.linspace(0, 1, 3, { dtyp = "float64" }) end,
    { "linspace", "dtyp", "valid: dtype, requires_grad" } },
  { "randint with high not above low", function() return tc.randint(5, 2, { 3 }) end, { "randint", "5", "2" } },
  { "randint with a fractional bound", function() return tc.randint(0.5, { 3 }) end, { "randint", "0.5" } },
  { "randint over more than 2^52 values", function() return tc.randint(-4503599627370496, 4503599627370496, { 1 }) end,
    { "randint", "2^52" } },
  { "randint of float32", function() return tc.randint(4, { 2 }, { dtype = "float32" }) end,
    { "randint", "dtype", "float32" } },
  { "randint requiring grad", function() return tc.randint(4, { 2 }, { requires_grad = true }) end,
    { "randint", "grad" } },
  { "randint with a number for shape", function() return tc.randint(0, 4, 3) end, { "randint", "shape", "number" } },
  { "randperm of -1", function() return tc.randperm(-1) end, { "randperm", "n", "-1" } },
  { "randperm of float64", function() return tc.randperm(3, { dtype = "float64" }) end,
    { "randperm", "dtype", "float64" } },
  { "eye of -2 rows", function() return tc.eye(-2) end, { "eye", "n", "-2" } },
  { "eye of 1.5 columns", function() return tc.eye(2, 1.5) end, { "eye", "m", "1.5" } },
  { "zeros_like of a table", function() return tc.zeros_like({ 1, 2 }) end, { "zeros_like", "tensor", "table" } },
  { "ones_like with an unknown option", function() return tc.ones_like(tc.zeros({ 2 }), { device = "cpu" }) end,
    { "ones_like", "device", "valid" } },
  { "full_like of a fraction into int32", function() return tc.full_like(tc.zeros({ 2 }, { dtype = "int32" }), 1.5) end,
    { "full_like", "1.5" } },
  { "rand_like of an int64 tensor", function() return tc.rand_like(tc.zeros({ 2 }, { dtype = "int64" })) end,
    { "rand_like", "int64" } },
  { "randn_like with requires_grad a string", function()
    return tc.randn_like(tc.zeros({ 2 }), { requires_grad = "yes" })
  end, { "randn_like", "requires_grad", "yes" } },
}
