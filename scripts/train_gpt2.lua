--- Pretrains (or fine-tunes) a GPT-2-shaped model on token shards.
--
--   lua scripts/train_gpt2.lua --data data/web --model 124M --batch-size 4 --total-batch 524288 --steps 19073
--   lua scripts/train_gpt2.lua --data data/shakespeare --n-layer 6 --n-head 6 --n-embd 384 --context-length 256
--   lua scripts/train_gpt2.lua --data data/web --init-from gpt2.safetensors --lr 3e-5   -- fine-tuning
--   lua scripts/train_gpt2.lua --out out/gpt2 --resume                                 -- goes on, bit for bit
--
-- --data PREFIX reads PREFIX_train_*.bin and PREFIX_val_*.bin (token shards
-- in llm.c's layout, see scripts/prepare_data.lua), PREFIX.tokenizer (for
-- samples) and PREFIX.json (the vocabulary size and end-of-text id) when
-- they exist. A step is --total-batch tokens: --batch-size × --context-length
-- tokens per micro-batch, accumulated over total / (B T) micro-batches with
-- each loss scaled so the gradient is that of one batch of them all. AdamW
-- (weight decay on the matrices only), warmup then a cosine or linear decay
-- to --min-lr, gradient clipping.
--
-- Writes to --out (default out/gpt2): checkpoint_<step>.safetensors every
-- --checkpoint-every steps, at the end, on Ctrl-C (exit status 130) and at
-- --stop-at / --time-limit (the last --keep-checkpoints are kept; each
-- write is atomic); metrics.jsonl; loss.svg; samples.jsonl and sample.txt;
-- TensorBoard event files with --tensorboard DIR. --resume continues from
-- the newest checkpoint with the model, optimiser, schedule, random state
-- and data position it holds, so the run ends where an uninterrupted one
-- would, to the bit.
--
-- Data-parallel: `mpirun -np N lua scripts/train_gpt2.lua ...` trains on N
-- ranks (tc.distributed, tc.nn.DistributedDataParallel): each rank reads its
-- own --batch-size rows of every micro-batch, a step is still --total-batch
-- tokens (a multiple of N × batch size × context), and rank 0 alone prints,
-- evaluates, samples and writes. --zero shards AdamW's moments over the
-- ranks (ZeRO-1). --resume goes on at the same number of ranks. Ctrl-C stops
-- every rank without a new checkpoint (--stop-at and --time-limit write one).

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
    io.stderr:write(("train_gpt2: %s is missing: run make first (in %s)\n"):format(core_path, root))
    os.exit(1)
  end
  f:close()
end

local compat = require("tricycle.compat")
local tc = require("tricycle")
local cli = require("tricycle.cli")
local training = require("tricycle.training")
local tensorboard = require("tricycle.tensorboard")
local gpt2 = require("tricycle.models.gpt2")
local tokenizer_module = require("tricycle.tokenizer")

local USAGE = "lua scripts/train_gpt2.lua --data PREFIX [--model 124M|350M|774M|1.5B] [--steps N] [--out DIR] "
  .. "[--resume] [options]"

local MODELS = { "124M", "350M", "774M", "1.5B" }

