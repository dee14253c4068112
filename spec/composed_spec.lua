-- tricycle.composed: the creation functions and shape methods made of engine ops (their checks on one
-- device are in spec/helpers/composed_checks.lua, run on the cuda device by spec/cuda_emulation_spec.lua).
local tc = require("tricycle")

describe("composed functions", function()
  it("shape methods and *_like functions on the cpu: values, views and exact gradients", function()
    require("helpers.composed_checks").check("cpu")
  end)

  it("linspace: both ends exact, evenly spaced, any count", function()
    assert.are.same({ 0, 0.25, 0.5, 0.75, 1 }, tc.linspace(0, 1, 5):totable())
    local t = tc.linspace(-3, 7, 11, { dtype = "float64" })
    assert.are.equal("float64", t.dtype)
    for i, v in ipairs(t:totable()) do
      assert.are.equal(-3 + (i - 1), v)
    end
    local long = tc.linspace(0.1, 0.7, 7, { dtype = "float64" }):totable()
    assert.are.equal(0.1, long[1])
    assert.are.equal(0.7, long[7])
    assert.are.same({ 2 }, tc.linspace(2, 5, 1):totable())
    assert.are.same({ 0 }, tc.linspace(0, 1, 0).shape)
    assert.is_true(tc.linspace(0, 1, 3, { requires_grad = true }).requires_grad)
  end)

  it("randint: integers in [low, high), repeatable under manual_seed, every value reached", function()
    tc.manual_seed(5)
    local first = tc.randint(-2, 3, { 400 })
    tc.manual_seed(5)
    assert.are.same(first:totable(), tc.randint(-2, 3, { 400 }):totable())
    assert.are.equal("int64", first.dtype)
    local seen = {}
    for _, v in ipairs(first:totable()) do
      assert.is_true(v >= -2 and v < 3, v)
      seen[v] = true
    end
    for v = -2, 2 do
      assert.is_true(seen[v], "never drew " .. v)
    end
    assert.are.same({ 2, 3 }, tc.randint(10, { 2, 3 }, { dtype = "int32" }).shape)
    assert.are.equal("int32", tc.randint(10, { 2 }, { dtype = "int32" }).dtype)
  end)

  it("randperm: a permutation of 0 .. n - 1, repeatable under manual_seed", function()
    tc.manual_seed(3)
    local p = tc.randperm(50):totable()
    tc.manual_seed(3)
    assert.are.same(p, tc.randperm(50):totable())
    local sorted = {}
    for i, v in ipairs(p) do
      sorted[i] = v
    end
    table.sort(sorted)
    for i = 1, 50 do
      assert.are.equal(i - 1, sorted[i])
    end
    assert.are_not.same(sorted, p)
    assert.are.same({ 0 }, tc.randperm(0).shape)
    assert.are.same({ 0 }, tc.randperm(1):totable())
  end)

  it("eye: square and rectangular, any dtype", function()
    assert.are.same({ { 1, 0 }, { 0, 1 } }, tc.eye(2):totable())
    assert.are.same({ { 1, 0, 0 }, { 0, 1, 0 } }, tc.eye(2, 3, { dtype = "int64" }):totable())
    assert.are.same({ { true, false }, { false, true }, { false, false } }, tc.eye(3, 2, { dtype = "bool" }):totable())
    assert.are.equal("float64", tc.eye(2, { dtype = "float64" }).dtype)
    assert.are.same({ 0, 4 }, tc.eye(0, 4).shape)
  end)

  it("split, chunk and unbind give views: a write through one shows in the source", function()
    local a = tc.zeros({ 2, 4 })
    a:split(2, 2)[2]:fill_(1)
    a:unbind(1)[1]:fill_(2)
    assert.are.same({ { 2, 2, 2, 2 }, { 0, 0, 1, 1 } }, a:totable())
    assert.are.equal(1, #tc.zeros({ 0, 3 }):split(2))
    assert.are.equal(4, #tc.zeros({ 4 }):chunk(6))
  end)

  it("t() leaves 0-D and 1-D tensors as they are", function()
    assert.are.same({ 1, 2 }, tc.tensor({ 1, 2 }):t():totable())
    assert.are.equal(3, tc.tensor(3):t():item())
  end)
end)
