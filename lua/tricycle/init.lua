--- tricycle: tensors, autograd and neural networks for Lua 5.4, on a C engine.
-- `local tc = require("tricycle")` gives the tensor functions of the C core
-- plus the Lua modules (tc.nn, tc.optim, tc.data, ...), loaded on first use.
--
-- Positions seen from Lua (dims, narrow/select starts, t[i]) are 1-based,
-- negative counting from the end; integer data (token ids, class labels,
-- gather/embedding indices, argmax results) are 0-based.
local compat = require("tricycle.compat")
local core = require("tricycle.core")
local errors = require("tricycle.errors")

-- Submodules, loaded on first use (see the metatable at the end). A core
-- field of the same name would hide one, so none is copied.
local submodules = {
  nn = true, optim = true, data = true, datasets = true, models = true, checkpoint = true,
  tokenizer = true, io = true, generate = true, cuda = true, training = true, tensorboard = true,
  distributed = true, autograd = true, amp = true,
}
-- Core pieces reached through a Lua module: the C tokenizer table
-- (tricycle.tokenizer) and the JSON Lines pair (tricycle.cli.metrics).
-- core.grad is reached through tricycle.autograd.grad, which checks its arguments.
local private = { tokenizer_core = true, json_line = true, json_lines = true, grad = true, register_hook = true,
  remove_hook = true, set_autocast = true }

local tricycle = {}
for name, value in pairs(core) do
  if not submodules[name] and not private[name] then
    tricycle[name] = value
  end
end

local Tensor = core.Tensor
local methods = Tensor.methods
tricycle.Tensor = Tensor

--- Backpropagates from this tensor; grad is needed unless it has one element.
-- options.retain_graph keeps the graph for a second backward.
function methods.backward(self, grad, options)
  return errors.call(core.backward, self, grad, options)
end

