--- tricycle.nn.Module: the base class of every layer.
--
-- A module is a Lua table whose metatable is its class. Assigning a leaf
-- tensor that requires grad, or another module, to a new field registers it
-- (in assignment order) as a parameter or a child; `add_buffer` registers
-- state that is saved but not trained. A class is made with
-- `Module:extend(name)` and gets `init(self, ...)` as its constructor;
-- calling an instance runs `forward`:
--
--   local Scale = nn.Module:extend("Scale")
--   function Scale:init(d) self.gain = tc.ones({d}, {requires_grad = true}) end
--   function Scale:forward(x) return x * self.gain end
--   local layer = Scale(4)
local compat = require("tricycle.compat")
local core = require("tricycle.core")

local Module = {}
Module.__name = "Module"

-- Grad mode off around a function (tc.no_grad, the one definition).
local no_grad = require("tricycle").no_grad

local function is_tensor(value)
  return getmetatable(value) == core.Tensor
end

local function is_module(value)
  local mt = getmetatable(value)
  return type(value) == "table" and type(mt) == "table" and rawget(mt, "__is_module_class") == true
end

local function shape_string(shape)
  return "{" .. table.concat(shape, ", ") .. "}"
end

-- Fails unless self is a module instance: a method called with `.`
-- instead of `:` gets its first argument (or nil) as self.
local function check_self(self, method)
  if not is_module(self) then
    error(("Module:%s: call it as module:%s(...), got a %s for the module"):format(method, method, type(self)), 3)
  end
end

-- Whether t is a tensor that was closed (its fields cannot be read).
local function is_closed(t)
  return not pcall(function() return t.dtype end)
end

