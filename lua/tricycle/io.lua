--- tricycle.io: tensors to and from files.
--
--   io.save(path, {name = tensor, ...}, metadata)  -- safetensors; metadata: {string = string} or nil
--   local tensors, metadata = io.load(path)       -- metadata is {} when the file has none
--   local f <close> = io.open(path)               -- lazy: f:keys(), f:has(name), f:get(name), f:metadata()
--   io.json_encode(value), io.json_decode(text)   -- strict JSON (the engine's own reader and writer)
--   io.read_file(path, {max_bytes = n})           -- a whole regular file as a string
--   io.write_file(path, text)                     -- atomic replacement, like save
--   io.append_file(path, text), io.file_kind(path)
--
-- The files are safetensors, the format PyTorch, JAX and the Hugging Face
-- libraries read and write. Dtypes map as float32 F32, float64 F64, int32
-- I32, int64 I64, uint8 U8, bool BOOL, bfloat16 BF16, float16 F16 (both
-- read and written as such).
--
-- Saving (save, write_file) writes a temporary file next to `path`,
-- flushes it to disk and renames it over `path`: whoever reads `path`, even
-- after a crash, finds the old file or the complete new one. A symbolic
-- link is followed (its target is replaced, the link stays), an existing
-- file keeps its permissions, and temporaries left by killed saves are
-- removed by the next save to the same name.
--
-- Loading reads each tensor into memory of its own: writing into a loaded
-- tensor never changes the file, and loaded tensors stay valid whatever
-- happens to the file afterwards. A file changed in place while a handle
-- from open() reads it gives an error, not a mix of old and new bytes.
--
-- Every reader takes regular files only: a directory, FIFO, device or
-- socket is an error naming the path (never a read that blocks or does not
-- end). Paths are strings without NUL bytes.
local compat = require("tricycle.compat")
local core = require("tricycle.core")
local call = require("tricycle.errors").call
local check_options = require("tricycle.options").check_options

local M = {}

--- Writes tensors (a table name -> tensor) to path as safetensors.
-- metadata: nil or a table of strings (numbers are written as text).
function M.save(path, tensors, metadata)
  if type(path) ~= "string" then
    error(("save: argument 1 (path) must be a string, got %s"):format(type(path)), 2)
  end
  call(core.save, path, tensors, metadata)
end

--- Reads a safetensors file: returns a table name -> tensor, and the
-- metadata table ({} when there is none).
function M.load(path)
  if type(path) ~= "string" then
    error(("load: argument 1 (path) must be a string, got %s"):format(type(path)), 2)
  end
  return call(core.load, path)
end

--- Opens a safetensors file without loading every tensor: the handle has
-- :keys() (sorted names), :has(name), :get(name), :metadata(), :close(),
-- and #handle; it closes itself when collected or as a <close> variable.
-- Tensors taken from it stay valid after it is closed.
function M.open(path)
  if type(path) ~= "string" then
    error(("open: argument 1 (path) must be a string, got %s"):format(type(path)), 2)
  end
  return call(core.safetensors_open, path)
end

--- The whole of a regular file as a string. options.max_bytes (default
-- unlimited) makes a longer file an error.
function M.read_file(path, options)
  check_options("read_file", options, { "max_bytes" })
  if options ~= nil and type(options) ~= "table" then
    error(("read_file: argument 2 (options) must be a table or nil, got %s"):format(type(options)), 2)
  end
  local max_bytes = options and options.max_bytes
  if max_bytes ~= nil and (not compat.is_integer(max_bytes) or max_bytes < 0) then
    error(("read_file: options.max_bytes must be a non-negative integer, got %s"):format(tostring(max_bytes)), 2)
  end
  return call(core.read_file, path, max_bytes, "read_file")
end

--- Replaces path with text atomically (as save does).
function M.write_file(path, text)
  call(core.write_file, path, text, "write_file")
end

--- Appends text to a regular file, creating it when missing.
function M.append_file(path, text)
  call(core.append_file, path, text, "append_file")
end

--- What path names (symbolic links followed): "file", "directory",
-- "fifo", "character device", "block device", "socket", "other", or nil
-- when nothing is there. Opens nothing, so it never blocks.
function M.file_kind(path)
  return call(core.file_kind, path, "file_kind")
end

--- Strict JSON. Arrays are tables with keys 1..n, objects tables with
-- string keys (written with sorted keys); an empty table is written as {}.
-- Integers and floats keep their Lua subtype; null reads as nil.
M.json_encode = core.json_encode
M.json_decode = core.json_decode

return M
