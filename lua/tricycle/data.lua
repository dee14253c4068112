--- tricycle.data: tokenizers and a dataset of random windows for causal
-- language modelling.
--
--   local data = require("tricycle.data")
--   local tok = data.CharTokenizer.new(text)
--   local ds = data.CausalLMDataset{tokens = tok:encode(text), context_length = 128,
--                                   batch_size = 32, seed = 1, split = {train = 0.9}}
--   for x, y in ds:batches(1000) do ... end        -- x, y: int64 [B, T], y is x shifted by one
--   for x, y in ds:evaluation_batches() do ... end -- every validation window, once
--
-- Randomness: the window offsets come from the dataset's own counter-based
-- stream (a SplitMix64-style hash of (seed, counter)), not from the engine's
-- RNG, so drawing batches never moves the model's random stream (dropout,
-- initialisation, sampling) and the other way round. The stream's whole
-- state is {seed, counter}: `ds:state()` / `ds:set_state(s)` resume it
-- exactly. Offsets are drawn directly (uniform over every valid start), so
-- no permutation of all offsets is ever built.
--
-- Memory: the tokens live in one int32 (or int64) tensor; after
-- construction there is no Lua value per token.
local core = require("tricycle.core")
local tokenizer = require("tricycle.tokenizer")
local check_options = require("tricycle.options").check_options

local M = {
  BPETokenizer = tokenizer.BPETokenizer,
  CharTokenizer = tokenizer.CharTokenizer,
}

local Tensor = core.Tensor

--- SplitMix64 finaliser over (seed, counter): a well-mixed 64-bit integer.
-- Lua integers wrap modulo 2^64, which is exactly the arithmetic it needs.
local function mix64(seed, counter)
  local z = seed * 0x9E3779B97F4A7C15 + (counter + 1) * 0xBF58476D1CE4E5B9
  z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
  z = (z ~ (z >> 27)) * 0x94D049BB133111EB
  return z ~ (z >> 31)
end
M.mix64 = mix64

--- A uniform integer in [0, n) from the stream; n < 2^62.
local function uniform_below(seed, counter, n)
  return (mix64(seed, counter) >> 2) % n
end

