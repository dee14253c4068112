-- bfloat16 and float16 through the op list: every floating case of
-- spec/op_cases.lua runs again with 16-bit inputs against float32 on the
-- same values (spec/helpers/op_runner.lua, runner.half_tests); the ops
-- without a 16-bit path must refuse by name, and docs/API.md lists them.
local tc = require("tricycle")
local runner = require("helpers.op_runner")
local rows = require("op_cases")

-- The ops that refuse 16-bit tensors (docs/API.md, "bfloat16 and float16").
local REFUSING = require("helpers.half_refusing")

describe("ops on 16-bit inputs", function()
  for _, test in ipairs(runner.half_tests("cpu", rows, REFUSING, { other = "cpu" })) do
    it(test.group .. ": " .. test.name, test.run)
  end
end)

describe("docs/API.md", function()
  it("lists every op that refuses 16-bit tensors", function()
    local f = assert(io.open("docs/API.md", "rb"))
    local text = f:read("a")
    f:close()
    local paragraph = text:match("\nNo 16%-bit path(.-)\n\n")
    assert.is_not_nil(paragraph, "docs/API.md has no \"No 16-bit path\" paragraph")
    for name in pairs(REFUSING) do
      assert.truthy(paragraph:find("`" .. name .. "`", 1, true), name .. " is not listed")
    end
  end)
end)

local function bits_of(t) -- the raw 16-bit patterns, through a safetensors file
  local path = os.tmpname()
  tc.save(path, { t = t })
  local f = assert(io.open(path, "rb"))
  local bytes = f:read("a")
  f:close()
  os.remove(path)
  local n = t:numel()
  local data, result = bytes:sub(-2 * n), {}
  for i = 1, n do result[i] = data:byte(2 * i - 1) + 256 * data:byte(2 * i) end
  return result
end

