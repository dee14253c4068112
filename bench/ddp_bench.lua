-- Data-parallel training on one machine: 2 ranks of 1 thread (mpirun)
-- against 1 process of 2 threads on the same whole batch of a GPT config
-- (default B), in tokens per second; the share of each step the ranks spend
-- waiting for the averaged gradients, with the buckets overlapped with the
-- backward and without; and each rank's memory with ZeRO-1 against plain
-- data-parallel training. Each line is its own run of bench/ddp_line.lua.
--
--   lua5.4 bench/ddp_bench.lua [--quick] [--config B] [--steps 10] [--warmup 3] [--out STEM]
--
-- Needs mpirun and libtricycle_mpi.so (Open MPI). --quick (or BENCH_QUICK=1)
-- times 2 steps after 1: a smoke test, not a measurement. Results:
-- bench/results/ddp.md and .json (quick runs: ddp_quick.*; --out STEM: STEM.*).
-- docs/BENCHMARKS.md has the figures and how they were taken.
local here = arg[0]:match("^(.*)/") or "."
local common = dofile(here .. "/common.lua")
local tc = common.tricycle()

local program = common.program({
  name = "ddp_bench", usage = "lua5.4 bench/ddp_bench.lua [--quick] [--config B] [--steps N] [--warmup N]",
  description = "2 ranks of 1 thread against 1 process of 2 threads, communication waits, ZeRO-1 memory.",
  options = {
    { name = "quick", type = "flag", default = false,
      help = "2 timed steps after 1: a smoke test (also BENCH_QUICK=1)" },
    { name = "config", type = "choice", choices = { "A", "B", "C" }, default = "B", help = "model config" },
    { name = "steps", type = "integer", default = 10, help = "timed steps per line" },
    { name = "warmup", type = "integer", default = 3, help = "steps before the timed ones" },
    { name = "bucket_mb", type = "number", default = 2, help = "bucket size in megabytes" },
    { name = "out", metavar = "STEM", default = "", help = "write STEM.md and STEM.json (default bench/results/ddp)" },
  },
})
local options = program:parse(arg)
local quick_env = os.getenv("BENCH_QUICK")
if options.quick or (quick_env and quick_env ~= "" and quick_env ~= "0") then
  options.quick = true
  options.steps, options.warmup = 2, 1
end

local function command_output(command)
  local pipe = io.popen(command)
  local text = pipe and pipe:read("a") or ""
  if pipe then
    pipe:close()
  end
  return text
end

local mpirun = command_output("command -v mpirun 2> /dev/null"):gsub("%s+$", "")
if mpirun == "" then
  program:fail("mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev)")
end
if not io.open(common.build() .. "/lua/tricycle/libtricycle_mpi.so", "rb") then
  program:fail(common.build() .. "/lua/tricycle/libtricycle_mpi.so is missing: build with Open MPI installed")
end

local function line(ranks, threads, flags)
  local command = ("lua5.4 bench/ddp_line.lua --config %s --threads %d --steps %d --warmup %d --bucket-mb %g %s")
    :format(options.config, threads, options.steps, options.warmup, options.bucket_mb, flags)
  if ranks > 1 then
    command = ("%s --allow-run-as-root --oversubscribe -np %d %s"):format(mpirun, ranks, command)
  end
  io.stderr:write("== ", command, "\n")
  local output = command_output(command .. " 2>&1")
  local json = output:match("(%b{})%s*$")
  local ok, result = pcall(tc.json_decode, json or "")
  if not ok or type(result) ~= "table" then
    program:fail("the line failed:\n" .. output)
  end
  io.stderr:write(json, "\n")
  return result
end

local results = {
  single = line(1, 2, ""),
  ddp = line(2, 1, "--ddp"),
  no_overlap = line(2, 1, "--ddp --no-overlap"),
  zero = line(2, 1, "--ddp --zero"),
}

local function percent(x)
  return ("%.1f%%"):format(100 * x)
end

local single, ddp, no_overlap, zero = results.single, results.ddp, results.no_overlap, results.zero
local lines = {
  ("# Data-parallel training, config %s (%d parameters, batch %d × %d tokens)%s"):format(options.config,
    single.params, single.batch, single.ctx, options.quick and " — quick run, not a measurement" or ""),
  "",
  ("%d timed steps after %d, median step; buckets of %g MB (%d buckets). Taken %s."):format(options.steps,
    options.warmup, options.bucket_mb, ddp.buckets or 0, os.date("!%Y-%m-%d %H:%M UTC")),
  "",
  "| run | tokens/s | step (s) | waiting at the end of backward | waiting in collectives |",
  "| --- | ---: | ---: | ---: | ---: |",
  ("| 1 process, 2 threads | %.0f | %.3f | | |"):format(single.tokens_per_second, single.step_seconds),
  ("| 2 ranks × 1 thread, overlapped | %.0f | %.3f | %s | %s |"):format(ddp.tokens_per_second, ddp.step_seconds,
    percent(ddp.end_wait_share), percent(ddp.collective_wait_share)),
  ("| 2 ranks × 1 thread, not overlapped | %.0f | %.3f | %s | %s |"):format(no_overlap.tokens_per_second,
    no_overlap.step_seconds, percent(no_overlap.end_wait_share), percent(no_overlap.collective_wait_share)),
  ("| 2 ranks × 1 thread, ZeRO-1 | %.0f | %.3f | %s | %s |"):format(zero.tokens_per_second, zero.step_seconds,
    percent(zero.end_wait_share), percent(zero.collective_wait_share)),
  "",
  "| memory per rank | AdamW moments (MiB) | engine peak (MiB) | peak RSS (MiB) |",
  "| --- | ---: | ---: | ---: |",
}
for _, entry in ipairs({ { "1 process", single }, { "data-parallel", ddp }, { "ZeRO-1", zero } }) do
  for r, rank in ipairs(entry[2].per_rank) do
    lines[#lines + 1] = ("| %s, rank %d | %.2f | %.1f | %.1f |"):format(entry[1], r - 1, rank.moments_mib,
      rank.engine_peak_mib, rank.peak_rss_mib)
  end
end
local stem = options.out ~= "" and options.out or (here .. "/results/" .. (options.quick and "ddp_quick" or "ddp"))
tc.io.write_file(stem .. ".md", table.concat(lines, "\n") .. "\n")
tc.io.write_file(stem .. ".json", tc.json_encode(results) .. "\n")
print(table.concat(lines, "\n"))
print(("written: %s.md, %s.json"):format(stem, stem))
