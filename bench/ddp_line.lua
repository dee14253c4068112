-- One line of the data-parallel benchmark (bench/ddp_bench.lua runs these),
-- printed by rank 0 as one JSON line: AdamW training steps of a GPT config
-- (bench/common.lua) on random token ids, the step measured as
-- bench/gpt_line.lua measures it (median over --steps after --warmup).
--
--   lua5.4 bench/ddp_line.lua --config B --threads 2                        -- one process, the whole batch
--   mpirun -np 2 lua5.4 bench/ddp_line.lua --config B --threads 1 --ddp     -- each rank half the batch
--   mpirun -np 2 lua5.4 bench/ddp_line.lua --config B --threads 1 --ddp --no-overlap | --zero
--
-- With --ddp: tc.nn.DistributedDataParallel (buckets of --bucket-mb), the
-- time each step waits at the end of its backward for the buckets' averages
-- (ddp.last_wait_seconds) and all the time spent waiting in collectives
-- (tc.distributed.stats), both as shares of the step; the moments each rank
-- holds and its peak engine memory and resident memory.
local here = arg[0]:match("^(.*)/") or "."
local common = dofile(here .. "/common.lua")
local tc = common.tricycle()
local clock = common.clock_for(tc)

local program = common.program({
  name = "ddp_line", usage = "lua5.4 bench/ddp_line.lua --config A|B|C --threads N [--ddp [--no-overlap] [--zero]]",
  description = "One line of bench/ddp_bench.lua, printed as one JSON line by rank 0.",
  options = {
    { name = "config", type = "choice", choices = { "A", "B", "C" }, default = "B", help = "model config" },
    { name = "threads", type = "integer", default = 1, help = "engine threads per process" },
    { name = "ddp", type = "flag", default = false, help = "train with DistributedDataParallel" },
    { name = "no_overlap", type = "flag", default = false, help = "start every bucket at the end of the backward" },
    { name = "zero", type = "flag", default = false, help = "ZeRO-1 AdamW" },
    { name = "bucket_mb", type = "number", default = 2, help = "bucket size in megabytes" },
    { name = "warmup", type = "integer", default = 2, help = "steps before the timed ones" },
    { name = "steps", type = "integer", default = 5, help = "timed steps" },
  },
})
local options = program:parse(arg)
if options.threads < 1 or options.steps < 1 or options.warmup < 0 then
  program:fail_usage("--threads and --steps must be positive, --warmup at least 0")
end
local dist = tc.distributed
dist.init()
local rank, world = dist.rank(), dist.world_size()
local cfg = common.configs[options.config]
if cfg.batch % world ~= 0 then
  program:fail(("config %s's batch of %d does not split over %d ranks"):format(options.config, cfg.batch, world))
end
local rows = cfg.batch / world -- (a whole number: checked above)

tc.set_num_threads(options.threads)
tc.manual_seed(0)
local model = tc.nn.GPT({
  vocab_size = cfg.vocab, context_length = cfg.ctx, n_layer = cfg.n_layer, n_head = cfg.n_head,
  n_embd = cfg.n_embd, bias = true, tie_weights = true, gelu = "tanh", dropout = 0, dtype = "float32",
})
local ddp = options.ddp and tc.nn.DistributedDataParallel(model, { bucket_mb = options.bucket_mb,
  overlap = not options.no_overlap }) or nil
local optimizer = tc.optim.AdamW(model:parameters(), { lr = 1e-3, betas = { 0.9, 0.99 }, weight_decay = 0.1,
  zero_stage = options.zero and 1 or 0, ddp = options.zero and ddp or nil })

-- The same whole batches on every rank; each rank trains on its rows.
math.randomseed(1)
local batches = {}
for i = 1, 4 do
  local data = {}
  for r = 1, cfg.batch do
    local row = {}
    for c = 1, cfg.ctx + 1 do
      row[c] = math.random(0, cfg.vocab - 1)
    end
    data[r] = row
  end
  local ids = tc.tensor(data, { dtype = "int64" }):narrow(1, rank * rows + 1, rows)
  batches[i] = { ids:narrow(2, 1, cfg.ctx):contiguous(), ids:narrow(2, 2, cfg.ctx):contiguous() }
end

local step_times, end_waits, collective_waits = {}, {}, {}
for step = 1, options.warmup + options.steps do
  local batch = batches[(step - 1) % #batches + 1]
  dist.reset_stats()
  local started = clock()
  optimizer:zero_grad()
  local _, loss = (ddp or model)(batch[1], { targets = batch[2] })
  loss:backward()
  optimizer:step()
  loss:item()
  local seconds = clock() - started
  if step > options.warmup then
    step_times[#step_times + 1] = seconds
    end_waits[#end_waits + 1] = ddp and ddp.last_wait_seconds / seconds or 0
    collective_waits[#collective_waits + 1] = dist.stats().wait_seconds / seconds
  end
end

local state_bytes = 0
for _, entry in pairs(optimizer.state) do
  for _, name in ipairs(optimizer.state_tensors) do
    if entry[name] then
      state_bytes = state_bytes + entry[name]:numel() * 4
    end
  end
end
local _, peak = tc.memory()
local step = common.median(step_times)
local mine = tc.tensor({ state_bytes, peak, common.peak_rss_mib() or 0 }, { dtype = "float64" })
local everyone = dist.all_gather(mine):totable()
if rank ~= 0 then
  return
end
local per_rank = {}
for r, row in ipairs(everyone) do
  per_rank[r] = { moments_mib = common.round(row[1] / 2 ^ 20, 2), engine_peak_mib = common.round(row[2] / 2 ^ 20, 1),
    peak_rss_mib = common.round(row[3], 1) }
end
print(tc.json_encode({
  config = options.config, ranks = world, threads = options.threads, ddp = options.ddp,
  overlap = options.ddp and not options.no_overlap or nil, zero = options.zero, bucket_mb = options.bucket_mb,
  buckets = ddp and #ddp.buckets or nil, batch = cfg.batch, ctx = cfg.ctx, params = model:num_parameters(),
  step_seconds = common.round(step, 4), tokens_per_second = common.round(cfg.batch * cfg.ctx / step, 1),
  end_wait_share = common.round(common.median(end_waits), 4),
  collective_wait_share = common.round(common.median(collective_waits), 4), steps = options.steps,
  per_rank = per_rank,
}))
