-- Every op of tc.ops(): forward values against references computed in plain
-- Lua (double precision, from totable() values) and gradients against
-- central finite differences in float64, with broadcast and non-contiguous
-- inputs. The table of cases is checked against tc.ops(): an op without a
-- forward case, or a differentiable op without a gradient case, fails.
local tc = require("tricycle")
local G = require("helpers.gradcheck")

local F64 = { dtype = "float64" }
local methods = tc.Tensor.methods

local function f64(values) return tc.tensor(values, F64) end
local function leaf(values) return G.leaf(tc, values) end
local function tleaf(values) return G.transposed_leaf(tc, values) end
local function vals(shape, lo, hi, seed) return G.values(shape, lo, hi, seed) end

-- ---- reference maths in plain Lua ----

local function erf(x)
  -- Maclaurin series; exact to double precision for the |x| < 3 used here.
  local sum, term, n = x, x, 0
  repeat
    n = n + 1
    term = -term * x * x / n
    local add = term / (2 * n + 1)
    sum = sum + add
  until math.abs(add) < 1e-17 * math.abs(sum) or n > 200
  return 2 / math.sqrt(math.pi) * sum
end
local function sigmoid(x) return 1 / (1 + math.exp(-x)) end
local function tanh(x)
  local e = math.exp(2 * x)
  return (e - 1) / (e + 1)
end

local unary_reference = {
  neg = { function(x) return -x end, -2, 2 },
  exp = { math.exp, -2, 2 },
  log = { math.log, 0.3, 3 },
  sqrt = { math.sqrt, 0.3, 3 },
  abs = { math.abs, -2, 2 },
  tanh = { tanh, -2, 2 },
  sigmoid = { sigmoid, -3, 3 },
  relu = { function(x) return x > 0 and x or 0 end, -2, 2 },
  gelu = { function(x) return 0.5 * x * (1 + erf(x / math.sqrt(2))) end, -2.5, 2.5 },
  gelu_tanh = { function(x) return 0.5 * x * (1 + tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ^ 3))) end,
    -2.5, 2.5 },
  silu = { function(x) return x * sigmoid(x) end, -3, 3 },
  sin = { math.sin, -3, 3 },
  cos = { math.cos, -3, 3 },
  rsqrt = { function(x) return 1 / math.sqrt(x) end, 0.3, 3 },
  square = { function(x) return x * x end, -2, 2 },
}
local function call_unary(name, x)
  if name == "gelu_tanh" then return x:gelu("tanh") end
  return x[name](x)
end

local binary_reference = {
  add = { function(a, b) return a + b end, { -2, 2 }, { -2, 2 } },
  sub = { function(a, b) return a - b end, { -2, 2 }, { -2, 2 } },
  mul = { function(a, b) return a * b end, { -2, 2 }, { -2, 2 } },
  div = { function(a, b) return a / b end, { -2, 2 }, { 0.5, 2 } },
  pow = { function(a, b) return a ^ b end, { 0.5, 2 }, { -1.5, 1.5 } },
  maximum = { function(a, b) return math.max(a, b) end, { -2, 2 }, { -2, 2 } },
  minimum = { function(a, b) return math.min(a, b) end, { -2, 2 }, { -2, 2 } },
}

local comparison_reference = {
  eq = function(a, b) return a == b end,
  ne = function(a, b) return a ~= b end,
  lt = function(a, b) return a < b end,
  le = function(a, b) return a <= b end,
  gt = function(a, b) return a > b end,
  ge = function(a, b) return a >= b end,
  logical_and = function(a, b) return a ~= 0 and b ~= 0 end,
  logical_or = function(a, b) return a ~= 0 or b ~= 0 end,
}

local function sum_list(list)
  local s = 0
  for _, v in ipairs(list) do s = s + v end
  return s
