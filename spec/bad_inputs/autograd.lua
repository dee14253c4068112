-- Bad inputs: autograd (backward, gradients, tc.Function, in-place writes).
-- See spec/bad_inputs_spec.lua for the format.
local tc = require("tricycle")

local function leaf(values)
  return tc.tensor(values or { 1, 2 }, { requires_grad = true })
end

-- A tc.Function whose backward returns whatever `gradient(grad)` gives.
local function custom(name, gradient)
  return tc.Function {
    name = name,
    forward = function(_, x) return x * x end,
    backward = function(_, grad) return gradient(grad) end,
  }
end

local function run(fn, x)
  fn(x or leaf()):sum():backward()
end

return {
  -- before: "backward of 'custom': gradient 1 has shape {3}, input has {2}", without the function's name
  { "a Function's gradient of the wrong shape", function()
    run(custom("square", function() return tc.ones({ 3 }) end))
  end,
    { "custom function 'square'", "input 1", "{3}", "{2}" } },
  -- before: the float64 gradient was cast to the float32 input without a word
  { "a Function's gradient of another dtype", function()
    run(custom("square", function(grad) return grad:to("float64") end))
  end, { "custom function 'square'", "input 1", "float64", "float32" } },
  -- before: the int64 gradient was cast and accumulated
  { "a Function's integer gradient", function() run(custom("square", function(grad) return grad:to("int64") end)) end,
    { "'square'", "int64", "float32" } },
  { "a Function's gradient of the wrong shape for its second input", function()
    local f = tc.Function {
      name = "pair",
      forward = function(_, a, b) return a * b end,
      backward = function(_, grad) return grad, tc.ones({ 5 }) end,
    }
    f(leaf(), leaf()):sum():backward()
  end, { "'pair'", "input 2", "{5}", "{2}" } },
  { "a Function's backward returning a string", function() run(custom("odd", function() return "x" end)) end,
    { "'odd'", "string", "input 1" } },
  -- before: the extra gradient was dropped silently
  { "a Function's backward returning more gradients than inputs", function()
    run(custom("two", function(grad) return grad * 2, grad end))
  end, { "'two'", "returned 2 gradients for 1" } },
  { "a Function's backward raising", function() run(custom("broken", function() error("deliberate") end)) end,
    { "'broken'", "deliberate" } },
  { "a Function's forward returning nil", function()
    local f = tc.Function { name = "empty", forward = function() end, backward = function(_, g) return g end }
    return f(leaf())
  end, { "Function 'empty'", "nil" } },
  { "a Function made from a number", function() return tc.Function(5) end, { "Function", "number" } },
  { "a Function whose forward is a number", function() return tc.Function { forward = 1, backward = print } end,
    { "Function", "forward", "number" } },
  { "a Function whose name is a number", function()
    return tc.Function { name = 5, forward = print, backward = print }
  end, { "Function", "name", "number" } },
  -- before: the misspelt backward was ignored and the spec failed later as "backward must be a function"
  { "a Function spec with a misspelt key", function()
    return tc.Function { forward = print, backward = print, backwrd = print }
  end, { "Function", "backwrd", "valid" } },
  { "custom_apply with an input that is not a tensor", function()
    return tc.custom_apply("f", { 1 }, tc.ones({ 1 }), print)
  end, { "Function 'f'", "input 1" } },
  { "backward of a tensor that does not require grad", function() tc.ones({ 2 }):sum():backward() end,
    { "backward", "does not require grad" } },
  { "backward of a non-scalar without a gradient", function() (leaf() * 2):backward() end,
    { "backward", "{2}", "not a scalar" } },
  { "backward with a gradient of another shape", function() (leaf() * 2):backward(tc.ones({ 3 })) end,
    { "backward", "{3}", "{2}" } },
  -- before: the int64 gradient was cast and used
  { "backward with an int64 gradient", function() (leaf() * 2):backward(tc.ones({ 2 }, { dtype = "int64" })) end,
    { "backward", "int64", "float32 or float64" } },
  { "backward with a bool gradient", function() (leaf() * 2):backward(tc.tensor({ true, false })) end,
    { "backward", "bool" } },
  { "backward with a number as the gradient", function() (leaf() * 2):backward(5) end,
    { "backward", "argument 2", "number" } },
  { "backward twice through a freed graph", function()
    local y = (leaf() * leaf()):sum()
    y:backward()
    y:backward()
  end, { "backward", "already freed", "retain_graph" } },
  -- before: the misspelt option was ignored and the graph freed
  { "backward with a misspelt option", function() (leaf() * 2):sum():backward(nil, { retain_grap = true }) end,
    { "backward", "retain_grap", "retain_graph" } },
  -- before: a non-table options argument was ignored
  { "backward with options that are not a table", function() (leaf() * 2):sum():backward(nil, 5) end,
    { "backward", "options", "number" } },
  { "backward with retain_graph a string", function()
    (leaf() * 2):sum():backward(nil, { retain_graph = "yes" })
  end, { "backward", "retain_graph", "string" } },
  { "backward of a closed tensor", function()
    local y = (leaf() * 2):sum()
    y:free()
    y:backward()
  end, { "backward", "closed" } },
  { "an in-place write into a leaf that requires grad", function() leaf():fill_(0) end, { "fill_", "leaf" } },
  { "a saved tensor modified before backward", function()
    local x = leaf()
    local h = x * 1
    local y = h:exp()
    tc.no_grad(function() h:fill_(3) end)
    y:sum():backward()
  end, { "backward of 'exp'", "modified" } },
  { "requires_grad on an int64 tensor", function() tc.ones({ 2 }, { dtype = "int64" }):requires_grad_() end,
    { "requires_grad", "int64" } },
  { "requires_grad off on a non-leaf", function() (leaf() * 2).requires_grad = false end,
    { "requires_grad", "non-leaf" } },
  { "a gradient of another shape assigned", function() leaf().grad = tc.ones({ 3 }) end, { "grad", "{3}", "{2}" } },
  { "a gradient of another dtype assigned", function() leaf().grad = tc.ones({ 2 }, { dtype = "int64" }) end,
    { "grad", "int64" } },
  { "a string assigned as a gradient", function() leaf().grad = "x" end, { "grad", "string" } },
  { "data replaced on a non-leaf", function() (leaf() * 2).data = tc.ones({ 2 }) end, { "data", "leaf", "mul" } },
  { "an unknown field assigned", function() leaf().gradient = tc.ones({ 2 }) end,
    { "tensor", "gradient", "cannot be assigned" } },
  -- before: "attempt to call a number value"
  { "no_grad with a number", function() tc.no_grad(5) end, { "no_grad", "number" } },
  { "set_grad_enabled with a number", function() tc.set_grad_enabled(1) end, { "set_grad_enabled", "number" } },
  -- ---- tc.autograd.grad and register_hook ----
  { "autograd.grad for an input that does not require grad", function()
    local x = leaf()
    return tc.autograd.grad((x * 2):sum(), { tc.ones({ 2 }) })
  end, { "grad", "inputs[1]", "does not require grad" } },
  { "autograd.grad of a vector without grad_outputs", function()
    local x = leaf()
    return tc.autograd.grad(x * 2, x)
  end, { "grad", "{2}", "grad_outputs" } },
  { "autograd.grad with a grad_output of the wrong shape", function()
    local x = leaf()
    return tc.autograd.grad(x * 2, x, { grad_outputs = tc.ones({ 3 }) })
  end, { "grad", "grad_outputs[1]", "{3}", "{2}" } },
  { "autograd.grad for an input the output does not use", function()
    local x, y = leaf(), leaf()
    return tc.autograd.grad((x * 2):sum(), { x, y })
  end, { "grad", "inputs[2]", "allow_unused" } },
  { "autograd.grad with create_graph", function()
    local x = leaf()
    return tc.autograd.grad((x * 2):sum(), x, { create_graph = true })
  end, { "grad", "create_graph" } },
  { "autograd.grad with a misspelt option", function()
    local x = leaf()
    return tc.autograd.grad((x * 2):sum(), x, { retain = true })
  end, { "grad", "unknown option 'retain'", "retain_graph" } },
  { "autograd.grad with an empty list of inputs", function()
    local x = leaf()
    return tc.autograd.grad((x * 2):sum(), {})
  end, { "grad", "inputs", "empty" } },
  { "autograd.grad twice through a freed graph", function()
    local x = leaf()
    local y = (x * x):sum()
    tc.autograd.grad(y, x)
    return tc.autograd.grad(y, x)
  end, { "backward", "retain_graph" } },
  { "register_hook with a number", function() return leaf():register_hook(3) end, { "register_hook", "number" } },
  { "register_hook on a tensor that does not require grad", function()
    return tc.ones({ 2 }):register_hook(function() end)
  end, { "register_hook", "does not require grad" } },
  { "a hook that returns a gradient of another shape", function()
    local x = leaf()
    x:register_hook(function() return tc.ones({ 3 }) end)
    local loss = (x * 2):sum()
    loss:backward()
  end, { "register_hook", "{3}", "{2}" } },
  { "a hook that returns a string", function()
    local x = leaf()
    x:register_hook(function() return "g" end)
    local loss = (x * 2):sum()
    loss:backward()
  end, { "register_hook", "tensor or nothing", "string" } },
  { "a hook that raises", function()
    local x = leaf()
    x:register_hook(function() error("deliberate") end)
    local loss = (x * 2):sum()
    loss:backward()
  end, { "backward", "a hook from register_hook raised an error", "deliberate" } },
  { "an on_grad_ready function that raises", function()
    local x = leaf()
    x:on_grad_ready(function() error("deliberate") end)
    local loss = (x * 2):sum()
    loss:backward()
  end, { "backward", "a gradient hook raised an error", "deliberate" } },
  { "on_grad_ready with a number", function() leaf():on_grad_ready(3) end,
    { "on_grad_ready", "argument 2", "number" } },
  { "on_grad_ready on a non-leaf", function() (leaf() * 2):on_grad_ready(print) end,
    { "on_grad_ready", "'mul'", "not a leaf" } },
}
