-- The cuda device on a machine that cannot use it: requiring the module and
-- running on the CPU load no CUDA library; asking for cuda fails cleanly with
-- the reason (no backend library, no driver, no device, no kernel image);
-- the training script falls back to the CPU with a one-line notice. Each
-- case runs in a fresh Lua process so that nothing loaded earlier counts.
-- On a machine where CUDA works these cases are pending.
local module_dir = require("helpers.module_dir")
local lua_command = require("helpers.interpreter")
local probe = require("helpers.cuda_probe")
local compat = require("tricycle.compat")
local build = os.getenv("TRICYCLE_BUILD") or "build"
local shell_quote = probe.shell_quote

-- Runs Lua code in a fresh process; `library` sets TRICYCLE_CUDA_LIBRARY,
-- which is otherwise unset.
local function lua_process(code, library)
  return probe.run(code, library and ("TRICYCLE_CUDA_LIBRARY=" .. shell_quote(library)) or "-u TRICYCLE_CUDA_LIBRARY")
end

local reasons = { "no CUDA backend library", "no usable NVIDIA driver", "no CUDA device", "no kernel image",
                  "could not be loaded", "could not be started", "a test kernel failed",
                  "built for another version of the engine" }

local function known_reason(text)
  for _, reason in ipairs(reasons) do
    if text:find(reason, 1, true) then return true end
  end
  return false
end

local status, answer = lua_process([[
  local available, reason = require("tricycle").cuda.is_available()
  io.write(available and "available" or ("unavailable: " .. reason))]])
local cuda_works = status == 0 and answer == "available"

