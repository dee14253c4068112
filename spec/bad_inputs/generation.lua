-- Bad inputs: generation (tc.generate, its sampling rules, tc.sample_logits,
-- the key/value caches of nn.GPT and nn.Llama and tc.attention_cached). See
-- spec/bad_inputs_spec.lua for the format.
local wide = require("helpers.wide")
local compat = require("tricycle.compat")
local tc = require("tricycle")
local nn = require("tricycle.nn")

local shared_model
local function model()
  if not shared_model then
    tc.manual_seed(1)
    shared_model = nn.GPT({ vocab_size = 10, context_length = 8, n_layer = 2, n_head = 2, n_embd = 8 })
  end
  return shared_model
end

local shared_llama
local function llama_model()
  if not shared_llama then
    tc.manual_seed(1)
    shared_llama = nn.Llama({ vocab_size = 10, hidden_size = 8, intermediate_size = 12, num_hidden_layers = 1,
      num_attention_heads = 2, num_key_value_heads = 1, max_position_embeddings = 8 })
  end
  return shared_llama
end

local function generate(options, prompt)
  return tc.generate(model(), prompt or { 1, 2 }, options)
end

local function ids(rows)
  return tc.tensor(rows, { dtype = "int64" })
end

-- A fresh cache with `change` applied to it, run for one token.
local function cached_forward(change)
  local cache = model():new_cache(1)
  change(cache)
  return model()(ids({ { 1 } }), { cache = cache })
end

-- tc.attention_cached on caches of 8 positions, two heads of size 2.
local function attention(position, k_shape, v_shape)
  local qkv = tc.randn({ 1, 2, 12 })
  local k, v = tc.zeros(k_shape or { 1, 2, 8, 2 }), tc.zeros(v_shape or { 1, 2, 8, 2 })
  return tc.attention_cached(qkv, k, v, position, 2)
end

local logits = tc.tensor({ 1, 2, 3 })

