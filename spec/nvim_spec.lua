-- examples/nvim: :TricycleContinue in `nvim --headless` (Neovim's LuaJIT)
-- continues the current line from a checkpoint trained here for a few steps.
local command = require("helpers.command")
local examples = require("helpers.embedded_examples")
local build = examples.build

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
  local reason = examples.skip_reason({ { "nvim", "apt-get install neovim; .ci/install-deps does" } })
  if reason then
    it("runs", function() pending(reason) end)
    return
  end
  local dir = examples.scratch_folder(teardown)
  local checkpoint

  -- A 1-layer character model trained for 3 steps: its text is noise, but it
  -- is text the checkpoint's model and tokenizer produced.
  setup(function()
    checkpoint = examples.train_checkpoint(dir, "--steps 3 --n-layer 1 --n-embd 32 --n-head 2 --context-length 32 "
      .. "--batch-size 4 --threads 1")
  end)

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
