local compat = require("tricycle.compat")
local wide = require("helpers.wide")
-- Bad inputs: tokenizers. Odd paths and files for tokenizer.load,
-- BPETokenizer.load_gpt2 (vocab.json, merges.txt) and :save; broken files of
-- our own text format (through tokenizer.deserialize, which reads what
-- tokenizer.load reads); bad ids for decode and token; bad options and
-- inputs for training and encoding.
local tokenizer = require("tricycle.tokenizer")
local scratch = require("helpers.scratch")

local in_dir, write = scratch.in_dir, scratch.write
local BPE, Char = tokenizer.BPETokenizer, tokenizer.CharTokenizer

-- GPT-2's vocab.json spells byte b as one character: b itself when it is
-- printable, else U+0100 onwards in byte order.
local byte_char = {}
do
  local extra = 0
  for b = 0, 255 do
    local printable = (b >= 33 and b <= 126) or (b >= 0xA1 and b <= 0xAC) or (b >= 0xAE and b <= 0xFF)
    if printable then
      byte_char[b] = compat.utf8_char(b)
    else
      byte_char[b] = compat.utf8_char(256 + extra)
      extra = extra + 1
    end
  end
end

local function json_string(text)
  return '"' .. text:gsub('[\\"]', "\\%0") .. '"'
end