end
local function mean_list(list) return sum_list(list) / #list end
local function max_list(list) return math.max(table.unpack(list)) end
local function min_list(list) return math.min(table.unpack(list)) end
local function var_list(correction)
  return function(list)
    local m = mean_list(list)
    local s = 0
    for _, v in ipairs(list) do s = s + (v - m) ^ 2 end
    return s / (#list - correction)
  end
end
local function argmax_list(list)
  local best = 1
  for i = 2, #list do if list[i] > list[best] then best = i end end
  return best - 1
end
local function argmin_list(list)
  local best = 1
  for i = 2, #list do if list[i] < list[best] then best = i end end
  return best - 1
end

local function matmul_reference(a, b)
  local out = {}
  for i = 1, #a do
    out[i] = {}
    for j = 1, #b[1] do
      local s = 0
      for k = 1, #b do s = s + a[i][k] * b[k][j] end
      out[i][j] = s
    end
  end
  return out
end

local function transpose_reference(a)
  local out = {}
  for j = 1, #a[1] do
    out[j] = {}
    for i = 1, #a do out[j][i] = a[i][j] end
  end
  return out
end

-- softmax over the last dim of a 2-D table, or over rows (dim 1)
local function softmax_rows(rows, log)
  local out = {}
  for i, row in ipairs(rows) do
    local m = max_list(row)
    local s = 0
    for _, v in ipairs(row) do s = s + math.exp(v - m) end
    out[i] = {}
    for j, v in ipairs(row) do
      out[i][j] = log and (v - m - math.log(s)) or math.exp(v - m) / s
    end
  end
  return out
end

-- ---- the cases ----

-- grad_cases[i] = {op =, name =, fn =, inputs = function() return {...} end, options}
-- forward_cases[i] = {op =, name =, run = function() (asserts) end}
local grad_cases, forward_cases = {}, {}
local function grad_case(op, name, fn, inputs, options)
  grad_cases[#grad_cases + 1] = { op = op, name = name, fn = fn, inputs = inputs, options = options or {} }
end
local function forward_case(op, name, run)
  forward_cases[#forward_cases + 1] = { op = op, name = name, run = run }
end

-- unary ops
for name, spec in pairs(unary_reference) do
  local ref, lo, hi = spec[1], spec[2], spec[3]
  forward_case(name, "float64 {2, 3}", function()
    local x = vals({ 2, 3 }, lo, hi, 11)
    G.assert_close(call_unary(name, f64(x)):totable(), G.map(ref, x), { rtol = 1e-12, atol = 1e-12 })
  end)
  forward_case(name, "float32 on a transposed view", function()
    local x = vals({ 3, 2 }, lo, hi, 12)
    local t = tc.tensor(x):transpose(1, 2)
    local out = call_unary(name, t)
    assert.are.equal("float32", out.dtype)
    G.assert_close(out:totable(), G.map(ref, transpose_reference(x)), { rtol = 1e-5, atol = 1e-6 })
  end)
  grad_case(name, "contiguous {2, 3}", function(x) return call_unary(name, x) end,
    function() return { leaf(vals({ 2, 3 }, lo, hi, 13)) } end)
  grad_case(name, "transposed leaf", function(x) return call_unary(name, x) end,
    function() return { tleaf(vals({ 3, 2 }, lo, hi, 14)) } end)
  grad_case(name, "narrowed view inside the graph", function(x) return call_unary(name, x:narrow(2, 2, 2)) end,
    function() return { leaf(vals({ 2, 4 }, lo, hi, 15)) } end)
end

forward_case("sign", "values and zero", function()
  local x = { -2.5, 0, 3, -0.1 }
  assert.are.same({ -1, 0, 1, -1 }, f64(x):sign():totable())
end)
forward_case("logical_not", "gives bool", function()
  local out = f64({ 0, 1, -2 }):logical_not()
  assert.are.equal("bool", out.dtype)
  assert.are.same({ true, false, false }, out:totable())
end)

-- binary ops
for name, spec in pairs(binary_reference) do
  local ref, ra, rb = spec[1], spec[2], spec[3]
  local op = methods[name]
  forward_case(name, "broadcast {3, 1} with {1, 4}", function()
    local a, b = vals({ 3, 1 }, ra[1], ra[2], 21), vals({ 1, 4 }, rb[1], rb[2], 22)
    local out = op(f64(a), f64(b))
    assert.are.same({ 3, 4 }, out.shape)
    G.assert_close(out:totable(), G.map(ref, a, b), { rtol = 1e-12, atol = 1e-12 })
  end)
  forward_case(name, "numbers on either side", function()
    local a = vals({ 2, 3 }, ra[1], ra[2], 23)
    local b = vals({ 2, 3 }, rb[1], rb[2], 24)
    local number_b, number_a = (rb[1] + rb[2]) / 2 + 0.25, (ra[1] + ra[2]) / 2 + 0.25
    G.assert_close(op(f64(a), number_b):totable(), G.map(ref, a, number_b), { rtol = 1e-12 })
    G.assert_close(op(number_a, f64(b)):totable(), G.map(ref, number_a, b), { rtol = 1e-12 })
  end)
  forward_case(name, "float32 transposed with contiguous", function()
    local a, b = vals({ 3, 2 }, ra[1], ra[2], 25), vals({ 2, 3 }, rb[1], rb[2], 26)
    local out = op(tc.tensor(a):transpose(1, 2), tc.tensor(b))
    G.assert_close(out:totable(), G.map(ref, transpose_reference(a), b), { rtol = 1e-5, atol = 1e-6 })
  end)
  grad_case(name, "same shape", function(a, b) return op(a, b) end, function()
    return { leaf(vals({ 2, 3 }, ra[1], ra[2], 31)), leaf(vals({ 2, 3 }, rb[1], rb[2], 32)) }
  end)
  grad_case(name, "broadcast {3, 1} with {1, 4}", function(a, b) return op(a, b) end, function()
    return { leaf(vals({ 3, 1 }, ra[1], ra[2], 33)), leaf(vals({ 1, 4 }, rb[1], rb[2], 34)) }
  end)
  grad_case(name, "broadcast {4} against {2, 4}", function(a, b) return op(a, b) end, function()
    return { leaf(vals({ 2, 4 }, ra[1], ra[2], 35)), leaf(vals({ 4 }, rb[1], rb[2], 36)) }
  end)
  grad_case(name, "number on the right", function(a) return op(a, (rb[1] + rb[2]) / 2 + 0.3) end,
    function() return { leaf(vals({ 2, 3 }, ra[1], ra[2], 37)) } end)
  grad_case(name, "number on the left", function(b) return op((ra[1] + ra[2]) / 2 + 0.3, b) end,
    function() return { leaf(vals({ 2, 3 }, rb[1], rb[2], 38)) } end)
  grad_case(name, "transposed leaf with a 0-dim tensor", function(a, b) return op(a, b) end, function()
    return { tleaf(vals({ 3, 2 }, ra[1], ra[2], 39)), leaf((rb[1] + rb[2]) / 2 + 0.2) }
  end)
end

forward_case("add", "operators +, -, *, /, ^ and unary minus", function()
  local a, b = f64({ { 1, 2 }, { 3, 4 } }), f64({ 10, 20 })
  assert.are.same({ { 11, 22 }, { 13, 24 } }, (a + b):totable())
  assert.are.same({ { -9, -18 }, { -7, -16 } }, (a - b):totable())
  assert.are.same({ { 10, 40 }, { 30, 80 } }, (a * b):totable())
  assert.are.same({ { 2, 4 }, { 6, 8 } }, (2 * a):totable())
  assert.are.same({ { 0.5, 1 }, { 1.5, 2 } }, (a / 2):totable())
  assert.are.same({ { 1, 4 }, { 9, 16 } }, (a ^ 2):totable())
  assert.are.same({ { -1, -2 }, { -3, -4 } }, (-a):totable())
  assert.are.same({ { 2, 4 }, { 8, 16 } }, (2 ^ a):totable())
end)

forward_case("add", "dtype promotion", function()
  local i = tc.tensor({ 1, 2 }, { dtype = "int64" })
  assert.are.equal("int64", (i + i).dtype)
  assert.are.equal("float32", (i + tc.tensor({ 1.5, 1 })).dtype)
  assert.are.equal("float64", (tc.tensor({ 1, 2 }) + f64({ 1, 2 })).dtype)
  assert.are.equal("float32", (i + 0.5).dtype)
  assert.are.same({ 1.5, 2.5 }, (i + 0.5):totable())
end)

forward_case("add", "an integer tensor with a scalar it cannot hold is an error, not a wrap", function()
  local u = tc.tensor({ 1, 2, 250 }, { dtype = "uint8" })
  local function message(fn)
    local ok, err = pcall(fn)
    assert.is_false(ok)
    return err
  end
  assert.matches("add: the scalar 300 is out of the range of uint8 (0 to 255)", message(function() return u + 300 end),
    1, true)
  assert.matches("sub: the scalar -1 is out of the range of uint8", message(function() return u - (-1) end), 1, true)
  assert.matches("mul: the scalar 3000000000 is out of the range of int32",
    message(function() return tc.tensor({ 1 }, { dtype = "int32" }) * 3000000000 end), 1, true)
  assert.matches("add: the scalar 9.2233720368547758e+18 is out of the range of int64",
    message(function() return tc.tensor({ 1 }, { dtype = "int64" }) + 2 ^ 63 end), 1, true)
  assert.matches("mul: the scalar inf is out of the range of int64",
    message(function() return tc.tensor({ 1 }, { dtype = "int64" }) * math.huge end), 1, true)
  -- where a tensor keeps its integer dtype, a fraction cannot be stored either
  assert.matches("fill_: the scalar 2.5 is not an integer, so a uint8 tensor cannot hold it",
    message(function() return tc.zeros({ 2 }, { dtype = "uint8" }):fill_(2.5) end), 1, true)
  assert.matches("masked_fill: the scalar 256 is out of the range of uint8",
    message(function() return u:masked_fill(u:gt(1), 256) end), 1, true)
  assert.matches("where: the scalar -5 is out of the range of uint8",
    message(function() return tc.where(u:gt(1), u, -5) end), 1, true)
  assert.matches("full: the scalar 10000000000 is out of the range of int32",
    message(function() return tc.full({ 2 }, 1e10, { dtype = "int32" }) end), 1, true)
  -- values in range keep the dtype; a fraction still promotes to float32
  assert.are.same({ 6, 7, 255 }, (u + 5):to("int64"):totable())
  assert.are.equal("uint8", (u + 5).dtype)
  assert.are.equal("float32", (u + 0.5).dtype)
  assert.are.equal("int64", (tc.tensor({ 1 }, { dtype = "int64" }) + 2 ^ 62).dtype)
  -- a bool compared with a value other than 0 or 1 is compared as a number
  assert.are.same({ false, false }, tc.tensor({ true, false }):eq(2):totable())
  assert.are.same({ true, false }, tc.tensor({ true, false }):eq(1):totable())
end)

for name, ref in pairs(comparison_reference) do
  forward_case(name, "broadcast, gives bool", function()
    local a = { { 0, 1, 2 }, { 3, 1, -1 } }
    local b = { 1, 1, 0 }
    local out = methods[name](f64(a), f64(b))
    assert.are.equal("bool", out.dtype)
    assert.are.same(G.map(ref, a, b), out:totable())
    local number = methods[name](f64(a), 1)
    assert.are.same(G.map(ref, a, 1), number:totable())
  end)
end

-- clamp, where, masked_fill
forward_case("clamp", "both bounds and one bound", function()
  local x = vals({ 2, 3 }, -2, 2, 41)
  G.assert_close(f64(x):clamp(-0.5, 0.5):totable(), G.map(function(v) return math.min(math.max(v, -0.5), 0.5) end, x))
  G.assert_close(f64(x):clamp(nil, 0.5):totable(), G.map(function(v) return math.min(v, 0.5) end, x))
  G.assert_close(f64(x):clamp(-0.5):totable(), G.map(function(v) return math.max(v, -0.5) end, x))
end)
grad_case("clamp", "both bounds", function(x) return x:clamp(-0.5, 0.5) end,
  function() return { leaf(vals({ 3, 4 }, -2, 2, 42)) } end)
grad_case("clamp", "upper bound on a transposed leaf", function(x) return x:clamp(nil, 0.3) end,
  function() return { tleaf(vals({ 3, 2 }, -2, 2, 43)) } end)

local condition = { { true, false, true }, { false, false, true } }
forward_case("where", "broadcast and numbers", function()
  local a, b = vals({ 2, 3 }, -2, 2, 44), vals({ 1, 3 }, -2, 2, 45)
  local cond = tc.tensor(condition)
  assert.are.equal("bool", cond.dtype)
  G.assert_close(tc.where(cond, f64(a), f64(b)):totable(),
    G.map(function(c, x, y) return c and x or y end, condition, a, b))
  G.assert_close(tc.where(cond, f64(a), 7):totable(), G.map(function(c, x) return c and x or 7 end, condition, a))
  G.assert_close(cond:where(-1, f64(b)):totable(), G.map(function(c, y) return c and -1 or y end, condition, b))
end)
grad_case("where", "broadcast b {1, 3}", function(a, b) return tc.where(tc.tensor(condition), a, b) end,
  function() return { leaf(vals({ 2, 3 }, -2, 2, 46)), leaf(vals({ 1, 3 }, -2, 2, 47)) } end)
grad_case("where", "number for b, transposed a", function(a) return tc.where(tc.tensor(condition), a, 0.5) end,
  function() return { tleaf(vals({ 2, 3 }, -2, 2, 48)) } end)

forward_case("masked_fill", "broadcast mask", function()
  local x = vals({ 2, 3 }, -2, 2, 49)
  local mask = { false, true, false }
  G.assert_close(f64(x):masked_fill(tc.tensor({ mask }), -9):totable(),
    G.map(function(v, m) return m and -9 or v end, x, { mask }))
end)
grad_case("masked_fill", "mask {2, 3}", function(x) return x:masked_fill(tc.tensor(condition), 3) end,
  function() return { leaf(vals({ 2, 3 }, -2, 2, 50)) } end)

-- reductions
local reduction_reference = {
  sum = sum_list, mean = mean_list, max = max_list, min = min_list,
}
for name, ref in pairs(reduction_reference) do
  forward_case(name, "all, by dim, keepdim, several dims", function()
    local x = vals({ 2, 3, 4 }, -2, 2, 51)
    local t = f64(x)
    local tol = { rtol = 1e-12, atol = 1e-12 }
    G.assert_close(t[name](t):item(), G.reduce(x, nil, false, ref), tol)
    G.assert_close(t[name](t, 2):totable(), G.reduce(x, 2, false, ref), tol)
    G.assert_close(t[name](t, -1, true):totable(), G.reduce(x, -1, true, ref), tol)
    if name == "sum" or name == "mean" then
      G.assert_close(t[name](t, { 1, 3 }):totable(), G.reduce(x, { 1, 3 }, false, ref), tol)
    end
    local tt = tc.tensor(vals({ 4, 3 }, -2, 2, 52)):transpose(1, 2)
    G.assert_close(tt[name](tt, 2):totable(), G.reduce(transpose_reference(vals({ 4, 3 }, -2, 2, 52)), 2, false, ref),
      { rtol = 1e-5, atol = 1e-5 })
  end)
  grad_case(name, "over everything", function(x) return x[name](x) end,
    function() return { leaf(vals({ 2, 3 }, -2, 2, 53)) } end)
  grad_case(name, "over dim 2 of a transposed leaf", function(x) return x[name](x, 2) end,
    function() return { tleaf(vals({ 3, 4 }, -2, 2, 54)) } end)
  grad_case(name, "over dim -1 with keepdim", function(x) return x[name](x, -1, true) end,
    function() return { leaf(vals({ 2, 2, 3 }, -2, 2, 55)) } end)
end
grad_case("sum", "over dims {1, 3}", function(x) return x:sum({ 1, 3 }) end,
  function() return { leaf(vals({ 2, 3, 2 }, -2, 2, 56)) } end)
grad_case("mean", "over dims {1, 2}", function(x) return x:mean({ 1, 2 }) end,
  function() return { leaf(vals({ 2, 3, 2 }, -2, 2, 57)) } end)

forward_case("max", "with a dim gives values and 0-based indices", function()
  local x = { { 1, 5, 3 }, { 7, 2, 4 } }
  local values, indices = f64(x):max(2)
  assert.are.same({ 5, 7 }, values:totable())
  assert.are.same({ 1, 0 }, indices:totable())
  assert.are.equal("int64", indices.dtype)
  local lowest, where = f64(x):min(1)
  assert.are.same({ 1, 2, 3 }, lowest:totable())
  assert.are.same({ 0, 1, 0 }, where:totable())
end)
forward_case("argmax", "0-based along a dim", function()
  local x = vals({ 3, 5 }, -2, 2, 58)
  assert.are.same(G.reduce(x, 2, false, argmax_list), f64(x):argmax(2):totable())
  assert.are.same(G.reduce(x, 1, false, argmax_list), f64(x):argmax(1):totable())
end)
forward_case("argmin", "0-based along a dim", function()
  local x = vals({ 3, 5 }, -2, 2, 59)
  assert.are.same(G.reduce(x, 2, false, argmin_list), f64(x):argmin(2):totable())
  assert.are.same(G.reduce(x, 1, false, argmin_list), f64(x):argmin(1):totable())
end)
forward_case("var", "unbiased and biased", function()
  local x = vals({ 3, 4 }, -2, 2, 60)
  G.assert_close(f64(x):var():item(), G.reduce(x, nil, false, var_list(1)), { rtol = 1e-12 })
  G.assert_close(f64(x):var(2):totable(), G.reduce(x, 2, false, var_list(1)), { rtol = 1e-12 })
  G.assert_close(f64(x):var(1, { correction = 0 }):totable(), G.reduce(x, 1, false, var_list(0)), { rtol = 1e-12 })
  G.assert_close(f64(x):var(2, { keepdim = true }):totable(), G.reduce(x, 2, true, var_list(1)), { rtol = 1e-12 })
end)
grad_case("var", "over everything", function(x) return x:var() end,
  function() return { leaf(vals({ 2, 3 }, -2, 2, 61)) } end)
grad_case("var", "biased over dim 1 of a transposed leaf", function(x) return x:var(1, { correction = 0 }) end,
  function() return { tleaf(vals({ 3, 4 }, -2, 2, 62)) } end)

-- views and copies
forward_case("reshape", "contiguous and non-contiguous", function()
  local x = vals({ 2, 3 }, -2, 2, 63)
  local flat = G.flatten(x)
  G.assert_close(f64(x):reshape(3, 2):totable(), G.nest(flat, { 3, 2 }))
  G.assert_close(f64(x):reshape({ -1 }):totable(), flat)
  local t = f64(x):transpose(1, 2)
  G.assert_close(t:reshape(6):totable(), G.flatten(transpose_reference(x)))
  G.assert_close(f64(x):view(1, 6):totable(), { flat })
end)
grad_case("reshape", "contiguous", function(x) return x:reshape(3, 2) * x:reshape(3, 2) end,
  function() return { leaf(vals({ 2, 3 }, -2, 2, 64)) } end)
grad_case("reshape", "a transposed leaf (copies)", function(x) return x:reshape({ 6 }) end,
  function() return { tleaf(vals({ 3, 2 }, -2, 2, 65)) } end)

forward_case("transpose", "2-D and default dims", function()
  local x = vals({ 2, 3 }, -2, 2, 66)
  G.assert_close(f64(x):transpose(1, 2):totable(), transpose_reference(x))
  G.assert_close(f64(x):transpose():totable(), transpose_reference(x))
  assert.is_false(f64(x):transpose():is_contiguous())
end)
grad_case("transpose", "3-D, dims 1 and 3", function(x) return x:transpose(1, 3) end,
  function() return { leaf(vals({ 2, 3, 2 }, -2, 2, 67)) } end)

forward_case("permute", "3-D", function()
  local x = vals({ 2, 3, 4 }, -2, 2, 68)
  local out = f64(x):permute(3, 1, 2)
  assert.are.same({ 4, 2, 3 }, out.shape)
  local flat = out:totable()
  for i = 1, 2 do
    for j = 1, 3 do
      for k = 1, 4 do assert.are.equal(x[i][j][k], flat[k][i][j]) end
    end
  end
  assert.are.same({ 4, 2, 3 }, f64(x):permute({ 3, 1, 2 }).shape)
end)
grad_case("permute", "3-D", function(x) return x:permute(2, 3, 1) end,
  function() return { leaf(vals({ 2, 3, 2 }, -2, 2, 69)) } end)

forward_case("narrow", "1-based and negative starts", function()
  local x = vals({ 3, 5 }, -2, 2, 70)
  local out = f64(x):narrow(2, 2, 3)
  for i = 1, 3 do G.assert_close(out:totable()[i], { x[i][2], x[i][3], x[i][4] }) end
  local last = f64(x):narrow(1, -1, 1)
  G.assert_close(last:totable(), { x[3] })
end)
grad_case("narrow", "dim 2", function(x) return x:narrow(2, 2, 2) end,
  function() return { leaf(vals({ 3, 4 }, -2, 2, 71)) } end)
grad_case("narrow", "dim 1 of a transposed leaf", function(x) return x:narrow(1, 2, 2) end,
  function() return { tleaf(vals({ 3, 4 }, -2, 2, 72)) } end)

forward_case("select", "1-based, negative, t[i]", function()
  local x = vals({ 3, 4 }, -2, 2, 73)
  G.assert_close(f64(x):select(1, 2):totable(), x[2])
  G.assert_close(f64(x):select(2, -1):totable(), { x[1][4], x[2][4], x[3][4] })
  G.assert_close(f64(x)[3]:totable(), x[3])
  G.assert_close(f64(x)[-1]:totable(), x[3])
end)
grad_case("select", "dim 2", function(x) return x:select(2, 3) end,
  function() return { leaf(vals({ 3, 4 }, -2, 2, 74)) } end)
grad_case("select", "t[i] on a transposed leaf", function(x) return x[2] end,
  function() return { tleaf(vals({ 3, 4 }, -2, 2, 75)) } end)

forward_case("expand", "size-1 dims and a new leading dim", function()
  local x = vals({ 3, 1 }, -2, 2, 76)
  local out = f64(x):expand(2, 3, 4)
  assert.are.same({ 2, 3, 4 }, out.shape)
  G.assert_close(out:totable(), G.map(function(v) return v end, x, G.nest(G.flatten(vals({ 2, 3, 4 }, 0, 0)), { 2, 1, 4 })))
  assert.are.same({ 3, 5 }, f64(x):expand(-1, 5).shape)
end)
grad_case("expand", "{3, 1} to {2, 3, 4}", function(x) return x:expand(2, 3, 4) end,
  function() return { leaf(vals({ 3, 1 }, -2, 2, 77)) } end)

forward_case("contiguous", "of a transposed view", function()
  local x = vals({ 2, 3 }, -2, 2, 78)
  local out = f64(x):transpose(1, 2):contiguous()
  assert.is_true(out:is_contiguous())
  G.assert_close(out:totable(), transpose_reference(x))
end)
grad_case("contiguous", "of a transposed leaf", function(x) return x:contiguous() * 2 end,
  function() return { tleaf(vals({ 3, 2 }, -2, 2, 79)) } end)

forward_case("clone", "a copy that does not share storage", function()
  local t = f64({ 1, 2, 3 })
  local c = t:clone()
  c:fill_(0)
  assert.are.same({ 1, 2, 3 }, t:totable())
end)
grad_case("clone", "of a narrowed view", function(x) return x:narrow(1, 1, 2):clone() end,
  function() return { leaf(vals({ 3, 2 }, -2, 2, 80)) } end)

forward_case("to_dtype", "conversions", function()
  local t = f64({ 1.5, -2.25, 3 })
  assert.are.equal("float32", t:to("float32").dtype)
  assert.are.same({ 1.5, -2.25, 3 }, t:to("float32"):totable())
  assert.are.same({ 1, -2, 3 }, t:to("int64"):totable())
  assert.are.same({ true, true, true }, t:to("bool"):totable())
  assert.are.same({ 1, 0, 1 }, tc.tensor({ true, false, true }):to("int32"):totable())
end)
grad_case("to_dtype", "float64 -> float32 -> float64", function(x) return x:to("float32"):to("float64") * x end,
  function() return { leaf(vals({ 2, 3 }, -2, 2, 81)) } end, { eps = 1e-3, atol = 1e-4, rtol = 1e-3 })

-- linear algebra
forward_case("matmul", "2-D, 1-D and batched with broadcast", function()
  local a, b = vals({ 2, 3 }, -2, 2, 82), vals({ 3, 4 }, -2, 2, 83)
  G.assert_close(f64(a):matmul(f64(b)):totable(), matmul_reference(a, b), { rtol = 1e-12 })
  local v = vals({ 3 }, -2, 2, 84)
  G.assert_close(f64(v):matmul(f64(b)):totable(), matmul_reference({ v }, b)[1], { rtol = 1e-12 })
  G.assert_close(f64(a):matmul(f64(v)):totable(), G.flatten(matmul_reference(a, transpose_reference({ v }))),
    { rtol = 1e-12 })
  local batch = vals({ 2, 2, 3 }, -2, 2, 85)
  local out = f64(batch):matmul(f64(b))
  assert.are.same({ 2, 2, 4 }, out.shape)
  for i = 1, 2 do G.assert_close(out:totable()[i], matmul_reference(batch[i], b), { rtol = 1e-12 }) end
  local bt = vals({ 4, 3 }, -2, 2, 86)
  G.assert_close(tc.tensor(a):matmul(tc.tensor(bt):transpose(1, 2)):totable(),
    matmul_reference(a, transpose_reference(bt)), { rtol = 1e-5, atol = 1e-5 })
end)
grad_case("matmul", "2-D", function(a, b) return a:matmul(b) end,
  function() return { leaf(vals({ 2, 3 }, -2, 2, 87)), leaf(vals({ 3, 4 }, -2, 2, 88)) } end)
grad_case("matmul", "transposed right operand", function(a, b) return a:matmul(b) end,
  function() return { leaf(vals({ 2, 3 }, -2, 2, 89)), tleaf(vals({ 3, 4 }, -2, 2, 90)) } end)
grad_case("matmul", "batched {2, 2, 3} with broadcast {3, 2}", function(a, b) return a:matmul(b) end,
  function() return { leaf(vals({ 2, 2, 3 }, -2, 2, 91)), leaf(vals({ 3, 2 }, -2, 2, 92)) } end)
grad_case("matmul", "vector times matrix", function(a, b) return a:matmul(b) end,
  function() return { leaf(vals({ 3 }, -2, 2, 93)), leaf(vals({ 3, 2 }, -2, 2, 94)) } end)

forward_case("einsum", "matmul, batched, diagonal, transpose, dot", function()
  local a, b = vals({ 2, 3 }, -2, 2, 95), vals({ 3, 4 }, -2, 2, 96)
  G.assert_close(tc.einsum("ij,jk->ik", f64(a), f64(b)):totable(), matmul_reference(a, b), { rtol = 1e-12 })
  G.assert_close(tc.einsum("ij,jk->ik", { f64(a), f64(b) }):totable(), matmul_reference(a, b), { rtol = 1e-12 })
  G.assert_close(tc.einsum("ij->ji", f64(a)):totable(), transpose_reference(a))
  local sq = vals({ 3, 3 }, -2, 2, 97)
  G.assert_close(tc.einsum("ii->i", f64(sq)):totable(), { sq[1][1], sq[2][2], sq[3][3] })
  local u, v = vals({ 4 }, -2, 2, 98), vals({ 4 }, -2, 2, 99)
  local dot = 0
  for i = 1, 4 do dot = dot + u[i] * v[i] end
  G.assert_close(tc.einsum("i,i->", f64(u), f64(v)):item(), dot, { rtol = 1e-12 })
  local x, y = vals({ 2, 2, 3 }, -2, 2, 100), vals({ 2, 3, 2 }, -2, 2, 101)
  local out = tc.einsum("bij,bjk->bik", f64(x), f64(y)):totable()
  for n = 1, 2 do G.assert_close(out[n], matmul_reference(x[n], y[n]), { rtol = 1e-12 }) end
end)
grad_case("einsum", "bij,bjk->bik", function(x, y) return tc.einsum("bij,bjk->bik", x, y) end,
  function() return { leaf(vals({ 2, 2, 3 }, -2, 2, 102)), leaf(vals({ 2, 3, 2 }, -2, 2, 103)) } end)
grad_case("einsum", "ij,kj->ik with a transposed operand", function(x, y) return tc.einsum("ij,kj->ik", x, y) end,
  function() return { tleaf(vals({ 2, 3 }, -2, 2, 104)), leaf(vals({ 4, 3 }, -2, 2, 105)) } end)
grad_case("einsum", "ii->i (diagonal)", function(x) return tc.einsum("ii->i", x) end,
  function() return { leaf(vals({ 3, 3 }, -2, 2, 106)) } end)

-- softmax family
forward_case("softmax", "last dim and dim 1", function()
  local x = vals({ 3, 4 }, -3, 3, 107)
  G.assert_close(f64(x):softmax(2):totable(), softmax_rows(x), { rtol = 1e-12 })
  G.assert_close(f64(x):softmax(-1):totable(), softmax_rows(x), { rtol = 1e-12 })
  G.assert_close(f64(x):softmax(1):totable(), transpose_reference(softmax_rows(transpose_reference(x))),
    { rtol = 1e-12 })
  local big = f64({ { 1000, 1001 } }):softmax(2):totable()
  G.assert_close(big, softmax_rows({ { 0, 1 } }), { rtol = 1e-12 })
end)
grad_case("softmax", "last dim", function(x) return x:softmax(-1) end,
  function() return { leaf(vals({ 3, 4 }, -3, 3, 108)) } end)
grad_case("softmax", "dim 1 of a transposed leaf", function(x) return x:softmax(1) end,
  function() return { tleaf(vals({ 3, 4 }, -3, 3, 109)) } end)
forward_case("log_softmax", "last dim and dim 1", function()
  local x = vals({ 3, 4 }, -3, 3, 110)
  G.assert_close(f64(x):log_softmax(2):totable(), softmax_rows(x, true), { rtol = 1e-12 })
  G.assert_close(f64(x):log_softmax(1):totable(), transpose_reference(softmax_rows(transpose_reference(x), true)),
    { rtol = 1e-12 })
end)
grad_case("log_softmax", "last dim", function(x) return x:log_softmax(2) end,
  function() return { leaf(vals({ 3, 4 }, -3, 3, 111)) } end)
grad_case("log_softmax", "dim 1 of a transposed leaf", function(x) return x:log_softmax(1) end,
  function() return { tleaf(vals({ 3, 4 }, -3, 3, 112)) } end)

-- many tensors and indexing
forward_case("cat", "dims 1 and 2", function()
  local a, b = vals({ 2, 3 }, -2, 2, 113), vals({ 1, 3 }, -2, 2, 114)
  G.assert_close(tc.cat({ f64(a), f64(b) }, 1):totable(), { a[1], a[2], b[1] })
  local c = vals({ 2, 2 }, -2, 2, 115)
  G.assert_close(tc.cat({ f64(a), f64(c) }, 2):totable(),
    { { a[1][1], a[1][2], a[1][3], c[1][1], c[1][2] }, { a[2][1], a[2][2], a[2][3], c[2][1], c[2][2] } })
  G.assert_close(tc.cat({ f64(a), f64(b) }):totable(), { a[1], a[2], b[1] })
end)
grad_case("cat", "dim 1", function(a, b) return tc.cat({ a, b }, 1) end,
  function() return { leaf(vals({ 2, 3 }, -2, 2, 116)), leaf(vals({ 1, 3 }, -2, 2, 117)) } end)
grad_case("cat", "dim 2 with a transposed leaf", function(a, b) return tc.cat({ a, b, a }, -1) end,
  function() return { tleaf(vals({ 2, 3 }, -2, 2, 118)), leaf(vals({ 2, 2 }, -2, 2, 119)) } end)

forward_case("stack", "new dims 1 and 2", function()
  local a, b = vals({ 2, 3 }, -2, 2, 120), vals({ 2, 3 }, -2, 2, 121)
  G.assert_close(tc.stack({ f64(a), f64(b) }, 1):totable(), { a, b })
  local out = tc.stack({ f64(a), f64(b) }, 2)
  assert.are.same({ 2, 2, 3 }, out.shape)
  G.assert_close(out:totable(), { { a[1], b[1] }, { a[2], b[2] } })
end)
grad_case("stack", "dim 2", function(a, b) return tc.stack({ a, b }, 2) end,
  function() return { leaf(vals({ 2, 3 }, -2, 2, 122)), tleaf(vals({ 2, 3 }, -2, 2, 123)) } end)

local int64 = { dtype = "int64" }
forward_case("gather", "dim 2 and dim 1, 0-based", function()
  local x = vals({ 3, 4 }, -2, 2, 124)
  local index = { { 0, 3 }, { 2, 2 }, { 1, 0 } }
  local out = f64(x):gather(2, tc.tensor(index, int64)):totable()
  for i = 1, 3 do
    for j = 1, 2 do assert.are.equal(x[i][index[i][j] + 1], out[i][j]) end
  end
  local rows = { { 2, 0, 1, 1 } }
  local down = f64(x):gather(1, tc.tensor(rows, int64)):totable()
  for j = 1, 4 do assert.are.equal(x[rows[1][j] + 1][j], down[1][j]) end
end)
grad_case("gather", "dim 2 with repeated indices", function(x)
  return x:gather(2, tc.tensor({ { 0, 3 }, { 2, 2 }, { 1, 0 } }, int64))
end, function() return { leaf(vals({ 3, 4 }, -2, 2, 125)) } end)
grad_case("gather", "dim 1 of a transposed leaf", function(x)
  return x:gather(1, tc.tensor({ { 2, 0, 1, 1 } }, int64))
end, function() return { tleaf(vals({ 3, 4 }, -2, 2, 126)) } end)

forward_case("index_select", "dims 1 and 2", function()
  local x = vals({ 4, 3 }, -2, 2, 127)
  G.assert_close(f64(x):index_select(1, tc.tensor({ 2, 0, 2 }, int64)):totable(), { x[3], x[1], x[3] })
  G.assert_close(f64(x):index_select(2, tc.tensor({ 1 }, int64)):totable(), { { x[1][2] }, { x[2][2] }, { x[3][2] },
    { x[4][2] } })
end)
grad_case("index_select", "dim 1 with a repeat", function(x)
  return x:index_select(1, tc.tensor({ 2, 0, 2 }, int64))
end, function() return { leaf(vals({ 4, 3 }, -2, 2, 128)) } end)
grad_case("index_select", "dim 2 of a transposed leaf", function(x)
  return x:index_select(2, tc.tensor({ 1, 1, 0 }, int64))
end, function() return { tleaf(vals({ 4, 3 }, -2, 2, 129)) } end)

forward_case("embedding", "ids of shape {2, 2}", function()
  local w = vals({ 5, 3 }, -2, 2, 130)
  local ids = { { 1, 4 }, { 4, 0 } }
  local out = tc.embedding(f64(w), tc.tensor(ids, int64))
  assert.are.same({ 2, 2, 3 }, out.shape)
  G.assert_close(out:totable(), { { w[2], w[5] }, { w[5], w[1] } })
  G.assert_close(tc.embedding(f64(w), tc.tensor({ 3 }, { dtype = "int32" })):totable(), { w[4] })
end)
grad_case("embedding", "repeated ids", function(w) return tc.embedding(w, tc.tensor({ { 1, 4 }, { 4, 0 } }, int64)) end,
  function() return { leaf(vals({ 5, 3 }, -2, 2, 131)) } end)

forward_case("dropout", "zeroes about p and rescales the rest", function()
  tc.manual_seed(3)
  local x = tc.ones({ 20000 }, F64)
  local out = x:dropout(0.25)
  local zeros, kept = 0, 0
  for _, v in ipairs(out:totable()) do
    if v == 0 then zeros = zeros + 1
    else
      kept = kept + 1
      assert.is_true(math.abs(v - 1 / 0.75) < 1e-12)
    end
  end
  assert.is_true(math.abs(zeros / 20000 - 0.25) < 0.02, "fraction zeroed " .. zeros / 20000)
  assert.are.same(x:totable(), x:dropout(0.25, false):totable())
  assert.are.same(x:totable(), x:dropout(0):totable())
end)
grad_case("dropout", "p = 0.5 with a fixed seed", function(x)
  tc.manual_seed(5)
  return x:dropout(0.5)
end, function() return { leaf(vals({ 4, 5 }, -2, 2, 132)) } end)

-- fused ops
local function layer_norm_rows(x, w, b, eps, rms)
  local out = {}
  for i, row in ipairs(x) do
    local m = rms and 0 or mean_list(row)
    local s = 0
    for _, v in ipairs(row) do s = s + (v - m) ^ 2 end
    local inv = 1 / math.sqrt(s / #row + eps)
    out[i] = {}
    for j, v in ipairs(row) do
      out[i][j] = (v - m) * inv * (w and w[j] or 1) + (b and b[j] or 0)
    end
  end
  return out
end
forward_case("layer_norm", "with and without weight and bias", function()
  local x, w, b = vals({ 3, 4 }, -2, 2, 133), vals({ 4 }, 0.5, 1.5, 134), vals({ 4 }, -1, 1, 135)
  G.assert_close(tc.layer_norm(f64(x), f64(w), f64(b)):totable(), layer_norm_rows(x, w, b, 1e-5), { rtol = 1e-10 })
  G.assert_close(tc.layer_norm(f64(x)):totable(), layer_norm_rows(x, nil, nil, 1e-5), { rtol = 1e-10 })
end)
grad_case("layer_norm", "x, weight and bias", function(x, w, b) return tc.layer_norm(x, w, b) end, function()
  return { leaf(vals({ 3, 4 }, -2, 2, 136)), leaf(vals({ 4 }, 0.5, 1.5, 137)), leaf(vals({ 4 }, -1, 1, 138)) }
end)
forward_case("rms_norm", "with and without weight", function()
  local x, w = vals({ 3, 4 }, -2, 2, 139), vals({ 4 }, 0.5, 1.5, 140)
  G.assert_close(tc.rms_norm(f64(x), f64(w)):totable(), layer_norm_rows(x, w, nil, 1e-5, true), { rtol = 1e-10 })
  G.assert_close(tc.rms_norm(f64(x)):totable(), layer_norm_rows(x, nil, nil, 1e-5, true), { rtol = 1e-10 })
end)
grad_case("rms_norm", "x and weight", function(x, w) return tc.rms_norm(x, w) end,
  function() return { leaf(vals({ 3, 4 }, -2, 2, 141)), leaf(vals({ 4 }, 0.5, 1.5, 142)) } end)

local function cross_entropy_reference(logits, targets, ignore)
  local logp = softmax_rows(logits, true)
  local total, count = 0, 0
  for i, t in ipairs(targets) do
    if t ~= ignore then
      total = total - logp[i][t + 1]
      count = count + 1
    end
  end
  return count > 0 and total / count or 0
end
forward_case("cross_entropy", "mean over targets, ignore_index", function()
  local logits = vals({ 4, 5 }, -3, 3, 143)
  local targets = { 1, 4, 0, 2 }
  G.assert_close(tc.cross_entropy(f64(logits), tc.tensor(targets, int64)):item(),
    cross_entropy_reference(logits, targets), { rtol = 1e-10 })
  G.assert_close(tc.cross_entropy(f64(logits), tc.tensor(targets, int64), { ignore_index = 4 }):item(),
    cross_entropy_reference(logits, targets, 4), { rtol = 1e-10 })
end)
grad_case("cross_entropy", "with an ignored target", function(logits)
  return tc.cross_entropy(logits, tc.tensor({ 1, 4, 0, 2 }, int64), { ignore_index = 0 })
end, function() return { leaf(vals({ 4, 5 }, -3, 3, 144)) } end)

-- attention over packed qkv {B, T, 3C}: reference in Lua
local function attention_reference(qkv, n_head, causal)
  local out = {}
  for b, rows in ipairs(qkv) do
    local T, C = #rows, #rows[1] // 3
    local hd = C // n_head
    out[b] = {}
    for t = 1, T do
      out[b][t] = {}
      for h = 0, n_head - 1 do
        local scores = {}
        local last = causal and t or T
        for s = 1, last do
          local dot = 0
          for d = 1, hd do dot = dot + rows[t][h * hd + d] * rows[s][C + h * hd + d] end
          scores[s] = dot / math.sqrt(hd)
        end
        local p = softmax_rows({ scores })[1]
        for d = 1, hd do
          local acc = 0
          for s = 1, last do acc = acc + p[s] * rows[s][2 * C + h * hd + d] end
          out[b][t][h * hd + d] = acc
        end
      end
    end
  end
  return out
end
forward_case("attention", "causal and not", function()
  local qkv = vals({ 2, 3, 12 }, -1.5, 1.5, 145)
  G.assert_close(tc.attention(f64(qkv), 2):totable(), attention_reference(qkv, 2, true), { rtol = 1e-9, atol = 1e-12 })
  G.assert_close(tc.attention(f64(qkv), 2, { causal = false }):totable(), attention_reference(qkv, 2, false),
    { rtol = 1e-9, atol = 1e-12 })
end)
grad_case("attention", "causal, two heads", function(qkv) return tc.attention(qkv, 2) end,
  function() return { leaf(vals({ 1, 3, 12 }, -1.5, 1.5, 146)) } end)

-- linear and linear_gelu: x @ w^T + b in one op
local function linear_reference(x, w, b, gelu)
  local out = matmul_reference(x, transpose_reference(w))
  for i, row in ipairs(out) do
    for j, v in ipairs(row) do
      v = v + (b and b[j] or 0)
      if gelu then v = 0.5 * v * (1 + tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ^ 3))) end
      row[j] = v
    end
    out[i] = row
  end
  return out
end
for _, op in ipairs({ "linear", "linear_gelu" }) do
  forward_case(op, "with and without a bias", function()
    local x, w, b = vals({ 3, 4 }, -1, 1, 151), vals({ 5, 4 }, -1, 1, 152), vals({ 5 }, -1, 1, 153)
    G.assert_close(tc[op](f64(x), f64(w), f64(b)):totable(), linear_reference(x, w, b, op == "linear_gelu"),
      { rtol = 1e-12, atol = 1e-12 })
    G.assert_close(tc[op](f64(x), f64(w)):totable(), linear_reference(x, w, nil, op == "linear_gelu"),
      { rtol = 1e-12, atol = 1e-12 })
  end)
  grad_case(op, "x, weight and bias", function(x, w, b) return tc[op](x, w, b) end,
    function()
      return { leaf(vals({ 2, 3, 4 }, -1, 1, 154)), leaf(vals({ 5, 4 }, -1, 1, 155)), leaf(vals({ 5 }, -1, 1, 156)) }
    end)
end

-- einsum_diagonal: einsum's view of a repeated index
forward_case("einsum_diagonal", "ii->i and iij->ij", function()
  local sq = vals({ 3, 3 }, -1, 1, 161)
  G.assert_close(tc.einsum("ii->i", f64(sq)):totable(), { sq[1][1], sq[2][2], sq[3][3] })
  local cube = vals({ 2, 2, 3 }, -1, 1, 162)
  G.assert_close(tc.einsum("iij->ij", f64(cube)):totable(), { cube[1][1], cube[2][2] })
end)
grad_case("einsum_diagonal", "a diagonal inside the graph", function(x) return tc.einsum("ii->i", x) end,
  function() return { leaf(vals({ 3, 3 }, -1, 1, 163)) } end)

-- to_device: a copy on another device (on a machine without one, to("cpu") is the tensor itself)
local cuda = require("helpers.cuda_probe").cuda_available() and "cuda" or nil
forward_case("to_device", "there and back", function()
  local x = vals({ 2, 3 }, -1, 1, 171)
  G.assert_close(f64(x):to(cuda or "cpu"):to("cpu"):totable(), x)
end)
grad_case("to_device", "there and back inside the graph", function(x) return (x:to(cuda or "cpu") * 2):to("cpu") end,
  function() return { leaf(vals({ 2, 3 }, -1, 1, 172)) } end)

-- custom: a function whose backward is written in Lua (tc.Function)
local cube = tc.Function({
  name = "cube",
  forward = function(ctx, x)
    ctx.x = x
    return x * x * x
  end,
  backward = function(ctx, grad) return grad * ctx.x * ctx.x * 3 end,
})
forward_case("custom", "tc.Function", function()
  local x = vals({ 4 }, -2, 2, 181)
  G.assert_close(cube(f64(x)):totable(), G.map(function(v) return v ^ 3 end, x), { rtol = 1e-12 })
end)
grad_case("custom", "tc.Function's Lua backward", function(x) return cube(x) end,
  function() return { leaf(vals({ 2, 3 }, -2, 2, 182)) } end)

-- attention_cached: decoding position by position gives causal attention's rows
forward_case("attention_cached", "one position at a time equals causal attention", function()
  local qkv = f64(vals({ 2, 4, 12 }, -1.5, 1.5, 191))
  local full = tc.attention(qkv, 2)
  local k, v = tc.zeros({ 2, 2, 5, 2 }, F64), tc.zeros({ 2, 2, 5, 2 }, F64)
  for t = 1, 4 do
    local out = tc.attention_cached(qkv:narrow(2, t, 1), k, v, t - 1, 2)
    G.assert_close(out:totable(), full:narrow(2, t, 1):totable(), { rtol = 1e-9, atol = 1e-12 })
  end
end)

-- optimiser steps and helpers (not differentiable)
forward_case("sgd_step", "plain and with weight decay", function()
  local p, g = f64({ 1, -2 }), f64({ 0.5, 0.25 })
  tc.sgd_step(p, g, nil, { lr = 0.1 })
  G.assert_close(p:totable(), { 1 - 0.05, -2 - 0.025 }, { rtol = 1e-12 })
  local q = f64({ 1, -2 })
  tc.sgd_step(q, g, nil, { lr = 0.1, weight_decay = 0.5 })
  G.assert_close(q:totable(), { 1 - 0.1 * (0.5 + 0.5), -2 - 0.1 * (0.25 - 1) }, { rtol = 1e-12 })
end)
forward_case("adamw_step", "first step", function()
  local p, g = f64({ 1, -2 }), f64({ 0.5, -0.25 })
  local m, v = tc.zeros({ 2 }, F64), tc.zeros({ 2 }, F64)
  tc.adamw_step(p, g, m, v, { step = 1, lr = 0.1, weight_decay = 0.1, eps = 1e-8 })
  local expected = {}
  for i, x in ipairs({ 1, -2 }) do
    local grad = ({ 0.5, -0.25 })[i]
    local decayed = x - 0.1 * 0.1 * x
    expected[i] = decayed - 0.1 * grad / (math.abs(grad) + 1e-8)
  end
  G.assert_close(p:totable(), expected, { rtol = 1e-9 })
  G.assert_close(m:totable(), { 0.05, -0.025 }, { rtol = 1e-9 })
end)
forward_case("global_norm", "over a list", function()
  G.assert_close(tc.global_norm({ f64({ 3, 0 }), f64({ { 4 } }) }), 5, { rtol = 1e-12 })
end)
forward_case("scale_", "in place", function()
  local t = f64({ 1, -2 })
  tc.scale_(t, 3)
  assert.are.same({ 3, -6 }, t:totable())
end)

-- ---- the specs ----

describe("ops: forward values against plain-Lua references", function()
  for _, case in ipairs(forward_cases) do
    it(case.op .. ": " .. case.name, case.run)
  end
end)

describe("ops: gradients against central finite differences (float64)", function()
  for _, case in ipairs(grad_cases) do
    it(case.op .. ": " .. case.name, function()
      local options = {}
      for k, v in pairs(case.options) do options[k] = v end
      options.label = case.op .. " (" .. case.name .. ")"
      assert.is_true(G.gradcheck(tc, case.fn, case.inputs(), options))
    end)
  end
end)

describe("ops: the op table", function()
  local ops = tc.ops()

  it("lists ops with a name, an arity, a differentiable flag and a summary", function()
    assert.is_true(#ops > 40)
    local seen = {}
    for _, op in ipairs(ops) do
      assert.are.equal("string", type(op.name))
      assert.is_nil(seen[op.name], "listed twice: " .. op.name)
      seen[op.name] = true
      assert.are.equal("number", type(op.arity))
      assert.are.equal("boolean", type(op.differentiable))
      assert.is_true(type(op.summary) == "string" and #op.summary > 0)
    end
  end)

  it("has a gradient check for every differentiable op", function()
    local covered = {}
    for _, case in ipairs(grad_cases) do covered[case.op] = true end
    local missing = {}
    for _, op in ipairs(ops) do
      if op.differentiable and not covered[op.name] then missing[#missing + 1] = op.name end
    end
    assert.are.same({}, missing)
  end)

  it("has a forward check for every op", function()
    local covered = {}
    for _, case in ipairs(forward_cases) do covered[case.op] = true end
    local missing = {}
    for _, op in ipairs(ops) do
      if not covered[op.name] then missing[#missing + 1] = op.name end
    end
    assert.are.same({}, missing)
  end)

  it("knows every op the specs test (no case for an op that is not listed)", function()
    local listed = {}
    for _, op in ipairs(ops) do listed[op.name] = op end
    for _, case in ipairs(grad_cases) do
      assert.is_not_nil(listed[case.op], "not in tc.ops(): " .. case.op)
      assert.is_true(listed[case.op].differentiable, case.op .. " has a gradient case but is not differentiable")
    end
  end)
end)
