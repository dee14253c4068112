-- scripts/prepare_data.lua and scripts/train_gpt2.lua as a user runs them:
-- tiny Shakespeare prepared with GPT-2's tokenizer (checked against llm.c's
-- token counts and against the reference JavaScript encoder), every input
-- form, bad inputs and interruptions that lose nothing, and training with
-- gradient accumulation that stops, resumes and ends bit for bit where an
-- uninterrupted run ends. GPT-2's files come from npm (spec/helpers/gpt2_files.lua).
local lua_command = require("helpers.interpreter")
local binpack = require("helpers.binpack")
local compat = require("tricycle.compat")
local shell = require("helpers.command")
local tc = require("tricycle")
local cli = require("tricycle.cli")
local gpt2_files = require("helpers.gpt2_files")
local shell_quote = require("helpers.scratch").shell_quote
local write = require("helpers.scratch").write
local exists = shell.exists

local build = os.getenv("TRICYCLE_BUILD") or "build"

-- Runs a command with stdin from a file (default /dev/null); returns exit code, stdout, stderr.
local function run(command, stdin)
  local out, err = os.tmpname(), os.tmpname()
  local _, code = shell.execute(("TRICYCLE_BUILD=%s %s < %s > %s 2> %s"):format(shell_quote(build), command,
    shell_quote(stdin or "/dev/null"), shell_quote(out), shell_quote(err)))
  local function slurp(path)
    local f = io.open(path, "rb")
    local text = f and f:read("a") or ""
    if f then
      f:close()
    end
    os.remove(path)
    return text
  end
  return code, slurp(out), slurp(err)
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local bytes = f:read("a")
  f:close()
  return bytes
end

