--- Llama-family checkpoints (Llama 2 and 3, TinyLlama, Qwen2 and the like)
-- in Hugging Face's layout, to and from our nn.Llama.
--
--   local model = tc.models.llama.load("path/to/folder")   -- config.json + model.safetensors
--   tc.models.llama.save(model, "path/to/other_folder")     -- an existing folder
--   local tok, info = tc.models.llama.load_tokenizer("path/to/folder")   -- tokenizer.json, BOS and EOS ids
--
-- A folder holds config.json (LlamaConfig's names) and model.safetensors,
-- or shards named by model.safetensors.index.json's weight_map. F16 and
-- BF16 tensors load as float16 and bfloat16 (tc.load); the model is
-- float32 unless `{dtype = "bfloat16"}` (or another) is asked, when the
-- weights are kept in that dtype. Hugging Face names:
-- model.embed_tokens.weight, model.layers.{i}.input_layernorm.weight,
-- model.layers.{i}.self_attn.{q,k,v,o}_proj.weight (q, k, v biases with
-- attention_bias), model.layers.{i}.post_attention_layernorm.weight,
-- model.layers.{i}.mlp.{gate,up,down}_proj.weight, model.norm.weight and
-- lm_head.weight (absent, or ignored, when tie_word_embeddings), block index
-- i from 0. Our qkv_proj is q_proj, k_proj and v_proj stacked by rows.
-- Rotary inv_freq buffers of older checkpoints are ignored.
local errors = require("tricycle.errors")
local hf_state = require("tricycle.models.hf_state")

local llama = {}

-- The config.json keys nn.Llama takes; the others (architectures,
-- torch_dtype, token ids, ...) are Hugging Face's own and are skipped, but
-- for those that change the maths, checked below.
local config_fields = { "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
  "num_attention_heads", "num_key_value_heads", "head_dim", "rope_theta", "rope_scaling", "rms_norm_eps",
  "max_position_embeddings", "tie_word_embeddings", "attention_bias", "initializer_range" }

-- nn.Llama's config of a parsed config.json; errors name `where` and are
-- raised at `level` (as error's, counted from the caller of config_of).
local function config_of(hf_config, overrides, where, level)
  level = level + 1
  if type(hf_config) ~= "table" or hf_config[1] ~= nil then
    error(("%s: config.json must hold a JSON object, got %s"):format(where,
      type(hf_config) == "table" and "an array" or type(hf_config)), level)
  end
  if overrides ~= nil and type(overrides) ~= "table" then
    error(("%s: overrides must be a table or nil, got %s"):format(where, type(overrides)), level)
  end
  if hf_config.hidden_act ~= nil and hf_config.hidden_act ~= "silu" then
    error(("%s: hidden_act %s is not supported (the SwiGLU block uses silu)"):format(where,
      tostring(hf_config.hidden_act)), level)
  end
  if hf_config.mlp_bias then
    error(("%s: mlp_bias = true is not supported (the SwiGLU block has no biases)"):format(where), level)
  end
  if hf_config.use_sliding_window then
    error(("%s: use_sliding_window = true is not supported (attention sees the whole context)"):format(where),
      level)
  end
  local config = {}
  for _, field in ipairs(config_fields) do
    config[field] = hf_config[field]
  end
  -- Qwen2 has q, k and v biases without saying so in its config
  if config.attention_bias == nil and hf_config.model_type == "qwen2" then
    config.attention_bias = true
  end
  for key, value in pairs(overrides or {}) do
    config[key] = value
  end
  return config
end

--- nn.Llama's config of a parsed config.json (a table); fields of
-- `overrides` (such as dtype) win. Settings we do not implement are errors.
function llama.config_of(hf_config, overrides)
  return config_of(hf_config, overrides, "llama.config_of", 2)
end

-- name -> shape of every Hugging Face tensor a model of `config` (a full
-- nn.Llama config) holds.
local function expected_shapes(config)
  local C, I, V = config.hidden_size, config.intermediate_size, config.vocab_size
  local hd, H, KV = config.head_dim, config.num_attention_heads, config.num_key_value_heads
  local shapes = { ["model.embed_tokens.weight"] = { V, C }, ["model.norm.weight"] = { C } }
  if not config.tie_word_embeddings then
    shapes["lm_head.weight"] = { V, C }
  end
  local block = { ["input_layernorm.weight"] = { C }, ["post_attention_layernorm.weight"] = { C },
    ["self_attn.q_proj.weight"] = { H * hd, C }, ["self_attn.k_proj.weight"] = { KV * hd, C },
    ["self_attn.v_proj.weight"] = { KV * hd, C }, ["self_attn.o_proj.weight"] = { C, H * hd },
    ["mlp.gate_proj.weight"] = { I, C }, ["mlp.up_proj.weight"] = { I, C }, ["mlp.down_proj.weight"] = { C, I } }
  if config.attention_bias then
    block["self_attn.q_proj.bias"] = { H * hd }
    block["self_attn.k_proj.bias"] = { KV * hd }
    block["self_attn.v_proj.bias"] = { KV * hd }
  end
  for i = 0, config.num_hidden_layers - 1 do
    for key, shape in pairs(block) do
      shapes["model.layers." .. i .. "." .. key] = shape
    end
  end
  return shapes
end

-- Names a checkpoint may hold that the model does not use.
local function ignored(name, config)
  return name:match("^model%.layers%.%d+%.self_attn%.rotary_emb%.inv_freq$")
    or (name == "lm_head.weight" and config.tie_word_embeddings)
end

-- One error listing every missing, unexpected and mis-shaped key, in
-- Hugging Face's names, raised at `level`.
local function check_state(state, config, where, level)
  local problems = hf_state.problems(state, expected_shapes(config), function(name) return ignored(name, config) end)
  if problems then
    error(("%s: the checkpoint does not fit Llama with this config; %s"):format(where, problems), level + 1)
  end
end

local block_keys = { "input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.o_proj.weight",
  "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight" }

-- The model of a checked state; errors as config_of's.
local function build(tensors, hf_config, overrides, where, level)
  level = level + 1
  local config = config_of(hf_config, overrides, where, level)
  if config.dtype == nil then
    local embedding = tensors["model.embed_tokens.weight"]
    config.dtype = embedding and embedding.dtype == "float64" and "float64" or "float32"
  end
  local nn = require("tricycle.nn")
  local ok, full = pcall(nn.Llama.check_config, config, 1)
  if not ok then
    error(where .. ": " .. tostring(full):gsub("^[^:]*:%d+: ", ""), level)
  end
  check_state(tensors, full, where, level)
  local core = require("tricycle.core")
  local state = { ["embed_tokens.weight"] = tensors["model.embed_tokens.weight"],
    ["norm.weight"] = tensors["model.norm.weight"] }
  if not full.tie_word_embeddings then
    state["lm_head.weight"] = tensors["lm_head.weight"]
  end
  for i = 0, full.num_hidden_layers - 1 do
    local from, to = "model.layers." .. i .. ".", "layers." .. (i + 1) .. "."
    for _, key in ipairs(block_keys) do
      state[to .. key] = tensors[from .. key]
    end
    for _, kind in ipairs({ "weight", "bias" }) do
      local q = tensors[from .. "self_attn.q_proj." .. kind]
      if q then
        state[to .. "self_attn.qkv_proj." .. kind] = core.cat({ q, tensors[from .. "self_attn.k_proj." .. kind],
          tensors[from .. "self_attn.v_proj." .. kind] }, 1)
      end
    end
  end
  for name, tensor in pairs(state) do
    if tensor.dtype ~= full.dtype then
      state[name] = tensor:to(full.dtype)
    end
  end
  local model = nn.Llama(full)
  model:load_state_dict(state)
  return model
end

--- An nn.Llama holding the weights of a Hugging Face state (name ->
-- tensor) and its config (a config.json table), float32 unless
-- overrides.dtype says otherwise.
function llama.from_hf_state(tensors, hf_config, overrides)
  if type(tensors) ~= "table" then
    errors.raise("llama.from_hf_state: expects a table of name -> tensor")
  end
  return build(tensors, hf_config, overrides, "llama.from_hf_state", 2)
end

--- The Hugging Face state (name -> contiguous tensor) of an nn.Llama.
function llama.to_hf_state(model)
  local config = type(model) == "table" and model.config
  if type(config) ~= "table" or not config.num_key_value_heads then
    errors.raise("llama.to_hf_state: expects an nn.Llama")
  end
  local hd, H, KV = config.head_dim, config.num_attention_heads, config.num_key_value_heads
  local result = {}
  for name, tensor in pairs(model:state_dict()) do
    local value = tensor:detach()
    local block, rest = name:match("^layers%.(%d+)%.(.+)$")
    if block then
      local prefix = "model.layers." .. (tonumber(block) - 1) .. "."
      local kind = rest:match("^self_attn%.qkv_proj%.(%a+)$")
      if kind then
        result[prefix .. "self_attn.q_proj." .. kind] = value:narrow(1, 1, H * hd):contiguous()
        result[prefix .. "self_attn.k_proj." .. kind] = value:narrow(1, H * hd + 1, KV * hd):contiguous()
        result[prefix .. "self_attn.v_proj." .. kind] = value:narrow(1, (H + KV) * hd + 1, KV * hd):contiguous()
      else
        result[prefix .. rest] = value:contiguous()
      end
    elseif name == "lm_head.weight" then
      result[name] = value:contiguous()
    else
      result["model." .. name] = value:contiguous()
    end
  end
  return result
end

--- The config.json table of an nn.Llama (Hugging Face's LlamaConfig).
function llama.hf_config(model)
  local config = model.config
  local result = { architectures = { "LlamaForCausalLM" }, model_type = "llama", hidden_act = "silu",
    torch_dtype = config.dtype }
  for _, field in ipairs(config_fields) do
    result[field] = config[field]
  end
  return result
end

local function join(folder, name)
  return folder:sub(-1) == "/" and folder .. name or folder .. "/" .. name
end

local function check_folder(where, folder)
  if type(folder) ~= "string" then
    error(("%s: folder must be a string path, got %s"):format(where, type(folder)), 3)
  end
  local io = require("tricycle.io")
  if io.file_kind(folder) ~= "directory" then
    error(("%s: '%s' is not a folder"):format(where, folder), 3)
  end
  return io
end

-- name -> tensor of every safetensors file of a folder: model.safetensors,
-- or the shards its index names (each read once).
local function load_tensors(io, folder)
  local index_path = join(folder, "model.safetensors.index.json")
  if io.file_kind(index_path) == nil then
    local path = join(folder, "model.safetensors")
    if io.file_kind(path) == nil then
      error(("llama.load: '%s' holds neither model.safetensors nor model.safetensors.index.json"):format(folder), 3)
    end
    return (io.load(path))
  end
  local ok, index = pcall(io.json_decode, io.read_file(index_path, { max_bytes = 64 * 1024 * 1024 }))
  if not ok or type(index) ~= "table" or type(index.weight_map) ~= "table" then
    error(("llama.load: '%s' is not an index with a weight_map object%s"):format(index_path,
      ok and "" or (" (" .. tostring(index) .. ")")), 3)
  end
  local files, tensors = {}, {}
  for name, file in pairs(index.weight_map) do
    if type(file) ~= "string" or file:find("/", 1, true) or file == ".." then
      error(("llama.load: '%s': weight_map[%s] must name a file of the folder, got %s"):format(index_path, name,
        tostring(file)), 3)
    end
    files[file] = files[file] or {}
    files[file][#files[file] + 1] = name
  end
  for file, names in pairs(files) do
    local shard = io.load(join(folder, file))
    for _, name in ipairs(names) do
      if shard[name] == nil then
        error(("llama.load: '%s' names %s in %s, which does not hold it"):format(index_path, name, file), 3)
      end
      tensors[name] = shard[name]
    end
  end
  return tensors
end

--- Reads a Hugging Face Llama folder into an nn.Llama; `overrides` (a
-- table of nn.Llama config fields, such as dtype) win over config.json.
function llama.load(folder, overrides)
  local io = check_folder("llama.load", folder)
  local config_path = join(folder, "config.json")
  local ok, hf_config = pcall(function()
    return io.json_decode(io.read_file(config_path, { max_bytes = 16 * 1024 * 1024 }))
  end)
  if not ok then
    error(("llama.load: cannot read '%s': %s"):format(config_path, tostring(hf_config)), 2)
  end
  return build(load_tensors(io, folder), hf_config, overrides, ("llama.load: '%s'"):format(folder), 2)
end

local function read_json(io, path, where)
  local ok, value = pcall(function()
    return io.json_decode(io.read_file(path, { max_bytes = 256 * 1024 * 1024 }))
  end)
  if not ok then
    error(("%s: cannot read '%s': %s"):format(where, path, tostring(value)), 3)
  end
  return value
end

-- The ids a TemplateProcessing post-processor (alone or in a Sequence) puts
-- before a single text: Llama 2's "<s>"; nil when there is none.
local function template_prefix(processor)
  if type(processor) ~= "table" then return nil end
  if processor.type == "Sequence" and type(processor.processors) == "table" then
    for _, inner in ipairs(processor.processors) do
      local prefix = template_prefix(inner)
      if prefix then return prefix end
    end
    return nil
  end
  if processor.type ~= "TemplateProcessing" or type(processor.single) ~= "table" then return nil end
  local prefix, specials = {}, type(processor.special_tokens) == "table" and processor.special_tokens or {}
  for _, piece in ipairs(processor.single) do
    if type(piece) ~= "table" or piece.Sequence then break end
    local name = type(piece.SpecialToken) == "table" and piece.SpecialToken.id
    local entry = name and specials[name]
    if type(entry) ~= "table" or type(entry.ids) ~= "table" then return nil end
    for _, id in ipairs(entry.ids) do prefix[#prefix + 1] = id end
  end
  return prefix
end

local function id_list(value)
  if type(value) == "number" then return { value } end
  return type(value) == "table" and value or {}
end

--- The tokenizer of a Hugging Face folder (its tokenizer.json, see
-- tokenizer.load_hf) and what generation needs beside it: info.prefix_ids,
-- the ids put before a prompt (the post-processor's template, else
-- tokenizer_config.json's bos_token when add_bos_token is true: Llama 2's
-- "<s>"; none for Qwen), and info.stop_ids, the eos_token_id of config.json
-- and generation_config.json (a number or a list).
function llama.load_tokenizer(folder)
  local io = check_folder("llama.load_tokenizer", folder)
  local where = "llama.load_tokenizer"
  local path = join(folder, "tokenizer.json")
  if io.file_kind(path) == nil then
    error(("%s: '%s' holds no tokenizer.json"):format(where, folder), 2)
  end
  local tokenizer = errors.call(require("tricycle.tokenizer").load_hf, path)
  local prefix = template_prefix(read_json(io, path, where).post_processor)
  local config_path = join(folder, "tokenizer_config.json")
  if not prefix and io.file_kind(config_path) ~= nil then
    local config = read_json(io, config_path, where)
    local bos = type(config.bos_token) == "table" and config.bos_token.content or config.bos_token
    if config.add_bos_token == true and type(bos) == "string" then
      local id = tokenizer:token_id(bos)
      if not id then
        error(("%s: '%s' names bos_token %q, which tokenizer.json lacks"):format(where, config_path, bos), 2)
      end
      prefix = { id }
    end
  end
  local stops, seen = {}, {}
  for _, name in ipairs({ "config.json", "generation_config.json" }) do
    local file = join(folder, name)
    if io.file_kind(file) ~= nil then
      for _, id in ipairs(id_list(read_json(io, file, where).eos_token_id)) do
        if type(id) == "number" and not seen[id] then
          seen[id] = true
          stops[#stops + 1] = id
        end
      end
    end
  end
  return tokenizer, { prefix_ids = prefix or {}, stop_ids = stops }
end

--- Writes an nn.Llama into an existing folder as config.json and
-- model.safetensors (each replaced atomically), readable by Hugging Face's
-- LlamaForCausalLM and by llama.load.
function llama.save(model, folder)
  local io = check_folder("llama.save", folder)
  local state = llama.to_hf_state(model)
  io.save(join(folder, "model.safetensors"), state, { format = "pt" })
  io.write_file(join(folder, "config.json"), io.json_encode(llama.hf_config(model)) .. "\n")
end

return llama
