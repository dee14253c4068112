-- scripts/train_shakespeare.lua and scripts/generate.lua as a user runs
-- them: help, bad flags, a tiny training run, resuming, generating. Also the
-- command-line helpers they use (tricycle.cli).
local module_dir = require("helpers.module_dir")
local lua_command = require("helpers.interpreter")
local number_type = require("helpers.number_type")
local shell = require("helpers.command")
local cli = require("tricycle.cli")
local shell_quote = require("helpers.scratch").shell_quote
local exists = shell.exists

local build = os.getenv("TRICYCLE_BUILD") or "build"

-- Runs a command; returns exit code, stdout, stderr.
local function run(command, stdin)
  local pipe = assert(io.popen("mktemp -d"))
  local dir = pipe:read("l")
  pipe:close()
  local input = ""
  if stdin then
    local f = assert(io.open(dir .. "/stdin", "wb"))
    f:write(stdin)
    f:close()
    input = " < " .. shell_quote(dir .. "/stdin")
  else
    input = " < /dev/null"
  end
  local full = ("TRICYCLE_BUILD=%s %s%s > %s 2> %s"):format(shell_quote(build), command, input,
    shell_quote(dir .. "/out"), shell_quote(dir .. "/err"))
  local _, code = shell.execute(full)
  local function slurp(name)
    local f = io.open(dir .. "/" .. name, "rb")
    local text = f and f:read("a") or ""
    if f then
      f:close()
    end
    return text
  end
  local out, err = slurp("out"), slurp("err")
  os.execute("rm -rf " .. shell_quote(dir))
  return code, out, err
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

describe("cli.parse", function()
  local options = {
    { name = "steps", type = "integer" }, { name = "lr", type = "number" }, { name = "out" },
    { name = "resume", type = "flag" }, { name = "preset", type = "choice", choices = { "cpu", "gpu" } },
  }

  it("reads --name value, --name=value, flags and positionals", function()
    local values, rest = cli.parse({ "--steps", "20", "--lr=3e-3", "--resume", "file", "--preset", "gpu" }, options,
      { { name = "FILE" } })
    assert.are.same({ steps = 20, lr = 3e-3, resume = true, preset = "gpu" }, values)
    assert.are.same({ "file" }, rest)
    assert.are.equal("integer", number_type(values.steps))
  end)

  it("rejects unknown flags, bad values and missing values as usage errors", function()
    for _, argv in ipairs({ { "--bogus" }, { "--steps", "x" }, { "--steps", "2.5" }, { "--steps" },
      { "--preset", "tpu" }, { "extra" }, { "-x" } }) do
      local ok, err = pcall(cli.parse, argv, options)
      assert.is_false(ok, table.concat(argv, " "))
      assert.is_true(cli.is_usage_error(err), table.concat(argv, " "))
    end
  end)

  it("refuses a number option that reads as an infinity or NaN", function()
    -- before: "1e999" was accepted as math.huge (a learning rate, a temperature)
    for _, text in ipairs({ "1e999", "-1e999", "nan", "inf" }) do
      local ok, err = pcall(cli.parse, { "--lr", text }, options)
      assert.is_false(ok, text)
      assert.is_true(cli.is_usage_error(err), text)
      assert.truthy(err.message:find("--lr expects a finite number, got '" .. text .. "'", 1, true), err.message)
    end
  end)

  it("JSON lines round-trip through read_jsonl", function()
    local path = os.tmpname()
    os.remove(path)
    cli.append_jsonl(path, { step = 1, loss = 2.5, name = "a" })
    cli.append_jsonl(path, { step = 2, val_loss = 1.25, ok = true })
    local records = cli.read_jsonl(path)
    os.remove(path)
    assert.are.same({ { step = 1, loss = 2.5, name = "a" }, { step = 2, val_loss = 1.25, ok = true } }, records)
  end)

  it("draws every series of the SVG chart", function()
    local svg = cli.svg_chart({
      { name = "train", points = { { 1, 4.0 }, { 2, 3.0 }, { 3, 2.5 } } },
      { name = "validation", points = { { 2, 3.2 }, { 3, 2.9 } } },
    }, { title = "loss" })
    assert.truthy(svg:match("^<svg"))
    assert.truthy(svg:find("</svg>", 1, true))
    local polylines = 0
    for _ in svg:gmatch("<polyline") do
      polylines = polylines + 1
    end
    assert.are.equal(2, polylines)
    assert.truthy(svg:find(">validation<", 1, true))
  end)
end)

