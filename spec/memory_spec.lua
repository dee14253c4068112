-- Native memory is visible to Lua's collector: a loop that allocates and drops
-- large tensors stays flat without any collectgarbage() call in the loop.
local lua_command = require("helpers.interpreter")
local tc = require("tricycle")

-- Resident set size in bytes, from /proc/self/status (VmRSS, in kB).
local function resident_bytes()
  local file = io.open("/proc/self/status", "r")
  if not file then return nil end
  local text = file:read("a")
  file:close()
  local kb = text:match("VmRSS:%s*(%d+)%s*kB")
  return kb and tonumber(kb) * 1024 or nil
end

local MiB = 1024 * 1024

-- Under AddressSanitizer the shadow memory and the quarantine of freed blocks
-- make the resident size say nothing about the engine.
local sanitized = (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true) ~= nil

-- What a Lua program prints when run by itself in a fresh process, with
-- the source tree and $TRICYCLE_BUILD on its paths.
local function run_program(program)
  local path = os.tmpname()
  local file = assert(io.open(path, "w"))
  file:write([[
    local build = os.getenv("TRICYCLE_BUILD") or "build"
    package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path
    package.cpath = build .. "/" .. require("helpers.module_dir") .. "/?.so;" .. package.cpath
  ]], program)
  file:close()
  local pipe = assert(io.popen(lua_command .. " " .. path .. " 2>&1"))
  local output = pipe:read("a")
  pipe:close()
  os.remove(path)
  return output
end

