-- bfloat16 and float16 through the op list: every floating case of
-- spec/op_cases.lua runs again with 16-bit inputs against float32 on the
-- same values (spec/helpers/op_runner.lua, runner.half_tests); the ops
-- without a 16-bit path must refuse by name, and docs/API.md lists them.
local tc = require("tricycle")
local runner = require("helpers.op_runner")
local rows = require("op_cases")

-- The ops that refuse 16-bit tensors (docs/API.md, "bfloat16 and float16").
local REFUSING = {
  adamw_step = true, sgd_step = true, scale_ = true, global_norm = true, attention_cached = true,
}

describe("ops on 16-bit inputs", function()
  for _, test in ipairs(runner.half_tests("cpu", rows, REFUSING, { other = "cpu" })) do
    it(test.group .. ": " .. test.name, test.run)
  end
end)
