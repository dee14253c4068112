--- tricycle.optim: optimisers (SGD, Adam, AdamW) over the engine's fused in-place
-- update ops, parameter groups and learning-rate schedules.
--
--   local opt = optim.AdamW(optim.gpt_param_groups(model, 0.1), {lr = 3e-4})
--   opt:zero_grad(); loss:backward(); opt:step()
local schedule = require("tricycle.optim.schedule")
local lr_scheduler = require("tricycle.optim.lr_scheduler")

local optim = {
  Optimizer = require("tricycle.optim.optimizer"),
  SGD = require("tricycle.optim.sgd"),
  AdamW = require("tricycle.optim.adamw"),
  Adam = require("tricycle.optim.adam"),
  cosine_schedule = schedule.cosine,
  linear_schedule = schedule.linear,
}

-- Schedulers bound to an optimiser (tricycle.optim.lr_scheduler).
for _, name in ipairs({ "step_lr", "multistep_lr", "exponential_lr", "lambda_lr", "warmup_lr", "one_cycle_lr",
  "reduce_lr_on_plateau" }) do
  optim[name] = lr_scheduler[name]
end

--- Sets the learning rate of every group.
function optim.set_lr(optimizer, lr)
  if type(optimizer) ~= "table" or type(optimizer.param_groups) ~= "table" then
    error(("set_lr: argument 1 must be an optimiser, got %s"):format(type(optimizer)), 2)
  end
  if type(lr) ~= "number" or lr ~= lr or lr == math.huge or lr < 0 then
    error(("set_lr: lr must be a finite number >= 0, got %s"):format(tostring(lr)), 2)
  end
  for _, group in ipairs(optimizer.param_groups) do
    group.lr = lr
  end
end

--- Two groups for a transformer: the weights of Linear layers (2-D matrices)
-- decay with `weight_decay`; everything else does not: biases, norm weights,
-- embeddings, and so the tied head (which is the token embedding).
function optim.gpt_param_groups(model, weight_decay)
  local nn = require("tricycle.nn")
  if not nn.Module.is_module(model) then
    error(("gpt_param_groups: argument 1 must be a module, got %s"):format(type(model)), 2)
  end
  if weight_decay ~= nil and (type(weight_decay) ~= "number" or weight_decay ~= weight_decay
    or weight_decay == math.huge or weight_decay < 0) then
    error(("gpt_param_groups: weight_decay must be a finite number >= 0, got %s"):format(tostring(weight_decay)), 2)
  end
  local Linear = nn.Linear
  local decayed = {}
  for _, module in ipairs(model:modules()) do
    if getmetatable(module) == Linear then
      decayed[module.weight] = true
    end
  end
  local decay, no_decay = {}, {}
  for _, p in ipairs(model:parameters()) do
    if decayed[p] and p:dim() == 2 then
      decay[#decay + 1] = p
    else
      no_decay[#no_decay + 1] = p
    end
  end
  return {
    { params = decay, weight_decay = weight_decay or 0.1 },
    { params = no_decay, weight_decay = 0 },
  }
end

return optim
