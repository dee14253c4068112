--- tricycle.datasets: text corpora found locally, in a cache, or downloaded.
--
--   local text = tc.datasets.shakespeare()             -- the whole of tiny Shakespeare
--   local text = tc.datasets.shakespeare{path = "input.txt"}
--
-- Where tiny Shakespeare is looked for, in order:
--   1. options.path, when given (and only there);
--   2. $TRICYCLE_DATA/tinyshakespeare.txt;
--   3. the cache: $XDG_CACHE_HOME/tricycle/tinyshakespeare.txt, or
--      ~/.cache/tricycle/tinyshakespeare.txt;
--   4. a download (curl, else wget) from its public address, or from
--      $TRICYCLE_SHAKESPEARE_URL, checked against its SHA-256 (sha256sum)
--      and stored in the cache (written atomically, as tc.io.write_file).
-- When none works the error lists every place tried. Files are read and
-- written through the engine (tricycle.core): only regular files are read,
-- so a FIFO or a directory at one of the paths is an error naming it.
--
-- Every function takes options.env: a table (or a function name -> value)
-- read in place of os.getenv, so callers and tests can point it elsewhere.
local compat = require("tricycle.compat")
local check_options = require("tricycle.options").check_options

local M = {}

M.SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
M.SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
M.SHAKESPEARE_FILE = "tinyshakespeare.txt"

local function getenv_from(env)
  if env == nil then
    return os.getenv
  elseif type(env) == "function" then
    return env
  elseif type(env) == "table" then
    return function(name)
      return env[name]
    end
  end
  error("datasets: options.env must be a table or a function, got " .. type(env), 3)
end

local function nonempty(value)
  if value ~= nil and value ~= "" then
    return value
  end
  return nil
end

--- Single-quotes a string for /bin/sh.
local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shell_quote = shell_quote

local function core()
  return require("tricycle.core")
end

--- The text of a regular file; nil when nothing is at path; an error naming
-- `who` and the path for anything else (a directory, a FIFO, unreadable).
local function read_file(path, who)
  if core().file_kind(path, who) == nil then
    return nil
  end
  return core().read_file(path, nil, who)
end

--- True when path names a regular file, false when nothing is there; an
-- error naming `who` when it is something else.
local function file_exists(path, who)
  local kind = core().file_kind(path, who)
  if kind ~= nil and kind ~= "file" then
    error(("%s: %s is a %s, not a regular file"):format(who, path, kind), 0)
  end
  return kind == "file"
end

--- Runs a shell command quietly; true when it exited 0.
local function run_quiet(command)
  return (compat.execute(command .. " >/dev/null 2>&1"))
end

--- The cache folder: $XDG_CACHE_HOME/tricycle, else $HOME/.cache/tricycle (nil when neither is set).
local function cache_dir(options)
  local getenv = getenv_from(options and options.env)
  local xdg = nonempty(getenv("XDG_CACHE_HOME"))
  if xdg then
    return xdg .. "/tricycle"
  end
  local home = nonempty(getenv("HOME"))
  if home then
    return home .. "/.cache/tricycle"
  end
  return nil
end

function M.cache_dir(options)
  if options ~= nil and type(options) ~= "table" then
    error("datasets.cache_dir: options must be a table {env =}, got " .. type(options), 2)
  end
  check_options("datasets.cache_dir", options, { "env" })
  return cache_dir(options)
end

--- The SHA-256 of a file as lowercase hex (via sha256sum), or nil and a reason.
function M.sha256_file(path)
  local pipe = io.popen("sha256sum " .. shell_quote(path) .. " 2>/dev/null")
  if not pipe then
    return nil, "cannot run sha256sum"
  end
  local out = pipe:read("a") or ""
  pipe:close()
  local hex = out:match("^(%x+)")
  if not hex or #hex ~= 64 then
    return nil, "sha256sum gave no digest (is it installed?)"
  end
  return hex:lower()
end

--- Downloads url to dest atomically, checked against sha256 (when given).
-- The body is held in memory until it is checked, then written with the
-- engine's atomic writer: nothing partial or unchecked ever sits at dest.
-- Returns true, or nil and a reason.
function M.download(url, dest, sha256)
  local dir = dest:match("^(.*)/[^/]*$")
  if dir and dir ~= "" and not run_quiet("mkdir -p " .. shell_quote(dir)) then
    return nil, "cannot create the folder " .. dir
  end
  local command, tool
  if run_quiet("command -v curl") then
    command = ("curl -fsSL --connect-timeout 20 --max-time 300 %s 2>/dev/null"):format(shell_quote(url))
    tool = "curl"
  elseif run_quiet("command -v wget") then
    command = ("wget -q -T 20 -O - %s 2>/dev/null"):format(shell_quote(url))
    tool = "wget"
  else
    return nil, "neither curl nor wget is installed"
  end
  local body, code = compat.popen_read(command)
  if not body then
    return nil, "cannot run " .. tool
  end
  if code ~= 0 then
    return nil, tool .. " could not fetch " .. url
  end
  if sha256 then
    local digest, why = M.sha256_string(body)
    if not digest then
      return nil, why
    end
    if digest ~= sha256:lower() then
      return nil, ("the file from %s has SHA-256 %s, expected %s; not kept"):format(url, digest, sha256:lower())
    end
  end
  local ok, why = pcall(core().write_file, dest, body, "datasets.download")
  if not ok then
    return nil, ("cannot store the download in %s: %s"):format(dest, tostring(why))
  end
  return true
