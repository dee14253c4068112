-- The cuda device's max pooling, im2col and conv2d on bfloat16 and float16
-- tensors (cuda/cuda_conv.cu, their slots in CUDA_HALF_SLOTS; conv2d's own
-- 16-bit path in src/ops_conv.c, described above its block): they read and write
-- 16-bit data; the maxima are the inputs' own values, the gradients (max
-- pooling's, and col2im's for im2col) are summed per input element in
-- float32 and rounded once. Checked here:
--   - the native path is taken: an op holds only its 16-bit output (and max
--     pooling's int64 indices), no float32 copy of its input (tc.memory());
--   - results and gradients are the bits of the widening path on the same
--     device (the float32 kernel on the widened values, rounded once) and of
--     the CPU (which widens), NaN payloads aside, on overlapping windows,
--     padding, dilation, strides, batch_last columns, NaN and -Inf inputs;
--   - gradients sum several upstream values per input element, so a sum
--     rounded per addend would differ from these bits.
-- `make test-cuda` runs this file on the emulated device (CUDA_SPECS), `make
-- test-gpu` on a GPU.
local tc = require("tricycle")

local available, reason = require("helpers.cuda_probe").cuda_available()
local order = os.getenv("TRICYCLE_CUDA_EMULATION_ORDER") or "forward"

local DTYPES = { "bfloat16", "float16" }

local agree = require("helpers.half_bits").agree

--- expected and actual (tensors of one 16-bit dtype) hold the same bits,
-- any two NaNs counting as equal; with `ulps`, values that far apart too.
local function same_bits(expected, actual, label, ulps) agree(expected, actual, ulps or 0, label) end

--- A float32 CPU tensor of `shape`, normal values times `scale`; with
-- `specials`, a NaN, -Inf and a run of ties planted in the first plane.
local function values(shape, seed, scale, specials)
  tc.manual_seed(seed)
  local t = tc.randn(shape) * scale
  if specials then
    local flat = t:reshape({ -1 }):totable()
    flat[3], flat[8], flat[12], flat[13], flat[14] = 0 / 0, -1 / 0, 1.5, 1.5, 1.5
    t = tc.tensor(flat):reshape(shape)
  end
  return t
end

-- Geometries: overlapping windows, padding, dilation, uneven strides.
local POOLS = {
  { "3x3 stride 1 (overlapping)", { kernel_size = 3, stride = 1 } },
  { "3x3 stride 2 padding 1", { kernel_size = 3, stride = 2, padding = 1 } },
  { "2x3 stride {1, 2} dilation 2", { kernel_size = { 2, 3 }, stride = { 1, 2 }, dilation = 2 } },
  { "4x4 padding 2 (windows mostly padding)", { kernel_size = 4, stride = 1, padding = 2 } },
}
local COLUMNS = {
  { "3x3 stride 1 padding 1", { kernel_size = 3, padding = 1 } },
  { "3x2 stride 2 padding {2, 1} dilation {1, 2} pad_value -2", { kernel_size = { 3, 2 }, stride = 2,
    padding = { 2, 1 }, dilation = { 1, 2 }, pad_value = -2 } },
  { "2x2 stride 1 batch_last", { kernel_size = 2, batch_last = true } },
  { "5x5 padding 3 dilation 2", { kernel_size = 5, padding = 3, dilation = 2 } },
}

local function copy_options(options)
  local copy = {}
  for k, v in pairs(options) do copy[k] = v end
  return copy
end

local describe_cuda = require("helpers.cuda_probe").describer(describe, pending, available, reason)

describe_cuda(("16-bit max pooling and im2col on the cuda device (thread order %s)"):format(order), function()
  describe("hold only their 16-bit results", function()
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
    for _, dtype in ipairs(DTYPES) do
      it(dtype .. ": max_pool2d and im2col with a graph", function()
        local x = values({ 2, 3, 8, 8 }, 1, 1):to(dtype):cuda()
        x.requires_grad = true
        local outputs = 2 * 3 * 4 * 4
        assert.are.equal(2 * outputs + 8 * outputs, added_by(function()
          return tc.max_pool2d(x, { kernel_size = 2 })
        end), "max_pool2d: the 16-bit output and the int64 indices")
        local entries = 2 * 3 * 9 * 64
        assert.are.equal(2 * entries, added_by(function()
          return tc.im2col(x, { kernel_size = 3, padding = 1 })
        end), "im2col: the 16-bit columns")
        -- the CPU widens: a float32 copy of x is held by the graph
        local cpu_x = x:detach():cpu()
        cpu_x.requires_grad = true
        assert.is_true(added_by(function() return tc.max_pool2d(cpu_x, { kernel_size = 2 }) end)
          >= 2 * outputs + 8 * outputs + 4 * 2 * 3 * 64, "max_pool2d on the cpu")
      end)
      it(dtype .. ": the graph's nodes are the ops themselves, not conversions", function()
        local x = values({ 1, 2, 5, 5 }, 2, 1):to(dtype):cuda()
        x.requires_grad = true
        local pooled = tc.max_pool2d(x, { kernel_size = 2 })
        local columns = tc.im2col(x, { kernel_size = 2 })
        assert.are.equal(dtype, pooled.dtype)
        assert.are.equal(dtype, columns.dtype)
        assert.are.equal("max_pool2d", pooled.grad_fn)
        assert.are.equal("im2col", columns.grad_fn)
      end)
    end
  end)

  for _, dtype in ipairs(DTYPES) do
    describe(dtype, function()
      local shape = { 2, 3, 9, 11 }

      --- Runs op(x, options) on the device natively, on the device through
      -- float32 and on the CPU, forward and backward, and compares the bits.
      local function check(op, options, label)
        local wide_x = values(shape, 3, 2, true)
        local cpu_x = wide_x:to(dtype)
        local x = cpu_x:cuda()
        cpu_x.requires_grad, x.requires_grad = true, true
        local native = op(x, copy_options(options))
        assert.are.equal(dtype, native.dtype, label)
        local wide_leaf = x:detach():float()
        wide_leaf.requires_grad = true
        local widened = op(wide_leaf, copy_options(options))
        local on_cpu = op(cpu_x, copy_options(options))
        same_bits(widened:to(dtype), native, label .. " against the widening path")
        same_bits(on_cpu, native, label .. " against the cpu")
        -- upstream gradients in the op's dtype, several per input element
        local g = values(native.shape, 4, 1, false):to(dtype)
        native:backward(g:cuda())
        widened:backward(g:float():cuda())
        on_cpu:backward(g)
        assert.are.equal(dtype, x.grad.dtype, label)
        same_bits(wide_leaf.grad:to(dtype), x.grad, label .. ", gradient against the widening path")
        same_bits(cpu_x.grad, x.grad, label .. ", gradient against the cpu")
      end

      it("max_pool2d: the maxima exactly, NaN winning, indices as float32's; gradients summed once", function()
        for _, case in ipairs(POOLS) do
          check(tc.max_pool2d, case[2], "max_pool2d " .. case[1])
        end
      end)

      it("max_pool2d: a NaN window gives NaN, an all -Inf window -Inf", function()
        local flat = {}
        for i = 1, 16 do flat[i] = -1 / 0 end
        flat[1] = 0 / 0
        local x = tc.tensor(flat):reshape({ 1, 1, 4, 4 }):to(dtype):cuda()
        local out = tc.max_pool2d(x, { kernel_size = 2 }):float():cpu():totable()[1][1]
        assert.is_true(out[1][1] ~= out[1][1], "NaN wins its window")
        assert.are.equal(-1 / 0, out[1][2])
        assert.are.equal(-1 / 0, out[2][1])
        assert.are.equal(-1 / 0, out[2][2])
      end)

      it("im2col: an exact copy with pad_value; its gradient (col2im) summed once", function()
        for _, case in ipairs(COLUMNS) do
          check(tc.im2col, case[2], "im2col " .. case[1])
        end
      end)

      it("avg_pool2d (composed from im2col) runs on 16-bit columns, the CPU's bits", function()
        local cpu_x = values(shape, 6, 1, false):to(dtype)
        local x = cpu_x:cuda()
        local options = { kernel_size = 3, stride = 2, padding = 1 }
        same_bits(tc.avg_pool2d(cpu_x, copy_options(options)), tc.avg_pool2d(x, copy_options(options)),
          "avg_pool2d against the cpu")
      end)
    end)
  end
end)

-- conv2d with x, weight and bias of one 16-bit dtype (src/ops_conv.c
-- conv2d_16bit): 16-bit columns, gemm_16bit's float32 sums, the bias added
-- in float32, the result rounded once; dx's columns float32 for col2im, dW
-- and the bias's gradient rounded once. Its own node (grad_fn conv2d) holds
-- x and the weight as they are; the bits are the widening path's and the
-- CPU's (float32 kernels on widened values, rounded once) up to the order of
-- the GEMM's sums: the emulated device's cuBLAS sums 16-bit products in
-- float32's order (the same bits), a GPU's in another (within one ulp).
local GEMM_ULPS = not (os.getenv("TRICYCLE_CUDA_LIBRARY") or ""):find("emulated", 1, true) and 1 or nil
local CONVS = {
  { "3x3 stride 1 padding 1 (overlapping)", { 4, 3, 3, 3 }, { padding = 1 } },
  { "3x3 stride 2 padding 2 dilation 2", { 5, 3, 3, 3 }, { stride = 2, padding = 2, dilation = 2 } },
  { "2x3 stride {2, 1} padding {1, 0}", { 4, 3, 2, 3 }, { stride = { 2, 1 }, padding = { 1, 0 } } },
  { "1x1 stride 1 (no im2col in float32)", { 6, 3, 1, 1 }, {} },
  { "3x3 groups 3, no bias", { 6, 1, 3, 3 }, { padding = 1, groups = 3 }, false },
  { "3x3 padding 1 on a permuted x", { 4, 3, 3, 3 }, { padding = 1 }, true, true },
}

describe_cuda(("16-bit conv2d on the cuda device (thread order %s)"):format(order), function()
  for _, dtype in ipairs(DTYPES) do
    describe(dtype, function()
      it("holds x and the weight as they are and its 16-bit output; grad_fn conv2d", function()
        local x = values({ 2, 3, 8, 8 }, 7, 1):to(dtype):cuda()
        local w = values({ 4, 3, 3, 3 }, 8, 0.3):to(dtype):cuda()
        local b = values({ 4 }, 9, 1):to(dtype):cuda()
        w.requires_grad, b.requires_grad = true, true
        collectgarbage("collect")
        collectgarbage("collect")
        collectgarbage("stop")
        local before = tc.memory()
        local y = tc.conv2d(x, w, b, { padding = 1 })
        local added = tc.memory() - before
        collectgarbage("restart")
        assert.are.equal(dtype, y.dtype)
        assert.are.equal("conv2d", y.grad_fn)
        -- x, w and b are contiguous leaves, held as they are: only y is new
        assert.are.equal(2 * 2 * 4 * 8 * 8, added)
      end)

      it("forward and gradients: the widening path's and the cpu's bits", function()
        local shape = { 2, 3, 9, 11 }
        for _, case in ipairs(CONVS) do
          local label, options, with_bias, permuted = case[1], case[3], case[4] ~= false, case[5]
          local wide_x = values(shape, 3, 2, true)
          local wide_w = values(case[2], 5, 0.4, false)
          local wide_b = values({ case[2][1] }, 6, 1, false)
          local inputs = {}
          for name, v in pairs({ x = wide_x, w = wide_w, b = wide_b }) do
            local cpu = v:to(dtype)
            local device = cpu:cuda()
            local wide = device:float()
            cpu.requires_grad, device.requires_grad, wide.requires_grad = true, true, true
            inputs[name] = { cpu = cpu, device = device, wide = wide }
          end
          local function run(where)
            local b = with_bias and inputs.b[where] or nil
            local o = {}
            for k, v in pairs(options) do o[k] = v end
            local x = inputs.x[where]
            -- the same values through a non-contiguous view (its gradient through a copy)
            if permuted then x = x:permute({ 1, 2, 4, 3 }):contiguous():permute({ 1, 2, 4, 3 }) end
            return tc.conv2d(x, inputs.w[where], b, o)
          end
          local native, widened, on_cpu = run("device"), run("wide"), run("cpu")
          assert.are.equal(dtype, native.dtype, label)
          assert.are.equal("conv2d", native.grad_fn, label)
          same_bits(widened:to(dtype), native, label .. " against the widening path", GEMM_ULPS)
          same_bits(on_cpu, native, label .. " against the cpu", GEMM_ULPS)
          local g = values(native.shape, 4, 1, false):to(dtype)
          native:backward(g:cuda())
          widened:backward(g:float():cuda())
          on_cpu:backward(g)
          local names = with_bias and { "x", "w", "b" } or { "x", "w" }
          for _, name in ipairs(names) do
            local v = inputs[name]
            assert.are.equal(dtype, v.device.grad.dtype, label .. " " .. name)
            same_bits(v.wide.grad:to(dtype), v.device.grad, label .. ", d" .. name .. " against the widening path",
              GEMM_ULPS)
            same_bits(v.cpu.grad, v.device.grad, label .. ", d" .. name .. " against the cpu", GEMM_ULPS)
          end
        end
      end)
    end)
  end
end)
