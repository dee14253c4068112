-- Trains a small MLP to separate two interleaved spirals (a built-in,
-- seeded dataset) and prints its accuracy; it reaches at least 95%.
--   lua5.4 examples/classifier.lua
local root = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
local build = os.getenv("TRICYCLE_BUILD") or (root .. "/../build")
package.path = root .. "/../lua/?.lua;" .. root .. "/../lua/?/init.lua;" .. package.path
-- Lua 5.4's module is in <build>/lua/, each other Lua's in <build>/<lua5.1|luajit|lua5.2|lua5.3>/.
local lua_dir = rawget(_G, "jit") and "luajit"
  or ({ ["Lua 5.1"] = "lua5.1", ["Lua 5.2"] = "lua5.2", ["Lua 5.3"] = "lua5.3" })[_VERSION] or "lua"
package.cpath = build .. "/" .. lua_dir .. "/?.so;" .. package.cpath

local tc = require("tricycle")
local nn, optim = tc.nn, tc.optim

-- Two spirals of `n` points each, with a little noise; labels 0 and 1.
local function spirals(n, seed)
  math.randomseed(seed)
  local points, labels = {}, {}
  for class = 0, 1 do
    for i = 1, n do
      local r = i / n * 5
      local angle = i / n * 3.5 * math.pi + class * math.pi
      local noise = function() return (math.random() - 0.5) * 0.15 end
      points[#points + 1] = { r * math.cos(angle) / 5 + noise(), r * math.sin(angle) / 5 + noise() }
      labels[#labels + 1] = class
    end
  end
  return tc.tensor(points), tc.tensor(labels, { dtype = "int64" })
end

tc.manual_seed(0)
local x, y = spirals(200, 1)
local model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
local optimizer = optim.AdamW(model:parameters(), { lr = 0.02, weight_decay = 0 })

local function accuracy()
  local predicted = tc.no_grad(function() return model(x):argmax(2) end)
  return predicted:eq(y):to("float32"):mean():item()
end

local started = os.clock()
for step = 1, 300 do
  local loss = nn.cross_entropy(model(x), y)
  optimizer:zero_grad()
  loss:backward()
  optimizer:step()
  if step % 50 == 0 then
    print(("step %4d  loss %.4f  accuracy %.1f%%"):format(step, loss:item(), 100 * accuracy()))
  end
end
print(("final accuracy %.1f%% (target >= 95%%) in %.1f s"):format(100 * accuracy(), os.clock() - started))
