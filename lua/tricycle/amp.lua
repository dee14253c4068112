--- tricycle.amp: dynamic loss scaling for float16 training (GradScaler),
-- with PyTorch's semantics. Small float16 gradients underflow to zero; the
-- loss is multiplied by a large scale before backward, and the gradients
-- divided by it before the step. When a gradient came out Inf or NaN (the
-- scale was too large for float16) the step is skipped and the scale backs
-- off; after growth_interval clean steps in a row it grows.
--
--   local scaler = tc.amp.GradScaler()
--   scaler:scale(loss):backward()
--   scaler:unscale_(opt); nn.clip_grad_norm(params, 1.0)   -- optional
--   scaler:step(opt)      -- unscales, skips the step on Inf/NaN
--   scaler:update()
--
-- The parameters the optimiser holds stay float32 (the optimisers refuse
-- 16-bit ones): the forward runs under tc.autocast("float16") (products of
-- float16-rounded operands, forward and backward) or casts them with
-- :half(), a differentiable conversion; either way their gradients arrive
-- in float32.
local core = require("tricycle.core")
local errors = require("tricycle.errors")
local check_options = require("tricycle.options").check_options

local amp = {}

local OPTIONS = { "init_scale", "growth_factor", "backoff_factor", "growth_interval", "enabled" }
local STATE_KEYS = { "scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker" }

local GradScaler = {}
GradScaler.__index = GradScaler
GradScaler.__name = "GradScaler"

local function shape_string(shape) return "[" .. table.concat(shape, ", ") .. "]" end

local function is_tensor(value) return getmetatable(value) == core.Tensor end

-- The scale is a float32 number, as PyTorch keeps it.
local function float32(x) return core.tensor(x):item() end

local function is_finite(x) return type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge end

local function check_positive(where, name, value)
  if not is_finite(value) or value <= 0 then
    errors.raise(("%s: %s must be a finite number > 0, got %s"):format(where, name, tostring(value)))
  end
end

local function check_interval(where, value)
  if not is_finite(value) or value < 1 or value ~= math.floor(value) then
    errors.raise(("%s: growth_interval must be an integer >= 1, got %s"):format(where, tostring(value)))
  end
end

local function check_factors(where, growth_factor, backoff_factor)
  if not is_finite(growth_factor) or growth_factor <= 1 then
    errors.raise(("%s: growth_factor must be a finite number > 1, got %s"):format(where, tostring(growth_factor)))
  end
  if not is_finite(backoff_factor) or backoff_factor <= 0 or backoff_factor >= 1 then
    errors.raise(("%s: backoff_factor must be a number in (0, 1), got %s"):format(where, tostring(backoff_factor)))
  end
end

--- A new scaler; options (all optional): init_scale (2^16), growth_factor
-- (2), backoff_factor (0.5), growth_interval (2000), enabled (true; a
-- disabled scaler passes everything through unchanged).
function amp.GradScaler(options)
  local where = "GradScaler"
  if options ~= nil and type(options) ~= "table" then
    errors.raise(("%s: options must be a table, got %s"):format(where, type(options)))
  end
  options = options or {}
  errors.call(check_options, where, options, OPTIONS)
  local self = setmetatable({
    scale_value = options.init_scale == nil and 65536.0 or options.init_scale,
    growth_factor = options.growth_factor == nil and 2.0 or options.growth_factor,
    backoff_factor = options.backoff_factor == nil and 0.5 or options.backoff_factor,
    growth_interval = options.growth_interval == nil and 2000 or options.growth_interval,
    enabled = options.enabled == nil and true or options.enabled,
    growth_tracker = 0,
    -- per optimiser since the last update: "unscaled" or "stepped", and found_inf
    states = setmetatable({}, { __mode = "k" }),
  }, GradScaler)
  if type(self.enabled) ~= "boolean" then
    errors.raise(("%s: enabled must be a boolean, got %s"):format(where, type(self.enabled)))
  end
  check_positive(where, "init_scale", self.scale_value)
  check_factors(where, self.growth_factor, self.backoff_factor)
  check_interval(where, self.growth_interval)
  self.scale_value = float32(self.scale_value)
  return self
end

local function check_self(self, method)
  if getmetatable(self) ~= GradScaler then
    errors.raise(("GradScaler:%s: call it with ':' on a GradScaler, got %s"):format(method, type(self)))
  end
end

local function check_optimizer(method, optimizer)
  if type(optimizer) ~= "table" or type(optimizer.param_groups) ~= "table" or type(optimizer.step) ~= "function" then
    errors.raise(("GradScaler:%s: argument 1 must be an optimiser, got %s"):format(method, type(optimizer)))
  end
end

--- The loss (a floating tensor, or a list of them) times the scale; as is
-- when disabled.
function GradScaler:scale(outputs)
  check_self(self, "scale")
  if not self.enabled then return outputs end
  local function scaled(t, what)
    if not is_tensor(t) then
      errors.raise(("GradScaler:scale: %s must be a tensor, got %s"):format(what, type(t)))
    end
    if t.dtype ~= "float32" and t.dtype ~= "float64" and t.dtype ~= "bfloat16" and t.dtype ~= "float16" then
      errors.raise(("GradScaler:scale: %s must be a floating tensor, got %s"):format(what, t.dtype))
    end
    return errors.call(function() return t * self.scale_value end)
  end
  if is_tensor(outputs) then return scaled(outputs, "the loss") end
  if type(outputs) ~= "table" then
    errors.raise(("GradScaler:scale: argument 1 must be a tensor or a list of tensors, got %s"):format(type(outputs)))
  end
  local result = {}
  for i, t in ipairs(outputs) do result[i] = scaled(t, ("entry %d"):format(i)) end
  return result
