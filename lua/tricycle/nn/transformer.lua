--- Transformer parts: causal self-attention, the GPT feed-forward block and
-- the pre-norm residual block. Names of children follow GPT-2's (c_attn,
-- c_proj, c_fc, ln_1, ln_2) so checkpoints map one to one.
local compat = require("tricycle.compat")
local core = require("tricycle.core")
local Module = require("tricycle.nn.module")
local layers = require("tricycle.nn.layers")
local check_options = require("tricycle.options").check_options

local shape_string = Module.shape_string

local transformer = {}

--- The keys of a transformer config. One config table is handed down from
-- GPT to its blocks and their parts, so each part accepts all of them
-- (GPT's own keys included) and rejects any other.
transformer.config_keys = { "vocab_size", "context_length", "n_layer", "n_head", "n_embd", "hidden", "bias",
  "dropout", "gelu", "causal", "eps", "dtype", "tie_weights" }

local function is_finite(x)
  return type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge
end

--- Checks the optional keys of a transformer config, each of its type and
-- range, so that a bad value is reported under the name of the module the
-- user built (not of a layer deep inside it), or does not pass silently
-- (dropout = NaN, bias = "no"). `level` as for error().
function transformer.check_config_values(name, config, level)
  local function fail(field, expected)
    error(("%s: option %s must be %s, got %s"):format(name, field, expected, tostring(config[field])), level + 1)
  end
  local hidden = config.hidden
  if hidden ~= nil and (not compat.is_integer(hidden) or hidden <= 0) then fail("hidden", "a positive integer") end
  for _, field in ipairs({ "bias", "causal", "tie_weights" }) do
    if config[field] ~= nil and type(config[field]) ~= "boolean" then fail(field, "a boolean") end
  end
  local dropout = config.dropout
  if dropout ~= nil and not (is_finite(dropout) and dropout >= 0 and dropout < 1) then
    fail("dropout", "a number in [0, 1)")
  end
  if config.gelu ~= nil and config.gelu ~= "tanh" and config.gelu ~= "none" then fail("gelu", '"tanh" or "none"') end
  if config.eps ~= nil and not (is_finite(config.eps) and config.eps > 0) then fail("eps", "a finite number > 0") end
  local dtype = config.dtype
  local floating = { float32 = true, float64 = true, float = true, double = true, bfloat16 = true, bf16 = true,
    float16 = true, half = true }
  if dtype ~= nil and not floating[dtype] then
    fail("dtype", "float32 or float64, bfloat16 or float16")
  end
end

local function check_config(name, config, fields)
  if type(config) ~= "table" then
    error(("%s: expects a table of options {%s}"):format(name, table.concat(fields, ", ")), 4)
  end
  check_options(name, config, transformer.config_keys, 4)
  for _, field in ipairs(fields) do
    local value = config[field]
    if not compat.is_integer(value) or value <= 0 then
      error(("%s: option %s must be a positive integer, got %s"):format(name, field, tostring(value)), 4)
    end
  end
  transformer.check_config_values(name, config, 4)
end

-- ---------------------------------------------------------------- attention

--- MultiHeadSelfAttention{n_embd =, n_head =, bias = true, dropout = 0,
-- causal = true, dtype =}: one Linear to q|k|v (3C), the fused attention op,
-- then the output projection. Dropout applies to the projected output (the
-- fused op has no attention-weight dropout).
local MultiHeadSelfAttention = Module:extend("MultiHeadSelfAttention")
transformer.MultiHeadSelfAttention = MultiHeadSelfAttention

function MultiHeadSelfAttention:init(config)
  check_config("MultiHeadSelfAttention", config, { "n_embd", "n_head" })
  if config.n_embd % config.n_head ~= 0 then
    error(("MultiHeadSelfAttention: n_embd %d is not divisible by n_head %d"):format(config.n_embd, config.n_head), 3)
  end
  self.n_embd, self.n_head = config.n_embd, config.n_head
  self.head_dim = compat.idiv(config.n_embd, config.n_head)
  self.causal = config.causal ~= false
  local options = { bias = config.bias, dtype = config.dtype }
  self.c_attn = layers.Linear(config.n_embd, 3 * config.n_embd, options)
  self.c_proj = layers.Linear(config.n_embd, config.n_embd, options)
  self.resid_dropout = layers.Dropout(config.dropout or 0)
end

--- x [B, T, C] -> [B, T, C]. With `cache` (one layer's {k =, v =} of
-- [B, H, context, D]) and `position` (how many positions it already holds),
-- the new keys and values are written into the cache and the new queries
-- attend to every cached position (causally within the new block).
function MultiHeadSelfAttention:forward(x, cache, position)
  if getmetatable(x) ~= core.Tensor then
    error(("MultiHeadSelfAttention: input must be a tensor, got %s"):format(type(x)), 2)
  end
  local shape = x.shape
  if #shape ~= 3 or shape[3] ~= self.n_embd then
    error(("MultiHeadSelfAttention: input must be [B, T, %d], got %s"):format(self.n_embd, shape_string(shape)), 2)
  end
  local qkv = self.c_attn(x)
  local y
  if cache then
    y = self:attend_cached(qkv, cache, position or 0)
  else
    y = core.attention(qkv, self.n_head, { causal = self.causal })
  end
  qkv:free()
  local projected = self.c_proj(y)
  y:free()
  return self.resid_dropout(projected)
end

function MultiHeadSelfAttention:attend_cached(qkv, cache, position)
  local B, T = qkv:size(1), qkv:size(2)
  if type(cache) ~= "table" or getmetatable(cache.k) ~= core.Tensor or getmetatable(cache.v) ~= core.Tensor then
    error("MultiHeadSelfAttention: the cache must be a table {k =, v =} of tensors [B, n_head, capacity, head_dim]", 3)
  end
  if not compat.is_integer(position) or position < 0 then
    error(("MultiHeadSelfAttention: position must be a non-negative integer (the positions already cached), got %s")
      :format(tostring(position)), 3)
  end
  local k = cache.k
  if k:size(1) ~= B then
    error(("MultiHeadSelfAttention: the cache holds batch size %d, the input has %d"):format(k:size(1), B), 3)
  end
  local capacity = k:size(3)
  if position + T > capacity then
    error(("MultiHeadSelfAttention: the cache holds %d positions; %d cached + %d new do not fit"):format(capacity,
      position, T), 3)
  end
  -- One op: the new keys and values go into the cache in place, and the
  -- queries attend to the cached prefix where it lies.
  return core.attention_cached(qkv, k, cache.v, position, self.n_head, { causal = self.causal })
end

-- ---------------------------------------------------------------- feed-forward

--- FeedForward{n_embd =, hidden = 4 * n_embd, bias = true, dropout = 0,
-- gelu = "tanh" | "none", dtype =}: c_fc, GELU, c_proj, dropout.
local FeedForward = Module:extend("FeedForward")
transformer.FeedForward = FeedForward

function FeedForward:init(config)
  check_config("FeedForward", config, { "n_embd" })
  local hidden = config.hidden or 4 * config.n_embd
  local options = { bias = config.bias, dtype = config.dtype }
  self.c_fc = layers.Linear(config.n_embd, hidden, options)
  self.gelu = layers.GELU({ approximate = config.gelu or "tanh" })
  self.c_proj = layers.Linear(hidden, config.n_embd, options)
  self.dropout = layers.Dropout(config.dropout or 0)
end

function FeedForward:forward(x)
  local h
  if self.gelu.approximate == "tanh" and getmetatable(self.c_fc) == layers.Linear then
    h = core.linear_gelu(x, self.c_fc.weight, self.c_fc.bias) -- one op for GEMM, bias and GELU
  else
    local widened = self.c_fc(x)
    h = self.gelu(widened)
    widened:free()
  end
  local projected = self.c_proj(h)
  h:free() -- the widest intermediate (4 x n_embd): reused by the next block, not left to the collector
  return self.dropout(projected)
end

-- ---------------------------------------------------------------- block

--- TransformerBlock{n_embd =, n_head =, bias =, dropout =, gelu =, causal =,
-- dtype =}, pre-norm: x + attn(ln_1(x)), then x + mlp(ln_2(x)).
local TransformerBlock = Module:extend("TransformerBlock")
transformer.TransformerBlock = TransformerBlock

function TransformerBlock:init(config)
  check_config("TransformerBlock", config, { "n_embd", "n_head" })
  local norm = { bias = config.bias, dtype = config.dtype, eps = config.eps }
  self.ln_1 = layers.LayerNorm(config.n_embd, norm)
  self.attn = MultiHeadSelfAttention(config)
  self.ln_2 = layers.LayerNorm(config.n_embd, norm)
  self.mlp = FeedForward(config)
end

-- The intermediates are let go as soon as they are used (t:free()): a graph
-- being recorded holds what its backward needs, and without one (inference)
-- their memory is reused at once instead of waiting for the collector.
function TransformerBlock:forward(x, cache, position)
  local normed = self.ln_1(x)
  local attended = self.attn(normed, cache, position)
  normed:free()
  local mid = x + attended
  attended:free()
  normed = self.ln_2(mid)
  local fed = self.mlp(normed)
  normed:free()
  local out = mid + fed
  mid:free()
  fed:free()
  return out
end

return transformer
