--- tricycle.io: tensors to and from files.
--
--   io.save(path, {name = tensor, ...}, metadata)  -- safetensors; metadata: {string = string} or nil
--   local tensors, metadata = io.load(path)       -- metadata is {} when the file has none
--   local f <close> = io.open(path)               -- lazy: f:keys(), f:has(name), f:get(name), f:metadata()
--   io.json_encode(value), io.json_decode(text)   -- strict JSON (the engine's own reader and writer)
--
-- The files are safetensors, the format PyTorch, JAX and the Hugging Face
-- libraries read and write. Dtypes map as float32 F32, float64 F64, int32
-- I32, int64 I64, uint8 U8, bool BOOL; F16 and BF16 files load as float32.
--
-- Saving writes a temporary file next to `path`, flushes it to disk and
-- renames it over `path`: whoever reads `path`, even after a crash, finds
-- the old file or the complete new one.
--
-- Loading maps the file instead of reading it: tensors are views of a
-- private copy-on-write mapping, so a large file costs no copy, and writing
-- into a loaded tensor changes only this process's memory, never the file.
-- Loaded tensors stay valid after the file is overwritten or removed.
-- (A tensor whose bytes are not aligned for its dtype is copied.)
local core = require("tricycle.core")

local M = {}

--- Writes tensors (a table name -> tensor) to path as safetensors.
-- metadata: nil or a table of strings (numbers are written as text).
function M.save(path, tensors, metadata)
  if type(path) ~= "string" then
    error(("save: argument 1 (path) must be a string, got %s"):format(type(path)), 2)
  end
  core.save(path, tensors, metadata)
end

--- Reads a safetensors file: returns a table name -> tensor, and the
-- metadata table ({} when there is none).
function M.load(path)
  if type(path) ~= "string" then
    error(("load: argument 1 (path) must be a string, got %s"):format(type(path)), 2)
  end
  return core.load(path)
end

--- Opens a safetensors file without loading every tensor: the handle has
-- :keys() (sorted names), :has(name), :get(name), :metadata(), :close(),
-- and #handle; it closes itself when collected or as a <close> variable.
-- Tensors taken from it stay valid after it is closed.
function M.open(path)
  if type(path) ~= "string" then
    error(("open: argument 1 (path) must be a string, got %s"):format(type(path)), 2)
  end
  return core.safetensors_open(path)
end

--- Strict JSON. Arrays are tables with keys 1..n, objects tables with
-- string keys (written with sorted keys); an empty table is written as {}.
-- Integers and floats keep their Lua subtype; null reads as nil.
M.json_encode = core.json_encode
M.json_decode = core.json_decode

return M
