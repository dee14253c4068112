--- sort and topk(10) along the last dim on the CPU, float32, beside PyTorch run in the same bench (a python3
-- process started after tricycle's timings, with the same thread count): the median of --repeats calls per shape.
-- Writes a markdown table with tricycle / PyTorch ratios to --out (default: stdout only).
--   lua bench/sort_bench.lua [--threads 2] [--repeats 20] [--out bench/results/sort.md]
local common = require("bench.common")
local compat

local program = common.program({
  name = "sort_bench", usage = "lua5.4 bench/sort_bench.lua [--threads N] [--repeats N] [--out FILE]",
  description = "sort and topk(10) on the CPU beside PyTorch",
  options = {
    { name = "threads", type = "integer", default = 2, help = "threads of both libraries" },
    { name = "repeats", type = "integer", default = 20, help = "timed calls per shape (the median is kept)" },
    { name = "out", metavar = "FILE", help = "markdown file for the table" },
  },
})
local options = program:parse(arg)
local tc = common.tricycle()
compat = require("tricycle.compat")
local clock = common.clock_for(tc)
tc.configure({ num_threads = options.threads })

local shapes = { { 64, 1024 }, { 1, 50257 }, { 1024, 64 } }
local K = 10

local function median_seconds(fn)
  fn()
  local times = {}
  for i = 1, options.repeats do
    local start = clock()
    fn()
    times[i] = clock() - start
  end
  return common.median(times)
end

local ours = {}
for i, shape in ipairs(shapes) do
  local x = tc.randn(shape)
  ours[i] = {
    sort = median_seconds(function() return x:sort() end),
    topk = median_seconds(function() return x:topk(K) end),
  }
end

local python = os.getenv("BENCH_PYTHON") or "/usr/bin/python3"
local peer = ([[
import statistics, time, torch
torch.set_num_threads(%d)
def median(fn):
    fn()
    times = []
    for _ in range(%d):
        start = time.perf_counter(); fn(); times.append(time.perf_counter() - start)
    return statistics.median(times)
for shape in [(64, 1024), (1, 50257), (1024, 64)]:
    x = torch.randn(shape)
    print(median(lambda: torch.sort(x, dim=-1, stable=True)), median(lambda: torch.topk(x, %d, dim=-1)))
]]):format(options.threads, options.repeats, K)
local output, ok = compat.popen_read(python .. " -c '" .. peer .. "' 2>&1")
local theirs = {}
for sort_s, topk_s in (output or ""):gmatch("([%d%.e%-]+) ([%d%.e%-]+)\n") do
  theirs[#theirs + 1] = { sort = tonumber(sort_s), topk = tonumber(topk_s) }
end
if not ok or #theirs ~= #shapes then
  io.stderr:write("sort_bench: PyTorch did not run: ", tostring(output), "\n")
  os.exit(1)
end

local lines = {
  ("sort (stable) and topk(%d) along the last dim, float32 on the CPU, %d threads each; median of %d calls;"
    .. " PyTorch %s run by the same bench right after."):format(K, options.threads, options.repeats, "1.13"),
  "",
  "| shape | op | tricycle ms | PyTorch ms | tricycle / PyTorch |",
  "| --- | --- | ---: | ---: | ---: |",
}
for i, shape in ipairs(shapes) do
  for _, op in ipairs({ "sort", "topk" }) do
    lines[#lines + 1] = ("| {%d, %d} | %s | %.3f | %.3f | %.2f |"):format(shape[1], shape[2], op, ours[i][op] * 1e3,
      theirs[i][op] * 1e3, ours[i][op] / theirs[i][op])
  end
end
local text = table.concat(lines, "\n") .. "\n"
io.write(text)
if options.out then tc.io.write_file(options.out, "# sort and topk\n\n" .. text) end
