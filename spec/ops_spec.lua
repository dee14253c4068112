-- The op list (spec/op_cases.lua) on the CPU: every case's forward values
-- against its plain-Lua reference, gradients against central finite
-- differences in float64 and float32 gradients against float64's, and each
-- op's properties from tc.ops() (spec/helpers/op_runner.lua says how), the
-- engine's ops and the functions composed of them in Lua alike. The
-- same list runs on the cuda device in spec/cuda_emulation_spec.lua. The
-- coverage spec below fails when an op of tc.ops() has no row, a row names
-- an op that is not listed, or a row lacks the gradient or integer case its
-- op's properties call for.
local tc = require("tricycle")
local runner = require("helpers.op_runner")
local rows = require("op_cases")

-- t:to(other) in the to_device row: the cuda device when it works, else the CPU itself.
local other = require("helpers.cuda_probe").cuda_available() and "cuda" or "cpu"

describe("ops on the CPU", function()
  for _, test in ipairs(runner.tests("cpu", rows, { other = other })) do
    it(test.group .. ": " .. test.name, test.run)
  end
end)

describe("ops: the op list", function()
  local ops = tc.ops()

  it("lists ops with a name, an arity, properties and a summary", function()
    assert.is_true(#ops > 40)
    local seen = {}
    for _, op in ipairs(ops) do
      assert.are.equal("string", type(op.name))
      assert.is_nil(seen[op.name], "listed twice: " .. op.name)
      seen[op.name] = true
      assert.are.equal("number", type(op.arity))
      for _, property in ipairs({ "differentiable", "float_only", "integers", "bool_result", "view", "in_place",
        "fused", "method", "internal", "composed" }) do
        assert.are.equal("boolean", type(op[property]), op.name .. "." .. property)
      end
      assert.is_true(type(op.summary) == "string" and #op.summary > 0)
    end
  end)

  it("lists every function of tricycle.composed, each reachable by its name", function()
    local composed = require("tricycle.composed")
    local listed, engine = {}, {}
    for _, op in ipairs(ops) do
      engine[op.name] = not op.composed
      if op.composed then
        listed[op.name] = true
        local fn = op.method and tc.Tensor.methods[op.name] or tc[op.name]
        assert.are.equal("function", type(fn), op.name)
      end
    end
    for _, names in ipairs({ composed.functions, composed.methods }) do
      for name in pairs(names) do
        -- an engine op's front (tc.scatter_add, index_add's alpha) is listed as the engine op
        assert.is_true(listed[name] or engine[name] or name == "repeat", name .. " is composed but not in tc.ops()")
      end
    end
  end)

  it("has one row per op of tc.ops(), with the cases its properties call for", function()
    assert.are.same({}, runner.coverage(rows, ops))
  end)
end)
