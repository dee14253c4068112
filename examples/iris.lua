-- Fisher's iris: a 4 -> 16 -> 3 network with ReLU, trained with cross-entropy
-- and plain SGD (lr 0.1, 1,000 full-batch steps) on the 150 rows of
-- examples/data/iris.csv (see examples/data/README.md), then its accuracy on
-- them is printed: about 0.97.
--   lua5.4 examples/iris.lua
local root = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
local build = os.getenv("TRICYCLE_BUILD") or (root .. "/../build")
package.path = root .. "/../lua/?.lua;" .. root .. "/../lua/?/init.lua;" .. package.path
-- Lua 5.4's module is in <build>/lua/, each other Lua's in <build>/<lua5.1|luajit|lua5.2|lua5.3>/.
local lua_dir = rawget(_G, "jit") and "luajit"
  or ({ ["Lua 5.1"] = "lua5.1", ["Lua 5.2"] = "lua5.2", ["Lua 5.3"] = "lua5.3" })[_VERSION] or "lua"
package.cpath = build .. "/" .. lua_dir .. "/?.so;" .. package.cpath

local tc = require("tricycle")
local nn, optim, data = tc.nn, tc.optim, require("tricycle.data")

local species = { ["Iris-setosa"] = 0, ["Iris-versicolor"] = 1, ["Iris-virginica"] = 2 }

-- The four measurements (cm) of each row and its species as a class 0 to 2.
local function read_iris(path)
  local file = assert(io.open(path, "r"))
  local features, labels = {}, {}
  local header = true
  for line in file:lines() do
    if header then
      header = false
    elseif line ~= "" then
      local a, b, c, d, name = line:match("^([^,]+),([^,]+),([^,]+),([^,]+),([^,\r]+)")
      assert(species[name], "iris.csv: unknown species " .. tostring(name))
      features[#features + 1] = { tonumber(a), tonumber(b), tonumber(c), tonumber(d) }
      labels[#labels + 1] = species[name]
    end
  end
  file:close()
  return tc.tensor(features), tc.tensor(labels, { dtype = "int64" })
end

local x, y = read_iris(root .. "/data/iris.csv")
-- Each measurement standardised (mean 0, standard deviation 1) so one learning rate suits them all.
x = (x - x:mean(1, true)) / x:std(1, { keepdim = true })

tc.manual_seed(0)
local model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
local opt = optim.SGD(model:parameters(), { lr = 0.1 })
local loader = data.DataLoader{ data.TensorDataset(x, y), batch_size = 150 }

for step = 1, 1000 do
  for features, labels in loader:iter() do
    opt:zero_grad()
    local loss = nn.cross_entropy(model(features), labels)
    loss:backward()
    opt:step()
    if step % 200 == 0 then
      print(("step %4d  loss %.4f"):format(step, loss:item()))
    end
  end
end

local predicted = tc.no_grad(function() return model(x):argmax(2) end)
local accuracy = predicted:eq(y):to("float32"):mean():item()
print(("accuracy %.4f"):format(accuracy))