describe("the cuda device without a usable GPU", function()
  if cuda_works then
    pending("CUDA works on this machine: nothing to fall back from")
    return
  end

  it("requiring tricycle and computing on the CPU loads no CUDA library", function()
    local code, output = lua_process([[
      local tc = require("tricycle")
      local x = tc.randn({ 4, 5 })
      local _ = (x:matmul(x:transpose(1, 2)):softmax(2):sum()):item()
      for line in io.lines("/proc/self/maps") do
        for _, name in ipairs({ "libcuda.so", "libcudart", "libcublas", "libtricycle_cuda" }) do
          if line:find(name, 1, true) then print("loaded: " .. line) end
        end
      end
      print("done")]])
    assert.are.equal(0, code, output)
    assert.truthy(output:find("done", 1, true), output)
    assert.falsy(output:find("loaded:", 1, true), output)
  end)

  it("is_available() is false with a reason, and t:cuda() fails with the same reason", function()
    local code, output = lua_process([[
      local tc = require("tricycle")
      local available, reason = tc.cuda.is_available()
      assert(available == false and type(reason) == "string" and #reason > 0, "no reason")
      local ok, message = pcall(function() return tc.ones({ 2 }):cuda() end)
      assert(not ok, "t:cuda() worked")
      assert(tostring(message):find("device cuda is not available: " .. reason, 1, true), tostring(message))
      local again_ok, again = pcall(function() return tc.ones({ 2 }):to("cuda") end)
      assert(not again_ok and tostring(again):find(reason, 1, true), "the second ask differs")
      local device, notice = tc.cuda.pick_device()
      assert(device == "cpu" and notice == "GPU not used: " .. reason, tostring(notice))
      assert(tc.cuda.pick_device("cpu") == "cpu")
      print("reason: " .. reason)]])
    assert.are.equal(0, code, output)
    assert.is_true(known_reason(output), output)
  end)

  it("without the NVIDIA driver, asking maps neither the CUDA runtime nor cuBLAS", function()
    local code, output = lua_process([[
      local available, reason = require("tricycle").cuda.is_available()
      print("reason: " .. tostring(reason))
      for line in io.lines("/proc/self/maps") do
        for _, name in ipairs({ "libcudart", "libcublas", "libtricycle_cuda" }) do
          if line:find(name, 1, true) then print("loaded: " .. line) end
        end
      end]])
    assert.are.equal(0, code, output)
    if not output:find("libcuda.so.1 cannot be loaded", 1, true) then
      pending("this machine's reason is another: " .. output:match("reason: ([^\n]*)"))
      return
    end
    assert.falsy(output:find("loaded:", 1, true), output)
  end)

  it("a model refuses to move to cuda with the reason, and still works on the CPU", function()
    local code, output = lua_process([[
      local tc = require("tricycle")
      local nn = require("tricycle.nn")
      local model = nn.Linear(3, 2)
      local ok, message = pcall(function() model:to("cuda") end)
      assert(not ok and tostring(message):find("device cuda is not available", 1, true), tostring(message))
      local y = model(tc.ones({ 4, 3 }))
      assert(y.device == "cpu" and y.shape[1] == 4)
      print("ok")]])
    assert.are.equal(0, code, output)
  end)

  it("names a library that cannot be loaded or has no entry point", function()
    local code, output = lua_process([[
      local available, reason = require("tricycle").cuda.is_available()
      print(reason)]], "/nonexistent/libtricycle_cuda.so")
    assert.are.equal(0, code, output)
    assert.truthy(output:find("could not be loaded", 1, true), output)
    code, output = lua_process([[
      local available, reason = require("tricycle").cuda.is_available()
      print(reason)]], build .. "/" .. module_dir .. "/tricycle/core.so")
    assert.are.equal(0, code, output)
    assert.truthy(output:find("has no entry point tricycle_cuda_backend", 1, true), output)
  end)

  it("the training script falls back to the CPU with a one-line notice", function()
    local data = os.getenv("TRICYCLE_DATA")
    if not data then
      pending("TRICYCLE_DATA is not set")
      return
    end
    local out = os.tmpname()
    os.remove(out)
    local command = ("env -u TRICYCLE_CUDA_LIBRARY TRICYCLE_BUILD=%s " .. lua_command
      .. " scripts/train_shakespeare.lua --steps 2 --n-layer 1 --n-head 2 --n-embd 16 --context-length 16 "
      .. "--batch-size 2 --eval-every 0 --eval-batches 1 --sample-tokens 5 --out %s 2>&1")
      :format(shell_quote(build), shell_quote(out))
    local output, code = assert(compat.popen_read(command))
    os.execute("rm -rf " .. shell_quote(out))
    assert.are.equal(0, code, output)
    local notices = 0
    for line in output:gmatch("[^\n]+") do
      if line:find("^GPU not used: ") then
        notices = notices + 1
        assert.is_true(known_reason(line), line)
      end
    end
    assert.are.equal(1, notices, output)
  end)
end)

describe("the emulated cuBLAS (cuda/emulation/cublas_emulation.h)", function()
  -- What the emulation declares must be the toolkit's: every enum constant
  -- with its value, and every function with its parameter types, so the
  -- backend's calls mean on a GPU what they mean in `make test-cuda`.
  local include = (os.getenv("CUDA_HOME") or "/usr/local/cuda") .. "/include/"
  local function read(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local text = f:read("a")
    f:close()
    return text
  end
  local emulation = assert(read("cuda/emulation/cublas_emulation.h"))
  local real = read(include .. "cublas_api.h")
  local types = read(include .. "library_types.h")
  if not real or not types then
    pending("no CUDA toolkit headers in " .. include .. " (set CUDA_HOME) to compare with")
    return
  end
  real = real .. "\n" .. types

  -- `NAME = value` pairs of the enums (decimal or hex, maybe negative).
  local function constants(text)
    local values = {}
    for body in text:gmatch("typedef%s+enum[%s%w_]*(%b{})") do
      for name, value in body:gmatch("([%a_][%w_]*)%s*=%s*(%-?[%dxXa-fA-F]+)") do
        if values[name] == nil then values[name] = tonumber(value) end
      end
    end
    return values
  end

  -- A declaration's parameter types, names dropped, spacing normalised.
  local function parameter_types(list)
    local result = {}
    for parameter in (list:sub(2, -2) .. ","):gmatch("%s*([^,]-)%s*,") do
      local text = parameter:gsub("%s+", " "):gsub(" ?%* ?", "*"):gsub("long long int", "long long")
      result[#result + 1] = text:gsub("[ %*]?[%a_][%w_]*$", function(name)
        return name:sub(1, 1) == "*" and "*" or ""
      end)
    end
    return table.concat(result, ", ")
  end

  it("has the toolkit's enum values", function()
    local ours, theirs = constants(emulation), constants(real)
    local count = 0
    for name, value in pairs(ours) do
      count = count + 1
      assert.are.equal(theirs[name], value, name)
    end
    assert.is_true(count >= 20, "only " .. count .. " constants found")
    assert.are.equal(14, ours.CUDA_R_16BF)
  end)

  it("declares the toolkit's functions with its parameter types", function()
    local count = 0
    for result, name, list in emulation:gmatch("\n([%w_][%w_ %*]-)([%a_][%w_]*)(%b())%s*;") do
      count = count + 1
      local returned, declared = real:match("\n([%w_ ]-%*?)%s*CUBLASWINAPI%s+" .. name .. "(%b())")
      if not declared then -- cublas_v2.h maps the name to its _v2 function
        returned, declared = real:match("\n([%w_ ]-%*?)%s*CUBLASWINAPI%s+" .. name .. "_v2(%b())")
      end
      assert.is_not_nil(declared, name .. " is not in the toolkit's cublas_api.h")
      assert.are.equal(parameter_types(declared), parameter_types(list), name)
      assert.are.equal(returned:gsub("%s+", ""), result:gsub("%s+", ""), name .. "'s result")
    end
    assert.is_true(count >= 8, "only " .. count .. " functions found")
  end)
end)
