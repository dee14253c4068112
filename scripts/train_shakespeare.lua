--- Trains a small GPT on tiny Shakespeare.
--
--   lua scripts/train_shakespeare.lua                     -- the cpu preset (or gpu when one is found)
--   lua scripts/train_shakespeare.lua --preset gpu --steps 2000
--   lua scripts/train_shakespeare.lua --arch llama        -- Llama blocks (nn.Llama) of the preset's size
--   lua scripts/train_shakespeare.lua --resume            -- goes on from out/shakespeare/checkpoint.safetensors
--   lua scripts/train_shakespeare.lua --dtype bfloat16    -- bf16 matrix products, float32 master weights
--   lua scripts/train_shakespeare.lua --dtype float16     -- float16 matrix products, dynamic loss scaling
--
-- --steps is the total number of optimiser steps of the run, counted from
-- its start: --resume --steps 3000 after 2000 steps trains 1000 more. The
-- learning-rate schedule (warmup, then a cosine to --min-lr at the run's
-- total) is fixed by the first run and kept in the checkpoint, so a resumed
-- run follows the same curve; steps past its end use --min-lr.
--
-- Writes to --out (default out/shakespeare): checkpoint.safetensors (at
-- intervals, at the end, and on Ctrl-C, which takes effect between two
-- steps and exits with status 130), metrics.jsonl (one JSON object per
-- logged step / evaluation), loss.svg (train and validation loss) and
-- sample.txt. --dtype bfloat16 runs the forward passes (training and
-- validation) under tc.autocast("bfloat16"): matrix products, and their
-- backward, read bf16-rounded operands and sum in float32, while the
-- weights, AdamW's state and every other op stay float32 (the CPU's bf16
-- GEMM, or cuBLAS's on CUDA). --dtype float16 does the same under
-- tc.autocast("float16") (for GPUs without bf16) with a tc.amp.GradScaler:
-- the loss is scaled before backward, the gradients unscaled before
-- clipping, and a step whose gradients overflowed float16 is skipped while
-- the scale backs off (the metrics lines count the skipped steps and give
-- the scale; the checkpoint keeps the scaler's state, so --resume goes on
-- exactly).
-- Validation loss is reported in nats per token and in bits per
-- character, which compares across tokenizers.
--
-- Data-parallel: `mpirun -np N lua scripts/train_shakespeare.lua ...` trains
-- on N ranks: every rank draws the same N × --batch-size sequences of a step
-- and trains on its own --batch-size of them, the gradients are averaged
-- (tc.nn.DistributedDataParallel), and rank 0 alone prints, evaluates,
-- samples and writes the checkpoint. --zero shards AdamW's moments (ZeRO-1).
-- --resume goes on at the same number of ranks; Ctrl-C stops every rank
-- without a new checkpoint.

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
    io.stderr:write(("train_shakespeare: %s is missing: run make first (in %s)\n"):format(core_path, root))
    os.exit(1)
  end
  f:close()
end

local compat = require("tricycle.compat")
local tc = require("tricycle")
local cli = require("tricycle.cli")
local tokenizer_module = require("tricycle.tokenizer")

local USAGE = "lua scripts/train_shakespeare.lua [--preset cpu|gpu] [--steps N] [--out DIR] [--resume] [options]"

local PRESETS = {
  cpu = {
    -- 6.1M tokens: about 4.5 minutes on two cores at ~23,000 tokens/s,
    -- ending near 1.6 nats per character
    tokenizer = "char", vocab_size = 0, n_layer = 4, n_head = 4, n_embd = 128, context_length = 64,
    batch_size = 32, steps = 3000, lr = 3e-3, min_lr = 3e-4, warmup = 100, weight_decay = 0.1, dropout = 0.0,
    beta1 = 0.9, beta2 = 0.99, grad_clip = 1.0, eval_every = 250, eval_batches = 20, checkpoint_every = 500,
    log_every = 10, sample_tokens = 300, arch = "gpt", n_kv_head = 0, dtype = "float32",
  },
  gpu = {
    tokenizer = "bpe", vocab_size = 1024, n_layer = 6, n_head = 6, n_embd = 384, context_length = 256,
    batch_size = 128, steps = 5000, lr = 1e-2, min_lr = 1e-4, warmup = 100, weight_decay = 0.1, dropout = 0.2,
    beta1 = 0.9, beta2 = 0.99, grad_clip = 1.0, eval_every = 250, eval_batches = 50, checkpoint_every = 500,
    log_every = 10, sample_tokens = 300, arch = "gpt", n_kv_head = 0, dtype = "float32",
  },
}

