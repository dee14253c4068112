--- GPT-2 checkpoints in Hugging Face's layout, to and from our nn.GPT.
--
-- Hugging Face names: wte.weight [V, C], wpe.weight [T, C], h.{i}.ln_1.*,
-- h.{i}.attn.c_attn.{weight [C, 3C], bias}, h.{i}.attn.c_proj.*, h.{i}.ln_2.*,
-- h.{i}.mlp.c_fc.{weight [C, 4C], bias}, h.{i}.mlp.c_proj.*, ln_f.*, block
-- index i from 0, optionally under "transformer.". Their attention and MLP
-- layers are Conv1D, whose weight is [in, out]: the transpose of our
-- Linear's [out, in]. The causal-mask buffers (attn.bias, attn.masked_bias)
-- and a separate lm_head.weight (GPT-2 ties it to wte) are ignored.
local compat = require("tricycle.compat")
local check_options = require("tricycle.options").check_options
local config_keys = require("tricycle.nn.transformer").config_keys
local hf_state = require("tricycle.models.hf_state")
local gpt2 = {}

local conv1d = { ["attn.c_attn.weight"] = true, ["attn.c_proj.weight"] = true, ["mlp.c_fc.weight"] = true,
  ["mlp.c_proj.weight"] = true }

local block_keys = { "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
  "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight",
  "mlp.c_proj.bias" }

local function strip(tensors)
  local result = {}
  for name, tensor in pairs(tensors) do
    local key = name:gsub("^transformer%.", "")
    if not (key:match("%.attn%.bias$") or key:match("%.attn%.masked_bias$") or key == "lm_head.weight") then
      result[key] = tensor
    end
  end
  return result
end

--- The config of a GPT-2 state (name -> tensor), from its shapes; fields in
-- `config` win. n_head cannot be read from shapes: when neither `config`
-- nor the file's metadata (see gpt2.load) gives it, it is guessed as
-- n_embd / 64, GPT-2's head size, which is only right for GPT-2's own
-- checkpoints and files written by other tools.
function gpt2.config_of(state, config)
  if config ~= nil and type(config) ~= "table" then
    error("gpt2.config_of: config must be a table or nil, got " .. type(config), 2)
  end
  check_options("gpt2.config_of", config, config_keys)
  config = config or {}
  local wte, wpe = state["wte.weight"], state["wpe.weight"]
  if not wte or not wpe then
    error("gpt2: the state has no wte.weight or wpe.weight; is it a GPT-2 checkpoint?", 3)
  end
  local n_layer = 0
  while state["h." .. n_layer .. ".ln_1.weight"] do
    n_layer = n_layer + 1
  end
  local n_embd = wte:size(2)
  local result = {
    vocab_size = wte:size(1),
    context_length = wpe:size(1),
    n_layer = n_layer,
    n_embd = n_embd,
    n_head = n_embd % 64 == 0 and compat.idiv(n_embd, 64) or nil,
  }
  for key, value in pairs(config) do
    result[key] = value
  end
  if not result.n_head then
    error(("gpt2: n_embd %d is not a multiple of 64; give config.n_head"):format(n_embd), 3)
  end
  result.gelu, result.eps = result.gelu or "tanh", result.eps or 1e-5
  result.bias, result.tie_weights = true, true
  result.dropout = result.dropout or 0
  result.dtype = result.dtype or wte.dtype
  return result
end

-- name -> shape of every tensor a GPT-2 state of `config` must hold.
local function expected_shapes(config)
  local V, T, C, n = config.vocab_size, config.context_length, config.n_embd, config.n_layer
  local hidden = 4 * C
  local shapes = { ["wte.weight"] = { V, C }, ["wpe.weight"] = { T, C }, ["ln_f.weight"] = { C },
    ["ln_f.bias"] = { C } }
  local block = { ["ln_1.weight"] = { C }, ["ln_1.bias"] = { C }, ["attn.c_attn.weight"] = { C, 3 * C },
    ["attn.c_attn.bias"] = { 3 * C }, ["attn.c_proj.weight"] = { C, C }, ["attn.c_proj.bias"] = { C },
    ["ln_2.weight"] = { C }, ["ln_2.bias"] = { C }, ["mlp.c_fc.weight"] = { C, hidden },
    ["mlp.c_fc.bias"] = { hidden }, ["mlp.c_proj.weight"] = { hidden, C }, ["mlp.c_proj.bias"] = { C } }
  for i = 0, n - 1 do
    for key, shape in pairs(block) do
      shapes["h." .. i .. "." .. key] = shape
    end
  end
  return shapes
end

