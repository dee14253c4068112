--- tricycle.nn: modules (layers, transformer blocks, GPT) and loss functions,
-- written in Lua over the engine's fused ops (nn.GPT, nn.Llama).
--
--   local nn = require("tricycle.nn")
--   local model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 3))
--   local loss = nn.cross_entropy(model(x), labels)
local Module = require("tricycle.nn.module")
local layers = require("tricycle.nn.layers")
local transformer = require("tricycle.nn.transformer")
local functional = require("tricycle.nn.functional")

local nn = {
  Module = Module,
  GPT = require("tricycle.nn.gpt"),
  functional = functional,
  cross_entropy = functional.cross_entropy,
  mse_loss = functional.mse_loss,
  nll_loss = functional.nll_loss,
  binary_cross_entropy = functional.binary_cross_entropy,
  binary_cross_entropy_with_logits = functional.binary_cross_entropy_with_logits,
  clip_grad_norm = functional.clip_grad_norm,
  clip_grad_value = functional.clip_grad_value,
  init = {
    normal = layers.normal,
    uniform = layers.uniform,
    constant = layers.constant,
    reset = layers.reset,
    parameter = layers.parameter,
  },
}

for _, name in ipairs({ "Linear", "Embedding", "LayerNorm", "RMSNorm", "Dropout", "ReLU", "GELU", "SiLU", "Tanh",
  "Sigmoid", "Identity", "Sequential", "MLP", "LeakyReLU", "ELU", "Softmax", "LogSoftmax", "Flatten", "ModuleList",
  "ModuleDict" }) do
  nn[name] = layers[name]
end
for _, name in ipairs({ "MultiHeadSelfAttention", "FeedForward", "TransformerBlock" }) do
  nn[name] = transformer[name]
end

-- Loaded on first use, so that a program running a GPT keeps their code out
-- of memory: a class name that nn misses loads these and installs theirs.
local lazy_classes = {
  ["tricycle.nn.llama"] = "Llama",
  ["tricycle.nn.distributed"] = "DistributedDataParallel",
  ["tricycle.nn.attention"] = "MultiheadAttention",
  ["tricycle.nn.conv"] = false, -- a table of classes (Conv1d, Conv2d, the pools, BatchNorm1d/2d)
}
local lazy_loaded = false

local function load_lazy_classes()
  lazy_loaded = true
  for module_name, class_name in pairs(lazy_classes) do
    local loaded = require(module_name)
    if class_name then
      nn[class_name] = loaded
    else
      for name, class in pairs(loaded) do
        nn[name] = class
      end
    end
  end
end

return setmetatable(nn, {
  __index = function(_, key)
    if lazy_loaded then
      return nil
    end
    load_lazy_classes()
    return rawget(nn, key)
  end,
})
