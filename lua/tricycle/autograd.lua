--- tricycle.autograd: gradients as values.
--
--   local grads = tc.autograd.grad(loss, { x, w })   -- grads[1] = d loss / d x, grads[2] = d loss / d w
--
-- grad(outputs, inputs, {grad_outputs =, retain_graph = false, allow_unused
-- = false}) returns the gradients of the outputs with respect to each input
-- in a list, in the inputs' order, without touching any tensor's .grad (nor
-- running the leaves' gradient hooks). outputs and inputs are a tensor or a
-- list of tensors; an output of more than one element needs its grad_output
-- (a tensor of its shape). Several outputs count as the sum of
-- (output * grad_output):sum(). An input the outputs do not depend on is an
-- error unless allow_unused, which gives false in its place. Gradients of
-- gradients (create_graph) are not supported: the backward runs with grad
-- mode off.
local core = require("tricycle.core")
local check_options = require("tricycle.options").check_options
local errors = require("tricycle.errors")

local M = {}

local function fail(format, ...)
  errors.raise(format:format(...))
end

local function shape_string(t)
  return "{" .. table.concat(t.shape, ", ") .. "}"
end

-- A tensor or a list of tensors as a list; `what` names them in errors.
local function tensor_list(value, what)
  if getmetatable(value) == core.Tensor then
    return { value }
  end
  if type(value) ~= "table" or #value == 0 then
    fail("grad: %s must be a tensor or a non-empty list of tensors, got %s", what,
      type(value) == "table" and "an empty table" or type(value))
  end
  for i, t in ipairs(value) do
    if getmetatable(t) ~= core.Tensor then
      fail("grad: %s[%d] must be a tensor, got %s", what, i, type(t))
    end
    if not pcall(function() return t.dtype end) then
      fail("grad: %s[%d] is a tensor that was closed", what, i)
    end
  end
  return value
end

function M.grad(outputs, inputs, options)
  if options ~= nil and type(options) ~= "table" then
    fail("grad: options must be a table {grad_outputs =, retain_graph =, allow_unused =}, got %s", type(options))
  end
  check_options("grad", options, { "grad_outputs", "retain_graph", "allow_unused", "create_graph" }, 2)
  options = options or {}
  for _, flag in ipairs({ "retain_graph", "allow_unused", "create_graph" }) do
    if options[flag] ~= nil and type(options[flag]) ~= "boolean" then
      fail("grad: option %s must be a boolean, got %s", flag, tostring(options[flag]))
    end
  end
  if options.create_graph then
    fail("grad: create_graph = true is not supported (the backward runs with grad mode off, so gradients of "
      .. "gradients cannot be taken)")
  end
  outputs = tensor_list(outputs, "outputs")
  inputs = tensor_list(inputs, "inputs")
  local grad_outputs = options.grad_outputs
  if grad_outputs ~= nil then
    grad_outputs = tensor_list(grad_outputs, "option grad_outputs")
    if #grad_outputs ~= #outputs then
      fail("grad: option grad_outputs has %d tensors for %d outputs", #grad_outputs, #outputs)
    end
  end
  for i, out in ipairs(outputs) do
    if not out.requires_grad then
      fail("grad: outputs[%d] (shape %s) does not require grad (no input required grad, or grad mode was off)", i,
        shape_string(out))
    end
    local seed = grad_outputs and grad_outputs[i]
    if seed == nil and out:numel() ~= 1 then
      fail("grad: outputs[%d] has shape %s, not one element; pass its grad_outputs entry", i, shape_string(out))
    end
    if seed ~= nil and shape_string(seed) ~= shape_string(out) then
      fail("grad: grad_outputs[%d] has shape %s, outputs[%d] %s", i, shape_string(seed), i, shape_string(out))
    end
  end
  for i, t in ipairs(inputs) do
    if not t.requires_grad then
      fail("grad: inputs[%d] (shape %s) does not require grad", i, shape_string(t))
    end
  end
  local root, seed = outputs[1], grad_outputs and grad_outputs[1]
  if #outputs > 1 then
    -- one root for the engine: the sum of each output weighted by its seed
    local total
    for i, out in ipairs(outputs) do
      local term = grad_outputs and (out * grad_outputs[i]:detach()):sum() or out:sum()
      total = total and total + term or term
    end
    root, seed = total, nil
  end
  local grads = errors.call(core.grad, root, seed, inputs, options.retain_graph or false)
  for i = 1, #inputs do
    if grads[i] == false and not options.allow_unused then
      fail("grad: inputs[%d] (shape %s) is not used to compute the outputs; pass allow_unused = true to get false "
        .. "for it", i, shape_string(inputs[i]))
    end
  end
  return grads
end

return M
