-- Generation with grouped-query attention against nn.GPT at the same parameter
-- count: the KV cache's memory (tc.memory() before and after new_cache) and
-- tokens/s of greedy generation with the cache, the models alternated in one
-- run, at 1 and 2 threads.
--
--   lua5.4 bench/llama_bench.lua [--tokens 256] [--reps 5] [--context 1024] [--out bench/results/llama.md]
--
-- The GPT is 4 layers of 256 wide with 8 heads (learned positions, a 4C GELU
-- MLP, tied head); each Llama has the same width, depth and query heads, a tied
-- head, and the SwiGLU width (a multiple of 32) that brings its parameter count
-- closest to the GPT's, so the rows compare models of one size.
local common = require("bench.common")

local program = common.program({
  name = "llama_bench",
  usage = "lua5.4 bench/llama_bench.lua [--tokens N] [--reps N] [--context N] [--out FILE]",
  description = "KV-cache memory and tokens/s of nn.Llama with grouped-query attention beside nn.GPT.",
  options = {
    { name = "tokens", type = "integer", default = 256, help = "tokens generated per run" },
    { name = "reps", type = "integer", default = 5, help = "runs per model and thread count (median)" },
    { name = "context", type = "integer", default = 1024, help = "context length and cache capacity" },
    { name = "out", metavar = "FILE", default = "bench/results/llama.md", help = "where the table is written" },
  },
})
local options = program:parse(arg)
for _, name in ipairs({ "tokens", "reps", "context" }) do
  if options[name] < 1 then program:fail_usage(("--%s must be at least 1, got %d"):format(name, options[name])) end
end

local tc = common.tricycle()
local clock = common.clock_for(tc)
local vocab, width, layers, heads = 512, 256, 4, 8

local function gpt()
  tc.manual_seed(1)
  return tc.nn.GPT({ vocab_size = vocab, context_length = options.context, n_layer = layers, n_head = heads,
    n_embd = width })
end

local function llama(kv_heads, intermediate)
  tc.manual_seed(1)
  return tc.nn.Llama({ vocab_size = vocab, hidden_size = width, intermediate_size = intermediate,
    num_hidden_layers = layers, num_attention_heads = heads, num_key_value_heads = kv_heads,
    max_position_embeddings = options.context, tie_word_embeddings = true })
end

-- The SwiGLU width whose Llama is nearest the target parameter count: the
-- count is linear in the width, so two probes give it.
local function matched_intermediate(kv_heads, target)
  local low, high = llama(kv_heads, 32):num_parameters(), llama(kv_heads, 64):num_parameters()
  local per_32 = high - low
  local steps = math.floor((target - low) / per_32 + 0.5)
  return 32 * (1 + math.max(0, steps))
end

local function cache_bytes(model)
  collectgarbage()
  local before = tc.memory()
  local cache = model:new_cache(1, options.context)
  local after = tc.memory()
  assert(cache)
  return after - before
end

local reference = gpt()
local target = reference:num_parameters()
local models = { { name = "nn.GPT (8 heads)", model = reference, kv = heads } }
for _, kv in ipairs({ 8, 2, 1 }) do
  local intermediate = matched_intermediate(kv, target)
  models[#models + 1] = { name = ("nn.Llama, %d k/v heads, SwiGLU %d"):format(kv, intermediate),
    model = llama(kv, intermediate), kv = kv }
end

local prompt = {}
for i = 1, 16 do prompt[i] = (i * 37) % vocab end

local function tokens_per_second(model)
  local started = clock()
  tc.generate(model, prompt, { max_tokens = options.tokens, temperature = 0 })
  return options.tokens / (clock() - started)
end

local rows = {}
for _, entry in ipairs(models) do
  entry.parameters = entry.model:num_parameters()
  entry.cache = cache_bytes(entry.model)
  entry.rates = {}
end
for _, threads in ipairs({ 1, 2 }) do
  tc.set_num_threads(threads)
  for _, entry in ipairs(models) do tokens_per_second(entry.model) end -- warm-up
  local samples = {}
  for rep = 1, options.reps do
    for i, entry in ipairs(models) do
      samples[i] = samples[i] or {}
      samples[i][rep] = tokens_per_second(entry.model)
    end
  end
  for i, entry in ipairs(models) do entry.rates[threads] = common.median(samples[i]) end
end

local gpt_cache = models[1].cache
local lines = {
  "# Grouped-query attention: cache memory and generation speed",
  "",
  ("`lua5.4 bench/llama_bench.lua --tokens %d --reps %d --context %d`: width %d, %d layers, %d query heads, "
    .. "vocabulary %d, a cache of %d positions; greedy generation of %d tokens after a 16-token prompt, median of "
    .. "%d runs, the models alternated."):format(options.tokens, options.reps, options.context, width, layers, heads,
    vocab, options.context, options.tokens, options.reps),
  "",
  "| model | parameters | cache MiB | cache / GPT's | tokens/s, 1 thread | tokens/s, 2 threads |",
  "| --- | ---: | ---: | ---: | ---: | ---: |",
}
for _, entry in ipairs(models) do
  lines[#lines + 1] = ("| %s | %d | %.2f | %.3f | %.1f | %.1f |"):format(entry.name, entry.parameters,
    entry.cache / 2 ^ 20, entry.cache / gpt_cache, entry.rates[1], entry.rates[2])
end
rows = table.concat(lines, "\n") .. "\n"
io.write(rows)
tc.io.write_file(options.out, rows)
