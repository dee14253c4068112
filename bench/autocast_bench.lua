-- Autocast against float32: the time of a GPT training step (zero_grad,
-- forward, cross-entropy, backward, AdamW, as bench/gpt_line.lua times it)
-- with the forward under tc.autocast("bfloat16") and without, on configs B
-- and C of bench/common.lua (random ids, random weights). One process, one
-- model per config: the two kinds of step alternate, step by step, so both
-- see the same machine load; the figure is each kind's median and their
-- ratio. Then the weight question: a forward linear of config B's shapes
-- with the float32 weight rounded while the GEMM packs it (what autocast
-- does) against the same product reading a bf16 copy of the weight (what a
-- per-step cache of bf16 weights would give, the copy made beforehand and
-- not timed), alternated, median. Writes bench/results/autocast.md with
-- --write. --dtype float16 times the steps under tc.autocast("float16")
-- instead (float16-rounded float32 copies of both operands for the float32
-- GEMM on the CPU), without the weight rows and without --write.
--
--   lua5.4 bench/autocast_bench.lua [--configs B,C] [--steps 5] [--warmup 1] [--threads 1] [--dtype bfloat16]
--     [--write]
--
-- Run from the repository root; the build is found through $TRICYCLE_BUILD.
-- TRICYCLE_BGEMM=avx512|fallback caps the bf16 GEMM's path (cpu_bgemm.h).
local common = require("bench.common")

local program = common.program({
  name = "autocast_bench",
  usage = "lua5.4 bench/autocast_bench.lua [--configs B,C] [--steps N] [--warmup N] [--threads N] [--write]",
  description = "Training-step time under autocast (bf16 products) against float32, alternated, median.",
  options = {
    { name = "configs", default = "B,C", help = "comma-separated configs of bench/common.lua" },
    { name = "steps", type = "integer", default = 5, help = "timed steps of each kind per config" },
    { name = "warmup", type = "integer", default = 1, help = "untimed steps of each kind first" },
    { name = "threads", type = "integer", default = 1, help = "engine threads" },
    { name = "write", type = "flag", default = false, help = "write bench/results/autocast.md" },
    { name = "dtype", default = "bfloat16", help = "the autocast dtype: bfloat16 or float16" },
  },
})
local options = program:parse(arg)
if options.dtype ~= "bfloat16" and options.dtype ~= "float16" then
  program:fail_usage("--dtype must be bfloat16 or float16, got " .. options.dtype)
elseif options.write and options.dtype ~= "bfloat16" then
  program:fail_usage("--write is for --dtype bfloat16 (bench/results/autocast.md)")
end
if options.steps < 1 or options.warmup < 0 or options.threads < 1 then
  program:fail_usage("--steps and --threads must be positive, --warmup at least 0")
end
for name in options.configs:gmatch("[^,]+") do
  if not common.configs[name] then program:fail_usage(("--configs: no config '%s'"):format(name)) end
end
local tc = common.tricycle()
local clock = common.clock_for(tc)
tc.set_num_threads(options.threads)

local function random_ids(rows, cols, vocab)
  local data = {}
  for r = 1, rows do
    local row = {}
    for c = 1, cols do row[c] = math.random(0, vocab - 1) end
    data[r] = row
  end
  return tc.tensor(data, { dtype = "int64" })
end

-- Times of `steps` steps of each kind, alternating (float32 first in odd rounds, autocast first in even ones).
local function measure(name)
  local cfg = common.configs[name]
  tc.manual_seed(0)
  math.randomseed(0)
  local model = tc.nn.GPT({ vocab_size = cfg.vocab, context_length = cfg.ctx, n_layer = cfg.n_layer,
    n_head = cfg.n_head, n_embd = cfg.n_embd, bias = true, tie_weights = true, gelu = "tanh", dropout = 0,
    dtype = "float32" })
  local optimizer = tc.optim.AdamW(model:parameters(), { lr = 1e-3, betas = { 0.9, 0.99 }, weight_decay = 0.1 })
  local ids = random_ids(cfg.batch, cfg.ctx + 1, cfg.vocab)
  local inputs, targets = ids:narrow(2, 1, cfg.ctx):contiguous(), ids:narrow(2, 2, cfg.ctx):contiguous()
  local function step(dtype)
    collectgarbage()
    local started = clock()
    optimizer:zero_grad()
    local _, loss = tc.autocast(dtype, function() return model(inputs, { targets = targets }) end)
    loss:backward()
    optimizer:step()
    return clock() - started, loss:item()
  end
  local times = { float32 = {}, [options.dtype] = {} }
  local losses = {}
  for round = 1, options.warmup + options.steps do
    local order = round % 2 == 1 and { "float32", options.dtype } or { options.dtype, "float32" }
    for _, dtype in ipairs(order) do
      local seconds, loss = step(dtype)
      losses[dtype] = loss
      if round > options.warmup then table.insert(times[dtype], seconds * 1e3) end
    end
  end
  -- bf16: the autocast dtype's median, whichever it is
  local f32, bf16 = common.median(times.float32), common.median(times[options.dtype])
  return { config = name, cfg = cfg, f32 = f32, bf16 = bf16, ratio = f32 / bf16, times = times, losses = losses }
