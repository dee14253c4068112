-- The fused ops (layer norm, RMS norm, attention, cached attention,
-- cross-entropy, AdamW, SGD, global norm, scale_, linear): what is not about
-- one case of one op, and so not in the op list (spec/op_cases.lua, which
-- holds their forward values against plain-Lua references and their
-- gradients against finite differences): bad inputs named in the errors,
-- the same bits at 1 and 2 threads, and the memory attention keeps for its
-- backward.
local tc = require("tricycle")

local B, T, C, H = 2, 3, 4, 2

local function make(values, shape, dtype)
  return tc.tensor(values, { dtype = dtype or "float64" }):reshape(shape)
end

-- Deterministic pseudo-random values in [-1, 1) from a Lua LCG.
local function random_values(n, seed)
  local state = seed or 12345
  local out = {}
  for i = 1, n do
    state = (state * 1103515245 + 12345) % 2147483648
    out[i] = state / 1073741824 - 1
  end
  return out
end

describe("layer_norm", function()
  local x_values = random_values(B * T * C, 1)

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

  it("refuses a weight of the wrong shape", function()
    local ok, message = pcall(tc.rms_norm, make(x_values, { B, T, C }), make({ 1, 2 }, { 2 }))
    assert.is_false(ok)
    assert.matches("rms_norm: weight of shape {2} does not match x of shape {2, 3, 4}", message, 1, true)
  end)
end)

describe("attention", function()
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
  it("refuses lists of different lengths", function()
    local params = { tc.zeros({ 2 }), tc.zeros({ 3 }) }
    local ok, message = pcall(tc.adamw_steps, params, { tc.zeros({ 2 }), tc.zeros({ 3 }) },
      { tc.zeros({ 2 }), tc.zeros({ 3 }) }, { tc.zeros({ 2 }) }, { 1, 1 }, { lr = 1e-2 })
    assert.is_false(ok)
    assert.matches("vs has 1 entries but params has 2", message, 1, true)
  end)
end)

describe("sgd_step", function()
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
  it("refuse what is not a float tensor, naming it", function()
    local ok, message = pcall(tc.global_norm, { make({ 3, 4 }, { 2 }), 3 })
    assert.is_false(ok)
    assert.matches("global_norm: entry 2 of the list must be a tensor, got number", message, 1, true)
    ok, message = pcall(tc.scale_, tc.zeros({ 2 }, { dtype = "int64" }), 2)
    assert.is_false(ok)
    assert.matches("scale_: t must be float32 or float64", message, 1, true)
  end)
end)

describe("linear and linear_gelu", function()
  local rows, n_in, n_out = 5, 4, 3
  local x_values = random_values(rows * n_in, 21)
  local w_values = random_values(n_out * n_in, 22)

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
