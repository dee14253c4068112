-- Smoke test for an installed tricycle: loads the module the way a user would
-- (no repository paths) and runs ops, a backward pass, a GPT training step,
-- generation and a checkpoint round trip. It runs under every supported Lua
-- (make test-smoke-luas: 5.1, LuaJIT, 5.2, 5.3), so it is written in their
-- common subset.
-- .ci/run runs it against a luarocks tree, from a folder outside the repository,
-- after checking that tricycle.core resolves into that tree. `make test` runs it
-- too (against build/), which costs nothing.
describe("installed tricycle", function()
  it("loads, computes and differentiates", function()
    local tc = require("tricycle")
    local x = tc.tensor({1, 2, 3}, {requires_grad = true})
    local y = (x * x):sum()
    assert.are.equal(14, y:item())
    y:backward()
    assert.are.same({2, 4, 6}, x.grad:totable())
  end)

  it("has the modules of subfolders (tricycle.cli.*) and the core's JSON Lines", function()
    local cli = require("tricycle.cli")
    assert.are.equal(cli.parse, require("tricycle.cli.args").parse)
    assert.are.equal('{"a":"\\"","b":null}', cli.json_line({a = '"', b = 0 / 0}))
  end)

  it("trains a GPT step, generates, and round-trips a checkpoint", function()
    local tc = require("tricycle")
    tc.manual_seed(3)
    local model = tc.nn.GPT({ vocab_size = 11, context_length = 8, n_layer = 1, n_head = 2, n_embd = 16 })
    local optimizer = tc.optim.AdamW(model:parameters(), { lr = 1e-2 })
    local ids = { { 1, 2, 3, 4, 5, 6, 7, 8 }, { 8, 7, 6, 5, 4, 3, 2, 1 } }
    local x = tc.tensor(ids, { dtype = "int64" })
    local y = tc.tensor(ids, { dtype = "int64" })
    local _, loss = model(x, { targets = y })
    local first = loss:item()
    optimizer:zero_grad()
    loss:backward()
    optimizer:step()
    local _, after = model(x, { targets = y })
    assert.is_true(after:item() < first)

    local generated = tc.generate.generate(model, { 1, 2 }, { max_tokens = 4, seed = 5 })
    assert.are.equal(4, #generated)
    for _, id in ipairs(generated) do
      assert.is_true(id >= 0 and id < 11 and id == math.floor(id))
    end

    local path = os.tmpname()
    tc.checkpoint.save(path, { model = model, optimizer = optimizer, step = 1, config = { n_layer = 1 } })
    local restored = tc.nn.GPT({ vocab_size = 11, context_length = 8, n_layer = 1, n_head = 2, n_embd = 16 })
    local state = tc.checkpoint.load(path)
    os.remove(path)
    tc.checkpoint.restore(state, { model = restored })
    assert.are.equal(1, state.step)
    assert.are.equal(1, state.config.n_layer)
    local _, again = restored(x, { targets = y })
    assert.are.equal(after:item(), again:item())
  end)

  it("frees a tensor at once with t:free() and refuses a later use", function()
    local tc = require("tricycle")
    local t = tc.ones({ 3 })
    t:free()
    local ok, message = pcall(function() return t:sum() end)
    assert.is_false(ok)
    assert.truthy(message:find("closed", 1, true))
    assert.are.equal(6, tc.ones({ 2, 3 }):sum():item())
  end)
end)