-- Registration: remembers the name and its kind the first time a field is set.
local function register(self, kind, name, value)
  local entries = rawget(self, "_entries")
  if not entries then
    error(("%s: Module.init(self) was not called before assigning '%s'"):format(self.__name, name), 3)
  end
  local kinds = rawget(self, "_kinds")
  if not kinds[name] then
    entries[#entries + 1] = name
  end
  kinds[name] = kind
  rawset(self, name, value)
end

local function instance_newindex(self, key, value)
  if type(key) == "string" and rawget(self, "_entries") then
    if is_module(value) then
      register(self, "module", key, value)
      return
    elseif is_tensor(value) and value.requires_grad and value.is_leaf then
      register(self, "parameter", key, value)
      return
    end
  end
  rawset(self, key, value)
end

-- Calling a module runs its forward pre-hooks (each may return new inputs),
-- its forward, then its forward hooks (each may return a new output).
local function instance_call(self, ...)
  local pre_hooks, hooks = rawget(self, "_forward_pre_hooks"), rawget(self, "_forward_hooks")
  if not pre_hooks and not hooks then
    return self:forward(...)
  end
  local inputs = compat.pack(...)
  for _, entry in ipairs(pre_hooks or {}) do
    local replaced = compat.pack(entry.fn(self, compat.unpack(inputs, 1, inputs.n)))
    if replaced.n > 0 and replaced[1] ~= nil then
      inputs = replaced
    end
  end
  local outputs = compat.pack(self:forward(compat.unpack(inputs, 1, inputs.n)))
  for _, entry in ipairs(hooks or {}) do
    local replaced = compat.pack(entry.fn(self, inputs, compat.unpack(outputs, 1, outputs.n)))
    if replaced.n > 0 and replaced[1] ~= nil then
      outputs = replaced
    end
  end
  return compat.unpack(outputs, 1, outputs.n)
end

-- A hook added to the list `field` of the module; the handle's :remove()
-- takes it out (again: nothing).
local function add_hook(self, field, method, fn)
  if not is_module(self) then
    error(("Module:%s: call it as module:%s(fn), got a %s for the module"):format(method, method, type(self)), 3)
  end
  if type(fn) ~= "function" then
    error(("%s: %s expects a function, got %s"):format(self.__name, method, type(fn)), 3)
  end
  local list = rawget(self, field)
  if not list then
    list = {}
    rawset(self, field, list)
  end
  local entry = { fn = fn }
  list[#list + 1] = entry
  return {
    remove = function()
      local current = rawget(self, field) or {}
      for i, e in ipairs(current) do
        if e == entry then
          table.remove(current, i)
          break
        end
      end
      if #current == 0 then
        rawset(self, field, nil)
      end
    end,
  }
end

local function instance_tostring(self)
  return self:describe("")
end

local class_metatable = {}

local this_file = debug.getinfo(1, "S").short_src

-- An error an init raises about its arguments names the constructor's caller:
-- whether the init aimed it at its own caller (here, pcall: no position) or
-- one level further (this file), it is raised again at the caller of the class.
function class_metatable.__call(class, ...)
  local instance = setmetatable({}, class)
  Module.init(instance)
  local ok, message = pcall(class.init, instance, ...)
  if not ok then
    if type(message) == "string" and message:sub(1, #this_file + 1) == this_file .. ":" then
      message = message:sub(#this_file + 2):gsub("^%d+: ", "", 1)
    end
    error(message, 2)
  end
  return instance
end

function class_metatable.__index(class, key)
  local parent = rawget(class, "super")
  return parent and parent[key]
end

--- A subclass; `name` shows in errors and printing.
function Module:extend(name)
  if name ~= nil and type(name) ~= "string" then
    error(("Module:extend: name must be a string, got %s"):format(type(name)), 2)
  end
  local class = {
    __name = name or "Module",
    __index = nil,
    __newindex = instance_newindex,
    __call = instance_call,
    __tostring = instance_tostring,
    __is_module_class = true,
    super = self,
  }
  class.__index = class
  return setmetatable(class, class_metatable)
end

--- fn(module, ...inputs) runs before forward; values it returns replace
-- the inputs. Returns a handle: handle.remove() takes the hook out.
function Module:register_forward_pre_hook(fn)
  return add_hook(self, "_forward_pre_hooks", "register_forward_pre_hook", fn)
end

--- fn(module, inputs (a packed list), ...outputs) runs after forward;
-- values it returns replace the outputs. Returns a handle with remove().
function Module:register_forward_hook(fn)
  return add_hook(self, "_forward_hooks", "register_forward_hook", fn)
end

--- Base setup; subclasses' init need not call it (construction does).
function Module:init()
  rawset(self, "_entries", rawget(self, "_entries") or {})
  rawset(self, "_kinds", rawget(self, "_kinds") or {})
  rawset(self, "training", true)
end

function Module:forward()
  error(("%s: forward is not implemented"):format(self.__name), 2)
end

--- Registers a tensor as a parameter (makes it require grad).
function Module:add_parameter(name, tensor)
  check_self(self, "add_parameter")
  if type(name) ~= "string" then
    error(("%s: add_parameter: name must be a string, got %s"):format(self.__name, type(name)), 2)
  end
  if tensor ~= nil then
    if not is_tensor(tensor) then
      error(("%s: add_parameter('%s') expects a tensor, got %s"):format(self.__name, name, type(tensor)), 2)
    end
    if is_closed(tensor) or (tensor.dtype ~= "float32" and tensor.dtype ~= "float64") then
      error(("%s: add_parameter('%s') expects a float32 or float64 tensor, got %s"):format(self.__name, name,
        is_closed(tensor) and "a closed tensor" or tensor.dtype), 2)
    end
    tensor:requires_grad_(true)
  end
  register(self, "parameter", name, tensor)
  return tensor
end

--- Registers a tensor that is part of the state but not trained.
function Module:add_buffer(name, tensor)
  check_self(self, "add_buffer")
  if type(name) ~= "string" or (tensor ~= nil and not is_tensor(tensor)) then
    error(("%s: add_buffer(name, tensor) expects a string and a tensor, got %s and %s"):format(self.__name,
      type(name), type(tensor)), 2)
  end
  register(self, "buffer", name, tensor)
  return tensor
end

function Module:add_module(name, module)
  check_self(self, "add_module")
  if not is_module(module) then
    error(("%s: add_module('%s') expects a module, got %s"):format(self.__name, tostring(name), type(module)), 2)
  end
  register(self, "module", name, module)
  return module
end

-- Walks the tree depth first in registration order, calling visit(kind,
-- dotted name, value, owner, local name) for parameters and buffers.
local function walk(self, prefix, visit)
  for _, name in ipairs(rawget(self, "_entries")) do
    local kind = self._kinds[name]
    local value = rawget(self, name)
    if value ~= nil then
      if kind == "module" then
        walk(value, prefix .. name .. ".", visit)
      else
        visit(kind, prefix .. name, value, self, name)
      end
    end
  end
end

--- A list of {name, tensor} pairs (dotted names, registration order); a tensor
-- shared by two modules appears once, under its first name.
function Module:named_parameters()
  check_self(self, "named_parameters")
  local seen, result = {}, {}
  walk(self, "", function(kind, name, value)
    if kind == "parameter" and not seen[value] then
      seen[value] = true
      result[#result + 1] = { name, value }
    end
  end)
  return result
end

--- The unique parameter tensors, in a fixed order.
function Module:parameters()
  check_self(self, "parameters")
  local result = {}
  for i, pair in ipairs(self:named_parameters()) do
    result[i] = pair[2]
  end
  return result
end

function Module:named_buffers()
  check_self(self, "named_buffers")
  local result = {}
  walk(self, "", function(kind, name, value)
    if kind == "buffer" then
      result[#result + 1] = { name, value }
    end
  end)
  return result
end

--- The direct children as a list of {name, module}.
function Module:named_children()
  check_self(self, "named_children")
  local result = {}
  for _, name in ipairs(rawget(self, "_entries")) do
    local value = rawget(self, name)
    if self._kinds[name] == "module" and value ~= nil then
      result[#result + 1] = { name, value }
    end
  end
  return result
end

function Module:children()
  check_self(self, "children")
  local result = {}
  for i, pair in ipairs(self:named_children()) do
    result[i] = pair[2]
  end
  return result
end

--- Every module of the tree, this one first, each once.
function Module:modules()
  check_self(self, "modules")
  local result, seen = {}, {}
  local function visit(module)
    if seen[module] then
      return
    end
    seen[module] = true
    result[#result + 1] = module
    for _, child in ipairs(module:children()) do
      visit(child)
    end
  end
  visit(self)
  return result
end

function Module:train(mode)
  check_self(self, "train")
  if mode == nil then
    mode = true
  end
  if type(mode) ~= "boolean" then
    error(("%s:train: mode must be a boolean (or nil for true), got %s"):format(self.__name, tostring(mode)), 2)
  end
  for _, module in ipairs(self:modules()) do
    rawset(module, "training", mode)
  end
  return self
end

function Module:eval()
  return self:train(false)
end

function Module:num_parameters()
  check_self(self, "num_parameters")
  local total = 0
  for _, p in ipairs(self:parameters()) do
    total = total + p:numel()
  end
  return total
end

function Module:zero_grad()
  check_self(self, "zero_grad")
  for _, p in ipairs(self:parameters()) do
    p.grad = nil
  end
end

--- name -> tensor for every parameter and buffer (the tensors themselves,
-- not copies).
function Module:state_dict()
  check_self(self, "state_dict")
  local result = {}
  walk(self, "", function(_, name, value)
    result[name] = value
  end)
  return result
end

--- The names of state_dict in a fixed order.
function Module:state_keys()
  check_self(self, "state_keys")
  local result = {}
  walk(self, "", function(_, name)
    result[#result + 1] = name
  end)
  return result
end

--- Copies values from `state` (name -> tensor) into this module's tensors,
-- in place and without recording gradients. Strict (the default): every key
-- must match both ways. Shapes must always match. Returns {missing =,
-- unexpected =} (lists of names).
-- "3 mis-shaped keys: a (...), b (...), c (...)": the first few of a list, so
-- that a state of another size reads as a short message, not every key.
local SHOWN_KEYS = 4
local function summary(count, what, list)
  local shown = {}
  for i = 1, math.min(count, SHOWN_KEYS) do
    shown[i] = list[i]
  end
  local more = count > SHOWN_KEYS and (", and %d more"):format(count - SHOWN_KEYS) or ""
  return ("%d %s%s: %s%s"):format(count, what, count == 1 and "" or "s", table.concat(shown, ", "), more)
end

function Module:load_state_dict(state, options)
  check_self(self, "load_state_dict")
  if type(state) ~= "table" or is_tensor(state) then
    error(("load_state_dict: expects a table of name -> tensor, got %s"):format(type(state)), 2)
  end
  if options ~= nil and type(options) ~= "table" then
    error(("load_state_dict: options must be a table {strict =}, got %s"):format(type(options)), 2)
  end
  require("tricycle.options").check_options("load_state_dict", options, { "strict" }, 2)
  local strict = true
  if options and options.strict ~= nil then
    strict = options.strict
    if type(strict) ~= "boolean" then
      error(("load_state_dict: option strict must be a boolean, got %s"):format(tostring(strict)), 2)
    end
  end
  local own = self:state_dict()
  local missing, unexpected, mismatched = {}, {}, {}
  for _, name in ipairs(self:state_keys()) do
    local value = state[name]
    if value == nil then
      missing[#missing + 1] = name
    elseif not is_tensor(value) then
      mismatched[#mismatched + 1] = ("%s (a %s, expected a tensor)"):format(name, type(value))
    elseif is_closed(value) then
      mismatched[#mismatched + 1] = ("%s (a tensor that was closed)"):format(name)
    else
      local want, have = own[name].shape, value.shape
      if shape_string(want) ~= shape_string(have) then
        mismatched[#mismatched + 1] = ("%s (checkpoint %s, model %s)"):format(name, shape_string(have),
          shape_string(want))
      end
    end
  end
  for name in pairs(state) do
    if own[name] == nil then
      unexpected[#unexpected + 1] = tostring(name)
    end
  end
  table.sort(unexpected)
  local problems = {}
  if strict and #missing > 0 then
    problems[#problems + 1] = summary(#missing, "missing key", missing)
  end
  if strict and #unexpected > 0 then
    problems[#problems + 1] = summary(#unexpected, "unexpected key", unexpected)
  end
  if #mismatched > 0 then
    problems[#problems + 1] = summary(#mismatched, "mis-shaped key", mismatched)
  end
  if #problems > 0 then
    local hint = type(rawget(self, "config")) == "table"
      and "; build the model from the config the state was saved with" or ""
    error(("load_state_dict: the state does not fit %s: %s%s"):format(self.__name, table.concat(problems, "; "),
      hint), 2)
  end
  no_grad(function()
    for name, tensor in pairs(own) do
      local value = state[name]
      if value ~= nil and value ~= tensor then
        tensor:copy_(value)
      end
    end
  end)
  return { missing = missing, unexpected = unexpected }
end

local dtype_names = {
  float32 = "float32", float = "float32", float64 = "float64", double = "float64", int32 = "int32", int = "int32",
  int64 = "int64", long = "int64", uint8 = "uint8", byte = "uint8", bool = "bool", bfloat16 = "bfloat16",
  bf16 = "bfloat16", float16 = "float16", half = "float16",
}
local floating_dtypes = { float32 = true, float64 = true, bfloat16 = true, float16 = true }

--- Moves or casts every parameter and buffer ("float64", "cuda", ...),
-- keeping shared tensors shared. Parameters are converted in place, as in
-- PyTorch (`p.data = p:to(target)`): each stays the same Lua object, so an
-- optimiser built before keeps updating the model's parameters. Buffers are
-- replaced. Gradients are dropped. Every tensor is converted before any is
-- changed, so a failure leaves the module as it was.
function Module:to(target)
  if not is_module(self) then
    error(("Module:to: call it as module:to(target), got a %s for the module"):format(type(self)), 2)
  end
  if type(target) ~= "string" then
    error(("%s:to: target must be a dtype or device name (\"float64\", \"cuda\", ...), got %s"):format(
      self.__name, type(target)), 2)
  end
  local dtype = dtype_names[target]
  if dtype == nil and target ~= "cpu" and target ~= "cuda" then
    error(("%s:to: '%s' is neither a dtype nor a device (cpu, cuda)"):format(self.__name, target), 2)
  end
  local parameters = self:named_parameters()
  if dtype and not floating_dtypes[dtype] and #parameters > 0 then
    error(("%s:to: parameters must stay float32 or float64, bfloat16 or float16 (they require grad), got %s; "
      .. "parameter %s would "
      .. "become %s"):format(self.__name, target, parameters[1][1], dtype), 2)
  end
  local converted = {}
  no_grad(function()
    for _, module in ipairs(self:modules()) do
      for _, name in ipairs(rawget(module, "_entries")) do
        local value = rawget(module, name)
        if module._kinds[name] ~= "module" and value ~= nil and not converted[value] then
          converted[value] = value:to(target)
        end
      end
    end
  end)
  local parameter = {}
  for _, pair in ipairs(parameters) do
    parameter[pair[2]] = true
  end
  for _, module in ipairs(self:modules()) do
    for _, name in ipairs(rawget(module, "_entries")) do
      local value = rawget(module, name)
      if module._kinds[name] ~= "module" and value ~= nil then
        if parameter[value] then
          if converted[value] ~= value then
            value.data = converted[value]
            converted[value] = value
          end
        else
          rawset(module, name, converted[value])
        end
      end
    end
  end
  return self
end

--- Shorthands for to(): float32, float64, the CPU, the CUDA device.
function Module:float() return self:to("float32") end
function Module:double() return self:to("float64") end
function Module:cpu() return self:to("cpu") end
function Module:cuda() return self:to("cuda") end

function Module:extra_repr()
  return ""
end

function Module:describe(indent)
  local children = self:named_children()
  local head = self.__name .. "(" .. self:extra_repr()
  if #children == 0 then
    return head .. ")"
  end
  local lines = { head }
  for _, pair in ipairs(children) do
    lines[#lines + 1] = indent .. "  (" .. pair[1] .. "): " .. pair[2]:describe(indent .. "  ")
  end
  lines[#lines + 1] = indent .. ")"
  return table.concat(lines, "\n")
end

Module.__index = Module
Module.__newindex = instance_newindex
Module.__call = instance_call
Module.__tostring = instance_tostring
Module.__is_module_class = true
setmetatable(Module, { __call = class_metatable.__call })

Module.is_module = is_module
Module.is_tensor = is_tensor
Module.no_grad = no_grad
Module.shape_string = shape_string

return Module
