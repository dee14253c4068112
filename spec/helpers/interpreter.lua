-- The command of the Lua running the specs (lua5.4, luajit, lua5.1, ...): the specs start scripts and
-- helper processes under the same Lua, which loads the module built for it.
if rawget(_G, "jit") then
  return "luajit"
end
return "lua" .. _VERSION:match("%d+%.%d+")
