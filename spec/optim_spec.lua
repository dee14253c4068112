-- tricycle.optim: steps against updates computed by hand in Lua numbers,
-- parameter groups, state round trips and the cosine schedule.
local compat = require("tricycle.compat")
local tc = require("tricycle")
local nn = require("tricycle.nn")
local optim = require("tricycle.optim")

local fused_it = it

local function close(actual, expected, tolerance, what)
  assert.are.equal(#expected, #actual)
  for i = 1, #expected do
    if math.abs(actual[i] - expected[i]) > tolerance * math.max(1, math.abs(expected[i])) then
      error(("%s: entry %d is %.12g, expected %.12g"):format(what, i, actual[i], expected[i]), 2)
    end
  end
end

local function param(values)
  return tc.tensor(values, { dtype = "float64", requires_grad = true })
end

local function set_grad(p, values)
  p.grad = tc.tensor(values, { dtype = "float64" })
end

-- Fixed gradients for steps 1.. (as if the loss changed each step).
local grads = { { 0.5, -1.0, 2.0 }, { -0.25, 0.75, 1.5 }, { 1.0, 0.1, -0.3 }, { 0.2, -0.4, 0.6 } }

-- PyTorch's SGD by hand.
local function sgd_reference(x, options, steps)
  x = { compat.unpack(x) }
  local buf
  for s = 1, steps do
    local g = {}
    for i = 1, #x do
      g[i] = grads[s][i] + (options.weight_decay or 0) * x[i]
    end
    local momentum = options.momentum or 0
    if momentum ~= 0 then
      if not buf then
        buf = { compat.unpack(g) }
      else
        for i = 1, #x do
          buf[i] = momentum * buf[i] + (1 - (options.dampening or 0)) * g[i]
        end
      end
      for i = 1, #x do
        g[i] = options.nesterov and g[i] + momentum * buf[i] or buf[i]
      end
    end
    for i = 1, #x do
      x[i] = x[i] - options.lr * g[i]
    end
  end
  return x
end

-- AdamW by hand: decoupled decay, bias-corrected moments.
local function adamw_reference(x, options, steps)
  x = { compat.unpack(x) }
  local m, v = { 0, 0, 0 }, { 0, 0, 0 }
  local b1, b2 = options.betas[1], options.betas[2]
  for s = 1, steps do
    for i = 1, #x do
      local g = grads[s][i]
      x[i] = x[i] * (1 - options.lr * options.weight_decay)
      m[i] = b1 * m[i] + (1 - b1) * g
      v[i] = b2 * v[i] + (1 - b2) * g * g
      local mhat = m[i] / (1 - b1 ^ s)
      local vhat = v[i] / (1 - b2 ^ s)
      x[i] = x[i] - options.lr * mhat / (math.sqrt(vhat) + options.eps)
    end
  end
  return x
end

local function run(optimizer, p, steps)
  for s = 1, steps do
    optimizer:zero_grad()
    set_grad(p, grads[s])
    optimizer:step()
  end
  return p:totable()
end

local start = { 1.0, -2.0, 0.5 }

describe("optim.SGD", function()
  local cases = {
    { name = "plain", options = { lr = 0.1 } },
    { name = "momentum", options = { lr = 0.1, momentum = 0.9 } },
    { name = "momentum with dampening", options = { lr = 0.1, momentum = 0.9, dampening = 0.5 } },
    { name = "nesterov", options = { lr = 0.05, momentum = 0.8, nesterov = true } },
    { name = "weight decay", options = { lr = 0.1, momentum = 0.5, weight_decay = 0.1 } },
  }
  for _, case in ipairs(cases) do
    fused_it(case.name .. " matches the update by hand over four steps", function()
      local p = param(start)
      local got = run(optim.SGD({ p }, case.options), p, 4)
      close(got, sgd_reference(start, case.options, 4), 1e-12, case.name)
    end)
  end

  it("requires lr and rejects nesterov without momentum", function()
    assert.has_error(function()
      optim.SGD({ param(start) }, {})
    end)
    local ok, message = pcall(optim.SGD, { param(start) }, { lr = 0.1, nesterov = true })
    assert.is_false(ok)
    assert.matches("nesterov needs momentum", message, 1, true)
    ok, message = pcall(optim.SGD, { param(start) }, { lr = 0.1, momentun = 0.9 })
    assert.matches("unknown option 'momentun'", message, 1, true)
  end)
end)

describe("optim.AdamW", function()
  fused_it("matches bias-corrected Adam with decoupled weight decay", function()
    local options = { lr = 0.01, betas = { 0.9, 0.99 }, eps = 1e-8, weight_decay = 0.1 }
    local p = param(start)
    local got = run(optim.AdamW({ p }, options), p, 4)
    close(got, adamw_reference(start, options, 4), 1e-10, "AdamW")
  end)

  fused_it("uses PyTorch's defaults", function()
    local p = param(start)
    local got = run(optim.AdamW({ p }), p, 3)
    close(got, adamw_reference(start, { lr = 1e-3, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = 0.01 }, 3),
      1e-10, "AdamW defaults")
  end)

  fused_it("applies each group's own options and skips parameters without a gradient", function()
    local a, b, c = param(start), param(start), param(start)
    local opt = optim.AdamW({ { params = { a }, weight_decay = 0 }, { params = { b, c }, lr = 0.1 } },
      { lr = 0.01, weight_decay = 0.5 })
    for s = 1, 2 do
      opt:zero_grad()
      set_grad(a, grads[s])
      set_grad(b, grads[s])
      opt:step()
    end
    close(a:totable(), adamw_reference(start, { lr = 0.01, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = 0 }, 2),
      1e-10, "group 1")
    close(b:totable(), adamw_reference(start, { lr = 0.1, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = 0.5 }, 2),
      1e-10, "group 2")
    assert.are.same(start, c:totable())
    assert.is_nil(opt.state[c])
  end)

  fused_it("state_dict / load_state_dict resume to the same numbers", function()
    local options = { lr = 0.02, betas = { 0.8, 0.9 }, weight_decay = 0.05 }
    local p = param(start)
    local opt = optim.AdamW({ p }, options)
    run(opt, p, 2)
    local saved_state = opt:state_dict()
    local saved_params = p:totable()
    for s = 3, 4 do
      opt:zero_grad()
      set_grad(p, grads[s])
      opt:step()
    end
    local q = param(saved_params)
    local resumed = optim.AdamW({ q }, { lr = 1 }) -- hyperparameters come from the state
    resumed:load_state_dict(saved_state)
    assert.are.equal(0.02, resumed.param_groups[1].lr)
    for s = 3, 4 do
      resumed:zero_grad()
      set_grad(q, grads[s])
      resumed:step()
    end
    assert.are.same(p:totable(), q:totable())
    close(q:totable(), adamw_reference(start, { lr = 0.02, betas = { 0.8, 0.9 }, eps = 1e-8, weight_decay = 0.05 }, 4),
      1e-10, "resumed")
  end)

  fused_it("SGD momentum state round-trips too", function()
    local p = param(start)
    local opt = optim.SGD({ p }, { lr = 0.1, momentum = 0.9 })
    run(opt, p, 2)
    local sd, saved = opt:state_dict(), p:totable()
    local q = param(saved)
    local other = optim.SGD({ q }, { lr = 0.1, momentum = 0.9 })
    other:load_state_dict(sd)
    for s = 3, 4 do
      opt:zero_grad()
      set_grad(p, grads[s])
      opt:step()
      other:zero_grad()
      set_grad(q, grads[s])
      other:step()
    end
    assert.are.same(p:totable(), q:totable())
  end)

  it("rejects a state of another layout", function()
    local opt = optim.AdamW({ param(start) })
    local other = optim.AdamW({ param(start), param(start) })
    local ok, message = pcall(opt.load_state_dict, opt, other:state_dict())
    assert.is_false(ok)
    assert.matches("group 1 has 2 parameters in the state, 1 here", message, 1, true)
  end)

  it("set_lr changes every group", function()
    local opt = optim.AdamW({ { params = { param(start) } }, { params = { param(start) }, lr = 5 } })
    optim.set_lr(opt, 0.25)
    assert.are.equal(0.25, opt.param_groups[1].lr)
    assert.are.equal(0.25, opt.param_groups[2].lr)
  end)
end)

describe("optimisers and model:to()", function()
  -- Before: to() made new tensors, the optimiser went on updating the old
  -- ones, and the model never changed again.
  fused_it("keep updating the model's parameters after a change of dtype, moments converted", function()
    tc.manual_seed(4)
    local model = nn.Linear(3, 2)
    local reference = nn.Linear(3, 2)
    reference:load_state_dict(model:state_dict())
    local x = tc.randn({ 5, 3 })
    local function step(m, opt, input)
      opt:zero_grad()
      m(input):sum():backward()
      opt:step()
    end
    local opt = optim.AdamW(model:parameters(), { lr = 0.1 })
    local reference_opt = optim.AdamW(reference:parameters(), { lr = 0.1 })
    step(model, opt, x)
    step(reference, reference_opt, x)
    local weight = model.weight
    model:to("float64")
    assert.are.equal(weight, model.weight) -- the same Lua object, converted in place
    assert.are.equal("float64", weight.dtype)
    assert.is_true(weight.requires_grad and weight.is_leaf)
    assert.is_nil(weight.grad)
    for _, pair in ipairs({ { opt.param_groups[1].params[1], model.weight }, { opt.param_groups[1].params[2],
      model.bias } }) do
      assert.are.equal(pair[2], pair[1])
    end
    local before = model.weight:totable()
    step(model, opt, x:to("float64"))
    assert.are_not.same(before, model.weight:totable())
    local state = opt.state[model.weight]
    assert.are.equal("float64", state.exp_avg.dtype)
    assert.are.equal("float64", state.exp_avg_sq.dtype)
    assert.are.equal(2, state.step)
    -- the same two steps in float32 throughout agree to float32 precision: the moments carried over
    step(reference, reference_opt, x)
    close(reference.weight:reshape({ 6 }):totable(), model.weight:reshape({ 6 }):totable(), 1e-5, "weight")
  end)

  fused_it("keep SGD's momentum buffer across a change of dtype", function()
    local p = param(start)
    local opt = optim.SGD({ p }, { lr = 0.1, momentum = 0.9 })
    set_grad(p, grads[1])
    opt:step()
    p.data = p:to("float32")
    p.grad = tc.tensor(grads[2])
    opt:step()
    assert.are.equal("float32", opt.state[p].momentum_buffer.dtype)
    close(p:totable(), sgd_reference(start, { lr = 0.1, momentum = 0.9 }, 2), 1e-6, "SGD across dtypes")
  end)
end)

describe("optim.gpt_param_groups", function()
  it("decays only Linear weights, not biases, norms or (tied) embeddings", function()
    local model = nn.GPT({ vocab_size = 7, context_length = 4, n_layer = 2, n_head = 2, n_embd = 4 })
    local groups = optim.gpt_param_groups(model, 0.1)
    local names = {}
    for _, pair in ipairs(model:named_parameters()) do
      names[pair[2]] = pair[1]
    end
    local decayed = {}
    for _, p in ipairs(groups[1].params) do
      decayed[#decayed + 1] = names[p]
    end
    table.sort(decayed)
    assert.are.same({ "h.1.attn.c_attn.weight", "h.1.attn.c_proj.weight", "h.1.mlp.c_fc.weight",
      "h.1.mlp.c_proj.weight", "h.2.attn.c_attn.weight", "h.2.attn.c_proj.weight", "h.2.mlp.c_fc.weight",
      "h.2.mlp.c_proj.weight" }, decayed)
    assert.are.equal(0.1, groups[1].weight_decay)
    assert.are.equal(0, groups[2].weight_decay)
    assert.are.equal(#model:parameters(), #groups[1].params + #groups[2].params)
  end)
end)

describe("optim.cosine_schedule", function()
  it("warms up linearly, follows a half cosine, then holds min_lr", function()
    local s = optim.cosine_schedule({ max_lr = 1.0, min_lr = 0.1, warmup = 4, total = 14 })
    assert.are.equal(0.25, s:lr(0))
    assert.are.equal(1.0, s:lr(3))
    assert.is_true(math.abs(s:lr(4) - 1.0) < 1e-12)
    -- halfway through the decay: cos(pi / 2) = 0, so the mean of max and min
    assert.is_true(math.abs(s:lr(9) - 0.55) < 1e-12)
    assert.is_true(math.abs(s:lr(14) - 0.1) < 1e-12)
    assert.are.equal(0.1, s:lr(100))
    local a = s:next()
    local b = s:next()
    assert.are.same({ 0.25, 0.5 }, { a, b })
    local copy = optim.cosine_schedule({ max_lr = 9, min_lr = 0, warmup = 0, total = 1 })
    copy:load_state_dict(s:state_dict())
    assert.are.equal(s:next(), copy:next())
    assert.has_error(function()
      optim.cosine_schedule({ max_lr = 1, warmup = 5, total = 2 })
    end)
  end)
end)
