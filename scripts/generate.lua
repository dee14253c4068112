--- Generates text from a checkpoint written by train_shakespeare.lua (or any
-- tricycle checkpoint holding a GPT's config and its tokenizer), or from a
-- Hugging Face Llama-family folder (config.json, model.safetensors or shards,
-- tokenizer.json: Llama 2 and 3, TinyLlama, Qwen2 and the like).
--
--   lua scripts/generate.lua out/shakespeare/checkpoint.safetensors --prompt "ROMEO:" --max-tokens 200
--   echo "To be" | lua scripts/generate.lua out/shakespeare/checkpoint.safetensors --temperature 0.7
--   lua scripts/generate.lua path/to/TinyLlama-folder --prompt "The capital of France is"
--
-- A folder's prompt gets the ids its tokenizer puts in front (Llama 2's <s>),
-- and generation stops at its end-of-text ids (config.json's eos_token_id).
-- Tokens are printed as they are produced. A prompt longer than the model's
-- context is cropped from the left, with a notice on stderr.

local script_dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local root = script_dir .. "/.."
local build = os.getenv("TRICYCLE_BUILD") or (root .. "/build")
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
-- Lua 5.4's module is in <build>/lua/, each other Lua's in <build>/<lua5.1|luajit|lua5.2|lua5.3>/.
local lua_dir = rawget(_G, "jit") and "luajit"
  or ({ ["Lua 5.1"] = "lua5.1", ["Lua 5.2"] = "lua5.2", ["Lua 5.3"] = "lua5.3" })[_VERSION] or "lua"
package.cpath = build .. "/" .. lua_dir .. "/?.so;" .. package.cpath
do
  local core_path = build .. "/" .. lua_dir .. "/tricycle/core.so"
  local f = io.open(core_path, "rb")
  if not f then
    io.stderr:write(("generate: %s is missing: run make first (in %s)\n"):format(core_path, root))
    os.exit(1)
  end
  f:close()
end

local compat = require("tricycle.compat")
local tc = require("tricycle")
local cli = require("tricycle.cli")
local tokenizer_module = require("tricycle.tokenizer")

local USAGE = "lua scripts/generate.lua CHECKPOINT|FOLDER [--prompt TEXT] [--max-tokens N] [--temperature T] "
  .. "[--top-k K] [--top-p P] [--seed S] [--dtype float32|bfloat16|float16]"

local OPTIONS = {
  { name = "prompt", metavar = "TEXT", help = "the prompt (default: read from stdin; empty: a newline)" },
  { name = "max_tokens", type = "integer", help = "tokens to generate (default 200)" },
  { name = "temperature", type = "number", help = "sampling temperature; 0 is greedy (default 0.8)" },
  { name = "top_k", type = "integer", help = "sample among the k most likely tokens (default: all)" },
  { name = "top_p", type = "number", help = "sample among the most likely tokens reaching probability p" },
  { name = "seed", type = "integer", help = "seed for sampling (default: 1337)" },
  { name = "device", type = "choice", choices = { "auto", "cpu", "cuda" }, help = "where to run (default auto)" },
  { name = "no_cache", type = "flag", help = "recompute the whole context at every step (slow; for checking)" },
  { name = "dtype", type = "choice", choices = { "float32", "bfloat16", "float16" },
    help = "the weights' dtype (default float32); 16-bit weights compute in float32 at half the memory" },
}

local program = cli.program({ name = "generate", usage = USAGE, options = OPTIONS,
  positional = { { name = "CHECKPOINT", required = true } },
  description = "Prints text generated from a checkpoint or a Hugging Face Llama-family folder, token by token." })
local values, positional = program:parse(arg)
local max_tokens = values.max_tokens or 200
if max_tokens < 0 then
  program:fail_usage("--max-tokens must be non-negative")
end
if values.temperature and values.temperature < 0 then
  program:fail_usage("--temperature must be non-negative")
end
if values.top_k and values.top_k < 0 then
  program:fail_usage("--top-k must be non-negative")
end
if values.top_p and (values.top_p <= 0 or values.top_p > 1) then
  program:fail_usage("--top-p must be in (0, 1]")
end

local path = positional[1]
-- file_kind opens nothing: a FIFO here is left to checkpoint.load, which
-- names it, instead of an open that blocks.
local kind = tc.io.file_kind(path)
if kind == nil then
  program:fail(("no checkpoint at %s"):format(path))
end

local tok, model, context
local prefix_ids, stop_ids = {}, nil
if kind == "directory" then -- a Hugging Face folder
  local ok_model, loaded = pcall(tc.models.llama.load, path, values.dtype and { dtype = values.dtype } or nil)
  if not ok_model then
    program:fail(tostring(loaded))
  end
  local ok_tok, loaded_tok, info = pcall(tc.models.llama.load_tokenizer, path)
  if not ok_tok then
    program:fail(tostring(loaded_tok))
  end
  model, tok, context = loaded, loaded_tok, loaded.config.max_position_embeddings
  prefix_ids, stop_ids = info.prefix_ids, info.stop_ids
else
  local ok_load, state = pcall(tc.checkpoint.load, path)
  if not ok_load then
    program:fail(tostring(state))
  end
  if not state.tokenizer then
    program:fail(("%s holds no tokenizer"):format(path))
  end
  local config = state.config or {}
  for _, key in ipairs({ "vocab_size", "context_length", "n_layer", "n_head", "n_embd",
    config.arch == "llama" and "intermediate_size" or nil }) do
    if not compat.is_integer(config[key]) then
      program:fail(("%s: config.%s is missing; not a GPT checkpoint from train_shakespeare.lua?"):format(path, key))
    end
  end

  tok = tokenizer_module.deserialize(state.tokenizer)
  if config.arch == "llama" then -- train_shakespeare.lua --arch llama
    model = tc.nn.Llama({
      vocab_size = config.vocab_size, hidden_size = config.n_embd, intermediate_size = config.intermediate_size,
      num_hidden_layers = config.n_layer, num_attention_heads = config.n_head,
      num_key_value_heads = (config.n_kv_head or 0) > 0 and config.n_kv_head or config.n_head,
      max_position_embeddings = config.context_length, tie_word_embeddings = true, dtype = values.dtype,
    })
  else
    model = tc.nn.GPT({
      vocab_size = config.vocab_size, context_length = config.context_length, n_layer = config.n_layer,
      n_head = config.n_head, n_embd = config.n_embd, dropout = 0, bias = config.bias ~= false,
      tie_weights = config.tie_weights ~= false, dtype = values.dtype,
    })
  end
  model:load_state_dict(state.model) -- 16-bit weights: the checkpoint's values rounded once
  state.model = nil
  collectgarbage()
  context = config.context_length
end
local device = values.device or "auto"
if device == "auto" then
  local notice
  device, notice = tc.cuda.pick_device()
  if notice then
    io.stderr:write(notice, "\n")
  end
end
if device ~= "cpu" then
  model:to(device)
end
model:eval()

local prompt = values.prompt
if prompt == nil then
  if cli.stdin_is_terminal() then
    io.stderr:write("generate: reading the prompt from standard input, Ctrl-D to end\n")
  end
  prompt = io.read("a") or ""
end
if prompt == "" then
  prompt = "\n"
end

--- The UTF-8 characters of text (a byte outside valid UTF-8 counts as one), each once, in order.
local function distinct_characters(text)
  local list, seen, i = {}, {}, 1
  while i <= #text do
    local lead = text:byte(i)
    local length = lead >= 0xF0 and 4 or lead >= 0xE0 and 3 or lead >= 0xC0 and 2 or 1
    local character = text:sub(i, i + length - 1)
    if #character ~= length or not character:sub(2):match("^[\128-\191]*$") then
      character, length = text:sub(i, i), 1
    end
    if not seen[character] then
      seen[character] = true
      list[#list + 1] = character
    end
    i = i + length
  end
  return list
end

--- 'é' (U+00E9), or the byte in hex for one outside UTF-8.
local function describe_character(character)
  local bytes = { character:byte(1, -1) }
  if #bytes == 1 and bytes[1] < 0x80 then
    return ("'%s' (U+%04X)"):format(bytes[1] < 0x20 and ("\\x%02X"):format(bytes[1]) or character, bytes[1])
  elseif #bytes == 1 then
    return ("the byte 0x%02X"):format(bytes[1])
  end
  local code = bytes[1] % (2 ^ (7 - #bytes))
  for k = 2, #bytes do
    code = code * 64 + bytes[k] % 64
  end
  return ("'%s' (U+%04X)"):format(character, code)
end

local ok_encode, prompt_ids = pcall(tok.encode, tok, prompt)
if not ok_encode then
  -- a character tokenizer knows only the characters of its training text: name every one it lacks
  local missing = {}
  for _, character in ipairs(distinct_characters(prompt)) do
    if not pcall(tok.encode, tok, character) then
      missing[#missing + 1] = describe_character(character)
    end
  end
  if #missing == 0 then
    program:fail(("the prompt cannot be encoded: %s"):format(tostring(prompt_ids)))
  end
  local shown = #missing > 10 and table.concat(missing, ", ", 1, 10) .. (", and %d more"):format(#missing - 10)
    or table.concat(missing, ", ")
  program:fail(("the prompt has %d character%s that the checkpoint's %s tokenizer (%d tokens) lacks: %s")
    :format(#missing, #missing == 1 and "" or "s", tok:kind(), tok:vocab_size(), shown))
end
if #prefix_ids > 0 then
  local with_prefix = {}
  for i, id in ipairs(prefix_ids) do with_prefix[i] = id end
  for _, id in ipairs(prompt_ids) do with_prefix[#with_prefix + 1] = id end
  prompt_ids = with_prefix
end
if #prompt_ids == 0 then
  program:fail("the prompt encodes to no tokens")
end
if #prompt_ids > context then
  io.stderr:write(("generate: the prompt has %d tokens; only its last %d (the context length) are used\n")
    :format(#prompt_ids, context))
end

-- Bytes of a multi-byte character may arrive in separate tokens: hold back
-- an incomplete UTF-8 tail until the next token completes it.
local pending = ""
local stopping = {}
for _, id in ipairs(stop_ids or {}) do stopping[id] = true end
local function emit(id)
  -- an end-of-text id is not text; nor is an id past the tokenizer's (a model's padding rows)
  if stopping[id] or id >= tok:vocab_size() then
    return
  end
  local complete
  complete, pending = tokenizer_module.split_incomplete_utf8(pending .. tok:decode_bytes({ id }))
  io.write(complete)
  io.flush()
end

io.write(prompt)
io.flush()
local ok_generate, failure = pcall(tc.generate, model, prompt_ids, {
  max_tokens = max_tokens, temperature = values.temperature or 0.8, top_k = values.top_k, top_p = values.top_p,
  seed = values.seed or 1337, on_token = emit, use_cache = not values.no_cache, stop_ids = stop_ids,
})
if pending ~= "" then
  io.write(pending)
end
io.write("\n")
if not ok_generate then
  if tostring(failure):find("interrupted!", 1, true) then
    os.exit(130)
  end
  program:fail(tostring(failure))
end
