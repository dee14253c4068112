-- tricycle.datasets: where tiny Shakespeare is looked for, the checked
-- download (against a local HTTP server) and the offline error.
local lua_command = require("helpers.interpreter")
local binpack = require("helpers.binpack")
local datasets = require("tricycle.datasets")

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function temp_dir()
  local pipe = assert(io.popen("mktemp -d"))
  local dir = pipe:read("l")
  pipe:close()
  assert(dir and #dir > 0, "mktemp -d failed")
  return dir
end

local function write(path, text)
  os.execute("mkdir -p " .. shell_quote(path:match("^(.*)/[^/]*$")))
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local text = f:read("a")
  f:close()
  return text
end

local function sha256_of_text(dir, text)
  local path = dir .. "/hash-input"
  write(path, text)
  local pipe = assert(io.popen("sha256sum " .. shell_quote(path)))
  local hex = pipe:read("a"):match("^(%x+)")
  pipe:close()
  os.remove(path)
  return hex
end

local function listing(dir)
  local pipe = assert(io.popen("ls -a " .. shell_quote(dir) .. " 2>/dev/null"))
  local names = {}
  for line in pipe:lines() do
    if line ~= "." and line ~= ".." then
      names[#names + 1] = line
    end
  end
  pipe:close()
  return names
end

describe("datasets.shakespeare lookup", function()
  local dir
  before_each(function()
    dir = temp_dir()
  end)
  after_each(function()
    os.execute("rm -rf " .. shell_quote(dir))
  end)

  it("prefers an explicit path, then TRICYCLE_DATA, then the cache", function()
    write(dir .. "/explicit.txt", "explicit text")
    write(dir .. "/data/tinyshakespeare.txt", "data text")
    write(dir .. "/xdg/tricycle/tinyshakespeare.txt", "cache text")
    local env = { TRICYCLE_DATA = dir .. "/data", XDG_CACHE_HOME = dir .. "/xdg", HOME = dir .. "/home" }
    assert.are.equal("explicit text", (datasets.shakespeare({ path = dir .. "/explicit.txt", env = env })))
    assert.are.equal("data text", (datasets.shakespeare({ env = env })))
    env.TRICYCLE_DATA = dir .. "/empty"
    assert.are.equal("cache text", (datasets.shakespeare({ env = env })))
    env.TRICYCLE_DATA = nil
    assert.are.equal("cache text", (datasets.shakespeare({ env = env })))
    -- without XDG_CACHE_HOME, the cache is under HOME
    write(dir .. "/home/.cache/tricycle/tinyshakespeare.txt", "home cache text")
    assert.are.equal("home cache text", (datasets.shakespeare({ env = { HOME = dir .. "/home" } })))
  end)

  it("splits the text 90/10 by position when asked", function()
    local text = string.rep("abcdefghij", 10)
    write(dir .. "/data/tinyshakespeare.txt", text)
    local env = { TRICYCLE_DATA = dir .. "/data" }
    local train = datasets.shakespeare({ env = env, split = "train" })
    local validation = datasets.shakespeare({ env = env, split = "validation" })
    assert.are.equal(90, #train)
    assert.are.equal(10, #validation)
    assert.are.equal(text, train .. validation)
  end)

  it("an explicit path that does not exist is an error naming it", function()
    local ok, message = pcall(datasets.shakespeare, { path = dir .. "/nope.txt", env = {} })
    assert.is_false(ok)
    assert.truthy(message:find(dir .. "/nope.txt", 1, true))
  end)

  it("offline with no file: the error lists every place tried", function()
    local env = {
      TRICYCLE_DATA = dir .. "/data",
      XDG_CACHE_HOME = dir .. "/xdg",
      -- a closed port: the download fails at once
      TRICYCLE_SHAKESPEARE_URL = "http://127.0.0.1:9/input.txt",
    }
    local ok, message = pcall(datasets.shakespeare, { env = env })
    assert.is_false(ok)
    assert.truthy(message:find(dir .. "/data/tinyshakespeare.txt", 1, true))
    assert.truthy(message:find(dir .. "/xdg/tricycle/tinyshakespeare.txt", 1, true))
    assert.truthy(message:find("http://127.0.0.1:9/input.txt", 1, true))
    -- nothing half-written is left in the cache
    assert.are.same({}, listing(dir .. "/xdg/tricycle"))
  end)

  it("download = false skips the network and says so", function()
    local ok, message = pcall(datasets.shakespeare, { env = { XDG_CACHE_HOME = dir .. "/xdg" }, download = false })
    assert.is_false(ok)
    assert.truthy(message:find("downloading is turned off", 1, true))
  end)
end)

-- The server needs luasocket (Debian: lua-socket); without it these pend.
local has_socket = pcall(require, "socket")
local describe_download = has_socket and describe or function(name)
  pending(name .. " (needs luasocket)")
end

describe_download("datasets download", function()
  local dir, pid, port
  local body = "First Citizen:\nBefore we proceed any further, hear me speak.\n"

  setup(function()
    dir = temp_dir()
    write(dir .. "/served.txt", body)
    local ready = dir .. "/ready"
    local pipe = assert(io.popen((lua_command .. " spec/helpers/http_server.lua 0 %s %s >/dev/null 2>&1 & echo $!")
      :format(shell_quote(dir .. "/served.txt"), shell_quote(ready))))
    pid = pipe:read("l")
    pipe:close()
    for _ = 1, 100 do
      local text = read(ready)
      if text and text:match("%d+") then
        port = text:match("%d+")
        break
      end
      os.execute("sleep 0.05")
    end
    assert(port, "the test HTTP server did not start")
  end)

  teardown(function()
    if pid then
      os.execute("kill " .. pid .. " 2>/dev/null")
    end
    os.execute("rm -rf " .. shell_quote(dir))
  end)

  it("stores a file whose checksum matches in the cache", function()
    local cache = temp_dir()
    local env = { XDG_CACHE_HOME = cache, TRICYCLE_SHAKESPEARE_URL = ("http://127.0.0.1:%s/input.txt"):format(port) }
    local text, path = datasets.shakespeare({ env = env, sha256 = sha256_of_text(cache, body) })
    assert.are.equal(body, text)
    assert.are.equal(cache .. "/tricycle/tinyshakespeare.txt", path)
    assert.are.equal(body, read(path))
    -- the temporary file was renamed, not left behind
    assert.are.same({ "tinyshakespeare.txt" }, listing(cache .. "/tricycle"))
    -- a second call reads the cache (the server is not needed)
    env.TRICYCLE_SHAKESPEARE_URL = "http://127.0.0.1:9/unreachable"
    assert.are.equal(body, (datasets.shakespeare({ env = env })))
    os.execute("rm -rf " .. shell_quote(cache))
  end)

  it("rejects a file whose checksum does not match, keeping nothing", function()
    local cache = temp_dir()
    local env = { XDG_CACHE_HOME = cache, TRICYCLE_SHAKESPEARE_URL = ("http://127.0.0.1:%s/input.txt"):format(port) }
    -- the default expected digest is tiny Shakespeare's, which this body is not
    local ok, message = pcall(datasets.shakespeare, { env = env })
    assert.is_false(ok)
    assert.truthy(message:find("SHA-256", 1, true))
    assert.truthy(message:find(datasets.SHAKESPEARE_SHA256, 1, true))
    assert.is_nil(read(cache .. "/tricycle/tinyshakespeare.txt"))
    assert.are.same({}, listing(cache .. "/tricycle"))
    os.execute("rm -rf " .. shell_quote(cache))
  end)
end)

describe("the shared tiny Shakespeare", function()
  local data = os.getenv("TRICYCLE_DATA")
  local present = data and io.open(data .. "/tinyshakespeare.txt", "rb")
  if present then
    present:close()
  end
  local run = present and it or pending
  run("has the published SHA-256", function()
    local _, path = datasets.shakespeare()
    assert.are.equal(datasets.SHAKESPEARE_SHA256, datasets.sha256_file(path))
  end)
end)

describe("datasets.tokenize_cached", function()
  local ok_core = pcall(require, "tricycle.tokenizer")
  local run = ok_core and it or pending
  run("encodes once, then reads the ids back from a file named by the tokenizer", function()
    local tokenizer = require("tricycle.tokenizer")
    local dir = temp_dir()
    local text = "to be or not to be"
    local tok = tokenizer.CharTokenizer.new(text)
    local first, path = datasets.tokenize_cached(text, tok, { cache_dir = dir })
    assert.are.equal(tok:encode_packed(text), first)
    assert.are.equal(first, read(path))
    -- the cached file is what is read the second time: alter it and see
    local f = assert(io.open(path, "wb"))
    f:write(binpack.pack("<i4", 7))
    f:close()
    assert.are.equal(binpack.pack("<i4", 7), (datasets.tokenize_cached(text, tok, { cache_dir = dir })))
    -- another tokenizer (or text) has another file
    local other = tokenizer.CharTokenizer.new(text .. "!")
    local second, other_path = datasets.tokenize_cached(text, other, { cache_dir = dir })
    assert.are_not.equal(path, other_path)
    assert.are.equal(other:encode_packed(text), second)
    os.execute("rm -rf " .. shell_quote(dir))
  end)
end)