--- Packs a Lua table of ids into an int32 tensor, a chunk at a time so no
-- second per-token table is built.
local function table_to_tensor(ids, who)
  local n = #ids
  local chunks, chunk = {}, {}
  local size = 4096
  for start = 1, n, size do
    local stop = math.min(start + size - 1, n)
    for i = start, stop do
      local id = ids[i]
      if math.type(id) ~= "integer" then
        if type(id) == "number" and id == math.floor(id) then
          id = math.tointeger(id)
        else
          error(("%s: tokens[%d] must be an integer id, got %s"):format(who, i, tostring(id)), 3)
        end
      end
      if id < 0 or id > 0x7fffffff then
        error(("%s: tokens[%d] = %d is not a valid 0-based id"):format(who, i, id), 3)
      end
      chunk[i - start + 1] = id
    end
    chunks[#chunks + 1] = string.pack("<" .. string.rep("i4", stop - start + 1), table.unpack(chunk, 1, stop - start + 1))
  end
  if n == 0 then
    return nil
  end
  return core.from_bytes(table.concat(chunks), "int32", { n })
end

local function check_positive_integer(value, name, who)
  if math.type(value) ~= "integer" or value <= 0 then
    error(("%s: %s must be a positive integer, got %s"):format(who, name, tostring(value)), 3)
  end
end

local CausalLMDataset = {}
CausalLMDataset.__index = CausalLMDataset
CausalLMDataset.__name = "tricycle.data.CausalLMDataset"
M.CausalLMDataset = CausalLMDataset

--- CausalLMDataset{tokens =, context_length =, batch_size =, seed = 0,
-- split = {train = 0.9}}.
-- tokens: a Lua table of 0-based ids, a packed string of native int32s
-- (tokenizer:encode_packed), or a 1-D int32/int64 tensor.
-- The first `train` fraction of the positions is the training part, the
-- rest the validation part (a split by position, so no window crosses it).
-- `context_window` is accepted as another name for context_length.
function CausalLMDataset.new(options)
  local who = "CausalLMDataset"
  if type(options) ~= "table" then
    error(("%s: expects a table of options, got %s"):format(who, type(options)), 2)
  end
  check_options(who, options, { "tokens", "context_length", "context_window", "batch_size", "seed", "split" })
  if type(options.split) == "table" then
    check_options(who .. ": split", options.split, { "train" })
  end
  local T = options.context_length or options.context_window
  check_positive_integer(T, "context_length", who)
  local B = options.batch_size
  check_positive_integer(B, "batch_size", who)
  local seed = options.seed or 0
  if math.type(seed) ~= "integer" then
    error(("%s: seed must be an integer, got %s"):format(who, tostring(seed)), 2)
  end

  local tokens = options.tokens
  if type(tokens) == "table" and getmetatable(tokens) ~= Tensor then
    tokens = table_to_tensor(tokens, who)
  elseif type(tokens) == "string" then
    if #tokens % 4 ~= 0 then
      error(("%s: a packed token string must hold whole int32s, got %d bytes"):format(who, #tokens), 2)
    end
    tokens = #tokens > 0 and core.from_bytes(tokens, "int32", { #tokens // 4 }) or nil
  elseif getmetatable(tokens) == Tensor then
    if tokens.dtype ~= "int32" and tokens.dtype ~= "int64" then
      error(("%s: tokens must be an int32 or int64 tensor, got dtype %s"):format(who, tokens.dtype), 2)
    end
    if tokens:dim() ~= 1 then
      tokens = tokens:reshape({ tokens:numel() })
    end
    if tokens.device ~= "cpu" then
      tokens = tokens:to("cpu")
    end
    tokens = tokens:contiguous()
  else
    error(("%s: tokens must be a table of ids, a packed int32 string or an integer tensor, got %s")
      :format(who, type(tokens)), 2)
  end
  local N = tokens and tokens:numel() or 0

  local split = options.split or { train = 0.9 }
  local fraction = type(split) == "table" and split.train or split
  if type(fraction) ~= "number" or fraction <= 0 or fraction > 1 then
    error(("%s: split.train must be a fraction in (0, 1], got %s"):format(who, tostring(fraction)), 2)
  end
  local n_train = math.floor(N * fraction)
  if n_train < T + 1 then
    error(("%s: the training part has %d tokens (%d total, train fraction %g); a window needs context_length + 1 = %d")
      :format(who, n_train, N, fraction, T + 1), 2)
  end

  local self = setmetatable({
    tokens = tokens,
    num_tokens = N,
    context_length = T,
    batch_size = B,
    seed = seed,
    counter = 0,
    parts = {
      train = { start = 0, length = n_train },
      validation = { start = n_train, length = N - n_train },
    },
    window = core.arange(T + 1):reshape({ 1, T + 1 }),
  }, CausalLMDataset)
  return self
end

setmetatable(CausalLMDataset, {
  __call = function(_, options)
    return CausalLMDataset.new(options)
  end,
})

local split_names = { train = "train", validation = "validation", val = "validation" }

local function part_of(self, split, who)
  local name = split_names[split or "train"]
  if not name then
    error(("%s: split must be 'train' or 'validation', got %s"):format(who, tostring(split)), 3)
  end
  return self.parts[name], name
end

--- Number of tokens in a split ("train" or "validation").
function CausalLMDataset:split_size(split)
  return part_of(self, split, "CausalLMDataset:split_size").length
end

--- x, y [B, T] int64 for windows starting at the given 0-based absolute
-- offsets (a Lua table of B integers).
function CausalLMDataset:windows(offsets)
  local T = self.context_length
  local count = #offsets
  local starts = core.tensor(offsets, { dtype = "int64" }):reshape({ count, 1 })
  local index = (starts + self.window):reshape({ count * (T + 1) })
  local w = self.tokens:index_select(1, index):reshape({ count, T + 1 })
  if w.dtype ~= "int64" then
    w = w:to("int64")
  end
  return w:narrow(2, 1, T):contiguous(), w:narrow(2, 2, T):contiguous()
end

--- The 0-based absolute offsets of the next batch of random windows (advances the stream).
function CausalLMDataset:next_offsets(split, batch_size)
  local part = part_of(self, split, "CausalLMDataset:batch")
  local count = part.length - self.context_length -- valid starts: 0 .. length - T - 1
  if count <= 0 then
    error(("CausalLMDataset:batch: the %s part has %d tokens, fewer than context_length + 1 = %d")
      :format(split or "train", part.length, self.context_length + 1), 3)
  end
  local offsets = {}
  for b = 1, batch_size or self.batch_size do
    offsets[b] = part.start + uniform_below(self.seed, self.counter, count)
    self.counter = self.counter + 1
  end
  return offsets
end

--- One batch of random windows: x, y int64 [B, T] with y[b][t] = x[b][t + 1].
-- split: "train" (default) or "validation".
function CausalLMDataset:batch(split)
  return self:windows(self:next_offsets(split))
end

--- An iterator over n random training batches (forever when n is nil):
--   for x, y in ds:batches(100) do ... end
function CausalLMDataset:batches(n, split)
  local i = 0
  return function()
    i = i + 1
    if n and i > n then
      return nil
    end
    return self:batch(split)
  end
end

--- Number of windows in a deterministic pass over a split.
function CausalLMDataset:evaluation_windows(split)
  local part = part_of(self, split or "validation", "CausalLMDataset:evaluation_batches")
  if part.length < 2 then
    return 0
  end
  -- window i holds positions [i*T, i*T + T]: targets never repeat, and a
  -- short tail (at least one target) is dropped only when it cannot fill a window.
  return (part.length - 1) // self.context_length
end

--- An iterator over every non-overlapping window of the validation part
-- (or of `split`), in order, batch_size windows at a time (the last batch
-- may be smaller). Does not touch the random stream. Yields x, y, count.
-- options.max_batches stops early (a deterministic prefix of the pass).
function CausalLMDataset:evaluation_batches(options)
  options = check_options("CausalLMDataset:evaluation_batches", options or {}, { "split", "batch_size", "max_batches" })
  local split = options.split or "validation"
  local part = part_of(self, split, "CausalLMDataset:evaluation_batches")
  local total = self:evaluation_windows(split)
  if total == 0 then
    error(("CausalLMDataset:evaluation_batches: the %s part has %d tokens, fewer than context_length + 1 = %d")
      :format(split, part.length, self.context_length + 1), 2)
  end
  local T, B = self.context_length, options.batch_size or self.batch_size
  local next_window, batches = 0, 0
  return function()
    if next_window >= total or (options.max_batches and batches >= options.max_batches) then
      return nil
    end
    local offsets = {}
    while #offsets < B and next_window < total do
      offsets[#offsets + 1] = part.start + next_window * T
      next_window = next_window + 1
    end
    batches = batches + 1
    local x, y = self:windows(offsets)
    return x, y, #offsets
  end
end

--- The random stream's position: a plain table to store in a checkpoint.
function CausalLMDataset:state()
  return { seed = self.seed, counter = self.counter }
end

--- Resumes the random stream from :state().
function CausalLMDataset:set_state(state)
  if type(state) ~= "table" or math.type(state.seed) ~= "integer" or math.type(state.counter) ~= "integer" then
    error("CausalLMDataset:set_state: expects {seed = integer, counter = integer}, as :state() returns", 2)
  end
  self.seed, self.counter = state.seed, state.counter
end

function CausalLMDataset:__tostring()
  return ("CausalLMDataset(tokens=%d, train=%d, validation=%d, context_length=%d, batch_size=%d)")
    :format(self.num_tokens, self.parts.train.length, self.parts.validation.length, self.context_length, self.batch_size)
end

return M
