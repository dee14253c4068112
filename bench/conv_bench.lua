-- The small-CNN training step, ours against PyTorch's, side by side: for each thread count, --rounds rounds,
-- each running bench/conv_line.lua then bench/torch_cnn.py as separate processes (alternating, so both see
-- the same load on a shared machine), each timing --steps steps after --warmup. Prints each run and the median
-- of each side's per-run medians with their ratio; --out writes the table as Markdown.
--
--   lua5.4 bench/conv_bench.lua [--threads 1,2] [--rounds 3] [--steps 20] [--warmup 3] [--out FILE] [--quick]
--
-- PyTorch is Debian's python3-torch under $BENCH_PYTHON (default /usr/bin/python3), run with
-- OMP_WAIT_POLICY=PASSIVE (../shared/bench/README.md says why); both sides get OMP_NUM_THREADS and
-- OPENBLAS_NUM_THREADS of the line's thread count, and set their own thread count to it.
local here = arg[0]:match("^(.*)/") or "."
local common = dofile(here .. "/common.lua")
local tc = common.tricycle()
local compat = require("tricycle.compat")

local program = common.program({
  name = "conv_bench", usage = "lua5.4 bench/conv_bench.lua [--threads 1,2] [--rounds 3] [options]",
  description = "A small CNN's training step, tricycle against PyTorch.",
  options = {
    { name = "quick", type = "flag", default = false,
      help = "1 round of 2 steps: a smoke test, not a measurement (also BENCH_QUICK=1)" },
    { name = "threads", metavar = "LIST", default = "1,2", help = "thread counts, comma-separated" },
    { name = "rounds", type = "integer", default = 3, help = "alternated runs of each side per thread count" },
    { name = "steps", type = "integer", default = 20, help = "timed steps per run" },
    { name = "warmup", type = "integer", default = 3, help = "untimed steps per run" },
    { name = "out", metavar = "FILE", default = "", help = "write the results as Markdown to this file" },
  },
})
local options = program:parse(arg)
local quick_env = os.getenv("BENCH_QUICK")
if options.quick or (quick_env ~= nil and quick_env ~= "" and quick_env ~= "0") then
  options.rounds, options.steps, options.warmup = 1, 2, 1
end
local thread_counts = {}
for t in options.threads:gmatch("[^,]+") do
  local count = compat.tointeger(tonumber(t))
  if not count or count < 1 then
    program:fail_usage(("--threads expects a list of positive integers, got '%s'"):format(options.threads))
  end
  thread_counts[#thread_counts + 1] = count
end
for _, key in ipairs({ "rounds", "steps" }) do
  if options[key] < 1 then program:fail_usage(("--%s must be positive, got %d"):format(key, options[key])) end
end

local lua = os.getenv("LUA") or "lua5.4"
local python = os.getenv("BENCH_PYTHON") or "/usr/bin/python3"

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- The last JSON line a command prints, or nil and its output.
local function run_json(command)
  local pipe = assert(io.popen(command .. " 2>&1"))
  local output = pipe:read("*a")
  pipe:close()
  local result
  for line in output:gmatch("[^\n]+") do
    if line:sub(1, 1) == "{" then
      local ok, value = pcall(tc.json_decode, line)
      if ok then result = value end
    end
  end
  return result, output
end

local function median(list)
  local sorted = {}
  for i, v in ipairs(list) do sorted[i] = v end
  table.sort(sorted)
  local n = #sorted
  if n % 2 == 1 then return sorted[(n + 1) / 2] end
  return (sorted[n / 2] + sorted[n / 2 + 1]) / 2
end

local step_args = ("--steps %d --warmup %d"):format(options.steps, options.warmup)
local rows, torch_version = {}, nil
for _, t in ipairs(thread_counts) do
  local env = ("OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d "):format(t, t)
  local ours, theirs = {}, {}
  for round = 1, options.rounds do
    local mine, output = run_json(("%sTRICYCLE_BUILD=%s %s %s/conv_line.lua --threads %d %s"):format(env,
      quote(common.build()), lua, quote(here), t, step_args))
    if not mine then error("conv_bench: bench/conv_line.lua failed:\n" .. output, 0) end
    ours[#ours + 1] = mine.median_ms
    local peer, peer_output = run_json(("%sOMP_WAIT_POLICY=PASSIVE %s %s/torch_cnn.py --threads %d %s"):format(env,
      quote(python), quote(here), t, step_args))
    if peer then
      theirs[#theirs + 1] = peer.median_ms
      torch_version = peer.system
    else
      io.stderr:write("conv_bench: PyTorch did not run (python3-torch missing?):\n", peer_output, "\n")
    end
    print(("%d thread(s), round %d: tricycle %.1f ms, %s %s ms"):format(t, round, mine.median_ms,
      torch_version or "PyTorch", peer and ("%.1f"):format(peer.median_ms) or "-"))
  end
  local row = { threads = t, ours = median(ours), theirs = #theirs > 0 and median(theirs) or nil }
  rows[#rows + 1] = row
  print(("%d thread(s): tricycle %.1f ms, PyTorch %s ms, PyTorch / tricycle = %s"):format(t, row.ours,
    row.theirs and ("%.1f"):format(row.theirs) or "-", row.theirs and ("%.2f"):format(row.theirs / row.ours) or "-"))
end

if options.out ~= "" then
  local lines = {
    "# Small CNN training step: tricycle against PyTorch",
    "",
    ("Written by `lua5.4 bench/conv_bench.lua --threads %s --rounds %d --steps %d --warmup %d --out %s`."):format(
      options.threads, options.rounds, options.steps, options.warmup, options.out),
    "",
    "One step: zero_grad, forward, cross-entropy, backward, SGD (lr 0.01) on a batch of 64 random 32x32x3",
    "images; conv 3->32->64->64 (3x3, padding 1, ReLU), 2x2 max-pool after the first two, a linear layer",
    "to 10 (bench/conv_line.lua, bench/torch_cnn.py). Each cell is the median over " .. options.rounds,
    "alternated runs of each run's median step time.",
    "",
    ("| threads | tricycle (ms) | %s (ms) | PyTorch / tricycle |"):format(torch_version or "PyTorch"),
    "| --- | --- | --- | --- |",
  }
  for _, row in ipairs(rows) do
    lines[#lines + 1] = ("| %d | %.1f | %s | %s |"):format(row.threads, row.ours,
      row.theirs and ("%.1f"):format(row.theirs) or "-", row.theirs and ("%.2f"):format(row.theirs / row.ours) or "-")
  end
  tc.io.write_file(options.out, table.concat(lines, "\n") .. "\n")
  print("wrote " .. options.out)
end
