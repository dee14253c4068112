--- tricycle.nn.functional: losses and gradient utilities as plain functions.
local compat = require("tricycle.compat")
local core = require("tricycle.core")
local Module = require("tricycle.nn.module")
local check_options = require("tricycle.options").check_options

local shape_string = Module.shape_string

local functional = {}

local errors = require("tricycle.errors")

local function fail(format, ...)
  errors.raise(format:format(...))
end

local function check_tensor(name, argument, value)
  if getmetatable(value) ~= core.Tensor then
    fail("%s: %s must be a tensor, got %s", name, argument, type(value))
  end
  if not pcall(function() return value.dtype end) then
    fail("%s: %s is a tensor that was closed", name, argument)
  end
end

local function check_loss_options(name, options, allowed)
  if options ~= nil and type(options) ~= "table" then
    fail("%s: options must be a table {%s =}, got %s", name, table.concat(allowed, " =, "), type(options))
  end
  check_options(name, options, allowed, 3)
  options = options or {}
  local reduction = options.reduction or "mean"
  if reduction ~= "mean" and reduction ~= "sum" and reduction ~= "none" then
    fail("%s: option reduction must be \"mean\", \"sum\" or \"none\", got %s", name, tostring(options.reduction))
  end
  return options, reduction
end

local function same_shape(name, what_a, a, what_b, b)
  local sa, sb = shape_string(a.shape), shape_string(b.shape)
  if sa ~= sb then
    fail("%s: %s %s and %s %s must have the same shape", name, what_a, sa, what_b, sb)
  end
end

-- A class weight: a 1-D floating tensor of C entries on the input's device.
local function check_class_weight(name, weight, classes, input)
  if weight == nil then
    return nil
  end
  check_tensor(name, "option weight", weight)
  if weight:dim() ~= 1 or weight.shape[1] ~= classes then
    fail("%s: option weight must have shape {%d} (one per class), got %s", name, classes, shape_string(weight.shape))
  end
  if weight.dtype ~= input.dtype or weight.device ~= input.device then
    fail("%s: option weight is %s on %s, the input %s on %s", name, weight.dtype, weight.device, input.dtype,
      input.device)
  end
  return weight
end

local function check_ignore_index(name, value)
  if value == nil then
    return -100
  end
  if not compat.is_integer(value) then
    fail("%s: option ignore_index must be an integer, got %s", name, tostring(value))
  end
  return value
end

-- Input [..., C] and integer targets [...] (0-based classes): returns the
-- input as [N, C] and the targets as [N].
local function class_layout(name, input, targets)
  if input:dim() < 1 then
    fail("%s: input must have a class dim (shape [..., C]), got a scalar", name)
  end
  local classes = input.shape[input:dim()]
  local want = {}
  for i = 1, input:dim() - 1 do
    want[i] = input.shape[i]
  end
  if shape_string(want) ~= shape_string(targets.shape) then
    fail("%s: targets have shape %s, expected %s for input %s (classes last)", name, shape_string(targets.shape),
      shape_string(want), shape_string(input.shape))
  end
  if targets.dtype ~= "int64" and targets.dtype ~= "int32" then
    fail("%s: targets must be int64 or int32 class indices, got %s", name, targets.dtype)
  end
  local n = targets:numel()
  return input:reshape({ n, classes }), targets:reshape({ n }):to("int64"), classes, want
end

-- Raises when a target that is not ignored lies outside [0, classes).
local function check_target_range(name, targets, classes, ignore_index)
  if targets:numel() == 0 then
    return
  end
  local kept = core.where(targets:ne(ignore_index), targets, 0)
  local low, high = kept:min():item(), kept:max():item()
  if low < 0 or high >= classes then
    fail("%s: target %d is out of range for %d classes (0 to %d, or ignore_index %d)", name,
      low < 0 and low or high, classes, classes - 1, ignore_index)
  end
end

