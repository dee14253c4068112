-- tricycle.nn: layers against plain-Lua references, gradient checks in
-- float64, the module system (parameters, state_dict, train/eval, to) and
-- error messages.
local tc = require("tricycle")
local nn = require("tricycle.nn")
local reference = require("helpers.reference_gpt")

local fused_it = it

-- the values of a nested table (or a number) in order
local flatten = require("helpers.gradcheck").flatten

local function assert_close(actual, expected, tolerance, what)
  local a, e = flatten(actual), flatten(expected)
  assert.are.equal(#e, #a, (what or "values") .. ": sizes differ")
  for i = 1, #e do
    local scale = math.max(1, math.abs(e[i]))
    if math.abs(a[i] - e[i]) > tolerance * scale then
      error(("%s: entry %d is %.10g, expected %.10g"):format(what or "values", i, a[i], e[i]), 2)
    end
  end
end

local function set_entry(t, i, value)
  tc.no_grad(function()
    t:view({ t:numel() }):narrow(1, i, 1):fill_(value)
  end)
end

local function get_entry(t, i)
  return t:detach():reshape({ t:numel() })[i]:item()
end

-- Compares the backward of loss_fn (a function returning a 0-dim tensor) to
-- central differences, on every entry of each tensor in `tensors`.
local function gradcheck(loss_fn, tensors, tolerance)
  for _, t in ipairs(tensors) do
    t.grad = nil
  end
  loss_fn():backward()
  for k, t in ipairs(tensors) do
    local grad = flatten(t.grad:totable())
    for i = 1, t:numel() do
      local saved = get_entry(t, i)
      set_entry(t, i, saved + 1e-6)
      local plus = tc.no_grad(loss_fn):item()
      set_entry(t, i, saved - 1e-6)
      local minus = tc.no_grad(loss_fn):item()
      set_entry(t, i, saved)
      local numeric = (plus - minus) / 2e-6
      if math.abs(numeric - grad[i]) > (tolerance or 1e-6) * math.max(1, math.abs(numeric)) then
        error(("gradcheck: tensor %d entry %d: backward %.10g, numeric %.10g"):format(k, i, grad[i], numeric), 2)
      end
    end
  end
end

local function f64(shape, requires_grad)
  return tc.randn(shape, { dtype = "float64", requires_grad = requires_grad })
end

describe("nn layers", function()
  before_each(function()
    tc.manual_seed(7)
  end)

  it("Linear computes x W^T + b with W [out, in] and PyTorch's init range", function()
    local layer = nn.Linear(4, 3, { dtype = "float64" })
    assert.are.same({ 3, 4 }, layer.weight.shape)
    assert.are.same({ 3 }, layer.bias.shape)
    local bound = 1 / math.sqrt(4)
    local values = flatten(layer.weight:totable())
    local distinct = {}
    for _, v in ipairs(values) do
      assert.is_true(math.abs(v) <= bound)
      distinct[v] = true
    end
    assert.is_true(next(distinct, next(distinct)) ~= nil, "weights are not all equal")
    local x = f64({ 2, 5, 4 })
    local y = layer(x)
    assert.are.same({ 2, 5, 3 }, y.shape)
    local W, b, xs = layer.weight:totable(), layer.bias:totable(), x:totable()
    local expected = {}
    for i = 1, 2 do
      expected[i] = {}
      for j = 1, 5 do
        expected[i][j] = reference.linear(xs[i][j], W, b)
      end
    end
    assert_close(y:totable(), expected, 1e-12, "Linear")
    local plain = nn.Linear(4, 3, { bias = false })
    assert.is_nil(plain.bias)
    assert.are.equal(1, #plain:parameters())
  end)

  it("Embedding picks rows by 0-based id and rejects float ids", function()
    local embedding = nn.Embedding(5, 3, { dtype = "float64" })
    local ids = tc.tensor({ { 4, 0 }, { 2, 2 } }, { dtype = "int64" })
    local out = embedding(ids):totable()
    local weight = embedding.weight:totable()
    assert_close(out, { { weight[5], weight[1] }, { weight[3], weight[3] } }, 0, "Embedding")
    local ok, message = pcall(embedding, tc.tensor({ 1, 2 }))
    assert.is_false(ok)
    assert.matches("Embedding: ids must be an int64 or int32 tensor, got float32", message, 1, true)
  end)

  fused_it("LayerNorm and RMSNorm match plain-Lua references", function()
    local ln = nn.LayerNorm(6, { dtype = "float64" })
    local rms = nn.RMSNorm(6, { dtype = "float64" })
    tc.no_grad(function()
      ln.weight:copy_(f64({ 6 }))
      ln.bias:copy_(f64({ 6 }))
      rms.weight:copy_(f64({ 6 }))
    end)
    local x = f64({ 3, 6 })
    local xs, w, b, rw = x:totable(), ln.weight:totable(), ln.bias:totable(), rms.weight:totable()
    local expected_ln, expected_rms = {}, {}
    for i = 1, 3 do
      expected_ln[i] = reference.layer_norm(xs[i], w, b, 1e-5)
      local sum = 0
      for j = 1, 6 do
        sum = sum + xs[i][j] ^ 2
      end
      local inv = 1 / math.sqrt(sum / 6 + 1e-5)
      expected_rms[i] = {}
      for j = 1, 6 do
        expected_rms[i][j] = xs[i][j] * inv * rw[j]
      end
    end
    assert_close(ln(x):totable(), expected_ln, 1e-10, "LayerNorm")
    assert_close(rms(x):totable(), expected_rms, 1e-10, "RMSNorm")
    local no_bias = nn.LayerNorm(6, { bias = false })
    assert.are.equal(1, #no_bias:parameters())
  end)

  it("activations match their formulas", function()
    local x = f64({ 10 })
    local xs = x:totable()
    local relu, silu, exact, approx = {}, {}, {}, {}
    for i, v in ipairs(xs) do
      relu[i] = math.max(v, 0)
      silu[i] = v / (1 + math.exp(-v))
      exact[i] = reference.gelu_exact(v)
      approx[i] = reference.gelu_tanh(v)
    end
    assert_close(nn.ReLU()(x):totable(), relu, 1e-12, "ReLU")
    assert_close(nn.SiLU()(x):totable(), silu, 1e-12, "SiLU")
    assert_close(nn.GELU()(x):totable(), exact, 1e-7, "GELU")
    assert_close(nn.GELU({ approximate = "tanh" })(x):totable(), approx, 1e-10, "GELU tanh")
    assert.has_error(function()
      nn.GELU({ approximate = "fast" })
    end)
  end)

  it("Dropout is the identity in eval mode and with p = 0, and zeroes some entries in training", function()
    local x = tc.ones({ 1000 })
    local drop = nn.Dropout(0.5)
    local trained = drop(x):totable()
    local zeros = 0
    for _, v in ipairs(trained) do
      if v == 0 then
        zeros = zeros + 1
      else
        assert.is_true(math.abs(v - 2) < 1e-6)
      end
    end
    assert.is_true(zeros > 400 and zeros < 600)
    drop:eval()
    assert.are.same(x:totable(), drop(x):totable())
    assert.has_error(function()
      nn.Dropout(1.5)
    end)
  end)

  it("Sequential and MLP chain their children", function()
    local a, b = nn.Linear(3, 4, { dtype = "float64" }), nn.Linear(4, 2, { dtype = "float64" })
    local net = nn.Sequential(a, nn.ReLU(), b)
    local x = f64({ 5, 3 })
    assert_close(net(x):totable(), b(a(x):relu()):totable(), 1e-12, "Sequential")
    local names = {}
    for i, pair in ipairs(net:named_parameters()) do
      names[i] = pair[1]
    end
    assert.are.same({ "1.weight", "1.bias", "3.weight", "3.bias" }, names)
    local mlp = nn.MLP({ 3, 8, 8, 2 })
    assert.are.same({ 7, 2 }, mlp(tc.randn({ 7, 3 })).shape)
    assert.are.equal(3 * 8 + 8 + 8 * 8 + 8 + 8 * 2 + 2, mlp:num_parameters())
  end)
end)

describe("nn gradients (float64)", function()
  before_each(function()
    tc.manual_seed(11)
  end)

  it("Linear", function()
    local layer = nn.Linear(3, 4, { dtype = "float64" })
    local x, r = f64({ 2, 3 }, true), f64({ 2, 4 })
    gradcheck(function()
      return (layer(x) * r):sum()
    end, { layer.weight, layer.bias, x })
  end)

  fused_it("LayerNorm", function()
    local ln = nn.LayerNorm(5, { dtype = "float64" })
    tc.no_grad(function()
      ln.weight:copy_(f64({ 5 }))
      ln.bias:copy_(f64({ 5 }))
    end)
    local x, r = f64({ 3, 5 }, true), f64({ 3, 5 })
    gradcheck(function()
      return (ln(x) * r):sum()
    end, { ln.weight, ln.bias, x })
  end)

  fused_it("RMSNorm", function()
    local rms = nn.RMSNorm(4, { dtype = "float64" })
    tc.no_grad(function()
      rms.weight:copy_(f64({ 4 }))
    end)
    local x, r = f64({ 3, 4 }, true), f64({ 3, 4 })
    gradcheck(function()
      return (rms(x) * r):sum()
    end, { rms.weight, x })
  end)

  it("GELU (both forms) and SiLU", function()
    local x, r = f64({ 7 }, true), f64({ 7 })
    for _, layer in ipairs({ nn.GELU(), nn.GELU({ approximate = "tanh" }), nn.SiLU() }) do
      gradcheck(function()
        return (layer(x) * r):sum()
      end, { x })
    end
  end)

  fused_it("MultiHeadSelfAttention, and it matches a plain-Lua reference", function()
    local attn = nn.MultiHeadSelfAttention({ n_embd = 6, n_head = 2, dtype = "float64" })
    local x, r = f64({ 2, 4, 6 }, true), f64({ 2, 4, 6 })
    local out = attn(x):totable()
    local xs = x:totable()
    local p = {}
    for _, name in ipairs({ "c_attn.weight", "c_attn.bias", "c_proj.weight", "c_proj.bias" }) do
      p[name] = attn:state_dict()[name]:totable()
    end
    local expected = {}
    for b = 1, 2 do
      local qkv = {}
      for t = 1, 4 do
        qkv[t] = reference.linear(xs[b][t], p["c_attn.weight"], p["c_attn.bias"])
      end
      local y = reference.attention(qkv, 2, true)
      expected[b] = {}
      for t = 1, 4 do
        expected[b][t] = reference.linear(y[t], p["c_proj.weight"], p["c_proj.bias"])
      end
    end
    assert_close(out, expected, 1e-10, "attention")
    gradcheck(function()
      return (attn(x) * r):sum()
    end, { attn.c_attn.weight, attn.c_attn.bias, attn.c_proj.weight, x })
  end)

  it("a module used twice in one graph gets the sum of both gradients", function()
    local layer = nn.Linear(3, 3, { dtype = "float64" })
    local x, r = f64({ 2, 3 }), f64({ 2, 3 })
    gradcheck(function()
      return (layer(layer(x)) * r):sum()
    end, { layer.weight, layer.bias })
    -- and it differs from a single use's gradient
    layer:zero_grad()
    ;(layer(x) * r):sum():backward()
    local once = flatten(layer.weight.grad:totable())
    layer:zero_grad()
    ;(layer(layer(x)) * r):sum():backward()
    local twice = flatten(layer.weight.grad:totable())
    local differs = false
    for i = 1, #once do
      differs = differs or math.abs(once[i] - twice[i]) > 1e-9
    end
    assert.is_true(differs)
  end)
end)

describe("nn.Module", function()
  local Pair = nn.Module:extend("Pair")
  function Pair:init()
    self.first = nn.Linear(2, 3)
    self.scale = tc.ones({ 3 }, { requires_grad = true })
    self:add_buffer("count", tc.zeros({ 1 }))
    self.second = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.1))
  end
  function Pair:forward(x)
    return self.second(self.first(x) * self.scale)
  end

  it("names parameters in registration order and counts them", function()
    local m = Pair()
    local names = {}
    for i, pair in ipairs(m:named_parameters()) do
      names[i] = pair[1]
    end
    assert.are.same({ "first.weight", "first.bias", "scale", "second.1.weight", "second.1.bias" }, names)
    assert.are.equal(5, #m:parameters())
    assert.are.equal(2 * 3 + 3 + 3 + 9 + 3, m:num_parameters())
    assert.are.equal(2, #m:children())
    assert.are.same({ 4, 3 }, m(tc.randn({ 4, 2 })).shape)
  end)

  it("lists a shared tensor once", function()
    local Tied = nn.Module:extend("Tied")
    function Tied:init()
      self.a = nn.Linear(3, 3)
      self.b = nn.Linear(3, 3)
      self.b.weight = self.a.weight
    end
    local m = Tied()
    assert.are.equal(3, #m:parameters())
  end)

  it("does not register activations kept on a field as parameters", function()
    local Keep = nn.Module:extend("Keep")
    function Keep:init()
      self.layer = nn.Linear(2, 2)
    end
    function Keep:forward(x)
      self.last = self.layer(x)
      return self.last
    end
    local m = Keep()
    m(tc.randn({ 1, 2 }))
    assert.are.equal(2, #m:parameters())
    assert.is_nil(m:state_dict().last)
  end)

  it("train() and eval() reach every descendant", function()
    local m = Pair()
    assert.is_true(m.second:get(2).training)
    m:eval()
    assert.is_false(m.training)
    assert.is_false(m.second:get(2).training)
    m:train()
    assert.is_true(m.second:get(2).training)
  end)

  it("state_dict holds parameters and buffers; load_state_dict copies in place", function()
    local a, b = Pair(), Pair()
    local sd = a:state_dict()
    assert.is_not_nil(sd.count)
    assert.is_not_nil(sd["second.1.weight"])
    local target = b.first.weight
    tc.no_grad(function()
      sd.count:fill_(5)
    end)
    local result = b:load_state_dict(sd)
    assert.are.same({}, result.missing)
    assert.are.equal(target, b.first.weight, "the same tensor object, updated in place")
    assert.are.same(a.first.weight:totable(), b.first.weight:totable())
    assert.are.same({ 5 }, b.count:totable())
    assert.is_true(b.first.weight.requires_grad)
  end)

  it("load_state_dict lists missing, unexpected and mis-shaped keys in one error", function()
    local m = Pair()
    local sd = {}
    for k, v in pairs(m:state_dict()) do
      sd[k] = v
    end
    sd["first.bias"] = nil
    sd["extra.weight"] = tc.zeros({ 1 })
    sd["scale"] = tc.ones({ 4 })
    local ok, message = pcall(m.load_state_dict, m, sd)
    assert.is_false(ok)
    assert.matches("1 missing key: first.bias", message, 1, true)
    assert.matches("1 unexpected key: extra.weight", message, 1, true)
    assert.matches("1 mis-shaped key: scale (checkpoint {4}, model {3})", message, 1, true)
    -- not strict: missing and unexpected are reported, shapes still checked
    sd["scale"] = tc.full({ 3 }, 2)
    local result = m:load_state_dict(sd, { strict = false })
    assert.are.same({ "first.bias" }, result.missing)
    assert.are.same({ "extra.weight" }, result.unexpected)
    assert.are.same({ 2, 2, 2 }, m.scale:totable())
  end)

  it("load_state_dict of another size: a short summary, and checkpoint.restore names the configs' differences",
    function()
      -- before: every one of the 28 mis-shaped keys, about 1,500 characters, and no hint
      local small = nn.GPT({ vocab_size = 65, context_length = 16, n_layer = 2, n_head = 2, n_embd = 16 })
      local large = nn.GPT({ vocab_size = 50, context_length = 32, n_layer = 2, n_head = 2, n_embd = 32 })
      local ok, message = pcall(large.load_state_dict, large, small:state_dict())
      assert.is_false(ok)
      assert.truthy(message:find("28 mis-shaped keys: wte.weight (checkpoint {65, 16}, model {50, 32}), ", 1, true),
        message)
      assert.truthy(message:find(", and 24 more; build the model from the config the state was saved with", 1, true))
      assert.is_true(#message < 500, #message)
      local saved = { model = small:state_dict(), config = small.config }
      ok, message = pcall(tc.checkpoint.restore, saved, { model = large })
      assert.is_false(ok)
      assert.truthy(message:find(": the checkpoint's has context_length 16 (the model's 32), n_embd 16 "
        .. "(the model's 32), vocab_size 65 (the model's 50); tc.nn.GPT(state.config) builds it", 1, true), message)
      assert.is_nil(message:find("checkpoint.lua", 1, true))
    end)

  it("to() casts every tensor and keeps parameters trainable", function()
    local m = Pair():to("float64")
    for _, p in ipairs(m:parameters()) do
      assert.are.equal("float64", p.dtype)
      assert.is_true(p.requires_grad)
      assert.is_true(p.is_leaf)
    end
    assert.are.equal("float64", m.count.dtype)
    local y = m(tc.randn({ 2, 2 }, { dtype = "float64" })):sum()
    y:backward()
    assert.is_not_nil(m.first.weight.grad)
    m:zero_grad()
    assert.is_nil(m.first.weight.grad)
  end)

  it("gives clear errors for bad inputs", function()
    local layer = nn.Linear(4, 2)
    local ok, message = pcall(layer, tc.randn({ 3, 5 }))
    assert.is_false(ok)
    assert.matches("Linear: input shape {3, 5} does not end in in_features 4", message, 1, true)
    ok, message = pcall(layer, "x")
    assert.matches("Linear: input must be a tensor", message, 1, true)
    ok, message = pcall(nn.Linear, 0, 3)
    assert.matches("Linear: in_features must be a positive integer", message, 1, true)
    ok, message = pcall(nn.MultiHeadSelfAttention, { n_embd = 6, n_head = 4 })
    assert.matches("not divisible", message, 1, true)
  end)
end)

describe("nn losses and clipping", function()
  it("mse_loss is the mean squared difference and checks shapes", function()
    local a, b = f64({ 3, 2 }), f64({ 3, 2 })
    local sa, sb = flatten(a:totable()), flatten(b:totable())
    local sum = 0
    for i = 1, #sa do
      sum = sum + (sa[i] - sb[i]) ^ 2
    end
    assert_close({ nn.mse_loss(a, b):item() }, { sum / #sa }, 1e-12, "mse")
    local ok, message = pcall(nn.mse_loss, a, f64({ 2, 3 }))
    assert.is_false(ok)
    assert.matches("mse_loss: shapes {3, 2} and {2, 3} differ", message, 1, true)
  end)

  fused_it("cross_entropy matches log-softmax by hand and honours ignore_index", function()
    local logits = f64({ 4, 5 })
    local targets = tc.tensor({ 1, 4, -100, 0 }, { dtype = "int64" })
    local rows, want = logits:totable(), { 1, 4, nil, 0 }
    local total, count = 0, 0
    for i = 1, 4 do
      if want[i] then
        local max, s = -math.huge, 0
        for _, v in ipairs(rows[i]) do
          max = math.max(max, v)
        end
        for _, v in ipairs(rows[i]) do
          s = s + math.exp(v - max)
        end
        total = total - (rows[i][want[i] + 1] - max - math.log(s))
        count = count + 1
      end
    end
    assert_close({ nn.cross_entropy(logits, targets):item() }, { total / count }, 1e-10, "cross_entropy")
  end)

  fused_it("clip_grad_norm returns the norm and scales gradients to max_norm", function()
    local a = tc.zeros({ 2 }, { dtype = "float64", requires_grad = true })
    local b = tc.zeros({ 1 }, { dtype = "float64", requires_grad = true })
    local c = tc.zeros({ 1 }, { dtype = "float64", requires_grad = true })
    ;((a * tc.tensor({ 3, 0 }, { dtype = "float64" })):sum() + (b * 4):sum()):backward()
    local norm = nn.clip_grad_norm({ a, b, c }, 1.0)
    assert.is_true(math.abs(norm - 5) < 1e-9)
    assert_close(a.grad:totable(), { 0.6, 0 }, 1e-5, "a.grad")
    assert_close(b.grad:totable(), { 0.8 }, 1e-5, "b.grad")
    assert.is_nil(c.grad)
    local small = nn.clip_grad_norm({ a, b }, 10)
    assert.is_true(math.abs(small - 1) < 1e-5)
    assert_close(a.grad:totable(), { 0.6, 0 }, 1e-5, "unchanged below max_norm")
  end)
end)
