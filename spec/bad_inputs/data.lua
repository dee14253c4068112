-- Token shards, batch encoding and the pretraining pieces: malformed shard
-- files, bad reader options, text that is not UTF-8, JSON Lines records
-- without text, states of other data, bad schedules and metrics.
local wide = require("helpers.wide")
local binpack = require("helpers.binpack")
local compat = require("tricycle.compat")
local tc = require("tricycle")
local core = require("tricycle.core")
local data = require("tricycle.data")
local training = require("tricycle.training")
local tensorboard = require("tricycle.tensorboard")
local tokenizer = require("tricycle.tokenizer")

local function header(magic, version, count)
  return binpack.pack("<i4i4i4", magic, version, count) .. string.rep("\0", 1012)
end

-- A shard file holding bytes, for the duration of fn(path).
local function with_file(bytes, fn)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
  local ok, result = pcall(fn, path)
  os.remove(path)
  if not ok then
    error(result, 0)
  end
  return result
end

local function shards(bytes, options)
  return with_file(bytes, function(path)
    options = options or {}
    options.files = options.files or path
    options.batch_size = options.batch_size or 1
    options.context_length = options.context_length or 2
    return data.TokenShards(options)
  end)
end

local good = header(20240520, 1, 4) .. binpack.pack("<I2I2I2I2", 1, 2, 3, 4)

local function encoder(options)
  local tok = tokenizer.BPETokenizer.train("hello world, hello there", { vocab_size = 260, gpt2_split = true })
  return core.shards.encoder(tok, options or { eot = 260, id_bytes = 2 })
end

local function encode(block)
  return encoder():encode({ block })
end