-- Sum, mean over `denominator` (a scalar tensor; 0 counts as 1, so a batch
-- with every target ignored has loss 0) or the per-element tensor.
local function reduce(loss, reduction, denominator, shape)
  if reduction == "none" then
    return loss:reshape(shape)
  end
  local total = loss:sum()
  if reduction == "sum" then
    return total
  end
  return total / (denominator + denominator:eq(0))
end

-- The negative log-likelihood of log-probabilities [N, C] at targets [N]:
-- per-element losses, their weights and the ignored mask.
local function nll_parts(log_probs, targets, weight, ignore_index)
  local kept = targets:ne(ignore_index)
  local safe = core.where(kept, targets, 0)
  local picked = log_probs:gather(2, safe:reshape({ safe:numel(), 1 })):reshape({ safe:numel() })
  local w = kept:to(log_probs.dtype)
  if weight then
    w = w * weight:index_select(1, safe)
  end
  return -picked * w, w, kept
end

--- nll_loss(log_probs [..., C], targets [...], {weight =, ignore_index = -100,
-- reduction = "mean"}): -log_probs[target] * weight[target]; the mean
-- divides by the sum of the weights of the targets not ignored (PyTorch's).
function functional.nll_loss(log_probs, targets, options)
  local name = "nll_loss"
  check_tensor(name, "log_probs", log_probs)
  check_tensor(name, "targets", targets)
  local reduction
  options, reduction = check_loss_options(name, options, { "weight", "ignore_index", "reduction" })
  local flat, flat_targets, classes, shape = class_layout(name, log_probs, targets)
  local weight = check_class_weight(name, options.weight, classes, log_probs)
  local ignore_index = check_ignore_index(name, options.ignore_index)
  check_target_range(name, flat_targets, classes, ignore_index)
  local loss, w = nll_parts(flat, flat_targets, weight, ignore_index)
  return reduce(loss, reduction, w:sum(), shape)
end

--- cross_entropy(logits [..., C], targets [...], {weight =, ignore_index =
-- -100, label_smoothing = 0, reduction = "mean"}) with 0-based classes last.
-- With label smoothing e the target distribution is (1 - e) one-hot + e / C
-- (weighted by class as PyTorch does); the mean divides by the weights of
-- the targets kept. Without options it is the engine's fused op.
function functional.cross_entropy(logits, targets, options)
  local name = "cross_entropy"
  check_tensor(name, "logits", logits)
  check_tensor(name, "targets", targets)
  local reduction
  options, reduction = check_loss_options(name, options, { "weight", "ignore_index", "label_smoothing", "reduction" })
  local smoothing = options.label_smoothing or 0
  if type(smoothing) ~= "number" or not (smoothing >= 0 and smoothing <= 1) then
    fail("%s: option label_smoothing must be a number in [0, 1], got %s", name, tostring(options.label_smoothing))
  end
  local ignore_index = check_ignore_index(name, options.ignore_index)
  if options.weight == nil and smoothing == 0 and reduction == "mean" then
    return errors.call(core.cross_entropy, logits, targets, { ignore_index = ignore_index })
  end
  local flat, flat_targets, classes, shape = class_layout(name, logits, targets)
  local weight = check_class_weight(name, options.weight, classes, logits)
  check_target_range(name, flat_targets, classes, ignore_index)
  local log_probs = flat:log_softmax(-1)
  local loss, w, kept = nll_parts(log_probs, flat_targets, weight, ignore_index)
  if smoothing > 0 then
    local weighted = weight and log_probs * weight:reshape({ 1, classes }) or log_probs
    local smooth = -weighted:sum(-1) * kept:to(log_probs.dtype)
    loss = loss * (1 - smoothing) + smooth * (smoothing / classes)
  end
  return reduce(loss, reduction, w:sum(), shape)
end

--- binary_cross_entropy(probabilities, targets, {weight =, reduction =
-- "mean"}): -(y log p + (1 - y) log(1 - p)), each log clamped at -100 as
-- PyTorch does, so p = 0 or 1 gives a finite loss. weight broadcasts.
function functional.binary_cross_entropy(probabilities, targets, options)
  local name = "binary_cross_entropy"
  check_tensor(name, "input", probabilities)
  check_tensor(name, "targets", targets)
  local reduction
  options, reduction = check_loss_options(name, options, { "weight", "reduction" })
  same_shape(name, "input", probabilities, "targets", targets)
  if options.weight ~= nil then
    check_tensor(name, "option weight", options.weight)
  end
  if probabilities:numel() > 0 then
    local low, high = probabilities:min():item(), probabilities:max():item()
    if not (low >= 0 and high <= 1) then
      fail("%s: input must hold probabilities in [0, 1], got values from %s to %s", name, tostring(low),
        tostring(high))
    end
  end
  local log_p = probabilities:log():clamp(-100, nil)
  local log_q = (1 - probabilities):log():clamp(-100, nil)
  local loss = -(targets * log_p + (1 - targets) * log_q)
  if options.weight ~= nil then
    loss = errors.call(function() return loss * options.weight end)
  end
  return reduce(loss, reduction, core.full({}, probabilities:numel(), { dtype = loss.dtype }):to(loss.device),
    probabilities.shape)
end

--- binary_cross_entropy_with_logits(logits, targets, {weight =, pos_weight =,
-- reduction = "mean"}): the sigmoid and the loss in one stable expression,
-- (1 - y) x + (1 + (pos_weight - 1) y) (log(1 + exp(-|x|)) + max(-x, 0)),
-- finite for any logit. pos_weight (one per class, last dim) scales the
-- positive term.
function functional.binary_cross_entropy_with_logits(logits, targets, options)
  local name = "binary_cross_entropy_with_logits"
  check_tensor(name, "input", logits)
  check_tensor(name, "targets", targets)
  local reduction
  options, reduction = check_loss_options(name, options, { "weight", "pos_weight", "reduction" })
  same_shape(name, "input", logits, "targets", targets)
  local softplus_neg = logits:abs():neg():exp():log1p() + logits:neg():relu()
  local loss
  if options.pos_weight ~= nil then
    local pos_weight = options.pos_weight
    check_tensor(name, "option pos_weight", pos_weight)
    local classes = logits:dim() > 0 and logits.shape[logits:dim()] or 1
    if pos_weight:dim() ~= 1 or (pos_weight.shape[1] ~= classes and pos_weight.shape[1] ~= 1) then
      fail("%s: option pos_weight must have shape {%d} (one per class, the last dim) or {1}, got %s", name,
        classes, shape_string(pos_weight.shape))
    end
    loss = (1 - targets) * logits + (1 + (pos_weight - 1) * targets) * softplus_neg
  else
    loss = (1 - targets) * logits + softplus_neg
  end
  if options.weight ~= nil then
    check_tensor(name, "option weight", options.weight)
    loss = errors.call(function() return loss * options.weight end)
  end
  return reduce(loss, reduction, core.full({}, logits:numel(), { dtype = loss.dtype }):to(loss.device), logits.shape)
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

local function gradients(parameters, name)
  name = name or "clip_grad_norm"
  if type(parameters) ~= "table" or getmetatable(parameters) ~= nil then
    error((name .. ": expects a list of parameters (model:parameters()), got %s"):format(
      Module.is_module(parameters) and "a module" or type(parameters)), 3)
  end
  local grads = {}
  for i, p in ipairs(parameters) do
    if getmetatable(p) ~= core.Tensor then
      error((name .. ": parameter %d is a %s, expected a tensor"):format(i, type(p)), 3)
    end
    local ok, g = pcall(function() return p.grad end)
    if not ok then
      error((name .. ": parameter %d is a tensor that was closed"):format(i), 3)
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

--- Clamps every gradient in place to [-clip_value, clip_value].
function functional.clip_grad_value(parameters, clip_value)
  if type(clip_value) ~= "number" or clip_value ~= clip_value or clip_value <= 0 then
    error(("clip_grad_value: clip_value must be a number > 0, got %s"):format(tostring(clip_value)), 2)
  end
  local grads = gradients(parameters, "clip_grad_value")
  Module.no_grad(function()
    for _, g in ipairs(grads) do
      g:copy_(g:clamp(-clip_value, clip_value))
    end
  end)
end

return functional