local OPTIONS = {
  { name = "data", metavar = "PREFIX",
    help = "shards PREFIX_train_*.bin and PREFIX_val_*.bin, PREFIX.tokenizer, PREFIX.json" },
  { name = "train", metavar = "GLOB", help = "training shards (instead of PREFIX_train_*.bin)" },
  { name = "val", metavar = "GLOB", help = "validation shards (instead of PREFIX_val_*.bin)" },
  { name = "tokenizer", metavar = "FILE", help = "tokenizer for samples and checkpoints (default PREFIX.tokenizer)" },
  { name = "out", metavar = "DIR", help = "output folder (default out/gpt2)" },
  { name = "resume", type = "flag", help = "go on from the newest DIR/checkpoint_*.safetensors" },
  { name = "model", type = "choice", choices = MODELS, help = "GPT-2 shape (default 124M); --n-layer etc. override" },
  { name = "n_layer", type = "integer", help = "transformer blocks" },
  { name = "n_head", type = "integer", help = "attention heads" },
  { name = "n_embd", type = "integer", help = "embedding width" },
  { name = "context_length", type = "integer", help = "tokens per sequence (default 1024)" },
  { name = "vocab_size", type = "integer", help = "vocabulary (default: PREFIX.json's, else 50257)" },
  { name = "dropout", type = "number", help = "dropout probability (default 0)" },
  { name = "init_from", metavar = "FILE", help = "start from GPT-2 weights (a Hugging Face-layout safetensors file)" },
  { name = "batch_size", type = "integer", help = "sequences per micro-batch (default 4)" },
  { name = "total_batch", type = "integer",
    help = "tokens per optimiser step, a multiple of batch size × context (default: one micro-batch)" },
  { name = "steps", type = "integer", help = "optimiser steps in total, counted from the start (default 1000)" },
  { name = "lr", type = "number", help = "peak learning rate (default 6e-4)" },
  { name = "min_lr", type = "number", help = "final learning rate (default lr / 10)" },
  { name = "warmup", type = "integer", help = "linear warmup steps (default: a tenth of --steps, at most 700)" },
  { name = "decay", type = "choice", choices = { "cosine", "linear" }, help = "decay after warmup (default cosine)" },
  { name = "weight_decay", type = "number", help = "AdamW weight decay of the matrices (default 0.1)" },
  { name = "beta1", type = "number", help = "AdamW beta1 (default 0.9)" },
  { name = "beta2", type = "number", help = "AdamW beta2 (default 0.95)" },
  { name = "grad_clip", type = "number", help = "clip the gradient norm to this (default 1.0; 0: off)" },
  { name = "shuffle", type = "flag", help = "visit the shards in a new order, at new offsets, each epoch" },
  { name = "seed", type = "integer", help = "seed for initialisation, shuffling and sampling (default 1337)" },
  { name = "val_every", type = "integer", help = "steps between validation passes (default 250; 0: only at the end)" },
  { name = "val_batches", type = "integer", help = "batches per periodic validation pass (default 20; 0: all)" },
  { name = "sample_every", type = "integer", help = "steps between samples (default 0: only at the end)" },
  { name = "sample_tokens", type = "integer", help = "tokens per sample (default 64; 0: none)" },
  { name = "checkpoint_every", type = "integer", help = "steps between checkpoints (default 500; 0: only at the end)" },
  { name = "keep_checkpoints", type = "integer", help = "checkpoints kept (default 3)" },
  { name = "log_every", type = "integer", help = "steps between metric lines (default 1)" },
  { name = "tensorboard", metavar = "DIR", help = "also write TensorBoard event files there" },
  { name = "stop_at", type = "integer", help = "stop after this step (checkpoint, exit 0; --resume goes on)" },
  { name = "time_limit", type = "number", help = "stop after this many seconds of training (as --stop-at)" },
  { name = "peak_flops", type = "number",
    help = "FLOP/s that MFU divides by (default: a matmul measured at the start)" },
  { name = "device", type = "choice", choices = { "auto", "cpu", "cuda" }, help = "where to train (default auto)" },
  { name = "threads", type = "integer", help = "CPU threads for the engine" },
  { name = "zero", type = "flag", help = "shard AdamW's moments over the ranks of an mpirun job (ZeRO-1)" },
}

-- Settings that fix the model's shape: a checkpoint or weights of another shape is an error.
local SHAPE_KEYS = { "vocab_size", "context_length", "n_layer", "n_head", "n_embd" }
-- Settings of one invocation, never taken from a checkpoint.
local PER_RUN = { stop_at = true, time_limit = true, peak_flops = true, threads = true, device = true,
  init_from = true, zero = true }

local DEFAULTS = {
  model = "124M", context_length = 1024, dropout = 0, batch_size = 4, steps = 1000, lr = 6e-4, decay = "cosine",
  weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, grad_clip = 1.0, shuffle = false, seed = 1337, val_every = 250,
  val_batches = 20, sample_every = 0, sample_tokens = 64, checkpoint_every = 500, keep_checkpoints = 3,
  log_every = 1,
}

local program = cli.program({ name = "train_gpt2", usage = USAGE, options = OPTIONS,
  description = "Pretrains or fine-tunes a GPT-2-shaped model on token shards, with gradient accumulation, "
    .. "validation, samples, checkpoints and metrics." })
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
  -- a failing rank tells the others, which then stop naming it
  local fail = program.fail
  function program.fail(self, message)
    message = tostring(message)
    if not dist.failure() then
      pcall(dist.abort, message)
    end
    return fail(self, ("rank %d: %s"):format(rank, message))
  end
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then
    f:close()
    return true
  end
  return false
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- ---------------------------------------------------------------- configuration

