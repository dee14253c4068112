-- Every kernel of the CUDA backend against the CPU backend, run on the CPU
-- through the CUDA emulation (cuda/emulation/): the same .cu sources compiled
-- as C++, each CUDA thread a fiber. `make test-cuda` runs this file under
-- AddressSanitizer twice, with the fibers of each block in forward order and
-- in a shuffled order (TRICYCLE_CUDA_EMULATION_ORDER), and points
-- TRICYCLE_CUDA_LIBRARY at the emulated library. Without it the specs are
-- pending, with the reason printed.
--
-- Each case builds the same random inputs on both devices (broadcast and
-- non-contiguous views included), compares the outputs and, for
-- differentiable ops, the gradients of every input under one random upstream
-- gradient. Tolerances, relative to the largest magnitude of the CPU result
-- (at least 1): float64 1e-9, float32 1e-4; integer and bool results exact.
-- The tiny GPT trains 4 steps on each device from the same weights and
-- batches; its losses agree within 1e-9 (float64) and 1e-4 (float32) relative.
local tc = require("tricycle")
local nn = require("tricycle.nn")
local optim = require("tricycle.optim")

-- Asked in another process first: when the device is not usable, nothing of
-- CUDA is loaded into this one.
local available, reason = require("helpers.cuda_probe").cuda_available()
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

-- ---- inputs ----

-- spec: { shape, dtype = "float"|"bool", positive, offset, grad, view } or { values, dtype }
local function make_input(spec, dtype)
  local kind = spec.dtype or "float"
  if spec.values then
    return tc.tensor(spec.values, { dtype = kind == "float" and dtype or kind })
  end
  if kind == "bool" then
    return tc.rand(spec.shape, { dtype = "float64" }):gt(0.5)
  end
  local t = tc.randn(spec.shape, { dtype = "float64" })
  if spec.positive then t = t:abs() + (spec.offset or 0.2) end
  return t:to(dtype)
end

