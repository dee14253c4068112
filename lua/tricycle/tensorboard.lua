--- tricycle.tensorboard: scalars in TensorBoard's event files, which most
-- training dashboards read. No dependencies beyond the standard library.
--
--   local tensorboard = require("tricycle.tensorboard")
--   local writer = tensorboard.Writer("runs/gpt2")      -- the folder is created when missing
--   writer:scalars({["train/loss"] = 3.21, ["train/lr"] = 6e-4}, step)
--   writer:close()
--
-- A file is a sequence of records: a little-endian uint64 length, the
-- masked CRC-32C of those 8 bytes (uint32), the data, the masked CRC-32C of
-- the data. Each record is an Event protocol buffer: wall_time (field 1,
-- double), step (2, int64), and one of file_version (3, "brain.Event:2",
-- the first record), summary (5: Summary{value (1): Value{tag (1),
-- simple_value (2, float)}}) or session_log (7: SessionLog{status (1)}).
-- Values are stored as float32, as TensorBoard keeps them.
--
-- Each writer makes a new file, events.out.tfevents.<seconds>.<host>.<n>,
-- appended to record by record and flushed after each call, so a crash
-- loses at most the call under way. A resumed run calls :start_session(step):
-- TensorBoard then drops the earlier files' points after that step.
local compat = require("tricycle.compat")
local M = {}

local CRC32C_POLYNOMIAL = 0x82F63B78 -- Castagnoli, bit-reversed
local CRC_MASK_DELTA = 0xa282ead8

local crc_table = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if c % 2 ~= 0 then
      c = compat.bxor(compat.rshift(c, 1), CRC32C_POLYNOMIAL)
    else
      c = compat.rshift(c, 1)
    end
  end
  crc_table[i] = c
end

--- CRC-32C of a string.
function M.crc32c(s)
  local crc = 0xFFFFFFFF
  for i = 1, #s do
    crc = compat.bxor(crc_table[compat.bxor(crc, s:byte(i)) % 256], compat.rshift(crc, 8))
  end
  return compat.bxor(crc, 0xFFFFFFFF)
end

--- The masked CRC the record format stores (a rotation plus a constant).
function M.masked_crc32c(s)
  local crc = M.crc32c(s)
  local rotated = compat.rshift(crc, 15) + (crc % 32768) * 131072 -- (crc >> 15) | (crc << 17), in 32 bits
  return (rotated + CRC_MASK_DELTA) % 4294967296
end

--- value (a non-negative integer below 2^53) as `count` little-endian bytes.
local function little_endian(value, count)
  local bytes = {}
  for i = 1, count do
    bytes[i] = string.char(value % 256)
    value = math.floor(value / 256)
  end
  return table.concat(bytes)
end

--- A number's IEEE bytes as the engine (little-endian, like the format) stores them.
local function float_bytes(value, dtype)
  return require("tricycle.core").tensor(value, { dtype = dtype }):tobytes()
end

