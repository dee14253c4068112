-- The fused ops (layer norm, RMS norm, attention, cross-entropy, AdamW, SGD,
-- global norm, scale_) against independent references written in plain Lua
-- on totable() data, and their gradients against central finite differences
-- in float64.
local tc = require("tricycle")

-- ---------------------------------------------------------------- helpers

local function flatten(value, out)
  out = out or {}
  if type(value) == "table" then
    for _, v in ipairs(value) do
      flatten(v, out)
    end
  else
    out[#out + 1] = value
  end
  return out
end

local function flat(t)
  return flatten(t:totable())
end

local function product(shape)
  local n = 1
  for _, s in ipairs(shape) do
    n = n * s
  end
  return n
end

local function make(values, shape, dtype)
  return tc.tensor(values, { dtype = dtype or "float64" }):reshape(shape)
end

-- Deterministic pseudo-random values in [-1, 1) from a Lua LCG, so the
-- references never depend on the engine's own random numbers.
local function random_values(n, seed)
  local state = seed or 12345
  local out = {}
  for i = 1, n do
    state = (state * 1103515245 + 12345) % 2147483648
    out[i] = state / 1073741824 - 1
  end
  return out
end

local function assert_close(actual, expected, tolerance, what)
  assert.are.equal(#expected, #actual, (what or "values") .. ": lengths differ")
  for i = 1, #expected do
    local a, e = actual[i], expected[i]
    local limit = tolerance * (1 + math.abs(e))
    if not (math.abs(a - e) <= limit) then
      error(("%s: element %d is %.12g, expected %.12g (tolerance %g)"):format(what or "values", i, a, e, limit), 2)
    end
  end
end

-- Checks the analytic gradient of every differentiable input against central
-- differences. `inputs` is a list of {values =, shape =, dtype =, grad =};
-- `fn` maps the list of tensors to an output tensor; the scalar checked is
-- sum(output * weights) with fixed weights, so every output element counts
-- with a different factor.
local function gradcheck(fn, inputs, what)
  local function build(requires)
    local tensors = {}
    for i, input in ipairs(inputs) do
      local t = make(input.values, input.shape, input.dtype or "float64")
      if requires and input.grad then
        t:requires_grad_()
      end
      tensors[i] = t
    end
    return tensors
  end
  local probe = fn(build(false))
  local weights = make(random_values(probe:numel(), 777), probe.shape)
  local function loss(tensors)
    return (fn(tensors) * weights):sum()
  end
  local tensors = build(true)
  loss(tensors):backward()
  local h = 1e-6
  local checked = 0
  for i, input in ipairs(inputs) do
    if input.grad then
      assert.is_not_nil(tensors[i].grad, what .. ": input " .. i .. " got no gradient")
      local analytic = flat(tensors[i].grad)
      local numeric = {}
      for j = 1, #input.values do
        local original = input.values[j]
        input.values[j] = original + h
        local plus = loss(build(false)):item()
        input.values[j] = original - h
        local minus = loss(build(false)):item()
        input.values[j] = original
        numeric[j] = (plus - minus) / (2 * h)
      end
      assert_close(analytic, numeric, 1e-5, what .. ", gradient of input " .. i)
      checked = checked + 1
    end
  end
  assert.is_true(checked > 0)
end

-- ---------------------------------------------------------------- references

local function layer_norm_reference(x, shape, weight, bias, eps, rms)
  local cols = shape[#shape]
  local out = {}
  for row = 0, #x // cols - 1 do
    local mean, var = 0, 0
    if not rms then
      for c = 1, cols do
        mean = mean + x[row * cols + c]
      end
      mean = mean / cols
    end
    for c = 1, cols do
      local d = x[row * cols + c] - mean
      var = var + d * d
    end
    var = var / cols
    for c = 1, cols do
      local y = (x[row * cols + c] - mean) / math.sqrt(var + eps)
      if weight then
        y = y * weight[c]
      end
      if bias then
        y = y + bias[c]
      end
      out[row * cols + c] = y
    end
  end
  return out
end

-- softmax(Q K^T / sqrt(hd) + mask) V per (batch, head), heads merged.
local function attention_reference(qkv, B, T, C, n_head, causal)
  local hd = C // n_head
  local function at(b, t, c) -- 0-based
    return qkv[(b * T + t) * 3 * C + c + 1]
  end
  local out = {}
  for b = 0, B - 1 do
    for h = 0, n_head - 1 do
      for i = 0, T - 1 do
        local scores, max = {}, -math.huge
        local last = causal and i or T - 1
        for j = 0, last do
          local s = 0
          for d = 0, hd - 1 do
            s = s + at(b, i, h * hd + d) * at(b, j, C + h * hd + d)
          end
          s = s / math.sqrt(hd)
          scores[j] = s
          max = math.max(max, s)
        end
        local total = 0
        for j = 0, last do
          scores[j] = math.exp(scores[j] - max)
          total = total + scores[j]
        end
        for d = 0, hd - 1 do
          local acc = 0
          for j = 0, last do
            acc = acc + scores[j] / total * at(b, j, 2 * C + h * hd + d)
          end
          out[(b * T + i) * C + h * hd + d + 1] = acc
        end
      end
    end
  end
  return out
end

local function cross_entropy_reference(logits, targets, V, ignore_index)
  local total, count = 0, 0
  for r = 0, #targets - 1 do
    local t = targets[r + 1]
    if t ~= ignore_index then
      local max = -math.huge
      for c = 1, V do
        max = math.max(max, logits[r * V + c])
      end
      local sum = 0
      for c = 1, V do
        sum = sum + math.exp(logits[r * V + c] - max)
      end
      total = total + (max + math.log(sum)) - logits[r * V + t + 1]
      count = count + 1
    end
  end
  return count > 0 and total / count or 0
end

-- ---------------------------------------------------------------- specs

local B, T, C, H = 2, 3, 4, 2

describe("layer_norm", function()
  local x_values = random_values(B * T * C, 1)
  local w_values = random_values(C, 2)
  local b_values = random_values(C, 3)

  it("matches mean/variance normalisation, with and without weight and bias", function()
    for _, dtype in ipairs({ "float64", "float32" }) do
      local x = make(x_values, { B, T, C }, dtype)
      local w, b = make(w_values, { C }, dtype), make(b_values, { C }, dtype)
      local tolerance = dtype == "float64" and 1e-12 or 1e-5
      assert_close(flat(tc.layer_norm(x, w, b, 1e-5)), layer_norm_reference(x_values, { B, T, C }, w_values,
        b_values, 1e-5), tolerance, "layer_norm " .. dtype)
      assert_close(flat(tc.layer_norm(x)), layer_norm_reference(x_values, { B, T, C }, nil, nil, 1e-5), tolerance,
        "layer_norm without parameters " .. dtype)
      assert_close(flat(tc.layer_norm(x, w, nil, 0.5)), layer_norm_reference(x_values, { B, T, C }, w_values, nil,
        0.5), tolerance, "layer_norm eps 0.5 " .. dtype)
    end
  end)

  it("also agrees with the composition of basic ops", function()
    local x = make(x_values, { B, T, C })
    local mean = x:mean(-1, true)
    local var = x:var(-1, { correction = 0, keepdim = true })
    local composed = (x - mean) / (var + 1e-5):sqrt()
    assert_close(flat(tc.layer_norm(x)), flat(composed), 1e-10, "layer_norm vs composed")
  end)

  it("has gradients matching finite differences for x, weight and bias", function()
    gradcheck(function(t)
      return tc.layer_norm(t[1], t[2], t[3], 1e-5)
    end, {
      { values = x_values, shape = { B, T, C }, grad = true },
      { values = w_values, shape = { C }, grad = true },
      { values = b_values, shape = { C }, grad = true },
    }, "layer_norm")
    gradcheck(function(t)
      return tc.layer_norm(t[1])
    end, { { values = x_values, shape = { B, T, C }, grad = true } }, "layer_norm without parameters")
    gradcheck(function(t)
      return tc.layer_norm(t[1], t[2], t[3])
    end, {
      { values = x_values, shape = { B, T, C } },
      { values = w_values, shape = { C }, grad = true },
      { values = b_values, shape = { C } },
    }, "layer_norm, weight only")
  end)

  it("flows gradients through a non-contiguous input", function()
    local x = make(x_values, { B, C, T }, "float64"):requires_grad_()
    local y = tc.layer_norm(x:transpose(2, 3))
    local weights = make(random_values(B * T * C, 9), { B, T, C })
    ;(y * weights):sum():backward()
    assert.are.same({ B, C, T }, x.grad.shape)
    local reference = make(x_values, { B, C, T }):transpose(2, 3):contiguous():requires_grad_()
    ;(tc.layer_norm(reference) * weights):sum():backward()
    assert_close(flat(x.grad:transpose(2, 3):contiguous()), flat(reference.grad), 1e-12, "transposed grad")
  end)

  it("float32 (vector rows with a ragged tail, several row blocks) agrees with float64, values and gradients",
    function()
      local rows, cols = 70, 37
      local xv, wv, bv = random_values(rows * cols, 61), random_values(cols, 62), random_values(cols, 63)
      local gv = random_values(rows * cols, 64)
      local results = {}
      for _, dtype in ipairs({ "float64", "float32" }) do
        for _, rms in ipairs({ false, true }) do
          local x = make(xv, { rows, cols }, dtype):requires_grad_()
          local w = make(wv, { cols }, dtype):requires_grad_()
          local b = make(bv, { cols }, dtype):requires_grad_()
          local y = rms and tc.rms_norm(x, w) or tc.layer_norm(x, w, b)
          ;(y * make(gv, { rows, cols }, dtype)):sum():backward()
          results[dtype .. tostring(rms)] = { flat(y), flat(x.grad), flat(w.grad), rms and {} or flat(b.grad) }
        end
      end
      for _, rms in ipairs({ false, true }) do
        local single, double = results["float32" .. tostring(rms)], results["float64" .. tostring(rms)]
        for i, what in ipairs({ "y", "dx", "dweight", "dbias" }) do
          assert_close(single[i], double[i], 2e-5, ("%s (rms %s)"):format(what, tostring(rms)))
        end
      end
    end)

  it("refuses bad inputs with messages naming the function and shapes", function()
    local x = make(x_values, { B, T, C })
    assert.has_error(function()
      tc.layer_norm(x, tc.ones({ C + 1 }, { dtype = "float64" }))
    end, "layer_norm: weight of shape {5} does not match x of shape {2, 3, 4} (expected {4})")
    assert.has_error(function()
      tc.layer_norm(x, nil, tc.ones({ C }))
    end, "layer_norm: bias is float32 but x is float64 (they must have the same dtype)")
    local ok, message = pcall(tc.layer_norm, tc.ones({ 2, 3 }, { dtype = "int64" }))
    assert.is_false(ok)
    assert.matches("layer_norm: x must be float32 or float64, got int64", message, 1, true)
  end)
end)

describe("rms_norm", function()
  local x_values = random_values(B * T * C, 4)
  local w_values = random_values(C, 5)

  it("matches x / sqrt(mean(x^2) + eps) * weight", function()
    local x, w = make(x_values, { B, T, C }), make(w_values, { C })
    assert_close(flat(tc.rms_norm(x, w, 1e-6)), layer_norm_reference(x_values, { B, T, C }, w_values, nil, 1e-6,
      true), 1e-12, "rms_norm")
    assert_close(flat(tc.rms_norm(x)), layer_norm_reference(x_values, { B, T, C }, nil, nil, 1e-5, true), 1e-12,
      "rms_norm without weight")
  end)

  it("has gradients matching finite differences for x and weight", function()
    gradcheck(function(t)
      return tc.rms_norm(t[1], t[2], 1e-6)
    end, {
      { values = x_values, shape = { B, T, C }, grad = true },
      { values = w_values, shape = { C }, grad = true },
    }, "rms_norm")
  end)

  it("refuses a weight of the wrong shape", function()
    local ok, message = pcall(tc.rms_norm, make(x_values, { B, T, C }), make({ 1, 2 }, { 2 }))
    assert.is_false(ok)
    assert.matches("rms_norm: weight of shape {2} does not match x of shape {2, 3, 4}", message, 1, true)
  end)
end)

describe("attention", function()
  local qkv_values = random_values(B * T * 3 * C, 6)

  it("matches softmax(QK^T/sqrt(d) + causal mask) V", function()
    for _, dtype in ipairs({ "float64", "float32" }) do
      local qkv = make(qkv_values, { B, T, 3 * C }, dtype)
      local out = tc.attention(qkv, H, { causal = true })
      assert.are.same({ B, T, C }, out.shape)
      local tolerance = dtype == "float64" and 1e-12 or 1e-5
      assert_close(flat(out), attention_reference(qkv_values, B, T, C, H, true), tolerance, "causal " .. dtype)
      assert_close(flat(tc.attention(qkv, H)), attention_reference(qkv_values, B, T, C, H, true), tolerance,
        "causal by default " .. dtype)
    end
  end)

  it("has a non-causal path", function()
    local qkv = make(qkv_values, { B, T, 3 * C })
    local out = tc.attention(qkv, H, { causal = false })
    assert_close(flat(out), attention_reference(qkv_values, B, T, C, H, false), 1e-12, "non-causal")
    -- and it differs from the causal result (the mask matters here)
    local causal = attention_reference(qkv_values, B, T, C, H, true)
    local differs = false
    for i, v in ipairs(flat(out)) do
      differs = differs or math.abs(v - causal[i]) > 1e-6
    end
    assert.is_true(differs)
  end)

  it("works with one head and with longer sequences", function()
    local values = random_values(1 * 7 * 3 * 6, 8)
    local qkv = make(values, { 1, 7, 18 })
    assert_close(flat(tc.attention(qkv, 1)), attention_reference(values, 1, 7, 6, 1, true), 1e-12, "one head")
    assert_close(flat(tc.attention(qkv, 3)), attention_reference(values, 1, 7, 6, 3, true), 1e-12, "three heads")
  end)

  it("has gradients matching finite differences, causal and not", function()
    for _, causal in ipairs({ true, false }) do
      gradcheck(function(t)
        return tc.attention(t[1], H, { causal = causal })
      end, { { values = qkv_values, shape = { B, T, 3 * C }, grad = true } }, "attention causal=" .. tostring(causal))
    end
  end)

  it("tiles sequences longer than one query block (T = 70) exactly, forward and gradients", function()
    local b, t, c, h = 1, 70, 4, 2
    local values = random_values(b * t * 3 * c, 31)
    for _, causal in ipairs({ true, false }) do
      local out = tc.attention(make(values, { b, t, 3 * c }), h, { causal = causal })
      assert_close(flat(out), attention_reference(values, b, t, c, h, causal), 1e-12, "T 70 causal=" .. tostring(causal))
      local out32 = tc.attention(make(values, { b, t, 3 * c }, "float32"), h, { causal = causal })
      assert_close(flat(out32), attention_reference(values, b, t, c, h, causal), 1e-5, "T 70 float32")
      gradcheck(function(x)
        return tc.attention(x[1], h, { causal = causal })
      end, { { values = values, shape = { b, t, 3 * c }, grad = true } }, "attention T 70 causal=" .. tostring(causal))
    end
  end)

  it("gives the same bits with 1 and 2 threads, forward and backward", function()
    local threads = tc.num_threads()
    local function run(n)
      tc.set_num_threads(n)
      tc.manual_seed(5)
      local qkv = tc.randn({ 3, 70, 3 * 16 }, { requires_grad = true })
      local out = tc.attention(qkv, 4)
      out:sum():backward()
      return out:tobytes(), qkv.grad:tobytes()
    end
    local out1, grad1 = run(1)
    local out2, grad2 = run(2)
    tc.set_num_threads(threads)
    assert.is_true(out1 == out2, "forward differs between 1 and 2 threads")
    assert.is_true(grad1 == grad2, "backward differs between 1 and 2 threads")
  end)

  it("keeps only the row log-sum-exp for backward, not the T x T probabilities", function()
    local b, t, c, h = 2, 64, 8, 2
    collectgarbage()
    collectgarbage()
    local qkv = tc.randn({ b, t, 3 * c }, { dtype = "float64", requires_grad = true })
    local before = tc.memory()
    local out = tc.attention(qkv, h)
    local kept = tc.memory() - before - out:numel() * 8
    assert.are.equal(b * h * t * 8, kept) -- lse {B, n_head, T}; probabilities would be B*n_head*T*T*8
    out:sum():backward()
    assert.are.same({ b, t, 3 * c }, qkv.grad.shape)
  end)

  it("refuses bad shapes, head counts and dtypes", function()
    local ok, message = pcall(tc.attention, tc.zeros({ B, T, 10 }, { dtype = "float64" }), H)
    assert.is_false(ok)
    assert.matches("attention: qkv must be {B, T, 3C}", message, 1, true)
    assert.matches("{2, 3, 10}", message, 1, true)
    ok, message = pcall(tc.attention, tc.zeros({ B, T, 3 * C }), 3)
    assert.is_false(ok)
    assert.matches("attention: n_head 3 does not divide C = 4", message, 1, true)
    ok, message = pcall(tc.attention, tc.zeros({ B * T, 3 * C }), H)
    assert.is_false(ok)
    assert.matches("attention: qkv must be {B, T, 3C}", message, 1, true)
    ok, message = pcall(tc.attention, tc.zeros({ B, T, 3 * C }, { dtype = "int32" }), H)
    assert.is_false(ok)
    assert.matches("attention: qkv must be float32 or float64, got int32", message, 1, true)
    ok, message = pcall(tc.attention, tc.zeros({ B, T, 3 * C }), H, { casual = true })
    assert.is_false(ok)
    assert.matches("attention: unknown option 'casual'", message, 1, true)
  end)
end)

describe("attention_cached", function()
  -- Feeding a sequence in pieces through the cache gives, for each piece,
  -- the rows of full attention over the whole sequence.
  local function check_pieces(b, t, c, h, pieces, causal, dtype, tolerance)
    local values = random_values(b * t * 3 * c, 41)
    local qkv = make(values, { b, t, 3 * c }, dtype)
    local full = tc.attention(qkv, h, { causal = causal })
    local k = tc.zeros({ b, h, t + 3, c // h }, { dtype = dtype })
    local v = tc.zeros({ b, h, t + 3, c // h }, { dtype = dtype })
    local position = 0
    for _, length in ipairs(pieces) do
      local out = tc.attention_cached(qkv:narrow(2, position + 1, length), k, v, position, h, { causal = causal })
      assert.are.same({ b, length, c }, out.shape)
      if causal then -- without the mask, earlier pieces see fewer keys than the full pass
        assert_close(flat(out), flat(full:narrow(2, position + 1, length)), tolerance,
          ("piece at %d (%s)"):format(position, dtype))
      end
      position = position + length
    end
    -- the cache holds the keys and values of every position, in [B, H, T, D]
    local keys = qkv:narrow(3, c + 1, c):reshape({ b, t, h, c // h }):transpose(2, 3)
    assert_close(flat(k:narrow(3, 1, t)), flat(keys), 0, "cached keys")
    assert_close(flat(k:narrow(3, t + 1, 3)), flat(tc.zeros({ b, h, 3, c // h })), 0, "untouched cache rows")
    return position
  end

  it("matches full causal attention piece by piece, across query blocks", function()
    check_pieces(2, 9, 4, 2, { 4, 1, 1, 3 }, true, "float64", 1e-12)
    check_pieces(1, 75, 8, 2, { 70, 1, 4 }, true, "float64", 1e-12)
    check_pieces(1, 75, 8, 2, { 1, 73, 1 }, true, "float32", 1e-5)
  end)

  it("without the mask, one piece over an empty cache equals full attention", function()
    local values = random_values(2 * 5 * 12, 43)
    local qkv = make(values, { 2, 5, 12 })
    local k, v = tc.zeros({ 2, 2, 5, 2 }, { dtype = "float64" }), tc.zeros({ 2, 2, 5, 2 }, { dtype = "float64" })
    local out = tc.attention_cached(qkv, k, v, 0, 2, { causal = false })
    assert_close(flat(out), attention_reference(values, 2, 5, 4, 2, false), 1e-12, "non-causal")
  end)

  it("refuses caches that do not fit, naming the shapes", function()
    local qkv = tc.zeros({ 1, 2, 12 }, { dtype = "float64" })
    local k, v = tc.zeros({ 1, 2, 3, 2 }, { dtype = "float64" }), tc.zeros({ 1, 2, 3, 2 }, { dtype = "float64" })
    local ok, message = pcall(tc.attention_cached, qkv, k, v, 2, 2)
    assert.is_false(ok)
    assert.matches("2 cached + 2 new positions do not fit", message, 1, true)
    ok, message = pcall(tc.attention_cached, qkv, tc.zeros({ 1, 3, 3, 2 }, { dtype = "float64" }), v, 0, 2)
    assert.is_false(ok)
    assert.matches("k_cache of shape {1, 3, 3, 2} does not fit", message, 1, true)
    ok, message = pcall(tc.attention_cached, qkv, k:transpose(3, 4), v, 0, 2)
    assert.is_false(ok)
  end)
end)

describe("cross_entropy", function()
  local V = 5
  local logit_values = random_values(B * T * V, 10)
  local target_values = { 0, 4, 2, 1, 3, 3 }

  it("matches log-sum-exp minus the target logit, averaged", function()
    for _, dtype in ipairs({ "float64", "float32" }) do
      local logits = make(logit_values, { B * T, V }, dtype)
      local targets = make(target_values, { B * T }, "int64")
      local loss = tc.cross_entropy(logits, targets)
      assert.are.same({}, loss.shape)
      local tolerance = dtype == "float64" and 1e-12 or 1e-6
      assert_close({ loss:item() }, { cross_entropy_reference(logit_values, target_values, V, -100) }, tolerance,
        "cross_entropy " .. dtype)
    end
  end)

  it("accepts logits {..., V} with targets {...}, int32 or int64", function()
    local expected = cross_entropy_reference(logit_values, target_values, V, -100)
    for _, target_dtype in ipairs({ "int64", "int32" }) do
      local loss = tc.cross_entropy(make(logit_values, { B, T, V }), make(target_values, { B, T }, target_dtype))
      assert_close({ loss:item() }, { expected }, 1e-12, "3-D logits, " .. target_dtype)
    end
  end)

  it("skips targets equal to ignore_index, in the mean and in the gradient", function()
    local targets = { 0, -100, 2, -100, 3, 3 }
    local logits = make(logit_values, { B, T, V }):requires_grad_()
    local loss = tc.cross_entropy(logits, make(targets, { B, T }, "int64"))
    assert_close({ loss:item() }, { cross_entropy_reference(logit_values, targets, V, -100) }, 1e-12, "ignored")
    loss:backward()
    local grad = flat(logits.grad)
    for r = 0, B * T - 1 do
      local row_sum, row_abs = 0, 0
      for c = 1, V do
        row_sum = row_sum + grad[r * V + c]
        row_abs = row_abs + math.abs(grad[r * V + c])
      end
      assert.is_true(math.abs(row_sum) < 1e-12) -- softmax - onehot sums to 0
      if targets[r + 1] == -100 then
        assert.are.equal(0, row_abs)
      else
        assert.is_true(row_abs > 0)
      end
    end
    -- a custom ignore_index
    local custom = { 1, 1, 2, 0, 1, 4 }
    local value = tc.cross_entropy(make(logit_values, { B * T, V }), make(custom, { B * T }, "int64"),
      { ignore_index = 1 }):item()
    assert_close({ value }, { cross_entropy_reference(logit_values, custom, V, 1) }, 1e-12, "ignore_index 1")
  end)

  it("gives 0 and zero gradients, not NaN, when every target is ignored", function()
    local logits = make(logit_values, { B * T, V }):requires_grad_()
    local loss = tc.cross_entropy(logits, make({ -100, -100, -100, -100, -100, -100 }, { B * T }, "int64"))
    assert.are.equal(0, loss:item())
    loss:backward()
    for _, g in ipairs(flat(logits.grad)) do
      assert.are.equal(0, g)
    end
  end)

  it("has gradients matching finite differences", function()
    gradcheck(function(t)
      return tc.cross_entropy(t[1], t[2])
    end, {
      { values = logit_values, shape = { B, T, V }, grad = true },
      { values = { 0, -100, 2, 1, 4, 3 }, shape = { B, T }, dtype = "int64" },
    }, "cross_entropy")
  end)

  it("names the bad target and V when a target is out of range", function()
    local logits = make(logit_values, { B * T, V })
    local ok, message = pcall(tc.cross_entropy, logits, make({ 0, 1, 5, 1, 1, 1 }, { B * T }, "int64"))
    assert.is_false(ok)
    assert.matches("cross_entropy: target 5 (at flat position 2 of targets) is out of range for V = 5 classes",
      message, 1, true)
    ok, message = pcall(tc.cross_entropy, logits, make({ 0, 1, 2, -1, 1, 1 }, { B * T }, "int64"))
    assert.is_false(ok)
    assert.matches("target -1", message, 1, true)
  end)

  it("refuses float targets and mismatched shapes", function()
    local logits = make(logit_values, { B * T, V })
    local ok, message = pcall(tc.cross_entropy, logits, make(target_values, { B * T }, "float32"))
    assert.is_false(ok)
    assert.matches("cross_entropy: targets must be int32 or int64", message, 1, true)
    ok, message = pcall(tc.cross_entropy, logits, make({ 0, 1, 2 }, { 3 }, "int64"))
    assert.is_false(ok)
    assert.matches("cross_entropy: logits of shape {6, 5} and targets of shape {3} do not fit", message, 1, true)
    ok, message = pcall(tc.cross_entropy, make({ 1, 2 }, { 2 }, "int64"), make({ 0 }, { 1 }, "int64"))
    assert.is_false(ok)
    assert.matches("cross_entropy: logits must be float32 or float64", message, 1, true)
  end)
end)

describe("adamw_step", function()
  it("matches a hand-computed two-step AdamW", function()
    local p0 = { 0.5, -1.25, 2.0, 0.0 }
    local grads = { { 0.1, -0.2, 0.3, -0.4 }, { -0.05, 0.5, 0.25, 0.0 } }
    local lr, b1, b2, eps, wd = 0.01, 0.9, 0.99, 1e-8, 0.1
    -- reference in plain Lua doubles
    local p, m, v = { table.unpack(p0) }, { 0, 0, 0, 0 }, { 0, 0, 0, 0 }
    for step = 1, 2 do
      for i = 1, 4 do
        local g = grads[step][i]
        p[i] = p[i] - lr * wd * p[i]
        m[i] = b1 * m[i] + (1 - b1) * g
        v[i] = b2 * v[i] + (1 - b2) * g * g
        local mhat, vhat = m[i] / (1 - b1 ^ step), v[i] / (1 - b2 ^ step)
        p[i] = p[i] - lr * mhat / (math.sqrt(vhat) + eps)
      end
    end
    local param = make(p0, { 2, 2 })
    local mt, vt = tc.zeros({ 2, 2 }, { dtype = "float64" }), tc.zeros({ 2, 2 }, { dtype = "float64" })
    for step = 1, 2 do
      local returned = tc.adamw_step(param, make(grads[step], { 2, 2 }), mt, vt,
        { step = step, lr = lr, beta1 = b1, beta2 = b2, eps = eps, weight_decay = wd })
      assert.are.equal(param, returned)
    end
    assert_close(flat(param), p, 1e-13, "adamw param")
    assert_close(flat(mt), m, 1e-13, "adamw m")
    assert_close(flat(vt), v, 1e-13, "adamw v")
  end)

  it("changes a float32 parameter even with a tiny learning rate", function()
    local param = tc.ones({ 8 })
    local grad = tc.full({ 8 }, 1e-3)
    local m, v = tc.zeros({ 8 }), tc.zeros({ 8 })
    tc.adamw_step(param, grad, m, v, { step = 1, lr = 1e-6, weight_decay = 0 })
    for _, value in ipairs(flat(param)) do
      assert.is_true(value < 1)
      assert.is_true(math.abs(value - (1 - 1e-6)) < 2e-7)
    end
    -- and later steps keep changing it
    local before = flat(param)[1]
    for step = 2, 10 do
      tc.adamw_step(param, grad, m, v, { step = step, lr = 1e-6, weight_decay = 0 })
    end
    assert.is_true(flat(param)[1] < before)
  end)

  it("refuses mismatched tensors, bad steps and unknown options", function()
    local p = tc.zeros({ 3 })
    local ok, message = pcall(tc.adamw_step, p, tc.zeros({ 4 }), tc.zeros({ 3 }), tc.zeros({ 3 }), { step = 1 })
    assert.is_false(ok)
    assert.matches("adamw_step: grad of shape {4} does not match param of shape {3}", message, 1, true)
    ok, message = pcall(tc.adamw_step, p, tc.zeros({ 3 }), tc.zeros({ 3 }, { dtype = "float64" }), tc.zeros({ 3 }),
      { step = 1 })
    assert.is_false(ok)
    assert.matches("adamw_step: m is float64 but param is float32", message, 1, true)
    ok, message = pcall(tc.adamw_step, p, tc.zeros({ 3 }), tc.zeros({ 3 }), tc.zeros({ 3 }), { step = 0 })
    assert.is_false(ok)
    assert.matches("adamw_step: step counts from 1, got 0", message, 1, true)
    ok, message = pcall(tc.adamw_step, p, tc.zeros({ 3 }), tc.zeros({ 3 }), tc.zeros({ 3 }), { step = 1, betas = 1 })
    assert.is_false(ok)
    assert.matches("adamw_step: unknown option 'betas'", message, 1, true)
    ok, message = pcall(tc.adamw_step, p, tc.zeros({ 3 }), tc.zeros({ 3 }), tc.zeros({ 3 }), { lr = 1 })
    assert.is_false(ok)
    assert.matches("adamw_step: option step is required", message, 1, true)
  end)
end)

describe("adamw_steps", function()
  it("gives the same bits as one adamw_step per parameter, with per-parameter steps", function()
    local options = { lr = 1e-2, beta1 = 0.9, beta2 = 0.99, eps = 1e-8, weight_decay = 0.1 }
    local function setup()
      tc.manual_seed(3)
      local params = { tc.randn({ 3, 5 }), tc.randn({ 20000 }), tc.randn({ 7 }) } -- one spans several blocks
      local grads = { tc.randn({ 5, 3 }):transpose(1, 2), tc.randn({ 20000 }), tc.randn({ 7 }) } -- one not contiguous
      local ms, vs = {}, {}
      for i, p in ipairs(params) do
        ms[i], vs[i] = tc.randn(p.shape) * 0.1, tc.rand(p.shape) * 0.1
      end
      return params, grads, ms, vs
    end
    local steps = { 1, 7, 3 }
    local p1, g1, m1, v1 = setup()
    for i = 1, 3 do
      local one = {}
      for k, value in pairs(options) do one[k] = value end
      one.step = steps[i]
      tc.adamw_step(p1[i], g1[i], m1[i], v1[i], one)
    end
    local p2, g2, m2, v2 = setup()
    tc.adamw_steps(p2, g2, m2, v2, steps, options)
    for i = 1, 3 do
      assert.is_true(p1[i]:tobytes() == p2[i]:tobytes(), "param " .. i)
      assert.is_true(m1[i]:tobytes() == m2[i]:tobytes() and v1[i]:tobytes() == v2[i]:tobytes(), "state " .. i)
    end
    local ok, message = pcall(tc.adamw_steps, p2, g2, m2, { v2[1] }, steps, options)
    assert.is_false(ok)
    assert.matches("vs has 1 entries but params has 3", message, 1, true)
  end)
end)

describe("sgd_step", function()
  it("matches plain and momentum SGD computed by hand", function()
    local p0, g = { 1.0, -2.0, 0.5 }, { 0.3, -0.1, 0.2 }
    local lr, mu, wd = 0.1, 0.9, 0.01
    for _, nesterov in ipairs({ false, true }) do
      local p, buf = { table.unpack(p0) }, { 0, 0, 0 }
      for _ = 1, 2 do
        for i = 1, 3 do
          local d = g[i] + wd * p[i]
          buf[i] = mu * buf[i] + d
          d = nesterov and d + mu * buf[i] or buf[i]
          p[i] = p[i] - lr * d
        end
      end
      local param, buffer = make(p0, { 3 }), tc.zeros({ 3 }, { dtype = "float64" })
      for _ = 1, 2 do
        tc.sgd_step(param, make(g, { 3 }), buffer, { lr = lr, momentum = mu, nesterov = nesterov, weight_decay = wd })
      end
      assert_close(flat(param), p, 1e-14, "sgd nesterov=" .. tostring(nesterov))
      assert_close(flat(buffer), buf, 1e-14, "sgd buffer")
    end
    local param = make(p0, { 3 })
    tc.sgd_step(param, make(g, { 3 }), nil, { lr = lr })
    assert_close(flat(param), { 1 - 0.03, -2 + 0.01, 0.5 - 0.02 }, 1e-14, "plain sgd")
  end)

  it("needs a buffer for momentum and lr always", function()
    local ok, message = pcall(tc.sgd_step, tc.zeros({ 2 }), tc.zeros({ 2 }), nil, { lr = 0.1, momentum = 0.9 })
    assert.is_false(ok)
    assert.matches("sgd_step: momentum 0.9 needs a momentum buffer", message, 1, true)
    ok, message = pcall(tc.sgd_step, tc.zeros({ 2 }), tc.zeros({ 2 }), nil, {})
    assert.is_false(ok)
    assert.matches("sgd_step: option lr is required", message, 1, true)
  end)
end)

describe("global_norm and scale_", function()
  it("computes sqrt of the sum of squares over a list", function()
    local a = make({ 3, 4 }, { 2 })
    local b = tc.tensor({ { 1, 2 }, { 2, 0 } }) -- float32
    assert.are.equal(math.sqrt(9 + 16 + 1 + 4 + 4), tc.global_norm({ a, b }))
    assert.are.equal(0, tc.global_norm({}))
    -- a non-contiguous view counts its own elements only
    local big = make({ 1, 2, 3, 4, 5, 6 }, { 2, 3 })
    assert_close({ tc.global_norm({ big:narrow(2, 2, 1) }) }, { math.sqrt(4 + 25) }, 1e-15, "narrowed")
    local ok, message = pcall(tc.global_norm, { a, 3 })
    assert.is_false(ok)
    assert.matches("global_norm: entry 2 of the list must be a tensor, got number", message, 1, true)
  end)

  it("scales in place, contiguous or not", function()
    local t = make({ 1, 2, 3, 4 }, { 2, 2 })
    assert.are.equal(t, tc.scale_(t, 0.5))
    assert_close(flat(t), { 0.5, 1, 1.5, 2 }, 0, "scaled")
    tc.scale_(t:transpose(1, 2):narrow(1, 1, 1), 10) -- the first column
    assert_close(flat(t), { 5, 1, 15, 2 }, 0, "scaled column")
    local ok, message = pcall(tc.scale_, tc.zeros({ 2 }, { dtype = "int64" }), 2)
    assert.is_false(ok)
    assert.matches("scale_: t must be float32 or float64", message, 1, true)
  end)
end)

describe("linear and linear_gelu", function()
  local rows, n_in, n_out = 5, 4, 3
  local x_values = random_values(rows * n_in, 21)
  local w_values = random_values(n_out * n_in, 22)
  local b_values = random_values(n_out, 23)

  local function gelu_tanh(v)
    return 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ^ 3)))
  end

  -- x [rows, in] @ w^T + b, plain Lua
  local function reference(with_bias, activation)
    local out = {}
    for r = 0, rows - 1 do
      for o = 0, n_out - 1 do
        local acc = with_bias and b_values[o + 1] or 0
        for i = 1, n_in do
          acc = acc + x_values[r * n_in + i] * w_values[o * n_in + i]
        end
        out[r * n_out + o + 1] = activation and activation(acc) or acc
      end
    end
    return out
  end

  it("matches x @ w^T + b, with and without bias, float64 and float32", function()
    for _, dtype in ipairs({ "float64", "float32" }) do
      local tolerance = dtype == "float64" and 1e-12 or 1e-5
      local x, w = make(x_values, { rows, n_in }, dtype), make(w_values, { n_out, n_in }, dtype)
      local b = make(b_values, { n_out }, dtype)
      assert_close(flat(tc.linear(x, w, b)), reference(true), tolerance, "linear " .. dtype)
      assert_close(flat(tc.linear(x, w)), reference(false), tolerance, "linear without bias " .. dtype)
      assert_close(flat(tc.linear_gelu(x, w, b)), reference(true, gelu_tanh), tolerance, "linear_gelu " .. dtype)
    end
  end)

  it("gives linear-then-GELU's exact float32 bits at 1 and 2 threads, with and without bias", function()
    local threads = tc.num_threads()
    local x, w, b = tc.randn({ 3, 50, 40 }), tc.randn({ 90, 40 }), tc.randn({ 90 })
    for _, n in ipairs({ 1, 2 }) do
      tc.set_num_threads(n)
      for _, bias in ipairs({ b, tc.zeros({ 90 }), false }) do
        local fused = tc.linear_gelu(x, w, bias or nil)
        local separate = tc.linear(x, w, bias or nil):gelu("tanh")
        assert.are.equal(0, (fused - separate):abs():max():item(),
          ("%d thread(s), %s"):format(n, bias and "bias" or "no bias"))
        assert.is_true(fused:abs():sum():item() > 0)
      end
    end
    tc.set_num_threads(threads)
  end)

  it("keeps leading dims and reads a transposed weight view in place", function()
    local x = make(x_values, { 1, rows, n_in })
    local w_t = make(w_values, { n_out, n_in }):transpose(1, 2):contiguous():transpose(1, 2) -- column-major
    assert.is_false(w_t:is_contiguous())
    local out = tc.linear(x, w_t, make(b_values, { n_out }))
    assert.are.same({ 1, rows, n_out }, out.shape)
    assert_close(flat(out), reference(true), 1e-12, "column-major weight")
  end)

  it("computes one row (the matrix-vector path) like the others, for both weight layouts", function()
    local n_big_in, n_big_out = 70, 200 -- more than one output block
    local xv, wv, bv = random_values(n_big_in, 51), random_values(n_big_out * n_big_in, 52), random_values(n_big_out, 53)
    local expected = {}
    for o = 0, n_big_out - 1 do
      local acc = bv[o + 1]
      for i = 1, n_big_in do
        acc = acc + xv[i] * wv[o * n_big_in + i]
      end
      expected[o + 1] = acc
    end
    for _, dtype in ipairs({ "float64", "float32" }) do
      local tolerance = dtype == "float64" and 1e-12 or 1e-5
      local x, b = make(xv, { 1, 1, n_big_in }, dtype), make(bv, { n_big_out }, dtype)
      local w = make(wv, { n_big_out, n_big_in }, dtype)
      assert_close(flat(tc.linear(x, w, b)), expected, tolerance, "one row, row-major weight " .. dtype)
      local w_column_major = w:transpose(1, 2):contiguous():transpose(1, 2)
      assert_close(flat(tc.linear(x, w_column_major, b)), expected, tolerance, "one row, column-major " .. dtype)
    end
  end)

  it("has gradients matching finite differences for x, weight and bias", function()
    local inputs = function()
      return {
        { values = x_values, shape = { rows, n_in }, grad = true },
        { values = w_values, shape = { n_out, n_in }, grad = true },
        { values = b_values, shape = { n_out }, grad = true },
      }
    end
    gradcheck(function(t)
      return tc.linear(t[1], t[2], t[3])
    end, inputs(), "linear")
    gradcheck(function(t)
      return tc.linear_gelu(t[1], t[2], t[3])
    end, inputs(), "linear_gelu")
    gradcheck(function(t)
      return tc.linear(t[1]:reshape({ 1, rows, n_in }), t[2]:transpose(1, 2):contiguous():transpose(1, 2))
    end, { inputs()[1], inputs()[2] }, "linear, 3-D x, column-major weight, no bias")
  end)

  it("refuses mismatched shapes and dtypes, naming them", function()
    local x, w = make(x_values, { rows, n_in }), make(w_values, { n_out, n_in })
    local ok, message = pcall(tc.linear, x, make(w_values, { n_in, n_out }))
    assert.is_false(ok)
    assert.matches("linear: x of shape {5, 4} does not end in in_features 3", message, 1, true)
    ok, message = pcall(tc.linear, x, w, make({ 1, 2 }, { 2 }))
    assert.is_false(ok)
    assert.matches("bias of shape {2}", message, 1, true)
    ok, message = pcall(tc.linear_gelu, x, make(w_values, { n_out, n_in }, "float32"))
    assert.is_false(ok)
    assert.matches("one dtype", message, 1, true)
  end)
end)

describe("the op table", function()
  it("lists the fused ops", function()
    local names = {}
    for _, op in ipairs(tc.ops()) do
      names[op.name or op[1]] = op
    end
    for _, name in ipairs({ "layer_norm", "rms_norm", "attention", "cross_entropy", "adamw_step", "sgd_step",
      "global_norm", "scale_" }) do
      assert.is_not_nil(names[name], name .. " is missing from the op table")
    end
  end)
end)
