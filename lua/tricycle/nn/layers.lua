--- Basic layers: Linear, Embedding, norms, dropout, activations, Flatten, Sequential, ModuleList, ModuleDict.
-- Each takes an optional options table last; {dtype = "float64"} makes its
-- parameters in that dtype (float32 by default).
local compat = require("tricycle.compat")
local core = require("tricycle.core")
local Module = require("tricycle.nn.module")
local check_options = require("tricycle.options").check_options
local errors = require("tricycle.errors")

local no_grad, shape_string = Module.no_grad, Module.shape_string

local layers = {}

local floating = { float32 = "float32", float = "float32", float64 = "float64", double = "float64",
  bfloat16 = "bfloat16", bf16 = "bfloat16", float16 = "float16", half = "float16" }

local function dtype_of(options)
  return options and floating[options.dtype] or "float32"
end

local function check_positive_integer(function_name, argument, value)
  if not compat.is_integer(value) or value <= 0 then
    error(("%s: %s must be a positive integer, got %s"):format(function_name, argument, tostring(value)), 3)
  end
end

local function is_finite(x)
  return type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge
end

--- Checks a layer's options table: its keys (unknown ones are an error
-- listing the valid ones), `dtype` (parameters are floating), `bias` (a
-- boolean) and `eps` (finite and > 0: 0 divides by zero on a constant
-- row). Returns the table, or {} for nil. `level` as for error().
function layers.check_layer_options(name, options, allowed, level)
  level = (level or 2) + 1
  if options ~= nil and type(options) ~= "table" then
    error(("%s: options must be a table, got %s"):format(name, type(options)), level)
  end
  check_options(name, options, allowed, level)
  options = options or {}
  if options.dtype ~= nil and not floating[options.dtype] then
    error(("%s: option dtype must be float32 or float64, bfloat16 or float16 (parameters are floating), got %s")
      :format(name, tostring(options.dtype)), level)
  end
  if options.bias ~= nil and type(options.bias) ~= "boolean" then
    error(("%s: option bias must be a boolean, got %s"):format(name, tostring(options.bias)), level)
  end
  if options.eps ~= nil and not (is_finite(options.eps) and options.eps > 0) then
    error(("%s: option eps must be a finite number > 0, got %s"):format(name, tostring(options.eps)), level)
  end
  return options
end

local function check_input(function_name, x)
  if getmetatable(x) ~= core.Tensor then
    error(("%s: input must be a tensor, got %s"):format(function_name, type(x)), 3)
  end
  if not pcall(function() return x.dtype end) then
    error(("%s: the input is a tensor that was closed"):format(function_name), 3)
  end
end
layers.check_input = check_input

-- 16-bit parameters are drawn in float32 and rounded once when copied in
-- (scale_ works on float32 and float64 only).
local sixteen_bit = { bfloat16 = true, float16 = true }
local function draw_dtype(dtype)
  return sixteen_bit[dtype] and "float32" or dtype
end

-- A 16-bit tensor filled by `fill` a block of rows (about 4M elements) at a
-- time, each drawn in float32 and rounded once: making a model of 16-bit
-- weights never holds a float32 copy of a whole large weight.
local HALF_FILL_ELEMENTS = 4194304
local function fill_16bit(tensor, fill)
  local shape = tensor.shape
  if #shape == 0 then
    local fresh = fill(shape, "float32")
    tensor:copy_(fresh)
    fresh:free()
    return
  end
  local rows = shape[1]
  local per_row = rows > 0 and tensor:numel() / rows or 1
  local block = math.max(1, math.floor(HALF_FILL_ELEMENTS / math.max(per_row, 1)))
  for first = 1, rows, block do
    local part = { compat.unpack(shape) }
    part[1] = math.min(block, rows - first + 1)
    local fresh = fill(part, "float32")
    tensor:narrow(1, first, part[1]):copy_(fresh)
    fresh:free()
  end
end

--- A leaf parameter filled by `fill(shape, dtype)` without recording a graph.
function layers.parameter(shape, dtype, fill)
  local t = no_grad(function()
    if sixteen_bit[dtype] then
      local fresh = core.empty(shape, { dtype = dtype })
      fill_16bit(fresh, fill)
      return fresh
    end
    return fill(shape, dtype)
  end)
  return t:requires_grad_(true)
end

-- The fills scale in place and close their one intermediate tensor as soon
-- as it is used, so initialising a model holds at most two tensors of a
-- parameter's size at a time and leaves nothing for the garbage collector
-- (the values are those of `(rand * 2 - 1) * bound` and `randn * std`).
local function check_init_number(name, argument, value)
  if not is_finite(value) then
    error(("%s: %s must be a finite number, got %s"):format(name, argument, tostring(value)), 3)
  end
