-- Smoke test for an installed tricycle: loads the module the way a user would
-- (no repository paths) and runs one op and one backward pass.
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
end)
