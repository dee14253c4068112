-- tricycle.models.gpt2: Hugging Face GPT-2 layout to and from nn.GPT.
local tc = require("tricycle")
local nn = require("tricycle.nn")
local gpt2 = require("tricycle.models.gpt2")

local fused_it = it
local files_it = it

local V, T, C, L, H = 13, 8, 8, 2, 2

-- the values of a nested table (or a number) in order
local flatten = require("helpers.gradcheck").flatten

local function randn(shape)
  return tc.randn(shape, { dtype = "float64" }) * 0.2
end

-- Transposes a 2-D Lua table.
local function transposed(rows)
  local out = {}
  for i = 1, #rows[1] do
    out[i] = {}
    for j = 1, #rows do
      out[i][j] = rows[j][i]
    end
  end
  return out
end

-- A GPT-2 state as Hugging Face's GPT2LMHeadModel saves it: "transformer."
-- prefix, Conv1D weights [in, out], mask buffers, blocks from 0. Also the
-- same weights under our own names, built independently of the loader.
local function make_states()
  local hf, native = {}, {}
  local function both(hf_name, native_name, tensor, conv1d)
    hf["transformer." .. hf_name] = tensor
    native[native_name] = conv1d and tc.tensor(transposed(tensor:totable()), { dtype = "float64" }) or tensor
  end
  both("wte.weight", "wte.weight", randn({ V, C }))
  both("wpe.weight", "wpe.weight", randn({ T, C }))
  for i = 0, L - 1 do
    local h, n = "h." .. i .. ".", "h." .. (i + 1) .. "."
    both(h .. "ln_1.weight", n .. "ln_1.weight", randn({ C }) + 1)
    both(h .. "ln_1.bias", n .. "ln_1.bias", randn({ C }))
    both(h .. "attn.c_attn.weight", n .. "attn.c_attn.weight", randn({ C, 3 * C }), true)
    both(h .. "attn.c_attn.bias", n .. "attn.c_attn.bias", randn({ 3 * C }))
    both(h .. "attn.c_proj.weight", n .. "attn.c_proj.weight", randn({ C, C }), true)
    both(h .. "attn.c_proj.bias", n .. "attn.c_proj.bias", randn({ C }))
    both(h .. "ln_2.weight", n .. "ln_2.weight", randn({ C }) + 1)
    both(h .. "ln_2.bias", n .. "ln_2.bias", randn({ C }))
    both(h .. "mlp.c_fc.weight", n .. "mlp.c_fc.weight", randn({ C, 4 * C }), true)
    both(h .. "mlp.c_fc.bias", n .. "mlp.c_fc.bias", randn({ 4 * C }))
    both(h .. "mlp.c_proj.weight", n .. "mlp.c_proj.weight", randn({ 4 * C, C }), true)
    both(h .. "mlp.c_proj.bias", n .. "mlp.c_proj.bias", randn({ C }))
    hf["transformer." .. h .. "attn.bias"] = tc.ones({ 1, 1, T, T })
    hf["transformer." .. h .. "attn.masked_bias"] = tc.tensor(-1e4)
  end
  both("ln_f.weight", "ln_f.weight", randn({ C }) + 1)
  both("ln_f.bias", "ln_f.bias", randn({ C }))
  hf["lm_head.weight"] = hf["transformer.wte.weight"]
  return hf, native
end

