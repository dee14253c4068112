--- tricycle.cli.args: the one command-line parser of the scripts and the
-- benchmarks. `parse` reads argv against a list of typed options; `help`
-- writes their help text; `program` is a program's front door: --help
-- prints the help and exits 0, a usage error exits 2 with the message, the
-- usage line and a hint, and other failures exit 1.
--
-- Why not lua-argparse (Debian's 0.7.1, also a rock): it takes no negative
-- number as an option's value (`--lr -1` is "unknown option '-1'"), its
-- conversions' messages do not name the option, `--flag=false` and the
-- `--no-name` form of a boolean are not there (each would be a second
-- option), its --help exits the process from inside the parser, and its
-- messages and help text differ from the ones the scripts document. A
-- wrapper restoring all that is as long as this parser, and declaring the
-- rock makes `luarocks make` look for it on the network (the Debian package
-- is not in luarocks' manifest), which offline CI cannot reach.
local compat = require("tricycle.compat")
local check_options = require("tricycle.options").check_options

local M = {}

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

-- ---------------------------------------------------------------- the option lists

local TYPES = { string = true, integer = true, number = true, boolean = true, flag = true, choice = true }
local OPTION_KEYS = { "name", "type", "choices", "help", "metavar", "default" }
local POSITIONAL_KEYS = { "name", "required", "many" }

local function describe(value)
  return type(value) == "string" and ("'" .. value .. "'") or tostring(value)
end

local function is_choice(option, value)
  for _, c in ipairs(option.choices) do
    if c == value then
      return true
    end
  end
  return false
end

-- Whether value is one that an option of this kind can hold.
local function fits(option, value)
  local kind = option.type or "string"
  if kind == "integer" then
    return compat.is_integer(value)
  elseif kind == "number" then
    return type(value) == "number"
  elseif kind == "boolean" or kind == "flag" then
    return type(value) == "boolean"
  elseif kind == "choice" then
    return is_choice(option, value)
  end
  return type(value) == "string"
end

-- The option lists are the program's own code: a mistake in them is an
-- ordinary error naming the entry, not a usage error (raised at the level of
-- whoever called the caller).
local function check_lists(fn, options, positional)
  if type(options) ~= "table" then
    error(("%s: argument 'options' must be a list of options, got %s"):format(fn, type(options)), 3)
  end
  local seen = {}
  for k, option in ipairs(options) do
    local where = ("%s: option %d"):format(fn, k)
    if type(option) ~= "table" then
      error(("%s must be a table {name =, type =, ...}, got %s"):format(where, type(option)), 3)
    end
    check_options(where, option, OPTION_KEYS, 3)
    if type(option.name) ~= "string" or not option.name:match("^[%a][%w_]*$") then
      error(("%s: name must be a word of letters, digits and underscores, got %s"):format(where,
        describe(option.name)), 3)
    end
    if seen[option.name] then
      error(("%s: name '%s' is given twice"):format(where, option.name), 3)
    end
    seen[option.name] = true
    if option.type ~= nil and not TYPES[option.type] then
      error(("%s (%s): type must be one of boolean, choice, flag, integer, number, string, got %s"):format(where,
        option.name, describe(option.type)), 3)
    end
    if option.type == "choice" then
      if type(option.choices) ~= "table" or #option.choices == 0 then
        error(("%s (%s): a choice needs choices = {...}, a list of strings"):format(where, option.name), 3)
      end
      for _, c in ipairs(option.choices) do
        if type(c) ~= "string" then
          error(("%s (%s): choices must be strings, got %s"):format(where, option.name, describe(c)), 3)
        end
      end
    elseif option.choices ~= nil then
      error(("%s (%s): choices go with type = \"choice\", not %s"):format(where, option.name,
        describe(option.type or "string")), 3)
    end
    if option.default ~= nil and not fits(option, option.default) then
      error(("%s (%s): default %s is not a value of type %s"):format(where, option.name, describe(option.default),
        option.type or "string"), 3)
    end
  end
  if positional ~= nil and type(positional) ~= "table" then
    error(("%s: argument 'positional' must be a list of {name =, required =}, got %s"):format(fn, type(positional)),
      3)
  end
  for k, p in ipairs(positional or {}) do
    local where = ("%s: positional %d"):format(fn, k)
    if type(p) ~= "table" then
      error(("%s must be a table {name =, required =}, got %s"):format(where, type(p)), 3)
    end
    check_options(where, p, POSITIONAL_KEYS, 3)
    if type(p.name) ~= "string" then
      error(("%s: name must be a string, got %s"):format(where, describe(p.name)), 3)
    end
    if p.many and k ~= #positional then
      error(("%s (%s): only the last positional takes many = true"):format(where, p.name), 3)
    end
  end
end

-- ---------------------------------------------------------------- parsing

local function convert(option, text, flag)
  local kind = option.type or "string"
  if kind == "integer" then
    local value = compat.tointeger(tonumber(text))
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
    if is_choice(option, text) then
      return text
    end
    usage_error("%s expects one of %s, got '%s'", flag, table.concat(option.choices, ", "), text)
  end
  return text
end

--- Parses argv against a list of options {name =, type = "string" |
-- "integer" | "number" | "boolean" | "flag" | "choice", choices =, help =,
-- metavar =, default =}. Flags are written --some-name VALUE or
-- --some-name=VALUE ("flag" options take no value; "--no-name" sets a
-- boolean/flag false). positional: list of {name =, required =, many =}
-- (many: the last one takes every remaining word). Returns values (those
-- given, and the defaults of those not given; name -> value) and the list
-- of positionals. Raises a UsageError on anything unknown or malformed;
-- "--help"/"-h" gives values.help = true.
function M.parse(argv, options, positional)
  check_lists("cli.parse", options, positional)
  if type(argv) ~= "table" then
    error(("cli.parse: argument 1 (argv) must be a list of strings, got %s"):format(type(argv)), 2)
  end
  for i = 1, #argv do
    if type(argv[i]) ~= "string" then
      error(("cli.parse: argv[%d] must be a string, got %s"):format(i, type(argv[i])), 2)
    end
  end
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
    local last = positional[#positional]
    if #rest > #positional and not (last and last.many) then
      usage_error("unexpected argument '%s'", rest[#positional + 1])
    end
    for k, p in ipairs(positional) do
      if p.required and rest[k] == nil then
        usage_error("missing %s", p.name)
      end
    end
  end
  for _, option in ipairs(options) do
    if values[option.name] == nil then
      values[option.name] = option.default
    end
  end
  return values, rest
end

--- A help text listing the options.
function M.help(usage, description, options)
  check_lists("cli.help", options)
  local lines = { "usage: " .. usage, "" }
  if description then
    lines[#lines + 1] = description
    lines[#lines + 1] = ""
  end
  lines[#lines + 1] = "options:"
  local width = #"-h, --help"
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
    local help = option.help or ""
    if option.default ~= nil and option.default ~= false and option.default ~= "" then
      help = help .. (help ~= "" and " " or "") .. ("(default %s)"):format(tostring(option.default))
    end
    lines[#lines + 1] = ("  %-" .. width .. "s  %s"):format(left[k], help)
  end
  return table.concat(lines, "\n") .. "\n"
end

-- ---------------------------------------------------------------- programs

local Program = {}
Program.__index = Program
M.Program = Program

local PROGRAM_KEYS = { "name", "usage", "description", "options", "positional", "stdout", "stderr", "exit" }

--- program = cli.program{name =, usage =, description =, options =, positional =}
-- name prefixes the messages ("train_gpt2: ..."); usage is the usage line
-- without "usage: ". stdout, stderr (io.stdout, io.stderr) and exit
-- (os.exit) are there for tests.
function M.program(spec)
  if type(spec) ~= "table" then
    error(("cli.program: argument 1 must be a table {name =, usage =, options =, ...}, got %s"):format(type(spec)), 2)
  end
  check_options("cli.program", spec, PROGRAM_KEYS)
  for _, key in ipairs({ "name", "usage" }) do
    if type(spec[key]) ~= "string" then
      error(("cli.program: %s must be a string, got %s"):format(key, type(spec[key])), 2)
    end
  end
  local options = spec.options or {}
  check_lists("cli.program", options, spec.positional)
  return setmetatable({
    name = spec.name, usage = spec.usage, description = spec.description, options = options,
    positional = spec.positional or {}, stdout = spec.stdout or io.stdout, stderr = spec.stderr or io.stderr,
    exit = spec.exit or os.exit,
  }, Program)
end

-- Whether argv asks for help before any "--" (a command line that also
-- holds a mistake still gets the help it asks for).
local function asks_for_help(argv)
  for _, word in ipairs(argv) do
    if word == "--" then
      return false
    elseif word == "--help" or word == "-h" then
      return true
    end
  end
  return false
end

--- Parses argv (the script's `arg`): returns values and positionals as
-- cli.parse does; after --help, prints the help and exits 0; on a usage
-- error, exits as fail_usage does.
function Program:parse(argv)
  local ok, values, rest = pcall(M.parse, argv, self.options, self.positional)
  if not ok and not (M.is_usage_error(values) and asks_for_help(argv)) then
    if M.is_usage_error(values) then
      return self:fail_usage(values.message)
    end
    error(values, 0)
  end
  if not ok or values.help then
    self.stdout:write(M.help(self.usage, self.description, self.options))
    self.stdout:flush()
    return self.exit(0)
  end
  return values, rest
end

--- Bad usage: "name: message", the usage line and a hint on stderr; exit 2.
function Program:fail_usage(message)
  self.stderr:write(self.name, ": ", tostring(message), "\n", "usage: ", self.usage, "\n",
    "(--help lists every option)\n")
  self.stderr:flush()
  return self.exit(2)
end

--- Any other failure: "name: message" on stderr; exit 1.
function Program:fail(message)
  self.stderr:write(self.name, ": ", tostring(message), "\n")
  self.stderr:flush()
  return self.exit(1)
end

return M
