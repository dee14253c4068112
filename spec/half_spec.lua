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

describe("16-bit products (the backend's gemm_16bit)", function()
  -- Values k/8, |k| <= 8: exact in both formats, their products and sums
  -- exact in float32 in any order, so a 16-bit result must be the float32
  -- product of the widened operands rounded once, bit for bit, whichever way
  -- the CPU splits the product over its threads, packs op(b) or reads a
  -- transposed or broadcast operand.
  local function exact(shape, dtype)
    return ((tc.rand(shape) * 17):floor() - 8):div(8):to(dtype)
  end
  local function same(expected, actual, what)
    assert.are.equal(expected.dtype, actual.dtype, what)
    assert.are.same(expected:float():totable(), actual:float():totable(), what)
  end

  for _, dtype in ipairs({ "bfloat16", "float16" }) do
    it("give the widened float32 product rounded once (" .. dtype .. ")", function()
      local threads = tc.num_threads()
      tc.set_num_threads(2)
      tc.manual_seed(23)
      local shapes = {
        { { 300, 64 }, { 64, 40 } },       -- tall: rows split, op(b) packed once for both threads
        { { 20, 64 }, { 64, 700 } },       -- wide: columns split
        { { 4, 40, 64 }, { 4, 64, 50 } },  -- a batch split over the matrices
        { { 4, 40, 64 }, { 64, 50 } },     -- one b for the whole batch (stride 0)
        { { 7, 13 }, { 13, 1 } },          -- one column
      }
      for _, shape in ipairs(shapes) do
        local a, b = exact(shape[1], dtype), exact(shape[2], dtype)
        local what = ("%s {%s} @ {%s}"):format(dtype, table.concat(shape[1], ", "),
          table.concat(shape[2], ", "))
        same(a:float():matmul(b:float()):to(dtype), a:matmul(b), what)
        local at, bt = a:transpose(-1, -2):contiguous():transpose(-1, -2), b:transpose(-1, -2):contiguous()
        same(a:float():matmul(b:float()):to(dtype), at:matmul(bt:transpose(-1, -2)), what .. ", transposed reads")
      end
      local x, w, bias = exact({ 300, 64 }, dtype), exact({ 40, 64 }, dtype), exact({ 40 }, dtype)
      same(tc.linear(x:float(), w:float(), bias:float()):to(dtype), tc.linear(x, w, bias), dtype .. " linear")
      tc.set_num_threads(threads)
    end)

    it("run linear's gradients on 16-bit operands, each rounded once (" .. dtype .. ")", function()
      tc.manual_seed(29)
      local x, w = exact({ 33, 24 }, dtype), exact({ 10, 24 }, dtype)
      local bias, g = exact({ 10 }, dtype), exact({ 33, 10 }, dtype)
      local leaves = { x:clone():requires_grad_(), w:clone():requires_grad_(), bias:clone():requires_grad_() }
      local out = tc.linear(leaves[1], leaves[2], leaves[3])
      assert.are.equal(dtype, out.dtype)
      out:backward(g)
      local gf, wf, xf = g:float(), w:float(), x:float()
      same(gf:matmul(wf):to(dtype), leaves[1].grad, dtype .. " dx")
      same(gf:transpose(1, 2):matmul(xf):to(dtype), leaves[2].grad, dtype .. " dw")
      same(gf:sum(1):to(dtype), leaves[3].grad, dtype .. " db")
    end)
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
