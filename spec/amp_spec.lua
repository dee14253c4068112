-- tc.amp.GradScaler: PyTorch 1.13's sequence of scales on one pattern of
-- overflowing steps (spec/fixtures/amp/grad_scaler_torch.py, run by hand),
-- float16 training that overflows, skips and recovers, unscale_ before
-- clipping, the disabled scaler and the state.
local tc = require("tricycle")
local nn = require("tricycle.nn")
local optim = require("tricycle.optim")

local function same(a, b) return tc.allclose(a, b, { rtol = 0, atol = 0 }) end

local function read_fixture()
  local f = assert(io.open("spec/fixtures/amp/grad_scaler_torch.json", "rb"))
  local text = f:read("a")
  f:close()
  return tc.json_decode(text)
end

-- float32 parameters, a float16 forward: each weight cast with :half()
-- (differentiable, so the gradients come back in float32).
local function half_mlp(device)
  tc.manual_seed(7)
  local params = {
    w1 = (tc.randn({ 32, 8 }) * 0.3):to(device), b1 = tc.zeros({ 32 }):to(device),
    w2 = (tc.randn({ 4, 32 }) * 0.3):to(device), b2 = tc.zeros({ 4 }):to(device),
  }
  local list = { params.w1, params.b1, params.w2, params.b2 }
  for _, p in ipairs(list) do p.requires_grad = true end
  local function forward(x)
    local h = tc.linear(x:half(), params.w1:half(), params.b1:half()):tanh()
    return tc.linear(h, params.w2:half(), params.b2:half())
  end
  return forward, list
end