return {
  -- before: accepted; every draw fell on the last candidate
  { "generate with temperature NaN", function() return generate({ temperature = 0 / 0 }) end,
    { "generate:", "temperature", "nan" } },
  -- before: accepted
  { "generate with temperature infinite", function() return generate({ temperature = math.huge }) end,
    { "generate:", "temperature", "inf" } },
  { "generate with temperature -1", function() return generate({ temperature = -1 }) end,
    { "generate:", "temperature", "-1" } },
  { "generate with temperature a string", function() return generate({ temperature = "hot" }) end,
    { "generate:", "temperature", "hot" } },
  -- before: accepted; NaN passed the range test
  { "generate with top_p NaN", function() return generate({ top_p = 0 / 0 }) end, { "generate:", "top_p", "nan" } },
  { "generate with top_p 0", function() return generate({ top_p = 0 }) end, { "generate:", "top_p", "0" } },
  { "generate with top_p 1.5", function() return generate({ top_p = 1.5 }) end, { "generate:", "top_p", "1.5" } },
  { "generate with top_k -1", function() return generate({ top_k = -1 }) end, { "generate:", "top_k", "-1" } },
  { "generate with top_k 2.5", function() return generate({ top_k = 2.5 }) end, { "generate:", "top_k", "2.5" } },
  { "generate with top_k NaN", function() return generate({ top_k = 0 / 0 }) end, { "generate:", "top_k", "nan" } },
  { "generate with max_tokens -1", function() return generate({ max_tokens = -1 }) end,
    { "generate:", "max_tokens", "-1" } },
  { "generate with max_tokens 1.5", function() return generate({ max_tokens = 1.5 }) end,
    { "generate:", "max_tokens", "1.5" } },
  { "generate with max_tokens NaN", function() return generate({ max_tokens = 0 / 0 }) end,
    { "generate:", "max_tokens", "nan" } },
  { "generate with max_tokens infinite", function() return generate({ max_tokens = math.huge }) end,
    { "generate:", "max_tokens", "inf" } },
  { "generate with seed 1.5", function() return generate({ seed = 1.5 }) end, { "generate:", "seed", "1.5" } },
  -- before: "attempt to call a number value" after the first token
  { "generate with on_token a number", function() return generate({ on_token = 5 }) end,
    { "generate:", "on_token", "number" } },
  -- before: any value but false meant true
  { "generate with use_cache = \"no\"", function() return generate({ use_cache = "no" }) end,
    { "generate:", "use_cache", "no" } },
  { "generate with stop_ids a number", function() return generate({ stop_ids = 3 }) end,
    { "generate:", "stop_ids", "number" } },
  { "generate with stop_ids holding -1", function() return generate({ stop_ids = { 2, -1 } }) end,
    { "generate:", "stop_ids[2]", "-1" } },
  { "generate with stop_ids holding 1.5", function() return generate({ stop_ids = { 1.5 } }) end,
    { "generate:", "stop_ids[1]", "1.5" } },
  { "generate with a misspelt option", function() return generate({ temprature = 0 }) end,
    { "generate:", "temprature", "valid" } },
  { "generate with options a number", function() return generate(5) end, { "generate:", "options", "number" } },
  { "generate from an empty prompt", function() return generate({}, {}) end, { "generate:", "at least one token" } },
  { "generate from a tensor prompt", function() return generate({}, ids({ 1, 2 })) end,
    { "generate:", "prompt_ids", "Lua table" } },
  -- before: the error came from tc.tensor
  { "generate from a fractional id", function() return generate({}, { 1, 1.5 }) end,
    { "generate:", "prompt id 2", "1.5" } },
  -- before: the error came from embedding
  { "generate from an id past the vocabulary", function() return generate({}, { 1, 10 }) end,
    { "generate:", "prompt id 2", "10", "9" } },
  { "generate from a negative id", function() return generate({}, { -1 }) end, { "generate:", "prompt id 1", "-1" } },
  { "generate with a model that is a number", function() return tc.generate(5, { 1 }) end,
    { "generate:", "model", "number" } },
  { "generate with a model without config", function()
    local bare = nn.Linear(2, 2)
    return tc.generate(bare, { 1 })
  end, { "generate:", "context_length" } },
  { "generate with the cache on a model without new_cache", function()
    local bare = nn.Linear(2, 2)
    rawset(bare, "config", { context_length = 4 })
    return tc.generate(bare, { 1 })
  end, { "generate:", "new_cache", "use_cache = false" } },
  -- before: NaN broke the ordering the sort needs
  { "candidates with a NaN logit", function() return tc.generate.candidates({ 1, 0 / 0, 3 }) end,
    { "generate:", "logit 2", "nan" } },
  { "candidates with a +inf logit", function() return tc.generate.candidates({ 1, math.huge }) end,
    { "generate:", "logit 2", "inf" } },
  { "candidates with every logit -inf", function() return tc.generate.candidates({ -math.huge, -math.huge }) end,
    { "generate:", "every logit is -inf" } },
  -- before: accepted
  { "candidates with temperature NaN", function() return tc.generate.candidates({ 1, 2 }, { temperature = 0 / 0 }) end,
    { "generate:", "temperature", "nan" } },
  -- before: the misspelt option was ignored
  { "candidates with a misspelt option", function() return tc.generate.candidates({ 1, 2 }, { topk = 1 }) end,
    { "generate:", "topk", "valid" } },
  -- before: accepted; the last candidate was drawn
  { "sample with u = 1", function() return tc.generate.sample({ 1, 2 }, {}, 1) end, { "generate:", "u", "1" } },
  -- before: accepted; the weights were NaN
  { "sample_logits with temperature NaN", function() return tc.sample_logits(logits, 0.5, 0 / 0) end,
    { "sample_logits", "temperature", "nan" } },
  { "sample_logits with a NaN logit", function() return tc.sample_logits(tc.tensor({ 1, 0 / 0 }), 0.5) end,
    { "generate:", "id 1", "nan" } },
  { "sample_logits with every logit -inf", function()
    return tc.sample_logits(tc.tensor({ -math.huge, -math.huge }), 0.5)
  end, { "generate:", "every logit is -inf" } },
  { "sample_logits with top_p 0", function() return tc.sample_logits(logits, 0.5, 1, 0, 0) end,
    { "sample_logits", "top_p", "0" } },
  { "sample_logits with u NaN", function() return tc.sample_logits(logits, 0 / 0) end,
    { "sample_logits", "u", "nan" } },
  { "sample_logits with top_k 1.5", function() return tc.sample_logits(logits, 0.5, 1, 1.5) end,
    { "sample_logits", "top_k", "1.5" } },
  -- before: position + T overflowed, passed the check and the keys were written far past the cache (heap corruption)
  { "attention_cached at position 2^63 - 1", wide = true, function() return attention((wide(63) - 1)) end,
    { "attention_cached", "9223372036854775807", "8 positions" },
    on_doubles = { "attention_cached", "position", "must be an integer", "9.2233720368548e+18" } },
  { "attention_cached at a negative position", function() return attention(-1) end,
    { "attention_cached", "position -1", "negative" } },
  { "attention_cached past the capacity", function() return attention(7) end,
    { "attention_cached", "7 cached + 2 new", "8 positions" } },
  -- before: Lua's "bad argument #4 to 'attention_cached' (number has no integer representation)"
  { "attention_cached at position 1.5", function() return attention(1.5) end,
    { "attention_cached", "position", "1.5" } },
  -- before: the string "3" was read as the position 3
  { "attention_cached at a string position", function() return attention("3") end,
    { "attention_cached", "position", "string" } },
  { "attention_cached with caches of different capacities", function()
    return attention(0, { 1, 2, 8, 2 }, { 1, 2, 4, 2 })
  end, { "attention_cached", "different numbers of positions", "8 and 4" } },
  { "attention_cached with a cache of the wrong head size", function() return attention(0, { 1, 2, 8, 3 }) end,
    { "attention_cached", "k_cache", "{1, 2, 8, 3}" } },
  -- before: the error came from embedding, about an id -1
  { "a cache at position -1", function() return cached_forward(function(c) c.position = -1 end) end,
    { "GPT", "cache.position", "-1" } },
  -- before: the error was about float ids for Embedding
  { "a cache at position 1.5", function() return cached_forward(function(c) c.position = 1.5 end) end,
    { "GPT", "cache.position", "1.5" } },
  -- before: the forward ran as if the position were 0
  { "a cache without a position", function() return cached_forward(function(c) c.position = nil end) end,
    { "GPT", "cache.position", "nil" } },
  -- before: "attempt to add a 'string' with a 'number'"
  { "a cache at a string position", function() return cached_forward(function(c) c.position = "x" end) end,
    { "GPT", "cache.position", "x" } },
  { "a cache past the context", function() return cached_forward(function(c) c.position = 8 end) end,
    { "GPT", "after 8 cached", "context_length 8" } },
  -- before: the second layer ran without a cache and the output was wrong
  { "a cache with a layer missing", function() return cached_forward(function(c) c.layers[2] = nil end) end,
    { "GPT", "cache.layers", "(2)", "got 1" } },
  { "a cache whose keys have the wrong shape", function()
    return cached_forward(function(c) c.layers[1].k = tc.zeros({ 1, 2, 8, 3 }) end)
  end, { "GPT", "cache.layers[1].k", "{1, 2, 8, 3}", "{1, 2, 8, 4}" } },
  -- before: "attempt to call a nil value (method 'size')"
  { "a cache whose keys are a string", function()
    return cached_forward(function(c) c.layers[2].k = "x" end)
  end, { "GPT", "cache.layers[2].k", "string" } },
  { "a cache whose values are a number", function()
    return cached_forward(function(c) c.layers[1].v = 5 end)
  end, { "GPT", "cache.layers[1].v", "number" } },
  { "a cache of float64 for a float32 model", function()
    return cached_forward(function(c) c.layers[1].k = tc.zeros({ 1, 2, 8, 4 }, { dtype = "float64" }) end)
  end, { "GPT", "cache.layers[1].k", "float64", "float32" } },
  { "a cache for two rows used with one", function()
    return model()(ids({ { 1 } }), { cache = model():new_cache(2) })
  end, { "GPT", "batch size 2", "1" } },
  -- before: "attempt to index a number value (local 'cache')"
  { "a number as the cache", function() return model()(ids({ { 1 } }), { cache = 5 }) end,
    { "GPT", "options.cache", "number" } },
  -- nn.Llama's cache: num_key_value_heads heads of a capacity of its own
  { "a Llama cache of batch 1 for 2 rows", function()
    local cache = llama_model():new_cache(1)
    return llama_model()(ids({ { 1 }, { 2 } }), { cache = cache })
  end, { "Llama", "the cache holds batch size 1, the input has 2", "cache.layers[1].k", "{1, 1, 8, 4}" } },
  { "a Llama cache past its capacity", function()
    local cache = llama_model():new_cache(1, 2)
    return llama_model()(ids({ { 1, 2, 3 } }), { cache = cache })
  end, { "Llama", "3 new positions", "capacity 2" } },
  { "a Llama cache of capacity 0", function() return llama_model():new_cache(1, 0) end,
    { "Llama:new_cache", "capacity", "0" } },
  { "a Llama cache longer than max_position_embeddings", function() return llama_model():new_cache(1, 9) end,
    { "Llama:new_cache", "capacity", "max_position_embeddings 8", "9" } },
  { "a Llama cache whose capacity was changed", function()
    local cache = llama_model():new_cache(1, 4)
    cache.capacity = 8
    return llama_model()(ids({ { 1 } }), { cache = cache })
  end, { "Llama", "cache.layers[1].k", "{1, 1, 4, 4}", "{1, 1, 8, 4}" } },
  { "a GPT cache given to a Llama", function()
    return llama_model()(ids({ { 1 } }), { cache = model():new_cache(1) })
  end, { "Llama", "cache.layers", "per layer (1)" } },
  { "targets with a Llama cache", function()
    return llama_model()(ids({ { 1 } }), { cache = llama_model():new_cache(1), targets = ids({ { 1 } }) })
  end, { "Llama", "targets cannot be given with a cache" } },
  -- tc.attention_cached with grouped queries
  { "attention_cached with caches of 2 heads for 1 k/v head", function()
    local qkv = tc.zeros({ 1, 1, 12 }) -- 4 query heads, 1 k/v head, hd 2
    return tc.attention_cached(qkv, tc.zeros({ 1, 2, 8, 2 }), tc.zeros({ 1, 2, 8, 2 }), 0, 4, { n_kv_head = 1 })
  end, { "attention_cached", "k_cache", "{1, 2, 8, 2}", "1 key/value heads" } },
  { "attention_cached with n_kv_head 3 of 4 heads", function()
    return tc.attention_cached(tc.zeros({ 1, 1, 20 }), tc.zeros({ 1, 3, 8, 2 }), tc.zeros({ 1, 3, 8, 2 }), 0, 4,
      { n_kv_head = 3 })
  end, { "attention_cached", "n_kv_head 3", "n_head 4" } },
  { "attention_cached with n_kv_head 0", function()
    return tc.attention_cached(tc.zeros({ 1, 1, 12 }), tc.zeros({ 1, 1, 8, 2 }), tc.zeros({ 1, 1, 8, 2 }), 0, 4,
      { n_kv_head = 0 })
  end, { "attention_cached", "n_kv_head", "0" } },
}
