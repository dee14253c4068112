--- tricycle.cli.progress: what a long run shows on the terminal: a progress
-- line (redrawn in place on a terminal, a log line every few steps
-- otherwise), durations, and whether stdout is a terminal and how wide.
local compat = require("tricycle.compat")
local check_options = require("tricycle.options").check_options

local M = {}

--- True when stdout is a terminal (a dependency-free check through test -t).
function M.stdout_is_terminal(getenv)
  getenv = getenv or os.getenv
  local term = getenv("TERM")
  if term == nil or term == "" or term == "dumb" then
    return false
  end
  -- The child inherits our stdout, so `test -t 1` asks about it.
  return (compat.execute("test -t 1"))
end

--- True when stdin is a terminal (a program reading its input from it says
-- so, instead of waiting silently).
function M.stdin_is_terminal()
  local ok, how, code = os.execute("test -t 0")
  return ok == true and how == "exit" and code == 0
end

--- The terminal's width in columns: $COLUMNS, else `stty size` on the
-- controlling terminal, else 80.
function M.terminal_columns(getenv)
  getenv = getenv or os.getenv
  local columns = compat.tointeger(tonumber(getenv("COLUMNS") or ""))
  if columns and columns > 0 then
    return columns
  end
  local pipe = io.popen("stty size < /dev/tty 2> /dev/null")
  if pipe then
    local text = pipe:read("a") or ""
    pipe:close()
    columns = compat.tointeger(tonumber(text:match("^%s*%d+%s+(%d+)") or ""))
    if columns and columns > 0 then
      return columns
    end
  end
  return 80
end

--- "1h02m", "3m05s", "12s".
function M.format_duration(seconds)
  if seconds ~= seconds or seconds == math.huge or seconds < 0 then
    return "?"
  end
  seconds = math.floor(seconds + 0.5)
  if seconds >= 3600 then
    return ("%dh%02dm"):format(compat.idiv(seconds, 3600), compat.idiv((seconds % 3600), 60))
  elseif seconds >= 60 then
    return ("%dm%02ds"):format(compat.idiv(seconds, 60), seconds % 60)
  end
  return ("%ds"):format(seconds)
end

--- A progress display: on a terminal one line redrawn with \r, otherwise a
-- plain log line every `every` updates (and the last).
-- progress = cli.Progress{total =, terminal = bool, out = io.stdout, every = 10, width = 24, columns =}
-- progress:update(step, {loss =, lr =, tokens_per_second =, mfu =, eta =})
-- With columns (the terminal's width), the redrawn line never wraps: the
-- bar goes first, then fields from the right.
local Progress = {}
Progress.__index = Progress
M.Progress = Progress

function Progress.new(options)
  if type(options) ~= "table" then
    error(("cli.Progress.new: argument 1 must be a table {total =, ...}, got %s"):format(type(options)), 2)
  end
  check_options("cli.Progress.new", options, { "total", "terminal", "out", "every", "width", "columns" })
  if not compat.is_integer(options.total) or options.total < 0 then
    error(("cli.Progress.new: total must be a non-negative integer, got %s"):format(tostring(options.total)), 2)
  end
  local self = setmetatable({
    total = options.total,
    terminal = options.terminal,
    out = options.out or io.stdout,
    every = options.every or 10,
    width = options.width or 24,
    columns = options.columns,
    drawn = false,
  }, Progress)
  return self
end

function Progress:parts(step, fields)
  local parts = { ("step %d/%d"):format(step, self.total) }
  if fields.loss then
    parts[#parts + 1] = ("loss %.4f"):format(fields.loss)
  end
  if fields.lr then
    parts[#parts + 1] = ("lr %.2e"):format(fields.lr)
  end
  if fields.tokens_per_second then
    parts[#parts + 1] = ("%.0f tok/s"):format(fields.tokens_per_second)
  end
  if fields.mfu then
    parts[#parts + 1] = ("MFU %.1f%%"):format(100 * fields.mfu)
  end
  if fields.eta then
    parts[#parts + 1] = "ETA " .. M.format_duration(fields.eta)
  end
  return parts
end

function Progress:line(step, fields)
  return table.concat(self:parts(step, fields), " | ")
end

--- The bar and the line, cut to fit `columns` (nil: no limit).
function Progress:fitted(step, fields)
  local done = math.floor(self.width * step / math.max(1, self.total) + 1e-9)
  local bar = "[" .. string.rep("#", done) .. string.rep(".", self.width - done) .. "] "
  local parts = self:parts(step, fields)
  local limit = self.columns and self.columns - 1
  local line = bar .. table.concat(parts, " | ")
  if not limit or #line <= limit then
    return line
  end
  while #parts > 1 and #table.concat(parts, " | ") > limit do
    parts[#parts] = nil
  end
  return table.concat(parts, " | "):sub(1, limit)
end

function Progress:update(step, fields)
  if self.terminal then
    self.out:write("\r\27[K", self:fitted(step, fields))
    self.out:flush()
    self.drawn = true
  elseif step % self.every == 0 or step == self.total then
    self.out:write(self:line(step, fields), "\n")
    self.out:flush()
  end
end

--- Ends the redrawn line so ordinary output can follow.
function Progress:finish_line()
  if self.terminal and self.drawn then
    self.out:write("\n")
    self.out:flush()
    self.drawn = false
  end
end

--- Prints a message without corrupting the progress line.
function Progress:print(message)
  if self.terminal and self.drawn then
    self.out:write("\r\27[K")
    self.drawn = false
  end
  self.out:write(message, "\n")
  self.out:flush()
end

return M
