--- tricycle.cli.interrupts: a training loop that Ctrl-C stops between two
-- steps, never inside one.
local M = {}

--- Runs step() while more() is true, so that Ctrl-C stops the loop only
-- between two steps, never inside one (a half-applied optimiser update).
-- Returns true when more() said stop, false when interrupted; an error in
-- step() or more() is raised again.
--
-- How: the standalone `lua` handles SIGINT by setting a debug hook on its
-- main thread that raises "interrupted!" at the next Lua instruction there:
-- that hook is the flag. Each step runs in a coroutine created before any
-- signal, whose own hook stays unset, so the step runs to its end; the
-- hook fires when control is back in the calling thread, between steps.
-- No C state is involved, so every lua_State has its own. A second Ctrl-C
-- gets the default action (the process ends at once). LuaJIT keeps one
-- hook for all coroutines: there Ctrl-C raises "interrupted!" inside the
-- running step, which this raises again like any step's error.
function M.run_steps(more, step)
  local steps = coroutine.create(function()
    while more() do
      step()
      coroutine.yield()
    end
  end)
  local step_failure
  local finished, interruption = pcall(function()
    while coroutine.status(steps) ~= "dead" do
      local ok, failure = coroutine.resume(steps)
      if not ok then
        step_failure = { failure }
        return
      end
    end
  end)
  if step_failure then
    error(step_failure[1], 0)
  end
  if finished then
    return true
  end
  if tostring(interruption):find("interrupted!", 1, true) then
    return false
  end
  error(interruption, 0)
end

return M
