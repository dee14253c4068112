-- tricycle.checkpoint: one safetensors file holding a model, an optimiser,
-- a schedule, the step, the RNG state, a config and a tokenizer.
local tc = require("tricycle")
local number_type = require("helpers.number_type")
local checkpoint = require("tricycle.checkpoint")
local scratch = require("helpers.scratch")

local temporary_directory, remove_tree = scratch.new_dir, scratch.remove_dir
local read_file, write_file = scratch.read, scratch.write

--- Objects following the state_dict contract, without tricycle.nn.
local function fake_model()
  local model = {
    params = {
      ["embed.weight"] = tc.randn({ 5, 3 }),
      ["blocks.1.linear.weight"] = tc.randn({ 3, 3 }),
      ["blocks.1.linear.bias"] = tc.zeros({ 3 }),
      ["head.scale"] = tc.tensor(2.0, { dtype = "float64" }),
    },
  }
  function model:state_dict()
    local sd = {}
    for name, p in pairs(self.params) do
      sd[name] = p
    end
    return sd
  end
  function model:load_state_dict(sd)
    self.loaded = sd
    for name, p in pairs(self.params) do
      p:copy_(sd[name])
    end
  end
  return model
end

local function fake_optimizer()
  local optimizer = {
    tensors = { ["exp_avg.1"] = tc.randn({ 5, 3 }), ["exp_avg_sq.1"] = tc.rand({ 5, 3 }) },
    values = {
      step = 17,
      lr = 3e-4,
      betas = { 0.9, 0.99 },
      -- Per-parameter state keyed by index, with gaps (parameters without grads yet).
      per_param = { [1] = { steps = 17 }, [4] = { steps = 2, momentum = tc.ones({ 2 }) } },
      nesterov = false,
    },
  }
  function optimizer:state_dict()
    return { tensors = self.tensors, values = self.values }
  end
  function optimizer:load_state_dict(sd)
    self.loaded = sd
  end
  return optimizer
end