local function assert_same_logits(a, b, ids)
  local x, y = flatten(a(ids):totable()), flatten(b(ids):totable())
  assert.are.equal(#x, #y)
  for i = 1, #x do
    assert.is_true(math.abs(x[i] - y[i]) < 1e-9, ("logit %d: %.12g vs %.12g"):format(i, x[i], y[i]))
  end
end

describe("models.gpt2", function()
  before_each(function()
    tc.manual_seed(21)
  end)

  fused_it("loads a Hugging Face state and gives the logits of the same weights under our names", function()
    local hf, native = make_states()
    local loaded = gpt2.from_hf_state(hf, { n_head = H }):to("float64")
    assert.are.same({ vocab_size = V, context_length = T, n_layer = L, n_head = H, n_embd = C },
      { vocab_size = loaded.config.vocab_size, context_length = loaded.config.context_length,
        n_layer = loaded.config.n_layer, n_head = loaded.config.n_head, n_embd = loaded.config.n_embd })
    assert.are.equal("tanh", loaded.config.gelu)
    local direct = nn.GPT({ vocab_size = V, context_length = T, n_layer = L, n_head = H, n_embd = C }):to("float64")
    direct:load_state_dict(native)
    local ids = tc.tensor({ { 0, 12, 5, 5, 3, 1, 7, 2 } }, { dtype = "int64" })
    assert_same_logits(loaded, direct, ids)
    -- and the weights are not trivially equal to a fresh model's
    local fresh = nn.GPT({ vocab_size = V, context_length = T, n_layer = L, n_head = H, n_embd = C }):to("float64")
    local a, b = flatten(fresh(ids):totable()), flatten(direct(ids):totable())
    assert.is_true(math.abs(a[1] - b[1]) > 1e-6)
  end)

  fused_it("to_hf_state writes the Hugging Face layout, and loading it back is exact", function()
    local _, native = make_states()
    local model = nn.GPT({ vocab_size = V, context_length = T, n_layer = L, n_head = H, n_embd = C }):to("float64")
    model:load_state_dict(native)
    local hf = gpt2.to_hf_state(model)
    assert.are.same({ C, 3 * C }, hf["h.0.attn.c_attn.weight"].shape)
    assert.are.same({ 4 * C, C }, hf["h.1.mlp.c_proj.weight"].shape)
    assert.is_nil(hf["h.2.ln_1.weight"])
    local back = gpt2.from_hf_state(hf, { n_head = H }):to("float64")
    for name, tensor in pairs(model:state_dict()) do
      assert.are.same(tensor:totable(), back:state_dict()[name]:totable(), name)
    end
  end)

  it("explains a state that is not GPT-2 or does not fit", function()
    local ok, message = pcall(gpt2.from_hf_state, { ["foo.weight"] = tc.zeros({ 2 }) })
    assert.is_false(ok)
    assert.matches("no wte.weight or wpe.weight", message, 1, true)
    local hf = make_states()
    hf["transformer.h.1.mlp.c_fc.bias"] = nil
    hf["transformer.h.0.extra"] = tc.zeros({ 1 })
    ok, message = pcall(gpt2.from_hf_state, hf, { n_head = H })
    assert.is_false(ok)
    assert.matches("unexpected keys: h.0.extra", message, 1, true)
    assert.matches("missing keys: h.1.mlp.c_fc.bias", message, 1, true)
    local bad = make_states()
    bad["transformer.h.0.attn.c_proj.weight"] = tc.zeros({ C, C + 1 })
    ok, message = pcall(gpt2.from_hf_state, bad, { n_head = H })
    assert.is_false(ok)
    assert.matches("h.0.attn.c_proj.weight (checkpoint {8, 9}, model {8, 8})", message, 1, true)
  end)

  files_it("export then load through a safetensors file round-trips", function()
    local _, native = make_states()
    local model = nn.GPT({ vocab_size = V, context_length = T, n_layer = L, n_head = H, n_embd = C }):to("float64")
    model:load_state_dict(native)
    local path = os.tmpname()
    gpt2.export(model, path)
    local back = gpt2.load(path, { n_head = H }):to("float64")
    os.remove(path)
    assert_same_logits(model, back, tc.tensor({ { 1, 2, 3, 4 } }, { dtype = "int64" }))
  end)

  files_it("export stores the config in the metadata, and load uses it", function()
    -- heads of 4 (not GPT-2's 64), a non-default eps and the exact GELU: none can be read from shapes
    local config = { vocab_size = V, context_length = T, n_layer = 1, n_head = 2, n_embd = C, eps = 1e-3,
      gelu = "none" }
    local model = nn.GPT(config):to("float64")
    local path = os.tmpname()
    gpt2.export(model, path)
    local _, metadata = tc.load(path)
    assert.are.equal("pt", metadata.format)
    assert.are.equal("2", metadata.n_head)
    assert.are.equal("1", metadata.n_layer)
    local back = gpt2.load(path)
    for key, value in pairs(config) do
      assert.are.equal(value, back.config[key], key)
    end
    assert_same_logits(model, back:to("float64"), tc.tensor({ { 1, 2, 3, 4 } }, { dtype = "int64" }))
    -- an explicit config that agrees is fine; one that disagrees names both values
    assert.are.equal(2, gpt2.load(path, { n_head = 2, dtype = "float64" }).config.n_head)
    local ok, message = pcall(gpt2.load, path, { n_head = 4 })
    assert.is_false(ok)
    assert.matches("config.n_head = 4 conflicts with n_head = 2 in the metadata", message, 1, true)
    -- a file without our metadata (as Hugging Face writes it) still loads, guessing n_head
    tc.save(path, gpt2.to_hf_state(model), { format = "pt" })
    local ok_guess, guessed = pcall(gpt2.load, path)
    assert.is_false(ok_guess) -- n_embd 8 is not a multiple of 64: the guess fails and says so
    assert.matches("give config.n_head", guessed, 1, true)
    assert.are.equal(2, gpt2.load(path, { n_head = 2 }).config.n_head)
    os.remove(path)
  end)
end)