end


function layers.uniform(bound)
  check_init_number("init.uniform", "bound", bound)
  return function(shape, dtype)
    local doubled = core.rand(shape, { dtype = draw_dtype(dtype) }):scale_(2)
    local centred = doubled - 1
    doubled:free()
    return centred:scale_(bound)
  end
end

function layers.normal(std)
  check_init_number("init.normal", "std", std)
  if std < 0 then
    error(("init.normal: std must be >= 0, got %s"):format(tostring(std)), 2)
  end
  return function(shape, dtype)
    return core.randn(shape, { dtype = draw_dtype(dtype) }):scale_(std)
  end
end

function layers.constant(value)
  check_init_number("init.constant", "value", value)
  return function(shape, dtype)
    return core.full(shape, value, { dtype = dtype })
  end
end

--- Refills an existing parameter in place (used by model initialisers).
function layers.reset(tensor, fill)
  if getmetatable(tensor) ~= core.Tensor then
    error(("init.reset: argument 1 must be a tensor, got %s"):format(type(tensor)), 2)
  end
  if type(fill) ~= "function" then
    error(("init.reset: argument 2 must be a fill function (init.normal(std), ...), got %s"):format(type(fill)), 2)
  end
  no_grad(function()
    if sixteen_bit[tensor.dtype] then return fill_16bit(tensor, fill) end
    local fresh = fill(tensor.shape, tensor.dtype)
    local ok, failure = pcall(tensor.copy_, tensor, fresh)
    fresh:free()
    if not ok then error(failure, 0) end
  end)
end

-- ---------------------------------------------------------------- Linear

--- y = x W^T + b with W [out, in]; init uniform(-1/sqrt(in), 1/sqrt(in)).
local Linear = Module:extend("Linear")
layers.Linear = Linear

function Linear:init(in_features, out_features, options)
  check_positive_integer("Linear", "in_features", in_features)
  check_positive_integer("Linear", "out_features", out_features)
  options = layers.check_layer_options("Linear", options, { "bias", "dtype" }, 2)
  self.in_features, self.out_features = in_features, out_features
  local dtype, bound = dtype_of(options), 1 / math.sqrt(in_features)
  self.weight = layers.parameter({ out_features, in_features }, dtype, layers.uniform(bound))
  if options.bias ~= false then
    self.bias = layers.parameter({ out_features }, dtype, layers.uniform(bound))
  end
end

function Linear:forward(x)
  check_input("Linear", x)
  local n = x:dim()
  if n == 0 or x:size(n) ~= self.in_features then
    error(("Linear: input shape %s does not end in in_features %d"):format(shape_string(x.shape), self.in_features), 2)
  end
  -- One op: a GEMM over all leading dims with the bias in its output.
  return core.linear(x, self.weight, self.bias)
end

function Linear:extra_repr()
  return ("%d -> %d%s"):format(self.in_features, self.out_features, self.bias and "" or ", bias=false")
end

-- ---------------------------------------------------------------- Embedding

--- Rows of weight [n, d] picked by integer ids (0-based); init normal(0, 1).
local Embedding = Module:extend("Embedding")
layers.Embedding = Embedding

function Embedding:init(num_embeddings, embedding_dim, options)
  check_positive_integer("Embedding", "num_embeddings", num_embeddings)
  check_positive_integer("Embedding", "embedding_dim", embedding_dim)
  layers.check_layer_options("Embedding", options, { "dtype" }, 2)
  self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
  self.weight = layers.parameter({ num_embeddings, embedding_dim }, dtype_of(options), layers.normal(1))
end

local integer_dtypes = { int64 = true, int32 = true }

function Embedding:forward(ids)
  check_input("Embedding", ids)
  if not integer_dtypes[ids.dtype] then
    error(("Embedding: ids must be an int64 or int32 tensor, got %s"):format(ids.dtype), 2)
  end
  return core.embedding(self.weight, ids)
end

function Embedding:extra_repr()
  return ("%d, %d"):format(self.num_embeddings, self.embedding_dim)
end

-- ---------------------------------------------------------------- norms

local function check_last_dim(name, x, d)
  local shape = x.shape
  if #shape == 0 or shape[#shape] ~= d then
    error(("%s: input shape %s does not end in %d"):format(name, shape_string(shape), d), 3)
  end
end

--- LayerNorm(d, {eps = 1e-5, bias = true}) over the last dim.
local LayerNorm = Module:extend("LayerNorm")
layers.LayerNorm = LayerNorm

