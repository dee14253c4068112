--- Llama: a decoder-only transformer in the shape of Meta's Llama family
-- (and Qwen2 with attention_bias), configured with Hugging Face's
-- LlamaConfig names.
--
--   local model = nn.Llama{vocab_size = 32000, hidden_size = 512, intermediate_size = 1376,
--                          num_hidden_layers = 8, num_attention_heads = 8, num_key_value_heads = 2}
--   local logits, loss = model(ids, {targets = targets})
--
-- Token embeddings, no position embeddings: rotary embeddings (RoPE, Hugging
-- Face's rotate_half pairs) turn q and k of every layer. Pre-norm blocks of
-- RMSNorm, grouped-query attention (num_key_value_heads k/v heads shared by
-- the query heads, the fused attention op) and the SwiGLU feed-forward
-- down(silu(gate(x)) * up(x)), all without biases but for Qwen2's q, k, v
-- (attention_bias); a final RMSNorm and a head, tied to the embedding with
-- tie_word_embeddings. q, k and v come from one Linear (qkv_proj, rows q | k
-- | v), so the fused op reads them packed as it wants them; models.llama
-- splits and joins Hugging Face's q_proj, k_proj and v_proj.
local compat = require("tricycle.compat")
local core = require("tricycle.core")
local Module = require("tricycle.nn.module")
local layers = require("tricycle.nn.layers")
local check_options = require("tricycle.options").check_options
local decoder = require("tricycle.nn.decoder")

local no_grad = Module.no_grad

local Llama = Module:extend("Llama")

Llama.config_keys = { "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
  "num_key_value_heads", "head_dim", "rope_theta", "rope_scaling", "rms_norm_eps", "max_position_embeddings",
  "tie_word_embeddings", "attention_bias", "initializer_range", "dtype" }
local required = { "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads" }
local defaults = { rope_theta = 10000, rms_norm_eps = 1e-6, max_position_embeddings = 2048,
  tie_word_embeddings = false, attention_bias = false, initializer_range = 0.02, dtype = "float32" }
local rope_scaling_keys = { "rope_type", "factor", "low_freq_factor", "high_freq_factor",
  "original_max_position_embeddings" }

local function is_finite(x)
  return type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge
end

local function fail(field, expected, value, level)
  error(("Llama: option %s must be %s, got %s"):format(field, expected, tostring(value)), level + 1)
end

-- Llama 3's rope_scaling {rope_type = "llama3", factor, low_freq_factor,
-- high_freq_factor, original_max_position_embeddings}; its key "type" (older
-- configs) is read as rope_type.
local function check_rope_scaling(scaling, level)
  if type(scaling) ~= "table" then fail("rope_scaling", "a table {rope_type = \"llama3\", ...}", scaling, level + 1) end
  local copy = {}
  for key, value in pairs(scaling) do copy[key == "type" and "rope_type" or key] = value end
  check_options("Llama: rope_scaling", copy, rope_scaling_keys, level + 1)
  if copy.rope_type ~= "llama3" then
    fail("rope_scaling.rope_type", '"llama3" (the only scaling supported)', copy.rope_type, level + 1)
  end
  for _, key in ipairs({ "factor", "low_freq_factor", "high_freq_factor" }) do
    if not (is_finite(copy[key]) and copy[key] > 0) then
      fail("rope_scaling." .. key, "a number > 0", copy[key], level + 1)
    end
  end
  if copy.high_freq_factor <= copy.low_freq_factor then
    fail("rope_scaling.high_freq_factor", "greater than low_freq_factor " .. copy.low_freq_factor,
      copy.high_freq_factor, level + 1)
  end
  local original = copy.original_max_position_embeddings
  if not compat.is_integer(original) or original <= 0 then
    fail("rope_scaling.original_max_position_embeddings", "a positive integer", original, level + 1)
  end
  return copy
end

