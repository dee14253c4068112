--- tricycle.cli: small helpers for command-line programs: argument parsing,
-- a progress line, JSON-lines logs and an SVG loss chart. Files are read and
-- written through the engine (tricycle.core, loaded on first use): regular
-- files only, and atomic replacement for write_atomic.
local M = {}

-- ---------------------------------------------------------------- interrupts

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
-- gets the default action (the process ends at once).
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

-- ---------------------------------------------------------------- arguments

--- An error a program should report as bad usage (exit code 2).
local UsageError = {}
UsageError.__index = UsageError
UsageError.__tostring = function(e)
  return e.message
end
M.UsageError = UsageError

local function usage_error(fmt, ...)
  error(setmetatable({ message = fmt:format(...) }, UsageError), 0)
end
M.usage_error = usage_error

function M.is_usage_error(e)
  return getmetatable(e) == UsageError
end

local function flag_of(name)
  return "--" .. name:gsub("_", "-")
end
M.flag_of = flag_of

local function convert(option, text, flag)
  local kind = option.type or "string"
  if kind == "integer" then
    local value = math.tointeger(tonumber(text))
    if not value then
      usage_error("%s expects an integer, got '%s'", flag, text)
    end
    return value
  elseif kind == "number" then
    -- "1e999" reads as infinity and "-nan" or "0/0" never as a number: no
    -- option means either, so both are refused here
    local value = tonumber(text)
    if not value or value ~= value or value == math.huge or value == -math.huge then
      usage_error("%s expects a finite number, got '%s'", flag, text)
    end
    return value
  elseif kind == "boolean" then
    if text == "true" or text == "1" or text == "yes" then
      return true
    elseif text == "false" or text == "0" or text == "no" then
      return false
    end
    usage_error("%s expects true or false, got '%s'", flag, text)
  elseif kind == "choice" then
    for _, c in ipairs(option.choices) do
      if c == text then
        return text
      end
    end
    usage_error("%s expects one of %s, got '%s'", flag, table.concat(option.choices, ", "), text)
  end
  return text
end

