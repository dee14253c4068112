--- Convolution, pooling and batch-norm layers, over tc.conv2d, tc.conv1d,
-- the pools and tc.batch_norm (lua/tricycle/conv.lua), with PyTorch's
-- arguments, initialisation and state_dict keys:
--   Conv1d(in, out, kernel_size, {stride, padding, dilation, groups, bias, dtype})
--   Conv2d(in, out, kernel_size, {the same}); weight {out, in / groups, kH, kW}
--   MaxPool2d(kernel_size, {stride, padding, dilation}), AvgPool2d(kernel_size,
--   {stride, padding, count_include_pad}), AdaptiveAvgPool2d(output_size)
--   BatchNorm1d(num_features, {eps, momentum, affine, track_running_stats, dtype})
--   and BatchNorm2d: buffers running_mean and running_var (saved in state_dict),
--   batch statistics in train() mode, the running ones in eval() mode
-- Options tables are checked: an unknown key is an error listing the valid ones.
local compat = require("tricycle.compat")
local core = require("tricycle.core")
local conv = require("tricycle.conv").functions
local Module = require("tricycle.nn.module")
local layers = require("tricycle.nn.layers")
local check_options = require("tricycle.options").check_options
local errors = require("tricycle.errors")

local no_grad, shape_string = Module.no_grad, Module.shape_string
local M = {}

local function fail(format, ...)
  errors.raise(format:format(...))
end

local floating = { float32 = "float32", float = "float32", float64 = "float64", double = "float64" }

local function check_layer_options(name, options, allowed)
  if options ~= nil and type(options) ~= "table" then
    fail("%s: options must be a table, got %s", name, type(options))
  end
  errors.call(check_options, name, options, allowed)
  options = options or {}
  if options.dtype ~= nil and not floating[options.dtype] then
    fail("%s: option dtype must be float32 or float64 (parameters are trained), got %s", name,
      tostring(options.dtype))
  end
  for _, key in ipairs({ "bias", "affine", "track_running_stats", "count_include_pad" }) do
    if options[key] ~= nil and type(options[key]) ~= "boolean" then
      fail("%s: option %s must be a boolean, got %s", name, key, tostring(options[key]))
    end
  end
  return options
end

local function check_positive(name, argument, value)
  if not compat.is_integer(value) or value <= 0 then
    fail("%s: %s must be a positive integer, got %s", name, argument, tostring(value))
  end
end

-- An integer or a list of `count` of them, each >= minimum (nil: allowed when optional).
local function check_size(name, argument, value, count, minimum, optional)
  if value == nil and optional then
    return
  end
  local list = type(value) == "table" and value or { value }
  local ok = type(value) ~= "table" or #value == count
  for i = 1, #list do
    ok = ok and compat.is_integer(list[i]) and list[i] >= minimum
  end
  if not ok then
    local shown = type(value) == "table" and shape_string(value) or tostring(value)
    fail("%s: %s must be an integer >= %d%s, got %s", name, argument, minimum,
      count > 1 and (" or a list of " .. count) or "", shown)
  end
end

local function check_input(name, x, dims, what)
  if getmetatable(x) ~= core.Tensor then
    fail("%s: input must be a tensor, got %s", name, type(x))
  end
  if not dims[x:dim()] then
    fail("%s: input must be %s, got shape %s", name, what, shape_string(x.shape))
  end
end

-- ---------------------------------------------------------------- convolutions