--- The full config of `options` (defaults filled in), every value checked.
function Llama.check_config(options, level)
  level = (level or 1) + 1
  if type(options) ~= "table" then
    error("Llama: expects a config table {vocab_size =, hidden_size =, intermediate_size =, num_hidden_layers =, "
      .. "num_attention_heads =, ...}", level)
  end
  check_options("Llama", options, Llama.config_keys, level)
  local config = {}
  for key, value in pairs(defaults) do config[key] = value end
  for key, value in pairs(options) do config[key] = value end
  for _, field in ipairs(required) do
    local value = config[field]
    if not compat.is_integer(value) or value <= 0 then fail(field, "a positive integer", value, level) end
  end
  local heads = config.num_attention_heads
  config.num_key_value_heads = config.num_key_value_heads or heads
  local kv = config.num_key_value_heads
  if not compat.is_integer(kv) or kv <= 0 or heads % kv ~= 0 then
    fail("num_key_value_heads", ("a positive integer dividing num_attention_heads %d"):format(heads), kv, level)
  end
  if config.head_dim == nil then
    if config.hidden_size % heads ~= 0 then
      error(("Llama: hidden_size %d is not divisible by num_attention_heads %d (or give head_dim)"):format(
        config.hidden_size, heads), level)
    end
    config.head_dim = compat.idiv(config.hidden_size, heads)
  end
  local head_dim = config.head_dim
  if not compat.is_integer(head_dim) or head_dim <= 0 or head_dim % 2 ~= 0 then
    fail("head_dim", "a positive even integer (RoPE turns pairs)", head_dim, level)
  end
  local context = config.max_position_embeddings
  if not compat.is_integer(context) or context <= 0 then
    fail("max_position_embeddings", "a positive integer", context, level)
  end
  if not (is_finite(config.rope_theta) and config.rope_theta > 0) then
    fail("rope_theta", "a finite number > 0", config.rope_theta, level)
  end
  if not (is_finite(config.rms_norm_eps) and config.rms_norm_eps > 0) then
    fail("rms_norm_eps", "a finite number > 0", config.rms_norm_eps, level)
  end
  if not (is_finite(config.initializer_range) and config.initializer_range >= 0) then
    fail("initializer_range", "a finite number >= 0", config.initializer_range, level)
  end
  for _, field in ipairs({ "tie_word_embeddings", "attention_bias" }) do
    if type(config[field]) ~= "boolean" then fail(field, "a boolean", config[field], level) end
  end
  local dtype = config.dtype
  local floating = { float32 = true, float64 = true, bfloat16 = true, float16 = true }
  if not floating[dtype] then fail("dtype", "float32 or float64, bfloat16 or float16", dtype, level) end
  if config.rope_scaling ~= nil then config.rope_scaling = check_rope_scaling(config.rope_scaling, level) end
  return config
end

-- ---------------------------------------------------------------- RoPE

-- Inverse frequencies of the pairs of a head, Llama 3's scaling applied:
-- low frequencies (long wavelengths) divided by factor, high ones kept,
-- those between blended.
local function inverse_frequencies(config)
  local D, scaling = config.head_dim, config.rope_scaling
  local result = {}
  for i = 0, compat.idiv(D, 2) - 1 do
    local inverse = 1 / config.rope_theta ^ (2 * i / D)
    if scaling then
      local original = scaling.original_max_position_embeddings
      local wavelength = 2 * math.pi / inverse
      local low_wavelength, high_wavelength = original / scaling.low_freq_factor, original / scaling.high_freq_factor
      if wavelength > low_wavelength then
        inverse = inverse / scaling.factor
      elseif wavelength >= high_wavelength then
        local smooth = (original / wavelength - scaling.low_freq_factor)
          / (scaling.high_freq_factor - scaling.low_freq_factor)
        inverse = (1 - smooth) * inverse / scaling.factor + smooth * inverse
      end
    end
    result[i + 1] = inverse
  end
  return result
end

-- RoPE over x [B, T, H, D] at positions start .. start+T-1: the fused
-- tc.rope, or, with rope_scaling, x cos + rotate_half(x) sin from tensor ops
-- with the scaled frequencies.
local function rotate(self, x, start)
  local T, D = x:size(2), x:size(4)
  local positions = core.arange(start, start + T)
  if x.device ~= "cpu" then positions = positions:to(x.device) end
  local config = self.config
  if not config.rope_scaling then
    return core.rope(x, positions, { base = config.rope_theta })
  end
  local inverse = core.tensor(self.inverse_frequencies, { dtype = "float64" })
  local angles = positions:to("float64"):reshape({ T, 1 }) * inverse:reshape({ 1, -1 })
  angles = core.cat({ angles, angles }, 2):reshape({ 1, T, 1, D }):to(x.dtype)
  if x.device ~= "cpu" then angles = angles:to(x.device) end
  local half = compat.idiv(D, 2)
  local rotated = core.cat({ -x:narrow(4, half + 1, half), x:narrow(4, 1, half) }, 4)
  return x * angles:cos() + rotated * angles:sin()
end

-- ---------------------------------------------------------------- attention

local LlamaAttention = Module:extend("LlamaAttention")
Llama.Attention = LlamaAttention

