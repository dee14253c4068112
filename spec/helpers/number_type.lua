-- number_type(v): math.type(v) on Lua 5.3/5.4 ("integer" or "float"). On 5.1, LuaJIT and 5.2, which have
-- one number type, "integer" for an integral number within 2^53 and "float" for any other number, so a
-- spec can check that a value is integral everywhere; that an integral value is a float (2.0) is a
-- distinction only 5.3+ make (check compat.has_integers first).
local compat = require("tricycle.compat")

return function(value)
  if type(value) ~= "number" then
    return nil
  end
  if math.type then
    return math.type(value)
  end
  return compat.is_integer(value) and "integer" or "float"
end
