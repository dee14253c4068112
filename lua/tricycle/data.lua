--- tricycle.data: tokenizers, a dataset of random windows for causal
-- language modelling, and map-style datasets (Dataset, TensorDataset) with a
-- DataLoader (see DataLoader.new below).
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
--
-- TokenShards reads a corpus too large for memory: token shards in llm.c's
-- layout (written by scripts/prepare_data.lua, llm.c or modded-nanogpt's
-- tools), memory-mapped, read in order a batch at a time:
--
--   local train = data.TokenShards{files = "data/corpus_train_*.bin", batch_size = 4,
--                                  context_length = 1024, vocab_size = 50257, shuffle = true, seed = 1}
--   local x, y = train:batch()                      -- int64 [B, T], y is x shifted by one
--   checkpoint.extra.data = train:state_dict()      -- and train:load_state_dict(state) to resume
local compat = require("tricycle.compat")
local core = require("tricycle.core")
local tokenizer = require("tricycle.tokenizer")
local check_options = require("tricycle.options").check_options

local M = {
  BPETokenizer = tokenizer.BPETokenizer,
  CharTokenizer = tokenizer.CharTokenizer,
}

local Tensor = core.Tensor

--- A uniform integer in [0, n) from the (seed, counter) stream (SplitMix64 in the
-- binding, in 64-bit arithmetic on every Lua); n < 2^62.
local uniform_below = core.uniform_below

--- Packs a Lua table of ids into an int32 tensor, after checking every id.
local function table_to_tensor(ids, who)
  local n = #ids
  for i = 1, n do
    local id = ids[i]
    if not compat.is_integer(id) and not (type(id) == "number" and id == math.floor(id)) then
      error(("%s: tokens[%d] must be an integer id, got %s"):format(who, i, tostring(id)), 3)
    end
    if id < 0 or id > 0x7fffffff then
      error(("%s: tokens[%d] = %d is not a valid 0-based id"):format(who, i, id), 3)
    end
  end
  if n == 0 then
    return nil
  end
  return core.tensor(ids, { dtype = "int32" })
end

