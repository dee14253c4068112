-- int64_tensor(values): tc.tensor(values, { dtype = "int64" }) on Lua 5.3/5.4. On 5.1, LuaJIT and 5.2,
-- where the binding refuses a number past 2^53, the values go through float64 and a conversion that
-- saturates, so that the int64 extremes still reach the op under test: -wide(63) is -2^63 exactly and
-- wide(63) - 1, which a double rounds to 2^63, saturates to 2^63 - 1. Other values past 2^53 are not exact.
local compat = require("tricycle.compat")
local tc = require("tricycle")

return function(values)
  if compat.has_integers then
    return tc.tensor(values, { dtype = "int64" })
  end
  return tc.tensor(values, { dtype = "float64" }):to("int64")
end
