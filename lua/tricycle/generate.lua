--- tricycle.generate: sampling text from a causal language model.
--
--   local ids, info = tc.generate(model, tok:encode("ROMEO:"), {
--     max_tokens = 200, temperature = 0.8, top_k = 40, top_p = 0.95, seed = 1,
--     on_token = function(id) io.write(tok:decode({id})); io.flush() end,
--   })
--
-- Returns the generated ids (0-based, the prompt not included) and
-- info = {cropped = number of prompt tokens dropped from the left,
-- prompt_length = tokens of prompt used}.
--
-- With use_cache (the default) the prompt is run once to fill the model's
-- key/value cache, then each step runs one token. When the cache is full,
-- the last context_length/2 tokens are run again into a fresh cache (a
-- slide), so generation can go on past the context. Without the cache every
-- step runs the last context_length tokens again.
--
-- stop_ids (a list of ids, such as a model's end-of-text tokens) ends the
-- generation after the first of them is produced; it is returned with the
-- others, and info.stopped is true.
--
-- temperature 0 or top_k 1 is greedy (argmax). Otherwise draws use the
-- engine's RNG (tc.rand), seeded with tc.manual_seed(seed) when a seed is given.
--
-- Every option, the model and the prompt are checked before anything runs:
-- a NaN or infinite number, a value out of its range or of the wrong type,
-- an unknown key, an id outside the vocabulary are errors naming them.
local compat = require("tricycle.compat")
local core = require("tricycle.core")
local check_options_keys = require("tricycle.options").check_options

local M = {}

local function is_finite(x)
  return type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge
end

-- The sampling options, each a finite value in its range: NaN compares false
-- with every bound, so a plain `t < 0` test would let it through and the
-- draw would silently fall on the last candidate.
local function check_sampling(name, options, level)
  local t = options.temperature
  if t ~= nil and not (is_finite(t) and t >= 0) then
    error(("%s: temperature must be a finite number >= 0 (0 is greedy), got %s"):format(name, tostring(t)), level)
  end
  local k = options.top_k
  if k ~= nil and (not compat.is_integer(k) or k < 0) then
    error(("%s: top_k must be a non-negative integer (0 is off), got %s"):format(name, tostring(k)), level)
  end
  local p = options.top_p
  if p ~= nil and not (is_finite(p) and p > 0 and p <= 1) then
    error(("%s: top_p must be a number in (0, 1], got %s"):format(name, tostring(p)), level)
  end
end

--- Turns logits (a Lua table, index i = id i - 1) into the candidate list
-- of {id, probability}, highest first, after temperature, top-k and top-p.
-- Greedy settings give one candidate with probability 1. Logits may be
-- -inf (never drawn), not NaN or +inf, and not all -inf.
function M.candidates(logits, options)
  if options ~= nil and type(options) ~= "table" then
    error(("generate: options must be a table, got %s"):format(type(options)), 2)
  end
  options = options or {}
  check_options_keys("generate", options, { "temperature", "top_k", "top_p" }, 2)
  check_sampling("generate", options, 3)
  local temperature = options.temperature
  if temperature == nil then
    temperature = 1
  end
  local top_k, top_p = options.top_k, options.top_p
  if type(logits) ~= "table" then
    error(("generate: logits must be a Lua list of numbers, got %s"):format(type(logits)), 2)
  end
  local V = #logits
  if V == 0 then
    error("generate: empty logits", 2)
  end
  local finite = false
  for i = 1, V do
    local l = logits[i]
    if type(l) ~= "number" or l ~= l or l == math.huge then
      error(("generate: logit %d (id %d) is %s; logits must be numbers, not NaN or +inf"):format(i, i - 1,
        tostring(l)), 2)
    end
    finite = finite or l ~= -math.huge
  end
  if not finite then
    error("generate: every logit is -inf; there is nothing to draw", 2)
  end
  -- candidates sorted by logit, ties by lower id (so greedy = argmax, first of equals)
  local order = {}
  for i = 1, V do
    order[i] = i
  end
  local greedy = temperature <= 0 or top_k == 1
  if greedy then
    local best = 1
    for i = 2, V do
      if logits[i] > logits[best] then
        best = i
      end
    end
    return { { best - 1, 1.0 } }
  end
  table.sort(order, function(a, b)
    local la, lb = logits[a], logits[b]
    if la ~= lb then
      return la > lb
    end
    return a < b
  end)
  local keep = V
  if top_k and top_k > 0 and top_k < V then
    keep = top_k
  end
  local top = logits[order[1]]
  local weights, total = {}, 0
  for r = 1, keep do
    local w = math.exp((logits[order[r]] - top) / temperature)
    weights[r] = w
    total = total + w
  end
  if top_p and top_p < 1 then
    -- the smallest prefix whose probability reaches top_p (at least one token)
    local cumulative, cut = 0, keep
    for r = 1, keep do
      cumulative = cumulative + weights[r] / total
      if cumulative >= top_p then
        cut = r
        break
      end
    end
    keep = cut
    total = 0
    for r = 1, keep do
      total = total + weights[r]
    end
  end
  local result = {}
  for r = 1, keep do
    result[r] = { order[r] - 1, weights[r] / total }
  end
  return result
end

--- Picks an id from logits with a uniform number u in [0, 1).
function M.sample(logits, options, u)
  if not (is_finite(u) and u >= 0 and u < 1) then
    error(("generate: the uniform number u must be in [0, 1), got %s"):format(tostring(u)), 2)
  end
  local candidates = M.candidates(logits, options)
  if #candidates == 1 then
    return candidates[1][1]
  end
  local cumulative = 0
  for r = 1, #candidates do
    cumulative = cumulative + candidates[r][2]
    if u < cumulative then
      return candidates[r][1]
    end
  end
  return candidates[#candidates][1]
end

-- ids[first..last] as a [1, T] int64 tensor on `device`.
local function ids_tensor(ids, first, last, device)
  local row = {}
  for i = first, last do
    row[#row + 1] = ids[i]
  end
  local t = core.tensor({ row }, { dtype = "int64" })
  if device ~= "cpu" then
    t = t:to(device)
  end
  return t
end

-- Where the model's parameters are ("cpu" when it has none).
local function model_device(model)
  local parameters = type(model.parameters) == "function" and model:parameters() or {}
  return parameters[1] and parameters[1].device or "cpu"
end

--- The last position's logits of a [1, T, V] tensor (a view).
local function last_logits(logits)
  return logits:select(1, 1):select(1, logits:size(2))
end

local function check_options(options)
  if options ~= nil and type(options) ~= "table" then
    error("generate: options must be a table, got " .. type(options), 3)
  end
  options = options or {}
  local max_tokens = options.max_tokens or 100
  if not compat.is_integer(max_tokens) or max_tokens < 0 then
    error("generate: max_tokens must be a non-negative integer, got " .. tostring(options.max_tokens), 3)
  end
  check_sampling("generate", options, 4)
  if options.seed ~= nil and not compat.is_integer(options.seed) then
    error("generate: seed must be an integer, got " .. tostring(options.seed), 3)
  end
  local on_token = options.on_token
  if on_token ~= nil and type(on_token) ~= "function"
    and not (type(getmetatable(on_token)) == "table" and getmetatable(on_token).__call) then
    error("generate: on_token must be a function, got " .. type(on_token), 3)
  end
  if options.use_cache ~= nil and type(options.use_cache) ~= "boolean" then
    error("generate: use_cache must be a boolean, got " .. tostring(options.use_cache), 3)
  end
  local stops = {}
  if options.stop_ids ~= nil then
    if type(options.stop_ids) ~= "table" or getmetatable(options.stop_ids) == core.Tensor then
      error("generate: stop_ids must be a Lua table of 0-based ids, got " .. type(options.stop_ids), 3)
    end
    for i, id in ipairs(options.stop_ids) do
      if not compat.is_integer(id) or id < 0 then
        error(("generate: stop_ids[%d] is %s; ids are non-negative integers"):format(i, tostring(id)), 3)
      end
      stops[id] = true
    end
  end
  return options, max_tokens, stops
end

-- The model must be callable as a causal LM with a context length (and a
-- cache when one is used); the prompt a list of integer ids it knows.
local function check_model_and_prompt(model, prompt_ids, use_cache)
  if type(model) ~= "table" or type(model.forward) ~= "function" then
    error("generate: model must be a module with forward (an nn.GPT or nn.Llama), got " .. type(model), 3)
  end
  local config = type(model.config) == "table" and model.config or {}
  local context = config.context_length or config.max_position_embeddings
  if not compat.is_integer(context) or context <= 0 then
    error("generate: model.config.context_length (or max_position_embeddings) must be a positive integer, got "
      .. tostring(context), 3)
  end
  if use_cache and type(model.new_cache) ~= "function" then
    error("generate: use_cache needs a model with new_cache (an nn.GPT or nn.Llama); pass use_cache = false", 3)
  end
  if type(prompt_ids) ~= "table" or getmetatable(prompt_ids) == core.Tensor then
    error("generate: prompt_ids must be a Lua table of 0-based ids, got " .. type(prompt_ids), 3)
  end
  if #prompt_ids == 0 then
    error("generate: the prompt needs at least one token", 3)
  end
  local vocab = compat.is_integer(config.vocab_size) and config.vocab_size or compat.max_integer
  for i = 1, #prompt_ids do
    local id = prompt_ids[i]
    if not compat.is_integer(id) or id < 0 or id >= vocab then
      error(("generate: prompt id %d is %s; ids are integers from 0 to vocab_size - 1 (%s)"):format(i,
        tostring(id), tostring(vocab - 1)), 3)
    end
  end
  return context
end

--- generate(model, prompt_ids, options) -> ids, info (see the top of this file).
function M.generate(model, prompt_ids, options)
  check_options_keys("generate", options,
    { "max_tokens", "temperature", "top_k", "top_p", "seed", "on_token", "use_cache", "stop_ids" })
  local max_tokens, stops
  options, max_tokens, stops = check_options(options)
  local context = check_model_and_prompt(model, prompt_ids, options.use_cache ~= false)
  -- a seed draws from its own stream: the caller's (training) stream is put back at the end
  local caller_seed, caller_offset
  if options.seed ~= nil then
    caller_seed, caller_offset = core.rng_state()
    core.manual_seed(options.seed)
  end
  local use_cache = options.use_cache ~= false
  local device = model_device(model)

  local sequence = {}
  local cropped = math.max(0, #prompt_ids - context)
  for i = cropped + 1, #prompt_ids do
    sequence[#sequence + 1] = prompt_ids[i]
  end
  local info = { cropped = cropped, prompt_length = #sequence, stopped = false }

  local was_training = model.training
  if model.eval then
    model:eval()
  end
  local generated = {}
  local grad_was_enabled = core.is_grad_enabled()
  core.set_grad_enabled(false)
  local ok, failure = pcall(function()
    local cache, logits
    -- a cache no longer than this generation needs (models with long contexts)
    local capacity = math.min(context, #sequence + max_tokens)
    if use_cache then
      cache = model:new_cache(1, capacity)
      logits = last_logits(model:forward(ids_tensor(sequence, 1, #sequence, device), { cache = cache }))
    else
      local first = math.max(1, #sequence - context + 1)
      logits = last_logits(model:forward(ids_tensor(sequence, first, #sequence, device)))
    end
    for step = 1, max_tokens do
      local u = 0
      local greedy = options.temperature == 0 or options.top_k == 1
      if not greedy then
        u = core.rand({ 1 }):item()
      end
      -- M.sample's rules, run in C on the logits tensor (the same id for the same u)
      local id = core.sample_logits(logits, u, options.temperature, options.top_k, options.top_p)
      sequence[#sequence + 1] = id
      generated[step] = id
      if options.on_token then
        options.on_token(id)
      end
      if stops[id] then
        info.stopped = true
        break
      end
      if step == max_tokens then
        break
      end
      if use_cache then
        if cache.position >= capacity then
          -- slide: keep the most recent half of the context
          local keep = math.max(1, compat.idiv(context, 2))
          cache = model:new_cache(1, capacity)
          local recent = ids_tensor(sequence, #sequence - keep + 1, #sequence, device)
          logits = last_logits(model:forward(recent, { cache = cache }))
        else
          logits = last_logits(model:forward(ids_tensor(sequence, #sequence, #sequence, device), { cache = cache }))
        end
      else
        local first = math.max(1, #sequence - context + 1)
        logits = last_logits(model:forward(ids_tensor(sequence, first, #sequence, device)))
      end
    end
  end)
  core.set_grad_enabled(grad_was_enabled)
  if was_training and model.train then
    model:train()
  end
  if caller_seed ~= nil then
    core.set_rng_state(caller_seed, caller_offset)
  end
  if not ok then
    error(failure, 0)
  end
  return generated, info
end

return setmetatable(M, {
  __call = function(_, ...)
    return M.generate(...)
  end,
})
