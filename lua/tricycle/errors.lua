--- tricycle.errors: errors that read like direct calls. A message raised
-- inside the library is placed at the first caller outside it (the line of
-- the user's program that called into the library), never at an internal
-- `lua/tricycle/...:LINE:`, however deep the library's own calls go.
--
--   local errors = require("tricycle.errors")
--   errors.raise("load: no such file")       -- error() at the caller's level
--   return errors.call(core.load, path)      -- a C function's error, re-raised so
local compat = require("tricycle.compat")

local M = {}

-- The source of this file ("@.../lua/tricycle/errors.lua") less its name:
-- every library file's source starts with it.
local library_source = debug.getinfo(1, "S").source:match("^(@.*tricycle[/\\])[^/\\]*$")

local function in_library(source)
  return library_source ~= nil and source:sub(1, #library_source) == library_source
end

--- The error() level, seen from the function calling this one, of the first
-- frame outside the library.
local function outside_level()
  local level = 2
  while true do
    local info = debug.getinfo(level + 1, "S")
    if info == nil or not in_library(info.source) then
      return level
    end
    level = level + 1
  end
end

--- Raises `message` at the first caller outside the library.
function M.raise(message)
  error(message, outside_level())
end

--- Drops a leading "<library file>:LINE: " that luaL_error or error() put on
-- a message while the library was running. The file is as Lua shortens it
-- ("...path/lua/tricycle/nn/layers.lua"), so its tail is what is compared.
function M.strip_location(message)
  if type(message) ~= "string" then
    return message
  end
  local file, rest = message:match("^([^\n:]+):%d+: (.*)$")
  if file and (in_library("@" .. file) or file:find("tricycle[/\\][%w_/\\]+%.lua$")) then
    return rest
  end
  return message
end

--- Calls fn(...) and returns its results; an error it raises is raised
-- again at the first caller outside the library, in place of the location
-- inside the library it carried (a C function's error carries none: it gets
-- the caller's too). A message located outside the library (a user's own
-- error passing through) and a non-string error value are kept as they are.
function M.call(fn, ...)
  local results = compat.pack(pcall(fn, ...))
  if not results[1] then
    local failure = results[2]
    if type(failure) ~= "string" then
      error(failure, 0)
    end
    local stripped = M.strip_location(failure)
    if stripped == failure and failure:find("^[^\n:]+:%d+: ") then
      error(failure, 0) -- a location outside the library: a user's own error passing through
    end
    error(stripped, outside_level())
  end
  return compat.unpack(results, 2, results.n)
end

return M
