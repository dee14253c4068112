-- Bad inputs: the settings a host steers (tc.configure, the memory budget,
-- the collector's floor, the worker threads' idle spin). See
-- spec/bad_inputs_spec.lua for the format. Every case leaves the defaults.
local tc = require("tricycle")

local defaults = tc.settings()
local function restore()
  tc.configure(defaults)
  for name, value in pairs(tc.settings()) do
    assert(value == defaults[name], name .. " was not restored")
  end
end

return {
  { "set_memory_budget negative", function() tc.set_memory_budget(-1) end, { "set_memory_budget", "-1" } },
  { "set_memory_budget float", function() tc.set_memory_budget(1.5) end, { "set_memory_budget", "float" } },
  { "set_memory_budget string", function() tc.set_memory_budget("1MB") end, { "set_memory_budget", "string" } },
  { "set_memory_budget nothing", function() tc.set_memory_budget() end, { "set_memory_budget", "no value" } },
  { "set_collect_floor negative", function() tc.set_collect_floor(-4096) end, { "set_collect_floor", "-4096" } },
  { "set_collect_floor table", function() tc.set_collect_floor({}) end, { "set_collect_floor", "table" } },
  { "set_thread_spin negative", function() tc.set_thread_spin(-1) end, { "set_thread_spin", "-1" } },
  { "set_thread_spin past a second", function() tc.set_thread_spin(1000001) end,
    { "set_thread_spin", "1000001", "1000000" } },
  { "set_thread_spin float", function() tc.set_thread_spin(0.5) end, { "set_thread_spin", "float" } },
  { "set_thread_spin boolean", function() tc.set_thread_spin(true) end, { "set_thread_spin", "boolean" } },
  { "configure not a table", function() tc.configure(8) end, { "configure", "number" } },
  { "configure unknown key", function() tc.configure({ threads = 2 }) end,
    { "configure", "'threads'", "num_threads", "thread_spin" } },
  { "configure bad thread count", function() tc.configure({ num_threads = 0 }) end,
    { "configure", "num_threads", "0" }, after = restore },
  -- the budget set before the bad spin is put back: nothing half-applied
  { "configure bad spin after a budget", function() tc.configure({ memory_budget = 4096, thread_spin = -3 }) end,
    { "configure", "thread_spin", "-3" }, after = function()
      assert(tc.memory_budget() == 0, "the budget was left set")
      restore()
    end },
  { "allocation past the budget", function()
      tc.set_memory_budget(1024) -- below what other specs keep alive: any allocation fails
      local ok, failure = pcall(tc.zeros, 1024)
      tc.set_memory_budget(0)
      error(ok and "allocated" or failure, 0)
    end, { "zeros", "out of memory budget", "4096 bytes asked", "in use" }, after = restore },
  -- the output fits the budget, the windows' packing space (or, on the general path, the columns) does not
  { "conv2d past the budget", function()
      local x, weight = tc.randn({ 2, 8, 16, 16 }), tc.randn({ 8, 8, 3, 3 })
      collectgarbage()
      tc.set_memory_budget(tc.memory() + 2 * 8 * 16 * 16 * 4 + 1024)
      local ok, failure = pcall(tc.conv2d, x, weight, nil, { padding = 1 })
      tc.set_memory_budget(0)
      error(ok and "convolved" or failure, 0)
    end, { "conv2d", "out of memory budget", "bytes asked" }, after = restore },
  { "release_cached_memory with an argument", function() return tc.release_cached_memory(0) end,
    { "release_cached_memory", "no arguments" } },
  -- before: the argument was ignored
  { "memory with an argument", function() return tc.memory("cpu") end, { "memory", "no arguments" } },
}
