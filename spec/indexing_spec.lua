-- Torch7's indexing of tensors (lua/tricycle/selection.lua): t[{ranges}] views and their gradients, assignments
-- through them, t[mask] and t[mask] = value, beside the methods, fields and integer positions t[...] already took.
local tc = require("tricycle")

local function grid()
  return tc.arange(12):reshape(3, 4):to("float64")
end

describe("t[{...}]", function()
  it("keeps methods, fields and integer positions", function()
    local x = grid()
    assert.are.equal("function", type(x.sum))
    assert.are.same({ 3, 4 }, x.shape)
    assert.are.same({ 4, 5, 6, 7 }, x[2]:totable())
    assert.are.same({ 8, 9, 10, 11 }, x[-1]:totable())
  end)

  it("selects with numbers, narrows with {first, last} and {first}, keeps {} whole", function()
    local x = grid()
    assert.are.same({ 4, 8 }, x[{ { 2, 3 }, 1 }]:totable())
    assert.are.same({ { 1 }, { 5 }, { 9 } }, x[{ {}, { 2 } }]:totable())
    assert.are.same({ { 6, 7 } }, x[{ { -2, -2 }, { 3, -1 } }]:totable())
    assert.are.equal(11, x[{ -1, -1 }]:item())
    assert.are.same({ 3, 4 }, x[{}].shape)
    assert.are.same({ 4, 5, 6, 7 }, x[{ 2 }]:totable())
  end)

  it("gives views that share storage", function()
    local x = grid()
    local column = x[{ { 1, 2 }, 4 }]
    x:fill_(1)
    assert.are.same({ 1, 1 }, column:totable())
  end)

  it("differentiates through the views", function()
    local x = grid():requires_grad_(true)
    local picked = x[{ { 2, 3 }, { 2, 3 } }]
    ;(picked * picked):sum():backward()
    assert.are.same({ { 0, 0, 0, 0 }, { 0, 10, 12, 0 }, { 0, 18, 20, 0 } }, x.grad:totable())
  end)

  it("assigns a number, or a tensor broadcast to the region, in place", function()
    local x = grid()
    x[{ { 1, 2 }, 1 }] = -1
    x[3] = tc.tensor({ 7, 8, 9, 10 }, { dtype = "float64" })
    x[{ {}, { 4 } }] = tc.tensor({ 0 }, { dtype = "float64" })
    assert.are.same({ { -1, 1, 2, 0 }, { -1, 5, 6, 0 }, { 7, 8, 9, 0 } }, x:totable())
  end)

  it("counts an assignment as a write for the backward's version check", function()
    local a = tc.tensor({ 1, 2, 3 }, { dtype = "float64" }):requires_grad_(true)
    local b = tc.tensor({ 4, 5, 6 }, { dtype = "float64" })
    local product = (a * b):sum()
    b[1] = 0
    assert.has_error(function() product:backward() end)
  end)

  it("assigns into a tensor that requires grad under no_grad", function()
    local x = tc.zeros({ 3 }, { dtype = "float64" }):requires_grad_(true)
    tc.no_grad(function() x[{ { 2, 3 } }] = 5 end)
    assert.are.same({ 0, 5, 5 }, x:totable())
  end)
end)

describe("t[mask]", function()
  it("selects the true elements in row-major order, with a gradient", function()
    local x = grid():requires_grad_(true)
    local mask = x:detach():gt(8)
    local picked = x[mask]
    assert.are.same({ 9, 10, 11 }, picked:totable())
    picked:sum():backward()
    assert.are.same({ { 0, 0, 0, 0 }, { 0, 0, 0, 0 }, { 0, 1, 1, 1 } }, x.grad:totable())
  end)

  it("broadcasts a mask over rows", function()
    local x = grid()
    assert.are.same({ 0, 3, 4, 7, 8, 11 }, x[tc.tensor({ { 1, 0, 0, 1 } }):gt(0)]:totable())
  end)

  it("assigns a number, one value per true element, or one value for all", function()
    local x = grid()
    x[x:lt(2)] = -100
    assert.are.same({ -100, -100, 2, 3 }, x[1]:totable())
    x[x:gt(9)] = tc.tensor({ -10, -11 }, { dtype = "float64" })
    assert.are.same({ 8, 9, -10, -11 }, x[3]:totable())
    x[x:lt(0)] = tc.tensor({ 1 }, { dtype = "float64" })
    assert.are.same({ 8, 9, 1, 1 }, x[3]:totable())
    x[tc.tensor({ 0, 1, 0, 0 }):gt(0)] = 0 -- broadcast over the rows
    assert.are.same({ { 1, 0, 2, 3 }, { 4, 0, 6, 7 }, { 8, 0, 1, 1 } }, x:totable())
  end)

  it("assigns into integer tensors", function()
    local x = tc.tensor({ 1, 2, 3 }, { dtype = "int64" })
    x[x:ge(2)] = tc.tensor({ 20, 30 }, { dtype = "int64" })
    assert.are.same({ 1, 20, 30 }, x:totable())
  end)

  it("leaves the tensor as it was when nothing is selected", function()
    local x = tc.tensor({ 1, 2 })
    x[x:gt(5)] = tc.empty({ 0 })
    assert.are.same({ 1, 2 }, x:totable())
  end)
end)
