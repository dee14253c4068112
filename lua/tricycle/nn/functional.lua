--- tricycle.nn.functional: losses and gradient utilities as plain functions.
local core = require("tricycle.core")
local Module = require("tricycle.nn.module")
local check_options = require("tricycle.options").check_options

local shape_string = Module.shape_string

local functional = {}

--- Mean cross-entropy of logits [..., V] against integer targets [...]
-- (0-based classes); options.ignore_index (default -100) skips targets.
function functional.cross_entropy(logits, targets, options)
  if getmetatable(logits) ~= core.Tensor or getmetatable(targets) ~= core.Tensor then
    error(("cross_entropy: logits and targets must be tensors, got %s and %s"):format(type(logits), type(targets)), 2)
  end
  if options ~= nil and type(options) ~= "table" then
    error(("cross_entropy: options must be a table {ignore_index =}, got %s"):format(type(options)), 2)
  end
  check_options("cross_entropy", options, { "ignore_index" }, 2)
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
  if type(parameters) ~= "table" or getmetatable(parameters) ~= nil then
    error(("clip_grad_norm: expects a list of parameters (model:parameters()), got %s"):format(
      Module.is_module(parameters) and "a module" or type(parameters)), 3)
  end
  local grads = {}
  for i, p in ipairs(parameters) do
    if getmetatable(p) ~= core.Tensor then
      error(("clip_grad_norm: parameter %d is a %s, expected a tensor"):format(i, type(p)), 3)
    end
    local ok, g = pcall(function() return p.grad end)
    if not ok then
      error(("clip_grad_norm: parameter %d is a tensor that was closed"):format(i), 3)
    end
    if g ~= nil then
      grads[#grads + 1] = g
    end
  end
  return grads
end

--- Scales the gradients in place so that their global L2 norm is at most
-- max_norm; returns the norm before clipping. max_norm = math.huge only
-- measures. A norm that is NaN or infinite is returned as it is and the
-- gradients are left alone (scaling by it would make them all NaN).
function functional.clip_grad_norm(parameters, max_norm)
  if type(max_norm) ~= "number" or max_norm ~= max_norm or max_norm <= 0 then
    error(("clip_grad_norm: max_norm must be a number > 0, got %s"):format(tostring(max_norm)), 2)
  end
  local grads = gradients(parameters)
  if #grads == 0 then
    return 0
  end
  local total = core.global_norm(grads)
  if total > max_norm and total ~= math.huge then
    local factor = max_norm / (total + 1e-6)
    for _, g in ipairs(grads) do
      core.scale_(g, factor)
    end
  end
  return total
end

return functional
