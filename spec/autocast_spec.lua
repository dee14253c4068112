-- tc.autocast("bfloat16"): matrix products read bf16-rounded operands and sum in float32 (cpu_bgemm), forward and
-- backward; everything else stays float32. Checked against float32 products of the same operands rounded to bf16
-- beforehand (equal up to float32 summation order) and against plain float32 (within bf16's precision, and
-- measurably different, so the bf16 path did run).
local tc = require("tricycle")
local lua54 = require("helpers.lua54")
local interpreter = require("helpers.interpreter")
local command = require("helpers.command")

local function rounded(t) return t:to("bfloat16"):to("float32") end
local function max_difference(a, b) return (a - b):abs():max():item() end
local function scale(t) return t:abs():max():item() end

-- Summation order only: float32 sums of k exact products, relative to the output's scale.
local SUM_TOLERANCE = 1e-5
-- bf16 keeps 8 significant bits: a product of two rounded operands is within 2^-8 of the exact one, and the errors
-- of a sum partly cancel; 2% of the output's scale bounds it for these sizes with a wide margin.
local BF16_TOLERANCE = 0.02

local function assert_bf16_product(got, on_rounded, exact)
  local size = scale(exact)
  assert.is_true(max_difference(got, on_rounded) <= SUM_TOLERANCE * size,
    ("against rounded operands: %g (scale %g)"):format(max_difference(got, on_rounded), size))
  local off = max_difference(got, exact)
  assert.is_true(off <= BF16_TOLERANCE * size, ("against float32: %g (scale %g)"):format(off, size))
  assert.is_true(off > 1e-6 * size, "autocast gave float32's exact result: the bf16 path did not run")
end

