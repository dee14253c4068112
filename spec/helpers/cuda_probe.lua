local module_dir = require("helpers.module_dir")
local lua_command = require("helpers.interpreter")
--- Whether the cuda device works, asked in a separate Lua process, so that a
-- spec can decide to skip without loading any CUDA library into the process
-- running the specs (the CUDA runtime and cuBLAS alone hold hundreds of MiB,
-- which the memory specs would count). TRICYCLE_CUDA_LIBRARY is inherited.
local probe = {}

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Runs Lua `code` in a fresh process with the repository's paths; returns
-- the exit status and stdout+stderr. `environment` is put before the command
-- (e.g. "-u TRICYCLE_CUDA_LIBRARY").
function probe.run(code, environment)
  local build = os.getenv("TRICYCLE_BUILD") or "build"
  local prelude = ("package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path; "
    .. "package.cpath = %q .. '/%s/?.so;' .. package.cpath; "):format(build, module_dir)
  local command = ("env %s " .. lua_command .. " -e %s 2>&1"):format(environment or "", shell_quote(prelude .. code))
  local output, status = assert(require("tricycle.compat").popen_read(command))
  return status, output
end

probe.shell_quote = shell_quote

--- true, or false and the reason the cuda device cannot be used.
function probe.cuda_available()
  local status, output = probe.run([[
    local available, reason = require("tricycle").cuda.is_available()
    io.write(available and "available" or ("unavailable: " .. reason))]])
  if status == 0 and output == "available" then
    return true
  end
  return false, (output:gsub("^unavailable: ", ""))
end

--- A describe for blocks that need the cuda device (busted's describe and pending passed in, with
-- cuda_available's results): where it is unavailable the block is pending, with the reason.
function probe.describer(describe, pending, available, reason)
  return function(name, body)
    describe(name, function()
      if not available then
        pending("the CUDA backend is not available (" .. tostring(reason) .. "); run `make test-cuda`")
        return
      end
      body()
    end)
  end
end

return probe
