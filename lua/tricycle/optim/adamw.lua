--- AdamW(params_or_groups, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8,
-- weight_decay = 0.01}): Adam with bias correction and decoupled weight decay
-- (p = p - lr * wd * p): one multi-tensor fused call per parameter group.
--
-- {zero_stage = 1, ddp = wrapper} shards the moments over the ranks of a
-- tc.nn.DistributedDataParallel wrapper of the model (ZeRO-1, see
-- tricycle.optim.zero): each rank keeps 1 / world_size of them, and
-- state_dict still gives (and load_state_dict takes) the whole state.
local core = require("tricycle.core")
local Optimizer = require("tricycle.optim.optimizer")

local AdamW = setmetatable({ name = "AdamW", state_tensors = { "exp_avg", "exp_avg_sq" } }, { __index = Optimizer })
AdamW.__index = AdamW

local defaults = { lr = 1e-3, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = 0.01 }

local function non_negative(x) return x >= 0 end
local function positive(x) return x > 0 end
local function fraction(x) return x >= 0 and x < 1 end

--- Every option of a group, each finite and in its range (eps > 0: it keeps
-- the update's denominator away from 0). `prefix` names the group.
function AdamW.check_group(group, prefix)
  prefix = prefix or ""
  Optimizer.check_number("AdamW", prefix, "lr", group.lr, non_negative, "a finite number >= 0")
  local betas = group.betas
  if type(betas) ~= "table" or #betas ~= 2 then
    error(("AdamW: %soption betas must be a list of two numbers in [0, 1), e.g. {0.9, 0.999}, got %s"):format(prefix,
      type(betas) == "table" and ("a list of " .. #betas) or tostring(betas)), 5)
  end
  Optimizer.check_number("AdamW", prefix, "betas[1]", betas[1], fraction, "a number in [0, 1)")
  Optimizer.check_number("AdamW", prefix, "betas[2]", betas[2], fraction, "a number in [0, 1)")
  Optimizer.check_number("AdamW", prefix, "eps", group.eps, positive, "a finite number > 0")
  Optimizer.check_number("AdamW", prefix, "weight_decay", group.weight_decay, non_negative, "a finite number >= 0")
end

local OWN_OPTIONS = { "zero_stage", "ddp" }

function AdamW.new(params, options)
  local self = Optimizer.create(AdamW, params, options, defaults, OWN_OPTIONS)
  local zero_stage = type(options) == "table" and options.zero_stage or 0
  if zero_stage ~= 0 and zero_stage ~= 1 then
    error(("AdamW: option zero_stage must be 0 (off) or 1 (shard the moments), got %s"):format(tostring(zero_stage)),
      3)
  end
  local ddp = type(options) == "table" and options.ddp or nil
  if zero_stage == 1 then
    self.zero = require("tricycle.optim.zero").new(self, ddp, "AdamW")
  elseif ddp ~= nil then
    error("AdamW: option ddp is for zero_stage = 1 (the wrapper whose layout the moments are sharded in)", 3)
  end
  return self
end

-- (self may be anything: the base checks it and says how to call)
function AdamW:step()
  if type(self) == "table" and self.zero then
    return self.zero:step(self)
  end
  return Optimizer.step(self)
end

function AdamW:state_dict()
  if type(self) == "table" and self.zero then
    return self.zero:state_dict(self)
  end
  return Optimizer.state_dict(self)
end

function AdamW:load_state_dict(sd)
  if type(self) == "table" and self.zero then
    return self.zero:load_state_dict(self, sd)
  end
  return Optimizer.load_state_dict(self, sd)
end

function AdamW:update(p, grad, state, group)
  if not state.exp_avg then
    state.exp_avg = Optimizer.zeros_like(p)
    state.exp_avg_sq = Optimizer.zeros_like(p)
  end
  core.adamw_step(p, grad, state.exp_avg, state.exp_avg_sq, {
    step = state.step,
    lr = group.lr,
    beta1 = group.betas[1],
    beta2 = group.betas[2],
    eps = group.eps,
    weight_decay = group.weight_decay,
  })
end

--- All parameters of a group with gradients in one engine call.
function AdamW:update_group(params, grads, states, group)
  local ms, vs, steps = {}, {}, {}
  for i, p in ipairs(params) do
    local state = states[i]
    if not state.exp_avg then
      state.exp_avg = Optimizer.zeros_like(p)
      state.exp_avg_sq = Optimizer.zeros_like(p)
    end
    ms[i], vs[i], steps[i] = state.exp_avg, state.exp_avg_sq, state.step
  end
  core.adamw_steps(params, grads, ms, vs, steps, {
    lr = group.lr,
    beta1 = group.betas[1],
    beta2 = group.betas[2],
    eps = group.eps,
    weight_decay = group.weight_decay,
  })
end

return setmetatable(AdamW, {
  __index = Optimizer,
  __call = function(_, params, options)
    return AdamW.new(params, options)
  end,
})
