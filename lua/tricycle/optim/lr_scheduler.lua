--- Learning-rate schedulers bound to an optimiser, with PyTorch's
-- lr_scheduler semantics: each sets every group's lr when made (epoch 0) and
-- at each :step(). Their state goes into the optimiser's state_dict (in the
-- order they were made) and load_state_dict restores it.
--
--   local scheduler = optim.step_lr(opt, {step_size = 30, gamma = 0.1})
--   for epoch = 1, 90 do train(); scheduler:step() end
--
-- Closed forms of the epoch e from each group's lr at construction (base):
-- step_lr base * gamma^floor(e / step_size); multistep_lr base *
-- gamma^(milestones <= e); exponential_lr base * gamma^e; lambda_lr base *
-- fn(e); warmup_lr base * (start_factor + (end_factor - start_factor) *
-- min(e, total_iters) / total_iters) (PyTorch's LinearLR); one_cycle_lr
-- from max_lr / div_factor up to max_lr over pct_start of total_steps, then
-- down to that / final_div_factor (cosine or linear), held there after.
-- reduce_lr_on_plateau:step(metric) multiplies lr by factor when the metric
-- has not improved for more than `patience` steps.
local compat = require("tricycle.compat")
local check_options = require("tricycle.options").check_options
local errors = require("tricycle.errors")

local M = {}

local Scheduler = {}
Scheduler.__index = Scheduler

local function fail(format, ...)
  errors.raise(format:format(...))
end

local function finite(x)
  return type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge
end

local function check_number(name, option, value, test, range)
  if not finite(value) or not test(value) then
    fail("%s: option %s must be %s, got %s", name, option, range, tostring(value))
  end
end

local function positive(x) return x > 0 end
local function non_negative(x) return x >= 0 end
local function positive_integer(x) return compat.is_integer(x) and x > 0 end
local function non_negative_integer(x) return compat.is_integer(x) and x >= 0 end

local function begin(name, optimizer, options, allowed)
  if type(optimizer) ~= "table" or type(optimizer.param_groups) ~= "table" then
    fail("%s: argument 1 must be an optimiser, got %s", name, type(optimizer))
  end
  if options ~= nil and type(options) ~= "table" then
    fail("%s: options must be a table, got %s", name, type(options))
  end
  check_options(name, options, allowed, 3)
  return options or {}
end

local function create(name, optimizer, lr_of)
  local self = setmetatable({ name = name, optimizer = optimizer, last_epoch = 0, lr_of = lr_of, base_lrs = {} },
    Scheduler)
  for g, group in ipairs(optimizer.param_groups) do
    self.base_lrs[g] = group.lr
  end
  optimizer.schedulers = optimizer.schedulers or {}
  table.insert(optimizer.schedulers, self)
  self:apply()
  return self
end

function Scheduler:apply()
  for g, group in ipairs(self.optimizer.param_groups) do
    local lr = self.lr_of(self.base_lrs[g] or group.lr, self.last_epoch)
    if not finite(lr) or lr < 0 then
      fail("%s: the learning rate of epoch %d is %s (it must be a finite number >= 0)", self.name, self.last_epoch,
        tostring(lr))
    end
    group.lr = lr
  end
end

local function check_self(self, method)
  if getmetatable(self) ~= Scheduler then
    fail("scheduler:%s: call it as scheduler:%s(...), got a %s for the scheduler", method, method, type(self))
  end
end

--- Advances one epoch (or step) and sets the groups' lr. The plateau
-- scheduler takes the metric: scheduler:step(validation_loss).
function Scheduler:step(metric)
  check_self(self, "step")
  if self.on_metric then
    if not finite(metric) then
      fail("%s:step: metric must be a finite number, got %s", self.name, tostring(metric))
    end
    self:on_metric(metric)
    return
  end
  if metric ~= nil then
    fail("%s:step: takes no argument (only reduce_lr_on_plateau takes a metric), got %s", self.name, type(metric))
  end
  self.last_epoch = self.last_epoch + 1
  self:apply()
end

--- The current lr of every group, a list.
function Scheduler:get_last_lr()
  check_self(self, "get_last_lr")
  local lrs = {}
  for g, group in ipairs(self.optimizer.param_groups) do
    lrs[g] = group.lr
  end
  return lrs
end

local PLATEAU_FIELDS = { "best", "num_bad_epochs", "cooldown_counter" }

function Scheduler:state_dict()
  check_self(self, "state_dict")
  local state = { name = self.name, last_epoch = self.last_epoch, base_lrs = {} }
  for g, lr in ipairs(self.base_lrs) do
    state.base_lrs[g] = lr
  end
  for _, field in ipairs(PLATEAU_FIELDS) do
    state[field] = self[field]
  end
  return state
end

function Scheduler:load_state_dict(state)
  check_self(self, "load_state_dict")
  local name = self.name .. ":load_state_dict"
  if type(state) ~= "table" then
    fail("%s: expects a table from state_dict(), got %s", name, type(state))
  end
  check_options(name, state, { "name", "last_epoch", "base_lrs", "best", "num_bad_epochs", "cooldown_counter" }, 2)
  if state.name ~= self.name then
    fail("%s: the state is of %s", name, tostring(state.name))
  end
  if not non_negative_integer(state.last_epoch) then
    fail("%s: last_epoch must be a non-negative integer, got %s", name, tostring(state.last_epoch))
  end
  if type(state.base_lrs) ~= "table" or #state.base_lrs ~= #self.optimizer.param_groups then
    fail("%s: base_lrs must hold one lr per group (%d), got %s", name, #self.optimizer.param_groups,
      type(state.base_lrs) == "table" and #state.base_lrs or tostring(state.base_lrs))
  end
  for g, lr in ipairs(state.base_lrs) do
    if not finite(lr) or lr < 0 then
      fail("%s: base_lrs[%d] must be a finite number >= 0, got %s", name, g, tostring(lr))
    end
  end
  self.last_epoch = state.last_epoch
  for g, lr in ipairs(state.base_lrs) do
    self.base_lrs[g] = lr
  end
  for _, field in ipairs(PLATEAU_FIELDS) do
    self[field] = state[field]
  end
end

local function default(value, fallback)
  if value == nil then
    return fallback
  end
  return value
end

function M.step_lr(optimizer, options)
  local name = "step_lr"
  options = begin(name, optimizer, options, { "step_size", "gamma" })
  local step_size, gamma = options.step_size, default(options.gamma, 0.1)
  check_number(name, "step_size", step_size, positive_integer, "a positive integer")
  check_number(name, "gamma", gamma, non_negative, "a finite number >= 0")
  return create(name, optimizer, function(base, epoch)
    return base * gamma ^ math.floor(epoch / step_size)
  end)
end

function M.multistep_lr(optimizer, options)
  local name = "multistep_lr"
  options = begin(name, optimizer, options, { "milestones", "gamma" })
  local milestones, gamma = options.milestones, default(options.gamma, 0.1)
  if type(milestones) ~= "table" or #milestones == 0 then
    fail("%s: option milestones must be a list of increasing positive integers, got %s", name, tostring(milestones))
  end
  for i, m in ipairs(milestones) do
    if not positive_integer(m) or (i > 1 and m <= milestones[i - 1]) then
      fail("%s: option milestones must be increasing positive integers, got %s at %d", name, tostring(m), i)
    end
  end
  check_number(name, "gamma", gamma, non_negative, "a finite number >= 0")
  local list = { compat.unpack(milestones) }
  return create(name, optimizer, function(base, epoch)
    local passed = 0
    for _, m in ipairs(list) do
      if epoch >= m then
        passed = passed + 1
      end
    end
    return base * gamma ^ passed
  end)
end

function M.exponential_lr(optimizer, options)
  local name = "exponential_lr"
  options = begin(name, optimizer, options, { "gamma" })
  check_number(name, "gamma", options.gamma, non_negative, "a finite number >= 0")
  local gamma = options.gamma
  return create(name, optimizer, function(base, epoch)
    return base * gamma ^ epoch
  end)
end

function M.lambda_lr(optimizer, options)
  local name = "lambda_lr"
  options = begin(name, optimizer, options, { "lr_lambda" })
  local fn = options.lr_lambda
  if type(fn) ~= "function" then
    fail("%s: option lr_lambda must be a function of the epoch giving a factor, got %s", name, type(fn))
  end
  return create(name, optimizer, function(base, epoch)
    local factor = fn(epoch)
    if not finite(factor) then
      fail("%s: lr_lambda(%d) returned %s, expected a finite number", name, epoch, tostring(factor))
    end
    return base * factor
  end)
end

function M.warmup_lr(optimizer, options)
  local name = "warmup_lr"
  options = begin(name, optimizer, options, { "start_factor", "end_factor", "total_iters" })
  local start_factor = default(options.start_factor, 1 / 3)
  local end_factor = default(options.end_factor, 1)
  local total = default(options.total_iters, 5)
  check_number(name, "start_factor", start_factor, function(x) return x > 0 and x <= 1 end, "a number in (0, 1]")
  check_number(name, "end_factor", end_factor, function(x) return x >= 0 and x <= 1 end, "a number in [0, 1]")
  check_number(name, "total_iters", total, positive_integer, "a positive integer")
  return create(name, optimizer, function(base, epoch)
    return base * (start_factor + (end_factor - start_factor) * math.min(epoch, total) / total)
  end)
end

function M.one_cycle_lr(optimizer, options)
  local name = "one_cycle_lr"
  options = begin(name, optimizer, options, { "max_lr", "total_steps", "pct_start", "anneal_strategy",
    "div_factor", "final_div_factor" })
  local max_lr, total = options.max_lr, options.total_steps
  local pct_start = default(options.pct_start, 0.3)
  local strategy = default(options.anneal_strategy, "cos")
  local div_factor, final_div_factor = default(options.div_factor, 25), default(options.final_div_factor, 1e4)
  check_number(name, "max_lr", max_lr, non_negative, "a finite number >= 0")
  check_number(name, "total_steps", total, function(x) return compat.is_integer(x) and x >= 2 end,
    "an integer >= 2")
  check_number(name, "pct_start", pct_start, function(x) return x > 0 and x < 1 end, "a number in (0, 1)")
  check_number(name, "div_factor", div_factor, positive, "a finite number > 0")
  check_number(name, "final_div_factor", final_div_factor, positive, "a finite number > 0")
  if strategy ~= "cos" and strategy ~= "linear" then
    fail("%s: option anneal_strategy must be \"cos\" or \"linear\", got %s", name, tostring(strategy))
  end
  local initial = max_lr / div_factor
  local final = initial / final_div_factor
  local peak = pct_start * total - 1
  local last = total - 1
  if peak <= 0 or peak >= last then
    fail("%s: pct_start %s of total_steps %d leaves no step to warm up or anneal", name, tostring(pct_start), total)
  end
  local function anneal(from, to, fraction)
    if strategy == "linear" then
      return from + (to - from) * fraction
    end
    return to + (from - to) / 2 * (math.cos(math.pi * fraction) + 1)
  end
  return create(name, optimizer, function(_, epoch)
    if epoch <= peak then
      return anneal(initial, max_lr, epoch / peak)
    end
    return anneal(max_lr, final, math.min(1, (epoch - peak) / (last - peak)))
  end)
end

function M.reduce_lr_on_plateau(optimizer, options)
  local name = "reduce_lr_on_plateau"
  options = begin(name, optimizer, options, { "mode", "factor", "patience", "threshold", "cooldown", "min_lr",
    "eps" })
  local mode = default(options.mode, "min")
  local factor, patience = default(options.factor, 0.1), default(options.patience, 10)
  local threshold, cooldown = default(options.threshold, 1e-4), default(options.cooldown, 0)
  local min_lr, eps = default(options.min_lr, 0), default(options.eps, 1e-8)
  if mode ~= "min" and mode ~= "max" then
    fail("%s: option mode must be \"min\" or \"max\", got %s", name, tostring(mode))
  end
  check_number(name, "factor", factor, function(x) return x >= 0 and x < 1 end, "a number in [0, 1)")
  check_number(name, "patience", patience, non_negative_integer, "a non-negative integer")
  check_number(name, "threshold", threshold, non_negative, "a finite number >= 0")
  check_number(name, "cooldown", cooldown, non_negative_integer, "a non-negative integer")
  check_number(name, "min_lr", min_lr, non_negative, "a finite number >= 0")
  check_number(name, "eps", eps, non_negative, "a finite number >= 0")
  local self = create(name, optimizer, function(base) return base end)
  self.best, self.num_bad_epochs, self.cooldown_counter = nil, 0, 0
  -- the plateau scheduler never sets lr from a closed form: only on_metric changes it
  self.apply = function() end
  self.on_metric = function(s, metric)
    s.last_epoch = s.last_epoch + 1
    local better
    if s.best == nil then
      better = true
    elseif mode == "min" then
      better = metric < s.best * (1 - threshold)
    else
      better = metric > s.best * (1 + threshold)
    end
    if better then
      s.best, s.num_bad_epochs = metric, 0
    else
      s.num_bad_epochs = s.num_bad_epochs + 1
    end
    if s.cooldown_counter > 0 then
      s.cooldown_counter = s.cooldown_counter - 1
      s.num_bad_epochs = 0
    end
    if s.num_bad_epochs > patience then
      for _, group in ipairs(s.optimizer.param_groups) do
        local reduced = math.max(group.lr * factor, min_lr)
        if group.lr - reduced > eps then
          group.lr = reduced
        end
      end
      s.cooldown_counter, s.num_bad_epochs = cooldown, 0
    end
  end
  return self
end

return M
