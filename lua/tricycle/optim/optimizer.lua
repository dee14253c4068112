--- The optimiser base: parameter groups, per-parameter state, zero_grad and
-- an exact state_dict / load_state_dict. Subclasses supply `update(p, grad,
-- state, group)`, `state_tensors` (names of their tensor state), defaults
-- and `check_group(group, prefix)` for their options.
--
-- Parameters are checked when the optimiser is built (open floating leaf
-- tensors, each once) and errors name them by position, and by name when
-- they came as model:named_parameters() pairs. The optimiser holds the
-- tensors themselves: model:to() converts them in place, and a step brings
-- each parameter's state to its current dtype and device.
local compat = require("tricycle.compat")
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

-- Grad mode off around a function (tc.no_grad, the one definition).
local no_grad = require("tricycle").no_grad

-- The option names, sorted: the keys of defaults and the names in extra (a
-- list of options an optimiser takes besides its group options).
local function sorted_keys(defaults, extra)
  local names = {}
  for key in pairs(defaults) do
    names[#names + 1] = key
  end
  for _, key in ipairs(extra or {}) do
    names[#names + 1] = key
  end
  table.sort(names)
  return table.concat(names, ", ")
end

-- A tensor's field, or nil when the tensor was closed (reading a closed
-- tensor's field raises).
local function field_of(t, key)
  local ok, value = pcall(function()
    return t[key]
  end)
  if ok then
    return value
  end
  return nil
end

--- "parameter 3" or "parameter 3 ('h.1.attn.c_attn.weight')", and the group
-- when there are several: how errors name a parameter.
function Optimizer:describe(g, i)
  local name = self.names and self.names[self.param_groups[g].params[i]]
  local text = ("parameter %d"):format(i)
  if #self.param_groups > 1 then
    text = ("group %d, parameter %d"):format(g, i)
  end
  if name then
    text = text .. (" ('%s')"):format(name)
  end
  return text
end

-- One entry of a parameter list: a tensor, or a {name, tensor} pair as
-- model:named_parameters() gives. Returns the tensor and its name (or nil).
local function read_entry(name, where, entry)
  if is_tensor(entry) then
    return entry, nil
  end
  if type(entry) == "table" and getmetatable(entry) == nil and type(entry[1]) == "string" and is_tensor(entry[2]) then
    return entry[2], entry[1]
  end
  error(("%s: %s is a %s, expected a tensor (or a {name, tensor} pair)"):format(name, where, type(entry)), 6)
end

-- A parameter an optimiser can update: an open floating leaf tensor.
local function check_parameter(name, where, p)
  local dtype = field_of(p, "dtype")
  if dtype == nil then
    error(("%s: %s is a tensor that was closed"):format(name, where), 6)
  end
  if dtype ~= "float32" and dtype ~= "float64" then
    error(("%s: %s has dtype %s; only float32 and float64 tensors can be optimised"):format(name, where, dtype), 6)
  end
  if not p.is_leaf then
    error(("%s: %s is the result of '%s', not a leaf; optimise the tensors it was computed from"):format(name,
      where, tostring(p.grad_fn)), 6)
  end
end

-- A list of tensors (or {name, tensor} pairs), or a list of groups
-- {params = {...}, lr = ...}. Returns the groups and a table tensor -> name.
local function normalise_groups(name, params_or_groups, defaults, options, extra)
  if type(params_or_groups) ~= "table" or is_tensor(params_or_groups) then
    error(("%s: expects a list of parameters or of parameter groups, got %s"):format(name,
      is_tensor(params_or_groups) and "a tensor (wrap it in a list: {t})" or type(params_or_groups)), 5)
  end
  local mt = getmetatable(params_or_groups)
  if type(mt) == "table" and rawget(mt, "__is_module_class") then
    error(("%s: expects a list of parameters, got a module; pass model:parameters()"):format(name), 5)
  end
  if options ~= nil and type(options) ~= "table" then
    error(("%s: options must be a table, got %s"):format(name, type(options)), 5)
  end
  local raw = params_or_groups
  local first = raw[1]
  local grouped = type(first) == "table" and not is_tensor(first) and getmetatable(first) == nil
    and type(first[1]) ~= "string"
  if not grouped then
    raw = { { params = raw } }
  end
  local is_extra = {}
  for _, key in ipairs(extra or {}) do
    is_extra[key] = true
  end
  for key in pairs(options or {}) do
    if defaults[key] == nil and not is_extra[key] then
      error(("%s: unknown option '%s' (valid: %s)"):format(name, tostring(key), sorted_keys(defaults, extra)), 5)
    end
  end
  local groups, seen, names, count = {}, {}, {}, 0
  for g, spec in ipairs(raw) do
    if type(spec) ~= "table" or type(spec.params) ~= "table" or is_tensor(spec.params) then
      error(("%s: group %d must be a table with a list `params`, got %s"):format(name, g,
        type(spec) == "table" and ("params = " .. type(spec.params)) or type(spec)), 5)
    end
    local group = {}
    for key, value in pairs(defaults) do
      group[key] = copy_value(value)
    end
    for key, value in pairs(options or {}) do
      if not is_extra[key] then
        group[key] = copy_value(value)
      end
    end
    for key, value in pairs(spec) do
      if key ~= "params" then
        if defaults[key] == nil then
          error(("%s: group %d has an unknown option '%s' (valid: params, %s)"):format(name, g, tostring(key),
            sorted_keys(defaults)), 5)
        end
        group[key] = copy_value(value)
      end
    end
    group.params = {}
    local n = #spec.params
    for key in pairs(spec.params) do
      if not compat.is_integer(key) or key < 1 or key > n then
        error(("%s: the parameter list%s has an entry under key %s; expected a list (1, 2, ...)"):format(name,
          grouped and (" of group " .. g) or "", tostring(key)), 5)
      end
    end
    for i = 1, n do
      local where = grouped and ("group %d, parameter %d"):format(g, i) or ("parameter %d"):format(i)
      local p, pname = read_entry(name, where, spec.params[i])
      if pname then
        where = where .. (" ('%s')"):format(pname)
      end
      check_parameter(name, where, p)
      if seen[p] then
        error(("%s: %s appears twice (first as %s)"):format(name, where, seen[p]), 5)
      end
      seen[p] = where
      names[p] = pname
      group.params[i] = p
    end
    count = count + n
    groups[g] = group
  end
  if count == 0 then
    error(("%s: got an empty list of parameters"):format(name), 5)
  end
  return groups, names
end

--- Builds an optimiser of `class` (which names itself in class.name).
-- `extra` lists options that are the optimiser's own rather than its
-- groups' (the subclass reads them from options; they are not copied into
-- the groups).
function Optimizer.create(class, params_or_groups, options, defaults, extra)
  local self = setmetatable({}, class)
  self.param_groups, self.names = normalise_groups(class.name, params_or_groups, defaults, options, extra)
  self.state = {}
  for g, group in ipairs(self.param_groups) do
    class.check_group(group, #self.param_groups > 1 and ("group %d: "):format(g) or "")
  end
  return self
end

function Optimizer.check_group() end

--- fn() with grad mode off (errors raised again).
Optimizer.no_grad_call = no_grad

--- Checks of hyper-parameters for check_group: `value` must be a finite
-- number with `test(value)` true; the message names the optimiser, the
-- option (and the group) and the value. NaN fails every comparison, so it
-- is refused by the finiteness test before any range is.
function Optimizer.check_number(class_name, prefix, option, value, test, range)
  if type(value) ~= "number" or value ~= value or value == math.huge or value == -math.huge or not test(value) then
    error(("%s: %soption %s must be %s, got %s"):format(class_name, prefix, option, range, tostring(value)), 6)
  end
end

function Optimizer.check_boolean(class_name, prefix, option, value)
  if type(value) ~= "boolean" then
    error(("%s: %soption %s must be a boolean, got %s"):format(class_name, prefix, option, tostring(value)), 6)
  end
end

-- Fails unless self is an optimiser (method called with `.` instead of `:`).
local function check_self(self, method)
  if type(self) ~= "table" or type(self.param_groups) ~= "table" then
    error(("Optimizer:%s: call it as optimizer:%s(...), got a %s for the optimiser"):format(method, method,
      type(self)), 3)
  end
end

function Optimizer:zero_grad()
  check_self(self, "zero_grad")
  for _, group in ipairs(self.param_groups) do
    for _, p in ipairs(group.params) do
      if field_of(p, "dtype") ~= nil then
        p.grad = nil
      end
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

-- The parameters of group g that have gradients, each checked against its
-- gradient, with their state made (step not yet advanced) and brought to the
-- parameter's dtype and device: model:to() converts parameters in place, so
-- a parameter can change dtype or device between steps, and its moments
-- follow it (converted, so nothing learnt is lost).
function Optimizer:ready_parameters(g)
  local group = self.param_groups[g]
  local ready = {}
  for i, p in ipairs(group.params) do
    local dtype = field_of(p, "dtype")
    if dtype == nil then
      error(("%s.step: %s is a tensor that was closed"):format(self.name, self:describe(g, i)), 4)
    end
    local grad = p.grad
    if grad ~= nil then
      if grad.dtype ~= dtype or grad.device ~= p.device then
        error(("%s.step: %s is %s on %s but its gradient is %s on %s"):format(self.name, self:describe(g, i), dtype,
          p.device, grad.dtype, grad.device), 4)
      end
      local state = self.state[p]
      if not state then
        state = { step = 0 }
        self.state[p] = state
      end
      for _, name in ipairs(self.state_tensors) do
        local t = state[name]
        if t ~= nil and (t.dtype ~= dtype or t.device ~= p.device) then
          state[name] = t:to(dtype):to(p.device)
        end
      end
      ready[#ready + 1] = { p, grad, state }
    end
  end
  return ready
end

--- One update of every parameter that has a gradient. A subclass with
-- `update_group(params, grads, states, group)` gets each group's parameters
-- that have gradients in one call (a multi-tensor step); otherwise
-- `update(p, grad, state, group)` runs per parameter.
function Optimizer:step()
  check_self(self, "step")
  local prepared = {}
  for g, group in ipairs(self.param_groups) do
    -- the options may have been changed since construction (a schedule sets lr)
    local ok, message = pcall(self.check_group, group, #self.param_groups > 1 and ("group %d: "):format(g) or "")
    if not ok then
      error(tostring(message):gsub("^[^:]*:%d+: ", ""):gsub("^(%w+): ", "%1.step: ", 1), 2)
    end
    prepared[g] = self:ready_parameters(g)
  end
  no_grad(function()
    for g, group in ipairs(self.param_groups) do
      local ready = prepared[g]
      for _, entry in ipairs(ready) do
        entry[3].step = entry[3].step + 1
      end
      if self.update_group then
        local params, grads, states = {}, {}, {}
        for n, entry in ipairs(ready) do
          params[n], grads[n], states[n] = entry[1], entry[2], entry[3]
        end
        if #params > 0 then
          self:update_group(params, grads, states, group)
        end
      else
        for _, entry in ipairs(ready) do
          self:update(entry[1], entry[2], entry[3], group)
        end
      end
    end
  end)
end

--- {tensors = {"<group>.<index>.<name>" = copy}, values = {groups =, steps =}}.
-- Copies, so later steps do not change a saved state.
function Optimizer:state_dict()
  check_self(self, "state_dict")
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
  local values = { kind = self.name, groups = groups, steps = steps }
  if self.schedulers then
    values.schedulers = {}
    for k, scheduler in ipairs(self.schedulers) do
      values.schedulers[k] = scheduler:state_dict()
    end
  end
  return { tensors = tensors, values = values }
end

--- Restores a state_dict made by the same kind of optimiser over the same
-- parameter layout; later steps match the saved optimiser's exactly. The
-- whole state is checked before any of it is applied, so a state that does
-- not fit leaves the optimiser as it was.
function Optimizer:load_state_dict(sd)
  check_self(self, "load_state_dict")
  local function fail(message, ...)
    error(("%s:load_state_dict: " .. message):format(self.name, ...), 3)
  end
  if type(sd) ~= "table" or type(sd.values) ~= "table" or type(sd.tensors) ~= "table" then
    fail("expects {tensors =, values =} from state_dict(), got %s", type(sd))
  end
  local values = sd.values
  if values.kind and values.kind ~= self.name then
    fail("the state was saved by %s", tostring(values.kind))
  end
  if type(values.groups) ~= "table" or type(values.steps) ~= "table" then
    fail("values.groups and values.steps must be tables, got %s and %s", type(values.groups), type(values.steps))
  end
  if #values.groups ~= #self.param_groups then
    fail("the state has %d parameter groups, this optimiser %d", #values.groups, #self.param_groups)
  end
  local schedulers = self.schedulers or {}
  local saved_schedulers = values.schedulers or {}
  if type(saved_schedulers) ~= "table" or #saved_schedulers ~= #schedulers then
    fail("the state has %s learning-rate schedulers, this optimiser %d",
      type(saved_schedulers) == "table" and tostring(#saved_schedulers) or type(saved_schedulers), #schedulers)
  end
  for k, scheduler in ipairs(schedulers) do
    local saved = saved_schedulers[k]
    if type(saved) ~= "table" or saved.name ~= scheduler.name then
      fail("scheduler %d is %s here, the state's is %s", k, scheduler.name,
        tostring(type(saved) == "table" and saved.name or saved))
    end
  end
  local hypers, state = {}, {}
  for g, group in ipairs(self.param_groups) do
    local saved = values.groups[g]
    if type(saved) ~= "table" or saved.size ~= #group.params then
      fail("group %d has %s parameters in the state, %d here", g,
        tostring(type(saved) == "table" and saved.size or saved), #group.params)
    end
    local hyper = {}
    for key, value in pairs(group) do
      hyper[key] = value
    end
    for key, value in pairs(saved) do
      if key ~= "size" then
        if key == "params" or group[key] == nil then
          fail("group %d has an unknown option '%s'", g, tostring(key))
        end
        hyper[key] = copy_value(value)
      end
    end
    local ok, message = pcall(self.check_group, hyper, ("group %d: "):format(g))
    if not ok then
      fail("the saved options do not fit: %s", tostring(message):gsub("^[^:]*:%d+: ", ""))
    end
    hypers[g] = hyper
    for i, p in ipairs(group.params) do
      local prefix = g .. "." .. i
      local step = values.steps[prefix]
      if step ~= nil then
        if not compat.is_integer(step) or step < 0 then
          fail("the step of %s (%s) must be a non-negative integer, got %s", prefix, self:describe(g, i),
            tostring(step))
        end
        local entry = { step = step }
        for _, name in ipairs(self.state_tensors) do
          local saved_tensor = sd.tensors[prefix .. "." .. name]
          if saved_tensor ~= nil then
            if not is_tensor(saved_tensor) or field_of(saved_tensor, "dtype") == nil then
              fail("%s.%s must be an open tensor, got %s", prefix, name, type(saved_tensor))
            end
            local want, have = table.concat(p.shape, ","), table.concat(saved_tensor.shape, ",")
            if want ~= have then
              fail("%s.%s has shape {%s}, the parameter (%s) {%s}", prefix, name, have, self:describe(g, i), want)
            end
            local t = zeros_like(p)
            no_grad(function()
              t:copy_(saved_tensor)
            end)
            entry[name] = t
          end
        end
        state[p] = entry
      end
    end
  end
  for g, group in ipairs(self.param_groups) do
    for key, value in pairs(hypers[g]) do
      group[key] = value
    end
  end
  self.state = state
  for k, scheduler in ipairs(schedulers) do
    scheduler:load_state_dict(saved_schedulers[k])
  end
end

return Optimizer