local OPTIONS = {
  { name = "preset", type = "choice", choices = { "cpu", "gpu" },
    help = "starting values (default: gpu when a GPU is found, else cpu)" },
  { name = "device", type = "choice", choices = { "auto", "cpu", "cuda" }, help = "where to train (default auto)" },
  { name = "dtype", type = "choice", choices = { "float32", "bfloat16", "float16" },
    help = "precision of the matrix products: float32, or bfloat16 or float16 (autocast, float32 master weights; "
      .. "float16 with dynamic loss scaling)" },
  { name = "init_loss_scale", type = "number",
    help = "--dtype float16's first loss scale (default 65536; a resumed run keeps the checkpoint's)" },
  { name = "seed", type = "integer", help = "seed for initialisation, dropout and batches (default 1337)" },
  { name = "out", metavar = "DIR", help = "output folder (default out/shakespeare)" },
  { name = "resume", type = "flag", help = "go on from DIR/checkpoint.safetensors" },
  { name = "data", metavar = "FILE", help = "the tiny Shakespeare text (default: TRICYCLE_DATA, cache, download)" },
  { name = "steps", type = "integer",
    help = "optimiser steps in total, counted from the start of the run (also on --resume)" },
  { name = "batch_size", type = "integer", help = "sequences per step" },
  { name = "context_length", type = "integer", help = "tokens per sequence" },
  { name = "n_layer", type = "integer", help = "transformer blocks" },
  { name = "n_head", type = "integer", help = "attention heads" },
  { name = "arch", type = "choice", choices = { "gpt", "llama" },
    help = "GPT-2's blocks, or Llama's (RMSNorm, RoPE, SwiGLU, grouped-query attention; no dropout)" },
  { name = "n_kv_head", type = "integer",
    help = "key/value heads of --arch llama, dividing --n-head (default --n-head)" },
  { name = "n_embd", type = "integer", help = "embedding width" },
  { name = "dropout", type = "number", help = "dropout probability" },
  { name = "tokenizer", type = "choice", choices = { "char", "bpe" }, help = "character-level or byte-level BPE" },
  { name = "vocab_size", type = "integer", help = "BPE vocabulary size" },
  { name = "lr", type = "number", help = "peak learning rate" },
  { name = "min_lr", type = "number", help = "final learning rate of the cosine schedule" },
  { name = "warmup", type = "integer",
    help = "linear warmup steps (default: the preset's, at most a tenth of --steps)" },
  { name = "weight_decay", type = "number", help = "AdamW weight decay (matrices only)" },
  { name = "beta1", type = "number", help = "AdamW beta1" },
  { name = "beta2", type = "number", help = "AdamW beta2" },
  { name = "grad_clip", type = "number", help = "clip the gradient norm to this (0: off)" },
  { name = "eval_every", type = "integer", help = "steps between validation passes (0: only at the end)" },
  { name = "eval_batches", type = "integer",
    help = "batches per periodic validation pass (0: all); the final pass is always complete" },
  { name = "checkpoint_every", type = "integer", help = "steps between checkpoints (0: only at the end)" },
  { name = "log_every", type = "integer", help = "steps between metric lines" },
  { name = "sample_tokens", type = "integer", help = "tokens to generate at the end (0: none)" },
  { name = "threads", type = "integer", help = "CPU threads for the engine" },
  { name = "zero", type = "flag", help = "shard AdamW's moments over the ranks of an mpirun job (ZeRO-1)" },
}

