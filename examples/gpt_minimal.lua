-- A minimal GPT training loop on a fixed text, character level.
--   lua5.4 examples/gpt_minimal.lua
local root = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = root .. "/../lua/?.lua;" .. root .. "/../lua/?/init.lua;" .. package.path
-- Lua 5.4's module is in <build>/lua/, each other Lua's in <build>/<lua5.1|luajit|lua5.2|lua5.3>/.
local lua_dir = rawget(_G, "jit") and "luajit"
  or ({ ["Lua 5.1"] = "lua5.1", ["Lua 5.2"] = "lua5.2", ["Lua 5.3"] = "lua5.3" })[_VERSION] or "lua"
package.cpath = (os.getenv("TRICYCLE_BUILD") or (root .. "/../build")) .. "/" .. lua_dir .. "/?.so;" .. package.cpath
local compat = require("tricycle.compat")
local tc = require("tricycle")

local text = ("to be, or not to be, that is the question. "):rep(4)
local chars, id = {}, {}
for c in text:gmatch(".") do if not id[c] then chars[#chars + 1] = c; id[c] = #chars - 1 end end
local ids = {}
for c in text:gmatch(".") do ids[#ids + 1] = id[c] end

tc.manual_seed(1); math.randomseed(1)
local T, B = 32, 8
local model = tc.nn.GPT{vocab_size = #chars, context_length = T, n_layer = 2, n_head = 4, n_embd = 48}
local optimizer = tc.optim.AdamW(model:parameters(), {lr = 3e-3, weight_decay = 0})
for step = 1, 150 do
  local x, y = {}, {}
  for b = 1, B do
    local s = math.random(1, #ids - T)
    x[b], y[b] = {compat.unpack(ids, s, s + T - 1)}, {compat.unpack(ids, s + 1, s + T)}
  end
  local _, loss = model(tc.tensor(x, {dtype = "int64"}), {targets = tc.tensor(y, {dtype = "int64"})})
  optimizer:zero_grad(); loss:backward(); tc.nn.clip_grad_norm(model:parameters(), 1.0); optimizer:step()
  if step == 1 or step % 25 == 0 then print(("step %3d  loss %.4f"):format(step, loss:item())) end
end
