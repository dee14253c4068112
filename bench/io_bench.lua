-- Loading safetensors files: the wall time and peak resident memory of
-- tc.load on a large file (alone, and then reading every value), and of
-- models.gpt2.load's two steps on a file of GPT-2 124M's shape (written by
-- gpt2.export from a fresh model; --no-gpt2 skips it). Each measurement runs in a child
-- process of its own, so its peak memory is its own; the file is read once
-- beforehand, so the numbers are with the file in the page cache.
--
--   lua5.4 bench/io_bench.lua [--mib 512] [--repeats 3] [--dir /tmp] [--no-gpt2]
--
-- Run from the repository root; the build is found through $TRICYCLE_BUILD.
local common = require("bench.common")

local program = common.program({
  name = "io_bench", usage = "lua5.4 bench/io_bench.lua [--mib N] [--repeats N] [--dir DIR] [--no-gpt2]",
  description = "Wall time and peak memory of tc.load and models.gpt2.load, each in a process of its own.",
  options = {
    { name = "mib", type = "integer", default = 512, help = "size of the file of eight tensors, in MiB" },
    { name = "repeats", type = "integer", default = 3, help = "timed loads per measurement" },
    { name = "dir", metavar = "DIR", default = "/tmp", help = "where the files are written" },
    { name = "no_gpt2", type = "flag", default = false, help = "leave out the GPT-2 124M file" },
    { name = "child", type = "choice", choices = { "load", "load_read", "gpt2" },
      help = "(internal) measure one load of PATH and print \"seconds peak_mib load_seconds\"" },
  },
  positional = { { name = "PATH" } },
})
local options, rest = program:parse(arg)
if options.mib < 1 or options.repeats < 1 then
  program:fail_usage(("--mib and --repeats must be positive, got %d and %d"):format(options.mib, options.repeats))
end
if (options.child == nil) ~= (rest[1] == nil) then
  program:fail_usage("--child MODE and PATH go together")
end

-- A child: `--child MODE PATH` measures one load and prints "seconds peak_mib load_seconds".
if options.child then
  local tc = common.tricycle()
  local clock = common.clock_for(tc)
  local mode, path = options.child, rest[1]
  local start = clock()
  if mode == "load" then
    local tensors = tc.load(path)
    assert(next(tensors))
  elseif mode == "load_read" then
    local tensors = tc.load(path)
    for _, t in pairs(tensors) do
      t:sum():item()
    end
  elseif mode == "gpt2" then
    -- gpt2.load is tc.load then from_hf_state (a new nn.GPT, initialised,
    -- then given the weights); the same two steps, timed apart.
    local tensors, metadata = tc.load(path)
    local loaded = clock()
    local config = {}
    for _, key in ipairs({ "vocab_size", "context_length", "n_layer", "n_head", "n_embd" }) do
      config[key] = require("tricycle.compat").tointeger(tonumber(metadata[key]))
    end
    local model = tc.models.gpt2.from_hf_state(tensors, config)
    assert(model.config.n_layer == 12)
    io.write(("%.4f %.1f %.4f\n"):format(clock() - start, common.peak_rss_mib(), loaded - start))
    return
  end
  io.write(("%.4f %.1f %.4f\n"):format(clock() - start, common.peak_rss_mib(), clock() - start))
  return
end

local tc = common.tricycle()
local lua = "lua5.4"

local function run_child(mode, path)
  local command = ("TRICYCLE_BUILD=%q %s bench/io_bench.lua --child %s %q"):format(
    os.getenv("TRICYCLE_BUILD") or "build", lua, mode, path)
  local pipe = assert(io.popen(command))
  local output = pipe:read("a")
  assert(pipe:close(), "child failed: " .. command .. "\n" .. output)
  local seconds, peak, load = output:match("^(%S+) (%S+) (%S+)")
  return tonumber(seconds), tonumber(peak), tonumber(load)
end

-- Wall times are median and best of the runs (the best is the least
-- disturbed by other programs); for gpt2, the tc.load part as well.
local function measure(label, mode, path)
  run_child(mode, path) -- warms the page cache
  local times, peaks, loads = {}, {}, {}
  for i = 1, options.repeats do
    times[i], peaks[i], loads[i] = run_child(mode, path)
  end
  local line = ("%-32s %7.3f s (best %.3f)  %7.1f MiB peak RSS"):format(label, common.median(times),
    math.min((table.unpack or unpack)(times)), common.median(peaks))
  if mode == "gpt2" then
    line = line .. ("; its tc.load %.3f s (best %.3f)"):format(common.median(loads),
      math.min((table.unpack or unpack)(loads)))
  end
  print(line .. (" [median of %d]"):format(options.repeats))
end

local path = ("%s/io_bench_%d.safetensors"):format(options.dir, options.mib)
do
  -- Eight tensors of equal size, float32, values that are not all equal.
  local tensors = {}
  local per_tensor = math.floor(options.mib * 1024 * 1024 / 8 / 4)
  for i = 1, 8 do
    tensors["t" .. i] = tc.arange(per_tensor, { dtype = "float32" }) * (1 / per_tensor)
  end
  tc.save(path, tensors)
  tensors = nil
  collectgarbage()
end
measure(("tc.load, %d MiB"):format(options.mib), "load", path)
measure("tc.load + sum of every tensor", "load_read", path)
os.remove(path)

if not options.no_gpt2 then
  local gpt2_path = options.dir .. "/io_bench_gpt2_124m.safetensors"
  do
    local c = common.configs.C
    local model = tc.nn.GPT({ vocab_size = c.vocab, context_length = c.ctx, n_layer = c.n_layer, n_head = c.n_head,
      n_embd = c.n_embd })
    tc.models.gpt2.export(model, gpt2_path)
    model = nil
    collectgarbage()
  end
  measure("models.gpt2.load, GPT-2 124M", "gpt2", gpt2_path)
  os.remove(gpt2_path)
end
