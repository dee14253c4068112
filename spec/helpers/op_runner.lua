--- Runs the op list (spec/op_cases.lua) on one backend. For each case and
-- each of its dtypes it builds the inputs on the backend (values from a
-- fixed Lua generator, laid out as the case asks: permuted, strided,
-- viewed inside the graph, empty), runs the op and checks
--   * the outputs against the case's plain-Lua reference (exact for
--     integer and bool results, else the case's tolerance per dtype);
--   * the gradients of its inputs against central finite differences in
--     float64, on the backend itself;
--   * in float32, the gradients against the float64 ones;
--   * on a backend other than the CPU, the outputs and gradients against the
--     CPU's for the same inputs and upstream gradient, element by element:
--     |device - cpu| <= tolerance * (1 + |cpu|), NaN where the CPU has NaN;
--   * the op's properties from tc.ops(): a bool_result op gives bool, a view
--     sees writes to its source, a float_only op given integers gives a
--     floating result or an error naming the op.
-- runner.coverage() checks the list against tc.ops(). runner.half_tests()
-- runs the floating cases again with bfloat16 and float16 inputs against
-- float32 on the same (rounded) values (see HALF_TOLERANCE).
local compat = require("tricycle.compat")
local tc = require("tricycle")
local assert = require("luassert")
local G = require("helpers.gradcheck")
local R = require("helpers.op_reference")

local runner = {}

local FLOATING = { float32 = true, float64 = true }
local HALF = { bfloat16 = true, float16 = true }
-- Inputs are generated as numbers; these dtypes keep fractions.
local FRACTIONAL = { float32 = true, float64 = true, bfloat16 = true, float16 = true }
local DEFAULT_TOLERANCE = { float64 = 1e-12, float32 = { rtol = 1e-5, atol = 1e-6 } }
-- Half of the 1e-9 and 1e-4 the device comparisons allowed relative to a
-- result's largest magnitude: element by element relative to 1 + |cpu|,
-- that is never looser.
local DEFAULT_DEVICE_TOLERANCE = { float64 = 5e-10, float32 = 5e-5 }
local DEFAULT_GRAD32 = 1e-4

local CASE_KEYS = {
  name = true, inputs = true, run = true, reference = true, dtypes = true, tolerance = true,
  device_tolerance = true, fd = true, fd_options = true, grad32 = true, check = true, backends = true, shape = true,
  fenced = true, half = true, half_grad = true, unspecified_values = true,
}
local INPUT_KEYS = {
  kind = true, shape = true, range = true, seed = true, dtype = true, layout = true, view = true, grad = true,
  values = true, patch = true,
}

local function is_tensor(value) return getmetatable(value) == tc.Tensor end