describe("cli.run_steps", function()
  -- What the standalone lua does on SIGINT: a hook on the thread running
  -- the loop that raises "interrupted!" at its next instruction.
  local function simulate_interrupt(thread)
    debug.sethook(thread, function()
      debug.sethook(thread)
      error("interrupted!")
    end, "crl", 1)
  end

  -- LuaJIT keeps one debug hook for all its coroutines, so its Ctrl-C lands inside the step.
  local per_thread_hooks = not rawget(_G, "jit")
  local hook_it = per_thread_hooks and it or function(name)
    pending(name .. " (LuaJIT's debug hook is shared by every coroutine: Ctrl-C ends the step it lands in)")
  end

  hook_it("lets an interrupted step finish and stops before the next one", function()
    local caller = coroutine.running()
    local started, finished = 0, 0
    local done = cli.run_steps(function() return started < 10 end, function()
      started = started + 1
      if started == 3 then
        simulate_interrupt(caller) -- Ctrl-C in the middle of step 3
      end
      local x = 0
      for i = 1, 1000 do
        x = x + i -- work that the hook would otherwise interrupt
      end
      finished = finished + 1
    end)
    assert.is_false(done)
    assert.are.equal(3, started)
    assert.are.equal(3, finished)
  end)

  it("runs every step when nothing interrupts, and raises a step's error", function()
    local count = 0
    assert.is_true(cli.run_steps(function() return count < 5 end, function() count = count + 1 end))
    assert.are.equal(5, count)
    local ok, message = pcall(cli.run_steps, function() return true end, function() error("bad step", 0) end)
    assert.is_false(ok)
    assert.are.equal("bad step", message)
  end)
end)

local core_built = exists(build .. "/" .. module_dir .. "/tricycle/core.so")
local data = os.getenv("TRICYCLE_DATA")
local have_data = data and exists(data .. "/tinyshakespeare.txt")
local script_it = core_built and it or pending
local training_it = (core_built and have_data) and it or pending

