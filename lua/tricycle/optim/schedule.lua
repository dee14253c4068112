--- Learning-rate schedules.
local schedule = {}

local Cosine = {}
Cosine.__index = Cosine

local function check(config, name)
  name = name or "cosine_schedule"
  if type(config) ~= "table" then
    error(name .. ": expects {max_lr =, min_lr =, warmup =, total =}", 3)
  end
  for _, field in ipairs({ "max_lr", "min_lr" }) do
    if type(config[field]) ~= "number" then
      error(("%s: %s must be a number, got %s"):format(name, field, tostring(config[field])), 3)
    end
  end
  for _, field in ipairs({ "warmup", "total" }) do
    if math.type(config[field]) ~= "integer" or config[field] < 0 then
      error(("%s: %s must be a non-negative integer, got %s"):format(name, field, tostring(config[field])), 3)
    end
  end
  if config.total < config.warmup then
    error(("%s: total %d is shorter than warmup %d"):format(name, config.total, config.warmup), 3)
  end
end

--- cosine_schedule{max_lr =, min_lr = 0, warmup = 0, total =}: for step
-- counted from 0, a linear warmup max_lr * (step + 1) / warmup over the first
-- `warmup` steps, then a half cosine from max_lr down to min_lr reached at
-- step `total`, and min_lr after it. `:lr(step)` is pure; `:next()` returns
-- the rate for the current step and advances it.
function schedule.cosine(config)
  local c = { max_lr = config and config.max_lr, min_lr = config and config.min_lr or 0,
    warmup = config and config.warmup or 0, total = config and config.total }
  check(c)
  c.step = 0
  return setmetatable(c, Cosine)
end

function Cosine:lr(step)
  step = step or self.step
  if step < self.warmup then
    return self.max_lr * (step + 1) / self.warmup
  end
  if step >= self.total then
    return self.min_lr
  end
  local ratio = (step - self.warmup) / math.max(1, self.total - self.warmup)
  local coefficient = 0.5 * (1 + math.cos(math.pi * ratio))
  return self.min_lr + coefficient * (self.max_lr - self.min_lr)
end

function Cosine:next()
  local rate = self:lr(self.step)
  self.step = self.step + 1
  return rate
end

function Cosine:state_dict()
  return { max_lr = self.max_lr, min_lr = self.min_lr, warmup = self.warmup, total = self.total, step = self.step }
end

function Cosine:load_state_dict(state)
  check(state)
  self.max_lr, self.min_lr, self.warmup, self.total = state.max_lr, state.min_lr, state.warmup, state.total
  self.step = state.step or 0
end

local Linear = setmetatable({}, { __index = Cosine })
Linear.__index = Linear

--- linear_schedule{max_lr =, min_lr = 0, warmup = 0, total =}: the same
-- warmup as the cosine, then a straight line from max_lr down to min_lr
-- reached at step `total`, and min_lr after it.
function schedule.linear(config)
  local c = { max_lr = config and config.max_lr, min_lr = config and config.min_lr or 0,
    warmup = config and config.warmup or 0, total = config and config.total }
  check(c, "linear_schedule")
  c.step = 0
  return setmetatable(c, Linear)
end

function Linear:lr(step)
  step = step or self.step
  if step < self.warmup then
    return self.max_lr * (step + 1) / self.warmup
  end
  if step >= self.total then
    return self.min_lr
  end
  local ratio = (step - self.warmup) / math.max(1, self.total - self.warmup)
  return self.max_lr + ratio * (self.min_lr - self.max_lr)
end

function Linear:load_state_dict(state)
  check(state, "linear_schedule")
  self.max_lr, self.min_lr, self.warmup, self.total = state.max_lr, state.min_lr, state.warmup, state.total
  self.step = state.step or 0
end

return schedule
