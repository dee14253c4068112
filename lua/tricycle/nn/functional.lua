--- tricycle.nn.functional: losses and gradient utilities as plain functions.
local core = require("tricycle.core")
local Module = require("tricycle.nn.module")

local shape_string = Module.shape_string

local functional = {}

--- Mean cross-entropy of logits [..., V] against integer targets [...]
-- (0-based classes); options.ignore_index (default -100) skips targets.
function functional.cross_entropy(logits, targets, options)
  if getmetatable(logits) ~= core.Tensor or getmetatable(targets) ~= core.Tensor then
    error("cross_entropy: logits and targets must be tensors", 2)
  end
  options = options or {}
  return core.cross_entropy(logits, targets, { ignore_index = options.ignore_index or -100 })
end

--- Mean squared error of two tensors of the same shape.
function functional.mse_loss(a, b)
  if getmetatable(a) ~= core.Tensor or getmetatable(b) ~= core.Tensor then
    error("mse_loss: both arguments must be tensors", 2)
  end
  local sa, sb = shape_string(a.shape), shape_string(b.shape)
  if sa ~= sb then
    error(("mse_loss: shapes %s and %s differ"):format(sa, sb), 2)
  end
  local difference = a - b
  return (difference * difference):mean()
end

local function gradients(parameters)
  if type(parameters) ~= "table" then
    error("clip_grad_norm: expects a list of parameters", 3)
  end
  local grads = {}
  for _, p in ipairs(parameters) do
    local g = p.grad
    if g ~= nil then
      grads[#grads + 1] = g
    end
  end
  return grads
end

--- Scales the gradients in place so that their global L2 norm is at most
-- max_norm; returns the norm before clipping.
function functional.clip_grad_norm(parameters, max_norm)
  if type(max_norm) ~= "number" or max_norm <= 0 then
    error(("clip_grad_norm: max_norm must be a positive number, got %s"):format(tostring(max_norm)), 2)
  end
  local grads = gradients(parameters)
  if #grads == 0 then
    return 0
  end
  local total = core.global_norm(grads)
  if total > max_norm then
    local factor = max_norm / (total + 1e-6)
    for _, g in ipairs(grads) do
      core.scale_(g, factor)
    end
  end
  return total
end

return functional
