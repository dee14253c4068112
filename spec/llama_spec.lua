-- nn.Llama and tricycle.models.llama against PyTorch: the reference logits,
-- loss and gradients of spec/fixtures/llama (written by make_reference.py
-- there), with the key/value cache and without; checkpoints read and
-- written back; the checks on configs, caches and checkpoints.
local tc = require("tricycle")
local nn = require("tricycle.nn")
local llama = require("tricycle.models.llama")
local scratch = require("helpers.scratch")

local FIXTURES = "spec/fixtures/llama"
local reference = tc.load(FIXTURES .. "/reference.safetensors")
local ids, targets = reference.ids, reference.targets

-- Random token ids in [0, 20), int64.
local function random_ids(shape)
  return (tc.rand(shape) * 20):to("int64") -- truncation: floor of values >= 0
end

local function max_difference(a, b)
  return (a:to("float64") - b:to("float64")):abs():max():item()
end

-- |a - b| <= atol + rtol |b| everywhere, with the worst excess in the message.
local function assert_close(what, a, b, atol, rtol)
  assert.are.same(b.shape, a.shape, what .. ": shapes differ")
  local a64, b64 = a:to("float64"), b:to("float64")
  local excess = ((a64 - b64):abs() - b64:abs() * rtol - atol):max():item()
  assert.is_true(excess <= 0, ("%s: differs by up to %g past the tolerance (max difference %g)"):format(what,
    excess, max_difference(a, b)))
end

-- Our gradient of a Hugging Face weight: qkv_proj's rows split as q | k | v.
local function hf_gradients(model)
  local state = {}
  for _, pair in ipairs(model:named_parameters()) do
    state[pair[1]] = pair[2].grad
  end
  local fake = { config = model.config, state_dict = function() return state end }
  return llama.to_hf_state(fake)
end

