-- Token shards (tc.data.TokenShards and the shard layout), gradient
-- accumulation (tricycle.training), TensorBoard event files checked by a
-- reader written here from the record format, the linear schedule and the
-- progress line that fits the terminal.
local binpack = require("helpers.binpack")
local compat = require("tricycle.compat")
local tc = require("tricycle")
local data = require("tricycle.data")
local training = require("tricycle.training")
local tensorboard = require("tricycle.tensorboard")
local cli = require("tricycle.cli")
local shell_quote = require("helpers.scratch").shell_quote
local write = require("helpers.scratch").write

local dir

local function read(path)
  local f = assert(io.open(path, "rb"))
  local bytes = f:read("a")
  f:close()
  return bytes
end

-- llm.c's layout written out by hand: 256 little-endian int32 (magic,
-- version, count, zeros), then the ids as little-endian uint16 (or uint32).
local function llmc_shard(ids, wide)
  local header = { wide and 20240801 or 20240520, wide and 7 or 1, #ids }
  for i = 4, 256 do
    header[i] = 0
  end
  local parts = { binpack.pack("<" .. string.rep("i4", 256), compat.unpack(header)) }
  for _, id in ipairs(ids) do
    parts[#parts + 1] = binpack.pack(wide and "<I4" or "<I2", id)
  end
  return table.concat(parts)
end

local function range_ids(first, count)
  local ids = {}
  for i = 1, count do
    ids[i] = first + i - 1
  end
  return ids
end

local function first_ids(x)
  local rows = x:totable()
  local result = {}
  for i, row in ipairs(rows) do
    result[i] = row[1]
  end
  return result
end

setup(function()
  dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p " .. shell_quote(dir))
end)

teardown(function()
  os.execute("rm -rf " .. shell_quote(dir))
end)

describe("token shards", function()
  it("reads a shard written byte by byte to llm.c's layout", function()
    local path = dir .. "/llmc_train_000000.bin"
    write(path, llmc_shard({ 50256, 10, 11, 12, 13, 14, 15, 16, 17, 65535 }))
    local shards = data.TokenShards({ files = path, batch_size = 2, context_length = 4 })
    local x, y = shards:batch()
    assert.are.equal("int64", x.dtype)
    assert.are.same({ { 50256, 10, 11, 12 }, { 13, 14, 15, 16 } }, x:totable())
    assert.are.same({ { 10, 11, 12, 13 }, { 14, 15, 16, 17 } }, y:totable())
    -- one batch per epoch (9 + 1 tokens are needed, the shard has 10): the next is the same
    assert.are.same(x:totable(), shards:batch():totable())
    shards:close()
    local wide = dir .. "/wide.bin"
    write(wide, llmc_shard({ 70000, 1, 2, 4000000000 }, true))
    local shard = tc.data.TokenShards({ files = { wide }, batch_size = 1, context_length = 3 })
    local xw, yw = shard:batch()
    assert.are.same({ { 70000, 1, 2 } }, xw:totable())
    assert.are.same({ { 1, 2, 4000000000 } }, yw:totable())
  end)

  it("writes the same bytes as llm.c's layout, uint32 only when an id needs it", function()
    local ids = { 50256, 0, 1, 65535, 300 }
    assert.are.equal(llmc_shard(ids), data.token_shard_bytes(ids))
    assert.are.equal(llmc_shard(ids, true), data.token_shard_bytes(ids, { id_bytes = 4 }))
    assert.are.equal(llmc_shard({ 65536, 1 }, true), data.token_shard_bytes({ 65536, 1 }))
    local ok, message = pcall(data.token_shard_bytes, { 65536 }, { id_bytes = 2 })
    assert.is_false(ok)
    assert.truthy(message:find("65536", 1, true))
  end)

  it("reads shards in order, a batch after the other, and starts over", function()
    for s = 0, 2 do
      write(("%s/seq_train_%06d.bin"):format(dir, s), data.token_shard_bytes(range_ids(1000 * s, 40 + 8 * s)))
    end
    local shards = data.TokenShards({ files = dir .. "/seq_train_*.bin", batch_size = 2, context_length = 4 })
    -- 8 tokens a batch and one more: shard 0 (40 tokens) gives 4, shard 1 (48) 5, shard 2 (56) 6
    assert.are.equal(15, shards:batches_per_epoch())
    assert.are.equal(144, shards:num_tokens())
    local starts = {}
    for i = 1, 16 do
      starts[i] = first_ids(shards:batch())[1]
    end
    assert.are.same({ 0, 8, 16, 24, 1000, 1008, 1016, 1024, 1032, 2000, 2008, 2016, 2024, 2032, 2040, 0 }, starts)
    assert.truthy(tostring(shards):find("3 shards", 1, true))
  end)

  it("splits each batch between ranks as one process with world_size times the batch would read it", function()
    local files = dir .. "/seq_train_*.bin"
    local whole = data.TokenShards({ files = files, batch_size = 4, context_length = 4 })
    local ranks = {
      data.TokenShards({ files = files, batch_size = 2, context_length = 4, rank = 0, world_size = 2 }),
      data.TokenShards({ files = files, batch_size = 2, context_length = 4, rank = 1, world_size = 2 }),
    }
    for _ = 1, 12 do
      local x = whole:batch():totable()
      local a, b = ranks[1]:batch():totable(), ranks[2]:batch():totable()
      assert.are.same(x, { a[1], a[2], b[1], b[2] })
    end
  end)

  it("shuffles shard order and offsets per epoch from the seed, and resumes exactly", function()
    local files = dir .. "/seq_train_*.bin"
    local function reader(seed)
      return data.TokenShards({ files = files, batch_size = 2, context_length = 4, shuffle = true, seed = seed })
    end
    local a, b = reader(7), reader(7)
    local sequence = {}
    for i = 1, 40 do
      sequence[i] = first_ids(a:batch())[1]
      assert.are.equal(sequence[i], first_ids(b:batch())[1])
    end
    -- every batch starts inside one shard at an offset below context_length
    local shards_seen = {}
    for _, start in ipairs(sequence) do
      shards_seen[compat.idiv(start, 1000)] = true
      assert.is_true(start % 1000 % 8 < 4)
    end
    assert.are.same({ [0] = true, [1] = true, [2] = true }, shards_seen)
    local other = reader(8)
    local differs = false
    for i = 1, 40 do
      differs = differs or first_ids(other:batch())[1] ~= sequence[i]
    end
    assert.is_true(differs)
    -- resume in the middle of the second epoch
    local first = reader(7)
    for _ = 1, 23 do
      first:batch()
    end
    local state = first:state_dict()
    local resumed = reader(7)
    resumed:load_state_dict(state)
    for _ = 1, 30 do
      assert.are.same(first:batch():totable(), resumed:batch():totable())
    end
  end)

  it("refuses a state saved for other shards or another batch shape", function()
    local files = dir .. "/seq_train_*.bin"
    local state = data.TokenShards({ files = files, batch_size = 2, context_length = 4 }):state_dict()
    local narrower = data.TokenShards({ files = files, batch_size = 1, context_length = 4 })
    local ok, message = pcall(narrower.load_state_dict, narrower, state)
    assert.is_false(ok)
    assert.truthy(message:find("batch_size = 2", 1, true))
    local fewer = data.TokenShards({ files = dir .. "/seq_train_000001.bin", batch_size = 2, context_length = 4 })
    ok, message = pcall(fewer.load_state_dict, fewer, state)
    assert.is_false(ok)
    assert.truthy(message:find("3 shards", 1, true))
  end)

  it("names the file with an id at or above the vocabulary", function()
    local ok, message = pcall(data.TokenShards, { files = dir .. "/seq_train_*.bin", batch_size = 1,
      context_length = 4, vocab_size = 2040 })
    assert.is_false(ok)
    assert.truthy(message:find("seq_train_000002.bin", 1, true), message)
    assert.truthy(message:find("id 2040", 1, true), message)
  end)
end)

describe("gradient accumulation", function()
  it("gives k micro-batches of b the gradients of one batch of k·b", function()
    local ids = {}
    for i = 1, 8 * 16 + 1 do
      ids[i] = (i * 31 + i * i) % 97
    end
    local path = dir .. "/accumulate.bin"
    write(path, data.token_shard_bytes(ids))
    tc.manual_seed(5)
    local model = tc.nn.GPT({ vocab_size = 97, context_length = 16, n_layer = 2, n_head = 2, n_embd = 32 })
    local function gradients(batch_size, micro_steps)
      local shards = data.TokenShards({ files = path, batch_size = batch_size, context_length = 16 })
      for _, p in ipairs(model:parameters()) do
        p.grad = nil
      end
      local loss = training.accumulate_gradients(model, function() return shards:batch() end, micro_steps)
      local grads = {}
      for i, p in ipairs(model:parameters()) do
        grads[i] = p.grad:clone()
      end
      return loss, grads
    end
    local whole_loss, whole = gradients(8, 1)
    local loss, accumulated = gradients(2, 4)
    assert.is_true(math.abs(whole_loss - loss) < 1e-5 * whole_loss, ("%g vs %g"):format(whole_loss, loss))
    for i = 1, #whole do
      local scale = math.max(1e-3, whole[i]:abs():max():item())
      local difference = (whole[i] - accumulated[i]):abs():max():item()
      assert.is_true(difference <= 2e-5 * scale, ("parameter %d: %g apart, largest %g"):format(i, difference, scale))
    end
  end)

  it("refuses a micro-step count below one", function()
    local ok, message = pcall(training.accumulate_gradients, {}, function() end, 0)
    assert.is_false(ok)
    assert.truthy(message:find("micro_steps", 1, true))
  end)
end)

-- ---------------------------------------------------------------- TensorBoard

-- An independent reader of TensorBoard's record format: a bit-at-a-time
-- CRC-32C and a protocol-buffer walker, from the format's description.
local function crc32c_bitwise(s)
  local crc = 0xFFFFFFFF
  for i = 1, #s do
    crc = compat.bxor(crc, s:byte(i))
    for _ = 1, 8 do
      local low = crc % 2
      crc = compat.rshift(crc, 1)
      if low == 1 then
        crc = compat.bxor(crc, 0x82F63B78)
      end
    end
  end
  return compat.bxor(crc, 0xFFFFFFFF)
end

local function masked(s)
  local crc = crc32c_bitwise(s)
  local rotated = compat.rshift(crc, 15) + (crc % 32768) * 131072
  return (rotated + 0xa282ead8) % 4294967296
end

local function read_varint(s, at)
  local value, shift = 0, 0
  while true do
    local byte = s:byte(at)
    value = value + compat.lshift(byte % 128, shift)
    at = at + 1
    if byte < 0x80 then
      return value, at
    end
    shift = shift + 7
  end
end

-- field number -> list of values (numbers for varints, raw strings for the others)
local function fields(s)
  local result, at = {}, 1
  while at <= #s do
    local key
    key, at = read_varint(s, at)
    local field, wire = compat.rshift(key, 3), key % 8
    local value
    if wire == 0 then
      value, at = read_varint(s, at)
    elseif wire == 1 then
      value, at = s:sub(at, at + 7), at + 8
    elseif wire == 5 then
      value, at = s:sub(at, at + 3), at + 4
    elseif wire == 2 then
      local length
      length, at = read_varint(s, at)
      value, at = s:sub(at, at + length - 1), at + length
    else
      error("unexpected wire type " .. wire)
    end
    result[field] = result[field] or {}
    table.insert(result[field], value)
  end
  return result
end

-- Every event of a file: {wall_time =, step =, file_version =, scalars = {tag = value}, session_status =}.
local function read_events(path)
  local bytes = read(path)
  local events, at = {}, 1
  while at <= #bytes do
    local length_bytes = bytes:sub(at, at + 7)
    local length = binpack.unpack("<I8", length_bytes)
    assert.are.equal(masked(length_bytes), binpack.unpack("<I4", bytes, at + 8), "length CRC")
    local payload = bytes:sub(at + 12, at + 12 + length - 1)
    assert.are.equal(length, #payload, "truncated record")
    assert.are.equal(masked(payload), binpack.unpack("<I4", bytes, at + 12 + length), "data CRC")
    at = at + 12 + length + 4
    local f = fields(payload)
    local event = { wall_time = binpack.unpack("<d", f[1][1]), step = f[2] and f[2][1] or 0 }
    if f[3] then
      event.file_version = f[3][1]
    end
    if f[5] then
      event.scalars = {}
      for _, value in ipairs(fields(f[5][1])[1]) do
        local v = fields(value)
        event.scalars[v[1][1]] = binpack.unpack("<f", v[2][1])
      end
    end
    if f[7] then
      event.session_status = fields(f[7][1])[1][1]
    end
    events[#events + 1] = event
  end
  return events
end

local function float32(x)
  return binpack.unpack("<f", binpack.pack("<f", x))
end

describe("tensorboard", function()
  it("computes CRC-32C as the record format defines it", function()
    assert.are.equal(0xE3069283, crc32c_bitwise("123456789")) -- the standard check value
    assert.are.equal(0xE3069283, tensorboard.crc32c("123456789"))
    for _, s in ipairs({ "", "a", string.rep("\0\255", 100), "brain.Event:2" }) do
      assert.are.equal(crc32c_bitwise(s), tensorboard.crc32c(s))
    end
  end)

  it("writes records an independent reader reads back: lengths, CRCs, steps and values", function()
    local clock = 1700000000
    local writer = tensorboard.Writer(dir .. "/tb", { clock = function() return clock end })
    writer:scalars({ ["train/loss"] = 10.8125, ["train/lr"] = 6e-4 }, 1)
    clock = clock + 1
    writer:scalar("val/loss", 3.14159, 250)
    writer:start_session(200)
    writer:scalars({ ["train/loss"] = 0 / 0 }, 1099511627776)
    writer:close()
    assert.truthy(writer.path:find("/tb/events.out.tfevents.1700000000.", 1, true))
    local events = read_events(writer.path)
    assert.are.equal(5, #events)
    assert.are.equal("brain.Event:2", events[1].file_version)
    assert.are.equal(1700000000, events[1].wall_time)
    assert.are.same({ ["train/loss"] = 10.8125, ["train/lr"] = float32(6e-4) }, events[2].scalars)
    assert.are.equal(1, events[2].step)
    assert.are.same({ ["val/loss"] = float32(3.14159) }, events[3].scalars)
    assert.are.equal(250, events[3].step)
    assert.are.equal(1700000001, events[3].wall_time)
    assert.are.equal(1, events[4].session_status) -- SessionLog.START
    assert.are.equal(200, events[4].step)
    assert.are.equal(1099511627776, events[5].step)
    local nan = events[5].scalars["train/loss"]
    assert.is_true(nan ~= nan)
    -- a second writer in the same second gets a file of its own
    local again = tensorboard.Writer(dir .. "/tb", { clock = function() return 1700000000 end })
    again:close()
    assert.are_not.equal(writer.path, again.path)
  end)

  it("refuses bad steps and values", function()
    local writer = tensorboard.Writer(dir .. "/tb2")
    assert.has_error(function() writer:scalar("x", 1, -1) end)
    assert.has_error(function() writer:scalars({ x = "1" }, 1) end)
    writer:close()
    assert.has_error(function() writer:scalar("x", 1, 1) end)
  end)
end)

describe("linear_schedule", function()
  it("warms up, then falls in a straight line to min_lr at total", function()
    local schedule = tc.optim.linear_schedule({ max_lr = 1.0, min_lr = 0.1, warmup = 4, total = 14 })
    assert.are.equal(0.25, schedule:lr(0))
    assert.are.equal(1.0, schedule:lr(3))
    assert.are.equal(1.0, schedule:lr(4))
    assert.is_true(math.abs(schedule:lr(9) - 0.55) < 1e-12)
    assert.are.equal(0.1, schedule:lr(14))
    assert.are.equal(0.1, schedule:lr(100))
    local state = schedule:state_dict()
    local other = tc.optim.linear_schedule({ max_lr = 2, total = 1 })
    other:load_state_dict(state)
    assert.are.equal(schedule:lr(9), other:lr(9))
    assert.has_error(function() tc.optim.linear_schedule({ max_lr = 1, warmup = 5, total = 2 }) end)
  end)
end)

describe("cli.Progress", function()
  it("fits the redrawn line to the terminal's width", function()
    local lines = {}
    local out = { write = function(_, ...) lines[#lines + 1] = table.concat({ ... }) end, flush = function() end }
    local progress = cli.Progress.new({ total = 5000, terminal = true, out = out, columns = 60 })
    progress:update(12, { loss = 4.1234, lr = 6e-4, tokens_per_second = 8200, mfu = 0.412, eta = 7400 })
    local shown = lines[#lines]:gsub("^\r\27%[K", "")
    assert.is_true(#shown <= 59, shown)
    assert.truthy(shown:find("^step 12/5000 | loss 4.1234"))
    local wide = cli.Progress.new({ total = 5000, terminal = true, out = out, columns = 200 })
    wide:update(12, { loss = 4.1234, mfu = 0.412, eta = 7400 })
    assert.truthy(lines[#lines]:find("[", 1, true))
    assert.truthy(lines[#lines]:find("MFU 41.2%", 1, true))
    assert.are.equal(123, cli.terminal_columns(function(name) return name == "COLUMNS" and "123" or nil end))
  end)
end)