local program = cli.program({ name = "train_shakespeare", usage = USAGE, options = OPTIONS,
  description = "Trains a small GPT on tiny Shakespeare and writes checkpoints, metrics and a loss chart." })
local values = program:parse(arg)

-- Under a launcher (mpirun) this process is one rank of several; alone, a world of one.
local dist = tc.distributed
do
  local joined, why = pcall(dist.init)
  if not joined then
    program:fail(why)
  end
end
local rank, world = dist.rank(), dist.world_size()
local is_main = rank == 0
local say = is_main and print or function() end
if world > 1 then
  local fail = program.fail
  function program.fail(self, message)
    message = tostring(message)
    if not dist.failure() then
      pcall(dist.abort, message)
    end
    return fail(self, ("rank %d: %s"):format(rank, message))
  end
end

-- ---------------------------------------------------------------- configuration

local device, device_notice = values.device or "auto", nil
if device == "auto" then
  device, device_notice = tc.cuda.pick_device()
elseif device == "cuda" then
  local available, reason = tc.cuda.is_available()
  if not available then
    program:fail("--device cuda: " .. tostring(reason))
  end
end
local preset_name = values.preset or (device == "cuda" and "gpu" or "cpu")
local config = {}
for key, value in pairs(PRESETS[preset_name]) do
  config[key] = value
end
config.preset = preset_name
config.seed = 1337
for key, value in pairs(values) do
  if config[key] ~= nil or key == "seed" then
    config[key] = value
  end
end
local out_dir = values.out or "out/shakespeare"
local checkpoint_path = out_dir .. "/checkpoint.safetensors"
local metrics_path = out_dir .. "/metrics.jsonl"

for _, key in ipairs({ "steps", "batch_size", "context_length", "n_layer", "n_head", "n_embd" }) do
  if config[key] <= 0 then
    program:fail_usage(("--%s must be positive, got %d"):format(key:gsub("_", "-"), config[key]))
  end
end
if config.n_embd % config.n_head ~= 0 then
  program:fail_usage(("--n-embd %d is not divisible by --n-head %d"):format(config.n_embd, config.n_head))
end
if config.n_kv_head < 0 or (config.n_kv_head > 0 and config.n_head % config.n_kv_head ~= 0) then
  program:fail_usage(("--n-kv-head %d does not divide --n-head %d"):format(config.n_kv_head, config.n_head))
end
if config.dropout < 0 or config.dropout >= 1 then
  program:fail_usage("--dropout must be in [0, 1)")
end
if config.tokenizer == "bpe" and config.vocab_size < 256 then
  program:fail_usage("--vocab-size must be at least 256 for the BPE tokenizer")
end
if values.init_loss_scale ~= nil then
  local scale = values.init_loss_scale
  if config.dtype ~= "float16" then
    program:fail_usage("--init-loss-scale is for --dtype float16 only")
  elseif not (scale > 0 and scale < math.huge) then
    program:fail_usage(("--init-loss-scale must be a finite number > 0, got %s"):format(tostring(scale)))
  end
end
if values.threads and tc.set_num_threads then
  tc.set_num_threads(values.threads)
end

-- ---------------------------------------------------------------- resume

