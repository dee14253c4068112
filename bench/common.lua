--- Shared pieces of the benchmark scripts: finding the build, their
-- command lines (the scripts' parser, tricycle.cli.args), a monotonic wall
-- clock, peak resident memory and medians.
-- Not a benchmark itself (`make bench` runs only bench/*_bench.lua).
local M = {}

--- $TRICYCLE_BUILD, default build.
function M.build()
  local build = os.getenv("TRICYCLE_BUILD")
  if not build or build == "" then build = "build" end
  return build
end

--- Points package.path/cpath at the source tree (and `extra`, such as
-- "spec/?.lua;") and the build, once.
function M.use_source_tree(extra)
  local path = "lua/?.lua;lua/?/init.lua;" .. (extra or "")
  if package.path:sub(1, #path) ~= path then
    package.path = path .. package.path
-- Lua 5.4's module is in <build>/lua/, each other Lua's in <build>/<lua5.1|luajit|lua5.2|lua5.3>/.
local lua_dir = rawget(_G, "jit") and "luajit"
  or ({ ["Lua 5.1"] = "lua5.1", ["Lua 5.2"] = "lua5.2", ["Lua 5.3"] = "lua5.3" })[_VERSION] or "lua"
    package.cpath = M.build() .. "/" .. lua_dir .. "/?.so;" .. package.cpath
  end
end

--- require("tricycle") from the source tree and the build.
function M.tricycle()
  M.use_source_tree()
  return require("tricycle")
end

--- The bench's command line (tricycle.cli.program): values, positionals.
-- --help prints the help and exits 0; bad usage exits 2 naming the option.
-- spec: {name =, usage =, description =, options =, positional =}.
function M.program(spec)
  M.use_source_tree()
  return require("tricycle.cli").program(spec)
end

-- os.clock is CPU time summed over threads, so it over-counts with several
-- threads; wall time comes from luasystem's monotonic clock (lua-system, a
-- dependency of busted), or tc.clock when the core provides one.
local monotonic
do
  local ok, system = pcall(require, "system")
  if ok and type(system) == "table" and system.monotime then
    monotonic = system.monotime
  end
end

--- Seconds on a monotonic wall clock (any origin). `tc` is the loaded module.
function M.clock_for(tc)
  if type(tc.clock) == "function" then return tc.clock end
  if monotonic then return monotonic end
  error("bench: no monotonic clock (install lua-system, or build a core with tc.clock)", 2)
end

--- Peak resident set size of this process in MiB (VmHWM), or nil off Linux.
function M.peak_rss_mib()
  local f = io.open("/proc/self/status", "r")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  local kib = text:match("VmHWM:%s*(%d+)%s*kB")
  return kib and tonumber(kib) / 1024 or nil
end

--- Median of a non-empty list of numbers.
function M.median(values)
  local sorted = {}
  for i, v in ipairs(values) do sorted[i] = v end
  table.sort(sorted)
  local n = #sorted
  assert(n > 0, "median of an empty list")
  local half = math.floor(n / 2)
  if n % 2 == 1 then return sorted[half + 1] end
  return (sorted[half] + sorted[half + 1]) / 2
end

function M.round(x, digits)
  local scale = 10 ^ (digits or 0)
  return math.floor(x * scale + 0.5) / scale
end

--- The model configs, as in ../shared/bench/torch_gpt.py.
M.configs = {
  A = { vocab = 65, ctx = 64, n_layer = 4, n_head = 4, n_embd = 128, batch = 16 },
  B = { vocab = 1024, ctx = 256, n_layer = 6, n_head = 6, n_embd = 384, batch = 8 },
  C = { vocab = 50257, ctx = 1024, n_layer = 12, n_head = 12, n_embd = 768, batch = 1 },
}

return M
