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
  Llama = require("tricycle.nn.llama"),
  DistributedDataParallel = require("tricycle.nn.distributed"),
  MultiheadAttention = require("tricycle.nn.attention"),
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
for name, class in pairs(require("tricycle.nn.conv")) do
  nn[name] = class
end

return nn
