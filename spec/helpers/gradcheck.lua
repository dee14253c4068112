--- Gradient and forward checks for the specs.
--
-- gradcheck(fn, inputs, options) compares the gradients autograd computes for
-- `inputs` (float64 tensors that require grad, of any layout) with central
-- finite differences. The scalar being differentiated is sum(fn(...) * W)
-- with fixed pseudo-random weights W, so every output element gets its own
-- upstream gradient. Elements are perturbed in place through a 0-dim view of
-- the input itself, so transposed or narrowed inputs keep their layout while
-- the numeric derivative is taken; inputs on the cuda device stay there.
--
-- The forward helpers work on plain Lua values (totable() results): they
-- flatten nested tables, broadcast like NumPy and compare element by element,
-- so a reference computed in Lua never goes through the engine.
local compat = require("tricycle.compat")
local gradcheck = {}

--- Flattens a nested table (or a number) into a list and its shape.
function gradcheck.flatten(value)
  if type(value) ~= "table" then
    return { value }, {}
  end
  local shape = {}
  local node = value
  while type(node) == "table" do
    shape[#shape + 1] = #node
    node = node[1]
  end
  local flat = {}
  local function walk(n, depth)
    if depth > #shape then
      flat[#flat + 1] = n
      return
    end
    for i = 1, #n do walk(n[i], depth + 1) end
  end
  walk(value, 1)
  return flat, shape
end

--- Builds a nested table of `shape` from a flat list.
function gradcheck.nest(flat, shape)
  if #shape == 0 then return flat[1] end
  local position = 0
  local function build(depth)
    local rows = {}
    for i = 1, shape[depth] do
      if depth == #shape then
        position = position + 1
        rows[i] = flat[position]
      else
        rows[i] = build(depth + 1)
      end
    end
    return rows
  end
  return build(1)
end

local function numel(shape)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  return n
end
gradcheck.numel = numel

--- Row-major multi-index (1-based) of the flat position k (1-based).
local function unflatten_index(k, shape)
  local index = {}
  local rest = k - 1
  for d = #shape, 1, -1 do
    index[d] = rest % shape[d] + 1
    rest = compat.idiv(rest, shape[d])
  end
  return index
end
gradcheck.unflatten_index = unflatten_index

--- NumPy broadcast of shapes; errors when they do not fit.
function gradcheck.broadcast_shape(...)
  local shapes = { ... }
  local ndim = 0
  for _, s in ipairs(shapes) do ndim = math.max(ndim, #s) end
  local out = {}
  for d = 1, ndim do
    local size = 1
    for _, s in ipairs(shapes) do
      local v = s[#s - ndim + d] or 1
      if v ~= 1 then
        if size ~= 1 and size ~= v then error("reference: shapes do not broadcast") end
        size = v
      end
    end
    out[d] = size
  end
  return out
end

-- Row-major strides of a shape.
local function strides_of(shape)
  local strides, step = {}, 1
  for d = #shape, 1, -1 do
    strides[d] = step
    step = step * shape[d]
  end
  return strides
end

--- Element-wise fn over operands broadcast like NumPy (nested tables or
-- numbers); a nested table, or a number when every operand is one.
function gradcheck.map(fn, ...)
  local operands = compat.pack(...)
  local flats, shapes = {}, {}
  for i = 1, operands.n do flats[i], shapes[i] = gradcheck.flatten(operands[i]) end
  local shape = gradcheck.broadcast_shape(compat.unpack(shapes, 1, operands.n))
  local ndim, n = #shape, gradcheck.numel(shape)
  -- each operand's step along each output dim (0 where it broadcasts)
  local steps = {}
  for i = 1, operands.n do
    local s, own = {}, strides_of(shapes[i])
    for d = 1, ndim do
      local k = d - (ndim - #shapes[i])
      s[d] = (k >= 1 and shapes[i][k] ~= 1) and own[k] or 0
    end
    steps[i] = s
  end
  local index, positions, out, args = {}, {}, {}, {}
  for d = 1, ndim do index[d] = 0 end
  for i = 1, operands.n do positions[i] = 0 end
  for k = 1, n do
    for i = 1, operands.n do args[i] = flats[i][positions[i] + 1] end
    out[k] = fn(compat.unpack(args, 1, operands.n))
    for d = ndim, 1, -1 do -- the next index, row-major
      index[d] = index[d] + 1
      for i = 1, operands.n do positions[i] = positions[i] + steps[i][d] end
      if index[d] < shape[d] then break end
      for i = 1, operands.n do positions[i] = positions[i] - steps[i][d] * shape[d] end
      index[d] = 0
    end
  end
  return gradcheck.nest(out, shape)
end

--- Reduces a nested table over the (1-based, negative from the end) dims
-- in `dims` (all when nil) with fn(list); keepdim keeps size-1 dims.
function gradcheck.reduce(value, dims, keepdim, fn)
  local flat, shape = gradcheck.flatten(value)
  local reduced = {}
  if dims == nil then
    for d = 1, #shape do reduced[d] = true end
  else
    for _, d in ipairs(type(dims) == "table" and dims or { dims }) do reduced[d < 0 and #shape + d + 1 or d] = true end
  end
  local out_shape, kept_shape = {}, {}
  for d = 1, #shape do
    kept_shape[d] = reduced[d] and 1 or shape[d]
    if not reduced[d] then out_shape[#out_shape + 1] = shape[d] end
  end
  local kept_strides = strides_of(kept_shape)
  local groups = {}
  for k = 1, gradcheck.numel(kept_shape) do groups[k] = {} end
  local index = {}
  for d = 1, #shape do index[d] = 0 end
  for k = 1, #flat do
    local key = 0
    for d = 1, #shape do
      if not reduced[d] then key = key + index[d] * kept_strides[d] end
    end
    local group = groups[key + 1]
    group[#group + 1] = flat[k]
    for d = #shape, 1, -1 do
      index[d] = index[d] + 1
      if index[d] < shape[d] then break end
      index[d] = 0
    end
  end
  local out = {}
  for k, group in ipairs(groups) do out[k] = fn(group) end
  return gradcheck.nest(out, keepdim and kept_shape or out_shape)
end

local function close_enough(a, b, atol, rtol)
  if type(a) == "boolean" or type(b) == "boolean" then return a == b end
  if a ~= a then return b ~= b end
  if a == math.huge or a == -math.huge then return a == b end
  return math.abs(a - b) <= atol + rtol * math.abs(b)
end

--- Asserts that actual (nested table or number) matches expected in shape and
-- values. Returns true or raises with the first mismatch.
function gradcheck.assert_close(actual, expected, options)
  options = options or {}
  local atol, rtol = options.atol or 1e-6, options.rtol or 1e-5
  local label = options.label and (options.label .. ": ") or ""
  local flat_a, shape_a = gradcheck.flatten(actual)
  local flat_e, shape_e = gradcheck.flatten(expected)
  if table.concat(shape_a, ",") ~= table.concat(shape_e, ",") then
    error(("%sshape {%s} differs from the expected {%s}"):format(label, table.concat(shape_a, ", "),
      table.concat(shape_e, ", ")), 2)
  end
  for k = 1, #flat_e do
    if not close_enough(flat_a[k], flat_e[k], atol, rtol) then
      error(("%selement %d is %s, expected %s (atol %g, rtol %g)"):format(label, k, tostring(flat_a[k]),
        tostring(flat_e[k]), atol, rtol), 2)
    end
  end
  return true
end

-- A small deterministic generator (an LCG), so the weights do not come from
-- the engine under test.
local function weights(n, seed)
  local state = seed or 12345
  local list = {}
  for i = 1, n do
    state = (state * 1103515245 + 12345) % 2147483648
    list[i] = 0.5 + state / 2147483648 -- in [0.5, 1.5)
  end
  return list
end
gradcheck.weights = weights

--- Deterministic numbers in [lo, hi), as a nested table of `shape`.
function gradcheck.values(shape, lo, hi, seed)
  local w = weights(numel(shape), seed or 7)
  local flat = {}
  for i, v in ipairs(w) do flat[i] = lo + (hi - lo) * (v - 0.5) end
  return gradcheck.nest(flat, shape)
end

local function element_view(t, index)
  local view = t
  for _, i in ipairs(index) do view = view:select(1, i) end
  return view
end

local function weighted_sum(output, w)
  local flat = gradcheck.flatten(output:totable())
  local total = 0
  for i, v in ipairs(flat) do total = total + v * w[i] end
  return total
end

--- Checks autograd gradients of fn against central differences.
-- inputs: list of tensors (requires_grad true for those to check).
-- options: eps (1e-6), atol (1e-6), rtol (1e-4), label.
-- Returns true; raises an error describing the first mismatch.
function gradcheck.gradcheck(tc, fn, inputs, options)
  options = options or {}
  local eps = options.eps or 1e-6
  local atol, rtol = options.atol or 1e-6, options.rtol or 1e-4
  local label = options.label or "gradcheck"

  for _, x in ipairs(inputs) do
    if x.requires_grad then x.grad = nil end
  end
  local output = fn(compat.unpack(inputs))
  assert(output.grad_fn ~= nil, label .. ": the output is not on the tape")
  local n = output:numel()
  local w = weights(n, 99)
  local w_tensor = n == 0 and tc.zeros(output.shape, { dtype = output.dtype })
    or tc.tensor(w, { dtype = output.dtype }):reshape(output.shape)
  if output.device ~= "cpu" then w_tensor = w_tensor:to(output.device) end
  local loss = (output * w_tensor):sum()
  loss:backward()

  for position, x in ipairs(inputs) do
    if x.requires_grad then
      local analytic = x.grad
      if analytic == nil then
        error(("%s: input %d got no gradient"):format(label, position), 2)
      end
      local flat_analytic = gradcheck.flatten(analytic:totable())
      local shape = x.shape
      local base = x:detach()
      local numeric = {}
      tc.no_grad(function()
        for k = 1, numel(shape) do
          local cell = element_view(base, unflatten_index(k, shape))
          local original = cell:item()
          cell:fill_(original + eps)
          local plus = weighted_sum(fn(compat.unpack(inputs)), w)
          cell:fill_(original - eps)
          local minus = weighted_sum(fn(compat.unpack(inputs)), w)
          cell:fill_(original)
          numeric[k] = (plus - minus) / (2 * eps)
        end
      end)
      for k = 1, #numeric do
        if not close_enough(flat_analytic[k], numeric[k], atol, rtol) then
          error(("%s: input %d element %d: autograd gives %.10g, finite differences %.10g"):format(label,
            position, k, flat_analytic[k], numeric[k]), 2)
        end
      end
    end
  end
  return true
end

--- A float64 leaf tensor that requires grad, from a nested table.
function gradcheck.leaf(tc, values)
  return tc.tensor(values, { dtype = "float64", requires_grad = true })
end

--- A non-contiguous float64 leaf holding `values` (shape {m, n}): the
-- transpose of an {n, m} tensor, made a leaf that requires grad.
function gradcheck.transposed_leaf(tc, values)
  local flat, shape = gradcheck.flatten(values)
  assert(#shape == 2, "transposed_leaf: needs a 2-D table")
  local t = {}
  for j = 1, shape[2] do
    t[j] = {}
    for i = 1, shape[1] do t[j][i] = flat[(i - 1) * shape[2] + j] end
  end
  local base = tc.tensor(t, { dtype = "float64" })
  local view = base:transpose(1, 2)
  view.requires_grad = true
  return view
end

return gradcheck
