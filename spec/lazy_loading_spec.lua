-- require("tricycle") loads the composed functions (composed.lua, conv.lua,
-- selection.lua), the printer and the rarer nn classes on first use, so that a
-- host running a GPT keeps their code out of memory. Each case runs a fresh
-- Lua state (spec/helpers/lazy_probe.lua) whose first use of a name must give
-- what the fully loaded library gives here.
local tc = require("tricycle")
local interpreter = require("helpers.interpreter")
local command = require("helpers.command")

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

local function values(t)
  local list = {}
  for i = 1, t:numel() do
    list[i] = t:reshape({ -1 })[i]:item()
  end
  return table.concat(list, ",")
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

describe("lazy loading", function()
  it("keeps the composed functions, the printer and the rarer nn classes unloaded while a GPT runs", function()
    local got = probe("gpt")
    for _, key in ipairs({ "after_require", "after_gpt" }) do
      local loaded = split(got[key])
      for _, name in ipairs(lazy) do
        assert.is_nil(loaded[name], key .. " loaded " .. name)
      end
    end
    assert.is_true(split(got.after_gpt)["tricycle.nn.gpt"])
    assert.is_truthy(got.argmax:match("^%d+$"))
  end)

  it("names in init.lua's stub list every engine method that the composed modules replace", function()
    assert.are.equal("index_add,sort,topk", probe("overrides").replaced)
  end)

  it("gives the replaced engine methods their wrappers on first use", function()
    local sorted, order = tc.tensor({ { 3, 1, 2 }, { 0, 5, 4 } }):sort(2, { descending = true })
    assert.are.equal(values(sorted) .. " order " .. values(order), probe("sort").sorted)
    local top, where = tc.tensor({ 3, 1, 2, 9 }):topk(2)
    assert.are.equal(values(top) .. " where " .. values(where), probe("topk").top)
    local added = tc.zeros({ 3 }):index_add(1, tc.tensor({ 0, 2 }, { dtype = "int64" }), tc.tensor({ 1, 2 }),
      { alpha = 3 })
    assert.are.equal(values(added), probe("index_add").index_add)
  end)

  it("indexes by ranges, prints, and finds composed functions and methods on first use", function()
    local t = tc.arange(0, 6):reshape({ 2, 3 })
    local range = probe("range")
    assert.are.equal(values(t[{ { 1, 2 }, 2 }]), range.range)
    t[{ 1, { 2, 3 } }] = 7
    assert.are.equal(values(t), range.assigned)
    assert.are.equal(tostring(tc.tensor({ 1.5, 2 })):gsub("%s+", "_"), probe("tostring").text)
    local linspace = probe("function")
    assert.are.equal(values(tc.linspace(0, 1, 5)), linspace.linspace)
    assert.is_true(split(linspace.after)["tricycle.composed"])
    assert.are.equal(tostring(#tc.arange(0, 6):chunk(3)), probe("method").chunks)
  end)

  it("finds the rarer nn classes on first use, and a missing name is still nil", function()
    assert.are.equal("table,table,table,table,table", probe("nn").classes)
    assert.are.equal("nil,nil,nil", probe("missing").missing)
  end)

  it("lists the composed ops in tc.ops() in a fresh state", function()
    local composed = 0
    for _, op in ipairs(tc.ops()) do
      if op.composed then
        composed = composed + 1
      end
    end
    assert.is_true(composed > 0)
    assert.are.equal(tostring(composed), probe("ops").composed_ops)
  end)
end)