function LlamaAttention:init(config)
  rawset(self, "config", config)
  local hd, H, KV = config.head_dim, config.num_attention_heads, config.num_key_value_heads
  self.qkv_proj = layers.Linear(config.hidden_size, (H + 2 * KV) * hd,
    { bias = config.attention_bias, dtype = config.dtype })
  self.o_proj = layers.Linear(H * hd, config.hidden_size, { bias = false, dtype = config.dtype })
  if config.rope_scaling then rawset(self, "inverse_frequencies", inverse_frequencies(config)) end
end

--- x [B, T, C] -> [B, T, C]; with `cache` ({k =, v =} of [B, KV, context,
-- hd]) the new keys and values go into it at `start`.
function LlamaAttention:forward(x, cache, start)
  local c = self.config
  local B, T = x:size(1), x:size(2)
  local H, KV, hd = c.num_attention_heads, c.num_key_value_heads, c.head_dim
  local heads = self.qkv_proj(x):reshape({ B, T, H + 2 * KV, hd })
  local qk = rotate(self, heads:narrow(3, 1, H + KV), start)
  local qkv = core.cat({ qk, heads:narrow(3, H + KV + 1, KV) }, 3):reshape({ B, T, (H + 2 * KV) * hd })
  local y
  if cache then
    y = core.attention_cached(qkv, cache.k, cache.v, start, H, { n_kv_head = KV })
  else
    y = core.attention(qkv, H, { n_kv_head = KV })
  end
  return self.o_proj(y)
end

-- ---------------------------------------------------------------- feed-forward

--- SwiGLU: down_proj(silu(gate_proj(x)) * up_proj(x)), no biases.
local SwiGLU = Module:extend("SwiGLU")
Llama.SwiGLU = SwiGLU

function SwiGLU:init(hidden_size, intermediate_size, options)
  options = layers.check_layer_options("SwiGLU", options, { "dtype" }, 2)
  local linear = { bias = false, dtype = options.dtype }
  self.gate_proj = layers.Linear(hidden_size, intermediate_size, linear)
  self.up_proj = layers.Linear(hidden_size, intermediate_size, linear)
  self.down_proj = layers.Linear(intermediate_size, hidden_size, linear)
end

function SwiGLU:forward(x)
  return self.down_proj(self.gate_proj(x):silu() * self.up_proj(x))
end

-- ---------------------------------------------------------------- block

local LlamaBlock = Module:extend("LlamaBlock")
Llama.Block = LlamaBlock

function LlamaBlock:init(config)
  local norm = { eps = config.rms_norm_eps, dtype = config.dtype }
  self.input_layernorm = layers.RMSNorm(config.hidden_size, norm)
  self.self_attn = LlamaAttention(config)
  self.post_attention_layernorm = layers.RMSNorm(config.hidden_size, norm)
  self.mlp = SwiGLU(config.hidden_size, config.intermediate_size, { dtype = config.dtype })
end

function LlamaBlock:forward(x, cache, start)
  x = x + self.self_attn(self.input_layernorm(x), cache, start)
  return x + self.mlp(self.post_attention_layernorm(x))
end

-- ---------------------------------------------------------------- model

function Llama:init(options)
  local config = Llama.check_config(options, 3)
  rawset(self, "config", config)
  self.embed_tokens = layers.Embedding(config.vocab_size, config.hidden_size, { dtype = config.dtype })
  self.layers = layers.Sequential()
  for _ = 1, config.num_hidden_layers do
    self.layers:append(LlamaBlock(config))
  end
  self.norm = layers.RMSNorm(config.hidden_size, { eps = config.rms_norm_eps, dtype = config.dtype })
  if not config.tie_word_embeddings then
    self.lm_head = layers.Linear(config.hidden_size, config.vocab_size, { bias = false, dtype = config.dtype })
  end
  self:init_weights()
end

--- Hugging Face's initialisation: normal(0, initializer_range) weights, zero
-- biases, norms at 1.
function Llama:init_weights()
  local normal, zero = layers.normal(self.config.initializer_range), layers.constant(0)
  for _, module in ipairs(self:modules()) do
    if getmetatable(module) == layers.Linear then
      layers.reset(module.weight, normal)
      if module.bias then layers.reset(module.bias, zero) end
    elseif getmetatable(module) == layers.Embedding then
      layers.reset(module.weight, normal)
    end
  end
end

--- The output weight [V, C]: the token embedding when tied.
function Llama:head_weight()
  return self.lm_head and self.lm_head.weight or self.embed_tokens.weight
end

--- The context length generation works within: max_position_embeddings.
function Llama:context_length()
  return self.config.max_position_embeddings
end

local function cache_shape(config, batch, capacity)
  return { batch, config.num_key_value_heads, capacity, config.head_dim }
