-- tc.autograd.grad and t:register_hook: gradients against hand-derived values and against backward's.
local tc = require("tricycle")

local function close(actual, expected, tolerance)
  local a = actual:totable()
  assert.are.equal(#expected, #a)
  for i = 1, #a do
    assert.is_true(math.abs(a[i] - expected[i]) <= (tolerance or 1e-12), ("element %d: %s, expected %s"):format(i,
      tostring(a[i]), tostring(expected[i])))
  end
end

local function f64(values)
  return tc.tensor(values, { dtype = "float64" }):requires_grad_(true)
end

describe("tc.autograd.grad", function()
  it("gives d/dx and d/dw of sum((x w)^2) without touching .grad", function()
    local x, w = f64({ 1, 2, 3 }), f64({ 2, -1, 0.5 })
    local h = x * w
    local grads = tc.autograd.grad((h * h):sum(), { x, w, h })
    -- d/dx = 2 x w^2, d/dw = 2 w x^2, d/dh = 2 h
    close(grads[1], { 8, 4, 1.5 })
    close(grads[2], { 4, -8, 9 })
    close(grads[3], { 4, -4, 3 })
    assert.is_nil(x.grad)
    assert.is_nil(w.grad)
  end)
  it("matches backward on a small network, and the graph is freed unless retain_graph", function()
    tc.manual_seed(1)
    local w1 = tc.randn({ 3, 4 }, { dtype = "float64" }):requires_grad_(true)
    local x = tc.randn({ 5, 4 }, { dtype = "float64" })
    local loss = (x:matmul(w1:t()):tanh() * 2):sum()
    local g = tc.autograd.grad(loss, w1, { retain_graph = true })[1]
    loss:backward()
    assert.are.same(w1.grad:totable(), g:totable())
    local again = (x:matmul(w1:t())):sum()
    tc.autograd.grad(again, w1)
    assert.has_error(function() tc.autograd.grad(again, w1) end)
  end)
  it("weights several outputs by grad_outputs; allow_unused gives false", function()
    local x, unused = f64({ 1, 2 }), f64({ 7 })
    local grads = tc.autograd.grad({ x * x, x * 3 }, { x, unused }, {
      grad_outputs = { tc.tensor({ 1, 1 }, { dtype = "float64" }), tc.tensor({ 2, 0 }, { dtype = "float64" }) },
      allow_unused = true })
    close(grads[1], { 2 + 6, 4 })
    assert.are.equal(false, grads[2])
  end)
  it("a returned gradient is its own tensor: changing it changes nothing else", function()
    local x = f64({ 1, 2 })
    local seed = tc.tensor({ 3, 4 }, { dtype = "float64" })
    local g = tc.autograd.grad(x, x, { grad_outputs = seed })[1]
    g:copy_(tc.zeros({ 2 }, { dtype = "float64" }))
    assert.are.same({ 3, 4 }, seed:totable())
  end)
end)

describe("t:register_hook", function()
  it("sees the whole gradient of a leaf used twice and may replace it", function()
    local x = f64({ 1, 2 })
    local seen = {}
    x:register_hook(function(g) seen[#seen + 1] = g:totable(); return g:clamp(nil, 5) end)
    local loss = (x * 3):sum() + (x * x):sum()
    loss:backward()
    assert.are.same({ { 5, 7 } }, seen) -- 3 + 2x, once
    close(x.grad, { 5, 5 })
  end)
  it("on a non-leaf changes what flows on; handles remove hooks", function()
    local x = f64({ 1, 2 })
    local y = x * 2
    local handle = y:register_hook(function(g) return g * 10 end)
    local loss = y:sum()
    loss:backward(nil, { retain_graph = true })
    close(x.grad, { 20, 20 })
    handle:remove()
    handle:remove()
    x.grad = nil
    loss:backward()
    close(x.grad, { 2, 2 })
  end)
  it("runs in order, each on the one before's result, and under autograd.grad too", function()
    local x = f64({ 1 })
    x:register_hook(function(g) return g + 1 end)
    x:register_hook(function(g) return g * 3 end)
    close(tc.autograd.grad((x * 2):sum(), x)[1], { 9 })
    assert.is_nil(x.grad)
  end)
  it("a replacement the hook keeps is copied into .grad, not shared", function()
    local x = f64({ 1, 2 })
    local kept
    x:register_hook(function(g) kept = g * 2; return kept end)
    local loss = (x * 1):sum()
    loss:backward()
    kept:copy_(tc.zeros({ 2 }, { dtype = "float64" }))
    close(x.grad, { 2, 2 })
  end)
  it("before a leaf's on_grad_ready hook", function()
    local x = f64({ 1 })
    local ready
    x:register_hook(function(g) return g * 4 end)
    x:on_grad_ready(function(t) ready = t.grad:totable()[1] end)
    local loss = (x * 2):sum()
    loss:backward()
    assert.are.equal(8, ready)
  end)
end)
