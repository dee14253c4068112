-- Scratch folders and hand-made files for the specs of hostile files: a
-- folder that is removed whatever the body does, FIFOs, and safetensors
-- files written byte by byte; and the files every spec reads or writes
-- (temporary paths, Tiny Shakespeare).
local module_dir = require("helpers.module_dir")
local lua_command = require("helpers.interpreter")
local binpack = require("helpers.binpack")
local compat = require("tricycle.compat")
local M = {}

function M.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- A new empty folder (mktemp -d).
function M.new_dir()
  local pipe = assert(io.popen("mktemp -d /tmp/tricycle_spec_XXXXXX"))
  local dir = pipe:read("l")
  pipe:close()
  assert(dir and dir ~= "", "mktemp -d failed")
  return dir
end

--- Removes dir and everything in it (undoing the immutable flag some
-- specs set).
function M.remove_dir(dir)
  os.execute("chattr -R -i " .. M.shell_quote(dir) .. " 2>/dev/null; rm -rf " .. M.shell_quote(dir))
end

--- Runs body(dir) in a fresh folder, removes the folder, then returns what
-- body returned or raises its error again unchanged.
function M.in_dir(body)
  local dir = M.new_dir()
  local results = compat.pack(pcall(body, dir))
  M.remove_dir(dir)
  if not results[1] then
    error(results[2], 0)
  end
  return compat.unpack(results, 2, results.n)
end

function M.write(path, bytes)
  local file = assert(io.open(path, "wb"))
  file:write(bytes)
  file:close()
  return path
end

function M.read(path)
  local file = io.open(path, "rb")
  if not file then
    return nil
  end
  local bytes = file:read("a")
  file:close()
  return bytes
end

--- A fresh path where nothing is (os.tmpname's file removed).
function M.temp_path()
  local path = os.tmpname()
  os.remove(path)
  return path
end

--- Tiny Shakespeare's text from $TRICYCLE_DATA (default ../shared/data),
-- or nil when it is not there.
function M.shakespeare()
  local dir = os.getenv("TRICYCLE_DATA")
  if not dir or dir == "" then dir = "../shared/data" end
  return M.read(dir .. "/tinyshakespeare.txt")
end

function M.mkfifo(path)
  assert(os.execute("mkfifo " .. M.shell_quote(path)), "mkfifo failed")
  return path
end

--- The bytes of a safetensors file: the header's length (8 bytes, little
-- endian), the header text, then the data.
function M.safetensors(header, data)
  return binpack.pack("<I8", #header) .. header .. (data or "")
end

--- The names in dir (without . and ..), sorted.
function M.listing(dir)
  local pipe = assert(io.popen("ls -A " .. M.shell_quote(dir)))
  local names = {}
  for name in pipe:lines() do
    names[#names + 1] = name
  end
  pipe:close()
  table.sort(names)
  return names
end

--- Permission bits of path as an octal string such as "600" (stat -c %a).
function M.mode(path)
  local pipe = assert(io.popen("stat -c %a " .. M.shell_quote(path)))
  local mode = pipe:read("l")
  pipe:close()
  return mode
end

--- The Lua interpreter running the specs, with the package paths of this
-- run, for child processes.
function M.lua_command()
  local build = os.getenv("TRICYCLE_BUILD") or "build"
  return ("TRICYCLE_BUILD=%s " .. lua_command .. " -e %s"):format(M.shell_quote(build), M.shell_quote(
    ("package.path = 'lua/?.lua;lua/?/init.lua;spec/?.lua;' .. package.path; "
      .. "package.cpath = '%s/%s/?.so;' .. package.cpath"):format(build, module_dir)))
end

return M
