-- tricycle.generate: the sampling rules on hand-made distributions, and
-- generation with the key/value cache against full recomputation.
local compat = require("tricycle.compat")
local generate = require("tricycle.generate")

local function argmax(values)
  local best = 1
  for i = 2, #values do
    if values[i] > values[best] then
      best = i
    end
  end
  return best - 1
end

-- A small deterministic sequence of pseudo-random numbers (not the code under test).
local function lcg(seed)
  local state = seed
  return function()
    state = (state * 1103515245 + 12345) % 2147483648
    return state / 2147483648
  end
end

local function random_logits(n, next_number)
  local logits = {}
  for i = 1, n do
    logits[i] = (next_number() - 0.5) * 8
  end
  return logits
end

describe("sampling rules", function()
  it("top_k = 1 is the argmax whatever the uniform number", function()
    local next_number = lcg(7)
    for _ = 1, 20 do
      local logits = random_logits(50, next_number)
      for _, u in ipairs({ 0, 0.3, 0.999 }) do
        assert.are.equal(argmax(logits), generate.sample(logits, { top_k = 1, temperature = 1.5 }, u))
      end
    end
  end)

  it("temperature 0 is the argmax, and a temperature near 0 draws it too", function()
    local next_number = lcg(11)
    for _ = 1, 20 do
      local logits = random_logits(30, next_number)
      local best = argmax(logits)
      -- keep the runner-up at least 0.05 below, so 1e-4 is "near 0" for these logits
      for i = 1, #logits do
        if i ~= best + 1 and logits[i] > logits[best + 1] - 0.05 then
          logits[i] = logits[best + 1] - 0.05
        end
      end
      assert.are.equal(best, generate.sample(logits, { temperature = 0 }, 0.7))
      for _, u in ipairs({ 0, 0.5, 0.999999 }) do
        assert.are.equal(best, generate.sample(logits, { temperature = 1e-4 }, u))
      end
    end
  end)

  it("temperature 1 keeps the softmax probabilities", function()
    local probs = { 0.1, 0.6, 0.3 }
    local logits = {}
    for i, p in ipairs(probs) do
      logits[i] = math.log(p) + 3
    end
    local candidates = generate.candidates(logits, { temperature = 1 })
    assert.are.equal(3, #candidates)
    local got = {}
    for _, c in ipairs(candidates) do
      got[c[1]] = c[2]
    end
    for i, p in ipairs(probs) do
      assert.is_true(math.abs(got[i - 1] - p) < 1e-12)
    end
    -- highest first
    assert.are.equal(1, candidates[1][1])
    -- the inverse CDF: u below 0.6 picks id 1, then id 2 up to 0.9, then id 0
    assert.are.equal(1, generate.sample(logits, {}, 0.59))
    assert.are.equal(2, generate.sample(logits, {}, 0.61))
    assert.are.equal(2, generate.sample(logits, {}, 0.89))
    assert.are.equal(0, generate.sample(logits, {}, 0.91))
  end)

  it("top_p keeps the smallest set of most likely tokens reaching p, renormalised", function()
    local probs = { 0.05, 0.5, 0.15, 0.3 } -- ids 0..3; by probability: 1, 3, 2, 0
    local logits = {}
    for i, p in ipairs(probs) do
      logits[i] = math.log(p)
    end
    local kept = generate.candidates(logits, { top_p = 0.75 })
    assert.are.equal(2, #kept)
    assert.are.equal(1, kept[1][1])
    assert.are.equal(3, kept[2][1])
    assert.is_true(math.abs(kept[1][2] - 0.5 / 0.8) < 1e-12)
    assert.is_true(math.abs(kept[2][2] - 0.3 / 0.8) < 1e-12)
    kept = generate.candidates(logits, { top_p = 0.9 })
    assert.are.equal(3, #kept)
    assert.are.equal(2, kept[3][1])
    kept = generate.candidates(logits, { top_p = 0.2 })
    assert.are.equal(1, #kept)
    assert.are.equal(1, kept[1][1])
    -- never draws a token outside the kept set
    for _, u in ipairs({ 0, 0.25, 0.5, 0.75, 0.9999 }) do
      local id = generate.sample(logits, { top_p = 0.75 }, u)
      assert.is_true(id == 1 or id == 3)
    end
  end)

  it("top_k keeps the k most likely, then top_p applies within them", function()
    local probs = { 0.05, 0.5, 0.15, 0.3 }
    local logits = {}
    for i, p in ipairs(probs) do
      logits[i] = math.log(p)
    end
    local kept = generate.candidates(logits, { top_k = 3 })
    assert.are.equal(3, #kept)
    assert.is_true(math.abs(kept[1][2] - 0.5 / 0.95) < 1e-12)
    kept = generate.candidates(logits, { top_k = 3, top_p = 0.5 })
    -- within the top 3, 0.5/0.95 = 0.526 already reaches 0.5
    assert.are.equal(1, #kept)
  end)
end)

-- Generation with a real model, once tricycle.nn's GPT is available.
local has_model = pcall(function()
  local tc = require("tricycle")
  tc.manual_seed(0)
  local model = tc.nn.GPT({ vocab_size = 11, context_length = 8, n_layer = 1, n_head = 2, n_embd = 8, dropout = 0 })
  model:eval()
  local cache = model:new_cache(1)
  model:forward(tc.tensor({ { 1, 2 } }, { dtype = "int64" }), { cache = cache })
end)
local model_it = has_model and it or pending

describe("sampling in C (tc.sample_logits)", function()
  local tc = require("tricycle")

  it("picks the same id as generate.sample for every rule and uniform number", function()
    local next_number = lcg(99)
    local settings = {
      {}, { temperature = 0.7 }, { top_k = 5 }, { top_p = 0.8 }, { top_k = 8, top_p = 0.5, temperature = 1.3 },
      { temperature = 0 }, { top_k = 1 }, { top_p = 0.01 },
    }
    local compared = 0
    for _, n in ipairs({ 1, 2, 17, 65 }) do
      local logits = random_logits(n, next_number)
      logits[n] = logits[1] -- a tie: the lower id comes first
      local tensor = tc.tensor(logits)
      for _, options in ipairs(settings) do
        for _ = 1, 25 do
          local u = next_number()
          local expected = generate.sample(logits, options, u)
          local got = tc.sample_logits(tensor, u, options.temperature, options.top_k, options.top_p)
          assert.are.equal(expected, got)
          compared = compared + 1
        end
      end
    end
    assert.are.equal(4 * #settings * 25, compared)
  end)
end)

describe("generate with a model", function()
  local tc
  local function tiny_model(seed, context)
    tc = require("tricycle")
    tc.manual_seed(seed)
    local model = tc.nn.GPT({ vocab_size = 13, context_length = context or 16, n_layer = 2, n_head = 2, n_embd = 16,
      dropout = 0 })
    model:eval()
    return model
  end

  model_it("with the key/value cache equals full recomputation for the same seed", function()
    local model = tiny_model(3)
    for _, options in ipairs({
      { temperature = 1.0 }, { temperature = 0.7, top_k = 5 }, { temperature = 1.3, top_p = 0.9 }, { temperature = 0 },
    }) do
      local cached_options, full_options = {}, {}
      for k, v in pairs(options) do
        cached_options[k], full_options[k] = v, v
      end
      cached_options.max_tokens, full_options.max_tokens = 12, 12
      cached_options.seed, full_options.seed = 42, 42
      full_options.use_cache = false
      local a = generate(model, { 1, 2, 3 }, cached_options)
      local b = generate(model, { 1, 2, 3 }, full_options)
      assert.are.equal(12, #a)
      assert.are.same(b, a)
    end
  end)

  model_it("greedy generation picks the argmax of a full forward at every step", function()
    local model = tiny_model(5)
    local ids = generate(model, { 4, 5 }, { max_tokens = 6, temperature = 0 })
    local sequence = { 4, 5 }
    for step = 1, 6 do
      local logits = tc.no_grad(function()
        return model(tc.tensor({ sequence }, { dtype = "int64" }))
      end)
      local last = logits:select(1, 1):select(1, #sequence):totable()
      local expected = argmax(last)
      assert.are.equal(expected, ids[step])
      sequence[#sequence + 1] = expected
    end
  end)

  model_it("stop_ids ends the generation after the first stop id, returned with the others", function()
    local model = tiny_model(7)
    local free, free_info = generate(model, { 1, 2 }, { max_tokens = 30, seed = 4 })
    assert.is_false(free_info.stopped)
    local stop = free[5]
    local first = 5
    for i = 1, 4 do
      if free[i] == stop then first = i break end
    end
    local ids, info = generate(model, { 1, 2 }, { max_tokens = 30, seed = 4, stop_ids = { 99, stop } })
    assert.is_true(info.stopped)
    assert.are.equal(first, #ids)
    for i = 1, first do assert.are.equal(free[i], ids[i]) end
  end)

  model_it("the same seed gives the same text, another seed (usually) another", function()
    local model = tiny_model(9)
    local a = generate(model, { 1 }, { max_tokens = 20, seed = 1 })
    local b = generate(model, { 1 }, { max_tokens = 20, seed = 1 })
    local c = generate(model, { 1 }, { max_tokens = 20, seed = 2 })
    assert.are.same(a, b)
    assert.are_not.same(a, c)
    for _, id in ipairs(a) do
      assert.is_true(id >= 0 and id < 13)
    end
  end)

  model_it("crops a long prompt from the left and goes on past the context", function()
    local model = tiny_model(2, 8)
    local prompt = {}
    for i = 1, 11 do
      prompt[i] = i % 13
    end
    local seen = {}
    local ids, info = generate(model, prompt, {
      max_tokens = 30, seed = 4, on_token = function(id) seen[#seen + 1] = id end,
    })
    assert.are.equal(3, info.cropped)
    assert.are.equal(8, info.prompt_length)
    assert.are.equal(30, #ids)
    assert.are.same(ids, seen)
    -- with greedy decoding the cropped prompt gives what its last 8 tokens give
    local cropped_prompt = { compat.unpack(prompt, 4) }
    assert.are.same(generate(model, cropped_prompt, { max_tokens = 5, temperature = 0 }),
      (generate(model, prompt, { max_tokens = 5, temperature = 0 })))
  end)

  model_it("leaves the model in training mode when it was", function()
    local model = tiny_model(1)
    model:train()
    generate(model, { 1 }, { max_tokens = 2 })
    assert.is_true(model.training)
  end)

  model_it("with a seed, leaves the caller's random stream where it was", function()
    local model = tiny_model(6)
    tc.manual_seed(123)
    tc.rand({ 3 }) -- move the stream off its start
    local seed, offset = tc.rng_state()
    local expected = tc.rand({ 4 }):totable()
    tc.set_rng_state(seed, offset)
    generate(model, { 1 }, { max_tokens = 5, seed = 7 })
    assert.are.same({ seed, offset }, { tc.rng_state() })
    assert.are.same(expected, tc.rand({ 4 }):totable())
    -- also when generation fails part way
    tc.set_rng_state(seed, offset)
    local ok = pcall(generate, model, { 1 }, { max_tokens = 5, seed = 7, on_token = function() error("stop") end })
    assert.is_false(ok)
    assert.are.same({ seed, offset }, { tc.rng_state() })
  end)

  model_it("names an unknown option and lists the valid ones", function()
    local model = tiny_model(1)
    local ok, message = pcall(generate, model, { 1 }, { max_token = 5 })
    assert.is_false(ok)
    assert.matches("generate: unknown option 'max_token' (valid: max_tokens, ", message, 1, true)
    assert.matches("use_cache", message, 1, true)
  end)
end)
