-- Bad inputs: tc.nn (constructors, forward, GPT and Llama configs, state dicts, to()).
-- See spec/bad_inputs_spec.lua for the format.
local tc = require("tricycle")
local nn = require("tricycle.nn")

local function gpt(extra)
  local config = { vocab_size = 10, context_length = 4, n_layer = 1, n_head = 2, n_embd = 8 }
  for key, value in pairs(extra or {}) do
    config[key] = value
  end
  return nn.GPT(config)
end

local function ids(rows)
  return tc.tensor(rows, { dtype = "int64" })
end

local function llama(extra)
  local config = { vocab_size = 10, hidden_size = 8, intermediate_size = 12, num_hidden_layers = 1,
    num_attention_heads = 4, num_key_value_heads = 2, max_position_embeddings = 4 }
  for key, value in pairs(extra or {}) do
    config[key] = value
  end
  return nn.Llama(config)
end

local converted -- the module of a failed to(), for its `after` check

local function linear_state(weight, bias)
  return { weight = weight or tc.zeros({ 2, 2 }), bias = bias or tc.zeros({ 2 }) }
end

return {
  -- convolution, pooling and batch-norm layers (lua/tricycle/nn/conv.lua)
  { "Conv2d with a misspelt option", function() return nn.Conv2d(3, 4, 3, { pading = 1 }) end,
    { "Conv2d", "unknown option 'pading'", "padding" } },
  { "Conv2d with groups not dividing the channels", function() return nn.Conv2d(3, 4, 3, { groups = 2 }) end,
    { "Conv2d", "groups (2)", "in_channels (3)" } },
  { "Conv2d with kernel_size 0", function() return nn.Conv2d(3, 4, 0) end, { "Conv2d", "kernel_size", "0" } },
  { "Conv2d with a kernel_size list of three", function() return nn.Conv2d(3, 4, { 1, 2, 3 }) end,
    { "Conv2d", "kernel_size", "{1, 2, 3}" } },
  { "Conv2d with a negative padding", function() return nn.Conv2d(3, 4, 3, { padding = -1 }) end,
    { "Conv2d", "padding", "-1" } },
  { "Conv2d with dtype int64", function() return nn.Conv2d(3, 4, 3, { dtype = "int64" }) end,
    { "Conv2d", "dtype", "int64" } },
  { "Conv2d forward with the wrong channels", function() return nn.Conv2d(3, 4, 3)(tc.zeros({ 1, 2, 5, 5 })) end,
    { "Conv2d", "{1, 2, 5, 5}", "in_channels 3" } },
  { "Conv2d forward of a 3-D input", function() return nn.Conv2d(3, 4, 3)(tc.zeros({ 3, 5, 5 })) end,
    { "Conv2d", "{N, C, H, W}", "{3, 5, 5}" } },
  { "Conv2d forward of an input smaller than the kernel", function()
    return nn.Conv2d(1, 1, 5)(tc.zeros({ 1, 1, 3, 3 }))
  end, { "conv2d", "kernel {5, 5}", "padded input {3, 3}" } },
  { "Conv1d forward of a 4-D input", function() return nn.Conv1d(1, 1, 3)(tc.zeros({ 1, 1, 5, 5 })) end,
    { "Conv1d", "{N, C, L}", "{1, 1, 5, 5}" } },
  { "Conv1d with out_channels 0", function() return nn.Conv1d(1, 0, 3) end, { "Conv1d", "out_channels", "0" } },
  { "MaxPool2d with kernel_size 0", function() return nn.MaxPool2d(0) end, { "MaxPool2d", "kernel_size", "0" } },
  { "MaxPool2d with an option of AvgPool2d", function() return nn.MaxPool2d(2, { count_include_pad = true }) end,
    { "MaxPool2d", "unknown option 'count_include_pad'", "dilation" } },
  { "AvgPool2d forward of a 3-D input", function() return nn.AvgPool2d(2)(tc.zeros({ 1, 4, 4 })) end,
    { "AvgPool2d", "{N, C, H, W}", "{1, 4, 4}" } },
  { "AdaptiveAvgPool2d with an output_size of three", function() return nn.AdaptiveAvgPool2d({ 1, 2, 3 }) end,
    { "AdaptiveAvgPool2d", "output_size", "{1, 2, 3}" } },
  { "BatchNorm2d forward of a 3-D input", function() return nn.BatchNorm2d(3)(tc.zeros({ 2, 3, 4 })) end,
    { "BatchNorm2d", "{N, C, H, W}", "{2, 3, 4}" } },
  { "BatchNorm1d forward with the wrong channels", function() return nn.BatchNorm1d(3)(tc.zeros({ 2, 4 })) end,
    { "BatchNorm1d", "{2, 4}", "num_features 3" } },
  { "BatchNorm1d with a misspelt option", function() return nn.BatchNorm1d(3, { momentun = 0.1 }) end,
    { "BatchNorm1d", "unknown option 'momentun'", "momentum" } },
  { "BatchNorm1d with eps 0", function() return nn.BatchNorm1d(3, { eps = 0 }) end, { "BatchNorm1d", "eps", "0" } },
  { "BatchNorm2d in training on one value per channel", function()
    return nn.BatchNorm2d(3)(tc.zeros({ 1, 3, 1, 1 }))
  end, { "batch_norm", "more than one value per channel", "{1, 3, 1, 1}" } },
  { "Flatten with start_dim 0", function() return nn.Flatten({ start_dim = 0 }) end, { "Flatten", "start_dim", "0" } },
  { "Flatten with an unknown option", function() return nn.Flatten({ start = 2 }) end,
    { "Flatten", "unknown option 'start'", "end_dim, start_dim" } },
  { "Flatten of dims past the input", function() return nn.Flatten({ start_dim = 3 })(tc.zeros({ 2, 3 })) end,
    { "Flatten", "{2, 3}" } },
  { "Linear with in_features 0", function() return nn.Linear(0, 3) end, { "Linear", "in_features", "0" } },
  { "Linear with out_features 2.5", function() return nn.Linear(2, 2.5) end, { "Linear", "out_features", "2.5" } },
  -- before: the error came from rand, not naming Linear
  { "Linear with dtype int64", function() return nn.Linear(2, 2, { dtype = "int64" }) end,
    { "Linear", "dtype", "int64" } },
  { "Linear with dtype int32", function() return nn.Linear(2, 2, { dtype = "int32" }) end,
    { "Linear", "dtype", "int32" } },
  -- before: any value but false meant a bias
  { "Linear with bias = \"no\"", function() return nn.Linear(2, 2, { bias = "no" }) end, { "Linear", "bias", "no" } },
  -- before: "attempt to index a number value (local 'options')"
  { "Linear with a number for options", function() return nn.Linear(2, 2, 5) end, { "Linear", "options", "number" } },
  { "Linear with a misspelt option", function() return nn.Linear(2, 2, { biass = false }) end,
    { "Linear", "biass", "valid" } },
  { "Linear on a wrong last dim", function() return nn.Linear(4, 2)(tc.randn({ 3, 5 })) end,
    { "Linear", "{3, 5}", "4" } },
  { "Linear on a string", function() return nn.Linear(4, 2)("x") end,
    { "Linear", "input must be a tensor", "string" } },
  -- before: the error named dim
  { "Linear on a closed tensor", function()
    local x = tc.ones({ 1, 2 })
    x:free()
    return nn.Linear(2, 2)(x)
  end, { "Linear", "closed" } },
  { "Linear on float64 input with float32 weights", function()
    return nn.Linear(2, 2)(tc.ones({ 1, 2 }, { dtype = "float64" }))
  end, { "linear", "float64", "float32" } },
  { "Embedding of float ids", function() return nn.Embedding(4, 2)(tc.tensor({ 1 })) end, { "Embedding", "float32" } },
  { "Embedding of an id past the table", function() return nn.Embedding(4, 2)(ids({ 4 })) end,
    { "embedding", "id 4" } },
  -- before: the error came from randn
  { "Embedding with dtype int32", function() return nn.Embedding(4, 2, { dtype = "int32" }) end,
    { "Embedding", "dtype", "int32" } },
  -- before: accepted; every output was NaN
  { "LayerNorm with eps NaN", function() return nn.LayerNorm(4, { eps = 0 / 0 }) end, { "LayerNorm", "eps", "nan" } },
  -- before: accepted; a constant row gave NaN
  { "LayerNorm with eps -1", function() return nn.LayerNorm(4, { eps = -1 }) end, { "LayerNorm", "eps", "-1" } },
  { "LayerNorm on a wrong last dim", function() return nn.LayerNorm(4)(tc.ones({ 2, 3 })) end,
    { "LayerNorm", "{2, 3}", "4" } },
  -- before: accepted, and printing the layer raised a format error
  { "RMSNorm with eps a string", function() return nn.RMSNorm(4, { eps = "x" }) end, { "RMSNorm", "eps", "x" } },
  -- before: accepted; NaN passed the range test
  { "Dropout with p NaN", function() return nn.Dropout(0 / 0) end, { "Dropout", "nan" } },
  { "Dropout with p 1", function() return nn.Dropout(1) end, { "Dropout", "1" } },
  { "GELU with approximate \"fast\"", function() return nn.GELU({ approximate = "fast" }) end, { "GELU", "fast" } },
  -- before: "attempt to call a number value (local 'make_activation')"
  { "MLP with a number for activation", function() return nn.MLP({ 2, 3, 4 }, { activation = 5 }) end,
    { "MLP", "activation", "number" } },
  { "MLP with a fractional size", function() return nn.MLP({ 2, 3.5 }) end, { "MLP", "size 2", "3.5" } },
  { "Sequential of a number", function() return nn.Sequential(5) end, { "Sequential", "entry 1", "number" } },
  { "MultiHeadSelfAttention with n_head not dividing n_embd", function()
    return nn.MultiHeadSelfAttention({ n_embd = 6, n_head = 4 })
  end, { "MultiHeadSelfAttention", "not divisible" } },
  -- before: accepted; training gave NaN
  { "GPT with dropout NaN", function() return gpt({ dropout = 0 / 0 }) end, { "GPT", "dropout", "nan" } },
  -- before: the error came from GELU behind three positions
  { "GPT with gelu \"relu\"", function() return gpt({ gelu = "relu" }) end, { "GPT", "gelu", "relu" } },
  -- before: accepted
  { "GPT with eps -1", function() return gpt({ eps = -1 }) end, { "GPT", "eps", "-1" } },
  -- before: the error came from randn
  { "GPT with dtype int64", function() return gpt({ dtype = "int64" }) end, { "GPT", "dtype", "int64" } },
  -- before: accepted as true
  { "GPT with bias = \"no\"", function() return gpt({ bias = "no" }) end, { "GPT", "bias", "no" } },
  -- before: accepted as true
  { "GPT with tie_weights = 0", function() return gpt({ tie_weights = 0 }) end, { "GPT", "tie_weights", "0" } },
  -- before: the error named Linear
  { "GPT with hidden 2.5", function() return gpt({ hidden = 2.5 }) end, { "GPT", "hidden", "2.5" } },
  -- before: accepted as true
  { "GPT with causal = \"no\"", function() return gpt({ causal = "no" }) end, { "GPT", "causal", "no" } },
  { "GPT with a misspelt key", function() return gpt({ n_heads = 2 }) end, { "GPT", "n_heads", "valid" } },
  { "GPT with n_embd not divisible by n_head", function() return gpt({ n_head = 3 }) end,
    { "GPT", "not divisible", "3" } },
  { "GPT without n_embd", function() return gpt({ n_embd = false }) end, { "GPT", "n_embd" } },
  { "GPT on float ids", function() return gpt()(tc.zeros({ 1, 3 })) end, { "GPT", "float32" } },
  { "GPT on a sequence past its context", function() return gpt()(ids({ { 1, 2, 3, 4, 5 } })) end,
    { "GPT", "T = 5", "context_length 4" } },
  -- before: the misspelt option was ignored and no loss came back
  { "GPT forward with a misspelt option", function()
    return gpt()(ids({ { 1, 2 } }), { targetz = ids({ { 2, 3 } }) })
  end,
    { "GPT", "targetz", "valid" } },
  -- before: the targets were ignored
  { "GPT forward with targets and a cache", function()
    local model = gpt()
    return model(ids({ { 1 } }), { cache = model:new_cache(1), targets = ids({ { 2 } }) })
  end, { "GPT", "targets", "cache" } },
  { "GPT forward with targets of another shape", function()
    return gpt()(ids({ { 1, 2 } }), { targets = ids({ { 1 } }) })
  end, { "cross_entropy", "{1, 1}" } },
  { "GPT new_cache of 0 rows", function() return gpt():new_cache(0) end, { "new_cache", "batch_size", "0" } },
  { "load_state_dict without a key", function() nn.Linear(2, 2):load_state_dict({ weight = tc.zeros({ 2, 2 }) }) end,
    { "load_state_dict", "1 missing key: bias" } },
  { "load_state_dict with an extra key", function()
    local state = linear_state()
    state.extra = tc.zeros({ 1 })
    nn.Linear(2, 2):load_state_dict(state)
  end, { "load_state_dict", "1 unexpected key: extra" } },
  { "load_state_dict with a mis-shaped tensor", function()
    nn.Linear(2, 2):load_state_dict(linear_state(tc.zeros({ 2, 3 })))
  end, { "load_state_dict", "weight", "{2, 3}", "{2, 2}" } },
  { "load_state_dict with a string for a tensor", function()
    nn.Linear(2, 2):load_state_dict(linear_state("x"))
  end, { "load_state_dict", "weight", "string" } },
  -- before: the error was about a field of a closed tensor, without load_state_dict or the key
  { "load_state_dict with a closed tensor", function()
    local w = tc.zeros({ 2, 2 })
    w:free()
    nn.Linear(2, 2):load_state_dict(linear_state(w))
  end, { "load_state_dict", "weight", "closed" } },
  -- before: any value meant strict
  { "load_state_dict with strict = \"no\"", function()
    nn.Linear(2, 2):load_state_dict(linear_state(), { strict = "no" })
  end, { "load_state_dict", "strict", "no" } },
  -- before: the misspelt option was ignored
  { "load_state_dict with a misspelt option", function()
    nn.Linear(2, 2):load_state_dict(linear_state(), { strcit = false })
  end, { "load_state_dict", "strcit", "valid" } },
  { "load_state_dict of a number", function() nn.Linear(2, 2):load_state_dict(5) end, { "load_state_dict", "number" } },
  { "to an unknown target", function() nn.Linear(2, 2):to("tpu") end, { "Linear:to", "tpu" } },
  -- before: some tensors were converted, then requires_grad_ failed, leaving the model half converted
  { "to an integer dtype", function()
    converted = nn.Linear(2, 2)
    converted:to("int64")
  end, { "Linear:to", "int64", "float32 or float64", "weight" }, after = function()
    assert(converted.weight.dtype == "float32" and converted.bias.dtype == "float32",
      "the failed to() changed a tensor")
  end },
  -- before: "bad argument #2 to 'to'"
  { "to a number", function() nn.Linear(2, 2):to(5) end, { "Linear:to", "number" } },
  -- before: "attempt to index a nil value (local 'self')"
  { "parameters called with a dot", function() return nn.Linear(2, 2).parameters() end,
    { "Module:parameters", "nil" } },
  -- before: training became the string "yes"
  { "train with a string", function() nn.Linear(2, 2):train("yes") end, { "train", "yes" } },
  { "add_parameter of an int64 tensor", function()
    nn.Linear(2, 2):add_parameter("scale", tc.zeros({ 1 }, { dtype = "int64" }))
  end, { "add_parameter", "scale", "int64" } },
  { "add_module of a number", function() nn.Linear(2, 2):add_module("child", 5) end,
    { "add_module", "child", "number" } },
  { "a class named by a number", function() return nn.Module:extend(5) end, { "extend", "number" } },
  -- before: accepted; every weight was NaN
  { "init.normal with std NaN", function() return nn.init.normal(0 / 0) end, { "init.normal", "nan" } },
  { "init.reset with a number", function() nn.init.reset(tc.zeros({ 2 }), 5) end, { "init.reset", "number" } },
  -- before: accepted; NaN compared false and nothing was clipped
  { "clip_grad_norm with max_norm NaN", function() return nn.clip_grad_norm({}, 0 / 0) end,
    { "clip_grad_norm", "nan" } },
  -- before: "attempt to index a number value (local 'p')"
  { "clip_grad_norm of a list with a number", function() return nn.clip_grad_norm({ 5 }, 1) end,
    { "clip_grad_norm", "parameter 1", "number" } },
  -- before: the misspelt option was ignored
  { "cross_entropy with a misspelt option", function()
    return nn.cross_entropy(tc.randn({ 2, 3 }), ids({ 0, 1 }), { ignore = 1 })
  end, { "cross_entropy", "ignore", "ignore_index" } },
  { "cross_entropy with smoothing (not an option)", function()
    return nn.cross_entropy(tc.randn({ 2, 3 }), ids({ 0, 1 }), { smoothing = 0.1 })
  end, { "cross_entropy", "smoothing", "valid: ignore_index, label_smoothing, reduction, weight" } },
  { "tc.cross_entropy with label_smoothing", function()
    return tc.cross_entropy(tc.randn({ 2, 3 }), ids({ 0, 1 }), { label_smoothing = 0.1 })
  end, { "cross_entropy", "label_smoothing", "valid: ignore_index" } },
  { "GPT forward with target (a typo of targets)", function()
    return gpt()(ids({ { 1, 2 } }), { target = ids({ { 2, 3 } }) })
  end, { "GPT", "'target'", "targets" } },
  { "gpt2.from_hf_state with a misspelt config key", function()
    return require("tricycle.models.gpt2").from_hf_state({}, { n_heads = 2 })
  end, { "gpt2.from_hf_state", "n_heads", "n_head" } },
  { "gpt2.config_of with a misspelt config key", function()
    return require("tricycle.models.gpt2").config_of({}, { dropuot = 0.1 })
  end, { "gpt2.config_of", "dropuot", "dropout" } },
  { "gpt2.load with a misspelt config key", function()
    return require("tricycle.models.gpt2").load("/nonexistent/gpt2.safetensors", { eps_ = 1e-5 })
  end, { "gpt2.load", "eps_", "valid" } },
  { "mse_loss of different shapes", function() return nn.mse_loss(tc.ones({ 2 }), tc.ones({ 3 })) end,
    { "mse_loss", "{2}", "{3}" } },
  -- nn.Llama's config (Hugging Face's LlamaConfig names)
  { "Llama with a misspelt key", function() return llama({ num_attention_head = 2 }) end,
    { "Llama", "unknown option 'num_attention_head'", "num_attention_heads", "rope_theta" } },
  { "Llama without hidden_size", function() return llama({ hidden_size = false }) end,
    { "Llama", "hidden_size", "positive integer", "false" } },
  { "Llama with 3 k/v heads of 4 query heads", function() return llama({ num_key_value_heads = 3 }) end,
    { "Llama", "num_key_value_heads", "dividing num_attention_heads 4", "3" } },
  { "Llama with more k/v heads than query heads", function() return llama({ num_key_value_heads = 8 }) end,
    { "Llama", "num_key_value_heads", "8" } },
  { "Llama with hidden_size 10 over 4 heads", function() return llama({ hidden_size = 10 }) end,
    { "Llama", "hidden_size 10", "num_attention_heads 4" } },
  { "Llama with an odd head_dim", function() return llama({ head_dim = 3 }) end,
    { "Llama", "head_dim", "even", "3" } },
  { "Llama with rope_theta 0", function() return llama({ rope_theta = 0 }) end, { "Llama", "rope_theta", "0" } },
  { "Llama with rms_norm_eps NaN", function() return llama({ rms_norm_eps = 0 / 0 }) end,
    { "Llama", "rms_norm_eps", "nan" } },
  { "Llama with attention_bias \"yes\"", function() return llama({ attention_bias = "yes" }) end,
    { "Llama", "attention_bias", "boolean", "yes" } },
  { "Llama with dtype int32", function() return llama({ dtype = "int32" }) end, { "Llama", "dtype", "int32" } },
  { "Llama with a rope_scaling of another type", function()
    return llama({ rope_scaling = { rope_type = "yarn", factor = 2 } })
  end, { "Llama", "rope_scaling.rope_type", "llama3", "yarn" } },
  { "Llama with a misspelt rope_scaling key", function()
    return llama({ rope_scaling = { rope_type = "llama3", factr = 2 } })
  end, { "rope_scaling", "unknown option 'factr'", "low_freq_factor" } },
  { "Llama with high_freq_factor below low_freq_factor", function()
    return llama({ rope_scaling = { rope_type = "llama3", factor = 8, low_freq_factor = 4, high_freq_factor = 1,
      original_max_position_embeddings = 8 } })
  end, { "Llama", "high_freq_factor", "low_freq_factor 4", "1" } },
  { "Llama with rope_scaling factor -1", function()
    return llama({ rope_scaling = { rope_type = "llama3", factor = -1, low_freq_factor = 1, high_freq_factor = 4,
      original_max_position_embeddings = 8 } })
  end, { "Llama", "rope_scaling.factor", "-1" } },
  { "Llama forward of float ids", function() return llama()(tc.zeros({ 1, 2 })) end,
    { "Llama", "ids", "float32" } },
  { "Llama forward past max_position_embeddings", function() return llama()(ids({ { 1, 2, 3, 4, 5 } })) end,
    { "Llama", "T = 5", "max_position_embeddings 4" } },
  { "Llama forward with a misspelt option", function() return llama()(ids({ { 1 } }), { target = 1 }) end,
    { "Llama", "unknown option 'target'", "targets" } },
  { "SwiGLU with an unknown option", function() return nn.Llama.SwiGLU(4, 8, { bias = true }) end,
    { "SwiGLU", "bias" } },
  -- ---- losses (nn.functional) ----
  { "cross_entropy with reduction 'avg'", function()
    return nn.functional.cross_entropy(tc.zeros({ 2, 3 }), ids({ 0, 1 }), { reduction = "avg" })
  end, { "cross_entropy", "reduction", "avg" } },
  { "cross_entropy with a misspelt option", function()
    return nn.functional.cross_entropy(tc.zeros({ 2, 3 }), ids({ 0, 1 }), { label_smooth = 0.1 })
  end, { "cross_entropy", "unknown option 'label_smooth'", "label_smoothing" } },
  { "cross_entropy with label_smoothing 1.5", function()
    return nn.functional.cross_entropy(tc.zeros({ 2, 3 }), ids({ 0, 1 }), { label_smoothing = 1.5 })
  end, { "cross_entropy", "label_smoothing", "1.5" } },
  { "cross_entropy with a class weight of the wrong length", function()
    return nn.functional.cross_entropy(tc.zeros({ 2, 3 }), ids({ 0, 1 }), { weight = tc.ones({ 4 }) })
  end, { "cross_entropy", "weight", "{3}", "{4}" } },
  { "cross_entropy (weighted) with a target past the classes", function()
    return nn.functional.cross_entropy(tc.zeros({ 2, 3 }), ids({ 0, 3 }), { weight = tc.ones({ 3 }) })
  end, { "cross_entropy", "target 3", "3 classes" } },
  { "cross_entropy (sum) with a negative target", function()
    return nn.functional.cross_entropy(tc.zeros({ 2, 3 }), ids({ -2, 0 }), { reduction = "sum" })
  end, { "cross_entropy", "target -2" } },
  { "cross_entropy with float targets", function()
    return nn.functional.cross_entropy(tc.zeros({ 2, 3 }), tc.zeros({ 2 }), { reduction = "sum" })
  end, { "cross_entropy", "int64", "float32" } },
  { "nll_loss with targets of the wrong shape", function()
    return nn.functional.nll_loss(tc.zeros({ 2, 3 }), ids({ 0, 1, 2 }))
  end, { "nll_loss", "{3}", "{2}" } },
  { "nll_loss with a table for log_probs", function() return nn.functional.nll_loss({}, ids({ 0 })) end,
    { "nll_loss", "log_probs", "table" } },
  { "nll_loss with ignore_index 0.5", function()
    return nn.functional.nll_loss(tc.zeros({ 1, 3 }), ids({ 0 }), { ignore_index = 0.5 })
  end, { "nll_loss", "ignore_index", "0.5" } },
  { "binary_cross_entropy with probabilities above 1", function()
    return nn.functional.binary_cross_entropy(tc.tensor({ 0.5, 1.5 }), tc.tensor({ 0, 1 }))
  end, { "binary_cross_entropy", "[0, 1]", "1.5" } },
  { "binary_cross_entropy with shapes that differ", function()
    return nn.functional.binary_cross_entropy(tc.tensor({ 0.5, 0.5 }), tc.tensor({ 0, 1, 1 }))
  end, { "binary_cross_entropy", "{2}", "{3}" } },
  { "binary_cross_entropy_with_logits with pos_weight of the wrong length", function()
    return nn.functional.binary_cross_entropy_with_logits(tc.zeros({ 2, 3 }), tc.zeros({ 2, 3 }),
      { pos_weight = tc.ones({ 2 }) })
  end, { "binary_cross_entropy_with_logits", "pos_weight", "{3}", "{2}" } },
  { "binary_cross_entropy_with_logits with an unknown option", function()
    return nn.functional.binary_cross_entropy_with_logits(tc.zeros({ 2 }), tc.zeros({ 2 }), { posweight = 1 })
  end, { "binary_cross_entropy_with_logits", "posweight", "pos_weight" } },
  { "clip_grad_value with clip_value 0", function() nn.functional.clip_grad_value({}, 0) end,
    { "clip_grad_value", "clip_value", "0" } },
  { "clip_grad_value with a module", function() nn.functional.clip_grad_value(nn.Linear(2, 2), 1) end,
    { "clip_grad_value", "module" } },
  -- ---- activations, Flatten, containers, hooks, MultiheadAttention ----
  { "LeakyReLU with slope 'a'", function() return nn.LeakyReLU("a") end, { "LeakyReLU", "negative_slope", "a" } },
  { "ELU with alpha NaN", function() return nn.ELU(0 / 0) end, { "ELU", "alpha", "nan" } },
  { "tc.elu of an int64 tensor", function() return tc.elu(ids({ 1 })) end, { "elu", "int64" } },
  { "tc.leaky_relu with an infinite slope", function() return tc.leaky_relu(tc.ones({ 2 }), math.huge) end,
    { "leaky_relu", "negative_slope", "inf" } },
  { "Softmax with dim 0", function() return nn.Softmax(0) end, { "Softmax", "dim", "0" } },
  { "LogSoftmax over a dim the input lacks", function() return nn.LogSoftmax(3)(tc.ones({ 2, 2 })) end,
    { "log_softmax", "3" } },
  { "Flatten of start_dim 3 on a 2-D input", function() return nn.Flatten(3)(tc.ones({ 2, 2 })) end,
    { "Flatten", "start_dim 3", "{2, 2}" } },
  { "Flatten with start_dim after end_dim", function() return nn.Flatten(3, 2)(tc.ones({ 2, 2, 2 })) end,
    { "Flatten", "start_dim 3", "end_dim 2" } },
  { "ModuleList with a number in it", function() return nn.ModuleList({ nn.ReLU(), 3 }) end,
    { "ModuleList", "entry 2", "number" } },
  { "ModuleList:get past the end", function() return nn.ModuleList({ nn.ReLU() }):get(2) end,
    { "ModuleList:get", "index 2", "1 to 1" } },
  { "ModuleDict with a key that names a method", function() return nn.ModuleDict({ keys = nn.ReLU() }) end,
    { "ModuleDict", "keys", "taken" } },
  { "ModuleDict:set with a dotted name", function() return nn.ModuleDict():set("a.b", nn.ReLU()) end,
    { "ModuleDict:set", "a.b" } },
  { "register_forward_hook with a string", function() return nn.ReLU():register_forward_hook("f") end,
    { "register_forward_hook", "string" } },
  { "MultiheadAttention with embed_dim 6 over 4 heads", function() return nn.MultiheadAttention(6, 4) end,
    { "MultiheadAttention", "embed_dim 6", "num_heads 4" } },
  { "MultiheadAttention with an unknown option", function() return nn.MultiheadAttention(4, 2, { heads = 2 }) end,
    { "MultiheadAttention", "unknown option 'heads'", "batch_first" } },
  { "MultiheadAttention with a key of the wrong width", function()
    local mha = nn.MultiheadAttention(4, 2)
    return mha(tc.ones({ 3, 1, 4 }), tc.ones({ 2, 1, 5 }), tc.ones({ 2, 1, 4 }))
  end, { "MultiheadAttention", "key", "{2, 1, 5}", "4" } },
  { "MultiheadAttention with an attn_mask of the wrong shape", function()
    local mha = nn.MultiheadAttention(4, 2)
    return mha(tc.ones({ 3, 1, 4 }), tc.ones({ 2, 1, 4 }), tc.ones({ 2, 1, 4 }), { attn_mask = tc.zeros({ 2, 3 }) })
  end, { "MultiheadAttention", "attn_mask", "{2, 3}", "{3, 2}" } },
  { "MultiheadAttention with an int64 key_padding_mask", function()
    local mha = nn.MultiheadAttention(4, 2)
    return mha(tc.ones({ 3, 1, 4 }), tc.ones({ 2, 1, 4 }), tc.ones({ 2, 1, 4 }),
      { key_padding_mask = ids({ { 0, 1 } }) })
  end, { "MultiheadAttention", "key_padding_mask", "int64" } },
  { "MultiheadAttention with batch and key lengths that disagree", function()
    local mha = nn.MultiheadAttention(4, 2)
    return mha(tc.ones({ 3, 2, 4 }), tc.ones({ 2, 1, 4 }), tc.ones({ 2, 1, 4 }))
  end, { "MultiheadAttention", "{3, 2, 4}", "{2, 1, 4}" } },
}
