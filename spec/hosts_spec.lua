-- The settings a host steers from Lua: the memory budget, the collector's
-- floor, the worker threads' idle spin, tc.configure / tc.settings.
local tc = require("tricycle")

local MiB = 1024 * 1024

describe("host settings", function()
  local defaults
  before_each(function() defaults = tc.settings() end)
  after_each(function() tc.configure(defaults) end)

  it("have their documented defaults", function()
    assert.are.equal(0, defaults.memory_budget)
    assert.are.equal(64 * MiB, defaults.collect_floor)
    assert.are.equal(100, defaults.thread_spin)
    assert.are.equal(tc.num_threads(), defaults.num_threads)
  end)

  it("configure applies what it is given and returns the settings before", function()
    local before = tc.configure({ memory_budget = 8 * MiB, collect_floor = MiB, thread_spin = 0, num_threads = 1 })
    assert.are.same(defaults, before)
    assert.are.same({ memory_budget = 8 * MiB, collect_floor = MiB, thread_spin = 0, num_threads = 1 }, tc.settings())
    tc.configure({ thread_spin = 250 })
    assert.are.equal(250, tc.thread_spin())
    assert.are.equal(8 * MiB, tc.memory_budget())
  end)

  it("the budget refuses an allocation past it and allows one within", function()
    collectgarbage()
    local in_use = tc.memory() -- what other specs keep alive counts too
    tc.set_memory_budget(in_use + MiB)
    assert.has_error(function() tc.zeros(512, 1024) end)
    assert.are.equal(0, tc.zeros(64, 1024):sum():item())
    tc.set_memory_budget(0)
    assert.are.equal(512 * 1024, tc.ones(512, 1024):sum():item())
  end)

  it("a lower collector floor bounds the garbage of a loop that drops tensors", function()
    collectgarbage()
    local base = tc.memory()
    tc.set_collect_floor(2 * MiB)
    local most = 0
    for _ = 1, 200 do
      local _ = tc.zeros(64, 1024) -- 256 KiB dropped each time
      most = math.max(most, tc.memory() - base)
    end
    -- 1.25 x what survives or the floor, plus the tensor being made
    assert.is_true(most <= 2 * MiB + 256 * 1024, ("held %d bytes"):format(most))
    tc.set_collect_floor(64 * MiB)
    collectgarbage()
    most = 0
    for _ = 1, 200 do
      local _ = tc.zeros(64, 1024)
      most = math.max(most, tc.memory() - base)
    end
    assert.is_true(most > 16 * MiB, ("held only %d bytes under the default floor"):format(most))
  end)

  for _, spin in ipairs({ 0, 100, 5000 }) do
    it(("kernels give the same bits with idle spin %d us, on several threads"):format(spin), function()
      tc.configure({ num_threads = 2, thread_spin = spin })
      tc.start_threads()
      tc.manual_seed(3)
      local a, b = tc.randn(96, 80), tc.randn(80, 70)
      local reference
      do
        local previous = tc.configure({ num_threads = 1 })
        reference = a:matmul(b):softmax(-1)
        tc.configure(previous)
      end
      for i = 1, 20 do
        assert.are.equal(0, (a:matmul(b):softmax(-1) - reference):abs():max():item())
        if i % 2 == 0 then tc.park_threads() end -- parked workers wake for the next kernel
      end
    end)
  end

  it("start_threads is harmless on one thread and when already started", function()
    tc.set_num_threads(1)
    tc.start_threads()
    tc.set_num_threads(2)
    tc.start_threads()
    tc.start_threads()
    assert.are.equal(6, tc.ones(2, 3):sum():item())
  end)
end)
