-- Losses, Adam, learning-rate schedulers, clip_grad_value: values against PyTorch's (spec/fixtures/training,
-- written by its make_fixtures.py with torch 1.13).
local tc = require("tricycle")
local nn = require("tricycle.nn")
local optim = require("tricycle.optim")
local F = nn.functional
local fixtures = dofile("spec/fixtures/training/fixtures.lua")

local function f64(values)
  return tc.tensor(values, { dtype = "float64" })
end

local function flat(t)
  if type(t) == "number" then
    return { t }
  end
  local values, out = type(t) == "table" and t or t:totable(), {}
  local function walk(v)
    if type(v) == "table" then
      for _, x in ipairs(v) do walk(x) end
    else
      out[#out + 1] = v
    end
  end
  walk(values)
  return out
end

local function assert_close(actual, expected, tolerance)
  local a, e = flat(actual), type(expected) == "table" and expected or { expected }
  local ef = {}
  local function walk(v)
    if type(v) == "table" then
      for _, x in ipairs(v) do walk(x) end
    else
      ef[#ef + 1] = v
    end
  end
  walk(e)
  assert.are.equal(#ef, #a)
  for i = 1, #a do
    local tol = (tolerance or 1e-9) * math.max(1, math.abs(ef[i]))
    if math.abs(a[i] - ef[i]) > tol then
      error(("element %d: %.12g, expected %.12g"):format(i, a[i], ef[i]), 2)
    end
  end
end

describe("losses against PyTorch", function()
  local logits, targets, weight = f64(fixtures.logits), tc.tensor(fixtures.targets, { dtype = "int64" }),
    f64(fixtures.class_weight)
  for _, reduction in ipairs({ "mean", "sum", "none" }) do
    it("cross_entropy, reduction " .. reduction, function()
      assert_close(F.cross_entropy(logits, targets, { reduction = reduction }), fixtures["ce_" .. reduction])
      assert_close(F.cross_entropy(logits, targets, { reduction = reduction, weight = weight }),
        fixtures["ce_weight_" .. reduction])
      assert_close(F.cross_entropy(logits, targets, { reduction = reduction, label_smoothing = 0.2 }),
        fixtures["ce_smooth_" .. reduction])
      assert_close(F.cross_entropy(logits, targets, { reduction = reduction, label_smoothing = 0.2, weight = weight }),
        fixtures["ce_weight_smooth_" .. reduction])
      assert_close(F.nll_loss(logits:log_softmax(-1), targets, { reduction = reduction, weight = weight }),
        fixtures["nll_weight_" .. reduction])
    end)
    it("binary_cross_entropy and with_logits, reduction " .. reduction, function()
      local p, y = f64(fixtures.probabilities), f64(fixtures.binary)
      assert_close(F.binary_cross_entropy(p, y, { weight = f64(fixtures.bce_weight), reduction = reduction }),
        fixtures["bce_" .. reduction])
      assert_close(F.binary_cross_entropy_with_logits(f64(fixtures.big_logits), y, { weight = f64(fixtures.bce_weight),
        pos_weight = f64(fixtures.pos_weight), reduction = reduction }), fixtures["bcel_" .. reduction])
    end)
  end
  it("the gradients of weighted, smoothed cross_entropy and of with_logits at logits up to +-90", function()
    local x = f64(fixtures.logits):requires_grad_(true)
    F.cross_entropy(x, targets, { weight = weight, label_smoothing = 0.2 }):backward()
    assert_close(x.grad, fixtures.ce_weight_smooth_grad)
    local z = f64(fixtures.big_logits):requires_grad_(true)
    F.binary_cross_entropy_with_logits(z, f64(fixtures.binary), { pos_weight = f64(fixtures.pos_weight) }):backward()
    assert_close(z.grad, fixtures.bcel_grad)
  end)
  it("the fused cross_entropy and the composed one agree (float32, classes last on 3-D logits)", function()
    tc.manual_seed(3)
    local x = tc.randn({ 2, 3, 5 })
    local t = tc.tensor({ { 0, 4, 2 }, { 1, 1, 3 } }, { dtype = "int64" })
    local fused = F.cross_entropy(x, t):item()
    local composed = F.cross_entropy(x, t, { reduction = "sum" }):item() / 6
    assert.is_true(math.abs(fused - composed) < 1e-5)
    assert.are.same({ 2, 3 }, F.cross_entropy(x, t, { reduction = "none" }).shape)
  end)
  it("binary_cross_entropy at p = 0 and 1 is finite (log clamped at -100)", function()
    local loss = F.binary_cross_entropy(f64({ 0, 1 }), f64({ 1, 0 }), { reduction = "none" })
    assert.are.same({ 100, 100 }, loss:totable())
  end)
  it("every target ignored gives a loss of 0", function()
    local loss = F.cross_entropy(f64({ { 1, 2 } }), tc.tensor({ -100 }, { dtype = "int64" }),
      { weight = f64({ 1, 1 }) })
    assert.are.equal(0, loss:item())
  end)
end)

describe("optim.Adam against PyTorch", function()
  for _, amsgrad in ipairs({ false, true }) do
    it("five steps with L2 weight decay, amsgrad " .. tostring(amsgrad), function()
      local p = f64({ 1, -2, 0.5 }):requires_grad_(true)
      local c = f64({ 1, 3, -2 })
      local opt = optim.Adam({ p }, { lr = 0.1, betas = { 0.8, 0.9 }, eps = 1e-6, weight_decay = 0.05,
        amsgrad = amsgrad })
      for _ = 1, 5 do
        opt:zero_grad()
        local loss = (p * p * c):sum()
        loss:backward()
        opt:step()
      end
      assert_close(p, fixtures[amsgrad and "adam_amsgrad" or "adam"], 1e-9)
    end)
  end
  it("a state_dict round trip continues exactly", function()
    local function make()
      local p = f64({ 1, -2, 0.5 }):requires_grad_(true)
      return p, optim.Adam({ p }, { lr = 0.1, amsgrad = true })
    end
    local function step(p, opt)
      opt:zero_grad()
      local loss = (p * p * p):sum()
      loss:backward()
      opt:step()
    end
    local p1, o1 = make()
    step(p1, o1)
    local p2, o2 = make()
    step(p2, o2)
    local saved = o1:state_dict()
    local p3, o3 = make()
    tc.no_grad(function() p3:copy_(p1) end)
    o3:load_state_dict(saved)
    step(p2, o2)
    step(p3, o3)
    assert.are.same(p2:totable(), p3:totable())
  end)
end)

describe("learning-rate schedulers against PyTorch", function()
  local function lrs(make, steps, metrics)
    local p = tc.zeros({ 1 }):requires_grad_(true)
    local opt = optim.SGD({ p }, { lr = 0.5 })
    local scheduler = make(opt)
    local values = {}
    for i = 1, steps do
      values[i] = opt.param_groups[1].lr
      scheduler:step(metrics and metrics[i])
    end
    return values
  end
  local cases = {
    { "step_lr", function(o) return optim.step_lr(o, { step_size = 3, gamma = 0.5 }) end, "lr_step" },
    { "multistep_lr", function(o) return optim.multistep_lr(o, { milestones = { 2, 5, 9 }, gamma = 0.1 }) end,
      "lr_multistep" },
    { "exponential_lr", function(o) return optim.exponential_lr(o, { gamma = 0.9 }) end, "lr_exponential" },
    { "lambda_lr", function(o) return optim.lambda_lr(o, { lr_lambda = function(e) return 1 / (e + 1) end }) end,
      "lr_lambda" },
    { "warmup_lr", function(o) return optim.warmup_lr(o, { start_factor = 0.25, total_iters = 4 }) end, "lr_warmup" },
    { "one_cycle_lr", function(o) return optim.one_cycle_lr(o, { max_lr = 1, total_steps = 12 }) end, "lr_one_cycle" },
    { "one_cycle_lr (linear)", function(o)
      return optim.one_cycle_lr(o, { max_lr = 1, total_steps = 12, anneal_strategy = "linear", pct_start = 0.25,
        div_factor = 10, final_div_factor = 100 })
    end, "lr_one_cycle_linear" },
  }
  for _, case in ipairs(cases) do
    it(case[1], function()
      assert_close(lrs(case[2], 12), fixtures[case[3]], 1e-12)
    end)
  end
  it("reduce_lr_on_plateau", function()
    assert_close(lrs(function(o)
      return optim.reduce_lr_on_plateau(o, { factor = 0.5, patience = 2, cooldown = 1, min_lr = 0.01 })
    end, 15, fixtures.plateau_metrics), fixtures.lr_plateau, 1e-12)
  end)
  it("the scheduler's state travels in the optimiser's state_dict", function()
    local function make()
      local p = tc.zeros({ 1 }):requires_grad_(true)
      local opt = optim.SGD({ p }, { lr = 0.5 })
      return opt, optim.step_lr(opt, { step_size = 2, gamma = 0.5 }), optim.reduce_lr_on_plateau(opt,
        { patience = 0 })
    end
    local o1, s1, r1 = make()
    for _ = 1, 3 do s1:step() end
    r1:step(1.0)
    r1:step(2.0)
    local saved = o1:state_dict()
    local o2, s2, r2 = make()
    o2:load_state_dict(saved)
    assert.are.equal(3, s2.last_epoch)
    assert.are.equal(1.0, r2.best)
    assert.are.equal(o1.param_groups[1].lr, o2.param_groups[1].lr)
    s1:step(); s2:step()
    assert.are.equal(o1.param_groups[1].lr, o2.param_groups[1].lr)
  end)
end)

describe("clip_grad_value", function()
  it("clamps every gradient in place", function()
    local p = tc.tensor({ 1, -2, 3 }):requires_grad_(true)
    local loss = (p * tc.tensor({ 5, -0.1, -7 })):sum()
    loss:backward()
    F.clip_grad_value({ p }, 1)
    assert_close(p.grad, { 1, -0.1, -1 }, 1e-6)
  end)
end)

describe("nn.MultiheadAttention against PyTorch", function()
  local cases = {
    { "a", "embed_dim 8, 2 heads, [L, N, E], a float attn_mask and a bool key_padding_mask", {} },
    { "b", "kdim 5, vdim 6, batch_first, a bool attn_mask", { kdim = 5, vdim = 6, batch_first = true } },
  }
  for _, case in ipairs(cases) do
    local p = "mha_" .. case[1]
    it(case[2], function()
      local options = { dtype = "float64" }
      for key, value in pairs(case[3]) do options[key] = value end
      local mha = nn.MultiheadAttention(8, 2, options)
      mha:eval()
      local state = {}
      for name in pairs(mha:state_dict()) do
        state[name] = f64(fixtures[p .. "_param_" .. name:gsub("%.", "_")])
      end
      mha:load_state_dict(state)
      local query = f64(fixtures[p .. "_query"]):requires_grad_(true)
      local forward_options = {}
      if fixtures[p .. "_attn_mask"] then
        local mask = fixtures[p .. "_attn_mask"]
        forward_options.attn_mask = type(mask[1][1]) == "boolean" and tc.tensor(mask, { dtype = "bool" }) or f64(mask)
      end
      if fixtures[p .. "_key_padding_mask"] then
        forward_options.key_padding_mask = tc.tensor(fixtures[p .. "_key_padding_mask"], { dtype = "bool" })
      end
      local out, weights = mha(query, f64(fixtures[p .. "_key"]), f64(fixtures[p .. "_value"]), forward_options)
      assert_close(out, fixtures[p .. "_output"], 1e-12)
      assert_close(weights, fixtures[p .. "_weights"], 1e-12)
      local loss = (out * f64(fixtures[p .. "_probe"])):sum()
      loss:backward()
      assert_close(query.grad, fixtures[p .. "_query_grad"], 1e-12)
    end)
  end
  it("names its parameters as PyTorch does, and returns no weights when need_weights is false", function()
    local keys = {}
    for name in pairs(nn.MultiheadAttention(4, 2, { kdim = 3 }):state_dict()) do keys[#keys + 1] = name end
    table.sort(keys)
    assert.are.same({ "in_proj_bias", "k_proj_weight", "out_proj.bias", "out_proj.weight", "q_proj_weight",
      "v_proj_weight" }, keys)
    local mha = nn.MultiheadAttention(4, 2, { batch_first = true, dropout = 0.5 })
    local x = tc.randn({ 2, 3, 4 })
    local out, weights = mha(x, x, x, { need_weights = false })
    assert.are.same({ 2, 3, 4 }, out.shape)
    assert.is_nil(weights)
    local _, unaveraged = mha(x, x, x, { average_attn_weights = false })
    assert.are.same({ 2, 2, 3, 3 }, unaveraged.shape)
  end)
end)