function LayerNorm:init(d, options)
  check_positive_integer("LayerNorm", "d", d)
  options = layers.check_layer_options("LayerNorm", options, { "eps", "bias", "dtype" }, 2)
  self.normalized_shape, self.eps = d, options.eps or 1e-5
  self.weight = layers.parameter({ d }, dtype_of(options), layers.constant(1))
  if options.bias ~= false then
    self.bias = layers.parameter({ d }, dtype_of(options), layers.constant(0))
  end
end

function LayerNorm:forward(x)
  check_input("LayerNorm", x)
  check_last_dim("LayerNorm", x, self.normalized_shape)
  return core.layer_norm(x, self.weight, self.bias, self.eps)
end

function LayerNorm:extra_repr()
  return ("%d, eps=%g"):format(self.normalized_shape, self.eps)
end

--- RMSNorm(d, {eps = 1e-5}): x / sqrt(mean(x^2) + eps) * weight.
local RMSNorm = Module:extend("RMSNorm")
layers.RMSNorm = RMSNorm

function RMSNorm:init(d, options)
  check_positive_integer("RMSNorm", "d", d)
  options = layers.check_layer_options("RMSNorm", options, { "eps", "dtype" }, 2)
  self.normalized_shape, self.eps = d, options.eps or 1e-5
  self.weight = layers.parameter({ d }, dtype_of(options), layers.constant(1))
end

function RMSNorm:forward(x)
  check_input("RMSNorm", x)
  check_last_dim("RMSNorm", x, self.normalized_shape)
  return core.rms_norm(x, self.weight, self.eps)
end

function RMSNorm:extra_repr()
  return ("%d, eps=%g"):format(self.normalized_shape, self.eps)
end

-- ---------------------------------------------------------------- dropout and activations

local Dropout = Module:extend("Dropout")
layers.Dropout = Dropout

function Dropout:init(p)
  p = p or 0.5
  if not (is_finite(p) and p >= 0 and p < 1) then
    error(("Dropout: p must be a number in [0, 1), got %s"):format(tostring(p)), 3)
  end
  self.p = p
end

function Dropout:forward(x)
  if self.p == 0 or not self.training then
    return x
  end
  return x:dropout(self.p, true)
end

function Dropout:extra_repr()
  return ("p=%g"):format(self.p)
end

local function activation(name, apply)
  local class = Module:extend(name)
  function class:forward(x)
    check_input(name, x)
    return apply(self, x)
  end
  return class
end

layers.ReLU = activation("ReLU", function(_, x) return x:relu() end)
layers.SiLU = activation("SiLU", function(_, x) return x:silu() end)
layers.Tanh = activation("Tanh", function(_, x) return x:tanh() end)
layers.Sigmoid = activation("Sigmoid", function(_, x) return x:sigmoid() end)
layers.Identity = activation("Identity", function(_, x) return x end)

--- GELU({approximate = "none" | "tanh"}).
local GELU = activation("GELU", function(self, x) return x:gelu(self.approximate) end)
layers.GELU = GELU

function GELU:init(options)
  layers.check_layer_options("GELU", options, { "approximate" }, 2)
  local approximate = options and options.approximate or "none"
  if approximate ~= "none" and approximate ~= "tanh" then
    error(("GELU: approximate must be \"none\" or \"tanh\", got %q"):format(tostring(approximate)), 3)
  end
  self.approximate = approximate
end

function GELU:extra_repr()
  return ("approximate=%q"):format(self.approximate)
end

--- LeakyReLU(negative_slope = 0.01): x, or negative_slope * x where x <= 0.
local LeakyReLU = activation("LeakyReLU", function(self, x) return x:leaky_relu(self.negative_slope) end)
layers.LeakyReLU = LeakyReLU

local function check_finite_argument(name, argument, value)
  if not is_finite(value) then
    error(("%s: %s must be a finite number, got %s"):format(name, argument, tostring(value)), 4)
  end
end

function LeakyReLU:init(negative_slope)
  negative_slope = negative_slope == nil and 0.01 or negative_slope
  check_finite_argument("LeakyReLU", "negative_slope", negative_slope)
  self.negative_slope = negative_slope
end

function LeakyReLU:extra_repr()
  return ("negative_slope=%g"):format(self.negative_slope)
end

--- ELU(alpha = 1): x, or alpha * (exp(x) - 1) where x <= 0.
local ELU = activation("ELU", function(self, x) return x:elu(self.alpha) end)
layers.ELU = ELU

function ELU:init(alpha)
  alpha = alpha == nil and 1 or alpha
  check_finite_argument("ELU", "alpha", alpha)
  self.alpha = alpha
