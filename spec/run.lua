-- Runs the busted specs under this Lua (5.4), whatever `lua` points to.
-- TRICYCLE_BUILD names the build folder holding lua/tricycle/core.so.
local build = os.getenv("TRICYCLE_BUILD") or "build"
package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path
package.cpath = build .. "/lua/?.so;" .. package.cpath
require("busted.runner")({ standalone = false })