-- Runs case.fn on `device`; returns the CPU copies of the output and of each
-- gradient (in input order).
local function run_case(case, device, dtype)
  tc.manual_seed(case.seed or 7)
  local args, leaves = {}, {}
  for i, spec in ipairs(case.inputs) do
    local base = make_input(spec, dtype)
    if device == "cuda" then base = base:cuda() end
    if spec.grad then
      base:requires_grad_()
      leaves[#leaves + 1] = base
    end
    args[i] = spec.view and spec.view(base) or base
  end
  local out = case.fn(table.unpack(args))
  local results = { out:cpu() }
  if #leaves > 0 then
    local upstream = tc.randn(out.shape, { dtype = "float64" }):to(out.dtype)
    if device == "cuda" then upstream = upstream:cuda() end
    (out * upstream):sum():backward()
    for _, leaf in ipairs(leaves) do
      results[#results + 1] = leaf.grad and leaf.grad:cpu() or false
    end
  end
  return results
end

local function compare(expected, actual, dtype, what)
  assert.are.same(expected.shape, actual.shape, what .. ": shapes differ")
  assert.are.equal(expected.dtype, actual.dtype, what .. ": dtypes differ")
  if expected:numel() == 0 then return end
  if expected.dtype ~= "float32" and expected.dtype ~= "float64" then
    -- element by element: int64 values past 2^53 would round alike in float64
    assert.are.same(expected:totable(), actual:totable(), what .. ": integer results differ")
    return
  end
  local e, a = expected:to("float64"), actual:to("float64")
  local difference = (e - a):abs():max():item()
  local nan_e, nan_a = e:ne(e):to("int64"):sum():item(), a:ne(a):to("int64"):sum():item()
  assert.are.equal(nan_e, nan_a, what .. ": NaNs differ")
  if nan_e > 0 then return end
  local scale = math.max(1, e:abs():max():item())
  local limit = tolerance[dtype] * scale
  assert.is_true(difference <= limit, ("%s: differs by %.3g (allowed %.3g)"):format(what, difference, limit))
end

local function check_case(case, dtype)
  local expected = run_case(case, "cpu", dtype)
  local ok, actual = pcall(run_case, case, "cuda", dtype)
  assert(ok, ("%s (%s): %s"):format(case.name, dtype, tostring(actual)))
  for i = 1, #expected do
    local what = ("%s (%s, %s)"):format(case.name, dtype, i == 1 and "output" or "gradient of input " .. (i - 1))
    assert(expected[i] and actual[i], what .. ": missing")
    compare(expected[i], actual[i], dtype, what)
  end
end

-- ---- the cases ----

local function transpose(t) return t:transpose(1, 2) end
local function float(shape, extra)
  local spec = { shape = shape, grad = true }
  for k, v in pairs(extra or {}) do spec[k] = v end
  return spec
end

local cases = {}
local function case(name, fn, inputs, options)
  cases[#cases + 1] = { name = name, fn = fn, inputs = inputs, dtypes = options and options.dtypes }
end

case("unary sign", function(x) return x:sign() end, { float({ 37, 19 }, { grad = false }) })
for _, op in ipairs({ "neg", "exp", "tanh", "sigmoid", "relu", "gelu", "silu", "sin", "cos", "square", "abs" }) do
  case("unary " .. op, function(x) return x[op](x) end, { float({ 37, 19 }) })
  case("unary " .. op .. " (transposed)", function(x) return x[op](x) end, { float({ 6, 9 }, { view = transpose }) })
end
for _, op in ipairs({ "log", "sqrt", "rsqrt" }) do
  case("unary " .. op, function(x) return x[op](x) end, { float({ 37, 19 }, { positive = true }) })
end

for _, op in ipairs({ "add", "sub", "mul", "maximum", "minimum" }) do
  case("binary " .. op .. " (broadcast)", function(a, b) return a[op](a, b) end,
    { float({ 4, 1, 6 }), float({ 5, 1 }) })
  case("binary " .. op .. " (transposed)", function(a, b) return a[op](a, b) end,
    { float({ 7, 5 }, { view = transpose }), float({ 5, 7 }) })
end
case("binary div (broadcast)", function(a, b) return a:div(b) end,
  { float({ 4, 1, 6 }), float({ 5, 1 }, { positive = true, offset = 0.5 }) })
case("binary pow", function(a, b) return a:pow(b) end,
  { float({ 3, 8 }, { positive = true }), float({ 8 }) })
for _, op in ipairs({ "eq", "ne", "lt", "le", "gt", "ge" }) do
  case("compare " .. op, function(a, b) return a[op](a, b) end,
    { { shape = { 6, 1 } }, { shape = { 5 } } })
end
case("logical and, or, not", function(a, b) return a:logical_and(b):logical_or(a:logical_not()) end,
  { { shape = { 4, 5 }, dtype = "bool" }, { shape = { 5 }, dtype = "bool" } })
case("bool arithmetic is logic", function(a, b) return tc.stack({ a + b, a * b, a:maximum(b), a:minimum(b) }) end,
  { { shape = { 4, 5 }, dtype = "bool" }, { shape = { 5 }, dtype = "bool" } })
case("clamp", function(x) return x:clamp(-0.5, 0.7) end, { float({ 9, 11 }) })
case("where (broadcast)", function(c, a, b) return tc.where(c, a, b) end,
  { { shape = { 4, 1 }, dtype = "bool" }, float({ 4, 6 }), float({ 6 }) })
case("masked_fill", function(x, m) return x:masked_fill(m, -3) end, { float({ 5, 6 }), { shape = { 6 }, dtype = "bool" } })

case("copy: contiguous of a transpose", function(x) return x:contiguous() * 1 end, { float({ 5, 8 }, { view = transpose }) })
case("copy: expand", function(x) return x:expand({ 3, 4, 5 }):contiguous() end, { float({ 4, 1 }) })
case("copy: narrow and permute", function(x) return x:narrow(2, 2, 3):permute({ 3, 1, 2 }):contiguous() end,
  { float({ 4, 6, 5 }) })
case("copy: dtype conversions", function(x) return x:to("int32"):to("float64") + x:to("bool"):to("float64") end,
  { float({ 6, 7 }, { grad = false }) })
case("copy: floats into integers saturate, NaN as 0", function(x)
  return tc.stack({ x:to("int32"):to("int64"), x:to("uint8"):to("int64"), x:to("int64") })
end, { { values = { 0 / 0, 1 / 0, -1 / 0, 1e10, -1e10, 300, -1.5, 2.7, -2.7, 255.9, 2 ^ 63, -2 ^ 63 } } })
case("copy: cat and stack", function(a, b) return tc.cat({ a, b }, 1):sum(1) + tc.stack({ a, b }):mean(1) end,
  { float({ 3, 4 }), float({ 3, 4 }) })
case("fill", function(x) local y = x:detach():clone(); y:fill_(2.5); return y * x end, { float({ 3, 5 }) })

for _, op in ipairs({ "sum", "mean", "max", "min", "var" }) do
  case("reduce " .. op .. " over dim 2", function(x) return x[op](x, 2) end, { float({ 6, 33, 4 }) })
  if op == "max" or op == "min" then
    case("reduce " .. op .. " over dim 3, keepdim", function(x) return x[op](x, 3, true) end, { float({ 6, 5, 7 }) })
  else
    case("reduce " .. op .. " over dims 1 and 3, keepdim", function(x) return x[op](x, { 1, 3 }, true) end,
      { float({ 6, 5, 7 }) })
  end
  case("reduce " .. op .. " over all", function(x) return x[op](x) end, { float({ 300, 7 }) })
  case("reduce " .. op .. " of a transpose", function(x) return x[op](x, 1) end,
    { float({ 9, 40 }, { view = transpose }) })
end
case("reduce argmax, argmin", function(x) return x:argmax(2):to("float64") + x:argmin(1):to("float64"):sum() end,
  { float({ 7, 9 }, { grad = false }) })

case("matmul", function(a, b) return a:matmul(b) end, { float({ 5, 7 }), float({ 7, 3 }) })
case("matmul batched, broadcast", function(a, b) return a:matmul(b) end, { float({ 2, 5, 7 }), float({ 7, 3 }) })
case("matmul of transposes", function(a, b) return a:matmul(b) end,
  { float({ 7, 5 }, { view = transpose }), float({ 3, 7 }, { view = transpose }) })
case("matmul vector", function(a, b) return a:matmul(b) end, { float({ 4, 6 }), float({ 6 }) })
case("linear with bias", function(x, w, b) return tc.linear(x, w, b) end,
  { float({ 2, 5, 7 }), float({ 3, 7 }), float({ 3 }) })
case("linear without bias, column-major weight", function(x, w) return tc.linear(x, w) end,
  { float({ 6, 7 }), float({ 7, 4 }, { view = transpose }) })
case("linear of one row", function(x, w, b) return tc.linear(x, w, b) end, { float({ 1, 9 }), float({ 5, 9 }), float({ 5 }) })
case("linear_gelu with bias", function(x, w, b) return tc.linear_gelu(x, w, b) end,
  { float({ 3, 4, 9 }), float({ 33, 9 }), float({ 33 }) })
case("linear_gelu without bias", function(x, w) return tc.linear_gelu(x, w) end, { float({ 5, 8 }), float({ 6, 8 }) })

for _, op in ipairs({ "softmax", "log_softmax" }) do
  case(op .. " over the last dim", function(x) return x[op](x, -1) end, { float({ 4, 5, 33 }) })
  case(op .. " over dim 2", function(x) return x[op](x, 2) end, { float({ 4, 5, 6 }) })
end

case("gather and scatter_add", function(x, index) return x:gather(2, index) end,
  { float({ 4, 6 }), { values = { { 0, 5, 5 }, { 1, 1, 2 }, { 3, 0, 4 }, { 5, 5, 5 } }, dtype = "int64" } })
case("index_select and index_add", function(x, index) return x:index_select(1, index) end,
  { float({ 5, 3 }), { values = { 4, 0, 4, 2, 2, 2 }, dtype = "int64" } })
case("embedding", function(w, ids) return tc.embedding(w, ids) end,
  { float({ 10, 4 }), { values = { { 1, 9, 1 }, { 0, 3, 3 } }, dtype = "int64" } })
case("dropout (the same Philox stream as the CPU)", function(x) return x:dropout(0.3) end, { float({ 8, 50 }) })

case("layer_norm", function(x, w, b) return tc.layer_norm(x, w, b) end, { float({ 6, 33 }), float({ 33 }), float({ 33 }) })
case("rms_norm", function(x, w) return tc.rms_norm(x, w) end, { float({ 6, 40 }), float({ 40 }) })
case("attention (causal)", function(qkv) return tc.attention(qkv, 2, { causal = true }) end, { float({ 2, 5, 24 }) })
case("attention (not causal)", function(qkv) return tc.attention(qkv, 3, { causal = false }) end, { float({ 1, 7, 18 }) })
case("attention over several tiles (causal)", function(qkv) return tc.attention(qkv, 2, { causal = true }) end,
  { float({ 2, 45, 240 }) })
case("attention over several tiles (not causal)", function(qkv) return tc.attention(qkv, 1, { causal = false }) end,
  { float({ 1, 70, 96 }) })
case("attention with heads wider than 128 (the row kernels)", function(qkv)
  return tc.attention(qkv, 1, { causal = true })
end, { float({ 1, 6, 3 * 130 }) })
case("cross_entropy", function(logits, targets) return tc.cross_entropy(logits, targets) end,
  { float({ 6, 11 }), { values = { 0, 10, 3, 3, -100, 7 }, dtype = "int64" } })

describe_cuda("CUDA kernels on the emulated device (thread order " .. order .. ")", function()
  for _, c in ipairs(cases) do
    for _, dtype in ipairs(c.dtypes or { "float64", "float32" }) do
      it(c.name .. " (" .. dtype .. ")", function()
        check_case(c, dtype)
      end)
    end
  end

  for _, dtype in ipairs({ "float64", "float32" }) do
    it("adamw_step, sgd_step, global_norm and scale_ (" .. dtype .. ")", function()
      local function run(device)
        tc.manual_seed(3)
        local function make(shape)
          local t = tc.randn(shape, { dtype = "float64" }):to(dtype)
          return device == "cuda" and t:cuda() or t
        end
        local p, g, m, v = make({ 7, 5 }), make({ 7, 5 }), make({ 7, 5 }):abs(), make({ 7, 5 }):abs()
        tc.adamw_step(p, g, m, v, { step = 3, lr = 0.01 })
        local q, h, buffer = make({ 33 }), make({ 33 }), make({ 33 })
        tc.sgd_step(q, h, buffer, { lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 0.01 })
        local norm = tc.global_norm({ p, q })
        tc.scale_(q, 0.5)
        return { p:cpu(), m:cpu(), v:cpu(), q:cpu(), buffer:cpu(), tc.tensor({ norm }, { dtype = "float64" }) }
      end
      local expected, actual = run("cpu"), run("cuda")
      for i = 1, #expected do
        compare(expected[i], actual[i], dtype, "optimiser result " .. i)
      end
    end)
  end

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
      local pipe = assert(io.popen(command .. " 2>&1"))
      local output = pipe:read("a")
      local _, _, code = pipe:close()
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
    local code, output = run(("lua5.4 scripts/train_shakespeare.lua --device cuda --preset cpu --data %s --steps 3 "
      .. "--n-layer 1 --n-head 2 --n-embd 16 --context-length 16 --batch-size 2 --eval-every 2 --eval-batches 1 "
      .. "--sample-tokens 8 --out %s"):format(shell_quote(excerpt), shell_quote(out)))
    local generated_code, generated = run(("lua5.4 scripts/generate.lua %s --device cuda --prompt ROMEO "
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
