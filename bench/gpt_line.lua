-- One line of the GPT benchmark, in its own process so that its peak RSS is
-- its own: an AdamW training step or KV-cache generation for one config at
-- one thread count, measured exactly as ../shared/bench/torch_gpt.py
-- measures PyTorch, and printed as one JSON line with the same fields.
--
--   lua5.4 bench/gpt_line.lua --config A --mode train --threads 1 [--steps 10 --warmup 3]
--   lua5.4 bench/gpt_line.lua --config B --mode gen --threads 2 [--gen-tokens 256 --gen-reps 3]
--
-- Training step = zero_grad + forward + cross-entropy + backward + AdamW(lr
-- 1e-3, betas 0.9/0.99, weight decay 0.1) on random token ids; the time is
-- the median over --steps steps after --warmup. Generation = one sequence
-- from a 1-token prompt through tc.generate (KV cache, multinomial sampling,
-- the context slide when the cache is full); the rate is the median of
-- --gen-reps runs after a 16-token warm-up. bench/gpt_bench.lua runs these.
local here = arg[0]:match("^(.*)/") or "."
local common = dofile(here .. "/common.lua")
local tc = common.tricycle()
local clock = common.clock_for(tc)

local program = common.program({
  name = "gpt_line", usage = "lua5.4 bench/gpt_line.lua --config A|B|C --mode train|gen --threads N [options]",
  description = "One line of bench/gpt_bench.lua, printed as one JSON line.",
  options = {
    { name = "config", type = "choice", choices = { "A", "B", "C" }, default = "A", help = "model config" },
    { name = "mode", type = "choice", choices = { "train", "gen" }, default = "train", help = "what to time" },
    { name = "threads", type = "integer", default = 2, help = "engine threads" },
    { name = "warmup", type = "integer", default = 3, help = "training steps before the timed ones" },
    { name = "steps", type = "integer", default = 10, help = "timed training steps" },
    { name = "gen_tokens", type = "integer", default = 256, help = "tokens per generation run" },
    { name = "gen_reps", type = "integer", default = 3, help = "timed generation runs" },
    { name = "seed", type = "integer", default = 0, help = "seed of the model and the token ids" },
  },
})
local options = program:parse(arg)
local cfg = common.configs[options.config]
for _, key in ipairs({ "threads", "steps", "gen_tokens", "gen_reps" }) do
  if options[key] < 1 then
    program:fail_usage(("%s must be positive, got %d"):format(require("tricycle.cli").flag_of(key), options[key]))
  end
end
if options.warmup < 0 then
  program:fail_usage(("--warmup must be at least 0, got %d"):format(options.warmup))
end

tc.set_num_threads(options.threads)
tc.manual_seed(options.seed)
local model = tc.nn.GPT({
  vocab_size = cfg.vocab, context_length = cfg.ctx, n_layer = cfg.n_layer,
  n_head = cfg.n_head, n_embd = cfg.n_embd,
  bias = true, tie_weights = true, gelu = "tanh", dropout = 0, dtype = "float32",
})

local out = {
  system = "tricycle", config = options.config, vocab = cfg.vocab, ctx = cfg.ctx,
  n_layer = cfg.n_layer, n_head = cfg.n_head, n_embd = cfg.n_embd, batch = cfg.batch,
  params = model:num_parameters(), wpe_params = cfg.ctx * cfg.n_embd, tied = true,
  threads = tc.num_threads(), mode = options.mode,
}

-- A [rows, cols] int64 tensor of ids drawn uniformly from [0, vocab).
local function random_ids(rows, cols, vocab)
  local data = {}
  for r = 1, rows do
    local row = {}
    for c = 1, cols do row[c] = math.random(0, vocab - 1) end
    data[r] = row
  end
  return tc.tensor(data, { dtype = "int64" })
end

local cpu_start, wall_start = os.clock(), clock()

if options.mode == "train" then
  local B, T = cfg.batch, cfg.ctx
  local optimizer = tc.optim.AdamW(model:parameters(), { lr = 1e-3, betas = { 0.9, 0.99 }, weight_decay = 0.1 })
  math.randomseed(options.seed)
  local total = options.warmup + options.steps
  local batches = {}
  for i = 1, math.min(total, 8) do
    batches[i] = random_ids(B, T + 1, cfg.vocab)
  end
  -- inputs and targets made contiguous before timing, as views cost nothing in PyTorch
  local inputs, targets = {}, {}
  for i, d in ipairs(batches) do
    inputs[i] = d:narrow(2, 1, T):contiguous()
    targets[i] = d:narrow(2, 2, T):contiguous()
  end
  local times, losses = {}, {}
  for s = 1, total do
    local i = (s - 1) % #batches + 1
    local started = clock()
    optimizer:zero_grad()
    local _, loss = model(inputs[i], { targets = targets[i] })
    loss:backward()
    optimizer:step()
    local elapsed = clock() - started
    losses[s] = loss:item()
    if s > options.warmup then times[#times + 1] = elapsed * 1e3 end
  end
  local med = common.median(times)
  local all = {}
  for i, t in ipairs(times) do all[i] = common.round(t, 1) end
  out.warmup, out.steps = options.warmup, options.steps
  out.ms_median = common.round(med, 2)
  out.ms_min = common.round(math.min((table.unpack or unpack)(times)), 2)
  out.ms_max = common.round(math.max((table.unpack or unpack)(times)), 2)
  out.tokens_per_s = common.round(B * T / med * 1e3, 1)
  out.first_loss = common.round(losses[1], 4)
  out.last_loss = common.round(losses[#losses], 4)
  out.ms_all = all
else
  local n = options.gen_tokens
  tc.generate(model, { 0 }, { max_tokens = math.min(16, n), seed = options.seed })
  local rates = {}
  for r = 1, options.gen_reps do
    local started = clock()
    local ids = tc.generate(model, { 0 }, { max_tokens = n })
    local elapsed = clock() - started
    assert(#ids == n, "generate returned the wrong number of tokens")
    rates[r] = n / elapsed
  end
  local all = {}
  for i, r in ipairs(rates) do all[i] = common.round(r, 1) end
  out.batch = 1
  out.kv = "cache"
  out.gen_tokens, out.reps = n, options.gen_reps
  out.tok_per_s_median = common.round(common.median(rates), 1)
  out.tok_per_s_all = all
end

-- cores busy on average while measuring: about 1 for one thread
out.cpu_per_wall = common.round((os.clock() - cpu_start) / (clock() - wall_start), 2)
out.peak_rss_mib_self = common.round(common.peak_rss_mib() or 0, 1)
print(tc.json_encode(out))
