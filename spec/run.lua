-- Runs the busted specs under the Lua running this file (make test: Lua 5.4, whatever `lua` points to;
-- make test-luajit: LuaJIT; make test-luas: the smoke spec under 5.1, 5.2 and 5.3).
-- TRICYCLE_BUILD names the build folder: Lua 5.4's module is in <build>/lua/tricycle/core.so, each other
-- Lua's in <build>/<lua5.1|luajit|lua5.2|lua5.3>/tricycle/core.so (see the Makefile's LUA).
local build = os.getenv("TRICYCLE_BUILD") or "build"
local module_dirs = { ["Lua 5.1"] = "lua5.1", ["Lua 5.2"] = "lua5.2", ["Lua 5.3"] = "lua5.3", ["Lua 5.4"] = "lua" }
local module_dir = rawget(_G, "jit") and "luajit" or module_dirs[_VERSION]
if not module_dir then error("spec/run.lua: unsupported Lua " .. tostring(_VERSION)) end
package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path
package.cpath = build .. "/" .. module_dir .. "/?.so;" .. package.cpath
require("busted.runner")({ standalone = false })
