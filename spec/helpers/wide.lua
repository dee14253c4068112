-- wide(n): 2^n as an integer on Lua 5.3/5.4 (as `1 << n` writes it; n up to 62). On 5.1, LuaJIT and 5.2
-- it is the double 2^n, exact too, but an integer past 2^53 that the binding refuses ("past 2^53"), so
-- the specs that use it check a refusal there.
local compat = require("tricycle.compat")

return function(n)
  if compat.has_integers then
    return compat.lshift(1, n)
  end
  return 2 ^ n
end
