-- Bad inputs: files. Hostile or odd files and paths given to the loaders
-- (tc.load, tc.io.open, checkpoint.load, gpt2.load, llama.load, tc.io.read_file and the
-- Lua modules that read files) and to the writers (tc.save,
-- checkpoint.save, tc.io.write_file, tc.io.append_file). Tokenizer files
-- are in tokenizers.lua. Each case works in a scratch folder of its own.
local binpack = require("helpers.binpack")
local tc = require("tricycle")
local scratch = require("helpers.scratch")

local in_dir, write, safetensors = scratch.in_dir, scratch.write, scratch.safetensors

local F32_2 = binpack.pack("<ff", 1, 2)

-- A small nn.Llama config, with changes.
local function llama_config(changes)
  local config = { vocab_size = 6, hidden_size = 8, intermediate_size = 4, num_hidden_layers = 1,
    num_attention_heads = 2, num_key_value_heads = 1, max_position_embeddings = 4 }
  for key, value in pairs(changes or {}) do
    config[key] = value
  end
  return config
end

-- llama.load of a folder holding config (a table for config.json, text, or
-- false for none) and the weights of a model of llama_config() written by
-- llama.save, changed by `weights` (a function of the state), or none
-- (false), or model.safetensors with an index of weight_map `index_map`
-- ("index"; "none" writes an index without one).
local function llama_folder(config, weights, folder, index_map)
  local llama = tc.models.llama
  if folder then
    return llama.load(folder)
  end
  return in_dir(function(dir)
    if weights ~= false then
      local state = llama.to_hf_state(tc.nn.Llama(llama_config()))
      if type(weights) == "function" then
        weights(state)
      end
      tc.save(dir .. "/model.safetensors", state)
    end
    if weights == "index" then
      local index = index_map == "none" and { metadata = {} } or { weight_map = index_map }
      write(dir .. "/model.safetensors.index.json", tc.io.json_encode(index))
    end
    if type(config) == "table" then
      write(dir .. "/config.json", tc.io.json_encode(config))
    elseif type(config) == "string" then
      write(dir .. "/config.json", config)
    end
    return llama.load(dir)
  end)
end

--- A file holding header and data, loaded with tc.load.
local function load_crafted(header, data)
  return function()
    in_dir(function(dir)
      tc.load(write(dir .. "/crafted.safetensors", safetensors(header, data)))
    end)
  end
end

--- A handle on a file of one tensor (40 kB over several pages), the file
-- changed by change(path, dir), then the tensor asked for and read.
local function get_after(change)
  return function()
    in_dir(function(dir)
      local path = dir .. "/model.safetensors"
      tc.save(path, { w = tc.arange(10000, { dtype = "float32" }) })
      local file = tc.io.open(path)
      change(path, dir)
      file:get("w"):sum():item()
    end)
  end
end

