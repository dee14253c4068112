--- The checks of tc.autocast("bfloat16") and tc.autocast("float16") that hold on every device: products read
-- operands rounded to the autocast dtype and sum in float32, forward and backward; everything else stays float32.
-- Each product is checked against a float32 product of the same operands rounded to that dtype beforehand (equal up
-- to float32 summation order: products of two bf16 or two float16 values are exact in float32) and against plain
-- float32 (within the dtype's precision, and measurably different, so the 16-bit path did run). Float16 besides:
-- values past 65504 become +-Inf, a GradScaler skips the steps they spoil, and bf16 nests inside it.
-- spec/autocast_spec.lua runs them on the CPU (cpu_bgemm; float16-rounded copies for the float32 GEMM),
-- spec/cuda_emulation_spec.lua on the cuda device (cuBLAS's 16-bit GEMM on rounded copies).
-- Inputs are drawn on the CPU and moved, so every device gets the same values.
local tc = require("tricycle")
local assert = require("luassert")

local M = {}

--- t's values rounded to dtype (bfloat16 unless given), as float32.
function M.rounded(t, dtype) return t:to(dtype or "bfloat16"):to("float32") end
function M.max_difference(a, b) return (a - b):abs():max():item() end
function M.scale(t) return t:abs():max():item() end

-- Summation order only: float32 sums of k exact products, relative to the output's scale.
M.SUM_TOLERANCE = 1e-5
-- bf16 keeps 8 significant bits: a product of two rounded operands is within 2^-8 of the exact one, and the errors
-- of a sum partly cancel; 2% of the output's scale bounds it for these sizes with a wide margin.
M.BF16_TOLERANCE = 0.02
-- float16 keeps 11: 2^-11 per product, the same margin.
M.FLOAT16_TOLERANCE = 0.003
local TOLERANCES = { bfloat16 = M.BF16_TOLERANCE, float16 = M.FLOAT16_TOLERANCE }

local rounded, max_difference, scale = M.rounded, M.max_difference, M.scale

--- got (a product under autocast(dtype), bfloat16 unless given) against on_rounded (float32 on operands rounded to
-- dtype) and exact (float32 on the operands).
function M.assert_bf16_product(got, on_rounded, exact, dtype)
  dtype = dtype or "bfloat16"
  local size = scale(exact)
  assert.is_true(max_difference(got, on_rounded) <= M.SUM_TOLERANCE * size,
    ("%s, against rounded operands: %g (scale %g)"):format(dtype, max_difference(got, on_rounded), size))
  local off = max_difference(got, exact)
  assert.is_true(off <= TOLERANCES[dtype] * size, ("%s, against float32: %g (scale %g)"):format(dtype, off, size))
  assert.is_true(off > 1e-6 * size, "autocast gave float32's exact result: the " .. dtype .. " path did not run")
end

--- The cases as { name = , run = } on `device`.
function M.on(device)
  local function randn(shape) return tc.randn(shape):to(device) end
  local assert_bf16_product = M.assert_bf16_product
  local cases = {}
  local function case(name, run) cases[#cases + 1] = { name = name, run = run } end

  for _, dtype in ipairs({ "bfloat16", "float16" }) do
    local function rounded(t) return M.rounded(t, dtype) end
    local function assert_product(got, on_rounded, exact) assert_bf16_product(got, on_rounded, exact, dtype) end
    local function autocast(fn) return tc.autocast(dtype, fn) end
    case("runs linear's forward and both gradients in " .. dtype .. ", even when backward runs outside", function()
      tc.manual_seed(11)
      local x, w, b, g = randn({37, 96}), randn({50, 96}), randn({50}), randn({37, 50})
      local xl, wl, bl = x:clone():requires_grad_(), w:clone():requires_grad_(), b:clone():requires_grad_()
      local out = autocast(function() return tc.linear(xl, wl, bl) end)
      assert.are.equal("float32", out.dtype)
      assert.are.equal("float32", tc.autocast_dtype())
      out:backward(g)
      assert_product(out, tc.linear(rounded(x), rounded(w), b), tc.linear(x, w, b))
      assert_product(xl.grad, rounded(g):matmul(rounded(w)), g:matmul(w))
      assert_product(wl.grad, rounded(g):transpose(1, 2):matmul(rounded(x)), g:transpose(1, 2):matmul(x))
      assert.is_true(max_difference(bl.grad, rounded(g):sum(1)) <= M.SUM_TOLERANCE * scale(bl.grad))
      assert.are.equal("float32", wl.grad.dtype)
    end)

    case("runs a one-row linear (the GEMV path) and linear_gelu in " .. dtype, function()
      tc.manual_seed(12)
      local x, w, b = randn({1, 128}), randn({64, 128}), randn({64})
      local out = autocast(function() return tc.linear(x, w, b) end)
      assert_product(out, tc.linear(rounded(x), rounded(w), b), tc.linear(x, w, b))
      local rows = randn({20, 128})
      local gelu = autocast(function() return tc.linear_gelu(rows, w, b) end)
      assert_product(gelu, tc.linear_gelu(rounded(rows), rounded(w), b), tc.linear_gelu(rows, w, b))
    end)

    case("runs matmul (batched, broadcast) and einsum in " .. dtype .. ", gradients too", function()
      tc.manual_seed(13)
      local a, b, g = randn({3, 17, 40}), randn({3, 40, 23}), randn({3, 17, 23})
      local al, bl = a:clone():requires_grad_(), b:clone():requires_grad_()
      local out = autocast(function() return al:matmul(bl) end)
      out:backward(g)
      assert_product(out, rounded(a):matmul(rounded(b)), a:matmul(b))
      assert_product(al.grad, rounded(g):matmul(rounded(b):transpose(2, 3)), g:matmul(b:transpose(2, 3)))
      assert_product(bl.grad, rounded(a):transpose(2, 3):matmul(rounded(g)), a:transpose(2, 3):matmul(g))
      local e = autocast(function() return tc.einsum("bij,bjk->bik", a, b) end)
      assert_product(e, rounded(a):matmul(rounded(b)), a:matmul(b))
      -- one matrix against a batch (a stride-0 operand), and a transposed view read in place
      local shared = randn({23, 40}):transpose(1, 2)
      local broadcast = autocast(function() return a:matmul(shared) end)
      assert_product(broadcast, rounded(a):matmul(rounded(shared)), a:matmul(shared))
    end)

    case("runs conv2d's products in " .. dtype .. " (the CPU's direct 3x3 path gives way), gradients too", function()
      tc.manual_seed(10)
      local x, w, b, g = randn({ 2, 4, 8, 8 }), randn({ 6, 4, 3, 3 }), randn({ 6 }), randn({ 2, 6, 8, 8 })
      local xl, wl = x:clone():requires_grad_(), w:clone():requires_grad_()
      local options = { padding = 1 }
      local out = autocast(function() return tc.conv2d(xl, wl, b, options) end)
      out:backward(g)
      assert_product(out, tc.conv2d(rounded(x), rounded(w), b, options), tc.conv2d(x, w, b, options))
      local xr, wr = rounded(x):requires_grad_(), rounded(w):requires_grad_()
      tc.conv2d(xr, wr, b, options):backward(rounded(g))
      local xe, we = x:clone():requires_grad_(), w:clone():requires_grad_()
      tc.conv2d(xe, we, b, options):backward(g)
      assert_product(xl.grad, xr.grad, xe.grad)
      assert_product(wl.grad, wr.grad, we.grad)
    end)

    case("gives the same " .. dtype .. " products for tall, wide, batched and transposed shapes", function()
      tc.manual_seed(14)
      local threads = tc.num_threads()
      tc.set_num_threads(2)
      local shapes = {
        { { 300, 64 }, { 64, 40 } },  -- tall: rows split, op(b) packed once for both CPU threads
        { { 20, 64 }, { 64, 700 } },  -- wide: columns split
        { { 4, 40, 64 }, { 4, 64, 50 } }, -- a batch split over the matrices
        { { 300, 64 }, { 40, 64 } },  -- tall with a transposed b (linear's layout)
        { { 7, 13 }, { 13, 5 } },     -- sizes no tile or 16-byte row divides
      }
      for _, shape in ipairs(shapes) do
        local a, b = randn(shape[1]), randn(shape[2])
        if #shape[2] == 2 and shape[2][1] == 40 then
          local out = autocast(function() return tc.linear(a, b) end)
          assert_product(out, tc.linear(rounded(a), rounded(b)), tc.linear(a, b))
        else
          local out = autocast(function() return a:matmul(b) end)
          assert_product(out, rounded(a):matmul(rounded(b)), a:matmul(b))
        end
      end
      tc.set_num_threads(threads)
    end)
  end

  case("keeps float64 products in float64", function()
    local a, b = randn({8, 9}):double(), randn({9, 5}):double()
    for _, dtype in ipairs({ "bfloat16", "float16" }) do
      local out = tc.autocast(dtype, function() return a:matmul(b) end)
      assert.are.equal("float64", out.dtype)
      assert.are.equal(0, max_difference(out, a:matmul(b)))
    end
  end)

  case("keeps attention within bf16's and float16's tolerance of float32, forward and gradients", function()
    tc.manual_seed(15)
    local attention = tc.nn.MultiheadAttention(32, 4, { batch_first = true }):to(device)
    local x = randn({2, 9, 32})
    local function run(dtype)
      attention:zero_grad()
      local xl = x:clone():requires_grad_()
      local out = tc.autocast(dtype, function() return (attention(xl, xl, xl)) end)
      out:square():sum():backward()
      return out, xl.grad, attention.in_proj_weight.grad
    end
    local out32, dx32, dw32 = run("float32")
    for _, dtype in ipairs({ "bfloat16", "float16" }) do
      local out, dx, dw = run(dtype)
      for _, pair in ipairs({ { out, out32 }, { dx, dx32 }, { dw, dw32 } }) do
        local off, size = max_difference(pair[1], pair[2]), scale(pair[2])
        assert.is_true(off <= 2 * TOLERANCES[dtype] * size, ("%s: %g against scale %g"):format(dtype, off, size))
        assert.is_true(off > 0, "autocast gave float32's exact result in " .. dtype)
      end
    end
  end)

  case("runs the fused attention on qkv rounded to bf16 and float16, the gradient rounded once on its way back",
    function()
      tc.manual_seed(16)
      for _, shape in ipairs({ { heads = 2, kv = 2, width = 3 * 16 }, { heads = 4, kv = 2, width = 8 * 8 } }) do
        local qkv, g = randn({ 2, 9, shape.width }), nil
        for _, causal in ipairs({ true, false }) do
          local options = { causal = causal, n_kv_head = shape.kv }
          local function run(dtype, input)
            local leaf = input:clone():requires_grad_()
            local out = tc.autocast(dtype, function() return tc.attention(leaf, shape.heads, options) end)
            g = g or randn(out.shape)
            out:backward(g)
            return out, leaf.grad
          end
          local out32, grad32 = run("float32", qkv)
          for _, dtype in ipairs({ "bfloat16", "float16" }) do
            local out, grad = run(dtype, qkv)
            assert.are.equal("float32", out.dtype)
            assert.are.equal("float32", grad.dtype)
            -- exactly float32's attention on the rounded qkv, its gradient rounded to dtype
            local on_rounded, grad_on_rounded = run("float32", M.rounded(qkv, dtype))
            assert.are.equal(0, max_difference(out, on_rounded), dtype .. ": output")
            assert.are.equal(0, max_difference(grad, M.rounded(grad_on_rounded, dtype)), dtype .. ": gradient")
            for _, pair in ipairs({ { out, out32 }, { grad, grad32 } }) do
              local off, size = max_difference(pair[1], pair[2]), scale(pair[2])
              assert.is_true(off <= TOLERANCES[dtype] * size, ("%s: %g against scale %g"):format(dtype, off, size))
              assert.is_true(off > 0, "autocast gave float32's exact result in " .. dtype)
            end
          end
        end
      end
    end)

  case("turns float16 operands past 65504 into Inf, forward and backward (what a GradScaler detects)", function()
    -- 65519 rounds down to 65504, 65520 up to Inf; float32 keeps both
    local a = tc.tensor({ { 65519, 1 }, { 65520, 1 }, { -70000, 2 }, { 3, 4 } }):to(device)
    local ones = tc.ones({ 2, 1 }):to(device)
    local out = tc.autocast("float16", function() return a:matmul(ones) end):cpu()
    assert.are.same({ { 65505 }, { math.huge }, { -math.huge }, { 7 } }, out:totable())
    local plain = a:matmul(ones):cpu()
    assert.are.same({ { 65520 }, { 65521 }, { -69998 }, { 7 } }, plain:totable())
    -- bf16 keeps float32's range: 65519 and 65520 round to 65536, -70000 to -70144
    local bf16 = tc.autocast("bfloat16", function() return a:matmul(ones) end):cpu()
    assert.are.same({ { 65537 }, { 65537 }, { -70142 }, { 7 } }, bf16:totable())
    -- a finite forward whose gradient overflows: the backward's products read the scaled gradient in float16
    local x, w = tc.ones({ 3, 4 }):to(device), (tc.ones({ 2, 4 }) * 0.5):to(device)
    w.requires_grad = true
    local y = tc.autocast("float16", function() return tc.linear(x, w) end)
    assert.are.same({ { 2, 2 }, { 2, 2 }, { 2, 2 } }, y:cpu():totable())
    y:backward((tc.ones({ 3, 2 }) * 1e5):to(device))
    assert.are.equal(math.huge, w.grad:cpu():max():item())
    w.grad = nil
    y = tc.autocast("float16", function() return tc.linear(x, w) end)
    y:backward((tc.ones({ 3, 2 }) * 1e4):to(device))
    assert.are.same({ { 3e4, 3e4, 3e4, 3e4 }, { 3e4, 3e4, 3e4, 3e4 } }, w.grad:cpu():totable())
  end)

  case("nests bfloat16 inside float16 and comes back, each product in its own dtype", function()
    tc.manual_seed(16)
    local x, w = randn({9, 40}), randn({6, 40})
    local function on(dtype) return tc.linear(M.rounded(x, dtype), M.rounded(w, dtype)) end
    local outer, inner, after = tc.autocast("float16", function()
      local first = tc.linear(x, w)
      local nested = tc.autocast("bfloat16", function()
        assert.are.equal("bfloat16", tc.autocast_dtype())
        return tc.linear(x, w)
      end)
      assert.are.equal("float16", tc.autocast_dtype())
      return first, nested, tc.linear(x, w)
    end)
    assert.are.equal("float32", tc.autocast_dtype())
    local exact = tc.linear(x, w)
    assert_bf16_product(outer, on("float16"), exact, "float16")
    assert_bf16_product(inner, on("bfloat16"), exact, "bfloat16")
    assert_bf16_product(after, on("float16"), exact, "float16")
    assert.is_true(max_difference(inner, on("float16")) > M.SUM_TOLERANCE * scale(exact),
      "the nested product was not bf16")
  end)

  case("trains an MLP under float16 autocast with a GradScaler close to float32, skipping overflowing steps",
    function()
      tc.manual_seed(18)
      local w1_0, b1_0 = tc.randn({ 32, 12 }) * 0.3, tc.randn({ 32 }) * 0.1
      local w2_0 = tc.randn({ 4, 32 }) * 0.3
      local x, y = randn({ 64, 12 }), randn({ 64, 4 })
      -- steps of SGD; dtype "float16" runs the forward under autocast with a GradScaler of init_scale
      local function train(dtype, init_scale, steps)
        local parameters = { w1_0:clone():to(device), b1_0:clone():to(device), w2_0:clone():to(device) }
        for _, p in ipairs(parameters) do p.requires_grad = true end
        local opt = tc.optim.SGD(parameters, { lr = 0.1 })
        local scaler = tc.amp.GradScaler({ init_scale = init_scale or 1, growth_interval = 3,
          enabled = dtype == "float16" })
        local losses, scales, skipped = {}, {}, {}
        for step = 1, steps do
          opt:zero_grad()
          local loss = tc.autocast(dtype, function()
            local h = tc.linear(x, parameters[1], parameters[2]):tanh()
            return ((tc.linear(h, parameters[3]) - y) ^ 2):mean()
          end)
          scaler:scale(loss):backward()
          local before = parameters[3]:detach():clone()
          scaler:step(opt)
          scaler:update()
          skipped[step] = max_difference(before, parameters[3]:detach()) == 0
          losses[step], scales[step] = loss:item(), scaler:get_scale()
        end
        return losses, scales, skipped
      end
      local exact = train("float32", nil, 12)
      local losses, scales, skipped = train("float16", 2 ^ 10, 12)
      for step = 1, 12 do assert.is_false(skipped[step], "step " .. step .. " was skipped") end
      assert.are.equal(2 ^ 14, scales[12]) -- grew every 3 clean steps
      for step = 1, 12 do
        local off = math.abs(losses[step] - exact[step])
        assert.is_true(off <= 2e-3 * exact[step], ("step %d: %g against %g"):format(step, losses[step], exact[step]))
        assert.is_true(step == 1 or losses[step] < losses[1], "not learning")
      end
      assert.is_true(losses[12] ~= exact[12], "float16 training gave float32's exact losses")
      -- a scale of 2^40 makes the backward's float16 operands overflow: those steps are skipped (the loss stays)
      -- and the scale halves each time until the gradients fit; then training goes on
      local big_losses, big_scales, big_skipped = train("float16", 2 ^ 40, 30)
      local first_taken = 1
      while first_taken <= 30 and big_skipped[first_taken] do
        assert.are.equal(2 ^ (40 - first_taken), big_scales[first_taken])
        assert.are.equal(big_losses[1], big_losses[first_taken])
        first_taken = first_taken + 1
      end
      assert.is_true(first_taken > 10 and first_taken < 30, "skipped steps before the first taken: " .. first_taken - 1)
      assert.is_true(big_losses[30] < 0.8 * big_losses[1], "no training after the scale came down")
    end)

  case("nests: float32 inside turns it off, and the outer setting comes back", function()
    local x, w = randn({5, 33}), randn({7, 33})
    local exact = tc.linear(x, w)
    tc.autocast("bfloat16", function()
      assert.are.equal("bfloat16", tc.autocast_dtype())
      local inner = tc.autocast("float32", function()
        assert.are.equal("float32", tc.autocast_dtype())
        return tc.linear(x, w)
      end)
      assert.are.equal(0, max_difference(inner, exact))
      assert.are.equal("bfloat16", tc.autocast_dtype())
    end)
    assert.are.equal("float32", tc.autocast_dtype())
  end)

  case("leaves the optimiser's update of float32 master weights unchanged", function()
    local w = randn({6, 8}):requires_grad_()
    local x = randn({4, 8})
    local optimizer = tc.optim.SGD({ w }, { lr = 0.1 })
    local before = w:detach():clone()
    local loss = tc.autocast("bfloat16", function() return tc.linear(x, w):sum() end)
    loss:backward()
    local grad = w.grad:clone()
    optimizer:step()
    assert.are.equal("float32", w.dtype)
    assert.is_true(max_difference(w:detach(), before - grad * 0.1) <= 1e-6)
  end)

  case("runs linear with bfloat16 weights on a bf16 GEMM: x rounded to bf16, sums in float32", function()
    tc.manual_seed(5)
    local x, w, b = randn({30, 70}), randn({40, 70}), rounded(randn({40}))
    local wb = w:to("bfloat16")
    local out = tc.no_grad(function() return tc.linear(x, wb, b:to("bfloat16")) end)
    assert.are.equal("float32", out.dtype)
    local reference = tc.linear(rounded(x), rounded(w), b)
    assert.is_true(max_difference(out, tc.linear(x, rounded(w), b)) > 0, "x was not rounded: not the bf16 GEMM")
    assert.is_true(max_difference(out, reference) <= M.SUM_TOLERANCE * scale(reference))
    local one = tc.no_grad(function() return tc.linear(x:narrow(1, 1, 1), wb) end)
    reference = tc.linear(rounded(x), rounded(w))
    assert.is_true(max_difference(one, reference:narrow(1, 1, 1)) <= M.SUM_TOLERANCE * scale(reference))
  end)

  return cases
end

return M