--- A vocab.json with the 256 byte tokens (ids 0..255), then `more` (a list
-- of token texts in GPT-2's spelling) from id 256.
local function full_vocab(more)
  local entries = {}
  for b = 0, 255 do
    entries[#entries + 1] = json_string(byte_char[b]) .. ":" .. b
  end
  for i, token in ipairs(more or {}) do
    entries[#entries + 1] = json_string(token) .. ":" .. (255 + i)
  end
  return "{" .. table.concat(entries, ",") .. "}"
end

--- load_gpt2 of the given vocab.json and merges.txt texts.
local function gpt2(vocab, merges)
  return function()
    in_dir(function(dir)
      BPE.load_gpt2(write(dir .. "/vocab.json", vocab), write(dir .. "/merges.txt", merges))
    end)
  end
end

local HEAD = "tricycle-tokenizer 1\nkind bpe\nsplit none\n"

--- deserialize of text (the format tokenizer.load reads).
local function our_format(text)
  return function()
    tokenizer.deserialize(text)
  end
end

local function trained()
  return BPE.train(("to be or not to be "):rep(8), { vocab_size = 270 })
end

--- train(text, opts) for the given opts.
local function train_with(opts)
  return function()
    BPE.train("hello hello", opts)
  end
end

-- ---- Hugging Face's tokenizer.json
-- A byte-level file with the 256 bytes (ids 0..255) and "ab" (256, from the
-- merge "a b"); each field of `fields` replaces the top-level field's JSON.
local function hf_json(fields, model_fields)
  local model = {
    type = '"BPE"', dropout = "null", unk_token = "null", vocab = full_vocab({ "ab" }), merges = '["a b"]',
  }
  for k, v in pairs(model_fields or {}) do model[k] = v end
  local model_parts = {}
  for _, k in ipairs({ "type", "dropout", "unk_token", "vocab", "merges", "byte_fallback",
    "continuing_subword_prefix", "extra" }) do
    if model[k] then model_parts[#model_parts + 1] = json_string(k) .. ":" .. model[k] end
  end
  local top = {
    version = '"1.0"', truncation = "null", padding = "null", added_tokens = "[]", normalizer = "null",
    pre_tokenizer = '{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}',
    post_processor = "null", decoder = '{"type": "ByteLevel"}', model = "{" .. table.concat(model_parts, ",") .. "}",
  }
  for k, v in pairs(fields or {}) do top[k] = v end
  local parts = {}
  for _, k in ipairs({ "version", "truncation", "padding", "added_tokens", "normalizer", "pre_tokenizer",
    "post_processor", "decoder", "model", "extra" }) do
    if top[k] then parts[#parts + 1] = json_string(k) .. ":" .. top[k] end
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

--- load_hf of a file holding text.
local function hf(text)
  return function()
    in_dir(function(dir)
      tokenizer.load_hf(write(dir .. "/tokenizer.json", text))
    end)
  end
end

local function added(id, content, extra)
  return '[{"id": ' .. id .. ', "content": ' .. json_string(content) .. ', "single_word": false, "lstrip": false, '
    .. '"rstrip": false, "normalized": false, "special": true' .. (extra or "") .. "}]"
end

-- SentencePiece (Llama 2): <0x00>..<0xFF> as ids 0..255 except `skip`, then "▁" and "a".
local function spm_json(model_fields, skip)
  local entries = {}
  for b = 0, 255 do
    local name = b == skip and "x" or ("<0x%02X>"):format(b)
    entries[#entries + 1] = json_string(name) .. ":" .. b
  end
  entries[#entries + 1] = '"\u{2581}": 256'
  entries[#entries + 1] = '"a": 257'
  local model = { vocab = "{" .. table.concat(entries, ",") .. "}", merges = "[]", byte_fallback = "true" }
  for k, v in pairs(model_fields or {}) do model[k] = v end
  return hf_json({
    pre_tokenizer = "null",
    normalizer = '{"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u{2581}"}, '
      .. '{"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"}]}',
    decoder = '{"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u{2581}"}, '
      .. '"content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", '
      .. '"start": 1, "stop": 0}]}',
  }, model)
end

local function split_pre_tokenizer(regex, behavior, invert)
  return '{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": ' .. json_string(regex)
    .. '}, "behavior": "' .. (behavior or "Isolated") .. '", "invert": ' .. tostring(invert or false) .. '}, '
    .. '{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}]}'
end

local HF_HEAD = "tricycle-tokenizer 1\nkind bpe\nsplit none\n"
local BYTES_TOKENS = {}
for b = 0, 255 do BYTES_TOKENS[#BYTES_TOKENS + 1] = ("%d %s"):format(b, ('"\\x%02x"'):format(b)) end
BYTES_TOKENS = "tokens 256\n" .. table.concat(BYTES_TOKENS, "\n") .. "\nmerges 0\nend\n"


return {
  -- ---- paths and what they name
  { "tokenizer.load of a FIFO (before: hung in open)", function()
    in_dir(function(dir)
      tokenizer.load(scratch.mkfifo(dir .. "/tok"))
    end)
  end, { "tokenizer.load", "tok' is a FIFO, not a regular file" } },
  { "BPETokenizer.load of a FIFO (before: hung in open)", function()
    in_dir(function(dir)
      BPE.load(scratch.mkfifo(dir .. "/tok"))
    end)
  end, { "tokenizer.load", "tok' is a FIFO" } },
  { "CharTokenizer.load of a FIFO (before: hung in open)", function()
    in_dir(function(dir)
      Char.load(scratch.mkfifo(dir .. "/tok"))
    end)
  end, { "tokenizer.load", "tok' is a FIFO" } },
  { "load_gpt2 with vocab.json a FIFO (before: hung in open)", function()
    in_dir(function(dir)
      BPE.load_gpt2(scratch.mkfifo(dir .. "/vocab.json"), write(dir .. "/merges.txt", ""))
    end)
  end, { "BPETokenizer.load_gpt2", "vocab.json' is a FIFO" } },
  { "load_gpt2 with merges.txt a FIFO (before: hung in open)", function()
    in_dir(function(dir)
      BPE.load_gpt2(write(dir .. "/vocab.json", full_vocab()), scratch.mkfifo(dir .. "/merges.txt"))
    end)
  end, { "BPETokenizer.load_gpt2", "merges.txt' is a FIFO" } },
  { "tokenizer.load of /dev/zero (before: read until memory ran out)", function()
    tokenizer.load("/dev/zero")
  end, { "tokenizer.load", "'/dev/zero' is a character device, not a regular file" } },
  { "tokenizer.load of a 3 GiB sparse file (before: read it all into memory)", function()
    in_dir(function(dir)
      local path = write(dir .. "/huge", "")
      assert(os.execute("truncate -s 3G " .. scratch.shell_quote(path)))
      tokenizer.load(path)
    end)
  end, { "tokenizer.load", "huge' is 3221225472 bytes, more than the 2147483646 this reads" } },
  { "tokenizer.load of a directory", function()
    in_dir(function(dir)
      tokenizer.load(dir)
    end)
  end, { "tokenizer.load", "is a directory, not a regular file" } },
  { "tokenizer.load of a missing file", function()
    tokenizer.load("/nonexistent/tokenizer.txt")
  end, { "tokenizer.load", "cannot open '/nonexistent/tokenizer.txt'", "No such file" } },
  { "tokenizer.load of a path with a NUL byte (before: opened the path cut at the NUL)", function()
    tokenizer.load("tok\0.txt")
  end, { "tokenizer.load: argument 1 (path)", "NUL byte at position 4" } },
  { "tokenizer.load of an empty path", function()
    tokenizer.load("")
  end, { "tokenizer.load", "path", "empty" } },
  { "load_gpt2 with a NUL byte in the merges path (before: opened the path cut at the NUL)", function()
    BPE.load_gpt2("vocab.json", "merges\0.txt")
  end, { "BPETokenizer.load_gpt2: argument 2 (path)", "NUL byte at position 7" } },
  { "tokenizer.load of an empty file", function()
    in_dir(function(dir)
      tokenizer.load(write(dir .. "/empty", ""))
    end)
  end, { "tokenizer.load", "not a tokenizer file" } },
  { "BPETokenizer.load of a character tokenizer's file", function()
    in_dir(function(dir)
      local path = dir .. "/chars.tok"
      Char.new("abc"):save(path)
      BPE.load(path)
    end)
  end, { "BPETokenizer.load", "holds a char tokenizer, not bpe" } },
  { "CharTokenizer.load of a BPE's file", function()
    in_dir(function(dir)
      local path = dir .. "/bpe.tok"
      trained():save(path)
      Char.load(path)
    end)
  end, { "CharTokenizer.load", "holds a bpe tokenizer, not char" } },
  { ":save to a path with a NUL byte (before: wrote the path cut at the NUL)", function()
    in_dir(function(dir)
      trained():save(dir .. "/tok\0.txt")
    end)
  end, { "save: argument 2 (path)", "NUL byte at position" } },
  { ":save onto a directory", function()
    in_dir(function(dir)
      trained():save(dir)
    end)
  end, { "save", "is a directory, not a regular file" } },
  { ":save onto a FIFO (before: replaced the FIFO by a file)", function()
    in_dir(function(dir)
      trained():save(scratch.mkfifo(dir .. "/tok"))
    end)
  end, { "save", "tok' is a FIFO, not a regular file" } },
  { ":save into a folder that does not exist", function()
    in_dir(function(dir)
      trained():save(dir .. "/missing/tok")
    end)
  end, { "save: cannot create a temporary file in", "missing' to write" } },

  -- ---- our text format
  { "a file with another magic line", our_format("tricycle-tokenizer 2\n"),
    { "tokenizer.deserialize", "not a tokenizer file: the first line should be `tricycle-tokenizer 1`" } },
  { "an unknown kind", our_format("tricycle-tokenizer 1\nkind word\n"),
    { "tokenizer.deserialize", "<text>:2", "expected `kind bpe` or `kind char`, found 'kind word'" } },
  { "a negative token count", our_format(HEAD .. "tokens -1\n"),
    { "<text>:4", "expected `tokens N`, found 'tokens -1'" } },
  { "a token count past 2^31", our_format(HEAD .. "tokens 99999999999\n"),
    { "<text>:4", "found 'tokens 99999999999'" } },
  { "a token count the file cannot hold", our_format(HEAD .. "tokens 2147483647\n"),
    { "<text>:4", "2147483647 tokens cannot fit in a file of" } },
  { "no tokens at all", our_format(HEAD .. "tokens 0\nmerges 0\nend\n"),
    { "tokenizer.deserialize", "the vocabulary is empty" } },
  { "tokens out of order", our_format(HEAD .. 'tokens 2\n1 "a"\n0 "b"\nmerges 0\nend\n'),
    { "<text>:5", "expected token 0 as `0 \"bytes\"`, found '1 \"a\"'" } },
  { "a bad escape in a token", our_format(HEAD .. 'tokens 1\n0 "\\q"\nmerges 0\nend\n'),
    { "<text>:5", "bad escape in token 0" } },
  { "a token without its closing quote", our_format(HEAD .. 'tokens 1\n0 "a\nmerges 0\nend\n'),
    { "<text>:5", "token 0 lacks its closing quote" } },
  { "an empty token", our_format(HEAD .. 'tokens 1\n0 ""\nmerges 0\nend\n'),
    { "<text>:5", "token 0 is empty" } },
  { "a raw control byte in a token", our_format(HEAD .. 'tokens 1\n0 "\1"\nmerges 0\nend\n'),
    { "<text>:5", "control byte 0x01 in token 0" } },
  { "a merge that names a token past the end", our_format(HEAD .. 'tokens 2\n0 "a"\n1 "b"\nmerges 1\n0 1 5\nend\n'),
    { "<text>:8", "merge 0 names token 5, past the 2 tokens" } },
  { "a merge with a negative id", our_format(HEAD .. 'tokens 2\n0 "a"\n1 "b"\nmerges 1\n0 -1 1\nend\n'),
    { "<text>:8", "expected merge 0 as `LEFT RIGHT RESULT`, found '0 -1 1'" } },
  { "a merge whose result is not the two tokens joined",
    our_format(HEAD .. 'tokens 3\n0 "a"\n1 "b"\n2 "ba"\nmerges 1\n0 1 2\nend\n'),
    { "<text>:9", "merge 0: token 2 is not token 0 followed by token 1" } },
  { "a file without `end`", our_format(HEAD .. 'tokens 1\n0 "a"\nmerges 0\n'),
    { "<text>:6", "expected `end` after the merges" } },
  { "text after `end`", our_format(HEAD .. 'tokens 1\n0 "a"\nmerges 0\nend\nmore\n'),
    { "<text>:8", "unexpected text after `end`" } },
  { "a file cut short", our_format(HEAD .. 'tokens 3\n0 "a"\n'),
    { "the file ends after 1 of 3 tokens" } },
  { "a character tokenizer with merges",
    our_format('tricycle-tokenizer 1\nkind char\nsplit none\ntokens 1\n0 "a"\nmerges 1\n0 0 0\nend\n'),
    { "<text>:6", "a character tokenizer has no merges, found 1" } },
  { "a character token of two characters",
    our_format('tricycle-tokenizer 1\nkind char\nsplit none\ntokens 1\n0 "ab"\nmerges 0\nend\n'),
    { "tokenizer.deserialize", "token 0 is not a single character" } },
  { "a BPE without the 256 byte tokens", our_format(HEAD .. 'tokens 1\n0 "a"\nmerges 0\nend\n'),
    { "tokenizer.deserialize", "no token for the byte 0x00 (a byte-level BPE needs all 256)" } },
  { "tokenizer.deserialize of an empty string", our_format(""),
    { "tokenizer.deserialize", "not a tokenizer file" } },
  { "tokenizer.deserialize of nil", function()
    tokenizer.deserialize(nil)
  end, { "tokenizer.deserialize: text must be a string, got nil" } },

  -- ---- GPT-2's vocab.json and merges.txt
  { "vocab.json that is an array", gpt2('["a"]', ""),
    { "BPETokenizer.load_gpt2", "vocab.json:1:1", "expected '{'" } },
  { "vocab.json with a negative id", gpt2('{"a":-1}', ""),
    { "vocab.json:1:6", "token ids must not be negative" } },
  { "vocab.json with a fractional id", gpt2('{"a":0.5}', ""),
    { "vocab.json:1:6", "token id is not an integer" } },
  { "vocab.json with an id past 2^31", gpt2('{"a":99999999999}', ""),
    { "vocab.json:1:6", "expected a token id (an integer below 2^31)" } },
  { "vocab.json with a string id", gpt2('{"a":"0"}', ""),
    { "vocab.json:1:6", "expected a token id" } },
  { "vocab.json with one id twice", gpt2('{"a":0,"b":0}', ""),
    { "vocab.json:1:8", "id 0 is used twice (also at line 1, column 2)" } },
  { "vocab.json with one token twice", gpt2('{"a":0,"a":1}', ""),
    { "vocab.json:1:8", "token with id 1 repeats the token with id 0" } },
  { "vocab.json with a gap in the ids", gpt2('{"a":0,"b":2}', ""),
    { "BPETokenizer.load_gpt2", "ids must run from 0 to 1 without gaps, but id 1 is missing" } },
  { "vocab.json with invalid UTF-8", gpt2('{"\255":0}', ""),
    { "vocab.json:1:2", "a byte that is not valid UTF-8" } },
  { "vocab.json with a character outside GPT-2's byte alphabet", gpt2('{" ":0}', ""),
    { "vocab.json:1:2", "token \" \" holds U+0020, which is not in GPT-2's byte alphabet" } },
  { "vocab.json with a lone surrogate", gpt2('{"\\ud800":0}', ""),
    { "vocab.json:1:3", "\\uD800 is a high surrogate without a low surrogate" } },
  { "vocab.json cut short", gpt2('{"a":0', ""),
    { "vocab.json:1:7", "the file ends inside the object (truncated?)" } },
  { "vocab.json with text after the object", gpt2('{"a":0} x', ""),
    { "vocab.json:1:9", "unexpected text after the closing '}'" } },
  { "an empty vocab.json object", gpt2("{}", ""),
    { "vocab.json:1:3", "the vocabulary is empty" } },
  { "an empty vocab.json file", gpt2("", ""),
    { "vocab.json:1:1", "the file ends where '{'" } },
  { "vocab.json without the 256 byte tokens", gpt2('{"a":0,"b":1}', ""),
    { "BPETokenizer.load_gpt2", "vocab.json': no token for the byte 0x00" } },
  { "vocab.json with a token outside GPT-2's alphabet after two that are in it (before: quoted it garbled)",
    gpt2('{"\\u0120\\u0120\\u00e9 ":0}', ""),
    { "vocab.json:1:2", "token \"\u{120}\u{120}\u{e9} \" holds U+0020, which is not in GPT-2's byte alphabet" } },
  { "vocab.json with an id written with a leading zero (before: read as 7; JSON has no such number)",
    gpt2('{"a":07}', ""), { "vocab.json:1:6", "leading zeros are not allowed in numbers" } },
  { "vocab.json cut inside a token string", gpt2('{"ab', ""),
    { "vocab.json:1:2", "string not closed before the end of the file (truncated?)" } },
  { "vocab.json cut after a colon", gpt2('{"a":0,\n "b":\n', ""),
    { "vocab.json:3:1", "the file ends inside the object (truncated?)" } },
  { "vocab.json cut inside a \\u escape", gpt2('{"\\u01', ""), { "vocab.json:1:5", "four hex digits" } },
  { "vocab.json with a trailing comma", gpt2('{"a":0,}', ""),
    { "vocab.json:1:8", "expected a string key in an object, found '}'" } },
  { "vocab.json with a high surrogate before another escape", gpt2('{"\\ud800\\u0041":0}', ""),
    { "vocab.json:1:3", "\\uD800 is a high surrogate without a low surrogate", "followed by \\u0041, not a low one" } },
  { "vocab.json with a lone low surrogate", gpt2('{"\\udc00":0}', ""),
    { "vocab.json:1:3", "lone low surrogate \\uDC00" } },
  { "vocab.json with a raw control byte in a token", gpt2('{"a\1":0}', ""),
    { "vocab.json:1:4", "control character 0x01 in a string (escape it)" } },
  { "vocab.json with invalid UTF-8 in a value", gpt2('{"a":"\255"}', ""),
    { "vocab.json:1:6", "a string holds a byte that is not valid UTF-8 (0xff at column 7)" } },
  { "vocab.json with an array for an id", gpt2('{"a":[1]}', ""),
    { "vocab.json:1:6", "expected a token id (an integer below 2^31)" } },
  { "vocab.json with arrays nested past JSON's depth limit",
    gpt2('{"a":' .. ("["):rep(100) .. ("]"):rep(100) .. "}", ""),
    { "vocab.json:1:69", "nesting deeper than 64 levels" } },
  { "vocab.json with an id past 2^63", gpt2('{"a":123456789012345678901234567890}', ""),
    { "vocab.json:1:6", "expected a token id (an integer below 2^31)" } },
  { "vocab.json with an id in exponent form", gpt2('{"a":1e3}', ""),
    { "vocab.json:1:6", "token id is not an integer" } },
  { "vocab.json with the id -0", gpt2('{"a":-0}', ""), { "vocab.json:1:6", "token ids must not be negative" } },
  { "vocab.json with an empty token", gpt2('{"":0}', ""), { "vocab.json:1:2", "the empty string is not a token" } },
  { "vocab.json with one id twice on two lines", gpt2('{"a":0,\n  "b":0}', ""),
    { "vocab.json:2:3", "id 0 is used twice (also at line 1, column 2)" } },
  { "vocab.json with a byte order mark, then a negative id", gpt2('\239\187\191{"a":-1}', ""),
    { "vocab.json:1:6", "token ids must not be negative" } },
  { "vocab.json with a byte order mark and nothing else", gpt2('\239\187\191', ""),
    { "vocab.json:1:1", "the file ends where '{'" } },
  { "vocab.json that is a number", gpt2(" 12", ""),
    { "vocab.json:1:2", "expected '{' (vocab.json holds one object of token: id), found '1'" } },
  { "a merges.txt line with one token", gpt2(full_vocab({ "ab" }), "#version: 0.2\nab\n"),
    { "merges.txt:2", "expected a merge `LEFT RIGHT` (two tokens, one space), found 'ab'" } },
  { "a merges.txt line with two spaces", gpt2(full_vocab({ "ab" }), "a  b\n"),
    { "merges.txt:1", "found 'a  b'" } },
  { "a merge of a token the vocabulary lacks", gpt2(full_vocab({ "ab" }), "a \196\160x\n"),
    { "merges.txt:1", "is not in the vocabulary" } },
  { "a merge whose result the vocabulary lacks", gpt2(full_vocab(), "a b\n"),
    { "merges.txt:1", "the merged token \"ab\" is not in the vocabulary" } },
  { "the same merge twice", gpt2(full_vocab({ "ab" }), "a b\na b\n"),
    { "merges.txt:2", "merge 'a b' repeats line 1" } },
  { "a merges.txt line with invalid UTF-8", gpt2(full_vocab({ "ab" }), "a \255\n"),
    { "merges.txt:1", "a byte that is not valid UTF-8" } },

  -- ---- ids for decode and token
  { "decode of a negative id (before: called the second id ids[1])", function()
    trained():decode({ 5, -1 })
  end, { "decode: ids[2] = -1 is out of range for a vocabulary of 270 tokens (0..269)" } },
  { "decode of an id equal to the vocabulary size (before: named ids[0])", function()
    trained():decode({ 270 })
  end, { "decode: ids[1] = 270 is out of range" } },
  { "decode of an id past 2^31", function()
    trained():decode({ 1099511627776 })
  end, { "decode: ids[1] = 1099511627776 is out of range" } },
  { "decode of a fraction", function()
    trained():decode({ 1.5 })
  end, { "decode: ids[1] must be an integer, got 1.5" } },
  { "decode of NaN (before: called a fraction)", function()
    trained():decode({ 0 / 0 })
  end, { "decode: ids[1] must be an integer, got", "nan" } },
  { "decode of infinity", function()
    trained():decode({ math.huge })
  end, { "decode: ids[1] must be an integer, got inf" } },
  { "decode of a string id", function()
    trained():decode({ "3" })
  end, { "decode: ids[1] must be an integer, got string" } },
  { "decode of a table with a hole", function()
    trained():decode({ 1, nil, 3 })
  end, { "decode: ids[2] must be an integer, got nil" } },
  { "decode of nil", function()
    trained():decode(nil)
  end, { "decode: argument 1 (ids) must be a table of integers, got nil" } },
  { "decode of a table whose __len claims 2^62 entries (before: wrote past a zero-byte buffer)", function()
    trained():decode(setmetatable({ 1, 2, 3, "x" }, { __len = function() return wide(62) end }))
  end, { "decode: ids[4] must be an integer, got string" } },
  { "decode_bytes of an id out of range (before: named ids[0])", function()
    trained():decode_bytes({ 300 })
  end, { "decode_bytes: ids[1] = 300 is out of range" } },
  { "a character tokenizer's decode past its vocabulary", function()
    Char.new("abc"):decode({ 3 })
  end, { "decode: ids[1] = 3 is out of range for a vocabulary of 3 tokens (0..2)" } },
  { "token of a negative id", function()
    trained():token(-1)
  end, { "token: id -1 is out of range for a vocabulary of 270 tokens (0..269)" } },
  { "token of a fraction (before: did not say which value)", function()
    trained():token(2.5)
  end, { "token: id must be an integer, got 2.5" } },
  { "token of NaN", function()
    trained():token(0 / 0)
  end, { "token: id must be an integer, got", "nan" } },

  -- ---- encoding
  { "encode of nil", function()
    trained():encode(nil)
  end, { "encode", "string expected, got nil" } },
  { "a character tokenizer's encode of a missing character", function()
    Char.new("hello"):encode("hez")
  end, { "encode: character 'z' (U+007A) at byte offset 2 is not in the vocabulary" } },
  { "a character tokenizer's encode of invalid UTF-8", function()
    Char.new("hello"):encode("h\255")
  end, { "encode: byte 0xff at byte offset 1 is not in the vocabulary" } },
  { "split_incomplete_utf8 of nil", function()
    tokenizer.split_incomplete_utf8(nil)
  end, { "tokenizer.split_incomplete_utf8: bytes must be a string, got nil" } },
  { "split_incomplete_utf8 of a number", function()
    tokenizer.split_incomplete_utf8(42)
  end, { "tokenizer.split_incomplete_utf8: bytes must be a string, got number" } },
  { "encode with a closed tokenizer", function()
    local tok = Char.new("ab")
    tok:close()
    tok:encode("a")
  end, { "encode", "the tokenizer is closed" } },

  -- ---- training and construction
  { "train with vocab_size 255", train_with({ vocab_size = 255 }),
    { "BPETokenizer.train: opts.vocab_size must be an integer from 256 to 2147483647, got 255" } },
  { "train with vocab_size 0", train_with({ vocab_size = 0 }), { "opts.vocab_size", "got 0" } },
  { "train with vocab_size -1", train_with({ vocab_size = -1 }), { "opts.vocab_size", "got -1" } },
  { "train with a fractional vocab_size", train_with({ vocab_size = 300.5 }), { "opts.vocab_size", "got 300.5" } },
  { "train with vocab_size NaN", train_with({ vocab_size = 0 / 0 }), { "opts.vocab_size", "nan" } },
  { "train with vocab_size infinity", train_with({ vocab_size = math.huge }), { "opts.vocab_size", "got inf" } },
  { "train with vocab_size as a string", train_with({ vocab_size = "300" }), { "opts.vocab_size", 'got "300"' } },
  { "train with vocab_size 2^40", train_with({ vocab_size = 1099511627776 }),
    { "BPETokenizer.train: opts.vocab_size", "got 1099511627776" } },
  { "train without vocab_size", train_with({}), { "opts.vocab_size", "got nil" } },
  { "train with an unknown option (before: ignored)", train_with({ vocab_size = 300, vocab = 3 }),
    { "BPETokenizer.train: unknown option 'vocab' (valid: gpt2_split, vocab_size)" } },
  { "train with gpt2_split a string", train_with({ vocab_size = 300, gpt2_split = "yes" }),
    { "BPETokenizer.train: opts.gpt2_split must be a boolean, got string" } },
  { "train with opts a number", train_with(300), { "BPETokenizer.train: opts must be a table, got number" } },
  { "train on nil", function()
    BPE.train(nil, { vocab_size = 300 })
  end, { "BPETokenizer.train: text must be a string, got nil" } },
  { "a character tokenizer of empty text", function()
    Char.new("")
  end, { "CharTokenizer.new", "text is empty" } },
  { "a character tokenizer of a table", function()
    Char.new({})
  end, { "CharTokenizer.new: text must be a string, got table" } },

  -- ---- Hugging Face's tokenizer.json (tokenizer.load_hf)
  { "load_hf of a path that is a number", function()
    tokenizer.load_hf(42)
  end, { "tokenizer.load_hf: path must be a string, got number" } },
  { "load_hf of a missing file", function()
    in_dir(function(dir)
      tokenizer.load_hf(dir .. "/absent.json")
    end)
  end, { "tokenizer.load_hf", "absent.json" } },
  { "load_hf of a folder", function()
    in_dir(function(dir)
      tokenizer.load_hf(dir)
    end)
  end, { "tokenizer.load_hf" } },
  { "load_hf of an empty file", hf(""), { "tokenizer.load_hf", "tokenizer.json", "not valid JSON at byte 0" } },
  { "load_hf of a truncated file", hf(hf_json():sub(1, 200)), { "tokenizer.load_hf", "not valid JSON" } },
  { "load_hf of a JSON array", hf("[]"),
    { "tokenizer.load_hf", "the file (one JSON object) must be an object, found an array" } },
  { "load_hf with an unknown top-level field", hf(hf_json({ extra = "1" })),
    { "tokenizer.load_hf", 'the top level has the unknown field "extra"', "known: version, truncation" } },
  { "load_hf with truncation set", hf(hf_json({ truncation = '{"max_length": 5}' })),
    { "tokenizer.load_hf", "truncation is not supported (null only)" } },
  { "load_hf without a model", hf(hf_json({ model = "null" })),
    { "tokenizer.load_hf", "model must be an object, found null" } },
  { "load_hf of a WordPiece model", hf(hf_json(nil, { type = '"WordPiece"' })),
    { "tokenizer.load_hf", 'model.type "WordPiece" is not supported (only BPE)' } },
  { "load_hf with an unknown model field", hf(hf_json(nil, { extra = "1" })),
    { "tokenizer.load_hf", 'model has the unknown field "extra"' } },
  { "load_hf with dropout", hf(hf_json(nil, { dropout = "0.1" })),
    { "tokenizer.load_hf", "model.dropout is not supported" } },
  { "load_hf with a subword prefix", hf(hf_json(nil, { continuing_subword_prefix = '"##"' })),
    { "tokenizer.load_hf", "model.continuing_subword_prefix is not supported" } },
  { "load_hf without merges", hf(hf_json(nil, { merges = false })),
    { "tokenizer.load_hf", "model.merges is missing" } },
  { "load_hf with merges an object", hf(hf_json(nil, { merges = "{}" })),
    { "tokenizer.load_hf", "model.merges must be an array, found an object" } },
  { "load_hf with vocab an array", hf(hf_json(nil, { vocab = "[]" })),
    { "tokenizer.load_hf", "model.vocab must be an object, found an array" } },
  { "load_hf with an empty vocab", hf(hf_json(nil, { vocab = "{}", merges = "[]" })),
    { "tokenizer.load_hf", "model.vocab is empty" } },
  { "load_hf with a merge of one token", hf(hf_json(nil, { merges = '["ab"]' })),
    { "tokenizer.load_hf", 'model.merges[0] "ab" is not `LEFT RIGHT`' } },
  { "load_hf with a merge of three tokens", hf(hf_json(nil, { merges = '["a b c"]' })),
    { "tokenizer.load_hf", "model.merges[0]", "is not `LEFT RIGHT`" } },
  { "load_hf with a merge that is a number", hf(hf_json(nil, { merges = "[7]" })),
    { "tokenizer.load_hf", "model.merges[0] must be a string `LEFT RIGHT` or a pair of strings, found an integer" } },
  { "load_hf with a merge of an unknown token", hf(hf_json(nil, { merges = '["a b", "zz b"]' })),
    { "tokenizer.load_hf", 'model.merges[1]: token "zz" is not in model.vocab' } },
  { "load_hf with a merge whose result is missing", hf(hf_json(nil, { merges = '["b a"]' })),
    { "tokenizer.load_hf", 'model.merges[0]: the merged token "ba" is not in model.vocab' } },
  { "load_hf with a merge repeated", hf(hf_json(nil, { merges = '["a b", ["a", "b"]]' })),
    { "tokenizer.load_hf", "merge 1 (97 98) repeats merge 0" } },
  { "load_hf with a negative id", hf(hf_json(nil, { vocab = '{"a": -1}' })),
    { "tokenizer.load_hf", 'model.vocab "a": its id must be an integer id from 0 to 2147483646' } },
  { "load_hf with an id 2^31", hf(hf_json(nil, { vocab = '{"a": 2147483648}' })),
    { "tokenizer.load_hf", "must be an integer id" } },
  { "load_hf with a fractional id", hf(hf_json(nil, { vocab = '{"a": 1.5}' })),
    { "tokenizer.load_hf", "must be an integer id" } },
  { "load_hf with a gap in the ids", hf(hf_json(nil, { vocab = '{"a": 0, "b": 2}', merges = "[]" })),
    { "tokenizer.load_hf", "ids run up to 2 but there are only 2 tokens" } },
  { "load_hf with an id used twice", hf(hf_json(nil, { vocab = '{"a": 0, "b": 0, "c": 1}', merges = "[]" })),
    { "tokenizer.load_hf", 'model.vocab: id 0 is given to both "a" and "b"' } },
  { "load_hf with a token outside the byte alphabet", hf(hf_json(nil, { vocab = '{"\u{4E2D}": 0}', merges = "[]" })),
    { "tokenizer.load_hf", "U+4E2D, which is not in the byte-level alphabet" } },
  { "load_hf without the byte 0x00", hf(hf_json(nil, { vocab = '{"a": 0, "b": 1, "ab": 2}' })),
    { "tokenizer.load_hf", "no token for the byte 0x00 (a byte-level BPE needs all 256)" } },
  { "load_hf with an unknown pre_tokenizer", hf(hf_json({ pre_tokenizer = '{"type": "Whitespace"}' })),
    { "tokenizer.load_hf", 'pre_tokenizer.type "Whitespace" is not supported' } },
  { "load_hf with a pre_tokenizer without a type", hf(hf_json({ pre_tokenizer = "{}" })),
    { "tokenizer.load_hf", "pre_tokenizer.type is missing" } },
  { "load_hf with add_prefix_space", hf(hf_json({ pre_tokenizer = '{"type": "ByteLevel", "add_prefix_space": true}' })),
    { "tokenizer.load_hf", "pre_tokenizer.add_prefix_space = true is not supported (only false)" } },
  { "load_hf with use_regex a string", hf(hf_json({ pre_tokenizer = '{"type": "ByteLevel", "use_regex": "yes"}' })),
    { "tokenizer.load_hf", "pre_tokenizer.use_regex must be a boolean or null" } },
  { "load_hf with an unknown split pattern", hf(hf_json({ pre_tokenizer = split_pre_tokenizer("\\w+|\\s+") })),
    { "tokenizer.load_hf", 'pre_tokenizer.pretokenizers[0].pattern.Regex "\\w+|\\s+" is not a supported pattern' } },
  { "load_hf with a split that removes", hf(hf_json({ pre_tokenizer = split_pre_tokenizer("\\s+", "Removed") })),
    { "tokenizer.load_hf", 'pre_tokenizer.pretokenizers[0].behavior is "Removed"; only "Isolated" is supported' } },
  { "load_hf with an inverted split", hf(hf_json({ pre_tokenizer = split_pre_tokenizer("\\s+", "Isolated", true) })),
    { "tokenizer.load_hf", "pre_tokenizer.pretokenizers[0].invert = true is not supported" } },
  { "load_hf with three pre-tokenizers", hf(hf_json({
    pre_tokenizer = '{"type": "Sequence", "pretokenizers": [{"type": "Split"}, {"type": "ByteLevel"}, {}]}' })),
    { "tokenizer.load_hf", "pre_tokenizer.pretokenizers must be [Split, ByteLevel] (3 items found)" } },
  { "load_hf with an NFKC normalizer", hf(hf_json({ normalizer = '{"type": "NFKC"}' })),
    { "tokenizer.load_hf", 'normalizer of type "NFKC" is not supported' } },
  { "load_hf with a WordPiece decoder", hf(hf_json({ decoder = '{"type": "WordPiece"}' })),
    { "tokenizer.load_hf", 'decoder.type "WordPiece" does not undo a ByteLevel pre-tokenizer' } },
  { "load_hf without a decoder", hf(hf_json({ decoder = "null" })),
    { "tokenizer.load_hf", "decoder is missing (null)" } },
  { "load_hf with added_tokens an object", hf(hf_json({ added_tokens = "{}" })),
    { "tokenizer.load_hf", "added_tokens must be an array, found an object" } },
  { "load_hf with an unknown field in an added token", hf(hf_json({ added_tokens = added(257, "<x>", ', "x": 1') })),
    { "tokenizer.load_hf", 'added_tokens[0] has the unknown field "x"' } },
  { "load_hf with lstrip", hf(hf_json({ added_tokens = added(257, "<x>"):gsub('"lstrip": false', '"lstrip": true') })),
    { "tokenizer.load_hf", "added_tokens[0].lstrip = true is not supported (only false)" } },
  { "load_hf with an empty added token", hf(hf_json({ added_tokens = added(257, "") })),
    { "tokenizer.load_hf", "added_tokens[0].content is empty" } },
  { "load_hf with an added token without an id",
    hf(hf_json({ added_tokens = added(257, "<x>"):gsub('"id": 257, ', '') })),
    { "tokenizer.load_hf", "added_tokens[0]: id must be an integer id" } },
  { "load_hf with an added token that renames a token", hf(hf_json({ added_tokens = added(97, "<x>") })),
    { "tokenizer.load_hf", 'added_tokens[0]: id 97 is "a" in model.vocab but "<x>" here' } },
  { "load_hf with an added token past a gap", hf(hf_json({ added_tokens = added(300, "<x>") })),
    { "tokenizer.load_hf", "ids run up to 300 but there are only 258 tokens" } },
  { "load_hf of SentencePiece without byte fallback", hf(spm_json({ byte_fallback = "false" })),
    { "tokenizer.load_hf", "model.byte_fallback must be true for a SentencePiece model" } },
  { "load_hf of SentencePiece without the byte token <0x41>", hf(spm_json(nil, 0x41)),
    { "tokenizer.load_hf", "model.vocab has no byte token <0x41>" } },
  { "load_hf of SentencePiece with a byte token spelled <0x4g>", hf(spm_json({
    vocab = spm_json():match('"vocab":(%b{})'):gsub('"<0x4A>"', '"<0x4g>"') })),
    { "tokenizer.load_hf", "model.vocab has no byte token <0x4A>" } },
  { "load_hf of SentencePiece with a ByteLevel decoder",
    hf(spm_json():gsub('"decoder":%b{}', '"decoder":{"type":"ByteLevel"}')),
    { "tokenizer.load_hf", 'decoder of type "ByteLevel" is not supported for a SentencePiece model' } },
  { "load_hf of byte fallback with a ByteLevel pre-tokenizer", hf(hf_json(nil, { byte_fallback = "true" })),
    { "tokenizer.load_hf", "model.byte_fallback = true with a ByteLevel pre-tokenizer" } },
  { "load_hf with neither a pre-tokenizer nor SentencePiece", hf(hf_json({ pre_tokenizer = "null" })),
    { "tokenizer.load_hf", "neither a byte-level nor a SentencePiece BPE" } },
  { "token_id of a table", function()
    trained():token_id({})
  end, { "token_id" } },

  -- ---- what load_hf adds to our format
  { "deserialize with an unknown split", our_format("tricycle-tokenizer 1\nkind bpe\nsplit llama4\n" .. BYTES_TOKENS),
    { "tokenizer.deserialize", "<text>:3", "expected `split none`, `split gpt2`, `split llama3` or `split qwen2`" } },
  { "deserialize with an unknown hf option", our_format(HF_HEAD .. "hf nfc lowercase\n" .. BYTES_TOKENS),
    { "tokenizer.deserialize", "<text>:4", "`hf`: unknown option 'lowercase'" } },
  { "deserialize with an added token past the tokens", our_format(HF_HEAD .. "added 1 999\n" .. BYTES_TOKENS),
    { "tokenizer.deserialize", "added token id 999 is past the 256 tokens" } },
  { "deserialize with too few added ids", our_format(HF_HEAD .. "added 2 5\n" .. BYTES_TOKENS),
    { "tokenizer.deserialize", "`added`: expected 2 ids, found 1" } },
  { "deserialize with added 0", our_format(HF_HEAD .. "added 0\n" .. BYTES_TOKENS),
    { "tokenizer.deserialize", "expected `added N ID ...`" } },
  { "deserialize with a bytes line naming the wrong tokens", our_format(HF_HEAD .. "bytes" .. (" 7"):rep(256)
    .. "\n" .. BYTES_TOKENS), { "tokenizer.deserialize", "`bytes`: token 7 is not the byte 0x00" } },
  { "deserialize with a short bytes line", our_format(HF_HEAD .. "bytes 1 2\n" .. BYTES_TOKENS),
    { "tokenizer.deserialize", "`bytes`: expected 256 ids, found 2" } },
  { "deserialize of sentencepiece without bytes", our_format(HF_HEAD .. "hf sentencepiece\n" .. BYTES_TOKENS),
    { "tokenizer.deserialize", "a sentencepiece tokenizer needs its `bytes` line" } },
  { "deserialize of a character tokenizer with a pattern", our_format("tricycle-tokenizer 1\nkind char\nsplit qwen2\n"
    .. 'tokens 1\n0 "a"\nmerges 0\nend\n'),
    { "tokenizer.deserialize", "a character tokenizer has no split pattern" } },
}
