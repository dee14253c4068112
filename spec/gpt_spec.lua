-- nn.GPT against an independent plain-Lua GPT (logits, loss, gradients),
-- weight tying, GPT-2 initialisation, the KV cache, training on a fixed
-- text, and errors for bad inputs.
local compat = require("tricycle.compat")
local tc = require("tricycle")
local nn = require("tricycle.nn")
local optim = require("tricycle.optim")
local reference = require("helpers.reference_gpt")

local fused_it = it

local config = { vocab_size = 11, context_length = 6, n_layer = 2, n_head = 2, n_embd = 8 }

local function small_model(overrides)
  local c = {}
  for k, v in pairs(config) do
    c[k] = v
  end
  for k, v in pairs(overrides or {}) do
    c[k] = v
  end
  local model = nn.GPT(c):to("float64")
  -- Random values everywhere (biases and norms included) so that every
  -- parameter matters to the comparison.
  tc.no_grad(function()
    for _, p in ipairs(model:parameters()) do
      p:copy_(tc.randn(p.shape, { dtype = "float64" }) * 0.3 + (p:dim() == 1 and 0.5 or 0))
    end
  end)
  return model
end

local function plain_params(model)
  local result = {}
  for name, t in pairs(model:state_dict()) do
    result[name] = t:totable()
  end
  return result
end

-- the values of a nested table (or a number) in order
local flatten = require("helpers.gradcheck").flatten

local function relative_error(a, b)
  return math.abs(a - b) / math.max(1e-8, math.abs(b))
end

local ids_table = { { 1, 5, 10, 3, 0 }, { 7, 7, 2, 9, 4 } }
local targets_table = { { 5, 10, 3, 0, 6 }, { 7, 2, 9, 4, 1 } }