describe("scripts", function()
  script_it("train_shakespeare.lua --help exits 0 with the usage", function()
    local code, out = run(lua_command .. " scripts/train_shakespeare.lua --help")
    assert.are.equal(0, code)
    assert.truthy(out:find("usage: ", 1, true))
    assert.truthy(out:find("--n-layer", 1, true))
  end)

  script_it("a bad flag exits 2 with the usage line", function()
    local code, out, err = run(lua_command .. " scripts/train_shakespeare.lua --no-such-flag 3")
    assert.are.equal(2, code)
    assert.truthy(err:find("--no-such-flag", 1, true))
    assert.truthy(err:find("usage: ", 1, true))
    assert.are.equal("", out)
    code, _, err = run(lua_command .. " scripts/train_shakespeare.lua --steps lots")
    assert.are.equal(2, code)
    assert.truthy(err:find("usage: ", 1, true))
    code, _, err = run(lua_command .. " scripts/generate.lua")
    assert.are.equal(2, code)
    assert.truthy(err:find("CHECKPOINT", 1, true))
  end)

  script_it("missing files are named", function()
    local code, _, err = run(lua_command .. " scripts/generate.lua /nonexistent/ck.safetensors")
    assert.are.equal(1, code)
    assert.truthy(err:find("/nonexistent/ck.safetensors", 1, true))
    code, _, err = run(lua_command .. " scripts/train_shakespeare.lua --data /nonexistent/shakespeare.txt --steps 1")
    assert.are.equal(1, code)
    assert.truthy(err:find("/nonexistent/shakespeare.txt", 1, true))
    code, _, err = run(lua_command .. " scripts/train_shakespeare.lua --resume --out /nonexistent/run")
    assert.are.equal(1, code)
    assert.truthy(err:find("/nonexistent/run/checkpoint.safetensors", 1, true))
  end)

  script_it("generate.lua runs a Hugging Face Llama folder: its BOS in front, stopping at its eos", function()
    local hf_files = require("helpers.hf_files")
    local tokenizer_json, why = hf_files.tokenizer_json("llama2")
    if not tokenizer_json then
      pending("no llama2 tokenizer.json: " .. why)
      return
    end
    local tc = require("tricycle")
    local scratch = require("helpers.scratch")
    scratch.in_dir(function(dir)
      tc.manual_seed(11)
      tc.models.llama.save(tc.nn.Llama({ vocab_size = 32000, hidden_size = 16, intermediate_size = 32,
        num_hidden_layers = 1, num_attention_heads = 2, num_key_value_heads = 1, max_position_embeddings = 64,
        tie_word_embeddings = true }), dir)
      assert.is_true(os.execute(("cp %s %s/"):format(shell_quote(tokenizer_json), shell_quote(dir))) ~= false)
      local model = tc.models.llama.load(dir)
      local tok = tc.models.llama.load_tokenizer(dir)
      local prompt = "To be"
      local ids = { 1 } -- Llama 2's <s>, from its template
      for _, id in ipairs(tok:encode(prompt)) do ids[#ids + 1] = id end
      local free = tc.generate(model, ids, { max_tokens = 8, temperature = 1, seed = 5 })
      local stop, last = free[4], 4
      for i = 1, 3 do
        if free[i] == stop then last = i break end
      end
      assert.is_true(last >= 2, "the sampled tokens repeat from the first") -- (near-uniform logits: they do not)
      -- config.json names the 4th sampled token as the end of text
      local config = tc.io.json_decode(scratch.read(dir .. "/config.json"))
      config.eos_token_id = stop
      scratch.write(dir .. "/config.json", tc.io.json_encode(config))
      local expected = {}
      for i = 1, last - 1 do expected[i] = free[i] end
      local code, out, err = run((lua_command .. " scripts/generate.lua %s --prompt %s --max-tokens 8 "
        .. "--temperature 1 --seed 5"):format(shell_quote(dir), shell_quote(prompt)))
      assert.are.equal(0, code, err)
      assert.are.equal(prompt .. tok:decode_bytes(expected) .. "\n", out)
    end)
  end)

  script_it("a missing dataset: the hint names --data, not the library's {path = ...}", function()
    local empty = os.tmpname()
    os.remove(empty)
    assert.is_true(os.execute("mkdir " .. shell_quote(empty)) ~= false)
    local env = ("HOME=%s XDG_CACHE_HOME=%s TRICYCLE_DATA=%s TRICYCLE_SHAKESPEARE_URL=file:///nonexistent ")
      :format(shell_quote(empty), shell_quote(empty), shell_quote(empty))
    local code, _, err = run(env .. lua_command .. " scripts/train_shakespeare.lua --steps 1")
    os.execute("rm -rf " .. shell_quote(empty))
    assert.are.equal(1, code)
    assert.truthy(err:find("or give --data FILE", 1, true), err)
    assert.is_nil(err:find("{path =", 1, true))
  end)

  describe("a tiny run", function()
    local out_dir
    setup(function()
      out_dir = os.tmpname()
      os.remove(out_dir)
    end)
    teardown(function()
      os.execute("rm -rf " .. shell_quote(out_dir))
    end)
    local tiny = "--n-layer 1 --n-head 2 --n-embd 16 --context-length 16 --batch-size 4 --eval-every 10 "
      .. "--eval-batches 2 --checkpoint-every 10 --log-every 5 --sample-tokens 20"

    training_it("trains, writing a checkpoint, metrics.jsonl and loss.svg", function()
      local code, out, err = run((lua_command .. " scripts/train_shakespeare.lua --steps 20 %s --out %s"):format(tiny,
        shell_quote(out_dir)))
      assert.are.equal(0, code, err)
      assert.truthy(out:find("validation loss", 1, true))
      assert.truthy(out:find("bits/char", 1, true))
      assert.is_true(exists(out_dir .. "/checkpoint.safetensors"))
      local records = cli.read_jsonl(out_dir .. "/metrics.jsonl")
      local last_train, evals = 0, 0
      for _, r in ipairs(records) do
        if r.loss then
          last_train = math.max(last_train, r.step)
          assert.is_true(r.loss > 0 and r.loss < 10)
        end
        if r.val_loss then
          evals = evals + 1
          assert.is_true(r.val_bpc > 0)
        end
      end
      assert.are.equal(20, last_train)
      assert.are.equal(2, evals)
      -- the warmup is a tenth of the run (2 steps), so the cosine reaches near --min-lr (3e-4) by step 20
      local lr_at = {}
      for _, r in ipairs(records) do
        lr_at[r.step] = r.lr or lr_at[r.step]
      end
      assert.is_true(lr_at[20] < 4e-4, tostring(lr_at[20]))
      assert.is_true(lr_at[5] > lr_at[10] and lr_at[10] > lr_at[15], "decays")
      local svg = read(out_dir .. "/loss.svg")
      assert.truthy(svg:match("^<svg"))
      assert.truthy(svg:find("<polyline", 1, true))
    end)

    training_it("--resume goes on from the checkpoint", function()
      local code, out, err = run((lua_command .. " scripts/train_shakespeare.lua --steps 30 --resume %s --out %s")
        :format(tiny, shell_quote(out_dir)))
      assert.are.equal(0, code, err)
      assert.truthy(out:find("resumed from .* at step 20"))
      -- the time is the whole run's, the earlier run's included (before: only the resumed part's)
      assert.truthy(out:find("done: 30 steps in %d+s %(10 in this run, %d+s%)"), out)
      local saved = require("tricycle").checkpoint.load(out_dir .. "/checkpoint.safetensors").extra
      assert.is_true(saved.train_seconds > 0)
      assert.are.same({ sum = 0, count = 0 }, saved.loss_window) -- step 30 was logged
      local steps = {}
      for _, r in ipairs(cli.read_jsonl(out_dir .. "/metrics.jsonl")) do
        if r.loss then
          steps[#steps + 1] = r.step
        end
      end
      assert.are.same({ 5, 10, 15, 20, 25, 30 }, steps)
      -- --steps is the total; the schedule of the first run (ending at step 20) is kept, so min_lr after it
      assert.truthy(out:find("schedule of the checkpoint ends at step 20", 1, true))
      for _, r in ipairs(cli.read_jsonl(out_dir .. "/metrics.jsonl")) do
        if r.loss and r.step > 20 then
          assert.is_true(math.abs(r.lr - 3e-4) < 1e-12, ("lr %g at step %d"):format(r.lr, r.step))
        end
      end
    end)

    training_it("--dtype float16 trains under float16 autocast with loss scaling, skips overflowing steps, resumes "
      .. "with the scaler's state", function()
      local dir = out_dir .. "-float16"
      local tc = require("tricycle")
      -- 3e6 overflows float16 in the first backwards: those steps are skipped and the scale halves
      local code, out, err = run((lua_command .. " scripts/train_shakespeare.lua --steps 12 %s --log-every 3 "
        .. "--dtype float16 --init-loss-scale 3e6 --out %s"):format(tiny, shell_quote(dir)))
      assert.are.equal(0, code, err)
      assert.truthy(out:find("skipped (float16 gradients overflowed)", 1, true), out)
      local skipped, scales, losses = 0, {}, {}
      for _, r in ipairs(cli.read_jsonl(dir .. "/metrics.jsonl")) do
        if r.loss then
          assert.is_true(r.loss > 0 and r.loss < 10, tostring(r.loss))
          skipped, scales[r.step], losses[r.step] = skipped + r.skipped_steps, r.loss_scale, r.loss
        end
      end
      assert.is_true(skipped > 0 and skipped < 12, "skipped " .. skipped)
      assert.are.equal(3e6 / 2 ^ skipped, scales[12])
      assert.is_true(losses[12] < losses[3], "not learning")
      local saved = tc.checkpoint.load(dir .. "/checkpoint.safetensors").extra.grad_scaler
      assert.are.equal(scales[12], saved.scale)
      -- the clean steps since the last skip
      local tracker = saved._growth_tracker
      assert.is_true(tracker >= 1 and tracker <= 12 - skipped, tostring(tracker))
      -- the resumed run goes on from the saved scale (a fresh scaler would start at 65536)
      code, out, err = run((lua_command .. " scripts/train_shakespeare.lua --steps 15 --resume %s --log-every 3 "
        .. "--out %s"):format(tiny, shell_quote(dir)))
      assert.are.equal(0, code, err)
      local resumed = tc.checkpoint.load(dir .. "/checkpoint.safetensors").extra.grad_scaler
      local halvings = math.log(3e6 / resumed.scale) / math.log(2)
      assert.is_true(halvings >= skipped and halvings == math.floor(halvings), tostring(resumed.scale))
      -- without float16 there is no scaler in the checkpoint, and --init-loss-scale is refused
      code, _, err = run((lua_command .. " scripts/train_shakespeare.lua --steps 1 %s --init-loss-scale 8 --out %s")
        :format(tiny, shell_quote(dir .. "-refused")))
      assert.are.equal(2, code)
      assert.truthy(err:find("--init-loss-scale is for --dtype float16 only", 1, true), err)
      os.execute("rm -rf " .. shell_quote(dir))
    end)

    training_it("--arch llama trains Llama blocks with grouped queries, and generate.lua samples them", function()
      local dir = out_dir .. "-llama"
      local code, out, err = run((lua_command .. " scripts/train_shakespeare.lua --steps 10 %s --arch llama "
        .. "--n-kv-head 1 --out %s"):format(tiny, shell_quote(dir)))
      assert.are.equal(0, code, err)
      assert.truthy(out:find("llama blocks", 1, true))
      local state = require("tricycle").checkpoint.load(dir .. "/checkpoint.safetensors")
      assert.are.equal("llama", state.config.arch)
      -- one k/v head of 8: qkv_proj has (2 + 2 * 1) * 8 rows
      assert.are.same({ 32, 16 }, state.model["layers.1.self_attn.qkv_proj.weight"].shape)
      code, out, err = run((lua_command .. " scripts/generate.lua %s --prompt ROMEO: --max-tokens 12 --seed 3")
        :format(shell_quote(dir .. "/checkpoint.safetensors")))
      assert.are.equal(0, code, err)
      assert.are.equal(#"ROMEO:" + 12 + 1, #out)
      for _, dtype in ipairs({ "bfloat16", "float16" }) do -- 16-bit weights, float32 activations
        code, out, err = run((lua_command .. " scripts/generate.lua %s --prompt ROMEO: --max-tokens 12 --seed 3 "
          .. "--dtype %s"):format(shell_quote(dir .. "/checkpoint.safetensors"), dtype))
        assert.are.equal(0, code, err)
        assert.are.equal(#"ROMEO:" + 12 + 1, #out)
      end
      code, _, err = run((lua_command .. " scripts/generate.lua %s --dtype int8"):format(
        shell_quote(dir .. "/checkpoint.safetensors")))
      assert.are.equal(2, code)
      assert.truthy(err:find("--dtype", 1, true), err)
      code, _, err = run((lua_command .. " scripts/train_shakespeare.lua --steps 1 %s --arch llama --n-kv-head 3 "
        .. "--out %s"):format(tiny, shell_quote(dir)))
      assert.are.equal(2, code)
      assert.truthy(err:find("--n-kv-head 3 does not divide --n-head 2", 1, true), err)
      os.execute("rm -rf " .. shell_quote(dir))
    end)

    -- (LuaJIT's debug hook is shared by every coroutine: its Ctrl-C ends the step it lands in)
    local interrupt_it = rawget(_G, "jit") and function(name)
      pending(name .. " (LuaJIT: Ctrl-C ends the running step; see cli.run_steps)")
    end or training_it
    interrupt_it("Ctrl-C saves a checkpoint between two steps and exits with 130", function()
      local dir = out_dir .. "-interrupted"
      -- log every step; interrupt once the first steps are logged
      local script = (lua_command .. " scripts/train_shakespeare.lua --steps 100000 %s --log-every 1 --eval-every 0 "
        .. "--checkpoint-every 0 --out %s & pid=$!; "
        .. "while [ \"$(wc -l < %s 2>/dev/null || echo 0)\" -lt 3 ]; do sleep 0.1; done; "
        .. "kill -INT $pid; wait $pid; echo \"exit $?\" >&2")
        :format(tiny, shell_quote(dir), shell_quote(dir .. "/metrics.jsonl"))
      local _, _, err = run("sh -c " .. shell_quote(script))
      local stopped = tonumber(err:match("interrupted after step (%d+)"))
      assert.truthy(err:find("exit 130", 1, true), err)
      assert.truthy(stopped, err)
      local state = require("tricycle").checkpoint.load(dir .. "/checkpoint.safetensors")
      assert.are.equal(stopped, state.step)
      os.execute("rm -rf " .. shell_quote(dir))
    end)

    training_it("generate.lua prints text from the checkpoint, with a prompt or from stdin", function()
      local checkpoint = out_dir .. "/checkpoint.safetensors"
      local code, out, err = run((lua_command .. " scripts/generate.lua %s --prompt ROMEO: --max-tokens 25 --seed 3")
        :format(shell_quote(checkpoint)))
      assert.are.equal(0, code, err)
      assert.truthy(out:match("^ROMEO:"))
      -- a char-level model: 25 more characters and the final newline
      assert.are.equal(#"ROMEO:" + 25 + 1, #out)
      local again = select(2, run((lua_command .. " scripts/generate.lua %s --prompt ROMEO: --max-tokens 25 --seed 3")
        :format(shell_quote(checkpoint))))
      assert.are.equal(out, again)
      code, out, err = run((lua_command .. " scripts/generate.lua %s --prompt ROMEO: --max-tokens 25 --seed 3 "
        .. "--dtype bfloat16"):format(shell_quote(checkpoint))) -- the GPT with bfloat16 weights
      assert.are.equal(0, code, err)
      assert.are.equal(#"ROMEO:" + 25 + 1, #out)
      code, out, err = run((lua_command .. " scripts/generate.lua %s --max-tokens 5 --temperature 0")
        :format(shell_quote(checkpoint)), "To be")
      assert.are.equal(0, code)
      assert.truthy(out:match("^To be"))
      assert.is_nil(err:find("reading the prompt", 1, true)) -- said only when stdin is a terminal
      -- before: a stack trace from encode; now every character the vocabulary lacks, once each
      code, out, err = run((lua_command .. " scripts/generate.lua %s --prompt %s --max-tokens 3")
        :format(shell_quote(checkpoint), shell_quote("caf\195\169 na\195\175ve caf\195\169")))
      assert.are.equal(1, code)
      assert.are.equal("", out)
      assert.truthy(err:find("generate: the prompt has 2 characters that the checkpoint's char tokenizer "
        .. "(65 tokens) lacks: '\195\169' (U+00E9), '\195\175' (U+00EF)", 1, true), err)
      assert.is_nil(err:find("stack traceback", 1, true))
      -- a prompt longer than the context (16) is cropped, with a notice
      code, out, err = run((lua_command .. " scripts/generate.lua %s --prompt %s --max-tokens 3")
        :format(shell_quote(checkpoint), shell_quote(string.rep("abcd ", 10))))
      assert.are.equal(0, code)
      assert.truthy(err:find("only its last 16", 1, true))
    end)
  end)
end)
