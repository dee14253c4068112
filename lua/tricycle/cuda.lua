--- tricycle.cuda: whether a CUDA device can be used, and why not.
-- The CUDA backend is a separate shared library loaded only when a CUDA
-- device is asked for; this build does not ship one yet, so every answer
-- explains that instead of failing later.
local core = require("tricycle.core")

local cuda = {}

--- true when tensors can be moved to "cuda"; otherwise false and the reason.
function cuda.is_available()
  local ok, message = pcall(function()
    return core.zeros({ 1 }):to("cuda")
  end)
  if ok then
    return true
  end
  local reason = tostring(message):gsub("^.-device cuda is not available: ", "")
  return false, reason
end

--- The device scripts should use: "cuda" when available, else "cpu" and a
-- one-line notice explaining why.
function cuda.pick_device(requested)
  if requested == "cpu" then
    return "cpu"
  end
  local available, reason = cuda.is_available()
  if available then
    return "cuda"
  end
  return "cpu", "GPU not used: " .. reason
end

return cuda
