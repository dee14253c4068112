--- tricycle.cli: helpers for command-line programs, one module per concern:
--   tricycle.cli.args        the argument parser, help text and a program's exits
--   tricycle.cli.progress    the progress line, durations, the terminal
--   tricycle.cli.chart       SVG line charts
--   tricycle.cli.metrics     JSON Lines logs and atomic file writes
--   tricycle.cli.interrupts  a loop that Ctrl-C stops between two steps
-- This module gathers their functions in one table (cli.parse, cli.Progress,
-- cli.svg_chart, cli.append_jsonl, cli.run_steps, ...). None of them loads
-- tricycle.core before it needs it. (This file stays lua/tricycle/cli.lua, beside
-- the folder, as models.lua does: an install over an older one replaces it.)
local M = {}

for _, name in ipairs({ "args", "progress", "chart", "metrics", "interrupts" }) do
  for key, value in pairs(require("tricycle.cli." .. name)) do
    assert(M[key] == nil, "tricycle.cli: two modules define " .. key)
    M[key] = value
  end
end

return M
