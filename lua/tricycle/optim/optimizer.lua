--- The optimiser base: parameter groups, per-parameter state, zero_grad and
-- an exact state_dict / load_state_dict. Subclasses supply `update(p, grad,
-- state, group)`, `state_tensors` (names of their tensor state) and defaults.
local core = require("tricycle.core")

local Optimizer = {}
Optimizer.__index = Optimizer

local function is_tensor(value)
  return getmetatable(value) == core.Tensor
end

local function copy_value(value)
  if type(value) ~= "table" then
    return value
  end
  local result = {}
  for k, v in pairs(value) do
    result[k] = copy_value(v)
  end
  return result
end

local function no_grad(fn)
  local enabled = core.is_grad_enabled()
  core.set_grad_enabled(false)
  local ok, message = pcall(fn)
  core.set_grad_enabled(enabled)
  if not ok then
    error(message, 0)
  end
end

-- A list of tensors, or a list of groups {params = {...}, lr = ...}.
local function normalise_groups(name, params_or_groups, defaults, options)
  if type(params_or_groups) ~= "table" then
    error(("%s: expects a list of parameters or of parameter groups, got %s"):format(name,
      type(params_or_groups)), 5)
  end
  local raw = params_or_groups
  if is_tensor(raw[1]) or #raw == 0 then
    raw = { { params = raw } }
  end
  local groups, seen = {}, {}
  for g, spec in ipairs(raw) do
    if type(spec) ~= "table" or type(spec.params) ~= "table" then
      error(("%s: group %d must be a table with a list `params`"):format(name, g), 5)
    end
    local group = {}
    for key, value in pairs(defaults) do
      group[key] = copy_value(value)
    end
    for key, value in pairs(options or {}) do
      if defaults[key] == nil then
        error(("%s: unknown option '%s'"):format(name, tostring(key)), 5)
      end
      group[key] = copy_value(value)
    end
    for key, value in pairs(spec) do
      if key ~= "params" then
        if defaults[key] == nil then
          error(("%s: group %d has an unknown option '%s'"):format(name, g, tostring(key)), 5)
        end
        group[key] = copy_value(value)
      end
    end
    group.params = {}
    for i, p in ipairs(spec.params) do
      if not is_tensor(p) then
        error(("%s: group %d, entry %d is a %s, expected a tensor"):format(name, g, i, type(p)), 5)
      end
      if seen[p] then
        error(("%s: a parameter appears twice (group %d, entry %d)"):format(name, g, i), 5)
      end
      seen[p] = true
      group.params[i] = p
    end
    groups[g] = group
  end
  return groups
end

--- Builds an optimiser of `class` (which names itself in class.name).
function Optimizer.create(class, params_or_groups, options, defaults)
  local self = setmetatable({}, class)
  self.param_groups = normalise_groups(class.name, params_or_groups, defaults, options)
  self.state = {}
  for _, group in ipairs(self.param_groups) do
    class.check_group(group)
  end
  return self
end

function Optimizer.check_group() end

function Optimizer:zero_grad()
  for _, group in ipairs(self.param_groups) do
    for _, p in ipairs(group.params) do
      p.grad = nil
    end
  end
end

--- One update of every parameter that has a gradient. A subclass with
-- `update_group(params, grads, states, group)` gets each group's parameters
-- that have gradients in one call (a multi-tensor step); otherwise
-- `update(p, grad, state, group)` runs per parameter.
function Optimizer:step()
  no_grad(function()
    for _, group in ipairs(self.param_groups) do
      if self.update_group then
        local params, grads, states = {}, {}, {}
        for _, p in ipairs(group.params) do
          local grad = p.grad
          if grad ~= nil then
            local state = self.state[p]
            if not state then
              state = { step = 0 }
              self.state[p] = state
            end
            state.step = state.step + 1
            local n = #params + 1
            params[n], grads[n], states[n] = p, grad, state
          end
        end
        if #params > 0 then
          self:update_group(params, grads, states, group)
        end
      else
        self:step_each(group)
      end
    end
  end)
end

-- One `update` call per parameter of the group that has a gradient.
function Optimizer:step_each(group)
  for _, p in ipairs(group.params) do
    local grad = p.grad
    if grad ~= nil then
      local state = self.state[p]
      if not state then
        state = { step = 0 }
        self.state[p] = state
      end
      state.step = state.step + 1
      self:update(p, grad, state, group)
    end
  end
end

local function zeros_like(p)
  local t = core.zeros(p.shape, { dtype = p.dtype })
  if p.device ~= "cpu" then
    t = t:to(p.device)
  end
  return t
end
Optimizer.zeros_like = zeros_like

--- {tensors = {"<group>.<index>.<name>" = copy}, values = {groups =, steps =}}.
-- Copies, so later steps do not change a saved state.
function Optimizer:state_dict()
  local tensors, groups, steps = {}, {}, {}
  for g, group in ipairs(self.param_groups) do
    local hyper = {}
    for key, value in pairs(group) do
      if key ~= "params" then
        hyper[key] = copy_value(value)
      end
    end
    hyper.size = #group.params
    groups[g] = hyper
    for i, p in ipairs(group.params) do
      local state = self.state[p]
      if state then
        local prefix = g .. "." .. i
        steps[prefix] = state.step
        for _, name in ipairs(self.state_tensors) do
          if state[name] then
            tensors[prefix .. "." .. name] = state[name]:detach():clone()
          end
        end
      end
    end
  end
  return { tensors = tensors, values = { kind = self.name, groups = groups, steps = steps } }
end

--- Restores a state_dict made by the same kind of optimiser over the same
-- parameter layout; later steps match the saved optimiser's exactly.
function Optimizer:load_state_dict(sd)
  if type(sd) ~= "table" or type(sd.values) ~= "table" or type(sd.tensors) ~= "table" then
    error(("%s:load_state_dict: expects {tensors =, values =} from state_dict()"):format(self.name), 2)
  end
  local values = sd.values
  if values.kind and values.kind ~= self.name then
    error(("%s:load_state_dict: the state was saved by %s"):format(self.name, tostring(values.kind)), 2)
  end
  if #values.groups ~= #self.param_groups then
    error(("%s:load_state_dict: the state has %d parameter groups, this optimiser %d"):format(self.name,
      #values.groups, #self.param_groups), 2)
  end
  for g, group in ipairs(self.param_groups) do
    if values.groups[g].size ~= #group.params then
      error(("%s:load_state_dict: group %d has %d parameters in the state, %d here"):format(self.name, g,
        values.groups[g].size, #group.params), 2)
    end
  end
  local state = {}
  for g, group in ipairs(self.param_groups) do
    for key, value in pairs(values.groups[g]) do
      if key ~= "size" then
        group[key] = copy_value(value)
      end
    end
    for i, p in ipairs(group.params) do
      local prefix = g .. "." .. i
      local step = values.steps[prefix]
      if step then
        local entry = { step = step }
        for _, name in ipairs(self.state_tensors) do
          local saved = sd.tensors[prefix .. "." .. name]
          if saved ~= nil then
            local want, have = table.concat(p.shape, ","), table.concat(saved.shape, ",")
            if want ~= have then
              error(("%s:load_state_dict: %s.%s has shape {%s}, the parameter {%s}"):format(self.name, prefix,
                name, have, want), 2)
            end
            local t = zeros_like(p)
            no_grad(function()
              t:copy_(saved)
            end)
            entry[name] = t
          end
        end
        state[p] = entry
      end
    end
  end
  self.state = state
end

return Optimizer
