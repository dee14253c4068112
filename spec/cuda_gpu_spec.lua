-- #gpu: the CUDA backend on a real GPU (`make test-gpu`, which also runs
-- spec/cuda_emulation_spec.lua against the real library: every kernel
-- against the CPU backend). Here: the emulator's test kernels compiled by
-- nvcc, the time of a GPT training step on the GPU next to the CPU's, with
-- the same first losses, and 16-bit against float32 on the GPU (the step
-- under autocast, a GEMM on tensor cores, the fused row kernels), all
-- written to bench/results/gpu.md. Pending, with the reason, on a machine
-- without a usable GPU or when the emulated library is in use.
local tc = require("tricycle")
local nn = require("tricycle.nn")
local optim = require("tricycle.optim")

local build = os.getenv("TRICYCLE_BUILD") or "build"
-- Asked in another process: without a GPU nothing of CUDA is loaded here.
local available, reason = require("helpers.cuda_probe").cuda_available()
local emulated = os.getenv("TRICYCLE_CUDA_LIBRARY")

local function wall_clock()
  local ok, system = pcall(require, "system")
  if ok and type(system) == "table" and system.monotime then return system.monotime end
  return os.clock
end

describe("#gpu CUDA on a real GPU", function()
  if not available then
    print("\nGPU specs skipped: " .. tostring(reason))
    pending("no usable GPU: " .. tostring(reason))
    return
  end
  if emulated then
    print("\nGPU specs skipped: TRICYCLE_CUDA_LIBRARY points at " .. emulated)
    pending("the CUDA library in use is " .. emulated .. ", not the GPU build")
    return
  end

  it("runs the emulator's test kernels on the GPU", function()
    local program = build .. "/cuda/gpu_test"
    local output, code = assert(require("tricycle.compat").popen_read(program .. " 2>&1"))
    assert.are.equal(0, code, output)
    assert.truthy(output:find("passed: 0 failures", 1, true), output)
  end)

  -- One GPT training step timed on `device` after two warm-up steps; the
  -- losses of every step and the seconds per timed step. precision:
  -- "float32" (default), "bfloat16" (autocast) or "float16" (autocast with
  -- a GradScaler, as on GPUs without bf16).
  local function train(config, B, device, steps, precision)
    local clock = wall_clock()
    tc.manual_seed(1)
    local model = nn.GPT(config)
    if device == "cuda" then model:to("cuda") end
    local opt = optim.AdamW(model:parameters(), { lr = 1e-3 })
    local scaler = precision == "float16" and tc.amp.GradScaler() or nil
    math.randomseed(1)
    local x, y = {}, {}
    for b = 1, B do
      x[b], y[b] = {}, {}
      for t = 1, config.context_length do
        x[b][t] = math.random(0, config.vocab_size - 1)
        y[b][t] = (x[b][t] + 1) % config.vocab_size
      end
    end
    local ids, targets = tc.tensor(x, { dtype = "int64" }), tc.tensor(y, { dtype = "int64" })
    if device == "cuda" then ids, targets = ids:cuda(), targets:cuda() end
    local losses, started = {}, nil
    for step = 1, steps do
      if step == 3 then started = clock() end
      local loss
      if precision and precision ~= "float32" then
        loss = tc.autocast(precision, function() return select(2, model(ids, { targets = targets })) end)
      else
        loss = select(2, model(ids, { targets = targets }))
      end
      opt:zero_grad()
      if scaler then
        scaler:scale(loss):backward()
        scaler:step(opt)
        scaler:update()
      else
        loss:backward()
        opt:step()
      end
      losses[step] = loss:item() -- waits for the device
    end
    return losses, (clock() - started) / (steps - 2)
  end

  local function command_output(command)
    local pipe = io.popen(command .. " 2>/dev/null")
    if not pipe then return nil end
    local text = pipe:read("a")
    pipe:close()
    text = text and text:gsub("%s+$", "")
    return text ~= "" and text or nil
  end

  local rows = {}

  it("times a GPT training step (float32, TF32 off) against the CPU", function()
    local config = { vocab_size = 512, context_length = 128, n_layer = 4, n_head = 4, n_embd = 256 }
    local B = 16
    local gpu_losses, gpu_seconds = train(config, B, "cuda", 12)
    local cpu_losses, cpu_seconds = train(config, B, "cpu", 4)
    print(("\nGPT step (B %d, T %d, %d layers, width %d): %.2f ms on the GPU, %.1f ms on the CPU"):format(B,
      config.context_length, config.n_layer, config.n_embd, gpu_seconds * 1e3, cpu_seconds * 1e3))
    rows[#rows + 1] = { config = config, B = B, gpu = gpu_seconds, cpu = cpu_seconds,
      losses = ("%.5f/%.5f"):format(gpu_losses[4], cpu_losses[4]) }
    for step = 1, 4 do
      local difference = math.abs(gpu_losses[step] - cpu_losses[step]) / cpu_losses[step]
      assert.is_true(difference < 1e-3, ("step %d: %.6f on the GPU, %.6f on the CPU"):format(step,
        gpu_losses[step], cpu_losses[step]))
    end
  end)

  it("times the GPU preset's training step", function()
    local config = { vocab_size = 1024, context_length = 256, n_layer = 6, n_head = 6, n_embd = 384 }
    local B = 64
    local losses, seconds = train(config, B, "cuda", 12)
    for step, loss in ipairs(losses) do
      assert.is_true(loss == loss and loss < 10, ("step %d: loss %s"):format(step, tostring(loss)))
    end
    assert.is_true(losses[12] < losses[1], ("loss went from %.4f to %.4f"):format(losses[1], losses[12]))
    print(("\nGPU preset step (B %d, T %d, %d layers, width %d): %.2f ms, %.0f tokens/s"):format(B,
      config.context_length, config.n_layer, config.n_embd, seconds * 1e3, B * config.context_length / seconds))
    rows[#rows + 1] = { config = config, B = B, gpu = seconds, losses = ("%.5f"):format(losses[4]) }

  end)

  -- The preset's step in mixed precision (tensor cores), next to float32's.
  local precision_rows = {}
  it("times the GPU preset's step under autocast, bfloat16 and float16 with a GradScaler", function()
    local config = { vocab_size = 1024, context_length = 256, n_layer = 6, n_head = 6, n_embd = 384 }
    local B = 64
    local _, float32_seconds = train(config, B, "cuda", 12)
    for _, precision in ipairs({ "bfloat16", "float16" }) do
      local losses, seconds = train(config, B, "cuda", 12, precision)
      for step, loss in ipairs(losses) do
        assert.is_true(loss == loss and loss < 10, ("%s step %d: loss %s"):format(precision, step, tostring(loss)))
      end
      print(("\nGPU preset step under autocast %s: %.2f ms (float32 %.2f ms, %.2fx)"):format(precision,
        seconds * 1e3, float32_seconds * 1e3, float32_seconds / seconds))
      precision_rows[#precision_rows + 1] = { what = "preset step, autocast " .. precision,
        sixteen = seconds, float32 = float32_seconds, unit = "ms/step" }
    end
  end)

  -- Median seconds of `runs` calls of fn (each ended by a device sync).
  local function median_seconds(fn, runs)
    local clock, times = wall_clock(), {}
    fn()
    for i = 1, runs do
      local started = clock()
      fn()
      times[i] = clock() - started
    end
    table.sort(times)
    return times[math.floor((runs + 1) / 2)]
  end

  it("times 16-bit kernels against float32 ones: a GEMM and the fused row kernels", function()
    local n = 4096
    for _, dtype in ipairs({ "bfloat16", "float16" }) do
      local a32, b32 = tc.randn({ n, n }):to("cuda"), tc.randn({ n, n }):to("cuda")
      local a16, b16 = a32:to(dtype), b32:to(dtype)
      local t32 = median_seconds(function() a32:matmul(b32):sum():item() end, 5)
      local t16 = median_seconds(function() a16:matmul(b16):sum():item() end, 5)
      precision_rows[#precision_rows + 1] = { what = ("matmul %d³, %s (TF32 off for float32)"):format(n, dtype),
        sixteen = t16, float32 = t32, unit = "ms" }
      local x32 = tc.randn({ 16384, 1024 }):to("cuda")
      local w32, bias32 = tc.randn({ 1024 }):to("cuda"), tc.randn({ 1024 }):to("cuda")
      local x16, w16, bias16 = x32:to(dtype), w32:to(dtype), bias32:to(dtype)
      for _, kernel in ipairs({
        { "layer_norm", function(x, w, b) return tc.layer_norm(x, w, b, 1e-5) end },
        { "softmax", function(x) return x:softmax(-1) end },
        { "gelu", function(x) return x:gelu() end },
      }) do
        local f = kernel[2]
        local k32 = median_seconds(function() f(x32, w32, bias32):sum():item() end, 9)
        local k16 = median_seconds(function() f(x16, w16, bias16):sum():item() end, 9)
        precision_rows[#precision_rows + 1] = { what = ("%s [16384, 1024], %s"):format(kernel[1], dtype),
          sixteen = k16, float32 = k32, unit = "ms" }
      end
    end
    for _, row in ipairs(precision_rows) do
      print(("%s: %.3f against %.3f ms, %.2fx"):format(row.what, row.sixteen * 1e3, row.float32 * 1e3,
        row.float32 / row.sixteen))
    end
  end)

  it("records the figures in bench/results/gpu.md", function()
    local path = os.getenv("TRICYCLE_GPU_RESULTS") or "bench/results/gpu.md"
    local file = assert(io.open(path .. ".tmp", "w"))
    file:write("# GPT training step on a GPU\n\n")
    file:write(("%s. GPU: %s. CPU side: %s.\n"):format(os.date("!%Y-%m-%d %H:%M UTC"),
      command_output("nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader") or "unknown",
      command_output("nproc") and (command_output("nproc") .. " threads") or "unknown"))
    file:write("Written by `make test-gpu` (spec/cuda_gpu_spec.lua). Float32, TF32 off, AdamW; the mean of 10 steps"
      .. " after 2 warm-up steps.\n\n")
    file:write("| config (layers × width, T) | B | GPU ms/step | GPU tokens/s | CPU ms/step | CPU time / GPU time | "
      .. "loss at step 4 (GPU/CPU) |\n")
    file:write("| --- | ---: | ---: | ---: | ---: | ---: | --- |\n")
    for _, row in ipairs(rows) do
      local tokens = row.B * row.config.context_length
      file:write(("| %d × %d, %d | %d | %.2f | %.0f | %s | %s | %s |\n"):format(row.config.n_layer, row.config.n_embd,
        row.config.context_length, row.B, row.gpu * 1e3, tokens / row.gpu,
        row.cpu and ("%.1f"):format(row.cpu * 1e3) or "—", row.cpu and ("%.1f"):format(row.cpu / row.gpu) or "—",
        row.losses))
    end
    if #precision_rows > 0 then
      file:write("\n16-bit against float32 on the same device (medians; a kernel's time includes a sum and a sync):\n\n")
      file:write("| what | 16-bit | float32 | float32 time / 16-bit time |\n| --- | ---: | ---: | ---: |\n")
      for _, row in ipairs(precision_rows) do
        file:write(("| %s | %.3f %s | %.3f %s | %.2f |\n"):format(row.what, row.sixteen * 1e3, row.unit,
          row.float32 * 1e3, row.unit, row.float32 / row.sixteen))
      end
    end
    file:close()
    assert(os.rename(path .. ".tmp", path))
    print("figures written to " .. path)
  end)
end)
