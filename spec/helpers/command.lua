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

-- os.execute(command) as true when the command exited with status 0, else false, and its exit status.
M.execute = require("tricycle.compat").execute

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
