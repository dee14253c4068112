-- Specs of tricycle.tokenizer (the Lua face of the C tokenizers).

local lua54 = require("helpers.lua54")
local binpack = require("helpers.binpack")
local compat = require("tricycle.compat")
local number_type = require("helpers.number_type")
local tokenizer = require("tricycle.tokenizer")
local BPETokenizer = tokenizer.BPETokenizer
local CharTokenizer = tokenizer.CharTokenizer

local scratch = require("helpers.scratch")
local temp_path, write_file, read_file, shakespeare = scratch.temp_path, scratch.write, scratch.read,
  scratch.shakespeare

-- GPT-2's byte-to-character mapping, for writing a small vocab.json.
local function gpt2_alphabet()
  local printable, others = {}, {}
  for b = 0, 255 do
    if (b >= 33 and b <= 126) or (b >= 0xA1 and b <= 0xAC) or b >= 0xAE then
      printable[#printable + 1] = b
    else
      others[#others + 1] = b
    end
  end
  local char_of, id_of = {}, {}
  for i, b in ipairs(printable) do
    char_of[b], id_of[b] = b, i - 1
  end
  for i, b in ipairs(others) do
    char_of[b], id_of[b] = 255 + i, #printable + i - 1
  end
  return char_of, id_of
end

describe("tricycle.tokenizer", function()
  describe("BPETokenizer.train", function()
    it("merges the most frequent pair first, ties to the smaller pair", function()
      -- aaabdaaabac: (97,97) -> 256, then (97,98) -> 257 (tied with
      -- (256,97), smaller), then (256,257) -> 258 = "aaab".
      local tok = BPETokenizer.train("aaabdaaabac", { vocab_size = 259 })
      assert.are.equal(259, tok:vocab_size())
      assert.are.equal("bpe", tok:kind())
      assert.is_false(tok:gpt2_split())
      assert.are.equal("aaab", tok:token(258))
      local ids = tok:encode("aaabdaaabac")
      assert.are.same({ 258, 100, 258, 97, 99 }, ids)
      assert.are.equal("aaabdaaabac", tok:decode(ids))
    end)

    it("keeps merges inside GPT-2 words when asked, stopping when no pair is left", function()
      local tok = BPETokenizer.train("hello hello", { vocab_size = 1000, gpt2_split = true })
      assert.are.equal(261, tok:vocab_size())
      assert.is_true(tok:gpt2_split())
      assert.are.same({ 259, 260 }, tok:encode("hello hello"))
      assert.are.equal(" hello", tok:token(260))
      local whole = BPETokenizer.train("hello hello", { vocab_size = 1000 })
      assert.are.same(1, #whole:encode("hello hello"))
    end)

    it("is deterministic", function()
      local text = string.rep("the cat sat on the mat; the dog sat on the log. ", 20)
      local a = BPETokenizer.train(text, { vocab_size = 300, gpt2_split = true })
      local b = BPETokenizer.train(text, { vocab_size = 300, gpt2_split = true })
      assert.are.same(a:encode(text), b:encode(text))
      for id = 256, a:vocab_size() - 1 do
        assert.are.equal(a:token(id), b:token(id))
      end
    end)

    it("checks its options", function()
      assert.has_error(function() BPETokenizer.train("abc", {}) end,
        "BPETokenizer.train: opts.vocab_size must be an integer from 256 to 2147483647, got nil")
      assert.has_error(function() BPETokenizer.train("abc", { vocab_size = 100 }) end)
      assert.has_error(function() BPETokenizer.train("abc", { vocab_size = 300.5 }) end)
      assert.has_error(function() BPETokenizer.train("abc", { vocab_size = 300, gpt2_split = "yes" }) end)
      assert.has_error(function() BPETokenizer.train(42, { vocab_size = 300 }) end)
    end)

    it("round-trips all of Tiny Shakespeare", function()
      local text = shakespeare()
      if not text then
        pending("tinyshakespeare.txt is missing")
        return
      end
      for _, split in ipairs({ false, true }) do
        local tok = BPETokenizer.train(text, { vocab_size = 512, gpt2_split = split })
        local ids = tok:encode(text)
        assert.is_true(#ids < #text * 0.7)
        assert.are.equal(text, tok:decode(ids))
      end
    end)
  end)

  describe("encode and decode", function()
    local tok = BPETokenizer.train("abab", { vocab_size = 257 })

    it("gives 0-based integer ids, also packed as int32", function()
      local ids = tok:encode("abxab")
      assert.are.same({ 256, 120, 256 }, ids)
      assert.are.equal("integer", number_type(ids[1]))
      local packed = tok:encode_packed("abxab")
      assert.are.equal(12, #packed)
      local a, b, c = binpack.unpack("=i4i4i4", packed)
      assert.are.same(ids, { a, b, c })
      assert.are.same({}, tok:encode(""))
      assert.are.equal("", tok:decode({}))
    end)

    it("turns cut UTF-8 into U+FFFD, or keeps the bytes with decode_bytes", function()
      assert.are.equal("\u{e9}", tok:decode({ 0xC3, 0xA9 }))
      assert.are.equal("x\u{FFFD}y", tok:decode({ 120, 0xE2, 0x82, 121 }))
      assert.are.equal("x\xE2\x82y", tok:decode_bytes({ 120, 0xE2, 0x82, 121 }))
    end)

    it("rejects ids out of range and values that are not integers", function()
      local ok, message = pcall(tok.decode, tok, { 97, 257 })
      assert.is_false(ok)
      assert.matches("ids%[2%] = 257 is out of range", message) -- positions from 1, as Lua counts
      ok, message = pcall(tok.decode, tok, { 97, 1.5 })
      assert.is_false(ok)
      assert.matches("ids%[2%] must be an integer", message)
      ok, message = pcall(tok.decode, tok, { "a" })
      assert.is_false(ok)
      assert.matches("ids%[1%] must be an integer, got string", message)
      assert.has_error(function() tok:decode("abc") end)
      assert.has_error(function() tok:token(257) end)
    end)
  end)

  describe("CharTokenizer", function()
    it("numbers the sorted distinct characters", function()
      local tok = CharTokenizer.new("hello")
      assert.are.equal("char", tok:kind())
      assert.are.equal(4, tok:vocab_size())
      assert.are.same({ 1, 0, 2, 2, 3 }, tok:encode("hello"))
      assert.are.equal("hole", tok:decode({ 1, 3, 2, 0 }))
    end)

    it("treats a UTF-8 character as one token", function()
      local tok = CharTokenizer.new("h\u{e9}llo \u{20ac}")
      assert.are.equal(6, tok:vocab_size())
      assert.are.same({ 5, 4 }, tok:encode("\u{20ac}\u{e9}"))
    end)

    it("names a character outside its vocabulary", function()
      local tok = CharTokenizer.new("hello")
      local ok, message = pcall(tok.encode, tok, "help")
      assert.is_false(ok)
      assert.matches("'p' %(U%+0070%) at byte offset 3 is not in the vocabulary", message)
      assert.has_error(function() CharTokenizer.new("") end)
    end)
  end)

  describe("save and load", function()
    it("round-trips exactly", function()
      local path = temp_path()
      local text = "say \"hi\"\\ \"hi\"\\ \0\0 \xff\xff caf\u{e9} caf\u{e9}\n\n"
      local tok = BPETokenizer.train(text, { vocab_size = 300, gpt2_split = true })
      tok:save(path)
      local loaded = BPETokenizer.load(path)
      assert.are.equal(tok:vocab_size(), loaded:vocab_size())
      assert.is_true(loaded:gpt2_split())
      assert.are.same(tok:encode(text), loaded:encode(text))
      assert.are.equal(text, loaded:decode_bytes(loaded:encode(text)))
      local path2 = temp_path()
      loaded:save(path2)
      assert.are.equal(read_file(path), read_file(path2))
      os.remove(path)
      os.remove(path2)
    end)

    it("serializes to the same text as the file", function()
      local path = temp_path()
      local tok = BPETokenizer.train("low lower lowest", { vocab_size = 270, gpt2_split = true })
      tok:save(path)
      local text = tok:serialize()
      assert.are.equal(read_file(path), text)
      local back = tokenizer.deserialize(text)
      assert.are.same(tok:encode("lowest low"), back:encode("lowest low"))
      local ok, message = pcall(tokenizer.deserialize, "tricycle-tokenizer 1\nkind bpe\n")
      assert.is_false(ok)
      assert.is_truthy(message:find("<text>:2:", 1, true))
      os.remove(path)
    end)

    it("loads each kind through its own class, any through tokenizer.load", function()
      local path = temp_path()
      CharTokenizer.new("abc"):save(path)
      assert.are.equal("char", CharTokenizer.load(path):kind())
      assert.are.equal("char", tokenizer.load(path):kind())
      local ok, message = pcall(BPETokenizer.load, path)
      assert.is_false(ok)
      assert.matches("holds a char tokenizer, not bpe", message)
      os.remove(path)
    end)

    it("reports bad files with the path and line", function()
      local path = temp_path()
      local ok, message = pcall(BPETokenizer.load, path)
      assert.is_false(ok)
      assert.matches("cannot open", message, 1, true)
      write_file(path, "tricycle-tokenizer 1\nkind bpe\nsplit maybe\n")
      ok, message = pcall(BPETokenizer.load, path)
      assert.is_false(ok)
      assert.is_truthy(message:find(path .. ":3: expected `split none`, `split gpt2`, `split llama3` or `split qwen2`",
        1, true))
      os.remove(path)
    end)
  end)

  describe("BPETokenizer.load_gpt2", function()
    it("reads vocab.json and merges.txt and encodes like GPT-2", function()
      local char_of, id_of = gpt2_alphabet()
      local entries = {}
      for b = 0, 255 do
        entries[#entries + 1] = string.format("\"\\u%04x\": %d", char_of[b], id_of[b])
      end
      -- U+0120 is GPT-2's character for the space byte.
      entries[#entries + 1] = "\"\\u0120t\": 256"
      entries[#entries + 1] = "\"he\": 257"
      entries[#entries + 1] = "\"\u{120}the\": 258"
      entries[#entries + 1] = "\"<|endoftext|>\": 259"
      local vocab, merges = temp_path(), temp_path()
      write_file(vocab, "{" .. table.concat(entries, ", ") .. "}")
      write_file(merges, "#version: 0.2\n\u{120} t\nh e\n\u{120}t he\n")
      local tok = BPETokenizer.load_gpt2(vocab, merges)
      assert.are.equal(260, tok:vocab_size())
      assert.are.same({ 258, id_of[32], id_of[99], id_of[97], id_of[116] }, tok:encode(" the cat"))
      assert.are.equal(" the<|endoftext|>", tok:decode({ 258, 259 }))
      write_file(merges, "#version: 0.2\n\u{120} t\nh x\n")
      local ok, message = pcall(BPETokenizer.load_gpt2, vocab, merges)
      assert.is_false(ok)
      assert.is_truthy(message:find(merges .. ":3: the merged token \"hx\" is not in the vocabulary", 1, true))
      os.remove(vocab)
      os.remove(merges)
    end)
  end)

  describe("split_incomplete_utf8", function()
    it("holds back a character cut short, to print streamed bytes whole", function()
      local split = tokenizer.split_incomplete_utf8
      assert.are.same({ "ab", "\xE2\x82" }, { split("ab\xE2\x82") })
      assert.are.same({ "ab\u{20AC}", "" }, { split("ab\u{20AC}") })
      assert.are.same({ "", "\xF0\x9F\x98" }, { split("\xF0\x9F\x98") })
      assert.are.same({ "", "" }, { split("") })
      -- bytes that can never become a character are not held back
      assert.are.same({ "a\xC0", "" }, { split("a\xC0") })
      assert.are.same({ "\xED\xA0", "" }, { split("\xED\xA0") })
      assert.are.same({ "\x80\x80\x80", "" }, { split("\x80\x80\x80") })
      -- token by token, the printed bytes are the decoded text, and every piece printed is valid UTF-8
      local text = "caf\u{E9} \u{20AC}5 \u{1F600}!"
      local tok = BPETokenizer.train(text, { vocab_size = 256 })
      local printed, pending = {}, ""
      for _, id in ipairs(tok:encode(text)) do
        local complete
        complete, pending = split(pending .. tok:decode_bytes({ id }))
        assert.is_truthy(compat.utf8_len(complete))
        printed[#printed + 1] = complete
      end
      assert.are.equal("", pending)
      assert.are.equal(text, table.concat(printed))
    end)
  end)

  describe("lifetime", function()
    it("closes once, by :close() or a <close> variable", function()
      local tok = CharTokenizer.new("ab")
      assert.matches("Tokenizer%(char, vocab_size=2%)", tostring(tok))
      tok:close()
      tok:close()
      assert.are.equal("Tokenizer(closed)", tostring(tok))
      local ok, message = pcall(tok.encode, tok, "a")
      assert.is_false(ok)
      assert.matches("closed", message)
      lua54([[
        local CharTokenizer, assert = ...
        local scoped <close> = CharTokenizer.new("xy")
        assert.are.same({ 0, 1 }, scoped:encode("xy"))
      ]], CharTokenizer, assert)
    end)
  end)

  describe("as tc.tokenizer", function()
    it("is this Lua module, not the C table under it", function()
      local tc = require("tricycle")
      assert.are.equal(tokenizer, tc.tokenizer)
      assert.are.equal(BPETokenizer, tc.tokenizer.BPETokenizer)
      assert.are.equal(CharTokenizer, tc.tokenizer.CharTokenizer)
      -- no field of the C core hides a submodule
      local core = require("tricycle.core")
      for _, name in ipairs({ "nn", "optim", "data", "datasets", "models", "checkpoint", "tokenizer", "io",
        "generate", "cuda" }) do
        assert.is_nil(core[name], name)
      end
    end)
  end)

  describe("error messages", function()
    it("name the Lua function, not the C one", function()
      local tok = CharTokenizer.new("ab")
      local ok, message = pcall(tok.encode, tok, "abc")
      assert.is_false(ok)
      assert.are.equal("encode: ", message:sub(1, 8))
      assert.matches("character 'c'", message)
      ok, message = pcall(tok.decode, tok, { 0, 7 })
      assert.is_false(ok)
      assert.are.equal("decode: ", message:sub(1, 8))
      ok, message = pcall(tok.decode_bytes, tok, { 7 })
      assert.is_false(ok)
      assert.are.equal("decode_bytes: ", message:sub(1, 14))
      ok, message = pcall(tokenizer.load, "/nonexistent/file.tok")
      assert.is_false(ok)
      assert.matches("tokenizer%.load: cannot open", message)
      assert.is_nil(message:find("tc_", 1, true), message)
      ok, message = pcall(tokenizer.deserialize, "not a tokenizer")
      assert.is_false(ok)
      assert.matches("tokenizer%.deserialize: ", message)
      assert.is_nil(message:find("tc_", 1, true), message)
      ok, message = pcall(BPETokenizer.train, "", { vocab_size = 300 })
      if not ok then
        assert.is_nil(message:find("tc_", 1, true), message)
      end
      ok, message = pcall(CharTokenizer.new, "")
      assert.is_false(ok)
      assert.matches("CharTokenizer%.new: ", message)
      assert.is_nil(message:find("tc_", 1, true), message)
    end)
  end)
end)