end

local function cpu_flags()
  local file = io.open("/proc/cpuinfo")
  if not file then return "unknown" end
  local text = file:read("*a")
  file:close()
  local found = {}
  for _, flag in ipairs({ "avx512f", "avx512_bf16", "amx_bf16" }) do
    if text:find(" " .. flag .. "[ \n]") then found[#found + 1] = flag end
  end
  return table.concat(found, ", ")
end

local function list(values)
  local out = {}
  for i, v in ipairs(values) do out[i] = ("%.0f"):format(v) end
  return table.concat(out, ", ")
end

-- Forward linears of config B (2048 rows): [rows, in] x [out, in]^T.
local WEIGHT_SHAPES = { { "qkv", 384, 1152 }, { "proj", 384, 384 }, { "fc", 384, 1536 }, { "fc_proj", 1536, 384 },
  { "head", 384, 1024 } }

local function weight_rows()
  local out = {}
  local reps = 2 * options.steps + 1
  for _, shape in ipairs(WEIGHT_SHAPES) do
    local x, w = tc.randn({ 2048, shape[2] }), tc.randn({ shape[3], shape[2] })
    local copy = w:to("bfloat16")
    local times = { packed = {}, copy = {} }
    tc.no_grad(function()
      for round = 0, reps do
        local started = clock()
        tc.autocast("bfloat16", function() return tc.linear(x, w) end)
        local packed = clock() - started
        started = clock()
        tc.linear(x, copy)
        local copied = clock() - started
        if round > 0 then
          table.insert(times.packed, packed * 1e3)
          table.insert(times.copy, copied * 1e3)
        end
      end
    end)
    local packed, copied = common.median(times.packed), common.median(times.copy)
    out[#out + 1] = ("| %s | 2048 x %d x %d | %.2f | %.2f | %.2f |"):format(shape[1], shape[2], shape[3], packed,
      copied, packed / copied)
    print(out[#out])
    io.stdout:flush()
  end
  return out
end

local rows = {}
for name in options.configs:gmatch("[^,]+") do
  local r = measure(name)
  local line = ("| %s (%d layers, %d wide, %d x %d tokens) | %.0f | %.0f | %.2fx | %s / %s |"):format(r.config,
    r.cfg.n_layer, r.cfg.n_embd, r.cfg.batch, r.cfg.ctx, r.f32, r.bf16, r.ratio, list(r.times.float32),
    list(r.times[options.dtype]))
  print(line)
  io.stdout:flush()
  rows[#rows + 1] = line
end

local header = ("A GPT training step (zero_grad, forward, cross-entropy, backward, AdamW) with the forward under "
  .. "tc.autocast(\"%s\") against the same step in float32, %d thread(s), %d timed steps of each kind after "
  .. "%d untimed, alternating step by step in one process; median milliseconds. CPU flags: %s; bf16 GEMM path: %s.")
  :format(options.dtype, options.threads, options.steps, options.warmup, cpu_flags(), tc.bgemm_path())
local text = table.concat({
  "| config | float32 ms | autocast ms | float32 / autocast | all steps, float32 / autocast |",
  "| --- | ---: | ---: | ---: | --- |",
  table.concat(rows, "\n") }, "\n")
local weights = options.dtype == "bfloat16" and weight_rows() or {}
local weight_text = table.concat({
  "| linear | rows x in x out | float32 weight, rounded while packed, ms | bf16 copy, ms | packed / copy |",
  "| --- | --- | ---: | ---: | ---: |",
  table.concat(weights, "\n") }, "\n")
print(header)
print(text)
if #weights > 0 then print(weight_text) end
if options.write then
  tc.io.write_file("bench/results/autocast.md", table.concat({
    "# Autocast (bf16 products, float32 master weights) against float32\n\n", os.date("!%Y-%m-%d %H:%M UTC"),
    ". ", header, "\n\n", text, "\n\n## A float32 weight rounded while packed, or a bf16 copy\n\n",
    "Forward linears of config B's shapes under autocast (the float32 weight rounded to bf16 as the GEMM packs ",
    "it) against the same product reading a bf16 copy of the weight made beforehand (untimed: what a cache of ",
    "bf16 weights, remade once per step, would give), alternated, ", 2 * options.steps + 1, " of each, median, ",
    options.threads, " thread(s).\n\n", weight_text,
    "\n\nCommand: `lua5.4 bench/autocast_bench.lua --configs ", options.configs,
    " --steps ", options.steps, " --warmup ", options.warmup, " --threads ", options.threads, " --write`\n" }))
end
