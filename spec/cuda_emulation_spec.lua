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

local function describe_cuda(name, body)
  describe(name, function()
    if not available then
      pending("the CUDA backend is not available (" .. tostring(reason) .. "); run `make test-cuda`")
      return
    end
    body()
  end)
end

describe_cuda("ops on the cuda device (thread order " .. order .. ")", function()
  -- The cases moved from spec/c/cuda_kernels_test.c run in the two thread
  -- orders, as they did there; finite differences in the first pass.
  local fenced = os.getenv("TRICYCLE_CUDA_EMULATION_FENCE") == "1"
  local options = { other = "cpu", fenced = fenced, fd = order == "forward" and not fenced }
  for _, test in ipairs(runner.tests("cuda", require("op_cases"), options)) do
    it(test.group .. ": " .. test.name, test.run)
  end
end)

describe_cuda("the cuda device (thread order " .. order .. ")", function()
  -- fill_ and copy_ write through strided views (not ops of the list).
  local every_dtype = { "float64", "float32", "int64", "int32", "uint8", "bool" }
  local function on_both(fn)
    local cpu, cuda = fn("cpu"), fn("cuda")
    assert.are.same(cpu:to("cpu"):totable(), cuda:to("cpu"):totable())
  end

  it("refuses autocast's bf16 products by name rather than run them in float32", function()
    local a, b = tc.ones({ 2, 3 }):to("cuda"), tc.ones({ 3, 4 }):to("cuda")
    local ok, message = pcall(tc.autocast, "bfloat16", function() return a:matmul(b) end)
    assert.is_false(ok)
    assert.truthy(message:find("matmul: autocast: bfloat16 on cuda is not available yet", 1, true), message)
    ok, message = pcall(tc.autocast, "bfloat16", function() return tc.linear(a, b:transpose(1, 2)) end)
    assert.is_false(ok)
    assert.truthy(message:find("linear: autocast: bfloat16 on cuda is not available yet", 1, true), message)
    assert.are.equal("float32", tc.autocast_dtype())
    assert.are.same({ { 3, 3, 3, 3 }, { 3, 3, 3, 3 } }, a:matmul(b):to("cpu"):totable())
  end)

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

  it("the training and generation scripts run on the device (train, evaluate, checkpoint, sample)", function()
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
    local code, output = run((lua_command .. " scripts/train_shakespeare.lua --device cuda --preset cpu --data %s --steps 3 "
      .. "--n-layer 1 --n-head 2 --n-embd 16 --context-length 16 --batch-size 2 --eval-every 2 --eval-batches 1 "
      .. "--sample-tokens 8 --out %s"):format(shell_quote(excerpt), shell_quote(out)))
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