describe("tc.autocast", function()
  before_each(function() tc.manual_seed(11) end)

  it("runs linear's forward and both gradients in bf16, even when backward runs outside", function()
    local x, w, b, g = tc.randn({37, 96}), tc.randn({50, 96}), tc.randn({50}), tc.randn({37, 50})
    local xl, wl, bl = x:clone():requires_grad_(), w:clone():requires_grad_(), b:clone():requires_grad_()
    local out = tc.autocast("bfloat16", function() return tc.linear(xl, wl, bl) end)
    assert.are.equal("float32", out.dtype)
    assert.are.equal("float32", tc.autocast_dtype())
    out:backward(g)
    assert_bf16_product(out, tc.linear(rounded(x), rounded(w), b), tc.linear(x, w, b))
    assert_bf16_product(xl.grad, rounded(g):matmul(rounded(w)), g:matmul(w))
    assert_bf16_product(wl.grad, rounded(g):transpose(1, 2):matmul(rounded(x)), g:transpose(1, 2):matmul(x))
    assert.is_true(max_difference(bl.grad, rounded(g):sum(1)) <= SUM_TOLERANCE * scale(bl.grad))
    assert.are.equal("float32", wl.grad.dtype)
  end)

  it("runs a one-row linear (the GEMV path) and linear_gelu in bf16", function()
    local x, w, b = tc.randn({1, 128}), tc.randn({64, 128}), tc.randn({64})
    local out = tc.autocast("bfloat16", function() return tc.linear(x, w, b) end)
    assert_bf16_product(out, tc.linear(rounded(x), rounded(w), b), tc.linear(x, w, b))
    local rows = tc.randn({20, 128})
    local gelu = tc.autocast("bfloat16", function() return tc.linear_gelu(rows, w, b) end)
    assert_bf16_product(gelu, tc.linear_gelu(rounded(rows), rounded(w), b), tc.linear_gelu(rows, w, b))
  end)

  it("runs matmul (batched) and einsum in bf16, gradients too", function()
    local a, b, g = tc.randn({3, 17, 40}), tc.randn({3, 40, 23}), tc.randn({3, 17, 23})
    local al, bl = a:clone():requires_grad_(), b:clone():requires_grad_()
    local out = tc.autocast("bfloat16", function() return al:matmul(bl) end)
    out:backward(g)
    assert_bf16_product(out, rounded(a):matmul(rounded(b)), a:matmul(b))
    assert_bf16_product(al.grad, rounded(g):matmul(rounded(b):transpose(2, 3)), g:matmul(b:transpose(2, 3)))
    assert_bf16_product(bl.grad, rounded(a):transpose(2, 3):matmul(rounded(g)), a:transpose(2, 3):matmul(g))
    local e = tc.autocast("bfloat16", function() return tc.einsum("bij,bjk->bik", a, b) end)
    assert_bf16_product(e, rounded(a):matmul(rounded(b)), a:matmul(b))
  end)

  it("gives the same bf16 products however the pool splits them (rows with shared packing, columns, batch)",
    function()
      local threads = tc.num_threads()
      tc.set_num_threads(2)
      local cases = {
        { { 300, 64 }, { 64, 40 } },  -- tall: rows split, op(b) packed once for both threads
        { { 20, 64 }, { 64, 700 } },  -- wide: columns split
        { { 4, 40, 64 }, { 4, 64, 50 } }, -- a batch split over the matrices
        { { 300, 64 }, { 40, 64 } },  -- tall with a transposed b (linear's layout)
      }
      for _, case in ipairs(cases) do
        local a, b = tc.randn(case[1]), tc.randn(case[2])
        if #case[2] == 2 and case[2][1] == 40 then
          local out = tc.autocast("bfloat16", function() return tc.linear(a, b) end)
          assert_bf16_product(out, tc.linear(rounded(a), rounded(b)), tc.linear(a, b))
        else
          local out = tc.autocast("bfloat16", function() return a:matmul(b) end)
          assert_bf16_product(out, rounded(a):matmul(rounded(b)), a:matmul(b))
        end
      end
      tc.set_num_threads(threads)
    end)

  it("keeps float64 products in float64", function()
    local a, b = tc.randn({8, 9}):double(), tc.randn({9, 5}):double()
    local out = tc.autocast("bfloat16", function() return a:matmul(b) end)
    assert.are.equal("float64", out.dtype)
    assert.are.equal(0, max_difference(out, a:matmul(b)))
  end)

  it("keeps attention within bf16's tolerance of float32, forward and gradients", function()
    local attention = tc.nn.MultiheadAttention(32, 4, { batch_first = true })
    local x = tc.randn({2, 9, 32})
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
      assert.is_true(off <= 2 * BF16_TOLERANCE * size, ("%g against scale %g"):format(off, size))
      assert.is_true(off > 0, "autocast gave float32's exact result")
    end
  end)

  it("nests: float32 inside turns it off, and the outer setting comes back", function()
    local x, w = tc.randn({5, 33}), tc.randn({7, 33})
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

  it("returns every result and restores the setting when the function raises", function()
    local first, second, third = tc.autocast("bfloat16", function(a, b) return a, nil, b end, 1, 2)
    assert.are.same({ 1, nil, 2 }, { first, second, third })
    local ok, message = pcall(tc.autocast, "bfloat16", function() error("inside") end)
    assert.is_false(ok)
    assert.matches("inside", message)
    assert.are.equal("float32", tc.autocast_dtype())
    ok = pcall(tc.autocast, "bfloat16", function() return tc.linear(tc.randn({2, 3}), tc.randn({4, 5})) end)
    assert.is_false(ok)
    assert.are.equal("float32", tc.autocast_dtype())
  end)

  it("has a guard form: :close() and, on Lua 5.4, <close>", function()
    local guard = tc.autocast("bfloat16")
    assert.are.equal("bfloat16", tc.autocast_dtype())
    guard:close()
    guard:close() -- closing twice restores once
    assert.are.equal("float32", tc.autocast_dtype())
    local ran = lua54([[
      local tc, assert = ...
      local ok = pcall(function()
        local guard <close> = tc.autocast("bfloat16")
        assert.are.equal("bfloat16", tc.autocast_dtype())
        error("leaving")
      end)
      assert.is_false(ok)
    ]], tc, assert)
    if not ran then
      pending("a <close> variable needs Lua 5.4 (the guard's :close() is tested above)")
      return
    end
    assert.are.equal("float32", tc.autocast_dtype())
  end)

  it("leaves the optimiser's update of float32 master weights unchanged", function()
    local w = tc.randn({6, 8}):requires_grad_()
    local x = tc.randn({4, 8})
    local optimizer = tc.optim.SGD({ w }, { lr = 0.1 })
    local before = w:detach():clone()
    local loss = tc.autocast("bfloat16", function() return tc.linear(x, w):sum() end)
    loss:backward()
    local grad = w.grad:clone()
    optimizer:step()
    assert.are.equal("float32", w.dtype)
    assert.is_true(max_difference(w:detach(), before - grad * 0.1) <= 1e-6)
  end)

  -- a fresh process per setting: TRICYCLE_BGEMM is read when a context is made
  local function probe(environment)
    local output, code = command.run(("%s LUA_PATH=%q LUA_CPATH=%q %s spec/helpers/autocast_probe.lua")
      :format(environment, package.path, package.cpath, interpreter))
    assert.are.equal(0, code, output)
    local values = {}
    for key, value in output:gmatch("(%S+) (%S+)\n") do values[key] = tonumber(value) or value end
    return values
  end

  for _, path in ipairs({ "fallback", "avx512", "best" }) do
    it("gives bf16 products on the " .. path .. " path (TRICYCLE_BGEMM)", function()
      local values = probe("TRICYCLE_BGEMM=" .. path)
      assert.is_true(values.linear_error < 1e-3, tostring(values.linear_error))
      assert.is_true(values.weight_error < 1e-5, tostring(values.weight_error))
      if path == "fallback" then
        assert.are.equal("fallback", values.path)
      elseif path == "avx512" then
        assert.are_not.equal("amx", values.path)
      end
    end)
  end

  it("makes no bf16 copy of a weight: it is rounded as it is packed, a block at a time", function()
    local values = probe("")
    -- one bf16 copy of the weight alone would be half its float32 bytes
    assert.is_true(values.peak_rise < values.weight_bytes / 4,
      ("peak rose by %d for a weight of %d bytes"):format(values.peak_rise, values.weight_bytes))
  end)
end)

describe("bfloat16 weights", function()
  it("run linear through the bf16 GEMM: x rounded to bf16, sums in float32", function()
    tc.manual_seed(5)
    local x, w, b = tc.randn({30, 70}), tc.randn({40, 70}), rounded(tc.randn({40}))
    local wb = w:to("bfloat16")
    local out = tc.no_grad(function() return tc.linear(x, wb, b:to("bfloat16")) end)
    local reference = tc.linear(rounded(x), rounded(w), b)
    assert.is_true(max_difference(out, tc.linear(x, rounded(w), b)) > 0, "x was not rounded: not the bf16 GEMM")
    assert.is_true(max_difference(out, reference) <= SUM_TOLERANCE * scale(reference))
    local one = tc.no_grad(function() return tc.linear(x:narrow(1, 1, 1), wb) end)
    reference = tc.linear(rounded(x), rounded(w))
    assert.is_true(max_difference(one, reference:narrow(1, 1, 1)) <= SUM_TOLERANCE * scale(reference))
  end)

  -- up to 4 rows (decoding) read the weight as it is, a GEMV per row, 4 weight rows and 32 depths at a time:
  -- depths and output counts around those multiples, and 5 rows (the packing GEMM) beside them
  it("give a few rows (decoding) the same bf16 product, for every tail of depth and output", function()
    tc.manual_seed(6)
    for _, k in ipairs({ 1, 7, 31, 32, 33, 64, 100 }) do
      for _, n in ipairs({ 1, 3, 4, 5, 63, 64, 65, 130 }) do
        local w, b = tc.randn({ n, k }), rounded(tc.randn({ n }))
        local wb = w:to("bfloat16")
        for rows = 1, 5 do
          local x = tc.randn({ rows, k }) * 3
          local out = tc.no_grad(function() return tc.linear(x, wb, b:to("bfloat16")) end)
          local reference = tc.linear(rounded(x), rounded(w), b)
          local off = max_difference(out, reference)
          assert.is_true(off <= SUM_TOLERANCE * scale(reference),
            ("rows %d, k %d, n %d: %g from the product of rounded operands"):format(rows, k, n, off))
          local gelu = tc.no_grad(function() return tc.linear_gelu(x, wb, b:to("bfloat16")) end)
          assert.is_true(max_difference(gelu, tc.linear_gelu(rounded(x), rounded(w), b)) <= 1e-4 * scale(reference))
        end
      end
    end
    for rows = 1, 5 do -- float16 weights: up to 4 rows widen the weight as they read it (x stays float32)
      local x, w = tc.randn({ rows, 45 }), tc.randn({ 9, 45 })
      local wide = w:to("float16"):to("float32")
      local out = tc.no_grad(function() return tc.linear(x, w:to("float16")) end)
      local reference = tc.linear(x, wide)
      assert.is_true(max_difference(out, reference) <= SUM_TOLERANCE * scale(reference), "float16, rows " .. rows)
    end
    local x = tc.randn({ 2, 33 })
    local w = tc.randn({ 6, 33 })
    local out = tc.no_grad(function() return tc.linear(x, w:to("bfloat16")) end)
    assert.is_true(max_difference(out, tc.linear(x, rounded(w))) > 0, "x was not rounded to bf16")
  end)
end)