describe("nn.GPT", function()
  before_each(function()
    tc.manual_seed(3)
  end)

  fused_it("gives the reference's logits, loss and gradients (float64)", function()
    local model = small_model()
    local ids = tc.tensor(ids_table, { dtype = "int64" })
    local targets = tc.tensor(targets_table, { dtype = "int64" })
    local logits, loss = model(ids, { targets = targets })
    assert.are.same({ 2, 5, 11 }, logits.shape)
    local p = plain_params(model)
    local want_logits, want_loss = reference.forward(p, model.config, ids_table, targets_table)
    local got, want = flatten(logits:totable()), flatten(want_logits)
    for i = 1, #want do
      assert.is_true(relative_error(got[i], want[i]) < 1e-4 or math.abs(got[i] - want[i]) < 1e-9,
        ("logit %d: %.10g vs %.10g"):format(i, got[i], want[i]))
    end
    assert.is_true(relative_error(loss:item(), want_loss) < 1e-4)

    loss:backward()
    -- a spread of entries from every parameter tensor, by finite differences
    -- of the reference's own loss
    local checked = 0
    for _, pair in ipairs(model:named_parameters()) do
      local name, tensor = pair[1], pair[2]
      local grad = flatten(tensor.grad:totable())
      local n = #grad
      local picks = { 1, n, compat.idiv((n + 1), 2), (compat.idiv(n, 3)) + 1, (compat.idiv(2 * n, 3)) + 1 }
      for _, i in ipairs(picks) do
        local numeric = reference.numeric_grad(p, model.config, ids_table, targets_table, name, i, 1e-5)
        local ok = math.abs(grad[i] - numeric) <= 1e-4 * math.max(math.abs(numeric), 1e-3)
        assert.is_true(ok, ("%s[%d]: backward %.10g, reference %.10g"):format(name, i, grad[i], numeric))
        checked = checked + 1
      end
    end
    assert.is_true(checked > 100)
  end)

  fused_it("ties the head to the token embedding: one tensor, gradients from both uses", function()
    local model = small_model()
    local names = {}
    for _, pair in ipairs(model:named_parameters()) do
      names[pair[1]] = true
    end
    assert.is_nil(names["lm_head.weight"])
    assert.are.equal(model.wte.weight, model:head_weight())
    -- ids that never use token 6, yet its embedding row gets a gradient
    -- through the head
    local ids = tc.tensor({ { 1, 2, 3 } }, { dtype = "int64" })
    local _, loss = model(ids, { targets = tc.tensor({ { 2, 3, 4 } }, { dtype = "int64" }) })
    loss:backward()
    local row = model.wte.weight.grad:totable()[7]
    local norm = 0
    for _, v in ipairs(row) do
      norm = norm + v * v
    end
    assert.is_true(norm > 0)

    local untied = small_model({ tie_weights = false })
    assert.is_not_nil(untied.lm_head)
    assert.are_not.equal(untied.wte.weight, untied:head_weight())
    assert.are.equal(model:num_parameters() + 11 * 8, untied:num_parameters())
  end)

  it("is initialised like GPT-2", function()
    tc.manual_seed(1)
    local model = nn.GPT({ vocab_size = 256, context_length = 64, n_layer = 4, n_head = 4, n_embd = 64 })
    local function std(t)
      local values = flatten(t:totable())
      local mean, sq = 0, 0
      for _, v in ipairs(values) do
        mean = mean + v
      end
      mean = mean / #values
      for _, v in ipairs(values) do
        sq = sq + (v - mean) ^ 2
      end
      return math.sqrt(sq / #values), mean
    end
    local block = model.h:get(1)
    local s = std(model.wte.weight)
    assert.is_true(math.abs(s - 0.02) < 0.002, "wte std " .. s)
    s = std(block.attn.c_attn.weight)
    assert.is_true(math.abs(s - 0.02) < 0.002, "c_attn std " .. s)
    local residual = 0.02 / math.sqrt(2 * 4)
    s = std(block.mlp.c_proj.weight)
    assert.is_true(math.abs(s - residual) < 0.1 * residual, "mlp.c_proj std " .. s)
    s = std(block.attn.c_proj.weight)
    assert.is_true(math.abs(s - residual) < 0.15 * residual, "attn.c_proj std " .. s)
    for _, v in ipairs(flatten(block.attn.c_attn.bias:totable())) do
      assert.are.equal(0, v)
    end
    for _, v in ipairs(flatten(block.ln_1.weight:totable())) do
      assert.are.equal(1, v)
    end
  end)

  fused_it("accepts any T up to the context and explains longer inputs and bad ids", function()
    local model = small_model()
    for T = 1, 6 do
      local logits = model(tc.zeros({ 1, T }, { dtype = "int64" }))
      assert.are.same({ 1, T, 11 }, logits.shape)
    end
    local ok, message = pcall(model, tc.zeros({ 1, 7 }, { dtype = "int64" }))
    assert.is_false(ok)
    assert.matches("GPT: sequence length T = 7 exceeds context_length 6", message, 1, true)
    ok, message = pcall(model, tc.zeros({ 1, 3 }))
    assert.matches("GPT: ids must be int64 or int32 token ids, got dtype float32", message, 1, true)
    ok, message = pcall(model, tc.zeros({ 3 }, { dtype = "int64" }))
    assert.matches("GPT: ids must be [B, T], got shape {3}", message, 1, true)
    ok, message = pcall(nn.GPT, { vocab_size = 5, context_length = 4, n_layer = 1, n_head = 3, n_embd = 8 })
    assert.matches("not divisible by n_head 3", message, 1, true)
    ok, message = pcall(nn.GPT, { vocab_size = 5, context_length = 4, n_layer = 1, n_head = 2 })
    assert.matches("config.n_embd must be a positive integer", message, 1, true)
  end)

  fused_it("decodes with a KV cache to the same logits as a full recompute", function()
    local model = small_model()
    model:eval()
    local sequence = { { 3, 1, 4, 1, 5, 9 }, { 2, 6, 5, 3, 5, 8 } }
    local full = tc.no_grad(function()
      return model(tc.tensor(sequence, { dtype = "int64" })):totable()
    end)
    local cache = model:new_cache(2)
    assert.are.same({ 2, 2, 6, 4 }, cache.layers[1].k.shape)
    -- a prompt of three, then one token at a time, then the last two at once
    local function chunk(first, last)
      local rows = {}
      for b = 1, 2 do
        rows[b] = { compat.unpack(sequence[b], first, last) }
      end
      return tc.tensor(rows, { dtype = "int64" })
    end
    local pieces = { { 1, 3 }, { 4, 4 }, { 5, 6 } }
    for _, piece in ipairs(pieces) do
      local logits = model(chunk(piece[1], piece[2]), { cache = cache }):totable()
      assert.is_nil(logits.grad_fn)
      for b = 1, 2 do
        for t = piece[1], piece[2] do
          local got, want = logits[b][t - piece[1] + 1], full[b][t]
          for v = 1, #want do
            assert.is_true(math.abs(got[v] - want[v]) < 1e-5,
              ("batch %d position %d vocab %d: %.10g vs %.10g"):format(b, t, v, got[v], want[v]))
          end
        end
      end
    end
    assert.are.equal(6, cache.position)
    local ok, message = pcall(model, chunk(1, 1), { cache = cache })
    assert.is_false(ok)
    assert.matches("exceed context_length 6", message, 1, true)
    ok, message = pcall(model, tc.zeros({ 3, 1 }, { dtype = "int64" }), { cache = model:new_cache(2) })
    assert.matches("the cache holds batch size 2, the input has 3", message, 1, true)
  end)

  fused_it("learns a fixed text: the loss falls well below where it starts", function()
    tc.manual_seed(5)
    local text = "the quick brown fox jumps over the lazy dog. "
    local chars, vocab = {}, {}
    for c in text:gmatch(".") do
      if not vocab[c] then
        chars[#chars + 1] = c
        vocab[c] = #chars - 1
      end
    end
    local ids = {}
    for c in text:rep(3):gmatch(".") do
      ids[#ids + 1] = vocab[c]
    end
    local T, B = 16, 8
    local model = nn.GPT({ vocab_size = #chars, context_length = T, n_layer = 2, n_head = 2, n_embd = 32 })
    local opt = optim.AdamW(model:parameters(), { lr = 1e-2, weight_decay = 0 })
    local function batch(step)
      local x, y = {}, {}
      for b = 1, B do
        local start = (step * 7 + b * 5) % (#text) + 1
        x[b] = { compat.unpack(ids, start, start + T - 1) }
        y[b] = { compat.unpack(ids, start + 1, start + T) }
      end
      return tc.tensor(x, { dtype = "int64" }), tc.tensor(y, { dtype = "int64" })
    end
    local first, last
    for step = 1, 150 do
      local x, y = batch(step)
      local _, loss = model(x, { targets = y })
      opt:zero_grad()
      loss:backward()
      nn.clip_grad_norm(model:parameters(), 1.0)
      opt:step()
      first = first or loss:item()
      last = loss:item()
    end
    assert.is_true(first > 2.5, "starts near log(vocab): " .. first)
    assert.is_true(last < 0.3 * first, ("loss %.3f -> %.3f"):format(first, last))
  end)
end)
