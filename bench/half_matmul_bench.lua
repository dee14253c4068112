-- 16-bit matrix products on the CPU: the median time of matmul and linear
-- (forward, and forward with backward) on bfloat16 and float16 operands, for
-- a few transformer shapes. Both operands 16-bit, so the products take the
-- backend's gemm_16bit. One line per case: "name median_ms"; to compare two
-- builds, run it alternately with TRICYCLE_BUILD naming each (the figures
-- in bench/results/half_matmul.md were taken that way).
--
--   lua5.4 bench/half_matmul_bench.lua [--repeats 7] [--threads 1]
--
-- Run from the repository root; the build is found through $TRICYCLE_BUILD.
local common = require("bench.common")

local program = common.program({
  name = "half_matmul_bench",
  usage = "lua5.4 bench/half_matmul_bench.lua [--repeats N] [--threads N]",
  description = "Median times of 16-bit matmul and linear (forward, forward and backward) on the CPU.",
  options = {
    { name = "repeats", type = "integer", default = 7, help = "timed runs of each case" },
    { name = "threads", type = "integer", default = 1, help = "engine threads" },
  },
})
local options = program:parse(arg)
if options.repeats < 1 or options.threads < 1 then program:fail_usage("--repeats and --threads must be positive") end
local tc = common.tricycle()
local clock = common.clock_for(tc)
local unpack = require("tricycle.compat").unpack
tc.set_num_threads(options.threads)

-- name, inputs made from a dtype, the product
local function matmul(a, b) return a:matmul(b) end
local function tensors(dtype, ...)
  local out = {}
  for i, shape in ipairs({ ... }) do out[i] = (tc.randn(shape) * (i == 1 and 1 or 0.03)):to(dtype) end
  return out
end
local CASES = {
  { "matmul 512x512x512", function(dtype) return tensors(dtype, { 512, 512 }, { 512, 512 }) end, matmul },
  { "bmm 12x(128x64x128)", function(dtype) return tensors(dtype, { 12, 128, 64 }, { 12, 64, 128 }) end, matmul },
  { "linear_gelu 256x768 -> 3072", function(dtype) return tensors(dtype, { 256, 768 }, { 3072, 768 }, { 3072 }) end,
    tc.linear_gelu },
  { "linear 1x768 -> 2304", function(dtype) return tensors(dtype, { 1, 768 }, { 2304, 768 }, { 2304 }) end,
    tc.linear },
}

local function time_of(run)
  local times = {}
  run() -- warm-up
  for i = 1, options.repeats do
    collectgarbage()
    local started = clock()
    run()
    times[i] = (clock() - started) * 1e3
  end
  return common.median(times)
end

tc.manual_seed(0)
for _, dtype in ipairs({ "bfloat16", "float16" }) do
  for _, case in ipairs(CASES) do
    local inputs = case[2](dtype)
    local forward = time_of(function() tc.no_grad(function() return case[3](unpack(inputs)) end) end)
    local leaves = {}
    for i, t in ipairs(inputs) do leaves[i] = t:detach():requires_grad_() end
    local both = time_of(function() case[3](unpack(leaves)):float():sum():backward() end)
    print(("%s %s forward %.3f"):format(dtype, case[1], forward))
    print(("%s %s forward+backward %.3f"):format(dtype, case[1], both))
    io.stdout:flush()
  end
end