local function convolution(name, spatial)
  local class = Module:extend(name)
  local layout = spatial == 1 and "{N, C, L}" or "{N, C, H, W}"
  function class:init(in_channels, out_channels, kernel_size, options)
    check_positive(name, "in_channels", in_channels)
    check_positive(name, "out_channels", out_channels)
    check_size(name, "kernel_size", kernel_size, spatial, 1)
    options = check_layer_options(name, options, { "stride", "padding", "dilation", "groups", "bias", "dtype" })
    check_size(name, "option stride", options.stride, spatial, 1, true)
    check_size(name, "option padding", options.padding, spatial, 0, true)
    check_size(name, "option dilation", options.dilation, spatial, 1, true)
    local groups = options.groups or 1
    check_positive(name, "option groups", groups)
    if in_channels % groups ~= 0 or out_channels % groups ~= 0 then
      fail("%s: groups (%d) must divide in_channels (%d) and out_channels (%d)", name, groups, in_channels,
        out_channels)
    end
    local kernel = type(kernel_size) == "table" and kernel_size or { kernel_size, kernel_size }
    local shape = { out_channels, compat.idiv(in_channels, groups) }
    local fan_in = in_channels / groups
    for i = 1, spatial do
      shape[#shape + 1] = kernel[i]
      fan_in = fan_in * kernel[i]
    end
    self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
    self.stride, self.padding, self.dilation, self.groups = options.stride or 1, options.padding or 0,
      options.dilation or 1, groups
    -- PyTorch's init: kaiming_uniform(a = sqrt(5)) is uniform(+-1/sqrt(fan_in)), the bias the same
    local dtype, bound = floating[options.dtype] or "float32", 1 / math.sqrt(fan_in)
    self.weight = layers.parameter(shape, dtype, layers.uniform(bound))
    if options.bias ~= false then
      self.bias = layers.parameter({ out_channels }, dtype, layers.uniform(bound))
    end
  end
  function class:forward(x)
    check_input(name, x, { [spatial + 2] = true }, layout)
    if x.shape[2] ~= self.in_channels then
      fail("%s: input of shape %s has %d channels (dim 2), expected in_channels %d", name, shape_string(x.shape),
        x.shape[2], self.in_channels)
    end
    local options = { stride = self.stride, padding = self.padding, dilation = self.dilation, groups = self.groups }
    if spatial == 1 then
      return errors.call(conv.conv1d, x, self.weight, self.bias, options)
    end
    return errors.call(core.conv2d, x, self.weight, self.bias, options)
  end
  function class:extra_repr()
    local function show(v) return type(v) == "table" and shape_string(v) or tostring(v) end
    return ("%d -> %d, kernel_size=%s, stride=%s, padding=%s%s%s"):format(self.in_channels, self.out_channels,
      show(self.kernel_size), show(self.stride), show(self.padding),
      self.groups > 1 and (", groups=" .. self.groups) or "", self.bias and "" or ", bias=false")
  end
  return class
end

M.Conv1d = convolution("Conv1d", 1)
M.Conv2d = convolution("Conv2d", 2)

-- ---------------------------------------------------------------- pooling

local function pooling(name, fn, extra)
  local class = Module:extend(name)
  function class:init(kernel_size, options)
    check_size(name, "kernel_size", kernel_size, 2, 1)
    local allowed = { "stride", "padding", extra }
    options = check_layer_options(name, options, allowed)
    check_size(name, "option stride", options.stride, 2, 1, true)
    check_size(name, "option padding", options.padding, 2, 0, true)
    self.options = { kernel_size = kernel_size, stride = options.stride, padding = options.padding }
    if extra == "dilation" then
      check_size(name, "option dilation", options.dilation, 2, 1, true)
    end
    self.options[extra] = options[extra]
  end
  function class:forward(x)
    check_input(name, x, { [4] = true }, "{N, C, H, W}")
    return errors.call(fn, x, self.options)
  end
  function class:extra_repr()
    local k = self.options.kernel_size
    return "kernel_size=" .. (type(k) == "table" and shape_string(k) or tostring(k))
  end
  return class
end

M.MaxPool2d = pooling("MaxPool2d", core.max_pool2d, "dilation")
M.AvgPool2d = pooling("AvgPool2d", conv.avg_pool2d, "count_include_pad")

local AdaptiveAvgPool2d = Module:extend("AdaptiveAvgPool2d")
M.AdaptiveAvgPool2d = AdaptiveAvgPool2d

function AdaptiveAvgPool2d:init(output_size)
  check_size("AdaptiveAvgPool2d", "output_size", output_size, 2, 1)
  self.output_size = output_size
end

function AdaptiveAvgPool2d:forward(x)
  check_input("AdaptiveAvgPool2d", x, { [4] = true }, "{N, C, H, W}")
  return errors.call(conv.adaptive_avg_pool2d, x, self.output_size)
end

-- ---------------------------------------------------------------- batch norm

local function batch_norm(name, dims, layout)
  local class = Module:extend(name)
  function class:init(num_features, options)
    check_positive(name, "num_features", num_features)
    options = check_layer_options(name, options, { "eps", "momentum", "affine", "track_running_stats", "dtype" })
    local eps, momentum = options.eps or 1e-5, options.momentum or 0.1
    if type(eps) ~= "number" or not (eps > 0 and eps < math.huge) then
      fail("%s: option eps must be a finite number > 0, got %s", name, tostring(eps))
    end
    if type(momentum) ~= "number" or not (momentum >= 0 and momentum <= 1) then
      fail("%s: option momentum must be a number in [0, 1], got %s", name, tostring(momentum))
    end
    local dtype = floating[options.dtype] or "float32"
    self.num_features, self.eps, self.momentum = num_features, eps, momentum
    if options.affine ~= false then
      self.weight = layers.parameter({ num_features }, dtype, layers.constant(1))
      self.bias = layers.parameter({ num_features }, dtype, layers.constant(0))
    end
    if options.track_running_stats ~= false then
      self:add_buffer("running_mean", no_grad(function() return core.zeros({ num_features }, { dtype = dtype }) end))
      self:add_buffer("running_var", no_grad(function() return core.ones({ num_features }, { dtype = dtype }) end))
    end
  end
  function class:forward(x)
    check_input(name, x, dims, layout)
    if x.shape[2] ~= self.num_features then
      fail("%s: input of shape %s has %d channels (dim 2), expected num_features %d", name, shape_string(x.shape),
        x.shape[2], self.num_features)
    end
    -- without running statistics, eval mode normalises by the batch's too (as PyTorch)
    return errors.call(conv.batch_norm, x, self.running_mean, self.running_var, self.weight, self.bias,
      { training = self.training or self.running_mean == nil, momentum = self.momentum, eps = self.eps })
  end
  function class:extra_repr()
    return ("%d, eps=%g, momentum=%g%s"):format(self.num_features, self.eps, self.momentum,
      self.weight and "" or ", affine=false")
  end
  return class
end

M.BatchNorm1d = batch_norm("BatchNorm1d", { [2] = true, [3] = true }, "{N, C} or {N, C, L}")
M.BatchNorm2d = batch_norm("BatchNorm2d", { [4] = true }, "{N, C, H, W}")

return M