--- Parses argv against a list of options {name =, type = "string" |
-- "integer" | "number" | "boolean" | "flag" | "choice", choices =, help =,
-- metavar =}. Flags are written --some-name VALUE or --some-name=VALUE
-- ("flag" options take no value; "--no-name" sets a boolean/flag false).
-- positional: list of {name =, required =}. Returns values (only those
-- given; name -> value) and the list of positionals. Raises a UsageError
-- on anything unknown or malformed; "--help"/"-h" gives values.help = true.
function M.parse(argv, options, positional)
  positional = positional or {}
  local by_flag = {}
  for _, option in ipairs(options) do
    by_flag[flag_of(option.name)] = option
  end
  local values, rest = {}, {}
  local i = 1
  while i <= #argv do
    local arg = argv[i]
    if arg == "--help" or arg == "-h" then
      values.help = true
    elseif arg == "--" then
      for j = i + 1, #argv do
        rest[#rest + 1] = argv[j]
      end
      break
    elseif arg:sub(1, 2) == "--" then
      local flag, inline = arg:match("^(%-%-[^=]+)=(.*)$")
      flag = flag or arg
      local option = by_flag[flag]
      local negated = false
      if not option and flag:sub(1, 5) == "--no-" then
        option = by_flag["--" .. flag:sub(6)]
        negated = option ~= nil and (option.type == "flag" or option.type == "boolean")
        if not negated then
          option = nil
        end
      end
      if not option then
        usage_error("unknown option %s", flag)
      end
      if negated then
        values[option.name] = false
      elseif option.type == "flag" then
        if inline then
          values[option.name] = convert({ type = "boolean" }, inline, flag)
        else
          values[option.name] = true
        end
      else
        local text = inline
        if text == nil then
          i = i + 1
          text = argv[i]
          if text == nil then
            usage_error("%s needs a value", flag)
          end
        end
        values[option.name] = convert(option, text, flag)
      end
    elseif arg:sub(1, 1) == "-" and #arg > 1 and not tonumber(arg) then
      usage_error("unknown option %s", arg)
    else
      rest[#rest + 1] = arg
    end
    i = i + 1
  end
  if not values.help then
    if #rest > #positional then
      usage_error("unexpected argument '%s'", rest[#positional + 1])
    end
    for k, p in ipairs(positional) do
      if p.required and rest[k] == nil then
        usage_error("missing %s", p.name)
      end
    end
  end
  return values, rest
end

--- A help text listing the options.
function M.help(usage, description, options)
  local lines = { "usage: " .. usage, "" }
  if description then
    lines[#lines + 1] = description
    lines[#lines + 1] = ""
  end
  lines[#lines + 1] = "options:"
  local width = 0
  local left = {}
  for k, option in ipairs(options) do
    local text = flag_of(option.name)
    if option.type ~= "flag" then
      text = text .. " " .. (option.metavar or (option.type == "choice" and table.concat(option.choices, "|"))
        or (option.type or "string"):upper())
    end
    left[k] = text
    width = math.max(width, #text)
  end
  lines[#lines + 1] = ("  %-" .. width .. "s  %s"):format("-h, --help", "show this help and exit")
  for k, option in ipairs(options) do
    lines[#lines + 1] = ("  %-" .. width .. "s  %s"):format(left[k], option.help or "")
  end
  return table.concat(lines, "\n") .. "\n"
end

-- ---------------------------------------------------------------- terminal

--- True when stdout is a terminal (a dependency-free check through test -t).
function M.stdout_is_terminal(getenv)
  getenv = getenv or os.getenv
  local term = getenv("TERM")
  if term == nil or term == "" or term == "dumb" then
    return false
  end
  -- The child inherits our stdout, so `test -t 1` asks about it.
  local ok, how, code = os.execute("test -t 1")
  return ok == true and how == "exit" and code == 0
end

--- The terminal's width in columns: $COLUMNS, else `stty size` on the
-- controlling terminal, else 80.
function M.terminal_columns(getenv)
  getenv = getenv or os.getenv
  local columns = math.tointeger(tonumber(getenv("COLUMNS") or ""))
  if columns and columns > 0 then
    return columns
  end
  local pipe = io.popen("stty size < /dev/tty 2> /dev/null")
  if pipe then
    local text = pipe:read("a") or ""
    pipe:close()
    columns = math.tointeger(tonumber(text:match("^%s*%d+%s+(%d+)") or ""))
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
    return ("%dh%02dm"):format(seconds // 3600, (seconds % 3600) // 60)
  elseif seconds >= 60 then
    return ("%dm%02ds"):format(seconds // 60, seconds % 60)
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

-- ---------------------------------------------------------------- JSON lines

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local named = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
    return named[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

local function json_value(v)
  local t = type(v)
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      return "null"
    end
    if math.type(v) == "integer" then
      return tostring(v)
    end
    return ("%.17g"):format(v)
  elseif t == "string" then
    return json_string(v)
  elseif t == "boolean" then
    return tostring(v)
  elseif t == "table" then
    if #v > 0 or next(v) == nil then
      local items = {}
      for i = 1, #v do
        items[i] = json_value(v[i])
      end
      return "[" .. table.concat(items, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do
      keys[#keys + 1] = tostring(k)
    end
    table.sort(keys)
    local items = {}
    for _, k in ipairs(keys) do
      items[#items + 1] = json_string(k) .. ":" .. json_value(v[k])
    end
    return "{" .. table.concat(items, ",") .. "}"
  end
  return "null"
end

--- One JSON object on one line (keys sorted; numbers round-trip).
function M.json_line(record)
  return json_value(record)
end

local function core()
  return require("tricycle.core")
end

--- Appends one JSON object as a line to path (a regular file, created when
-- missing).
function M.append_jsonl(path, record)
  local ok, why = pcall(core().append_file, path, json_value(record) .. "\n", "cli.append_jsonl")
  if not ok then
    error(why, 2)
  end
end

--- Reads a JSON-lines file written by append_jsonl into a list of records
-- (the simple subset it writes: flat objects of numbers, strings, booleans);
-- {} when there is no file.
function M.read_jsonl(path)
  if core().file_kind(path, "cli.read_jsonl") == nil then
    return {}
  end
  local ok, text = pcall(core().read_file, path, nil, "cli.read_jsonl")
  if not ok then
    error(text, 2)
  end
  local records = {}
  for line in text:gmatch("[^\n]+") do
    if line:match("%S") then
      local record = {}
      for key, value in line:gmatch('"([^"]+)":([^,}]+)') do
        if value == "true" or value == "false" then
          record[key] = value == "true"
        elseif value:sub(1, 1) == '"' then
          record[key] = value:sub(2, -2)
        elseif value ~= "null" then
          record[key] = tonumber(value)
        end
      end
      records[#records + 1] = record
    end
  end
  return records
end

-- ---------------------------------------------------------------- files

--- Writes text to path atomically, with the engine's writer (tc.io.write_file:
-- temporary file beside it, fsync, rename; modes kept, links followed).
function M.write_atomic(path, text)
  local ok, why = pcall(core().write_file, path, text, "cli.write_atomic")
  if not ok then
    error(why, 2)
  end
end

-- ---------------------------------------------------------------- SVG chart

local function nice_step(range, count)
  local raw = range / count
  local magnitude = 10 ^ math.floor(math.log(raw, 10))
  for _, m in ipairs({ 1, 2, 2.5, 5, 10 }) do
    if raw <= m * magnitude then
      return m * magnitude
    end
  end
  return 10 * magnitude
end

local function escape_xml(s)
  return (tostring(s):gsub("[<>&\"]", { ["<"] = "&lt;", [">"] = "&gt;", ["&"] = "&amp;", ['"'] = "&quot;" }))
end

--- An SVG line chart. series: list of {name =, color =, points = {{x, y}, ...}}.
-- options: title, x_label, y_label, width (640), height (400).
function M.svg_chart(series, options)
  options = options or {}
  local W, H = options.width or 640, options.height or 400
  local left, right, top, bottom = 64, 16, 36, 48
  local xmin, xmax, ymin, ymax = math.huge, -math.huge, math.huge, -math.huge
  for _, s in ipairs(series) do
    for _, p in ipairs(s.points) do
      local x, y = p[1], p[2]
      if y == y and y ~= math.huge and y ~= -math.huge then
        xmin, xmax = math.min(xmin, x), math.max(xmax, x)
        ymin, ymax = math.min(ymin, y), math.max(ymax, y)
      end
    end
  end
  if xmin > xmax then
    xmin, xmax, ymin, ymax = 0, 1, 0, 1
  end
  if xmax == xmin then
    xmax = xmin + 1
  end
  if ymax == ymin then
    ymin, ymax = ymin - 0.5, ymax + 0.5
  end
  local ystep = nice_step(ymax - ymin, 5)
  ymin = math.floor(ymin / ystep) * ystep
  ymax = math.ceil(ymax / ystep) * ystep
  local xstep = nice_step(xmax - xmin, 6)
  local pw, ph = W - left - right, H - top - bottom
  local function sx(x)
    return left + (x - xmin) / (xmax - xmin) * pw
  end
  local function sy(y)
    return top + (1 - (y - ymin) / (ymax - ymin)) * ph
  end
  local out = {}
  local function add(fmt, ...)
    out[#out + 1] = fmt:format(...)
  end
  add('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">', W, H, W, H)
  add('<rect width="%d" height="%d" fill="white"/>', W, H)
  if options.title then
    add('<text x="%d" y="20" text-anchor="middle" font-size="14">%s</text>', W // 2, escape_xml(options.title))
  end
  local y = ymin
  while y <= ymax + ystep * 1e-6 do
    add('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>', left, sy(y), W - right, sy(y))
    add('<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>', left - 6, sy(y), ("%.4g"):format(y))
    y = y + ystep
  end
  local x = math.ceil(xmin / xstep) * xstep
  while x <= xmax + xstep * 1e-6 do
    add('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>', sx(x), top, sx(x), H - bottom)
    add('<text x="%.1f" y="%d" text-anchor="middle">%s</text>', sx(x), H - bottom + 16, ("%.6g"):format(x))
    x = x + xstep
  end
  add('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>', left, top, pw, ph)
  if options.x_label then
    add('<text x="%.1f" y="%d" text-anchor="middle">%s</text>', left + pw / 2, H - 10, escape_xml(options.x_label))
  end
  if options.y_label then
    add('<text x="14" y="%.1f" text-anchor="middle" transform="rotate(-90 14 %.1f)">%s</text>', top + ph / 2, top + ph / 2,
      escape_xml(options.y_label))
  end
  for k, s in ipairs(series) do
    local coords = {}
    for _, p in ipairs(s.points) do
      if p[2] == p[2] and p[2] ~= math.huge and p[2] ~= -math.huge then
        coords[#coords + 1] = ("%.1f,%.1f"):format(sx(p[1]), sy(p[2]))
      end
    end
    local color = s.color or ({ "#1f77b4", "#d62728", "#2ca02c", "#9467bd" })[(k - 1) % 4 + 1]
    if #coords == 1 then
      local cx, cy = coords[1]:match("([^,]+),([^,]+)")
      add('<circle cx="%s" cy="%s" r="3" fill="%s"/>', cx, cy, color)
    elseif #coords > 1 then
      add('<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>', color, table.concat(coords, " "))
    end
    add('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>', W - right - 130, top + 12 + 16 * (k - 1),
      W - right - 110, top + 12 + 16 * (k - 1), color)
    add('<text x="%d" y="%d" dominant-baseline="middle">%s</text>', W - right - 104, top + 12 + 16 * (k - 1), escape_xml(s.name))
  end
  add("</svg>")
  return table.concat(out, "\n") .. "\n"
end

return M
