-- Views, reshapes, broadcasting and reductions: shapes that do not fit or
-- whose arithmetic overflows.
local compat = require("tricycle.compat")
local wide = require("helpers.wide")
local tc = require("tricycle")

local huge = { 4294967296, 4294967296 }

return {
  -- convolution and pooling (tc.conv2d, tc.im2col and tc.max_pool2d in the engine; conv1d, the other pools and
  -- batch_norm in lua/tricycle/conv.lua)
  { "conv2d with channels not divisible by groups", function()
    return tc.conv2d(tc.zeros({ 1, 3, 5, 5 }), tc.zeros({ 4, 1, 3, 3 }), nil, { groups = 2 })
  end, { "conv2d", "groups (2)", "input channels (3", "{1, 3, 5, 5}" } },
  { "conv2d with output channels not divisible by groups", function()
    return tc.conv2d(tc.zeros({ 1, 4, 5, 5 }), tc.zeros({ 3, 2, 3, 3 }), nil, { groups = 2 })
  end, { "conv2d", "groups (2)", "output channels (3", "{3, 2, 3, 3}" } },
  { "conv2d whose weight has the wrong input channels", function()
    return tc.conv2d(tc.zeros({ 1, 3, 5, 5 }), tc.zeros({ 4, 2, 3, 3 }))
  end, { "conv2d", "{4, 2, 3, 3}", "{1, 3, 5, 5}", "C / groups = 3" } },
  { "conv2d with a kernel larger than the padded input", function()
    return tc.conv2d(tc.zeros({ 1, 1, 4, 4 }), tc.zeros({ 1, 1, 7, 3 }), nil, { padding = 1 })
  end, { "conv2d", "kernel {7, 3}", "padded input {6, 6}", "{1, 1, 4, 4}" } },
  { "conv2d with a dilated kernel larger than the input", function()
    return tc.conv2d(tc.zeros({ 1, 1, 4, 4 }), tc.zeros({ 1, 1, 3, 3 }), nil, { dilation = 2 })
  end, { "conv2d", "kernel {3, 3}", "dilation {2, 2}", "padded input {4, 4}" } },
  { "conv2d with stride 0", function()
    return tc.conv2d(tc.zeros({ 1, 1, 4, 4 }), tc.zeros({ 1, 1, 3, 3 }), nil, { stride = 0 })
  end, { "conv2d", "stride", "{0, 0}" } },
  { "conv2d with a negative stride", function()
    return tc.conv2d(tc.zeros({ 1, 1, 4, 4 }), tc.zeros({ 1, 1, 3, 3 }), nil, { stride = { -1, 1 } })
  end, { "conv2d", "stride", "{-1, 1}" } },
  { "conv2d with a negative padding", function()
    return tc.conv2d(tc.zeros({ 1, 1, 4, 4 }), tc.zeros({ 1, 1, 3, 3 }), nil, { padding = -1 })
  end, { "conv2d", "padding", "{-1, -1}" } },
  { "conv2d with dilation 0", function()
    return tc.conv2d(tc.zeros({ 1, 1, 4, 4 }), tc.zeros({ 1, 1, 3, 3 }), nil, { dilation = { 1, 0 } })
  end, { "conv2d", "dilation", "{1, 0}" } },
  { "conv2d with a stride past 2^31 - 1", function()
    return tc.conv2d(tc.zeros({ 1, 1, 4, 4 }), tc.zeros({ 1, 1, 3, 3 }), nil, { stride = 2147483648 })
  end, { "conv2d", "stride", "2147483648" } },
  { "conv2d with a padding of 2^40", function()
    return tc.conv2d(tc.zeros({ 1, 1, 4, 4 }), tc.zeros({ 1, 1, 3, 3 }), nil, { padding = 1099511627776 })
  end, { "conv2d", "padding", "1099511627776" } },
  { "conv2d with groups 0", function()
    return tc.conv2d(tc.zeros({ 1, 1, 4, 4 }), tc.zeros({ 1, 1, 3, 3 }), nil, { groups = 0 })
  end, { "conv2d", "groups", "got 0" } },
  { "conv2d of a 3-D x", function() return tc.conv2d(tc.zeros({ 1, 4, 4 }), tc.zeros({ 1, 1, 3, 3 })) end,
    { "conv2d", "x must be {N, C, H, W}", "{1, 4, 4}" } },
  { "conv2d with a 2-D weight", function() return tc.conv2d(tc.zeros({ 1, 1, 4, 4 }), tc.zeros({ 1, 9 })) end,
    { "conv2d", "weight", "{1, 9}" } },
  { "conv2d with a bias of the wrong size", function()
    return tc.conv2d(tc.zeros({ 1, 1, 4, 4 }), tc.zeros({ 2, 1, 3, 3 }), tc.zeros({ 3 }))
  end, { "conv2d", "bias must be {2}", "{3}" } },
  { "conv2d with a misspelt option", function()
    return tc.conv2d(tc.zeros({ 1, 1, 4, 4 }), tc.zeros({ 1, 1, 3, 3 }), nil, { pading = 1 })
  end, { "conv2d", "unknown option 'pading'", "padding" } },
  { "conv2d with a stride list of three", function()
    return tc.conv2d(tc.zeros({ 1, 1, 4, 4 }), tc.zeros({ 1, 1, 3, 3 }), nil, { stride = { 1, 1, 1 } })
  end, { "conv2d", "stride", "{height, width}" } },
  { "im2col whose columns overflow (an empty batch)", function()
    return tc.im2col(tc.zeros({ 0, 65536, 65536, 65536 }), { kernel_size = { 32768, 32768 } })
  end, { "im2col", "too large" } },
  { "im2col without kernel_size", function() return tc.im2col(tc.zeros({ 1, 1, 4, 4 }), { stride = 1 }) end,
    { "im2col", "kernel_size", "required" } },
  { "im2col with a NaN pad_value", function()
    return tc.im2col(tc.zeros({ 1, 1, 4, 4 }), { kernel_size = 2, pad_value = 0 / 0 })
  end, { "im2col", "pad_value", "NaN" } },
  { "im2col with kernel_size 0", function() return tc.im2col(tc.zeros({ 1, 1, 4, 4 }), { kernel_size = 0 }) end,
    { "im2col", "kernel_size", "{0, 0}" } },
  { "max_pool2d with padding over half the kernel", function()
    return tc.max_pool2d(tc.zeros({ 1, 1, 4, 4 }), { kernel_size = 2, padding = 2 })
  end, { "max_pool2d", "padding {2, 2}", "half the kernel_size {2, 2}" } },
  { "max_pool2d with a kernel larger than the input", function()
    return tc.max_pool2d(tc.zeros({ 1, 1, 4, 4 }), { kernel_size = 5 })
  end, { "max_pool2d", "kernel {5, 5}", "padded input {4, 4}" } },
  { "max_pool2d of a 2-D x", function() return tc.max_pool2d(tc.zeros({ 4, 4 }), { kernel_size = 2 }) end,
    { "max_pool2d", "{4, 4}" } },
  { "max_pool2d with stride 0", function()
    return tc.max_pool2d(tc.zeros({ 1, 1, 4, 4 }), { kernel_size = 2, stride = 0 })
  end, { "max_pool2d", "stride", "{0, 0}" } },
  { "avg_pool2d without kernel_size", function() return tc.avg_pool2d(tc.zeros({ 1, 1, 4, 4 }), {}) end,
    { "avg_pool2d", "kernel_size", "required" } },
  { "avg_pool2d with a kernel larger than the input", function()
    return tc.avg_pool2d(tc.zeros({ 1, 1, 4, 4 }), { kernel_size = { 2, 6 } })
  end, { "avg_pool2d", "kernel {2, 6}", "padded input {4, 4}" } },
  { "avg_pool2d with count_include_pad = 1", function()
    return tc.avg_pool2d(tc.zeros({ 1, 1, 4, 4 }), { kernel_size = 2, padding = 1, count_include_pad = 1 })
  end, { "avg_pool2d", "count_include_pad", "boolean" } },
  { "avg_pool2d with a misspelt option", function()
    return tc.avg_pool2d(tc.zeros({ 1, 1, 4, 4 }), { kernel_size = 2, strides = 1 })
  end, { "avg_pool2d", "unknown option 'strides'", "stride" } },
  { "adaptive_avg_pool2d to 0", function() return tc.adaptive_avg_pool2d(tc.zeros({ 1, 1, 4, 4 }), 0) end,
    { "adaptive_avg_pool2d", "output_size", "0" } },
  { "adaptive_avg_pool2d of an image with no rows", function()
    return tc.adaptive_avg_pool2d(tc.zeros({ 1, 1, 0, 3 }), 2)
  end, { "adaptive_avg_pool2d", "{1, 1, 0, 3}", "{2, 2}" } },
  { "conv1d of a 4-D x", function() return tc.conv1d(tc.zeros({ 1, 1, 4, 4 }), tc.zeros({ 1, 1, 3 })) end,
    { "conv1d", "{N, C, L}", "{1, 1, 4, 4}" } },
  { "conv1d with channels not divisible by groups", function()
    return tc.conv1d(tc.zeros({ 1, 3, 4 }), tc.zeros({ 2, 2, 2 }), nil, { groups = 2 })
  end, { "conv1d", "groups (2)", "input channels (3" } },
  { "conv1d with a fractional stride", function()
    return tc.conv1d(tc.zeros({ 1, 1, 4 }), tc.zeros({ 1, 1, 2 }), nil, { stride = 1.5 })
  end, { "conv1d", "stride", "1.5" } },
  { "batch_norm with running_mean of the wrong size", function()
    return tc.batch_norm(tc.zeros({ 2, 3 }), tc.zeros({ 4 }), tc.ones({ 4 }))
  end, { "batch_norm", "running_mean must be {3}", "{4}", "{2, 3}" } },
  { "batch_norm in training with one value per channel", function()
    return tc.batch_norm(tc.zeros({ 1, 3 }), nil, nil, nil, nil, { training = true })
  end, { "batch_norm", "more than one value per channel", "{1, 3}" } },
  { "batch_norm with momentum 2", function()
    return tc.batch_norm(tc.zeros({ 2, 3 }), nil, nil, nil, nil, { momentum = 2 })
  end, { "batch_norm", "momentum", "2" } },
  { "batch_norm with running_mean but no running_var", function()
    return tc.batch_norm(tc.zeros({ 2, 3 }), tc.zeros({ 3 }), nil)
  end, { "batch_norm", "running_mean and running_var" } },
  -- before: a 0-element tensor reshaped to 2^64 elements was accepted, and indexing it read out of bounds
  { "reshape of 0 elements to 2^32 x 2^32", function() return tc.zeros({ 0 }):reshape(huge)[2] end,
    { "reshape", "{4294967296, 4294967296}" } },
  { "view of 0 elements to 2^32 x 2^32 x 0", function() return tc.zeros({ 0 }):view(4294967296, 4294967296, 0) end,
    { "view", "{4294967296, 4294967296, 0}" } },
  { "reshape with -1 beside 2^32 x 2^32", function() return tc.zeros({ 0 }):reshape(4294967296, 4294967296, -1) end,
    { "reshape" } },
  { "reshape with -1 and a 0", function() return tc.zeros({ 0 }):reshape(0, -1) end, { "reshape", "{0, -1}" } },
  { "reshape with two -1", function() return tc.zeros({ 4 }):reshape(-1, -1) end, { "reshape", "-1" } },
  { "reshape with -2", function() return tc.zeros({ 4 }):reshape(-2, -2) end, { "reshape", "negative" } },
  { "reshape to a wrong count", function() return tc.zeros({ 2, 3 }):reshape(7) end, { "reshape", "{7}", "{2, 3}" } },
  { "reshape to nine dims", function() return tc.zeros({ 1 }):reshape(1, 1, 1, 1, 1, 1, 1, 1, 1) end,
    { "reshape", "8 dims" } },
  { "view of a transposed tensor", function() return tc.zeros({ 2, 3 }):transpose(1, 2):view(6) end,
    { "view", "reshape" } },
  -- before: expand to 2^64 elements reported 0 elements
  { "expand to 2^32 x 2^32", function() return tc.zeros({ 1 }):expand(huge):numel() end,
    { "expand", "{4294967296, 4294967296}", "too large" } },
  { "expand to 2^62 float32", wide = true,
    function() return tc.zeros({ 1 }):expand(wide(62)):sum() end, { "expand", "too large" } },
  { "expand a size that is not 1", function() return tc.zeros({ 2 }):expand(3) end, { "expand", "{2}", "{3}" } },
  { "expand to fewer dims", function() return tc.zeros({ 1, 2 }):expand(2) end, { "expand", "{1, 2}" } },
  { "expand with a negative size", function() return tc.zeros({ 1 }):expand(-3) end, { "expand", "-3" } },
  { "expand with -1 on a new dim", function() return tc.zeros({ 2 }):expand(-1, 2) end, { "expand" } },
  -- before: start + length wrapped around and the view reached past the storage
  { "narrow with length 2^63 - 1", wide = true, function() return tc.ones({ 3 }):narrow(1, 2, (wide(63) - 1)):sum() end,
    { "narrow", "9223372036854775807", "dim 1 of size 3" } },
  { "narrow with the largest start", wide = true, function() return tc.ones({ 3 }):narrow(1, (wide(63) - 1), 2) end,
    { "narrow", "dim 1 of size 3" } },
  { "narrow with the smallest start", wide = true, function() return tc.ones({ 3 }):narrow(1, (-wide(63)), 1) end,
    { "narrow", "dim 1 of size 3" } },
  { "narrow with a negative length", function() return tc.ones({ 3 }):narrow(1, 1, -1) end, { "narrow", "-1" } },
  { "narrow with start 0", function() return tc.ones({ 3 }):narrow(1, 0, 1) end, { "narrow", "1-based" } },
  { "narrow past the end", function() return tc.ones({ 3 }):narrow(1, 3, 2) end, { "narrow", "start 3" } },
  { "narrow on dim 3 of a 2-D tensor", function() return tc.ones({ 3, 3 }):narrow(3, 1, 1) end, { "narrow", "3" } },
  { "narrow of a 0-dim tensor", function() return tc.tensor(1):narrow(1, 1, 1) end, { "narrow", "{}" } },
  { "select the largest index", wide = true, function() return tc.ones({ 3 }):select(1, (wide(63) - 1)) end,
    { "select", "9223372036854775807" } },
  { "select the smallest index", wide = true,
    function() return tc.ones({ 3 }):select(1, (-wide(63))) end, { "select" } },
  { "select of a 0-dim tensor", function() return tc.tensor(1):select(1, 1) end, { "select" } },
  { "unsqueeze past 8 dims", function()
    return tc.zeros({ 1, 1, 1, 1, 1, 1, 1, 1 }):unsqueeze(1)
  end, { "unsqueeze", "8 dims", "{1, 1, 1, 1, 1, 1, 1, 1}" } },
  { "unsqueeze at dim 4 of a 2-D tensor", function() return tc.zeros({ 2, 2 }):unsqueeze(4) end,
    { "unsqueeze", "dim 4", "{2, 2}" } },
  { "squeeze at dim 3 of a 2-D tensor", function() return tc.zeros({ 2, 2 }):squeeze(3) end, { "squeeze", "3" } },
  { "permute with too few dims", function() return tc.zeros({ 2, 3, 4 }):permute(1, 2) end,
    { "permute", "{2, 3, 4}" } },
  { "permute with a repeated dim", function() return tc.zeros({ 2, 3 }):permute(2, 2) end, { "permute" } },
  { "permute with dim 9", function() return tc.zeros({ 2, 3 }):permute(1, 9) end, { "permute", "9" } },
  { "transpose of dims out of range", function() return tc.zeros({ 2 }):transpose(1, 2) end, { "transpose", "{2}" } },
  { "flatten with start after end", function() return tc.zeros({ 2, 3, 4 }):flatten(3, 1) end,
    { "flatten", "{2, 3, 4}" } },
  { "a dim past 64", function() return tc.zeros({ 2 }):sum(1000) end, { "sum", "1000" } },
  { "a dim of the smallest integer", wide = true, function() return tc.zeros({ 2 }):sum((-wide(63))) end, { "sum" } },
  -- before: the sum of a 2^62 x 0 uint8 tensor made a 2^62 x 1 int64 result whose byte count wrapped
  { "sum of 2^62 x 0 uint8 over dim 2", wide = true,
    function() return tc.ones({ wide(62), 0 }, { dtype = "uint8" }):sum(2) end,
    { "sum", "{4611686018427387904, 0}", "int64" }, on_doubles = { "ones", "4611686018427387904", "past 2^53" } },
  { "mean of 2^62 x 0 uint8 over dim 2", wide = true,
    function() return tc.ones({ wide(62), 0 }, { dtype = "uint8" }):mean(2) end,
    { "mean", "float32" }, on_doubles = { "ones", "4611686018427387904", "past 2^53" } },
  { "max over dim 1 of an empty tensor", function() return tc.zeros({ 0, 3 }):max(1) end, { "max", "{0, 3}" } },
  { "argmax of an empty tensor", function() return tc.zeros({ 0 }):argmax() end, { "argmax", "{0}" } },
  { "argmax over two dims", function() return tc.zeros({ 2, 2 }):argmax({ 1, 2 }) end, { "argmax" } },
  -- before: "max: argmax: takes one dim", naming two ops
  { "max with indices over two dims", function() return tc.zeros({ 2, 2 }):max({ 1, 2 }) end,
    { "max: over a dim", "takes one dim, got 2" } },
  { "broadcast of 2^40 x 1 and 1 x 2^40", function()
    local one = tc.ones({ 1, 1 }, { dtype = "uint8" })
    return one:expand(1099511627776, 1) + one:expand(1, 1099511627776)
  end, { "add", "{1099511627776, 1}", "{1, 1099511627776}", "2^63" } },
  { "a sum of 4 TiB", function() return tc.zeros({ 1 }):expand(1099511627776) + 1 end, { "add", "out of memory" } },
  { "ones of 4 TiB", function() return tc.ones({ 1099511627776 }) end, { "ones", "out of memory" } },
  { "broadcast of 0 x 2^32 and 2^32 x 1", function()
    return tc.zeros({ 0, 4294967296 }, { dtype = "uint8" })
      * tc.zeros({ 1, 1 }, { dtype = "uint8" }):expand(4294967296, 1)
  end, { "mul", "{0, 4294967296}", "{4294967296, 1}" } },
  { "add of shapes that do not broadcast", function() return tc.zeros({ 2, 3 }) + tc.zeros({ 3, 2 }) end,
    { "add", "{2, 3}", "{3, 2}" } },
  { "where of shapes that do not broadcast", function()
    return tc.where(tc.zeros({ 2 }, { dtype = "bool" }), tc.zeros({ 3 }), tc.zeros({ 2 }))
  end, { "where", "{3}" } },
  { "masked_fill with a mask of another shape", function()
    return tc.zeros({ 2, 3 }):masked_fill(tc.zeros({ 4 }, { dtype = "bool" }), 1)
  end, { "masked_fill", "{4}" } },
  { "copy_ into a smaller tensor", function() return tc.zeros({ 2 }):copy_(tc.zeros({ 2, 2 })) end,
    { "copy_", "{2, 2}", "{2}" } },
  { "matmul of 0-dim tensors", function() return tc.tensor(1):matmul(tc.tensor(2)) end, { "matmul" } },
  { "matmul of {2, 3} and {2, 3}", function() return tc.zeros({ 2, 3 }):matmul(tc.zeros({ 2, 3 })) end,
    { "matmul", "{2, 3}" } },
  { "matmul with batches that do not broadcast", function()
    return tc.zeros({ 2, 2, 3 }):matmul(tc.zeros({ 3, 3, 4 }))
  end, { "matmul", "{2, 2, 3}", "{3, 3, 4}" } },
  { "cat of 0-dim tensors", function() return tc.cat({ tc.tensor(1), tc.tensor(2) }) end, { "cat", "0-dim" } },
  { "cat along dim 3 of 2-D tensors", function() return tc.cat({ tc.zeros({ 2, 2 }), tc.zeros({ 2, 2 }) }, 3) end,
    { "cat", "3" } },
  { "cat of an empty list", function() return tc.cat({}) end, { "cat" } },
  { "cat of tensors with different ranks", function() return tc.cat({ tc.zeros({ 2 }), tc.zeros({ 2, 1 }) }) end,
    { "cat", "{2, 1}" } },
  { "stack of tensors of different shapes", function() return tc.stack({ tc.zeros({ 2 }), tc.zeros({ 2, 1 }) }) end,
    { "stack", "{2, 1}" } },
  { "stack of 8-dim tensors", function()
    local t = tc.zeros({ 1, 1, 1, 1, 1, 1, 1, 1 })
    return tc.stack({ t, t })
  end, { "stack", "8" } },
  { "einsum with an operand of the wrong rank", function() return tc.einsum("ij->i", tc.zeros({ 2 })) end,
    { "einsum" } },
  { "einsum with a bad character", function() return tc.einsum("i$->i", tc.zeros({ 2, 2 })) end, { "einsum", "$" } },
  { "einsum with an output letter not in the inputs", function() return tc.einsum("i->j", tc.zeros({ 2 })) end,
    { "einsum", "j" } },
  { "softmax over dim 2 of a 1-D tensor", function() return tc.zeros({ 2 }):softmax(2) end, { "softmax", "2" } },
  -- the fused ops' shapes
  { "attention of a 2-D qkv", function() return tc.attention(tc.zeros({ 4, 6 }), 1) end,
    { "attention", "{B, T, 3C}", "{4, 6}" } },
  { "attention of a qkv whose last dim is not 3C", function() return tc.attention(tc.zeros({ 1, 4, 7 }), 1) end,
    { "attention", "{1, 4, 7}" } },
  { "attention with 4 heads of C = 6", function() return tc.attention(tc.zeros({ 1, 4, 18 }), 4) end,
    { "attention", "n_head 4", "C = 6", "{1, 4, 18}" } },
  { "attention_cached with 4 heads of C = 6", function()
    return tc.attention_cached(tc.zeros({ 1, 1, 18 }), tc.zeros({ 1, 4, 8, 1 }), tc.zeros({ 1, 4, 8, 1 }), 0, 4)
  end, { "attention_cached", "n_head 4", "C = 6", "{1, 1, 18}" } },
  { "attention_cached of a 2-D qkv", function()
    return tc.attention_cached(tc.zeros({ 1, 18 }), tc.zeros({ 1, 2, 8, 3 }), tc.zeros({ 1, 2, 8, 3 }), 0, 2)
  end, { "attention_cached", "{B, T, 3C}", "{1, 18}" } },
  { "layer_norm with a weight of another size", function() return tc.layer_norm(tc.zeros({ 2, 3 }), tc.ones({ 4 })) end,
    { "layer_norm", "weight", "{4}", "{2, 3}" } },
  { "layer_norm with a 2-D bias", function() return tc.layer_norm(tc.zeros({ 2, 3 }), nil, tc.ones({ 1, 3 })) end,
    { "layer_norm", "bias", "{1, 3}" } },
  { "rms_norm with a weight of another size", function() return tc.rms_norm(tc.zeros({ 2, 3 }), tc.ones({ 2 })) end,
    { "rms_norm", "weight", "{2}", "{2, 3}" } },
  { "layer_norm of a 0-dim tensor", function() return tc.layer_norm(tc.tensor(1.0)) end, { "layer_norm", "{}" } },
  { "linear with in_features that do not match", function()
    return tc.linear(tc.zeros({ 2, 3 }), tc.zeros({ 4, 5 }))
  end, { "linear", "{2, 3}", "{4, 5}" } },
  { "linear with a bias of another size", function()
    return tc.linear(tc.zeros({ 1, 3 }), tc.zeros({ 4, 3 }), tc.zeros({ 3 }))
  end, { "linear", "bias", "{3}", "{4, 3}" } },
  { "linear_gelu with a 1-D weight", function() return tc.linear_gelu(tc.zeros({ 1, 3 }), tc.zeros({ 3 })) end,
    { "linear_gelu", "weight", "{3}" } },
  { "adamw_step with m of another shape", function()
    return tc.adamw_step(tc.zeros({ 3 }), tc.zeros({ 3 }), tc.zeros({ 4 }), tc.zeros({ 3 }), { step = 1 })
  end, { "adamw_step", "m", "{4}", "{3}" } },
  { "sgd_step with grad of another shape", function()
    return tc.sgd_step(tc.zeros({ 3 }), tc.zeros({ 2, 3 }), nil, { lr = 0.1 })
  end, { "sgd_step", "grad", "{2, 3}", "{3}" } },
  { "cross_entropy with targets of another shape", function()
    return tc.cross_entropy(tc.zeros({ 2, 3 }), tc.tensor({ 0, 1, 2 }, { dtype = "int64" }))
  end, { "cross_entropy", "{2, 3}", "{3}" } },
  { "cross_entropy over 0 classes", function()
    return tc.cross_entropy(tc.zeros({ 2, 0 }), tc.tensor({ 0, 1 }, { dtype = "int64" }))
  end, { "cross_entropy", "{2, 0}", "V = 0" } },
  -- the composed shape methods (tricycle/composed.lua)
  { "split into pieces of 0", function() return tc.zeros({ 4 }):split(0) end, { "split", "0" } },
  { "split with sizes that miss elements", function() return tc.zeros({ 2, 5 }):split({ 1, 2 }, 2) end,
    { "split", "{1, 2}", "3", "5" } },
  { "split with a negative size", function() return tc.zeros({ 4 }):split({ 5, -1 }) end,
    { "split", "sizes[2]", "-1" } },
  { "split along dim 3 of a 2-D tensor", function() return tc.zeros({ 2, 2 }):split(1, 3) end,
    { "split", "dim 3", "2 dims" } },
  { "chunk into 0 chunks", function() return tc.zeros({ 4 }):chunk(0) end, { "chunk", "chunks", "0" } },
  { "unbind a 0-D tensor", function() return tc.tensor(1):unbind() end, { "unbind", "dim 1", "0 dims" } },
  { "t() of a 3-D tensor", function() return tc.zeros({ 2, 3, 4 }):t() end, { "t:", "{2, 3, 4}" } },
  { "flip without dims", function() return tc.zeros({ 2 }):flip() end, { "flip", "dims" } },
  { "flip of one dim twice", function() return tc.zeros({ 2, 2 }):flip({ 1, -2 }) end, { "flip", "dim 1", "twice" } },
  { "flip along dim -3 of a 2-D tensor", function() return tc.zeros({ 2, 2 }):flip(-3) end, { "flip", "-3" } },
  { "tril of a 1-D tensor", function() return tc.zeros({ 3 }):tril() end, { "tril", "{3}" } },
  { "triu with a fractional diagonal", function() return tc.zeros({ 3, 3 }):triu(0.5) end,
    { "triu", "diagonal", "0.5" } },
  { "tile with fewer counts than dims", function() return tc.zeros({ 2, 3 }):tile(2) end, { "tile", "{2, 3}", "1" } },
  { "repeat with a negative count", function() local t = tc.zeros({ 2 }) return t["repeat"](t, -1) end,
    { "tile", "count 1", "-1" } },
  { "tile past the size limit (before: checked where the view is made)", function()
    return tc.zeros({ 2 }):tile(4294967296, 4294967296)
  end, { "expand" } },
  { "pad with an odd number of pads", function() return tc.zeros({ 2, 2 }):pad({ 1, 2, 3 }) end,
    { "pad", "{1, 2, 3}", "even" } },
  { "pad of more dims than the tensor has", function() return tc.zeros({ 2 }):pad({ 1, 1, 1, 1 }) end,
    { "pad", "2 dims", "{2}" } },
  { "pad cropping past the size", function() return tc.zeros({ 3 }):pad({ -2, -2 }) end, { "pad", "-2", "3" } },
  { "pad with a string value", function() return tc.zeros({ 2 }):pad({ 1, 1 }, "x") end, { "pad", "value", "string" } },
  { "pad of 1.5 into an int32 tensor", function() return tc.zeros({ 2 }, { dtype = "int32" }):pad({ 1, 0 }, 1.5) end,
    { "pad", "1.5" } },
  -- before: mm and bmm did not exist; matmul broadcasts what torch.mm refuses
  { "mm of a 3-D tensor", function() return tc.mm(tc.zeros({ 2, 2, 3 }), tc.zeros({ 3, 4 })) end,
    { "mm", "2-D", "{2, 2, 3}", "{3, 4}" } },
  { "mm of a vector", function() return tc.zeros({ 3 }):mm(tc.zeros({ 3, 4 })) end, { "mm", "2-D", "{3}" } },
  { "mm of shapes that do not fit", function() return tc.mm(tc.zeros({ 2, 3 }), tc.zeros({ 4, 5 })) end,
    { "mm", "{2, 3}", "{4, 5}", "3 columns", "4 rows" } },
  { "mm of a number", function() return tc.mm(tc.zeros({ 2, 3 }), 2) end, { "mm", "argument 2", "number" } },
  { "bmm of matrices", function() return tc.bmm(tc.zeros({ 2, 3 }), tc.zeros({ 3, 2 })) end,
    { "bmm", "3-D", "{2, 3}" } },
  { "bmm of batch sizes 2 and 1 (no broadcasting)", function()
    return tc.bmm(tc.zeros({ 2, 2, 3 }), tc.zeros({ 1, 3, 2 }))
  end, { "bmm", "batch", "{2, 2, 3}", "{1, 3, 2}" } },
  { "bmm of shapes that do not fit", function() return tc.zeros({ 2, 2, 3 }):bmm(tc.zeros({ 2, 2, 3 })) end,
    { "bmm", "3 columns", "2 rows" } },
  -- before: var ignored an unknown option, truncated a correction to int and took any value as keepdim
  { "var with a misspelt option", function() return tc.zeros({ 2, 3 }):var(1, { keep_dim = true }) end,
    { "var", "keep_dim", "valid: correction, keepdim" } },
  { "var with a correction of 2^32", function() return tc.zeros({ 2, 3 }):var(1, { correction = 4294967296 }) end,
    { "var", "correction", "4294967296" } },
  { "var with a negative correction", function() return tc.zeros({ 2, 3 }):var(1, { correction = -1 }) end,
    { "var", "correction", "-1" } },
  { "var with a fractional correction", function() return tc.zeros({ 2, 3 }):var(1, { correction = 0.5 }) end,
    { "var", "correction", "0.5" } },
  { "var with keepdim a string", function() return tc.zeros({ 2, 3 }):var(1, { keepdim = "no" }) end,
    { "var", "keepdim", "string" } },
  { "var with a string for options", function() return tc.zeros({ 2, 3 }):var(1, "keepdim") end,
    { "var", "argument 3", "string" } },
  { "std over a dim out of range", function() return tc.zeros({ 2, 3 }):std(3) end, { "std", "3" } },
  { "std with a misspelt option", function() return tc.zeros({ 2, 3 }):std(1, { corection = 0 }) end,
    { "std", "corection" } },
  { "logsumexp over a dim out of range", function() return tc.zeros({ 2, 3 }):logsumexp(-3) end,
    { "logsumexp", "dim -3", "2 dims" } },
  { "logsumexp over a dim twice", function() return tc.zeros({ 2, 3 }):logsumexp({ 1, -2 }) end,
    { "logsumexp", "dim 1", "twice" } },
  { "logsumexp with keepdim a string", function() return tc.zeros({ 2, 3 }):logsumexp(1, "yes") end,
    { "logsumexp", "keepdim", "yes" } },
  { "all over a dim out of range", function() return tc.zeros({ 2 }):all(2) end, { "all", "dim 2", "1 dims" } },
  { "any with a fractional dim", function() return tc.zeros({ 2 }):any(1.5) end, { "any", "1.5" } },
  { "any with keepdim a number", function() return tc.zeros({ 2 }):any(1, 1) end, { "any", "keepdim", "1" } },
  { "prod over a dim out of range", function() return tc.zeros({ 2, 3 }):prod(3) end, { "prod", "dim 3", "2 dims" } },
  { "prod with keepdim a number", function() return tc.zeros({ 2, 3 }):prod(1, 0) end, { "prod", "keepdim", "0" } },
  { "cumsum without a dim", function() return tc.zeros({ 2, 3 }):cumsum() end, { "cumsum", "dim", "required" } },
  { "cumsum along a dim out of range", function() return tc.zeros({ 2, 3 }):cumsum(-3) end,
    { "cumsum", "dim -3", "2 dims" } },
  { "cumsum along a list of dims", function() return tc.zeros({ 2, 3 }):cumsum({ 1 }) end, { "cumsum", "dim" } },
  { "cumsum of a 0-dim tensor along dim 2", function() return tc.tensor(1):cumsum(2) end,
    { "cumsum", "dim 2", "0-dim" } },
  { "isclose of shapes that do not broadcast", function() return tc.zeros({ 2 }):isclose(tc.zeros({ 3 })) end,
    { "isclose", "{2}", "{3}" } },
  -- grouped-query attention: qkv {B, T, (n_head + 2 n_kv_head) * head_dim}
  { "attention with n_kv_head 3 of 4 heads", function()
    return tc.attention(tc.zeros({ 1, 2, 20 }), 4, { n_kv_head = 3 })
  end, { "attention", "n_kv_head 3", "n_head 4", "{1, 2, 20}" } },
  { "attention with n_kv_head 8 of 4 heads", function()
    return tc.attention(tc.zeros({ 1, 2, 20 }), 4, { n_kv_head = 8 })
  end, { "attention", "n_kv_head", "n_head 4", "8" } },
  { "attention with n_kv_head 1.5", function() return tc.attention(tc.zeros({ 1, 2, 12 }), 4, { n_kv_head = 1.5 }) end,
    { "attention", "n_kv_head", "integer" } },
  { "grouped attention of a qkv whose last dim is not (4 + 2) * head_dim", function()
    return tc.attention(tc.zeros({ 1, 2, 16 }), 4, { n_kv_head = 1 })
  end, { "attention", "(n_head + 2 n_kv_head) * head_dim", "6 * head_dim", "{1, 2, 16}" } },
  { "grouped attention of a 2-D qkv", function() return tc.attention(tc.zeros({ 2, 12 }), 4, { n_kv_head = 1 }) end,
    { "attention", "{2, 12}", "n_kv_head 1" } },
  { "attention with an unknown option", function() return tc.attention(tc.zeros({ 1, 2, 12 }), 2, { kv_heads = 1 }) end,
    { "attention", "kv_heads", "n_kv_head" } },
  -- norm (composed in lua/tricycle/composed.lua)
  { "norm with p = -1", function() return tc.ones({ 3 }):norm(-1) end, { "norm", "p", "-1" } },
  { "norm with p = \"nuc\"", function() return tc.ones({ 3 }):norm("nuc") end, { "norm", "p", "\"nuc\"", "fro" } },
  { "norm with p = NaN", function() return tc.ones({ 3 }):norm(0 / 0) end, { "norm", "p", "nan" } },
  { "norm over dim 2 of a 1-D tensor", function() return tc.ones({ 3 }):norm(2, 2) end, { "norm", "dim", "2" } },
  { "norm with keepdim a number", function() return tc.ones({ 3 }):norm(2, 1, 1) end, { "norm", "keepdim", "1" } },
  { "inf-norm of an empty tensor", function() return tc.ones({ 0 }):norm(math.huge) end,
    { "norm", "empty", "{0}" } },
}