describe("tricycle.checkpoint", function()
  local dir
  before_each(function()
    dir = temporary_directory()
  end)
  after_each(function()
    remove_tree(dir)
  end)

  it("saves and loads a model, optimiser, schedule, config, tokenizer and extras", function()
    local path = dir .. "/run.ckpt"
    tc.manual_seed(1234)
    local model, optimizer = fake_model(), fake_optimizer() -- draws move the RNG offset away from 0
    local seed, offset = tc.rng_state()
    assert.is_true(offset > 0)
    local config = {
      model = { n_layer = 2, n_embd = 3, dropout = 0.1, bias = true, name = "tiny \"gpt\"" },
      train = { schedule = { "warmup", "cosine" }, max_lr = 6e-4, tags = {} },
    }
    local tokenizer = "merges\0\1\2\255 and bytes that are not UTF-8 \192"
    checkpoint.save(path, {
      model = model,
      optimizer = optimizer,
      scheduler = { last_step = 17, base = 6e-4 },
      step = 17,
      config = config,
      tokenizer = tokenizer,
      extra = { ema = { ["embed.weight"] = tc.ones({ 5, 3 }) }, note = "hello" },
    })

    local state = checkpoint.load(path)
    assert.are.equal(17, state.step)
    assert.are.same({ seed, offset }, state.rng)
    assert.are.same(config, state.config)
    assert.are.equal("float", number_type(state.config.model.dropout))
    assert.are.equal("integer", number_type(state.config.model.n_layer))
    assert.are.equal(tokenizer, state.tokenizer)
    assert.are.same({ last_step = 17, base = 6e-4 }, state.scheduler)
    for name, p in pairs(model.params) do
      local back = state.model[name]
      assert.is_not_nil(back, name)
      assert.are.equal(p.dtype, back.dtype)
      assert.are.same(p:totable(), back:totable(), name)
    end
    local count = 0
    for _ in pairs(state.model) do
      count = count + 1
    end
    assert.are.equal(4, count)
    for name, t in pairs(optimizer.tensors) do
      assert.are.same(t:totable(), state.optimizer.tensors[name]:totable(), name)
    end
    local values = state.optimizer.values
    assert.are.equal(17, values.step)
    assert.are.equal(3e-4, values.lr)
    assert.are.same({ 0.9, 0.99 }, values.betas)
    assert.is_false(values.nesterov)
    assert.are.same({ steps = 17 }, values.per_param[1])
    assert.is_nil(values.per_param[2])
    assert.are.equal(2, values.per_param[4].steps)
    assert.are.same({ 1, 1 }, values.per_param[4].momentum:totable())
    assert.are.same(tc.ones({ 5, 3 }):totable(), state.extra.ema["embed.weight"]:totable())
    assert.are.equal("hello", state.extra.note)
  end)

  it("writes an ordinary safetensors file with prefixed tensor names", function()
    local path = dir .. "/plain.ckpt"
    checkpoint.save(path, {
      model = { ["fc.weight"] = tc.ones({ 2, 2 }) },
      optimizer = { tensors = { ["m.fc.weight"] = tc.zeros({ 2, 2 }) }, values = { step = 1 } },
      step = 1,
    })
    local tensors, metadata = tc.load(path)
    assert.are.same({ { 1, 1 }, { 1, 1 } }, tensors["model.fc.weight"]:totable())
    assert.is_not_nil(tensors["optimizer.tensors.m.fc.weight"])
    assert.is_string(metadata["tricycle.checkpoint"])
    local names = {}
    for name in pairs(tensors) do
      names[#names + 1] = name
    end
    table.sort(names)
    assert.are.same({ "model.fc.weight", "optimizer.tensors.m.fc.weight" }, names)
  end)

  it("stores a tensor that appears twice (tied weights) once", function()
    local path = dir .. "/tied.ckpt"
    local shared = tc.randn({ 4, 2 })
    checkpoint.save(path, { model = { ["wte.weight"] = shared, ["lm_head.weight"] = shared } })
    local tensors = tc.load(path)
    local count = 0
    for _ in pairs(tensors) do
      count = count + 1
    end
    assert.are.equal(1, count)
    local state = checkpoint.load(path)
    assert.is_true(rawequal(state.model["wte.weight"], state.model["lm_head.weight"]))
    assert.are.same(shared:totable(), state.model["lm_head.weight"]:totable())
  end)

  it("restores into objects and puts the RNG back", function()
    local path = dir .. "/resume.ckpt"
    local model, optimizer = fake_model(), fake_optimizer()
    tc.manual_seed(7)
    tc.rand({ 3 })
    checkpoint.save(path, { model = model, optimizer = optimizer, step = 99 })
    local expected = tc.rand({ 4 }):totable() -- what the run would draw next

    tc.manual_seed(555)
    local fresh_model, fresh_optimizer = fake_model(), fake_optimizer()
    local step = checkpoint.restore(checkpoint.load(path), { model = fresh_model, optimizer = fresh_optimizer })
    assert.are.equal(99, step)
    assert.are.same(tc.rand({ 4 }):totable(), expected)
    for name, p in pairs(model.params) do
      assert.are.same(p:totable(), fresh_model.params[name]:totable(), name)
    end
    assert.are.equal(17, fresh_optimizer.loaded.values.step)
    assert.has_error(function()
      checkpoint.restore({ step = 1 }, { model = fake_model() })
    end, "checkpoint.restore: the checkpoint has no model state")
  end)

  it("rejects what it cannot store, naming where it is", function()
    local path = dir .. "/bad.ckpt"
    local ok, message = pcall(checkpoint.save, path, { config = { train = { callback = print } } })
    assert.is_false(ok)
    assert.matches("config%.train%.callback is a function", message)
    ok, message = pcall(checkpoint.save, path, { config = { lr = 0 / 0 } })
    assert.is_false(ok)
    assert.matches("config%.lr is", message)
    ok, message = pcall(checkpoint.save, path, { model = { w = 3 } })
    assert.is_false(ok)
    assert.matches("model entry 'w' is a number, expected a tensor", message)
    ok, message = pcall(checkpoint.save, path, { steps = 3 })
    assert.is_false(ok)
    assert.matches("unknown field 'steps'", message)
    ok, message = pcall(checkpoint.save, path, { step = 1.5 })
    assert.is_false(ok)
    assert.matches("step must be an integer", message)
    local cycle = {}
    cycle.self = cycle
    ok, message = pcall(checkpoint.save, path, { extra = cycle })
    assert.is_false(ok)
    assert.matches("cycle", message)
    assert.is_nil(io.open(path, "rb"), "nothing was written")
  end)

  it("keeps the previous checkpoint when a save fails", function()
    local path = dir .. "/keep.ckpt"
    checkpoint.save(path, { step = 1, model = { w = tc.ones({ 2 }) } })
    local before = read_file(path)
    assert.has_error(function()
      checkpoint.save(path, { step = 2, model = { w = tc.ones({ 2 }) }, config = { f = print } })
    end)
    assert.are.equal(before, read_file(path))
    assert.are.equal(1, checkpoint.load(path).step)
  end)

  describe("errors on missing and corrupt files, naming the path", function()
    it("a missing file", function()
      local path = dir .. "/missing.ckpt"
      local ok, message = pcall(checkpoint.load, path)
      assert.is_false(ok)
      assert.matches("checkpoint.load: .*cannot open '.*missing.ckpt'", message)
    end)

    it("a truncated file", function()
      local path = dir .. "/cut.ckpt"
      checkpoint.save(path, { step = 3, model = { w = tc.ones({ 64 }) } })
      local whole = read_file(path)
      for _, keep in ipairs({ 3, 20, #whole - 10 }) do
        write_file(path, whole:sub(1, keep))
        local ok, message = pcall(checkpoint.load, path)
        assert.is_false(ok)
        assert.is_truthy(message:find(path, 1, true), message)
      end
    end)

    it("a safetensors file that is not a checkpoint", function()
      local path = dir .. "/weights.safetensors"
      tc.save(path, { w = tc.ones({ 1 }) })
      local ok, message = pcall(checkpoint.load, path)
      assert.is_false(ok)
      assert.matches("not a tricycle checkpoint", message)
      assert.is_truthy(message:find(path, 1, true))
    end)

    it("corrupt checkpoint metadata", function()
      local path = dir .. "/meta.ckpt"
      tc.save(path, { w = tc.ones({ 1 }) }, { ["tricycle.checkpoint"] = '{"version":1,"parts":{' })
      local ok, message = pcall(checkpoint.load, path)
      assert.is_false(ok)
      assert.matches("checkpoint state is corrupt", message)
      assert.is_truthy(message:find(path, 1, true))
      -- Well-formed, but it refers to a tensor the file lacks.
      tc.save(path, { w = tc.ones({ 1 }) },
        { ["tricycle.checkpoint"] = '{"version":1,"parts":{"model":{"v":{"__tensor__":"model.v"}}}}' })
      ok, message = pcall(checkpoint.load, path)
      assert.is_false(ok)
      assert.matches("refers to tensor 'model.v', which the file lacks", message)
    end)
  end)
end)
