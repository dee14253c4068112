-- Generation with 16-bit weights: peak resident memory and speed of
-- tc.generate on a GPT of config C (GPT-2 124M's shape, random weights)
-- whose weights are float32, bfloat16 or float16. Each dtype runs in a
-- child process of its own under /usr/bin/time -v, so its peak (time's
-- "Maximum resident set size", and the process's own VmHWM) is its own; the
-- children run alternately, dtype by dtype, `--repeats` rounds. The model is
-- made in its dtype (16-bit parameters are drawn in float32 one at a time
-- and rounded), then generates `--tokens` tokens greedily after an 8-token
-- prompt with the key/value cache (float32 activations and cache in every
-- case). Writes bench/results/half_generate.md and .json with --write.
--
--   lua5.4 bench/half_generate_bench.lua [--tokens 32] [--repeats 2] [--threads 2] [--write]
--
-- Run from the repository root; the build is found through $TRICYCLE_BUILD.
local common = require("bench.common")

local DTYPES = { "float32", "bfloat16", "float16" }

local program = common.program({
  name = "half_generate_bench",
  usage = "lua5.4 bench/half_generate_bench.lua [--tokens N] [--repeats N] [--threads N] [--write]",
  description = "Peak RSS and tokens/s of generation with float32, bfloat16 and float16 weights (config C).",
  options = {
    { name = "tokens", type = "integer", default = 32, help = "tokens generated per run" },
    { name = "repeats", type = "integer", default = 2, help = "rounds over the dtypes" },
    { name = "threads", type = "integer", default = 2, help = "engine threads in each child" },
    { name = "write", type = "flag", default = false, help = "write bench/results/half_generate.{md,json}" },
    { name = "child", type = "choice", choices = DTYPES,
      help = "(internal) one measurement: print \"init_s gen_s tokens_per_s vmhwm_mib\"" },
  },
})
local options = program:parse(arg)
if options.tokens < 1 or options.repeats < 1 or options.threads < 1 then
  program:fail_usage("--tokens, --repeats and --threads must be positive")
end

if options.child then
  local tc = common.tricycle()
  local clock = common.clock_for(tc)
  tc.set_num_threads(options.threads)
  tc.manual_seed(1)
  local c = common.configs.C
  local start = clock()
  local model = tc.nn.GPT({ vocab_size = c.vocab, context_length = c.ctx, n_layer = c.n_layer, n_head = c.n_head,
    n_embd = c.n_embd, dropout = 0, dtype = options.child })
  model:eval()
  collectgarbage()
  local made = clock()
  local prompt = { 464, 2068, 7586, 21831, 18045, 625, 262, 16931 }
  local ids = tc.generate(model, prompt, { max_tokens = options.tokens, temperature = 0 })
  local done = clock()
  assert(#ids == #prompt + options.tokens or #ids == options.tokens, "generate gave " .. #ids .. " ids")
  io.write(("%.3f %.3f %.3f %.1f\n"):format(made - start, done - made, options.tokens / (done - made),
    common.peak_rss_mib()))
  return
end

local function run_child(dtype)
  local command = ("TRICYCLE_BUILD=%q /usr/bin/time -v lua5.4 bench/half_generate_bench.lua --child %s "
    .. "--tokens %d --threads %d 2>&1"):format(common.build(), dtype, options.tokens, options.threads)
  local pipe = assert(io.popen(command))
  local output = pipe:read("a")
  assert(pipe:close(), "child failed: " .. command .. "\n" .. output)
  local init, gen, rate, hwm = output:match("([%d.]+) ([%d.]+) ([%d.]+) ([%d.]+)\n")
  local max_kib = output:match("Maximum resident set size %(kbytes%): (%d+)")
  assert(init and max_kib, "unexpected child output:\n" .. output)
  return { init = tonumber(init), gen = tonumber(gen), rate = tonumber(rate), hwm = tonumber(hwm),
    max_rss = tonumber(max_kib) / 1024 }
end

local runs = {}
for _, dtype in ipairs(DTYPES) do runs[dtype] = {} end
for round = 1, options.repeats do
  for _, dtype in ipairs(DTYPES) do
    runs[dtype][round] = run_child(dtype)
  end
end

local function median_of(dtype, field)
  local values = {}
  for i, run in ipairs(runs[dtype]) do values[i] = run[field] end
  return common.median(values)
end

local rows, json_rows = {}, {}
local base = median_of("float32", "max_rss")
for _, dtype in ipairs(DTYPES) do
  local max_rss = median_of(dtype, "max_rss")
  rows[#rows + 1] = ("| %s | %.1f | %.3f | %.1f | %.2f | %.2f |"):format(dtype, max_rss, max_rss / base,
    median_of(dtype, "init"), median_of(dtype, "rate"), median_of(dtype, "rate") / median_of("float32", "rate"))
  json_rows[#json_rows + 1] = ('{"dtype": "%s", "max_rss_mib": %.1f, "rss_ratio": %.4f, "init_s": %.3f, '
    .. '"tokens_per_s": %.3f}'):format(dtype, max_rss, max_rss / base, median_of(dtype, "init"),
    median_of(dtype, "rate"))
end

local header = ("Generation with 16-bit weights, GPT config C (124M parameters, random weights), %d tokens after an "
  .. "8-token prompt, greedy, with the cache; %d thread(s); median of %d runs per dtype, the dtypes alternating. "
  .. "Peak RSS: /usr/bin/time -v's maximum resident set size of the whole process (making the model and "
  .. "generating). Activations and the key/value cache are float32 in every line; inside linear, a decoding "
  .. "step's row reads 16-bit weights as they are: bfloat16 through a GEMV on VDPBF16PS (x rounded to bf16, "
  .. "float32 sums), float16 through a GEMV that widens each weight as it reads it (the prompt's 8 rows: the "
  .. "bf16 GEMM, and float16 weights widened a block of rows at a time)."):format(options.tokens, options.threads,
  options.repeats)
local table_text = table.concat({
  "| weights | peak RSS MiB | / float32 | making the model s | tokens/s | tokens/s / float32 |",
  "| --- | ---: | ---: | ---: | ---: | ---: |",
  table.concat(rows, "\n") }, "\n")
print(header)
print(table_text)
if options.write then
  local write_file = common.tricycle().io.write_file
  write_file("bench/results/half_generate.md", table.concat({
    "# Generation with bfloat16 and float16 weights\n\n", os.date("!%Y-%m-%d %H:%M UTC"), ". ", header,
    "\n\n", table_text, "\n\nCommand: `lua5.4 bench/half_generate_bench.lua --tokens ", options.tokens,
    " --repeats ", options.repeats, " --threads ", options.threads, " --write`\n" }))
  write_file("bench/results/half_generate.json", table.concat({
    '{"tokens": ', options.tokens, ', "threads": ', options.threads, ', "repeats": ', options.repeats,
    ', "lines": [', table.concat(json_rows, ", "), "]}\n" }))
end