end

-- The optimiser's gradients; 16-bit ones are refused (unscaling them in
-- 16 bits would lose what the scale kept).
local function gradients_of(optimizer)
  local grads = {}
  for g, group in ipairs(optimizer.param_groups) do
    for i, p in ipairs(group.params or {}) do
      local grad = p.grad
      if grad ~= nil then
        if grad.dtype ~= "float32" and grad.dtype ~= "float64" then
          errors.raise(("GradScaler:unscale_: the gradient of parameter %d of group %d is %s %s; keep float32 "
            .. "parameters and cast them to float16 in the forward"):format(i, g, grad.dtype, shape_string(grad.shape)))
        end
        grads[#grads + 1] = grad
      end
    end
  end
  return grads
end

--- Divides the optimiser's gradients by the scale in place and records
-- whether any is Inf or NaN (one global norm over them all: one read back
-- per device and dtype, not one per tensor). Once per optimiser between
-- updates, before step.
function GradScaler:unscale_(optimizer)
  check_self(self, "unscale_")
  if not self.enabled then return end
  check_optimizer("unscale_", optimizer)
  local state = self.states[optimizer]
  if state and state.stage == "unscaled" then
    errors.raise("GradScaler:unscale_: already called on this optimiser since the last update()")
  elseif state and state.stage == "stepped" then
    errors.raise("GradScaler:unscale_: called after step() (call it before step, once per update())")
  end
  local grads = gradients_of(optimizer)
  -- Summed in double, the squares of finite float32 values never overflow.
  local norm = #grads > 0 and errors.call(core.global_norm, grads) or 0
  local inverse = float32(1 / self.scale_value)
  for _, grad in ipairs(grads) do errors.call(core.scale_, grad, inverse) end
  self.states[optimizer] = { stage = "unscaled", found_inf = not is_finite(norm) }
end

--- Unscales (unless unscale_ was called) and runs optimizer:step(...) when
-- no gradient is Inf or NaN; returns its results, or nothing when skipped.
function GradScaler:step(optimizer, ...)
  check_self(self, "step")
  check_optimizer("step", optimizer)
  if not self.enabled then return optimizer:step(...) end
  local state = self.states[optimizer]
  if state and state.stage == "stepped" then
    errors.raise("GradScaler:step: already called for this optimiser since the last update()")
  end
  if not state then
    self:unscale_(optimizer)
    state = self.states[optimizer]
  end
  state.stage = "stepped"
  if state.found_inf then return end
  return optimizer:step(...)
end

--- Ends the iteration: the scale times backoff_factor when a step was
-- skipped, times growth_factor after growth_interval clean steps in a row
-- (not when that would overflow float32). new_scale (a number > 0) sets it
-- instead.
function GradScaler:update(new_scale)
  check_self(self, "update")
  if not self.enabled then return end
  if new_scale ~= nil then
    check_positive("GradScaler:update", "new_scale", new_scale)
    self.scale_value = float32(new_scale)
  else
    local checked, found_inf = false, false
    for _, state in pairs(self.states) do
      checked = true
      found_inf = found_inf or state.found_inf
    end
    if not checked then
      errors.raise("GradScaler:update: no inf checks were recorded (call step or unscale_ first)")
    end
    if found_inf then
      self.scale_value = float32(self.scale_value * self.backoff_factor)
      self.growth_tracker = 0
    else
      self.growth_tracker = self.growth_tracker + 1
      if self.growth_tracker == self.growth_interval then
        local grown = float32(self.scale_value * self.growth_factor)
        if is_finite(grown) then self.scale_value = grown end
        self.growth_tracker = 0
      end
    end
  end
  self.states = setmetatable({}, { __mode = "k" })
end

--- The current scale (1 when disabled).
function GradScaler:get_scale()
  check_self(self, "get_scale")
  return self.enabled and self.scale_value or 1.0
end

function GradScaler:is_enabled()
  check_self(self, "is_enabled")
  return self.enabled
end

--- scale, growth_factor, backoff_factor, growth_interval and
-- _growth_tracker (PyTorch's names); empty when disabled.
function GradScaler:state_dict()
  check_self(self, "state_dict")
  if not self.enabled then return {} end
  return {
    scale = self.scale_value, growth_factor = self.growth_factor, backoff_factor = self.backoff_factor,
    growth_interval = self.growth_interval, _growth_tracker = self.growth_tracker,
  }
end

function GradScaler:load_state_dict(state)
  check_self(self, "load_state_dict")
  local where = "GradScaler:load_state_dict"
  if not self.enabled then errors.raise(where .. ": the scaler is disabled") end
  if type(state) ~= "table" then errors.raise(("%s: argument 1 must be a table, got %s"):format(where, type(state))) end
  if next(state) == nil then
    errors.raise(where .. ": the state is empty (saved from a disabled scaler?)")
  end
  errors.call(check_options, where, state, STATE_KEYS)
  for _, key in ipairs(STATE_KEYS) do
    if state[key] == nil then errors.raise(("%s: missing '%s'"):format(where, key)) end
  end
  check_positive(where, "scale", state.scale)
  check_factors(where, state.growth_factor, state.backoff_factor)
  check_interval(where, state.growth_interval)
  local tracker = state._growth_tracker
  if not is_finite(tracker) or tracker < 0 or tracker ~= math.floor(tracker) or tracker >= state.growth_interval then
    errors.raise(("%s: _growth_tracker must be an integer in [0, growth_interval), got %s"):format(where,
      tostring(tracker)))
  end
  self.scale_value, self.growth_factor, self.backoff_factor = float32(state.scale), state.growth_factor,
    state.backoff_factor
  self.growth_interval, self.growth_tracker = state.growth_interval, tracker
end

return amp
