--- tricycle_nvim: continues the current line with text from a GPT checkpoint
-- written by scripts/train_shakespeare.lua, inside Neovim (LuaJIT). The
-- engine comes from the source tree this file sits in: lua/ for the Lua
-- modules, <build>/luajit/ for the LuaJIT build of the module
-- (`make LUA=luajit module`).
--
--   require("tricycle_nvim").setup({ checkpoint = "out/shakespeare/checkpoint.safetensors", max_tokens = 80 })
--   :TricycleContinue 40
local M = {}

local SETTINGS = { "checkpoint", "build", "max_tokens", "temperature", "top_k", "seed" }
-- the source tree: this file is <root>/examples/nvim/lua/tricycle_nvim/init.lua
local root = debug.getinfo(1, "S").source:sub(2):match("^(.*)/examples/nvim/lua/tricycle_nvim/init%.lua$") or "."

M.settings = { max_tokens = 80, temperature = 0.8, seed = 1337 }

--- Changes settings (keys: checkpoint, build, max_tokens, temperature, top_k, seed).
function M.setup(options)
  if options == nil then
    return M.settings
  end
  if type(options) ~= "table" then
    error(("tricycle_nvim.setup: expects a table, got %s"):format(type(options)), 2)
  end
  local known = {}
  for _, name in ipairs(SETTINGS) do
    known[name] = true
  end
  for key, value in pairs(options) do
    if not known[key] then
      error(("tricycle_nvim.setup: unknown setting '%s' (valid: %s)"):format(tostring(key),
        table.concat(SETTINGS, ", ")), 2)
    end
    M.settings[key] = value
  end
  return M.settings
end

local tc
local function engine()
  if tc then
    return tc
  end
  local build = M.settings.build or vim.g.tricycle_build or os.getenv("TRICYCLE_BUILD") or (root .. "/build")
  local core = build .. "/luajit/tricycle/core.so"
  if vim.fn.filereadable(core) == 0 then
    error(("TricycleContinue: %s is missing: build the LuaJIT module with `make LUA=luajit module` in %s")
      :format(core, root), 0)
  end
  package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
  package.cpath = build .. "/luajit/?.so;" .. package.cpath
  tc = require("tricycle")
  return tc
end

local loaded = {} -- path -> { model =, tokenizer = }
local function load(path)
  if loaded[path] then
    return loaded[path]
  end
  local t = engine()
  if t.io.file_kind(path) == nil then
    error(("TricycleContinue: no checkpoint at %s (set vim.g.tricycle_checkpoint)"):format(path), 0)
  end
  local ok, state = pcall(t.checkpoint.load, path)
  if not ok then
    error("TricycleContinue: " .. tostring(state), 0)
  end
  local config = state.config
  if type(config) ~= "table" or not state.tokenizer then
    error(("TricycleContinue: %s holds no GPT config and tokenizer; not a train_shakespeare.lua checkpoint?")
      :format(path), 0)
  end
  local model = t.nn.GPT({
    vocab_size = config.vocab_size, context_length = config.context_length, n_layer = config.n_layer,
    n_head = config.n_head, n_embd = config.n_embd, bias = config.bias ~= false,
    tie_weights = config.tie_weights ~= false,
  })
  model:load_state_dict(state.model)
  model:eval()
  loaded[path] = { model = model, tokenizer = require("tricycle.tokenizer").deserialize(state.tokenizer) }
  return loaded[path]
end

--- Appends generated text to the cursor's line (new lines for the newlines
-- it holds), prompted by the buffer up to the end of that line; returns the
-- text. options.max_tokens overrides the setting.
function M.continue_line(options)
  options = options or {}
  local path = M.settings.checkpoint or vim.g.tricycle_checkpoint
  if type(path) ~= "string" or path == "" then
    error("TricycleContinue: no checkpoint set: let g:tricycle_checkpoint = 'path/to/checkpoint.safetensors'", 0)
  end
  local max_tokens = options.max_tokens or M.settings.max_tokens
  local entry = load(path)
  local row = vim.api.nvim_win_get_cursor(0)[1]
  local lines = vim.api.nvim_buf_get_lines(0, 0, row, false)
  local prompt = table.concat(lines, "\n")
  if prompt == "" then
    prompt = "\n"
  end
  local ids = entry.tokenizer:encode(prompt)
  if #ids == 0 then
    error("TricycleContinue: the text before the cursor encodes to no tokens", 0)
  end
  local generated = engine().generate(entry.model, ids, {
    max_tokens = max_tokens, temperature = M.settings.temperature, top_k = M.settings.top_k, seed = M.settings.seed,
  })
  local text = entry.tokenizer:decode(generated)
  local pieces = vim.split(text, "\n", { plain = true })
  local current = lines[row] or ""
  pieces[1] = current .. pieces[1]
  vim.api.nvim_buf_set_lines(0, row - 1, row, false, pieces)
  vim.api.nvim_win_set_cursor(0, { row + #pieces - 1, math.max(0, #pieces[#pieces] - 1) })
  return text
end

return M
