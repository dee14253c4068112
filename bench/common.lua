--- Shared pieces of the benchmark scripts: finding the build, a monotonic
-- wall clock, peak resident memory, medians and `--name value` arguments.
-- Not a benchmark itself (`make bench` runs only bench/*_bench.lua).
local M = {}

--- Points package.path/cpath at the source tree and $TRICYCLE_BUILD
-- (default build); returns require("tricycle").
function M.tricycle()
  local build = os.getenv("TRICYCLE_BUILD")
  if not build or build == "" then build = "build" end
  package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
  package.cpath = build .. "/lua/?.so;" .. package.cpath
  return require("tricycle")
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
  if n % 2 == 1 then return sorted[(n + 1) // 2] end
  return (sorted[n // 2] + sorted[n // 2 + 1]) / 2
end

function M.round(x, digits)
  local scale = 10 ^ (digits or 0)
  return math.floor(x * scale + 0.5) / scale
end

--- Parses `--name value` and bare `--flag` arguments into a copy of
-- `defaults`: integer defaults take integers, boolean defaults are flags.
-- Unknown names are an error that lists the known ones.
function M.parse_args(argv, defaults, usage)
  local options = {}
  for k, v in pairs(defaults) do options[k] = v end
  local i = 1
  while i <= #argv do
    local name = argv[i]:match("^%-%-([%w%-]+)$")
    local key = name and name:gsub("%-", "_")
    if not key or defaults[key] == nil then
      io.stderr:write(("unknown argument '%s'\n%s\n"):format(argv[i], usage))
      os.exit(2)
    end
    local default = defaults[key]
    if type(default) == "boolean" then
      options[key] = true
      i = i + 1
    else
      local value = argv[i + 1]
      if value == nil then
        io.stderr:write(("--%s needs a value\n%s\n"):format(name, usage))
        os.exit(2)
      end
      if math.type(default) == "integer" then
        local n = math.tointeger(tonumber(value))
        if not n then
          io.stderr:write(("--%s expects an integer, got '%s'\n"):format(name, value))
          os.exit(2)
        end
        value = n
      end
      options[key] = value
      i = i + 2
    end
  end
  return options
end

--- The model configs, as in ../shared/bench/torch_gpt.py.
M.configs = {
  A = { vocab = 65, ctx = 64, n_layer = 4, n_head = 4, n_embd = 128, batch = 16 },
  B = { vocab = 1024, ctx = 256, n_layer = 6, n_head = 6, n_embd = 384, batch = 8 },
  C = { vocab = 50257, ctx = 1024, n_layer = 12, n_head = 12, n_embd = 768, batch = 1 },
}

return M
