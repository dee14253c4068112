-- Bad inputs: dtypes (conversions, integer/float mixing, bool ops, ops that
-- need floating tensors). See spec/bad_inputs_spec.lua for the format.
local tc = require("tricycle")

local function int64(values) return tc.tensor(values, { dtype = "int64" }) end
local function int32(values) return tc.tensor(values, { dtype = "int32" }) end
local function uint8(values) return tc.tensor(values, { dtype = "uint8" }) end
local function bools() return tc.tensor({ true, false }) end
local function bf16(values) return tc.tensor(values, { dtype = "bfloat16" }) end
local function f16(values) return tc.tensor(values, { dtype = "float16" }) end

return {
  -- convolution and pooling: floating inputs of one dtype
  { "conv2d of an int64 x", function()
    return tc.conv2d(tc.zeros({ 1, 1, 4, 4 }, { dtype = "int64" }), tc.zeros({ 1, 1, 3, 3 }))
  end, { "conv2d", "x", "int64" } },
  { "conv2d of a float64 x with a float32 weight", function()
    return tc.conv2d(tc.zeros({ 1, 1, 4, 4 }, { dtype = "float64" }), tc.zeros({ 1, 1, 3, 3 }))
  end, { "conv2d", "weight", "float32", "float64" } },
  { "conv2d with an int32 bias", function()
    return tc.conv2d(tc.zeros({ 1, 1, 4, 4 }), tc.zeros({ 1, 1, 3, 3 }), tc.zeros({ 1 }, { dtype = "int32" }))
  end, { "conv2d", "bias", "int32" } },
  { "max_pool2d of an int32 x", function()
    return tc.max_pool2d(tc.zeros({ 1, 1, 4, 4 }, { dtype = "int32" }), { kernel_size = 2 })
  end, { "max_pool2d", "int32" } },
  { "im2col of a bool x", function()
    return tc.im2col(tc.zeros({ 1, 1, 4, 4 }, { dtype = "bool" }), { kernel_size = 2 })
  end, { "im2col", "bool" } },
  { "avg_pool2d of an int64 x", function()
    return tc.avg_pool2d(tc.zeros({ 1, 1, 4, 4 }, { dtype = "int64" }), { kernel_size = 2 })
  end, { "avg_pool2d", "int64" } },
  { "adaptive_avg_pool2d of a uint8 x", function()
    return tc.adaptive_avg_pool2d(tc.zeros({ 1, 1, 4, 4 }, { dtype = "uint8" }), 2)
  end, { "adaptive_avg_pool2d", "uint8" } },
  { "batch_norm of an int32 x", function() return tc.batch_norm(tc.zeros({ 2, 3 }, { dtype = "int32" })) end,
    { "batch_norm", "int32" } },
  { "to an unknown dtype", function() return tc.ones({ 2 }):to("float8") end, { "to", "float8" } },
  -- before: the number was read as the string "5"
  { "to with a number", function() return tc.ones({ 2 }):to(5) end, { "to", "number" } },
  { "to with nothing", function() return tc.ones({ 2 }):to() end, { "to", "no value" } },
  { "an unknown dtype option", function() return tc.zeros({ 2 }, { dtype = "quarter" }) end, { "zeros", "quarter" } },
  { "a dtype option that is not a string", function() return tc.ones({ 2 }, { dtype = 64 }) end,
    { "ones", "dtype", "number" } },
  { "int64 + infinity", function() return int64({ 1 }) + math.huge end, { "add", "inf", "int64" } },
  { "int64 * 1e30", function() return int64({ 1 }) * 1e30 end, { "mul", "1e+30", "int64" } },
  { "uint8 + 300", function() return uint8({ 1 }) + 300 end, { "add", "300", "uint8" } },
  { "uint8 + -1", function() return uint8({ 1 }) + -1 end, { "add", "-1", "uint8" } },
  { "uint8 compared with -1", function() return uint8({ 1 }):lt(-1) end, { "lt", "-1", "uint8" } },
  { "bool - bool", function() return bools() - bools() end, { "sub", "bool" } },
  { "-bool", function() return -bools() end, { "neg", "bool" } },
  -- before: the 2 was ignored, giving 2 and not 2.46
  { "round with decimals", function() return tc.tensor({ 2.456 }):round(2) end, { "round", "1 more", "number" } },
  { "floor with an argument", function() return tc.tensor({ 2.5 }):floor("down") end, { "floor", "string" } },
  { "ceil of a number", function() return tc.Tensor.methods.ceil(2.5) end, { "ceil", "tensor", "number" } },
  { "trunc of nothing", function() return tc.Tensor.methods.trunc() end, { "trunc", "tensor" } },
  { "exp with an argument", function() return tc.tensor({ 1 }):exp(2) end, { "exp", "1 more" } },
  { "mm of int64", function() return tc.mm(int64({ { 1 } }), int64({ { 1 } })) end, { "mm", "int64" } },
  { "bmm of float32 and float64", function()
    return tc.bmm(tc.zeros({ 1, 1, 1 }), tc.zeros({ 1, 1, 1 }, { dtype = "float64" }))
  end, { "bmm", "float32", "float64" } },
  { "one_hot of a float tensor", function() return tc.one_hot(tc.tensor({ 1.0 })) end,
    { "one_hot", "integer", "float32" } },
  { "isclose with a misspelt option", function() return tc.isclose(tc.zeros({ 1 }), tc.zeros({ 1 }), { tol = 1 }) end,
    { "isclose", "tol", "valid: atol, equal_nan, rtol" } },
  { "isclose with a negative rtol", function() return tc.zeros({ 1 }):isclose(tc.zeros({ 1 }), { rtol = -1 }) end,
    { "isclose", "rtol", "-1" } },
  { "isclose with a NaN atol", function() return tc.zeros({ 1 }):isclose(tc.zeros({ 1 }), { atol = 0 / 0 }) end,
    { "isclose", "atol", "nan" } },
  { "allclose with equal_nan a string", function()
    return tc.allclose(tc.zeros({ 1 }), tc.zeros({ 1 }), { equal_nan = "yes" })
  end, { "allclose", "equal_nan", "yes" } },
  { "allclose of a tensor and a string", function() return tc.allclose(tc.zeros({ 1 }), "0") end,
    { "allclose", "argument 2", "string" } },
  { "matmul of bools", function() return bools():matmul(bools()) end, { "matmul", "bool" } },
  { "matmul of int64", function() return int64({ 1, 2 }):matmul(int64({ 1, 2 })) end, { "matmul", "int64" } },
  { "softmax of int64", function() return int64({ 1, 2 }):softmax(1) end, { "softmax", "int64" } },
  { "einsum of int64", function() return tc.einsum("i,i->", int64({ 1 }), int64({ 1 })) end, { "einsum", "int64" } },
  { "an int32 tensor that requires grad", function()
    return tc.ones({ 2 }, { dtype = "int32", requires_grad = true })
  end,
    { "requires_grad", "int32" } },
  { "an int64 condition for where", function() return tc.where(int64({ 1 }), int64({ 1 }), int64({ 2 })) end,
    { "where", "int64" } },
  { "a float32 mask for masked_fill", function() return int64({ 1 }):masked_fill(tc.ones({ 1 }), 0) end,
    { "masked_fill", "float32" } },
  { "masked_fill of int64 with 0.5", function() return int64({ 1, 2 }):masked_fill(bools(), 0.5) end,
    { "masked_fill", "0.5", "int64" } },
  { "a float32 index for gather", function() return tc.ones({ 2 }):gather(1, tc.tensor({ 0 })) end,
    { "gather", "float32" } },
  { "uint8 ids for embedding", function() return tc.embedding(tc.ones({ 3, 2 }), uint8({ 1 })) end,
    { "embedding", "uint8" } },
  { "uint8 targets for cross_entropy", function() return tc.cross_entropy(tc.ones({ 2, 3 }), uint8({ 1, 1 })) end,
    { "cross_entropy", "uint8" } },
  { "layer_norm of int64", function() return tc.layer_norm(int64({ 1, 2 })) end, { "layer_norm", "int64" } },
  { "attention of int64", function() return tc.attention(tc.ones({ 1, 1, 3 }, { dtype = "int64" }), 1) end,
    { "attention", "int64" } },
  { "dropout of int64", function() return int64({ 1, 2 }):dropout(0.5) end, { "dropout", "int64" } },
  { "scale_ of int64", function() return tc.scale_(int64({ 1, 2 }), 2) end, { "scale_", "int64" } },
  -- before: every element became NaN
  { "scale_ by NaN", function() return tc.scale_(tc.ones({ 2 }), 0 / 0) end, { "scale_", "factor", "nan" } },
  { "scale_ by infinity", function() return tc.scale_(tc.ones({ 2 }), math.huge) end, { "scale_", "factor", "inf" } },
  { "global_norm of int64", function() return tc.global_norm({ int64({ 1 }) }) end, { "global_norm", "int64" } },
  -- before: the bounds were converted to int32 with undefined behaviour (the result was -2147483648)
  { "clamp of int32 with bounds it cannot hold", function() return int32({ 1 }):clamp(-1e30, 1e30) end,
    { "clamp", "-1e+30", "int32" } },
  { "clamp of uint8 with a negative bound", function() return uint8({ 1 }):clamp(-1, 3) end,
    { "clamp", "-1", "uint8" } },
  -- before: a NaN bound meant "no bound" and the tensor came back unclamped
  { "clamp with a NaN min", function() return tc.ones({ 2 }):clamp(0 / 0, 1) end, { "clamp", "min", "NaN" } },
  { "clamp with a NaN max", function() return int64({ 1 }):clamp(0, 0 / 0) end, { "clamp", "max", "NaN" } },
  -- before: clamp(2) stored a 2 in a bool tensor
  { "clamp of a bool tensor", function() return bools():clamp(2) end, { "clamp", "bool" } },
  { "clamp with a string bound", function() return tc.ones({ 2 }):clamp("1") end, { "clamp", "min", "string" } },
  { "fill_ of int32 with 1e30", function() return int32({ 1 }):fill_(1e30) end, { "fill_", "1e+30", "int32" } },
  { "fill_ of int64 with NaN", function() return int64({ 1 }):fill_(0 / 0) end,
    { "fill_", "int64", "NaN" } },
  { "tensor of int64 from 1.5", function() return tc.tensor({ 1, 1.5 }, { dtype = "int64" }) end,
    { "tensor", "[2]", "1.5", "int64" } },
  { "full of int32 with NaN", function() return tc.full({ 2 }, 0 / 0, { dtype = "int32" }) end, { "full", "int32" } },
  { "data of a parameter set to int64", function()
    local p = tc.ones({ 2 }, { requires_grad = true })
    p.data = int64({ 1, 2 })
  end, { "data", "int64" } },
  { "from_bytes with an unknown dtype", function() return tc.from_bytes("\0\0", "float8", { 1 }) end,
    { "from_bytes", "dtype" } },

  -- bfloat16 and float16 (docs/API.md, "bfloat16 and float16")
  { "scale_ of bfloat16", function() return tc.scale_(bf16({ 1, 2 }), 2) end, { "scale_", "no bfloat16 path" } },
  { "global_norm of float16", function() return tc.global_norm({ f16({ 1 }) }) end,
    { "global_norm", "no float16 path" } },
  { "AdamW over a bfloat16 parameter", function()
    local p = tc.ones({ 2 }, { dtype = "bfloat16", requires_grad = true })
    return tc.optim.AdamW({ p })
  end, { "AdamW", "parameter 1", "bfloat16" } },
  { "SGD over a float16 parameter", function()
    return tc.optim.SGD({ tc.ones({ 2 }, { dtype = "float16", requires_grad = true }) }, { lr = 0.1 })
  end, { "SGD", "parameter 1", "float16" } },
  { "linear of float64 x and a bfloat16 weight", function()
    return tc.linear(tc.ones({ 1, 2 }, { dtype = "float64" }), bf16({ { 1, 2 } }))
  end, { "linear", "weight is bfloat16", "x is float64" } },
  { "linear of int64 x and a bfloat16 weight", function() return tc.linear(int64({ { 1, 2 } }), bf16({ { 1, 2 } })) end,
    { "linear", "int64" } },
  { "linear of bfloat16 x, weight of the wrong width", function()
    return tc.linear(bf16({ { 1, 2 } }), bf16({ { 1 } }))
  end, { "linear", "{1, 2}", "{1, 1}" } },
  { "linear of float32 x, a bfloat16 weight of the wrong width", function()
    return tc.no_grad(function() return tc.linear(tc.ones({ 1, 3 }), bf16({ { 1, 2 } })) end)
  end, { "linear", "{1, 3}", "{1, 2}" } },
  { "layer_norm of float64 x and a float16 weight", function()
    return tc.layer_norm(tc.ones({ 1, 2 }, { dtype = "float64" }), f16({ 1, 1 }))
  end, { "layer_norm", "weight is float16", "x is float64" } },
  { "rms_norm of bfloat16 x and a bfloat16 weight of the wrong width", function()
    return tc.rms_norm(bf16({ { 1, 2, 3 } }), bf16({ 1, 1 }))
  end, { "rms_norm", "weight of shape {2}", "{1, 3}" } },
  { "layer_norm of float16 x with a negative eps", function() return tc.layer_norm(f16({ { 1, 2 } }), nil, nil, -1) end,
    { "layer_norm", "eps", "-1" } },
  { "softmax of bfloat16 over dim 3 of a matrix", function() return bf16({ { 1, 2 } }):softmax(3) end,
    { "softmax", "dim 3", "{1, 2}" } },
  { "rope of float16 x with an odd head size", function()
    return tc.rope(tc.zeros({ 1, 2, 1, 3 }, { dtype = "float16" }), tc.tensor({ 0, 1 }, { dtype = "int64" }))
  end, { "rope", "even head size", "{1, 2, 1, 3}" } },
  { "cross_entropy of float16 logits and a target past the classes", function()
    return tc.cross_entropy(f16({ { 1, 2 } }), tc.tensor({ 2 }, { dtype = "int64" }))
  end, { "cross_entropy", "target 2", "V = 2" } },
  { "cross_entropy of bfloat16 logits and float16 targets", function()
    return tc.cross_entropy(bf16({ { 1, 2 } }), f16({ 1 }))
  end, { "cross_entropy", "targets", "float16" } },
  { "a float32 gradient for a bfloat16 tensor", function()
    local p = tc.ones({ 2 }, { dtype = "bfloat16", requires_grad = true })
    p.grad = tc.ones({ 2 })
  end, { "grad", "float32", "bfloat16" } },
  { "a bfloat16 tensor from a string", function() return tc.tensor({ 1, "x" }, { dtype = "bfloat16" }) end,
    { "tensor", "string" } },
  { "from_bytes of bfloat16 with too few bytes", function() return tc.from_bytes("\0\0\0", "bfloat16", { 2 }) end,
    { "from_bytes", "bfloat16" } },
  { "einsum of bfloat16 and int64", function() return tc.einsum("i,i->", bf16({ 1 }), int64({ 1 })) end,
    { "einsum", "int64" } },
  { "nn.Linear with dtype bf8", function() return tc.nn.Linear(2, 2, { dtype = "bf8" }) end,
    { "Linear", "dtype", "bf8", "bfloat16" } },
  { "Module:to an unknown 16-bit name", function() return tc.nn.Linear(2, 2):to("float8") end,
    { "to", "float8", "neither a dtype nor a device" } },
  { "rand of an unknown dtype", function() return tc.rand({ 2 }, { dtype = "bfloat8" }) end, { "rand", "bfloat8" } },
  { "randn of int32", function() return tc.randn({ 2 }, { dtype = "int32" }) end,
    { "randn", "int32", "bfloat16" } },
  { "a GPT with bfloat16 weights given a bfloat16 cache", function()
    local model = tc.nn.GPT({ vocab_size = 5, context_length = 4, n_layer = 1, n_head = 1, n_embd = 2,
      dtype = "bfloat16" })
    local cache = model:new_cache(1)
    cache.layers[1].k = tc.zeros({ 1, 1, 4, 2 }, { dtype = "bfloat16" })
    return model(tc.tensor({ { 1 } }, { dtype = "int64" }), { cache = cache })
  end, { "GPT", "cache.layers[1].k", "bfloat16", "float32" } },
  -- autocast: the setting must be unchanged after each refusal
  { "autocast to an unknown dtype", function() return tc.autocast("float8", function() end) end,
    { "autocast", "float8", "bfloat16, float16, or float32" },
    after = function() assert(tc.autocast_dtype() == "float32") end },
  { "autocast to an unknown dtype inside float16 autocast", function()
    return tc.autocast("half", function() return tc.autocast("fp8", function() end) end)
  end, { "autocast", "fp8", "bfloat16, float16, or float32" },
    after = function() assert(tc.autocast_dtype() == "float32") end },
  { "autocast to int64", function() return tc.autocast("int64", function() end) end,
    { "autocast", "int64", "bfloat16, float16 or float32" } },
  { "autocast to float64", function() return tc.autocast("float64", function() end) end,
    { "autocast", "float64", "bfloat16, float16 or float32" } },
  { "autocast with a dtype that is not a string", function() return tc.autocast(16, function() end) end,
    { "autocast", "argument 1", "number" } },
  { "autocast with a table for the function", function() return tc.autocast("bfloat16", {}) end,
    { "autocast", "argument 2", "table" }, after = function() assert(tc.autocast_dtype() == "float32") end },
  { "autocast around a linear of mismatched shapes", function()
    return tc.autocast("bfloat16", function() return tc.linear(tc.zeros({ 2, 3 }), tc.zeros({ 4, 5 })) end)
  end, { "linear", "{2, 3}", "{4, 5}" }, after = function() assert(tc.autocast_dtype() == "float32") end },
  { "float16 autocast around a linear of mismatched shapes", function()
    return tc.autocast("float16", function() return tc.linear(tc.zeros({ 3, 7 }), tc.zeros({ 4, 6 })) end)
  end, { "linear", "{3, 7}", "{4, 6}" }, after = function() assert(tc.autocast_dtype() == "float32") end },
  { "float16 autocast around a batched matmul of mismatched batches", function()
    return tc.autocast("float16", function() return tc.zeros({ 2, 3, 4 }):matmul(tc.zeros({ 3, 4, 5 })) end)
  end, { "matmul", "{2, 3, 4}", "{3, 4, 5}" }, after = function() assert(tc.autocast_dtype() == "float32") end },
  { "float16 autocast around an einsum with a bad subscript", function()
    return tc.autocast("float16", function() return tc.einsum("ij,jk->iz", tc.zeros({ 2, 3 }), tc.zeros({ 3, 4 })) end)
  end, { "einsum", "z" }, after = function() assert(tc.autocast_dtype() == "float32") end },
  { "autocast around a bfloat16 matmul of mismatched shapes", function()
    return tc.autocast("bfloat16", function()
      return tc.zeros({ 2, 3 }, { dtype = "bfloat16" }):matmul(tc.zeros({ 4, 5 }, { dtype = "bfloat16" }))
    end)
  end, { "matmul", "{2, 3}", "{4, 5}" }, after = function() assert(tc.autocast_dtype() == "float32") end },
  -- 16-bit products on the backends' gemm_16bit: the checks come first
  { "matmul of bfloat16 matrices that do not align", function()
    return tc.zeros({ 2, 3 }, { dtype = "bfloat16" }):matmul(tc.zeros({ 4, 5 }, { dtype = "bfloat16" }))
  end, { "matmul", "{2, 3}", "{4, 5}", "do not align" } },
  { "batched float16 matmul whose batch dims do not broadcast", function()
    return tc.zeros({ 2, 2, 3 }, { dtype = "float16" }):matmul(tc.zeros({ 3, 3, 4 }, { dtype = "float16" }))
  end, { "matmul", "{2, 2, 3}", "{3, 3, 4}", "2 against 3" } },
  { "matmul of a 0-dim bfloat16 tensor", function()
    return tc.tensor(1, { dtype = "bfloat16" }):matmul(tc.zeros({ 2 }, { dtype = "bfloat16" }))
  end, { "matmul", "a", "0-dim" } },
  { "matmul of bfloat16 and int64", function()
    return tc.zeros({ 2, 3 }, { dtype = "bfloat16" }):matmul(tc.zeros({ 3, 2 }, { dtype = "int64" }))
  end, { "matmul", "b", "int64" } },
  { "linear_gelu of float16 x and weight with a bias of the wrong size", function()
    return tc.linear_gelu(f16({ { 1, 2 } }), f16({ { 1, 2 }, { 3, 4 } }), f16({ 1, 2, 3 }))
  end, { "linear_gelu", "bias of shape {3}", "{2, 2}" } },
  { "a bfloat16 linear's backward given a gradient of the wrong shape", function()
    local x = tc.zeros({ 2, 2 }, { dtype = "bfloat16", requires_grad = true })
    tc.linear(x, tc.zeros({ 3, 2 }, { dtype = "bfloat16" })):backward(tc.zeros({ 3, 2 }, { dtype = "bfloat16" }))
  end, { "backward", "{3, 2}", "{2, 3}" } },
  { "einsum of float16 operands whose sizes disagree", function()
    return tc.einsum("ij,jk->ik", tc.zeros({ 2, 3 }, { dtype = "float16" }), tc.zeros({ 4, 5 }, { dtype = "float16" }))
  end, { "einsum", "'j'", "3", "4" } },
}
