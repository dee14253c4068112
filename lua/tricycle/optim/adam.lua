--- Adam(params_or_groups, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8,
-- weight_decay = 0, amsgrad = false}) with PyTorch's semantics: weight decay
-- is L2, added to the gradient before the moments (AdamW decays the weights
-- apart from them); amsgrad divides by the largest second moment so far.
local core = require("tricycle.core")
local Optimizer = require("tricycle.optim.optimizer")
local AdamW = require("tricycle.optim.adamw")

local Adam = setmetatable({ name = "Adam", state_tensors = { "exp_avg", "exp_avg_sq", "max_exp_avg_sq" } },
  { __index = Optimizer })
Adam.__index = Adam

local defaults = { lr = 1e-3, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = 0, amsgrad = false }

function Adam.check_group(group, prefix)
  local ok, message = pcall(AdamW.check_group, group, prefix)
  if not ok then
    error((tostring(message):gsub("^[^:]*:%d+: ", ""):gsub("^AdamW:", "Adam:")), 5)
  end
  Optimizer.check_boolean("Adam", prefix or "", "amsgrad", group.amsgrad)
end

function Adam.new(params, options)
  return Optimizer.create(Adam, params, options, defaults)
end

function Adam:update(p, grad, state, group)
  if group.weight_decay ~= 0 then
    grad = grad + p * group.weight_decay
  end
  if not state.exp_avg then
    state.exp_avg = Optimizer.zeros_like(p)
    state.exp_avg_sq = Optimizer.zeros_like(p)
  end
  local beta1, beta2 = group.betas[1], group.betas[2]
  if not group.amsgrad then
    -- with the decay already in the gradient, AdamW's step is Adam's
    core.adamw_step(p, grad, state.exp_avg, state.exp_avg_sq, {
      step = state.step, lr = group.lr, beta1 = beta1, beta2 = beta2, eps = group.eps, weight_decay = 0,
    })
    return
  end
  if not state.max_exp_avg_sq then
    state.max_exp_avg_sq = Optimizer.zeros_like(p)
  end
  local m, v, v_max = state.exp_avg, state.exp_avg_sq, state.max_exp_avg_sq
  m:copy_(m * beta1 + grad * (1 - beta1))
  v:copy_(v * beta2 + grad * grad * (1 - beta2))
  v_max:copy_(v_max:maximum(v))
  local correction1 = 1 - beta1 ^ state.step
  local correction2 = 1 - beta2 ^ state.step
  local denominator = v_max:sqrt() / math.sqrt(correction2) + group.eps
  p:copy_(p - m / denominator * (group.lr / correction1))
end

return setmetatable(Adam, {
  __index = Optimizer,
  __call = function(_, params, options)
    return Adam.new(params, options)
  end,
})