describe("tc.amp.GradScaler", function()
  it("gives PyTorch 1.13's scales, growth trackers and skipped steps on the same overflow pattern", function()
    local fixture = read_fixture()
    local overflow = {}
    for _, step in ipairs(fixture.overflow_steps) do overflow[step] = true end
    local weight = tc.randn({ 4, 3 })
    weight.requires_grad = true
    local opt = optim.SGD({ weight }, { lr = 0.01 })
    local scaler = tc.amp.GradScaler(fixture.options)
    local x = tc.ones({ 3 })
    for _, record in ipairs(fixture.records) do
      opt:zero_grad()
      scaler:scale(weight:matmul(x):sum()):backward()
      if overflow[record.step] then
        local grad = weight.grad:clone()
        grad:narrow(1, 1, 1):narrow(2, 1, 1):fill_(record.step % 2 == 1 and 1 / 0 or 0 / 0)
        weight.grad = grad
      end
      local before = weight:detach():clone()
      scaler:step(opt)
      local stepped = not same(before, weight:detach())
      scaler:update()
      local label = "step " .. record.step
      assert.are.equal(record.scale, scaler:get_scale(), label)
      assert.are.equal(record.growth_tracker, scaler:state_dict()._growth_tracker, label)
      assert.are.equal(record.stepped, stepped, label)
    end
    assert.are.same(fixture.state_dict, scaler:state_dict())
  end)

  it("trains a float16 forward that overflows: skips those steps, halves the scale, then grows it again", function()
    local forward, params = half_mlp("cpu")
    local opt = optim.SGD(params, { lr = 0.05 })
    local scaler = tc.amp.GradScaler({ init_scale = 2 ^ 16, growth_interval = 4 })
    tc.manual_seed(8)
    local x, y = tc.randn({ 64, 8 }), tc.randn({ 64, 4 }) * 0.5
    local scales, skipped, losses = {}, {}, {}
    for step = 1, 40 do
      opt:zero_grad()
      local loss = ((forward(x):float() - y) ^ 2):mean()
      losses[step] = loss:item()
      scaler:scale(loss):backward()
      local before = params[1]:detach():clone()
      scaler:step(opt)
      skipped[step] = same(before, params[1]:detach())
      scaler:update()
      scales[step] = scaler:get_scale()
    end
    -- The scale only ever halves after a skipped step and doubles after 4 clean ones.
    local halvings, growths_after_halving = 0, 0
    local previous = 2 ^ 16
    for step = 1, 40 do
      if skipped[step] then
        assert.are.equal(previous / 2, scales[step], "step " .. step)
        halvings = halvings + 1
      elseif scales[step] ~= previous then
        assert.are.equal(previous * 2, scales[step], "step " .. step)
        if halvings > 0 then growths_after_halving = growths_after_halving + 1 end
      end
      previous = scales[step]
    end
    assert.is_true(halvings >= 1, "no step overflowed")
    assert.is_true(growths_after_halving >= 1, "the scale never grew back")
    assert.is_true(losses[40] < 0.8 * losses[1], ("the loss went from %g to %g"):format(losses[1], losses[40]))
    for _, p in ipairs(params) do
      assert.are.equal("float32", p.grad.dtype)
      local total = p:detach():abs():sum():item()
      assert.is_true(total == total and total < math.huge)
    end
  end)

  it("unscale_ leaves the unscaled loss's gradients, so clipping sees them; step does not unscale twice", function()
    tc.manual_seed(3)
    local model = nn.Linear(5, 3)
    local x = tc.randn({ 6, 5 })
    model(x):square():sum():backward()
    local plain = {}
    for i, p in ipairs(model:parameters()) do plain[i] = p.grad:clone() end
    model:zero_grad()
    local opt = optim.SGD(model:parameters(), { lr = 0 })
    local scaler = tc.amp.GradScaler({ init_scale = 1024 })
    scaler:scale(model(x):square():sum()):backward()
    scaler:unscale_(opt)
    for i, p in ipairs(model:parameters()) do
      assert.is_true(tc.allclose(plain[i], p.grad, { rtol = 1e-6, atol = 1e-6 }))
    end
    local norm = nn.clip_grad_norm(model:parameters(), 1e9)
    assert.is_true(norm < 1e4)
    scaler:step(opt)
    for i, p in ipairs(model:parameters()) do
      assert.is_true(tc.allclose(plain[i], p.grad, { rtol = 1e-6, atol = 1e-6 }))
    end
    scaler:update()
    assert.are.equal(1024, scaler:get_scale())
  end)

  it("passes everything through when disabled", function()
    local scaler = tc.amp.GradScaler({ enabled = false })
    local loss = tc.tensor(3)
    assert.are.equal(loss, scaler:scale(loss))
    local w = tc.ones({ 2 })
    w.requires_grad = true
    local opt = optim.SGD({ w }, { lr = 1 })
    local infinite = w:sum() * (1 / 0)
    infinite:backward()
    scaler:step(opt) -- a disabled scaler does not check: the step runs
    scaler:update()
    assert.are.equal(1, scaler:get_scale())
    assert.is_false(scaler:is_enabled())
    assert.are.same({}, scaler:state_dict())
  end)

  it("saves and loads its state; update(new_scale) sets the scale", function()
    local a = tc.amp.GradScaler({ init_scale = 8, growth_interval = 5 })
    local w = tc.ones({ 2 })
    w.requires_grad = true
    local opt = optim.SGD({ w }, { lr = 0.1 })
    for _ = 1, 3 do
      opt:zero_grad()
      a:scale(w:sum()):backward()
      a:step(opt)
      a:update()
    end
    local b = tc.amp.GradScaler()
    b:load_state_dict(a:state_dict())
    assert.are.same(a:state_dict(), b:state_dict())
    assert.are.same({ scale = 8, growth_factor = 2, backoff_factor = 0.5, growth_interval = 5, _growth_tracker = 3 },
      b:state_dict())
    b:update(0.25)
    assert.are.equal(0.25, b:get_scale())
    assert.are.equal(3, b:state_dict()._growth_tracker)
  end)

  it("scales a list of losses and keeps the growth from overflowing float32", function()
    local scaler = tc.amp.GradScaler({ init_scale = 2 ^ 127, growth_interval = 1 })
    local scaled = scaler:scale({ tc.tensor(1), tc.tensor(0.5, { dtype = "float64" }) })
    assert.are.same({ 2 ^ 127, 2 ^ 126 }, { scaled[1]:item(), scaled[2]:item() })
    local w = tc.ones({ 1 })
    w.requires_grad = true
    local opt = optim.SGD({ w }, { lr = 0 })
    scaler:scale(w:sum() * 2 ^ -127):backward()
    scaler:step(opt)
    scaler:update()
    assert.are.equal(2 ^ 127, scaler:get_scale()) -- 2^128 is Inf in float32: kept
  end)
end)
