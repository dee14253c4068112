-- tc.autocast("bfloat16") and tc.autocast("float16") on the CPU: matrix products read operands rounded to the dtype
-- and sum in float32 (bf16: cpu_bgemm; float16: the float32 GEMM on rounded copies), forward and backward; everything
-- else stays float32. The checks that hold on every device are
-- spec/helpers/autocast_cases.lua's (spec/cuda_emulation_spec.lua runs them on the cuda device); here besides: the
-- Lua forms (results, errors, the guard), each bf16 GEMM path, and no bf16 copy of a weight.
local tc = require("tricycle")
local lua54 = require("helpers.lua54")
local interpreter = require("helpers.interpreter")
local command = require("helpers.command")
local autocast_cases = require("helpers.autocast_cases")

describe("tc.autocast", function()
  for _, case in ipairs(autocast_cases.on("cpu")) do it(case.name, case.run) end

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

  it("takes the dtype aliases tc.tensor takes (half, bf16) and reports the dtype's name", function()
    assert.are.equal("float16", tc.autocast("half", tc.autocast_dtype))
    assert.are.equal("bfloat16", tc.autocast("bf16", tc.autocast_dtype))
    assert.are.equal("float32", tc.autocast("float16", function() return tc.autocast("float", tc.autocast_dtype) end))
    local guard = tc.autocast("float16")
    assert.are.equal("float16", tc.autocast_dtype())
    guard:close()
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
      assert.is_true(values.weight_error < 1e-5, tostring(values.weight_error)) -- bf16 weights, GEMVs and GEMM
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

describe("bfloat16 and float16 weights on the CPU", function()
  local rounded, max_difference, scale = autocast_cases.rounded, autocast_cases.max_difference, autocast_cases.scale
  local SUM_TOLERANCE = autocast_cases.SUM_TOLERANCE

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
    local x = tc.randn({ 2, 33 })
    local w = tc.randn({ 6, 33 })
    local out = tc.no_grad(function() return tc.linear(x, w:to("bfloat16")) end)
    assert.is_true(max_difference(out, tc.linear(x, rounded(w))) > 0, "x was not rounded to bf16")
  end)

  it("give a few rows (decoding) with float16 weights the float32 product of the widened weight", function()
    tc.manual_seed(8)
    for rows = 1, 5 do -- up to 4 rows widen the weight as they read it (x stays float32)
      local x, w = tc.randn({ rows, 45 }), tc.randn({ 9, 45 })
      local out = tc.no_grad(function() return tc.linear(x, w:to("float16")) end)
      local reference = tc.linear(x, w:to("float16"):to("float32"))
      assert.is_true(max_difference(out, reference) <= SUM_TOLERANCE * scale(reference), "float16, rows " .. rows)
    end
  end)

  it("under float16 autocast read x rounded to float16 too, a few rows or many", function()
    tc.manual_seed(9)
    for _, rows in ipairs({ 1, 4, 5, 40 }) do -- the decoding GEMV gives way to the blocks' GEMMs, which round x
      local x, w = tc.randn({ rows, 45 }) * 3, tc.randn({ 9, 45 })
      local out = tc.no_grad(tc.autocast, "float16", function() return tc.linear(x, w:to("float16")) end)
      local reference = tc.linear(rounded(x, "float16"), rounded(w, "float16"))
      assert.is_true(max_difference(out, reference) <= SUM_TOLERANCE * scale(reference), "rows " .. rows)
      assert.is_true(max_difference(out, tc.linear(x, rounded(w, "float16"))) > 0, "x was not rounded, rows " .. rows)
    end
  end)
end)
