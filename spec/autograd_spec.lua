-- Autograd behaviours: reuse of a tensor, shared weights, accumulation,
-- no-grad, detach, zeroing, non-scalar outputs, freed graphs, Lua functions.
local lua54 = require("helpers.lua54")
local tc = require("tricycle")
local G = require("helpers.gradcheck")

local F64 = { dtype = "float64" }
local function leaf(values) return tc.tensor(values, { dtype = "float64", requires_grad = true }) end

describe("autograd", function()
  it("sums the gradients of a tensor used twice", function()
    local x = leaf({ 1, -2, 3 })
    ;(x * x):sum():backward()
    assert.are.same({ 2, -4, 6 }, x.grad:totable())
    local y = leaf({ 1, -2, 3 })
    ;(y + y):sum():backward()
    assert.are.same({ 2, 2, 2 }, y.grad:totable())
    local z = leaf({ 0.5, 2 })
    ;(z * z * z + z):sum():backward()
    G.assert_close(z.grad:totable(), { 3 * 0.25 + 1, 3 * 4 + 1 }, { rtol = 1e-12 })
  end)

  it("gives every leaf a gradient buffer of its own, even where backward hands one tensor to several", function()
    -- add's backward passes one fresh gradient (k, from the product) to all three leaves
    local a, b, c = leaf({ 1, 2, 3 }), leaf({ 4, 5, 6 }), leaf({ 7, 8, 9 })
    local k = tc.tensor({ 2, 3, 4 }, F64)
    ;(((a + b) + c) * k):sum():backward()
    assert.are.same({ 2, 3, 4 }, a.grad:totable())
    a.grad:fill_(10)
    assert.are.same({ 2, 3, 4 }, b.grad:totable())
    assert.are.same({ 2, 3, 4 }, c.grad:totable())
    b.grad:scale_(3)
    assert.are.same({ 10, 10, 10 }, a.grad:totable())
    assert.are.same({ 2, 3, 4 }, c.grad:totable())
    -- a gradient that is a view of something larger is copied, not kept
    local w = leaf({ { 1, 2 }, { 3, 4 } })
    local r = w:reshape({ 4 })
    r:sum():backward()
    assert.is_true(w.grad:is_contiguous())
    assert.are.same({ { 1, 1 }, { 1, 1 } }, w.grad:totable())
  end)

  it("gives a layer-like function called twice the sum of both uses", function()
    local w = leaf({ 0.5, -1.5, 2 })
    local function layer(input) return (input * w):tanh() end
    local x = tc.tensor({ 0.3, 0.2, -0.4 }, F64)
    local out = layer(layer(x)):sum()
    out:backward()
    -- reference by hand: h = tanh(x w), y = tanh(h w)
    local expected = {}
    for i, xi in ipairs({ 0.3, 0.2, -0.4 }) do
      local wi = ({ 0.5, -1.5, 2 })[i]
      local h = math.tanh(xi * wi)
      local y = math.tanh(h * wi)
      local dy = 1 - y * y
      local dh = 1 - h * h
      expected[i] = dy * (h + wi * dh * xi)
    end
    G.assert_close(w.grad:totable(), expected, { rtol = 1e-10 })
    assert.is_true(G.gradcheck(tc, function(weight)
      local function again(input) return (input * weight):tanh() end
      return again(again(tc.tensor({ 0.3, 0.2, -0.4 }, F64)))
    end, { leaf({ 0.5, -1.5, 2 }) }))
  end)

  it("accumulates gradients across two backward calls", function()
    local x = leaf({ 1, 2 })
    ;(x * 3):sum():backward()
    ;(x * x):sum():backward()
    assert.are.same({ 3 + 2, 3 + 4 }, x.grad:totable())
  end)

  it("records nothing under tc.no_grad(fn)", function()
    local x = leaf({ 1, 2 })
    local y, extra = tc.no_grad(function(a) return a * 2, "second" end, x)
    assert.is_false(y.requires_grad)
    assert.is_nil(y.grad_fn)
    assert.are.equal("second", extra)
    assert.is_true(tc.is_grad_enabled())
    local z = x * 2
    assert.is_true(z.requires_grad)
    assert.are.equal("string", type(z.grad_fn))
  end)

  it("restores grad mode when the function given to no_grad raises", function()
    local ok, message = pcall(tc.no_grad, function() error("inside") end)
    assert.is_false(ok)
    assert.matches("inside", message)
    assert.is_true(tc.is_grad_enabled())
  end)

  it("records nothing inside a <close> no_grad guard and resumes after it", function()
    local x = leaf({ 1, 2 })
    local ran = lua54([[
      local tc, x, assert = ...
      do
        local guard <close> = tc.no_grad()
        local y = x * 2
        assert.is_false(y.requires_grad)
        assert.is_nil(y.grad_fn)
        assert.is_false(tc.is_grad_enabled())
      end
    ]], tc, x, assert)
    if not ran then
      pending("a <close> variable needs Lua 5.4 (the guard's :close() is the plain form, tested below)")
      return
    end
    assert.is_true(tc.is_grad_enabled())
    assert.is_true((x * 2).requires_grad)
  end)

  it("records nothing while a no_grad guard is open, on every Lua (guard:close())", function()
    local x = leaf({ 1, 2 })
    local guard = tc.no_grad()
    local y = x * 2
    assert.is_false(y.requires_grad)
    assert.is_false(tc.is_grad_enabled())
    guard:close()
    guard:close()
    assert.is_true(tc.is_grad_enabled())
    assert.is_true((x * 2).requires_grad)
  end)

  it("nests no_grad blocks and restores the state each one found", function()
    local x = leaf({ 1 })
    tc.no_grad(function()
      tc.no_grad(function() end)
      assert.is_false(tc.is_grad_enabled())
      tc.no_grad():close()
      assert.is_false(tc.is_grad_enabled())
      -- code that saves and restores the mode (as optimisers do) inside no_grad
      local saved = tc.is_grad_enabled()
      tc.set_grad_enabled(false)
      tc.set_grad_enabled(saved)
      assert.is_false((x * 2).requires_grad)
    end)
    assert.is_true(tc.is_grad_enabled())
    assert.is_true((x * 2).requires_grad)
  end)

  it("detaches: no gradient flows through a detached tensor, storage is shared", function()
    local x = leaf({ 1, 2 })
    local d = x:detach()
    assert.is_false(d.requires_grad)
    assert.is_nil(d.grad_fn)
    ;(x * d):sum():backward()
    assert.are.same({ 1, 2 }, x.grad:totable())
    d:fill_(5)
    assert.are.same({ 5, 5 }, x:totable())
  end)

  it("clears gradients with zero_grad and with x.grad = nil", function()
    local x = leaf({ 1, 2 })
    ;(x * x):sum():backward()
    x:zero_grad()
    assert.is_true(x.grad == nil or x.grad:sum():item() == 0)
    ;(x * 3):sum():backward()
    assert.are.same({ 3, 3 }, x.grad:totable())
    x.grad = nil
    assert.is_nil(x.grad)
    ;(x * 4):sum():backward()
    assert.are.same({ 4, 4 }, x.grad:totable())
  end)

  it("needs a gradient for a non-scalar backward and uses one when given", function()
    local x = leaf({ 1, 2, 3 })
    local y = x * x
    local ok, message = pcall(function() y:backward() end)
    assert.is_false(ok)
    assert.matches("backward", message)
    y:backward(tc.tensor({ 1, 0.5, -1 }, F64))
    assert.are.same({ 2, 2, -6 }, x.grad:totable())
  end)

  it("errors clearly on a second backward through a freed graph, and retains with retain_graph", function()
    local x = leaf({ 1, 2 })
    local y = (x * x):sum()
    y:backward()
    local ok, message = pcall(function() y:backward() end)
    assert.is_false(ok)
    assert.matches("backward", message)
    assert.matches("retain_graph", message)

    local z = leaf({ 1, 2 })
    local w = (z * z):sum()
    w:backward(nil, { retain_graph = true })
    w:backward()
    assert.are.same({ 4, 8 }, z.grad:totable())
  end)

  it("leaves non-leaf tensors without .grad and marks leaves", function()
    local x = leaf({ 1, 2 })
    local y = x * 2
    assert.is_true(x.is_leaf)
    assert.is_false(y.is_leaf)
    y:sum():backward()
    assert.is_nil(y.grad)
  end)

  it("does not give gradients to inputs that do not require them", function()
    local x = leaf({ 1, 2 })
    local c = tc.tensor({ 3, 4 }, F64)
    ;(x * c):sum():backward()
    assert.is_nil(c.grad)
    assert.are.same({ 3, 4 }, x.grad:totable())
  end)
end)

