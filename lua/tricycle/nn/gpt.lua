--- GPT: a decoder-only transformer in GPT-2's shape.
--
--   local model = nn.GPT{vocab_size = 50257, context_length = 1024, n_layer = 12,
--                        n_head = 12, n_embd = 768}
--   local logits, loss = model(ids, {targets = targets})
--
-- Token and learned position embeddings, pre-norm blocks, a final LayerNorm
-- and a head that (with tie_weights, the default) reuses the token embedding
-- matrix, so its gradient is the sum of both uses. Initialised like GPT-2:
-- normal(0, 0.02) weights, zero biases, and normal(0, 0.02 / sqrt(2 n_layer))
-- for the two residual projections of each block.
local compat = require("tricycle.compat")
local core = require("tricycle.core")
local Module = require("tricycle.nn.module")
local layers = require("tricycle.nn.layers")
local transformer = require("tricycle.nn.transformer")
local decoder = require("tricycle.nn.decoder")
local check_options = require("tricycle.options").check_options

local no_grad = Module.no_grad

local GPT = Module:extend("GPT")

local defaults = { dropout = 0, bias = true, tie_weights = true, gelu = "tanh", eps = 1e-5, dtype = "float32" }
local required = { "vocab_size", "context_length", "n_layer", "n_head", "n_embd" }

function GPT:init(options)
  if type(options) ~= "table" then
    error("GPT: expects a config table {vocab_size =, context_length =, n_layer =, n_head =, n_embd =}", 3)
  end
  check_options("GPT", options, transformer.config_keys, 3)
  local config = {}
  for key, value in pairs(defaults) do
    config[key] = value
  end
  for key, value in pairs(options) do
    config[key] = value
  end
  for _, field in ipairs(required) do
    local value = config[field]
    if not compat.is_integer(value) or value <= 0 then
      error(("GPT: config.%s must be a positive integer, got %s"):format(field, tostring(value)), 3)
    end
  end
  if config.n_embd % config.n_head ~= 0 then
    error(("GPT: n_embd %d is not divisible by n_head %d"):format(config.n_embd, config.n_head), 3)
  end
  transformer.check_config_values("GPT", config, 3)
  rawset(self, "config", config)
  local dtype = config.dtype
  self.wte = layers.Embedding(config.vocab_size, config.n_embd, { dtype = dtype })
  self.wpe = layers.Embedding(config.context_length, config.n_embd, { dtype = dtype })
  self.drop = layers.Dropout(config.dropout)
  self.h = layers.Sequential()
  for _ = 1, config.n_layer do
    self.h:append(transformer.TransformerBlock(config))
  end
  self.ln_f = layers.LayerNorm(config.n_embd, { bias = config.bias, dtype = dtype, eps = config.eps })
  if not config.tie_weights then
    self.lm_head = layers.Linear(config.n_embd, config.vocab_size, { bias = false, dtype = dtype })
  end
  self:init_weights()
end

--- GPT-2 initialisation (see the top of this file).
function GPT:init_weights()
  local normal = layers.normal(0.02)
  local residual = layers.normal(0.02 / math.sqrt(2 * self.config.n_layer))
  local zero = layers.constant(0)
  for _, module in ipairs(self:modules()) do
    if getmetatable(module) == layers.Linear then
      layers.reset(module.weight, normal)
      if module.bias then
        layers.reset(module.bias, zero)
      end
    elseif getmetatable(module) == layers.Embedding then
      layers.reset(module.weight, normal)
    end
  end
  for i = 1, self.h.length do
    local block = self.h:get(i)
    layers.reset(block.attn.c_proj.weight, residual)
    layers.reset(block.mlp.c_proj.weight, residual)
  end
end

--- The output weight [V, C]: the token embedding when tied.
function GPT:head_weight()
  return self.lm_head and self.lm_head.weight or self.wte.weight
end

