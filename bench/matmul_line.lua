-- GFLOP/s of tc's matmul on given GEMM shapes at one thread count, the twin
-- of bench/sgemm_bench.c (raw OpenBLAS and cpu_sgemm) for bench/gpt_bench.lua:
-- the same shape strings, the best and median of --reps timed runs, after
-- three warm-up calls (as many as the C program's warm-up runs).
--
--   lua5.4 bench/matmul_line.lua --threads N --reps R --shapes "M,K,N,TA,TB,BATCH;..."
--
-- op(A) with TA = t is a transposed view of a stored [K, M] tensor (as the
-- backward pass passes it), likewise op(B); BATCH > 1 makes 3-D operands.
-- One JSON line per shape.
--
-- Each call allocates its output, as in a training step, and memory is reused
-- as in a training step: before each call, outside the timed region, the
-- previous output is dropped and a full collectgarbage() frees it, so its
-- block goes back to the engine's block cache and the next call gets it back
-- (mapped pages already touched). Without that, an output lives until Lua's
-- collector happens to run, each call maps fresh pages, and on 8-12 MB
-- outputs the page faults alone made tc.matmul look ~0.4 of raw.
--
-- Give one shape per process to compare with a training step:
-- bench/gpt_bench.lua does. In one process the blocks of the earlier shapes'
-- operands and outputs stay in the cache (up to its 64 MiB floor) and can
-- leave no room for a later shape's output, which then gets fresh pages again
-- (measured: [2048x384]@[384x1024] at ~40 GFLOP/s as the 13th shape of a
-- config-B list, ~180 alone).
local here = arg[0]:match("^(.*)/") or "."
local common = dofile(here .. "/common.lua")
local tc = common.tricycle()
local clock = common.clock_for(tc)

local program = common.program({
  name = "matmul_line", usage = 'lua5.4 bench/matmul_line.lua --threads N --reps R --shapes "M,K,N,TA,TB,BATCH;..."',
  description = "GFLOP/s of tc.matmul on GEMM shapes, one JSON line per shape.",
  options = {
    { name = "threads", type = "integer", default = 1, help = "engine threads" },
    { name = "reps", type = "integer", default = 5, help = "timed calls per shape" },
    { name = "shapes", metavar = "LIST", default = "", help = "M,K,N,TA,TB,BATCH of each shape, separated by ;" },
  },
})
local options = program:parse(arg)
if options.threads < 1 or options.reps < 1 then
  program:fail_usage(("--threads and --reps must be positive, got %d and %d"):format(options.threads, options.reps))
end
tc.set_num_threads(options.threads)
tc.manual_seed(0)

-- A [batch, rows, cols] operand stored as given, or as [batch, cols, rows]
-- and viewed transposed; 2-D when batch is 1.
local function operand(batch, rows, cols, transposed)
  local stored = transposed and { cols, rows } or { rows, cols }
  if batch > 1 then table.insert(stored, 1, batch) end
  local t = tc.rand(stored) - 0.5
  if transposed then t = t:transpose(-2, -1) end
  return t
end

local guard = tc.no_grad() -- (closed at the end: `<close>` is 5.4 only)
for text in options.shapes:gmatch("[^;]+") do
  collectgarbage() -- the previous shape's tensors go before this one is timed
  local m, k, n, ta, tb, batch = text:match("^(%d+),(%d+),(%d+),([nt]),([nt]),(%d+)$")
  if not m then program:fail_usage(("--shapes: '%s' is not M,K,N,TA,TB,BATCH"):format(text)) end
  m, k, n, batch = tonumber(m), tonumber(k), tonumber(n), tonumber(batch)
  local a = operand(batch, m, k, ta == "t")
  local b = operand(batch, k, n, tb == "t")
  local c = a:matmul(b)
  assert(c:size(-2) == m and c:size(-1) == n, "matmul_line: unexpected output shape")
  -- two more warm-up calls, so the block cache holds this shape's output
  for _ = 1, 2 do
    c = nil
    collectgarbage()
    c = a:matmul(b)
  end
  local times = {}
  for r = 1, options.reps do
    c = nil
    collectgarbage() -- outside the timed region: frees the previous output into the cache
    local started = clock()
    c = a:matmul(b)
    times[r] = clock() - started
  end
  local median, best = common.median(times), math.min((table.unpack or unpack)(times))
  local flops = 2 * m * n * k * batch
  print(tc.json_encode({
    shape = text, ms_best = common.round(best * 1e3, 4), ms_median = common.round(median * 1e3, 4),
    gflops = common.round(flops / best * 1e-9, 2), gflops_median = common.round(flops / median * 1e-9, 2),
  }))
end
guard:close()