local function list(dir)
  local names = {}
  for _, entry in ipairs(require("tricycle.core").shards.list_dir(dir)) do
    names[#names + 1] = entry.name
  end
  table.sort(names)
  return names
end

local data_dir = os.getenv("TRICYCLE_DATA")
local shakespeare = data_dir and data_dir .. "/tinyshakespeare.txt"
local have_text = shakespeare and exists(shakespeare)
local gpt2_dir, gpt2_why = gpt2_files.find()
local with_gpt2 = (have_text and gpt2_dir) and it or function(name)
  pending(name .. " (" .. (gpt2_why or "no tinyshakespeare.txt in TRICYCLE_DATA") .. ")")
end

local work
local prepare = lua_command .. " scripts/prepare_data.lua"
local train = lua_command .. " scripts/train_gpt2.lua"

setup(function()
  work = os.tmpname()
  os.remove(work)
  os.execute("mkdir -p " .. shell_quote(work))
end)

teardown(function()
  os.execute("rm -rf " .. shell_quote(work))
end)

-- a small GPT-2-shaped model with GPT-2's vocabulary, accumulating 4 micro-batches of 2 × 32
local tiny = "--n-layer 2 --n-head 2 --n-embd 32 --context-length 32 --batch-size 2 --total-batch 256 --steps 24 "
  .. "--warmup 4 --lr 3e-3 --val-every 8 --val-batches 2 --checkpoint-every 8 --keep-checkpoints 2 --log-every 2 "
  .. "--sample-tokens 0 --shuffle"

describe("prepare_data.lua", function()
  it("--help lists the options; bad usage exits 2", function()
    local code, out = run(prepare .. " --help")
    assert.are.equal(0, code)
    assert.truthy(out:find("--val-docs", 1, true))
    local err
    code, _, err = run(prepare .. " --out x file.txt")
    assert.are.equal(2, code)
    assert.truthy(err:find("exactly one tokenizer", 1, true))
    code, _, err = run(prepare .. " --gpt2 x --out y --val-docs 1 --val-tokens 2 file.txt")
    assert.are.equal(2, code)
    assert.truthy(err:find("not both", 1, true))
    code, _, err = run(prepare .. " --gpt2 x --out y --doc-separator '\\q' file.txt")
    assert.are.equal(2, code)
    assert.truthy(err:find("\\q", 1, true))
  end)

  with_gpt2("prepares tiny Shakespeare in documents as llm.c does: same token counts, the reference's ids", function()
    local code, out, err = run(("%s --gpt2 %s --out %s --name shakespeare --doc-separator '\\n\\n' "
      .. "--val-tokens 32768 %s"):format(prepare, shell_quote(gpt2_dir), shell_quote(work .. "/llmc"),
      shell_quote(shakespeare)))
    assert.are.equal(0, code, err)
    assert.truthy(out:find("MB/s", 1, true))
    assert.are.same({ "shakespeare.json", "shakespeare.tokenizer", "shakespeare_train_000000.bin",
      "shakespeare_val_000000.bin" }, list(work .. "/llmc"))
    -- llm.c's dev/data/tinyshakespeare.py writes 32768 validation and 305260 training tokens
    local val, train_bytes = read(work .. "/llmc/shakespeare_val_000000.bin"),
      read(work .. "/llmc/shakespeare_train_000000.bin")
    local function header(bytes)
      local magic, version, count = binpack.unpack("<i4i4i4", bytes)
      return { magic, version, count }
    end
    assert.are.same({ 20240520, 1, 32768 }, header(val))
    assert.are.same({ 20240520, 1, 305260 }, header(train_bytes))
    assert.are.equal(1024 + 2 * 32768, #val)
    assert.are.equal(1024 + 2 * 305260, #train_bytes)
    assert.are.equal(string.rep("\0", 1012), val:sub(13, 1024))
    local manifest = tc.json_decode(read(work .. "/llmc/shakespeare.json"))
    assert.are.equal(50256, manifest.eot)
    assert.are.equal(7222, manifest.documents.train + manifest.documents.val)
    -- the ids of the first documents, against npm's gpt-3-encoder under node
    local text = read(shakespeare)
    local documents, at = {}, 1
    while #documents < 60 do
      local _, stop = text:find("\n\n", at, true)
      documents[#documents + 1] = text:sub(at, stop)
      at = stop + 1
    end
    local reference, why = gpt2_files.reference_encode(documents)
    if not reference then
      pending("the reference encoder: " .. tostring(why))
      return
    end
    local expected = {}
    for _, ids in ipairs(reference) do
      expected[#expected + 1] = 50256
      for _, id in ipairs(ids) do
        expected[#expected + 1] = id
      end
    end
    local got = { binpack.unpack("<" .. string.rep("I2", #expected), val, 1025) }
    got[#got] = nil -- string.unpack's next position
    assert.are.same(expected, got)
  end)

  with_gpt2("gives the same shards from text cut into small blocks, on 1 or 2 threads, as JSON Lines and from stdin",
    function()
      local text = read(shakespeare):sub(1, 60000)
      write(work .. "/part.txt", text)
      local function shards(name, options, input, stdin)
        local code, _, err = run(("%s --gpt2 %s --out %s --name %s %s %s"):format(prepare, shell_quote(gpt2_dir),
          shell_quote(work .. "/forms"), name, options, input), stdin)
        assert.are.equal(0, code, err)
        return read(("%s/forms/%s_train_000000.bin"):format(work, name))
      end
      -- one document per file: a long one is cut only where the parts encode as the whole
      local whole = shards("whole", "--threads 1", shell_quote(work .. "/part.txt"))
      assert.are.equal(whole, shards("blocks", "--threads 2 --block-bytes 2000", shell_quote(work .. "/part.txt")))
      -- documents ended by blank lines, in a text file, as JSON Lines, and on standard input
      local separated = shards("separated", "--doc-separator '\\n\\n' --block-bytes 3000",
        shell_quote(work .. "/part.txt"))
      local lines, at = {}, 1
      while at <= #text do
        local _, stop = text:find("\n\n", at, true)
        stop = stop or #text
        lines[#lines + 1] = cli.json_line({ text = text:sub(at, stop), source = "spec" })
        at = stop + 1
      end
      write(work .. "/part.jsonl", table.concat(lines, "\n") .. "\n")
      assert.are.equal(separated, shards("jsonl", "--block-bytes 5000", shell_quote(work .. "/part.jsonl")))
      assert.are.equal(separated, shards("stdin", "--doc-separator '\\n\\n'", "-", work .. "/part.txt"))
      -- a folder: walked in name order, hidden files skipped
      os.execute("mkdir -p " .. shell_quote(work .. "/folder/b"))
      write(work .. "/folder/a.txt", "First file.")
      write(work .. "/folder/b/c.jsonl", '{"text": "Second."}\n{"text": "Third."}\n')
      write(work .. "/folder/.hidden.txt", "\255 not read")
      local code, out, err = run(("%s --gpt2 %s --out %s --name folder --val-docs 1 %s"):format(prepare,
        shell_quote(gpt2_dir), shell_quote(work .. "/forms"), shell_quote(work .. "/folder")))
      assert.are.equal(0, code, err)
      assert.truthy(out:find("1 documents", 1, true), out)
      local manifest = tc.json_decode(read(work .. "/forms/folder.json"))
      assert.are.same({ train = 2, val = 1 }, manifest.documents)
    end)

  it("takes a tokenizer saved by tricycle: the end-of-text id after its vocabulary, uint32 ids past 65535", function()
    local tokenizer = require("tricycle.tokenizer")
    local text = "the cat sat on the mat.\n\nthe dog sat on the log.\n\n"
    local bpe = tokenizer.BPETokenizer.train(text, { vocab_size = 280, gpt2_split = true })
    bpe:save(work .. "/small.tok")
    write(work .. "/small.txt", text)
    local code, _, err = run(("%s --tokenizer %s --out %s --name small --doc-separator '\\n\\n' %s"):format(prepare,
      shell_quote(work .. "/small.tok"), shell_quote(work .. "/own"), shell_quote(work .. "/small.txt")))
    assert.are.equal(0, code, err)
    local manifest = tc.json_decode(read(work .. "/own/small.json"))
    assert.are.equal(bpe:vocab_size(), manifest.eot)
    assert.are.equal(bpe:vocab_size() + 1, manifest.vocab_size)
    local shard = require("tricycle.core").shards.open(work .. "/own/small_train_000000.bin")
    local ids = shard:read(0, shard:count()):totable()
    assert.are.equal(manifest.eot, ids[1])
    local second = #bpe:encode("the cat sat on the mat.\n\n") + 2
    assert.are.equal(manifest.eot, ids[second])
    assert.are.same(bpe:encode("the dog sat on the log.\n\n"), { compat.unpack(ids, second + 1) })
    -- 70,000 characters: ids do not fit 16 bits, so the shard is llm.c's uint32 variant
    local chars = {}
    for cp = 0x10000, 0x10000 + 69999 do
      chars[#chars + 1] = compat.utf8_char(cp)
    end
    tokenizer.CharTokenizer.new(table.concat(chars)):save(work .. "/wide.tok")
    write(work .. "/wide.txt", compat.utf8_char(0x10000 + 69999, 0x10000))
    code, _, err = run(("%s --tokenizer %s --out %s --name wide %s"):format(prepare, shell_quote(work .. "/wide.tok"),
      shell_quote(work .. "/own"), shell_quote(work .. "/wide.txt")))
    assert.are.equal(0, code, err)
    local bytes = read(work .. "/own/wide_train_000000.bin")
    local function three(format, at)
      local a, b, c = binpack.unpack(format, bytes, at)
      return { a, b, c }
    end
    assert.are.same({ 20240801, 7, 3 }, three("<i4i4i4", 1))
    assert.are.same({ 70000, 69999, 0 }, three("<I4I4I4", 1025)) -- the end-of-text id, then the two characters
    assert.are.equal(1024 + 3 * 4, #bytes)
  end)

  with_gpt2("stops with the file, line and offset of bad input, writing nothing", function()
    write(work .. "/bad.txt", "good line\nline two \192\175 bad\n")
    local code, _, err = run(("%s --gpt2 %s --out %s %s"):format(prepare, shell_quote(gpt2_dir),
      shell_quote(work .. "/bad"), shell_quote(work .. "/bad.txt")))
    assert.are.equal(1, code)
    assert.truthy(err:find("bad.txt' line 2: invalid UTF-8 (byte 0xC0 at byte offset 19)", 1, true), err)
    assert.are.same({}, list(work .. "/bad"))
    write(work .. "/bad.jsonl", '{"text": "fine"}\n{"title": "no text"}\n')
    code, _, err = run(("%s --gpt2 %s --out %s %s"):format(prepare, shell_quote(gpt2_dir), shell_quote(work .. "/bad"),
      shell_quote(work .. "/bad.jsonl")))
    assert.are.equal(1, code)
    assert.truthy(err:find("bad.jsonl' line 2: the record has no \"text\" field", 1, true), err)
    code, _, err = run(("%s --gpt2 %s --out %s %s"):format(prepare, shell_quote(gpt2_dir), shell_quote(work .. "/bad"),
      shell_quote(work .. "/missing.txt")))
    assert.are.equal(1, code)
    assert.truthy(err:find("missing.txt", 1, true), err)
    -- shards of the same name are not replaced without --overwrite
    local before = read(work .. "/llmc/shakespeare_train_000000.bin")
    code, _, err = run(("%s --gpt2 %s --out %s --name shakespeare %s"):format(prepare, shell_quote(gpt2_dir),
      shell_quote(work .. "/llmc"), shell_quote(work .. "/part.txt")))
    assert.are.equal(1, code)
    assert.truthy(err:find("--overwrite", 1, true), err)
    assert.are.equal(before, read(work .. "/llmc/shakespeare_train_000000.bin"))
  end)

  with_gpt2("leaves only complete shards when interrupted", function()
    local out = work .. "/interrupted"
    -- the corpus arrives on a pipe; Ctrl-C comes after its first half, so before the end of the input
    local script = ("mkfifo %s/pipe; %s --gpt2 %s --out %s --shard-tokens 1000 --block-bytes 10000 - < %s/pipe "
      .. "> /dev/null 2> %s/err & pid=$!; { head -c 200000 %s; sleep 1; kill -INT $pid; cat %s; } > %s/pipe; "
      .. "wait $pid; echo $? > %s/status")
      :format(shell_quote(work), prepare, shell_quote(gpt2_dir), shell_quote(out), shell_quote(work),
        shell_quote(work), shell_quote(shakespeare), shell_quote(shakespeare), shell_quote(work), shell_quote(work))
    run("sh -c " .. shell_quote(script))
    assert.are.equal("130", read(work .. "/status"):match("%d+"), read(work .. "/err"))
    assert.truthy(read(work .. "/err"):find("interrupted", 1, true))
    local names = list(out)
    assert.is_true(#names > 0)
    for _, name in ipairs(names) do
      assert.truthy(name:match("^corpus_train_%d+%.bin$"), name) -- no temporary file, no corpus.json
      local shard = tc.data.TokenShards({ files = out .. "/" .. name, batch_size = 1, context_length = 999,
        vocab_size = 50257 })
      assert.are.equal(1000, shard:num_tokens())
      shard:close()
    end
  end)
end)

describe("train_gpt2.lua", function()
  it("--help lists the options; bad usage exits 2", function()
    local code, out = run(train .. " --help")
    assert.are.equal(0, code)
    assert.truthy(out:find("--total-batch", 1, true))
    local err
    code, _, err = run(train .. " --data x --batch-size 2 --context-length 32 --total-batch 100")
    assert.are.equal(2, code)
    assert.truthy(err:find("--total-batch 100 is not a positive multiple", 1, true), err)
    code, _, err = run(train .. " --model 2B")
    assert.are.equal(2, code)
    assert.truthy(err:find("124M", 1, true))
  end)

  it("names missing and malformed shards", function()
    local code, _, err = run(train .. " --data " .. shell_quote(work .. "/nothing/here"))
    assert.are.equal(1, code)
    assert.truthy(err:find("TokenShards: no file matches '" .. work .. "/nothing/here_train_*.bin'", 1, true), err)
    os.execute("mkdir -p " .. shell_quote(work .. "/broken"))
    write(work .. "/broken/x_train_000000.bin",
      binpack.pack("<i4i4i4", 20240520, 1, 100) .. string.rep("\0", 1012 + 10))
    code, _, err = run(train .. " --data " .. shell_quote(work .. "/broken/x"))
    assert.are.equal(1, code)
    assert.truthy(err:find("x_train_000000.bin': the header says 100 tokens", 1, true), err)
  end)

  with_gpt2("accumulating 4 micro-batches, stops, resumes and ends bit for bit where one run ends", function()
    local data = work .. "/small"
    local code, _, err = run(("%s --gpt2 %s --out %s --name shakespeare --doc-separator '\\n\\n' --val-tokens 2048 %s")
      :format(prepare, shell_quote(gpt2_dir), shell_quote(data), shell_quote(shakespeare)))
    assert.are.equal(0, code, err)
    local prefix = shell_quote(data .. "/shakespeare")
    local out
    code, out, err = run(("%s --data %s %s --out %s --tensorboard %s"):format(train, prefix, tiny,
      shell_quote(work .. "/whole"), shell_quote(work .. "/whole/tb")))
    assert.are.equal(0, code, err)
    assert.truthy(out:find("4 micro-batches", 1, true), out)
    code, out, err = run(("%s --data %s %s --out %s --stop-at 12"):format(train, prefix, tiny,
      shell_quote(work .. "/split")))
    assert.are.equal(0, code, err)
    assert.truthy(out:find("stopped at step 12 of 24", 1, true), out)
    code, out, err = run(("%s --resume --out %s"):format(train, shell_quote(work .. "/split")))
    assert.are.equal(0, code, err)
    assert.truthy(out:find("at step 12", 1, true), out)
    -- the last two checkpoints are kept
    assert.are.same({ "checkpoint_00000016.safetensors", "checkpoint_00000024.safetensors" },
      (function()
        local names = {}
        for _, name in ipairs(list(work .. "/split")) do
          if name:match("^checkpoint") then
            names[#names + 1] = name
          end
        end
        return names
      end)())
    local whole = tc.checkpoint.load(work .. "/whole/checkpoint_00000024.safetensors")
    local split = tc.checkpoint.load(work .. "/split/checkpoint_00000024.safetensors")
    local compared = 0
    for name, tensor in pairs(whole.model) do
      assert.are.equal(tensor:tobytes(), split.model[name]:tobytes(), name)
      compared = compared + 1
    end
    assert.are.equal(2 + 2 * 12 + 2, compared) -- wte, wpe, 12 per block, ln_f
    for name, tensor in pairs(whole.optimizer.tensors) do
      assert.are.equal(tensor:tobytes(), split.optimizer.tensors[name]:tobytes(), name)
    end
    -- the same losses step by step, and the model learnt something (about 10.8 at the start)
    local function losses(dir)
      local result = {}
      for _, record in ipairs(cli.read_jsonl(dir .. "/metrics.jsonl")) do
        if record.loss then
          result[record.step] = record.loss
        end
      end
      return result
    end
    local a, b = losses(work .. "/whole"), losses(work .. "/split")
    assert.are.same(a, b)
    assert.is_true(a[2] > 10 and a[24] < a[2] - 1, ("%g then %g"):format(a[2], a[24]))
    -- TensorBoard holds the logged losses, as float32
    local tb_dir = work .. "/whole/tb"
    local events = tb_dir .. "/" .. list(tb_dir)[1]
    local bytes = read(events)
    local found = 0
    for step, loss in pairs(a) do
      local tag = "train/loss"
      local float = binpack.pack("<f", loss)
      -- Summary.Value{tag = 1, simple_value = 2}: the tag, then the float's key 0x15 and its 4 bytes
      if bytes:find(string.char(0x0a, #tag) .. tag .. "\x15" .. float, 1, true) then
        found = found + 1
      end
      assert.is_true(step % 2 == 0)
    end
    assert.are.equal(12, found)
  end)

  with_gpt2("refuses a checkpoint of another shape, leaving it as it was", function()
    local checkpoint = work .. "/split/checkpoint_00000024.safetensors"
    local before = read(checkpoint)
    local code, _, err = run(("%s --resume --out %s --n-layer 3"):format(train, shell_quote(work .. "/split")))
    assert.are.equal(1, code)
    assert.truthy(err:find("--n-layer 3 conflicts with the checkpoint", 1, true), err)
    assert.truthy(err:find("another shape", 1, true), err)
    assert.are.equal(before, read(checkpoint))
  end)

  with_gpt2("fine-tunes from GPT-2-layout weights, and refuses weights of another shape", function()
    tc.manual_seed(3)
    local source = tc.nn.GPT({ vocab_size = 50257, context_length = 64, n_layer = 1, n_head = 2, n_embd = 16 })
    require("tricycle.models.gpt2").export(source, work .. "/weights.safetensors")
    local prefix = shell_quote(work .. "/small/shakespeare")
    local code, out, err = run(("%s --data %s --init-from %s --context-length 32 --batch-size 2 --steps 2 "
      .. "--val-batches 1 --sample-tokens 8 --out %s"):format(train, prefix,
      shell_quote(work .. "/weights.safetensors"), shell_quote(work .. "/tuned")))
    assert.are.equal(0, code, err)
    assert.truthy(out:find("from " .. work .. "/weights.safetensors", 1, true), out)
    assert.truthy(exists(work .. "/tuned/sample.txt"))
    code, _, err = run(("%s --data %s --init-from %s --n-layer 2 --out %s"):format(train, prefix,
      shell_quote(work .. "/weights.safetensors"), shell_quote(work .. "/tuned2")))
    assert.are.equal(1, code)
    assert.truthy(err:find("--n-layer 2 conflicts with", 1, true), err)
  end)

  -- (LuaJIT's debug hook is shared by every coroutine: its Ctrl-C ends the step it lands in)
  local interrupt_it = rawget(_G, "jit") and function(name)
    pending(name .. " (LuaJIT: Ctrl-C ends the running step; see cli.run_steps)")
  end or with_gpt2
  interrupt_it("Ctrl-C saves a checkpoint between two steps and exits with 130", function()
    local dir = work .. "/ctrl-c"
    local script = ("%s --data %s %s --steps 100000 --log-every 1 --val-every 0 --checkpoint-every 0 --out %s & "
      .. "pid=$!; while [ \"$(wc -l < %s 2>/dev/null || echo 0)\" -lt 3 ]; do sleep 0.1; done; "
      .. "kill -INT $pid; wait $pid; echo \"exit $?\" >&2"):format(train, shell_quote(work .. "/small/shakespeare"),
      tiny:gsub("%-%-steps 24 ", ""), shell_quote(dir), shell_quote(dir .. "/metrics.jsonl"))
    local _, _, err = run("sh -c " .. shell_quote(script))
    assert.truthy(err:find("exit 130", 1, true), err)
    local stopped = tonumber(err:match("interrupted after step (%d+)"))
    assert.truthy(stopped, err)
    local state = tc.checkpoint.load(("%s/checkpoint_%08d.safetensors"):format(dir, stopped))
    assert.are.equal(stopped, state.step)
  end)
end)