--- One record around data.
function M.record(data)
  local length = little_endian(#data, 8)
  return length .. little_endian(M.masked_crc32c(length), 4) .. data .. little_endian(M.masked_crc32c(data), 4)
end

-- ---------------------------------------------------------------- protocol buffers

local function varint(n)
  local bytes = {}
  repeat
    local byte = n % 128
    -- logical shift on 5.3+: a negative int64 takes ten bytes, as protobuf writes it
    n = compat.has_integers and compat.rshift(n, 7) or math.floor(n / 128)
    bytes[#bytes + 1] = string.char(n ~= 0 and byte + 0x80 or byte)
  until n == 0
  return table.concat(bytes)
end

local function key(field, wire_type)
  return varint(field * 8 + wire_type)
end

local function length_delimited(field, bytes)
  return key(field, 2) .. varint(#bytes) .. bytes
end

--- An Event's bytes: event = {wall_time =, step =, and one of file_version =,
-- summary = {{tag, value}, ...}, session_start = true}.
function M.event(event)
  local parts = { key(1, 1) .. float_bytes(event.wall_time, "float64"), key(2, 0) .. varint(event.step or 0) }
  if event.file_version then
    parts[#parts + 1] = length_delimited(3, event.file_version)
  elseif event.summary then
    local values = {}
    for i, pair in ipairs(event.summary) do
      values[i] = length_delimited(1, length_delimited(1, pair[1]) .. key(2, 5) .. float_bytes(pair[2], "float32"))
    end
    parts[#parts + 1] = length_delimited(5, table.concat(values))
  elseif event.session_start then
    parts[#parts + 1] = length_delimited(7, key(1, 0) .. varint(1)) -- SessionLog.START
  end
  return table.concat(parts)
end

-- ---------------------------------------------------------------- writer

local Writer = {}
Writer.__index = Writer

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function host_name()
  local f = io.open("/etc/hostname", "r")
  local name = f and f:read("l")
  if f then
    f:close()
  end
  name = name or os.getenv("HOSTNAME") or "localhost"
  name = name:gsub("[^%w%.%-_]", "_")
  return name ~= "" and name or "localhost"
end

--- Writer(dir, {clock = os.time}): a new event file in dir.
function M.Writer(dir, options)
  if type(dir) ~= "string" or dir == "" then
    error(("tensorboard.Writer: dir must be a folder path, got %s"):format(tostring(dir)), 2)
  end
  options = require("tricycle.options").check_options("tensorboard.Writer", options or {}, { "clock" })
  local clock = options.clock or os.time
  os.execute("mkdir -p " .. shell_quote(dir) .. " 2> /dev/null")
  local stamp = ("%010d"):format(math.floor(clock()))
  local base = ("%s/events.out.tfevents.%s.%s"):format(dir, stamp, host_name())
  local path
  for n = 0, 9999 do
    path = ("%s.%d"):format(base, n)
    local taken = io.open(path, "rb")
    if not taken then
      break
    end
    taken:close()
  end
  local file, why = io.open(path, "wb")
  if not file then
    error(("tensorboard.Writer: cannot create %s: %s"):format(path, tostring(why)), 2)
  end
  local self = setmetatable({ path = path, file = file, clock = clock }, Writer)
  self:write_event({ wall_time = clock(), step = 0, file_version = "brain.Event:2" })
  return self
end

function Writer:write_event(event)
  if not self.file then
    error("tensorboard.Writer: the writer is closed", 3)
  end
  local ok, why = self.file:write(M.record(M.event(event)))
  if not ok then
    error(("tensorboard.Writer: cannot write %s: %s"):format(self.path, tostring(why)), 3)
  end
  self.file:flush()
end

local function check_step(step, who)
  if not compat.is_integer(step) or step < 0 then
    require("tricycle.errors").raise(("%s: step must be a non-negative integer, got %s"):format(who, tostring(step)))
  end
end

--- Several scalars of one step: {tag = value, ...} (tags sorted in the file).
function Writer:scalars(values, step)
  check_step(step, "tensorboard.Writer:scalars")
  if type(values) ~= "table" then
    error(("tensorboard.Writer:scalars: values must be a table tag -> number, got %s"):format(type(values)), 2)
  end
  local summary = {}
  for tag, value in pairs(values) do
    if type(tag) ~= "string" or type(value) ~= "number" then
      error(("tensorboard.Writer:scalars: %s = %s is not a string tag with a number"):format(tostring(tag),
        tostring(value)), 2)
    end
    summary[#summary + 1] = { tag, value }
  end
  table.sort(summary, function(a, b) return a[1] < b[1] end)
  self:write_event({ wall_time = self.clock(), step = step, summary = summary })
end

--- One scalar.
function Writer:scalar(tag, value, step)
  self:scalars({ [tag] = value }, step)
end

--- Marks a (re)start at step: TensorBoard discards points after it from earlier files of the run.
function Writer:start_session(step)
  check_step(step, "tensorboard.Writer:start_session")
  self:write_event({ wall_time = self.clock(), step = step, session_start = true })
end

function Writer:close()
  if self.file then
    self.file:close()
    self.file = nil
  end
end

Writer.__close = Writer.close
Writer.__gc = Writer.close

return M
