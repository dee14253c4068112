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
}
