-- Writes seed inputs for the fuzz targets with the project's own writers (tc.save, the tokenizers'
-- serialize, checkpoint.save, json_encode) into OUTPUT/<target>/, so that the fuzzers start from
-- real files rather than from nothing. Run from the repository root (make fuzz-corpus does):
--   TRICYCLE_BUILD=build lua5.4 spec/fuzz/make_corpus.lua build-fuzz/corpus
-- The BPE is trained on the start of $TRICYCLE_DATA/tinyshakespeare.txt when it is there, on a
-- built-in text otherwise. The GPT-2 seeds are this BPE written in GPT-2's vocab.json and
-- merges.txt format, split by a NUL byte as the gpt2 target expects.
local build = os.getenv("TRICYCLE_BUILD") or "build"
package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path
package.cpath = build .. "/lua/?.so;" .. package.cpath

local lua_command = require("helpers.interpreter")
local binpack = require("helpers.binpack")
local tc = require("tricycle")
local tokenizer = require("tricycle.tokenizer")
local checkpoint = require("tricycle.checkpoint")
local tio = require("tricycle.io")

local output = arg[1]
if not output then
  io.stderr:write("usage: " .. lua_command .. " spec/fuzz/make_corpus.lua OUTPUT_FOLDER\n")
  os.exit(2)
end

local function quote(path)
  return "'" .. path:gsub("'", "'\\''") .. "'"
end

local function folder(target)
  local path = output .. "/" .. target
  assert(os.execute("mkdir -p " .. quote(path)), "cannot create " .. path)
  return path
end

-- Writes bytes through a temporary file renamed over path.
local function write(path, bytes)
  local temporary = path .. ".tmp"
  local file = assert(io.open(temporary, "wb"))
  assert(file:write(bytes))
  assert(file:close())
  assert(os.rename(temporary, path))
end

local function read(path)
  local file = assert(io.open(path, "rb"))
  local bytes = file:read("a")
  file:close()
  return bytes
end

local count = 0
local function seed(target, name, bytes)
  write(folder(target) .. "/" .. name, bytes)
  count = count + 1
end

-- The text the tokenizers learn from.
local function training_text()
  local data = os.getenv("TRICYCLE_DATA")
  local file = data and io.open(data .. "/tinyshakespeare.txt", "rb")
  if file then
    local text = file:read(6000)
    file:close()
    return text
  end
  return ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"):rep(40)
    .. "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8 \xc2\x85 \t tab 1234 it's they'll\n"
end

-- ---- safetensors (and the JSON of their headers) ----

local safetensors = folder("safetensors")
local function save(name, tensors, metadata)
  local path = safetensors .. "/" .. name .. ".safetensors"
  tio.save(path, tensors, metadata)
  count = count + 1
  local bytes = read(path)
  local length = binpack.unpack("<I8", bytes)
  seed("json", "header-" .. name .. ".json", bytes:sub(9, 8 + length))
end

save("dtypes", {
  f32 = tc.tensor({ { 1.5, -2, 3 }, { 0, 1e-30, 6e30 } }),
  f64 = tc.tensor({ 1, 2, 3, 4 }, { dtype = "float64" }),
  i32 = tc.tensor({ { { 1, -2 }, { 3, 4 } }, { { 5, 6 }, { 7, 2147483647 } } }, { dtype = "int32" }),
  i64 = tc.tensor({ -9007199254740992, 42 }, { dtype = "int64" }),
  u8 = tc.tensor({ 0, 1, 255, 7, 9 }, { dtype = "uint8" }),
  flags = tc.tensor({ true, false, true }, { dtype = "bool" }),
}, { format = "pt", note = "caf\xc3\xa9" })
save("scalar-and-empty", {
  scalar = tc.tensor(3.25),
  empty = tc.zeros({ 0, 3 }),
  eight_dims = tc.ones({ 1, 1, 1, 1, 1, 1, 2, 1 }, { dtype = "int64" }),
})
save("one-byte", { b = tc.tensor({ 1 }, { dtype = "uint8" }) })
save("no-tensors", {})
-- A view (saved as its values) and a uint8 tensor first, so the next one starts unaligned.
save("unaligned", {
  a = tc.tensor({ 1, 2, 3 }, { dtype = "uint8" }),
  b = tc.arange(0, 12):reshape(3, 4):transpose(),
})

-- ---- tokenizers ----

