-- The cuda device's kernels on bfloat16 and float16 tensors (CUDA_HALF_SLOTS
-- in cuda/cuda_backend.cu): the unary maps and their derivatives, the binary
-- maps, clamp and where (cuda/cuda_elementwise.cu), the reductions
-- (cuda/cuda_reduce.cu) and attention (cuda/cuda_attention*.cu) read and
-- write 16-bit data and compute in float32 (sums in double). Checked here:
--   - the native path is taken: an op holds only its 16-bit output, no
--     float32 copies of its input or result (tc.memory());
--   - its results and gradients are the bits of the widening path on the
--     same device (the float32 kernel on the widened inputs, rounded once),
--     NaN sign and payload aside;
--   - against the CPU, which always widens: the same bits for the ops whose
--     float32 results are exact on both (+, -, *, /, comparisons, ...), one
--     ulp for the others (the devices' exp, tanh, ... differ in float32, and
--     sums over long runs are ordered differently);
--   - shapes with tails, broadcasting, non-contiguous views, NaN, infinities,
--     subnormals and float16's overflow to infinity past 65504;
--   - attention: its output and the values' gradient the widening path's
--     bits, on the tiled kernels (head_dim <= 128) and the row kernels; the
--     queries' and keys' gradients read the rounded output (D = rowsum(dout
--     * out)) where widening reads the float32 one, so they are held to a few
--     ulps of the largest gradient.
-- `make test-cuda` runs this file on the emulated device (CUDA_SPECS), `make
-- test-gpu` on a GPU.
local tc = require("tricycle")

local available, reason = require("helpers.cuda_probe").cuda_available()
local order = os.getenv("TRICYCLE_CUDA_EMULATION_ORDER") or "forward"

local DTYPES = { "bfloat16", "float16" }
-- op_list.h's unary and binary lists (checked against tc.ops() below).
local UNARY = { "neg", "exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu", "gelu", "gelu_tanh", "silu", "sin",
  "cos", "rsqrt", "square", "log1p", "softplus", "sign", "logical_not", "floor", "ceil", "round", "trunc" }
local BINARY = { "add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge",
  "logical_and", "logical_or" }
-- Ops whose float32 results are correctly rounded (or exact) on every
-- device: their 16-bit results match the CPU's bit for bit.
local EXACT = { neg = true, sqrt = true, abs = true, relu = true, square = true, sign = true, logical_not = true,
  floor = true, ceil = true, round = true, trunc = true, add = true, sub = true, mul = true, div = true,
  maximum = true, minimum = true, eq = true, ne = true, lt = true, le = true, gt = true, ge = true,
  logical_and = true, logical_or = true }

-- sin and cos of huge values (3e38) differ between the devices' float32
-- kernels (their range reductions); they meet the CPU on |x| <= 1e4.
local HUGE_ARGUMENTS_DIFFER = { sin = true, cos = true }

local agree = require("helpers.half_bits").agree

-- Bool results compared as values.
local function agree_bool(expected, actual, label)
  assert.are.equal("bool", actual.dtype, label)
  assert.are.same(expected:cpu():totable(), actual:cpu():totable(), label)
end

local function compare(expected, actual, ulps, label)
  if expected.dtype == "bool" then agree_bool(expected, actual, label)
  else agree(expected, actual, ulps, label) end
end

-- ---- inputs ----

local SPECIALS = { 0 / 0, 1 / 0, -1 / 0, 0, -0.0, 65504, 60000, -60000, 40000, 1e-7, -3e-6, 0.5, 1, -1, 2.5, 3e38 }

--- A float32 CPU tensor of `shape`: normal values times `scale`, the
-- specials first when asked.
local function values(shape, seed, scale, specials)
  tc.manual_seed(seed)
  local t = tc.randn(shape) * scale
  if specials then
    local flat = t:reshape({ -1 }):totable()
    for i, v in ipairs(SPECIALS) do if i <= #flat then flat[i] = v end end
    t = tc.tensor(flat):reshape(shape)
  end
  return t
