-- Options tables: a key a function does not know is an error naming the key
-- and listing the valid ones, never an option silently left at its default.
local tc = require("tricycle")
local nn = require("tricycle.nn")
local data = require("tricycle.data")
local check_options = require("tricycle.options").check_options

-- The message of calling fn(...), which must fail.
local function failure(fn, ...)
  local ok, message = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(message)
end

describe("options", function()
  it("check_options names the key and lists the valid ones, sorted", function()
    local message = failure(check_options, "f", { b = 1, typo = 2 }, { "b", "a" })
    assert.matches("f: unknown option 'typo' (valid: a, b)", message, 1, true)
    assert.matches("f: unknown option [1]", failure(check_options, "f", { 5 }, { "a" }), 1, true)
    local options = { a = 1 }
    assert.are.equal(options, check_options("f", options, { "a" }))
    assert.is_nil(check_options("f", nil, { "a" }))
  end)

  it("tensor creation rejects unknown options", function()
    local cases = {
      { "zeros", function(o) return tc.zeros({ 2 }, o) end },
      { "ones", function(o) return tc.ones({ 2 }, o) end },
      { "empty", function(o) return tc.empty({ 2 }, o) end },
      { "rand", function(o) return tc.rand({ 2 }, o) end },
      { "randn", function(o) return tc.randn(2, 3, o) end },
      { "full", function(o) return tc.full({ 2 }, 1.5, o) end },
      { "arange", function(o) return tc.arange(0, 4, o) end },
      { "tensor", function(o) return tc.tensor({ 1, 2 }, o) end },
    }
    for _, case in ipairs(cases) do
      local name, make = case[1], case[2]
      assert.are.equal("float64", make({ dtype = "float64", requires_grad = false }).dtype, name)
      local message = failure(make, { dtyp = "float64" })
      assert.matches(name .. ": unknown option 'dtyp' (valid: dtype, requires_grad)", message, 1, true)
      assert.matches("unknown option key of type number", failure(make, { "float64" }), 1, true)
    end
  end)

  it("CausalLMDataset rejects unknown options, in split too", function()
    local tokens = {}
    for i = 1, 64 do
      tokens[i] = i % 7
    end
    local good = { tokens = tokens, context_length = 4, batch_size = 2, seed = 1, split = { train = 0.5 } }
    assert.are.equal(4, data.CausalLMDataset(good).context_length)
    local message = failure(data.CausalLMDataset, { tokens = tokens, context_length = 4, batch_size = 2,
      batchsize = 3 })
    assert.matches("CausalLMDataset: unknown option 'batchsize' (valid: batch_size, context_length, ", message, 1,
      true)
    message = failure(data.CausalLMDataset, { tokens = tokens, context_length = 4, batch_size = 2,
      split = { training = 0.5 } })
    assert.matches("CausalLMDataset: split: unknown option 'training' (valid: train)", message, 1, true)
    local ds = data.CausalLMDataset(good)
    message = failure(ds.evaluation_batches, ds, { max_batch = 1 })
    assert.matches("unknown option 'max_batch' (valid: batch_size, max_batches, split)", message, 1, true)
  end)

  it("layer constructors reject unknown options", function()
    assert.matches("Linear: unknown option 'biass' (valid: bias, dtype)",
      failure(nn.Linear, 2, 3, { biass = false }), 1, true)
    assert.matches("Embedding: unknown option 'bias' (valid: dtype)", failure(nn.Embedding, 4, 3, { bias = false }),
      1, true)
    assert.matches("LayerNorm: unknown option 'epsilon' (valid: bias, dtype, eps)",
      failure(nn.LayerNorm, 4, { epsilon = 1e-6 }), 1, true)
    assert.matches("RMSNorm: unknown option 'bias' (valid: dtype, eps)", failure(nn.RMSNorm, 4, { bias = false }),
      1, true)
    assert.matches("GELU: unknown option 'approx' (valid: approximate)", failure(nn.GELU, { approx = "tanh" }), 1,
      true)
    assert.matches("MLP: unknown option 'activations' (valid: activation, bias, dtype)",
      failure(nn.MLP, { 2, 3 }, { activations = nn.ReLU }), 1, true)
    -- the options they do know still work
    assert.is_nil(nn.Linear(2, 3, { bias = false, dtype = "float64" }).bias)
    assert.are.equal(1e-6, nn.LayerNorm(4, { eps = 1e-6 }).eps)
  end)

  it("GPT and the transformer parts reject unknown config keys", function()
    local config = { vocab_size = 7, context_length = 4, n_layer = 1, n_head = 2, n_embd = 4, n_heads = 4 }
    local message = failure(nn.GPT, config)
    assert.matches("GPT: unknown option 'n_heads' (valid: ", message, 1, true)
    assert.matches("n_head, n_layer", message, 1, true)
    assert.matches("TransformerBlock: unknown option 'dropuot'",
      failure(nn.TransformerBlock, { n_embd = 4, n_head = 2, dropuot = 0.1 }), 1, true)
    config.n_heads = nil
    assert.are.equal(2, nn.GPT(config).config.n_head)
  end)
end)
