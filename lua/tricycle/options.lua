--- tricycle.options: the check that functions and constructors taking an
-- options table run first, so that a misspelt key (`max_token = 5`) is an
-- error instead of an option silently left at its default.
--
--   local check_options = require("tricycle.options").check_options
--   check_options("generate", options, { "max_tokens", "temperature", "seed" })
local M = {}

local function sorted_names(allowed)
  local names = {}
  for i, name in ipairs(allowed) do
    names[i] = name
  end
  table.sort(names)
  return table.concat(names, ", ")
end

--- Raises "<name>: unknown option 'key' (valid: a, b, c)" when `options`
-- holds a key that is not in the list `allowed`; nil and non-tables pass
-- (the caller checks types). `level` is the level the caller would give
-- error() for the same message (default 2: whoever called the caller).
function M.check_options(name, options, allowed, level)
  if type(options) ~= "table" then
    return options
  end
  local known = {}
  for _, key in ipairs(allowed) do
    known[key] = true
  end
  for key in pairs(options) do
    if not known[key] then
      local shown = type(key) == "string" and ("'" .. key .. "'") or ("[" .. tostring(key) .. "]")
      error(("%s: unknown option %s (valid: %s)"):format(name, shown, sorted_names(allowed)), (level or 2) + 1)
    end
  end
  return options
end

return M
