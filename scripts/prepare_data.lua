--- Turns a corpus into token shards for scripts/train_gpt2.lua (llm.c's layout).
--
--   lua scripts/prepare_data.lua --gpt2 DIR --out data --name web --val-docs 1000 corpus/
--   lua scripts/prepare_data.lua --gpt2 DIR --out data --name shakespeare --doc-separator '\n\n' \
--       --val-tokens 32768 tinyshakespeare.txt
--   zcat dump.jsonl.gz | lua scripts/prepare_data.lua --tokenizer my.tok --format jsonl --out data -
--
-- Inputs are text files (each one document, or documents ended by
-- --doc-separator), folders of them (walked in name order, hidden names
-- skipped), JSON Lines files (.jsonl, .ndjson, or --format jsonl: each line
-- an object whose "text" is one document) and standard input ("-"). Text
-- must be UTF-8. Every document starts with the end-of-text token
-- (<|endoftext|> for GPT-2; a tokenizer without one gets the id after its
-- vocabulary). The first --val-docs documents or --val-tokens tokens go to
-- the validation shards, the rest to the training shards.
--
-- Writes to --out: NAME_val_000000.bin ..., NAME_train_000000.bin ...
-- (each --shard-tokens tokens but the last; uint16 ids, or the uint32
-- variant when the vocabulary needs it), NAME.tokenizer (the tokenizer, for
-- training and sampling) and NAME.json (what was written). Encoding runs on
-- --threads threads with the output in input order; memory stays flat
-- (about 4 bytes per token of one shard, plus a few MiB per thread),
-- whatever the corpus size. Each shard is written to a temporary file and
-- renamed, so an interrupted run (Ctrl-C: exit status 130) leaves only
-- complete shards, and no NAME.json.

-- Find the library relative to this file, wherever it is run from.
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
    io.stderr:write(("prepare_data: %s is missing: run make first (in %s)\n"):format(core_path, root))
    os.exit(1)
  end
  f:close()
end

local compat = require("tricycle.compat")
local tc = require("tricycle")
local cli = require("tricycle.cli")
local core = require("tricycle.core")
local tokenizer_module = require("tricycle.tokenizer")

local USAGE = "lua scripts/prepare_data.lua (--gpt2 DIR | --gpt2-vocab FILE --gpt2-merges FILE | --tokenizer FILE) "
  .. "--out DIR [options] INPUT..."

local OPTIONS = {
  { name = "gpt2", metavar = "DIR",
    help = "GPT-2's tokenizer from DIR: vocab.json (or encoder.json) and merges.txt (or vocab.bpe)" },
  { name = "gpt2_vocab", metavar = "FILE", help = "GPT-2's vocab.json" },
  { name = "gpt2_merges", metavar = "FILE", help = "GPT-2's merges.txt" },
  { name = "tokenizer", metavar = "FILE", help = "a tokenizer saved by tricycle (tok:save)" },
  { name = "out", metavar = "DIR", help = "output folder (created when missing)" },
  { name = "name", help = "prefix of the output files (default corpus)" },
  { name = "format", type = "choice", choices = { "auto", "text", "jsonl" },
    help = "input format (default auto: .jsonl and .ndjson files are JSON Lines, everything else text)" },
  { name = "doc_separator", metavar = "TEXT",
    help = "text files: a document ends after each TEXT (\\n, \\r, \\t, \\\\ escapes), which stays with it; "
      .. "default: one document per file" },
  { name = "val_docs", type = "integer", help = "the first N documents go to the validation shards" },
  { name = "val_tokens", type = "integer", help = "the first N tokens go to the validation shards" },
  { name = "shard_tokens", type = "integer", help = "tokens per shard (default 100000000)" },
  { name = "threads", type = "integer", help = "encoding threads (default: the engine's thread count)" },
  { name = "block_bytes", type = "integer", help = "bytes of text per unit of work (default 1048576)" },
  { name = "overwrite", type = "flag", help = "replace shards of the same name in --out" },
}

-- every word that is not an option is an input
local program = cli.program({ name = "prepare_data", usage = USAGE, options = OPTIONS,
  positional = { { name = "INPUT", many = true } },
  description = "Encodes text files, folders, JSON Lines or standard input into token shards (llm.c's layout)." })
local values, inputs = program:parse(arg)

-- ---------------------------------------------------------------- options

local config = {
  name = values.name or "corpus", format = values.format or "auto", shard_tokens = values.shard_tokens or 100000000,
  threads = values.threads or tc.num_threads(), block_bytes = values.block_bytes or 1048576,
}
if not values.out then
  program:fail_usage("--out DIR is required")
end
if #inputs == 0 then
  program:fail_usage("no INPUT: give files, folders or - for standard input")
end
local sources_given = (values.gpt2 and 1 or 0) + ((values.gpt2_vocab or values.gpt2_merges) and 1 or 0)
  + (values.tokenizer and 1 or 0)
if sources_given ~= 1 then
  program:fail_usage("give exactly one tokenizer: --gpt2 DIR, --gpt2-vocab FILE with --gpt2-merges FILE, "
    .. "or --tokenizer FILE")
end
if (values.gpt2_vocab == nil) ~= (values.gpt2_merges == nil) then
  program:fail_usage("--gpt2-vocab and --gpt2-merges go together")
end
if values.val_docs and values.val_tokens then
  program:fail_usage("give --val-docs or --val-tokens, not both")
end
for _, key in ipairs({ "val_docs", "val_tokens" }) do
  if values[key] and values[key] < 0 then
    program:fail_usage(("%s must be at least 0, got %d"):format(cli.flag_of(key), values[key]))
  end
end
if config.shard_tokens < 1 or config.shard_tokens > 0x7fffffff then
  program:fail_usage(("--shard-tokens must be from 1 to 2147483647 (the header holds an int32), got %d")
    :format(config.shard_tokens))
end
if config.threads < 1 or config.threads > 1024 then
  program:fail_usage(("--threads must be from 1 to 1024, got %d"):format(config.threads))
end
if config.block_bytes < 1 or config.block_bytes > 1073741824 then
  program:fail_usage(("--block-bytes must be from 1 to 1073741824, got %d"):format(config.block_bytes))
end
if not config.name:match("^[%w._-]+$") then
  program:fail_usage(("--name must be letters, digits, '.', '_' or '-', got '%s'"):format(config.name))
end

local separator
if values.doc_separator then
  local escapes = { n = "\n", r = "\r", t = "\t", ["\\"] = "\\" }
  local bad
  separator = values.doc_separator:gsub("\\(.?)", function(c)
    if not escapes[c] then
      bad = bad or c
      return ""
    end
    return escapes[c]
  end)
  if bad then
    program:fail_usage(("--doc-separator: unknown escape '\\%s' (\\n, \\r, \\t and \\\\ are known)"):format(bad))
  end
  if separator == "" then
    program:fail_usage("--doc-separator must not be empty")
  end
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then
    f:close()
    return true
  end
  return false
end

-- ---------------------------------------------------------------- tokenizer

local tok
do
  local ok, result = pcall(function()
    if values.tokenizer then
      return tokenizer_module.load(values.tokenizer)
    end
    local vocab, merges = values.gpt2_vocab, values.gpt2_merges
    if values.gpt2 then
      local dir = values.gpt2:gsub("/$", "")
      vocab = exists(dir .. "/vocab.json") and dir .. "/vocab.json" or dir .. "/encoder.json"
      merges = exists(dir .. "/merges.txt") and dir .. "/merges.txt" or dir .. "/vocab.bpe"
      if not exists(vocab) or not exists(merges) then
        error(("--gpt2 %s: the folder needs vocab.json (or encoder.json) and merges.txt (or vocab.bpe)")
          :format(values.gpt2), 0)
      end
    end
    return tokenizer_module.BPETokenizer.load_gpt2(vocab, merges)
  end)
  if not ok then
    program:fail(result)
  end
  tok = result
end

local vocab_size = tok:vocab_size()
local eot = vocab_size -- a tokenizer without <|endoftext|> gets the id after its vocabulary
for id = vocab_size - 1, 0, -1 do
  if tok:token(id) == "<|endoftext|>" then
    eot = id
    break
  end
end
local model_vocab = math.max(vocab_size, eot + 1)
local id_bytes = model_vocab <= 65536 and 2 or 4
-- Long documents are cut into blocks only where encoding the parts apart
-- gives the ids of the whole: BPE with GPT-2's word split, or characters.
local can_cut = tok:kind() == "char" or tok:gpt2_split()

-- ---------------------------------------------------------------- inputs

local function format_of(path)
  if config.format ~= "auto" then
    return config.format
  end
  local lower = path:lower()
  if lower:match("%.jsonl$") or lower:match("%.ndjson$") then
    return "jsonl"
  end
  return "text"
end

local function file_size(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local size = f:seek("end")
  f:close()
  return size
end

local sources = {}
local function add_folder(dir)
  local ok, entries = pcall(core.shards.list_dir, dir)
  if not ok then
    program:fail(entries)
  end
  table.sort(entries, function(a, b) return a.name < b.name end)
  for _, entry in ipairs(entries) do
    if entry.name:sub(1, 1) ~= "." then
      local path = dir:gsub("/$", "") .. "/" .. entry.name
      if entry.kind == "directory" then
        add_folder(path)
      elseif entry.kind == "file" then
        sources[#sources + 1] = { path = path, format = format_of(path), size = file_size(path) or 0 }
      end
    end
  end
end

for _, input in ipairs(inputs) do
  if input == "-" then
    sources[#sources + 1] = { path = "-", name = "<stdin>", format = config.format == "jsonl" and "jsonl" or "text" }
  else
    local listed = pcall(core.shards.list_dir, input)
    if listed then
      add_folder(input)
    else
      local f, why = io.open(input, "rb")
      if not f then
        program:fail(("cannot read '%s': %s"):format(input, tostring(why)))
      end
      f:close()
      sources[#sources + 1] = { path = input, format = format_of(input), size = file_size(input) or 0 }
    end
  end
end
if #sources == 0 then
  program:fail("the inputs hold no files: " .. table.concat(inputs, ", "))
end
local total_bytes = 0
for _, source in ipairs(sources) do
  if source.path == "-" then
    total_bytes = nil
    break
  end
  total_bytes = total_bytes + source.size
end

-- ---------------------------------------------------------------- output

local out_dir = values.out:gsub("/$", "")
os.execute("mkdir -p " .. shell_quote(out_dir))
local existing = {}
do
  local ok, entries = pcall(core.shards.list_dir, out_dir)
  if not ok then
    program:fail(("cannot use --out %s: %s"):format(out_dir, tostring(entries)))
  end
  local pattern = "^" .. config.name:gsub("%p", "%%%0") .. "_%a+_%d+%.bin$"
  for _, entry in ipairs(entries) do
    if entry.name:match(pattern) then
      existing[#existing + 1] = out_dir .. "/" .. entry.name
    end
  end
  table.sort(existing)
end
if #existing > 0 and not values.overwrite then
  program:fail(("%s already holds %d shards named %s_* (%s ...): pass --overwrite to replace them, "
    .. "or choose another --name "
    .. "or --out"):format(out_dir, #existing, config.name, existing[1]))
end
-- the manifest describes complete runs only: while shards are being replaced there is none
os.remove(out_dir .. "/" .. config.name .. ".json")

-- The shard being written: its name is only ever a complete file (see cli.write_atomic), but an interrupted
-- write leaves the temporary beside it, which is removed on the way out.
local writing_temp
local header = core.shards.header

local function Writer(split)
  local writer = { split = split, index = 0, pieces = {}, count = 0, written = {}, tokens = 0, documents = 0 }

  function writer.flush()
    if writer.count == 0 then
      return
    end
    local path = ("%s/%s_%s_%06d.bin"):format(out_dir, config.name, split, writer.index)
    local pieces = writer.pieces
    table.insert(pieces, 1, header(writer.count, id_bytes))
    local bytes = table.concat(pieces)
    writer.pieces, pieces = {}, nil
    writing_temp = path .. ".tmp"
    cli.write_atomic(path, bytes)
    writing_temp = nil
    writer.written[#writer.written + 1] = path
    writer.tokens = writer.tokens + writer.count
    writer.index, writer.count = writer.index + 1, 0
    bytes = nil -- luacheck: ignore
    collectgarbage() -- the shard's pieces and copy go now, so memory stays about two shards' worth
  end

  --- Appends packed ids, writing each shard as it fills.
  function writer.add(bytes)
    local at = 1
    while at <= #bytes do
      local room = (config.shard_tokens - writer.count) * id_bytes
      local take = math.min(room, #bytes - at + 1)
      writer.pieces[#writer.pieces + 1] = at == 1 and take == #bytes and bytes or bytes:sub(at, at + take - 1)
      writer.count = writer.count + compat.idiv(take, id_bytes)
      at = at + take
      if writer.count == config.shard_tokens then
        writer.flush()
      end
    end
  end

  return writer
end

local train, validation = Writer("train"), Writer("val")
local val_docs_left, val_tokens_left = values.val_docs or 0, values.val_tokens or 0
local val_open = false -- the last document begun is a validation one (a long one may go on in the next batch)

--- Sends packed ids to the validation writer until its share is full, the rest to training.
local function route(packed, documents)
  if val_docs_left > 0 or val_open then
    -- the (left + 1)-th document start ends the validation share
    local position = core.shards.find_id(packed, id_bytes, eot, val_docs_left + 1)
    if position then
      validation.add(packed:sub(1, position * id_bytes))
      validation.documents = validation.documents + val_docs_left
      train.documents = train.documents + documents - val_docs_left
      val_docs_left, val_open = 0, false
      train.add(packed:sub(position * id_bytes + 1))
    else
      validation.add(packed)
      validation.documents = validation.documents + documents
      val_docs_left, val_open = val_docs_left - documents, true
    end
    return
  end
  if val_tokens_left > 0 then
    local take = math.min(val_tokens_left, compat.idiv(#packed, id_bytes))
    local part = packed:sub(1, take * id_bytes)
    local _, begun = core.shards.find_id(part, id_bytes, eot, compat.max_integer)
    validation.add(part)
    validation.documents = validation.documents + begun
    documents = documents - begun
    val_tokens_left = val_tokens_left - take
    packed = packed:sub(take * id_bytes + 1)
  end
  train.add(packed)
  train.documents = train.documents + documents
end

-- ---------------------------------------------------------------- encoding

local encoder = core.shards.encoder(tok, { threads = config.threads, eot = eot, id_bytes = id_bytes,
  separator = separator })
local batch_bytes = config.block_bytes * 4 * config.threads
local pending, pending_bytes = {}, 0
local stats = { bytes = 0, documents = 0, tokens = 0 }
local started = tc.wall_time()
local terminal = cli.stdout_is_terminal()
local last_report = started

local function report(final)
  local now = tc.wall_time()
  if not final and now - last_report < (terminal and 0.25 or 10) then
    return
  end
  last_report = now
  local elapsed = math.max(now - started, 1e-9)
  local rate = stats.bytes / elapsed
  local parts = {}
  if total_bytes and total_bytes > 0 then
    parts[#parts + 1] = ("%.1f of %.1f MB (%d%%)"):format(stats.bytes / 1e6, total_bytes / 1e6,
      math.floor(100 * stats.bytes / total_bytes))
  else
    parts[#parts + 1] = ("%.1f MB"):format(stats.bytes / 1e6)
  end
  parts[#parts + 1] = ("%.1f MB/s"):format(rate / 1e6)
  parts[#parts + 1] = ("%d documents"):format(stats.documents)
  parts[#parts + 1] = ("%d tokens"):format(stats.tokens)
  if total_bytes and not final and rate > 0 then
    parts[#parts + 1] = "ETA " .. cli.format_duration((total_bytes - stats.bytes) / rate)
  elseif final then
    parts[#parts + 1] = cli.format_duration(elapsed)
  end
  local line = table.concat(parts, " | ")
  if terminal then
    io.stdout:write("\r\27[K", line, final and "\n" or "")
  else
    io.stdout:write(line, "\n")
  end
  io.stdout:flush()
end

local function encode_pending()
  if #pending == 0 then
    return
  end
  local packed, documents = encoder:encode(pending)
  local count = 0
  for _, n in ipairs(documents) do
    count = count + n
  end
  stats.bytes = stats.bytes + pending_bytes
  stats.documents = stats.documents + count
  stats.tokens = stats.tokens + compat.idiv(#packed, id_bytes)
  pending, pending_bytes = {}, 0
  route(packed, count)
  report(false)
end

local function add_block(block)
  pending[#pending + 1] = block
  pending_bytes = pending_bytes + #block.data
  if pending_bytes >= batch_bytes then
    encode_pending()
  end
end

--- The end of the last separator in buf, scanning left to right as the encoder does.
local function last_separator_end(buf)
  local init, last = 1, nil
  while true do
    local _, stop = buf:find(separator, init, true)
    if not stop then
      return last
    end
    last, init = stop, stop + 1
  end
end

--- The last "\n" of buf between two printable ASCII non-space bytes: GPT-2's
-- word split ends a piece on each side of it, so the two parts encoded apart
-- give the ids of the whole.
local function safe_cut(buf)
  local window = 4096
  while true do
    local from = math.max(1, #buf - window)
    local init, last = from, nil
    while true do
      local at = buf:find("[!-~]\n[!-~]", init)
      if not at then
        break
      end
      last, init = at + 1, at + 1
    end
    if last or from == 1 then
      return last
    end
    window = window * 16
  end
end

local function read_source(source)
  local name = source.name or source.path
  local file, why
  if source.path == "-" then
    file = io.stdin
  else
    file, why = io.open(source.path, "rb")
    if not file then
      program:fail(("cannot read '%s': %s"):format(source.path, tostring(why)))
    end
  end
  local jsonl = source.format == "jsonl"
  local carry, line, offset, continues = "", 1, 0, false
  local function emit(data, next_continues)
    if #data > 0 then
      add_block({ data = data, format = source.format, continues = continues, name = name, line = line,
        offset = offset })
      line = line + core.shards.count_newlines(data)
      offset = offset + #data
    end
    continues = next_continues
  end
  while true do
    local chunk, read_error = file:read(config.block_bytes)
    if read_error then
      program:fail(("cannot read '%s': %s"):format(name, tostring(read_error)))
    end
    local buf = chunk and carry .. chunk or carry
    carry = ""
    if not chunk then
      emit(buf, false)
      break
    end
    if #buf >= config.block_bytes then
      if jsonl then
        local last = buf:find("\n[^\n]*$")
        if last then
          emit(buf:sub(1, last), false)
          carry = buf:sub(last + 1)
        else
          carry = buf
        end
      else
        local stop = separator and last_separator_end(buf)
        if stop then
          emit(buf:sub(1, stop), false)
          carry = buf:sub(stop + 1)
        else
          local cut = can_cut and safe_cut(buf)
          if cut then
            emit(buf:sub(1, cut), true)
            carry = buf:sub(cut + 1)
          else
            carry = buf -- a document with no place to cut is read whole
          end
        end
      end
    else
      carry = buf
    end
  end
  if file ~= io.stdin then
    file:close()
  end
end

print(("prepare_data: %d input files%s, %s tokenizer (%d tokens, end-of-text id %d), uint%d ids, %d threads")
  :format(#sources, total_bytes and (", %.1f MB"):format(total_bytes / 1e6) or "", tok:kind(), vocab_size, eot,
    8 * id_bytes, encoder:threads()))

local ok_run, failure = pcall(function()
  for _, source in ipairs(sources) do
    read_source(source)
  end
  encode_pending()
  validation.flush()
  train.flush()
end)

local function written_list()
  local all = {}
  for _, path in ipairs(validation.written) do
    all[#all + 1] = path
  end
  for _, path in ipairs(train.written) do
    all[#all + 1] = path
  end
  return all
end

if not ok_run then
  if writing_temp then
    os.remove(writing_temp)
  end
  local interrupted = tostring(failure):find("interrupted!", 1, true) ~= nil
  local written = written_list()
  io.stderr:write(("\nprepare_data: %s; %d complete shards were written%s; no %s/%s.json\n"):format(
    interrupted and "interrupted" or tostring(failure), #written,
    #written > 0 and (" (" .. written[1] .. " ... " .. written[#written] .. ")") or "", out_dir, config.name))
  os.exit(interrupted and 130 or 1)
end

report(true)
if val_docs_left > 0 or val_tokens_left > 0 then
  io.stderr:write(("prepare_data: the corpus ended before the validation share was full (%d %s short)%s\n")
    :format(val_docs_left > 0 and val_docs_left or val_tokens_left, val_docs_left > 0 and "documents" or "tokens",
      train.tokens == 0 and "; there are no training shards" or ""))
end

-- shards of an earlier run under this name that this run did not replace
local written = {}
for _, path in ipairs(written_list()) do
  written[path] = true
end
for _, path in ipairs(existing) do
  if not written[path] then
    os.remove(path)
  end
end

local tokenizer_name = config.name .. ".tokenizer"
tok:save(out_dir .. "/" .. tokenizer_name)
local function names(list)
  local result = {}
  for i, path in ipairs(list) do
    result[i] = path:match("([^/]*)$")
  end
  return result
end
cli.write_atomic(out_dir .. "/" .. config.name .. ".json", core.json_encode({
  format = "llm.c token shards", id_bytes = id_bytes, eot = eot, vocab_size = model_vocab,
  tokenizer = tokenizer_name, tokenizer_kind = tok:kind(), tokenizer_vocab_size = vocab_size,
  documents = { train = train.documents, val = validation.documents },
  tokens = { train = train.tokens, val = validation.tokens },
  shards = { train = names(train.written), val = names(validation.written) },
  shard_tokens = config.shard_tokens, bytes = stats.bytes,
}) .. "\n")
print(("wrote %d validation shards (%d documents, %d tokens) and %d training shards (%d documents, %d tokens) to %s")
  :format(#validation.written, validation.documents, validation.tokens, #train.written, train.documents,
    train.tokens, out_dir))
