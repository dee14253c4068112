-- The scenarios of spec/lazy_loading_spec.lua. Each takes the tricycle module and returns its results as
-- {key = text}; the spec runs one in a fresh Lua state (this file as a script: `lua lazy_probe.lua NAME` prints
-- "key text" lines) and compares it with the same scenario run where the library is fully loaded. Requiring this
-- file loads nothing of tricycle.
local M = {}

--- The tricycle.* modules loaded now, sorted, comma-separated.
function M.loaded_modules()
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
  local flat = t:reshape({ -1 })
  for i = 1, t:numel() do
    list[i] = flat[i]:item()
  end
  return table.concat(list, ",")
end

M.scenarios = {
  gpt = function(tc)
    tc.manual_seed(1)
    local model = tc.nn.GPT({ vocab_size = 11, context_length = 8, n_layer = 1, n_head = 2, n_embd = 8 })
    model:eval()
    local logits = tc.no_grad(function() return model(tc.tensor({ { 1, 2, 3 } }, { dtype = "int64" })) end)
    return { logits = values(logits), after_gpt = M.loaded_modules() }
  end,
  sort = function(tc)
    local sorted, order = tc.tensor({ { 3, 1, 2 }, { 0, 5, 4 } }):sort(2, { descending = true })
    return { sorted = values(sorted), order = values(order) }
  end,
  topk = function(tc)
    local top, where = tc.tensor({ 3, 1, 2, 9 }):topk(2)
    return { top = values(top), where = values(where) }
  end,
  index_add = function(tc)
    local t = tc.zeros({ 3 }):index_add(1, tc.tensor({ 0, 2 }, { dtype = "int64" }), tc.tensor({ 1, 2 }),
      { alpha = 3 })
    return { index_add = values(t) }
  end,
  range = function(tc)
    local t = tc.arange(0, 6):reshape({ 2, 3 })
    local range = values(t[{ { 1, 2 }, 2 }])
    t[{ 1, { 2, 3 } }] = 7
    return { range = range, assigned = values(t) }
  end,
  tostring = function(tc)
    return { text = (tostring(tc.tensor({ 1.5, 2 })):gsub("%s+", "_")) }
  end,
  ["function"] = function(tc)
    return { linspace = values(tc.linspace(0, 1, 5)), after = M.loaded_modules() }
  end,
  method = function(tc)
    return { chunks = tostring(#tc.arange(0, 6):chunk(3)) }
  end,
  nn = function(tc)
    return { classes = type(tc.nn.Conv2d) .. "," .. type(tc.nn.Llama) .. "," .. type(tc.nn.MultiheadAttention)
      .. "," .. type(tc.nn.DistributedDataParallel) .. "," .. type(tc.nn.BatchNorm2d) }
  end,
  missing = function(tc)
    return { missing = tostring(tc.no_such_function) .. "," .. tostring(tc.nn.NoSuchLayer) .. ","
      .. tostring(tc.tensor({ 1 }).no_such_method) }
  end,
  ops = function(tc)
    local composed = 0
    for _, op in ipairs(tc.ops()) do
      if op.composed then
        composed = composed + 1
      end
    end
    return { composed_ops = tostring(composed) }
  end,
}

--- The engine methods that composed.lua and the modules it loads replace; run before tricycle is required.
function M.replaced_methods()
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
  return table.concat(replaced, ",")
end

local name = ... -- the module's name when required, the scenario's when run as a script
if M.scenarios[name] or name == "overrides" then
  if name == "overrides" then
    print("replaced " .. M.replaced_methods())
    return M
  end
  local tc = require("tricycle")
  print("after_require " .. M.loaded_modules())
  for key, text in pairs(M.scenarios[name](tc)) do
    print(key .. " " .. text)
  end
end

return M