return {
  -- ---- what a path names
  { "tc.load of a FIFO (before: hung in open)", function()
    in_dir(function(dir)
      tc.load(scratch.mkfifo(dir .. "/pipe"))
    end)
  end, { "safetensors load", "pipe' is a FIFO, not a regular file" } },
  { "tc.io.open of a FIFO (before: hung in open)", function()
    in_dir(function(dir)
      tc.io.open(scratch.mkfifo(dir .. "/pipe"))
    end)
  end, { "safetensors load", "pipe' is a FIFO" } },
  { "checkpoint.load of a FIFO (before: hung in open)", function()
    in_dir(function(dir)
      tc.checkpoint.load(scratch.mkfifo(dir .. "/pipe"))
    end)
  end, { "checkpoint.load", "pipe' is a FIFO" } },
  { "gpt2.load of a FIFO (before: hung in open)", function()
    in_dir(function(dir)
      tc.models.gpt2.load(scratch.mkfifo(dir .. "/pipe"))
    end)
  end, { "safetensors load", "pipe' is a FIFO" } },
  { "tc.load of a directory", function()
    in_dir(function(dir)
      tc.load(dir)
    end)
  end, { "safetensors load", "is a directory, not a regular file" } },
  { "tc.load of /dev/zero", function()
    tc.load("/dev/zero")
  end, { "safetensors load", "'/dev/zero' is a character device" } },
  { "tc.load of /dev/null", function()
    tc.load("/dev/null")
  end, { "safetensors load", "'/dev/null' is a character device" } },
  { "tc.load of a dangling symbolic link", function()
    in_dir(function(dir)
      os.execute("ln -s nowhere " .. scratch.shell_quote(dir .. "/link"))
      tc.load(dir .. "/link")
    end)
  end, { "safetensors load", "cannot open", "link'", "No such file" } },
  { "tc.load of a path with a NUL byte (before: opened the path cut at the NUL)", function()
    tc.load("model.safetensors\0.txt")
  end, { "load: argument 1 (path)", "NUL byte at position 18" } },
  { "tc.load of an empty path", function()
    tc.load("")
  end, { "load", "path", "empty" } },
  { "tc.load of a number (before: opened the file '42')", function()
    tc.load(42)
  end, { "load: argument 1 (path) must be a string, got number" } },
  { "tc.io.read_file of a FIFO (before: io.open in the modules hung)", function()
    in_dir(function(dir)
      tc.io.read_file(scratch.mkfifo(dir .. "/pipe"))
    end)
  end, { "read_file", "pipe' is a FIFO" } },
  { "tc.io.read_file of a file over max_bytes", function()
    in_dir(function(dir)
      tc.io.read_file(write(dir .. "/big", "0123456789"), { max_bytes = 4 })
    end)
  end, { "read_file", "is 10 bytes, more than the 4" } },
  { "tc.io.read_file with an unknown option", function()
    tc.io.read_file("x", { max = 4 })
  end, { "read_file: unknown option 'max'", "max_bytes" } },
  { "tc.io.append_file to a FIFO (before: io.open(path, 'a') in cli hung)", function()
    in_dir(function(dir)
      tc.io.append_file(scratch.mkfifo(dir .. "/pipe"), "line\n")
    end)
  end, { "append_file", "pipe' is a FIFO" } },
  { "cli.read_jsonl of a FIFO (before: hung)", function()
    in_dir(function(dir)
      require("tricycle.cli").read_jsonl(scratch.mkfifo(dir .. "/metrics.jsonl"))
    end)
  end, { "cli.read_jsonl", "metrics.jsonl' is a FIFO" } },
  { "datasets.shakespeare with an unknown option (before: ignored)", function()
    tc.datasets.shakespeare({ paht = "input.txt" })
  end, { "datasets.shakespeare: unknown option 'paht' (valid: download, env, path, sha256, split)" } },
  { "datasets.tokenize_cached with an unknown option (before: ignored)", function()
    tc.datasets.tokenize_cached("abc", require("tricycle.tokenizer").CharTokenizer.new("abc"), { cache = "/tmp" })
  end, { "datasets.tokenize_cached: unknown option 'cache' (valid: cache_dir, env)" } },
  { "datasets.shakespeare from a FIFO (before: hung)", function()
    in_dir(function(dir)
      tc.datasets.shakespeare({ path = scratch.mkfifo(dir .. "/input.txt") })
    end)
  end, { "datasets.shakespeare", "input.txt is a fifo, not a regular file" } },

  -- ---- truncated and corrupt files
  { "tc.load of a 5-byte file", function()
    in_dir(function(dir)
      tc.load(write(dir .. "/short", "12345"))
    end)
  end, { "safetensors load", "the file is 5 bytes, too short" } },
  { "header length past the end of the file", function()
    in_dir(function(dir)
      tc.load(write(dir .. "/long", binpack.pack("<I8", 1000) .. "{}"))
    end)
  end, { "safetensors load", "header length 1000 exceeds the 2 bytes after it" } },
  { "header length above the 100 MiB limit (a sparse file)", function()
    in_dir(function(dir)
      local path = write(dir .. "/sparse", binpack.pack("<I8", 209715200) .. "{}")
      assert(os.execute("truncate -s 300M " .. scratch.shell_quote(path)))
      tc.load(path)
    end)
  end, { "safetensors load", "header length 209715200 is above the 104857600-byte limit" } },
  { "header length 1", function()
    in_dir(function(dir)
      tc.load(write(dir .. "/one", binpack.pack("<I8", 1) .. "{"))
    end)
  end, { "safetensors load", "header length 1 is too short" } },
  { "header that is not JSON", load_crafted('{"a": {"dtype": "F32",', ""),
    { "safetensors load", "the header is not valid JSON" } },
  { "header nested 100 deep", load_crafted('{"a":' .. string.rep("[", 100) .. string.rep("]", 100) .. "}", ""),
    { "safetensors load", "nesting deeper than 16 levels" } },
  { "header that is a JSON array", load_crafted("[1, 2]", ""),
    { "safetensors load", "the header does not start with '{'" } },
  { "tensor name that is not UTF-8", load_crafted('{"\255":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', F32_2),
    { "safetensors load", "invalid UTF-8" } },
  { "the same tensor name twice",
    load_crafted('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
      .. '"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', F32_2),
    { "safetensors load", "duplicate key \"a\"" } },
  { "tensor name with a NUL byte",
    load_crafted('{"a\\u0000b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', F32_2),
    { "safetensors load", "a tensor name contains a NUL byte" } },
  { "empty tensor name", load_crafted('{"":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', F32_2),
    { "safetensors load", "a tensor has an empty name" } },
  { "unknown dtype", load_crafted('{"a":{"dtype":"F8","shape":[2],"data_offsets":[0,8]}}', F32_2),
    { "safetensors load", "tensor 'a': dtype \"F8\" is not supported" } },
  { "shape that needs more bytes than the offsets hold",
    load_crafted('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', F32_2),
    { "tensor 'a': shape {3} of F32 needs 12 bytes but data_offsets [0, 8] hold 8" } },
  { "F16 shape and byte count that disagree",
    load_crafted('{"a":{"dtype":"F16","shape":[3],"data_offsets":[0,8]}}', F32_2),
    { "tensor 'a': shape {3} of F16 needs 6 bytes" } },
  { "offsets past the data section", load_crafted('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', F32_2),
    { "tensor 'a': data_offsets [0, 16] lie outside the data section (8 bytes" } },
  { "offsets that end before they begin",
    load_crafted('{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}', F32_2),
    { "tensor 'a': data_offsets [8, 0] end before they begin" } },
  { "offsets near 2^63", load_crafted('{"a":{"dtype":"U8","shape":[1],"data_offsets":[9223372036854775806,'
      .. '9223372036854775807]}}', F32_2),
    { "tensor 'a': data_offsets [9223372036854775806, 9223372036854775807] lie outside" } },
  { "overlapping tensors out of order",
    load_crafted('{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},'
      .. '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', F32_2),
    { "tensors 'a' [0, 8] and 'b' [4, 8] overlap" } },
  { "a huge dimension beside a 0 (before: loaded a tensor that broke the shape rule)",
    load_crafted('{"a":{"dtype":"F32","shape":[4611686018427387904,0],"data_offsets":[0,0]}}', ""),
    { "safetensors load", "tensor 'a': shape {4611686018427387904, 0} is too large" } },
  { "a shape whose product overflows",
    load_crafted('{"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,8]}}', F32_2),
    { "tensor 'a': shape {4294967296, 4294967296}", "too large" } },
  { "nine dims", load_crafted('{"a":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}}', "x"),
    { "tensor 'a': 9 dims, at most 8" } },
  { "a negative size", load_crafted('{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}', F32_2),
    { "tensor 'a': shape entry 1 must be a non-negative integer" } },
  { "a BOOL byte that is not 0 or 1", load_crafted('{"a":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}}', "\1\2"),
    { "tensor 'a': BOOL element 1 is 2" } },
  { "metadata that is not an object", load_crafted('{"__metadata__":[1]}', ""),
    { "\"__metadata__\" must be an object, got an array" } },
  { "a metadata value that is not a string", load_crafted('{"__metadata__":{"step":12}}', ""),
    { "\"__metadata__\" value of \"step\" must be a string" } },

  -- ---- files that change under an open handle
  { "a file truncated in place after opening (before: SIGBUS on reading the tensor)", get_after(function(path)
    assert(os.execute("truncate -s 100 " .. scratch.shell_quote(path)))
  end), { "safetensors load: tensor 'w'", "model.safetensors' changed since it was opened", "bytes then, 100 now" } },
  { "a file rewritten in place by cp after opening (before: SIGBUS on reading the tensor)",
    get_after(function(path, dir)
      tc.save(dir .. "/other.safetensors", { w = tc.zeros({ 10 }) })
      assert(os.execute(("cp %s %s"):format(scratch.shell_quote(dir .. "/other.safetensors"),
        scratch.shell_quote(path))))
    end), { "safetensors load: tensor 'w'", "model.safetensors' changed since it was opened", "bytes then, 104 now" } },
  { "a file rewritten in place with the same size (before: read the new bytes as the old tensor)",
    get_after(function(path)
      local file = assert(io.open(path, "r+b"))
      file:seek("end", -4)
      file:write("abcd")
      file:close()
      assert(os.execute("touch -d '2001-02-03 04:05:06' " .. scratch.shell_quote(path)))
    end), { "safetensors load: tensor 'w'", "model.safetensors' changed since it was opened (it was rewritten" } },
  { "get with a NUL byte in the name (before: returned tensor 'a')", function()
    in_dir(function(dir)
      local path = dir .. "/m.safetensors"
      tc.save(path, { a = tc.ones({ 1 }) })
      local file = tc.io.open(path)
      file:get("a\0b")
    end)
  end, { "get: no tensor named \"a\\0b\"" } },
  { "get of a name the file lacks", function()
    in_dir(function(dir)
      local path = dir .. "/m.safetensors"
      tc.save(path, { a = tc.ones({ 1 }) })
      local file = tc.io.open(path)
      file:get("b")
    end)
  end, { "no tensor named 'b'" } },
  { "get on a closed handle", function()
    in_dir(function(dir)
      local path = dir .. "/m.safetensors"
      tc.save(path, { a = tc.ones({ 1 }) })
      local file = tc.io.open(path)
      file:close()
      file:get("a")
    end)
  end, { "get: the safetensors file was closed" } },

  -- ---- saving
  { "tc.save with a NUL byte in a tensor name (before: saved it as 'a')", function()
    in_dir(function(dir)
      tc.save(dir .. "/m.safetensors", { ["a\0b"] = tc.ones({ 1 }) })
    end)
  end, { "save: tensor name \"a\\0b\" has a NUL byte at position 2" } },
  { "tc.save with a NUL byte in a metadata key (before: the key was cut and its value written as null)", function()
    in_dir(function(dir)
      tc.save(dir .. "/m.safetensors", { a = tc.ones({ 1 }) }, { ["k\0"] = "v" })
    end)
  end, { "safetensors save", "metadata key", "NUL byte at position 2" } },
  { "tc.save with a NUL byte in a metadata value (before: accepted)", function()
    in_dir(function(dir)
      tc.save(dir .. "/m.safetensors", { a = tc.ones({ 1 }) }, { note = "ab\0c" })
    end)
  end, { "safetensors save", "metadata value of \"note\" has a NUL byte at position 3" } },
  { "tc.save with an empty tensor name", function()
    in_dir(function(dir)
      tc.save(dir .. "/m.safetensors", { [""] = tc.ones({ 1 }) })
    end)
  end, { "safetensors save", "empty name" } },
  { "tc.save of a tensor named __metadata__", function()
    in_dir(function(dir)
      tc.save(dir .. "/m.safetensors", { __metadata__ = tc.ones({ 1 }) })
    end)
  end, { "safetensors save", "\"__metadata__\" is reserved" } },
  { "tc.save to a path with a NUL byte (before: wrote the path cut at the NUL)", function()
    in_dir(function(dir)
      tc.save(dir .. "/m\0.safetensors", { a = tc.ones({ 1 }) })
    end)
  end, { "save: argument 1 (path)", "has a NUL byte at position" } },
  { "tc.save onto a directory", function()
    in_dir(function(dir)
      tc.save(dir, { a = tc.ones({ 1 }) })
    end)
  end, { "safetensors save", "is a directory, not a regular file" } },
  { "tc.save onto a FIFO (before: replaced the FIFO by a file)", function()
    in_dir(function(dir)
      tc.save(scratch.mkfifo(dir .. "/pipe"), { a = tc.ones({ 1 }) })
    end)
  end, { "safetensors save", "pipe' is a FIFO, not a regular file" } },
  { "tc.save into a folder that does not exist", function()
    in_dir(function(dir)
      tc.save(dir .. "/missing/m.safetensors", { a = tc.ones({ 1 }) })
    end)
  end, { "safetensors save: cannot create a temporary file in", "missing' to write", "No such file" } },
  { "tc.save through a loop of symbolic links (before: replaced the link by a file)", function()
    in_dir(function(dir)
      local a, b = scratch.shell_quote(dir .. "/a"), scratch.shell_quote(dir .. "/b")
      os.execute(("ln -s b %s && ln -s a %s"):format(a, b))
      tc.save(dir .. "/a", { a = tc.ones({ 1 }) })
    end)
  end, { "safetensors save", "more than 40 symbolic links" } },
  { "tc.io.write_file onto a directory", function()
    in_dir(function(dir)
      tc.io.write_file(dir, "text")
    end)
  end, { "write_file", "is a directory, not a regular file" } },
  { "tc.io.write_file of a table", function()
    tc.io.write_file("/tmp/x", {})
  end, { "write_file: argument 2 (text) must be a string, got table" } },
  { "checkpoint.save with a NUL byte in a model key (before: saved it as 'model.w')", function()
    in_dir(function(dir)
      tc.checkpoint.save(dir .. "/ckpt", { model = { ["w\0x"] = tc.ones({ 1 }) } })
    end)
  end, { "checkpoint.save", "tensor name \"model.w\\0x\" has a NUL byte at position 8" } },
  { "checkpoint.save of two tensors under one name", function()
    in_dir(function(dir)
      tc.checkpoint.save(dir .. "/ckpt", { extra = { ["x.y"] = tc.ones({ 1 }), x = { y = tc.zeros({ 1 }) } } })
    end)
  end, { "checkpoint.save: two tensors would be stored as 'extra.x.y'" } },
  { "checkpoint.load of a plain safetensors file", function()
    in_dir(function(dir)
      tc.save(dir .. "/plain", { a = tc.ones({ 1 }) })
      tc.checkpoint.load(dir .. "/plain")
    end)
  end, { "checkpoint.load", "not a tricycle checkpoint" } },
  -- models.llama folders (config.json and safetensors in Hugging Face's layout)
  { "llama.load of a missing folder", function() return llama_folder(nil, nil, "/missing") end,
    { "llama.load", "/missing", "not a folder" } },
  { "llama.load of a folder without config.json", function() return llama_folder(false) end,
    { "llama.load", "config.json" } },
  { "llama.load of a config.json that is not JSON", function() return llama_folder("{vocab_size") end,
    { "llama.load", "config.json" } },
  { "llama.load of a config.json holding an array", function() return llama_folder("[1, 2]") end,
    { "llama.load", "JSON object" } },
  { "llama.load with hidden_act gelu", function() return llama_folder(llama_config({ hidden_act = "gelu" })) end,
    { "llama.load", "hidden_act gelu" } },
  { "llama.load with mlp_bias", function() return llama_folder(llama_config({ mlp_bias = true })) end,
    { "llama.load", "mlp_bias" } },
  { "llama.load with 3 k/v heads of 4", function()
    return llama_folder(llama_config({ num_key_value_heads = 3 }))
  end, { "llama.load", "num_key_value_heads", "3" } },
  { "llama.load of a folder without weights", function() return llama_folder(llama_config(), false) end,
    { "llama.load", "neither model.safetensors nor model.safetensors.index.json" } },
  { "llama.load of weights of another shape, one missing and one unknown", function()
    return llama_folder(llama_config(), function(state)
      state["model.norm.weight"] = tc.ones({ 5 })
      state["model.layers.0.mlp.up_proj.weight"] = nil
      state["model.layers.0.mlp.extra.weight"] = tc.ones({ 1 })
    end)
  end, { "llama.load", "missing keys: model.layers.0.mlp.up_proj.weight",
    "unexpected keys: model.layers.0.mlp.extra.weight",
    "mis-shaped keys: model.norm.weight (checkpoint {5}, model {8})" } },
  { "llama.load of an index naming a file outside the folder", function()
    return llama_folder(llama_config(), "index", nil, { ["model.norm.weight"] = "../x.safetensors" })
  end, { "llama.load", "weight_map", "../x.safetensors" } },
  { "llama.load of an index naming a tensor its shard lacks", function()
    return llama_folder(llama_config(), "index", nil, { ["model.norm.weight"] = "model.safetensors",
      ["model.extra"] = "model.safetensors" })
  end, { "llama.load", "model.extra", "does not hold it" } },
  { "llama.load of an index without weight_map", function()
    return llama_folder(llama_config(), "index", nil, "none")
  end, { "llama.load", "weight_map" } },
  { "llama.save into a missing folder", function()
    return tc.models.llama.save(tc.nn.Llama(llama_config()), "/missing/folder")
  end, { "llama.save", "/missing/folder", "not a folder" } },
  { "llama.save of a GPT", function()
    return in_dir(function(dir)
      tc.models.llama.save(tc.nn.GPT({ vocab_size = 4, context_length = 2, n_layer = 1, n_head = 1, n_embd = 2 }), dir)
    end)
  end, { "llama.to_hf_state", "nn.Llama" } },
}
