-- Convolution, pooling and batch-norm layers (lua/tricycle/nn/conv.lua) against PyTorch's results on the
-- same numbers (spec/fixtures/conv/torch_reference.lua, written by make_fixtures.py there), their
-- initialisation, running statistics, train/eval and state_dict.
local tc = require("tricycle")
local nn = require("tricycle.nn")
local torch = dofile("spec/fixtures/conv/torch_reference.lua")

-- the values of a nested table (or a number) in order
local flatten = require("helpers.gradcheck").flatten

local function assert_close(actual, expected, tolerance, what)
  if type(actual) ~= "table" then actual = actual:totable() end
  local a, e = flatten(actual), flatten(expected)
  assert.are.equal(#e, #a, what .. ": sizes differ")
  for i = 1, #e do
    if math.abs(a[i] - e[i]) > tolerance * math.max(1, math.abs(e[i])) then
      error(("%s: entry %d is %.12g, expected %.12g"):format(what, i, a[i], e[i]), 2)
    end
  end
end

local function f64(values, grad)
  local t = tc.tensor(values, { dtype = "float64" })
  if grad then t:requires_grad_(true) end
  return t
end

describe("nn.Conv2d and nn.Conv1d", function()
  it("match PyTorch's conv2d with stride, padding, dilation and groups, forward and backward", function()
    local case = torch.conv2d
    local layer = nn.Conv2d(4, 6, { 3, 2 }, { stride = { 2, 1 }, padding = { 1, 2 }, dilation = { 1, 2 }, groups = 2,
      dtype = "float64" })
    tc.no_grad(function()
      layer.weight:copy_(f64(case.weight))
      layer.bias:copy_(f64(case.bias))
    end)
    local x = f64(case.x, true)
    local y = layer(x)
    assert_close(y, case.y, 1e-12, "y")
    y:backward(f64(case.upstream))
    assert_close(x.grad, case.dx, 1e-12, "dx")
    assert_close(layer.weight.grad, case.dweight, 1e-12, "dweight")
    assert_close(layer.bias.grad, case.dbias, 1e-12, "dbias")
  end)

  it("match PyTorch's conv1d", function()
    local case = torch.conv1d
    local layer = nn.Conv1d(4, 5, 3, { stride = 2, padding = 1, dtype = "float64" })
    tc.no_grad(function()
      layer.weight:copy_(f64(case.weight))
      layer.bias:copy_(f64(case.bias))
    end)
    assert_close(layer(f64(case.x)), case.y, 1e-12, "y")
  end)

  it("initialise as PyTorch: uniform within 1/sqrt(fan_in), fan_in = in / groups * kH * kW", function()
    tc.manual_seed(3)
    local layer = nn.Conv2d(8, 64, 3, { groups = 2 })
    local bound = 1 / math.sqrt(4 * 9)
    assert.are.same({ 64, 4, 3, 3 }, layer.weight.shape)
    local w = layer.weight:detach()
    assert.is_true(w:abs():max():item() <= bound)
    -- the variance of uniform(-b, b) is b^2 / 3
    assert.is_true(math.abs(w:var():item() / (bound * bound / 3) - 1) < 0.1)
    assert.is_true(layer.bias:detach():abs():max():item() <= bound)
    assert.is_nil(nn.Conv2d(2, 2, 1, { bias = false }).bias)
  end)

  it("check their arguments, naming the layer", function()
    assert.has_error(function() nn.Conv2d(3, 4, 3, { pading = 1 }) end,
      "Conv2d: unknown option 'pading' (valid: bias, dilation, dtype, groups, padding, stride)")
    assert.has_error(function() nn.Conv2d(3, 4, 3, { groups = 2 }) end,
      "Conv2d: groups (2) must divide in_channels (3) and out_channels (4)")
    assert.has_error(function() nn.Conv2d(3, 4, 0) end,
      "Conv2d: kernel_size must be an integer >= 1 or a list of 2, got 0")
    assert.has_error(function() nn.Conv2d(3, 4, 3)(tc.randn({ 1, 2, 5, 5 })) end,
      "Conv2d: input of shape {1, 2, 5, 5} has 2 channels (dim 2), expected in_channels 3")
    assert.has_error(function() nn.Conv1d(3, 4, 3)(tc.randn({ 1, 3, 5, 5 })) end,
      "Conv1d: input must be {N, C, L}, got shape {1, 3, 5, 5}")
  end)
end)

describe("pooling layers", function()
  local case = torch.pools
  it("match PyTorch's max, average (padding counted or not) and adaptive average pools", function()
    local x = f64(case.x)
    assert_close(nn.MaxPool2d(3, { stride = 2, padding = 1 })(x), case.max, 1e-12, "max")
    assert_close(nn.AvgPool2d(3, { stride = 2, padding = 1 })(x), case.avg, 1e-12, "avg")
    assert_close(nn.AvgPool2d(3, { stride = 2, padding = 1, count_include_pad = false })(x), case.avg_exclude, 1e-12,
      "avg_exclude")
    assert_close(nn.AdaptiveAvgPool2d({ 4, 3 })(x), case.adaptive, 1e-12, "adaptive")
  end)

  it("send max pooling's gradient to each window's max only", function()
    local x = tc.tensor({ { { { 1, 5 }, { 3, 2 } } } }, { dtype = "float64" }):requires_grad_(true)
    tc.max_pool2d(x, { kernel_size = 2 }):sum():backward()
    assert.are.same({ { { { 0, 1 }, { 0, 0 } } } }, x.grad:totable())
  end)

  it("check their options", function()
    assert.has_error(function() nn.MaxPool2d(2, { count_include_pad = true }) end,
      "MaxPool2d: unknown option 'count_include_pad' (valid: dilation, padding, stride)")
    assert.has_error(function() tc.max_pool2d(tc.randn({ 1, 1, 4, 4 }), { kernel_size = 2, padding = 2 }) end,
      "max_pool2d: padding {2, 2} must be at most half the kernel_size {2, 2}")
  end)
end)

describe("nn.BatchNorm2d and nn.BatchNorm1d", function()
  local case = torch.batch_norm2d
  it("match PyTorch in train mode, move the running statistics (unbiased variance), and use them in eval mode",
    function()
      local layer = nn.BatchNorm2d(3, { momentum = 0.2, dtype = "float64" })
      tc.no_grad(function()
        layer.weight:copy_(f64(case.weight))
        layer.bias:copy_(f64(case.bias))
      end)
      assert.is_true(layer.training)
      assert_close(layer(f64(case.x1)), case.y1, 1e-12, "first step")
      assert_close(layer(f64(case.x2)), case.y2, 1e-12, "second step")
      assert_close(layer.running_mean, case.running_mean, 1e-12, "running_mean")
      assert_close(layer.running_var, case.running_var, 1e-12, "running_var")
      layer:eval()
      assert_close(layer(f64(case.x_eval)), case.y_eval, 1e-12, "eval")
    end)

  it("save and load the running statistics with the state_dict", function()
    local layer = nn.BatchNorm1d(4)
    layer(tc.randn({ 16, 4, 3 }) * 3 + 2)
    local state = layer:state_dict()
    assert.is_not_nil(state.running_mean)
    assert.is_not_nil(state.running_var)
    local fresh = nn.BatchNorm1d(4)
    fresh:load_state_dict(state)
    assert.are.same(layer.running_mean:totable(), fresh.running_mean:totable())
    assert.are.same(layer.running_var:totable(), fresh.running_var:totable())
    local plain = nn.BatchNorm1d(4, { affine = false, track_running_stats = false })
    assert.is_nil(plain.weight)
    assert.is_nil(plain:state_dict().running_mean)
    plain:eval()
    -- without running statistics eval normalises by the batch's own
    local y = plain(tc.randn({ 32, 4 }) * 5 + 1)
    assert.is_true(y:mean(1):abs():max():item() < 1e-5)
  end)

  it("check their input and options", function()
    assert.has_error(function() nn.BatchNorm2d(3)(tc.randn({ 2, 3, 4 })) end,
      "BatchNorm2d: input must be {N, C, H, W}, got shape {2, 3, 4}")
    assert.has_error(function() nn.BatchNorm1d(3)(tc.randn({ 2, 4 })) end,
      "BatchNorm1d: input of shape {2, 4} has 4 channels (dim 2), expected num_features 3")
    assert.has_error(function() nn.BatchNorm1d(3, { momentun = 0.1 }) end,
      "BatchNorm1d: unknown option 'momentun' (valid: affine, dtype, eps, momentum, track_running_stats)")
    assert.has_error(function() nn.BatchNorm1d(3)(tc.randn({ 1, 3 })) end,
      "batch_norm: training needs more than one value per channel, got x of shape {1, 3}")
  end)
end)
