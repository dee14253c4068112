--- Learning-rate schedules.
local compat = require("tricycle.compat")
local check_options = require("tricycle.options").check_options

local schedule = {}

local Cosine = {}
Cosine.__index = Cosine
-- The linear schedule shares the cosine's warmup, checks and methods.
local Linear = setmetatable({}, { __index = Cosine })
Linear.__index = Linear

-- Checks a schedule's settings; `level` as for error() in check's caller.
local function check(config, name, level)
  if type(config) ~= "table" then
    error(name .. ": expects {max_lr =, min_lr =, warmup =, total =}", level + 1)
  end
  for _, field in ipairs({ "max_lr", "min_lr" }) do
    local value = config[field]
    if type(value) ~= "number" or value ~= value or value == math.huge or value < 0 then
      error(("%s: %s must be a finite number >= 0, got %s"):format(name, field, tostring(value)), level + 1)
    end
  end
  if config.min_lr > config.max_lr then
    error(("%s: min_lr %s is above max_lr %s"):format(name, tostring(config.min_lr), tostring(config.max_lr)),
      level + 1)
  end
  for _, field in ipairs({ "warmup", "total" }) do
    if not compat.is_integer(config[field]) or config[field] < 0 then
      error(("%s: %s must be a non-negative integer, got %s"):format(name, field, tostring(config[field])),
        level + 1)
    end
  end
  if config.total < config.warmup then
    error(("%s: total %d is shorter than warmup %d"):format(name, config.total, config.warmup), level + 1)
  end
end

-- A schedule of `class` from a constructor's config, named `name`; `level`
-- as for error() here (the constructor's caller is 3: call it without a
-- tail call).
local function new_schedule(name, config, class, level)
  if config ~= nil and type(config) ~= "table" then
    error(("%s: expects {max_lr =, min_lr =, warmup =, total =}, got %s"):format(name, type(config)), level)
  end
  check_options(name, config, { "max_lr", "min_lr", "warmup", "total" }, level)
  local c = { max_lr = config and config.max_lr, min_lr = config and config.min_lr or 0,
    warmup = config and config.warmup or 0, total = config and config.total }
  check(c, name, level)
  c.step = 0
  return setmetatable(c, class)
end

--- cosine_schedule{max_lr =, min_lr = 0, warmup = 0, total =}: for step
-- counted from 0, a linear warmup max_lr * (step + 1) / warmup over the first
-- `warmup` steps, then a half cosine from max_lr down to min_lr reached at
-- step `total`, and min_lr after it. `:lr(step)` is pure; `:next()` returns
-- the rate for the current step and advances it.
function schedule.cosine(config)
  return (new_schedule("cosine_schedule", config, Cosine, 3))
end

-- level: that of the method's caller, as seen from here.
local function check_self(self, method, level)
  local class = getmetatable(self)
  if class ~= Cosine and class ~= Linear then
    error(("schedule:%s: call it as schedule:%s(...), got a %s for the schedule"):format(method, method,
      type(self)), level or 3)
  end
  return class == Linear and "linear_schedule" or "cosine_schedule"
end

-- The rate of `step` (nil: the schedule's own), after checking it.
local function checked_step(self, step)
  local name = check_self(self, "lr", 4)
  if step ~= nil and (not compat.is_integer(step) or step < 0) then
    error(("%s:lr: step must be a non-negative integer (counted from 0), got %s"):format(name, tostring(step)), 3)
  end
  return step or self.step
end

-- The rate of `step` in the warmup or from `total` on; otherwise nil and
-- how far (0 to 1) the step is from the warmup's end to `total`.
local function warmup_or_floor(self, step)
  if step < self.warmup then
    return self.max_lr * (step + 1) / self.warmup
  end
  if step >= self.total then
    return self.min_lr
  end
  return nil, (step - self.warmup) / math.max(1, self.total - self.warmup)
end

function Cosine:lr(step)
  local rate, ratio = warmup_or_floor(self, checked_step(self, step))
  if rate then return rate end
  local coefficient = 0.5 * (1 + math.cos(math.pi * ratio))
  return self.min_lr + coefficient * (self.max_lr - self.min_lr)
end

function Cosine:next()
  check_self(self, "next")
  local rate = self:lr(self.step)
  self.step = self.step + 1
  return rate
end

function Cosine:state_dict()
  return { max_lr = self.max_lr, min_lr = self.min_lr, warmup = self.warmup, total = self.total, step = self.step }
end

function Cosine:load_state_dict(state)
  local name = check_self(self, "load_state_dict")
  check(state, name, 2)
  check_options(name .. ":load_state_dict", state, { "max_lr", "min_lr", "warmup", "total", "step" }, 2)
  if state.step ~= nil and (not compat.is_integer(state.step) or state.step < 0) then
    error(("%s:load_state_dict: step must be a non-negative integer, got %s"):format(name, tostring(state.step)), 2)
  end
  self.max_lr, self.min_lr, self.warmup, self.total = state.max_lr, state.min_lr, state.warmup, state.total
  self.step = state.step or 0
end

--- linear_schedule{max_lr =, min_lr = 0, warmup = 0, total =}: the same
-- warmup as the cosine, then a straight line from max_lr down to min_lr
-- reached at step `total`, and min_lr after it.
function schedule.linear(config)
  return (new_schedule("linear_schedule", config, Linear, 3))
end

function Linear:lr(step)
  local rate, ratio = warmup_or_floor(self, checked_step(self, step))
  if rate then return rate end
  return self.max_lr + ratio * (self.min_lr - self.max_lr)
end

return schedule
