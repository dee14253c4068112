-- CPU speed against PyTorch: GPT training steps (configs A and B by default; C,
-- the GPT-2 124M shape, with --configs C) and KV-cache
-- generation, ours and PyTorch's alternately, at 1 and 2 threads; sgemm
-- GFLOP/s of raw OpenBLAS (with the environment's OPENBLAS_CORETYPE and
-- auto-detected), of the engine's raw cpu_sgemm and of tc's matmul on the GEMM
-- shapes of a config-B step; model FLOP utilisation against the best raw rate.
-- docs/BENCHMARKS.md explains what each number is.
--
--   lua5.4 bench/gpt_bench.lua [--quick] [--configs A,B] [--modes train,gen]
--                              [--threads 1,2] [--no-torch] [--out STEM]
--
-- Run from the repository root (`make bench` does). BENCH_QUICK=1 is --quick
-- (2 steps, 32 tokens: a smoke test, not a measurement). PyTorch runs when
-- Debian's python3-torch imports under $BENCH_PYTHON (default /usr/bin/python3)
-- and $TORCH_GPT (default ../shared/bench/torch_gpt.py) exists. Every line is
-- its own process (bench/gpt_line.lua, torch_gpt.py), so peak RSS is per line.
-- PyTorch's lines run without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (its
-- best: OpenBLAS picks its kernels for the CPU); ours keep the environment.
-- Results: bench/results/latest.md and .json (quick runs: quick.md, .json;
-- --out STEM writes STEM.md and STEM.json instead).
local here = arg[0]:match("^(.*)/") or "."
local common = dofile(here .. "/common.lua")
local report = dofile(here .. "/gpt_report.lua")
local tc = common.tricycle()
local clock = common.clock_for(tc)

local program = common.program({
  name = "gpt_bench", usage = "lua5.4 bench/gpt_bench.lua [--quick] [--configs A,B] [--modes train,gen] "
    .. "[--threads 1,2] [--no-torch] [options]",
  description = "GPT training and generation speed against PyTorch, sgemm rates and MFU (docs/BENCHMARKS.md).",
  options = {
    { name = "quick", type = "flag", default = false,
      help = "2 steps, 32 tokens: a smoke test, not a measurement (also BENCH_QUICK=1)" },
    { name = "configs", metavar = "LIST", default = "A,B", help = "model configs, of A, B and C" },
    { name = "modes", metavar = "LIST", default = "train,gen", help = "lines to run, of train and gen" },
    { name = "threads", metavar = "LIST", default = "1,2", help = "thread counts" },
    { name = "no_torch", type = "flag", default = false, help = "leave PyTorch out" },
    { name = "steps", type = "integer", default = 10, help = "timed training steps per line" },
    { name = "warmup", type = "integer", default = 3, help = "training steps before the timed ones" },
    { name = "gen_tokens", type = "integer", default = 256, help = "tokens per generation run" },
    { name = "gen_reps", type = "integer", default = 3, help = "generation runs per line" },
    { name = "sgemm_reps", type = "integer", default = 5, help = "timed calls per GEMM shape" },
    { name = "sgemm_rounds", type = "integer", default = 2, help = "rounds over the implementations" },
    { name = "out", metavar = "STEM", default = "",
      help = "write STEM.md and STEM.json (default bench/results/latest)" },
  },
})
local options = program:parse(arg)
local quick_env = os.getenv("BENCH_QUICK")
if options.quick or (quick_env and quick_env ~= "" and quick_env ~= "0") then
  options.quick = true
  options.steps, options.warmup, options.gen_tokens, options.gen_reps = 2, 1, 32, 1
  options.sgemm_reps, options.sgemm_rounds = 2, 1
end

