-- Modules (activations, Flatten, ModuleList, ModuleDict), forward hooks, and the map-style Dataset/DataLoader.
local tc = require("tricycle")
local nn = require("tricycle.nn")
local data = require("tricycle.data")

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

describe("activation modules", function()
  it("LeakyReLU, ELU, Softmax and LogSoftmax against naive Lua", function()
    local values = { -2, -0.5, 0.25, 3 }
    local x = tc.tensor(values, { dtype = "float64" })
    local leaky, elu = nn.LeakyReLU(0.1)(x):totable(), nn.ELU(0.5)(x):totable()
    for i, v in ipairs(values) do
      assert.are.equal(v > 0 and v or 0.1 * v, leaky[i])
      assert.is_true(math.abs((v > 0 and v or 0.5 * (math.exp(v) - 1)) - elu[i]) < 1e-15)
    end
    local total = 0
    for _, v in ipairs(values) do total = total + math.exp(v) end
    local soft, log_soft = nn.Softmax()(x):totable(), nn.LogSoftmax(1)(x):totable()
    for i, v in ipairs(values) do
      assert.is_true(math.abs(math.exp(v) / total - soft[i]) < 1e-15)
      assert.is_true(math.abs(v - math.log(total) - log_soft[i]) < 1e-14)
    end
  end)
  it("Flatten merges start_dim .. end_dim", function()
    local x = tc.randn({ 2, 3, 4, 5 })
    assert.are.same({ 2, 60 }, nn.Flatten()(x).shape)
    assert.are.same({ 6, 4, 5 }, nn.Flatten(1, 2)(x).shape)
    assert.are.same({ 2, 3, 20 }, nn.Flatten(-2)(x).shape)
    assert.are.same(x:reshape({ 2, 60 }):totable(), nn.Flatten()(x):totable())
  end)
end)

describe("ModuleList and ModuleDict", function()
  it("register their modules under PyTorch's names", function()
    local Net = nn.Module:extend("Net")
    function Net:init()
      self.layers = nn.ModuleList({ nn.Linear(2, 3), nn.Linear(3, 1) })
      self.heads = nn.ModuleDict({ b = nn.Linear(1, 1), a = nn.Linear(1, 2, { bias = false }) })
    end
    local net = Net()
    assert.are.same({ "heads.a.weight", "heads.b.bias", "heads.b.weight", "layers.0.bias", "layers.0.weight",
      "layers.1.bias", "layers.1.weight" }, sorted_keys(net:state_dict()))
    assert.are.equal(7, #net:parameters())
    assert.are.equal(2, net.layers:len())
    assert.are.equal(net.layers:get(2), rawget(net.layers, "1"))
    local seen = {}
    for i, m in net.layers:ipairs() do seen[i] = m end
    assert.are.equal(2, #seen)
    assert.are.same({ "a", "b" }, net.heads:keys())
    net.heads:set("c", nn.ReLU())
    assert.are.same({ "a", "b", "c" }, net.heads:keys())
    assert.is_nil(net.heads:get("missing"))
  end)
end)

describe("forward hooks", function()
  it("pre-hooks replace inputs, hooks replace outputs, handles remove them", function()
    local layer = nn.Identity()
    local calls = {}
    local pre = layer:register_forward_pre_hook(function(_, x) calls[#calls + 1] = "pre"; return x * 2 end)
    local post = layer:register_forward_hook(function(m, inputs, out)
      assert.are.equal(layer, m)
      assert.are.equal(1, inputs.n)
      calls[#calls + 1] = "post"
      return out + 1
    end)
    assert.are.same({ 7 }, layer(tc.tensor({ 3 })):totable())
    assert.are.same({ "pre", "post" }, calls)
    pre:remove()
    assert.are.same({ 4 }, layer(tc.tensor({ 3 })):totable())
    post:remove()
    post:remove()
    assert.are.same({ 3 }, layer(tc.tensor({ 3 })):totable())
  end)
end)

describe("Dataset and DataLoader", function()
  it("batches a TensorDataset in order, the last batch short unless drop_last", function()
    local x = tc.arange(10):reshape({ 5, 2 })
    local y = tc.tensor({ 10, 11, 12, 13, 14 }, { dtype = "int64" })
    local loader = data.DataLoader{ data.TensorDataset(x, y), batch_size = 2 }
    local got = {}
    for bx, by in loader:iter() do got[#got + 1] = { bx:totable(), by:totable() } end
    assert.are.same({ { { { 0, 1 }, { 2, 3 } }, { 10, 11 } }, { { { 4, 5 }, { 6, 7 } }, { 12, 13 } },
      { { { 8, 9 } }, { 14 } } }, got)
    assert.are.equal(3, loader:len())
    assert.are.equal(2, data.DataLoader{ data.TensorDataset(x), batch_size = 2, drop_last = true }:len())
  end)
  it("shuffles each epoch into a permutation, the same for the same seed, and resumes from state_dict", function()
    local ds = data.TensorDataset(tc.arange(20))
    local function epoch(loader)
      local order = {}
      for b in loader:iter() do
        for _, v in ipairs(b:totable()) do order[#order + 1] = v end
      end
      return order
    end
    local a, b = data.DataLoader{ ds, batch_size = 3, shuffle = true, seed = 5 },
      data.DataLoader{ ds, batch_size = 3, shuffle = true, seed = 5 }
    local first = epoch(a)
    assert.are.same(first, epoch(b))
    local sorted = { require("tricycle.compat").unpack(first) }
    table.sort(sorted)
    for i = 1, 20 do assert.are.equal(i - 1, sorted[i]) end
    local saved = a:state_dict()
    local second = epoch(a)
    assert.are_not.same(first, second)
    b:load_state_dict(saved)
    assert.are.same(second, epoch(b))
  end)
  it("collates numbers, booleans, strings, tensors and tables; a collate_fn replaces it", function()
    local Custom = data.Dataset:extend()
    function Custom:len() return 3 end
    function Custom:get(i) return { n = i, f = i / 2, ok = i > 1, name = "s" .. i, t = tc.ones({ 2 }) * i } end
    local batch = data.DataLoader{ dataset = setmetatable({}, Custom), batch_size = 3 }:iter()()
    assert.are.equal("int64", batch.n.dtype)
    assert.are.same({ 1, 2, 3 }, batch.n:totable())
    assert.are.same({ 0.5, 1, 1.5 }, batch.f:totable())
    assert.are.same({ false, true, true }, batch.ok:totable())
    assert.are.same({ "s1", "s2", "s3" }, batch.name)
    assert.are.same({ 3, 2 }, batch.t.shape)
    local sizes = data.DataLoader{ dataset = setmetatable({}, Custom), batch_size = 2,
      collate_fn = function(samples) return #samples end }
    local counts = {}
    for c in sizes:iter() do counts[#counts + 1] = c end
    assert.are.same({ 2, 1 }, counts)
  end)
end)
