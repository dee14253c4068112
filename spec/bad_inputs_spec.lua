-- The catalogue of bad inputs: every case must raise a clear Lua error whose
-- message holds the given fragments (the op's name and the offending value or
-- shape), and the state must work afterwards. Cases live by area in
-- spec/bad_inputs/<area>.lua; each file returns a list of
--   { name, function that must fail, { fragments (plain text) }, after = optional check,
--     wide = true when the case's values lie past 2^53 on Luas without 64-bit integers,
--     on_doubles = { fragments } where those Luas must say something else }
-- On those Luas (5.1, LuaJIT, 5.2; spec/helpers/wide.lua) the binding refuses such values with an error
-- naming the function and the value: a `wide` case's message must then hold its first fragment (the
-- function) and "past 2^53", or the fragments of on_doubles where the refusal comes earlier (a tensor
-- of a size past 2^53 cannot be made there, so the op under test is never reached).
-- A case that crashed, hung or gave a wrong answer before being made an error
-- says so in its name's note (see the files). No message may start with a location inside the library
-- (lua/tricycle/...:LINE:): errors read as if the caller had made a direct call.
local tc = require("tricycle")
local compat = require("tricycle.compat")

local areas = {
  "construction", "shapes", "indices", "dtypes", "autograd", "nn", "optim", "files", "tokenizers", "generation", "data",
  "cli", "distributed", "hosts",
}

local function state_works()
  assert.are.same({ 2, 4 }, (tc.tensor({ 1, 2 }) * 2):totable())
  assert.are.equal(6, tc.ones({ 2, 3 }):sum():item())
  assert.is_true(tc.is_grad_enabled())
end

describe("bad inputs", function()
  for _, area in ipairs(areas) do
    local found, cases = pcall(require, "bad_inputs." .. area)
    if found then
      describe(area, function()
        for _, case in ipairs(cases) do
          local name, fn, fragments = case[1], case[2], case[3]
          if case.on_doubles and not compat.has_integers then
            fragments = case.on_doubles
          elseif case.wide and not compat.has_integers then
            fragments = { fragments[1], "past 2^53" }
          end
          it(name, function()
            local ok, message = pcall(fn)
            assert.is_false(ok, name .. " did not raise an error")
            assert.are.equal("string", type(message), name .. " raised a " .. type(message))
            for _, fragment in ipairs(fragments) do
              assert.truthy(message:find(fragment, 1, true), ("message %q lacks %q"):format(message, fragment))
            end
            if case.after then case.after() end
            -- raised at the caller's level: no location inside the library (before: 88 cases began with
            -- "lua/tricycle/tokenizer.lua:121:" and the like)
            assert.is_nil(message:find("^[^\n:]-tricycle[/\\][%w_/\\]+%.lua:%d+: "),
              ("message %q carries a location inside the library"):format(message))
            state_works()
          end)
        end
      end)
    end
  end

  it("has cases in every area", function()
    for _, area in ipairs(areas) do
      local found, cases = pcall(require, "bad_inputs." .. area)
      assert.is_true(found, "spec/bad_inputs/" .. area .. ".lua is missing or fails to load: " .. tostring(cases))
      assert.is_true(#cases > 0, area .. " has no cases")
    end
  end)
end)