local function split(text)
  local items = {}
  for item in text:gmatch("[^,%s]+") do items[#items + 1] = item end
  return items
end
local configs, modes = split(options.configs), split(options.modes)
local thread_counts = {}
for _, t in ipairs(split(options.threads)) do
  local count = require("tricycle.compat").tointeger(tonumber(t))
  if not count or count < 1 then
    program:fail_usage(("--threads expects a list of positive integers, got '%s'"):format(options.threads))
  end
  thread_counts[#thread_counts + 1] = count
end
for _, c in ipairs(configs) do
  if not common.configs[c] then
    program:fail_usage(("--configs expects a list of A, B and C, got '%s'"):format(options.configs))
  end
end
for _, m in ipairs(modes) do
  if m ~= "train" and m ~= "gen" then
    program:fail_usage(("--modes expects a list of train and gen, got '%s'"):format(options.modes))
  end
end

local build = os.getenv("TRICYCLE_BUILD")
if not build or build == "" then build = "build" end
local lua = os.getenv("LUA") or "lua5.4"
local python = os.getenv("BENCH_PYTHON") or "/usr/bin/python3"
local torch_script = os.getenv("TORCH_GPT") or "../shared/bench/torch_gpt.py"

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Environment that holds a process to `threads` threads of BLAS and OpenMP.
local function thread_env(threads)
  return ("OPENBLAS_NUM_THREADS=%d OMP_NUM_THREADS=%d "):format(threads, threads)
end

-- Runs a shell command; returns its stdout and stderr, whether it exited
-- with 0, and its exit status.
local function run(command)
  local pipe = assert(io.popen(command .. " 2>&1"))
  local output = pipe:read("a")
  local ok, _, code = pipe:close()
  return output, ok == true, code
end

-- The JSON lines of a command's output as tables, or nil, the output and
-- the exit status.
local function run_json(command)
  local output, ok, code = run(command)
  local results = {}
  for line in output:gmatch("[^\n]+") do
    if line:sub(1, 1) == "{" then
      local decoded, value = pcall(tc.json_decode, line)
      if decoded then results[#results + 1] = value end
    end
  end
  if not ok or #results == 0 then return nil, output, code end
  return results
end

-- The machine's environment may pin OpenBLAS's kernels (OPENBLAS_CORETYPE)
-- and cache size (OPENBLAS_L2_SIZE); docs/BENCHMARKS.md says why. `pinned`
-- lists the ones set; `unpinned` is a command prefix that removes them.
local pinned, unpinned = {}, ""
for _, name in ipairs({ "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE" }) do
  local value = os.getenv(name)
  if value and value ~= "" then
    pinned[#pinned + 1] = { name = name, value = value }
    unpinned = unpinned .. "-u " .. name .. " "
  end
end
if unpinned ~= "" then unpinned = "env " .. unpinned end

-- The "Core: NAME" OpenBLAS prints at load under OPENBLAS_VERBOSE=2, or nil.
local function openblas_core(output)
  return output and output:match("Core:%s*([%w_%-]+)")
end

local function file_exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

-- Why PyTorch does not run, or nil when it does.
local function torch_unavailable()
  if options.no_torch then return "--no-torch was given" end
  if not file_exists(torch_script) then
    return torch_script .. " is missing (set TORCH_GPT to torch_gpt.py)"
  end
  local _, ok = run(quote(python) .. " -c 'import torch' >/dev/null")
  if not ok then return python .. " cannot import torch (apt-get install python3-torch)" end
  return nil
end

-- PyTorch's version and the OpenBLAS core its runs get (under `unpinned`),
-- read from PyTorch itself: OpenBLAS prints its core when torch loads it.
local torch_reason = torch_unavailable()
local torch_version, torch_core
if not torch_reason then
  local output = run(unpinned .. "OPENBLAS_VERBOSE=2 " .. quote(python)
    .. " -c 'import torch; print(\"version \" + torch.__version__)'")
  torch_version = output:match("version ([^\n]+)")
  torch_core = openblas_core(output) or "none reported (not linked to OpenBLAS?)"
end

-- The GEMMs of a config-B training step (B T = 2048 rows, C = 384): each Linear
-- y = x W^T forward (n,t), input gradient dy W (n,n), weight gradient dy^T x
-- (t,n); then attention's per-head QK^T and AV over B H = 48 heads.
local gemm_shapes = {}
do
  local rows, c = 2048, 384
  local linears = { { "qkv", c, 3 * c }, { "attn proj", c, c }, { "fc", c, 4 * c }, { "fc proj", 4 * c, c },
    { "head", c, 1024 } }
  for _, linear in ipairs(linears) do
    local name, n_in, n_out = linear[1], linear[2], linear[3]
    gemm_shapes[#gemm_shapes + 1] = { use = name .. " fwd", m = rows, k = n_in, n = n_out, ta = "n", tb = "t" }
    gemm_shapes[#gemm_shapes + 1] = { use = name .. " dx", m = rows, k = n_out, n = n_in, ta = "n", tb = "n" }
    gemm_shapes[#gemm_shapes + 1] = { use = name .. " dW", m = n_out, k = rows, n = n_in, ta = "t", tb = "n" }
  end
  gemm_shapes[#gemm_shapes + 1] = { use = "attn QK^T", m = 256, k = 64, n = 256, ta = "n", tb = "t", batch = 48 }
  gemm_shapes[#gemm_shapes + 1] = { use = "attn AV", m = 256, k = 256, n = 64, ta = "n", tb = "n", batch = 48 }
  for _, s in ipairs(gemm_shapes) do
    s.batch = s.batch or 1
    s.spec = ("%d,%d,%d,%s,%s,%d"):format(s.m, s.k, s.n, s.ta, s.tb, s.batch)
  end
end

local started = clock()
local function say(text)
  io.write(("[%6.1fs] %s\n"):format(clock() - started, text))
  io.flush()
end

-- A failure of ours fails the run; one of PyTorch's or OpenBLAS's is reported only.
local failures, ours_failed = {}, false
local function failed(what, output, is_ours)
  failures[#failures + 1] = ("%s failed:\n%s"):format(what, output)
  if is_ours then ours_failed = true end
  say(failures[#failures])
end

-- sgemm GFLOP/s per thread count, each implementation's best per shape over
-- alternating rounds (load from elsewhere only slows runs). The
-- implementations, in the order of a round (report.sgemm_tables' columns):
--   openblas_env   raw OpenBLAS with the environment as given
--   openblas_auto  raw OpenBLAS with `pinned` removed (only when something is pinned)
--   cpu_sgemm      the engine's raw GEMM (AVX-512 CPUs only)
--   tc_matmul      tc.matmul, allocation and dispatch included
local sgemm, sgemm_note = {}, nil
local sgemm_binary = build .. "/bench/sgemm_bench"
if not file_exists(sgemm_binary) then
  sgemm_note = sgemm_binary .. " is missing (`make bench` builds it): no raw GEMM rates, no MFU"
  say(sgemm_note)
end
local specs = {}
for i, s in ipairs(gemm_shapes) do specs[i] = s.spec end

-- The OpenBLAS cores of the environment as given and auto-detected.
local env_core, auto_core
if not sgemm_note then
  local probe = quote(sgemm_binary) .. " openblas 1 1 16,16,16,n,n,1"
  env_core = openblas_core(run("OPENBLAS_VERBOSE=2 " .. probe)) or "?"
  auto_core = #pinned > 0 and (openblas_core(run(unpinned .. "OPENBLAS_VERBOSE=2 " .. probe)) or "?") or env_core
end

-- What tc.matmul runs for float32 (src/context.c: cpu_sgemm on AVX-512
-- CPUs unless TRICYCLE_SGEMM=blas), known once the cpu_sgemm column ran.
local sgemm_choice = os.getenv("TRICYCLE_SGEMM")
local cpu_sgemm_missing -- why the cpu_sgemm column is absent, or nil

-- Runs one round of `commands` and keeps per shape the best GFLOP/s of any
-- run in `best` and the best round's median in `typical`; false (and the
-- failure recorded) when one failed.
local function gemm_round(what, commands, best, typical, is_ours)
  for _, command in ipairs(commands) do
    local results, failure, code = run_json(command)
    if not results then
      if what == "cpu_sgemm" and code == 3 then -- sgemm_bench: no AVX-512
        cpu_sgemm_missing = "this CPU has no AVX-512 (cpu_sgemm_available() is false)"
        say("cpu_sgemm column absent: " .. cpu_sgemm_missing)
      else
        failed(what, failure, is_ours)
      end
      return false
    end
    for _, r in ipairs(results) do
      best[r.shape] = math.max(best[r.shape] or 0, r.gflops)
      typical[r.shape] = math.max(typical[r.shape] or 0, r.gflops_median or r.gflops)
    end
  end
  return true
end

for _, t in ipairs(thread_counts) do
  local rates = { openblas_env = {}, cpu_sgemm = {}, tc_matmul = {} }
  local medians = { openblas_env = {}, openblas_auto = {}, cpu_sgemm = {}, tc_matmul = {} }
  if #pinned > 0 then rates.openblas_auto = {} end
  local function raw(impl, prefix)
    return ("%s%s%s %s %d %d %s"):format(prefix, thread_env(t), quote(sgemm_binary), impl, t, options.sgemm_reps,
      table.concat(specs, " "))
  end
  local runs = {}
  if not sgemm_note then
    runs[#runs + 1] = { key = "openblas_env", what = "sgemm_bench openblas", commands = { raw("openblas", "") } }
    if rates.openblas_auto then
      runs[#runs + 1] = { key = "openblas_auto", what = "sgemm_bench openblas (auto-detected core)",
        commands = { raw("openblas", unpinned) } }
    end
    if not cpu_sgemm_missing then
      runs[#runs + 1] = { key = "cpu_sgemm", what = "cpu_sgemm", commands = { raw("tricycle", "") }, is_ours = true }
    end
  end
  -- tc.matmul: one process per shape, so the engine's block cache holds only
  -- that shape's blocks, as in a training loop (bench/matmul_line.lua says why).
  local per_shape = {}
  for i, spec in ipairs(specs) do
    per_shape[i] = ("%sTRICYCLE_BUILD=%s %s %s/matmul_line.lua --threads %d --reps %d --shapes %s"):format(
      thread_env(t), quote(build), lua, quote(here), t, options.sgemm_reps, spec)
  end
  runs[#runs + 1] = { key = "tc_matmul", what = "matmul_line", is_ours = true, commands = per_shape }
  for _ = 1, options.sgemm_rounds do
    for _, r in ipairs(runs) do
      if not r.stopped then r.stopped = not gemm_round(r.what, r.commands, rates[r.key], medians[r.key], r.is_ours) end
    end
  end
  if cpu_sgemm_missing then rates.cpu_sgemm = nil end
  -- The ceilings, over every raw implementation and shape: the sustained
  -- one from each shape's median run (what the step, itself a median of
  -- steps, is compared with) and the burst one from the single best run.
  local function highest(table_of)
    local ceiling = { gflops = 0 }
    for _, key in ipairs({ "openblas_env", "openblas_auto", "cpu_sgemm" }) do
      for _, shape in ipairs(gemm_shapes) do
        local g = rates[key] and table_of[key] and table_of[key][shape.spec]
        if g and g > ceiling.gflops then ceiling = { gflops = g, implementation = key, shape = shape.spec,
          use = shape.use } end
      end
    end
    return ceiling.gflops > 0 and ceiling or nil
  end
  rates.ceiling = highest(medians)
  rates.burst_ceiling = highest(rates)
  rates.medians = medians
  sgemm[t] = rates
  say(("sgemm %d thread(s): sustained ceiling %s; best single run %s"):format(t,
    report.ceiling_text(rates.ceiling, #pinned > 0), report.ceiling_text(rates.burst_ceiling, #pinned > 0)))
end
local tc_matmul_gemm = sgemm_choice == "blas" and "OpenBLAS (TRICYCLE_SGEMM=blas)"
  or cpu_sgemm_missing and "OpenBLAS (no AVX-512)"
  or sgemm_note and "cpu_sgemm on AVX-512 CPUs, else OpenBLAS"
  or "cpu_sgemm"

-- The lines, ours then PyTorch's for each.
local lines = {}
local function line_args(config, mode, threads)
  local a = ("--config %s --mode %s --threads %d --seed 0"):format(config, mode, threads)
  if mode == "train" then
    return a .. (" --warmup %d --steps %d"):format(options.warmup, options.steps)
  end
  return a .. (" --gen-tokens %d --gen-reps %d"):format(options.gen_tokens, options.gen_reps)
end

local function measure(system, command, label)
  local t0 = clock()
  local results, failure = run_json(command)
  local result = results and results[#results]
  if result then
    local load = result.cpu_per_wall and ("  cpu/wall %.2f"):format(result.cpu_per_wall) or ""
    say(("%-22s %-8s %10.1f tok/s  peak RSS %7.1f MiB  (%.1f s)%s"):format(label, system, report.rate(result) or 0,
      result.peak_rss_mib_self or 0, clock() - t0, load))
  else
    failed(label .. " " .. system, failure, system == "ours")
  end
  return result
end

for _, t in ipairs(thread_counts) do
  for _, mode in ipairs(modes) do
    for _, config in ipairs(configs) do
      local name = ("%s %s, %d thread%s"):format(mode, config, t, t == 1 and "" or "s")
      local args = line_args(config, mode, t)
      local line = { name = name, config = config, mode = mode, threads = t }
      line.ours = measure("ours", ("%sTRICYCLE_BUILD=%s %s %s/gpt_line.lua %s"):format(thread_env(t), quote(build),
        lua, quote(here), args), name)
      if not torch_reason then
        local torch_mode = mode == "gen" and " --kv cache" or ""
        line.torch = measure("PyTorch", ("%s%sOMP_WAIT_POLICY=PASSIVE %s %s %s%s"):format(unpinned, thread_env(t),
          quote(python), quote(torch_script), args, torch_mode), name)
      end
      lines[#lines + 1] = line
    end
  end
end

-- Parameter counts, which must agree, and the MFU rows.
local params, params_ok = {}, true
for _, line in ipairs(lines) do
  local p = params[line.config] or {}
  p.ours = p.ours or (line.ours and line.ours.params)
  p.torch = p.torch or (line.torch and line.torch.params)
  params[line.config] = p
end
local param_lines = {}
for _, config in ipairs(configs) do
  local p = params[config] or {}
  local same = p.ours and p.torch and p.ours == p.torch
  if p.ours and p.torch and not same then params_ok = false end
  param_lines[#param_lines + 1] = ("- config %s: ours %s parameters, PyTorch %s%s"):format(config,
    tostring(p.ours or "-"), tostring(p.torch or "-"), (p.ours and p.torch) and (same and " (identical)" or
    " (DIFFERENT: the comparison is not like for like)") or "")
end

local mfu_rows = {}
for _, line in ipairs(lines) do
  if line.mode == "train" then
    local cfg = common.configs[line.config]
    local p = params[line.config].ours or params[line.config].torch
    if p then
      local flops = report.step_flops(cfg, p)
      local tokens = cfg.batch * cfg.ctx
      local best = sgemm[line.threads] and sgemm[line.threads].ceiling
      local burst = sgemm[line.threads] and sgemm[line.threads].burst_ceiling
      local ceiling = best and best.gflops
      local function rate(result)
        local r = report.rate(result)
        return r and flops * r / tokens * 1e-9
      end
      local row = { name = line.name, step_gflop = flops * 1e-9, ceiling = ceiling,
        ceiling_from = best and report.ceiling_source(best, #pinned > 0), ours_gflops = rate(line.ours),
        torch_gflops = rate(line.torch) }
      row.ours_mfu = ceiling and row.ours_gflops and row.ours_gflops / ceiling
      row.burst_ceiling = burst and burst.gflops
      row.ours_mfu_burst = burst and row.ours_gflops and row.ours_gflops / burst.gflops
      row.torch_mfu = ceiling and row.torch_gflops and row.torch_gflops / ceiling
      mfu_rows[#mfu_rows + 1] = row
    end
  end
end

-- The report.
local cpu = "unknown CPU"
do
  local f = io.open("/proc/cpuinfo", "r")
  if f then
    cpu = f:read("a"):match("model name%s*:%s*([^\n]+)") or cpu
    f:close()
  end
end
local cores = (run("nproc"):match("%d+")) or "?"
local settings = options.quick and "QUICK RUN (a smoke test: too few steps to measure anything)"
  or ("training: median of %d steps after %d warm-up; generation: median of %d runs of %d tokens"):format(
    options.steps, options.warmup, options.gen_reps, options.gen_tokens)

-- Which OpenBLAS kernels each side got, and why.
local pinned_text, pinned_names, pinned_json = {}, {}, {}
for _, p in ipairs(pinned) do
  pinned_text[#pinned_text + 1] = p.name .. "=" .. p.value
  pinned_names[#pinned_names + 1] = p.name
  pinned_json[p.name] = p.value
end
local openblas_text
if #pinned > 0 then
  openblas_text = ("OpenBLAS: this machine's environment sets %s (OpenBLAS core %s; auto-detected: %s). "
    .. "PyTorch's lines run with %s removed (`env -u`), its best: OpenBLAS core in PyTorch's runs: %s. "
    .. "Ours run with the environment as given; tc.matmul's float32 GEMM is %s."):format(
    table.concat(pinned_text, " "), env_core or "?", auto_core or "?", table.concat(pinned_names, " and "),
    torch_core or "- (not run)", tc_matmul_gemm)
else
  openblas_text = ("OpenBLAS: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are not set: core %s for the raw runs, "
    .. "%s in PyTorch's runs. tc.matmul's float32 GEMM is %s."):format(env_core or "?", torch_core or "- (not run)",
    tc_matmul_gemm)
end
local sgemm_text = sgemm_note or ("GFLOP/s = 2 M N K batch / the best of %d rounds of %d timed runs after "
  .. "warm-up, the columns' programs alternating in each round. Raw columns: bench/sgemm_bench.c, one reused "
  .. "output buffer; OpenBLAS threads itself, cpu_sgemm is split over threads as tc.matmul splits it. "
  .. "tc.matmul (one process per shape) allocates its output each call, the previous one freed "
  .. "(collectgarbage) outside the timed region, as in a training step. `tc / best raw` is tc.matmul over "
  .. "the best raw column of its row."):format(
  options.sgemm_rounds, options.sgemm_reps)
if cpu_sgemm_missing then sgemm_text = sgemm_text .. (" cpu_sgemm column absent: %s."):format(cpu_sgemm_missing) end
local labels = { pinned = #pinned > 0, env_core = env_core, auto_core = auto_core }

local md = {
  "# GPT benchmark: tricycle against PyTorch on the CPU",
  "",
  ("%s, %s cores, %s UTC. %s."):format(cpu, cores, os.date("!%Y-%m-%d %H:%M"), settings),
  torch_reason and ("PyTorch not run: %s. Our numbers only."):format(torch_reason)
    or ("PyTorch %s (%s, OMP_WAIT_POLICY=PASSIVE), run alternately with ours, line by line."):format(
      torch_version or "?", python),
  openblas_text,
  "Each line is one process limited to N threads (set_num_threads, OPENBLAS_NUM_THREADS, OMP_NUM_THREADS).",
  "Ratios above 1 mean we are faster. The machine may be shared: treat differences under ~10% as noise.",
  "",
  "## Training step and generation",
  "",
  report.lines_table(lines),
  "",
  table.concat(param_lines, "\n"),
  "",
  "## sgemm GFLOP/s on the GEMMs of a config-B training step",
  "",
  sgemm_text,
  "",
  report.sgemm_tables(gemm_shapes, sgemm, thread_counts, labels),
  "",
  "## Model FLOP utilisation",
  "",
  report.flops_formula .. ". MFU = model FLOP/s (from the median step) over the sgemm ceiling: the highest "
    .. "sustained raw rate of any implementation on any shape of the sgemm tables at the same thread count, a "
    .. "shape's sustained rate being the median of its timed runs (named under `ceiling from`). `MFU vs best run` "
    .. "divides by the single fastest run of any of them instead, which short products reach in bursts.",
  "",
  report.mfu_table(mfu_rows),
  "",
  ("Total time %.0f s."):format(clock() - started),
}
if #failures > 0 then
  md[#md + 1] = ""
  md[#md + 1] = "## Failures"
  for _, f in ipairs(failures) do md[#md + 1] = "\n```\n" .. f .. "\n```" end
end
local text = table.concat(md, "\n") .. "\n"
print("\n" .. text)

local stem = options.out
if stem == "" then stem = here .. "/results/" .. (options.quick and "quick" or "latest") end
local results_dir = stem:match("^(.*)/")
if results_dir then os.execute("mkdir -p " .. quote(results_dir)) end
tc.io.write_file(stem .. ".md", text)
local sgemm_json = {}
for _, t in ipairs(thread_counts) do
  local rates = sgemm[t]
  sgemm_json[#sgemm_json + 1] = { threads = t, ceiling_gflops = rates.ceiling and rates.ceiling.gflops,
    ceiling = rates.ceiling, burst_ceiling = rates.burst_ceiling, openblas_env = rates.openblas_env,
    openblas_auto = rates.openblas_auto, cpu_sgemm = rates.cpu_sgemm, tc_matmul = rates.tc_matmul,
    medians = rates.medians }
end
tc.io.write_file(stem .. ".json", tc.json_encode({
  date_utc = os.date("!%Y-%m-%dT%H:%M:%SZ"), cpu = cpu, cores = tonumber(cores), quick = options.quick,
  settings = { steps = options.steps, warmup = options.warmup, gen_tokens = options.gen_tokens,
    gen_reps = options.gen_reps, sgemm_reps = options.sgemm_reps, sgemm_rounds = options.sgemm_rounds },
  torch = torch_version, torch_skipped = torch_reason, params_identical = params_ok,
  openblas = { pinned_env = pinned_json, env_core = env_core, auto_core = auto_core, torch_core = torch_core,
    torch_env_removed = pinned_names, ours_env = "as given" },
  tc_matmul_gemm = tc_matmul_gemm, cpu_sgemm_absent = cpu_sgemm_missing,
  flops_formula = report.flops_formula, lines = lines, sgemm = sgemm_json, mfu = mfu_rows,
  failures = failures,
}) .. "\n")
say("results written to " .. stem .. ".md and " .. stem .. ".json")
if ours_failed or not params_ok then os.exit(1) end