local resumed
if values.resume then
  if tc.io.file_kind(checkpoint_path) == nil then
    program:fail(("--resume: no checkpoint at %s"):format(checkpoint_path))
  end
  resumed = tc.checkpoint.load(checkpoint_path)
  local saved_world = type(resumed.extra) == "table" and resumed.extra.world_size or 1
  if saved_world ~= world then
    program:fail(("--resume: %s was written by a run of %d rank%s, this one has %d; resume with as many ranks")
      :format(checkpoint_path, saved_world, saved_world == 1 and "" or "s", world))
  end
  -- the model's shape and the tokenizer come from the checkpoint; the run's
  -- length and intervals may be changed on the command line
  local saved = resumed.config or {}
  local shape_keys = { tokenizer = true, vocab_size = true, n_layer = true, n_head = true, n_embd = true,
    context_length = true, arch = true, n_kv_head = true }
  for key in pairs(shape_keys) do
    if values[key] ~= nil and saved[key] ~= nil and values[key] ~= saved[key] then
      io.stderr:write(("train_shakespeare: --%s %s ignored: the checkpoint has %s\n")
        :format(key:gsub("_", "-"), tostring(values[key]), tostring(saved[key])))
    end
  end
  for key, value in pairs(saved) do
    if values[key] == nil or shape_keys[key] then
      config[key] = value
    end
  end
  -- checkpoints from before --arch hold GPTs
  config.arch, config.n_kv_head = saved.arch or "gpt", saved.n_kv_head or 0
end

if is_main then
  os.execute("mkdir -p '" .. out_dir:gsub("'", "'\\''") .. "'")
end

-- ---------------------------------------------------------------- data

local ok_text, text = pcall(tc.datasets.shakespeare, { path = values.data })
if not ok_text then
  -- the library's hint names its own option; here the flag is what the reader can give
  local message = tostring(text):gsub("or pass {path = %.%.%.}", "or give --data FILE")
  program:fail(message)
end

local tok
if resumed and resumed.tokenizer then
  tok = tokenizer_module.deserialize(resumed.tokenizer)
elseif config.tokenizer == "char" then
  tok = tokenizer_module.CharTokenizer.new(text)
else
  local started = os.clock()
  tok = tokenizer_module.BPETokenizer.train(text, { vocab_size = config.vocab_size, gpt2_split = true })
  say(("trained a BPE tokenizer: %d tokens in %.1fs"):format(tok:vocab_size(), os.clock() - started))
end
local vocab_size = tok:vocab_size()
config.vocab_size = vocab_size

-- BPE encoding takes a few seconds: keep the ids in the cache, keyed by the tokenizer
local packed = config.tokenizer == "bpe" and tc.datasets.tokenize_cached(text, tok) or tok:encode_packed(text)
-- every rank draws the whole step's batch (world × batch_size rows) and keeps its own rows
local dataset = tc.data.CausalLMDataset({
  tokens = packed, context_length = config.context_length, batch_size = config.batch_size * world, seed = config.seed,
  split = { train = 0.9 },
})
packed = nil -- luacheck: ignore