-- One error listing every missing, unexpected and mis-shaped key, in
-- Hugging Face's names.
local function check_state(state, config)
  local problems = hf_state.problems(state, expected_shapes(config))
  if problems then
    error("gpt2.from_hf_state: the state does not fit GPT-2 with this config; " .. problems, 3)
  end
end

-- Our state_dict names and values for a (checked) Hugging Face state.
local function native_state(state, config)
  local result = {}
  for _, name in ipairs({ "wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias" }) do
    result[name] = state[name]
  end
  for i = 0, config.n_layer - 1 do
    for _, key in ipairs(block_keys) do
      local tensor = state["h." .. i .. "." .. key]
      if conv1d[key] then
        tensor = tensor:transpose(1, 2):contiguous()
      end
      result["h." .. (i + 1) .. "." .. key] = tensor
    end
  end
  return result
end

--- An nn.GPT holding the weights of a Hugging Face GPT-2 state (name ->
-- tensor), in the checkpoint's dtype unless config.dtype says otherwise.
function gpt2.from_hf_state(tensors, config)
  if type(tensors) ~= "table" then
    error("gpt2.from_hf_state: expects a table of name -> tensor", 2)
  end
  if config ~= nil and type(config) ~= "table" then
    error("gpt2.from_hf_state: config must be a table or nil, got " .. type(config), 2)
  end
  check_options("gpt2.from_hf_state", config, config_keys)
  local state = strip(tensors)
  config = gpt2.config_of(state, config)
  check_state(state, config)
  local nn = require("tricycle.nn")
  local model = nn.GPT(config)
  model:load_state_dict(native_state(state, config))
  return model
end

--- A Hugging Face GPT-2 state (name -> tensor, no prefix) of an nn.GPT.
function gpt2.to_hf_state(model)
  if not model.config or model.config.tie_weights == false then
    error("gpt2.to_hf_state: expects an nn.GPT with a tied head", 2)
  end
  local result = {}
  for name, tensor in pairs(model:state_dict()) do
    local block, rest = name:match("^h%.(%d+)%.(.+)$")
    local value = tensor:detach()
    if block then
      if conv1d[rest] then
        value = value:transpose(1, 2)
      end
      result["h." .. (tonumber(block) - 1) .. "." .. rest] = value:contiguous()
    else
      result[name] = value:contiguous()
    end
  end
  return result
end

-- The config fields export stores in the file's metadata (all strings
-- there), with how each is read back.
local metadata_fields = { vocab_size = "integer", context_length = "integer", n_layer = "integer",
  n_head = "integer", n_embd = "integer", eps = "number", gelu = "string" }

-- The config written in a file's metadata by export ({} for files from
-- elsewhere, which have none).
local function metadata_config(metadata, path)
  local config = {}
  for field, kind in pairs(metadata_fields) do
    local text = metadata[field]
    if text ~= nil then
      local value = text
      if kind ~= "string" then
        value = tonumber(text)
        if kind == "integer" then
          value = value and compat.tointeger(value)
        end
      end
      if value == nil then
        error(("gpt2.load: '%s': metadata %s = '%s' is not %s %s"):format(path, field, text,
          kind == "integer" and "an" or "a", kind), 3)
      end
      config[field] = value
    end
  end
  return config
end

--- Reads a GPT-2 safetensors file (tc.load) into an nn.GPT. The config is
-- the file's metadata (written by export) plus `config`; a field given by
-- both with different values is an error. Without metadata (files from
-- elsewhere), see gpt2.config_of.
function gpt2.load(path, config)
  if config ~= nil and type(config) ~= "table" then
    error("gpt2.load: config must be a table or nil, got " .. type(config), 2)
  end
  check_options("gpt2.load", config, config_keys)
  local tensors, metadata = require("tricycle").load(path)
  local merged = metadata_config(metadata or {}, path)
  for key, value in pairs(config or {}) do
    if merged[key] ~= nil and merged[key] ~= value then
      error(("gpt2.load: config.%s = %s conflicts with %s = %s in the metadata of '%s'"):format(key,
        tostring(value), key, tostring(merged[key]), path), 2)
    end
    merged[key] = value
  end
  return gpt2.from_hf_state(tensors, merged)
end

--- Writes an nn.GPT as a GPT-2 safetensors file (tc.save), its config
-- (metadata_fields) in the metadata, next to Hugging Face's format = "pt".
function gpt2.export(model, path)
  local state = gpt2.to_hf_state(model)
  local metadata = { format = "pt" }
  for field in pairs(metadata_fields) do
    local value = model.config[field]
    if compat.is_float(value) then
      metadata[field] = ("%.17g"):format(value) -- reads back as the same double
    elseif value ~= nil then
      metadata[field] = tostring(value)
    end
  end
  require("tricycle").save(path, state, metadata)
end

return gpt2
