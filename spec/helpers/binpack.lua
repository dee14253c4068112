-- string.pack and string.unpack for the specs on every Lua: 5.3/5.4's own, and elsewhere a stand-in for the
-- formats the specs use ('<' and '=' (little-endian here), 'i'/'I' with a size of 1, 2, 4 or 8, 'B', 'f'
-- and 'd'; integers within 2^53), the floats through the engine's own conversions.
local M = {}

if string.pack then
  M.pack, M.unpack = string.pack, string.unpack
  return M
end

local core = require("tricycle.core")

-- The items of a format: { kind, size } for each.
local function items(format)
  local list, at = {}, 1
  while at <= #format do
    local c = format:sub(at, at)
    at = at + 1
    if c == "i" or c == "I" then
      local digits = format:match("^%d+", at) or "4"
      at = at + (format:match("^%d+", at) and #digits or 0)
      list[#list + 1] = { c, tonumber(digits) }
    elseif c == "B" then
      list[#list + 1] = { "I", 1 }
    elseif c == "f" then
      list[#list + 1] = { "f", 4 }
    elseif c == "d" then
      list[#list + 1] = { "d", 8 }
    elseif c ~= "<" and c ~= "=" and c ~= " " then
      error("binpack: format option '" .. c .. "' is not supported")
    end
  end
  return list
end

local function integer_bytes(value, size)
  local bytes = {}
  local negative = value < 0
  local rest = negative and -value - 1 or value
  for i = 1, size do
    local byte = rest % 256
    bytes[i] = string.char(negative and 255 - byte or byte)
    rest = (rest - byte) / 256
  end
  return table.concat(bytes)
end

function M.pack(format, ...)
  local values, parts = { ... }, {}
  for i, item in ipairs(items(format)) do
    local kind, size, value = item[1], item[2], values[i]
    if kind == "f" then
      parts[i] = core.tensor(value, { dtype = "float32" }):tobytes()
    elseif kind == "d" then
      parts[i] = core.tensor(value, { dtype = "float64" }):tobytes()
    else
      parts[i] = integer_bytes(value, size)
    end
  end
  return table.concat(parts)
end

function M.unpack(format, bytes, at)
  at = at or 1
  local results = {}
  for i, item in ipairs(items(format)) do
    local kind, size = item[1], item[2]
    local piece = bytes:sub(at, at + size - 1)
    if #piece < size then error("binpack.unpack: data string too short") end
    if kind == "f" then
      results[i] = core.from_bytes(piece, "float32", { 1 }):item()
    elseif kind == "d" then
      results[i] = core.from_bytes(piece, "float64", { 1 }):item()
    else
      local value, scale = 0, 1
      for k = 1, size do
        value, scale = value + piece:byte(k) * scale, scale * 256
      end
      if kind == "i" and piece:byte(size) >= 128 then value = value - scale end
      results[i] = value
    end
    at = at + size
  end
  results[#results + 1] = at
  return unpack(results, 1, #results)
end

return M
