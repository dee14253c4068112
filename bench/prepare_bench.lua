-- Data preparation speed: scripts/prepare_data.lua with GPT-2's tokenizer on
-- a generated corpus, at two sizes, with the peak memory of each run.
--
--   lua5.4 bench/prepare_bench.lua
--   PREPARE_BENCH_MB=300 PREPARE_BENCH_THREADS=2 lua5.4 bench/prepare_bench.lua
--
-- The corpus is JSON Lines of documents drawn from a word-bigram chain over
-- tiny Shakespeare (seeded, so every run makes the same text): English
-- words, punctuation and line breaks in the proportions of the source, in
-- documents of 200 bytes to 20 kB (about 5 kB on average), written to a
-- temporary folder. The sizes are PREPARE_BENCH_MB (default 300) and a
-- quarter of it, in shards of 10 million tokens (20 MB): a flat memory
-- means about the same peak RSS for both. Besides MB/s of wall time it
-- gives MB per second of CPU time (user + system), which a busy machine
-- changes less. GPT-2's
-- files come from $TRICYCLE_GPT2_TOKENIZER or the cache the specs fill
-- (spec/helpers/gpt2_files.lua); the peak RSS from /usr/bin/time.
local here = arg[0]:match("^(.*)/") or "."
local common = dofile(here .. "/common.lua")
common.use_source_tree("spec/?.lua;")
common.program({
  name = "prepare_bench", usage = "[PREPARE_BENCH_MB=300] [PREPARE_BENCH_THREADS=N] lua5.4 bench/prepare_bench.lua",
  description = "Speed and peak memory of scripts/prepare_data.lua with GPT-2's tokenizer on generated JSON Lines.",
}):parse(arg)
local cli = require("tricycle.cli")
local build = common.build()

local data_dir = os.getenv("TRICYCLE_DATA")
if not data_dir or data_dir == "" then data_dir = "../shared/data" end
local f = io.open(data_dir .. "/tinyshakespeare.txt", "rb")
if not f then
  print("prepare bench: " .. data_dir .. "/tinyshakespeare.txt is missing, nothing to measure")
  return
end
local source = f:read("a")
f:close()
local gpt2_dir, why = require("helpers.gpt2_files").find()
if not gpt2_dir then
  print("prepare bench: no GPT-2 tokenizer files (" .. tostring(why) .. "), nothing to measure")
  return
end
if not io.open("/usr/bin/time", "rb") then
  print("prepare bench: /usr/bin/time is missing (apt-get install time), nothing to measure")
  return
end

local megabytes = tonumber(os.getenv("PREPARE_BENCH_MB") or "") or 300
local threads = os.getenv("PREPARE_BENCH_THREADS")

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- the chain: each word with the words that follow it in the source
local words, followers = {}, {}
for word in source:gmatch("%S+") do
  words[#words + 1] = word
end
for i = 1, #words - 1 do
  local list = followers[words[i]]
  if not list then
    list = {}
    followers[words[i]] = list
  end
  list[#list + 1] = words[i + 1]
end

--- Writes about `bytes` of text as JSON Lines to path.
local function generate(path, bytes)
  math.randomseed(20240520)
  local out = assert(io.open(path, "wb"))
  local written, word = 0, words[1]
  while written < bytes do
    local target = math.floor(200 * 100 ^ math.random()) -- 200 B to 20 kB, log-uniform
    local parts, size = {}, 0
    while size < target do
      local list = followers[word]
      word = list and list[math.random(#list)] or words[math.random(#words)]
      parts[#parts + 1] = word
      size = size + #word + 1
      parts[#parts + 1] = math.random(12) == 1 and "\n" or " "
    end
    local line = cli.json_line({ text = table.concat(parts) }) .. "\n"
    out:write(line)
    written = written + size
  end
  out:close()
  return written
end

local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. shell_quote(dir))
print(("prepare bench: GPT-2 tokenizer, JSON Lines generated from tiny Shakespeare's word bigrams, %s threads")
  :format(threads or "default"))
for _, size in ipairs({ megabytes / 4, megabytes }) do
  local corpus = dir .. "/corpus.jsonl"
  local text_bytes = generate(corpus, math.floor(size * 1e6))
  local command = ("/usr/bin/time -f '%%U %%S %%M' -o %s lua5.4 scripts/prepare_data.lua --gpt2 %s --out %s "
    .. "--shard-tokens 10000000 --overwrite %s %s > %s 2>&1"):format(shell_quote(dir .. "/rss"),
    shell_quote(gpt2_dir), shell_quote(dir .. "/out"),
    threads and ("--threads " .. threads) or "", shell_quote(corpus), shell_quote(dir .. "/log"))
  local ok = os.execute("TRICYCLE_BUILD=" .. shell_quote(build) .. " " .. command)
  local log = io.open(dir .. "/log"):read("a")
  if not ok then
    print("prepare_data failed:\n" .. log)
    break
  end
  local rate = log:match("| ([%d.]+) MB/s |[^\n]*\n[^\n]*wrote") or log:match("([%d.]+) MB/s")
  local user, system, rss = io.open(dir .. "/rss"):read("a"):match("([%d.]+) ([%d.]+) (%d+)%s*$")
  local cpu = tonumber(user) + tonumber(system)
  print(("%7.1f MB of text (%.1f MB of JSON Lines): %s MB/s, %.1f MB per CPU second, peak RSS %.0f MiB; %s")
    :format(text_bytes / 1e6, io.open(corpus):seek("end") / 1e6, tostring(rate), text_bytes / 1e6 / cpu,
      tonumber(rss) / 1024, log:match("wrote [^\n]*") or ""))
  os.remove(corpus)
end
os.execute("rm -rf " .. shell_quote(dir))
