--- tricycle.arguments: the argument checks shared by the functions made of
-- the engine's ops in Lua (composed.lua, conv.lua, selection.lua). Their
-- errors are raised at the caller's line (tricycle.errors).
local core = require("tricycle.core")
local errors = require("tricycle.errors")

local Tensor = core.Tensor
local M = {}

--- Raises format:format(...) at the first caller outside the library.
function M.fail(format, ...)
  errors.raise(format:format(...))
end

--- A value as a message shows it: strings quoted.
function M.describe(value)
  if type(value) == "string" then
    return ("%q"):format(value)
  end
  return tostring(value)
end

--- "{2, 3}" for a shape (a list of sizes).
function M.shape_string(shape)
  return "{" .. table.concat(shape, ", ") .. "}"
end

--- Raises "<name>: <argument> must be a tensor, got <type>" unless value is a tensor.
function M.check_tensor(name, argument, value)
  if getmetatable(value) ~= Tensor then
    M.fail("%s: %s must be a tensor, got %s", name, argument, type(value))
  end
end

return M
