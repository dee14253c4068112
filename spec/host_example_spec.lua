-- examples/host/host.c: a C program embedding Lua with the module linked in
-- runs a GPT forward pass per frame; a frame whose Lua call fails is reported
-- through lua_pcall and the frames after it run.
local command = require("helpers.command")
local build = os.getenv("TRICYCLE_BUILD") or "build"
local host = build .. "/examples/host/host"

local function run(arguments)
  return command.run(("%s %s"):format(host, arguments))
end

describe("the C host example", function()
  if not command.exists(host) then
    it("runs", function() pending(host .. " is not built (it embeds Lua 5.4: `make examples-host`)") end)
    return
  end

  it("reports a bad frame's error and runs the frames after it", function()
    local output, code = run("--frames 30 --cadence-ms 1 --warmup-ms 0 --bad-frame 12")
    assert.are.equal(0, code, output)
    assert.truthy(output:find("frame 12 failed: ", 1, true), output)
    assert.truthy(output:find("GPT: sequence length T = 65 exceeds context_length 64", 1, true), output)
    assert.truthy(output:find("frames run: 29, failed: 1, run after a failure: 18", 1, true), output)
    local parameters, bytes = output:match("(%d+) parameters, (%d+) tensor bytes")
    assert.are.equal(tonumber(parameters) * 4, tonumber(bytes), output)
    assert.truthy(output:match("later frames: frames 19  median [%d.]+ ms"), output)
    -- the workers slept between frames; the collector's floor kept the garbage small
    assert.truthy(output:find("settings: threads %d+, spin 100 us, parked after each frame, collector floor 4194304"),
      output)
    local peak = tonumber(output:match("storage in use [%d.]+ MiB, peak ([%d.]+) MiB"))
    assert.is_true(peak < 8, output)
  end)

  it("--memory-detail accounts for the resident memory; the frames leave only the model's storage in use", function()
    local output, code = run("--frames 20 --cadence-ms 1 --warmup-ms 0 --memory-detail")
    assert.are.equal(0, code, output)
    for _, when in ipairs({ "at start", "after load", "after the frames" }) do
      local total, parts = output:match("memory " .. when .. ": resident ([%d.]+) MiB: ([^\n]+)")
      assert.is_not_nil(total, output)
      local sum = 0
      for part in parts:gmatch("[%d.]+") do sum = sum + tonumber(part) end
      -- VmRSS and the sum over the mappings of smaps are read a moment apart, while the process may still be
      -- touching pages (under AddressSanitizer the start differed by 0.12 MiB): 1% or 0.25 MiB
      local allowed = math.max(0.25, 0.01 * tonumber(total))
      assert.is_true(math.abs(sum - tonumber(total)) < allowed, when .. ": " .. output)
    end
    local bytes = tonumber(output:match("(%d+) tensor bytes"))
    local in_use = tonumber(output:match("memory after the frames: .-storage in use ([%d.]+) MiB"))
    assert.is_true(math.abs(in_use - bytes / 1048576) < 0.01, output)
    assert.truthy(output:find("a collector step after each frame", 1, true), output)
  end)

  it("a budget smaller than the model fails the load with the budget's message", function()
    local output, code = run("--frames 3 --budget 1000000")
    assert.are.equal(1, code, output)
    assert.truthy(output:find("loading the model failed: ", 1, true), output)
    assert.truthy(output:find("out of memory budget", 1, true), output)
    assert.truthy(output:find("of 1000000 in use", 1, true), output)
  end)

  it("a missing checkpoint fails the load naming the path", function()
    local output, code = run("--frames 3 --checkpoint /nonexistent/model.safetensors")
    assert.are.equal(1, code, output)
    assert.truthy(output:find("/nonexistent/model.safetensors", 1, true), output)
  end)

  it("refuses a bad option value, naming it", function()
    local output, code = run("--frames many")
    assert.are.equal(2, code, output)
    assert.truthy(output:find("bad value for --frames: 'many'", 1, true), output)
    output, code = run("--spin 2000000")
    assert.are.equal(2, code, output)
    assert.truthy(output:find("--spin", 1, true), output)
  end)
end)