end

-- A cache from new_cache that fits this model and `batch` rows; returns its
-- position.
local function check_cache(self, cache, batch)
  local c = self.config
  local position = decoder.check_cache_table("Llama", cache, c.num_hidden_layers, 5)
  local capacity = cache.capacity
  if not compat.is_integer(capacity) or capacity <= 0 then
    error(("Llama: cache.capacity must be a positive integer, got %s; make the cache with model:new_cache"):format(
      tostring(capacity)), 5)
  end
  decoder.check_cache_tensors("Llama", cache, cache_shape(c, batch, capacity),
    "{batch, num_key_value_heads, capacity, head_dim}", self.embed_tokens.weight, 5)
  return position
end

local function check_ids(self, ids, cache)
  local shape = decoder.check_ids("Llama", ids, 4)
  local T, context = shape[2], self.config.max_position_embeddings
  local start = cache and check_cache(self, cache, shape[1]) or 0
  if cache and start + T > cache.capacity then
    error(("Llama: T = %d new positions after %d cached exceed the cache's capacity %d"):format(T, start,
      cache.capacity), 4)
  end
  if start + T > context then
    error(("Llama: sequence length T = %d exceeds max_position_embeddings %d"):format(T, context), 4)
  end
  return T, start
end

--- forward(ids [B, T], {targets = [B, T] ids, ignore_index = -100, cache =
-- model:new_cache(B)}) -> logits [B, T, V], and the mean cross-entropy when
-- targets are given. With a cache, runs without recording gradients and
-- advances the cache.
function Llama:forward(ids, options)
  if options ~= nil and type(options) ~= "table" then
    error(("Llama: options must be a table {targets =, ignore_index =, cache =}, got %s"):format(type(options)), 2)
  end
  options = check_options("Llama", options, { "targets", "ignore_index", "cache" }, 2) or {}
  local cache = options.cache
  if cache ~= nil and options.targets ~= nil then
    error("Llama: targets cannot be given with a cache (a cached forward records no graph to train)", 2)
  end
  local T, start = check_ids(self, ids, cache)
  if cache then
    return no_grad(function()
      local logits = self:run(ids, start, cache)
      cache.position = start + T
      return logits
    end)
  end
  local logits = self:run(ids, 0, nil)
  if options.targets ~= nil then
    return logits, core.cross_entropy(logits, options.targets, { ignore_index = options.ignore_index or -100 })
  end
  return logits
end

function Llama:run(ids, start, cache)
  local x = self.embed_tokens(ids)
  if decoder.is_16bit(x) then
    x = x:float()
  end
  for i = 1, self.layers.length do
    x = self.layers:get(i)(x, cache and cache.layers[i], start)
  end
  return core.linear(self.norm(x), self:head_weight())
end

--- A key/value cache for incremental decoding: per layer k and v of
-- [batch_size, num_key_value_heads, capacity, head_dim], and the number of
-- positions filled so far. capacity defaults to max_position_embeddings
-- (large for released models: give what the generation needs).
function Llama:new_cache(batch_size, capacity)
  if not compat.is_integer(batch_size) or batch_size <= 0 then
    error(("Llama:new_cache: batch_size must be a positive integer, got %s"):format(tostring(batch_size)), 2)
  end
  local c, weight = self.config, self.embed_tokens.weight
  capacity = capacity or c.max_position_embeddings
  if not compat.is_integer(capacity) or capacity <= 0 or capacity > c.max_position_embeddings then
    error(("Llama:new_cache: capacity must be an integer in [1, max_position_embeddings %d], got %s"):format(
      c.max_position_embeddings, tostring(capacity)), 2)
  end
  local cache = { position = 0, batch_size = batch_size, capacity = capacity, layers = {} }
  for i = 1, c.num_hidden_layers do
    local k = core.zeros(cache_shape(c, batch_size, capacity), { dtype = decoder.activation_dtype(weight) })
    local v = core.zeros(cache_shape(c, batch_size, capacity), { dtype = decoder.activation_dtype(weight) })
    if weight.device ~= "cpu" then k, v = k:to(weight.device), v:to(weight.device) end
    cache.layers[i] = { k = k, v = v }
  end
  return cache
end

function Llama:extra_repr()
  local c = self.config
  return ("vocab_size=%d, hidden_size=%d, intermediate_size=%d, num_hidden_layers=%d, num_attention_heads=%d, "
    .. "num_key_value_heads=%d"):format(c.vocab_size, c.hidden_size, c.intermediate_size, c.num_hidden_layers,
    c.num_attention_heads, c.num_key_value_heads)
end

return Llama