local function keys_of(set)
  local list = {}
  for k in pairs(set) do list[#list + 1] = k end
  table.sort(list)
  return table.concat(list, ", ")
end

--- The problems of one case's fields (unknown keys, missing parts), as strings.
function runner.case_problems(op, case)
  local problems = {}
  local label = op .. ": " .. tostring(case.name)
  for k in pairs(case) do
    if not CASE_KEYS[k] then
      problems[#problems + 1] = ("%s: unknown case field '%s' (valid: %s)"):format(label, tostring(k),
        keys_of(CASE_KEYS))
    end
  end
  if type(case.name) ~= "string" then problems[#problems + 1] = op .. ": a case without a name" end
  if not case.check and type(case.run) ~= "function" then
    problems[#problems + 1] = label .. ": needs run (or check)"
  end
  for i, spec in ipairs(case.inputs or {}) do
    for k in pairs(spec) do
      if not INPUT_KEYS[k] then
        problems[#problems + 1] = ("%s: input %d has an unknown field '%s' (valid: %s)"):format(label, i, tostring(k),
          keys_of(INPUT_KEYS))
      end
    end
  end
  return problems
end

-- ---- inputs ----

-- The dtype an input takes in a case run in `dtype`.
local function input_dtype(spec, dtype)
  if spec.dtype then return spec.dtype end
  if spec.kind == "bool" then return "bool" end
  return dtype
end

-- Flat values of an input before its layout, in its dtype (numbers or booleans).
local function flat_values(spec, dtype)
  local flat
  if spec.values ~= nil then
    flat = G.flatten(spec.values)
  elseif spec.kind == "zeros" then
    flat = {}
    for k = 1, G.numel(spec.shape) do flat[k] = 0 end
  else
    local lo, hi = spec.range[1], spec.range[2]
    if dtype == "uint8" and lo < 0 then lo, hi = 0, math.max(hi, 1) - lo end -- as wide, without negatives
    flat = G.flatten(G.values(spec.shape, lo, hi, spec.seed))
    if spec.shape and G.numel(spec.shape) == 0 then flat = {} end
  end
  if type(spec.patch) == "function" then
    spec.patch(flat, dtype)
  else
    for k, v in pairs(spec.patch or {}) do flat[k] = v end
  end
  for k, v in ipairs(flat) do
    if dtype == "bool" then
      -- random values: half of them true; given ones: true when not 0
      if type(v) ~= "boolean" then flat[k] = spec.range and v > (spec.range[1] + spec.range[2]) / 2 or v ~= 0 end
    elseif not FRACTIONAL[dtype] then
      if type(v) == "boolean" then v = v and 1 or 0 end
      flat[k] = compat.tointeger(math.floor(v)) or v
    end
  end
  return flat
end

local function shape_of(spec)
  if spec.shape then return spec.shape end
  local _, shape = G.flatten(spec.values)
  return shape
end

-- The order that permutes the stored tensor into the input's layout.
local function layout_order(spec, ndim)
  if spec.layout == "transposed" then
    local order = {}
    for d = 1, ndim do order[d] = d end
    order[ndim - 1], order[ndim] = ndim, ndim - 1
    return order
  end
  return spec.layout
end

-- t on `device`. A tensor without elements goes as a 1-D one and is
-- reshaped there: the engine counts {3, 0} as non-contiguous, and copies
-- between the CPU and the device refuse it.
local function moved(t, device)
  if t.device == device then return t end
  if t:numel() == 0 then return tc.zeros({ 0 }, { dtype = t.dtype }):to(device):reshape(t.shape) end
  return t:to(device)
end

local function make_tensor(flat, shape, dtype)
  if #shape == 0 then return tc.tensor(flat[1], { dtype = dtype }) end
  return tc.tensor(flat, { dtype = dtype }):reshape(shape)
end

-- One input on `device`: the leaf (which may require grad) and the tensor
-- the op receives (the leaf through the spec's view).
local function build_input(spec, dtype, device, with_grad)
  local kind_dtype = input_dtype(spec, dtype)
  local shape = shape_of(spec)
  local flat = flat_values(spec, kind_dtype)
  local leaf
  if spec.layout == "strided" then
    -- every other element of a tensor twice as long in the last dim, the
    -- others a value the op must never read into its result
    local filler = kind_dtype == "bool" and true or FRACTIONAL[kind_dtype] and 0 / 0 or 77
    local wide, stored_shape = {}, { compat.unpack(shape) }
    stored_shape[#shape] = shape[#shape] * 2
    for k, v in ipairs(flat) do
      wide[2 * k - 1], wide[2 * k] = v, filler
    end
    local stored = moved(make_tensor(wide, stored_shape, kind_dtype), device)
    local pairs_shape = { compat.unpack(shape) }
    pairs_shape[#shape + 1] = 2
    leaf = stored:reshape(pairs_shape):select(#shape + 1, 1)
  elseif spec.layout then
    local order = layout_order(spec, #shape)
    local inverse, stored_shape = {}, {}
    for d, from in ipairs(order) do inverse[from] = d end
    for d = 1, #shape do stored_shape[d] = shape[inverse[d]] end
    local stored_values = #flat == 0 and flat or G.flatten(R.permute(G.nest(flat, shape), inverse))
    local stored = moved(make_tensor(stored_values, stored_shape, kind_dtype), device)
    leaf = stored:permute(order)
  else
    leaf = moved(make_tensor(flat, shape, kind_dtype), device)
  end
  local grad = with_grad and spec.kind == "float" and spec.grad ~= false and FRACTIONAL[kind_dtype]
  if grad then leaf.requires_grad = true end
  local argument = spec.view and spec.view(leaf) or leaf
  return leaf, argument, grad
end

-- The case's inputs on `device`: leaves, arguments and which leaves require grad.
local function build(case, dtype, device, with_grad)
  local leaves, arguments, grads = {}, {}, {}
  for i, spec in ipairs(case.inputs or {}) do
    leaves[i], arguments[i], grads[i] = build_input(spec, dtype, device, with_grad)
  end
  return leaves, arguments, grads
end

-- ---- running and comparing ----

local function host(value)
  if not is_tensor(value) or value.device == "cpu" then return value end
  if value:numel() == 0 then return tc.zeros(value.shape, { dtype = value.dtype }) end -- see moved()
  return value:to("cpu")
end

local function plain(value)
  if is_tensor(value) then return host(value):totable() end
  return value
end

-- What run, reference and check receive besides the inputs.
local function environment(device, dtype, other)
  return {
    device = device, dtype = dtype, other = other,
    tensor = function(values, options) return moved(tc.tensor(values, options), device) end,
  }
end

local function run_case(case, arguments, env)
  local n = #(case.inputs or {})
  local call = { compat.unpack(arguments, 1, n) }
  call[n + 1] = env
  return compat.pack(case.run(compat.unpack(call, 1, n + 1)))
end

local function tolerance_for(table_or_nil, dtype, default)
  local t = table_or_nil
  if type(t) == "number" then return t end
  if type(t) == "table" and t[dtype] ~= nil then return t[dtype] end
  return default[dtype]
end

local function as_options(t)
  if type(t) == "table" then return { rtol = t.rtol, atol = t.atol } end
  return { rtol = t, atol = t }
end

local function result_dtype(value, case_dtype)
  if is_tensor(value) then return value.dtype end
  if type(value) == "boolean" then return "bool" end
  return FLOATING[case_dtype] and case_dtype or "float64"
end

-- The values the reference reads: the arguments as the op receives them
-- (before an in-place op writes them), and env.
local function reference_values(case, arguments, env)
  local n = #(case.inputs or {})
  local values = { n = n + 1 }
  for i = 1, n do values[i] = plain(arguments[i]) end
  values[n + 1] = env
  return values
end

local function check_reference(case, run, values, label)
  local env = values[values.n]
  local expected = compat.pack(case.reference(compat.unpack(values, 1, values.n)))
  assert(expected.n == run.n, ("%s: the reference gives %d results, the op %d"):format(label, expected.n, run.n))
  for i = 1, run.n do
    local dtype = result_dtype(run.hosted[i], env.dtype)
    local options = { rtol = 0, atol = 0 }
    if FLOATING[dtype] then options = as_options(tolerance_for(case.tolerance, dtype, DEFAULT_TOLERANCE)) end
    options.label = ("%s, result %d (%s)"):format(label, i, dtype)
    G.assert_close(run.plain[i], expected[i], options)
  end
end

-- Element by element: |actual - expected| <= tolerance * (1 + |expected|);
-- NaN only where expected has NaN, infinities equal.
local function compare_values(expected, actual, tolerance, what)
  if type(expected) ~= "table" then expected, actual = { expected }, { actual } end
  local e_flat, e_shape = G.flatten(expected)
  local a_flat, a_shape = G.flatten(actual)
  assert(table.concat(e_shape, ",") == table.concat(a_shape, ","),
    ("%s: shape {%s} differs from the CPU's {%s}"):format(what, table.concat(a_shape, ", "),
      table.concat(e_shape, ", ")))
  for k, e in ipairs(e_flat) do
    local a = a_flat[k]
    local same
    if type(e) == "boolean" or type(a) == "boolean" or compat.is_integer(e) and compat.is_integer(a) then
      same = e == a
    elseif e ~= e then
      same = a ~= a
    elseif e == math.huge or e == -math.huge then
      same = a == e
    else
      same = math.abs(a - e) <= tolerance * (1 + math.abs(e))
    end
    if not same then
      error(("%s: element %d is %.17g on the device, %.17g on the CPU (tolerance %g)"):format(what, k,
        type(a) == "boolean" and (a and 1 or 0) or a, type(e) == "boolean" and (e and 1 or 0) or e, tolerance), 0)
    end
  end
end

local function compare_results(case, expected, actual, case_dtype, what, gradient, expected_values, actual_values)
  assert(is_tensor(expected) == is_tensor(actual), what .. ": one device gives a tensor, the other not")
  local dtype = result_dtype(expected, case_dtype)
  if is_tensor(expected) then
    assert.are.same(expected.shape, actual.shape, what .. ": shapes differ")
    assert.are.equal(expected.dtype, actual.dtype, what .. ": dtypes differ")
  end
  if case.unspecified_values then return end -- shapes and dtypes only (empty_like)
  local tolerances = case.device_tolerance
  if gradient and type(tolerances) == "table" and tolerances.gradients then tolerances = tolerances.gradients end
  local tolerance = FLOATING[dtype] and tolerance_for(tolerances, dtype, DEFAULT_DEVICE_TOLERANCE) or 0
  compare_values(expected_values or plain(expected), actual_values or plain(actual), tolerance, what)
end

-- Gradients of the leaves that require grad under the upstream gradient W
-- for the first output (the gradcheck helper's fixed weights, so the
-- gradient of sum(output * W)); nil when there is nothing to take.
local function gradients(outputs, leaves, grads)
  local out = outputs[1]
  if not is_tensor(out) or not FRACTIONAL[out.dtype] or not out.requires_grad then return nil end
  local any = false
  for i in ipairs(leaves) do any = any or grads[i] end
  if not any then return nil end
  local weights = moved(make_tensor(G.weights(out:numel(), 99), out.shape, out.dtype), out.device)
  out:backward(weights)
  local result = {}
  for i, leaf in ipairs(leaves) do
    if grads[i] then result[i] = leaf.grad and host(leaf.grad) or false end
  end
  return result
end

local function run_gradcheck(case, device, other, label)
  local leaves, _, grads = build(case, "float64", device, true)
  local any = false
  for i in ipairs(leaves) do any = any or grads[i] end
  if not any then return end
  local env = environment(device, "float64", other)
  local function fn(...)
    local arguments = {}
    for i, leaf in ipairs({ ... }) do
      local spec = case.inputs[i]
      arguments[i] = spec.view and spec.view(leaf) or leaf
    end
    return run_case(case, arguments, env)[1]
  end
  local options = { label = label .. ", finite differences" }
  for k, v in pairs(case.fd_options or {}) do options[k] = v end
  G.gradcheck(tc, fn, leaves, options)
end

-- Whether the case takes finite differences at all.
local function has_fd(case)
  if not case.run or case.fd == false then return false end
  for _, spec in ipairs(case.inputs or {}) do
    if spec.kind == "float" and spec.grad ~= false then return true end
  end
  return false
end

-- On the CPU every case with a gradient takes finite differences; on
-- another device, where they are slow, the smallest of its row does, the
-- others' gradients being compared with the CPU's.
local function fd_runs_on(case, device, smallest_of_row)
  if not has_fd(case) then return false end
  if device == "cpu" then return true end
  return case.fd ~= "cpu" and smallest_of_row
end

-- The elements finite differences would perturb.
local function fd_size(case)
  local n = 0
  for _, spec in ipairs(case.inputs) do
    if spec.kind == "float" and spec.grad ~= false then
      n = n + G.numel(shape_of(spec))
    end
  end
  return n
end

-- Whether a case runs in `dtype` on `device`: on a device other than the
-- CPU, the small cases written for finite differences run in float64 only
-- (and in their integer dtypes); the cases sized for the device's kernels
-- (fd = false) in every dtype they list.
local function runs_in(case, dtype, device)
  return device == "cpu" or dtype ~= "float32" or not has_fd(case)
end

local function runs_on(case, device)
  if not case.backends then return true end
  for _, b in ipairs(case.backends) do if b == device then return true end end
  return false
end

-- One run of the case on `device`: its results as CPU tensors (or numbers)
-- and their values, the gradients of its inputs (CPU tensors, false for an
-- input that got none) and, when asked, the values the reference reads.
local function run_on(case, dtype, device, other, with_grad, want_values)
  local leaves, arguments, grads = build(case, dtype, device, with_grad)
  local env = environment(device, dtype, other)
  local values = want_values and reference_values(case, arguments, env)
  local outputs = run_case(case, arguments, env)
  local result = { n = outputs.n, first = outputs[1], values = values, hosted = {}, plain = {} }
  for i = 1, outputs.n do
    result.hosted[i] = host(outputs[i])
    result.plain[i] = plain(result.hosted[i])
  end
  result.grads = with_grad and gradients(outputs, leaves, grads)
  return result
end

local function compare_run(case, expected, actual, dtype, label)
  assert(expected.n == actual.n, label .. ": a different number of results on the CPU")
  for i = 1, actual.n do
    local what = ("%s, result %d against the CPU"):format(label, i)
    compare_results(case, expected.hosted[i], actual.hosted[i], dtype, what, false, expected.plain[i],
      actual.plain[i])
  end
  for i, grad in pairs(expected.grads or {}) do
    local own = actual.grads and actual.grads[i]
    assert(own ~= nil and (own == false) == (grad == false),
      ("%s: input %d has a gradient on one device only"):format(label, i))
    if grad then
      compare_results(case, grad, own, dtype, ("%s, gradient of input %d against the CPU"):format(label, i), true)
    end
  end
end

--- Runs one case in one dtype on `device` (see the header); smallest_of_row:
-- whether it is its row's smallest case with finite differences.
function runner.check_case(op, case, dtype, device, other, smallest_of_row)
  local label = ("%s: %s (%s on %s)"):format(op.name, case.name, dtype, device)
  if case.check then
    case.check(environment(device, dtype, other))
    if not case.run then return end
  end
  local with_grad = op.differentiable
  local want_values = case.reference ~= nil
  -- on another device the CPU runs the same inputs first; the reference reads its copy of them
  local cpu = device ~= "cpu" and run_on(case, dtype, "cpu", device, with_grad, want_values)
  local own = run_on(case, dtype, device, other, with_grad, want_values and not cpu)
  if case.shape then assert.are.same(case.shape, own.first.shape, label .. ": shape") end
  if op.bool_result then assert.are.equal("bool", own.first.dtype, label .. ": a bool_result op") end
  if case.reference then
    local values = cpu and cpu.values or own.values
    values[values.n] = environment(device, dtype, other)
    check_reference(case, own, values, label)
  end
  if cpu then compare_run(case, cpu, own, dtype, label) end

  if with_grad and dtype == "float64" and fd_runs_on(case, device, smallest_of_row) then
    run_gradcheck(case, device, other, label)
  end

  -- on another device, float32 gradients are held to the CPU's, which are held to float64's here
  if with_grad and dtype == "float32" and own.grads and case.grad32 ~= false and device == "cpu" then
    local grads64 = run_on(case, "float64", device, other, true, false).grads
    for i, grad in pairs(own.grads) do
      assert((grad == false) == (grads64[i] == false),
        ("%s: input %d has a gradient in one dtype only"):format(label, i))
      if grad then
        compare_values(plain(grads64[i]), plain(grad), case.grad32 or DEFAULT_GRAD32,
          ("%s, float32 gradient of input %d against float64's"):format(label, i))
      end
    end
  end
end

-- ---- properties ----

local function first_plain_case(row)
  for _, case in ipairs(row.cases) do
    if case.run and case.inputs and #case.inputs > 0 then
      local plain_inputs = true
      for _, spec in ipairs(case.inputs) do
        if spec.layout or spec.view or (spec.shape and G.numel(spec.shape) == 0) then plain_inputs = false end
      end
      if plain_inputs then return case end
    end
  end
end

--- Checks what tc.ops() says of the op against the row's first plain case.
function runner.check_properties(op, row, device, other)
  if not (op.view or op.float_only) then return end
  local case = first_plain_case(row)
  assert(case, op.name .. ": no case with plain inputs to check the op's properties on")
  if op.view then
    tc.no_grad(function()
      local _, arguments = build(case, "float64", device, false)
      local out = run_case(case, arguments, environment(device, "float64", other))[1]
      arguments[1]:fill_(7)
      for k, v in ipairs(G.flatten(plain(out))) do
        assert(v == 7, ("%s is listed as a view, but element %d of its result did not see a write to its input"):format(
          op.name, k))
      end
    end)
  end
  if op.float_only then
    local integer_case = { inputs = {}, run = case.run }
    for i, spec in ipairs(case.inputs) do
      local copy = {}
      for k, v in pairs(spec) do copy[k] = v end
      if spec.kind == "float" or spec.kind == "zeros" then copy.dtype = "int64" end
      integer_case.inputs[i] = copy
    end
    local ok, result = pcall(function()
      local _, arguments = build(integer_case, "int64", device, false)
      return run_case(integer_case, arguments, environment(device, "int64", other))[1]
    end)
    if ok then
      assert(type(result) == "number" or is_tensor(result) and FLOATING[result.dtype],
        op.name .. " is listed as float_only, but gives " .. (is_tensor(result) and result.dtype or type(result))
          .. " for int64 inputs")
    else
      assert(tostring(result):find(op.name, 1, true),
        op.name .. " is listed as float_only; int64 inputs fail without naming it: " .. tostring(result))
    end
  end
end

-- ---- 16-bit inputs ----

-- A 16-bit run against float32 on the same values: the kernels compute in
-- float32 and round each result once, so a result differs by that rounding
-- (half an ulp: 2^-9 relative for bfloat16, 2^-12 for float16). Held element
-- by element to |half - float32| <= tolerance * (1 + |float32|) with one ulp
-- as the tolerance. Gradients get HALF_GRAD_TOLERANCE: the upstream gradient
-- is itself 16-bit, and a leaf used twice adds 16-bit partial gradients, so
-- a gradient that is a small difference of large terms (a norm's weight)
-- moves by several ulps of those terms. A case's `half` is a factor on the
-- result tolerance, or false: no 16-bit run (values that are not the op's
-- to set); its `half_grad` a factor on the gradient tolerance, for
-- gradients that sum hundreds of products of the 16-bit upstream gradient
-- (its rounding errors grow with the square root of their count).
local HALF_TOLERANCE = { bfloat16 = 2 ^ -8, float16 = 2 ^ -11 }
local HALF_GRAD_TOLERANCE = { bfloat16 = 2 ^ -5, float16 = 2 ^ -8 }

-- Whether a case runs again in 16 bits: it has floating inputs of the case's
-- dtype, and float32 among its dtypes.
local function runs_in_half(case, device)
  if not case.run or case.check or case.half == false or not runs_on(case, device) then return false end
  local float32 = false
  for _, dtype in ipairs(case.dtypes or { "float64", "float32" }) do float32 = float32 or dtype == "float32" end
  if not float32 then return false end
  for _, spec in ipairs(case.inputs or {}) do
    if spec.kind == "float" and not spec.dtype then return true end
  end
  return false
end

--- Runs one case with `dtype` (bfloat16 or float16) inputs on `device`
-- against float32 (see HALF_TOLERANCE). An op in `refusing` must fail with
-- an error naming the dtype; any other must run.
function runner.check_half_case(op, case, dtype, device, other, refusing)
  local label = ("%s: %s (%s on %s)"):format(op.name, case.name, dtype, device)
  local leaves, arguments, grads = build(case, dtype, device, op.differentiable)
  local _, fresh = build(case, "float32", device, false)
  local wide_leaves, wide_arguments = {}, {}
  for i, spec in ipairs(case.inputs or {}) do
    if HALF[leaves[i].dtype] then
      local wide = leaves[i]:detach():float()
      if grads[i] then wide.requires_grad = true end
      wide_leaves[i], wide_arguments[i] = wide, spec.view and spec.view(wide) or wide
    else
      wide_leaves[i], wide_arguments[i] = fresh[i], fresh[i]
    end
  end
  local ok, outputs = pcall(run_case, case, arguments, environment(device, dtype, other))
  if not ok then
    local message = tostring(outputs)
    assert(refusing[op.name], ("%s: fails on %s inputs, and is not listed as refusing them: %s"):format(label, dtype,
      message))
    assert(message:find(dtype, 1, true), ("%s: the refusal does not name %s: %s"):format(label, dtype, message))
    return
  end
  assert(not refusing[op.name], label .. ": listed as refusing 16-bit inputs, but runs")
  local expected = run_case(case, wide_arguments, environment(device, "float32", other))
  assert(expected.n == outputs.n, label .. ": a different number of results in float32")
  local tolerance = HALF_TOLERANCE[dtype] * (type(case.half) == "number" and case.half or 1)
  for i = 1, outputs.n do
    local want, got = host(expected[i]), host(outputs[i])
    local what = ("%s, result %d against float32"):format(label, i)
    if is_tensor(want) and want.dtype == "float32" and op.name ~= "to_dtype" then
      assert(is_tensor(got) and (got.dtype == dtype or got.dtype == "float32"),
        ("%s: gives %s"):format(what, is_tensor(got) and got.dtype or type(got)))
    end
    local floating = is_tensor(want) and FRACTIONAL[want.dtype] or type(want) == "number"
    compare_values(plain(want), plain(got), floating and tolerance or 0, what)
  end
  local half_grads = gradients(outputs, leaves, grads)
  local wide_grads = half_grads and gradients(expected, wide_leaves, grads)
  for i, grad in pairs(half_grads or {}) do
    local want = wide_grads and wide_grads[i]
    assert((grad == false) == (want == false or want == nil),
      ("%s: input %d has a gradient in one dtype only"):format(label, i))
    if grad then
      assert(grad.dtype == dtype, ("%s: the gradient of input %d is %s"):format(label, i, grad.dtype))
      compare_values(plain(want), plain(grad), HALF_GRAD_TOLERANCE[dtype] * (case.half_grad or 1),
        ("%s, gradient of input %d"):format(label, i))
    end
  end
end

--- The 16-bit tests of every row on `device` ({group =, name =, run =});
-- `refusing`: the set of op names that have no 16-bit path; options as
-- runner.tests's (other).
function runner.half_tests(device, rows, refusing, options)
  local ops, tests = {}, {}
  for _, op in ipairs(tc.ops()) do ops[op.name] = op end
  for _, row in ipairs(rows) do
    local op = ops[row.op]
    if op then
      for _, case in ipairs(row.cases) do
        if runs_in_half(case, device) then
          for _, dtype in ipairs({ "bfloat16", "float16" }) do
            tests[#tests + 1] = { group = row.op, name = ("%s (%s)"):format(case.name, dtype),
              run = function() runner.check_half_case(op, case, dtype, device, options.other, refusing) end }
          end
        end
      end
    end
  end
  return tests
end

-- ---- coverage ----

--- The problems of the list against tc.ops(), as strings: an op without a
-- row, a row for an op that is not listed, two rows for one op, a
-- differentiable op without a finite-difference case, an op listed as valid
-- on integers without an integer or bool case, a case with bad fields.
function runner.coverage(rows, ops)
  local problems, listed, seen = {}, {}, {}
  for _, op in ipairs(ops) do listed[op.name] = op end
  for _, row in ipairs(rows) do
    local op = listed[row.op]
    if not op then
      problems[#problems + 1] = ("a row for '%s', which is not in tc.ops()"):format(tostring(row.op))
    elseif seen[row.op] then
      problems[#problems + 1] = ("two rows for '%s'"):format(row.op)
    else
      seen[row.op] = row
      local gradient, integer = false, false
      for _, case in ipairs(row.cases or {}) do
        for _, p in ipairs(runner.case_problems(row.op, case)) do problems[#problems + 1] = p end
        for _, dtype in ipairs(case.dtypes or { "float64", "float32" }) do
          if not FLOATING[dtype] then integer = true end
        end
        if case.run and case.fd ~= false then
          for _, spec in ipairs(case.inputs or {}) do
            if spec.kind == "float" and spec.grad ~= false then gradient = true end
          end
        end
      end
      if #(row.cases or {}) == 0 then problems[#problems + 1] = row.op .. ": a row without cases" end
      if op.differentiable and not gradient then
        problems[#problems + 1] = row.op .. " is differentiable but its row has no gradient case"
      end
      if op.integers and not integer then
        problems[#problems + 1] = row.op .. " is valid on integers but its row has no integer or bool case"
      end
    end
  end
  for _, op in ipairs(ops) do
    if not seen[op.name] then problems[#problems + 1] = ("'%s' (in tc.ops()) has no row"):format(op.name) end
  end
  return problems
end

-- ---- the specs ----

--- The tests of every row on `device`, in order: a list of {group =, name =,
-- run =} for the spec file to hand to describe and it. options: other (the
-- other device, for rows that move tensors: to_device), fenced (the
-- emulated device runs with its memory fenced from host code: the cases
-- marked fenced = false are left out), fd = false (no finite differences:
-- they check a backward's maths, which another pass over the same device
-- has checked).
function runner.tests(device, rows, options)
  local other, fenced = options.other, options.fenced
  local ops, tests = {}, {}
  for _, op in ipairs(tc.ops()) do ops[op.name] = op end
  for _, row in ipairs(rows) do
    local op = ops[row.op]
    if op then
      local smallest
      for _, case in ipairs(row.cases) do
        if has_fd(case) and case.fd ~= "cpu" and runs_on(case, device) and fd_size(case) > 0
          and (not smallest or fd_size(case) < fd_size(smallest)) then
          smallest = case
        end
      end
      for _, case in ipairs(row.cases) do
        if runs_on(case, device) and not (fenced and case.fenced == false) then
          for _, dtype in ipairs(case.dtypes or { "float64", "float32" }) do
            if runs_in(case, dtype, device) then
              tests[#tests + 1] = { group = row.op, name = ("%s (%s)"):format(case.name, dtype),
                run = function()
                  runner.check_case(op, case, dtype, device, other, case == smallest and options.fd ~= false)
                end }
            end
          end
        end
      end
      tests[#tests + 1] = { group = row.op, name = "properties from tc.ops()",
        run = function() runner.check_properties(op, row, device, other) end }
    end
  end
  return tests
end

return runner
