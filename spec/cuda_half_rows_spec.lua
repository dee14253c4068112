-- The CUDA kernels of layer_norm, rms_norm, softmax, log_softmax,
-- cross_entropy and rope read and write bfloat16/float16 themselves (the
-- 16-bit contract in src/backend_slots.h): here, that the ops take that path
-- on the device (their own node on the tape, no float32 copies held), and
-- that its results and gradients are the CPU's widening path's (float32
-- kernel, one rounding) within one 16-bit ulp, on shapes with tails, NaN and
-- Inf, and ignored targets. `make test-cuda` runs it on the emulated device
-- (cuda/cuda.mk's CUDA_SPECS); without a usable device it is pending.
local tc = require("tricycle")

local available, reason = require("helpers.cuda_probe").cuda_available()

local DTYPES = { "bfloat16", "float16" }
-- mantissa bits and the smallest normal exponent of each 16-bit dtype
local FORMAT = { bfloat16 = { bits = 7, min_exponent = -126, max_exponent = 127 },
  float16 = { bits = 10, min_exponent = -14, max_exponent = 15 } }

-- A value of `dtype` as its place in the ordered list of the dtype's values
-- (0 for zero, one step per representable value, signed), so that two
-- values are n ulps apart when their places are; Inf is one past the largest
-- finite value.
local function place(value, dtype)
  local format = FORMAT[dtype]
  local magnitude = math.abs(value)
  local steps = 2 ^ format.bits
  local result
  if magnitude == 0 then
    result = 0
  elseif magnitude == math.huge then
    result = (format.max_exponent - format.min_exponent + 2) * steps
  else
    local exponent = math.floor(math.log(magnitude) / math.log(2))
    if 2 ^ exponent > magnitude then exponent = exponent - 1 end
    if 2 ^ (exponent + 1) <= magnitude then exponent = exponent + 1 end
    if exponent < format.min_exponent then -- subnormal
      result = magnitude / 2 ^ (format.min_exponent - format.bits)
    else
      result = (exponent - format.min_exponent + 1) * steps + (magnitude / 2 ^ exponent - 1) * steps
    end
  end
  return value < 0 and -result or result
end

local function flatten(values, into)
  into = into or {}
  if type(values) ~= "table" then
    into[#into + 1] = values
    return into
  end
  for _, v in ipairs(values) do flatten(v, into) end
  return into
end

-- `actual` (cuda) against `expected` (cpu), both of `dtype`, element by
-- element: the same NaNs; elsewhere the same values, but for a few (at most
-- 1 in 64, and 1 in any case) one 16-bit step apart, where the two devices'
-- float32 kernels, which sum in other orders, straddle a rounding boundary.
-- With `cancels` (a norm's dx, which cancels to almost nothing on one
-- column, where the CPU's float32 kernel computes in float and the device's
-- in double) an element may instead differ by the float32 kernels' own
-- device tolerance, 1e-4 * (1 + |value|). `tolerance`, when given, bounds
-- |cuda - cpu| <= tolerance * (1 + |cpu|) for every element instead.
local function assert_close(expected, actual, label, tolerance, cancels)
  assert(actual.dtype == expected.dtype, ("%s: %s on cuda, %s on the cpu"):format(label, actual.dtype,
    expected.dtype))
  assert.are.same(expected.shape, actual.shape, label .. ": shapes differ")
  local dtype = expected.dtype
  local want, got = flatten(expected:totable()), flatten(actual:cpu():totable())
  local differing = 0
  for i = 1, #want do
    local a, b = want[i], got[i]
    local far
    if a ~= a or b ~= b then
      far = (a ~= a) ~= (b ~= b)
    elseif tolerance then
      far = not (math.abs(a - b) <= tolerance * (1 + math.abs(a))) and a ~= b
    elseif a ~= b then
      if cancels and math.abs(a - b) <= 1e-4 * (1 + math.abs(a)) then
        far = false
      else
        differing = differing + 1
        far = math.abs(place(a, dtype) - place(b, dtype)) > 1
      end
    end
    if far then
      error(("%s: element %d is %.9g on cuda, %.9g on the cpu"):format(label, i, b, a), 2)
    end
  end
  assert(differing <= math.max(1, #want / 64), ("%s: %d of %d elements differ from the cpu's"):format(label,
    differing, #want))
end

-- Deterministic values in [-scale, scale) (a linear congruential sequence,
-- so the spec does not touch math.random's state).
local function values(count, seed, scale)
  local state, list = seed, {}
  for i = 1, count do
    state = (state * 1103515245 + 12345) % 2147483648
    list[i] = (state / 2147483648 * 2 - 1) * (scale or 3)
  end
  return list
end

local function tensor(shape, seed, dtype, specials)
  local count = 1
  for _, size in ipairs(shape) do count = count * size end
  local list = values(count, seed)
  for at, value in pairs(specials or {}) do list[at] = value end
  return tc.tensor(list, { dtype = dtype }):reshape(shape)
end

-- The ops: build(dtype, device, shape, specials) gives the leaves (cpu
-- tensors of dtype made once, moved to device) and run(leaves...) the
-- result. `extra(result)`: the bytes a forward with a graph holds besides its
-- result when it runs natively (per-row statistics, rope's table).
local function norm_case(rms)
  local name = rms and "rms_norm" or "layer_norm"
  return {
    name = name,
    leaves = function(shape, dtype, specials)
      local cols = shape[#shape]
      local list = { tensor(shape, 11, dtype, specials), tensor({ cols }, 12, dtype) }
      if not rms then list[3] = tensor({ cols }, 13, dtype) end
      return list
    end,
    run = function(x, weight, bias)
      if rms then return tc.rms_norm(x, weight, 1e-5) end
      return tc.layer_norm(x, weight, bias, 1e-5)
    end,
    extra = function(x) return 2 * 4 * x:numel() / x.shape[#x.shape] end, -- mean and rstd, float32
  }
end

-- over the last dim (a block per row) or the first (a thread per column)
local function softmax_case(log, first_dim)
  return {
    name = log and "log_softmax" or "softmax",
    leaves = function(shape, dtype, specials) return { tensor(shape, 21, dtype, specials) } end,
    run = function(x)
      local dim = first_dim and 1 or #x.shape
      return log and x:log_softmax(dim) or x:softmax(dim)
    end,
    extra = function() return 0 end, -- the saved y is the result
  }
end

local CROSS_ENTROPY = {
  name = "cross_entropy",
  leaves = function(shape, dtype, specials) return { tensor(shape, 31, dtype, specials) } end,
  -- targets 0-based, every third row ignored (ignore_index -100)
  targets = function(rows, classes, device, ignore_all)
    local list = {}
    for r = 1, rows do list[r] = (ignore_all or r % 3 == 0) and -100 or (r * 7) % classes end
    return tc.tensor(list, { dtype = "int64" }):to(device)
  end,
  extra = function(logits) return 4 * logits:numel() / logits.shape[#logits.shape] end, -- lse, float32
}

local ROPE = {
  name = "rope",
  leaves = function(shape, dtype, specials) return { tensor(shape, 41, dtype, specials) } end,
  positions = function(time, device)
    local list = {}
    for t = 1, time do list[t] = t * 3 end
    return tc.tensor(list, { dtype = "int64" }):to(device)
  end,
  extra = function(x) return 4 * x.shape[2] * x.shape[4] end, -- the (cos, sin) table [1, T, D/2, 2], float32
}

-- Runs `case` on `device` from cpu leaves: the result and the leaves'
-- gradients under `grad` (a cpu tensor of the result's shape), as cpu tensors.
local function run_on(case, device, leaves, grad, shape, options)
  local inputs = {}
  for i, leaf in ipairs(leaves) do
    inputs[i] = leaf:to(device):detach()
    inputs[i].requires_grad = true
  end
  local result
  if case.name == "cross_entropy" then
    result = tc.cross_entropy(inputs[1], CROSS_ENTROPY.targets(shape[1], shape[2], device, options.ignore_all))
  elseif case.name == "rope" then
    result = tc.rope(inputs[1], ROPE.positions(shape[2], device), { interleaved = options.interleaved })
  else
    result = case.run(inputs[1], inputs[2], inputs[3])
  end
  result:backward(grad and grad:to(device) or nil)
  local grads = {}
  for i, input in ipairs(inputs) do grads[i] = input.grad:cpu() end
  return result:cpu(), grads
end

local CASES = { norm_case(false), norm_case(true), softmax_case(false), softmax_case(true), softmax_case(false, true),
  softmax_case(true, true), CROSS_ENTROPY, ROPE }

-- Shapes with tails: one column, fewer columns than a warp, a row longer than
-- a block of 256 threads and not a multiple of it, one row, and more rows than
-- the 64 chunks of the norms' column sums.
local SHAPES = { { 1, 1 }, { 3, 1 }, { 1, 33 }, { 5, 300 }, { 70, 19 }, { 2, 257 } }
local ROPE_SHAPES = { { 1, 1, 1, 2 }, { 2, 5, 3, 6 }, { 1, 9, 2, 66 } }

-- softmax's gradient reads the rounded y on cuda (the CPU widens and keeps
-- y float32), and y * (g - sum(g y)) moves by a 16-bit rounding of y times
-- g: held to the op list's 16-bit gradient tolerance (op_runner's
-- HALF_GRAD_TOLERANCE) instead.
local SOFTMAX_GRAD_TOLERANCE = { bfloat16 = 2 ^ -5, float16 = 2 ^ -8 }
local function gradient_tolerance(case, dtype)
  if case.name == "softmax" or case.name == "log_softmax" then return SOFTMAX_GRAD_TOLERANCE[dtype] end
end

local function check_against_cpu(case, dtype, shape, specials, options)
  options = options or {}
  local leaves = case.leaves(shape, dtype, specials)
  local grad
  if case.name ~= "cross_entropy" then grad = tensor(shape, 51, dtype) end
  local label = ("%s %s {%s}"):format(case.name, dtype, table.concat(shape, ", "))
  local want, want_grads = run_on(case, "cpu", leaves, grad, shape, options)
  local got, got_grads = run_on(case, "cuda", leaves, grad, shape, options)
  assert_close(want, got, label .. ", result")
  for i = 1, #want_grads do
    local norm_dx = i == 1 and (case.name == "layer_norm" or case.name == "rms_norm")
    assert_close(want_grads[i], got_grads[i], ("%s, gradient of input %d"):format(label, i),
      gradient_tolerance(case, dtype), norm_dx)
  end
  return want, got, want_grads, got_grads
end

local describe_cuda = require("helpers.cuda_probe").describer(describe, pending, available, reason)

describe_cuda("16-bit layer norm, RMS norm, softmax, cross-entropy and rope kernels on the cuda device", function()
  for _, dtype in ipairs(DTYPES) do
    it("runs each op natively in " .. dtype .. ": its own node on the tape, no float32 copy held", function()
      for _, case in ipairs(CASES) do
        local shape = case.name == "rope" and { 2, 8, 3, 16 } or { 24, 40 }
        local inputs = {}
        for i, leaf in ipairs(case.leaves(shape, dtype)) do
          inputs[i] = leaf:cuda()
          inputs[i].requires_grad = true
        end
        local targets = case.name == "cross_entropy" and CROSS_ENTROPY.targets(shape[1], shape[2], "cuda")
        local positions = case.name == "rope" and ROPE.positions(shape[2], "cuda")
        collectgarbage()
        collectgarbage("stop") -- no tensor collected while the bytes are counted
        local before = tc.memory()
        local result
        if targets then
          result = tc.cross_entropy(inputs[1], targets)
        elseif positions then
          result = tc.rope(inputs[1], positions)
        else
          result = case.run(inputs[1], inputs[2], inputs[3])
        end
        local held = tc.memory() - before
        collectgarbage("restart")
        local label = case.name .. " in " .. dtype
        assert.are.equal(case.name, result.grad_fn, label .. ": the result's node")
        assert.are.equal(dtype, result.dtype, label .. ": the result's dtype")
        -- the widening path also holds a float32 copy of x (4 bytes an
        -- element) for its float32 node
        local expected = 2 * result:numel() + case.extra(inputs[1])
        assert.are.equal(expected, held, label .. ": bytes held after the forward")
        result:backward(case.name == "cross_entropy" and nil or tc.ones_like(result))
        for i, input in ipairs(inputs) do
          assert.are.equal(dtype, input.grad.dtype, ("%s: the gradient of input %d"):format(label, i))
        end
      end
    end)

    it("gives the CPU's widening results and gradients in " .. dtype .. " on shapes with tails", function()
      for _, case in ipairs(CASES) do
        if case.name == "rope" then
          for _, shape in ipairs(ROPE_SHAPES) do
            check_against_cpu(case, dtype, shape)
            check_against_cpu(case, dtype, shape, nil, { interleaved = true })
          end
        else
          for _, shape in ipairs(SHAPES) do check_against_cpu(case, dtype, shape) end
        end
      end
    end)

    it("propagates NaN and Inf in " .. dtype .. " as the CPU does", function()
      local nan, inf = 0 / 0, math.huge
      -- row 1 holds a NaN, row 2 +Inf, row 3 -Inf, row 4 both infinities,
      -- row 5 is all -Inf (softmax's max taken as 0 there); 33 columns
      local cols = 33
      local specials = { [3] = nan, [cols + 5] = inf, [2 * cols + 7] = -inf, [3 * cols + 1] = inf,
        [3 * cols + 2] = -inf }
      for c = 1, cols do specials[4 * cols + c] = -inf end
      for _, case in ipairs(CASES) do
        if case.name == "rope" then
          check_against_cpu(case, dtype, { 1, 5, 1, cols + 1 }, { [3] = nan, [40] = inf, [81] = -inf })
        else
          local want = check_against_cpu(case, dtype, { 6, cols }, specials)
          local list = flatten(want:totable())
          local some_nan = false
          for _, v in ipairs(list) do some_nan = some_nan or v ~= v end
          assert(some_nan, case.name .. ": a NaN input gives no NaN")
        end
      end
    end)

    it("checks arguments on the 16-bit path of " .. dtype .. " as the widening path does", function()
      local function fails(fragments, f)
        local ok, message = pcall(f)
        assert(not ok, "no error for " .. fragments[1])
        for _, fragment in ipairs(fragments) do
          assert(tostring(message):find(fragment, 1, true), ("%q lacks %q"):format(tostring(message), fragment))
        end
      end
      local x = tensor({ 2, 3 }, 61, dtype):cuda()
      fails({ "rms_norm", "weight of shape {2}", "{2, 3}" }, function()
        return tc.rms_norm(x, tensor({ 2 }, 62, dtype):cuda())
      end)
      fails({ "layer_norm", "weight", "cpu" }, function() return tc.layer_norm(x, tensor({ 3 }, 63, dtype)) end)
      fails({ "layer_norm", "eps", "-1" }, function() return tc.layer_norm(x, nil, nil, -1) end)
      fails({ "log_softmax", "dim 3", "{2, 3}" }, function() return x:log_softmax(3) end)
      fails({ "cross_entropy", "target 3", "V = 3" }, function()
        return tc.cross_entropy(x, tc.tensor({ 0, 3 }, { dtype = "int64" }):cuda())
      end)
      fails({ "cross_entropy", "targets", "float32" }, function()
        return tc.cross_entropy(x, tc.tensor({ 0, 1 }):cuda())
      end)
      fails({ "rope", "even head size", "{1, 2, 1, 3}" }, function()
        return tc.rope(tensor({ 1, 2, 1, 3 }, 64, dtype):cuda(), ROPE.positions(2, "cuda"))
      end)
      fails({ "rope", "positions of shape {3}" }, function()
        return tc.rope(tensor({ 1, 2, 1, 4 }, 65, dtype):cuda(), ROPE.positions(3, "cuda"))
      end)
    end)

    it("gives a zero loss and zero gradients in " .. dtype .. " when every target is ignored", function()
      for _, shape in ipairs({ { 1, 5 }, { 7, 300 } }) do
        local want, got, _, got_grads = check_against_cpu(CROSS_ENTROPY, dtype, shape, nil, { ignore_all = true })
        assert.are.equal(0, want:item())
        assert.are.equal(0, got:item())
        assert.are.equal(0, got_grads[1]:abs():sum():item())
      end
      -- rows 3 and 6 ignored: their gradients are exactly zero
      local _, _, _, got_grads = check_against_cpu(CROSS_ENTROPY, dtype, { 6, 40 })
      local rows = got_grads[1]:float():abs():sum(2):totable()
      assert.are.equal(0, flatten(rows)[3])
      assert.are.equal(0, flatten(rows)[6])
      assert(flatten(rows)[1] > 0, "a kept row has a gradient")
    end)
  end
end)