describe("memory", function()
  -- Run in a fresh process so that the resident size is the loop's alone,
  -- not whatever earlier specs left in this one.
  it("stays under 200 MiB over 2,000 iterations of 8 MiB tensors", function()
    if not resident_bytes() or sanitized then
      pending(sanitized and "resident memory is not meaningful under AddressSanitizer"
        or "/proc/self/status is not readable here")
      return
    end
    local program = [[
      local tc = require("tricycle")
      local function resident()
        local f = assert(io.open("/proc/self/status", "r"))
        local kb = f:read("a"):match("VmRSS:%s*(%d+)%s*kB")
        f:close()
        return tonumber(kb) * 1024
      end
      local sample = tc.randn({ 2097152 }) * 2
      assert(sample:numel() == 2097152)
      sample = nil
      local start = resident()
      local peak = start
      for i = 1, 2000 do
        local t = tc.full({ 2097152 }, 1.5) * 2 -- 8 MiB each, two per iteration
        if i % 50 == 0 then
          peak = math.max(peak, resident())
          assert(t[i]:item() == 3)
        end
      end
      print(start, peak, tc.memory())
    ]]
    local output = run_program(program)
    local start, peak, in_use = output:match("^(%d+)%s+(%d+)%s+(%d+)")
    assert.is_not_nil(start, "the child process failed: " .. output)
    start, peak, in_use = tonumber(start), tonumber(peak), tonumber(in_use)
    assert.is_true(peak < 200 * MiB,
      ("resident memory grew by %.1f MiB (peak %.1f MiB)"):format((peak - start) / MiB, peak / MiB))
    assert.is_true(in_use < 200 * MiB, ("engine holds %.1f MiB"):format(in_use / MiB))
  end)

  -- Storage counted by the engine (tc.memory), in a fresh process so that the
  -- peak is the construction's alone.
  it("initialises a model holding at most two tensors of a parameter's size at a time", function()
    local program = [[
      local tc = require("tricycle")
      local layer = tc.nn.Linear(1024, 1024)
      local _, linear_peak = tc.memory()
      local model = tc.nn.GPT({ vocab_size = 4096, context_length = 64, n_layer = 2, n_head = 4, n_embd = 256 })
      local in_use, peak = tc.memory()
      print(linear_peak, in_use, peak, layer.weight:numel() + model:num_parameters())
    ]]
    local output = run_program(program)
    local linear_peak, in_use, peak = output:match("^(%d+)%s+(%d+)%s+(%d+)")
    assert.is_not_nil(linear_peak, "the child process failed: " .. output)
    linear_peak, in_use, peak = tonumber(linear_peak), tonumber(in_use), tonumber(peak)
    local weight = 1024 * 1024 * 4
    -- the weight and one temporary of its size (plus the bias and its temporary)
    assert.is_true(linear_peak <= 2 * weight + 4 * 1024 * 4,
      ("Linear(1024, 1024): peak %.2f weights' worth"):format(linear_peak / weight))
    -- the largest parameter (the 4 MiB token embedding) once more, at most
    assert.is_true(peak <= in_use + 4096 * 256 * 4 + 64 * 1024,
      ("GPT: peak %.1f MiB with %.1f MiB in use"):format(peak / MiB, in_use / MiB))
  end)

  -- Dropped tensors wait for a collection; the binding collects when storage
  -- passes 1.25 times what survived the last one (or 64 MiB), so garbage
  -- stays a quarter of what a big model keeps (it once was as much again).
  it("keeps dropped storage within a quarter of the storage that survives", function()
    local program = [[
      local tc = require("tricycle")
      local kept = {}
      for i = 1, 40 do kept[i] = tc.zeros({ 2097152 }) end -- 320 MiB that survive
      collectgarbage()
      for _ = 1, 200 do
        local t = tc.full({ 2097152 }, 1.5) * 2 -- 8 MiB dropped, twice per iteration
        assert(t:numel() == 2097152)
      end
      print(tc.memory())
    ]]
    local output = run_program(program)
    local in_use, peak = output:match("^(%d+)%s+(%d+)")
    assert.is_not_nil(in_use, "the child process failed: " .. output)
    peak = tonumber(peak)
    local kept = 320 * MiB
    assert.is_true(peak <= kept * 1.25 + 3 * 8 * MiB,
      ("peak %.0f MiB of storage with %.0f MiB kept"):format(peak / MiB, kept / MiB))
  end)

  -- Without a graph a GPT lets every intermediate go as it is used, so a
  -- frame-by-frame host leaves its collector nothing: the MLP's hidden
  -- layer (4 x n_embd, the widest) and the positions once waited for it.
  it("an inference forward whose outputs are freed leaves no storage behind", function()
    tc.manual_seed(3)
    local model = tc.nn.GPT({ vocab_size = 11, context_length = 8, n_layer = 2, n_head = 2, n_embd = 16 })
    model:eval()
    for _, approximate in ipairs({ "tanh", "none" }) do
      for i = 1, model.h.length do model.h:get(i).mlp.gelu.approximate = approximate end
      collectgarbage()
      collectgarbage()
      local before = tc.memory()
      for _ = 1, 3 do
        tc.no_grad(function()
          local ids = tc.tensor({ { 1, 2, 3, 4, 5, 6 } }, { dtype = "int64" })
          local logits = model(ids)
          assert.are.same({ 1, 6, 11 }, logits.shape)
          logits:free()
          ids:free()
        end)
        assert.are.equal(before, (tc.memory()), "GELU " .. approximate)
      end
    end
    local _, _, cached = tc.memory()
    assert.is_true(sanitized or cached > 0, "nothing kept for reuse") -- AddressSanitizer builds keep no blocks
    tc.release_cached_memory()
    assert.are.equal(0, select(3, tc.memory()))
  end)

  it("frees the graph and saved tensors of a training-like loop", function()
    local w = tc.randn({ 256, 512 }, { requires_grad = true })
    local start = resident_bytes()
    if not start or sanitized then
      pending(sanitized and "resident memory is not meaningful under AddressSanitizer"
        or "/proc/self/status is not readable here")
      return
    end
    local peak = start
    for i = 1, 200 do
      local x = tc.randn({ 256, 512 })
      local loss = ((x * w):tanh() * x):sigmoid():mean()
      loss:backward()
      w.grad = nil
      if i % 20 == 0 then peak = math.max(peak, resident_bytes()) end
    end
    assert.is_true(peak - start < 200 * MiB, ("grew by %.1f MiB"):format((peak - start) / MiB))
  end)
end)
