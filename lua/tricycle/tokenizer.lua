--- tricycle.tokenizer: byte-level BPE (trained here, or loaded from GPT-2's
-- files or Hugging Face's tokenizer.json: Llama 2, Llama 3, Qwen 2/3) and a
-- character-level tokenizer.
--
--   local tokenizer = require("tricycle.tokenizer")
--   local bpe = tokenizer.BPETokenizer.train(text, { vocab_size = 1024, gpt2_split = true })
--   local ids = bpe:encode("To be, or not to be")   -- { 1, 2, ... }, 0-based ids
--   print(bpe:decode(ids))
--   bpe:save("shakespeare.tok")
--   local chars = tokenizer.CharTokenizer.new(text)
--
-- Every tokenizer has :encode(text) -> table of 0-based integer ids,
-- :encode_packed(text) -> string of native int32s, :decode(ids) -> string
-- (bytes that are not valid UTF-8 become U+FFFD), :decode_bytes(ids),
-- :token(id) -> the token's bytes, :token_id(bytes) -> the lowest id of a
-- token with exactly these bytes (nil when none), :save(path), :serialize() -> the saved
-- form as a string, :vocab_size(), :kind()
-- ("bpe" or "char"), :gpt2_split(), :close(). Tokenizers are freed by the
-- garbage collector, or at once by :close() or a `<close>` variable.
-- tokenizer.split_incomplete_utf8(bytes) holds back a character cut short
-- when printing :decode_bytes() output as it streams.
--
-- Files are read whole, and only regular files (a FIFO, a device or a
-- directory is an error naming the path); :save replaces its file
-- atomically, as tc.save does (see tricycle.io).

local compat = require("tricycle.compat")
local core = require("tricycle.core").tokenizer_core
local call = require("tricycle.errors").call
local check_options = require("tricycle.options").check_options

-- Ids are int32 in the engine.
local MAX_VOCAB = 2147483647

local M = {}

local function check_string(value, name, level)
  if type(value) ~= "string" then
    error(string.format("%s must be a string, got %s", name, type(value)), level + 1)
  end
end

local function check_kind(tok, want, who, path)
  local kind = tok:kind()
  if kind ~= want then
    tok:close()
    error(string.format("%s: '%s' holds a %s tokenizer, not %s (tokenizer.load reads any kind)",
      who, path, kind, want), 3)
  end
  return tok
end

--- Byte-level BPE.
local BPETokenizer = {}
M.BPETokenizer = BPETokenizer

--- Trains a BPE on text. opts.vocab_size (required, at least 256) is the
-- number of tokens wanted: the 256 bytes, then one per merge; training stops
-- early when no adjacent pair is left. opts.gpt2_split (default false)
-- first cuts the text into words with GPT-2's pattern, so no token crosses
-- a word boundary. The same text and options always give the same merges.
function BPETokenizer.train(text, opts)
  check_string(text, "BPETokenizer.train: text", 2)
  if opts ~= nil and type(opts) ~= "table" then
    error("BPETokenizer.train: opts must be a table, got " .. type(opts), 2)
  end
  opts = opts or {}
  check_options("BPETokenizer.train", opts, { "vocab_size", "gpt2_split" })
  local vocab_size = type(opts.vocab_size) == "number" and compat.tointeger(opts.vocab_size)
  if not vocab_size or vocab_size < 256 or vocab_size > MAX_VOCAB then
    local given = opts.vocab_size
    error(("BPETokenizer.train: opts.vocab_size must be an integer from 256 to %d, got %s"):format(MAX_VOCAB,
      type(given) == "string" and ("%q"):format(given) or tostring(given)), 2)
  end
  local split = opts.gpt2_split
  if split ~= nil and type(split) ~= "boolean" then
    error("BPETokenizer.train: opts.gpt2_split must be a boolean, got " .. type(split), 2)
  end
  return call(core.train, text, { vocab_size = vocab_size, gpt2_split = split or false })
end

--- Loads a BPE saved with :save().
function BPETokenizer.load(path)
  check_string(path, "BPETokenizer.load: path", 2)
  return check_kind(call(core.load, path), "bpe", "BPETokenizer.load", path)
end

--- Loads GPT-2's vocab.json and merges.txt. Encoding then matches GPT-2's
-- tokenizer on plain text (special tokens such as <|endoftext|> decode but
-- are never produced by :encode).
function BPETokenizer.load_gpt2(vocab_path, merges_path)
  check_string(vocab_path, "BPETokenizer.load_gpt2: vocab_path", 2)
  check_string(merges_path, "BPETokenizer.load_gpt2: merges_path", 2)
  return call(core.load_gpt2, vocab_path, merges_path)
end

--- Loads Hugging Face's tokenizer.json of a BPE model: byte-level (Llama 3,
-- Qwen 2/3, GPT-2) or SentencePiece with byte fallback (Llama 2). :encode
-- matches transformers.js's encode(text, { add_special_tokens = false }):
-- added tokens such as <|begin_of_text|> in the text become their ids, and
-- nothing is put in front (add a BOS yourself: tok:token_id("<s>")).
-- Unsupported fields of the file are errors naming the field.
function BPETokenizer.load_hf(path)
  check_string(path, "tokenizer.load_hf: path", 2)
  return call(core.load_hf, path)
end
M.load_hf = BPETokenizer.load_hf

--- One token per character (UTF-8 character; a byte outside valid UTF-8
-- counts as a character of its own).
local CharTokenizer = {}
M.CharTokenizer = CharTokenizer

--- The vocabulary is the distinct characters of text, sorted by code point.
function CharTokenizer.new(text)
  check_string(text, "CharTokenizer.new: text", 2)
  return call(core.char, text)
end

--- Loads a character tokenizer saved with :save().
function CharTokenizer.load(path)
  check_string(path, "CharTokenizer.load: path", 2)
  return check_kind(call(core.load, path), "char", "CharTokenizer.load", path)
end

--- Loads any tokenizer saved with :save().
function M.load(path)
  check_string(path, "tokenizer.load: path", 2)
  return call(core.load, path)
end

--- Makes a tokenizer from the string :serialize() returned (the text of a
-- saved file).
function M.deserialize(text)
  check_string(text, "tokenizer.deserialize: text", 2)
  return call(core.deserialize, text)
end

--- For printing decoded bytes as they stream in: returns the bytes up to a
-- UTF-8 character cut short at the end, and that character's start ("" when
-- there is none), to hold back until the rest arrives. Bytes that can never
-- become a character are not held back.
function M.split_incomplete_utf8(bytes)
  check_string(bytes, "tokenizer.split_incomplete_utf8: bytes", 2)
  return core.split_incomplete_utf8(bytes)
end

return M
