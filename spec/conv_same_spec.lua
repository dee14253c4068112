-- conv2d's direct CPU path (src/cpu/cpu_conv_same.c): a float32 convolution at stride 1 whose output has the
-- input's size (images of 16 positions or more) is one op whose GEMMs read the windows straight from the
-- image. Checked against the same convolution in float64, which takes the general path (im2col and a matmul):
-- values and every gradient over geometries that reach each edge of the kernels (rows and columns of the
-- padding, several position blocks per image, depths past one GEMM block, dW with one and several panels),
-- NaN kept to the windows that read it, the same bits at 1 and 2 threads, no input gradient computed when x
-- needs none, a budget too small for the packing space, and flat memory.
local tc = require("tricycle")
local compat = require("tricycle.compat")
local unpack = compat.unpack

-- The direct path runs where cpu_sgemm does: a CPU with AVX-512F, TRICYCLE_SGEMM not "blas".
local function has_avx512()
  local file = io.open("/proc/cpuinfo", "r")
  if not file then return false end
  local text = file:read("*a")
  file:close()
  return text:find("avx512f", 1, true) ~= nil
end
local direct = has_avx512() and os.getenv("TRICYCLE_SGEMM") ~= "blas"

-- The largest difference of a float32 result from its float64 reference, relative to the reference's largest
-- magnitude.
local function relative_error(actual, reference)
  local scale = reference:abs():max():item()
  return (actual:to("float64") - reference):abs():max():item() / math.max(scale, 1e-30)
end

-- x, weight and bias (or nil) in float32 needing gradients, and a gradient for the output.
local function operands(n, c, o, h, w, kh, kw, with_bias)
  local x = tc.randn({ n, c, h, w }, { requires_grad = true })
  local weight = tc.randn({ o, c, kh, kw }, { requires_grad = true })
  local bias = with_bias and tc.randn({ o }, { requires_grad = true }) or nil
  return x, weight, bias, tc.randn({ n, o, h, w })
end

-- y and the gradients of x, weight and bias after one backward of grad.
local function run(x, weight, bias, grad, options)
  local y = tc.conv2d(x, weight, bias, options)
  y:backward(grad)
  return y, x.grad, weight.grad, bias and bias.grad or nil
end

local function float64_leaf(t)
  return t and t:detach():to("float64"):requires_grad_(true) or nil
end