describe("bfloat16 and float16 tensors", function()
  it("have names, aliases, sizes and methods", function()
    assert.are.equal("bfloat16", tc.ones({ 2 }, { dtype = "bf16" }).dtype)
    assert.are.equal("float16", tc.ones({ 2 }, { dtype = "half" }).dtype)
    assert.are.equal("bfloat16", tc.ones({ 2 }):bfloat16().dtype)
    assert.are.equal("float16", tc.ones({ 2 }):half().dtype)
    assert.are.equal("float32", tc.ones({ 2 }):half():float().dtype)
    assert.are.equal("bfloat16", tc.rand({ 3 }, { dtype = "bfloat16" }).dtype)
    assert.is_true(tc.ones({ 2 }, { dtype = "bfloat16", requires_grad = true }).requires_grad)
  end)

  it("round to nearest even, once, with Inf, NaN and float16's subnormals", function()
    local b = tc.tensor({ 1 + 2 ^ -8, 1 + 3 * 2 ^ -8, 1 + 2 ^ -8 + 2 ^ -40, 3.4e38, -1 / 0, 0 / 0 },
      { dtype = "bfloat16" })
    local v = b:totable()
    assert.are.same({ 1, 1 + 2 ^ -6, 1 + 2 ^ -7, 1 / 0, -1 / 0 }, { v[1], v[2], v[3], v[4], v[5] })
    assert.is_true(v[6] ~= v[6])
    local h = tc.tensor({ 65504, 65519, 65520, 2 ^ -24, 2 ^ -25, 3 * 2 ^ -25, -0.0 }, { dtype = "float16" })
    assert.are.same({ 65504, 65504, 1 / 0, 2 ^ -24, 0, 2 ^ -23, 0 }, h:totable())
    assert.are.same({ 0x7bff, 0x7bff, 0x7c00, 0x0001, 0x0000, 0x0002, 0x8000 }, bits_of(h))
    assert.are.equal(0x7fc0, bits_of(tc.tensor({ 0 / 0 }):abs():bfloat16())[1])
    assert.are.equal(1 + 2 ^ -7, tc.tensor({ 1 + 2 ^ -8 + 2 ^ -40 }, { dtype = "float64" }):bfloat16():item())
  end)

  it("convert to and from every dtype", function()
    local x = tc.tensor({ -2.5, 0, 1, 300 }, { dtype = "bfloat16" })
    assert.are.same({ -2, 0, 1, 300 }, x:to("int64"):totable())
    assert.are.same({ 0, 0, 1, 255 }, x:to("uint8"):totable()) -- saturating, as from float32
    assert.are.same({ true, false, true, true }, x:to("bool"):totable())
    assert.are.same({ -2.5, 0, 1, 300 }, x:to("float16"):totable())
    assert.are.same({ -2.5, 0, 1, 300 }, x:double():totable())
    assert.are.same({ 1, 0 }, tc.tensor({ true, false }):bfloat16():totable())
    -- an int64 rounds once: 2^24 + 2^16 + 1 is above the tie between 2^24 and 2^24 + 2^17
    local wide = tc.tensor({ 16777216 + 65536 + 1, 3 }, { dtype = "int64" })
    assert.are.same({ 16777216 + 131072, 3 }, wide:bfloat16():totable())
  end)

  it("promote: 16-bit with float32 gives float32, bfloat16 with float16 gives float32", function()
    local b, h = tc.ones({ 2 }, { dtype = "bfloat16" }), tc.ones({ 2 }, { dtype = "float16" })
    assert.are.equal("bfloat16", (b + b).dtype)
    assert.are.equal("float32", (b + tc.ones({ 2 })).dtype)
    assert.are.equal("float64", (h + tc.ones({ 2 }, { dtype = "float64" })).dtype)
    assert.are.equal("float32", (b + h).dtype)
    assert.are.equal("bfloat16", (b + tc.ones({ 2 }, { dtype = "int64" })).dtype)
    assert.are.equal("float16", (h * 2.5).dtype)
  end)

  it("print with their dtype", function()
    assert.truthy(tostring(tc.tensor({ 1.5, 0 / 0 }, { dtype = "float16" })):find("dtype=float16", 1, true))
  end)

  it("round-trip through safetensors as BF16 and F16, bit for bit, eager and lazy", function()
    local path = os.tmpname()
    local b = tc.randn({ 3, 5 }, { dtype = "bfloat16" })
    local h = tc.tensor({ 0 / 0, 1 / 0, 2 ^ -24, -65504 }, { dtype = "float16" })
    tc.save(path, { b = b, h = h })
    local f = assert(io.open(path, "rb"))
    local header = f:read("a")
    f:close()
    assert.truthy(header:find('"dtype":"BF16"', 1, true))
    assert.truthy(header:find('"dtype":"F16"', 1, true))
    local loaded = tc.load(path)
    assert.are.equal("bfloat16", loaded.b.dtype)
    assert.are.equal("float16", loaded.h.dtype)
    assert.are.same(bits_of(b), bits_of(loaded.b))
    assert.are.same(bits_of(h), bits_of(loaded.h))
    local handle = tc.safetensors_open(path)
    assert.are.same(bits_of(b), bits_of(handle:get("b")))
    assert.are.equal("float16", handle:get("h").dtype)
    handle:close()
    os.remove(path)
  end)

  it("Module:to converts parameters in place and keeps them floating", function()
    local layer = tc.nn.Linear(3, 2)
    local weight = layer.weight
    local before = layer.weight:detach():clone()
    layer:to("bfloat16")
    assert.are.equal(weight, layer.weight) -- the same Lua object
    assert.are.equal("bfloat16", layer.weight.dtype)
    assert.are.equal("bfloat16", layer.bias.dtype)
    assert.is_true(layer.weight.requires_grad)
    assert.are.same(before:bfloat16():totable(), layer.weight:totable())
    local y = layer(tc.ones({ 4, 3 }))
    assert.are.equal("float32", y.dtype)
    y:sum():backward()
    assert.are.equal("bfloat16", layer.weight.grad.dtype)
    layer:to("half")
    assert.are.equal("float16", layer.weight.dtype)
  end)

  it("GPT and Llama with 16-bit weights generate, close to float32", function()
    tc.manual_seed(3)
    local gpt = tc.nn.GPT({ vocab_size = 40, context_length = 16, n_layer = 2, n_head = 2, n_embd = 16 })
    gpt:eval()
    local ids = tc.tensor({ { 1, 2, 3, 4, 5 } }, { dtype = "int64" })
    local reference = tc.no_grad(function() return gpt(ids) end)
    gpt:to("bfloat16")
    local logits = tc.no_grad(function() return gpt(ids) end)
    assert.are.equal("float32", logits.dtype)
    assert.is_true((logits - reference):abs():max():item() < 0.05 * reference:abs():max():item())
    local cached = gpt:new_cache(1)
    assert.are.equal("float32", cached.layers[1].k.dtype)
    local tokens = tc.generate(gpt, { 1, 2, 3 }, { max_tokens = 6, temperature = 0 })
    local uncached = tc.generate(gpt, { 1, 2, 3 }, { max_tokens = 6, temperature = 0, use_cache = false })
    assert.are.same(uncached, tokens)
    local llama = tc.nn.Llama({ vocab_size = 40, hidden_size = 16, intermediate_size = 32, num_hidden_layers = 2,
      num_attention_heads = 2, max_position_embeddings = 16, dtype = "float16" })
    assert.are.equal("float16", llama.embed_tokens.weight.dtype)
    assert.are.equal(6, #tc.generate(llama, { 1, 2 }, { max_tokens = 6, temperature = 0 }))
  end)

  it("models.llama keeps a BF16 folder's weights in bfloat16 when asked", function()
    local llama = require("tricycle.models.llama")
    local folder = "spec/fixtures/llama/tiny_qwen2"
    local model = llama.load(folder, { dtype = "bfloat16" })
    assert.are.equal("bfloat16", model.embed_tokens.weight.dtype)
    local reference = llama.load(folder)
    assert.are.equal("float32", reference.embed_tokens.weight.dtype)
    -- the file's values exactly: float32 holds every bfloat16
    assert.are.same(reference.embed_tokens.weight:totable(), model.embed_tokens.weight:float():totable())
    local ids = tc.tensor({ { 1, 2, 3 } }, { dtype = "int64" })
    local a, b = model(ids), reference(ids)
    assert.is_true((a - b):abs():max():item() < 1e-3 * (1 + b:abs():max():item()))
  end)
end)