local text = training_text()
local bpe = tokenizer.BPETokenizer.train(text, { vocab_size = 300 })
local bpe_split = tokenizer.BPETokenizer.train(text, { vocab_size = 320, gpt2_split = true })
local chars = tokenizer.CharTokenizer.new(text)
local odd_chars = tokenizer.CharTokenizer.new("ab\"\\\xc2\x85\xe2\x80\xa8\xe2\x80\xa9\xff\x7f\x01 \xf0\x9f\x98\x80")
seed("tokenizer", "bpe.tok", bpe:serialize())
seed("tokenizer", "bpe-gpt2-split.tok", bpe_split:serialize())
seed("tokenizer", "char.tok", chars:serialize())
seed("tokenizer", "char-odd.tok", odd_chars:serialize())

-- GPT-2 writes byte b as one character: the printable bytes as themselves, the 68 others as
-- U+0100 onwards in byte order.
local gpt2_char = {}
do
  local extra = 0
  for b = 0, 255 do
    if (b >= 0x21 and b <= 0x7E) or (b >= 0xA1 and b <= 0xAC) or (b >= 0xAE and b <= 0xFF) then
      gpt2_char[b] = utf8.char(b)
    else
      gpt2_char[b] = utf8.char(256 + extra)
      extra = extra + 1
    end
  end
end

local function gpt2_string(bytes)
  return (bytes:gsub(".", function(c) return gpt2_char[c:byte()] end))
end

-- vocab.json and merges.txt for a BPE (merges read from its serialized form).
local function gpt2_files(tok)
  local entries = {}
  for id = 0, tok:vocab_size() - 1 do
    entries[#entries + 1] = tc.io.json_encode(gpt2_string(tok:token(id))) .. ": " .. id
  end
  local merges = { "#version: 0.2" }
  local serialized = tok:serialize()
  local listing = serialized:match("\nmerges %d+\n(.*)end\n$")
  for left, right in listing:gmatch("(%d+) (%d+) %d+\n") do
    merges[#merges + 1] = gpt2_string(tok:token(tonumber(left))) .. " " .. gpt2_string(tok:token(tonumber(right)))
  end
  return "{" .. table.concat(entries, ", ") .. "}", table.concat(merges, "\n") .. "\n"
end

local vocab, merges = gpt2_files(bpe_split)
seed("gpt2", "trained-gpt2-split", vocab .. "\0" .. merges)
seed("json", "vocab.json", vocab)
vocab, merges = gpt2_files(bpe)
seed("gpt2", "trained", vocab .. "\0" .. merges)

-- ---- a checkpoint ----
-- The tensors are named as the checkpoint target's stand-in for the file provides them:
-- model.weight, model.bias, optimizer.tensors.m, extra.x and the tokenizer.

local checkpoint_path = safetensors .. "/checkpoint.safetensors"
checkpoint.save(checkpoint_path, {
  model = { weight = tc.randn({ 2, 3 }), bias = tc.zeros({ 2 }) },
  optimizer = { tensors = { m = tc.zeros({ 2, 3 }) }, values = { step = 12, lr = 3e-4, betas = { 0.9, 0.999 } } },
  scheduler = { last_step = 12, warmup = 100, schedule = "cosine" },
  step = 12,
  rng = { 1234, 96 },
  config = { n_layer = 2, n_embd = 64, dropout = 0.0, name = "tiny \xe2\x80\x94 test", bias = true },
  tokenizer = chars:serialize(),
  extra = {
    x = tc.tensor({ 7 }), [1] = "first", [2.5] = "a float key", [true] = { nested = { 1, 2, { deep = "yes" } } },
  },
})
count = count + 1
do
  local file = tio.open(checkpoint_path)
  local record = file:metadata()["tricycle.checkpoint"]
  seed("checkpoint", "record.json", record)
  seed("json", "checkpoint-record.json", record)
end
checkpoint.save(safetensors .. "/checkpoint-minimal.safetensors", { step = 0 })
count = count + 1
do
  local file = tio.open(safetensors .. "/checkpoint-minimal.safetensors")
  seed("checkpoint", "record-minimal.json", file:metadata()["tricycle.checkpoint"])
end

-- ---- JSON the project writes ----

seed("json", "config.json", tc.io.json_encode({
  n_layer = 12, n_head = 12, n_embd = 768, vocab_size = 50257, block_size = 1024, dropout = 0.1,
  layer_norm_epsilon = 1e-5, tie_weights = true, name = "gpt2 \xe2\x80\x94 124M", tags = { "a", "b" }, nothing = {},
}))
seed("json", "numbers.json", tc.io.json_encode({
  9007199254740993, -9223372036854775807 - 1, 9223372036854775807, 0.1, -0.0, 1e300, 5e-324, 2 ^ 53, 1 / 3,
}))
seed("json", "strings.json", tc.io.json_encode({ "\0\1\31\127\"\\/", "\xf0\x9f\x98\x80", "", "tab\there" }))

print(("make_corpus: %d seeds in %s"):format(count, output))