-- A cache from new_cache that fits this model and `batch` rows; returns its
-- position.
local function check_cache(self, cache, batch)
  local c = self.config
  local position = decoder.check_cache_table("GPT", cache, c.n_layer, 5)
  local want = { batch, c.n_head, c.context_length, compat.idiv(c.n_embd, c.n_head) }
  decoder.check_cache_tensors("GPT", cache, want, "{batch, n_head, context_length, head_dim}", self.wte.weight, 5)
  return position
end

local function check_ids(self, ids, cache)
  local shape = decoder.check_ids("GPT", ids, 4)
  local T, context = shape[2], self.config.context_length
  local start = cache and check_cache(self, cache, shape[1]) or 0
  if start + T > context then
    if cache then
      error(("GPT: T = %d new positions after %d cached exceed context_length %d"):format(T, start, context), 4)
    end
    error(("GPT: sequence length T = %d exceeds context_length %d"):format(T, context), 4)
  end
  return shape[1], T, start
end

--- forward(ids [B, T], {targets = [B, T] ids, cache = model:new_cache(B)})
-- -> logits [B, T, V], and the mean cross-entropy when targets are given.
-- With a cache, runs without recording gradients and advances the cache.
function GPT:forward(ids, options)
  if options ~= nil and type(options) ~= "table" then
    error(("GPT: options must be a table {targets =, ignore_index =, cache =}, got %s"):format(type(options)), 2)
  end
  options = check_options("GPT", options, { "targets", "ignore_index", "cache" }, 2) or {}
  local cache = options.cache
  if cache ~= nil and options.targets ~= nil then
    error("GPT: targets cannot be given with a cache (a cached forward records no graph to train)", 2)
  end
  local _, T, start = check_ids(self, ids, cache)
  if cache then
    return no_grad(function()
      local logits = self:run(ids, T, start, cache)
      cache.position = start + T
      return logits
    end)
  end
  local logits = self:run(ids, T, 0, nil)
  if options.targets ~= nil then
    local loss = core.cross_entropy(logits, options.targets, { ignore_index = options.ignore_index or -100 })
    return logits, loss
  end
  return logits
end

function GPT:run(ids, T, start, cache)
  local positions = core.arange(start, start + T)
  if ids.device ~= "cpu" then
    positions = positions:to(ids.device)
  end
  local tokens, places = self.wte(ids), self.wpe(positions)
  positions:free()
  local x = self.drop(tokens + places)
  tokens:free()
  places:free()
  if decoder.is_16bit(x) then
    local wide = x:float()
    x:free()
    x = wide
  end
  for i = 1, self.h.length do
    local next_x = self.h:get(i)(x, cache and cache.layers[i], start)
    x:free() -- each block's output is new (TransformerBlock:forward)
    x = next_x
  end
  local normed = self.ln_f(x)
  x:free()
  local logits = core.linear(normed, self:head_weight()) -- [B, T, V], the head weight read in place
  normed:free()
  return logits
end

--- A key/value cache for incremental decoding: per layer k and v of
-- [batch_size, n_head, context_length, head_dim], and the number of
-- positions filled so far.
function GPT:new_cache(batch_size)
  if not compat.is_integer(batch_size) or batch_size <= 0 then
    error(("GPT:new_cache: batch_size must be a positive integer, got %s"):format(tostring(batch_size)), 2)
  end
  local c = self.config
  local weight = self.wte.weight
  local shape = { batch_size, c.n_head, c.context_length, compat.idiv(c.n_embd, c.n_head) }
  local cache = { position = 0, batch_size = batch_size, layers = {} }
  for i = 1, c.n_layer do
    local k = core.zeros(shape, { dtype = decoder.activation_dtype(weight) })
    local v = core.zeros(shape, { dtype = decoder.activation_dtype(weight) })
    if weight.device ~= "cpu" then
      k, v = k:to(weight.device), v:to(weight.device)
    end
    cache.layers[i] = { k = k, v = v }
  end
  return cache
end

function GPT:extra_repr()
  local c = self.config
  return ("vocab_size=%d, context_length=%d, n_layer=%d, n_head=%d, n_embd=%d"):format(c.vocab_size,
    c.context_length, c.n_layer, c.n_head, c.n_embd)
end

return GPT