local out_dir = (values.out or "out/gpt2"):gsub("/$", "")
local metrics_path = out_dir .. "/metrics.jsonl"

-- resume: the checkpoint's settings, under what the command line gives
local resumed, resumed_path
if values.resume then
  local found = training.list_checkpoints(out_dir)
  if #found == 0 then
    program:fail(("--resume: no checkpoint_*.safetensors in %s"):format(out_dir))
  end
  resumed_path = found[#found].path
  local ok, state = pcall(tc.checkpoint.load, resumed_path)
  if not ok then
    program:fail(state)
  end
  resumed = state
  if type(resumed.config) ~= "table" or not compat.is_integer(resumed.config.n_layer) then
    program:fail(("%s was not written by train_gpt2.lua (its config has no n_layer)"):format(resumed_path))
  end
end

local config = {}
for key, value in pairs(DEFAULTS) do
  config[key] = value
end
if resumed then
  for key, value in pairs(resumed.config) do
    if not PER_RUN[key] then
      config[key] = value
    end
  end
end
for key, value in pairs(values) do
  if key ~= "resume" and key ~= "help" then
    config[key] = value
  end
end
if resumed then
  config.init_from = nil -- the weights come from the checkpoint
end
-- the shape: a named model, then the single settings
if not resumed then
  local shape = training.gpt2_shapes[config.model]
  for key, value in pairs(shape) do
    if values[key] == nil then
      config[key] = value
    end
  end
end

local manifest
local prefix = config.data
if prefix then
  local manifest_path = prefix .. ".json"
  local f = io.open(manifest_path, "rb")
  if f then
    local text = f:read("a")
    f:close()
    local ok, decoded = pcall(tc.json_decode, text)
    if not ok or type(decoded) ~= "table" then
      program:fail(("%s is not a manifest written by prepare_data.lua: %s"):format(manifest_path, tostring(decoded)))
    end
    manifest = decoded
  end
end

-- weights to fine-tune: their shape wins, and a conflicting option is an error
local init_state
if config.init_from then
  local ok, tensors, metadata = pcall(tc.load, config.init_from)
  if not ok then
    program:fail(tensors)
  end
  local stripped = {}
  for name, tensor in pairs(tensors) do
    stripped[(name:gsub("^transformer%.", ""))] = tensor
  end
  local wte, wpe = stripped["wte.weight"], stripped["wpe.weight"]
  if not wte or not wpe then
    program:fail(("--init-from %s: no wte.weight or wpe.weight; not GPT-2 weights"):format(config.init_from))
  end
  local n_layer = 0
  while stripped["h." .. n_layer .. ".ln_1.weight"] do
    n_layer = n_layer + 1
  end
  local file_shape = { vocab_size = wte:size(1), context_length = wpe:size(1), n_layer = n_layer, n_embd = wte:size(2),
    n_head = compat.tointeger(tonumber(metadata and metadata.n_head or "")) or compat.idiv(wte:size(2), 64) }
  for _, key in ipairs(SHAPE_KEYS) do
    local given = values[key]
    if given ~= nil and given ~= file_shape[key] and not (key == "context_length" and given < file_shape[key]) then
      program:fail(("--%s %d conflicts with %s, whose %s is %d (weights of another shape)"):format(
        cli.flag_of(key):sub(3), given, config.init_from, key, file_shape[key]))
    end
    if key ~= "context_length" or values.context_length == nil then
      config[key] = file_shape[key]
    end
  end
  if config.context_length < wpe:size(1) then
    local wpe_name = tensors["wpe.weight"] and "wpe.weight" or "transformer.wpe.weight"
    tensors[wpe_name] = wpe:narrow(1, 1, config.context_length):contiguous()
  end
  init_state = tensors
end
if resumed then
  for _, key in ipairs(SHAPE_KEYS) do
    if values[key] ~= nil and values[key] ~= resumed.config[key] then
      program:fail(("--%s %d conflicts with the checkpoint %s, whose %s is %s (a checkpoint of another shape; drop the "
        .. "option or use another --out)"):format(key:gsub("_", "-"), values[key], resumed_path, key,
        tostring(resumed.config[key])))
    end
  end
  local saved_world = type(resumed.extra) == "table" and type(resumed.extra.data) == "table"
    and resumed.extra.data.world_size or 1
  if saved_world ~= world then
    program:fail(("--resume: %s was written by a run of %d rank%s, this one has %d; resume with as many ranks")
      :format(resumed_path, saved_world, saved_world == 1 and "" or "s", world))
  end
  if values.model and training.gpt2_shapes[values.model].n_layer ~= resumed.config.n_layer then
    program:fail(("--model %s conflicts with the checkpoint %s (%d layers of %d): a checkpoint of another shape")
      :format(values.model, resumed_path, resumed.config.n_layer, resumed.config.n_embd))
  end
end
config.vocab_size = config.vocab_size or (manifest and compat.tointeger(manifest.vocab_size)) or 50257
config.min_lr = config.min_lr or config.lr / 10
config.warmup = config.warmup or math.min(700, compat.idiv(config.steps, 10))

for _, key in ipairs({ "steps", "batch_size", "context_length", "n_layer", "n_head", "n_embd", "vocab_size",
  "keep_checkpoints", "log_every" }) do
  if config[key] <= 0 then
    program:fail_usage(("--%s must be positive, got %d"):format(key:gsub("_", "-"), config[key]))
  end
end
for _, key in ipairs({ "val_every", "val_batches", "sample_every", "sample_tokens", "checkpoint_every", "warmup" }) do
  if config[key] < 0 then
    program:fail_usage(("--%s must be at least 0, got %d"):format(key:gsub("_", "-"), config[key]))
  end
end
if config.n_embd % config.n_head ~= 0 then
  program:fail_usage(("--n-embd %d is not divisible by --n-head %d"):format(config.n_embd, config.n_head))
end
if config.dropout < 0 or config.dropout >= 1 then
  program:fail_usage(("--dropout must be in [0, 1), got %g"):format(config.dropout))
end
if config.lr <= 0 or config.min_lr < 0 or config.grad_clip < 0 or config.weight_decay < 0 then
  program:fail_usage("--lr must be positive; --min-lr, --grad-clip and --weight-decay at least 0")
end
local micro_tokens = config.batch_size * config.context_length * world -- every rank's rows together
config.total_batch = config.total_batch or micro_tokens
if config.total_batch <= 0 or config.total_batch % micro_tokens ~= 0 then
  program:fail_usage(("--total-batch %d is not a positive multiple of %s--batch-size × --context-length = "
    .. "%s%d × %d = %d"):format(config.total_batch, world > 1 and "ranks × " or "", world > 1 and (world .. " × ") or "",
      config.batch_size, config.context_length, micro_tokens))
end
local accumulation = compat.idiv(config.total_batch, micro_tokens)
if values.threads then
  tc.set_num_threads(values.threads)
end

local device, device_notice = config.device or "auto", nil
if device == "auto" then
  device, device_notice = tc.cuda.pick_device()
elseif device == "cuda" then
  local available, reason = tc.cuda.is_available()
  if not available then
    program:fail("--device cuda: " .. tostring(reason))
  end
end

-- ---------------------------------------------------------------- data

local train_glob = config.train or (prefix and prefix .. "_train_*.bin")
if not train_glob then
  program:fail_usage("give --data PREFIX (or --train GLOB)")
end
local val_glob = config.val
if not val_glob and prefix and pcall(tc.data.glob, prefix .. "_val_*.bin") then
  val_glob = prefix .. "_val_*.bin" -- validation shards are optional
end

local function open_shards(glob, shuffle, part_of_world)
  local ok, shards = pcall(tc.data.TokenShards, { files = glob, batch_size = config.batch_size,
    context_length = config.context_length, vocab_size = config.vocab_size, shuffle = shuffle, seed = config.seed,
    rank = part_of_world and rank or 0, world_size = part_of_world and world or 1 })
  if not ok then
    program:fail(shards)
  end
  return shards
end
-- each rank reads its rows of every step; rank 0 alone validates, on all of the validation shards
local train_data = open_shards(train_glob, config.shuffle, true)
local val_data = is_main and val_glob and open_shards(val_glob, false, false) or nil
local val_total = val_data and val_data:batches_per_epoch() or 0

-- the tokenizer (optional): samples, and a checkpoint that generate.lua can read
local tok, tokenizer_text
do
  local path = config.tokenizer or (prefix and exists(prefix .. ".tokenizer") and prefix .. ".tokenizer")
  if resumed and resumed.tokenizer and not values.tokenizer then
    tokenizer_text = resumed.tokenizer
    tok = tokenizer_module.deserialize(tokenizer_text)
  elseif path then
    local ok, loaded = pcall(tokenizer_module.load, path)
    if not ok then
      program:fail(loaded)
    end
    tok = loaded
    tokenizer_text = tok:serialize()
  end
end
local eot = manifest and compat.tointeger(manifest.eot) or (config.vocab_size == 50257 and 50256 or nil)

-- ---------------------------------------------------------------- model

tc.manual_seed(config.seed)
local model_config = { vocab_size = config.vocab_size, context_length = config.context_length,
  n_layer = config.n_layer, n_head = config.n_head, n_embd = config.n_embd, dropout = config.dropout }
local model
if init_state then
  local ok, loaded = pcall(gpt2.from_hf_state, init_state, { n_head = config.n_head, dropout = config.dropout })
  if not ok then
    program:fail(("--init-from %s: %s"):format(config.init_from, tostring(loaded)))
  end
  model = loaded
  init_state = nil -- luacheck: ignore
else
  model = tc.nn.GPT(model_config)
end
if device ~= "cpu" then
  model:to(device)
end
-- several ranks (or ZeRO-1 on one): rank 0's weights everywhere, gradients averaged over the ranks
local ddp = (world > 1 or config.zero) and tc.nn.DistributedDataParallel(model) or nil
local optimizer = tc.optim.AdamW(tc.optim.gpt_param_groups(model, config.weight_decay), {
  lr = config.lr, betas = { config.beta1, config.beta2 }, weight_decay = config.weight_decay,
  zero_stage = config.zero and 1 or 0, ddp = config.zero and ddp or nil,
})
local make_schedule = config.decay == "linear" and tc.optim.linear_schedule or tc.optim.cosine_schedule
local scheduler = make_schedule({ max_lr = config.lr, min_lr = config.min_lr, warmup = math.min(config.warmup,
  config.steps), total = config.steps })

if is_main then
  os.execute("mkdir -p " .. shell_quote(out_dir))
end
local step = 0
if resumed then
  local ok, failure = pcall(function()
    tc.checkpoint.restore(resumed, { model = model, optimizer = optimizer, scheduler = scheduler })
    -- rank 0 saved its own reading position; every rank is at the same one in its own rows
    local data_state = resumed.extra and resumed.extra.data
    if type(data_state) == "table" and data_state.rank == 0 then
      data_state.rank = rank
    end
    train_data:load_state_dict(data_state)
  end)
  if not ok then
    program:fail(("cannot resume from %s: %s"):format(resumed_path, tostring(failure)))
  end
  step = resumed.step or 0
  scheduler.step = step
  if is_main then
    cli.keep_records_through(metrics_path, step)
  end
  resumed = nil -- the tensors now live in the model and optimiser
elseif is_main then
  cli.write_atomic(metrics_path, "")
end
local start_step = step

local parameters = model:num_parameters()
local flops_per_token = training.gpt_flops_per_token(config, parameters)
local peak_flops = config.peak_flops or training.matmul_flops({ device = device })

local writer
if config.tensorboard and is_main then
  local ok, opened = pcall(tensorboard.Writer, config.tensorboard)
  if not ok then
    program:fail(opened)
  end
  writer = opened
  if start_step > 0 then
    writer:start_session(start_step)
  end
end

say(("GPT on %s: %d parameters (%d layers, %d heads, width %d, context %d, vocabulary %d)%s"):format(device,
  parameters, config.n_layer, config.n_head, config.n_embd, config.context_length, config.vocab_size,
  config.init_from and (", from " .. config.init_from) or ""))
say(("data: %d training tokens in %d shards%s; a step is %d tokens (%s%d × %d, %d micro-batches)"):format(
  train_data:num_tokens(), #train_data.shards, val_data and (", %d validation tokens (%d batches)")
  :format(val_data:num_tokens(), val_total) or (val_glob and "" or ", no validation shards"), config.total_batch,
  world > 1 and (world .. " ranks × ") or "", config.batch_size, config.context_length, accumulation))
say(("MFU is model FLOPs (%.3g per token) over %.1f GFLOP/s%s%s"):format(flops_per_token, peak_flops / 1e9,
  config.peak_flops and "" or " (a matmul measured just now)", world > 1 and ", per rank" or ""))
if ddp then
  say(("data-parallel: %d ranks over %s, gradients in %d buckets%s"):format(world, dist.backend(), #ddp.buckets,
    config.zero and ", AdamW's moments sharded (ZeRO-1)" or ""))
end
if device_notice then
  say(device_notice)
end
if start_step > 0 then
  say(("resumed from %s at step %d"):format(resumed_path, start_step))
end

-- ---------------------------------------------------------------- helpers

local function to_device(t)
  if device ~= "cpu" then
    return t:to(device)
  end
  return t
end

local function next_batch()
  local x, y = train_data:batch()
  return to_device(x), to_device(y)
end

--- Mean validation loss over the first `batches` batches (all when nil).
local function evaluate(batches)
  model:eval()
  val_data:reset()
  local count = batches and math.min(batches, val_total) or val_total
  local total = 0
  tc.no_grad(function()
    for _ = 1, count do
      local x, y = val_data:batch()
      local _, loss = model(to_device(x), { targets = to_device(y) })
      total = total + loss:item()
    end
  end)
  model:train()
  return total / math.max(count, 1)
end

local function sample_text()
  if not tok or config.sample_tokens <= 0 then
    return nil
  end
  local prompt = eot and { eot } or tok:encode("\n")
  if #prompt == 0 then
    prompt = { 0 }
  end
  model:eval()
  local ids = tc.generate(model, prompt, { max_tokens = config.sample_tokens, temperature = 0.8, top_k = 40,
    seed = config.seed })
  model:train()
  local kept = {}
  for _, id in ipairs(ids) do
    if id == eot then
      break
    end
    if id < tok:vocab_size() then
      kept[#kept + 1] = id
    end
  end
  return tok:decode(kept)
end

local function write_chart()
  cli.write_atomic(out_dir .. "/loss.svg", cli.loss_chart(cli.read_jsonl(metrics_path), "loss (nats per token)"))
end

-- Every rank calls it (ZeRO-1 gathers the moments); rank 0 writes.
local function save_checkpoint()
  local path = training.checkpoint_path(out_dir, step)
  local optimizer_state = optimizer:state_dict()
  if is_main then
    tc.checkpoint.save(path, {
      model = model, optimizer = optimizer_state, scheduler = scheduler:state_dict(), step = step, config = config,
      tokenizer = tokenizer_text, extra = { data = train_data:state_dict() },
    })
    training.prune_checkpoints(out_dir, config.keep_checkpoints)
  end
  return path
end

-- ---------------------------------------------------------------- training

-- (a launcher's ranks may see a terminal that is not one: they log lines)
local terminal = world == 1 and cli.stdout_is_terminal()
local progress = is_main and cli.Progress.new({ total = config.steps, terminal = terminal, every = config.log_every,
  columns = terminal and cli.terminal_columns() or nil }) or training.silent_progress
local loss_sum, loss_count = 0, 0
local train_seconds, timed_steps = 0, 0
local run_started = tc.wall_time()
local stopped -- why the loop ended early, when it did

local function log_eval(full)
  local loss = evaluate(not full and config.val_batches > 0 and config.val_batches or nil)
  progress:print(("step %d: validation loss %.4f%s"):format(step, loss, full and " (full pass)" or ""))
  cli.append_jsonl(metrics_path, { step = step, val_loss = loss })
  if writer then
    writer:scalars({ ["val/loss"] = loss }, step)
  end
  write_chart()
  return loss
end

local function log_sample()
  local text = sample_text()
  if text then
    cli.append_jsonl(out_dir .. "/samples.jsonl", { step = step, text = text })
    progress:print(("step %d sample:\n%s\n"):format(step, text))
  end
  return text
end

local function train_step()
  local started = tc.wall_time()
  local lr = scheduler:lr(step)
  tc.optim.set_lr(optimizer, lr)
  optimizer:zero_grad()
  local loss = training.accumulate_gradients(ddp or model, next_batch, accumulation)
  local max_norm = config.grad_clip > 0 and config.grad_clip or math.huge
  local norm = ddp and ddp:clip_grad_norm(max_norm) or tc.nn.clip_grad_norm(model:parameters(), max_norm)
  optimizer:step()
  step = step + 1
  scheduler.step = step
  if world > 1 then
    -- the ranks' mean loss, and --time-limit seen by every rank at the same step
    local out_of_time = config.time_limit ~= nil and tc.wall_time() - run_started >= config.time_limit
    local stop_now
    loss, stop_now = training.agree_step(loss, out_of_time)
    if stop_now and not stopped then
      stopped = ("--time-limit %gs"):format(config.time_limit or 0)
    end
  end
  train_seconds, timed_steps = train_seconds + (tc.wall_time() - started), timed_steps + 1
  local seconds_per_step = train_seconds / timed_steps
  local rate = config.total_batch / seconds_per_step
  local mfu = rate * flops_per_token / peak_flops
  loss_sum, loss_count = loss_sum + loss, loss_count + 1
  progress:update(step, { loss = loss, lr = lr, tokens_per_second = rate, mfu = mfu,
    eta = (config.steps - step) * seconds_per_step })
  if is_main and (step % config.log_every == 0 or step == config.steps) then
    local record = { step = step, loss = loss_sum / loss_count, lr = lr, grad_norm = norm, tokens_per_second = rate,
      mfu = mfu, tokens = step * config.total_batch }
    cli.append_jsonl(metrics_path, record)
    if writer then
      writer:scalars({ ["train/loss"] = record.loss, ["train/lr"] = lr, ["train/grad_norm"] = norm,
        ["train/tokens_per_second"] = rate, ["train/mfu"] = mfu }, step)
    end
    loss_sum, loss_count = 0, 0
  end
  if val_data and config.val_every > 0 and step % config.val_every == 0 and step < config.steps then
    log_eval(false)
  end
  if is_main and config.sample_every > 0 and step % config.sample_every == 0 and step < config.steps then
    log_sample()
  end
  if config.checkpoint_every > 0 and step % config.checkpoint_every == 0 and step < config.steps then
    save_checkpoint()
  end
end

local function more()
  if step >= config.steps then
    return false
  end
  if config.stop_at and step >= config.stop_at then
    stopped = ("--stop-at %d"):format(config.stop_at)
    return false
  end
  if world == 1 and config.time_limit and tc.wall_time() - run_started >= config.time_limit then
    stopped = ("--time-limit %gs"):format(config.time_limit)
  end
  return not stopped -- with several ranks, --time-limit is agreed at the end of a step
end

model:train()
-- Ctrl-C takes effect between two steps (see cli.run_steps), so the
-- checkpoint it writes holds a whole number of steps.
local ok_loop, finished = pcall(cli.run_steps, more, train_step)
progress:finish_line()
if not ok_loop then
  program:fail(finished)
end
if not finished and world > 1 then
  -- the ranks are not at one step: no checkpoint (the last periodic one stays)
  program:fail(("interrupted after step %d: stopped without a checkpoint (--resume goes on from the last one)")
    :format(step))
end
if not finished then
  io.stderr:write(("\ninterrupted after step %d: saving a checkpoint\n"):format(step))
  local saved, why = pcall(save_checkpoint)
  if not saved then
    io.stderr:write("could not save the checkpoint: ", tostring(why), "\n")
  end
  pcall(write_chart)
  if writer then
    writer:close()
  end
  os.exit(130)
end

local val_loss = val_data and log_eval(true) or nil
local checkpoint_path = save_checkpoint()
if is_main then
  write_chart()
end
local elapsed = tc.wall_time() - run_started
if stopped then
  say(("stopped at step %d of %d (%s) after %s; checkpoint %s; --resume goes on"):format(step, config.steps,
    stopped, cli.format_duration(elapsed), checkpoint_path))
else
  say(("done: %d steps in %s%s; checkpoint %s"):format(step, cli.format_duration(elapsed),
    val_loss and ("; validation loss %.4f"):format(val_loss) or "", checkpoint_path))
  local text = is_main and log_sample()
  if text then
    cli.write_atomic(out_dir .. "/sample.txt", text)
  end
end
if writer then
  writer:close()
end
