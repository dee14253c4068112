local lua_command = require("helpers.interpreter")
-- The examples run as a user would run them and reach what they promise.
local build = os.getenv("TRICYCLE_BUILD") or "build"
local fused_it = it

local function run(script)
  local command = ("TRICYCLE_BUILD=%q " .. lua_command .. " %s 2>&1"):format(build, script)
  local output, code = assert(require("tricycle.compat").popen_read(command))
  return output, code == 0 or nil, code
end

describe("examples", function()
  fused_it("classifier.lua separates the spirals with at least 95% accuracy", function()
    local output, ok = run("examples/classifier.lua")
    assert.is_true(ok, output)
    local accuracy = tonumber(output:match("final accuracy ([%d%.]+)%%"))
    assert.is_not_nil(accuracy, output)
    assert.is_true(accuracy >= 95, output)
  end)

  it("iris.lua classifies Fisher's iris with accuracy at least 0.95", function()
    local output, ok = run("examples/iris.lua")
    assert.is_true(ok, output)
    local accuracy = tonumber(output:match("accuracy ([%d%.]+)"))
    assert.is_not_nil(accuracy, output)
    assert.is_true(accuracy >= 0.95, output)
  end)

  fused_it("digits.lua's CNN reaches at least 97% test accuracy on the 8x8 digits", function()
    local output, ok = run("examples/digits.lua")
    assert.is_true(ok, output)
    local accuracy = tonumber(output:match("final test accuracy ([%d%.]+)%%"))
    assert.is_not_nil(accuracy, output)
    assert.is_true(accuracy >= 97, output)
  end)

  fused_it("gpt_minimal.lua trains: its last loss is well below its first", function()
    local output, ok = run("examples/gpt_minimal.lua")
    assert.is_true(ok, output)
    local losses = {}
    for value in output:gmatch("loss ([%d%.]+)") do
      losses[#losses + 1] = tonumber(value)
    end
    assert.is_true(#losses >= 5, output)
    assert.is_true(losses[#losses] < 0.5 * losses[1], output)
  end)
end)