-- characters per validation token, for bits per character
local validation_chars_per_token
do
  local part = dataset.parts.validation
  local ids = dataset.tokens:narrow(1, part.start + 1, part.length):totable()
  local decoded = tok:decode(ids)
  validation_chars_per_token = (compat.utf8_len(decoded) or #decoded) / part.length
end

-- ---------------------------------------------------------------- model

tc.manual_seed(config.seed)
local model
if config.arch == "llama" then
  -- the SwiGLU width Llama takes for a 4C GELU MLP's parameters: 8C/3, rounded up to 32
  config.intermediate_size = config.intermediate_size or 32 * math.ceil(8 * config.n_embd / 3 / 32)
  model = tc.nn.Llama({
    vocab_size = vocab_size, hidden_size = config.n_embd, intermediate_size = config.intermediate_size,
    num_hidden_layers = config.n_layer, num_attention_heads = config.n_head,
    num_key_value_heads = config.n_kv_head > 0 and config.n_kv_head or config.n_head,
    max_position_embeddings = config.context_length, tie_word_embeddings = true,
  })
  if config.dropout > 0 then
    say(("--arch llama: dropout %g is not used (the Llama block has none)"):format(config.dropout))
  end
else
  model = tc.nn.GPT({
    vocab_size = vocab_size, context_length = config.context_length, n_layer = config.n_layer,
    n_head = config.n_head, n_embd = config.n_embd, dropout = config.dropout, bias = true, tie_weights = true,
  })
end
if device ~= "cpu" then
  model:to(device)
end
-- several ranks (or ZeRO-1 on one): rank 0's weights everywhere, gradients averaged over the ranks
local zero = values.zero or false
if zero and config.dtype == "float16" then
  -- ZeRO-1 leaves .grad empty (each rank holds its slice): the scaler could not unscale or check them
  program:fail_usage("--zero with --dtype float16 is not supported (the loss scaler needs whole gradients); "
    .. "use --dtype bfloat16 or leave out --zero")
end
local ddp = (world > 1 or zero) and tc.nn.DistributedDataParallel(model) or nil
local optimizer = tc.optim.AdamW(tc.optim.gpt_param_groups(model, config.weight_decay), {
  lr = config.lr, betas = { config.beta1, config.beta2 }, weight_decay = config.weight_decay,
  zero_stage = zero and 1 or 0, ddp = zero and ddp or nil,
})
-- The preset's warmup is for its own length: a short run warms up over at
-- most a tenth of its steps, so it still reaches the cosine part.
local warmup = values.warmup and math.min(values.warmup, config.steps)
  or math.min(config.warmup, compat.idiv(config.steps, 10))
local scheduler = tc.optim.cosine_schedule({
  max_lr = config.lr, min_lr = config.min_lr, warmup = warmup, total = config.steps,
})

-- float16's loss scaling (disabled, it passes everything through, otherwise)
local scaler = tc.amp.GradScaler({ enabled = config.dtype == "float16", init_scale = values.init_loss_scale })
local skipped_steps = 0 -- steps since the last metrics line whose float16 gradients overflowed

local start_step = 0
-- what the runs before a --resume left: their training time, and the losses
-- of the steps after their last metrics line (so the first line after the
-- resume averages all the steps it stands for)
local earlier_seconds, carried_loss_sum, carried_loss_count = 0, 0, 0
if resumed then
  -- the schedule (its warmup and total included) comes from the checkpoint
  local targets = { model = model, optimizer = optimizer, scheduler = resumed.scheduler and scheduler or nil }
  tc.checkpoint.restore(resumed, targets)
  start_step = resumed.step or 0
  scheduler.step = start_step
  for _, key in ipairs({ "lr", "min_lr", "warmup" }) do
    if values[key] ~= nil and resumed.scheduler then
      io.stderr:write(("train_shakespeare: --%s ignored: the learning-rate schedule comes from the checkpoint\n")
        :format(key:gsub("_", "-")))
    end
  end
  if config.steps ~= scheduler.total then
    say(("--steps %d: training to step %d; the learning-rate schedule of the checkpoint ends at step %d%s")
      :format(config.steps, config.steps, scheduler.total,
        config.steps > scheduler.total and " (--min-lr after it)" or ""))
  end
  local extra = resumed.extra or {}
  if extra.dataset then
    dataset:set_state(extra.dataset)
  end
  -- a run that switches to float16 starts a fresh scaler
  if scaler:is_enabled() and type(extra.grad_scaler) == "table" and next(extra.grad_scaler) ~= nil then
    scaler:load_state_dict(extra.grad_scaler)
  end
  if type(extra.train_seconds) == "number" and extra.train_seconds >= 0 then
    earlier_seconds = extra.train_seconds
  end
  local window = extra.loss_window
  if type(window) == "table" and type(window.sum) == "number" and compat.is_integer(window.count)
    and window.count > 0 then
    carried_loss_sum, carried_loss_count = window.sum, window.count
  end
  -- keep the metrics of the steps the checkpoint holds, drop any later ones
  if is_main then
    cli.keep_records_through(metrics_path, start_step)
  end
  say(("resumed from %s at step %d"):format(checkpoint_path, start_step))
elseif is_main then
  cli.write_atomic(metrics_path, "")
end

local tokens_per_step = config.batch_size * config.context_length * world
say(("%s preset on %s, %s blocks: %d parameters, %s tokenizer (%d tokens), %d training tokens, %d steps of %d "
  .. "tokens"):format(preset_name, device, config.arch, model:num_parameters(), config.tokenizer, vocab_size,
    dataset:split_size("train"), config.steps, tokens_per_step))
if ddp then
  say(("data-parallel: %d ranks over %s, %d sequences each per step%s"):format(world, dist.backend(),
    config.batch_size, zero and ", AdamW's moments sharded (ZeRO-1)" or ""))
end
if device_notice then
  say(device_notice)
end

-- ---------------------------------------------------------------- helpers

local function to_device(t)
  if device ~= "cpu" then
    return t:to(device)
  end
  return t
end

--- fn's results, run under autocast when --dtype is bfloat16 or float16.
local function in_precision(fn)
  if config.dtype ~= "float32" then
    return tc.autocast(config.dtype, fn)
  end
  return fn()
end

-- Mean validation loss over the first eval_batches batches of the
-- validation pass (all of it when full or eval_batches is 0).
local function evaluate(full)
  model:eval()
  local total, count = 0, 0
  local limit = (not full and config.eval_batches > 0) and config.eval_batches or nil
  tc.no_grad(in_precision, function()
    for x, y, n in dataset:evaluation_batches({ max_batches = limit }) do
      local _, loss = model(to_device(x), { targets = to_device(y) })
      total = total + loss:item() * n
      count = count + n
    end
  end)
  model:train()
  local nats = total / math.max(count, 1)
  return nats, nats / validation_chars_per_token / math.log(2)
end

local loss_sum, loss_count = carried_loss_sum, carried_loss_count -- the losses since the last metrics line
local run_started -- tc.wall_time() when this run's training loop started

--- Seconds of training over the whole run, the runs before a --resume included.
local function train_seconds()
  return earlier_seconds + (run_started and tc.wall_time() - run_started or 0)
end

-- Every rank calls it (ZeRO-1 gathers the moments); rank 0 writes.
local function save_checkpoint(step)
  local optimizer_state = optimizer:state_dict()
  if not is_main then
    return
  end
  tc.checkpoint.save(checkpoint_path, {
    model = model, optimizer = optimizer_state, scheduler = scheduler:state_dict(), step = step,
    config = config, tokenizer = tok:serialize(), extra = { dataset = dataset:state(), world_size = world,
      train_seconds = train_seconds(), loss_window = { sum = loss_sum, count = loss_count },
      grad_scaler = scaler:is_enabled() and scaler:state_dict() or nil },
  })
end

local function write_chart()
  cli.write_atomic(out_dir .. "/loss.svg",
    cli.loss_chart(cli.read_jsonl(metrics_path), "tiny Shakespeare: loss (nats per token)"))
end

-- ---------------------------------------------------------------- training

-- (a launcher's ranks may see a terminal that is not one: they log lines)
local terminal = world == 1 and cli.stdout_is_terminal()
local progress = is_main and cli.Progress.new({ total = config.steps, terminal = terminal,
  every = config.log_every, columns = terminal and cli.terminal_columns() or nil })
  or require("tricycle.training").silent_progress
local step = start_step
run_started = tc.wall_time() -- a monotonic wall clock: rates are neither CPU time nor whole seconds

local function log_eval(full)
  local nats, bpc = evaluate(full)
  progress:print(("step %d: validation loss %.4f nats/token, %.4f bits/char%s"):format(step, nats, bpc,
    full and " (full validation pass)" or ""))
  cli.append_jsonl(metrics_path, { step = step, val_loss = nats, val_bpc = bpc })
  write_chart()
  return nats, bpc
end

-- One optimiser step (and the logging, evaluation and checkpoint due after it).
local function train_step()
  local lr = scheduler:lr(step)
  tc.optim.set_lr(optimizer, lr)
  local x, y = dataset:batch()
  if world > 1 then
    x, y = x:narrow(1, rank * config.batch_size + 1, config.batch_size),
      y:narrow(1, rank * config.batch_size + 1, config.batch_size)
  end
  -- the backward of what autocast recorded runs in its precision too
  local _, loss = in_precision(function() return (ddp or model)(to_device(x), { targets = to_device(y) }) end)
  optimizer:zero_grad()
  scaler:scale(loss):backward()
  if config.grad_clip > 0 then
    scaler:unscale_(optimizer) -- clip the true gradients (a no-op without float16)
    if ddp then
      ddp:clip_grad_norm(config.grad_clip)
    else
      tc.nn.clip_grad_norm(model:parameters(), config.grad_clip)
    end
  end
  local scale = scaler:get_scale()
  scaler:step(optimizer) -- skipped when a gradient is Inf or NaN
  scaler:update()
  if scaler:get_scale() < scale then
    skipped_steps = skipped_steps + 1
  end
  step = step + 1
  scheduler.step = step
  local value = loss:item()
  if world > 1 then
    value = require("tricycle.training").agree_step(value, false) -- the ranks' mean loss
  end
  loss_sum, loss_count = loss_sum + value, loss_count + 1
  -- this run's steps over this run's wall time (the resumed part only: earlier runs may have had other hardware)
  local rate = (step - start_step) * tokens_per_step / math.max(tc.wall_time() - run_started, 1e-6)
  local eta = (config.steps - step) * tokens_per_step / rate
  progress:update(step, { loss = value, lr = lr, tokens_per_second = rate, eta = eta })
  if is_main and (step % config.log_every == 0 or step == config.steps) then
    local record = { step = step, loss = loss_sum / loss_count, lr = lr, tokens_per_second = rate }
    if scaler:is_enabled() then
      record.skipped_steps, record.loss_scale = skipped_steps, scaler:get_scale()
      if skipped_steps > 0 then
        progress:print(("step %d: %d step%s skipped (float16 gradients overflowed); loss scale now %g")
          :format(step, skipped_steps, skipped_steps == 1 and "" or "s", scaler:get_scale()))
      end
    end
    cli.append_jsonl(metrics_path, record)
    loss_sum, loss_count, skipped_steps = 0, 0, 0
  end
  if is_main and config.eval_every > 0 and step % config.eval_every == 0 and step < config.steps then
    log_eval()
  end
  if config.checkpoint_every > 0 and step % config.checkpoint_every == 0 and step < config.steps then
    save_checkpoint(step)
  end
end

model:train()
-- Ctrl-C takes effect between two steps (see cli.run_steps), so the
-- checkpoint it writes holds a whole number of steps.
local ok_loop, finished = pcall(cli.run_steps, function() return step < config.steps end, train_step)
progress:finish_line()
if not ok_loop then
  program:fail(tostring(finished))
end
if not finished and world > 1 then
  -- the ranks are not at one step: no checkpoint (the last periodic one stays)
  program:fail(("interrupted after step %d: stopped without a checkpoint (--resume goes on from the last one)")
    :format(step))
end
if not finished then
  io.stderr:write(("\ninterrupted after step %d: saving %s\n"):format(step, checkpoint_path))
  local saved, why = pcall(save_checkpoint, step)
  if not saved then
    io.stderr:write("could not save the checkpoint: ", tostring(why), "\n")
  end
  pcall(write_chart)
  os.exit(130)
end

save_checkpoint(step)
if not is_main then
  return
end
local nats, bpc = log_eval(true)
local this_run = step - start_step < step and (" (%d in this run, %s)"):format(step - start_step,
  cli.format_duration(tc.wall_time() - run_started)) or ""
print(("done: %d steps in %s%s; validation %.4f nats/token, %.4f bits/char; checkpoint %s")
  :format(step, cli.format_duration(train_seconds()), this_run, nats, bpc, checkpoint_path))

if config.sample_tokens > 0 then
  local prompt = tok:encode("\n")
  if #prompt == 0 then
    prompt = { 0 }
  end
  local ids = tc.generate(model, prompt, { max_tokens = config.sample_tokens, temperature = 0.8, top_k = 40,
    seed = config.seed })
  local sample = tok:decode(ids)
  cli.write_atomic(out_dir .. "/sample.txt", sample)
  print("sample:")
  print(sample)
end
