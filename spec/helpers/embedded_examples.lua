-- What the specs of the examples that run inside another program (Neovim,
-- LÖVE) share: the reason to leave them pending (a program, the LuaJIT module
-- or the training text missing), a scratch folder removed after the spec, and
-- a checkpoint trained here with scripts/train_shakespeare.lua.
--
--   local examples = require("helpers.embedded_examples")
--   describe("...", function()
--     local reason = examples.skip_reason({ { "nvim", "apt-get install neovim" } })
--     if reason then it("runs", function() pending(reason) end) return end
--     local dir = examples.scratch_folder(teardown)
--     setup(function() checkpoint = examples.train_checkpoint(dir, "--steps 3 --n-layer 1 ...") end)
local command = require("helpers.command")
local M = {}

M.build = os.getenv("TRICYCLE_BUILD") or "build"
M.data = os.getenv("TRICYCLE_DATA")

--- Why the example cannot run here, or nil. programs: a list of {name, how to install it}.
function M.skip_reason(programs)
  for _, program in ipairs(programs) do
    if not command.found(program[1]) then
      return ("%s is not installed (%s)"):format(program[1], program[2])
    end
  end
  if not command.exists(M.build .. "/luajit/tricycle/core.so") then
    return M.build .. "/luajit/tricycle/core.so is not built (make LUA=luajit module)"
  end
  if not M.data then
    return "TRICYCLE_DATA is not set (the tiny Shakespeare text trains the checkpoint)"
  end
end

--- The path of a folder not made yet (train_checkpoint makes it); pass busted's teardown, which removes it
-- after the tests (helpers do not see the spec's globals).
function M.scratch_folder(teardown)
  local dir = os.tmpname()
  os.remove(dir)
  teardown(function() command.run(("rm -rf %q"):format(dir)) end)
  return dir
end

--- Trains a model into dir with scripts/train_shakespeare.lua (arguments: its options for the model and steps;
-- no evaluation beyond one batch, no sample) and returns the checkpoint's path.
function M.train_checkpoint(dir, arguments)
  local output, code = command.run(("TRICYCLE_BUILD=%q lua5.4 scripts/train_shakespeare.lua %s --eval-batches 1 "
    .. "--sample-tokens 0 --out %q --data %q/tinyshakespeare.txt"):format(M.build, arguments, dir, M.data))
  if code ~= 0 then
    error(("training the checkpoint failed (exit status %s):\n%s"):format(tostring(code), output), 2)
  end
  return dir .. "/checkpoint.safetensors"
end

return M
