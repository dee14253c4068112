-- Runs a shell command and returns its output (stdout and stderr) and exit
-- status, under every Lua (5.1's pipe:close gives no status, so the shell
-- prints it).
local M = {}

function M.run(command)
  local pipe = assert(io.popen(command .. ' 2>&1; echo "exit status $?"'))
  local output = pipe:read("*a")
  pipe:close()
  local code = tonumber(output:match("exit status (%d+)\n?$"))
  return output:gsub("exit status %d+\n?$", ""), code
end

-- os.execute(command) as true when the command exited with status 0, else false, and its exit status:
-- 5.1 and LuaJIT return the shell's raw wait status (a number, 0 on success), 5.2+ true or nil, "exit"
-- or "signal", and the code.
function M.execute(command)
  local first, how, code = os.execute(command)
  if type(first) == "number" then
    local status = first >= 256 and math.floor(first / 256) or first
    return status == 0, status
  end
  if how == "signal" then
    return false, 128 + code
  end
  return first == true, code
end

-- Whether a program is on PATH.
function M.found(program)
  local _, code = M.run("command -v " .. program .. " >/dev/null")
  return code == 0
end

function M.exists(path)
  local file = io.open(path, "rb")
  if file then
    file:close()
  end
  return file ~= nil
end

return M