describe("tc.Function (a differentiable op written in Lua)", function()
  local Cube = tc.Function {
    name = "cube",
    forward = function(ctx, x, scale)
      ctx.x, ctx.scale = x, scale
      return x * x * x * scale
    end,
    backward = function(ctx, grad)
      return grad * ctx.x * ctx.x * (3 * ctx.scale)
    end,
  }

  it("computes its forward and backprops through its backward", function()
    local x = leaf({ 1, -2 })
    local y = Cube(x, 2)
    assert.are.same({ 2, -16 }, y:totable())
    assert.is_true(y.requires_grad)
    y:sum():backward()
    assert.are.same({ 6, 24 }, x.grad:totable())
  end)

  it("passes a gradient check, inside a larger graph", function()
    assert.is_true(G.gradcheck(tc, function(a, b) return Cube(a * b, 0.5):sin() end,
      { leaf({ { 0.3, -0.7 }, { 1.1, 0.2 } }), leaf({ 0.9, -1.3 }) }))
  end)

  it("is caught by the gradient check when its backward is wrong", function()
    local Wrong = tc.Function {
      forward = function(ctx, x) ctx.x = x; return x * x end,
      backward = function(ctx, grad) return grad * ctx.x end, -- misses the factor 2
    }
    local ok, message = pcall(G.gradcheck, tc, function(x) return Wrong(x) end, { leaf({ 0.5, 1.5 }) })
    assert.is_false(ok)
    assert.matches("finite differences", message)
  end)

  it("raises a Lua error when its backward raises", function()
    local Broken = tc.Function {
      name = "broken",
      forward = function(_, x) return x * 2 end,
      backward = function() error("deliberate failure in backward") end,
    }
    local x = leaf({ 1, 2 })
    local ok, message = pcall(function() Broken(x):sum():backward() end)
    assert.is_false(ok)
    assert.matches("broken", message)
    assert.matches("deliberate failure in backward", message)
    -- the state is still usable
    ;(x * x):sum():backward()
    assert.are.same({ 2, 4 }, x.grad:totable())
  end)

  it("raises when its backward returns something that is not a tensor", function()
    local Odd = tc.Function {
      name = "odd",
      forward = function(_, x) return x * 2 end,
      backward = function() return "not a tensor" end,
    }
    local ok, message = pcall(function() Odd(leaf({ 1 })):sum():backward() end)
    assert.is_false(ok)
    assert.matches("odd", message)
  end)
end)

