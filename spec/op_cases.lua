--- The op list: one row per op of src/op_list.h (tc.ops()), each a list of
-- cases that spec/helpers/op_runner.lua runs on every backend present
-- (spec/ops_spec.lua on the CPU, spec/cuda_emulation_spec.lua on the cuda
-- device, emulated or real). A row is {op = "name", cases = {...}}; a case:
--
--   name              what it shows
--   inputs            input specs, made by the constructors below: float
--                     (random floating values in the case's dtype, with a
--                     gradient), const (the same without one), given
--                     (explicit values), index (fixed integers), mask
--                     (booleans), zeros; options: layout ("transposed",
--                     "strided" or a permutation order the stored tensor is
--                     seen through), view (a function applied to the leaf
--                     inside the graph), grad = false, patch (flat index ->
--                     value, or a function(flat, dtype))
--   run(args..., env) calls the op; returns its result(s). env.device,
--                     env.dtype and env.other (the other device) are given
--   reference(values..., env)
--                     the expected result(s) in plain Lua from the inputs'
--                     values (helpers/op_reference.lua)
--   dtypes            the dtypes floating inputs take (default float64 and
--                     float32; integer and bool runs compare exactly)
--   tolerance         per dtype against the reference (atol = rtol, or
--                     {atol =, rtol =}); default 1e-12 and 1e-5
--   device_tolerance  per dtype against the CPU on another device,
--                     element by element relative to 1 + |cpu|
--   fd                false: no finite differences (sizes chosen for the
--                     device kernels' paths); "cpu": on the CPU only
--   fd_options        {eps =, atol =, rtol =} for the finite differences
--   grad32            tolerance of float32 gradients against float64's
--                     (default 1e-4), or false
--   check(env)        further assertions; env.tensor(values, options)
--                     makes a tensor on the backend
--   backends          the backends the case runs on (default all)
--   fenced = false    left out of make test-cuda's pass with device memory
--                     fenced from host code (the cases moved from
--                     spec/c/cuda_kernels_test.c, which ran in the two
--                     thread orders only)
--   shape             the expected shape of the first result
--   unspecified_values  true: another device's results are held to the CPU's
--                     shapes and dtypes only (empty_like)
--
-- Adding an op: its row here, with a reference, a gradient case when it is
-- differentiable and an integer case when it takes integers; ops_spec's
-- coverage spec fails until the row is there.
local compat = require("tricycle.compat")
local tc = require("tricycle")
local assert = require("luassert")
local G = require("helpers.gradcheck")
local R = require("helpers.op_reference")

local methods = tc.Tensor.methods
local map = R.map
local nan, inf = 0 / 0, math.huge

local FLOAT64 = { "float64" }
local EVERY = { "float64", "float32", "int64", "int32", "uint8", "bool" }
local NO_BOOL = { "float64", "float32", "int64", "int32", "uint8" }

-- The tolerances spec/c/cuda_kernels_test.c held these kernels to.
local KERNEL = { float32 = 2e-6, float64 = 1e-13 }
local ELEMENTWISE = { float32 = 1e-6 }
local EXACT = 0
-- Slow on the emulated device, and covered there by the device's own cases.
local CPU = { "cpu" }

-- ---- inputs ----

local next_seed = 1000
local function input(kind, shape, range, options)
  next_seed = next_seed + 1
  local spec = { kind = kind, shape = shape, range = range, seed = next_seed }
  for k, v in pairs(options or {}) do spec[k] = v end
  return spec
end
local function float(shape, lo, hi, options) return input("float", shape, { lo or -2, hi or 2 }, options) end
local function const(shape, lo, hi, options)
  local spec = float(shape, lo, hi, options)
  spec.grad = false
  return spec
end
local function given(values, options)
  local spec = { kind = "float", values = values }
  for k, v in pairs(options or {}) do spec[k] = v end
  return spec
end
local function index(values, dtype) return { kind = "int", values = values, dtype = dtype or "int64" } end
local function mask(values) return { kind = "bool", values = values } end
local function bools(shape, options) return input("bool", shape, { 0, 1 }, options) end
local function zeros(shape) return { kind = "zeros", shape = shape } end

local function expand_to(...)
  local shape = { ... }
  return function(t) return t:expand(compat.unpack(shape)) end
end

-- Results of integer and bool runs: wrapped into the dtype, as the engine's
-- arithmetic wraps; bool values count as 0 and 1.
local function number(v) if type(v) == "boolean" then return v and 1 or 0 end return v end
local function into(v, dtype)
  if dtype == "bool" then return v ~= 0 end
  if dtype == "float64" or dtype == "float32" then return v end
  return R.wrap(v, dtype)
end

local rows = {}
local function row(op, cases) rows[#rows + 1] = { op = op, cases = cases } end

-- ---- unary ops ----

local function unary_reference(fn)
  return function(x, env) return map(function(v) return into(fn(number(v)), env.dtype) end, x) end
end

-- The cases every unary op gets; integer_dtypes: the dtypes it takes besides floats.
local function unary_cases(name, fn, lo, hi, integer_dtypes)
  local call = name == "gelu_tanh" and function(x) return x:gelu("tanh") end or function(x) return x[name](x) end
  local ref = unary_reference(fn)
  local narrow = function(t) return t:narrow(2, 2, 2) end
  return {
    { name = "{2, 3}", inputs = { float({ 2, 3 }, lo, hi) }, run = call, reference = ref },
    { name = "a transposed leaf", inputs = { float({ 3, 2 }, lo, hi, { layout = "transposed" }) }, run = call,
      reference = ref },
    { name = "a narrowed view inside the graph", inputs = { float({ 2, 4 }, lo, hi, { view = narrow }) },
      run = call, reference = ref },
    { name = "{37, 19}", inputs = { float({ 37, 19 }, lo, hi) }, run = call, reference = ref, fd = false },
    { name = "{6, 50} transposed" .. (integer_dtypes and ", every dtype" or ""),
      inputs = { float({ 6, 50 }, lo, hi + (integer_dtypes and 1 or 0), { layout = "transposed" }) }, run = call,
      reference = ref, fd = false, device_tolerance = ELEMENTWISE, fenced = false, dtypes = integer_dtypes },
    { name = "empty {0, 3}", inputs = { float({ 0, 3 }, lo, hi) }, run = call, shape = { 0, 3 } },
  }
end

local function sqrt_inverse(v) return 1 / math.sqrt(v) end
-- log(1 + v) without the rounding of 1 + v; softplus without overflow.
local function log1p(v)
  local u = 1 + v
  return u == 1 and v or math.log(u) * v / (u - 1)
end
local function softplus(v) return math.max(v, 0) + log1p(math.exp(-math.abs(v))) end
local unary_math = {
  { "log1p", log1p, -0.5, 2 }, { "softplus", softplus, -5, 5 },
  { "exp", math.exp, -2, 2 }, { "log", math.log, 0.3, 3 }, { "sqrt", math.sqrt, 0.3, 3 },
  { "tanh", R.tanh, -2, 2 }, { "sigmoid", R.sigmoid, -3, 3 }, { "gelu", R.gelu, -2.5, 2.5 },
  { "gelu_tanh", R.gelu_tanh, -2.5, 2.5 }, { "silu", function(v) return v * R.sigmoid(v) end, -3, 3 },
  { "sin", math.sin, -3, 3 }, { "cos", math.cos, -3, 3 }, { "rsqrt", sqrt_inverse, 0.3, 3 },
}
local unary_exact = {
  { "neg", function(v) return -v end, NO_BOOL }, { "abs", math.abs, EVERY },
  { "relu", function(v) return v > 0 and v or 0 end, EVERY }, { "square", function(v) return v * v end, EVERY },
}
-- The tails: log1p keeps the digits of tiny x that log(1 + x) loses; softplus is x for large x (no overflow to
-- inf) and e^x for very negative x.
local tails = {
  log1p = { given({ 1e-10, -1e-12, 3e-8, 0 }), { 1e-10 - 5e-21, -1e-12 - 5e-25, 3e-8 - 4.5e-16, 0 } },
  softplus = { given({ 100, 1000, -50, -800 }), { 100, 1000, math.exp(-50), 0 } },
}
for _, u in ipairs(unary_math) do
  local cases = unary_cases(u[1], u[2], u[3], u[4])
  local tail = tails[u[1]]
  if tail then
    cases[#cases + 1] = { name = "the tails", inputs = { tail[1] }, dtypes = FLOAT64,
      run = function(x) return x[u[1]](x) end,
      reference = function() return tail[2] end, tolerance = { rtol = 1e-15, atol = 1e-300 } }
  end
  row(u[1], cases)
end
for _, u in ipairs(unary_exact) do row(u[1], unary_cases(u[1], u[2], -2, 2, u[3])) end

-- Integers nearby in plain Lua, for any float (math.floor and math.ceil keep infinities and NaN as floats).
local function round_half_even(v)
  if v ~= v or v == inf or v == -inf then return v end
  local below = math.floor(v)
  local rest = v - below
  if rest > 0.5 or rest == 0.5 and below % 2 == 1 then return below + 1 end
  return below
end
local function trunc(v)
  if v ~= v then return v end
  return v < 0 and math.ceil(v) or math.floor(v)
end
local rounding = {
  { "floor", math.floor }, { "ceil", math.ceil }, { "round", round_half_even }, { "trunc", trunc },
}
-- Halves (to even under round), values a rounding of x + 0.5 gets wrong, 2^52 + 1 and 2^53 (past them every float is
-- an integer), the tails and NaN.
local rounding_edges = { -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49999999999999994, -0.49999999999999994, 4503599627370497,
  9007199254740992, -3.7, 3.7, 1e300, -1e300, inf, -inf, nan, 0 }
for _, u in ipairs(rounding) do
  local name, fn = u[1], u[2]
  local cases = unary_cases(name, fn, -3, 3, EVERY)
  cases[#cases + 1] = { name = "halves, ties, the tails and NaN", inputs = { given(rounding_edges) },
    run = function(x) return x[name](x) end, reference = unary_reference(fn), tolerance = 0, fd = false }
  cases[#cases + 1] = { name = "a zero gradient, at a tie too", check = function(env)
    local x = env.tensor({ { 0.5, -1.25, 2 }, { 7.75, -0.5, 1e-3 } }, { dtype = env.dtype }):requires_grad_(true)
    x[name](x):sum():backward()
    assert.are.same({ { 0, 0, 0 }, { 0, 0, 0 } }, x.grad:to("cpu"):totable())
  end }
  row(name, cases)
end

local function sign(v)
  if v ~= v then return 0 end
  return v > 0 and 1 or v < 0 and -1 or 0
end
row("sign", {
  { name = "values, zero and NaN", inputs = { given({ -2.5, 0, 3, -0.1, nan }) },
    run = function(x) return x:sign() end, reference = unary_reference(sign) },
  { name = "{37, 19}", inputs = { float({ 37, 19 }) }, run = function(x) return x:sign() end,
    reference = unary_reference(sign) },
  { name = "{6, 50} transposed, every dtype", inputs = { float({ 6, 50 }, -3, 3, { layout = "transposed" }) },
    run = function(x) return x:sign() end, reference = unary_reference(sign), dtypes = EVERY },
  { name = "empty {0, 3}", inputs = { float({ 0, 3 }) }, run = function(x) return x:sign() end, shape = { 0, 3 } },
})

local function is_zero(x) return map(function(v) return number(v) == 0 end, x) end
row("logical_not", {
  { name = "gives bool", inputs = { given({ 0, 1, -2 }) }, run = function(x) return x:logical_not() end,
    reference = is_zero },
  { name = "{6, 50} transposed, every dtype", inputs = { float({ 6, 50 }, -3, 3, { layout = "transposed" }) },
    run = function(x) return x:logical_not() end, reference = is_zero, dtypes = EVERY },
  { name = "empty {0, 3}", inputs = { float({ 0, 3 }) }, run = function(x) return x:logical_not() end,
    shape = { 0, 3 } },
})

-- ---- binary ops ----

-- Arithmetic in integer dtypes wraps; division and powers are float32 there.
local function binary_reference(fn, float_result)
  return function(a, b, env)
    return map(function(x, y)
      local v = fn(number(x), number(y))
      if float_result or env.dtype == "float64" or env.dtype == "float32" then return v end
      if env.dtype == "bool" then return v ~= 0 end
      return R.wrap(v, env.dtype)
    end, a, b)
  end
end

local binary_arithmetic = {
  { "add", function(a, b) return a + b end, { -2, 2 }, { -2, 2 }, EVERY },
  { "sub", function(a, b) return a - b end, { -2, 2 }, { -2, 2 }, NO_BOOL },
  { "mul", function(a, b) return a * b end, { -2, 2 }, { -2, 2 }, EVERY },
  { "div", function(a, b) return a / b end, { -2, 2 }, { 0.5, 2 }, EVERY, true },
  { "pow", function(a, b) return a ^ b end, { 0.5, 2 }, { -1.5, 1.5 }, NO_BOOL, true },
  { "maximum", R.maximum, { -2, 2 }, { -2, 2 }, EVERY },
  { "minimum", R.minimum, { -2, 2 }, { -2, 2 }, EVERY },
}

local function nan_case(name)
  local op = methods[name]
  local fn = ({ maximum = R.maximum, minimum = R.minimum, eq = function(a, b) return a == b end,
    ne = function(a, b) return a ~= b end, lt = function(a, b) return a < b end,
    le = function(a, b) return a <= b end, gt = function(a, b) return a > b end,
    ge = function(a, b) return a >= b end, logical_and = function(a, b) return a ~= 0 and b ~= 0 end,
    logical_or = function(a, b) return a ~= 0 or b ~= 0 end })[name]
  return { name = "NaN on either side", inputs = { given({ nan, 1, nan, -2 }, { grad = false }),
    given({ 1, nan, nan, -2 }, { grad = false }) }, run = function(a, b) return op(a, b) end,
    reference = function(a, b) return map(fn, a, b) end, device_tolerance = EXACT }
end

for _, spec in ipairs(binary_arithmetic) do
  local name, fn, ra, rb, every, float_result = compat.unpack(spec)
  local op = methods[name]
  local call = function(a, b) return op(a, b) end
  local ref = binary_reference(fn, float_result)
  local number_a, number_b = (ra[1] + ra[2]) / 2 + 0.3, (rb[1] + rb[2]) / 2 + 0.3
  local every_a, every_b = name == "pow" and { 0.1, 3 } or { -3, 3 }, name == "pow" and { -2, 3 } or { -3, 3 }
  local cases = {
    { name = "same shape {2, 3}", inputs = { float({ 2, 3 }, ra[1], ra[2]), float({ 2, 3 }, rb[1], rb[2]) },
      run = call, reference = ref },
    { name = "broadcast {3, 1} with {1, 4}", inputs = { float({ 3, 1 }, ra[1], ra[2]), float({ 1, 4 }, rb[1], rb[2]) },
      run = call, reference = ref, shape = { 3, 4 } },
    { name = "broadcast {2, 4} with {4}", inputs = { float({ 2, 4 }, ra[1], ra[2]), float({ 4 }, rb[1], rb[2]) },
      run = call, reference = ref },
    { name = "a number on the right", inputs = { float({ 2, 3 }, ra[1], ra[2]) },
      run = function(a) return op(a, number_b) end,
      reference = function(a, env) return ref(a, number_b, env) end },
    { name = "a number on the left", inputs = { float({ 2, 3 }, rb[1], rb[2]) },
      run = function(b) return op(number_a, b) end,
      reference = function(b, env) return ref(number_a, b, env) end },
    { name = "a transposed leaf with a 0-dim tensor",
      inputs = { float({ 3, 2 }, ra[1], ra[2], { layout = "transposed" }), float({}, rb[1], rb[2]) },
      run = call, reference = ref },
    { name = "transposed {7, 5} with {5, 7}",
      inputs = { float({ 5, 7 }, ra[1], ra[2], { layout = "transposed" }), float({ 5, 7 }, rb[1], rb[2]) },
      run = call, reference = ref, fd = false },
    { name = "broadcast {4, 1, 6} with {5, 1}",
      inputs = { float({ 4, 1, 6 }, ra[1], ra[2]), float({ 5, 1 }, rb[1], rb[2]) },
      run = call, reference = ref, fd = false },
    { name = "{7, 40} transposed with a broadcast row, every dtype",
      inputs = { const({ 7, 40 }, every_a[1], every_a[2], { layout = "transposed" }),
        const({ 40 }, every_b[1], every_b[2], { view = expand_to(7, 40) }) },
      run = call, reference = ref, fd = false, dtypes = every, device_tolerance = ELEMENTWISE, fenced = false },
    { name = "empty {0, 3} with {3}", inputs = { float({ 0, 3 }, ra[1], ra[2]), float({ 3 }, rb[1], rb[2]) },
      run = call, shape = { 0, 3 } },
  }
  if name == "maximum" or name == "minimum" then cases[#cases + 1] = nan_case(name) end
  row(name, cases)
end

-- The operators, promotion and scalar range checks, kept with add as before.
local add_row = rows[#rows - #binary_arithmetic + 1].cases
add_row[#add_row + 1] = {
  name = "operators +, -, *, /, ^ and unary minus", dtypes = FLOAT64,
  check = function(env)
    local a = env.tensor({ { 1, 2 }, { 3, 4 } }, { dtype = "float64" })
    local b = env.tensor({ 10, 20 }, { dtype = "float64" })
    assert.are.same({ { 11, 22 }, { 13, 24 } }, (a + b):to("cpu"):totable())
    assert.are.same({ { -9, -18 }, { -7, -16 } }, (a - b):to("cpu"):totable())
    assert.are.same({ { 10, 40 }, { 30, 80 } }, (a * b):to("cpu"):totable())
    assert.are.same({ { 2, 4 }, { 6, 8 } }, (2 * a):to("cpu"):totable())
    assert.are.same({ { 0.5, 1 }, { 1.5, 2 } }, (a / 2):to("cpu"):totable())
    assert.are.same({ { 1, 4 }, { 9, 16 } }, (a ^ 2):to("cpu"):totable())
    assert.are.same({ { -1, -2 }, { -3, -4 } }, (-a):to("cpu"):totable())
    assert.are.same({ { 2, 4 }, { 8, 16 } }, (2 ^ a):to("cpu"):totable())
  end,
}
add_row[#add_row + 1] = {
  name = "dtype promotion", dtypes = FLOAT64,
  check = function(env)
    local i = env.tensor({ 1, 2 }, { dtype = "int64" })
    assert.are.equal("int64", (i + i).dtype)
    assert.are.equal("float32", (i + env.tensor({ 1.5, 1 })).dtype)
    assert.are.equal("float64", (env.tensor({ 1, 2 }) + env.tensor({ 1, 2 }, { dtype = "float64" })).dtype)
    assert.are.equal("float32", (i + 0.5).dtype)
    assert.are.same({ 1.5, 2.5 }, (i + 0.5):to("cpu"):totable())
  end,
}
add_row[#add_row + 1] = {
  name = "an integer tensor with a scalar it cannot hold is an error, not a wrap", dtypes = FLOAT64,
  check = function(env)
    local u = env.tensor({ 1, 2, 250 }, { dtype = "uint8" })
    local function message(fn)
      local ok, err = pcall(fn)
      assert.is_false(ok)
      return err
    end
    assert.matches("add: the scalar 300 is out of the range of uint8 (0 to 255)",
      message(function() return u + 300 end), 1, true)
    assert.matches("sub: the scalar -1 is out of the range of uint8", message(function() return u - (-1) end), 1, true)
    assert.matches("mul: the scalar 3000000000 is out of the range of int32",
      message(function() return env.tensor({ 1 }, { dtype = "int32" }) * 3000000000 end), 1, true)
    assert.matches("add: the scalar 9.2233720368547758e+18 is out of the range of int64",
      message(function() return env.tensor({ 1 }, { dtype = "int64" }) + 2 ^ 63 end), 1, true)
    assert.matches("mul: the scalar inf is out of the range of int64",
      message(function() return env.tensor({ 1 }, { dtype = "int64" }) * math.huge end), 1, true)
    -- where a tensor keeps its integer dtype, a fraction cannot be stored either
    assert.matches("fill_: the scalar 2.5 is not an integer, so a uint8 tensor cannot hold it",
      message(function() return env.tensor({ 0, 0 }, { dtype = "uint8" }):fill_(2.5) end), 1, true)
    assert.matches("masked_fill: the scalar 256 is out of the range of uint8",
      message(function() return u:masked_fill(u:gt(1), 256) end), 1, true)
    assert.matches("where: the scalar -5 is out of the range of uint8",
      message(function() return tc.where(u:gt(1), u, -5) end), 1, true)
    assert.matches("full: the scalar 10000000000 is out of the range of int32",
      message(function() return tc.full({ 2 }, 1e10, { dtype = "int32" }) end), 1, true)
    -- values in range keep the dtype; a fraction still promotes to float32
    assert.are.same({ 6, 7, 255 }, (u + 5):to("int64"):to("cpu"):totable())
    assert.are.equal("uint8", (u + 5).dtype)
    assert.are.equal("float32", (u + 0.5).dtype)
    if compat.has_integers then
      assert.are.equal("int64", (env.tensor({ 1 }, { dtype = "int64" }) + 2 ^ 62).dtype)
    else -- (an integer past 2^53 is refused by name there)
      assert.matches("the integer 4611686018427387904 is past 2^53",
        message(function() return env.tensor({ 1 }, { dtype = "int64" }) + 2 ^ 62 end), 1, true)
    end
    -- a bool compared with a value other than 0 or 1 is compared as a number
    assert.are.same({ false, false }, env.tensor({ true, false }):eq(2):to("cpu"):totable())
    assert.are.same({ true, false }, env.tensor({ true, false }):eq(1):to("cpu"):totable())
  end,
}

local comparisons = {
  { "eq", function(a, b) return a == b end }, { "ne", function(a, b) return a ~= b end },
  { "lt", function(a, b) return a < b end }, { "le", function(a, b) return a <= b end },
  { "gt", function(a, b) return a > b end }, { "ge", function(a, b) return a >= b end },
  { "logical_and", function(a, b) return a ~= 0 and b ~= 0 end },
  { "logical_or", function(a, b) return a ~= 0 or b ~= 0 end },
}
for _, spec in ipairs(comparisons) do
  local name, fn = spec[1], spec[2]
  local op = methods[name]
  local call = function(a, b) return op(a, b) end
  local ref = function(a, b) return map(function(x, y) return fn(number(x), number(y)) end, a, b) end
  row(name, {
    { name = "broadcast {2, 3} with {3}, with ties",
      inputs = { given({ { 0, 1, 2 }, { 3, 1, -1 } }), given({ 1, 1, 0 }) }, run = call, reference = ref },
    { name = "a number", inputs = { given({ { 0, 1, 2 }, { 3, 1, -1 } }) }, run = function(a) return op(a, 1) end,
      reference = function(a) return ref(a, 1) end },
    { name = "broadcast {6, 1} with {5}", inputs = { float({ 6, 1 }), float({ 5 }) }, run = call, reference = ref },
    { name = "{7, 40} transposed with a broadcast row, every dtype",
      inputs = { float({ 7, 40 }, -3, 3, { layout = "transposed" }),
        float({ 40 }, -3, 3, { view = expand_to(7, 40) }) },
      run = call, reference = ref, dtypes = EVERY, fenced = false },
    nan_case(name),
    { name = "empty {0, 3} with {3}", inputs = { float({ 0, 3 }), float({ 3 }) }, run = call, shape = { 0, 3 } },
  })
end

-- ---- reductions ----

-- Quarters (so maxima tie) with three NaNs in floating runs.
local function quarters_with_nans(flat, dtype)
  if dtype ~= "float64" and dtype ~= "float32" then return end
  for k, v in ipairs(flat) do flat[k] = math.floor(v * 4 + 0.5) / 4 end
  flat[8], flat[1235], flat[1501] = nan, nan, nan
end

local function reduce_reference(fn, dims, keepdim, float_result)
  return function(x, env)
    local value = R.reduce(map(number, x), dims, keepdim, fn)
    if float_result or env.dtype == "float64" or env.dtype == "float32" then return value end
    return map(function(v) return R.wrap(v, "int64") end, value)
  end
end

-- sum, mean and var return one tensor; max and min values and indices.
local reductions = {
  { "sum", R.sum, NO_BOOL, KERNEL },
  { "mean", R.mean, nil, KERNEL },
  { "max", R.max, NO_BOOL, EXACT, R.argmax },
  { "min", R.min, NO_BOOL, EXACT, R.argmin },
  { "var", R.var(1), nil, KERNEL },
}
for _, spec in ipairs(reductions) do
  local name, fn, integer_dtypes, device_tolerance, arg_fn = compat.unpack(spec)
  local with_indices = arg_fn ~= nil
  local float_result = name == "mean" or name == "var"
  -- one call's results and their references
  local function call(x, dims, keepdim)
    if dims == nil then return x[name](x) end
    if name == "var" then return x:var(dims, { keepdim = keepdim }) end
    return x[name](x, dims, keepdim)
  end
  local function expected(x, env, dims, keepdim)
    local value = reduce_reference(fn, dims, keepdim, float_result)(x, env)
    if with_indices and dims ~= nil then
      local indices = R.reduce(map(number, x), dims, keepdim, arg_fn)
      if env.dtype == "bool" then value = map(function(v) return v ~= 0 end, value) end
      return value, indices
    end
    if env.dtype == "bool" and not float_result and name ~= "sum" then
      return map(function(v) return v ~= 0 end, value)
    end
    return value
  end
  local function calls(list)
    return function(x)
      local results = {}
      for _, c in ipairs(list) do
        for _, r in ipairs({ call(x, c[1], c[2]) }) do results[#results + 1] = r end
      end
      return compat.unpack(results)
    end, function(x, env)
      local results = {}
      for _, c in ipairs(list) do
        for _, r in ipairs({ expected(x, env, c[1], c[2]) }) do results[#results + 1] = r end
      end
      return compat.unpack(results)
    end
  end
  local several = name == "sum" or name == "mean" or name == "var"
  local forward_calls = { { nil }, { 2, false }, { -1, true } }
  if several then forward_calls[#forward_calls + 1] = { { 1, 3 }, false } end
  local forward_run, forward_reference = calls(forward_calls)
  local one = function(dims, keepdim) return calls({ { dims, keepdim } }) end
  local all_run, all_reference = one(nil)
  local dim2_run, dim2_reference = one(2, false)
  local last_run, last_reference = one(-1, true)
  local t_run, t_reference = calls({ { 1, false }, { 2, false } })
  local mid_run, mid_reference = one(2, false)
  local keep_run, keep_reference = one(several and { 1, 3 } or 3, true)
  local dim_sets = { { 2, true }, { 3, true }, { 1, true }, { nil } }
  if several then table.insert(dim_sets, 4, { { 1, 3 }, true }) end
  local sets_run, sets_reference = calls(dim_sets)
  local cases = {
    { name = "{2, 3, 4}: all, dim 2, dim -1 with keepdim" .. (several and ", dims {1, 3}" or ""),
      inputs = { float({ 2, 3, 4 }) }, run = forward_run, reference = forward_reference, fd = false },
    { name = "over everything {2, 3}", inputs = { float({ 2, 3 }) }, run = all_run, reference = all_reference },
    { name = "over dim 2 of a transposed leaf", inputs = { float({ 3, 4 }, -2, 2, { layout = "transposed" }) },
      run = dim2_run, reference = dim2_reference },
    { name = "over dim -1 with keepdim", inputs = { float({ 2, 2, 3 }) }, run = last_run, reference = last_reference },
    { name = "{9, 40} transposed over dims 1 and 2", inputs = { float({ 9, 40 }, -2, 2, { layout = "transposed" }) },
      run = t_run, reference = t_reference, fd = false },
    { name = "{6, 33, 4} over dim 2", inputs = { float({ 6, 33, 4 }) }, run = mid_run, reference = mid_reference,
      fd = false },
    { name = "{6, 5, 7} over " .. (several and "dims {1, 3}" or "dim 3") .. " with keepdim",
      inputs = { float({ 6, 5, 7 }) }, run = keep_run, reference = keep_reference, fd = false },
    { name = "{300, 7} over everything", inputs = { float({ 300, 7 }) }, run = all_run, reference = all_reference,
      fd = false, tolerance = { float32 = 1e-5, float64 = 1e-12 } },
  }
  for _, layout in ipairs({ false, { 3, 2, 1 } }) do
    cases[#cases + 1] = {
      name = "{2, 300, 3} in quarters with NaNs" .. (layout and " (a permuted view)" or "")
        .. ", over each dim set" .. (integer_dtypes and ", integers too" or ""),
      inputs = { const({ 2, 300, 3 }, -3, 3, { layout = layout or nil, patch = quarters_with_nans }) },
      run = sets_run, reference = sets_reference, fd = false, device_tolerance = device_tolerance, fenced = false,
      dtypes = integer_dtypes,
    }
  end
  if with_indices then
    cases[#cases + 1] = { name = "with a dim gives values and 0-based int64 indices",
      inputs = { given({ { 1, 5, 3 }, { 7, 2, 4 } }) }, run = function(x)
        local v2, i2 = x[name](x, 2)
        local v1, i1 = x[name](x, 1)
        assert.are.equal("int64", i2.dtype)
        return v2, i2, v1, i1
      end, reference = function(x, env)
        local v2, i2 = expected(x, env, 2, false)
        local v1, i1 = expected(x, env, 1, false)
        return v2, i2, v1, i1
      end, fd = false }
    cases[#cases + 1] = { name = "over an empty dim is an error on every device", dtypes = FLOAT64,
      check = function(env)
        local empty = env.tensor({}):reshape(3, 0)
        local ok, message = pcall(empty[name], empty, 2)
        assert.is_false(ok)
        assert.matches(name .. ": dim 2 of a tensor of shape {3, 0} is empty", message, 1, true)
      end }
  else
    cases[#cases + 1] = { name = "over an empty dim", inputs = { float({ 3, 0 }) }, run = function(x)
      return call(x, 2, false)
    end, reference = function(x, env)
      local value = name == "sum" and 0 or nan
      return { value, value, value }
    end, shape = { 3 } }
  end
  if integer_dtypes then
    cases[#cases + 1] = { name = "{4, 5} over dim 2 and everything, every dtype",
      inputs = { float({ 4, 5 }, -3, 3) }, run = calls({ { 2, false }, { nil } }),
      reference = select(2, calls({ { 2, false }, { nil } })), dtypes = EVERY, fd = false }
  end
  if name == "var" then
    cases[#cases + 1] = { name = "unbiased and biased, keepdim", inputs = { float({ 3, 4 }) }, run = function(x)
      return x:var(), x:var(2), x:var(1, { correction = 0 }), x:var(2, { keepdim = true })
    end, reference = function(x)
      return R.reduce(x, nil, false, R.var(1)), R.reduce(x, 2, false, R.var(1)), R.reduce(x, 1, false, R.var(0)),
        R.reduce(x, 2, true, R.var(1))
    end, fd = false }
    cases[#cases + 1] = { name = "biased over dim 1 of a transposed leaf",
      inputs = { float({ 3, 4 }, -2, 2, { layout = "transposed" }) },
      run = function(x) return x:var(1, { correction = 0 }) end,
      reference = function(x) return R.reduce(x, 1, false, R.var(0)) end }
    cases[#cases + 1] = { name = "{2, 300, 3} biased, over each dim set",
      inputs = { const({ 2, 300, 3 }, -3, 3, { patch = quarters_with_nans }) }, run = function(x)
        return x:var(2, { correction = 0, keepdim = true }), x:var({ 1, 3 }, { correction = 0, keepdim = true }),
          x:var(nil, { correction = 0 })
      end, reference = function(x)
        return R.reduce(x, 2, true, R.var(0)), R.reduce(x, { 1, 3 }, true, R.var(0)), R.reduce(x, nil, false, R.var(0))
      end, fd = false, device_tolerance = KERNEL, fenced = false }
  end
  if name == "sum" then
    cases[#cases + 1] = { name = "over dims {1, 3}", inputs = { float({ 2, 3, 2 }) },
      run = function(x) return x:sum({ 1, 3 }) end,
      reference = function(x) return R.reduce(x, { 1, 3 }, false, R.sum) end }
  elseif name == "mean" then
    cases[#cases + 1] = { name = "over dims {1, 2}", inputs = { float({ 2, 3, 2 }) },
      run = function(x) return x:mean({ 1, 2 }) end,
      reference = function(x) return R.reduce(x, { 1, 2 }, false, R.mean) end }
  end
  row(name, cases)
end

for _, spec in ipairs({ { "argmax", R.argmax }, { "argmin", R.argmin } }) do
  local name, fn = spec[1], spec[2]
  local function ref(dim, keepdim)
    return function(x) return R.reduce(map(number, x), dim, keepdim, fn) end
  end
  row(name, {
    { name = "0-based along dims 2 and 1", inputs = { float({ 3, 5 }) },
      run = function(x) return x[name](x, 2), x[name](x, 1) end,
      reference = function(x) return ref(2)(x), ref(1)(x) end },
    { name = "{7, 9} along dims 2 and 1", inputs = { float({ 7, 9 }) },
      run = function(x) return x[name](x, 2), x[name](x, 1) end,
      reference = function(x) return ref(2)(x), ref(1)(x) end },
    { name = "{2, 300, 3} in quarters with NaNs, a permuted view, every dim, every dtype",
      inputs = { float({ 2, 300, 3 }, -3, 3, { layout = { 3, 2, 1 }, patch = quarters_with_nans }) },
      run = function(x) return x[name](x, 1, true), x[name](x, 2, true), x[name](x, 3, true), x[name](x) end,
      reference = function(x)
        return ref(1, true)(x), ref(2, true)(x), ref(3, true)(x), fn(R.flatten(map(number, x)))
      end, dtypes = EVERY, fenced = false },
    { name = "{2, 300, 3} in quarters with NaNs, contiguous",
      inputs = { float({ 2, 300, 3 }, -3, 3, { patch = quarters_with_nans }) },
      run = function(x) return x[name](x, 1, true), x[name](x, 2, true), x[name](x, 3, true) end,
      reference = function(x) return ref(1, true)(x), ref(2, true)(x), ref(3, true)(x) end, fenced = false },
  })
end

-- ---- clamp, where, masked_fill ----

local function clamp_value(v, lo, hi)
  if v ~= v then return v end
  if lo and v < lo then v = lo end
  if hi and v > hi then v = hi end
  return v
end
local function clamp_reference(lo, hi)
  return function(x) return map(function(v) return clamp_value(v, lo, hi) end, x) end
end
-- Both bounds, the upper only and the lower only, in values the dtype holds.
local function clamp_bounds(dtype)
  if dtype == "uint8" then return 1, 2, 1 end
  if dtype == "int64" or dtype == "int32" then return -1, 1, 0 end
  return -1, 1, 0.5
end
row("clamp", {
  { name = "both bounds and one bound", inputs = { float({ 2, 3 }) },
    run = function(x) return x:clamp(-0.5, 0.5), x:clamp(nil, 0.5), x:clamp(-0.5) end,
    reference = function(x) return clamp_reference(-0.5, 0.5)(x), clamp_reference(nil, 0.5)(x),
      clamp_reference(-0.5)(x) end, fd = false },
  { name = "both bounds {3, 4}", inputs = { float({ 3, 4 }) }, run = function(x) return x:clamp(-0.5, 0.5) end,
    reference = clamp_reference(-0.5, 0.5) },
  { name = "the upper bound on a transposed leaf", inputs = { float({ 3, 2 }, -2, 2, { layout = "transposed" }) },
    run = function(x) return x:clamp(nil, 0.3) end, reference = clamp_reference(nil, 0.3) },
  { name = "{9, 11}", inputs = { float({ 9, 11 }) }, run = function(x) return x:clamp(-0.5, 0.7) end,
    reference = clamp_reference(-0.5, 0.7), fd = false },
  { name = "{5, 30} transposed, both bounds and either one, every dtype but bool",
    inputs = { const({ 5, 30 }, -3, 3, { layout = "transposed" }) }, run = function(x, env)
      local lo, hi, one = clamp_bounds(env.dtype)
      return x:clamp(lo, hi), x:clamp(nil, one), x:clamp(one)
    end, reference = function(x, env)
      local lo, hi, one = clamp_bounds(env.dtype)
      return clamp_reference(lo, hi)(x), clamp_reference(nil, one)(x), clamp_reference(one)(x)
    end, dtypes = NO_BOOL, fd = false, device_tolerance = EXACT, fenced = false },
  { name = "empty {0, 3}", inputs = { float({ 0, 3 }) }, run = function(x) return x:clamp(-0.5, 0.5) end,
    shape = { 0, 3 } },
})

local function pick(c, a, b)
  return map(function(ci, x, y)
    if ci then return x end
    return y
  end, c, a, b)
end
local condition = { { true, false, true }, { false, false, true } }
row("where", {
  { name = "broadcast b {1, 3}, and numbers for a or b", inputs = { mask(condition), float({ 2, 3 }), float({ 1, 3 }) },
    run = function(c, a, b) return tc.where(c, a, b), tc.where(c, a, 7), c:where(-1, b) end,
    reference = function(c, a, b) return pick(c, a, b), pick(c, a, 7), pick(c, -1, b) end },
  { name = "a number for b, a transposed leaf for a",
    inputs = { mask(condition), float({ 2, 3 }, -2, 2, { layout = "transposed" }) },
    run = function(c, a) return tc.where(c, a, 0.5) end, reference = function(c, a) return pick(c, a, 0.5) end },
  { name = "cond {4, 1}, a {4, 6}, b {6}", inputs = { bools({ 4, 1 }), float({ 4, 6 }), float({ 6 }) },
    run = function(c, a, b) return tc.where(c, a, b) end, reference = pick, fd = false },
  { name = "a broadcast cond, a transposed, every dtype",
    inputs = { bools({ 30 }, { view = expand_to(5, 30) }), const({ 5, 30 }, -3, 3, { layout = "transposed" }),
      const({ 5, 30 }, -3, 3) },
    run = function(c, a, b) return tc.where(c, a, b) end, reference = pick, dtypes = EVERY, fd = false,
    device_tolerance = EXACT, fenced = false },
  { name = "empty {0, 3}", inputs = { bools({ 0, 3 }), float({ 0, 3 }), float({ 3 }) },
    run = function(c, a, b) return tc.where(c, a, b) end, shape = { 0, 3 } },
})

local function fill_value(dtype) return dtype == "bool" and 1 or 3 end
local function filled(x, m, value, dtype)
  if dtype == "bool" then value = value ~= 0 end
  return map(function(v, mi)
    if mi then return value end
    return v
  end, x, m)
end
row("masked_fill", {
  { name = "a broadcast mask {1, 3}", inputs = { float({ 2, 3 }), mask({ { false, true, false } }) },
    run = function(x, m) return x:masked_fill(m, -9) end, reference = function(x, m) return filled(x, m, -9) end },
  { name = "a mask {2, 3}", inputs = { float({ 2, 3 }), mask(condition) },
    run = function(x, m) return x:masked_fill(m, 3) end, reference = function(x, m) return filled(x, m, 3) end },
  { name = "{5, 6} with a mask {6}", inputs = { float({ 5, 6 }), bools({ 6 }) },
    run = function(x, m) return x:masked_fill(m, -3) end, reference = function(x, m) return filled(x, m, -3) end,
    fd = false },
  { name = "{4, 5} with a mask {5}, every dtype", inputs = { float({ 4, 5 }, -3, 3), bools({ 5 }) },
    run = function(x, m, env) return x:masked_fill(m, fill_value(env.dtype)) end,
    reference = function(x, m, env) return filled(x, m, fill_value(env.dtype), env.dtype) end, dtypes = EVERY,
    fd = false },
  { name = "empty {0, 3}", inputs = { float({ 0, 3 }), bools({ 3 }) },
    run = function(x, m) return x:masked_fill(m, 1) end, shape = { 0, 3 } },
})

-- ---- linear algebra ----

local MATMUL32 = { float32 = { rtol = 1e-5, atol = 1e-5 } }
local function matmul(a, b) return a:matmul(b) end
local function matmul_case(name, a, b, options)
  local case = { name = name, inputs = { a, b }, run = matmul, reference = R.matmul_nd, tolerance = MATMUL32 }
  for k, v in pairs(options or {}) do case[k] = v end
  return case
end
row("matmul", {
  matmul_case("{2, 3} @ {3, 4}", float({ 2, 3 }), float({ 3, 4 })),
  matmul_case("{2, 3} @ a transposed {3, 4}", float({ 2, 3 }), float({ 3, 4 }, -2, 2, { layout = "transposed" })),
  matmul_case("batched {2, 2, 3} @ {3, 2} (broadcast)", float({ 2, 2, 3 }), float({ 3, 2 })),
  matmul_case("batched {2, 2, 3} @ {2, 3, 4}", float({ 2, 2, 3 }), float({ 2, 3, 4 })),
  matmul_case("a vector {3} @ {3, 2}", float({ 3 }), float({ 3, 2 })),
  matmul_case("{2, 3} @ a vector {3}", float({ 2, 3 }), float({ 3 })),
  matmul_case("{5, 7} @ {7, 3}", float({ 5, 7 }), float({ 7, 3 }), { fd = false }),
  matmul_case("batched {2, 5, 7} @ {7, 3}", float({ 2, 5, 7 }), float({ 7, 3 }), { fd = false }),
  matmul_case("transposes {7, 5}^T @ {3, 7}^T", float({ 5, 7 }, -2, 2, { layout = "transposed" }),
    float({ 7, 3 }, -2, 2, { layout = "transposed" }), { fd = false }),
  matmul_case("{4, 6} @ a vector {6}", float({ 4, 6 }), float({ 6 }), { fd = false }),
  { name = "empty {0, 3} @ {3, 4}", inputs = { float({ 0, 3 }), float({ 3, 4 }) }, run = matmul, shape = { 0, 4 } },
  { name = "{2, 0} @ {0, 3} gives zeros", inputs = { float({ 2, 0 }), float({ 0, 3 }) }, run = matmul,
    reference = function() return { { 0, 0, 0 }, { 0, 0, 0 } } end, shape = { 2, 3 } },
})

local function diagonal(x)
  local out = {}
  for i = 1, #x do out[i] = x[i][i] end
  return out
end
local function einsum_case(name, equation, inputs, reference, options)
  local case = { name = name .. " (" .. equation .. ")", inputs = inputs,
    run = function(...)
      local operands = { ... }
      operands[#operands] = nil
      if options and options.list then return tc.einsum(equation, operands) end
      return tc.einsum(equation, compat.unpack(operands))
    end, reference = reference, tolerance = MATMUL32 }
  return case
end
row("einsum", {
  einsum_case("a matmul", "ij,jk->ik", { float({ 2, 3 }), float({ 3, 4 }) }, R.matmul),
  einsum_case("operands in a list", "ij,jk->ik", { float({ 2, 3 }), float({ 3, 4 }) }, R.matmul, { list = true }),
  einsum_case("a transpose", "ij->ji", { float({ 2, 3 }) }, R.transpose),
  einsum_case("a diagonal", "ii->i", { float({ 3, 3 }) }, diagonal),
  einsum_case("a dot product", "i,i->", { float({ 4 }), float({ 4 }) }, R.matmul_nd),
  einsum_case("a batched matmul", "bij,bjk->bik", { float({ 2, 2, 3 }), float({ 2, 3, 2 }) }, R.matmul_nd),
  einsum_case("a transposed operand", "ij,kj->ik", { float({ 2, 3 }, -2, 2, { layout = "transposed" }),
    float({ 4, 3 }) }, function(a, b) return R.matmul(a, R.transpose(b)) end),
})

row("einsum_diagonal", {
  einsum_case("a square's diagonal", "ii->i", { float({ 3, 3 }, -1, 1) }, diagonal),
  einsum_case("a repeated leading index", "iij->ij", { float({ 2, 2, 3 }, -1, 1) },
    function(x) return { x[1][1], x[2][2] } end),
})

for _, name in ipairs({ "linear", "linear_gelu" }) do
  local gelu = name == "linear_gelu"
  local op = tc[name]
  local function with_bias(x, w, b) return op(x, w, b) end
  local function without_bias(x, w) return op(x, w) end
  local function with_bias_reference(x, w, b) return R.linear(x, w, b, gelu) end
  local function without_bias_reference(x, w) return R.linear(x, w, nil, gelu) end
  local column_major = { layout = "transposed" }
  local function case(case_name, inputs, options)
    local c = { name = case_name, inputs = inputs, run = #inputs == 3 and with_bias or without_bias,
      reference = #inputs == 3 and with_bias_reference or without_bias_reference, tolerance = MATMUL32 }
    for k, v in pairs(options or {}) do c[k] = v end
    return c
  end
  row(name, {
    case("x {2, 3, 4}, weight {5, 4}, bias {5}",
      { float({ 2, 3, 4 }, -1, 1), float({ 5, 4 }, -1, 1), float({ 5 }, -1, 1) }),
    case("x {1, 2}, weight {2, 2}, bias {2}", { float({ 1, 2 }, -1, 1), float({ 2, 2 }, -1, 1), float({ 2 }, -1, 1) }),
    case("x {3, 4}, weight {5, 4}, no bias", { float({ 3, 4 }, -1, 1), float({ 5, 4 }, -1, 1) }),
    case("x {1, 5, 4}, a column-major weight, bias",
      { float({ 1, 5, 4 }, -1, 1), float({ 3, 4 }, -1, 1, column_major), float({ 3 }, -1, 1) }),
    case("x {1, 5, 4}, a column-major weight, no bias",
      { float({ 1, 5, 4 }, -1, 1), float({ 3, 4 }, -1, 1, column_major) }),
    case("one row {1, 1, 70}, weight {200, 70}", { float({ 1, 1, 70 }, -1, 1), float({ 200, 70 }, -1, 1),
      float({ 200 }, -1, 1) }, { fd = false }),
    case("one row {1, 1, 70}, a column-major weight {200, 70}", { float({ 1, 1, 70 }, -1, 1),
      float({ 200, 70 }, -1, 1, column_major), float({ 200 }, -1, 1) }, { fd = false }),
    case("x {2, 5, 7}, weight {3, 7}, bias {3}", { float({ 2, 5, 7 }), float({ 3, 7 }), float({ 3 }) }, { fd = false }),
    case("x {6, 7}, a column-major weight {4, 7}, no bias", { float({ 6, 7 }), float({ 4, 7 }, -2, 2, column_major) },
      { fd = false }),
    case("one row {1, 9}, weight {5, 9}, bias {5}", { float({ 1, 9 }), float({ 5, 9 }), float({ 5 }) }, { fd = false }),
    case("x {3, 4, 9}, weight {33, 9}, bias {33}", { float({ 3, 4, 9 }), float({ 33, 9 }), float({ 33 }) },
      { fd = false }),
    case("x {5, 8}, weight {6, 8}, no bias", { float({ 5, 8 }), float({ 6, 8 }) }, { fd = false }),
  })
end

-- ---- softmax ----

for _, name in ipairs({ "softmax", "log_softmax" }) do
  local log = name == "log_softmax"
  local function along(dim)
    return function(x) return R.along(x, dim, function(r) return R.softmax_row(r, log) end) end
  end
  local function call(dim) return function(x) return x[name](x, dim) end end
  row(name, {
    { name = "{3, 4} over dims 2, -1 and 1", inputs = { float({ 3, 4 }, -3, 3) },
      run = function(x) return x[name](x, 2), x[name](x, -1), x[name](x, 1) end,
      reference = function(x) return along(2)(x), along(-1)(x), along(1)(x) end, fd = false },
    { name = "large values", inputs = { given({ { 1000, 1001 }, { -1000, -1003 } }) }, run = call(2),
      reference = along(2) },
    { name = "over the last dim", inputs = { float({ 3, 4 }, -3, 3) }, run = call(-1), reference = along(-1) },
    { name = "over dim 1 of a transposed leaf", inputs = { float({ 3, 4 }, -3, 3, { layout = "transposed" }) },
      run = call(1), reference = along(1) },
    { name = "{4, 5, 33} over the last dim", inputs = { float({ 4, 5, 33 }) }, run = call(-1), reference = along(-1),
      fd = false },
    { name = "{4, 5, 6} over dim 2", inputs = { float({ 4, 5, 6 }) }, run = call(2), reference = along(2), fd = false },
    { name = "{4, 5, 300} over the last dim, one logit -inf",
      inputs = { float({ 4, 5, 300 }, -4, 4, { patch = { [4] = -inf } }) },
      run = call(-1), reference = along(-1), fd = false, device_tolerance = KERNEL, fenced = false },
    { name = "{4, 7, 30} over dim 2, one logit -inf",
      inputs = { float({ 4, 7, 30 }, -4, 4, { patch = { [4] = -inf } }) },
      run = call(2), reference = along(2), fd = false, device_tolerance = KERNEL, fenced = false },
    { name = "empty {0, 4}", inputs = { float({ 0, 4 }) }, run = call(2), shape = { 0, 4 } },
  })
end

-- ---- many tensors and indexing ----

row("cat", {
  { name = "dims 1, 2 and the default", inputs = { float({ 2, 3 }), float({ 1, 3 }), float({ 2, 2 }) },
    run = function(a, b, c) return tc.cat({ a, b }, 1), tc.cat({ a, c }, 2), tc.cat({ a, b }) end,
    reference = function(a, b, c) return R.cat({ a, b }, 1), R.cat({ a, c }, 2), R.cat({ a, b }, 1) end, fd = false },
  { name = "dim 1", inputs = { float({ 2, 3 }), float({ 1, 3 }) }, run = function(a, b) return tc.cat({ a, b }, 1) end,
    reference = function(a, b) return R.cat({ a, b }, 1) end },
  { name = "dim -1, a transposed leaf given twice", inputs = { float({ 2, 3 }, -2, 2, { layout = "transposed" }),
    float({ 2, 2 }) }, run = function(a, b) return tc.cat({ a, b, a }, -1) end,
    reference = function(a, b) return R.cat({ a, b, a }, -1, 2) end },
  { name = "{3, 4} and {3, 4} along dims 1 and 2", inputs = { float({ 3, 4 }), float({ 3, 4 }) },
    run = function(a, b) return tc.cat({ a, b }, 1), tc.cat({ a, b }, 2) end,
    reference = function(a, b) return R.cat({ a, b }, 1), R.cat({ a, b }, 2) end, fd = false },
  { name = "every dtype", inputs = { float({ 2, 3 }, -3, 3), float({ 1, 3 }, -3, 3) },
    run = function(a, b) return tc.cat({ a, b }, 1) end, reference = function(a, b) return R.cat({ a, b }, 1) end,
    dtypes = EVERY },
  { name = "an empty {0, 3} with {2, 3}", inputs = { float({ 0, 3 }), float({ 2, 3 }) },
    run = function(a, b) return tc.cat({ a, b }, 1) end, reference = function(_, b) return b end, shape = { 2, 3 } },
})

row("stack", {
  { name = "new dims 1 and 2", inputs = { float({ 2, 3 }), float({ 2, 3 }) },
    run = function(a, b) return tc.stack({ a, b }, 1), tc.stack({ a, b }, 2) end,
    reference = function(a, b) return R.stack({ a, b }, 1), R.stack({ a, b }, 2) end, fd = false },
  { name = "dim 2, one input transposed",
    inputs = { float({ 2, 3 }), float({ 2, 3 }, -2, 2, { layout = "transposed" }) },
    run = function(a, b) return tc.stack({ a, b }, 2) end, reference = function(a, b) return R.stack({ a, b }, 2) end },
  { name = "every dtype", inputs = { float({ 2, 3 }, -3, 3), float({ 2, 3 }, -3, 3) },
    run = function(a, b) return tc.stack({ a, b }, 1) end, reference = function(a, b) return R.stack({ a, b }, 1) end,
    dtypes = EVERY },
  { name = "two empty {0, 3}", inputs = { float({ 0, 3 }), float({ 0, 3 }) },
    run = function(a, b) return tc.stack({ a, b }, 1) end, shape = { 2, 0, 3 } },
})

local function random_index(shape, size) return input("int", shape, { 0, size }, { dtype = "int64" }) end
-- Results compared exactly with the CPU's, gradients (sums) within KERNEL.
local EXACT_FORWARD = { float32 = 0, float64 = 0, gradients = KERNEL }

local rows_of = { { 0, 3 }, { 2, 2 }, { 1, 0 } }
local columns_of = { { 2, 0, 1, 1 } }
row("gather", {
  { name = "dims 2 and 1, 0-based", inputs = { float({ 3, 4 }), index(rows_of), index(columns_of) },
    run = function(x, i, j) return x:gather(2, i), x:gather(1, j) end,
    reference = function(x, i, j) return R.gather(x, 2, i), R.gather(x, 1, j) end, fd = false },
  { name = "dim 2 with repeated indices", inputs = { float({ 3, 4 }), index(rows_of) },
    run = function(x, i) return x:gather(2, i) end, reference = function(x, i) return R.gather(x, 2, i) end },
  { name = "dim 1 of a transposed leaf",
    inputs = { float({ 3, 4 }, -2, 2, { layout = "transposed" }), index(columns_of) },
    run = function(x, i) return x:gather(1, i) end, reference = function(x, i) return R.gather(x, 1, i) end },
  { name = "{4, 6} along dim 2",
    inputs = { float({ 4, 6 }), index({ { 0, 5, 5 }, { 1, 1, 2 }, { 3, 0, 4 }, { 5, 5, 5 } }) },
    run = function(x, i) return x:gather(2, i) end, reference = function(x, i) return R.gather(x, 2, i) end,
    fd = false },
  { name = "{5, 6, 7} along dim 2 by a random {5, 4, 7} index",
    inputs = { float({ 5, 6, 7 }, -3, 3), random_index({ 5, 4, 7 }, 6) },
    run = function(x, i) return x:gather(2, i) end, reference = function(x, i) return R.gather(x, 2, i) end, fd = false,
    dtypes = { "float32", "float64", "int32", "uint8" }, device_tolerance = EXACT_FORWARD, fenced = false },
  { name = "an empty index {3, 0}", inputs = { float({ 3, 4 }), index({ {}, {}, {} }) },
    run = function(x, i) return x:gather(2, i) end, shape = { 3, 0 } },
})

local function selected(dim)
  return function(x, i) return R.index_select(x, dim, i) end
end
row("index_select", {
  { name = "dims 1 and 2", inputs = { float({ 4, 3 }), index({ 2, 0, 2 }), index({ 1 }) },
    run = function(x, i, j) return x:index_select(1, i), x:index_select(2, j) end,
    reference = function(x, i, j) return R.index_select(x, 1, i), R.index_select(x, 2, j) end, fd = false },
  { name = "dim 1 with a repeat", inputs = { float({ 4, 3 }), index({ 2, 0, 2 }) },
    run = function(x, i) return x:index_select(1, i) end, reference = selected(1) },
  { name = "dim 2 of a transposed leaf",
    inputs = { float({ 4, 3 }, -2, 2, { layout = "transposed" }), index({ 1, 1, 0 }) },
    run = function(x, i) return x:index_select(2, i) end, reference = selected(2) },
  { name = "{5, 3} along dim 1", inputs = { float({ 5, 3 }), index({ 4, 0, 4, 2, 2, 2 }) },
    run = function(x, i) return x:index_select(1, i) end, reference = selected(1), fd = false },
  { name = "{6, 6, 7} along dim 1 by 9 random indices", inputs = { float({ 6, 6, 7 }, -3, 3), random_index({ 9 }, 6) },
    run = function(x, i) return x:index_select(1, i) end, reference = selected(1), fd = false,
    dtypes = { "float32", "float64", "int64", "bool" }, device_tolerance = EXACT_FORWARD, fenced = false },
  { name = "{5, 6, 6} along dim 3 by 9 random indices", inputs = { float({ 5, 6, 6 }, -3, 3), random_index({ 9 }, 6) },
    run = function(x, i) return x:index_select(3, i) end, reference = selected(3), fd = false,
    dtypes = { "float32", "float64", "int64", "bool" }, device_tolerance = EXACT_FORWARD, fenced = false },
  { name = "an empty index", inputs = { float({ 4, 3 }), index({}) },
    run = function(x, i) return x:index_select(1, i) end, shape = { 0, 3 } },
})

local function embedded(w, ids) return map(function(i) return w[i + 1] end, ids) end
row("embedding", {
  { name = "ids {2, 2}, and int32 ids",
    inputs = { float({ 5, 3 }), index({ { 1, 4 }, { 4, 0 } }), index({ 3 }, "int32") },
    run = function(w, ids, ids32) return tc.embedding(w, ids), tc.embedding(w, ids32) end,
    reference = function(w, ids, ids32) return embedded(w, ids), embedded(w, ids32) end, fd = false },
  { name = "repeated ids", inputs = { float({ 5, 3 }), index({ { 1, 4 }, { 4, 0 } }) },
    run = function(w, ids) return tc.embedding(w, ids) end, reference = embedded },
  { name = "w {3, 2}, ids repeated", inputs = { float({ 3, 2 }), index({ 2, 0, 2 }) },
    run = function(w, ids) return tc.embedding(w, ids) end, reference = embedded },
  { name = "w {10, 4}, ids {2, 3}", inputs = { float({ 10, 4 }), index({ { 1, 9, 1 }, { 0, 3, 3 } }) },
    run = function(w, ids) return tc.embedding(w, ids) end, reference = embedded, fd = false },
  { name = "every dtype", inputs = { float({ 5, 3 }, -3, 3), index({ { 1, 4 }, { 4, 0 } }) },
    run = function(w, ids) return tc.embedding(w, ids) end, reference = embedded, dtypes = EVERY },
  { name = "no ids", inputs = { float({ 5, 3 }), index({}) }, run = function(w, ids) return tc.embedding(w, ids) end,
    shape = { 0, 3 } },
})

-- dropout's mask comes from the context's Philox stream, the same on every device.
local function dropout_with_seed(seed, p)
  return function(x)
    tc.manual_seed(seed)
    return x:dropout(p)
  end
end
row("dropout", {
  { name = "zeroes about p and rescales the rest", dtypes = FLOAT64, backends = CPU, check = function(env)
    tc.manual_seed(3)
    local x = env.tensor({ 1 }, { dtype = "float64" }):expand(20000):contiguous()
    local zeros, kept = 0, 0
    for _, v in ipairs(x:dropout(0.25):to("cpu"):totable()) do
      if v == 0 then zeros = zeros + 1
      else
        kept = kept + 1
        assert.is_true(math.abs(v - 1 / 0.75) < 1e-12)
      end
    end
    assert.is_true(math.abs(zeros / 20000 - 0.25) < 0.02, "fraction zeroed " .. zeros / 20000)
    assert.are.same(x:to("cpu"):totable(), x:dropout(0.25, false):to("cpu"):totable())
    assert.are.same(x:to("cpu"):totable(), x:dropout(0):to("cpu"):totable())
  end },
  { name = "p = 0.5 with a fixed seed", inputs = { float({ 4, 5 }) }, run = dropout_with_seed(5, 0.5) },
  { name = "{2, 3}, p = 0.5 with a fixed seed", inputs = { float({ 2, 3 }) }, run = dropout_with_seed(6, 0.5) },
  { name = "{8, 50}, p = 0.3", inputs = { float({ 8, 50 }) }, run = dropout_with_seed(7, 0.3), fd = false,
    device_tolerance = EXACT },
  { name = "{1001}, p = 0.3", inputs = { float({ 1001 }) }, run = dropout_with_seed(99, 0.3), fd = false,
    device_tolerance = EXACT, fenced = false },
})

-- ---- views and copies ----

local function narrow_first_two(t) return t:narrow(1, 1, 2) end
row("reshape", {
  { name = "contiguous {2, 3}: reshape(3, 2), reshape({-1}), view(1, 6)", inputs = { float({ 2, 3 }) },
    run = function(x) return x:reshape(3, 2), x:reshape({ -1 }), x:view(1, 6) end,
    reference = function(x)
      local flat = R.flatten(x)
      return R.nest(flat, { 3, 2 }), flat, { flat }
    end, fd = false },
  { name = "a transposed view reshaped to {6} (copies)", inputs = { float({ 2, 3 }, -2, 2, { layout = "transposed" }) },
    run = function(x) return x:reshape(6) end, reference = function(x) return (R.flatten(x)) end },
  { name = "twice inside the graph", inputs = { float({ 2, 3 }) },
    run = function(x) return x:reshape(3, 2) * x:reshape(3, 2) end,
    reference = function(x) return R.nest(R.flatten(map(function(v) return v * v end, x)), { 3, 2 }) end },
  { name = "every dtype", inputs = { float({ 2, 3 }, -3, 3) }, run = function(x) return x:reshape(3, 2) end,
    reference = function(x) return R.nest(R.flatten(x), { 3, 2 }) end, dtypes = EVERY },
  { name = "empty {0, 3} to {3, 0}", inputs = { float({ 0, 3 }) }, run = function(x) return x:reshape(3, 0) end,
    shape = { 3, 0 } },
})

row("transpose", {
  { name = "2-D, dims 1 and 2 and the default", inputs = { float({ 2, 3 }) }, run = function(x)
    assert.is_false(x:transpose():is_contiguous())
    return x:transpose(1, 2), x:transpose()
  end, reference = function(x) return R.transpose(x), R.transpose(x) end, fd = false },
  { name = "3-D, dims 1 and 3", inputs = { float({ 2, 3, 2 }) }, run = function(x) return x:transpose(1, 3) end,
    reference = function(x) return R.permute(x, { 3, 2, 1 }) end },
  { name = "every dtype", inputs = { float({ 2, 3 }, -3, 3) }, run = function(x) return x:transpose() end,
    reference = R.transpose, dtypes = EVERY },
  { name = "empty {0, 3}", inputs = { float({ 0, 3 }) }, run = function(x) return x:transpose() end, shape = { 3, 0 } },
})

row("permute", {
  { name = "3-D, as arguments and as a table", inputs = { float({ 2, 3, 4 }) },
    run = function(x) return x:permute(3, 1, 2), x:permute({ 3, 1, 2 }) end,
    reference = function(x) return R.permute(x, { 3, 1, 2 }), R.permute(x, { 3, 1, 2 }) end, fd = false },
  { name = "3-D {2, 3, 2}", inputs = { float({ 2, 3, 2 }) }, run = function(x) return x:permute(2, 3, 1) end,
    reference = function(x) return R.permute(x, { 2, 3, 1 }) end },
  { name = "every dtype", inputs = { float({ 2, 3, 4 }, -3, 3) }, run = function(x) return x:permute(2, 3, 1) end,
    reference = function(x) return R.permute(x, { 2, 3, 1 }) end, dtypes = EVERY },
  { name = "empty {2, 0, 3}", inputs = { float({ 2, 0, 3 }) }, run = function(x) return x:permute(3, 1, 2) end,
    shape = { 3, 2, 0 } },
})

local function columns(x, first, count)
  return R.rows(x, function(r) return { compat.unpack(r, first, first + count - 1) } end)
end
row("narrow", {
  { name = "1-based and negative starts", inputs = { float({ 3, 5 }) },
    run = function(x) return x:narrow(2, 2, 3), x:narrow(1, -1, 1) end,
    reference = function(x) return columns(x, 2, 3), { x[3] } end, fd = false },
  { name = "dim 2", inputs = { float({ 3, 4 }) }, run = function(x) return x:narrow(2, 2, 2) end,
    reference = function(x) return columns(x, 2, 2) end },
  { name = "dim 1 of a transposed leaf", inputs = { float({ 3, 4 }, -2, 2, { layout = "transposed" }) },
    run = function(x) return x:narrow(1, 2, 2) end, reference = function(x) return { x[2], x[3] } end },
  { name = "every dtype", inputs = { float({ 3, 5 }, -3, 3) }, run = function(x) return x:narrow(2, 2, 3) end,
    reference = function(x) return columns(x, 2, 3) end, dtypes = EVERY },
  { name = "to length 0", inputs = { float({ 3, 4 }) }, run = function(x) return x:narrow(2, 2, 0) end,
    shape = { 3, 0 } },
})

row("select", {
  { name = "1-based, negative, t[i]", inputs = { float({ 3, 4 }) },
    run = function(x) return x:select(1, 2), x:select(2, -1), x[3], x[-1] end,
    reference = function(x) return x[2], { x[1][4], x[2][4], x[3][4] }, x[3], x[3] end, fd = false },
  { name = "dim 2", inputs = { float({ 3, 4 }) }, run = function(x) return x:select(2, 3) end,
    reference = function(x) return { x[1][3], x[2][3], x[3][3] } end },
  { name = "t[i] of a transposed leaf", inputs = { float({ 3, 4 }, -2, 2, { layout = "transposed" }) },
    run = function(x) return x[2] end, reference = function(x) return x[2] end },
  { name = "every dtype", inputs = { float({ 3, 4 }, -3, 3) }, run = function(x) return x:select(2, -1) end,
    reference = function(x) return { x[1][4], x[2][4], x[3][4] } end, dtypes = EVERY },
  { name = "of an empty {0, 3}", inputs = { float({ 0, 3 }) }, run = function(x) return x:select(2, 1) end,
    shape = { 0 } },
})

row("expand", {
  { name = "size-1 dims and a new leading dim, -1", inputs = { float({ 3, 1 }) },
    run = function(x) return x:expand(2, 3, 4), x:expand(-1, 5) end,
    reference = function(x) return R.expand(x, { 2, 3, 4 }), R.expand(x, { 3, 5 }) end, fd = false },
  { name = "{3, 1} to {2, 3, 4}", inputs = { float({ 3, 1 }) }, run = function(x) return x:expand(2, 3, 4) end,
    reference = function(x) return R.expand(x, { 2, 3, 4 }) end },
  { name = "{4, 1} to {3, 4, 5}, made contiguous", inputs = { float({ 4, 1 }) },
    run = function(x) return x:expand({ 3, 4, 5 }):contiguous() end,
    reference = function(x) return R.expand(x, { 3, 4, 5 }) end, fd = false },
  { name = "every dtype", inputs = { float({ 3, 1 }, -3, 3) }, run = function(x) return x:expand(2, 3, 4) end,
    reference = function(x) return R.expand(x, { 2, 3, 4 }) end, dtypes = EVERY },
  { name = "an empty {0, 1} to {0, 4}", inputs = { float({ 0, 1 }) }, run = function(x) return x:expand(0, 4) end,
    shape = { 0, 4 } },
})

row("contiguous", {
  { name = "of a transposed view", inputs = { float({ 3, 2 }, -2, 2, { layout = "transposed" }) }, run = function(x)
    local out = x:contiguous()
    assert.is_true(out:is_contiguous())
    return out * 2
  end, reference = function(x) return map(function(v) return 2 * v end, x) end },
  { name = "{5, 8} transposed", inputs = { float({ 5, 8 }, -2, 2, { layout = "transposed" }) },
    run = function(x) return x:contiguous() end, reference = function(x) return x end, fd = false },
  { name = "narrowed and permuted {4, 6, 5}", inputs = { float({ 4, 6, 5 }) },
    run = function(x) return x:narrow(2, 2, 3):permute({ 3, 1, 2 }):contiguous() end,
    reference = function(x)
      return R.permute(R.rows(R.permute(x, { 1, 3, 2 }), function(r) return { r[2], r[3], r[4] } end), { 2, 1, 3 })
    end, fd = false },
  { name = "strided, every dtype", inputs = { float({ 4, 5 }, -3, 3, { layout = "strided" }) },
    run = function(x) return x:contiguous() end, reference = function(x) return x end, dtypes = EVERY },
  -- An empty tensor is contiguous whatever its strides, so contiguous gives it back (no copy, not on the tape).
  { name = "empty {0, 3} transposed", inputs = { float({ 0, 3 }, -2, 2, { layout = "transposed" }) },
    run = function(x)
      assert.is_true(x:is_contiguous())
      return x:contiguous() * 2
    end, shape = { 0, 3 } },
})

row("clone", {
  { name = "a copy that does not share storage", dtypes = FLOAT64, check = function(env)
    local t = env.tensor({ 1, 2, 3 }, { dtype = "float64" })
    local c = t:clone()
    c:fill_(0)
    assert.are.same({ 1, 2, 3 }, t:to("cpu"):totable())
  end },
  { name = "of a narrowed view", inputs = { float({ 3, 2 }, -2, 2, { view = narrow_first_two }) },
    run = function(x) return x:clone() end, reference = function(x) return x end },
  { name = "a transposed view, every dtype", inputs = { float({ 4, 5 }, -3, 3, { layout = "transposed" }) },
    run = function(x) return x:clone() end, reference = function(x) return x end, dtypes = EVERY },
  { name = "empty {0, 3}", inputs = { float({ 0, 3 }) }, run = function(x) return x:clone() end, shape = { 0, 3 } },
})

local function to_every_dtype(x)
  local results = {}
  for i, dtype in ipairs(EVERY) do results[i] = x:to(dtype) end
  return compat.unpack(results)
end
local function converted_to_every_dtype(x)
  local results = {}
  for i, dtype in ipairs(EVERY) do results[i] = map(function(v) return R.convert(v, dtype) end, x) end
  return compat.unpack(results)
end
local saturating = { nan, inf, -inf, 1e10, -1e10, 300, -1.5, 2.7, -2.7, 255.9, 2 ^ 63, -2 ^ 63 }
if not compat.has_integers then
  -- Without a float subtype the reference takes an integral value for an integer (which wraps instead of
  -- saturating), and int64 cannot read ±2^63 back: fractions only here; tensor_spec checks the saturation
  -- of inf, 1e10 and ±2^63 on every Lua.
  saturating = { nan, 300.5, -1.5, 2.7, -2.7, 255.9, -300.5 }
end
row("to_dtype", {
  { name = "into every dtype from a transposed source", inputs = { const({ 4, 5 }, -3, 3, { layout = "transposed" }) },
    run = to_every_dtype, reference = converted_to_every_dtype, dtypes = EVERY, device_tolerance = EXACT,
    fenced = false },
  { name = "into every dtype from a broadcast source", inputs = { const({ 5 }, -3, 3, { view = expand_to(4, 5) }) },
    run = to_every_dtype, reference = converted_to_every_dtype, dtypes = EVERY, device_tolerance = EXACT,
    fenced = false },
  { name = "floats into integers saturate, NaN as 0", inputs = { given(saturating, { grad = false }) },
    run = to_every_dtype, reference = converted_to_every_dtype, device_tolerance = EXACT },
  { name = "float64 to float32 and back inside the graph", inputs = { float({ 2, 3 }) }, dtypes = FLOAT64,
    run = function(x) return x:to("float32"):to("float64") * x end,
    reference = function(x) return map(function(v) return R.convert(v, "float32") * v end, x) end,
    fd_options = { eps = 1e-3, atol = 1e-4, rtol = 1e-3 } },
  { name = "empty {0, 3}", inputs = { float({ 0, 3 }) }, run = function(x) return x:to("int32") end, shape = { 0, 3 },
    fd = false },
})

row("to_device", {
  { name = "there and back", inputs = { float({ 2, 3 }) },
    run = function(x, env) return x:to(env.other):to(env.device) end, reference = function(x) return x end,
    fd = false },
  { name = "there and back inside the graph", inputs = { float({ 2, 3 }) },
    run = function(x, env) return (x:to(env.other) * 2):to(env.device) end,
    reference = function(x) return map(function(v) return 2 * v end, x) end },
  { name = "every dtype, strided", inputs = { float({ 3, 4 }, -3, 3, { layout = "strided" }) },
    run = function(x, env) return x:to(env.other):to(env.device) end, reference = function(x) return x end,
    dtypes = EVERY, fd = false },
  { name = "empty {0, 3}", inputs = { float({ 0, 3 }) },
    run = function(x, env) return x:to(env.other):to(env.device) end, shape = { 0, 3 }, fd = false },
})

-- A function whose backward is written in Lua.
local cube = tc.Function({
  name = "cube",
  forward = function(ctx, x)
    ctx.x = x
    return x * x * x
  end,
  backward = function(ctx, grad) return grad * ctx.x * ctx.x * 3 end,
})
row("custom", {
  { name = "tc.Function's forward and Lua backward", inputs = { float({ 2, 3 }) }, run = function(x) return cube(x) end,
    reference = function(x) return map(function(v) return v ^ 3 end, x) end },
  { name = "of a transposed leaf", inputs = { float({ 3, 2 }, -2, 2, { layout = "transposed" }) },
    run = function(x) return cube(x) end, reference = function(x) return map(function(v) return v ^ 3 end, x) end },
})

-- ---- fused ops ----

local NORM = { float64 = 1e-12, float32 = 1e-5 }
local function norm_case(name, rms, inputs, options)
  local op = rms and tc.rms_norm or tc.layer_norm
  local case = { name = name, inputs = inputs, tolerance = NORM,
    run = function(x, w, b)
      if rms then return op(x, #inputs > 1 and w or nil) end
      return op(x, #inputs > 1 and w or nil, #inputs > 2 and b or nil)
    end,
    reference = function(x, w, b)
      return R.layer_norm(x, #inputs > 1 and w or nil, #inputs > 2 and b or nil, 1e-5, rms)
    end }
  for k, v in pairs(options or {}) do case[k] = v end
  if case.reference == false then case.reference = nil end -- an empty result has no values to compare
  return case
end

-- The gradient through a non-contiguous input equals the gradient of its contiguous copy.
local function transposed_input_check(op)
  return function(env)
    tc.manual_seed(9)
    local base = tc.randn({ 2, 4, 3 }, { dtype = "float64" })
    local weights = env.tensor(tc.randn({ 2, 3, 4 }, { dtype = "float64" }))
    local x = env.tensor(base):requires_grad_()
    ;(op(x:transpose(2, 3)) * weights):sum():backward()
    local copy = env.tensor(base:transpose(2, 3):contiguous()):requires_grad_()
    ;(op(copy) * weights):sum():backward()
    assert.are.same({ 2, 4, 3 }, x.grad.shape)
    local difference = (x.grad:transpose(2, 3) - copy.grad):abs():max():item()
    assert.is_true(difference <= 1e-12, "the gradients differ by " .. difference)
  end
end

row("layer_norm", {
  { name = "{2, 3, 4} with weight and bias, without them, and weight only with eps 0.5",
    inputs = { float({ 2, 3, 4 }, -1, 1), float({ 4 }, -1, 1), float({ 4 }, -1, 1) }, tolerance = NORM,
    run = function(x, w, b) return tc.layer_norm(x, w, b, 1e-5), tc.layer_norm(x), tc.layer_norm(x, w, nil, 0.5) end,
    reference = function(x, w, b)
      return R.layer_norm(x, w, b, 1e-5), R.layer_norm(x, nil, nil, 1e-5), R.layer_norm(x, w, nil, 0.5)
    end, fd = false },
  norm_case("x, weight and bias {3, 4}", false, { float({ 3, 4 }), float({ 4 }, 0.5, 1.5), float({ 4 }, -1, 1) }),
  norm_case("x alone {2, 3, 4}", false, { float({ 2, 3, 4 }, -1, 1) }),
  norm_case("the weight alone (x and bias constant)", false,
    { const({ 2, 3, 4 }, -1, 1), float({ 4 }, -1, 1), const({ 4 }, -1, 1) }),
  norm_case("{6, 33}", false, { float({ 6, 33 }), float({ 33 }), float({ 33 }) }, { fd = false }),
  norm_case("{7, 300} with weight and bias", false,
    { float({ 7, 300 }, -2, 3), float({ 300 }, 0.5, 1.5), float({ 300 }, -1, 1) },
    { fd = false, device_tolerance = KERNEL, fenced = false }),
  norm_case("{7, 300} without them", false, { float({ 7, 300 }, -2, 3) },
    { fd = false, device_tolerance = KERNEL, fenced = false }),
  norm_case("{70, 37}: several row blocks, a ragged tail", false,
    { float({ 70, 37 }, -1, 1), float({ 37 }, -1, 1), float({ 37 }, -1, 1) }, { fd = false, grad32 = 2e-5 }),
  { name = "a transposed input: the gradient equals its contiguous copy's", dtypes = FLOAT64,
    check = transposed_input_check(function(x) return tc.layer_norm(x) end) },
  { name = "the composition of basic ops", dtypes = FLOAT64, check = function(env)
    tc.manual_seed(4)
    local x = env.tensor(tc.rand({ 2, 3, 4 }, { dtype = "float64" }) * 2 - 1)
    local composed = (x - x:mean(-1, true)) / (x:var(-1, { correction = 0, keepdim = true }) + 1e-5):sqrt()
    assert.is_true((tc.layer_norm(x) - composed):abs():max():item() <= 1e-10)
  end },
  norm_case("empty {0, 4}", false, { float({ 0, 4 }), float({ 4 }), float({ 4 }) }, { reference = false,
    shape = { 0, 4 } }),
})

row("rms_norm", {
  { name = "{2, 3, 4} with weight (eps 1e-6) and without", inputs = { float({ 2, 3, 4 }, -1, 1), float({ 4 }, -1, 1) },
    tolerance = NORM, run = function(x, w) return tc.rms_norm(x, w, 1e-6), tc.rms_norm(x) end,
    reference = function(x, w) return R.layer_norm(x, w, nil, 1e-6, true), R.layer_norm(x, nil, nil, 1e-5, true) end,
    fd = false },
  norm_case("x and weight {3, 4}", true, { float({ 3, 4 }), float({ 4 }, 0.5, 1.5) }),
  { name = "x and weight {2, 3, 4}, eps 1e-6", inputs = { float({ 2, 3, 4 }, -1, 1), float({ 4 }, -1, 1) },
    run = function(x, w) return tc.rms_norm(x, w, 1e-6) end,
    reference = function(x, w) return R.layer_norm(x, w, nil, 1e-6, true) end },
  norm_case("{6, 40}", true, { float({ 6, 40 }), float({ 40 }) }, { fd = false }),
  norm_case("{7, 300} with weight", true, { float({ 7, 300 }, -2, 3), float({ 300 }, 0.5, 1.5) },
    { fd = false, device_tolerance = KERNEL, fenced = false }),
  norm_case("{7, 300} without it", true, { float({ 7, 300 }, -2, 3) },
    { fd = false, device_tolerance = KERNEL, fenced = false }),
  norm_case("{70, 37}: several row blocks, a ragged tail", true, { float({ 70, 37 }, -1, 1), float({ 37 }, -1, 1) },
    { fd = false, grad32 = 2e-5 }),
  { name = "a transposed input: the gradient equals its contiguous copy's", dtypes = FLOAT64,
    check = transposed_input_check(function(x) return tc.rms_norm(x) end) },
  norm_case("empty {0, 4}", true, { float({ 0, 4 }), float({ 4 }) }, { reference = false, shape = { 0, 4 } }),
})

local ATTENTION_DEVICE = { float32 = 2e-5, float64 = 1e-12 }
local function attention_case(name, shape, n_head, causal, options, n_kv_head)
  local case = { name = name, inputs = { float(shape, -1.5, 1.5) },
    run = function(qkv) return tc.attention(qkv, n_head, { causal = causal, n_kv_head = n_kv_head }) end,
    reference = function(qkv) return R.attention(qkv, n_head, causal, nil, nil, n_kv_head) end }
  for k, v in pairs(options or {}) do case[k] = v end
  return case
end
row("attention", {
  { name = "causal {2, 3, 12}, two heads, and causal by default", inputs = { float({ 2, 3, 12 }, -1, 1) },
    run = function(qkv) return tc.attention(qkv, 2, { causal = true }), tc.attention(qkv, 2) end,
    reference = function(qkv) return R.attention(qkv, 2, true), R.attention(qkv, 2, true) end, fd = false },
  attention_case("causal {1, 2, 6}, head width 1", { 1, 2, 6 }, 2, true),
  attention_case("causal {1, 3, 12}", { 1, 3, 12 }, 2, true),
  attention_case("causal {2, 3, 12}", { 2, 3, 12 }, 2, true),
  attention_case("not causal {2, 3, 12}", { 2, 3, 12 }, 2, false),
  { name = "not causal differs from causal on these inputs", dtypes = FLOAT64, check = function(env)
    local qkv = env.tensor(G.values({ 2, 3, 12 }, -1, 1, 5), { dtype = "float64" })
    local difference = (tc.attention(qkv, 2, { causal = false }) - tc.attention(qkv, 2)):abs():max():item()
    assert.is_true(difference > 1e-6, "the mask changes nothing: " .. difference)
  end },
  { name = "one head and three heads, T = 7", inputs = { float({ 1, 7, 18 }, -1, 1) },
    run = function(qkv) return tc.attention(qkv, 1), tc.attention(qkv, 3) end,
    reference = function(qkv) return R.attention(qkv, 1, true), R.attention(qkv, 3, true) end, fd = false },
  -- the device's tiles get {2, 70, 36} and {1, 70, 96} below
  attention_case("T = 70 over two query tiles, causal", { 1, 70, 12 }, 2, true, { backends = CPU }),
  attention_case("T = 70 over two query tiles, not causal", { 1, 70, 12 }, 2, false, { backends = CPU }),
  attention_case("{2, 5, 24}, two heads, causal", { 2, 5, 24 }, 2, true, { fd = false }),
  attention_case("{1, 7, 18}, three heads, not causal", { 1, 7, 18 }, 3, false, { fd = false }),
  attention_case("several tiles {2, 45, 240}, causal", { 2, 45, 240 }, 2, true, { fd = false }),
  attention_case("several tiles {1, 70, 96}, one head, not causal", { 1, 70, 96 }, 1, false, { fd = false }),
  attention_case("heads wider than 128 (the row kernels)", { 1, 6, 3 * 130 }, 1, true, { fd = false }),
  attention_case("{2, 70, 36}, head width 4, causal", { 2, 70, 36 }, 3, true,
    { fd = false, device_tolerance = ATTENTION_DEVICE, fenced = false }),
  attention_case("{2, 70, 36}, head width 4, not causal", { 2, 70, 36 }, 3, false,
    { fd = false, device_tolerance = ATTENTION_DEVICE, fenced = false }),
  attention_case("{1, 5, 48}, causal", { 1, 5, 48 }, 2, true,
    { fd = false, device_tolerance = ATTENTION_DEVICE, fenced = false }),
  attention_case("{1, 5, 48}, not causal", { 1, 5, 48 }, 2, false,
    { fd = false, device_tolerance = ATTENTION_DEVICE, fenced = false }),
  -- grouped queries: qkv {B, T, (H + 2 KV) hd}
  attention_case("grouped: 4 query heads over 2 k/v heads, hd 2, causal", { 2, 3, 16 }, 4, true, nil, 2),
  attention_case("grouped: 4 query heads over 2 k/v heads, not causal", { 1, 4, 16 }, 4, false, nil, 2),
  attention_case("multi-query: 3 query heads over 1 k/v head, causal", { 2, 3, 10 }, 3, true, nil, 1),
  attention_case("grouped {2, 70, 40}, 6 over 2 heads, hd 4 (two query blocks)", { 2, 70, 40 }, 6, true,
    { fd = false, device_tolerance = ATTENTION_DEVICE, fenced = false }, 2),
  attention_case("multi-query {1, 45, 96}, 4 over 1 head, hd 16, not causal", { 1, 45, 96 }, 4, false,
    { fd = false, device_tolerance = ATTENTION_DEVICE, fenced = false }, 1),
  attention_case("grouped heads wider than 128 (the row kernels)", { 1, 6, 4 * 130 }, 2, true, { fd = false }, 1),
  { name = "grouped equals multi-head over k/v heads repeated", dtypes = FLOAT64, check = function(env)
    -- 4 query heads, 2 k/v heads of 3: repeating each k/v head twice gives the {B, T, 3C} input
    local qkv = env.tensor(G.values({ 2, 5, 24 }, -1, 1, 9), { dtype = "float64" })
    local q, k, v = qkv:narrow(3, 1, 12), qkv:narrow(3, 13, 6), qkv:narrow(3, 19, 6)
    local function repeated(x)
      local a, b = x:narrow(3, 1, 3), x:narrow(3, 4, 3)
      return tc.cat({ a, a, b, b }, 3)
    end
    local full = tc.cat({ q, repeated(k), repeated(v) }, 3)
    local difference = (tc.attention(qkv, 4, { n_kv_head = 2 }) - tc.attention(full, 4)):abs():max():item()
    assert.is_true(difference < 1e-12, "grouped and repeated differ by " .. difference)
  end },
})

-- Feeds qkv through the caches in pieces; returns the pieces' results
-- joined, and the caches.
local function cached_run(n_head, pieces, causal, n_kv_head)
  return function(qkv, k, v)
    local outs, position = {}, 0
    local C = compat.idiv(qkv.shape[3], n_head + 2 * (n_kv_head or n_head)) * n_head
    for i, length in ipairs(pieces) do
      outs[i] = tc.attention_cached(qkv:narrow(2, position + 1, length), k, v, position, n_head,
        { causal = causal, n_kv_head = n_kv_head })
      assert.are.same({ qkv.shape[1], length, C }, outs[i].shape)
      position = position + length
    end
    return tc.cat(outs, 2), k, v
  end
end
-- Full attention's rows, and caches holding every position's keys and
-- values head-major ({B, KV, capacity, hd}), zero past the last.
local function cached_reference(n_head, causal, n_kv_head)
  n_kv_head = n_kv_head or n_head
  return function(qkv, k)
    local capacity = #k[1][1]
    local hd = compat.idiv(#qkv[1][1], n_head + 2 * n_kv_head)
    local C = n_head * hd
    local keys, values = {}, {}
    for b = 1, #qkv do
      keys[b], values[b] = {}, {}
      for h = 1, n_kv_head do
        keys[b][h], values[b][h] = {}, {}
        for t = 1, capacity do
          local key, value = {}, {}
          for d = 1, hd do
            local row_t = qkv[b][t]
            key[d] = row_t and row_t[C + (h - 1) * hd + d] or 0
            value[d] = row_t and row_t[C + (n_kv_head + h - 1) * hd + d] or 0
          end
          keys[b][h][t], values[b][h][t] = key, value
        end
      end
    end
    return R.attention(qkv, n_head, causal, nil, nil, n_kv_head), keys, values
  end
end
local function cached_case(name, B, T, C, n_head, capacity, pieces, causal, options, n_kv_head)
  local hd = compat.idiv(C, n_head)
  local kv = n_kv_head or n_head
  local case = { name = name, inputs = { float({ B, T, C + 2 * kv * hd }, -1.5, 1.5), zeros({ B, kv, capacity, hd }),
    zeros({ B, kv, capacity, hd }) }, run = cached_run(n_head, pieces, causal, n_kv_head),
    reference = cached_reference(n_head, causal, n_kv_head) }
  for k, v in pairs(options or {}) do case[k] = v end
  return case
end
row("attention_cached", {
  cached_case("one position at a time equals causal attention", 2, 4, 4, 2, 5, { 1, 1, 1, 1 }, true),
  cached_case("pieces of 4, 1, 1 and 3", 2, 9, 4, 2, 12, { 4, 1, 1, 3 }, true),
  cached_case("pieces of 70, 1 and 4, across query blocks", 1, 75, 8, 2, 78, { 70, 1, 4 }, true,
    { dtypes = FLOAT64 }),
  cached_case("pieces of 1, 73 and 1, across query blocks", 1, 75, 8, 2, 78, { 1, 73, 1 }, true,
    { dtypes = { "float32" } }),
  cached_case("a prompt of 5, then one at a time, three heads", 2, 9, 12, 3, 11, { 5, 1, 1, 1, 1 }, true,
    { device_tolerance = ATTENTION_DEVICE, fenced = false }),
  cached_case("not causal: one piece over an empty cache equals full attention", 2, 5, 4, 2, 5, { 5 }, false),
  cached_case("not causal, three heads, all positions at once", 2, 9, 12, 3, 11, { 9 }, false,
    { device_tolerance = ATTENTION_DEVICE, fenced = false }),
  cached_case("grouped: 4 query heads over 2 cached k/v heads, a prompt then one at a time", 2, 7, 8, 4, 9,
    { 4, 1, 1, 1 }, true, nil, 2),
  cached_case("multi-query: 3 query heads over 1 cached k/v head", 1, 6, 6, 3, 6, { 2, 1, 3 }, true,
    { device_tolerance = ATTENTION_DEVICE, fenced = false }, 1),
  cached_case("grouped, not causal, all at once", 2, 5, 8, 4, 5, { 5 }, false, nil, 2),
})

-- ---- rope ----

-- x's values rotated pair by pair: {B, T, H, D} (time_dim 2) or {B, H, T, D} (time_dim 3); positions {T} or {B, T}.
local function rope_reference(options)
  local time_dim, base, interleaved = options.time_dim or 2, options.base or 10000, options.interleaved
  return function(x, positions)
    local out = {}
    for b, outer in ipairs(x) do
      out[b] = {}
      for j, middle in ipairs(outer) do
        out[b][j] = {}
        for k, values in ipairs(middle) do
          local t = time_dim == 2 and j or k
          local position = type(positions[1]) == "table" and positions[b][t] or positions[t]
          local dim, rotated = #values, {}
          local half = compat.idiv(dim, 2)
          for i = 0, half - 1 do
            local first, second = interleaved and 2 * i + 1 or i + 1, interleaved and 2 * i + 2 or i + 1 + half
            local angle = position * base ^ (-2 * i / dim)
            rotated[first] = values[first] * math.cos(angle) - values[second] * math.sin(angle)
            rotated[second] = values[first] * math.sin(angle) + values[second] * math.cos(angle)
          end
          out[b][j][k] = rotated
        end
      end
    end
    return out
  end
end
local function rope_case(name, x, positions, options, extra)
  local case = { name = name, inputs = { x, positions },
    run = function(t, p) return tc.rope(t, p, options) end, reference = rope_reference(options) }
  for k, v in pairs(extra or {}) do case[k] = v end
  return case
end
row("rope", {
  rope_case("{2, 3, 2, 4} at positions 0, 1, 2", float({ 2, 3, 2, 4 }), index({ 0, 1, 2 }), {}),
  rope_case("{2, 2, 3, 6}, time dim 3, positions per batch (int32), base 500, interleaved",
    float({ 2, 2, 3, 6 }), index({ { 3, 1, 4 }, { 0, 5, 9 } }, "int32"),
    { time_dim = 3, base = 500, interleaved = true }),
  rope_case("a permuted input {1, 3, 2, 4}", float({ 1, 3, 2, 4 }, -2, 2, { layout = { 1, 3, 2, 4 } }),
    index({ 7, 8, 9 }), { base = 10 }),
  rope_case("{1, 5, 3, 64} at positions 1000 to 1004", float({ 1, 5, 3, 64 }), index({ 1000, 1001, 1002, 1003, 1004 }),
    {}, { fd = false }),
  rope_case("{2, 4, 17, 8}, time dim 3, interleaved", float({ 2, 4, 17, 8 }),
    index({ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 }), { time_dim = 3, interleaved = true },
    { fd = false }),
  rope_case("empty {1, 0, 2, 4}", float({ 1, 0, 2, 4 }), index({}), {}, { shape = { 1, 0, 2, 4 } }),
})

-- ---- convolution and pooling (conv2d, im2col; conv1d and the pools composed in lua/tricycle/conv.lua) ----

local CR = require("helpers.conv_reference")
-- A case whose run is fn(inputs..., options) and whose reference is reference(options).
local function with_options(fn, reference)
  return function(name, inputs, options, extra)
    local case = { name = name, inputs = inputs, reference = reference(options) }
    case.run = function(...)
      local args = { ... }
      args[#inputs + 1] = options
      return fn(compat.unpack(args, 1, #inputs + 1))
    end
    for k, v in pairs(extra or {}) do case[k] = v end
    return case
  end
end
local im2col_case = with_options(tc.im2col, CR.im2col)
row("im2col", {
  im2col_case("{1, 2, 4, 5}, kernel 2", { float({ 1, 2, 4, 5 }) }, { kernel_size = 2 }),
  im2col_case("{2, 2, 5, 6}, kernel {2, 3}, stride {2, 1}, padding 1, dilation {1, 2}, pad_value -1.5",
    { float({ 2, 2, 5, 6 }) },
    { kernel_size = { 2, 3 }, stride = { 2, 1 }, padding = 1, dilation = { 1, 2 }, pad_value = -1.5 }),
  im2col_case("a permuted leaf {2, 3, 4, 4}, kernel 3, padding {0, 2}, stride 3",
    { float({ 2, 3, 4, 4 }, -2, 2, { layout = { 1, 3, 4, 2 } }) }, { kernel_size = 3, padding = { 0, 2 }, stride = 3 }),
  im2col_case("{2, 8, 17, 13}, kernel 3, padding 1", { float({ 2, 8, 17, 13 }) }, { kernel_size = 3, padding = 1 },
    { fd = false }),
  im2col_case("{3, 5, 9, 11}, kernel {4, 2}, stride {2, 3}, padding 2, dilation 2", { float({ 3, 5, 9, 11 }) },
    { kernel_size = { 4, 2 }, stride = { 2, 3 }, padding = 2, dilation = 2 }, { fd = false }),
  { name = "batch_last: {C*kH*kW, N*L}, {3, 2, 4, 5}, kernel {2, 3}, padding 1, stride {1, 2}",
    inputs = { float({ 3, 2, 4, 5 }) },
    run = function(x)
      return tc.im2col(x, { kernel_size = { 2, 3 }, padding = 1, stride = { 1, 2 }, batch_last = true })
    end,
    reference = function(x)
      local cols = CR.im2col({ kernel_size = { 2, 3 }, padding = 1, stride = { 1, 2 } })(x)
      local out = {}
      for r = 1, #cols[1] do
        out[r] = {}
        for n = 1, #cols do
          for _, v in ipairs(cols[n][r]) do out[r][#out[r] + 1] = v end
        end
      end
      return out
    end },
  { name = "batch_last {4, 6, 9, 7}, kernel 3, padding 1", inputs = { float({ 4, 6, 9, 7 }) },
    run = function(x) return tc.im2col(x, { kernel_size = 3, padding = 1, batch_last = true }) end,
    fd = false, shape = { 54, 252 } },
  { name = "empty {0, 2, 4, 4}", inputs = { float({ 0, 2, 4, 4 }) },
    run = function(x) return tc.im2col(x, { kernel_size = 3 }) end, shape = { 0, 18, 4 } },
  { name = "an empty image {1, 1, 0, 2} padded: only padding", inputs = { float({ 1, 1, 0, 2 }) },
    run = function(x) return tc.im2col(x, { kernel_size = 1, padding = 1, pad_value = 7 }) end,
    reference = function() return { { { 7, 7, 7, 7, 7, 7, 7, 7 } } } end, shape = { 1, 1, 8 } },
})

local conv2d_case = with_options(tc.conv2d, CR.conv2d)
local function conv2d_no_bias(name, inputs, options, extra)
  local case = conv2d_case(name, inputs, options, extra)
  case.run = function(x, w) return tc.conv2d(x, w, nil, options) end
  return case
end
row("conv2d", {
  conv2d_case("{2, 3, 5, 4} * {4, 3, 3, 2} + bias, padding {1, 0}",
    { float({ 2, 3, 5, 4 }), float({ 4, 3, 3, 2 }), float({ 4 }) }, { padding = { 1, 0 } }),
  conv2d_no_bias("{1, 2, 7, 6} * {3, 2, 2, 3}, stride 2, dilation {2, 1}, padding 1, no bias",
    { float({ 1, 2, 7, 6 }), float({ 3, 2, 2, 3 }) }, { stride = 2, dilation = { 2, 1 }, padding = 1 }),
  conv2d_case("groups 2: {2, 4, 4, 4} * {6, 2, 3, 3}", { float({ 2, 4, 4, 4 }), float({ 6, 2, 3, 3 }), float({ 6 }) },
    { groups = 2, padding = 1 }),
  conv2d_case("depthwise: {1, 3, 5, 5} * {3, 1, 3, 3}, stride {1, 2}",
    { float({ 1, 3, 5, 5 }), float({ 3, 1, 3, 3 }), float({ 3 }) }, { groups = 3, stride = { 1, 2 } }),
  conv2d_case("a 1x1 kernel reads x as it is: {2, 3, 3, 4} * {5, 3, 1, 1}",
    { float({ 2, 3, 3, 4 }), float({ 5, 3, 1, 1 }), float({ 5 }) }, {}),
  conv2d_case("a permuted x and a transposed weight view", { float({ 2, 2, 4, 3 }, -2, 2, { layout = { 1, 3, 4, 2 } }),
    float({ 3, 2, 2, 2 }, -2, 2, { layout = { 2, 1, 3, 4 } }), float({ 3 }) }, { padding = 1 }),
  conv2d_case("{4, 16, 12, 12} * {32, 16, 3, 3}, padding 1", { float({ 4, 16, 12, 12 }), float({ 32, 16, 3, 3 }),
    float({ 32 }) }, { padding = 1 },
    -- the weight's gradient sums 576 products per image over 4 images, in another order on a device
    -- (in 16 bits: 2,304 products of the rounded upstream gradient per weight element)
    { fd = false, tolerance = { float32 = 1e-4 }, half_grad = 8,
      device_tolerance = { float32 = 1e-5, gradients = { float32 = 1e-3 } } }),
  conv2d_case("{3, 6, 11, 9} * {8, 3, 5, 3}, groups 2, stride {2, 1}, padding {2, 1}, dilation {1, 2}",
    { float({ 3, 6, 11, 9 }), float({ 8, 3, 5, 3 }), float({ 8 }) },
    { groups = 2, stride = { 2, 1 }, padding = { 2, 1 }, dilation = { 1, 2 } }, { fd = false, half_grad = 4 }),
  { name = "empty batch {0, 3, 5, 5}", inputs = { float({ 0, 3, 5, 5 }), float({ 2, 3, 3, 3 }), float({ 2 }) },
    run = function(x, w, b) return tc.conv2d(x, w, b) end, shape = { 0, 2, 3, 3 } },
  -- stride 1 with the output the input's size: one op on the CPU (src/cpu/cpu_conv_same.c) in float32
  conv2d_case("same size: {2, 3, 5, 6} * {4, 3, 3, 3} + bias, padding 1",
    { float({ 2, 3, 5, 6 }), float({ 4, 3, 3, 3 }), float({ 4 }) }, { padding = 1 }),
  conv2d_no_bias("same size: {1, 2, 4, 7} * {3, 2, 3, 5}, padding {2, 4}, dilation 2, no bias",
    { float({ 1, 2, 4, 7 }), float({ 3, 2, 3, 5 }) }, { padding = { 2, 4 }, dilation = 2 }),
  conv2d_case("same size: {2, 30, 6, 5} * {14, 30, 3, 3}, padding 1 (depth 270, past one GEMM block)",
    { float({ 2, 30, 6, 5 }), float({ 14, 30, 3, 3 }), float({ 14 }) }, { padding = 1 },
    { fd = false, tolerance = { float32 = 1e-4 }, half_grad = 8,
      device_tolerance = { float32 = 1e-5, gradients = { float32 = 1e-3 } } }),
  conv2d_case("same size: {1, 3, 36, 37} * {5, 3, 3, 3}, padding 1 (two blocks of 1024 positions)",
    { float({ 1, 3, 36, 37 }), float({ 5, 3, 3, 3 }), float({ 5 }) }, { padding = 1 },
    { fd = false, tolerance = { float32 = 1e-4 }, half_grad = 8,
      device_tolerance = { float32 = 1e-5, gradients = { float32 = 1e-3 } } }),
})

local conv1d_case = with_options(tc.conv1d, CR.conv1d)
row("conv1d", {
  conv1d_case("{2, 3, 7} * {4, 3, 3} + bias, padding 1", { float({ 2, 3, 7 }), float({ 4, 3, 3 }), float({ 4 }) },
    { padding = 1 }),
  conv1d_case("groups 2, stride 2, dilation 2: {1, 4, 9} * {2, 2, 2}", { float({ 1, 4, 9 }), float({ 2, 2, 2 }),
    float({ 2 }) }, { groups = 2, stride = 2, dilation = 2 }),
  conv1d_case("{4, 8, 50} * {16, 8, 5}, padding 2", { float({ 4, 8, 50 }), float({ 16, 8, 5 }), float({ 16 }) },
    { padding = 2 }, { fd = false, tolerance = { float32 = 1e-4 }, half_grad = 4 }),
  { name = "empty {0, 2, 5}", inputs = { float({ 0, 2, 5 }), float({ 3, 2, 2 }) },
    run = function(x, w) return tc.conv1d(x, w) end, shape = { 0, 3, 4 } },
})

local max_pool_case = with_options(tc.max_pool2d, CR.max_pool2d)
row("max_pool2d", {
  max_pool_case("{2, 2, 4, 6}, kernel 2", { float({ 2, 2, 4, 6 }) }, { kernel_size = 2 }),
  max_pool_case("{1, 2, 5, 5}, kernel 3, stride 2, padding 1 (negative values: -inf padding)",
    { float({ 1, 2, 5, 5 }, -3, -1) }, { kernel_size = 3, stride = 2, padding = 1 }),
  max_pool_case("{1, 1, 6, 7}, kernel {2, 3}, stride 1, dilation {2, 1}", { float({ 1, 1, 6, 7 }) },
    { kernel_size = { 2, 3 }, stride = 1, dilation = { 2, 1 } }),
  max_pool_case("{8, 16, 32, 32}, kernel 2", { float({ 8, 16, 32, 32 }) }, { kernel_size = 2 }, { fd = false }),
  { name = "empty {0, 2, 4, 4}", inputs = { float({ 0, 2, 4, 4 }) },
    run = function(x) return tc.max_pool2d(x, { kernel_size = 2 }) end, shape = { 0, 2, 2, 2 } },
})

local avg_pool_case = with_options(tc.avg_pool2d, CR.avg_pool2d)
row("avg_pool2d", {
  avg_pool_case("{2, 2, 4, 6}, kernel 2", { float({ 2, 2, 4, 6 }) }, { kernel_size = 2 }),
  avg_pool_case("{1, 2, 5, 5}, kernel 3, stride 2, padding 1 (padding counted)", { float({ 1, 2, 5, 5 }) },
    { kernel_size = 3, stride = 2, padding = 1 }),
  avg_pool_case("{1, 2, 5, 4}, kernel {3, 2}, stride 1, padding 1, count_include_pad = false",
    { float({ 1, 2, 5, 4 }) }, { kernel_size = { 3, 2 }, stride = 1, padding = 1, count_include_pad = false }),
  avg_pool_case("{4, 8, 16, 16}, kernel 3, stride 2", { float({ 4, 8, 16, 16 }) }, { kernel_size = 3, stride = 2 },
    { fd = false }),
  { name = "empty {0, 2, 4, 4}", inputs = { float({ 0, 2, 4, 4 }) },
    run = function(x) return tc.avg_pool2d(x, { kernel_size = 2 }) end, shape = { 0, 2, 2, 2 } },
})

local function adaptive_case(name, x, size, extra)
  local case = { name = name, inputs = { x }, run = function(t) return tc.adaptive_avg_pool2d(t, size) end,
    reference = CR.adaptive_avg_pool2d(size) }
  for k, v in pairs(extra or {}) do case[k] = v end
  return case
end
row("adaptive_avg_pool2d", {
  adaptive_case("{2, 2, 5, 7} to {2, 3}: overlapping bins", float({ 2, 2, 5, 7 }), { 2, 3 }),
  adaptive_case("{1, 3, 4, 4} to 1: global average", float({ 1, 3, 4, 4 }), 1),
  adaptive_case("{1, 1, 3, 2} to {5, 4}: larger than the input", float({ 1, 1, 3, 2 }), { 5, 4 }),
  adaptive_case("{4, 8, 13, 11} to {3, 5}", float({ 4, 8, 13, 11 }), { 3, 5 }, { fd = false }),
  { name = "empty {0, 2, 4, 4}", inputs = { float({ 0, 2, 4, 4 }) },
    run = function(x) return tc.adaptive_avg_pool2d(x, 2) end, shape = { 0, 2, 2, 2 } },
})

local function batch_norm_case(name, inputs, extra)
  local case = { name = name, inputs = inputs, reference = CR.batch_norm(1e-5),
    run = function(x, w, b) return tc.batch_norm(x, nil, nil, w, b, { training = true }) end }
  for k, v in pairs(extra or {}) do case[k] = v end
  return case
end
row("batch_norm", {
  batch_norm_case("{4, 3, 2, 2} with weight and bias", { float({ 4, 3, 2, 2 }), float({ 3 }), float({ 3 }) }),
  batch_norm_case("{5, 2} (BatchNorm1d's shape)", { float({ 5, 2 }), float({ 2 }), float({ 2 }) }),
  batch_norm_case("{8, 16, 9, 9}", { float({ 8, 16, 9, 9 }), float({ 16 }), float({ 16 }) },
    { fd = false, half_grad = 4 }),
  { name = "running statistics in eval: (x - mean) / sqrt(var + eps) * w + b",
    inputs = { float({ 2, 3, 2 }), const({ 3 }), const({ 3 }, 0.5, 2), float({ 3 }), float({ 3 }) },
    run = function(x, m, v, w, b) return tc.batch_norm(x, m, v, w, b, { training = false, eps = 1e-3 }) end,
    reference = function(x, m, v, w, b)
      local out = {}
      for n = 1, #x do
        out[n] = {}
        for c = 1, #x[n] do
          out[n][c] = {}
          for l = 1, #x[n][c] do out[n][c][l] = (x[n][c][l] - m[c]) / math.sqrt(v[c] + 1e-3) * w[c] + b[c] end
        end
      end
      return out
    end },
})

local function cross_entropy_reference(ignore)
  return function(logits, targets) return R.cross_entropy(logits, targets, ignore or -100) end
end
local logit_targets = { 0, 4, 2, 1, 3, 3 }
row("cross_entropy", {
  { name = "logits {6, 5}; ignore_index -100, 4 and 1", inputs = { float({ 6, 5 }, -1, 1), index(logit_targets) },
    run = function(logits, targets)
      return tc.cross_entropy(logits, targets), tc.cross_entropy(logits, targets, { ignore_index = 4 }),
        tc.cross_entropy(logits, targets, { ignore_index = 1 })
    end, reference = function(logits, targets)
      return R.cross_entropy(logits, targets, -100), R.cross_entropy(logits, targets, 4),
        R.cross_entropy(logits, targets, 1)
    end, fd = false },
  { name = "logits {2, 3, 5} with targets {2, 3}, int64 and int32",
    inputs = { float({ 2, 3, 5 }, -1, 1), index({ { 0, 4, 2 }, { 1, 3, 3 } }),
      index({ { 0, 4, 2 }, { 1, 3, 3 } }, "int32") },
    run = function(logits, t64, t32) return tc.cross_entropy(logits, t64), tc.cross_entropy(logits, t32) end,
    reference = function(logits, t64, t32)
      return R.cross_entropy(logits, t64, -100), R.cross_entropy(logits, t32, -100)
    end, fd = false },
  { name = "logits {2, 3}", inputs = { float({ 2, 3 }, -3, 3), index({ 2, 0 }) },
    run = function(logits, targets) return tc.cross_entropy(logits, targets) end,
    reference = cross_entropy_reference() },
  { name = "with an ignored target, ignore_index 0", inputs = { float({ 4, 5 }, -3, 3), index({ 1, 4, 0, 2 }) },
    run = function(logits, targets) return tc.cross_entropy(logits, targets, { ignore_index = 0 }) end,
    reference = cross_entropy_reference(0) },
  { name = "logits {2, 3, 5} with a target of -100",
    inputs = { float({ 2, 3, 5 }, -1, 1), index({ { 0, -100, 2 }, { 1, 4, 3 } }) },
    run = function(logits, targets) return tc.cross_entropy(logits, targets) end,
    reference = cross_entropy_reference() },
  { name = "ignored rows get exactly zero gradient, the others sum to zero", dtypes = FLOAT64, check = function(env)
    tc.manual_seed(10)
    local targets = { 0, -100, 2, -100, 3, 3 }
    local logits = env.tensor(tc.randn({ 6, 5 }, { dtype = "float64" })):requires_grad_()
    tc.cross_entropy(logits, env.tensor(targets, { dtype = "int64" })):backward()
    local grad = logits.grad:to("cpu"):totable()
    for r, target in ipairs(targets) do
      local row_sum, row_abs = 0, 0
      for _, g in ipairs(grad[r]) do row_sum, row_abs = row_sum + g, row_abs + math.abs(g) end
      assert.is_true(math.abs(row_sum) < 1e-12)
      if target == -100 then assert.are.equal(0, row_abs) else assert.is_true(row_abs > 0) end
    end
  end },
  { name = "every target ignored: 0 and zero gradients, not NaN", dtypes = FLOAT64, check = function(env)
    local logits = env.tensor(tc.randn({ 6, 5 }, { dtype = "float64" })):requires_grad_()
    local loss = tc.cross_entropy(logits, env.tensor({ -100, -100, -100, -100, -100, -100 }, { dtype = "int64" }))
    assert.are.equal(0, loss:item())
    loss:backward()
    for _, g in ipairs(R.flatten(logits.grad:to("cpu"):totable())) do assert.are.equal(0, g) end
  end },
  { name = "{6, 11} with a target of -100", inputs = { float({ 6, 11 }), index({ 0, 10, 3, 3, -100, 7 }) },
    run = function(logits, targets) return tc.cross_entropy(logits, targets) end,
    reference = cross_entropy_reference(), fd = false },
  { name = "{9, 300}, int64 and int32 targets, two of -100",
    inputs = { float({ 9, 300 }, -5, 5), index({ 17, 250, -100, 3, 299, -100, 0, 120, 64 }),
      index({ 17, 250, -100, 3, 299, -100, 0, 120, 64 }, "int32") },
    run = function(logits, t64, t32) return tc.cross_entropy(logits, t64), tc.cross_entropy(logits, t32) end,
    reference = function(logits, t64, t32)
      return R.cross_entropy(logits, t64, -100), R.cross_entropy(logits, t32, -100)
    end, fd = false, device_tolerance = KERNEL, fenced = false },
  { name = "no rows", inputs = { float({ 0, 5 }), index({}) },
    run = function(logits, targets) return tc.cross_entropy(logits, targets) end, reference = function() return 0 end },
})

-- ---- optimiser steps ----

local ADAMW = { lr = 0.01, beta1 = 0.9, beta2 = 0.99, eps = 1e-8, weight_decay = 0.1 }
local function with_step(step, options)
  local o = { step = step }
  for k, v in pairs(options) do o[k] = v end
  return o
end
row("adamw_step", {
  { name = "two steps by hand", inputs = { given({ { 0.5, -1.25 }, { 2.0, 0.0 } }),
    given({ { 0.1, -0.2 }, { 0.3, -0.4 } }), given({ { -0.05, 0.5 }, { 0.25, 0.0 } }), zeros({ 2, 2 }),
    zeros({ 2, 2 }) }, tolerance = { float64 = 1e-13 },
    run = function(p, g1, g2, m, v)
      for step, g in ipairs({ g1, g2 }) do
        assert.are.equal(p, tc.adamw_step(p, g, m, v, with_step(step, ADAMW)))
      end
      return p, m, v
    end, reference = function(p, g1, g2, m, v)
      local grads = { R.flatten(g1), R.flatten(g2) }
      local rp, rm, rv = R.adamw(R.flatten(p), grads, R.flatten(m), R.flatten(v), { 1, 2 }, ADAMW)
      return R.nest(rp, { 2, 2 }), R.nest(rm, { 2, 2 }), R.nest(rv, { 2, 2 })
    end },
  { name = "a first step with weight decay",
    inputs = { given({ 1, -2 }), given({ 0.5, -0.25 }), zeros({ 2 }), zeros({ 2 }) },
    run = function(p, g, m, v)
      tc.adamw_step(p, g, m, v, { step = 1, lr = 0.1, weight_decay = 0.1, eps = 1e-8 })
      return p, m
    end, reference = function(p, g, m, v)
      local options = { lr = 0.1, weight_decay = 0.1, eps = 1e-8, beta1 = 0.9, beta2 = 0.999 }
      local rp, rm = R.adamw(p, { g }, m, v, { 1 }, options)
      return rp, rm
    end, tolerance = { float64 = 1e-9 } },
  { name = "{7, 5} with moments, step 3",
    inputs = { float({ 7, 5 }), float({ 7, 5 }), float({ 7, 5 }, -0.1, 0.1), float({ 7, 5 }, 0, 0.01) },
    run = function(p, g, m, v)
      tc.adamw_step(p, g, m, v, with_step(3, ADAMW))
      return p, m, v
    end, reference = function(p, g, m, v)
      local rp, rm, rv = R.adamw(R.flatten(p), { R.flatten(g) }, R.flatten(m), R.flatten(v), { 3 }, ADAMW)
      return R.nest(rp, { 7, 5 }), R.nest(rm, { 7, 5 }), R.nest(rv, { 7, 5 })
    end },
  { name = "adamw_steps: {1000} and {7} with their own steps",
    inputs = { float({ 1000 }, -1, 1), float({ 1000 }, -1, 1), float({ 1000 }, -0.1, 0.1), float({ 1000 }, 0, 0.01),
      float({ 7 }, -1, 1), float({ 7 }, -1, 1), float({ 7 }, -0.1, 0.1), float({ 7 }, 0, 0.01) },
    run = function(p1, g1, m1, v1, p2, g2, m2, v2)
      tc.adamw_steps({ p1, p2 }, { g1, g2 }, { m1, m2 }, { v1, v2 }, { 3, 4 }, ADAMW)
      return p1, m1, v1, p2, m2, v2
    end, reference = function(p1, g1, m1, v1, p2, g2, m2, v2)
      local a, b, c = R.adamw(p1, { g1 }, m1, v1, { 3 }, ADAMW)
      local d, e, f = R.adamw(p2, { g2 }, m2, v2, { 4 }, ADAMW)
      return a, b, c, d, e, f
    end, device_tolerance = KERNEL, fenced = false },
  { name = "a float32 parameter moves even with a tiny lr", dtypes = { "float32" }, check = function(env)
    local param, grad = env.tensor(tc.ones({ 8 })), env.tensor(tc.full({ 8 }, 1e-3))
    local m, v = env.tensor(tc.zeros({ 8 })), env.tensor(tc.zeros({ 8 }))
    tc.adamw_step(param, grad, m, v, { step = 1, lr = 1e-6, weight_decay = 0 })
    for _, value in ipairs(param:to("cpu"):totable()) do
      assert.is_true(value < 1)
      assert.is_true(math.abs(value - (1 - 1e-6)) < 2e-7)
    end
    local before = param:to("cpu"):totable()[1]
    for step = 2, 10 do tc.adamw_step(param, grad, m, v, { step = step, lr = 1e-6, weight_decay = 0 }) end
    assert.is_true(param:to("cpu"):totable()[1] < before)
  end },
  { name = "adamw_steps gives adamw_step's bits, per-parameter steps", dtypes = { "float32" }, backends = CPU,
    check = function()
      local options = { lr = 1e-2, beta1 = 0.9, beta2 = 0.99, eps = 1e-8, weight_decay = 0.1 }
      local function setup()
        tc.manual_seed(3)
        local params = { tc.randn({ 3, 5 }), tc.randn({ 20000 }), tc.randn({ 7 }) } -- one spans several blocks
        local grads = { tc.randn({ 5, 3 }):transpose(1, 2), tc.randn({ 20000 }), tc.randn({ 7 }) } -- not contiguous
        local ms, vs = {}, {}
        for i, p in ipairs(params) do ms[i], vs[i] = tc.randn(p.shape) * 0.1, tc.rand(p.shape) * 0.1 end
        return params, grads, ms, vs
      end
      local steps = { 1, 7, 3 }
      local p1, g1, m1, v1 = setup()
      for i = 1, 3 do tc.adamw_step(p1[i], g1[i], m1[i], v1[i], with_step(steps[i], options)) end
      local p2, g2, m2, v2 = setup()
      tc.adamw_steps(p2, g2, m2, v2, steps, options)
      for i = 1, 3 do
        assert.is_true(p1[i]:tobytes() == p2[i]:tobytes(), "param " .. i)
        assert.is_true(m1[i]:tobytes() == m2[i]:tobytes() and v1[i]:tobytes() == v2[i]:tobytes(), "state " .. i)
      end
    end },
})

local SGD = { lr = 0.1, momentum = 0.9, weight_decay = 0.01 }
local function sgd_case(name, options, steps)
  return { name = name, inputs = { given({ 1.0, -2.0, 0.5 }), given({ 0.3, -0.1, 0.2 }), zeros({ 3 }) },
    tolerance = { float64 = 1e-14 }, run = function(p, g, buffer)
      for _ = 1, steps do assert.are.equal(p, tc.sgd_step(p, g, options.momentum and buffer or nil, options)) end
      return p, buffer
    end, reference = function(p, g, buffer)
      local grads = {}
      for i = 1, steps do grads[i] = g end
      return R.sgd(p, grads, buffer, options)
    end }
end
row("sgd_step", {
  sgd_case("two momentum steps by hand", SGD, 2),
  sgd_case("two Nesterov steps by hand", { lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 0.01 }, 2),
  sgd_case("plain", { lr = 0.1 }, 1),
  sgd_case("plain with weight decay", { lr = 0.1, weight_decay = 0.5 }, 1),
  { name = "{33}, momentum with a buffer, Nesterov and weight decay",
    inputs = { float({ 33 }), float({ 33 }), float({ 33 }) },
    run = function(p, g, buffer)
      tc.sgd_step(p, g, buffer, { lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 0.01 })
      return p, buffer
    end, reference = function(p, g, buffer)
      return R.sgd(p, { g }, buffer, { lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 0.01 })
    end },
  { name = "{1000} with dampening",
    inputs = { float({ 1000 }, -1, 1), float({ 1000 }, -1, 1), float({ 1000 }, -0.1, 0.1) },
    run = function(p, g, buffer)
      tc.sgd_step(p, g, buffer, { lr = 1e-2, momentum = 0.9, dampening = 0.1, weight_decay = 0.01 })
      return p, buffer
    end, reference = function(p, g, buffer)
      return R.sgd(p, { g }, buffer, { lr = 1e-2, momentum = 0.9, dampening = 0.1, weight_decay = 0.01 })
    end, device_tolerance = KERNEL, fenced = false },
})

-- sqrt of the sum of squares over a list of nested tables
local function norm_of(list)
  local s = 0
  for _, t in ipairs(list) do
    for _, v in ipairs(R.flatten(t)) do s = s + v * v end
  end
  return math.sqrt(s)
end
local function two_lists(a, b) return tc.global_norm({ a, b }) end
row("global_norm", {
  { name = "over a list, float64 and float32 together", inputs = { given({ 3, 4 }, { dtype = "float64" }),
    given({ { 1, 2 }, { 2, 0 } }, { dtype = "float32" }) }, dtypes = FLOAT64, run = two_lists,
    reference = function(a, b) return norm_of({ a, b }) end, tolerance = { float64 = 0 } },
  { name = "over a list", inputs = { given({ 3, 0 }), given({ { 4 } }) }, run = two_lists,
    reference = function(a, b) return norm_of({ a, b }) end },
  { name = "a narrowed view counts its own elements only",
    inputs = { given({ { 1, 2, 3 }, { 4, 5, 6 } }, { view = function(t) return t:narrow(2, 2, 1) end }) },
    run = function(x) return tc.global_norm({ x }) end,
    reference = function(x) return norm_of({ x }) end, tolerance = { float64 = 1e-15 } },
  { name = "{1000}, an empty tensor and {33}", inputs = { float({ 1000 }), float({ 0 }), float({ 33 }) },
    run = function(a, b, c) return tc.global_norm({ a, b, c }) end,
    reference = function(a, b, c) return norm_of({ a, b, c }) end, device_tolerance = 5e-13, fenced = false },
  { name = "an empty list is 0", dtypes = FLOAT64, check = function() assert.are.equal(0, tc.global_norm({})) end },
})

local function scaled(factor) return function(x) return map(function(v) return v * factor end, x) end end
row("scale_", {
  { name = "in place, returning the tensor", inputs = { given({ 1, -2 }) }, run = function(t)
    assert.are.equal(t, tc.scale_(t, 3))
    return t
  end, reference = scaled(3) },
  { name = "a non-contiguous column", inputs = { given({ { 1, 2 }, { 3, 4 } }) }, run = function(t)
    tc.scale_(t, 0.5)
    tc.scale_(t:transpose(1, 2):narrow(1, 1, 1), 10) -- the first column
    return t
  end, reference = function() return { { 5, 1 }, { 15, 2 } } end, tolerance = 0 },
  { name = "{1000}, an empty tensor and {33} by 0.37", inputs = { float({ 1000 }), float({ 0 }), float({ 33 }) },
    run = function(a, b, c)
      for _, t in ipairs({ a, b, c }) do tc.scale_(t, 0.37) end
      return a, b, c
    end, reference = function(a, b, c, env)
      local function product(v)
        return env.dtype == "float32" and R.convert(R.convert(v, "float32") * R.convert(0.37, "float32"), "float32")
          or v * 0.37
      end
      return map(product, a), b, map(product, c)
    end, device_tolerance = EXACT, fenced = false },
  { name = "{33} by 0.5", inputs = { float({ 33 }) }, run = function(t) return tc.scale_(t, 0.5) end,
    reference = scaled(0.5) },
})

-- ---- composed functions (lua/tricycle/composed.lua; tc.ops() lists them with composed = true) ----

-- A nested table of out_shape whose element at a 1-based multi-index is x's at source(index), or `fill` where
-- source gives nil.
local function remap(x, out_shape, source, fill)
  local flat, shape = G.flatten(x)
  local out = {}
  for k = 1, G.numel(out_shape) do
    local from = source(G.unflatten_index(k, out_shape), shape)
    if from then
      local position = 0
      for d = 1, #shape do position = position * shape[d] + from[d] - 1 end
      out[k] = flat[position + 1]
    else
      out[k] = fill
    end
  end
  return G.nest(out, out_shape)
end
local function shape_of_value(x) return select(2, G.flatten(x)) end
-- x narrowed along dim to `length` elements from `start` (1-based).
local function narrowed(x, dim, start, length)
  local shape = shape_of_value(x)
  shape[dim] = length
  return remap(x, shape, function(at)
    at[dim] = at[dim] + start - 1
    return at
  end)
end
-- The i-th slice of x along dim, without that dim.
local function sliced(x, dim, i)
  local shape = shape_of_value(x)
  table.remove(shape, dim)
  return remap(x, shape, function(at)
    table.insert(at, dim, i)
    return at
  end)
end
local function flipped(x, dims)
  local shape = shape_of_value(x)
  return remap(x, shape, function(at)
    for _, dim in ipairs(dims) do at[dim] = shape[dim] - at[dim] + 1 end
    return at
  end)
end
-- Column - row <= k (lower) or >= k kept over the last two dims, zeros elsewhere.
local function triangle(x, k, lower, env)
  local shape = shape_of_value(x)
  local n = #shape
  return remap(x, shape, function(at)
    local offset = at[n] - at[n - 1]
    if lower and offset <= k or not lower and offset >= k then return at end
  end, into(0, env.dtype))
end
local function tiled(x, counts)
  local shape = shape_of_value(x)
  local pad = #counts - #shape
  local out_shape = {}
  for i, count in ipairs(counts) do out_shape[i] = count * (i > pad and shape[i - pad] or 1) end
  return remap(x, out_shape, function(at)
    local from = {}
    for d = 1, #shape do from[d] = (at[d + pad] - 1) % shape[d] + 1 end
    return from
  end)
end
-- x padded (or cropped, by negative amounts) as torch.nn.functional.pad: pads = {before_last, after_last, ...}.
local function padded(x, pads, value)
  local shape = shape_of_value(x)
  local n = #shape
  local out_shape = { compat.unpack(shape) }
  for pair = 1, #pads / 2 do
    local dim = n - pair + 1
    out_shape[dim] = shape[dim] + pads[2 * pair - 1] + pads[2 * pair]
  end
  return remap(x, out_shape, function(at)
    for pair = 1, #pads / 2 do
      local dim = n - pair + 1
      at[dim] = at[dim] - pads[2 * pair - 1]
      if at[dim] < 1 or at[dim] > shape[dim] then return nil end
    end
    return at
  end, value)
end
local function all_equal(x, value)
  return map(function() return value end, x)
end

row("linspace", {
  { name = "both ends exact, evenly spaced", run = function()
    return tc.linspace(0, 1, 5), tc.linspace(-3, 7, 11, { dtype = "float64" }), tc.linspace(2, 5, 1)
  end, reference = function()
    return { 0, 0.25, 0.5, 0.75, 1 }, { -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7 }, { 2 }
  end, tolerance = 0, dtypes = FLOAT64 },
  { name = "0.1 to 0.7 in 7: the ends exact, float64", run = function()
    return tc.linspace(0.1, 0.7, 7, { dtype = "float64" })
  end, reference = function()
    local values = {}
    for i = 1, 7 do values[i] = 0.1 * i end
    return values
  end, check = function()
    local long = tc.linspace(0.1, 0.7, 7, { dtype = "float64" }):totable()
    assert.are.equal(0.1, long[1])
    assert.are.equal(0.7, long[7])
    assert.are.equal("float64", tc.linspace(0, 1, 2, { dtype = "float64" }).dtype)
  end, dtypes = FLOAT64 },
  { name = "no steps, and requires_grad", run = function() return tc.linspace(0, 1, 0) end, shape = { 0 },
    check = function() assert.is_true(tc.linspace(0, 1, 3, { requires_grad = true }).requires_grad) end,
    dtypes = FLOAT64 },
})

row("randint", {
  { name = "integers in [low, high), repeatable under manual_seed, every value reached", check = function()
    tc.manual_seed(5)
    local first = tc.randint(-2, 3, { 400 })
    tc.manual_seed(5)
    assert.are.same(first:totable(), tc.randint(-2, 3, { 400 }):totable())
    assert.are.equal("int64", first.dtype)
    local seen = {}
    for _, v in ipairs(first:totable()) do
      assert.is_true(v >= -2 and v < 3, v)
      seen[v] = true
    end
    for v = -2, 2 do assert.is_true(seen[v], "never drew " .. v) end
  end, dtypes = FLOAT64 },
  { name = "randint(high, shape), int32, seeded (so every backend draws alike)", run = function()
    tc.manual_seed(7)
    return tc.randint(10, { 2, 3 }, { dtype = "int32" })
  end,
    check = function() assert.are.equal("int32", tc.randint(10, { 2 }, { dtype = "int32" }).dtype) end,
    shape = { 2, 3 }, dtypes = FLOAT64 },
})

row("randperm", {
  { name = "a permutation of 0 .. n - 1, repeatable under manual_seed", check = function()
    tc.manual_seed(3)
    local p = tc.randperm(50):totable()
    tc.manual_seed(3)
    assert.are.same(p, tc.randperm(50):totable())
    local sorted = { compat.unpack(p) }
    table.sort(sorted)
    for i = 1, 50 do assert.are.equal(i - 1, sorted[i]) end
    assert.are_not.same(sorted, p)
  end, dtypes = FLOAT64 },
  { name = "n = 0 and n = 1", run = function() return tc.randperm(0), tc.randperm(1) end,
    reference = function() return {}, { 0 } end, dtypes = FLOAT64 },
})

row("eye", {
  { name = "square and rectangular, any dtype", run = function()
    return tc.eye(2), tc.eye(2, 3, { dtype = "int64" }), tc.eye(3, 2, { dtype = "bool" })
  end, reference = function()
    return { { 1, 0 }, { 0, 1 } }, { { 1, 0, 0 }, { 0, 1, 0 } }, { { true, false }, { false, true }, { false, false } }
  end, check = function()
    assert.are.equal("float64", tc.eye(2, { dtype = "float64" }).dtype)
    assert.are.equal("int64", tc.eye(2, 3, { dtype = "int64" }).dtype)
  end, dtypes = FLOAT64 },
  { name = "{0, 4}", run = function() return tc.eye(0, 4) end, shape = { 0, 4 }, dtypes = FLOAT64 },
})

-- A *_like result: the input's shape, the dtype asked for (default the input's) and the input's device.
local function like_result(made, x, env, dtype)
  assert.are.equal(env.device, made.device)
  assert.are.equal(dtype or x.dtype, made.dtype)
  assert.are.same(x.shape, made.shape)
  return made
end
row("zeros_like", {
  { name = "{2, 3}, every dtype", inputs = { float({ 2, 3 }) },
    run = function(x, env) return like_result(tc.zeros_like(x), x, env) end,
    reference = function(x, env) return all_equal(x, into(0, env.dtype)) end, dtypes = EVERY },
  { name = "empty {0, 3}", inputs = { float({ 0, 3 }) }, run = function(x) return tc.zeros_like(x) end,
    shape = { 0, 3 } },
})
row("ones_like", {
  { name = "{2, 3} as int32, every dtype", inputs = { float({ 2, 3 }) },
    run = function(x, env) return like_result(tc.ones_like(x, { dtype = "int32" }), x, env, "int32") end,
    reference = function(x) return all_equal(x, 1) end, dtypes = EVERY },
  { name = "requires_grad", inputs = { float({ 2, 3 }) }, run = function(x, env)
    local made = like_result(tc.ones_like(x, { requires_grad = true }), x, env)
    assert.is_true(made.requires_grad)
    return made
  end, reference = function(x) return all_equal(x, 1) end },
})
row("full_like", {
  { name = "{2, 3} filled with 7, every dtype but bool", inputs = { float({ 2, 3 }) },
    run = function(x, env) return like_result(tc.full_like(x, 7), x, env) end,
    reference = function(x) return all_equal(x, 7) end, dtypes = NO_BOOL },
})
row("empty_like", {
  { name = "{2, 3}, every dtype", inputs = { float({ 2, 3 }) }, run = function(x, env)
    like_result(tc.empty_like(x), x, env)
    return like_result(tc.empty_like(x, { dtype = "float64" }), x, env, "float64")
  end, shape = { 2, 3 }, dtypes = EVERY, half = false, unspecified_values = true }, -- whatever memory held
})
row("rand_like", {
  { name = "{20, 30}: in [0, 1), seeded", inputs = { float({ 20, 30 }) }, run = function(x, env)
    tc.manual_seed(7)
    local made = like_result(tc.rand_like(x), x, env)
    assert.is_true(made:min():item() >= 0 and made:max():item() < 1)
    assert.is_true(math.abs(made:mean():item() - 0.5) < 0.1)
    return made
  end, shape = { 20, 30 } },
})
row("randn_like", {
  { name = "{20, 30}: mean near 0, variance near 1, seeded", inputs = { float({ 20, 30 }) }, run = function(x, env)
    tc.manual_seed(7)
    local made = like_result(tc.randn_like(x), x, env)
    assert.is_true(math.abs(made:mean():item()) < 0.2 and math.abs(made:var():item() - 1) < 0.2)
    return made
  end, shape = { 20, 30 } },
})

row("split", {
  { name = "pieces of 2 along dim 2", inputs = { float({ 2, 5 }) },
    run = function(x) return compat.unpack(x:split(2, 2)) end,
    reference = function(x) return narrowed(x, 2, 1, 2), narrowed(x, 2, 3, 2), narrowed(x, 2, 5, 1) end },
  { name = "sizes {2, 3} along dim -1: the second piece", inputs = { float({ 2, 5 }) },
    run = function(x) return x:split({ 2, 3 }, -1)[2] end, reference = function(x) return narrowed(x, 2, 3, 3) end },
  { name = "sizes {1, 4} along dim 2, every dtype", inputs = { float({ 2, 5 }, -3, 3) },
    run = function(x) return compat.unpack(x:split({ 1, 4 }, 2)) end,
    reference = function(x) return narrowed(x, 2, 1, 1), narrowed(x, 2, 2, 4) end, dtypes = EVERY, fd = false },
  { name = "a transposed leaf along dim 1", inputs = { float({ 4, 3 }, -2, 2, { layout = "transposed" }) },
    run = function(x) return compat.unpack(x:split(3)) end,
    reference = function(x) return narrowed(x, 1, 1, 3), narrowed(x, 1, 4, 1) end },
  { name = "empty {0, 3}: one piece", inputs = { float({ 0, 3 }) }, run = function(x)
    local pieces = x:split(2)
    assert.are.equal(1, #pieces)
    return pieces[1]
  end, shape = { 0, 3 } },
})
row("chunk", {
  { name = "3 chunks of dim 2 (sizes 2, 2, 1)", inputs = { float({ 2, 5 }) },
    run = function(x) return compat.unpack(x:chunk(3, 2)) end,
    reference = function(x) return narrowed(x, 2, 1, 2), narrowed(x, 2, 3, 2), narrowed(x, 2, 5, 1) end },
  { name = "3 chunks of a dim of 2: 2, every dtype", inputs = { float({ 2, 5 }, -3, 3) },
    run = function(x) return compat.unpack(x:chunk(3, 1)) end,
    reference = function(x) return narrowed(x, 1, 1, 1), narrowed(x, 1, 2, 1) end, dtypes = EVERY, fd = false },
  { name = "6 chunks of a dim of 4: 4", inputs = { float({ 4 }) }, run = function(x)
    local pieces = x:chunk(6)
    assert.are.equal(4, #pieces)
    return compat.unpack(pieces)
  end, reference = function(x) return { x[1] }, { x[2] }, { x[3] }, { x[4] } end },
})
row("unbind", {
  { name = "the columns of {2, 5}", inputs = { float({ 2, 5 }) },
    run = function(x) return compat.unpack(x:unbind(2)) end, reference = function(x)
      local slices = {}
      for i = 1, 5 do slices[i] = sliced(x, 2, i) end
      return compat.unpack(slices)
    end },
  { name = "the second row of {3, 2}", inputs = { float({ 3, 2 }) }, run = function(x) return x:unbind(1)[2] end,
    reference = function(x) return sliced(x, 1, 2) end },
  { name = "the rows of {3, 4}, every dtype", inputs = { float({ 3, 4 }, -3, 3) },
    run = function(x) return compat.unpack(x:unbind(1)) end,
    reference = function(x) return sliced(x, 1, 1), sliced(x, 1, 2), sliced(x, 1, 3) end, dtypes = EVERY,
    fd = false },
})
row("t", {
  { name = "{2, 5}", inputs = { float({ 2, 5 }) }, run = function(x) return x:t() end, reference = R.transpose },
  { name = "{3, 4}, every dtype", inputs = { float({ 3, 4 }, -3, 3) }, run = function(x) return x:t() end,
    reference = R.transpose, dtypes = EVERY, fd = false },
  { name = "1-D and 0-D as they are (the input itself)", inputs = { const({ 3 }), given(3, { grad = false }) },
    run = function(x, s) return x:t(), s:t() end, reference = function(x, s) return x, s end },
})
row("flip", {
  { name = "dim 2, then dims {1, -1}", inputs = { float({ 2, 5 }) },
    run = function(x) return x:flip(2), x:flip({ 1, -1 }) end,
    reference = function(x) return flipped(x, { 2 }), flipped(x, { 1, 2 }) end },
  { name = "{2, 3} over both dims", inputs = { float({ 2, 3 }) }, run = function(x) return x:flip({ 1, 2 }) end,
    reference = function(x) return flipped(x, { 1, 2 }) end },
  { name = "{3, 4, 2} along dim 2, every dtype", inputs = { float({ 3, 4, 2 }, -3, 3) },
    run = function(x) return x:flip(2) end, reference = function(x) return flipped(x, { 2 }) end, dtypes = EVERY,
    fd = false },
  { name = "a transposed leaf", inputs = { float({ 3, 2 }, -2, 2, { layout = "transposed" }) },
    run = function(x) return x:flip(1) end, reference = function(x) return flipped(x, { 1 }) end },
})
for _, name in ipairs({ "tril", "triu" }) do
  local lower = name == "tril"
  local diagonals = { -5, -1, 0, 2, 5 }
  row(name, {
    { name = "{4, 4} at diagonals -5, -1, 0, 2, 5, every dtype but bool", inputs = { float({ 4, 4 }, -3, 3) },
      run = function(x)
        local results = {}
        for i, k in ipairs(diagonals) do results[i] = x[name](x, k) end
        return compat.unpack(results)
      end, reference = function(x, env)
        local results = {}
        for i, k in ipairs(diagonals) do results[i] = triangle(x, k, lower, env) end
        return compat.unpack(results)
      end, dtypes = NO_BOOL, fd = false },
    { name = "{3, 3} off the diagonal", inputs = { float({ 3, 3 }) }, run = function(x)
      return x[name](x, lower and -1 or 1)
    end, reference = function(x, env) return triangle(x, lower and -1 or 1, lower, env) end },
    { name = "a batch {2, 3, 4} seen through expand",
      inputs = { float({ 3, 4 }, -2, 2, { view = expand_to(2, 3, 4) }) },
      run = function(x) return x[name](x) end, reference = function(x, env) return triangle(x, 0, lower, env) end },
  })
end
row("tile", {
  { name = "{2} by (2, 2)", inputs = { given({ 1, 2 }) }, run = function(x) return x:tile(2, 2) end,
    reference = function() return { { 1, 2, 1, 2 }, { 1, 2, 1, 2 } } end },
  { name = "{2, 3} by {2, 1, 2} (a leading dim), and by repeat", inputs = { float({ 2, 3 }) },
    run = function(x) return x:tile({ 2, 1, 2 }), x["repeat"](x, 2, 1, 2) end,
    reference = function(x) return tiled(x, { 2, 1, 2 }), tiled(x, { 2, 1, 2 }) end },
  { name = "{2, 5} by (3, 2), every dtype", inputs = { float({ 2, 5 }, -3, 3) }, run = function(x)
    return x:tile(3, 2)
  end, reference = function(x) return tiled(x, { 3, 2 }) end, dtypes = EVERY, fd = false },
  { name = "a count of 0", inputs = { float({ 2, 5 }) }, run = function(x) return x:tile(0, 2) end, shape = { 0, 10 } },
})
row("pad", {
  { name = "{2, 2}: after and before, value -1", inputs = { float({ 2, 2 }) },
    run = function(x) return x:pad({ 1, 2 }), tc.pad(x, { 0, 0, 1, 0 }, -1) end,
    reference = function(x) return padded(x, { 1, 2 }, 0), padded(x, { 0, 0, 1, 0 }, -1) end },
  { name = "{2, 3}: padding and cropping two dims", inputs = { float({ 2, 3 }) },
    run = function(x) return x:pad({ 1, -1, 2, 0 }, 3) end,
    reference = function(x) return padded(x, { 1, -1, 2, 0 }, 3) end },
  { name = "{4}: crop 1 before, pad 1 after, every dtype but bool", inputs = { float({ 4 }, -3, 3) },
    run = function(x) return x:pad({ -1, 1 }) end, reference = function(x) return padded(x, { -1, 1 }, 0) end,
    dtypes = NO_BOOL, fd = false },
  { name = "a transposed leaf {3, 2} by 2 on each side", inputs = { float({ 3, 2 }, -2, 2, { layout = "transposed" }) },
    run = function(x) return x:pad({ 2, 2, 2, 2 }) end,
    reference = function(x) return padded(x, { 2, 2, 2, 2 }, 0) end },
})

local function std_of(correction)
  local var = R.var(correction)
  return function(list) return math.sqrt(var(list)) end
end
row("std", {
  { name = "{3, 4} over dim 2", inputs = { float({ 3, 4 }) }, run = function(x) return x:std(2) end,
    reference = function(x) return R.reduce(x, 2, false, std_of(1)) end },
  { name = "all, biased over dim 1, keepdim", inputs = { float({ 3, 4 }) }, run = function(x)
    return x:std(), x:std(1, { correction = 0 }), x:std(2, { keepdim = true }), x:std({ 1, 2 }, { correction = 0 })
  end, reference = function(x)
    return R.reduce(x, nil, false, std_of(1)), R.reduce(x, 1, false, std_of(0)), R.reduce(x, 2, true, std_of(1)),
      R.reduce(x, { 1, 2 }, false, std_of(0))
  end, fd = false },
  { name = "a transposed leaf over dim 1", inputs = { float({ 3, 4 }, -2, 2, { layout = "transposed" }) },
    run = function(x) return x:std(1) end, reference = function(x) return R.reduce(x, 1, false, std_of(1)) end },
})

-- m + log(sum(exp(v - m))) in plain Lua, m the largest finite-or-not value (an infinite m is the result).
local function logsumexp_of(list)
  local m = -inf
  for _, v in ipairs(list) do if v > m or v ~= v then m = v end end
  if m ~= m or m == inf or m == -inf then return m end
  local total = 0
  for _, v in ipairs(list) do total = total + math.exp(v - m) end
  return m + math.log(total)
end
local function leaky_relu_of(slope) return function(v) return v > 0 and v or slope * v end end
local function elu_of(alpha) return function(v) return v > 0 and v or alpha * (math.exp(v) - 1) end end
row("leaky_relu", {
  { name = "{2, 3}, the default slope 0.01", inputs = { float({ 2, 3 }, -3, 3) },
    run = function(x) return x:leaky_relu() end,
    reference = unary_reference(leaky_relu_of(0.01)) },
  { name = "a transposed leaf, slope 0.2", inputs = { float({ 3, 2 }, -3, 3, { layout = "transposed" }) },
    run = function(x) return tc.leaky_relu(x, 0.2) end, reference = unary_reference(leaky_relu_of(0.2)) },
  { name = "{37, 19}, slope -0.5", inputs = { float({ 37, 19 }, -3, 3) },
    run = function(x) return x:leaky_relu(-0.5) end,
    reference = unary_reference(leaky_relu_of(-0.5)), fd = false },
  { name = "empty {0, 3}", inputs = { float({ 0, 3 }) }, run = function(x) return x:leaky_relu() end,
    shape = { 0, 3 } },
})
row("elu", {
  { name = "{2, 3}, alpha 1", inputs = { float({ 2, 3 }, -3, 3) }, run = function(x) return x:elu() end,
    reference = unary_reference(elu_of(1)) },
  { name = "a narrowed view, alpha 0.5",
    inputs = { float({ 2, 4 }, -3, 3, { view = function(t) return t:narrow(2, 2, 2) end }) },
    run = function(x) return tc.elu(x, 0.5) end, reference = unary_reference(elu_of(0.5)) },
  { name = "large values stay finite", inputs = { given({ { 100, -100, 1000 } }) },
    run = function(x) return x:elu() end,
    reference = unary_reference(elu_of(1)), fd = false },
  { name = "empty {0, 3}", inputs = { float({ 0, 3 }) }, run = function(x) return x:elu() end, shape = { 0, 3 } },
})

row("logsumexp", {
  { name = "{3, 4} over dim 2", inputs = { float({ 3, 4 }) }, run = function(x) return x:logsumexp(2) end,
    reference = function(x) return R.reduce(x, 2, false, logsumexp_of) end },
  { name = "{2, 3, 4} over dims {1, 3} keepdim, and over all", inputs = { float({ 2, 3, 4 }, -3, 3) },
    run = function(x) return x:logsumexp({ 1, 3 }, true), x:logsumexp() end,
    reference = function(x)
      return R.reduce(x, { 1, 3 }, true, logsumexp_of), R.reduce(x, nil, false, logsumexp_of)
    end },
  { name = "no overflow at 1000, no underflow at -1000, -inf and +inf rows", inputs = {
    given({ { 1000, 1000, 999 }, { -1000, -1001, -inf }, { -inf, -inf, -inf }, { 1, inf, 2 } }) },
    run = function(x) return x:logsumexp(2) end, reference = function(x) return R.reduce(x, 2, false, logsumexp_of) end,
    fd = false },
  { name = "a transposed leaf over dim 1", inputs = { float({ 3, 4 }, -2, 2, { layout = "transposed" }) },
    run = function(x) return x:logsumexp(1) end,
    reference = function(x) return R.reduce(x, 1, false, logsumexp_of) end },
  { name = "{37, 19} over dim 2", inputs = { float({ 37, 19 }, -20, 20) }, run = function(x) return x:logsumexp(-1) end,
    reference = function(x) return R.reduce(x, 2, false, logsumexp_of) end, fd = false },
  { name = "over an empty dim: -inf", inputs = { float({ 0, 3 }) }, run = function(x) return x:logsumexp(1) end,
    reference = function() return { -inf, -inf, -inf } end, shape = { 3 } },
})

-- Some zeros among the values: the third row all zeros, a few more elsewhere.
local function with_zeros(flat)
  for k = 11, 15 do flat[k] = 0 end
  flat[2], flat[19] = 0, 0
end
for _, name in ipairs({ "any", "all" }) do
  local function test(list)
    for _, v in ipairs(list) do
      local nonzero = v ~= 0 and v ~= false
      if name == "any" and nonzero then return true end
      if name == "all" and not nonzero then return false end
    end
    return name == "all"
  end
  row(name, {
    { name = "{4, 5} with zeros, over dim 2, dim 1 keepdim and all, every dtype",
      inputs = { float({ 4, 5 }, -3, 3, { patch = with_zeros }) },
      run = function(x) return x[name](x, 2), x[name](x, 1, true), x[name](x) end,
      reference = function(x)
        return R.reduce(x, 2, false, test), R.reduce(x, 1, true, test), R.reduce(x, nil, false, test)
      end, dtypes = EVERY },
    { name = "NaN counts as non-zero", inputs = { given({ { nan, 0 }, { nan, 1 } }) },
      run = function(x) return x[name](x, 2) end, reference = function(x) return R.reduce(x, 2, false, test) end },
    { name = "a transposed leaf over dims {1, 2}", inputs = { float({ 3, 4 }, -2, 2, { layout = "transposed" }) },
      run = function(x) return x[name](x, { 1, 2 }) end, reference = function(x) return test(R.flatten(x)) end },
    { name = "over an empty dim", inputs = { float({ 0, 3 }) }, run = function(x) return x[name](x, 1) end,
      reference = function() return { name == "all", name == "all", name == "all" } end, shape = { 3 } },
  })
end

local function bmm_reference(a, b)
  local out = {}
  for i = 1, #a do out[i] = R.matmul(a[i], b[i]) end
  return out
end
row("mm", {
  { name = "{2, 3} @ {3, 4}", inputs = { float({ 2, 3 }), float({ 3, 4 }) }, run = function(a, b) return a:mm(b) end,
    reference = R.matmul },
  { name = "tc.mm with a transposed leaf",
    inputs = { float({ 2, 3 }, -2, 2, { layout = "transposed" }), float({ 3, 2 }) },
    run = function(a, b) return tc.mm(a, b) end, reference = R.matmul },
  { name = "{37, 19} @ {19, 5}", inputs = { float({ 37, 19 }), float({ 19, 5 }) },
    run = function(a, b) return a:mm(b) end, reference = R.matmul, fd = false, device_tolerance = KERNEL,
    tolerance = { float32 = 1e-4 } },
})
row("bmm", {
  { name = "{2, 2, 3} @ {2, 3, 2}", inputs = { float({ 2, 2, 3 }), float({ 2, 3, 2 }) },
    run = function(a, b) return a:bmm(b) end, reference = bmm_reference },
  { name = "tc.bmm of {3, 5, 7} @ {3, 7, 4}", inputs = { float({ 3, 5, 7 }), float({ 3, 7, 4 }) },
    run = function(a, b) return tc.bmm(a, b) end, reference = bmm_reference, fd = false, device_tolerance = KERNEL,
    tolerance = { float32 = 1e-4 } },
  { name = "empty batch", inputs = { float({ 0, 2, 3 }), float({ 0, 3, 2 }) },
    run = function(a, b) return a:bmm(b) end, shape = { 0, 2, 2 } },
})

local function one_hot_reference(classes)
  return function(index)
    return map(function(id)
      local vector = {}
      for c = 1, classes do vector[c] = c - 1 == id and 1 or 0 end
      return vector
    end, index)
  end
end
-- G.map keeps a table result as one element; flatten it back into the nested result.
local function nested(value)
  if type(value) ~= "table" then return value end
  local out = {}
  for i, v in ipairs(value) do out[i] = nested(v) end
  return out
end
row("one_hot", {
  { name = "ids {0, 2, 1, 2}: 3 classes by default, 5 given", inputs = { index({ 0, 2, 1, 2 }) },
    run = function(ids) return tc.one_hot(ids), tc.one_hot(ids, 5) end,
    reference = function(ids) return nested(one_hot_reference(3)(ids)), nested(one_hot_reference(5)(ids)) end,
    dtypes = { "int64" } },
  { name = "a {2, 2} int32 index, 4 classes", inputs = { index({ { 1, 0 }, { 3, 2 } }, "int32") },
    run = function(ids) return tc.one_hot(ids, 4) end,
    reference = function(ids) return nested(one_hot_reference(4)(ids)) end, dtypes = { "int32" } },
  { name = "an empty index with num_classes", inputs = { index({}) },
    run = function(ids) return tc.one_hot(ids, 3) end, shape = { 0, 3 }, dtypes = { "int64" } },
})

local function close_reference(rtol, atol, equal_nan)
  return function(a, b)
    return map(function(x, y)
      x, y = number(x), number(y)
      if x ~= x or y ~= y then return equal_nan == true and x ~= x and y ~= y end
      return x == y or math.abs(x - y) <= atol + rtol * math.abs(y)
    end, a, b)
  end
end
-- Half of b a copy of a, a quarter nudged by 1e-6 relative, the rest as drawn.
local function near_copies(flat, dtype)
  for k = 1, #flat do
    local v = G.values({ #flat }, -3, 3, 7)[k]
    if dtype == "float32" or dtype == "float64" then
      flat[k] = k % 4 == 0 and flat[k] or k % 4 == 1 and v * (1 + 1e-6) or v
    else
      flat[k] = k % 2 == 0 and flat[k] or math.floor(math.abs(v))
    end
  end
end
row("isclose", {
  { name = "{4, 5}, defaults, every dtype", inputs = { const({ 4, 5 }, -3, 3, { seed = 7 }),
    const({ 4, 5 }, -3, 3, { patch = near_copies }) },
    run = function(a, b) return a:isclose(b) end, reference = close_reference(1e-5, 1e-8), dtypes = EVERY },
  { name = "NaN, infinities and tolerances", inputs = { given({ nan, nan, inf, inf, 1, 1, 100, 0 }),
    given({ nan, 1, inf, -inf, 1.05, 1.2, 100.5, 1e-9 }) },
    run = function(a, b)
      return tc.isclose(a, b), a:isclose(b, { equal_nan = true }), a:isclose(b, { rtol = 0.1, atol = 0 }),
        a:isclose(b, { rtol = 0, atol = 0.5 })
    end, reference = function(a, b)
      return close_reference(1e-5, 1e-8)(a, b), close_reference(1e-5, 1e-8, true)(a, b),
        close_reference(0.1, 0)(a, b), close_reference(0, 0.5)(a, b)
    end, dtypes = FLOAT64 },
  { name = "broadcasting {3, 1} against {4}", inputs = { const({ 3, 1 }), const({ 4 }) },
    run = function(a, b) return a:isclose(b, { atol = 1 }) end, reference = function(a, b)
      local rows = {}
      for i = 1, 3 do rows[i] = close_reference(1e-5, 1)({ a[i][1], a[i][1], a[i][1], a[i][1] }, b) end
      return rows
    end },
})
row("allclose", {
  { name = "equal, within, beyond the tolerance, every dtype", inputs = { const({ 3, 4 }, -3, 3, { seed = 11 }) },
    run = function(a)
      return tc.allclose(a, a), a:allclose(a + 1, { atol = 1.5 }), a:allclose(a + 1)
    end, reference = function() return true, true, false end, dtypes = NO_BOOL },
  { name = "NaN only with equal_nan", inputs = { given({ 1, nan }) },
    run = function(a) return a:allclose(a), a:allclose(a, { equal_nan = true }) end,
    reference = function() return false, true end, dtypes = FLOAT64 },
})

local function product(list)
  local total = 1
  for _, v in ipairs(list) do total = total * number(v) end
  return total
end
row("prod", {
  { name = "{3, 4} over dim 2", inputs = { float({ 3, 4 }) }, run = function(x) return x:prod(2) end,
    reference = function(x) return R.reduce(x, 2, false, product) end },
  { name = "{3, 5} with a zero, over dim 1 keepdim and all",
    inputs = { float({ 3, 5 }, -2, 2, { patch = { [4] = 0 } }) },
    run = function(x) return x:prod(1, true), x:prod() end,
    reference = function(x) return R.reduce(x, 1, true, product), R.reduce(x, nil, false, product) end },
  { name = "{2, 3, 5} over dims {1, 3}", inputs = { float({ 2, 3, 5 }, 0.5, 1.5) },
    run = function(x) return x:prod({ 1, 3 }) end,
    reference = function(x) return R.reduce(x, { 1, 3 }, false, product) end },
  { name = "{4, 5} over dim 2 and all, every dtype (int64 for integers)", inputs = { float({ 4, 5 }, -3, 3) },
    run = function(x) return x:prod(2), x:prod() end,
    reference = function(x) return R.reduce(x, 2, false, product), R.reduce(x, nil, false, product) end,
    check = function(env)
      local t = env.tensor({ 1, 2 }, { dtype = env.dtype })
      assert.are.equal((env.dtype == "float32" or env.dtype == "float64") and env.dtype or "int64", t:prod().dtype)
    end, dtypes = EVERY, fd = false },
  { name = "a transposed leaf over dim 1", inputs = { float({ 3, 4 }, -2, 2, { layout = "transposed" }) },
    run = function(x) return x:prod(1) end, reference = function(x) return R.reduce(x, 1, false, product) end },
  { name = "{37, 19} in [0.9, 1.1] over dim 2", inputs = { float({ 37, 19 }, 0.9, 1.1) },
    run = function(x) return x:prod(-1) end, reference = function(x) return R.reduce(x, 2, false, product) end,
    fd = false },
  { name = "over an empty dim: 1", inputs = { float({ 0, 3 }) }, run = function(x) return x:prod(1) end,
    reference = function() return { 1, 1, 1 } end, shape = { 3 } },
  { name = "over dims of size 1: a copy", inputs = { float({ 1, 3 }) }, run = function(x)
    local p = x:prod(1)
    x:detach():fill_(5)
    return p
  end, reference = function(x) return x[1] end },
})

local function running_sums(row_values)
  local out, total = {}, 0
  for i, v in ipairs(row_values) do
    total = total + number(v)
    out[i] = total
  end
  return out
end
row("cumsum", {
  { name = "{3, 4} along dim 2", inputs = { float({ 3, 4 }) }, run = function(x) return x:cumsum(2) end,
    reference = function(x) return R.along(x, 2, running_sums) end },
  { name = "{5, 3} along dim 1 and dim -1", inputs = { float({ 5, 3 }) },
    run = function(x) return x:cumsum(1), x:cumsum(-1) end,
    reference = function(x) return R.along(x, 1, running_sums), R.along(x, 2, running_sums) end },
  { name = "{4, 7} along both dims, every dtype (int64 for integers)", inputs = { float({ 4, 7 }, -3, 3) },
    run = function(x) return x:cumsum(2), x:cumsum(1) end,
    reference = function(x) return R.along(x, 2, running_sums), R.along(x, 1, running_sums) end,
    check = function(env)
      local t = env.tensor({ 1, 2 }, { dtype = env.dtype })
      assert.are.equal((env.dtype == "float32" or env.dtype == "float64") and env.dtype or "int64", t:cumsum(1).dtype)
    end, dtypes = EVERY, fd = false },
  { name = "a transposed leaf along dim 2", inputs = { float({ 3, 5 }, -2, 2, { layout = "transposed" }) },
    run = function(x) return x:cumsum(2) end, reference = function(x) return R.along(x, 2, running_sums) end },
  { name = "{3, 300} along dim 2", inputs = { float({ 3, 300 }) }, run = function(x) return x:cumsum(2) end,
    reference = function(x) return R.along(x, 2, running_sums) end, fd = false,
    tolerance = { float32 = { rtol = 1e-5, atol = 1e-4 } } },
  { name = "0-D", inputs = { given(3) }, run = function(x) return x:cumsum(1), x:cumsum(-1) end,
    reference = function(x) return x, x end },
  { name = "a dim of 1: a copy", inputs = { float({ 1, 2 }) }, run = function(x)
    local sums = x:cumsum(1)
    x:detach():fill_(5)
    return sums
  end, reference = function(x) return x end },
  { name = "empty {0, 3}", inputs = { float({ 0, 3 }) }, run = function(x) return x:cumsum(1) end, shape = { 0, 3 } },
})

-- ---- sorting (engine ops), selection and Torch7 indexing (lua/tricycle/selection.lua), cumprod and norm ----

-- A row's values and 0-based positions in stable order, NaN as the largest value.
local function sorted_row(row_values, descending)
  local order = {}
  for i = 1, #row_values do order[i] = i end
  local function key(v) v = number(v) return v ~= v and math.huge or v, v ~= v end
  table.sort(order, function(i, j)
    local a, a_nan = key(row_values[i])
    local b, b_nan = key(row_values[j])
    if a_nan ~= b_nan then
      if descending then return a_nan end
      return b_nan
    end
    if a ~= b then
      if descending then return a > b end
      return a < b
    end
    return i < j
  end)
  local values, positions = {}, {}
  for k, i in ipairs(order) do values[k], positions[k] = row_values[i], i - 1 end
  return values, positions
end
local function sorted_values(descending, k)
  return function(row_values)
    local values, out = sorted_row(row_values, descending), {}
    for i = 1, k or #values do out[i] = values[i] end
    return out
  end
end
local function sorted_positions(descending, k)
  return function(row_values)
    local _, positions = sorted_row(row_values, descending)
    local out = {}
    for i = 1, k or #positions do out[i] = positions[i] end
    return out
  end
end
local SORTED = { "float64", "float32", "int64", "int32", "uint8", "bool" }
row("sort", {
  { name = "{3, 5} along dim 2 and dim 1", inputs = { float({ 3, 5 }) },
    run = function(x)
      local v2, i2 = x:sort(2)
      local v1, i1 = x:sort(1)
      return v2, i2, v1, i1
    end,
    reference = function(x)
      return R.along(x, 2, sorted_values(false)), R.along(x, 2, sorted_positions(false)),
        R.along(x, 1, sorted_values(false)), R.along(x, 1, sorted_positions(false))
    end },
  { name = "descending, default dim -1", inputs = { float({ 2, 6 }) },
    run = function(x) return x:sort({ descending = true }) end,
    reference = function(x) return R.along(x, 2, sorted_values(true)), R.along(x, 2, sorted_positions(true)) end },
  { name = "ties stay in order (stable), every dtype", inputs = { float({ 4, 9 }, -2, 2) },
    run = function(x)
      local v, i = x:sort(2, { stable = true })
      local dv, di = x:sort(1, { descending = true })
      return v, i, dv, di
    end,
    reference = function(x)
      return R.along(x, 2, sorted_values(false)), R.along(x, 2, sorted_positions(false)),
        R.along(x, 1, sorted_values(true)), R.along(x, 1, sorted_positions(true))
    end, dtypes = SORTED, fd = false },
  { name = "NaN sorts as the largest", inputs = { given({ { 1, 0 / 0, -1, 0 / 0, 2 }, { 0 / 0, 3, 3, -4, 0 } }) },
    run = function(x)
      local v, i = x:sort(2)
      local dv, di = x:sort(2, { descending = true })
      return v, i, dv, di
    end,
    reference = function(x)
      return R.along(x, 2, sorted_values(false)), R.along(x, 2, sorted_positions(false)),
        R.along(x, 2, sorted_values(true)), R.along(x, 2, sorted_positions(true))
    end, dtypes = { "float64", "float32" }, fd = false },
  { name = "a transposed {3, 7} leaf along dim 1", inputs = { float({ 3, 7 }, -2, 2, { layout = "transposed" }) },
    run = function(x) return x:sort(1) end,
    reference = function(x) return R.along(x, 1, sorted_values(false)), R.along(x, 1, sorted_positions(false)) end },
  { name = "{6, 300} along dim 2 (two tiles of the CUDA kernel, merged runs on the CPU)",
    inputs = { float({ 6, 300 }, -50, 50) },
    run = function(x) return x:sort(2, { descending = true }) end,
    reference = function(x) return R.along(x, 2, sorted_values(true)), R.along(x, 2, sorted_positions(true)) end,
    fd = false },
  { name = "{1200, 17} along dim 2 with ties (rows split over threads)", inputs = { float({ 1200, 17 }, -4, 4) },
    run = function(x) return x:sort(2) end,
    reference = function(x) return R.along(x, 2, sorted_values(false)), R.along(x, 2, sorted_positions(false)) end,
    dtypes = { "float32", "int32" }, fd = false },
  { name = "a dim of 1", inputs = { float({ 1, 3 }) }, run = function(y) return y:sort(1) end,
    reference = function(y) return y, { { 0, 0, 0 } } end },
  { name = "0-D", inputs = { given(3) }, run = function(x) return x:sort() end,
    reference = function(x) return x, 0 end },
  { name = "empty {0, 3}", inputs = { float({ 0, 3 }) }, run = function(x) return (x:sort(2)) end, shape = { 0, 3 } },
})

row("argsort", {
  { name = "{4, 5} along dims 2 and 1, every dtype", inputs = { float({ 4, 5 }, -2, 2) },
    run = function(x) return x:argsort(2), x:argsort(1, { descending = true }) end,
    reference = function(x) return R.along(x, 2, sorted_positions(false)), R.along(x, 1, sorted_positions(true)) end,
    dtypes = SORTED },
  { name = "empty {2, 0}", inputs = { float({ 2, 0 }) }, run = function(x) return x:argsort() end, shape = { 2, 0 } },
})

row("topk", {
  { name = "k = 2 along dim 2, largest", inputs = { float({ 3, 5 }) },
    run = function(x) return x:topk(2) end,
    reference = function(x)
      return R.along(x, 2, sorted_values(true, 2)), R.along(x, 2, sorted_positions(true, 2))
    end },
  { name = "k = 3 along dim 1, smallest", inputs = { float({ 4, 3 }) },
    run = function(x) return x:topk(3, 1, { largest = false, sorted = true }) end,
    reference = function(x)
      return R.along(x, 1, sorted_values(false, 3)), R.along(x, 1, sorted_positions(false, 3))
    end },
  { name = "ties by position, every dtype", inputs = { float({ 3, 8 }, -2, 2) },
    run = function(x) return x:topk(4, 2) end,
    reference = function(x) return R.along(x, 2, sorted_values(true, 4)), R.along(x, 2, sorted_positions(true, 4)) end,
    dtypes = SORTED, fd = false },
  { name = "k = 5 of {3, 200}, both ways, with ties (the CPU's heap)", inputs = { float({ 3, 200 }, -3, 3) },
    run = function(x)
      local v, i = x:topk(5)
      local sv, si = x:topk(5, 2, { largest = false })
      return v, i, sv, si
    end,
    reference = function(x)
      return R.along(x, 2, sorted_values(true, 5)), R.along(x, 2, sorted_positions(true, 5)),
        R.along(x, 2, sorted_values(false, 5)), R.along(x, 2, sorted_positions(false, 5))
    end, dtypes = SORTED, fd = false },
  { name = "NaN first when largest (the CPU's heap)",
    inputs = { given({ { 1, 0 / 0, -1, 0 / 0, 2, 7, 7, 0, 0, 5, 6, 0, 1, 2, 3, 4, 0 / 0, 0, 8, -8 } }) },
    run = function(x)
      local v, i = x:topk(2)
      local sv, si = x:topk(2, 2, { largest = false })
      return v, i, sv, si
    end,
    reference = function(x)
      return R.along(x, 2, sorted_values(true, 2)), R.along(x, 2, sorted_positions(true, 2)),
        R.along(x, 2, sorted_values(false, 2)), R.along(x, 2, sorted_positions(false, 2))
    end, dtypes = { "float64", "float32" }, fd = false },
  { name = "k = 0 and k = n", inputs = { float({ 2, 3 }) },
    run = function(x)
      local _, none = x:topk(0)
      return (x:topk(3)), none:numel()
    end,
    reference = function(x) return R.along(x, 2, sorted_values(true)), 0 end },
})

local function running_products(row_values)
  local out, total = {}, 1
  for i, v in ipairs(row_values) do
    total = total * number(v)
    out[i] = total
  end
  return out
end
row("cumprod", {
  { name = "{3, 4} along dim 2", inputs = { float({ 3, 4 }) }, run = function(x) return x:cumprod(2) end,
    reference = function(x) return R.along(x, 2, running_products) end },
  { name = "zeros in the input: exact gradients", inputs = { float({ 3, 5 }, -2, 2, { patch = { [2] = 0, [9] = 0,
    [10] = 0 } }) },
    run = function(x) return x:cumprod(2), x:cumprod(1) end,
    reference = function(x) return R.along(x, 2, running_products), R.along(x, 1, running_products) end },
  { name = "{4, 6} every dtype (int64 for integers)", inputs = { float({ 4, 6 }, -3, 3) },
    run = function(x) return x:cumprod(2), x:cumprod(-2) end,
    reference = function(x) return R.along(x, 2, running_products), R.along(x, 1, running_products) end,
    check = function(env)
      local t = env.tensor({ 1, 2 }, { dtype = env.dtype })
      assert.are.equal((env.dtype == "float32" or env.dtype == "float64") and env.dtype or "int64", t:cumprod(1).dtype)
    end, dtypes = EVERY, fd = false },
  { name = "{2, 40} along dim 2", inputs = { float({ 2, 40 }, 0.8, 1.2) }, run = function(x) return x:cumprod(2) end,
    reference = function(x) return R.along(x, 2, running_products) end, fd = false,
    tolerance = { float32 = { rtol = 1e-5, atol = 1e-5 } } },
  { name = "0-D", inputs = { given(3) }, run = function(x) return x:cumprod(1) end,
    reference = function(x) return x end },
  { name = "empty {0, 3}", inputs = { float({ 0, 3 }) }, run = function(x) return x:cumprod(1) end, shape = { 0, 3 } },
})

local function p_norm(p)
  return function(list)
    local total, largest, smallest, count = 0, -math.huge, math.huge, 0
    for _, v in ipairs(list) do
      local a = math.abs(number(v))
      total = total + a ^ p
      largest, smallest = math.max(largest, a), math.min(smallest, a)
      if a ~= 0 then count = count + 1 end
    end
    if p == math.huge then return largest end
    if p == -math.huge then return smallest end
    if p == 0 then return count end
    return total ^ (1 / p)
  end
end
row("norm", {
  { name = "p = 2 over all and over dim 2", inputs = { float({ 3, 4 }) },
    run = function(x) return x:norm(), x:norm(2, 2), x:norm("fro", { 1, 2 }, true) end,
    reference = function(x)
      return R.reduce(x, nil, false, p_norm(2)), R.reduce(x, 2, false, p_norm(2)),
        R.reduce(x, { 1, 2 }, true, p_norm(2))
    end },
  { name = "p = 1, 3 and 0.5 over dim 1", inputs = { float({ 4, 3 }, 0.2, 2) },
    run = function(x) return x:norm(1, 1), x:norm(3, 1), x:norm(0.5, 1, true) end,
    reference = function(x)
      return R.reduce(x, 1, false, p_norm(1)), R.reduce(x, 1, false, p_norm(3)), R.reduce(x, 1, true, p_norm(0.5))
    end },
  { name = "inf, -inf and 0 over dim 2", inputs = { float({ 3, 5 }) },
    run = function(x) return x:norm(math.huge, 2), x:norm("-inf", 2), x:norm(0, 2) end,
    reference = function(x)
      return R.reduce(x, 2, false, p_norm(math.huge)), R.reduce(x, 2, false, p_norm(-math.huge)),
        R.reduce(x, 2, false, p_norm(0))
    end },
  { name = "a zero row: the norm is 0 and its gradient 0", inputs = { float({ 3, 4 }, -2, 2,
    { patch = { [5] = 0, [6] = 0, [7] = 0, [8] = 0 } }) },
    run = function(x) return x:norm(2, 2), x:norm(3, 2) end,
    reference = function(x) return R.reduce(x, 2, false, p_norm(2)), R.reduce(x, 2, false, p_norm(3)) end,
    check = function(env)
      local x = env.tensor({ { 0, 0 }, { 3, 4 } }, { dtype = env.dtype }):requires_grad_(true)
      x:norm(2, 2):sum():backward()
      assert.are.same({ { 0, 0 }, { 0.6, 0.8 } }, map(function(v) return math.floor(v * 1e6 + 0.5) / 1e6 end,
        x.grad:to("cpu"):totable()))
    end },
  { name = "integers as float32", inputs = { float({ 2, 3 }, -3, 3) },
    run = function(x) return x:norm(2, 2) end,
    reference = function(x) return R.reduce(x, 2, false, p_norm(2)) end, dtypes = { "int64", "int32" }, fd = false,
    tolerance = { int64 = { rtol = 1e-5, atol = 1e-6 }, int32 = { rtol = 1e-5, atol = 1e-6 } } },
  { name = "empty {0, 3} over dim 1: zeros", inputs = { float({ 0, 3 }) }, run = function(x) return x:norm(2, 1) end,
    reference = function() return { 0, 0, 0 } end },
})

local function picked(x, m)
  local xs, ms, out = G.flatten(x), G.flatten(m), {}
  for k, v in ipairs(xs) do
    if ms[k] == true or ms[k] == 1 then out[#out + 1] = v end
  end
  return out
end
local PICK = { { true, false, true, true }, { false, false, true, false }, { true, true, false, true } }
row("masked_select", {
  { name = "{3, 4} by a mask of its shape, every dtype", inputs = { float({ 3, 4 }), mask(PICK) },
    run = function(x, m) return x:masked_select(m), x[m] end,
    reference = function(x, m) return picked(x, m), picked(x, m) end, dtypes = SORTED },
  { name = "a {1, 4} mask broadcast over rows", inputs = { float({ 3, 4 }), mask({ { true, false, false, true } }) },
    run = function(x, m) return x:masked_select(m) end,
    reference = function(x)
      return { x[1][1], x[1][4], x[2][1], x[2][4], x[3][1], x[3][4] }
    end },
  { name = "a transposed leaf", inputs = { float({ 3, 4 }, -2, 2, { layout = "transposed" }), mask(PICK) },
    run = function(x, m) return x:masked_select(m) end, reference = function(x, m) return picked(x, m) end },
  { name = "nothing selected", inputs = { float({ 2, 2 }), mask({ { false, false }, { false, false } }) },
    run = function(x, m) return x:masked_select(m) end, shape = { 0 } },
})

local function scatter_sum(x, dim, index, src, overwrite)
  local out = map(function(v) return v end, x)
  for i, row_index in ipairs(index) do
    for j, at in ipairs(row_index) do
      local r, c = i, j
      if dim == 1 then r = at + 1 else c = at + 1 end
      out[r][c] = overwrite and src[i][j] or out[r][c] + src[i][j]
    end
  end
  return out
end
row("scatter_add", {
  { name = "dim 1, repeated positions add up",
    inputs = { float({ 3, 4 }), index({ { 0, 2, 1, 0 }, { 2, 2, 0, 1 } }), float({ 2, 4 }, -1, 1, { seed = 7 }) },
    run = function(x, i, s) return x:scatter_add(1, i, s) end,
    reference = function(x, i, s) return scatter_sum(x, 1, i, s) end },
  { name = "dim 2 through tc.scatter_add, an index narrower than x",
    inputs = { float({ 3, 4 }), index({ { 3, 3 }, { 0, 1 }, { 1, 1 } }), float({ 3, 2 }, -1, 1, { seed = 8 }) },
    run = function(x, j, u) return tc.scatter_add(x, 2, j, u) end,
    reference = function(x, j, u) return scatter_sum(x, 2, j, u) end },
  { name = "{40, 30} along dim 1", inputs = { float({ 40, 30 }), random_index({ 25, 30 }, 40),
    float({ 25, 30 }, -1, 1, { seed = 3 }) },
    run = function(x, i, s) return x:scatter_add(1, i, s) end,
    reference = function(x, i, s) return scatter_sum(x, 1, i, s) end, fd = false,
    tolerance = { float32 = { rtol = 1e-5, atol = 1e-5 } } },
  { name = "an empty index", inputs = { float({ 2, 3 }), index({ {}, {} }), float({ 2, 0 }) },
    run = function(x, i, s) return x:scatter_add(2, i, s) end, reference = function(x) return x end },
})

row("scatter", {
  { name = "dim 1, each position once",
    inputs = { float({ 3, 4 }), index({ { 0, 2, 1, 0 }, { 2, 1, 0, 1 } }), float({ 2, 4 }, -1, 1, { seed = 7 }) },
    run = function(x, i, s) return x:scatter(1, i, s) end,
    reference = function(x, i, s) return scatter_sum(x, 1, i, s, true) end },
  { name = "dim 2 through tc.scatter",
    inputs = { float({ 3, 4 }), index({ { 3, 0 }, { 0, 1 }, { 2, 1 } }), float({ 3, 2 }, -1, 1, { seed = 8 }) },
    run = function(x, j, u) return tc.scatter(x, 2, j, u) end,
    reference = function(x, j, u) return scatter_sum(x, 2, j, u, true) end },
  { name = "a number as src", inputs = { float({ 2, 3 }), index({ { 2 }, { 0 } }) },
    run = function(x, i) return x:scatter(2, i, 5) end,
    reference = function(x) return { { x[1][1], x[1][2], 5 }, { 5, x[2][2], x[2][3] } } end },
})

local function index_added(x, dim, index, src, alpha)
  local out = map(function(v) return v end, x)
  for k, at in ipairs(index) do
    for j = 1, dim == 1 and #x[1] or #x do
      if dim == 1 then
        out[at + 1][j] = out[at + 1][j] + alpha * src[k][j]
      else
        out[j][at + 1] = out[j][at + 1] + alpha * src[j][k]
      end
    end
  end
  return out
end
row("index_add", {
  { name = "dim 1, repeated ids",
    inputs = { float({ 3, 4 }), index({ 2, 0, 2 }), float({ 3, 4 }, -1, 1, { seed = 5 }) },
    run = function(x, i, s) return x:index_add(1, i, s) end,
    reference = function(x, i, s) return index_added(x, 1, i, s, 1) end },
  { name = "dim 2 through tc.index_add with alpha",
    inputs = { float({ 3, 4 }), index({ 1, 3 }), float({ 3, 2 }, -1, 1, { seed = 6 }) },
    run = function(x, j, u) return tc.index_add(x, 2, j, u, { alpha = -2 }) end,
    reference = function(x, j, u) return index_added(x, 2, j, u, -2) end },
  { name = "{50, 20} along dim 1", inputs = { float({ 50, 20 }), random_index({ 70 }, 50),
    float({ 70, 20 }, -1, 1, { seed = 4 }) },
    run = function(x, i, s) return x:index_add(1, i, s) end,
    reference = function(x, i, s) return index_added(x, 1, i, s, 1) end, fd = false,
    tolerance = { float32 = { rtol = 1e-5, atol = 1e-5 } } },
})

return rows
