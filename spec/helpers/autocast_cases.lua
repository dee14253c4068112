--- The checks of tc.autocast("bfloat16") that hold on every device: products read bf16-rounded operands and sum in
-- float32, forward and backward; everything else stays float32. Each product is checked against a float32 product of
-- the same operands rounded to bf16 beforehand (equal up to float32 summation order) and against plain float32
-- (within bf16's precision, and measurably different, so the bf16 path did run). spec/autocast_spec.lua runs them on
-- the CPU (cpu_bgemm), spec/cuda_emulation_spec.lua on the cuda device (cuBLAS's bf16 GEMM on rounded copies).
-- Inputs are drawn on the CPU and moved, so every device gets the same values.
local tc = require("tricycle")
local assert = require("luassert")

local M = {}

function M.rounded(t) return t:to("bfloat16"):to("float32") end
function M.max_difference(a, b) return (a - b):abs():max():item() end
function M.scale(t) return t:abs():max():item() end

-- Summation order only: float32 sums of k exact products, relative to the output's scale.
M.SUM_TOLERANCE = 1e-5
-- bf16 keeps 8 significant bits: a product of two rounded operands is within 2^-8 of the exact one, and the errors
-- of a sum partly cancel; 2% of the output's scale bounds it for these sizes with a wide margin.
M.BF16_TOLERANCE = 0.02

local rounded, max_difference, scale = M.rounded, M.max_difference, M.scale

function M.assert_bf16_product(got, on_rounded, exact)
  local size = scale(exact)
  assert.is_true(max_difference(got, on_rounded) <= M.SUM_TOLERANCE * size,
    ("against rounded operands: %g (scale %g)"):format(max_difference(got, on_rounded), size))
  local off = max_difference(got, exact)
  assert.is_true(off <= M.BF16_TOLERANCE * size, ("against float32: %g (scale %g)"):format(off, size))
  assert.is_true(off > 1e-6 * size, "autocast gave float32's exact result: the bf16 path did not run")
end

--- The cases as { name = , run = } on `device`.
function M.on(device)
  local function randn(shape) return tc.randn(shape):to(device) end
  local assert_bf16_product = M.assert_bf16_product
  local cases = {}
  local function case(name, run) cases[#cases + 1] = { name = name, run = run } end

  case("runs linear's forward and both gradients in bf16, even when backward runs outside", function()
    tc.manual_seed(11)
    local x, w, b, g = randn({37, 96}), randn({50, 96}), randn({50}), randn({37, 50})
    local xl, wl, bl = x:clone():requires_grad_(), w:clone():requires_grad_(), b:clone():requires_grad_()
    local out = tc.autocast("bfloat16", function() return tc.linear(xl, wl, bl) end)
    assert.are.equal("float32", out.dtype)
    assert.are.equal("float32", tc.autocast_dtype())
    out:backward(g)
    assert_bf16_product(out, tc.linear(rounded(x), rounded(w), b), tc.linear(x, w, b))
    assert_bf16_product(xl.grad, rounded(g):matmul(rounded(w)), g:matmul(w))
    assert_bf16_product(wl.grad, rounded(g):transpose(1, 2):matmul(rounded(x)), g:transpose(1, 2):matmul(x))
    assert.is_true(max_difference(bl.grad, rounded(g):sum(1)) <= M.SUM_TOLERANCE * scale(bl.grad))
    assert.are.equal("float32", wl.grad.dtype)
  end)

  case("runs a one-row linear (the GEMV path) and linear_gelu in bf16", function()
    tc.manual_seed(12)
    local x, w, b = randn({1, 128}), randn({64, 128}), randn({64})
    local out = tc.autocast("bfloat16", function() return tc.linear(x, w, b) end)
    assert_bf16_product(out, tc.linear(rounded(x), rounded(w), b), tc.linear(x, w, b))
    local rows = randn({20, 128})
    local gelu = tc.autocast("bfloat16", function() return tc.linear_gelu(rows, w, b) end)
    assert_bf16_product(gelu, tc.linear_gelu(rounded(rows), rounded(w), b), tc.linear_gelu(rows, w, b))
  end)

  case("runs matmul (batched, broadcast) and einsum in bf16, gradients too", function()
    tc.manual_seed(13)
    local a, b, g = randn({3, 17, 40}), randn({3, 40, 23}), randn({3, 17, 23})
    local al, bl = a:clone():requires_grad_(), b:clone():requires_grad_()
    local out = tc.autocast("bfloat16", function() return al:matmul(bl) end)
    out:backward(g)
    assert_bf16_product(out, rounded(a):matmul(rounded(b)), a:matmul(b))
    assert_bf16_product(al.grad, rounded(g):matmul(rounded(b):transpose(2, 3)), g:matmul(b:transpose(2, 3)))
    assert_bf16_product(bl.grad, rounded(a):transpose(2, 3):matmul(rounded(g)), a:transpose(2, 3):matmul(g))
    local e = tc.autocast("bfloat16", function() return tc.einsum("bij,bjk->bik", a, b) end)
    assert_bf16_product(e, rounded(a):matmul(rounded(b)), a:matmul(b))
    -- one matrix against a batch (a stride-0 operand), and a transposed view read in place
    local shared = randn({23, 40}):transpose(1, 2)
    local broadcast = tc.autocast("bfloat16", function() return a:matmul(shared) end)
    assert_bf16_product(broadcast, rounded(a):matmul(rounded(shared)), a:matmul(shared))
  end)

  case("gives the same bf16 products for tall, wide, batched and transposed shapes", function()
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
        local out = tc.autocast("bfloat16", function() return tc.linear(a, b) end)
        assert_bf16_product(out, tc.linear(rounded(a), rounded(b)), tc.linear(a, b))
      else
        local out = tc.autocast("bfloat16", function() return a:matmul(b) end)
        assert_bf16_product(out, rounded(a):matmul(rounded(b)), a:matmul(b))
      end
    end
    tc.set_num_threads(threads)
  end)

  case("keeps float64 products in float64", function()
    local a, b = randn({8, 9}):double(), randn({9, 5}):double()
    local out = tc.autocast("bfloat16", function() return a:matmul(b) end)
    assert.are.equal("float64", out.dtype)
    assert.are.equal(0, max_difference(out, a:matmul(b)))
  end)

  case("keeps attention within bf16's tolerance of float32, forward and gradients", function()
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
    local out, dx, dw = run("bfloat16")
    local out32, dx32, dw32 = run("float32")
    for _, pair in ipairs({ { out, out32 }, { dx, dx32 }, { dw, dw32 } }) do
      local off, size = max_difference(pair[1], pair[2]), scale(pair[2])
      assert.is_true(off <= 2 * M.BF16_TOLERANCE * size, ("%g against scale %g"):format(off, size))
      assert.is_true(off > 0, "autocast gave float32's exact result")
    end
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
