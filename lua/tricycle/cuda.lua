--- tricycle.cuda: whether a CUDA device can be used, and why not.
-- The CUDA backend is a separate shared library (libtricycle_cuda.so, built
-- by `make cuda`) that the engine loads with dlopen the first time a tensor
-- is moved to "cuda"; requiring tricycle loads nothing of CUDA. When the
-- device cannot be used, the reason says which of these it is: no backend
-- library, no NVIDIA driver, no CUDA device, or no kernel image for this GPU.
-- TRICYCLE_CUDA_LIBRARY=path loads another build of the library (the CPU
-- emulation used by the specs, for one).
local core = require("tricycle.core")

local cuda = {}

--- true when tensors can be moved to "cuda"; otherwise false and the reason.
-- The first call loads the backend library (once per process and context).
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

--- Makes the CUDA device with 0-based `index` the one this process's
-- tensors go to; only before the first use of "cuda" (an error after).
-- tc.distributed.init() already picks the local rank's device.
function cuda.set_device(index)
  require("tricycle.errors").call(core.set_cuda_device, index)
end

--- The 0-based index of the device "cuda" means (or will mean).
function cuda.device()
  return core.cuda_device()
end

--- The device scripts should use: "cuda" when available, else "cpu" and a
-- one-line notice explaining why ("GPU not used: ..."). Asking for "cpu"
-- loads nothing.
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
