-- The op list (spec/op_cases.lua) on the cuda device, and what of the
-- device is not about one op. `make test-cuda` runs this file on the CUDA
-- emulation (cuda/emulation/: the same .cu sources compiled as C++, each CUDA
-- thread a fiber) under AddressSanitizer three times: with the fibers of
-- each block in forward order, in a shuffled order
-- (TRICYCLE_CUDA_EMULATION_ORDER), and with device memory fenced from host
-- code; TRICYCLE_CUDA_LIBRARY points at the emulated library. `make
-- test-gpu` runs it against the real library. Without a usable device the
-- specs are pending, with the reason printed.
--
-- Every case of the list runs here as on the CPU (spec/ops_spec.lua: its
-- reference, finite differences in float64 on the device, float32 gradients
-- against float64's) and, besides, against the CPU: the same inputs on both
-- devices, the outputs and the gradients under the same upstream gradient
-- compared element by element (spec/helpers/op_runner.lua). Here besides:
-- fill_ and copy_ into strided tensors, integer wrap-around, index errors
-- named as on the CPU, generation, the scripts, and a tiny GPT trained 4 steps
-- on each device from the same weights and batches, whose losses agree
-- within 1e-9 (float64) and 1e-4 (float32) relative.
local lua_command = require("helpers.interpreter")
local tc = require("tricycle")
local nn = require("tricycle.nn")
local optim = require("tricycle.optim")

-- Asked in another process first: when the device is not usable, nothing of
-- CUDA is loaded into this one.
local available, reason = require("helpers.cuda_probe").cuda_available()
local runner = require("helpers.op_runner")
local order = os.getenv("TRICYCLE_CUDA_EMULATION_ORDER") or "forward"
local tolerance = { float64 = 1e-9, float32 = 1e-4 }

local describe_cuda = require("helpers.cuda_probe").describer(describe, pending, available, reason)

describe_cuda("ops on the cuda device (thread order " .. order .. ")", function()
  -- The cases moved from spec/c/cuda_kernels_test.c run in the two thread
  -- orders, as they did there; finite differences in the first pass.
  local fenced = os.getenv("TRICYCLE_CUDA_EMULATION_FENCE") == "1"
  local options = { other = "cpu", fenced = fenced, fd = order == "forward" and not fenced }
  for _, test in ipairs(runner.tests("cuda", require("op_cases"), options)) do
    it(test.group .. ": " .. test.name, test.run)
  end
end)

describe_cuda("ops on 16-bit inputs on the cuda device (thread order " .. order .. ")", function()
  -- spec/half_spec.lua's rows on the device: 16-bit data live there, every op
  -- widens to float32 on the device and rounds once; the same ops refuse.
  local refusing = require("helpers.half_refusing")
  for _, test in ipairs(runner.half_tests("cuda", require("op_cases"), refusing, { other = "cpu" })) do
    it(test.group .. ": " .. test.name, test.run)
  end
end)

describe_cuda("16-bit conversions on the cuda device (thread order " .. order .. ")", function()
  -- Every bit pattern of a 16-bit dtype, as a CPU tensor read from a
  -- safetensors file written byte by byte.
  local function every_pattern(dtype)
    local bytes = {}
    for bits = 0, 65535 do bytes[#bytes + 1] = string.char(bits % 256, math.floor(bits / 256)) end
    local header = ('{"t":{"dtype":"%s","shape":[65536],"data_offsets":[0,131072]}}'):format(
      dtype == "bfloat16" and "BF16" or "F16")
    local length = {}
    for i = 0, 7 do length[#length + 1] = string.char(math.floor(#header / 256 ^ i) % 256) end
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(table.concat(length), header, table.concat(bytes))
    f:close()
    local t = tc.load(path).t
    os.remove(path)
    return t
  end

  local function bytes_of(t) -- a tensor's raw data, through a safetensors file
    local path = os.tmpname()
    tc.save(path, { t = t:cpu() })
    local f = assert(io.open(path, "rb"))
    local bytes = f:read("a")
    f:close()
    os.remove(path)
    return bytes:sub(-t:numel() * (t.dtype == "float32" and 4 or t.dtype == "float64" and 8 or 2))
  end

  -- The two tensors' data are the same bytes; else the first byte that differs.
  local function same_bytes(expected, actual, label)
    local a, b = bytes_of(expected), bytes_of(actual)
    assert(#a == #b, ("%s: %d bytes against %d"):format(label, #b, #a))
    for i = 1, #a do
      if a:byte(i) ~= b:byte(i) then
        error(("%s: byte %d is %d on cuda, %d on the cpu"):format(label, i, b:byte(i), a:byte(i)), 2)
      end
    end
  end

  for _, dtype in ipairs({ "bfloat16", "float16" }) do
      it("widens every " .. dtype .. " pattern and rounds every midpoint between them as the CPU does", function()
        local patterns = every_pattern(dtype)
        local wide = patterns:float()
        same_bytes(wide, patterns:cuda():float(), "widened")
        same_bytes(patterns:to("float64"):to(dtype), patterns:cuda():to("float64"):to(dtype), "through float64")
        -- midpoints between neighbours (ties, rounded to even) and points a
        -- quarter of the way (rounded down or up), from float32 and float64
        local low, high = wide:narrow(1, 1, 65535):double(), wide:narrow(1, 2, 65535):double()
        for _, t in ipairs({ 0.5, 0.25, 0.75 }) do
          local between = low + (high - low) * t
          for _, source in ipairs({ between:float(), between }) do
            local label = ("%s from %s, fraction %g"):format(dtype, source.dtype, t)
            same_bytes(source:to(dtype), source:cuda():to(dtype), label)
          end
        end
        local integers = tc.tensor({ 16777216 + 65536 + 1, -3, 70000, 65519, 65520 }, { dtype = "int64" })
        same_bytes(integers:to(dtype), integers:cuda():to(dtype), "from int64")
        assert.are.same(patterns:to("int32"):totable(), patterns:cuda():to("int32"):cpu():totable())
        assert.are.same(patterns:to("uint8"):totable(), patterns:cuda():to("uint8"):cpu():totable())
        assert.are.same(patterns:to("bool"):totable(), patterns:cuda():to("bool"):cpu():totable())
      end)
  end

  it("fills, copies into views and converts between the two 16-bit dtypes as the CPU does", function()
    for _, dtype in ipairs({ "bfloat16", "float16" }) do
      for _, value in ipairs({ 1 / 3, 65520, -1e-8, 1 / 0, 0 / 0 }) do
        local cpu, cuda = tc.zeros({ 4, 6 }, { dtype = dtype }), tc.zeros({ 4, 6 }, { dtype = dtype }):cuda()
        cpu:reshape(4, 3, 2):select(3, 2):fill_(value)
        cuda:reshape(4, 3, 2):select(3, 2):fill_(value)
        same_bytes(cpu, cuda, ("fill_(%g)"):format(value))
      end
      local source = tc.randn({ 5, 4 }) * 1000
      local cpu, cuda = tc.zeros({ 4, 5 }, { dtype = dtype }), tc.zeros({ 4, 5 }, { dtype = dtype }):cuda()
      cpu:transpose():copy_(source)
      cuda:transpose():copy_(source:cuda())
      same_bytes(cpu, cuda, "copy_ into a transposed view")
      local other = dtype == "bfloat16" and "float16" or "bfloat16"
      same_bytes(cpu:to(other), cuda:to(other), "to " .. other)
      same_bytes(cpu:transpose():contiguous(), cuda:transpose():contiguous(), "contiguous")
    end
  end)

  it("trains a float16 forward with a GradScaler on the device as on the CPU (skips and scales alike)", function()
    local function train(device)
      tc.manual_seed(21)
      local w1, w2 = (tc.randn({ 16, 6 }) * 0.3):to(device), (tc.randn({ 3, 16 }) * 0.3):to(device)
      w1.requires_grad, w2.requires_grad = true, true
      local opt = optim.SGD({ w1, w2 }, { lr = 0.05 })
      local scaler = tc.amp.GradScaler({ init_scale = 2 ^ 18, growth_interval = 2 })
      local x, y = (tc.randn({ 32, 6 }) * 2):to(device), tc.randn({ 32, 3 }):to(device)
      local scales = {}
      for step = 1, 8 do
        opt:zero_grad()
        local out = tc.linear(tc.linear(x:half(), w1:half()):tanh(), w2:half())
        assert.are.equal("float16", out.dtype)
        scaler:scale(((out:float() - y) ^ 2):mean()):backward()
        scaler:step(opt)
        scaler:update()
        scales[step] = scaler:get_scale()
      end
      return scales, w2:detach():cpu()
    end
    local cpu_scales, cpu_weight = train("cpu")
    local cuda_scales, cuda_weight = train("cuda")
    assert.are.same(cpu_scales, cuda_scales)
    assert.is_true(cpu_scales[8] ~= 2 ^ 18, "the scale never moved")
    assert.is_true(tc.allclose(cpu_weight, cuda_weight, { rtol = 1e-3, atol = 1e-3 }))
  end)
end)

describe_cuda("autocast and 16-bit products on the cuda device (thread order " .. order .. ")", function()
  -- spec/autocast_spec.lua's checks on the device: float32 products under
  -- autocast round both operands to bf16 (or float16) copies and take
  -- cuBLAS's bf16 (float16) GEMM
  -- (tensor cores on a GPU) with float32 sums; 16-bit operands go to it as
  -- they are. Both against the CPU's results on the same values.
  local autocast_cases = require("helpers.autocast_cases")
  for _, case in ipairs(autocast_cases.on("cuda")) do it(case.name, case.run) end

  -- The CPU's and the device's results, each a list of tensors, agree up to
  -- float32 summation order (relative to each result's scale).
  local function agree(cpu, cuda, tolerance, what)
    assert.are.equal(#cpu, #cuda)
    for i = 1, #cpu do
      local expected, actual = cpu[i]:float(), cuda[i]:cpu():float()
      assert.are.equal(cpu[i].dtype, cuda[i].dtype, what .. " result " .. i)
      local off, size = autocast_cases.max_difference(expected, actual), autocast_cases.scale(expected)
      assert.is_true(off <= tolerance * size, ("%s result %d: %g against scale %g"):format(what, i, off, size))
    end
  end

  for _, dtype in ipairs({ "bfloat16", "float16" }) do
  it("trains a small MLP under " .. dtype .. " autocast as the CPU does (forward, gradients, steps)", function()
    local function run(device)
      tc.manual_seed(17)
      local w1, b1 = (tc.randn({ 48, 20 }) * 0.2):to(device), tc.randn({ 48 }):to(device)
      local w2 = (tc.randn({ 7, 48 }) * 0.2):to(device)
      local x, y = tc.randn({ 33, 20 }):to(device), tc.randn({ 33, 7 }):to(device)
      local parameters = { w1, b1, w2 }
      for _, p in ipairs(parameters) do p.requires_grad = true end
      local opt = optim.AdamW(parameters, { lr = 1e-2 })
      local results = {}
      for step = 1, 3 do
        opt:zero_grad()
        local loss = tc.autocast(dtype, function()
          local h = tc.linear_gelu(x, w1, b1)
          local scores = tc.einsum("ij,kj->ik", h, w2)
          return ((scores - y) ^ 2):mean()
        end)
        loss:backward()
        results[#results + 1] = loss:detach()
        if step == 1 then
          for _, p in ipairs(parameters) do results[#results + 1] = p.grad:clone() end
        end
        opt:step()
      end
      for _, p in ipairs(parameters) do results[#results + 1] = p:detach() end
      return results
    end
    agree(run("cpu"), run("cuda"), 1e-4, dtype .. " autocast MLP")
  end)
  end

  it("runs 16-bit matmul, einsum and linear as the CPU's 16-bit path does, forward and gradients", function()
    for _, dtype in ipairs({ "bfloat16", "float16" }) do
      local function run(device)
        tc.manual_seed(19)
        local a, b = tc.randn({ 2, 9, 24 }):to(dtype):to(device), tc.randn({ 24, 11 }):to(dtype):to(device)
        local x, w = tc.randn({ 6, 24 }):to(dtype):to(device), tc.randn({ 11, 24 }):to(dtype):to(device)
        local bias = tc.randn({ 11 }):to(dtype):to(device)
        for _, t in ipairs({ a, b, x, w, bias }) do t.requires_grad = true end
        local product = a:matmul(b)
        local contracted = tc.einsum("bij,jk->bik", a, b)
        local activated = tc.linear_gelu(x, w, bias)
        assert.are.equal(dtype, product.dtype)
        assert.are.equal(dtype, activated.dtype)
        local loss = product:float():square():sum() + contracted:float():sum() + activated:float():square():sum()
        loss:backward()
        return { product, contracted, activated, a.grad, b.grad, x.grad, w.grad, bias.grad }
      end
      -- one 16-bit rounding of float32 sums taken in another order: within one ulp
      agree(run("cpu"), run("cuda"), dtype == "bfloat16" and 2 ^ -7 or 2 ^ -10, dtype)
    end
  end)
end)

describe_cuda("the cuda device (thread order " .. order .. ")", function()
  -- fill_ and copy_ write through strided views (not ops of the list).
  local every_dtype = { "float64", "float32", "int64", "int32", "uint8", "bool" }
  local function on_both(fn)
    local cpu, cuda = fn("cpu"), fn("cuda")
    assert.are.same(cpu:to("cpu"):totable(), cuda:to("cpu"):totable())
  end

  it("fill_ writes every other element of a view, every dtype", function()
    for _, dtype in ipairs(every_dtype) do
      on_both(function(device)
        local base = tc.zeros({ 4, 6 }, { dtype = dtype }):to(device)
        local every_other = base:reshape(4, 3, 2):select(3, 2)
        local value = ({ float64 = -2.5, float32 = -2.5, int64 = -2, int32 = -2, uint8 = 7, bool = 1 })[dtype]
        every_other:fill_(value)
        return base
      end)
    end
  end)

  it("copy_ converts into a transposed destination, every pair of dtypes", function()
    for _, from in ipairs(every_dtype) do
      for _, to in ipairs(every_dtype) do
        on_both(function(device)
          tc.manual_seed(13)
          local low = (from == "uint8" or to == "uint8") and 0 or -3
          local source = (tc.rand({ 4, 5 }, { dtype = "float64" }) * (3 - low) + low):to(from):to(device)
          local base = tc.zeros({ 5, 4 }, { dtype = to }):to(device)
          base:transpose():copy_(source)
          return base
        end)
      end
    end
  end)

  it("wraps integers around at the range edges exactly as the CPU does (int32, int64, uint8)", function()
    require("helpers.integer_edges").check("cuda")
  end)

  it("reports the first id out of range, as the CPU does", function()
    local ids = { 1, 12, 3, -4, 40, 2, 11 }
    local function message(device, run)
      local weight, index = tc.randn({ 10, 4 }), tc.tensor(ids, { dtype = "int64" })
      if device == "cuda" then weight, index = weight:cuda(), index:cuda() end
      local ok, text = pcall(run, weight, index)
      assert.is_false(ok, device .. " did not fail")
      return text
    end
    for _, run in ipairs({
      function(w, i) return w:index_select(1, i) end,
      function(w, i) return w:gather(1, i:reshape(7, 1):expand(7, 4):contiguous()) end,
    }) do
      local expected, actual = message("cpu", run), message("cuda", run)
      assert.truthy(expected:find("index 12 ", 1, true), expected)
      assert.are.equal(expected, actual)
    end
    -- On the CPU, embedding checks its ids itself (naming the element); on the
    -- device, index_select's check reports them, without reading them back first.
    local embedding = message("cuda", function(w, i) return tc.embedding(w, i) end)
    assert.truthy(embedding:find("index 12 is out of range for dim 1 of size 10", 1, true), embedding)
  end)

  it("generates the CPU's tokens (greedy and sampled, with and without the cache)", function()
    local function tokens(device, options)
      tc.manual_seed(5)
      local model = nn.GPT({ vocab_size = 17, context_length = 8, n_layer = 2, n_head = 2, n_embd = 16 }):to("float64")
      if device == "cuda" then model:to("cuda") end
      return tc.generate(model, { 1, 2, 3 }, options)
    end
    for _, options in ipairs({
      { max_tokens = 12, temperature = 0 },
      { max_tokens = 12, temperature = 0, use_cache = false },
      { max_tokens = 12, temperature = 0.9, top_k = 5, seed = 3 },
    }) do
      assert.are.same(tokens("cpu", options), tokens("cuda", options))
    end
  end)

  it("the scripts run on the device (train under autocast, evaluate, checkpoint, sample)", function()
    local data = os.getenv("TRICYCLE_DATA")
    if not data then
      pending("TRICYCLE_DATA is not set")
      return
    end
    local function shell_quote(text) return "'" .. text:gsub("'", "'\\''") .. "'" end
    local function run(command)
      local output, code = assert(require("tricycle.compat").popen_read(command .. " 2>&1"))
      return code, output
    end
    local out = os.tmpname()
    os.remove(out)
    -- The first 20,000 characters, so that the final full validation pass is short on the emulated device.
    local source = assert(io.open(data .. "/tinyshakespeare.txt", "rb"))
    local text = source:read(20000)
    source:close()
    local excerpt = os.tmpname()
    local file = assert(io.open(excerpt, "wb"))
    file:write(text)
    file:close()
    -- The child processes inherit TRICYCLE_CUDA_LIBRARY (this emulated device) and the fence setting.
    local code, output = run((lua_command .. " scripts/train_shakespeare.lua --device cuda --preset cpu --data %s "
      .. "--steps 3 --dtype bfloat16 --n-layer 1 --n-head 2 --n-embd 16 --context-length 16 --batch-size 2 "
      .. "--eval-every 2 --eval-batches 1 --sample-tokens 8 --out %s"):format(shell_quote(excerpt), shell_quote(out)))
    local generated_code, generated = run((lua_command .. " scripts/generate.lua %s --device cuda --prompt ROMEO "
      .. "--max-tokens 8 --top-k 5"):format(shell_quote(out .. "/checkpoint.safetensors")))
    os.execute("rm -rf " .. shell_quote(out))
    os.remove(excerpt)
    assert.are.equal(0, code, output)
    assert.truthy(output:find("on cuda", 1, true), output)
    assert.is_nil(output:find("GPU not used", 1, true), output)
    assert.are.equal(0, generated_code, generated)
    assert.truthy(generated:find("ROMEO", 1, true), generated)
  end)

  for _, dtype in ipairs({ "float64", "float32" }) do
    it("trains a tiny GPT 4 steps with the CPU's losses (" .. dtype .. ")", function()
      local function train(device)
        tc.manual_seed(11)
        local model = nn.GPT({ vocab_size = 13, context_length = 8, n_layer = 2, n_head = 2, n_embd = 16 })
        model = model:to(dtype)
        if device == "cuda" then model = model:to("cuda") end
        local opt = optim.AdamW(model:parameters(), { lr = 3e-3 })
        local losses = {}
        for step = 1, 4 do
          local x, y = {}, {}
          for b = 1, 3 do
            x[b], y[b] = {}, {}
            for t = 1, 8 do
              x[b][t] = (step * 5 + b * 3 + t * 7) % 13
              y[b][t] = (step * 5 + b * 3 + t * 7 + 1) % 13
            end
          end
          local ids, targets = tc.tensor(x, { dtype = "int64" }), tc.tensor(y, { dtype = "int64" })
          if device == "cuda" then ids, targets = ids:cuda(), targets:cuda() end
          local _, loss = model(ids, { targets = targets })
          opt:zero_grad()
          loss:backward()
          nn.clip_grad_norm(model:parameters(), 1.0)
          opt:step()
          losses[step] = loss:item()
        end
        return losses
      end
      local expected, actual = train("cpu"), train("cuda")
      for step = 1, #expected do
        local difference = math.abs(expected[step] - actual[step]) / math.abs(expected[step])
        assert.is_true(difference <= tolerance[dtype],
          ("step %d: loss %.10g on cuda, %.10g on cpu"):format(step, actual[step], expected[step]))
      end
      assert.is_true(expected[4] < expected[1], "the loss falls")
    end)
  end
end)
