local module_dir = require("helpers.module_dir")
local lua_command = require("helpers.interpreter")
local shell_quote = require("helpers.scratch").shell_quote
-- The code samples of README.md and docs/*.md are real programs. Every
-- ```lua block must at least compile; a block whose info string reads
-- "lua run" is run as a program (in a scratch folder, against this build)
-- and must exit cleanly. "lua run data" marks a block that reads tiny
-- Shakespeare: it runs only when TRICYCLE_DATA is set.
local build = os.getenv("TRICYCLE_BUILD") or "build"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

local function command_output(command)
  local pipe = assert(io.popen(command))
  local text = pipe:read("a")
  pipe:close()
  return text
end

local root = command_output("pwd"):gsub("%s+$", "")
local build_dir = build:sub(1, 1) == "/" and build or (root .. "/" .. build)

-- The fenced ```lua blocks of a markdown file: {line =, info =, code =}.
local function lua_blocks(path)
  local blocks, current = {}, nil
  local number = 0
  for line in (read(path) .. "\n"):gmatch("(.-)\n") do
    number = number + 1
    if current then
      if line:match("^```%s*$") then
        current.code = table.concat(current.lines, "\n") .. "\n"
        blocks[#blocks + 1] = current
        current = nil
      else
        current.lines[#current.lines + 1] = line
      end
    else
      local info = line:match("^```lua(.*)$")
      if info then
        current = { line = number, info = info, lines = {} }
      end
    end
  end
  assert(current == nil, path .. ": a ```lua block opened at line " .. tostring(current and current.line)
    .. " is never closed")
  return blocks
end

-- Runs code as a Lua 5.4 program in a fresh folder; returns ok, output.
local function run_program(code)
  local dir = command_output("mktemp -d"):gsub("%s+$", "")
  local file = assert(io.open(dir .. "/sample.lua", "wb"))
  file:write(code)
  file:close()
  local command = ("cd %s && LUA_PATH=%s LUA_CPATH=%s " .. lua_command .. " sample.lua 2>&1"):format(shell_quote(dir),
    shell_quote(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;"),
    shell_quote(build_dir .. "/" .. module_dir .. "/?.so;;"))
  local output, status = assert(require("tricycle.compat").popen_read(command))
  os.execute("rm -rf " .. shell_quote(dir))
  return status == 0, output
end

local documents = { "README.md" }
for name in command_output("ls docs/*.md 2>/dev/null"):gmatch("[^\n]+") do
  documents[#documents + 1] = name
end

for _, path in ipairs(documents) do
  describe(path, function()
    local blocks = lua_blocks(path)
    for _, block in ipairs(blocks) do
      local where = ("%s:%d"):format(path, block.line)
      local words = {}
      for word in block.info:gmatch("%S+") do
        words[word] = true
      end
      -- (a `<close>` variable is Lua 5.4 syntax and string.pack 5.3's; the docs say so beside them)
      local function pending_because(why) return function(name) pending(name .. " (" .. why .. ")") end end
      local closes = _VERSION ~= "Lua 5.4" and block.code:find("<close>", 1, true)
      local compile_it = closes and pending_because("a <close> variable needs Lua 5.4") or it
      local only_newer = closes and compile_it
        or not string.pack and block.code:find("string.pack", 1, true) and pending_because("string.pack needs Lua 5.3")
      compile_it("compiles the sample at line " .. block.line, function()
        local chunk, message = load(block.code, "=" .. where)
        assert.is_not_nil(chunk, message)
      end)
      if words.run then
        local needs_data = words.data and not os.getenv("TRICYCLE_DATA")
        local test = only_newer or needs_data and pending or it
        test("runs the sample at line " .. block.line, function()
          local ok, output = run_program(block.code)
          assert.is_true(ok, where .. " failed:\n" .. output)
        end)
      end
    end
  end)
end
