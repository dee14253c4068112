--- SGD(params_or_groups, {lr =, momentum = 0, dampening = 0, nesterov = false,
-- weight_decay = 0}) with PyTorch's semantics: weight decay added to the
-- gradient, the momentum buffer starts as the first gradient.
local core = require("tricycle.core")
local Optimizer = require("tricycle.optim.optimizer")

local SGD = setmetatable({ name = "SGD", state_tensors = { "momentum_buffer" } }, { __index = Optimizer })
SGD.__index = SGD

local defaults = { lr = false, momentum = 0, dampening = 0, nesterov = false, weight_decay = 0 }

local function non_negative(x) return x >= 0 end
local function unit(x) return x >= 0 and x <= 1 end

--- Every option of a group, each finite and in its range; lr has no
-- default. `prefix` names the group.
function SGD.check_group(group, prefix)
  prefix = prefix or ""
  if group.lr == false then
    error(("SGD: %soption lr is required (SGD has no default learning rate)"):format(prefix), 5)
  end
  Optimizer.check_number("SGD", prefix, "lr", group.lr, non_negative, "a finite number >= 0")
  Optimizer.check_number("SGD", prefix, "momentum", group.momentum, non_negative, "a finite number >= 0")
  Optimizer.check_number("SGD", prefix, "dampening", group.dampening, unit, "a number in [0, 1]")
  Optimizer.check_number("SGD", prefix, "weight_decay", group.weight_decay, non_negative, "a finite number >= 0")
  Optimizer.check_boolean("SGD", prefix, "nesterov", group.nesterov)
  if group.nesterov and (group.momentum <= 0 or group.dampening ~= 0) then
    error(("SGD: %snesterov needs momentum > 0 and dampening = 0, got momentum %s and dampening %s"):format(prefix,
      tostring(group.momentum), tostring(group.dampening)), 5)
  end
end

function SGD.new(params, options)
  return Optimizer.create(SGD, params, options, defaults)
end

function SGD:update(p, grad, state, group)
  local options = {
    lr = group.lr,
    momentum = group.momentum,
    dampening = group.dampening,
    nesterov = group.nesterov,
    weight_decay = group.weight_decay,
  }
  local buffer = nil
  if group.momentum ~= 0 then
    buffer = state.momentum_buffer
    if not buffer then
      -- First step: buffer = momentum * 0 + 1 * grad, the gradient itself.
      buffer = Optimizer.zeros_like(p)
      state.momentum_buffer = buffer
      options.dampening = 0
    end
  end
  core.sgd_step(p, grad, buffer, options)
end

return setmetatable(SGD, {
  __index = Optimizer,
  __call = function(_, params, options)
    return SGD.new(params, options)
  end,
})
