-- require("tricycle") loads the composed functions (composed.lua, conv.lua,
-- selection.lua), the printer and the rarer nn classes on first use, so that a
-- host running a GPT keeps their code out of memory. Each scenario of
-- spec/helpers/lazy_probe.lua runs in a fresh Lua state, where its first use of
-- a name must give what it gives here, with the library fully loaded.
local tc = require("tricycle")
local interpreter = require("helpers.interpreter")
local command = require("helpers.command")
local lazy_probe = require("helpers.lazy_probe")

local function probe(scenario)
  local output, code = command.run(("LUA_PATH=%q LUA_CPATH=%q %s spec/helpers/lazy_probe.lua %s")
    :format(package.path, package.cpath, interpreter, scenario))
  assert.are.equal(0, code, output)
  local values = {}
  for key, value in output:gmatch("(%S+) ([^\n]*)\n") do
    values[key] = value
  end
  return values
end

local function split(text)
  local set = {}
  for name in text:gmatch("[^,]+") do
    set[name] = true
  end
  return set
end

local lazy = { "tricycle.composed", "tricycle.conv", "tricycle.selection", "tricycle.format", "tricycle.nn.llama",
  "tricycle.nn.distributed", "tricycle.nn.attention", "tricycle.nn.conv" }

-- The scenario's results in a fresh state against here, its lists of loaded modules left out.
local function assert_same_results(scenario)
  local got = probe(scenario)
  for key, expected in pairs(lazy_probe.scenarios[scenario](tc)) do
    if not key:find("^after") then
      assert.are.equal(expected, got[key], scenario .. ": " .. key)
    end
  end
  return got
end

describe("lazy loading", function()
  it("keeps the composed functions, the printer and the rarer nn classes unloaded while a GPT runs", function()
    local got = assert_same_results("gpt")
    for _, key in ipairs({ "after_require", "after_gpt" }) do
      local loaded = split(got[key])
      for _, name in ipairs(lazy) do
        assert.is_nil(loaded[name], key .. " loaded " .. name)
      end
    end
    assert.is_true(split(got.after_gpt)["tricycle.nn.gpt"])
  end)

  it("names in init.lua's stub list every engine method that the composed modules replace", function()
    assert.are.equal("index_add,sort,topk", probe("overrides").replaced)
  end)

  for _, scenario in ipairs({ "sort", "topk", "index_add", "range", "tostring", "function", "method", "nn",
    "missing", "ops" }) do
    it("gives on first use what the loaded library gives: " .. scenario, function()
      local got = assert_same_results(scenario)
      assert.is_nil(split(got.after_require)["tricycle.composed"])
    end)
  end

  it("loads composed.lua for a composed function, and a missing name is still nil", function()
    assert.is_true(split(probe("function").after)["tricycle.composed"])
    assert.are.equal("table,table,table,table,table", probe("nn").classes)
    assert.are.equal("nil,nil,nil", probe("missing").missing)
  end)
end)