describe("autograd and in-place operations", function()
  local function failure(fn)
    local ok, message = pcall(fn)
    assert.is_false(ok, "expected an error")
    return tostring(message)
  end

  it("refuses an in-place write into a leaf that requires grad while grad mode is on", function()
    local w = leaf({ 1, 2 })
    local expected = "a leaf that requires grad is used in an in-place operation; wrap it in tc.no_grad"
    assert.matches("fill_: " .. expected, failure(function() w:fill_(0) end), 1, true)
    assert.matches("copy_: " .. expected, failure(function() w:copy_(tc.zeros({ 2 }, F64)) end), 1, true)
    assert.are.same({ 1, 2 }, w:totable())
    -- the same writes under no_grad (as optimisers and initialisers do) are fine
    tc.no_grad(function()
      w:fill_(3)
      w:narrow(1, 2, 1):copy_(tc.tensor({ 5 }, F64))
    end)
    assert.are.same({ 3, 5 }, w:totable())
  end)

  it("refuses an in-place write into the result of a recorded op while grad mode is on", function()
    local x = leaf({ 1, 2 })
    local y = x * 2
    assert.matches("fill_: the tensor is the result of 'mul' and requires grad", failure(function() y:fill_(0) end), 1,
      true)
  end)

  it("fails a backward whose saved tensor was written in place, naming the op", function()
    local x = leaf({ 1, 2 })
    local y = x / tc.tensor({ 2, 4 }, F64) -- div saves its output
    local out = y:sum()
    tc.no_grad(function() y:fill_(7) end)
    local message = failure(function() out:backward() end)
    assert.matches("backward of 'div': a tensor it saved (shape {2}) was modified by an in-place operation", message, 1,
      true)
  end)

  it("fails a backward whose input was written in place, instead of giving a wrong gradient", function()
    local x = leaf({ 1, 2 })
    local w = tc.tensor({ 3, 4 }, F64) -- not requiring grad: writable in grad mode
    local loss = (x * w):sum()
    w:fill_(10) -- dloss/dx would silently become 10 instead of {3, 4}
    assert.matches("backward of 'mul': its input 2 (shape {2}) was modified by an in-place operation",
      failure(function() loss:backward() end), 1, true)
    -- a write through another view of the same storage counts too
    local v = tc.tensor({ 3, 4, 5 }, F64)
    loss = (x * v:narrow(1, 1, 2)):sum()
    v:narrow(1, 3, 1):fill_(0)
    assert.matches("backward of", failure(function() loss:backward() end), 1, true)
    -- and so does one through a detached alias of a leaf
    local p = leaf({ 2, 2 })
    loss = (p * p):sum()
    p:detach():fill_(1)
    assert.matches("backward of 'mul'", failure(function() loss:backward() end), 1, true)
    -- without a write, the same graph runs
    x.grad = nil
    ;(x * w):sum():backward()
    assert.are.same({ 10, 10 }, x.grad:totable())
  end)

  it("fails the backward of matmul, layer_norm, attention and cross_entropy whose input was written in place",
    function()
      -- build() returns the loss and the op's input to overwrite after the forward
      local function check(op, build)
        local loss, input = build()
        tc.no_grad(function() input:fill_(1) end)
        assert.matches(("backward of '%s': its input"):format(op), failure(function() loss:backward() end), 1, true)
      end
      local x = leaf({ { 1, 2 }, { 3, 4 } })
      check("matmul", function()
        local w = tc.tensor({ { 5, 6 }, { 7, 8 } }, F64)
        return x:matmul(w):sum(), w
      end)
      local y = leaf({ { 1, 2, 4 }, { 3, 5, 9 } })
      check("layer_norm", function()
        local input = y * 2
        local out = tc.layer_norm(input, tc.ones({ 3 }, F64), tc.zeros({ 3 }, F64))
        return (out * out):sum(), input
      end)
      local q = leaf(tc.randn({ 1, 3, 6 }, F64):totable())
      check("attention", function()
        local input = q * 2
        return tc.attention(input, 1, { causal = true }):sum(), input
      end)
      local logits = leaf({ { 1, 2, 3 }, { 3, 1, 2 } })
      check("cross_entropy", function()
        local targets = tc.tensor({ 2, 0 }, { dtype = "int64" })
        return tc.cross_entropy(logits, targets), targets
      end)
    end)

  it("counts scale_ and the optimisers' steps as in-place writes", function()
    local x = leaf({ 1, 2 })
    local w = tc.tensor({ 3, 4 }, F64)
    local loss = (x * w):sum()
    w:scale_(2)
    assert.matches("backward of 'mul': its input 2", failure(function() loss:backward() end), 1, true)
    for _, make in ipairs({
      function(p) return tc.optim.AdamW({ p }, { lr = 0.1 }) end,
      function(p) return tc.optim.SGD({ p }, { lr = 0.1, momentum = 0.9 }) end,
    }) do
      local p = leaf({ 1, -1 })
      local optimizer = make(p)
      ;(p * p):sum():backward()
      local pending = (p * p):sum() -- mul reads p's values in backward
      optimizer:step() -- writes p in place
      assert.matches("backward of 'mul'", failure(function() pending:backward() end), 1, true)
    end
  end)

  it("lets an optimiser update parameters between steps", function()
    local w = leaf({ 1, -1 })
    local optimizer = tc.optim.SGD({ w }, { lr = 0.5 })
    for _ = 1, 3 do
      optimizer:zero_grad()
      ;(w * w):sum():backward()
      optimizer:step()
    end
    -- w <- w - 0.5 * 2w = 0 after the first step, and stays there
    assert.are.same({ 0, 0 }, w:totable())
  end)
end)

describe("relu's gradient", function()
  it("is 0 where x <= 0 whatever arrives there, an infinite or NaN gradient included (float32 and float64)", function()
    for _, dtype in ipairs({ "float32", "float64" }) do
      local x = tc.tensor({ -1, 0, 2, -3 }, { dtype = dtype, requires_grad = true })
      x:relu():backward(tc.tensor({ math.huge, 0 / 0, 5, -7 }, { dtype = dtype }))
      local grad = x.grad:totable()
      assert.are.same({ 0, 0, 5, 0 }, grad)
      assert.are.equal(math.huge, 1 / grad[4], dtype .. ": a -0 where a negative gradient arrives at x <= 0")
    end
  end)
end)