return {
  -- shard files
  { "a missing shard", function() return data.TokenShards({ files = "/nonexistent/x.bin", batch_size = 1,
    context_length = 2 }) end, { "TokenShards", "/nonexistent/x.bin", "No such file" } },
  { "a glob matching nothing", function() return data.TokenShards({ files = "/nonexistent/x_*.bin", batch_size = 1,
    context_length = 2 }) end, { "TokenShards", "no file matches", "/nonexistent/x_*.bin" } },
  { "a wildcard in the folder of a glob", function() return data.glob("/tmp/*/x.bin") end,
    { "glob", "/tmp/*/x.bin", "file name only" } },
  { "a folder as a shard", function()
    return data.TokenShards({ files = "/tmp", batch_size = 1, context_length = 2 })
  end,
    { "TokenShards", "'/tmp'", "not a regular file" } },
  { "an empty file", function() return shards("") end,
    { "TokenShards", "0 bytes", "1024-byte header" } },
  { "a shard with the wrong magic", function() return shards(header(20240521, 1, 4) .. string.rep("\0", 8)) end,
    { "TokenShards", "not a token shard", "magic 20240521" } },
  { "a safetensors file as a shard", function()
    return shards(binpack.pack("<I8", 2) .. "{}" .. string.rep(" ", 1100))
  end, { "TokenShards", "not a token shard", "magic 2" } },
  { "a shard of an unknown version", function() return shards(header(20240520, 3, 4) .. string.rep("\0", 8)) end,
    { "TokenShards", "unknown version 3" } },
  { "the uint32 magic with version 1", function() return shards(header(20240801, 1, 2) .. string.rep("\0", 8)) end,
    { "TokenShards", "unknown version 1", "20240801" } },
  { "a truncated shard", function() return shards(header(20240520, 1, 5) .. string.rep("\0", 8)) end,
    { "TokenShards", "says 5 tokens", "8 bytes follow" } },
  { "a shard longer than its count", function() return shards(header(20240520, 1, 3) .. string.rep("\0", 8)) end,
    { "TokenShards", "says 3 tokens" } },
  { "a negative token count", function() return shards(header(20240520, 1, -4) .. string.rep("\0", 8)) end,
    { "TokenShards", "-4 tokens" } },
  { "uint16 ids under the uint32 magic", function() return shards(header(20240801, 7, 4) .. string.rep("\0", 8)) end,
    { "TokenShards", "uint32", "says 4 tokens" } },
  { "an id at the vocabulary size", function() return shards(good, { vocab_size = 4 }) end,
    { "TokenShards", "token 3", "id 4", "vocabulary size 4" } },
  { "an id past a small vocabulary", function() return shards(good, { vocab_size = 2 }) end,
    { "TokenShards", "token 1", "id 2" } },
  { "a batch larger than every shard", function() return shards(good, { batch_size = 2, context_length = 2 }) end,
    { "TokenShards", "no shard holds one batch", "5 tokens", "holds 4" } },
  { "world_size making the batch too large", function()
    return shards(good, { batch_size = 1, context_length = 2, world_size = 2 })
  end, { "TokenShards", "world_size 2", "holds 4" } },

  -- reader options
  { "TokenShards without options", function() return data.TokenShards() end, { "TokenShards", "table" } },
  { "an unknown TokenShards option", function() return shards(good, { shufle = true }) end,
    { "TokenShards", "shufle", "shuffle" } },
  { "batch_size 0", function() return shards(good, { batch_size = 0 }) end, { "TokenShards", "batch_size", "0" } },
  { "a fractional context_length", function() return shards(good, { context_length = 1.5 }) end,
    { "TokenShards", "context_length", "1.5" } },
  { "rank equal to world_size", function() return shards(good, { rank = 2, world_size = 2 }) end,
    { "TokenShards", "rank", "[0, 1]", "2" } },
  { "a negative rank", function() return shards(good, { rank = -1 }) end, { "TokenShards", "rank", "-1" } },
  { "world_size 0", function() return shards(good, { world_size = 0 }) end, { "TokenShards", "world_size", "0" } },
  { "a string seed", function() return shards(good, { seed = "7" }) end, { "TokenShards", "seed", "7" } },
  { "shuffle = 1", function() return shards(good, { shuffle = 1 }) end, { "TokenShards", "shuffle", "1" } },
  { "vocab_size -1", function() return shards(good, { vocab_size = -1 }) end, { "TokenShards", "vocab_size", "-1" } },
  { "an empty list of files", function()
    return data.TokenShards({ files = {}, batch_size = 1, context_length = 1 })
  end, { "TokenShards", "empty list" } },
  { "a number among the files", function()
    return data.TokenShards({ files = { 5 }, batch_size = 1, context_length = 1 })
  end, { "TokenShards", "files[1]", "number" } },
  { "a batch overflowing int64",
    function() return shards(good, { batch_size = 1099511627776, context_length = 1099511627776 }) end,
    { "TokenShards", "overflows" } },

  -- reader state
  { "a state from other shards", function()
    local reader = shards(good)
    local state = reader:state_dict()
    state.files[1].name = "other.bin"
    reader:load_state_dict(state)
  end, { "TokenShards:load_state_dict", "other.bin" } },
  { "a state of another batch size", function()
    local reader = shards(good)
    local state = reader:state_dict()
    state.batch_size = 2
    reader:load_state_dict(state)
  end, { "TokenShards:load_state_dict", "batch_size = 2" } },
  { "a state past the last shard", function()
    local reader = shards(good)
    local state = reader:state_dict()
    state.position = 2
    reader:load_state_dict(state)
  end, { "TokenShards:load_state_dict", "shard 2", "out of range" } },
  { "a state that is not a table", function()
    local reader = shards(good)
    reader:load_state_dict(42)
  end, { "TokenShards:load_state_dict", "state_dict" } },
  -- before: "calling 'count' on bad self", placed at lua/tricycle/data.lua:468
  { "a batch from a closed reader", function()
    local reader = shards(good)
    reader:close()
    reader:batch()
  end, { "TokenShards:batch", "closed" } },
  { "datasets.cache_dir with a misspelt option", function()
    return tc.datasets.cache_dir({ enf = {} })
  end, { "datasets.cache_dir", "enf", "valid: env" } },
  { "datasets.cache_dir with a string for options", function()
    return tc.datasets.cache_dir("HOME")
  end, { "datasets.cache_dir", "string" } },

  -- the shard functions underneath
  { "a header of -1 tokens", function() return core.shards.header(-1, 2) end, { "token_shard_header", "-1" } },
  { "a header of 2^31 tokens", function() return core.shards.header(2147483648, 2) end,
    { "token_shard_header", "2147483648" } },
  { "a header of 3-byte ids", function() return core.shards.header(1, 3) end,
    { "token_shard_header", "id_bytes", "3" } },
  { "a batch past the end of a shard", function()
    return with_file(good, function(path) return core.shards.open(path):batch(2, 1, 2) end)
  end, { "token_shard_batch", "3 tokens from token 2", "4 tokens" } },
  { "a batch at a negative position", function()
    return with_file(good, function(path) return core.shards.open(path):batch(-1, 1, 1) end)
  end, { "token_shard_batch", "-1" } },
  { "a read of the largest count", wide = true, function()
    return with_file(good, function(path) return core.shards.open(path):read(1, (wide(63) - 1)) end)
  end, { "token_shard_read", tostring((wide(63) - 1)) },
    -- (LuaJIT's luaL_argerror names this method '?')
    on_doubles = { "bad argument #3", "9223372036854775808", "past 2^53" } },
  { "token_shard_bytes of a uint16 shard with a large id", function()
    return data.token_shard_bytes({ 1, 70000 }, { id_bytes = 2 })
  end, { "token_shard_bytes", "70000", "uint16" } },
  { "token_shard_bytes of a negative id", function() return data.token_shard_bytes({ 1, -3 }) end,
    { "token_shard_bytes", "ids[2]", "-3" } },
  { "token_shard_bytes with an unknown option", function() return data.token_shard_bytes({ 1 }, { bytes = 2 }) end,
    { "token_shard_bytes", "bytes", "id_bytes" } },

  -- batch encoding
  { "text that is not UTF-8", function()
    return encode({ data = "hello\nwor\255ld", name = "corpus.txt", line = 10, offset = 100 })
  end, { "batch_encode", "corpus.txt", "line 11", "invalid UTF-8", "0xFF", "byte offset 109" } },
  { "a UTF-16 surrogate in UTF-8", function() return encode({ data = "a\237\160\128b", name = "s.txt" }) end,
    { "batch_encode", "s.txt", "0xED", "byte offset 1" } },
  { "a character cut at the end", function() return encode({ data = "ab\226\130", name = "cut.txt" }) end,
    { "batch_encode", "cut.txt", "0xE2" } },
  { "a JSON Lines record without text", function()
    return encode({ data = '{"text": "hello"}\n{"title": "world"}\n', format = "jsonl", name = "docs.jsonl" })
  end, { "batch_encode", "docs.jsonl", "line 2", "no \"text\"" } },
  { "a JSON Lines record whose text is a number", function()
    return encode({ data = '{"text": 12}', format = "jsonl", name = "n.jsonl", line = 5 })
  end, { "batch_encode", "n.jsonl", "line 5", "not a string" } },
  { "a JSON Lines record that is an array", function()
    return encode({ data = '["hello"]', format = "jsonl", name = "a.jsonl" })
  end, { "batch_encode", "a.jsonl", "array" } },
  { "a JSON Lines line that is not JSON", function()
    return encode({ data = '{"text": "a"\n', format = "jsonl", name = "b.jsonl" })
  end, { "batch_encode", "b.jsonl", "line 1", "not valid JSON" } },
  { "a JSON Lines text with a lone surrogate escape", function()
    return encode({ data = '{"text": "\\ud800"}', format = "jsonl", name = "u.jsonl" })
  end, { "batch_encode", "u.jsonl", "not valid JSON" } },
  { "an unknown block format", function() return encode({ data = "x", format = "csv" }) end,
    { "batch_encode", "format", "csv" } },
  { "a block without data", function() return encode({ name = "x" }) end, { "batch_encode", "data", "nil" } },
  { "a block that is not a table", function() return encoder():encode({ "text" }) end,
    { "batch_encode", "blocks[1]", "string" } },
  { "an encoder of no threads", function() return encoder({ threads = 0 }) end, { "batch_encoder", "threads", "0" } },
  { "an encoder of 3-byte ids", function() return encoder({ id_bytes = 3 }) end, { "batch_encoder", "id_bytes", "3" } },
  { "an end-of-text id past uint16", function() return encoder({ eot = 65536, id_bytes = 2 }) end,
    { "batch_encoder", "eot 65536" } },
  { "a separator that is a number", function() return encoder({ separator = 10 }) end,
    { "batch_encoder", "separator", "number" } },
  { "a tokenizer too large for uint16 ids", function()
    -- a character tokenizer of 70000 characters (CJK and beyond, past the surrogates)
    local chars = {}
    for cp = 0x10000, 0x10000 + 69999 do
      chars[#chars + 1] = compat.utf8_char(cp)
    end
    local tok = tokenizer.CharTokenizer.new(table.concat(chars))
    return core.shards.encoder(tok, { eot = -1, id_bytes = 2 })
  end, { "batch_encoder", "70000 tokens", "do not fit in 2 bytes" } },
  { "find_id in a string of odd length", function() return core.shards.find_id("abc", 2, 1, 1) end,
    { "find_id", "3 bytes" } },
  { "list_dir of a missing folder", function() return core.shards.list_dir("/nonexistent/folder") end,
    { "list_dir", "/nonexistent/folder" } },

  -- training pieces
  { "accumulate_gradients of 0 micro-steps", function()
    return training.accumulate_gradients({}, function() end, 0)
  end, { "accumulate_gradients", "micro_steps", "0" } },
  { "accumulate_gradients without a batch function", function()
    return training.accumulate_gradients({}, nil, 2)
  end, { "accumulate_gradients", "next_batch", "nil" } },
  { "accumulate_gradients of a model without a loss", function()
    return training.accumulate_gradients(function() return tc.zeros({ 1 }) end, function() return 1, 2 end, 1)
  end, { "accumulate_gradients", "no loss" } },
  { "prune_checkpoints keeping 0", function() return training.prune_checkpoints("/tmp", 0) end,
    { "prune_checkpoints", "keep", "0" } },
  { "matmul_flops with an unknown option", function() return training.matmul_flops({ size = 3 }) end,
    { "matmul_flops", "size" } },
  { "linear_schedule without total", function() return tc.optim.linear_schedule({ max_lr = 1 }) end,
    { "linear_schedule", "total", "nil" } },
  { "linear_schedule with warmup past total", function()
    return tc.optim.linear_schedule({ max_lr = 1, warmup = 10, total = 5 })
  end, { "linear_schedule", "total 5", "warmup 10" } },
  { "tensorboard.Writer without a folder", function() return tensorboard.Writer("") end,
    { "tensorboard.Writer", "dir" } },
  { "tensorboard.Writer in a file's place", function() return tensorboard.Writer("/dev/null/runs") end,
    { "tensorboard.Writer", "/dev/null/runs" } },
  { "a negative TensorBoard step", function()
    local dir = os.tmpname()
    os.remove(dir)
    local writer = tensorboard.Writer(dir)
    local ok, message = pcall(writer.scalar, writer, "loss", 1, -5)
    writer:close()
    os.execute("rm -rf '" .. dir .. "'")
    error(message, 0)
  end, { "tensorboard.Writer:scalars", "step", "-5" } },
  { "a TensorBoard value that is a string", function()
    local dir = os.tmpname()
    os.remove(dir)
    local writer = tensorboard.Writer(dir)
    local ok, message = pcall(writer.scalars, writer, { loss = "low" }, 1)
    writer:close()
    os.execute("rm -rf '" .. dir .. "'")
    error(message, 0)
  end, { "tensorboard.Writer:scalars", "loss", "low" } },
  -- ---- map-style datasets and the DataLoader ----
  { "DataLoader with batch_size 0", function()
    return data.DataLoader{ data.TensorDataset(tc.ones({ 3 })), batch_size = 0 }
  end, { "DataLoader", "batch_size", "0" } },
  { "DataLoader with a misspelt option", function()
    return data.DataLoader{ data.TensorDataset(tc.ones({ 3 })), shufle = true }
  end, { "DataLoader", "unknown option 'shufle'", "shuffle" } },
  { "DataLoader over a number", function() return data.DataLoader{ dataset = 5 } end,
    { "DataLoader", "dataset", "number" } },
  { "DataLoader with seed -1", function()
    return data.DataLoader{ data.TensorDataset(tc.ones({ 3 })), shuffle = true, seed = -1 }
  end, { "DataLoader", "seed", "-1" } },
  { "DataLoader over samples of different shapes", function()
    local Ragged = data.Dataset:extend()
    function Ragged:len() return 2 end
    function Ragged:get(i) return tc.ones({ i }) end
    return data.DataLoader{ dataset = setmetatable({}, Ragged), batch_size = 2 }:iter()()
  end, { "DataLoader", "sample 2", "{2}", "{1}" } },
  { "DataLoader over samples of different kinds", function()
    local Mixed = data.Dataset:extend()
    function Mixed:len() return 2 end
    function Mixed:get(i) return i == 1 and 1 or "two" end
    return data.DataLoader{ dataset = setmetatable({}, Mixed), batch_size = 2 }:iter()()
  end, { "DataLoader", "sample 2", "string", "number" } },
  { "DataLoader over a dataset whose len is 2.5", function()
    local Bad = data.Dataset:extend()
    function Bad:len() return 2.5 end
    function Bad:get() return 1 end
    return data.DataLoader{ dataset = setmetatable({}, Bad) }
  end, { "DataLoader", "len()", "2.5" } },
  { "TensorDataset of tensors with different row counts", function()
    return data.TensorDataset(tc.ones({ 3, 2 }), tc.ones({ 4 }))
  end, { "TensorDataset", "argument 2", "4 rows", "3" } },
  { "TensorDataset of a scalar", function() return data.TensorDataset(tc.tensor(1)) end,
    { "TensorDataset", "scalar" } },
  { "TensorDataset:get past the end", function() return data.TensorDataset(tc.ones({ 3 })):get(4) end,
    { "TensorDataset:get", "index 4", "1 to 3" } },
  { "DataLoader:load_state_dict with counter 'x'", function()
    data.DataLoader{ data.TensorDataset(tc.ones({ 3 })) }:load_state_dict({ seed = 1, counter = "x" })
  end, { "DataLoader:load_state_dict", "counter", "x" } },
}
