-- A child process of spec/lazy_loading_spec.lua: a fresh Lua state runs one
-- scenario (argument 1) and prints "key value" lines, value a Lua literal
-- or a word.
local scenario = arg[1]

local function loaded_modules()
  local names = {}
  for name in pairs(package.loaded) do
    if name:find("^tricycle%.") then
      names[#names + 1] = name
    end
  end
  table.sort(names)
  return table.concat(names, ",")
end

local function values(t)
  local list = {}
  for i = 1, t:numel() do
    list[i] = t:reshape({ -1 })[i]:item()
  end
  return table.concat(list, ",")
end

if scenario == "overrides" then
  -- the engine methods that composed.lua and the modules it loads replace
  local core = require("tricycle.core")
  local engine = {}
  for name in pairs(core.Tensor.methods) do
    engine[name] = true
  end
  local replaced = {}
  for name in pairs(require("tricycle.composed").methods) do
    if engine[name] then
      replaced[#replaced + 1] = name
    end
  end
  table.sort(replaced)
  print("replaced " .. table.concat(replaced, ","))
  return
end

local tc = require("tricycle")
print("after_require " .. loaded_modules())
if scenario == "gpt" then
  tc.manual_seed(1)
  local model = tc.nn.GPT({ vocab_size = 11, context_length = 8, n_layer = 1, n_head = 2, n_embd = 8 })
  model:eval()
  local logits = tc.no_grad(function() return model(tc.tensor({ { 1, 2, 3 } }, { dtype = "int64" })) end)
  print("argmax " .. logits:select(2, -1):argmax(-1):item())
  print("after_gpt " .. loaded_modules())
elseif scenario == "sort" then
  local sorted, order = tc.tensor({ { 3, 1, 2 }, { 0, 5, 4 } }):sort(2, { descending = true })
  print("sorted " .. values(sorted) .. " order " .. values(order))
elseif scenario == "topk" then
  local top, where = tc.tensor({ 3, 1, 2, 9 }):topk(2)
  print("top " .. values(top) .. " where " .. values(where))
elseif scenario == "index_add" then
  local t = tc.zeros({ 3 }):index_add(1, tc.tensor({ 0, 2 }, { dtype = "int64" }), tc.tensor({ 1, 2 }),
    { alpha = 3 })
  print("index_add " .. values(t))
elseif scenario == "range" then
  local t = tc.arange(0, 6):reshape({ 2, 3 })
  print("range " .. values(t[{ { 1, 2 }, 2 }]))
  t[{ 1, { 2, 3 } }] = 7
  print("assigned " .. values(t))
elseif scenario == "tostring" then
  print("text " .. tostring(tc.tensor({ 1.5, 2 })):gsub("%s+", "_"))
elseif scenario == "function" then
  print("linspace " .. values(tc.linspace(0, 1, 5)))
elseif scenario == "method" then
  print("chunks " .. #tc.arange(0, 6):chunk(3))
elseif scenario == "nn" then
  print("classes " .. type(tc.nn.Conv2d) .. "," .. type(tc.nn.Llama) .. "," .. type(tc.nn.MultiheadAttention)
    .. "," .. type(tc.nn.DistributedDataParallel) .. "," .. type(tc.nn.BatchNorm2d))
elseif scenario == "missing" then
  print("missing " .. tostring(tc.no_such_function) .. "," .. tostring(tc.nn.NoSuchLayer) .. ","
    .. tostring(tc.tensor({ 1 }).no_such_method))
elseif scenario == "ops" then
  local composed = 0
  for _, op in ipairs(tc.ops()) do
    if op.composed then
      composed = composed + 1
    end
  end
  print("composed_ops " .. composed)
end
print("after " .. loaded_modules())