for _, case in ipairs({
  { name = "tiny_llama", what = "Llama with grouped queries and Llama 3's rope scaling, F32" },
  { name = "tiny_qwen2", what = "Qwen2-style, q/k/v biases, multi-query, tied head, BF16 shards" },
}) do
  describe("models.llama " .. case.name .. " (" .. case.what .. ")", function()
    local folder = FIXTURES .. "/" .. case.name
    local logits_ref, loss_ref = reference[case.name .. ".logits"], reference[case.name .. ".loss"]

    it("loads and gives PyTorch's logits and loss (float32)", function()
      local model = llama.load(folder)
      assert.are.equal("float32", model.config.dtype)
      local logits, loss = model(ids, { targets = targets })
      assert_close("logits", logits, logits_ref, 2e-5, 2e-5)
      assert_close("loss", loss:reshape({ 1 }), loss_ref, 1e-5, 1e-5)
    end)

    it("gives PyTorch's gradient of every weight", function()
      local model = llama.load(folder, { dtype = "float64" })
      local _, loss = model(ids, { targets = targets })
      loss:backward()
      local grads, count = hf_gradients(model), 0
      for name, tensor in pairs(reference) do
        local weight = name:match("^" .. case.name .. "%.grad%.(.+)$")
        if weight then
          count = count + 1
          assert.is_not_nil(grads[weight], "no gradient for " .. weight)
          assert_close("gradient of " .. weight, grads[weight], tensor, 1e-6, 1e-5)
        end
      end
      assert.is_true(count >= 20, "only " .. count .. " gradients in the reference")
    end)

    it("gives the same logits through the key/value cache, a prompt then one token at a time", function()
      local model = llama.load(folder)
      local T = ids:size(2)
      local cache = model:new_cache(2, T)
      local pieces = { model(ids:narrow(2, 1, 4), { cache = cache }) }
      for t = 5, T do
        pieces[#pieces + 1] = model(ids:narrow(2, t, 1), { cache = cache })
      end
      assert.are.equal(T, cache.position)
      assert_close("cached logits", tc.cat(pieces, 2), logits_ref, 2e-5, 2e-5)
    end)

    it("writes a folder that loads back to the same model", function()
      scratch.in_dir(function(dir)
        local model = llama.load(folder)
        llama.save(model, dir)
        local again = llama.load(dir)
        assert.are.equal(0, max_difference(again(ids), model(ids)))
        local original = llama.to_hf_state(model)
        local written = tc.load(dir .. "/model.safetensors")
        for name, tensor in pairs(original) do
          assert.are.equal(0, max_difference(written[name], tensor), name)
        end
        local config = tc.io.json_decode(tc.io.read_file(dir .. "/config.json"))
        assert.are.equal(model.config.num_key_value_heads, config.num_key_value_heads)
        assert.are.equal(model.config.tie_word_embeddings, config.tie_word_embeddings)
      end)
    end)
  end)
end

describe("nn.Llama", function()
  local small = { vocab_size = 20, hidden_size = 16, intermediate_size = 24, num_hidden_layers = 2,
    num_attention_heads = 4, num_key_value_heads = 2, max_position_embeddings = 12, dtype = "float64" }

  local function config(changes)
    local result = {}
    for k, v in pairs(small) do result[k] = v end
    for k, v in pairs(changes or {}) do result[k] = v end
    return result
  end

  it("trains: the loss falls on a repeated batch", function()
    tc.manual_seed(3)
    local model = nn.Llama(config({ dtype = "float32" }))
    local batch = random_ids({ 2, 8 })
    local optimizer = tc.optim.AdamW(model:parameters(), { lr = 1e-2 })
    local first, last
    for step = 1, 20 do
      local _, loss = model(batch, { targets = batch })
      optimizer:zero_grad()
      loss:backward()
      optimizer:step()
      if step == 1 then first = loss:item() end
      last = loss:item()
    end
    assert.is_true(last < first - 1, ("loss went from %g to %g"):format(first, last))
  end)

  it("samples with tc.generate, the cache giving the same greedy tokens as without it", function()
    tc.manual_seed(4)
    local model = nn.Llama(config())
    local with = tc.generate(model, { 1, 2, 3 }, { max_tokens = 20, temperature = 0 })
    local without = tc.generate(model, { 1, 2, 3 }, { max_tokens = 20, temperature = 0, use_cache = false })
    assert.are.equal(20, #with)
    -- past 12 positions both slide their windows in their own way; the first 9 tokens see the same context
    for i = 1, 9 do assert.are.equal(without[i], with[i]) end
  end)

  it("equals multi-head attention over repeated k/v heads", function()
    tc.manual_seed(5)
    local grouped = nn.Llama(config({ num_key_value_heads = 1 }))
    local full = nn.Llama(config({ num_key_value_heads = 4 }))
    local state = grouped:state_dict()
    for i = 1, 2 do
      local name = "layers." .. i .. ".self_attn.qkv_proj.weight"
      local w = state[name]
      local q, k, v = w:narrow(1, 1, 16), w:narrow(1, 17, 4), w:narrow(1, 21, 4)
      state[name] = tc.cat({ q, k, k, k, k, v, v, v, v }, 1)
    end
    full:load_state_dict(state)
    local batch = random_ids({ 2, 6 })
    assert.is_true(max_difference(grouped(batch), full(batch)) < 1e-12)
  end)

  it("rope_scaling changes only what it should: positions beyond the first differ", function()
    tc.manual_seed(6)
    local plain = nn.Llama(config())
    local scaled = nn.Llama(config({ rope_scaling = { rope_type = "llama3", factor = 8, low_freq_factor = 1,
      high_freq_factor = 4, original_max_position_embeddings = 8 } }))
    scaled:load_state_dict(plain:state_dict())
    local batch = random_ids({ 1, 6 })
    local a, b = plain(batch), scaled(batch)
    assert.is_true(max_difference(a:narrow(2, 1, 1), b:narrow(2, 1, 1)) < 1e-12) -- position 0 turns nothing
    assert.is_true(max_difference(a, b) > 1e-6)
  end)
end)

describe("models.llama.load_tokenizer", function()
  local hf_files = require("helpers.hf_files")

  -- A folder holding the package's tokenizer files and a config.json naming eos ids.
  local function with_folder(model, config_text, body)
    local path, why = hf_files.tokenizer_json(model)
    if not path then
      pending("no " .. model .. " tokenizer.json: " .. why)
      return
    end
    scratch.in_dir(function(dir)
      local q = scratch.shell_quote
      assert.is_true(os.execute(("cp %s %s/"):format(q(path), q(dir))) ~= false)
      local config_source = path:gsub("tokenizer%.json$", "tokenizer_config.json")
      os.execute(("cp %s %s/ 2>/dev/null"):format(q(config_source), q(dir)))
      scratch.write(dir .. "/config.json", config_text)
      body(dir)
    end)
  end

  it("gives Llama 2's <s> as the prefix (its template) and config.json's eos", function()
    with_folder("llama2", '{"eos_token_id": 2}', function(dir)
      local tok, info = llama.load_tokenizer(dir)
      assert.are.same({ 1 }, info.prefix_ids)
      assert.are.same({ 2 }, info.stop_ids)
      assert.are.equal("Hello", tok:decode(tok:encode("Hello")))
    end)
  end)

  it("puts nothing before Qwen3's prompts and reads a list of eos ids", function()
    with_folder("qwen3", '{"eos_token_id": [151645, 151643]}', function(dir)
      local _, info = llama.load_tokenizer(dir)
      assert.are.same({}, info.prefix_ids)
      assert.are.same({ 151645, 151643 }, info.stop_ids)
    end)
  end)

  it("follows tokenizer_config.json's add_bos_token when the template adds nothing", function()
    with_folder("llama3", '{}', function(dir)
      local tok, info = llama.load_tokenizer(dir)
      assert.are.same({}, info.prefix_ids) -- this copy's post-processor is ByteLevel alone
      scratch.write(dir .. "/tokenizer_config.json", '{"add_bos_token": true, "bos_token": "<|begin_of_text|>"}')
      tok, info = llama.load_tokenizer(dir)
      assert.are.same({ tok:token_id("<|begin_of_text|>") }, info.prefix_ids)
      assert.are.equal(128000, info.prefix_ids[1])
    end)
  end)

  it("names a folder without tokenizer.json", function()
    scratch.in_dir(function(dir)
      local ok, err = pcall(llama.load_tokenizer, dir)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("llama.load_tokenizer: '" .. dir .. "' holds no tokenizer.json", 1, true),
        tostring(err))
    end)
  end)
end)
