-- examples/nvim: :TricycleContinue in `nvim --headless` (Neovim's LuaJIT)
-- continues the current line from a checkpoint trained here for a few steps.
local command = require("helpers.command")
local build = os.getenv("TRICYCLE_BUILD") or "build"
local data = os.getenv("TRICYCLE_DATA")

local function skip_reason()
  if not command.found("nvim") then
    return "nvim is not installed (apt-get install neovim; .ci/install-deps does)"
  end
  if not command.exists(build .. "/luajit/tricycle/core.so") then
    return build .. "/luajit/tricycle/core.so is not built (make LUA=luajit module)"
  end
  if not data then
    return "TRICYCLE_DATA is not set (the tiny Shakespeare text trains the checkpoint)"
  end
end

-- A 1-layer character model trained for 3 steps: its text is noise, but it
-- is text the checkpoint's model and tokenizer produced.
local function train_checkpoint(dir)
  local output, code = command.run(("TRICYCLE_BUILD=%q lua5.4 scripts/train_shakespeare.lua --steps 3 --n-layer 1 "
    .. "--n-embd 32 --n-head 2 --context-length 32 --batch-size 4 --eval-batches 1 --sample-tokens 0 "
    .. "--threads 1 --out %q --data %q/tinyshakespeare.txt"):format(build, dir, data))
  assert.are.equal(0, code, output)
  return dir .. "/checkpoint.safetensors"
end

-- Runs :TricycleContinue <count> on a file holding `text`, cursor on its last
-- line; returns the saved buffer and nvim's output.
local function continue_in_nvim(checkpoint, text, count)
  local file = os.tmpname()
  local handle = assert(io.open(file, "w"))
  handle:write(text)
  handle:close()
  local output, code = command.run(("TRICYCLE_BUILD=%q nvim --headless --clean --cmd 'set rtp+=examples/nvim' "
    .. "--cmd \"let g:tricycle_checkpoint = '%s'\" -c 'runtime plugin/tricycle.lua' -c 'normal! G' "
    .. "-c 'TricycleContinue %s' -c 'wq' %q"):format(build, checkpoint, count, file))
  handle = assert(io.open(file, "r"))
  local saved = handle:read("*a")
  handle:close()
  os.remove(file)
  assert.are.equal(0, code, output)
  return saved, output
end

describe("the Neovim plugin", function()
  local reason = skip_reason()
  if reason then
    it("runs", function() pending(reason) end)
    return
  end
  local dir = os.tmpname()
  os.remove(dir)
  local checkpoint

  setup(function() checkpoint = train_checkpoint(dir) end)
  teardown(function() command.run(("rm -rf %q"):format(dir)) end)

  it(":TricycleContinue appends the text generate.lua gives for the same prompt and seed", function()
    local saved = continue_in_nvim(checkpoint, "First line\nROMEO:\n", 30)
    local expected, code = command.run(("printf 'First line\\nROMEO:' | TRICYCLE_BUILD=%q lua5.4 "
      .. "scripts/generate.lua %q --max-tokens 30 --temperature 0.8 --seed 1337 --device cpu")
      :format(build, checkpoint))
    assert.are.equal(0, code, expected)
    assert.truthy(saved:find("^First line\nROMEO:"), saved)
    assert.is_true(#saved > #"First line\nROMEO:\n" + 10, saved)
    -- generate.lua prints the prompt, the text and a newline; the buffer ends with a newline
    assert.are.equal(expected, saved)
  end)

  it("a missing checkpoint is reported and the buffer left as it was", function()
    local saved, output = continue_in_nvim("/nonexistent/checkpoint.safetensors", "ROMEO:\n", 10)
    assert.are.equal("ROMEO:\n", saved)
    assert.truthy(output:find("no checkpoint at /nonexistent/checkpoint.safetensors", 1, true), output)
  end)

  it("a bad token count is refused, naming it", function()
    local saved, output = continue_in_nvim(checkpoint, "ROMEO:\n", "lots")
    assert.are.equal("ROMEO:\n", saved)
    assert.truthy(output:find("TricycleContinue: the token count must be a non-negative integer, got 'lots'", 1,
      true), output)
  end)
end)
