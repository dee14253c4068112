-- The folder under the build folder holding the module built for the Lua running the specs: lua (5.4),
-- lua5.1, luajit, lua5.2 or lua5.3 (see the Makefile's LUA).
if rawget(_G, "jit") then
  return "luajit"
end
return ({ ["Lua 5.1"] = "lua5.1", ["Lua 5.2"] = "lua5.2", ["Lua 5.3"] = "lua5.3" })[_VERSION] or "lua"