end

--- The same values in `dtype` on the CPU and on the cuda device, as leaves
-- needing gradients when `grad`.
local function pair(wide, dtype, grad)
  local cpu = wide:to(dtype)
  local cuda = cpu:cuda()
  if grad then cpu.requires_grad, cuda.requires_grad = true, true end
  return cpu, cuda
end

local function call(name, ...)
  local first = ...
  if name == "gelu_tanh" then return first:gelu("tanh") end
  return first[name](...)
end

local describe_cuda = require("helpers.cuda_probe").describer(describe, pending, available, reason)

local title = "16-bit element-wise kernels, reductions and attention on the cuda device (thread order %s)"
describe_cuda(title:format(order), function()
  it("lists every unary and binary op of the engine", function()
    local listed = {}
    for _, op in ipairs(tc.ops()) do listed[op.name] = op end
    for _, name in ipairs(UNARY) do assert.are.equal(1, listed[name] and listed[name].arity, name) end
    for _, name in ipairs(BINARY) do assert.are.equal(2, listed[name] and listed[name].arity, name) end
  end)

  describe("hold only their 16-bit results", function()
    -- Bytes of tensor storage an op adds, graph and saved tensors included.
    local function added_by(f)
      collectgarbage("collect")
      collectgarbage("collect")
      collectgarbage("stop")
      local before = tc.memory()
      local kept = f()
      local after = tc.memory()
      collectgarbage("restart")
      assert(kept)
      return after - before
    end
    local shape = { 48, 67 }
    local n = 48 * 67
    for _, dtype in ipairs(DTYPES) do
      it(dtype .. ": exp, mul, div, pow, clamp, where, sum, mean, max, var, argmax with a graph", function()
        local cpu_x, x = pair(values(shape, 1, 1), dtype, true)
        local cpu_y, y = pair(values(shape, 2, 1), dtype, true)
        local mask = tc.rand(shape):gt(0.5):cuda()
        local ops = {
          exp = function(a) return a:exp() end,
          mul = function(a, b) return a * b end,
          div = function(a, b) return a / b end,
          pow = function(a, b) return a:abs():pow(b) end,
          clamp = function(a) return a:clamp(-0.5, 0.5) end,
          where = function(a, b, m) return tc.where(m, a, b) end,
        }
        for name, f in pairs(ops) do
          local extra = name == "pow" and 2 * n or 0 -- abs's output, held by the graph
          assert.are.equal(2 * n + extra, added_by(function() return f(x, y, mask) end), name .. " on cuda")
        end
        local rows = 48
        local reductions = {
          sum = function(a) return a:sum(2) end,
          mean = function(a) return a:mean(2) end,
          max = function(a) return a:max(2) end,
          var = function(a) return a:var(2) end,
        }
        for name, f in pairs(reductions) do
          local indices = name == "max" and 8 * rows or 0 -- max(dim) gives the int64 indices too
          assert.are.equal(2 * rows + indices, added_by(function() return f(x) end), name .. " on cuda")
        end
        assert.are.equal(8, added_by(function() return x:argmax() end), "argmax on cuda")
        -- attention: the output and the float32 lse per (batch, head, row)
        local _, qkv = pair(values({ 2, 37, 3 * 64 }, 3, 1, false), dtype, true)
        assert.are.equal(2 * 37 * 64 * 2 + 2 * 4 * 37 * 4, added_by(function() return tc.attention(qkv, 4) end),
          "attention on cuda")
        -- the CPU widens: float32 copies are held too (the measure sees them)
        assert.is_true(added_by(function() return cpu_x * cpu_y end) >= 2 * n + 3 * 4 * n, "mul on the cpu")
        assert.is_true(added_by(function() return cpu_x:sum(2) end) >= 2 * rows + 4 * n, "sum on the cpu")
      end)
    end
  end)

  for _, dtype in ipairs(DTYPES) do
    describe(dtype, function()
      local shape = { 5, 37 }
      local wide_x = values(shape, 3, 2, true)

      it("unary maps: the widening path's bits, the CPU's within one ulp (exact ops: its bits)", function()
        for _, name in ipairs(UNARY) do
          local cpu_x, x = pair(HUGE_ARGUMENTS_DIFFER[name] and wide_x:clamp(-1e4, 1e4) or wide_x, dtype, false)
          local native = call(name, x)
          local widened = call(name, x:float())
          if widened.dtype == "float32" then widened = widened:to(dtype) end
          compare(widened, native, 0, name .. " against the widening path")
          compare(call(name, cpu_x), native, EXACT[name] and 0 or 1, name .. " against the cpu")
        end
      end)

      it("unary derivatives: the widening path's bits, the CPU's within one ulp", function()
        local wide_g = values(shape, 4, 1, false)
        for _, name in ipairs(UNARY) do
          if name ~= "sign" and name ~= "logical_not" then
            local cpu_x, x = pair(HUGE_ARGUMENTS_DIFFER[name] and wide_x:clamp(-1e4, 1e4) or wide_x, dtype, true)
            local g = wide_g:to(dtype)
            call(name, x):backward(g:cuda())
            local x2 = x:detach():float()
            x2.requires_grad = true
            call(name, x2):backward(g:float():cuda())
            call(name, cpu_x):backward(g)
            assert.are.equal(dtype, x.grad.dtype, name)
            agree(x2.grad:to(dtype), x.grad, 0, name .. "'s gradient against the widening path")
            agree(cpu_x.grad, x.grad, 1, name .. "'s gradient against the cpu")
          end
        end
      end)

      it("binary maps with broadcasting and transposed views", function()
        local wide_b = values(shape, 5, 2, true)
        local wide_row = values({ 37 }, 6, 2, false)
        local wide_column = values({ 5, 1 }, 7, 2, false)
        local wide_t = values({ 37, 5 }, 8, 2, true)
        for _, name in ipairs(BINARY) do
          local cases = {
            { "same shape", wide_x, wide_b },
            { "row broadcast", wide_x, wide_row },
            { "column broadcast", wide_column, wide_x },
            { "transposed", wide_t, wide_x, transpose = true },
          }
          for _, case in ipairs(cases) do
            local label = ("%s, %s"):format(name, case[1])
            local cpu_a, a = pair(case[2], dtype, false)
            local cpu_b, b = pair(case[3], dtype, false)
            if case.transpose then cpu_a, a = cpu_a:transpose(), a:transpose() end
            local native = call(name, a, b)
            local widened = call(name, a:float(), b:float())
            if widened.dtype == "float32" then widened = widened:to(dtype) end
            compare(widened, native, 0, label .. " against the widening path")
            compare(call(name, cpu_a, cpu_b), native, EXACT[name] and 0 or 1, label .. " against the cpu")
          end
        end
      end)

      it("binary gradients: the CPU's (sums over broadcast dims within one ulp)", function()
        local wide_g = values(shape, 9, 1, false)
        local wide_b = values(shape, 10, 1, false) + 3 -- pow and div away from 0
        local wide_a = values(shape, 11, 1, false):abs() + 0.5
        local wide_row = values({ 37 }, 12, 1, false):abs() + 0.5
        for _, name in ipairs({ "add", "sub", "mul", "div", "pow", "maximum", "minimum" }) do
          for _, b_values in ipairs({ wide_b, wide_row, wide_a }) do
            local cpu_a, a = pair(wide_a, dtype, true)
            local cpu_b, b = pair(b_values, dtype, true)
            local g = wide_g:to(dtype)
            call(name, a, b):backward(g:cuda())
            call(name, cpu_a, cpu_b):backward(g)
            local label = ("%s, b of shape {%s}"):format(name, table.concat(b.shape, ", "))
            local broadcast = b_values ~= wide_b and b_values ~= wide_a
            -- products of one 16-bit gradient and operand are exact in float32:
            -- a sum over a broadcast dim adds the same values on both devices
            agree(cpu_a.grad, a.grad, (EXACT[name] and name ~= "div") and 0 or 1, label .. ", gradient of a")
            agree(cpu_b.grad, b.grad, (EXACT[name] and name ~= "div" and not broadcast) and 0 or 1,
              label .. ", gradient of b")
            -- b a constant (a broadcast row, a number): a's gradient natively
            local cpu_c, c = pair(b_values, dtype, false)
            local cpu_a2, a2 = pair(wide_a, dtype, true)
            call(name, a2, c):backward(g:cuda())
            call(name, cpu_a2, cpu_c):backward(g)
            agree(cpu_a2.grad, a2.grad, (EXACT[name] and name ~= "div") and 0 or 1, label .. ", b constant")
          end
          local cpu_a3, a3 = pair(wide_a, dtype, true)
          local g = wide_g:to(dtype)
          call(name, a3, 0.75):backward(g:cuda())
          call(name, cpu_a3, 0.75):backward(g)
          agree(cpu_a3.grad, a3.grad, (EXACT[name] and name ~= "div") and 0 or 1, name .. " with a number")
        end
      end)

      it("clamp and where, with NaN, infinities and broadcast conditions", function()
        local cpu_x, x = pair(wide_x, dtype, true)
        for _, bounds in ipairs({ { -1.3, 0.7 }, { 0.1 }, { nil, 1e-3 }, { -70000, 70000 } }) do
          local label = ("clamp(%s, %s)"):format(tostring(bounds[1]), tostring(bounds[2]))
          local native = x:clamp(bounds[1], bounds[2])
          agree(x:float():clamp(bounds[1], bounds[2]):to(dtype), native, 0, label .. " against the widening path")
          agree(cpu_x:clamp(bounds[1], bounds[2]), native, 0, label .. " against the cpu")
        end
        local g = values(shape, 13, 1, false):to(dtype)
        x:clamp(-0.5, 0.5):backward(g:cuda())
        cpu_x:clamp(-0.5, 0.5):backward(g)
        agree(cpu_x.grad, x.grad, 0, "clamp's gradient against the cpu")

        local cond = tc.rand({ 1, 37 }):gt(0.5)
        local wide_b = values({ 5, 1 }, 14, 1, true)
        local cpu_a, a = pair(wide_x, dtype, true)
        local cpu_b, b = pair(wide_b, dtype, true)
        local native = tc.where(cond:cuda(), a, b)
        agree(tc.where(cond, cpu_a, cpu_b), native, 0, "where against the cpu")
        native:backward(g:cuda())
        tc.where(cond, cpu_a, cpu_b):backward(g)
        agree(cpu_a.grad, a.grad, 0, "where's gradient of a")
        agree(cpu_b.grad, b.grad, 0, "where's gradient of b")
        agree(cpu_x:masked_fill(cond, -2.5), x:masked_fill(cond:cuda(), -2.5), 0, "masked_fill")
      end)
    end)
  end

  for _, dtype in ipairs(DTYPES) do
    describe(dtype .. " reductions", function()
      -- Short strided runs (a thread each) and long contiguous ones (a block
      -- each, past 256), NaN and infinities in some rows, a transposed view.
      local inputs = {
        { "{5, 37}", values({ 5, 37 }, 16, 3, true) },
        { "{3, 300}", values({ 3, 300 }, 17, 3, false) },
        { "{37, 5} transposed", values({ 37, 5 }, 18, 3, true), transpose = true },
      }
      local REDUCTIONS = {
        { "sum", function(t, dim) return t:sum(dim) end },
        { "mean", function(t, dim) return t:mean(dim, true) end },
        { "max", function(t, dim) return (t:max(dim)) end },
        { "min", function(t, dim) return (t:min(dim)) end },
        { "var", function(t, dim) return t:var(dim) end },
        { "var, correction 0", function(t, dim) return t:var(dim, { correction = 0 }) end },
      }
      local ARG = {
        { "argmax", function(t, dim) return t:argmax(dim) end },
        { "argmin", function(t, dim) return t:argmin(dim) end },
      }
      local function leaves(case, grad)
        local cpu, cuda = pair(case[2], dtype, grad)
        if case.transpose then return cpu, cuda, cpu:transpose(), cuda:transpose() end
        return cpu, cuda, cpu, cuda
      end

      it("values: the widening path's bits, the CPU's within one ulp (max, min: its bits)", function()
        for _, case in ipairs(inputs) do
          for _, dim in ipairs({ 1, 2, false }) do
            local _, _, cpu_x, x = leaves(case, false)
            for _, reduction in ipairs(REDUCTIONS) do
              local label = ("%s over %s of %s"):format(reduction[1], tostring(dim), case[1])
              local d = dim or nil
              local native = reduction[2](x, d)
              agree(reduction[2](x:float(), d):to(dtype), native, 0, label .. " against the widening path")
              local exact = reduction[1] == "max" or reduction[1] == "min"
              agree(reduction[2](cpu_x, d), native, exact and 0 or 1, label .. " against the cpu")
            end
            for _, reduction in ipairs(ARG) do
              local label = ("%s over %s of %s"):format(reduction[1], tostring(dim), case[1])
              local native = reduction[2](x, dim or nil)
              assert.are.equal("int64", native.dtype, label)
              assert.are.same(reduction[2](cpu_x, dim or nil):totable(), native:cpu():totable(), label)
            end
          end
        end
      end)

      it("gradients: the widening path's bits, the CPU's within one ulp", function()
        -- ties for max and min: values repeated along the rows
        local tied = values({ 4, 300 }, 19, 1, false):round()
        local cases = { inputs[1], inputs[2], inputs[3], { "{4, 300} with ties", tied } }
        for _, case in ipairs(cases) do
          for _, dim in ipairs({ 1, 2, false }) do
            for _, reduction in ipairs(REDUCTIONS) do
              local label = ("%s over %s of %s"):format(reduction[1], tostring(dim), case[1])
              local cpu_leaf, leaf, cpu_x, x = leaves(case, true)
              local out = reduction[2](x, dim or nil)
              local g = values(out.shape, 20, 1, false):to(dtype)
              out:backward(g:cuda())
              local wide_leaf = leaf:detach():float()
              wide_leaf.requires_grad = true
              local wide_x = case.transpose and wide_leaf:transpose() or wide_leaf
              reduction[2](wide_x, dim or nil):backward(g:float():cuda())
              reduction[2](cpu_x, dim or nil):backward(g)
              assert.are.equal(dtype, leaf.grad.dtype, label)
              agree(wide_leaf.grad:to(dtype), leaf.grad, 0, label .. ", gradient against the widening path")
              agree(cpu_leaf.grad, leaf.grad, 1, label .. ", gradient against the cpu")
            end
          end
        end
      end)
    end)
  end

  for _, dtype in ipairs(DTYPES) do
    describe(dtype .. " attention", function()
      -- Largest difference of two tensors relative to the largest magnitude of the first.
      local function relative_difference(expected, actual)
        local e, a = expected:float():cpu(), actual:float():cpu()
        return (e - a):abs():max():item() / math.max(e:abs():max():item(), 1e-30)
      end
      local ULP = { bfloat16 = 2 ^ -8, float16 = 2 ^ -11 }
      local shapes = {
        -- name, qkv's shape, n_head, options, the columns of v
        { "tiled, head_dim 16, causal", { 2, 37, 3 * 64 }, 4, { causal = true }, 2 * 64 },
        { "tiled, grouped queries, not causal", { 1, 45, (4 + 2 * 2) * 8 }, 4, { causal = false, n_kv_head = 2 },
          6 * 8 },
        { "row kernels, head_dim 136", { 1, 19, 3 * 136 }, 1, { causal = true }, 2 * 136 },
      }
      for _, shape in ipairs(shapes) do
        it(shape[1] .. ": the widening path's output bits, the CPU's within a few ulps; gradients", function()
          local cpu_qkv, qkv = pair(values(shape[2], 21, 1, false), dtype, true)
          local out = tc.attention(qkv, shape[3], shape[4])
          assert.are.equal(dtype, out.dtype)
          local wide_qkv = qkv:detach():float()
          wide_qkv.requires_grad = true
          local wide_out = tc.attention(wide_qkv, shape[3], shape[4])
          agree(wide_out:to(dtype), out, 0, shape[1] .. ": against the widening path")
          local cpu_out = tc.attention(cpu_qkv, shape[3], shape[4])
          assert.is_true(relative_difference(cpu_out, out) <= 2 * ULP[dtype], shape[1] .. ": against the cpu")

          local g = values(out.shape, 22, 1, false):to(dtype)
          out:backward(g:cuda())
          wide_out:backward(g:float():cuda())
          cpu_out:backward(g)
          assert.are.equal(dtype, qkv.grad.dtype)
          local v_first, width = shape[5] + 1, shape[2][3] - shape[5]
          agree(wide_qkv.grad:to(dtype):narrow(3, v_first, width), qkv.grad:narrow(3, v_first, width), 0,
            shape[1] .. ": the values' gradient against the widening path")
          local off_wide = relative_difference(wide_qkv.grad, qkv.grad)
          local off_cpu = relative_difference(cpu_qkv.grad, qkv.grad)
          assert.is_true(off_wide <= 4 * ULP[dtype], ("%s: gradient %g off the widening path's"):format(shape[1],
            off_wide))
          assert.is_true(off_cpu <= 4 * ULP[dtype], ("%s: gradient %g off the cpu's"):format(shape[1], off_cpu))
        end)
      end
    end)
  end

  it("float16 overflows to infinity past 65504 as on the CPU; bfloat16 holds the sums", function()
    local wide = tc.tensor({ 65504, 60000, -60000, 40000, 300, 65519, 65520, 1e-7 })
    for _, dtype in ipairs(DTYPES) do
      local cpu, cuda = wide:to(dtype), wide:to(dtype):cuda()
      local sums = { cpu + cpu, cuda + cuda }
      local squares = { cpu:square(), cuda:square() }
      local exps = { cpu:exp(), cuda:exp() }
      agree(sums[1], sums[2], 0, dtype .. " sums")
      agree(squares[1], squares[2], 0, dtype .. " squares")
      agree(exps[1], exps[2], 0, dtype .. " exps")
      local sum = sums[2]:float():totable()
      if dtype == "float16" then
        assert.are.same({ 1 / 0, 1 / 0, -1 / 0, 1 / 0 }, { sum[1], sum[2], sum[3], sum[4] })
        assert.are.equal(1 / 0, cuda:float():totable()[7]) -- 65520 rounds to infinity already
      else
        assert.is_true(sum[1] < 1 / 0 and sum[2] < 1 / 0 and sum[3] > -1 / 0)
      end
    end
  end)

  it("mixed operands take the widening path: a float32 partner gives float32", function()
    for _, dtype in ipairs(DTYPES) do
      local a = values({ 3, 5 }, 15, 1, false)
      local half = a:to(dtype):cuda()
      local result = half * a:cuda()
      assert.are.equal("float32", result.dtype)
      assert.are.same((a:to(dtype):float() * a):totable(), result:cpu():totable())
      local other = dtype == "bfloat16" and "float16" or "bfloat16"
      local mixed = half + a:to(other):cuda()
      assert.are.equal("float32", mixed.dtype)
      assert.are.same((a:to(dtype) + a:to(other)):totable(), mixed:cpu():totable())
    end
  end)
end)
