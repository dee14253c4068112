--- tricycle.conv: convolution and pooling made of the engine's ops, installed
-- by tricycle.composed (tc.ops() lists them with composed = true):
--   tc.conv1d        conv2d over {N, C, 1, L}
--   tc.avg_pool2d    im2col, then the mean over each window (zeros of the
--                    padding counted, as PyTorch's default), or the sum
--                    over the count of real elements
--   tc.adaptive_avg_pool2d
--                    P_h @ x @ P_w^T: each side's averaging matrix is fixed
--                    by the sizes (PyTorch's bins: floor(i * in / out) to
--                    ceil((i + 1) * in / out))
--   tc.batch_norm    batch statistics (training) or running ones (eval)
-- Errors name the function, the argument and the values or shapes.
local arguments = require("tricycle.arguments")
local compat = require("tricycle.compat")
local core = require("tricycle.core")
local check_options = require("tricycle.options").check_options
local errors = require("tricycle.errors")

local M = { functions = {} }
local functions = M.functions

M.ops = {
  { name = "conv1d", arity = 3, differentiable = true, float_only = true,
    summary = "1-D convolution of {N, C, L} (conv2d with H = 1)" },
  { name = "avg_pool2d", arity = 1, differentiable = true, float_only = true,
    summary = "mean over windows of {N, C, H, W} (im2col, mean)" },
  { name = "adaptive_avg_pool2d", arity = 1, differentiable = true, float_only = true,
    summary = "mean over output-sized bins of {N, C, H, W} (two matmuls)" },
  { name = "batch_norm", arity = 5, differentiable = true, float_only = true,
    summary = "normalisation per channel by batch or running statistics" },
}

local fail, shape_string, check_tensor = arguments.fail, arguments.shape_string, arguments.check_tensor

local function check_table(name, options, allowed)
  if options ~= nil and type(options) ~= "table" then
    fail("%s: options must be a table, got %s", name, type(options))
  end
  errors.call(check_options, name, options, allowed)
  return options or {}
end

--- An option that is an integer or a list {height, width} of integers >= minimum, as a pair.
local function pair_option(name, options, key, default, minimum)
  local value = options[key]
  if value == nil then
    value = default
  end
  local pair = type(value) == "table" and { value[1], value[2] } or { value, value }
  local ok = (type(value) ~= "table" or #value == 2) and compat.is_integer(pair[1]) and compat.is_integer(pair[2])
  if not ok or pair[1] < minimum or pair[2] < minimum then
    local shown = type(value) == "table" and shape_string(value) or tostring(value)
    fail("%s: option %s must be an integer >= %d or a list {height, width} of them, got %s", name, key, minimum,
      shown)
  end
  return pair
end

local floating = { float32 = true, float64 = true, bfloat16 = true, float16 = true }
local sixteen_bit = { bfloat16 = true, float16 = true }

local function check_floating(name, x)
  if not floating[x.dtype] then
    fail("%s: x must be float32, float64, bfloat16 or float16, got %s", name, x.dtype)
  end
end

-- A 16-bit x is computed on in float32 and the result rounded once, as the
-- engine's ops do: f(x) for other dtypes, f(x:to("float32")):to(x.dtype) for these.
local function in_float32(x, f)
  if not sixteen_bit[x.dtype] then
    return f(x)
  end
  return f(x:to("float32")):to(x.dtype)
end

local function check_image(name, x)
  check_tensor(name, "x", x)
  if x:dim() ~= 4 then
    fail("%s: x must be {N, C, H, W} (4 dims), got shape %s", name, shape_string(x.shape))
  end
  check_floating(name, x)
end

local function on_device(t, like)
  if like.device ~= "cpu" then
    return t:to(like.device)
  end
  return t
end

local function out_size(size, kernel, stride, padding, dilation)
  return compat.idiv(size + 2 * padding - dilation * (kernel - 1) - 1, stride) + 1
end

--- conv1d(x {N, C, L}, weight {O, C / groups, k}, bias {O} or nil, {stride =, padding =, dilation =, groups =})
function functions.conv1d(x, weight, bias, options)
  check_tensor("conv1d", "x", x)
  check_tensor("conv1d", "weight", weight)
  if bias ~= nil then
    check_tensor("conv1d", "bias", bias)
  end
  options = check_table("conv1d", options, { "stride", "padding", "dilation", "groups" })
  if x:dim() ~= 3 then
    fail("conv1d: x must be {N, C, L} (3 dims), got shape %s", shape_string(x.shape))
  end
  if weight:dim() ~= 3 then
    fail("conv1d: weight must be {O, C / groups, k} (3 dims), got shape %s", shape_string(weight.shape))
  end
  local conv_options = { groups = options.groups }
  for _, key in ipairs({ "stride", "padding", "dilation" }) do
    local value = options[key]
    if value ~= nil and not compat.is_integer(value) then
      fail("conv1d: option %s must be an integer, got %s", key, tostring(value))
    end
    if value ~= nil then
      conv_options[key] = { key == "padding" and 0 or 1, value }
    end
  end
  local ok, result = pcall(core.conv2d, x:unsqueeze(3), weight:unsqueeze(3), bias, conv_options)
  if not ok then
    -- the 4-D shapes of conv2d's message are those of x and weight with a 1 inserted as dim 3
    errors.raise((errors.strip_location(result):gsub("^conv2d: ", "conv1d: ")))
  end
  return result:squeeze(3)
end

local function pool_options(name, x, options)
  check_image(name, x)
  options = check_table(name, options, { "kernel_size", "stride", "padding", "count_include_pad" })
  if options.kernel_size == nil then
    fail("%s: option kernel_size is required", name)
  end
  local kernel = pair_option(name, options, "kernel_size", nil, 1)
  local stride = options.stride == nil and kernel or pair_option(name, options, "stride", nil, 1)
  local padding = pair_option(name, options, "padding", 0, 0)
  for i = 1, 2 do
    -- PyTorch's rule: a window is never all padding
    if padding[i] * 2 > kernel[i] then
      fail("%s: padding %s must be at most half the kernel_size %s", name, shape_string(padding),
        shape_string(kernel))
    end
  end
  return options, kernel, stride, padding
end

local function windows(name, x, kernel, stride, padding, dilation, pad_value)
  local ok, cols = pcall(core.im2col, x,
    { kernel_size = kernel, stride = stride, padding = padding, dilation = dilation, pad_value = pad_value })
  if not ok then
    errors.raise((errors.strip_location(cols):gsub("^im2col: ", name .. ": ")))
  end
  local n, c, h, w = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
  local oh = out_size(h, kernel[1], stride[1], padding[1], dilation[1])
  local ow = out_size(w, kernel[2], stride[2], padding[2], dilation[2])
  return cols:reshape({ n, c, kernel[1] * kernel[2], oh * ow }), { n, c, oh, ow }
end

--- avg_pool2d(x, {kernel_size =, stride = kernel_size, padding = 0, count_include_pad = true})
function functions.avg_pool2d(x, options)
  local kernel, stride, padding
  options, kernel, stride, padding = pool_options("avg_pool2d", x, options)
  local include = options.count_include_pad
  if include ~= nil and type(include) ~= "boolean" then
    fail("avg_pool2d: option count_include_pad must be a boolean, got %s", tostring(include))
  end
  return in_float32(x, function(x32)
    local cols, shape = windows("avg_pool2d", x32, kernel, stride, padding, { 1, 1 }, 0)
    if include ~= false or (padding[1] == 0 and padding[2] == 0) then
      return cols:mean(3):reshape(shape)
    end
    -- each window's count of real elements: the windows of a plane of ones
    local ones = on_device(core.ones({ 1, 1, x32.shape[3], x32.shape[4] }, { dtype = x32.dtype }), x32)
    local counts = windows("avg_pool2d", ones, kernel, stride, padding, { 1, 1 }, 0):sum(3)
    return (cols:sum(3) / counts):reshape(shape)
  end)
end

-- The {out, size} matrix whose row i averages the bin floor(i * size / out) .. ceil((i + 1) * size / out).
local function bins(out, size, like)
  local rows = {}
  for i = 0, out - 1 do
    local first = math.floor(i * size / out)
    local last = math.ceil((i + 1) * size / out)
    local row = {}
    for j = 0, size - 1 do
      row[j + 1] = (j >= first and j < last) and 1 / (last - first) or 0
    end
    rows[i + 1] = row
  end
  return on_device(core.tensor(rows, { dtype = like.dtype }), like)
end

--- adaptive_avg_pool2d(x, output_size): output_size an integer or {height, width}.
function functions.adaptive_avg_pool2d(x, output_size)
  check_image("adaptive_avg_pool2d", x)
  local size = pair_option("adaptive_avg_pool2d", { output_size = output_size }, "output_size", nil, 1)
  local h, w = x.shape[3], x.shape[4]
  if h == 0 or w == 0 then
    fail("adaptive_avg_pool2d: x of shape %s has no element to average into output_size %s",
      shape_string(x.shape), shape_string(size))
  end
  return in_float32(x, function(x32)
    local rows = bins(size[1], h, x32):matmul(x32)
    return rows:matmul(bins(size[2], w, x32):transpose(1, 2))
  end)
end

--- batch_norm(x, running_mean, running_var, weight, bias, {training =, momentum = 0.1, eps = 1e-5}):
-- x {N, C, ...}; statistics per channel (dim 2) over every other dim. In training the batch's mean and
-- biased variance normalise x and the running ones (if given) move by momentum toward the batch's mean
-- and unbiased variance, in place; otherwise the running ones normalise x.
function functions.batch_norm(x, running_mean, running_var, weight, bias, options)
  local name = "batch_norm"
  check_tensor(name, "x", x)
  check_floating(name, x)
  options = check_table(name, options, { "training", "momentum", "eps" })
  local training, momentum, eps = options.training, options.momentum or 0.1, options.eps or 1e-5
  if training ~= nil and type(training) ~= "boolean" then
    fail("%s: option training must be a boolean, got %s", name, tostring(training))
  end
  if type(momentum) ~= "number" or not (momentum >= 0 and momentum <= 1) then
    fail("%s: option momentum must be a number in [0, 1], got %s", name, tostring(momentum))
  end
  if type(eps) ~= "number" or not (eps > 0 and eps < math.huge) then
    fail("%s: option eps must be a finite number > 0, got %s", name, tostring(eps))
  end
  if x:dim() < 2 then
    fail("%s: x must be {N, C, ...} (at least 2 dims), got shape %s", name, shape_string(x.shape))
  end
  local channels = x.shape[2]
  for _, entry in ipairs({ { "running_mean", running_mean }, { "running_var", running_var }, { "weight", weight },
    { "bias", bias } }) do
    local t = entry[2]
    if t ~= nil then
      check_tensor(name, entry[1], t)
      if t:dim() ~= 1 or t.shape[1] ~= channels then
        fail("%s: %s must be {%d} (one per channel of x of shape %s), got shape %s", name, entry[1], channels,
          shape_string(x.shape), shape_string(t.shape))
      end
    end
  end
  if (running_mean == nil) ~= (running_var == nil) then
    fail("%s: running_mean and running_var go together (one is nil)", name)
  end
  local dtype = x.dtype
  if sixteen_bit[dtype] then
    x = x:to("float32")
  end
  local dims, shape = { 1 }, { 1, channels }
  for d = 3, x:dim() do
    dims[#dims + 1] = d
    shape[d] = 1
  end
  local mean, var
  if training ~= false or running_mean == nil then
    local count = x:numel() / channels
    if count <= 1 and training ~= false then
      fail("%s: training needs more than one value per channel, got x of shape %s", name, shape_string(x.shape))
    end
    mean = x:mean(dims, true)
    var = x:var(dims, { correction = 0, keepdim = true })
    if running_mean ~= nil and training ~= false then
      local previous = core.is_grad_enabled()
      core.set_grad_enabled(false)
      local ok, failure = pcall(function()
        local unbiased = var:detach():reshape({ channels }) * (count / (count - 1))
        running_mean:copy_(running_mean * (1 - momentum) + mean:detach():reshape({ channels }) * momentum)
        running_var:copy_(running_var * (1 - momentum) + unbiased * momentum)
      end)
      core.set_grad_enabled(previous)
      if not ok then
        errors.raise(name .. ": updating the running statistics: " .. tostring(errors.strip_location(failure)))
      end
    end
  else
    mean, var = running_mean:reshape(shape), running_var:reshape(shape)
  end
  local y = (x - mean) * (var + eps):rsqrt()
  if weight ~= nil then
    y = y * weight:reshape(shape)
  end
  if bias ~= nil then
    y = y + bias:reshape(shape)
  end
  return sixteen_bit[dtype] and y:to(dtype) or y
end

return M