end

--- Finds (or downloads) a file by the lookup order above. spec: {file =,
-- url =, url_env =, sha256 =, name =}. Returns its path.
function M.locate(spec, options)
  options = options or {}
  local getenv = getenv_from(options.env)
  local tried = {}
  local who = "datasets." .. tostring(spec.name)
  if options.path ~= nil then
    if file_exists(options.path, who) then
      return options.path
    end
    error(("datasets.%s: no file at the given path %s"):format(spec.name, options.path), 3)
  end
  local data = nonempty(getenv("TRICYCLE_DATA"))
  if data then
    local path = data .. "/" .. spec.file
    if file_exists(path, who) then
      return path
    end
    tried[#tried + 1] = path .. " ($TRICYCLE_DATA)"
  else
    tried[#tried + 1] = "$TRICYCLE_DATA/" .. spec.file .. " ($TRICYCLE_DATA is not set)"
  end
  local cache = cache_dir(options)
  local cached = cache and (cache .. "/" .. spec.file)
  if cached then
    if file_exists(cached, who) then
      return cached
    end
    tried[#tried + 1] = cached .. " (cache)"
  else
    tried[#tried + 1] = "the cache ($XDG_CACHE_HOME and $HOME are not set)"
  end
  local url = nonempty(spec.url_env and getenv(spec.url_env)) or spec.url
  local why
  if options.download == false then
    why = "downloading is turned off"
  elseif not cached then
    why = "no cache folder to download into"
  else
    local ok
    ok, why = M.download(url, cached, options.sha256 or spec.sha256)
    if ok then
      return cached
    end
  end
  tried[#tried + 1] = url .. " (download: " .. tostring(why) .. ")"
  error(("datasets.%s: cannot find %s. Looked in:\n  %s\nPut the file at one of the paths above (or set TRICYCLE_DATA "
    .. "to the folder holding it, or pass {path = ...}).")
    :format(spec.name, spec.file, table.concat(tried, "\n  ")), 3)
end

--- The text of tiny Shakespeare (about 1.1 MB). options: path, env,
-- download (false to never download), sha256 (expected digest of a
-- download), split ("train" = the first 90% of characters, "validation" =
-- the rest; default: all of it).
function M.shakespeare(options)
  options = options or {}
  if type(options) ~= "table" then
    error("datasets.shakespeare: options must be a table, got " .. type(options), 2)
  end
  check_options("datasets.shakespeare", options, { "path", "split", "download", "sha256", "env" })
  local path = M.locate({
    name = "shakespeare",
    file = M.SHAKESPEARE_FILE,
    url = M.SHAKESPEARE_URL,
    url_env = "TRICYCLE_SHAKESPEARE_URL",
    sha256 = M.SHAKESPEARE_SHA256,
  }, options)
  local text = read_file(path, "datasets.shakespeare")
  if not text then
    error("datasets.shakespeare: cannot read " .. path, 2)
  end
  if options.split == nil then
    return text, path
  end
  local cut = math.floor(#text * 0.9)
  if options.split == "train" then
    return text:sub(1, cut), path
  elseif options.split == "validation" or options.split == "val" then
    return text:sub(cut + 1), path
  end
  error("datasets.shakespeare: split must be 'train' or 'validation', got " .. tostring(options.split), 2)
end

--- SHA-256 (hex) of a string, through a temporary file and sha256sum.
function M.sha256_string(text)
  local temp = os.tmpname()
  local file = io.open(temp, "wb")
  if not file then
    return nil, "cannot write a temporary file"
  end
  file:write(text)
  file:close()
  local digest, why = M.sha256_file(temp)
  os.remove(temp)
  return digest, why
end

--- The ids of text under a tokenizer as a packed string of native int32s
-- (what tokenizer:encode_packed gives), cached in the cache folder under a
-- name made from the SHA-256 of the tokenizer's saved form and the text, so
-- a second run with the same tokenizer skips encoding. options: env,
-- cache_dir (default: the cache folder). Falls back to encoding when there
-- is no cache folder or sha256sum.
function M.tokenize_cached(text, tokenizer, options)
  options = options or {}
  check_options("datasets.tokenize_cached", options, { "cache_dir", "env" })
  local dir = options.cache_dir or cache_dir(options)
  local key = dir and M.sha256_string(tokenizer:serialize() .. "\0" .. text)
  if not key then
    return tokenizer:encode_packed(text), nil
  end
  local path = ("%s/tokens-%s.i32"):format(dir, key:sub(1, 32))
  local cached = read_file(path, "datasets.tokenize_cached")
  if cached and #cached % 4 == 0 then
    return cached, path
  end
  local packed = tokenizer:encode_packed(text)
  -- The cache only saves time: a folder that cannot be written is no error.
  if run_quiet("mkdir -p " .. shell_quote(dir)) then
    pcall(core().write_file, path, packed, "datasets.tokenize_cached")
  end
  return packed, path
end

return M
