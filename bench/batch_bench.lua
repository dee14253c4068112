-- The cost of the token-shard batch reader against the training step it feeds:
-- the median wall and CPU time of TokenShards:batch() (shuffled batches of
-- B × 1024 from a shard of GPT-2-sized ids), and the median wall time of a
-- config-C (GPT-2 124M) forward and backward on one such batch, measured in
-- the same run; prints the reader's share of the step.
--
--   lua5.4 bench/batch_bench.lua [--batch 4] [--batches 500] [--steps 2] [--threads 2] [--shard FILE]
--
-- Run from the repository root; the build is found through $TRICYCLE_BUILD.
-- Without --shard, a shard of 300,000 ids is written to a temporary file.
local common = require("bench.common")

local program = common.program({
  name = "batch_bench",
  usage = "lua5.4 bench/batch_bench.lua [--batch N] [--batches N] [--steps N] [--threads N] [--shard FILE]",
  description = "TokenShards:batch() against a config-C training step on the same batch size.",
  options = {
    { name = "batch", type = "integer", default = 4, help = "sequences of 1024 tokens per batch" },
    { name = "batches", type = "integer", default = 500, help = "batches read and timed" },
    { name = "steps", type = "integer", default = 2, help = "timed config-C steps, after one warm-up" },
    { name = "threads", type = "integer", default = 2, help = "engine threads for the steps" },
    { name = "shard", metavar = "FILE", help = "a token shard to read (default: one written for the run)" },
  },
})
local options = program:parse(arg)
for _, name in ipairs({ "batch", "batches", "steps", "threads" }) do
  if options[name] < 1 then
    program:fail_usage(("--%s must be at least 1, got %d"):format(name, options[name]))
  end
end

local tc = common.tricycle()
local data = require("tricycle.data")
local clock = common.clock_for(tc)
local cfg = common.configs.C
local T = cfg.ctx

local shard, written = options.shard, nil
if not shard then
  local ids = {}
  for i = 1, 300000 do
    ids[i] = (i * 7919) % cfg.vocab
  end
  written = os.tmpname()
  local file = assert(io.open(written, "wb"))
  assert(file:write(data.token_shard_bytes(ids)))
  assert(file:close())
  shard = written
end

local shards = data.TokenShards({ files = shard, batch_size = options.batch, context_length = T,
  vocab_size = cfg.vocab, shuffle = true, seed = 1 })
local walls, cpus = {}, {}
for i = 1, options.batches do
  local wall, cpu = clock(), os.clock()
  shards:batch()
  walls[i], cpus[i] = clock() - wall, os.clock() - cpu
end
shards:close()
if written then os.remove(written) end
local read_wall, read_cpu = common.median(walls), common.median(cpus)

tc.set_num_threads(options.threads)
tc.manual_seed(1)
local model = tc.nn.GPT({
  vocab_size = cfg.vocab, context_length = T, n_layer = cfg.n_layer, n_head = cfg.n_head,
  n_embd = cfg.n_embd, bias = true, tie_weights = true, gelu = "tanh", dropout = 0,
})
-- ids drawn uniformly from the vocabulary (the step's cost does not depend on them)
local x = (tc.rand({ options.batch, T }) * cfg.vocab):to("int64")
local y = (tc.rand({ options.batch, T }) * cfg.vocab):to("int64")
local steps = {}
for s = 0, options.steps do
  local started = clock()
  model:zero_grad()
  local _, loss = model(x, { targets = y })
  loss:backward()
  if s > 0 then steps[s] = clock() - started end
end
local step = common.median(steps)

print(("batch reader: %d batches of %d × %d, median %.1f µs wall, %.1f µs CPU"):format(options.batches,
  options.batch, T, read_wall * 1e6, read_cpu * 1e6))
print(("config-C forward + backward on that batch, %d threads: median of %d steps %.2f s"):format(
  tc.num_threads(), options.steps, step))
print(("the reader's share of a step: %.2e (%.5f%%)"):format(read_wall / step, 100 * read_wall / step))