describe("conv2d at stride 1 with the output the input's size", function()
  -- {kH, kW, padH, padW, dilationH, dilationW}: each keeps the output the input's size
  local kernels = { { 3, 3, 1, 1, 1, 1 }, { 1, 1, 0, 0, 1, 1 }, { 1, 3, 0, 1, 1, 1 }, { 3, 3, 2, 2, 2, 2 },
    { 5, 5, 2, 2, 1, 1 }, { 3, 5, 1, 4, 1, 2 } }

  it("is one op on CPUs with AVX-512", function()
    if not direct then
      pending("the direct path needs AVX-512 and cpu_sgemm (TRICYCLE_SGEMM not blas)")
      return
    end
    local x = tc.randn({ 2, 3, 6, 5 }, { requires_grad = true })
    assert.are.equal("conv2d", tc.conv2d(x, tc.randn({ 4, 3, 3, 3 }), nil, { padding = 1 }).grad_fn)
    -- other geometries, images of fewer than 16 positions, float64 and groups keep the general path
    local small = tc.randn({ 2, 3, 3, 5 }, { requires_grad = true })
    assert.are_not.equal("conv2d", tc.conv2d(small, tc.randn({ 4, 3, 3, 3 }), nil, { padding = 1 }).grad_fn)
    assert.are_not.equal("conv2d", tc.conv2d(x, tc.randn({ 4, 3, 3, 3 }), nil, { padding = 0 }).grad_fn)
    assert.are_not.equal("conv2d", tc.conv2d(x, tc.randn({ 4, 3, 3, 3 }), nil, { padding = 1, stride = 2 }).grad_fn)
    assert.are_not.equal("conv2d", tc.conv2d(x:to("float64"), tc.randn({ 4, 3, 3, 3 }, { dtype = "float64" }), nil,
      { padding = 1 }).grad_fn)
    local grouped = tc.randn({ 2, 4, 6, 5 }, { requires_grad = true })
    assert.are_not.equal("conv2d", tc.conv2d(grouped, tc.randn({ 4, 2, 3, 3 }), nil,
      { padding = 1, groups = 2 }).grad_fn)
  end)

  it("matches the general path in float64, values and gradients", function()
    tc.manual_seed(11)
    local worst, checked = 0, 0
    -- sizes (16 positions at least, below that the general path runs): a row or a column of one, rows
    -- narrower and wider than a panel (32), images of several position blocks (1024)
    local sizes = { { 1, 16 }, { 17, 1 }, { 2, 9 }, { 5, 4 }, { 8, 8 }, { 7, 33 }, { 36, 40 } }
    -- channels: one; a depth past one GEMM block (256) with outputs past a tile's 12 rows; dW of several panels
    local channels = { { 1, 1 }, { 30, 13 }, { 4, 70 } }
    for _, k in ipairs(kernels) do
      local kh, kw, ph, pw, dh, dw = unpack(k)
      for _, size in ipairs(sizes) do
        for index, co in ipairs(channels) do
          local options = { padding = { ph, pw }, dilation = { dh, dw } }
          local x, weight, bias, grad = operands(2, co[1], co[2], size[1], size[2], kh, kw, index ~= 2)
          local got = { run(x, weight, bias, grad, options) }
          local reference = { run(float64_leaf(x), float64_leaf(weight), float64_leaf(bias), grad:to("float64"),
            options) }
          for i = 1, 4 do
            if reference[i] then
              local e = relative_error(got[i], reference[i])
              if e > worst then worst = e end
            end
          end
          checked = checked + 1
        end
      end
    end
    assert.are.equal(#kernels * 7 * 3, checked)
    assert.is_true(worst < 1e-5, "largest relative error " .. worst)
  end)

  it("keeps a NaN to the windows that read it, forward and backward", function()
    tc.manual_seed(12)
    -- a NaN at the start or end of a row: a window that wrapped across a row end would spread it to the
    -- outputs (and the weight gradients of the taps) on the other side
    local function with_nan(shape, places)
      local where = tc.zeros(shape)
      for _, place in ipairs(places) do where[place] = 1 end
      return tc.where(where:eq(1), tc.full(shape, 0 / 0), tc.randn(shape))
    end
    local function same_nans(actual, reference)
      assert.are.same(reference:ne(reference):totable(), actual:ne(actual):totable())
    end
    for _, k in ipairs(kernels) do
      local kh, kw, ph, pw, dh, dw = unpack(k)
      local options = { padding = { ph, pw }, dilation = { dh, dw } }
      -- NaN in x: the output and the weight's gradient
      local x = with_nan({ 1, 2, 6, 17 }, { { 1, 1, 3, 1 }, { 1, 2, 4, 17 } }):requires_grad_(true)
      local weight = tc.randn({ 3, 2, kh, kw }, { requires_grad = true })
      local grad = tc.randn({ 1, 3, 6, 17 })
      local y, _, dweight = run(x, weight, nil, grad, options)
      local y64, _, dweight64 = run(float64_leaf(x), float64_leaf(weight), nil, grad:to("float64"), options)
      same_nans(y, y64)
      same_nans(dweight, dweight64)
      -- NaN in the output's gradient: the input's gradient
      x = tc.randn({ 1, 2, 6, 17 }, { requires_grad = true })
      weight = tc.randn({ 3, 2, kh, kw }, { requires_grad = true })
      grad = with_nan({ 1, 3, 6, 17 }, { { 1, 2, 2, 17 }, { 1, 3, 5, 1 } })
      local _, dx = run(x, weight, nil, grad, options)
      local _, dx64 = run(float64_leaf(x), float64_leaf(weight), nil, grad:to("float64"), options)
      same_nans(dx, dx64)
    end
  end)

  it("gives the same bits at 1 and 2 threads", function()
    local threads = tc.num_threads()
    finally(function() tc.set_num_threads(threads) end)
    -- dW split by rows (one panel) and by panels (many); the forward and dx by images and position blocks
    for _, shape in ipairs({ { 6, 3, 32, 20, 20 }, { 5, 64, 48, 9, 11 }, { 2, 8, 16, 40, 33 } }) do
      local n, c, o, h, w = unpack(shape)
      tc.manual_seed(13)
      local x, weight, bias, grad = operands(n, c, o, h, w, 3, 3, true)
      local results = {}
      for _, count in ipairs({ 1, 2 }) do
        tc.set_num_threads(count)
        x.grad, weight.grad, bias.grad = nil, nil, nil
        results[count] = { run(x, weight, bias, grad, { padding = 1 }) }
      end
      for i = 1, 4 do
        assert.are.equal(0, (results[1][i] - results[2][i]):abs():max():item())
      end
    end
  end)

  it("computes no input gradient when x needs none, and the others as before", function()
    tc.manual_seed(14)
    local x, weight, bias, grad = operands(3, 5, 7, 9, 10, 3, 3, true)
    local _, _, dweight, dbias = run(x, weight, bias, grad, { padding = 1 })
    local frozen = x:detach()
    local weight2, bias2 = weight:detach():requires_grad_(true), bias:detach():requires_grad_(true)
    tc.conv2d(frozen, weight2, bias2, { padding = 1 }):backward(grad)
    assert.is_nil(frozen.grad)
    assert.are.equal(0, (weight2.grad - dweight):abs():max():item())
    assert.are.equal(0, (bias2.grad - dbias):abs():max():item())
  end)

  it("reads non-contiguous x and weight", function()
    tc.manual_seed(15)
    local x = tc.randn({ 2, 9, 8, 3 }):permute({ 1, 4, 2, 3 }):requires_grad_(true) -- {2, 3, 9, 8}
    local weight = tc.randn({ 3, 4, 3, 3 }):permute({ 2, 1, 3, 4 }):requires_grad_(true) -- {4, 3, 3, 3}
    local grad = tc.randn({ 2, 4, 9, 8 })
    local y = tc.conv2d(x, weight, nil, { padding = 1 })
    y:backward(grad)
    local x64, w64 = float64_leaf(x), float64_leaf(weight)
    local y64 = tc.conv2d(x64, w64, nil, { padding = 1 })
    y64:backward(grad:to("float64"))
    assert.is_true(relative_error(y, y64) < 1e-5)
    assert.is_true(relative_error(x.grad, x64.grad) < 1e-5)
    assert.is_true(relative_error(weight.grad, w64.grad) < 1e-5)
  end)

  it("fails naming conv2d when the budget leaves no packing space, and works after", function()
    if not direct then
      pending("the direct path needs AVX-512 and cpu_sgemm (TRICYCLE_SGEMM not blas)")
      return
    end
    local x = tc.randn({ 2, 8, 16, 16 }, { requires_grad = true })
    local weight = tc.randn({ 8, 8, 3, 3 }, { requires_grad = true })
    local y = tc.conv2d(x, weight, nil, { padding = 1 })
    local grad = tc.ones(y.shape)
    collectgarbage()
    collectgarbage()
    -- room for dx and dW, not for the packing space of dW's products
    tc.set_memory_budget(tc.memory() + (2 * 8 * 16 * 16 + 8 * 8 * 9) * 4 + 1024)
    local ok, failure = pcall(y.backward, y, grad)
    tc.set_memory_budget(0)
    assert.is_false(ok)
    assert.truthy(tostring(failure):find("conv2d: the GEMM's packing space: out of memory budget", 1, true),
      tostring(failure))
    x.grad, weight.grad = nil, nil
    tc.conv2d(x, weight, nil, { padding = 1 }):backward(grad)
    assert.are.same(x.shape, x.grad.shape)
    assert.are.same(weight.shape, weight.grad.shape)
  end)

  it("keeps memory flat over repeated steps", function()
    tc.manual_seed(16)
    local x, weight, bias, grad = operands(4, 6, 8, 12, 12, 3, 3, true)
    local function step()
      x.grad, weight.grad, bias.grad = nil, nil, nil
      run(x, weight, bias, grad, { padding = 1 })
      collectgarbage()
      collectgarbage()
    end
    step()
    local in_use = tc.memory()
    for _ = 1, 5 do step() end
    assert.are.equal(in_use, tc.memory())
  end)
end)