local function check_positive_integer(value, name, who)
  if not compat.is_integer(value) or value <= 0 then
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
  if not compat.is_integer(seed) then
    error(("%s: seed must be an integer, got %s"):format(who, tostring(seed)), 2)
  end

  local tokens = options.tokens
  if type(tokens) == "table" and getmetatable(tokens) ~= Tensor then
    tokens = table_to_tensor(tokens, who)
  elseif type(tokens) == "string" then
    if #tokens % 4 ~= 0 then
      error(("%s: a packed token string must hold whole int32s, got %d bytes"):format(who, #tokens), 2)
    end
    tokens = #tokens > 0 and core.from_bytes(tokens, "int32", { compat.idiv(#tokens, 4) }) or nil
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
  return compat.idiv((part.length - 1), self.context_length)
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
  if type(state) ~= "table" or not compat.is_integer(state.seed) or not compat.is_integer(state.counter) then
    error("CausalLMDataset:set_state: expects {seed = integer, counter = integer}, as :state() returns", 2)
  end
  self.seed, self.counter = state.seed, state.counter
end

function CausalLMDataset:__tostring()
  return ("CausalLMDataset(tokens=%d, train=%d, validation=%d, context_length=%d, batch_size=%d)")
    :format(self.num_tokens, self.parts.train.length, self.parts.validation.length, self.context_length,
      self.batch_size)
end

-- ---------------------------------------------------------------- token shards

--- The files matching a glob (`*` and `?` in the last part of the path
-- only), sorted by name; a path without wildcards is itself. Errors name
-- the pattern when nothing matches.
function M.glob(pattern, who)
  who = who or "glob"
  if type(pattern) ~= "string" or pattern == "" then
    error(("%s: expects a path or pattern, got %s"):format(who, tostring(pattern)), 2)
  end
  local dir, name = pattern:match("^(.*)/([^/]*)$")
  if not dir then
    dir, name = ".", pattern
  elseif dir == "" then
    dir = "/"
  end
  if dir:find("[*?]") then
    error(("%s: '%s': wildcards are allowed in the file name only"):format(who, pattern), 2)
  end
  if not name:find("[*?]") then
    return { pattern }
  end
  local lua_pattern = "^" .. name:gsub("[%^%$%(%)%%%.%[%]%+%-]", "%%%0"):gsub("%*", ".*"):gsub("%?", ".") .. "$"
  local ok, entries = pcall(core.shards.list_dir, dir)
  if not ok then
    error(("%s: no file matches '%s' (%s)"):format(who, pattern, tostring(entries)), 2)
  end
  local found = {}
  for _, entry in ipairs(entries) do
    if entry.kind == "file" and entry.name:match(lua_pattern) then
      found[#found + 1] = (pattern:find("/") and dir:gsub("/$", "") .. "/" or "") .. entry.name
    end
  end
  if #found == 0 then
    error(("%s: no file matches '%s'"):format(who, pattern), 2)
  end
  table.sort(found)
  return found
end

local TokenShards = {}
TokenShards.__index = TokenShards
TokenShards.__name = "tricycle.data.TokenShards"
M.TokenShards = TokenShards

local function basename(path)
  return path:match("([^/]*)$")
end

--- TokenShards{files =, batch_size =, context_length =, vocab_size = nil,
-- shuffle = false, seed = 0, rank = 0, world_size = 1}.
-- files: a list of shard paths, or one path or glob ("dir/x_train_*.bin").
-- A batch is batch_size rows of context_length consecutive tokens, taken
-- from one shard: llm.c's layout, rows · T + 1 tokens read at once. Shards
-- are read in order, each from its start, a batch after the other; with
-- world_size > 1 the ranks take interleaved batches of the same shard, so
-- together they read what one process with world_size times the batch
-- would. With shuffle, each epoch visits the shards in a new order and
-- starts each at a new offset in [0, context_length), both drawn from
-- (seed, epoch): a resumed run, given :state_dict(), reads exactly the
-- tokens the first would have. vocab_size checks every id once, at
-- construction. Errors name the file.
function TokenShards.new(options)
  local who = "TokenShards"
  if type(options) ~= "table" then
    error(("%s: expects a table of options, got %s"):format(who, type(options)), 2)
  end
  check_options(who, options, { "files", "batch_size", "context_length", "vocab_size", "shuffle", "seed", "rank",
    "world_size" })
  local B, T = options.batch_size, options.context_length
  check_positive_integer(B, "batch_size", who)
  check_positive_integer(T, "context_length", who)
  local world_size, rank = options.world_size or 1, options.rank or 0
  check_positive_integer(world_size, "world_size", who)
  if not compat.is_integer(rank) or rank < 0 or rank >= world_size then
    error(("%s: rank must be an integer in [0, world_size - 1] = [0, %d], got %s"):format(who, world_size - 1,
      tostring(rank)), 2)
  end
  local seed = options.seed or 0
  if not compat.is_integer(seed) then
    error(("%s: seed must be an integer, got %s"):format(who, tostring(seed)), 2)
  end
  if options.shuffle ~= nil and type(options.shuffle) ~= "boolean" then
    error(("%s: shuffle must be a boolean, got %s"):format(who, tostring(options.shuffle)), 2)
  end
  local vocab_size = options.vocab_size
  if vocab_size ~= nil then
    check_positive_integer(vocab_size, "vocab_size", who)
  end
  local files = options.files
  if type(files) == "string" then
    local ok, found = pcall(M.glob, files, who)
    if not ok then
      error(found, 2)
    end
    files = found
  elseif type(files) ~= "table" or #files == 0 then
    error(("%s: files must be a path, a glob or a non-empty list of paths, got %s"):format(who,
      type(files) == "table" and "an empty list" or type(files)), 2)
  end
  local per_batch = B * T
  local stride = per_batch * world_size -- tokens the ranks take together per step
  -- (a wrap of int64 on 5.3+; past 2^53, where a double stops counting exactly, elsewhere)
  if compat.idiv(per_batch, B) ~= T or compat.idiv(stride, world_size) ~= per_batch or stride > compat.max_integer then
    error(("%s: batch_size %d × context_length %d × world_size %d overflows"):format(who, B, T, world_size), 2)
  end
  local shards, largest = {}, nil
  for i, path in ipairs(files) do
    if type(path) ~= "string" then
      error(("%s: files[%d] must be a path, got %s"):format(who, i, type(path)), 2)
    end
    local ok, shard = pcall(core.shards.open, path)
    if not ok then
      for _, opened in ipairs(shards) do
        opened:close()
      end
      error(("%s: %s"):format(who, tostring(shard)), 2)
    end
    if vocab_size then
      local checked, why = pcall(shard.check_ids, shard, vocab_size)
      if not checked then
        shard:close()
        for _, opened in ipairs(shards) do
          opened:close()
        end
        error(("%s: %s"):format(who, tostring(why)), 2)
      end
    end
    shards[i] = shard
    if not largest or shard:count() > largest:count() then
      largest = shard
    end
  end
  if largest:count() < stride + 1 then
    local message = ("%s: no shard holds one batch of batch_size %d × context_length %d%s + 1 = %d tokens; the "
      .. "largest, '%s', holds %d"):format(who, B, T, world_size > 1 and (" × world_size %d"):format(world_size) or "",
      stride + 1, largest:path(), largest:count())
    for _, opened in ipairs(shards) do
      opened:close()
    end
    error(message, 2)
  end
  local self = setmetatable({
    shards = shards, batch_size = B, context_length = T, shuffle = options.shuffle or false, seed = seed,
    rank = rank, world_size = world_size, vocab_size = vocab_size, stride = stride,
    epoch = 0, position = 1, batch_index = 0,
  }, TokenShards)
  self:start_epoch(0)
  return self
end

setmetatable(TokenShards, {
  __call = function(_, options)
    return TokenShards.new(options)
  end,
})

-- Draws of the shuffle: order and offsets of epoch e come from disjoint
-- counters of the (seed, counter) stream.
local ORDER_DRAW, OFFSET_DRAW = 0, 2147483648 -- 2^31; counters are epoch * 2^32 + draw + i

--- Sets the order and offsets of an epoch and goes to its first batch.
function TokenShards:start_epoch(epoch)
  local n = #self.shards
  local order, offsets = {}, {}
  for i = 1, n do
    order[i] = i
  end
  if self.shuffle then
    for i = n, 2, -1 do
      local j = 1 + uniform_below(self.seed, epoch * 4294967296 + ORDER_DRAW + i, i)
      order[i], order[j] = order[j], order[i]
    end
  end
  for i = 1, n do
    local spare = self.shards[i]:count() - self.stride - 1 -- offsets that still leave one batch
    offsets[i] = 0
    if self.shuffle and spare > 0 then
      offsets[i] = uniform_below(self.seed, epoch * 4294967296 + OFFSET_DRAW
        + i, math.min(self.context_length, spare + 1))
    end
  end
  self.epoch, self.order, self.offsets, self.position, self.batch_index = epoch, order, offsets, 1, 0
end

--- Batches shard i yields in the current epoch (per rank).
function TokenShards:shard_batches(i)
  local available = self.shards[i]:count() - self.offsets[i] - 1
  return available >= self.stride and compat.idiv(available, self.stride) or 0
end

--- The next batch: x, y int64 [B, T] (y is x shifted by one token).
function TokenShards:batch()
  if self.closed then
    error("TokenShards:batch: the reader is closed (reader:close() was called)", 2)
  end
  local guard = 0
  while self:shard_batches(self.order[self.position]) <= self.batch_index do
    self.position, self.batch_index = self.position + 1, 0
    if self.position > #self.order then
      self:start_epoch(self.epoch + 1)
      guard = guard + 1
      if guard > 1 then
        error("TokenShards:batch: no shard holds a batch (the files changed?)", 2)
      end
    end
  end
  local i = self.order[self.position]
  local start = self.offsets[i] + self.batch_index * self.stride + self.rank * self.batch_size * self.context_length
  self.batch_index = self.batch_index + 1
  return self.shards[i]:batch(start, self.batch_size, self.context_length)
end

--- Back to the start of epoch 0 (for a validation pass).
function TokenShards:reset()
  self:start_epoch(0)
end

--- Batches (per rank) in one pass over epoch 0's order and offsets.
function TokenShards:batches_per_epoch()
  local saved = { self.epoch, self.order, self.offsets, self.position, self.batch_index }
  self:start_epoch(0)
  local total = 0
  for i = 1, #self.shards do
    total = total + self:shard_batches(i)
  end
  self.epoch, self.order, self.offsets, self.position, self.batch_index = compat.unpack(saved)
  return total
end

--- Tokens in all the shards.
function TokenShards:num_tokens()
  local total = 0
  for _, shard in ipairs(self.shards) do
    total = total + shard:count()
  end
  return total
end

--- The reading position and what it refers to, as plain values for a checkpoint.
function TokenShards:state_dict()
  local files = {}
  for i, shard in ipairs(self.shards) do
    files[i] = { name = basename(shard:path()), tokens = shard:count() }
  end
  return {
    epoch = self.epoch, position = self.position, batch = self.batch_index, seed = self.seed,
    shuffle = self.shuffle, batch_size = self.batch_size, context_length = self.context_length, rank = self.rank,
    world_size = self.world_size, files = files,
  }
end

--- Goes back to a position from :state_dict(); the shards (names and
-- sizes), batch shape, ranks and shuffle must be the ones it was saved with.
function TokenShards:load_state_dict(state)
  local who = "TokenShards:load_state_dict"
  if type(state) ~= "table" or not compat.is_integer(state.epoch) or not compat.is_integer(state.position)
    or not compat.is_integer(state.batch) or type(state.files) ~= "table" then
    error(who .. ": expects the table :state_dict() returns", 2)
  end
  for _, key in ipairs({ "seed", "shuffle", "batch_size", "context_length", "rank", "world_size" }) do
    if state[key] ~= self[key] then
      error(("%s: the state was saved with %s = %s, these shards have %s"):format(who, key, tostring(state[key]),
        tostring(self[key])), 2)
    end
  end
  if #state.files ~= #self.shards then
    error(("%s: the state was saved for %d shards, these are %d"):format(who, #state.files, #self.shards), 2)
  end
  for i, shard in ipairs(self.shards) do
    local saved = state.files[i]
    if type(saved) ~= "table" or saved.name ~= basename(shard:path()) or saved.tokens ~= shard:count() then
      error(("%s: shard %d was '%s' (%s tokens) when saved, now '%s' (%d tokens)"):format(who, i,
        tostring(type(saved) == "table" and saved.name), tostring(type(saved) == "table" and saved.tokens),
        basename(shard:path()), shard:count()), 2)
    end
  end
  if state.epoch < 0 or state.position < 1 or state.position > #self.shards or state.batch < 0 then
    error(("%s: position epoch %d, shard %d, batch %d is out of range"):format(who, state.epoch, state.position,
      state.batch), 2)
  end
  self:start_epoch(state.epoch)
  self.position, self.batch_index = state.position, state.batch
end

--- Unmaps the shards; the object cannot be used afterwards.
function TokenShards:close()
  for _, shard in ipairs(self.shards) do
    shard:close()
  end
  self.closed = true
end

function TokenShards:__tostring()
  return ("TokenShards(%d shards, %d tokens, batch_size=%d, context_length=%d%s%s)"):format(#self.shards,
    self:num_tokens(), self.batch_size, self.context_length, self.shuffle and ", shuffle" or "",
    self.world_size > 1 and (", rank %d of %d"):format(self.rank, self.world_size) or "")
end

--- The bytes of a token shard holding ids (a Lua table of 0-based ids),
-- in llm.c's layout: uint16 ids when every id fits, else (or when
-- options.id_bytes = 4) the uint32 variant.
function M.token_shard_bytes(ids, options)
  local who = "token_shard_bytes"
  if type(ids) ~= "table" then
    error(("%s: ids must be a table of 0-based ids, got %s"):format(who, type(ids)), 2)
  end
  options = check_options(who, options or {}, { "id_bytes" })
  local largest = -1
  for i, id in ipairs(ids) do
    if not compat.is_integer(id) or id < 0 or id > 0xffffffff then
      error(("%s: ids[%d] = %s is not an id from 0 to 4294967295"):format(who, i, tostring(id)), 2)
    end
    largest = math.max(largest, id)
  end
  local id_bytes = options.id_bytes or (largest < 65536 and 2 or 4)
  if id_bytes ~= 2 and id_bytes ~= 4 then
    error(("%s: id_bytes must be 2 or 4, got %s"):format(who, tostring(id_bytes)), 2)
  end
  if id_bytes == 2 and largest >= 65536 then
    error(("%s: id %d does not fit in uint16 (id_bytes = 2)"):format(who, largest), 2)
  end
  local parts = { core.shards.header(#ids, id_bytes) }
  -- Little-endian ids, as the engine stores them: the low bytes of each int64 (the machine is little-endian,
  -- as the shard format is).
  if #ids > 0 then
    local bytes = core.tensor(ids, { dtype = "int64" }):tobytes()
    local pieces = {}
    for i = 1, #ids do
      pieces[i] = bytes:sub(8 * i - 7, 8 * i - 8 + id_bytes)
    end
    parts[#parts + 1] = table.concat(pieces)
  end
  return table.concat(parts)
end

-- ---------------------------------------------------------------- map-style datasets and the DataLoader

local errors = require("tricycle.errors")

local function fail(format, ...)
  errors.raise(format:format(...))
end

--- Dataset: the map-style protocol, ds:len() (or #ds) samples and ds:get(i)
-- for i in 1 .. len. A subclass: `local MyData = data.Dataset:extend()`
-- with `function MyData:len()` and `function MyData:get(i)`; a sample is a
-- tensor, a number, a boolean, a string or a table of them.
local Dataset = {}
Dataset.__index = Dataset
Dataset.__len = function(self) return self:len() end
M.Dataset = Dataset

function Dataset:extend()
  local class = setmetatable({}, { __index = self })
  class.__index = class
  class.__len = function(instance) return instance:len() end
  return class
end

function Dataset:len()
  fail("Dataset:len: not implemented (a dataset defines len() and get(i))")
end

function Dataset:get()
  fail("Dataset:get: not implemented (a dataset defines len() and get(i))")
end

local function dataset_length(dataset, who)
  local n
  if type(dataset) == "table" and type(dataset.len) == "function" then
    n = dataset:len()
  elseif type(dataset) == "table" then
    local meta = getmetatable(dataset)
    n = meta and meta.__len and meta.__len(dataset) or nil
  end
  if not compat.is_integer(n) or n < 0 then
    fail("%s: the dataset's len() must be a non-negative integer, got %s", who, tostring(n))
  end
  return n
end

--- TensorDataset(t1, t2, ...): sample i is {t1[i], t2[i], ...} (each
-- tensor's row i along dim 1); every tensor has the same first dim.
local TensorDataset = Dataset:extend()
M.TensorDataset = TensorDataset

function TensorDataset.new(...)
  local tensors = compat.pack(...)
  if tensors.n == 0 then
    fail("TensorDataset: expects at least one tensor")
  end
  local rows
  for i = 1, tensors.n do
    local t = tensors[i]
    if getmetatable(t) ~= Tensor then
      fail("TensorDataset: argument %d must be a tensor, got %s", i, type(t))
    end
    if t:dim() == 0 then
      fail("TensorDataset: argument %d is a scalar; tensors need a first dim of samples", i)
    end
    rows = rows or t.shape[1]
    if t.shape[1] ~= rows then
      fail("TensorDataset: argument %d has %d rows (shape {%s}), argument 1 has %d", i, t.shape[1],
        table.concat(t.shape, ", "), rows)
    end
  end
  return setmetatable({ tensors = { compat.unpack(tensors, 1, tensors.n) }, rows = rows }, TensorDataset)
end

setmetatable(TensorDataset, { __index = Dataset, __call = function(_, ...) return TensorDataset.new(...) end })

function TensorDataset:len()
  return self.rows
end

function TensorDataset:get(i)
  if not compat.is_integer(i) or i < 1 or i > self.rows then
    fail("TensorDataset:get: index %s is out of range (1 to %d)", tostring(i), self.rows)
  end
  local sample = {}
  for k, t in ipairs(self.tensors) do
    sample[k] = t:select(1, i)
  end
  return sample
end

--- The samples at 1-based `indices` at once (index_select), as the default
-- collation would give them.
function TensorDataset:get_batch(indices)
  local index = core.tensor(indices, { dtype = "int64" }) - 1
  local batch = {}
  for k, t in ipairs(self.tensors) do
    batch[k] = t:index_select(1, index)
  end
  return batch
end

local function is_list(value)
  if type(value) ~= "table" or getmetatable(value) ~= nil then
    return false
  end
  local n = 0
  for _ in pairs(value) do
    n = n + 1
  end
  return n > 0 and n == #value
end

--- The default collation of a list of samples: tensors stacked along a new
-- dim 1, numbers into an int64 (all integers) or float64 tensor, booleans
-- into a bool tensor, strings kept as a list, tables collated key by key.
local function collate(samples, where)
  local first = samples[1]
  local kind = type(first)
  if getmetatable(first) == Tensor then
    kind = "tensor"
  end
  for i, sample in ipairs(samples) do
    local this = getmetatable(sample) == Tensor and "tensor" or type(sample)
    if this ~= kind then
      fail("DataLoader: sample %d%s is a %s, sample 1's a %s", i, where, this, kind)
    end
  end
  if kind == "tensor" then
    local shape = table.concat(first.shape, ", ")
    for i, sample in ipairs(samples) do
      if table.concat(sample.shape, ", ") ~= shape then
        fail("DataLoader: sample %d%s has shape {%s}, sample 1 {%s} (the default collate_fn stacks them)", i, where,
          table.concat(sample.shape, ", "), shape)
      end
    end
    return core.stack(samples, 1)
  elseif kind == "number" then
    local integers = true
    for _, v in ipairs(samples) do
      if not compat.is_integer(v) and v ~= math.floor(v) then
        integers = false
      end
    end
    return core.tensor(samples, { dtype = integers and "int64" or "float64" })
  elseif kind == "boolean" then
    return core.tensor(samples, { dtype = "bool" })
  elseif kind == "string" then
    return { compat.unpack(samples) }
  elseif kind == "table" then
    local batch = {}
    for key in pairs(first) do
      local column = {}
      for i, sample in ipairs(samples) do
        if sample[key] == nil then
          fail("DataLoader: sample %d%s has no field %s, sample 1 has", i, where, tostring(key))
        end
        column[i] = sample[key]
      end
      batch[key] = collate(column, where .. "." .. tostring(key))
    end
    return batch
  end
  fail("DataLoader: sample 1%s is a %s; the default collate_fn takes tensors, numbers, booleans, strings and "
    .. "tables of them", where, kind)
end
M.default_collate = function(samples) return collate(samples, "") end

--- DataLoader{dataset, batch_size = 1, shuffle = false, seed = 0, drop_last
-- = false, collate_fn = data.default_collate}: batches of a map-style
-- dataset. `for x, y in loader:iter() do` goes over one epoch (a batch of
-- list samples comes unpacked; any other batch as one value). Shuffling
-- draws a permutation per epoch from the loader's own (seed, counter)
-- stream, so it never moves the engine's RNG; loader:state_dict() and
-- load_state_dict(s) resume it.
local DataLoader = {}
DataLoader.__index = DataLoader
M.DataLoader = DataLoader

function DataLoader.new(options)
  local who = "DataLoader"
  if type(options) ~= "table" then
    fail("%s: expects {dataset, batch_size =, shuffle =, seed =, drop_last =, collate_fn =}, got %s", who,
      type(options))
  end
  local named = {}
  for key, value in pairs(options) do
    if key ~= 1 then
      named[key] = value
    end
  end
  check_options(who, named, { "dataset", "batch_size", "shuffle", "seed", "drop_last", "collate_fn" }, 2)
  local dataset = options.dataset or options[1]
  if type(dataset) ~= "table" or (type(dataset.get) ~= "function" and type(dataset.get_batch) ~= "function") then
    fail("%s: dataset must have len() and get(i) (data.Dataset, data.TensorDataset), got %s", who, type(dataset))
  end
  dataset_length(dataset, who)
  local batch_size = options.batch_size == nil and 1 or options.batch_size
  if not compat.is_integer(batch_size) or batch_size < 1 then
    fail("%s: option batch_size must be a positive integer, got %s", who, tostring(options.batch_size))
  end
  for _, flag in ipairs({ "shuffle", "drop_last" }) do
    if options[flag] ~= nil and type(options[flag]) ~= "boolean" then
      fail("%s: option %s must be a boolean, got %s", who, flag, tostring(options[flag]))
    end
  end
  local seed = options.seed == nil and 0 or options.seed
  if not compat.is_integer(seed) or seed < 0 then
    fail("%s: option seed must be a non-negative integer, got %s", who, tostring(options.seed))
  end
  if options.collate_fn ~= nil and type(options.collate_fn) ~= "function" then
    fail("%s: option collate_fn must be a function of the list of samples, got %s", who, type(options.collate_fn))
  end
  return setmetatable({ dataset = dataset, batch_size = batch_size, shuffle = options.shuffle or false,
    drop_last = options.drop_last or false, seed = seed, counter = 0, collate_fn = options.collate_fn }, DataLoader)
end

setmetatable(DataLoader, { __call = function(_, options) return DataLoader.new(options) end })

--- The number of batches in an epoch.
function DataLoader:len()
  local n = dataset_length(self.dataset, "DataLoader:len")
  if self.drop_last then
    return math.floor(n / self.batch_size)
  end
  return math.ceil(n / self.batch_size)
end
DataLoader.__len = DataLoader.len

-- The epoch's order of 1-based indices (a permutation when shuffling).
function DataLoader:order(n)
  local order = {}
  for i = 1, n do
    order[i] = i
  end
  if self.shuffle then
    for i = n, 2, -1 do
      local j = uniform_below(self.seed, self.counter, i) + 1
      self.counter = self.counter + 1
      order[i], order[j] = order[j], order[i]
    end
  end
  return order
end

local function unpack_batch(batch)
  if is_list(batch) then
    return compat.unpack(batch)
  end
  return batch
end

--- An iterator over one epoch's batches.
function DataLoader:iter()
  if getmetatable(self) ~= DataLoader then
    fail("DataLoader:iter: call it as loader:iter(), got a %s for the loader", type(self))
  end
  local n = dataset_length(self.dataset, "DataLoader:iter")
  local order = self:order(n)
  local batches = self:len()
  local b = 0
  return function()
    if b >= batches then
      return nil
    end
    b = b + 1
    local indices = {}
    for k = (b - 1) * self.batch_size + 1, math.min(b * self.batch_size, n) do
      indices[#indices + 1] = order[k]
    end
    if self.collate_fn == nil and type(self.dataset.get_batch) == "function" then
      return unpack_batch(self.dataset:get_batch(indices))
    end
    local samples = {}
    for k, i in ipairs(indices) do
      local sample = self.dataset:get(i)
      if sample == nil then
        fail("DataLoader: the dataset's get(%d) returned nil", i)
      end
      samples[k] = sample
    end
    if self.collate_fn then
      return unpack_batch(self.collate_fn(samples))
    end
    return unpack_batch(collate(samples, ""))
  end
end

function DataLoader:state_dict()
  return { seed = self.seed, counter = self.counter }
end

function DataLoader:load_state_dict(state)
  if type(state) ~= "table" then
    fail("DataLoader:load_state_dict: expects {seed =, counter =}, got %s", type(state))
  end
  check_options("DataLoader:load_state_dict", state, { "seed", "counter" }, 2)
  for _, field in ipairs({ "seed", "counter" }) do
    if not compat.is_integer(state[field]) or state[field] < 0 then
      fail("DataLoader:load_state_dict: %s must be a non-negative integer, got %s", field, tostring(state[field]))
    end
  end
  self.seed, self.counter = state.seed, state.counter
end

return M