--- t:register_hook(fn): fn(grad) runs in each backward with t's whole
-- gradient (before a leaf's grad takes it, before a non-leaf passes it on);
-- a tensor it returns replaces the gradient. Returns a handle whose
-- :remove() takes the hook out (it holds t weakly).
function methods.register_hook(self, fn)
  if type(fn) ~= "function" then
    errors.raise(("register_hook: argument 1 must be a function of the gradient, got %s"):format(type(fn)))
  end
  local id = errors.call(core.register_hook, self, fn)
  local target = setmetatable({ self }, { __mode = "v" })
  return {
    remove = function()
      local t = target[1]
      if t ~= nil and pcall(function() return t.dtype end) then
        core.remove_hook(t, id)
      end
      target[1] = nil
    end,
  }
end

function methods.float(self) return errors.call(methods.to, self, "float32") end
function methods.double(self) return errors.call(methods.to, self, "float64") end
function methods.bfloat16(self) return errors.call(methods.to, self, "bfloat16") end
function methods.half(self) return errors.call(methods.to, self, "float16") end
function methods.long(self) return errors.call(methods.to, self, "int64") end
function methods.int(self) return errors.call(methods.to, self, "int32") end
function methods.bool(self) return errors.call(methods.to, self, "bool") end
function methods.cpu(self) return errors.call(methods.to, self, "cpu") end
function methods.cuda(self) return errors.call(methods.to, self, "cuda") end
methods.where = core.where
methods.scale_ = core.scale_

function Tensor.__tostring(t)
  Tensor.__tostring = require("tricycle.format").tensor
  return Tensor.__tostring(t)
end

-- The functions and methods made of the ops above (tricycle/composed.lua,
-- with conv.lua and selection.lua) load on first use, so that a host which
-- only runs a model keeps their code out of memory: the first name that
-- tricycle, the tensor methods or a table index misses installs them all.
local composed
local engine_methods = {} -- name -> the engine's method, while a stub stands in its place (below)
local loading_composed = false
local function load_composed()
  if composed or loading_composed then -- a miss while composed.lua loads is a plain miss
    return composed
  end
  loading_composed = true
  for name, engine_method in pairs(engine_methods) do
    rawset(methods, name, engine_method)
  end
  local ok, loaded = pcall(require, "tricycle.composed")
  loading_composed = false
  if not ok then
    error(loaded, 0)
  end
  composed = loaded
  for name, fn in pairs(composed.functions) do
    if rawget(tricycle, name) == nil then
      rawset(tricycle, name, fn)
    end
  end
  for name, fn in pairs(composed.methods) do
    rawset(methods, name, fn)
  end
  composed.install(Tensor)
  return composed
end

-- The engine methods that tricycle/selection.lua wraps (dims, options) are
-- found before a miss, so each starts as a stub that loads the wrapper.
-- spec/lazy_loading_spec.lua checks that this list names every such method.
for _, name in ipairs({ "sort", "topk", "index_add" }) do
  engine_methods[name] = methods[name]
  methods[name] = function(...)
    load_composed()
    return methods[name](...)
  end
end

setmetatable(methods, {
  __index = function(_, key)
    load_composed()
    return rawget(methods, key)
  end,
})
for _, handler in ipairs({ "__index_by", "__newindex_by" }) do
  Tensor[handler] = function(...)
    load_composed()
    return Tensor[handler](...)
  end
end

local OP_PROPERTIES = { "differentiable", "float_only", "integers", "bool_result", "view", "in_place", "fused",
  "method", "internal" }

--- The engine's ops (core.ops(), `composed = false`), then the functions of tricycle/composed.lua
-- (`composed = true`), each with every property as a boolean.
function tricycle.ops()
  local composed = load_composed()
  local list = core.ops()
  for _, op in ipairs(list) do
    op.composed = false
  end
  for _, op in ipairs(composed.ops) do
    local entry = { name = op.name, arity = op.arity, summary = op.summary, composed = true }
    for _, property in ipairs(OP_PROPERTIES) do
      entry[property] = op[property] == true
    end
    entry.method = composed.methods[op.name] ~= nil
    list[#list + 1] = entry
  end
  return list
end

--- A guard that turns grad mode off until closed:
--   local guard <close> = tc.no_grad()
-- or, with a function, runs it with grad mode off and returns its results.
local guard_metatable = {
  __close = function(guard)
    if not guard.closed then
      guard.closed = true
      core.set_grad_enabled(guard.previous)
    end
  end,
  __name = "tricycle.NoGradGuard",
}
guard_metatable.__index = { close = guard_metatable.__close }

function tricycle.no_grad(fn, ...)
  if fn ~= nil and type(fn) ~= "function" then
    error(("no_grad: expects a function or nothing, got %s"):format(type(fn)), 2)
  end
  local previous = core.is_grad_enabled()
  core.set_grad_enabled(false)
  if fn == nil then
    return setmetatable({ closed = false, previous = previous }, guard_metatable)
  end
  local results = compat.pack(pcall(fn, ...))
  core.set_grad_enabled(previous)
  if not results[1] then
    error(results[2], 0)
  end
  return compat.unpack(results, 2, results.n)
end

--- Autocast: matrix products (matmul, einsum, linear, linear_gelu, and the
-- backward of what ran inside) read operands rounded to bf16 (or float16,
-- "float16" / "half": train it with tc.amp.GradScaler) and sum in float32;
-- tensors and every other op stay float32 (docs/API.md):
--   local guard <close> = tc.autocast("bfloat16")
-- or, with a function, runs it under autocast and returns its results.
-- "float32" turns it off inside an autocast region. The previous setting is
-- restored on close, on return and on error.
local autocast_metatable = {
  __close = function(guard)
    if not guard.closed then
      guard.closed = true
      core.set_autocast(guard.previous)
    end
  end,
  __name = "tricycle.AutocastGuard",
}
autocast_metatable.__index = { close = autocast_metatable.__close }

function tricycle.autocast(dtype, fn, ...)
  if type(dtype) ~= "string" then
    errors.raise(("autocast: argument 1 must be a dtype name (\"bfloat16\", \"float16\" or \"float32\"), got %s")
      :format(type(dtype)))
  end
  if fn ~= nil and type(fn) ~= "function" then
    errors.raise(("autocast: argument 2 must be a function or nothing, got %s"):format(type(fn)))
  end
  local previous = core.autocast()
  errors.call(core.set_autocast, dtype)
  if fn == nil then
    return setmetatable({ closed = false, previous = previous }, autocast_metatable)
  end
  local results = compat.pack(pcall(fn, ...))
  core.set_autocast(previous)
  if not results[1] then
    error(results[2], 0)
  end
  return compat.unpack(results, 2, results.n)
end

--- The autocast dtype now in force: "bfloat16", "float16", or "float32" (off).
function tricycle.autocast_dtype()
  return core.autocast()
end

--- A differentiable function written in Lua:
--   local Square = tc.Function{name = "square",
--     forward = function(ctx, x) ctx.x = x; return x * x end,
--     backward = function(ctx, grad) return grad * 2 * ctx.x end}
--   local y = Square(x)
-- forward runs with grad mode off; backward returns one gradient (or nil)
-- per tensor input.
function tricycle.Function(spec)
  if type(spec) ~= "table" then
    error(("Function: expects a table {name =, forward =, backward =}, got %s"):format(type(spec)), 2)
  end
  require("tricycle.options").check_options("Function", spec, { "name", "forward", "backward" }, 2)
  for _, field in ipairs({ "forward", "backward" }) do
    if type(spec[field]) ~= "function" then
      error(("Function: %s must be a function, got %s"):format(field, type(spec[field])), 2)
    end
  end
  if spec.name ~= nil and type(spec.name) ~= "string" then
    error(("Function: name must be a string, got %s"):format(type(spec.name)), 2)
  end
  local name = spec.name or "lua_function"
  return function(...)
    local inputs, arguments = {}, compat.pack(...)
    for i = 1, arguments.n do
      if getmetatable(arguments[i]) == Tensor then
        inputs[#inputs + 1] = arguments[i]
      end
    end
    local saved = {}
    local output = tricycle.no_grad(spec.forward, saved, ...)
    if getmetatable(output) ~= Tensor then
      error(("Function '%s': forward must return a tensor, got %s"):format(name, type(output)), 2)
    end
    return core.custom_apply(name, inputs, output, function(grad)
      return spec.backward(saved, grad)
    end)
  end
end

-- The engine settings a host steers, each with core.set_<name> / core.<name>.
local setting_names = { "num_threads", "memory_budget", "collect_floor", "thread_spin" }

--- The engine settings now: {num_threads =, memory_budget =, collect_floor =, thread_spin =}.
function tricycle.settings()
  local settings = {}
  for _, name in ipairs(setting_names) do
    settings[name] = core[name]()
  end
  return settings
end

--- Applies the settings given (keys as tc.settings() returns; nil keeps one)
-- and returns the settings as they were, so tc.configure(previous) restores
-- them. A bad value is an error naming it, and leaves every setting as it was.
function tricycle.configure(settings)
  if type(settings) ~= "table" then
    error(("configure: expects a table of settings, got %s"):format(type(settings)), 2)
  end
  require("tricycle.options").check_options("configure", settings, setting_names)
  local previous = tricycle.settings()
  for _, name in ipairs(setting_names) do
    if settings[name] ~= nil then
      local ok, failure = pcall(core["set_" .. name], settings[name])
      if not ok then
        for _, restored in ipairs(setting_names) do
          core["set_" .. restored](previous[restored])
        end
        error(("configure: %s: %s"):format(name, failure), 2)
      end
    end
  end
  return previous
end

return setmetatable(tricycle, {
  __index = function(module, key)
    if submodules[key] then
      local loaded = require("tricycle." .. key)
      rawset(module, key, loaded)
      return loaded
    end
    load_composed()
    return rawget(module, key)
  end,
})