end

function ELU:extra_repr()
  return ("alpha=%g"):format(self.alpha)
end

-- A 1-based dim, or negative from the end, as an integer.
local function check_dim_argument(name, argument, value)
  if not compat.is_integer(value) or value == 0 then
    error(("%s: %s must be a non-zero integer (1-based, negative from the end), got %s"):format(name, argument,
      tostring(value)), 4)
  end
end

local function softmax_class(name, method)
  local class = activation(name, function(self, x) return errors.call(x[method], x, self.dim) end)
  function class:init(dim)
    dim = dim == nil and -1 or dim
    check_dim_argument(name, "dim", dim)
    self.dim = dim
  end
  function class:extra_repr()
    return ("dim=%d"):format(self.dim)
  end
  return class
end

--- Softmax(dim = -1) and LogSoftmax(dim = -1).
layers.Softmax = softmax_class("Softmax", "softmax")
layers.LogSoftmax = softmax_class("LogSoftmax", "log_softmax")

--- Flatten(start_dim = 2, end_dim = -1), or Flatten{start_dim =, end_dim =}:
-- dims start_dim .. end_dim merged into one (1-based: the default keeps the
-- batch dim, as PyTorch's 1 does).
local Flatten = Module:extend("Flatten")
layers.Flatten = Flatten

function Flatten:init(start_dim, end_dim)
  if type(start_dim) == "table" and end_dim == nil then
    check_options("Flatten", start_dim, { "start_dim", "end_dim" }, 3)
    start_dim, end_dim = start_dim.start_dim, start_dim.end_dim
  end
  self.start_dim = start_dim == nil and 2 or start_dim
  self.end_dim = end_dim == nil and -1 or end_dim
  check_dim_argument("Flatten", "start_dim", self.start_dim)
  check_dim_argument("Flatten", "end_dim", self.end_dim)
end

function Flatten:forward(x)
  check_input("Flatten", x)
  local n = x:dim()
  local first = self.start_dim < 0 and n + self.start_dim + 1 or self.start_dim
  local last = self.end_dim < 0 and n + self.end_dim + 1 or self.end_dim
  if n == 0 then
    return x:reshape({ 1 })
  end
  if first < 1 or first > n or last < 1 or last > n or first > last then
    errors.raise(("Flatten: start_dim %d and end_dim %d do not fit input %s (dims 1 to %d, start before end)"):format(
      self.start_dim, self.end_dim, shape_string(x.shape), n))
  end
  local shape, merged = {}, 1
  for i = 1, n do
    if i < first or i > last then
      shape[#shape + 1] = x.shape[i]
    else
      merged = merged * x.shape[i]
      if i == last then
        shape[#shape + 1] = merged
      end
    end
  end
  return x:reshape(shape)
end

function Flatten:extra_repr()
  return ("start_dim=%d, end_dim=%d"):format(self.start_dim, self.end_dim)
end

-- ---------------------------------------------------------------- containers

--- ModuleList({m1, m2, ...}): holds modules, registered under "0", "1", ...
-- as PyTorch does (state_dict names "layers.0.weight"); list:get(i) and
-- list:len() are 1-based, list:ipairs() iterates. It has no forward.
local ModuleList = Module:extend("ModuleList")
layers.ModuleList = ModuleList

function ModuleList:init(modules)
  if modules ~= nil and (type(modules) ~= "table" or Module.is_module(modules)) then
    error(("ModuleList: expects a list of modules, got %s"):format(Module.is_module(modules) and "a module"
      or type(modules)), 3)
  end
  self.length = 0
  for i, module in ipairs(modules or {}) do
    if not Module.is_module(module) then
      error(("ModuleList: entry %d is a %s, expected a module"):format(i, type(module)), 3)
    end
    self:append(module)
  end
end

function ModuleList:append(module)
  if not Module.is_module(module) then
    errors.raise(("ModuleList:append: entry %d is a %s, expected a module"):format(self.length + 1, type(module)))
  end
  self:add_module(tostring(self.length), module)
  self.length = self.length + 1
  return self
end

function ModuleList:len()
  return self.length
end

function ModuleList:get(i)
  if not compat.is_integer(i) or i < 1 or i > self.length then
    errors.raise(("ModuleList:get: index %s is out of range (1 to %d)"):format(tostring(i), self.length))
  end
  return rawget(self, tostring(i - 1))
end

--- for i, module in list:ipairs() do ... end (i from 1).
function ModuleList:ipairs()
  local i = 0
  return function()
    if i < self.length then
      i = i + 1
      return i, rawget(self, tostring(i - 1))
    end
  end
end

--- ModuleDict({name = module, ...}): modules under names (sorted when given
-- as a table; then in insertion order), state_dict names "<key>.weight".
-- dict:get(name), dict:set(name, module), dict:keys() and dict:pairs().
local ModuleDict = Module:extend("ModuleDict")
layers.ModuleDict = ModuleDict

function ModuleDict:init(modules)
  if modules ~= nil and (type(modules) ~= "table" or Module.is_module(modules)) then
    error(("ModuleDict: expects a table of name = module, got %s"):format(Module.is_module(modules) and "a module"
      or type(modules)), 3)
  end
  local names = {}
  for name in pairs(modules or {}) do
    if type(name) ~= "string" then
      error(("ModuleDict: names must be strings, got %s %s"):format(type(name), tostring(name)), 3)
    end
    names[#names + 1] = name
  end
  table.sort(names)
  for _, name in ipairs(names) do
    local ok, message = pcall(self.set, self, name, modules[name])
    if not ok then
      error(errors.strip_location(message), 3)
    end
  end
end

function ModuleDict:set(name, module)
  if type(name) ~= "string" or name == "" or name:find("%.") then
    errors.raise(("ModuleDict:set: name must be a non-empty string without dots, got %s"):format(tostring(name)))
  end
  if ModuleDict[name] ~= nil or name:sub(1, 1) == "_" or name == "training" then
    errors.raise(("ModuleDict:set: name '%s' is taken by a method or field of the module"):format(name))
  end
  if not Module.is_module(module) then
    errors.raise(("ModuleDict:set: '%s' must be a module, got %s"):format(name, type(module)))
  end
  self:add_module(name, module)
  return self
end

function ModuleDict:get(name)
  return self._kinds[name] == "module" and rawget(self, name) or nil
end

function ModuleDict:keys()
  local names = {}
  for _, name in ipairs(self._entries) do
    if self._kinds[name] == "module" then
      names[#names + 1] = name
    end
  end
  return names
end

--- for name, module in dict:pairs() do ... end, in insertion order.
function ModuleDict:pairs()
  local names, i = self:keys(), 0
  return function()
    i = i + 1
    if names[i] then
      return names[i], rawget(self, names[i])
    end
  end
end


--- Sequential(m1, m2, ...) or Sequential({m1, m2, ...}): children named "1", "2", ...
local Sequential = Module:extend("Sequential")
layers.Sequential = Sequential

function Sequential:init(...)
  local list = compat.pack(...)
  if list.n == 1 and type(list[1]) == "table" and not Module.is_module(list[1]) then
    list = list[1]
    list.n = #list
  end
  self.length = 0
  for i = 1, list.n do
    self:append(list[i])
  end
end

function Sequential:append(module)
  if not Module.is_module(module) then
    errors.raise(("Sequential: entry %d is a %s, expected a module"):format(self.length + 1, type(module)))
  end
  self.length = self.length + 1
  self:add_module(tostring(self.length), module)
  return self
end

function Sequential:get(i)
  return rawget(self, tostring(i))
end

function Sequential:forward(x, ...)
  for i = 1, self.length do
    x = rawget(self, tostring(i)):forward(x, ...)
  end
  return x
end

--- MLP(sizes, {activation = nn.ReLU, bias = true, dtype =}): Linear layers of
-- sizes[1] -> sizes[2] -> ... with the activation between them.
local MLP = Module:extend("MLP")
layers.MLP = MLP

function MLP:init(sizes, options)
  if type(sizes) ~= "table" or #sizes < 2 then
    error("MLP: expects a list of at least two layer sizes, e.g. MLP({2, 64, 3})", 3)
  end
  for i, size in ipairs(sizes) do
    if not compat.is_integer(size) or size <= 0 then
      error(("MLP: size %d must be a positive integer, got %s"):format(i, tostring(size)), 3)
    end
  end
  options = layers.check_layer_options("MLP", options, { "activation", "bias", "dtype" }, 2)
  local make_activation = options.activation or layers.ReLU
  if type(make_activation) ~= "table" or rawget(make_activation, "__is_module_class") ~= true then
    error(("MLP: option activation must be a module class such as nn.ReLU, got %s"):format(type(make_activation)), 3)
  end
  self.net = Sequential()
  for i = 1, #sizes - 1 do
    self.net:append(Linear(sizes[i], sizes[i + 1], { bias = options.bias, dtype = options.dtype }))
    if i < #sizes - 1 then
      self.net:append(make_activation())
    end
  end
end

function MLP:forward(x)
  return self.net:forward(x)
end

return layers
