--- Text generation spread across frames: start(prompt) runs the prompt
-- through the model (filling its key/value cache), then each update(budget)
-- adds tokens one at a time until the frame's time budget or token cap is
-- spent, so no frame waits for a whole answer. The same sampling rules and
-- sliding window as tc.generate, one token per step.
local Writer = {}
Writer.__index = Writer

--- options: temperature (0.8), top_k, tokens_per_frame (4), max_tokens (400).
function Writer.new(tc, model, tokenizer, options)
  options = options or {}
  require("tricycle.options").check_options("Writer.new", options,
    { "temperature", "top_k", "tokens_per_frame", "max_tokens" })
  return setmetatable({
    tc = tc, model = model, tokenizer = tokenizer, context = model.config.context_length,
    temperature = options.temperature or 0.8, top_k = options.top_k,
    tokens_per_frame = options.tokens_per_frame or 4, max_tokens = options.max_tokens or 400,
    prompt = "", generated = "", pending = "", count = 0, running = false,
  }, Writer)
end

local function ids_tensor(tc, ids, first, last)
  local row = {}
  for i = first, last do
    row[#row + 1] = ids[i]
  end
  return tc.tensor({ row }, { dtype = "int64" })
end

local function last_logits(logits)
  return logits:select(1, 1):select(1, logits:size(2))
end

-- Runs fn with grad mode off (generation builds no graph), putting it back
-- even when fn fails.
local function without_grad(tc, fn)
  local previous = tc.is_grad_enabled()
  tc.set_grad_enabled(false)
  local ok, failure = pcall(fn)
  tc.set_grad_enabled(previous)
  if not ok then
    error(failure, 0)
  end
end

function Writer:start(prompt)
  if prompt == "" then
    prompt = "\n"
  end
  local ids = self.tokenizer:encode(prompt)
  if #ids == 0 then
    error("Writer:start: the prompt encodes to no tokens", 2)
  end
  local first = math.max(1, #ids - self.context + 1)
  self.sequence = {}
  for i = first, #ids do
    self.sequence[#self.sequence + 1] = ids[i]
  end
  self.prompt, self.generated, self.pending, self.count = prompt, "", "", 0
  without_grad(self.tc, function()
    self.cache = self.model:new_cache(1)
    self.logits = last_logits(self.model:forward(ids_tensor(self.tc, self.sequence, 1, #self.sequence),
      { cache = self.cache }))
  end)
  self.running = true
end

-- One token: sample it, show it, feed it back (sliding the window to its
-- most recent half when the context is full).
function Writer:step()
  local tc = self.tc
  local u = tc.rand({ 1 }):item()
  local id = tc.sample_logits(self.logits, u, self.temperature, self.top_k)
  local sequence = self.sequence
  sequence[#sequence + 1] = id
  self.count = self.count + 1
  local complete
  complete, self.pending = require("tricycle.tokenizer").split_incomplete_utf8(
    self.pending .. self.tokenizer:decode_bytes({ id }))
  self.generated = self.generated .. complete
  if self.count >= self.max_tokens then
    self.running = false
    return
  end
  if self.cache.position >= self.context then
    local keep = math.max(1, math.floor(self.context / 2))
    self.cache = self.model:new_cache(1)
    self.logits = last_logits(self.model:forward(ids_tensor(tc, sequence, #sequence - keep + 1, #sequence),
      { cache = self.cache }))
  else
    self.logits = last_logits(self.model:forward(ids_tensor(tc, sequence, #sequence, #sequence),
      { cache = self.cache }))
  end
end

--- Adds tokens until budget_seconds have passed or tokens_per_frame were
-- made; returns how many were made.
function Writer:update(budget_seconds, clock)
  if not self.running then
    return 0
  end
  local start, made = clock(), 0
  without_grad(self.tc, function()
    while self.running and made < self.tokens_per_frame and clock() - start < budget_seconds do
      self:step()
      made = made + 1
    end
  end)
  return made
end

return Writer
